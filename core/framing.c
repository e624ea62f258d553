/* Framers over an evbuffer. Nothing here allocates or pulls data up: a length header is copied
 * out (at most 8 bytes) and a line delimiter is searched for in place, starting where the
 * previous call stopped, so a line arriving a byte at a time costs O(n) in total. */
#include "core/framing.h"
#include "core/errtok.h"
#include "core/hs.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[] = {"raw", "line", "length", "fixed"};

/* Delimiter escapes: esc_name[i] after a backslash stands for esc_byte[i] (5 bytes each). */
static const char esc_name[] = "nrt0\\", esc_byte[] = "\n\r\t\0\\";

static uint64_t default_max(enum hs_framing_kind kind)
{
    return kind == HS_FRAMING_RAW      ? HS_DEFAULT_MAX_RAW_CHUNK
           : kind == HS_FRAMING_LINE   ? HS_DEFAULT_MAX_LINE
           : kind == HS_FRAMING_LENGTH ? HS_DEFAULT_MAX_FRAME
                                       : 0;
}

void hs_framing_init(struct hs_framing *out, enum hs_framing_kind kind)
{
    memset(out, 0, sizeof(*out));
    out->kind = kind;
    /* 0: the default, which a connection set may change (--max-line, --max-frame); only a
     * max written in the spec is fixed. */
    out->max = 0;
    if (kind == HS_FRAMING_LINE) {
        out->delim[0] = '\n';
        out->delim_len = 1;
        out->strip_cr = 1;
    } else if (kind == HS_FRAMING_LENGTH) {
        out->hdr_size = 4;
        out->big_endian = 1;
    } else if (kind == HS_FRAMING_FIXED) {
        out->fixed = 1;
    }
}

uint64_t hs_framing_max(const struct hs_framing *f)
{
    if (f->kind == HS_FRAMING_FIXED)
        return f->fixed;
    return f->max != 0 ? f->max : default_max(f->kind);
}

/* Strip CR only where the header promises it: a lone "\n" delimiter. */
static int strips_cr(const struct hs_framing *f)
{
    return f->strip_cr && f->delim_len == 1 && f->delim[0] == '\n';
}

static int valid_hdr_size(unsigned n)
{
    return n == 1 || n == 2 || n == 4 || n == 8;
}

/* ---- Spec parsing. Every read stops at the NUL: a byte is looked at only once the byte
 * before it is known not to be the NUL (p[2] after p[1] matched a digit, and so on). */

static int fail(const char **why, const char *reason)
{
    *why = reason;
    return -1;
}

static int is_end(char c)
{
    return c == ':' || c == '\0';
}

/* Reads a size (decimal digits, optional k/m/g suffix, powers of 1024) up to ':' or NUL. */
static int parse_size(const char **pp, uint64_t *out, const char **why)
{
    static const char units[] = "kKmMgG";
    const char *p = *pp, *u;
    uint64_t v = 0;
    unsigned shift = 0;

    if (*p < '0' || *p > '9')
        return fail(why, "bad size");
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return fail(why, "size too large");
        v = v * 10 + d;
    }
    if ((u = memchr(units, *p, 6)) != NULL) /* never matches the NUL: it is not among the 6 */
        shift = 10 * (unsigned)((u - units) / 2 + 1);
    if (shift != 0 && v > (UINT64_MAX >> shift))
        return fail(why, "size too large");
    p += shift != 0;
    if (!is_end(*p))
        return fail(why, "bad size");
    *pp = p;
    *out = v << shift;
    return 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads an escaped delimiter up to ':' or NUL (a literal ':' must be written \x3a). */
