#pragma once
// Whether a file or folder named after a process ID (NAME.tmp.PID, .DST.quantizing-PID) may still be
// in use by the Quire process that made it.

#include <string>

namespace quire {

// `pid` (decimal digits) is alive and runs Quire: its /proc/PID/comm is `quire`, `quire-desktop`
// (the two programs share a data folder) or this process's own name. A PID the system has since
// given to another program is a dead writer's. When the names cannot be read, a live PID counts as
// alive, to be safe. Anything but digits: false.
bool same_program_alive(const std::string& pid);

// Whether process `pid`'s command line has `arg` among its arguments (/proc/PID/cmdline); true when
// it cannot be read, to be safe.
bool process_has_argument(const std::string& pid, const std::string& arg);

}  // namespace quire
