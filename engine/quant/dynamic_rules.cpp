#include "quant/dynamic_rules.h"

namespace quire {

bool DynamicRule::matches(const std::string& module_name) const {
    return std::regex_search(module_name, pattern, std::regex_constants::match_continuous);
}

}  // namespace quire
