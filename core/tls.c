#include "core/tls.h"
#include "core/addr.h"
#include "core/hs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* TLS 1.2 suites: ECDHE key exchange with an AEAD only (Mozilla's "intermediate" list
 * without the DHE ones). TLS 1.3's suites are all modern; OpenSSL's default order stands. */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct hs_tls_ctx {
    unsigned refs;
    int server;                     /* accepts handshakes */
    size_t n;                       /* contexts in ctx: one per certificate, 1 for a client */
    SSL_CTX *ctx[HS_TLS_MAX_CERTS]; /* ctx[0]: the default (no SNI, or no certificate matches) */
    X509 *leaf[HS_TLS_MAX_CERTS];   /* each one's certificate (borrowed from its SSL_CTX) */
};

char *hs_tls_last_error(char *buf, size_t n)
{
    /* The earliest error is the cause; later ones say which call it surfaced through. */
    unsigned long e = ERR_get_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    if (e && ERR_SYSTEM_ERROR(e))
        snprintf(buf, n, "%s", strerror(ERR_GET_REASON(e)));
    else if (reason)
        snprintf(buf, n, "%s", reason);
    else if (e)
        ERR_error_string_n(e, buf, n);
    else if (errno)
        snprintf(buf, n, "%s", strerror(errno));
    else
        snprintf(buf, n, "unknown error");
    ERR_clear_error();
    return buf;
}

static int tls_fail(char *err, size_t errlen, const char *what)
{
    char why[256];
    snprintf(err, errlen, "%s: %s", what, hs_tls_last_error(why, sizeof why));
    return -1;
}

/* The SNI callback (on ctx[0], which every session starts with): moves the session to the
 * first certificate that covers the name. An unknown name keeps the default certificate, as
 * nginx's default server does; the client's own check then decides. */
