/* libFuzzer target for core/framing.c: the spec parser (a spec that parses must format and
 * parse back to the same framing) and every framer over an evbuffer. The stream is framed
 * twice, once with all bytes present and once arriving in small pieces with the framer's
 * resume state kept between calls as conn.c keeps it; both must give the same frames and the
 * same end. Every frame must lie inside the buffer and within the framing's maximum.
 * Built only with -DHOTSOCK_FUZZ=ON (clang); see tests/fuzz/CMakeLists.txt.
 *
 * Input: byte 0 picks the spec. Below 0x80 it indexes a table of specs; otherwise the next
 * (byte 0 & 0x3f) bytes are a spec string of their own. Byte 1 sets the piece size (1..16).
 * The rest is the stream. */
#include "core/framing.h"
#include "core/hs.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small maxima so the limits are reached by short inputs too. */
static const char *const specs[] = {
    "raw",
    "raw:max=7",
    "line",
    "line:max=16",
    "line:nocr",
    "line:delim=\\r\\n",
    "line:delim=\\x00:max=5",
    "line:delim=abcabd:max=40",
    "length:u8",
    "length:i8",
    "length:u16",
    "length:u16le:max=300",
    "length:i32le",
    "length:i32le:max=100",
    "length:u32",
    "length:i64be:max=1k",
    "length:u64le",
    "fixed:1",
    "fixed:3",
    "fixed:64",
};
#define N_SPECS (sizeof specs / sizeof specs[0])

struct run {
    uint64_t hash;   /* FNV-1a over every frame's payload and shape */
    unsigned frames; /* frames found */
    int end;         /* the last result: HS_AGAIN or an error */
};

static void mix(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 0x100000001b3ull;
}

static int same_framing(const struct hs_framing *a, const struct hs_framing *b)
{
    if (a->kind != b->kind || a->max != b->max)
        return 0;
    switch (a->kind) {
    case HS_FRAMING_LINE:
        return a->delim_len == b->delim_len && memcmp(a->delim, b->delim, a->delim_len) == 0 &&
               a->strip_cr == b->strip_cr;
    case HS_FRAMING_LENGTH:
        return a->hdr_size == b->hdr_size && a->big_endian == b->big_endian &&
               a->is_signed == b->is_signed;
    case HS_FRAMING_FIXED:
        return a->fixed == b->fixed;
    default:
        return 1;
    }
}

/* Takes every complete frame off the front of in; returns HS_AGAIN or the error that ended
 * framing (after which nothing more is framed). */
static int drain_frames(const struct hs_framing *f, struct evbuffer *in, size_t *resume,
                        struct run *r)
{
    for (;;) {
        struct hs_frame fr = {0, 0, 0};
        const char *why = NULL;
        size_t have = evbuffer_get_length(in);
        int res = hs_framing_next(f, in, resume, &fr, &why);
        if (res == HS_AGAIN) {
            if (f->kind == HS_FRAMING_LENGTH && fr.skip != 0 &&
                (fr.skip != f->hdr_size || fr.len > hs_framing_max(f) || fr.skip > have))
                abort();
            return res;
        }
        if (res != 1) {
            if (why == NULL || (res != HS_EPROTO && res != HS_ETOOBIG))
                abort();
            return res;
        }
        if (fr.skip + fr.len + fr.trail > have || fr.len > hs_framing_max(f))
            abort();
        if (f->kind == HS_FRAMING_RAW && fr.len == 0)
            abort(); /* an empty raw message would loop forever */
        unsigned char *all = evbuffer_pullup(in, (ev_ssize_t)(fr.skip + fr.len + fr.trail));
        mix(&r->hash, all + fr.skip, (size_t)fr.len);
        mix(&r->hash, &fr.len, sizeof fr.len);
        r->frames++;
        evbuffer_drain(in, fr.skip + (size_t)fr.len + fr.trail);
        *resume = 0;
    }
}

static void frame_stream(const struct hs_framing *f, const uint8_t *s, size_t n, size_t piece,
                         struct run *r)
{
    struct evbuffer *in = evbuffer_new();
    size_t resume = 0, pos = 0;
    r->hash = 0xcbf29ce484222325ull;
    r->frames = 0;
    r->end = HS_AGAIN;
    if (in == NULL)
        abort();
    while (pos < n && r->end == HS_AGAIN) {
        size_t k = n - pos < piece ? n - pos : piece;
        evbuffer_add(in, s + pos, k);
        pos += k;
        r->end = drain_frames(f, in, &resume, r);
    }
    evbuffer_free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    char spec[64];
    size_t used = 2;
    if (data[0] < 0x80) {
        strcpy(spec, specs[data[0] % N_SPECS]);
    } else {
        size_t n = data[0] & 0x3f;
        if (n > size - 2)
            n = size - 2;
        memcpy(spec, data + 2, n);
        spec[n] = '\0';
        used += n;
    }
    struct hs_framing f, back;
    const char *why = NULL;
    if (hs_framing_parse(spec, &f, &why) != 0) {
        if (why == NULL)
            abort();
        return 0;
    }
    char text[128];
    int tl = hs_framing_format(&f, text, sizeof text);
    if (tl < 0 || (size_t)tl >= sizeof text || hs_framing_parse(text, &back, &why) != 0 ||
        !same_framing(&f, &back))
        abort();

    const uint8_t *stream = data + used;
    size_t n = size - used;
    struct run whole, pieces;
    frame_stream(&f, stream, n, n ? n : 1, &whole);
    frame_stream(&f, stream, n, (size_t)data[1] % 16 + 1, &pieces);
    /* Raw framing hands over whatever arrived: only its total may be compared. */
    if (f.kind != HS_FRAMING_RAW &&
        (whole.hash != pieces.hash || whole.frames != pieces.frames || whole.end != pieces.end))
        abort();
    return 0;
}
