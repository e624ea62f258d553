/* Serving files over HTTP: HTTP dates, entity tags, byte ranges, the conditional-request
 * rules of RFC 9110 for GET and HEAD, and opening a file so that nothing outside a document
 * root is ever served. Plain C, no sockets, no Lua; everything but hs_http_file_open is pure
 * code over the caller's bytes. Used by core/lua_http.c (res:send_file). */
#ifndef HS_HTTP_FILE_H
#define HS_HTTP_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A regular file opened for serving, with its validators. */
struct hs_http_file {
    int fd;                 /* read-only, close-on-exec; the caller closes it (or hands it on) */
    uint64_t size;          /* bytes */
    time_t mtime;           /* modification time, seconds */
    char etag[72];          /* strong entity-tag, quotes included: "size-mtime-nsec" in hex */
    char last_modified[30]; /* mtime as an IMF-fixdate */
    /* Identity and change marks, to tell whether a path still names the same, unchanged file
     * (core/file_cache.c). */
    uint64_t dev;     /* device */
    uint64_t ino;     /* inode */
    int64_t mtime_ns; /* modification time, nanoseconds since the epoch */
    int64_t ctime_ns; /* status change time (any write, rename, chmod), nanoseconds */
};

/* The request fields that conditionals and ranges depend on: views into the caller's
 * memory, NULL when the field is absent. */
struct hs_http_file_cond {
    const char *if_none_match;
    size_t if_none_match_len;
    const char *if_modified_since;
    size_t if_modified_since_len;
    const char *range;
    size_t range_len;
    const char *if_range;
    size_t if_range_len;
};

/* Opens path (NUL-terminated) for serving. It must be a regular file; when root is not NULL,
 * path with every symbolic link resolved must lie inside root with its links resolved, and the
 * opened file must be the one found there. Returns 0 and fills *f; -ENOENT when there is no
 * such file (or a component is not a directory); -EISDIR for a directory; -EACCES when it is
 * not readable, not a regular file, or outside root; another negated errno otherwise. */
int hs_http_file_open(const char *path, const char *root, struct hs_http_file *f);

/* Decides how to answer a GET or HEAD of f given the request's conditionals: returns 304 (not
 * modified), 416 (unsatisfiable range), 206 with the inclusive byte range in *first and *last,
 * or 200 (the whole file; *first = 0 and *last = size - 1, or 0 when empty). If-None-Match
 * wins over If-Modified-Since; If-Range guards Range. */
int hs_http_file_evaluate(const struct hs_http_file *f, const struct hs_http_file_cond *cond,
                          uint64_t *first, uint64_t *last);

/* Writes t as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", 29 bytes and a NUL) into out
 * (at least 30 bytes). Returns 29. */
int hs_http_date_format(time_t t, char *out);

/* Parses an HTTP-date in any of its three forms (IMF-fixdate, RFC 850, asctime) from
 * s[0..len). Returns 0 and *t, or HS_EPROTO. */
int hs_http_date_parse(const char *s, size_t len, time_t *t);

/* Evaluates a Range field value s[0..len) against a body of size bytes. Returns 1 and the
 * inclusive range in *first, *last for one satisfiable byte range; 0 when the field must be
 * ignored (not bytes, several ranges, malformed); HS_ETOOBIG when it is unsatisfiable (416). */
int hs_http_range_parse(const char *s, size_t len, uint64_t size, uint64_t *first, uint64_t *last);

/* 1 when the entity-tag list s[0..len) (If-None-Match, If-Range) contains "*" or a tag equal
 * to etag (quotes included). The comparison is weak (a W/ prefix is ignored) unless strong is
 * set, when weak tags never match. */
int hs_http_etag_match(const char *s, size_t len, const char *etag, int strong);

#endif
