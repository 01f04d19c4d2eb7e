#pragma once
// Whether a file or folder named after a process ID (NAME.tmp.PID, .DST.quantizing-PID) may still be
// in use by the Quire process that made it.

#include <string>

namespace quire {

// `pid` (decimal digits) is alive and runs the same program as this process (its /proc/PID/comm
// equals ours). A PID the system has since given to another program is a dead writer's. When the
// names cannot be read, a live PID counts as alive, to be safe. Anything but digits: false.
bool same_program_alive(const std::string& pid);

}  // namespace quire
