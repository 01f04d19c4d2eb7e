#include "client_connection.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace quire::server {

namespace {

// The numeric address and port of a socket address, as cpp-httplib writes remote_addr / remote_port.
bool addressOf(const sockaddr_storage& a, std::string& host, int& port) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET) {
        const auto& v4 = reinterpret_cast<const sockaddr_in&>(a);
        port = ntohs(v4.sin_port);
        return inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text) && (host = text, true);
    }
    if (a.ss_family == AF_INET6) {
        const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a);
        port = ntohs(v6.sin6_port);
        return inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text) && (host = text, true);
    }
    return false;
}

bool endpoint(int fd, bool peer, std::string& host, int& port) {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    const int r = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) : getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    return r == 0 && addressOf(a, host, port);
}

}  // namespace

ClientConnection::ClientConnection(const httplib::Request& request) : request_(request) {}

int ClientConnection::findSocket() const {
    DIR* dir = opendir("/proc/self/fd");
    if (!dir) return -1;
    int found = -1;
    while (dirent* e = readdir(dir)) {
        char* end = nullptr;
        const long fd = std::strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end != '\0' || fd == dirfd(dir)) continue;
        struct stat st {};
        if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
        std::string localHost, peerHost;
        int localPort = -1, peerPort = -1;
        if (!endpoint(static_cast<int>(fd), false, localHost, localPort) || localPort != request_.local_port) continue;
        if (!endpoint(static_cast<int>(fd), true, peerHost, peerPort) || peerPort != request_.remote_port || peerHost != request_.remote_addr)
            continue;
        found = static_cast<int>(fd);
        break;
    }
    closedir(dir);
    return found;
}

bool ClientConnection::gone() {
    if (!searched_) {
        searched_ = true;
        fd_ = findSocket();
    }
    if (fd_ < 0) return false;
    // A peek neither waits nor takes anything: 0 bytes is the client's end of stream; data (a
    // pipelined next request) or "would block" mean it is still there.
    char byte = 0;
    const ssize_t n = recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

}  // namespace quire::server
