// The `udp` scenario's load generator: plain UDP sockets, sendmmsg and recvmmsg, one thread, one
// epoll instance, no framework, the same for both servers. Behind a header of plain types.
#ifndef CUDPLOAD_H
#define CUDPLOAD_H

#include <stdint.h>

/// What a run counted.
typedef struct {
    /// Datagrams sent.
    uint64_t sent;
    /// Replies received (any reply counts: the server echoes what it got).
    uint64_t received;
    /// Datagrams given up as lost: a sender whose window got no reply for `loss_timeout_ms` counts
    /// what it had in flight as lost and sends a fresh window.
    uint64_t lost;
    /// Replies whose length was not the size sent.
    uint64_t bad;
} cudp_counts;

/// An opaque load generator.
typedef struct cudp_load cudp_load;

/// `senders` connected UDP sockets to 127.0.0.1:`port`, each to keep `window` datagrams of `size`
/// bytes in flight. NULL (and errno) on failure.
cudp_load *cudp_load_open(int port, int senders, int window, int size, int loss_timeout_ms);
/// Runs the load for `seconds` and adds what it counted to `counts`. Returns 0, or -errno.
int cudp_load_run(cudp_load *load, double seconds, cudp_counts *counts);
/// Closes the sockets and frees the generator.
void cudp_load_close(cudp_load *load);

#endif
