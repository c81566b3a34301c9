// The load generator's TLS client: OpenSSL's client on a non-blocking socket the generator owns and
// polls. The same client, whichever server answers (ours on OpenSSL, NIO's on BoringSSL). Nothing of
// OpenSSL's headers is exposed here, so that this module and PheromonesTLS's COpenSSL never meet in
// one Swift file.
#ifndef CTLS_CLIENT_H
#define CTLS_CLIENT_H

#include <stddef.h>

/// Outcomes of the calls below besides a positive byte count.
enum {
    /// The handshake finished (ctls_handshake).
    CTLS_DONE = 1,
    /// The peer closed the TLS stream with close_notify (ctls_read).
    CTLS_CLOSED = 0,
    /// Failed: the connection is unusable (ctls_error tells why).
    CTLS_ERROR = -1,
    /// Wait until the socket is readable, then call again.
    CTLS_WANT_READ = -2,
    /// Wait until the socket is writable, then call again (with the same or more bytes, for a write).
    CTLS_WANT_WRITE = -3,
};

/// What every connection shares: one `SSL_CTX` (TLS 1.3 only, TLS_AES_128_GCM_SHA256, X25519, no
/// certificate verification) and, when resuming, the last session a server gave.
typedef struct ctls_client ctls_client;
/// One connection's `SSL`.
typedef struct ctls_connection ctls_connection;

/// A client; with `resume`, every connection offers the last session ticket received.
/// NULL on failure.
ctls_client *ctls_client_new(int resume);
void ctls_client_free(ctls_client *client);

/// A connection over the connected socket `fd` (which the caller keeps owning and closes).
ctls_connection *ctls_connection_new(ctls_client *client, int fd);
void ctls_connection_free(ctls_connection *connection);

/// Advances the handshake: CTLS_DONE, CTLS_WANT_READ, CTLS_WANT_WRITE or CTLS_ERROR.
int ctls_handshake(ctls_connection *connection);
/// Decrypts into `buffer`: the bytes read, CTLS_CLOSED, CTLS_WANT_READ, CTLS_WANT_WRITE or CTLS_ERROR.
long ctls_read(ctls_connection *connection, void *buffer, size_t capacity);
/// Encrypts and sends up to `length` bytes (a record's worth at least, when the socket takes it):
/// the bytes taken, CTLS_WANT_READ, CTLS_WANT_WRITE or CTLS_ERROR.
long ctls_write(ctls_connection *connection, const void *bytes, size_t length);
/// Sends close_notify (once, without waiting for the server's).
void ctls_shutdown(ctls_connection *connection);
/// Whether the handshake resumed a session.
int ctls_session_reused(const ctls_connection *connection);
/// Why the last call failed (OpenSSL's first queued error, or the system's), in a static buffer.
const char *ctls_error(void);

#endif
