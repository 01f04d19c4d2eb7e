#pragma once
// A child process that sleeps under a chosen name (its /proc/PID/comm) until the object goes, for
// at most two minutes: the live owner of a PID-named file or folder (process_alive.h).

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

namespace quire::test {

class SleepingProcess {
public:
    // name: the process name it takes; null keeps this process's.
    explicit SleepingProcess(const char* name) {
        pid_ = ::fork();
        if (pid_ == 0) {
            if (name) ::prctl(PR_SET_NAME, name);
            ::alarm(120);
            for (;;) ::pause();
        }
        ::usleep(100000);  // the name is set
    }
    ~SleepingProcess() { stop(); }
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
};

}  // namespace quire::test