static int parse_delim(const char **pp, struct hs_framing *f, const char **why)
{
    const char *p = *pp, *e;
    size_t n = 0;
    int hi, lo;

    while (!is_end(*p)) {
        char c = *p++;
        if (c != '\\') {
            /* a literal byte */
        } else if ((e = memchr(esc_name, *p, 5)) != NULL) {
            c = esc_byte[e - esc_name];
            p++;
        } else if (*p == 'x' && (hi = hex_value(p[1])) >= 0 && (lo = hex_value(p[2])) >= 0) {
            c = (char)(hi * 16 + lo);
            p += 3;
        } else {
            return fail(why, "bad escape in delimiter (want \\n \\r \\t \\0 \\\\ or \\xHH)");
        }
        if (n == HS_FRAMING_MAX_DELIM)
            return fail(why, "delimiter longer than 8 bytes");
        f->delim[n++] = c;
    }
    if (n == 0)
        return fail(why, "empty delimiter");
    f->delim_len = n;
    *pp = p;
    return 0;
}

/* Reads <i|u><8|16|32|64>[le|be] up to ':' or NUL. */
static int parse_header_type(const char **pp, struct hs_framing *f, const char **why)
{
    static const char *const sizes[] = {"8", "16", "32", "64"};
    const char *p = *pp;
    size_t i;

    if (*p != 'i' && *p != 'u')
        return fail(why, "bad length header (want i|u, 8|16|32|64, le|be, e.g. u32be)");
    f->is_signed = *p++ == 'i';
    for (i = 0; i < 4 && strncmp(p, sizes[i], strlen(sizes[i])) != 0; i++)
        ;
    if (i == 4)
        return fail(why, "bad length header (want i|u, 8|16|32|64, le|be, e.g. u32be)");
    f->hdr_size = 1u << i;
    p += strlen(sizes[i]);
    if (strncmp(p, "le", 2) == 0 || strncmp(p, "be", 2) == 0) {
        f->big_endian = *p == 'b';
        p += 2;
    }
    if (!is_end(*p))
        return fail(why, "bad length header (want i|u, 8|16|32|64, le|be, e.g. u32be)");
    f->big_endian |= f->hdr_size == 1; /* one byte has no order; keep the struct canonical */
    *pp = p;
    return 0;
}

/* Reads the ":opt" list that follows raw, line and length; p points at ':' or NUL. */
static int parse_options(const char *p, struct hs_framing *f, const char **why)
{
    unsigned seen = 0, bit;
    int line = f->kind == HS_FRAMING_LINE;

    for (; *p == ':'; seen |= bit) {
        p++;
        if (strncmp(p, "max=", 4) == 0) {
            bit = 1, p += 4;
            if (parse_size(&p, &f->max, why) < 0)
                return -1;
            if (f->max == 0)
                return fail(why, "max must be at least 1");
        } else if (line && strncmp(p, "delim=", 6) == 0) {
            bit = 2, p += 6;
            if (parse_delim(&p, f, why) < 0)
                return -1;
        } else if (line && strncmp(p, "nocr", 4) == 0 && is_end(p[4])) {
            bit = 4, p += 4;
            f->strip_cr = 0;
        } else {
            return fail(why, "unknown option");
        }
        if (seen & bit)
            return fail(why, "duplicate option");
    }
    return *p == '\0' ? 0 : fail(why, "trailing characters");
}

static int parse_spec(const char *spec, struct hs_framing *f, const char **why)
{
    size_t word = strcspn(spec, ":"), k;
    const char *p = spec + word;

    for (k = 0; k < 4; k++)
        if (strlen(kind_names[k]) == word && memcmp(spec, kind_names[k], word) == 0)
            break;
    if (k == 4)
        return fail(why, word == 0 ? "empty framing spec"
                                   : "unknown framing (want raw, line, length or fixed)");
    hs_framing_init(f, (enum hs_framing_kind)k);
    switch (f->kind) {
    case HS_FRAMING_LENGTH:
        if (*p++ != ':')
            return fail(why, "length needs a header type, e.g. length:u32be");
        if (parse_header_type(&p, f, why) < 0)
            return -1;
        break;
    case HS_FRAMING_FIXED:
        if (*p++ != ':')
            return fail(why, "fixed needs a size, e.g. fixed:16");
        if (parse_size(&p, &f->fixed, why) < 0)
            return -1;
        if (f->fixed == 0)
            return fail(why, "fixed size must be at least 1");
        return *p == '\0' ? 0 : fail(why, "fixed takes no options");
    default:
        break;
    }
    if (parse_options(p, f, why) < 0)
        return -1;
    if (f->kind == HS_FRAMING_LINE && !strips_cr(f))
        f->strip_cr = 0; /* meaningless for other delimiters; keep the struct canonical */
    return 0;
}

