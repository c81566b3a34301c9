// The parts of OpenSSL 3 that PheromonesTLS (TLS) and PheromonesNoise (its transport cipher,
// ChaCha20-Poly1305 through EVP) use. Several of OpenSSL's setters are macros over
// `SSL_ctrl`/`SSL_CTX_ctrl`, which Swift cannot import; the inline functions below give them types.
#ifndef PHEROMONES_COPENSSL_SHIM_H
#define PHEROMONES_COPENSSL_SHIM_H

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static inline int pheromones_SSL_CTX_set_min_proto_version(SSL_CTX *context, int version) {
    return (int)SSL_CTX_set_min_proto_version(context, version);
}

static inline int pheromones_SSL_CTX_set_max_proto_version(SSL_CTX *context, int version) {
    return (int)SSL_CTX_set_max_proto_version(context, version);
}

static inline long pheromones_SSL_CTX_set_mode(SSL_CTX *context, long mode) {
    return SSL_CTX_set_mode(context, mode);
}

static inline long pheromones_SSL_CTX_set_session_cache_mode(SSL_CTX *context, long mode) {
    return SSL_CTX_set_session_cache_mode(context, mode);
}

static inline int pheromones_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

static inline int pheromones_SSL_CTX_set_tlsext_servername_callback(SSL_CTX *context, int (*callback)(SSL *, int *, void *)) {
    return (int)SSL_CTX_set_tlsext_servername_callback(context, callback);
}

static inline int pheromones_SSL_CTX_set_tlsext_servername_arg(SSL_CTX *context, void *argument) {
    return (int)SSL_CTX_set_tlsext_servername_arg(context, argument);
}

static inline int pheromones_SSL_CTX_add_extra_chain_cert(SSL_CTX *context, X509 *certificate) {
    return (int)SSL_CTX_add_extra_chain_cert(context, certificate);
}

static inline int pheromones_SSL_CTX_set_num_tickets(SSL_CTX *context, size_t count) {
    return SSL_CTX_set_num_tickets(context, count);
}

static inline const char *pheromones_OBJ_nid2sn(int nid) { return OBJ_nid2sn(nid); }

// Values Swift imports as macros it cannot see through.
static const int pheromones_TLS1_2_VERSION = TLS1_2_VERSION;
static const int pheromones_TLS1_3_VERSION = TLS1_3_VERSION;
static const long pheromones_SSL_MODE_RELEASE_BUFFERS = SSL_MODE_RELEASE_BUFFERS;
static const long pheromones_SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER = SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;
static const long pheromones_SSL_MODE_ENABLE_PARTIAL_WRITE = SSL_MODE_ENABLE_PARTIAL_WRITE;
static const long pheromones_SSL_MODE_NO_AUTO_CHAIN = SSL_MODE_NO_AUTO_CHAIN;
static const uint64_t pheromones_SSL_OP_NO_RENEGOTIATION = SSL_OP_NO_RENEGOTIATION;
static const uint64_t pheromones_SSL_OP_NO_TICKET = SSL_OP_NO_TICKET;
static const uint64_t pheromones_SSL_OP_NO_COMPRESSION = SSL_OP_NO_COMPRESSION;
static const long pheromones_SSL_SESS_CACHE_CLIENT = SSL_SESS_CACHE_CLIENT;
static const long pheromones_SSL_SESS_CACHE_SERVER = SSL_SESS_CACHE_SERVER;
static const long pheromones_SSL_SESS_CACHE_OFF = SSL_SESS_CACHE_OFF;
static const int pheromones_SSL_TLSEXT_ERR_OK = SSL_TLSEXT_ERR_OK;
static const int pheromones_SSL_TLSEXT_ERR_NOACK = SSL_TLSEXT_ERR_NOACK;
static const int pheromones_SSL_TLSEXT_ERR_ALERT_FATAL = SSL_TLSEXT_ERR_ALERT_FATAL;
static const int pheromones_OPENSSL_NPN_NEGOTIATED = OPENSSL_NPN_NEGOTIATED;

#endif
