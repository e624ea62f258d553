/* TLS on a real event_base: a listener of ours with a certificate made here (OpenSSL's API,
 * into a temporary directory; no key is committed), and a client connection of ours that
 * upgrades with hs_conn_tls_start, so both ends of the handshake are the core's own code.
 * The loop is pumped until a condition holds, bounded in time (no sleeps). Teardown checks
 * that every connection closed and no descriptor leaked; the Asan build checks memory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/addr.h"
#include "core/conn.h"
#include "core/framing.h"
#include "core/hs.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/tls.h"
#include "tests/unit/test_clock_fds.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define PUMP_MAX_MS 10000

static char dir[64];
static char cert_a[128], key_a[128], cert_b[128], key_b[128];

/* A self-signed P-256 certificate for cn with subjectAltName san, written as PEM. */
static void make_cert(const char *cn, const char *san, const char *cert_path, const char *key_path)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(pk);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pk);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
    FILE *f = fopen(cert_path, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_path, "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pk);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/hs_test_tls.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(cert_a, sizeof cert_a, "%s/a.pem", dir);
    snprintf(key_a, sizeof key_a, "%s/a.key", dir);
    snprintf(cert_b, sizeof cert_b, "%s/b.pem", dir);
    snprintf(key_b, sizeof key_b, "%s/b.key", dir);
    make_cert("localhost", "DNS:localhost,IP:127.0.0.1", cert_a, key_a);
    make_cert("other.test", "DNS:other.test", cert_b, key_b);
    hs_log_set_level(getenv("HS_TEST_DEBUG") ? HS_LOG_DEBUG : HS_LOG_ERROR);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    const char *files[] = {cert_a, key_a, cert_b, key_b};
    for (size_t i = 0; i < 4; i++)
        unlink(files[i]);
    rmdir(dir);
    return 0;
}

/* ---- the fixture: one loop, one set, a TLS line-echo listener ---- */

struct fx {
    struct event_base *base;
    struct hs_conns *set;
    struct hs_listener *l;
    struct hs_tls_ctx *server;
    int port;
    int fds_before;
    /* What the callbacks saw. */
    int server_opened, server_closed;
    int client_opened, client_closed;
    int tls_done;
    char tls_err[512];
    char echoed[256];
    char server_version[32], server_sni[64];
    char server_reason[64];
    struct hs_conn *client;
    /* Set by a test: what the server sends for a line instead of echoing it. */
    void (*reply)(struct hs_conn *c);
    struct evbuffer *got; /* what a raw client received */
};

static struct fx *F;

static void srv_open(struct hs_conn *c, void *arg)
{
    (void)arg;
    F->server_opened++;
    struct hs_conn_tls_info ti;
    if (hs_conn_tls_info(c, &ti) == 0) {
        snprintf(F->server_version, sizeof F->server_version, "%s", ti.version);
        snprintf(F->server_sni, sizeof F->server_sni, "%s", ti.sni ? ti.sni : "");
    }
}

static void srv_frame(struct hs_conn *c, struct evbuffer *in, const struct hs_frame *f, void *arg)
{
    (void)arg;
    if (F->reply) {
        F->reply(c);
        return;
    }
    char buf[256];
    size_t n = f->len < sizeof buf - 1 ? (size_t)f->len : sizeof buf - 1;
    struct evbuffer_ptr pos;
    evbuffer_ptr_set(in, &pos, f->skip, EVBUFFER_PTR_SET);
    evbuffer_copyout_from(in, &pos, buf, n);
    hs_conn_send(c, buf, n);
    hs_conn_send(c, "\n", 1);
}

static void srv_close(struct hs_conn *c, const char *reason, void *arg)
{
    (void)c;
    (void)arg;
    F->server_closed++;
    snprintf(F->server_reason, sizeof F->server_reason, "%s", reason ? reason : "");
}

static const struct hs_conn_handler srv_handler = {
    .on_open = srv_open, .on_frame = srv_frame, .on_close = srv_close};

static void cli_frame(struct hs_conn *c, struct evbuffer *in, const struct hs_frame *f, void *arg)
{
    (void)arg;
    size_t n = f->len < sizeof F->echoed - 1 ? (size_t)f->len : sizeof F->echoed - 1;
    struct evbuffer_ptr pos;
    evbuffer_ptr_set(in, &pos, f->skip, EVBUFFER_PTR_SET);
    evbuffer_copyout_from(in, &pos, F->echoed, n);
    F->echoed[n] = '\0';
    hs_conn_close(c, "done");
}

