/* The opt-in metrics listener (--metrics URL): a tiny HTTP/1.x responder on its own
 * connection set that answers GET /metrics with Prometheus text, GET / with a pointer to it,
 * anything else with 404 or 405, one request per connection. */
#ifndef HS_METRICS_HTTP_H
#define HS_METRICS_HTTP_H

#include <stddef.h>

struct event_base;
struct hs_metrics;

/* Writes the Prometheus text (at most n bytes, NUL-terminated) into out and returns its
 * length. */
typedef size_t (*hs_metrics_cb)(char *out, size_t n, void *arg);

/* Listens on url (tcp://HOST:PORT or unix:/path); each GET /metrics calls cb(arg). Logs
 * "metrics URL" with the bound address. Returns 0 and *out, or a negative code (HS_EBADSPEC
 * for a URL that does not parse or is UDP, -EADDRINUSE, ...). */
int hs_metrics_new(struct event_base *base, const char *url, hs_metrics_cb cb, void *arg,
                   struct hs_metrics **out);

/* The bound address as a URL (owned by m). */
const char *hs_metrics_url(const struct hs_metrics *m);

/* Stops listening, aborts open metrics connections and frees m (NULL is fine). */
void hs_metrics_free(struct hs_metrics *m);

#endif
