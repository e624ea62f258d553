/* Framers: split a connection's input into messages. Pure code over an evbuffer: no sockets,
 * no event loop, no Lua, no allocation. Used by conn.c; tested by tests/unit/test_framing.c. */
#ifndef HS_FRAMING_H
#define HS_FRAMING_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum hs_framing_kind {
    HS_FRAMING_RAW,    /* whatever bytes have arrived, up to max per message */
    HS_FRAMING_LINE,   /* up to and excluding a delimiter */
    HS_FRAMING_LENGTH, /* an integer header giving the payload length, then the payload */
    HS_FRAMING_FIXED,  /* exactly `fixed` bytes */
};

#define HS_FRAMING_MAX_DELIM 8 /* bytes in a line delimiter */

/* Compact: every connection carries one (small fields in bytes, no padding holes). */
struct hs_framing {
    uint64_t max;                     /* payload bytes per message; 0 means the default */
    uint64_t fixed;                   /* fixed: bytes per message, >= 1 */
    char delim[HS_FRAMING_MAX_DELIM]; /* line: delimiter bytes (may contain NUL) */
    uint8_t kind;                     /* enum hs_framing_kind */
    uint8_t delim_len;                /* line: 1..HS_FRAMING_MAX_DELIM */
    uint8_t strip_cr;                 /* line: drop one '\r' before a "\n" delimiter */
    uint8_t hdr_size;                 /* length: 1, 2, 4 or 8 bytes */
    uint8_t big_endian;               /* length: 1 = network order, 0 = little endian */
    uint8_t is_signed;                /* length: header is two's complement signed */
};

/* Where a frame sits at the front of the buffer: `skip` header bytes, then `len` payload
 * bytes, then `trail` delimiter bytes. The caller drains skip + len + trail once done. */
struct hs_frame {
    size_t skip;  /* header bytes before the payload */
    uint64_t len; /* payload bytes */
    size_t trail; /* delimiter bytes after the payload (line; includes a stripped '\r') */
};

/* Fills *out with the defaults for `kind`: line = "\n" with CR stripping; length = 4-byte
 * big-endian unsigned; fixed = 1 byte. max is 0, "the default": HS_DEFAULT_MAX_LINE,
 * HS_DEFAULT_MAX_FRAME or HS_DEFAULT_MAX_RAW_CHUNK (hs_framing_max), or the connection set's
 * max_line / max_frame where one is configured. The parser leaves max at 0 unless the spec
 * gives one. */
void hs_framing_init(struct hs_framing *out, enum hs_framing_kind kind);

/* Parses a framing spec string (grammar in docs/lua-api.md, "Framing"):
 *   raw[:max=N]
 *   line[:max=N][:delim=ESC][:nocr]       ESC uses \n \r \t \0 \\ \xHH escapes
 *   length:<i|u><8|16|32|64>[le|be][:max=N]   e.g. length:i32le (no suffix = be)
 *   fixed:N
 * Sizes accept k/m/g suffixes (powers of 1024). On success fills *out and returns 0. On
 * failure returns HS_EBADSPEC, leaves *out untouched and, when why != NULL, sets *why to a
 * static description. max=0 is refused (0 in the struct means the default); a ':' inside a
 * delimiter must be written \x3a; options may come in any order but each at most once. */
int hs_framing_parse(const char *spec, struct hs_framing *out, const char **why);

/* Writes a canonical spec string for *f (that hs_framing_parse reads back to the same
 * framing) into buf of size n, NUL-terminated and truncated if needed. Returns the length it
 * wanted, like snprintf. */
int hs_framing_format(const struct hs_framing *f, char *buf, size_t n);

/* Looks for the next frame at the front of `in` without consuming anything.
 * `resume` is the caller's scan state for this frame: set it to 0 before the first call and
 * after each frame is drained; the framer stores in it how far it has already searched so a
 * slowly arriving line is never rescanned from the start.
 * Returns 1 with *out filled when a whole frame is present.
 * Returns HS_AGAIN when more input is needed; for length and fixed framing, once the header
 * is complete, *out is filled anyway (skip and the declared len; trail 0) so the caller may
 * stream the payload instead of waiting for all of it. Otherwise out->len is 0.
 * Returns HS_EPROTO for a negative length, HS_ETOOBIG for a length or a line over max (for
 * raw, never: a large buffer is split into max-sized messages). *why, when why != NULL, is
 * set to a static reason on failure: "negative length", "frame too large", "line too long".
 * For raw framing an empty buffer is HS_AGAIN. Returns HS_EBADSPEC ("bad framing") if *f is
 * not a valid framing, which only a hand-built struct can be. */
int hs_framing_next(const struct hs_framing *f, struct evbuffer *in, size_t *resume,
                    struct hs_frame *out, const char **why);

/* Decodes the integer header at hdr (f->hdr_size bytes) per f's endianness and signedness.
 * Returns 0 and stores the length in *len, HS_EPROTO for a negative value, HS_ETOOBIG for a
 * value above the effective max, HS_EBADSPEC if hdr_size is not 1, 2, 4 or 8. Exposed for
 * the upload header parser and its fuzz target. */
int hs_framing_decode_length(const struct hs_framing *f, const unsigned char *hdr, uint64_t *len);

/* The effective maximum payload for f (its max, or the kind's default when max is 0; for
 * fixed framing, f->fixed). */
uint64_t hs_framing_max(const struct hs_framing *f);

#endif