static int tls_sni_cb(SSL *ssl, int *alert, void *arg)
{
    const struct hs_tls_ctx *t = arg;
    HS_UNUSED(alert);
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL || t->n < 2)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < t->n; i++) {
        if (X509_check_host(t->leaf[i], name, 0, 0, NULL) == 1) {
            if (i > 0)
                SSL_set_SSL_CTX(ssl, t->ctx[i]);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

/* ALPN for HTTP scripts: http/1.1 when the client offers it (alongside h2, say); a client
 * that offers only others gets no ALPN answer and may go on or leave. */
static int tls_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char http11[] = "\x08http/1.1";
    HS_UNUSED(ssl);
    HS_UNUSED(arg);
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, http11, sizeof http11 - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* What every context of ours has: TLS 1.2 and 1.3 only, AEAD suites, no renegotiation, and
 * the modes our write path relies on (a partial write is a success; a retry may come from
 * a moved buffer, since the output evbuffer can be reorganised between tries). Buffers are
 * released while a session is idle: an idle TLS connection should cost little memory. */
static SSL_CTX *tls_ctx_base(const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (ctx == NULL)
        return NULL;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* One read(2) takes whatever the socket holds, not a record header and then its body. */
    SSL_CTX_set_read_ahead(ctx, 1);
    return ctx;
}

static struct hs_tls_ctx *tls_ctx_alloc(int server)
{
    struct hs_tls_ctx *t = calloc(1, sizeof *t);
    if (t) {
        t->refs = 1;
        t->server = server;
    }
    return t;
}

/* Collects the cert= and key= options of url, in order. Returns how many pairs, or -1 with
 * err set. */
static int tls_url_pairs(const char *url, char certs[][HS_ADDR_MAX_OPT],
                         char keys[][HS_ADDR_MAX_OPT], char *err, size_t errlen)
{
    const char *cur = hs_addr_query(url);
    char key[32], val[HS_ADDR_MAX_OPT];
    int nc = 0, nk = 0, r;
    while ((r = hs_addr_option_next(&cur, key, sizeof key, val, sizeof val)) == 1) {
        if (strcmp(key, "cert") == 0 || strcmp(key, "key") == 0) {
            int is_cert = key[0] == 'c';
            if ((is_cert ? nc : nk) >= HS_TLS_MAX_CERTS) {
                snprintf(err, errlen, "more than %d certificates on one listener",
                         HS_TLS_MAX_CERTS);
                return -1;
            }
            snprintf(is_cert ? certs[nc++] : keys[nk++], HS_ADDR_MAX_OPT, "%s", val);
        }
    }
    if (r != 0 || nc == 0 || nc != nk) {
        snprintf(err, errlen, "tls:// needs ?cert=PATH&key=PATH (one key per cert)");
        return -1;
    }
    return nc;
}

int hs_tls_server_new(const char *url, int alpn_http, struct hs_tls_ctx **out, char *err,
                      size_t errlen)
{
    static char certs[HS_TLS_MAX_CERTS][HS_ADDR_MAX_OPT], keys[HS_TLS_MAX_CERTS][HS_ADDR_MAX_OPT];
    int n = tls_url_pairs(url, certs, keys, err, errlen);
    if (n < 0)
        return -1;
    struct hs_tls_ctx *t = tls_ctx_alloc(1);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ERR_clear_error();
    for (int i = 0; i < n; i++) {
        SSL_CTX *ctx = tls_ctx_base(TLS_server_method());
        if (ctx == NULL) {
            tls_fail(err, errlen, "tls context");
            goto fail;
        }
        t->ctx[t->n++] = ctx;
        errno = 0;
        if (SSL_CTX_use_certificate_chain_file(ctx, certs[i]) != 1) {
            tls_fail(err, errlen, certs[i]);
            goto fail;
        }
        errno = 0;
        if (SSL_CTX_use_PrivateKey_file(ctx, keys[i], SSL_FILETYPE_PEM) != 1) {
            char why[256];
            hs_tls_last_error(why, sizeof why);
            if (strstr(why, "mismatch"))
                snprintf(err, errlen, "%s: key does not match the certificate %s (%s)", keys[i],
                         certs[i], why);
            else
                snprintf(err, errlen, "%s: %s", keys[i], why);
            goto fail;
        }
        /* A key of another type (RSA for an EC certificate) is taken by the call above,
         * which drops the certificate instead: say so plainly. */
        if (SSL_CTX_get0_certificate(ctx) == NULL || SSL_CTX_check_private_key(ctx) != 1) {
            ERR_clear_error();
            snprintf(err, errlen, "%s: key does not match the certificate %s (key type mismatch)",
                     keys[i], certs[i]);
            goto fail;
        }
        t->leaf[i] = SSL_CTX_get0_certificate(ctx);
        /* Tickets carry resumption (stateless); no server-side session cache to grow. */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        if (alpn_http)
            SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_cb, NULL);
    }
    SSL_CTX_set_tlsext_servername_callback(t->ctx[0], tls_sni_cb);
    SSL_CTX_set_tlsext_servername_arg(t->ctx[0], t);
    *out = t;
    return 0;
fail:
    hs_tls_ctx_unref(t);
    return -1;
}

int hs_tls_client_new(int verify, const char *ca, struct hs_tls_ctx **out, char *err, size_t errlen)
{
    struct hs_tls_ctx *t = tls_ctx_alloc(0);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ERR_clear_error();
    SSL_CTX *ctx = tls_ctx_base(TLS_client_method());
    if (ctx == NULL) {
        hs_tls_ctx_unref(t);
        return tls_fail(err, errlen, "tls context");
    }
    t->ctx[t->n++] = ctx;
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        errno = 0;
        int ok = ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL)
                    : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            hs_tls_ctx_unref(t);
            return tls_fail(err, errlen, ca ? ca : "system certificate store");
        }
    }
    *out = t;
    return 0;
}

struct hs_tls_ctx *hs_tls_ctx_ref(struct hs_tls_ctx *t)
{
    t->refs++;
    return t;
}