int hs_framing_parse(const char *spec, struct hs_framing *out, const char **why)
{
    struct hs_framing f;
    const char *reason = "empty framing spec";

    /* Parse into a local so *out is untouched on failure. */
    if (spec == NULL || parse_spec(spec, &f, &reason) < 0) {
        if (why != NULL)
            *why = reason;
        return HS_EBADSPEC;
    }
    *out = f;
    return 0;
}

/* ---- Formatting. */

/* Writes v with the largest k/m/g suffix that divides it exactly, so it parses back equal. */
static const char *size_str(char *tmp, size_t n, uint64_t v)
{
    static const char *const suffix[] = {"", "k", "m", "g"};
    int i = 0;

    while (i < 3 && v != 0 && (v & 1023) == 0)
        v >>= 10, i++;
    snprintf(tmp, n, "%" PRIu64 "%s", v, suffix[i]);
    return tmp;
}

/* Escapes the delimiter into out (room for 4 * HS_FRAMING_MAX_DELIM + 1 bytes). */
static const char *delim_str(char *out, const struct hs_framing *f)
{
    char *o = out;

    *o = '\0';
    for (size_t i = 0; i < f->delim_len && i < HS_FRAMING_MAX_DELIM; i++, o += strlen(o)) {
        unsigned char c = (unsigned char)f->delim[i];
        const char *e = memchr(esc_byte, c, 5);
        if (e != NULL)
            snprintf(o, 5, "\\%c", esc_name[e - esc_byte]);
        else if (c > ' ' && c < 0x7f && c != ':')
            snprintf(o, 5, "%c", c);
        else
            snprintf(o, 5, "\\x%02x", c);
    }
    return out;
}

int hs_framing_format(const struct hs_framing *f, char *buf, size_t n)
{
    char max[32] = "", size[24], delim[4 * HS_FRAMING_MAX_DELIM + 1];
    int nl = f->delim_len == 1 && f->delim[0] == '\n';

    /* 0 (the default, whatever the set's is) is left out; a max given in the spec is kept,
     * even one equal to the built-in default, since it does not follow --max-line. */
    if (f->max != 0)
        snprintf(max, sizeof(max), ":max=%s", size_str(size, sizeof(size), f->max));
    switch (f->kind) {
    case HS_FRAMING_RAW:
        return snprintf(buf, n, "raw%s", max);
    case HS_FRAMING_LINE:
        return snprintf(buf, n, "line%s%s%s%s", max,
                        nl ? "" : ":delim=", nl ? "" : delim_str(delim, f),
                        nl && !f->strip_cr ? ":nocr" : "");
    case HS_FRAMING_LENGTH:
        return snprintf(buf, n, "length:%c%u%s%s", f->is_signed ? 'i' : 'u', f->hdr_size * 8,
                        f->hdr_size == 1 ? "" : (f->big_endian ? "be" : "le"), max);
    case HS_FRAMING_FIXED:
        return snprintf(buf, n, "fixed:%s", size_str(size, sizeof(size), f->fixed));
    }
    return snprintf(buf, n, "invalid");
}

/* ---- Framing. */

int hs_framing_decode_length(const struct hs_framing *f, const unsigned char *hdr, uint64_t *len)
{
    unsigned n = f->hdr_size;
    uint64_t v = 0;

    if (!valid_hdr_size(n))
        return HS_EBADSPEC;
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | hdr[f->big_endian ? i : n - 1 - i];
    if (f->is_signed && (v >> (n * 8 - 1)) != 0)
        return HS_EPROTO;
    if (v > hs_framing_max(f))
        return HS_ETOOBIG;
    *len = v;
    return 0;
}

