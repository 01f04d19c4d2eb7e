#include "process_alive.h"

#include <signal.h>

#include <cerrno>
#include <fstream>

namespace quire {

namespace {
std::string comm_of(const std::string& pid) {
    std::ifstream f("/proc/" + pid + "/comm");
    std::string name;
    std::getline(f, name);
    return name;
}
}  // namespace

bool same_program_alive(const std::string& pid) {
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos || pid.size() > 9) return false;
    const long id = std::stol(pid);
    if (id <= 0) return false;
    if (::kill(static_cast<pid_t>(id), 0) != 0 && errno == ESRCH) return false;
    const std::string theirs = comm_of(pid), ours = comm_of("self");
    return theirs.empty() || ours.empty() || theirs == ours || theirs == "quire" || theirs == "quire-desktop";
}

bool process_has_argument(const std::string& pid, const std::string& arg) {
    std::ifstream f("/proc/" + pid + "/cmdline", std::ios::binary);
    if (!f) return true;
    std::string part;
    bool any = false;
    while (std::getline(f, part, '\0')) {
        any = true;
        if (part == arg) return true;
    }
    return !any;
}

}  // namespace quire