void hs_tls_ctx_unref(struct hs_tls_ctx *t)
{
    if (t == NULL || --t->refs > 0)
        return;
    /* Sessions hold their own references to the SSL_CTX they use: freeing ours is safe. */
    for (size_t i = 0; i < t->n; i++)
        SSL_CTX_free(t->ctx[i]);
    free(t);
}

int hs_tls_ctx_is_server(const struct hs_tls_ctx *t)
{
    return t->server;
}

struct ssl_st *hs_tls_ssl_new(struct hs_tls_ctx *t, int fd, const char *name)
{
    SSL *ssl = SSL_new(t->ctx[0]);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    if (t->server) {
        SSL_set_accept_state(ssl);
        return ssl;
    }
    SSL_set_connect_state(ssl);
    if (name && *name) {
        unsigned char tmp[16];
        int is_ip = inet_pton(AF_INET, name, tmp) == 1 || inet_pton(AF_INET6, name, tmp) == 1;
        int ok = 1;
        /* RFC 6066: no IP literals in SNI; the certificate is checked against the address. */
        if (!is_ip)
            ok = SSL_set_tlsext_host_name(ssl, name) == 1 && SSL_set1_host(ssl, name) == 1;
        else
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
        if (!ok) {
            SSL_free(ssl);
            return NULL;
        }
    }
    return ssl;
}

/* Appends the subjectAltName entries of x (DNS names and IP addresses) to out. */
static void tls_describe_sans(X509 *x, char *out, size_t n)
{
    size_t used = strlen(out);
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int count = sans ? sk_GENERAL_NAME_num(sans) : 0;
    for (int i = 0; i < count && used + 1 < n; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        char ip[64] = "";
        const char *text = NULL;
        if (g->type == GEN_DNS) {
            text = (const char *)ASN1_STRING_get0_data(g->d.dNSName);
        } else if (g->type == GEN_IPADD) {
            int len = ASN1_STRING_length(g->d.iPAddress);
            const unsigned char *p = ASN1_STRING_get0_data(g->d.iPAddress);
            if (len == 4 || len == 16)
                inet_ntop(len == 4 ? AF_INET : AF_INET6, p, ip, sizeof ip);
            text = ip;
        }
        if (text && *text) {
            int w = snprintf(out + used, n - used, "%s%s", i ? ", " : "", text);
            used = w > 0 && used + (size_t)w < n ? used + (size_t)w : n - 1;
        }
    }
    if (count == 0)
        snprintf(out + used, n - used, "none");
    GENERAL_NAMES_free(sans);
}

int hs_tls_describe(const char *url, char *out, size_t n)
{
    struct hs_tls_ctx *t;
    if (hs_tls_server_new(url, 0, &t, out, n) != 0)
        return -1;
    static char certs[HS_TLS_MAX_CERTS][HS_ADDR_MAX_OPT], keys[HS_TLS_MAX_CERTS][HS_ADDR_MAX_OPT];
    int pairs = tls_url_pairs(url, certs, keys, out, n);
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < pairs && (size_t)i < t->n; i++) {
        X509 *x = t->leaf[i];
        char subject[256] = "", sans[512] = "", expires[64] = "?";
        X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof subject);
        tls_describe_sans(x, sans, sizeof sans);
        struct tm tm;
        const ASN1_TIME *na = X509_get0_notAfter(x);
        int days = 0, secs = 0;
        if (ASN1_TIME_to_tm(na, &tm) == 1)
            strftime(expires, sizeof expires, "%Y-%m-%d %H:%M:%S UTC", &tm);
        ASN1_TIME_diff(&days, &secs, NULL, na);
        int w = snprintf(out + used, n - used,
                         "  cert %s: subject %s; SANs %s; expires %s (%s%d days%s)\n", certs[i],
                         subject, sans, expires,
                         days < 0 || (days == 0 && secs < 0) ? "EXPIRED, " : "in ",
                         days < 0 ? -days : days, days < 0 ? " ago" : "");
        used = w > 0 && used + (size_t)w < n ? used + (size_t)w : n - 1;
    }
    hs_tls_ctx_unref(t);
    return 0;
}
