#define _GNU_SOURCE
#include "CEpoll.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

// The header spells the readiness bits out so that Swift sees them; they must be the kernel's.
_Static_assert(CEPOLL_IN == EPOLLIN && CEPOLL_OUT == EPOLLOUT && CEPOLL_ERR == EPOLLERR && CEPOLL_HUP == EPOLLHUP
               && CEPOLL_RDHUP == EPOLLRDHUP, "CEPOLL_* bits differ from <sys/epoll.h>");

int cepoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

static int cepoll_control(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = events;
    event.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &event);
}

int cepoll_add(int epfd, int fd, uint32_t events, uint64_t data) {
    return cepoll_control(epfd, EPOLL_CTL_ADD, fd, events, data);
}

int cepoll_modify(int epfd, int fd, uint32_t events, uint64_t data) {
    return cepoll_control(epfd, EPOLL_CTL_MOD, fd, events, data);
}

int cepoll_wait(int epfd, cepoll_ready *ready, int capacity, int timeout_ms) {
    struct epoll_event events[1024];
    if (capacity > 1024) capacity = 1024;
    int count;
    do {
        count = epoll_wait(epfd, events, capacity, timeout_ms);
    } while (count < 0 && errno == EINTR);
    for (int i = 0; i < count; i++) {
        ready[i].events = events[i].events;
        ready[i].data = events[i].data.u64;
    }
    return count;
}

int cepoll_connect_tcp4(const char *ipv4, int port) {
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ipv4, &address.sin_addr) != 1) return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0 && errno != EINPROGRESS) {
        int error = errno;
        close(fd);
        return -error;
    }
    return fd;
}

int cepoll_socket_error(int fd) {
    int error = 0;
    socklen_t length = sizeof error;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) < 0) return errno;
    return error;
}

void cepoll_close_with_reset(int fd) {
    struct linger linger = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof linger);
    close(fd);
}

int cepoll_shutdown_write(int fd) { return shutdown(fd, SHUT_WR); }

static int cepoll_ipv4(const char *ipv4, int port, struct sockaddr_in *address) {
    memset(address, 0, sizeof *address);
    address->sin_family = AF_INET;
    address->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, ipv4, &address->sin_addr) == 1 ? 0 : -EINVAL;
}

int cepoll_free_tcp4_port(const char *ipv4) {
    struct sockaddr_in address;
    if (cepoll_ipv4(ipv4, 0, &address) != 0) return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    socklen_t length = sizeof address;
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0
        || getsockname(fd, (struct sockaddr *)&address, &length) < 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    close(fd);
    return ntohs(address.sin_port);
}

int cepoll_probe_tcp4(const char *ipv4, int port, int timeout_ms) {
    int fd = cepoll_connect_tcp4(ipv4, port);
    if (fd < 0) return -fd;
    struct pollfd waiting = {fd, POLLOUT, 0};
    int ready;
    do {
        ready = poll(&waiting, 1, timeout_ms);
    } while (ready < 0 && errno == EINTR);
    int error = ready > 0 ? cepoll_socket_error(fd) : (ready == 0 ? ETIMEDOUT : errno);
    close(fd);
    return error;
}

long cepoll_raise_open_files_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
        getrlimit(RLIMIT_NOFILE, &limit);
    }
    return (long)limit.rlim_cur;
}
