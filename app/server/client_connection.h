#pragma once
// Whether the client of a request is still connected, for a handler that works for a long time
// before it writes anything (a non-streamed answer, a request waiting in the queue). cpp-httplib
// 0.11 (Debian 12) gives a handler no socket, so the socket is found once among the process's open
// descriptors by the request's two addresses; the handler runs on the thread that owns it, so it
// stays the same socket until the handler returns.

#include <httplib.h>

namespace quire::server {

class ClientConnection {
public:
    explicit ClientConnection(const httplib::Request& request);

    // True once the client has closed the connection or it has failed. A connection that is open,
    // or whose socket cannot be found, counts as there (the answer is then computed as before).
    bool gone();

private:
    int findSocket() const;

    const httplib::Request& request_;
    int fd_ = -1;
    bool searched_ = false;
};

}  // namespace quire::server