static void cli_open(struct hs_conn *c, void *arg)
{
    (void)arg;
    F->client_opened++;
    F->client = c;
}

static void cli_close(struct hs_conn *c, const char *reason, void *arg)
{
    (void)c;
    (void)reason;
    (void)arg;
    F->client_closed++;
    F->client = NULL;
}

static const struct hs_conn_handler cli_handler = {
    .on_open = cli_open, .on_frame = cli_frame, .on_close = cli_close};

/* A raw client keeps all it receives in F->got. */
static void cli_raw_frame(struct hs_conn *c, struct evbuffer *in, const struct hs_frame *f,
                          void *arg)
{
    (void)c;
    (void)arg;
    struct evbuffer_ptr pos;
    evbuffer_ptr_set(in, &pos, f->skip, EVBUFFER_PTR_SET);
    char buf[16384];
    size_t left = (size_t)f->len;
    while (left > 0) {
        size_t n = left < sizeof buf ? left : sizeof buf;
        assert_int_equal(evbuffer_copyout_from(in, &pos, buf, n), (ev_ssize_t)n);
        evbuffer_ptr_set(in, &pos, n, EVBUFFER_PTR_ADD);
        evbuffer_add(F->got, buf, n);
        left -= n;
    }
}

static const struct hs_conn_handler cli_raw_handler = {
    .on_open = cli_open, .on_frame = cli_raw_frame, .on_close = cli_close};

