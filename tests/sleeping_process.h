#pragma once
// A child process that sleeps under a chosen name (its /proc/PID/comm) until the object goes, for
// at most two minutes: the live owner of a PID-named file or folder (process_alive.h). With an
// argument, it is a shell started through a link of that name, so the argument is on its command
// line too (a `quire quantize` run's, say).

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <string>

namespace quire::test {

class SleepingProcess {
public:
    // name: the process name it takes; null keeps this process's.
    explicit SleepingProcess(const char* name, const char* argument = nullptr) {
        if (name && argument) {
            char dir[] = "/tmp/quire-sleeper-XXXXXX";
            if (::mkdtemp(dir)) {
                dir_ = dir;
                link_ = dir_ + "/" + name;
                if (::symlink("/bin/sh", link_.c_str()) != 0) link_.clear();
            }
        }
        pid_ = ::fork();
        if (pid_ == 0) {
            if (!link_.empty()) {  // a loop, so that the shell never hands its process to `sleep`
                ::execl(link_.c_str(), name, "-c", "i=0; while [ $i -lt 120 ]; do sleep 1; i=$((i+1)); done", argument, static_cast<char*>(nullptr));
                ::_exit(127);
            }
            if (name) ::prctl(PR_SET_NAME, name);
            ::alarm(120);
            for (;;) ::pause();
        }
        ::usleep(200000);  // the name is set
    }
    ~SleepingProcess() {
        stop();
        if (!link_.empty()) ::unlink(link_.c_str());
        if (!dir_.empty()) ::rmdir(dir_.c_str());
    }
    SleepingProcess(const SleepingProcess&) = delete;
    SleepingProcess& operator=(const SleepingProcess&) = delete;

    pid_t pid() const { return pid_; }
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

private:
    pid_t pid_ = -1;
    std::string dir_, link_;
};

}  // namespace quire::test
