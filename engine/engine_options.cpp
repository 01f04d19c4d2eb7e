#include "engine_options.h"

namespace quire {

const char* precision_name(Precision p) { return p == Precision::bf16 ? "bf16" : "fp32"; }
const char* regime_rule_name(RegimeRule r) { return r == RegimeRule::per_query ? "per-query" : "per-request"; }

bool parse_precision(const std::string& s, Precision& out) {
    if (s == "bf16") out = Precision::bf16;
    else if (s == "fp32") out = Precision::fp32;
    else return false;
    return true;
}

bool parse_regime_rule(const std::string& s, RegimeRule& out) {
    if (s == "per-query") out = RegimeRule::per_query;
    else if (s == "per-request") out = RegimeRule::per_request;
    else return false;
    return true;
}

}  // namespace quire