static void cli_tls_done(struct hs_conn *c, const char *err, void *arg)
{
    (void)arg;
    F->tls_done++;
    snprintf(F->tls_err, sizeof F->tls_err, "%s", err ? err : "");
    if (err == NULL)
        hs_conn_send(c, "hello over tls\n", 15);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    F = fx;
    fx->fds_before = count_fds();
    fx->base = event_base_new();
    struct hs_conn_limits lim;
    hs_conn_limits_default(&lim);
    lim.tls_handshake_timeout_ms = 1500; /* valgrind makes a handshake slow */
    fx->set = hs_conns_new(fx->base, &lim);
    char url[1024], err[512];
    snprintf(url, sizeof url, "tls://127.0.0.1:0?cert=%s&key=%s&cert=%s&key=%s", cert_a, key_a,
             cert_b, key_b);
    if (hs_tls_server_new(url, 0, &fx->server, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    struct hs_addr a;
    assert_int_equal(hs_addr_parse(url, &a, NULL), 0);
    assert_int_equal(a.scheme, HS_ADDR_TLS);
    struct hs_framing fr;
    hs_framing_init(&fr, HS_FRAMING_LINE);
    assert_int_equal(
        hs_listener_new(fx->base, fx->set, &a, "t", &fr, &srv_handler, NULL, NULL, &fx->l), 0);
    hs_listener_set_tls(fx->l, fx->server);
    fx->port = hs_listener_port(fx->l);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    hs_listener_free(fx->l);
    hs_conns_free(fx->set);
    hs_tls_ctx_unref(fx->server);
    event_base_free(fx->base);
    if (fx->got)
        evbuffer_free(fx->got);
    assert_int_equal(fx->server_opened, fx->server_closed);
    assert_int_equal(fx->client_opened, fx->client_closed);
    assert_int_equal(count_fds(), fx->fds_before);
    free(fx);
    return 0;
}

/* Pumps the loop until *flag is nonzero; fails the test after PUMP_MAX_MS. */
static void pump_until(struct fx *fx, const int *flag)
{
    long long end = now_ms() + PUMP_MAX_MS;
    while (!*flag && now_ms() < end)
        event_base_loop(fx->base, EVLOOP_ONCE);
    assert_true(*flag);
}

/* Pumps the loop until the listener has counted n failed handshakes. */
static void pump_failures(struct fx *fx, unsigned long long n)
{
    const struct hs_conn_tally *t = hs_listener_tally(fx->l);
    long long end = now_ms() + PUMP_MAX_MS;
    while (t->tls_failures < n && now_ms() < end)
        event_base_loop(fx->base, EVLOOP_ONCE);
    assert_int_equal(t->tls_failures, n);
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(fd, (struct sockaddr *)&sin, sizeof sin);
    assert_true(r == 0 || errno == EINPROGRESS);
    return fd;
}

/* Opens a client conn to the listener and starts TLS on it with ctx and name. */
static void client_start(struct fx *fx, struct hs_tls_ctx *ctx, const char *name)
{
    struct hs_framing fr;
    hs_framing_init(&fr, HS_FRAMING_LINE);
    assert_int_equal(
        hs_conn_new(fx->set, tcp_connect(fx->port), "server", &fr, &cli_handler, NULL, NULL), 0);
    assert_non_null(fx->client);
    assert_int_equal(hs_conn_tls_start(fx->client, ctx, name, cli_tls_done, NULL), 0);
    assert_int_equal(hs_conn_tls_start(fx->client, ctx, name, cli_tls_done, NULL), -EBUSY);
}

static void test_client_handshake_verified(void **state)
{
    struct fx *fx = *state;
    struct hs_tls_ctx *cli;
    char err[512];
    assert_int_equal(hs_tls_client_new(1, cert_a, &cli, err, sizeof err), 0);
    client_start(fx, cli, "localhost");
    hs_tls_ctx_unref(cli); /* the connection holds its own reference */
    pump_until(fx, &fx->client_closed);
    assert_int_equal(fx->tls_done, 1);
    assert_string_equal(fx->tls_err, "");
    assert_string_equal(fx->echoed, "hello over tls");
    assert_string_equal(fx->server_version, "TLSv1.3");
    assert_string_equal(fx->server_sni, "localhost");
    pump_until(fx, &fx->server_closed);
    assert_int_equal(hs_listener_tally(fx->l)->tls_failures, 0);
}

/* SNI picks the second certificate: a client trusting only it, asking for its name, passes. */
static void test_sni_picks_certificate(void **state)
{
    struct fx *fx = *state;
    struct hs_tls_ctx *cli;
    char err[512];
    assert_int_equal(hs_tls_client_new(1, cert_b, &cli, err, sizeof err), 0);
    client_start(fx, cli, "other.test");
    hs_tls_ctx_unref(cli);
    pump_until(fx, &fx->client_closed);
    assert_string_equal(fx->tls_err, "");
    assert_string_equal(fx->echoed, "hello over tls");
    assert_string_equal(fx->server_sni, "other.test");
}

static void test_verify_fails_untrusted(void **state)
{
    struct fx *fx = *state;
    struct hs_tls_ctx *cli;
    char err[512];
    /* The system store does not know our self-signed certificate. */
    assert_int_equal(hs_tls_client_new(1, NULL, &cli, err, sizeof err), 0);
    client_start(fx, cli, "localhost");
    hs_tls_ctx_unref(cli);
    pump_until(fx, &fx->client_closed);
    assert_int_equal(fx->tls_done, 1);
    assert_string_equal(fx->tls_err, "certificate verify failed: self-signed certificate");
    pump_failures(fx, 1);
    /* The server never opened it: a failed handshake costs the handler nothing. */
    assert_int_equal(fx->server_opened, 0);
    assert_int_equal(hs_listener_tally(fx->l)->open, 0);
}

static void test_verify_fails_wrong_name(void **state)
{
    struct fx *fx = *state;
    struct hs_tls_ctx *cli;
    char err[512];
    assert_int_equal(hs_tls_client_new(1, cert_a, &cli, err, sizeof err), 0);
    client_start(fx, cli, "wrong.example");
    hs_tls_ctx_unref(cli);
    pump_until(fx, &fx->client_closed);
    assert_string_equal(fx->tls_err, "certificate verify failed: hostname mismatch");
}

static void test_no_verify_accepts_anything(void **state)
{
    struct fx *fx = *state;
    struct hs_tls_ctx *cli;
    char err[512];
    assert_int_equal(hs_tls_client_new(0, NULL, &cli, err, sizeof err), 0);
    client_start(fx, cli, "wrong.example");
    hs_tls_ctx_unref(cli);
    pump_until(fx, &fx->client_closed);
    assert_string_equal(fx->tls_err, "");
    assert_string_equal(fx->echoed, "hello over tls");
}

/* A client that connects and says nothing: the handshake timeout closes it, counted. */
static void test_handshake_timeout(void **state)
{
    struct fx *fx = *state;
    int fd = tcp_connect(fx->port);
    fcntl(fd, F_SETFL, 0); /* blocking: the read below waits for the server's close */
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const struct hs_conn_tally *t = hs_listener_tally(fx->l);
    long long t0 = now_ms();
    while (t->tls_failures == 0 && now_ms() - t0 < PUMP_MAX_MS)
        event_base_loop(fx->base, EVLOOP_ONCE);
    assert_int_equal(t->tls_failures, 1);
    assert_true(now_ms() - t0 >= 1400);
    char b;
    assert_int_equal(read(fd, &b, 1), 0); /* closed by the server */
    close(fd);
    assert_int_equal(fx->server_opened, 0);
}

/* Plaintext on a TLS port: a failed handshake, counted, nothing opened. */
static void test_plaintext_client(void **state)
{
    struct fx *fx = *state;
    int fd = tcp_connect(fx->port);
    const struct hs_conn_tally *t = hs_listener_tally(fx->l);
    long long t0 = now_ms();
    while (write(fd, "GET / HTTP/1.0\r\n\r\n", 18) < 0 && now_ms() - t0 < PUMP_MAX_MS)
        event_base_loop(fx->base, EVLOOP_NONBLOCK);
    while (t->tls_failures == 0 && now_ms() - t0 < PUMP_MAX_MS)
        event_base_loop(fx->base, EVLOOP_ONCE);
    assert_int_equal(t->tls_failures, 1);
    assert_int_equal(t->open, 0);
    close(fd);
}

/* A reload swaps the listener's context: new handshakes get the new certificates while the
 * context the first session started with stays alive for it. */
static void test_swap_context(void **state)
{
    struct fx *fx = *state;
    struct hs_tls_ctx *only_b, *cli;
    char url[1024], err[512];
    snprintf(url, sizeof url, "tls://127.0.0.1:0?cert=%s&key=%s", cert_b, key_b);
    assert_int_equal(hs_tls_server_new(url, 0, &only_b, err, sizeof err), 0);
    hs_listener_set_tls(fx->l, only_b);
    hs_tls_ctx_unref(only_b);
    /* Now "localhost" gets other.test's certificate: a client trusting only a's fails. */
    assert_int_equal(hs_tls_client_new(1, cert_a, &cli, err, sizeof err), 0);
    client_start(fx, cli, "localhost");
    hs_tls_ctx_unref(cli);
    pump_until(fx, &fx->client_closed);
    assert_string_equal(fx->tls_err, "certificate verify failed: self-signed certificate");
}

/* ---- files over TLS (hs_conn_send_file): read in pieces, never mapped ---- */

#define FILE_SIZE (1024 * 1024)

static int file_fd = -1;
static struct evbuffer_file_segment *file_seg;

static unsigned char pattern_byte(size_t i)
{
    return (unsigned char)(i * 7 + i / 251);
}

/* A file in dir: size bytes of pattern_byte, or (sparse) zeros; open for reading, with a
 * segment over all of it that closes the descriptor when freed. */
static void file_open(const char *name, size_t size, int sparse)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    if (sparse) {
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
    } else {
        unsigned char *b = malloc(size);
        for (size_t i = 0; i < size; i++)
            b[i] = pattern_byte(i);
        assert_int_equal(write(fd, b, size), (ssize_t)size);
        free(b);
    }
    unlink(path);
    file_fd = fd;
    file_seg = evbuffer_file_segment_new(fd, 0, (ev_off_t)size, EVBUF_FS_CLOSE_ON_FREE);
    assert_non_null(file_seg);
}

/* The server's answer to a line: a head, the whole file, bytes between, a range of the file
 * again, a tail. What follows a file must come after it. */
static void reply_file_twice(struct hs_conn *c)
{
    assert_int_equal(hs_conn_send(c, "head\n", 5), 0);
    assert_int_equal(hs_conn_send_file(c, file_seg, file_fd, 0, FILE_SIZE), 0);
    assert_int_equal(hs_conn_send(c, "mid\n", 4), 0);
    assert_int_equal(hs_conn_send_file(c, file_seg, file_fd, 1000, 5000), 0);
    assert_int_equal(hs_conn_send(c, "tail\n", 5), 0);
}

static void reply_file(struct hs_conn *c)
{
    assert_int_equal(hs_conn_send_file(c, file_seg, file_fd, 0, 64 * FILE_SIZE), 0);
}

/* Opens a raw client and starts TLS on it; the server's reply comes to F->got. */
static void raw_client_start(struct fx *fx)
{
    struct hs_tls_ctx *cli;
    char err[512];
    assert_int_equal(hs_tls_client_new(0, NULL, &cli, err, sizeof err), 0);
    struct hs_framing fr;
    hs_framing_init(&fr, HS_FRAMING_RAW);
    fx->got = evbuffer_new();
    assert_int_equal(
        hs_conn_new(fx->set, tcp_connect(fx->port), "server", &fr, &cli_raw_handler, NULL, NULL),
        0);
    assert_int_equal(hs_conn_tls_start(fx->client, cli, "localhost", cli_tls_done, NULL), 0);
    hs_tls_ctx_unref(cli);
}

/* Pumps the loop until the raw client holds at least n bytes. */
static void pump_got(struct fx *fx, size_t n)
{
    long long end = now_ms() + PUMP_MAX_MS;
    while (evbuffer_get_length(fx->got) < n && now_ms() < end)
        event_base_loop(fx->base, EVLOOP_ONCE);
    assert_true(evbuffer_get_length(fx->got) >= n);
}

static void test_files_in_order(void **state)
{
    struct fx *fx = *state;
    file_open("pattern.bin", FILE_SIZE, 0);
    fx->reply = reply_file_twice;
    raw_client_start(fx);
    size_t want = 5 + FILE_SIZE + 4 + 5000 + 5;
    pump_got(fx, want);
    assert_int_equal(evbuffer_get_length(fx->got), want);
    const unsigned char *p = evbuffer_pullup(fx->got, -1);
    assert_memory_equal(p, "head\n", 5);
    for (size_t i = 0; i < FILE_SIZE; i++)
        if (p[5 + i] != pattern_byte(i))
            fail_msg("file byte %zu", i);
    p += 5 + FILE_SIZE;
    assert_memory_equal(p, "mid\n", 4);
    for (size_t i = 0; i < 5000; i++)
        if (p[4 + i] != pattern_byte(1000 + i))
            fail_msg("range byte %zu", i);
    assert_memory_equal(p + 4 + 5000, "tail\n", 5);
    evbuffer_file_segment_free(file_seg); /* the output let go of it: this closes the file */
    assert_int_equal(fcntl(file_fd, F_GETFD), -1);
    hs_conn_close(fx->client, "done");
    pump_until(fx, &fx->server_closed);
    pump_until(fx, &fx->client_closed);
}

/* Truncated in place while it is being sent: that connection ends, the process lives (a
 * mapped file would raise SIGBUS here and kill the test). */
static void test_file_truncated_under_response(void **state)
{
    struct fx *fx = *state;
    file_open("sparse.bin", 64 * FILE_SIZE, 1);
    fx->reply = reply_file;
    raw_client_start(fx);
    pump_got(fx, FILE_SIZE);
    assert_int_equal(ftruncate(file_fd, 0), 0);
    evbuffer_file_segment_free(file_seg);
    pump_until(fx, &fx->server_closed);
    assert_string_equal(fx->server_reason, "file shrank");
    pump_until(fx, &fx->client_closed);
    assert_true(evbuffer_get_length(fx->got) < 64 * FILE_SIZE);
}

static void test_bad_pairs(void **state)
{
    (void)state;
    struct hs_tls_ctx *t = NULL;
    char url[1024], err[512];
    snprintf(url, sizeof url, "tls://127.0.0.1:0?cert=%s&key=%s", cert_a, key_b);
    assert_int_equal(hs_tls_server_new(url, 0, &t, err, sizeof err), -1);
    char want[512];
    snprintf(want, sizeof want, "%s: key does not match the certificate %s (key values mismatch)",
             key_b, cert_a);
    assert_string_equal(err, want);
    snprintf(url, sizeof url, "tls://127.0.0.1:0?cert=%s/none.pem&key=%s", dir, key_a);
    assert_int_equal(hs_tls_server_new(url, 0, &t, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s/none.pem: No such file or directory", dir);
    assert_string_equal(err, want);
    /* A key file where the certificate should be. */
    snprintf(url, sizeof url, "tls://127.0.0.1:0?cert=%s&key=%s", key_a, key_a);
    assert_int_equal(hs_tls_server_new(url, 0, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, key_a));
    char info[2048];
    snprintf(url, sizeof url, "tls://127.0.0.1:0?cert=%s&key=%s", cert_a, key_a);
    assert_int_equal(hs_tls_describe(url, info, sizeof info), 0);
    assert_non_null(strstr(info, "subject /CN=localhost; SANs localhost, 127.0.0.1; expires "));
    assert_non_null(strstr(info, "(in 0 days)"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_handshake_verified, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sni_picks_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_fails_untrusted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_fails_wrong_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_verify_accepts_anything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plaintext_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swap_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_files_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_truncated_under_response, setup, teardown),
        cmocka_unit_test(test_bad_pairs),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
