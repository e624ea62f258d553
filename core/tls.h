/* TLS contexts on OpenSSL 3: a listener's certificates (several, chosen by SNI), a client's
 * verification settings, and what `hotsock check` says about a certificate. The bytes of a
 * connection go through core/conn_tls.c; this module knows nothing of connections. A context
 * is reference-counted: a reload builds a new one for new handshakes while every live
 * session keeps the one it started with. */
#ifndef HS_TLS_H
#define HS_TLS_H

#include <stddef.h>

struct hs_tls_ctx;
struct ssl_st;

#define HS_TLS_MAX_CERTS 16                       /* certificates on one listener */
#define HS_DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS 10000 /* accept to a finished handshake */
#define HS_DEFAULT_TLS_MAX_HANDSHAKES 1024        /* handshakes in progress per process */
#define HS_TLS_ERR 512                            /* bytes of an error text */

/* Builds a server context from the cert= and key= options of a tls:// listener URL (pairs in
 * order; the first pair is the default when the client sends no SNI name or one that no
 * certificate covers). alpn_http advertises ALPN "http/1.1". Every file is read and every
 * pair checked (the key must match its certificate) now, so a bad file fails here, never
 * in a handshake. Returns 0 and *out (one reference, the caller's), or -1 with err set to
 * "PATH: OpenSSL's reason". */
int hs_tls_server_new(const char *url, int alpn_http, struct hs_tls_ctx **out, char *err,
                      size_t errlen);

/* Builds a client context. verify != 0 checks the server's chain against ca (a PEM file of
 * trusted certificates) or, when ca is NULL, the system's store, and its name against the
 * name given to hs_tls_ssl_new. Returns 0 and *out (one reference), or -1 with err set. */
int hs_tls_client_new(int verify, const char *ca, struct hs_tls_ctx **out, char *err,
                      size_t errlen);

/* Adds a reference. Returns t. */
struct hs_tls_ctx *hs_tls_ctx_ref(struct hs_tls_ctx *t);

/* Drops a reference; the last frees the context. NULL is fine. */
void hs_tls_ctx_unref(struct hs_tls_ctx *t);

/* Whether t accepts handshakes (a listener's) rather than starting them. */
int hs_tls_ctx_is_server(const struct hs_tls_ctx *t);

/* A new session on the connected socket fd (not owned: the caller closes it), in accept
 * state for a server context, connect state for a client one. For a client, name (may be
 * NULL) is sent as SNI (unless it is an IP literal) and is the name or address the
 * certificate must match. Returns the session (free with SSL_free), or NULL when memory runs
 * out. */
struct ssl_st *hs_tls_ssl_new(struct hs_tls_ctx *t, int fd, const char *name);

/* OpenSSL's reason for the last failure of this thread (its error queue, then errno), as
 * one line into buf; the queue is cleared. Returns buf. */
char *hs_tls_last_error(char *buf, size_t n);

/* For `hotsock check`: loads every cert/key pair of a tls:// URL as hs_tls_server_new does
 * and writes one line per certificate into out ("  cert PATH: subject ...; SANs ...;
 * expires ..."). Returns 0, or -1 with the first error in out. */
int hs_tls_describe(const char *url, char *out, size_t n);

#endif
