// The few Linux calls the load generator needs that Glibc's Swift module does not import
// (<sys/epoll.h>, and socket options that are awkward to spell from Swift). Plain C, no state.
#ifndef CEPOLL_H
#define CEPOLL_H

#include <stdint.h>

/// Readiness bits, as in <sys/epoll.h>.
enum {
    CEPOLL_IN = 0x001,
    CEPOLL_OUT = 0x004,
    CEPOLL_ERR = 0x008,
    CEPOLL_HUP = 0x010,
    /// The peer shut down its side (EPOLLRDHUP): seen without reading what it sent before.
    CEPOLL_RDHUP = 0x2000,
};

/// One ready descriptor: its events and the 64-bit user data it was registered with.
/// (The kernel's `struct epoll_event` is packed on x86_64; this one is not, so Swift reads it plainly.)
typedef struct {
    uint32_t events;
    uint64_t data;
} cepoll_ready;

/// `epoll_create1(EPOLL_CLOEXEC)`; -1 and errno on failure.
int cepoll_create(void);
/// Registers `fd` for `events`, tagged with `data`; 0 or -1 and errno.
int cepoll_add(int epfd, int fd, uint32_t events, uint64_t data);
/// Changes the events of a registered `fd`; 0 or -1 and errno.
int cepoll_modify(int epfd, int fd, uint32_t events, uint64_t data);
/// Waits up to `timeout_ms` for at most `capacity` (<= 1024) ready descriptors; their count, or -1 and errno.
int cepoll_wait(int epfd, cepoll_ready *ready, int capacity, int timeout_ms);

/// A non-blocking, close-on-exec TCP socket with TCP_NODELAY, connecting to `ipv4:port`.
/// Returns the descriptor (the connect may still be in progress) or -errno.
int cepoll_connect_tcp4(const char *ipv4, int port);
/// The socket's pending error (SO_ERROR), or errno if it cannot be read.
int cepoll_socket_error(int fd);
/// Closes `fd` with a reset (SO_LINGER 0), so finished runs leave no TIME_WAIT sockets behind.
void cepoll_close_with_reset(int fd);
/// Shuts the socket's write side (`shutdown(SHUT_WR)`): the peer reads EOF, the socket can still read.
/// 0 or -1 and errno.
int cepoll_shutdown_write(int fd);
/// A TCP port on `ipv4` that is free now (bound to port 0, read back, released), or -errno.
int cepoll_free_tcp4_port(const char *ipv4);
/// Whether something accepts TCP connections on `ipv4:port`: connects (blocking up to `timeout_ms`)
/// and closes again. 0 if it connected, otherwise the error.
int cepoll_probe_tcp4(const char *ipv4, int port, int timeout_ms);
/// Raises the soft open-files limit to the hard one; returns the new soft limit.
long cepoll_raise_open_files_limit(void);

#endif
