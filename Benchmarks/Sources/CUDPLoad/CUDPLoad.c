#define _GNU_SOURCE
#include "CUDPLoad.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { BATCH = 64, MAX_SIZE = 65536 };

typedef struct {
    int fd;
    /// Datagrams sent and not answered (nor given up).
    int in_flight;
    /// When this sender last heard a reply (or sent a fresh window), in ns.
    uint64_t last_progress;
} sender;

struct cudp_load {
    int epfd;
    int count;
    int window;
    int size;
    uint64_t loss_timeout_ns;
    sender *senders;
    unsigned char *payload;
    unsigned char *receive;
    struct mmsghdr messages[BATCH];
    struct iovec iovecs[BATCH];
};

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/// Sends `count` datagrams on `s`, as many as the socket takes; returns how many went.
static int send_batch(cudp_load *load, sender *s, int count) {
    int total = 0;
    while (total < count) {
        int batch = count - total < BATCH ? count - total : BATCH;
        for (int i = 0; i < batch; i++) {
            load->iovecs[i].iov_base = load->payload;
            load->iovecs[i].iov_len = (size_t)load->size;
            memset(&load->messages[i], 0, sizeof(load->messages[i]));
            load->messages[i].msg_hdr.msg_iov = &load->iovecs[i];
            load->messages[i].msg_hdr.msg_iovlen = 1;
        }
        int sent = sendmmsg(s->fd, load->messages, (unsigned)batch, MSG_DONTWAIT);
        if (sent < 0) {
            if (errno == EINTR) continue;
            break;  // EAGAIN (or a refused send): what did not go counts as not sent
        }
        total += sent;
        if (sent < batch) break;
    }
    s->in_flight += total;
    return total;
}

cudp_load *cudp_load_open(int port, int senders, int window, int size, int loss_timeout_ms) {
    if (senders < 1 || window < 1 || size < 1 || size > MAX_SIZE) { errno = EINVAL; return NULL; }
    cudp_load *load = calloc(1, sizeof(cudp_load));
    if (!load) return NULL;
    load->count = senders;
    load->window = window;
    load->size = size;
    load->loss_timeout_ns = (uint64_t)loss_timeout_ms * 1000000ull;
    load->senders = calloc((size_t)senders, sizeof(sender));
    load->payload = malloc((size_t)size);
    load->receive = malloc((size_t)BATCH * MAX_SIZE);
    if (load->senders) for (int i = 0; i < senders; i++) load->senders[i].fd = -1;
    load->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!load->senders || !load->payload || !load->receive || load->epfd < 0) { cudp_load_close(load); return NULL; }
    for (int i = 0; i < size; i++) load->payload[i] = (unsigned char)i;
    struct sockaddr_in server = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < senders; i++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) { cudp_load_close(load); return NULL; }
        load->senders[i].fd = fd;
        int buffer = 4 << 20;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
        if (connect(fd, (struct sockaddr *)&server, sizeof(server)) != 0) { cudp_load_close(load); return NULL; }
        struct epoll_event event = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        if (epoll_ctl(load->epfd, EPOLL_CTL_ADD, fd, &event) != 0) { cudp_load_close(load); return NULL; }
    }
    return load;
}

int cudp_load_run(cudp_load *load, double seconds, cudp_counts *counts) {
    uint64_t start = now_ns();
    uint64_t end = start + (uint64_t)(seconds * 1e9);
    for (int i = 0; i < load->count; i++) {
        sender *s = &load->senders[i];
        s->last_progress = start;
        if (s->in_flight < load->window) counts->sent += (uint64_t)send_batch(load, s, load->window - s->in_flight);
    }
    struct epoll_event events[256];
    for (;;) {
        uint64_t now = now_ns();
        if (now >= end) break;
        int ready = epoll_wait(load->epfd, events, 256, 10);
        if (ready < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        for (int e = 0; e < ready; e++) {
            sender *s = &load->senders[events[e].data.u32];
            for (;;) {
                for (int i = 0; i < BATCH; i++) {
                    load->iovecs[i].iov_base = load->receive + (size_t)i * MAX_SIZE;
                    load->iovecs[i].iov_len = MAX_SIZE;
                    memset(&load->messages[i], 0, sizeof(load->messages[i]));
                    load->messages[i].msg_hdr.msg_iov = &load->iovecs[i];
                    load->messages[i].msg_hdr.msg_iovlen = 1;
                }
                int got = recvmmsg(s->fd, load->messages, BATCH, MSG_DONTWAIT, NULL);
                if (got < 0) {
                    if (errno == EINTR) continue;
                    break;  // EAGAIN, or ECONNREFUSED while the server is not there yet
                }
                for (int i = 0; i < got; i++) {
                    if ((int)load->messages[i].msg_len != load->size) counts->bad++;
                }
                counts->received += (uint64_t)got;
                s->in_flight = s->in_flight > got ? s->in_flight - got : 0;
                s->last_progress = now_ns();
                // One new datagram per reply: the window stays full.
                counts->sent += (uint64_t)send_batch(load, s, load->window - s->in_flight);
                if (got < BATCH) break;
            }
        }
        now = now_ns();
        for (int i = 0; i < load->count; i++) {
            sender *s = &load->senders[i];
            if (s->in_flight > 0 && now - s->last_progress > load->loss_timeout_ns) {
                // Nothing came back for a while: what was in flight is lost. Send a fresh window.
                counts->lost += (uint64_t)s->in_flight;
                s->in_flight = 0;
                s->last_progress = now;
                counts->sent += (uint64_t)send_batch(load, s, load->window);
            } else if (s->in_flight < load->window) {
                counts->sent += (uint64_t)send_batch(load, s, load->window - s->in_flight);
            }
        }
    }
    return 0;
}

void cudp_load_close(cudp_load *load) {
    if (!load) return;
    if (load->senders) {
        for (int i = 0; i < load->count; i++) if (load->senders[i].fd >= 0) close(load->senders[i].fd);
    }
    if (load->epfd >= 0) close(load->epfd);
    free(load->senders);
    free(load->payload);
    free(load->receive);
    free(load);
}
