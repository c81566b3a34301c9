// The epoll reactor, sockets and TCP channels live in this module.