static int next_line(const struct hs_framing *f, struct evbuffer *in, size_t *resume,
                     struct hs_frame *out)
{
    size_t have = evbuffer_get_length(in), dl = f->delim_len, start = *resume, end;
    uint64_t max = hs_framing_max(f), limit;
    int cr = strips_cr(f);
    struct evbuffer_ptr from, to, at;

    /* A delimiter that is to count must end within max + dl bytes (+1 for a stripped '\r'). */
    limit = max > UINT64_MAX - HS_FRAMING_MAX_DELIM - 1 ? UINT64_MAX : max + dl + (uint64_t)cr;
    end = (uint64_t)have < limit ? have : (size_t)limit;

    /* Bytes before *resume were searched already; back up dl - 1 in case a delimiter
     * straddles the old end. A resume beyond the data is stale (the caller drained without
     * resetting it): start over rather than miss a delimiter. */
    if (start > have)
        start = 0;
    start = start >= dl - 1 ? start - (dl - 1) : 0;

    if (end >= dl && start <= end - dl &&
        evbuffer_ptr_set(in, &from, start, EVBUFFER_PTR_SET) == 0 &&
        evbuffer_ptr_set(in, &to, end, EVBUFFER_PTR_SET) == 0) {
        at = evbuffer_search_range(in, f->delim, dl, &from, &to);
        if (at.pos >= 0) {
            char c = 0;
            out->len = (uint64_t)at.pos;
            out->trail = dl;
            if (cr && at.pos > 0 &&
                evbuffer_ptr_set(in, &from, (size_t)at.pos - 1, EVBUFFER_PTR_SET) == 0 &&
                evbuffer_copyout_from(in, &from, &c, 1) == 1 && c == '\r') {
                out->len--;
                out->trail++;
            }
            return out->len <= max ? 1 : HS_ETOOBIG;
        }
    }
    if ((uint64_t)have >= limit)
        return HS_ETOOBIG;
    *resume = have;
    return HS_AGAIN;
}

static int next_length(const struct hs_framing *f, struct evbuffer *in, struct hs_frame *out)
{
    unsigned char hdr[8];
    size_t have = evbuffer_get_length(in);
    int rc;

    if (have < f->hdr_size || evbuffer_copyout(in, hdr, f->hdr_size) != (ev_ssize_t)f->hdr_size)
        return HS_AGAIN;
    if ((rc = hs_framing_decode_length(f, hdr, &out->len)) < 0)
        return rc;
    out->skip = f->hdr_size;
    /* have - skip >= len rather than have >= skip + len, which could overflow near 2^64. */
    return (uint64_t)(have - f->hdr_size) >= out->len ? 1 : HS_AGAIN;
}

int hs_framing_next(const struct hs_framing *f, struct evbuffer *in, size_t *resume,
                    struct hs_frame *out, const char **why)
{
    uint64_t have = evbuffer_get_length(in);
    int rc = HS_EBADSPEC;

    memset(out, 0, sizeof(*out));
    if (f->kind == HS_FRAMING_RAW) {
        out->len = have < hs_framing_max(f) ? have : hs_framing_max(f);
        return have > 0 ? 1 : HS_AGAIN;
    }
    if (f->kind == HS_FRAMING_FIXED && f->fixed > 0) {
        out->len = f->fixed;
        return have >= f->fixed ? 1 : HS_AGAIN;
    }
    if (f->kind == HS_FRAMING_LINE && f->delim_len >= 1 && f->delim_len <= HS_FRAMING_MAX_DELIM)
        rc = next_line(f, in, resume, out);
    else if (f->kind == HS_FRAMING_LENGTH && valid_hdr_size(f->hdr_size))
        rc = next_length(f, in, out);
    if (rc == 1 || rc == HS_AGAIN)
        return rc;
    memset(out, 0, sizeof(*out));
    if (why != NULL)
        *why = hs_errtok(rc == HS_EBADSPEC            ? HS_EBADSPEC
                         : rc == HS_EPROTO            ? HS_ENEGLEN
                         : f->kind == HS_FRAMING_LINE ? HS_ELINE
                                                      : HS_EFRAME);
    return rc;
}
