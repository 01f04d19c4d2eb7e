#include "client_connection.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

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
    // cpp-httplib writes a link-local peer with its zone ("fe80::1%eth0"); inet_ntop does not.
    const std::string peer = request_.remote_addr.substr(0, request_.remote_addr.find('%'));
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
        if (!endpoint(static_cast<int>(fd), true, peerHost, peerPort) || peerPort != request_.remote_port || peerHost != peer)
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
    // Without waiting: the peer's FIN (POLLRDHUP, also with unread bytes before it, such as a
    // pipelined request or a stray CRLF), a reset or a failed connection (POLLHUP, POLLERR).
    pollfd p{fd_, POLLRDHUP, 0};
    if (poll(&p, 1, 0) < 0) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

}  // namespace quire::server
