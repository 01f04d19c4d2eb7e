#pragma once
// Ctrl-C (SIGINT), SIGTERM and SIGHUP as a request to stop: the first one sets a flag that long work
// polls (a quantize run, reading a library, generating an answer), which then stops cleanly and
// keeps what it may keep; a second one ends the process as usual. A command that stopped this way
// exits with 128 + the signal's number, as a shell reports a process the signal ended.

#include <atomic>

namespace quire::cli {

// Installs the handlers (once per process; later calls do nothing).
void catchInterrupts();
// Set by the first signal.
const std::atomic<bool>* interruptFlag();
// The first signal's number, 0 when none came.
int interruptSignal();
// A stopped command's exit status: 128 + the signal's number when one came, `code` otherwise.
int interruptedExit(int code);

}  // namespace quire::cli
