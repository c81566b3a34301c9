#include "CTLSClient.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

struct ctls_client {
    SSL_CTX *context;
    int resume;
    /// The last session a server gave (a reference of ours), offered by the next connection.
    SSL_SESSION *session;
};

struct ctls_connection {
    SSL *ssl;
};

static char last_error[256];

static void remember_error(const char *what, int ssl_error) {
    unsigned long code = ERR_get_error();
    if (code != 0) {
        char reason[200];
        ERR_error_string_n(code, reason, sizeof reason);
        snprintf(last_error, sizeof last_error, "%s: %s", what, reason);
    } else if (ssl_error == SSL_ERROR_SYSCALL && errno != 0) {
        snprintf(last_error, sizeof last_error, "%s: %s", what, strerror(errno));
    } else if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN) {
        snprintf(last_error, sizeof last_error, "%s: the server closed the connection", what);
    } else {
        snprintf(last_error, sizeof last_error, "%s: SSL error %d", what, ssl_error);
    }
    ERR_clear_error();
}

const char *ctls_error(void) { return last_error; }

/// A server sent a session ticket: it replaces the one kept (returning 1 keeps OpenSSL's reference).
static int store_session(SSL *ssl, SSL_SESSION *session) {
    ctls_client *client = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (client == NULL || !client->resume) return 0;
    if (client->session != NULL) SSL_SESSION_free(client->session);
    client->session = session;
    return 1;
}

ctls_client *ctls_client_new(int resume) {
    ctls_client *client = calloc(1, sizeof *client);
    if (client == NULL) return NULL;
    client->resume = resume;
    client->context = SSL_CTX_new(TLS_client_method());
    if (client->context == NULL) {
        remember_error("SSL_CTX_new", 0);
        free(client);
        return NULL;
    }
    SSL_CTX *context = client->context;
    // The same handshake against both servers: TLS 1.3, one cipher suite, one group (the server's
    // certificate, EC P-256, fixes the signature). The certificate is not verified: that is the
    // client's cost, and the client is not what is measured.
    if (SSL_CTX_set_min_proto_version(context, TLS1_3_VERSION) != 1 || SSL_CTX_set_max_proto_version(context, TLS1_3_VERSION) != 1
        || SSL_CTX_set_ciphersuites(context, "TLS_AES_128_GCM_SHA256") != 1 || SSL_CTX_set1_groups_list(context, "X25519") != 1) {
        remember_error("configuring the client", 0);
        ctls_client_free(client);
        return NULL;
    }
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // Whole socket reads rather than a record header then its body.
    SSL_CTX_set_read_ahead(context, 1);
    SSL_CTX_set_app_data(context, client);
    if (resume) {
        SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(context, store_session);
    } else {
        SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(context, SSL_OP_NO_TICKET);
    }
    return client;
}

void ctls_client_free(ctls_client *client) {
    if (client == NULL) return;
    if (client->session != NULL) SSL_SESSION_free(client->session);
    SSL_CTX_free(client->context);
    free(client);
}

ctls_connection *ctls_connection_new(ctls_client *client, int fd) {
    ctls_connection *connection = calloc(1, sizeof *connection);
    if (connection == NULL) return NULL;
    connection->ssl = SSL_new(client->context);
    if (connection->ssl == NULL || SSL_set_fd(connection->ssl, fd) != 1) {
        remember_error("SSL_new", 0);
        ctls_connection_free(connection);
        return NULL;
    }
    SSL_set_connect_state(connection->ssl);
    if (client->resume && client->session != NULL) SSL_set_session(connection->ssl, client->session);
    return connection;
}

void ctls_connection_free(ctls_connection *connection) {
    if (connection == NULL) return;
    if (connection->ssl != NULL) SSL_free(connection->ssl);
    free(connection);
}

/// What `result` of a call on `ssl` means for the caller.
static long outcome(SSL *ssl, int result, const char *what) {
    int error = SSL_get_error(ssl, result);
    switch (error) {
    case SSL_ERROR_WANT_READ: return CTLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE: return CTLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN: return CTLS_CLOSED;
    default:
        remember_error(what, error);
        return CTLS_ERROR;
    }
}

int ctls_handshake(ctls_connection *connection) {
    ERR_clear_error();
    errno = 0;
    int result = SSL_do_handshake(connection->ssl);
    if (result == 1) return CTLS_DONE;
    long code = outcome(connection->ssl, result, "handshake");
    return code == CTLS_CLOSED ? CTLS_ERROR : (int)code;
}

long ctls_read(ctls_connection *connection, void *buffer, size_t capacity) {
    size_t read = 0;
    ERR_clear_error();
    errno = 0;
    int result = SSL_read_ex(connection->ssl, buffer, capacity, &read);
    if (result == 1) return (long)read;
    return outcome(connection->ssl, result, "read");
}

long ctls_write(ctls_connection *connection, const void *bytes, size_t length) {
    size_t written = 0;
    ERR_clear_error();
    errno = 0;
    int result = SSL_write_ex(connection->ssl, bytes, length, &written);
    if (result == 1) return (long)written;
    long code = outcome(connection->ssl, result, "write");
    return code == CTLS_CLOSED ? CTLS_ERROR : code;
}

void ctls_shutdown(ctls_connection *connection) {
    ERR_clear_error();
    (void)SSL_shutdown(connection->ssl);
    ERR_clear_error();
}

int ctls_session_reused(const ctls_connection *connection) { return SSL_session_reused(connection->ssl); }
