#include "interrupt.h"

#include <csignal>

namespace quire::cli {

namespace {
std::atomic<bool> g_interrupted{false};
std::atomic<int> g_signal{0};

void onSignal(int sig) {
    g_signal = sig;
    g_interrupted = true;
    std::signal(sig, SIG_DFL);  // the second one ends the process
}
}  // namespace

void catchInterrupts() {
    static const bool installed = [] {
        for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, onSignal);
        return true;
    }();
    (void)installed;
}

const std::atomic<bool>* interruptFlag() { return &g_interrupted; }
int interruptSignal() { return g_signal; }
int interruptedExit(int code) { return g_signal ? 128 + g_signal : code; }

}  // namespace quire::cli
