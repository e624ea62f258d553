/* hotsock.json: encode and decode JSON (RFC 8259) in C.
 *
 * Our own rather than Debian's lua-cjson 2.1.0, which escapes "/" (as "\/"), has no way to
 * keep an empty array an array, and decodes lone surrogates and numbers with leading zeros.
 * Here: decode is strict (UTF-8 checked, no trailing commas, no comments, a depth limit) and
 * fails with nil, "json: <why> at byte N"; null is the sentinel json.null (a light userdata);
 * arrays come back with the json.array metatable so they encode as arrays even when empty;
 * encode refuses cycles, NaN and infinities, functions and invalid UTF-8 with nil, "json: ...".
 * The output buffer is a userdata freed by __gc, so a Lua error (memory) cannot leak it. */
#include "core/hs.h"
#include "core/lua_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HS_JSON_MAX_DEPTH 200  /* nesting of arrays and objects, both ways */
#define HS_JSON_MAX_NUMBER 512 /* bytes of one number literal */
#define HS_JSON_ARRAY_MT "hotsock.json.array"
#define HS_JSON_BUF_MT "hotsock.json.buffer"

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 when it is not one
 * (overlong forms, surrogates and code points over U+10FFFF are not). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned cp, min;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* ---- decode ---- */

struct dec {
    const char *s;   /* the whole input */
    const char *p;   /* the next byte */
    const char *end; /* one past the last */
    int depth;
    const char *why; /* the first error, or NULL */
    const char *at;  /* where it was found */
    int null_idx;    /* stack index of json.null */
    int array_idx;   /* stack index of the array metatable */
};

static int fail(struct dec *d, const char *why, const char *at)
{
    d->why = why;
    d->at = at;
    return -1;
}

static void skip_ws(struct dec *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static void add_utf8(luaL_Buffer *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80)
        u[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        u[0] = (char)(0xc0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        u[0] = (char)(0xe0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
        u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    else
        u[0] = (char)(0xf0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    luaL_addlstring(b, u, n);
}

/* A string; d->p is at its opening quote. Pushes it. */
static int dec_string(lua_State *L, struct dec *d)
{
    const char *start = ++d->p;
    /* The common case, no escapes: one push. */
    const char *q = start;
    while (q < d->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) {
        if ((unsigned char)*q < 0x80) {
            q++;
            continue;
        }
        size_t n = utf8_len((const unsigned char *)q, (size_t)(d->end - q));
        if (n == 0)
            return fail(d, "invalid UTF-8 in string", q);
        q += n;
    }
    if (q < d->end && *q == '"') {
        lua_pushlstring(L, start, (size_t)(q - start));
        d->p = q + 1;
        return 0;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, start, (size_t)(q - start));
    d->p = q;
    while (d->p < d->end) {
        unsigned char c = (unsigned char)*d->p;
        if (c == '"') {
            d->p++;
            luaL_pushresult(&b);
            return 0;
        }
        if (c < 0x20)
            return fail(d, "control character in string", d->p);
        if (c >= 0x80) {
            size_t n = utf8_len((const unsigned char *)d->p, (size_t)(d->end - d->p));
            if (n == 0)
                return fail(d, "invalid UTF-8 in string", d->p);
            luaL_addlstring(&b, d->p, n);
            d->p += n;
            continue;
        }
        if (c != '\\') {
            luaL_addchar(&b, (char)c);
            d->p++;
            continue;
        }
        const char *esc = d->p;
        if (d->end - d->p < 2)
            break;
        char e = d->p[1];
        d->p += 2;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            luaL_addchar(&b, e);
            break;
        case 'b':
            luaL_addchar(&b, '\b');
            break;
        case 'f':
            luaL_addchar(&b, '\f');
            break;
        case 'n':
            luaL_addchar(&b, '\n');
            break;
        case 'r':
            luaL_addchar(&b, '\r');
            break;
        case 't':
            luaL_addchar(&b, '\t');
            break;
        case 'u': {
            unsigned cp, lo;
            if (d->end - d->p < 4 || hex4(d->p, &cp) != 0)
                return fail(d, "bad \\u escape", esc);
            d->p += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return fail(d, "lone surrogate in \\u escape", esc);
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (d->end - d->p < 6 || d->p[0] != '\\' || d->p[1] != 'u' ||
                    hex4(d->p + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
                    return fail(d, "lone surrogate in \\u escape", esc);
                d->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            add_utf8(&b, cp);
            break;
        }
        default:
            return fail(d, "bad escape in string", esc);
        }
    }
    return fail(d, "unterminated string", start - 1);
}

static int dec_number(lua_State *L, struct dec *d)
{
    const char *start = d->p, *p = d->p;
    int is_float = 0;
    if (p < d->end && *p == '-')
        p++;
    if (p >= d->end || *p < '0' || *p > '9')
        return fail(d, "bad number", start);
    if (*p == '0') {
        p++;
        if (p < d->end && *p >= '0' && *p <= '9')
            return fail(d, "leading zero in number", start);
    } else {
        while (p < d->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < d->end && *p == '.') {
        is_float = 1;
        p++;
        if (p >= d->end || *p < '0' || *p > '9')
            return fail(d, "bad number", start);
        while (p < d->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < d->end && (*p == 'e' || *p == 'E')) {
        is_float = 1;
        p++;
        if (p < d->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= d->end || *p < '0' || *p > '9')
            return fail(d, "bad number", start);
        while (p < d->end && *p >= '0' && *p <= '9')
            p++;
    }
    size_t n = (size_t)(p - start);
    if (n >= HS_JSON_MAX_NUMBER)
        return fail(d, "number too long", start);
    char tmp[HS_JSON_MAX_NUMBER];
    memcpy(tmp, start, n);
    tmp[n] = '\0';
    d->p = p;
    /* Whole numbers that fit are integers ("-0" stays the float -0.0). */
    if (!is_float && strcmp(tmp, "-0") != 0) {
        const char *q = tmp[0] == '-' ? tmp + 1 : tmp;
        unsigned long long v = 0;
        int over = 0;
        for (; *q; q++) {
            unsigned dgt = (unsigned)(*q - '0');
            if (v > (9223372036854775808ULL - dgt) / 10)
                over = 1;
            v = v * 10 + dgt;
        }
        if (!over && (tmp[0] == '-' || v <= 9223372036854775807ULL)) {
            lua_pushinteger(L, tmp[0] == '-' ? (lua_Integer)(0 - v) : (lua_Integer)v);
            return 0;
        }
    }
    double v = strtod(tmp, NULL);
    if (isinf(v)) /* JSON has no infinity: 1e999 is not a number we can give back */
        return fail(d, "number out of range", start);
    lua_pushnumber(L, v);
    return 0;
}

static int dec_value(lua_State *L, struct dec *d);

static int dec_literal(lua_State *L, struct dec *d, const char *word, size_t n)
{
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
        return fail(d, "unexpected character", d->p);
    d->p += n;
    if (word[0] == 'n')
        lua_pushvalue(L, d->null_idx);
    else
        lua_pushboolean(L, word[0] == 't');
    return 0;
}

static int dec_array(lua_State *L, struct dec *d)
{
    d->p++;
    lua_newtable(L);
    lua_pushvalue(L, d->array_idx);
    lua_setmetatable(L, -2);
    skip_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        return 0;
    }
    for (lua_Integer i = 1;; i++) {
        if (dec_value(L, d) != 0)
            return -1;
        lua_rawseti(L, -2, i);
        skip_ws(d);
        if (d->p >= d->end)
            return fail(d, "unterminated array", d->p);
        if (*d->p == ']') {
            d->p++;
            return 0;
        }
        if (*d->p != ',')
            return fail(d, "expected ',' or ']'", d->p);
        d->p++;
    }
}

static int dec_object(lua_State *L, struct dec *d)
{
    d->p++;
    lua_newtable(L);
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        return 0;
    }
    for (;;) {
        skip_ws(d);
        if (d->p >= d->end || *d->p != '"')
            return fail(d, d->p >= d->end ? "unterminated object" : "expected a string key", d->p);
        if (dec_string(L, d) != 0)
            return -1;
        skip_ws(d);
        if (d->p >= d->end || *d->p != ':')
            return fail(d, "expected ':'", d->p);
        d->p++;
        if (dec_value(L, d) != 0)
            return -1;
        lua_rawset(L, -3);
        skip_ws(d);
        if (d->p >= d->end)
            return fail(d, "unterminated object", d->p);
        if (*d->p == '}') {
            d->p++;
            return 0;
        }
        if (*d->p != ',')
            return fail(d, "expected ',' or '}'", d->p);
        d->p++;
    }
}

static int dec_value(lua_State *L, struct dec *d)
{
    skip_ws(d);
    if (d->p >= d->end)
        return fail(d, "unexpected end", d->p);
    luaL_checkstack(L, 4, "json nesting");
    int r;
    switch (*d->p) {
    case '{':
    case '[':
        if (++d->depth > HS_JSON_MAX_DEPTH)
            return fail(d, "too deeply nested", d->p);
        r = *d->p == '{' ? dec_object(L, d) : dec_array(L, d);
        d->depth--;
        return r;
    case '"':
        return dec_string(L, d);
    case 't':
        return dec_literal(L, d, "true", 4);
    case 'f':
        return dec_literal(L, d, "false", 5);
    case 'n':
        return dec_literal(L, d, "null", 4);
    default:
        if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9'))
            return dec_number(L, d);
        return fail(d, "unexpected character", d->p);
    }
}

/* json.decode(text) -> value | nil, "json: <why> at byte N" (N counts from 1) */
static int l_json_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1)); /* 2: null */
    lua_pushvalue(L, lua_upvalueindex(2)); /* 3: the array metatable */
    struct dec d = {s, s, s + n, 0, NULL, NULL, 2, 3};
    if (dec_value(L, &d) == 0) {
        skip_ws(&d);
        if (d.p == d.end)
            return 1;
        fail(&d, "trailing characters", d.p);
    }
    lua_settop(L, 3);
    luaL_pushfail(L);
    lua_pushfstring(L, "json: %s at byte %d", d.why, (int)(d.at - s) + 1);
    return 2;
}

/* ---- encode ---- */

struct jbuf {
    char *p;
    size_t n, cap;
};

static int l_jbuf_gc(lua_State *L)
{
    struct jbuf *b = lua_touserdata(L, 1);
    free(b->p);
    b->p = NULL;
    return 0;
}

static void put(lua_State *L, struct jbuf *b, const char *s, size_t n)
{
    if (b->cap - b->n < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n < n) {
            if (cap > ((size_t)-1) / 2)
                luaL_error(L, "json: output too large");
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (p == NULL)
            luaL_error(L, "json: out of memory");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

struct enc {
    struct jbuf *b;
    int depth;
    int seen_idx;  /* stack index of the set of tables being encoded */
    int null_idx;  /* json.null */
    int array_idx; /* the array metatable */
    const char *why;
};

static int enc_string(lua_State *L, struct enc *e, const char *s, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    put(L, e->b, "\"", 1);
    size_t run = 0; /* bytes copied as they are, pending */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t l = utf8_len((const unsigned char *)s + i, n - i);
            if (l == 0) {
                e->why = "invalid UTF-8 in string";
                return -1;
            }
            i += l;
            run += l;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            i++;
            run++;
            continue;
        }
        put(L, e->b, s + i - run, run);
        run = 0;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t el = 2;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hexd[c >> 4], esc[5] = hexd[c & 15];
            el = 6;
        }
        put(L, e->b, esc, el);
        i++;
    }
    put(L, e->b, s + n - run, run);
    put(L, e->b, "\"", 1);
    return 0;
}

static int enc_number(lua_State *L, struct enc *e, int idx)
{
    char tmp[64];
    int n;
    if (lua_isinteger(L, idx)) {
        n = snprintf(tmp, sizeof tmp, "%lld", (long long)lua_tointeger(L, idx));
    } else {
        double v = lua_tonumber(L, idx);
        if (isnan(v) || isinf(v)) {
            e->why = isnan(v) ? "cannot encode NaN" : "cannot encode an infinity";
            return -1;
        }
        /* The shortest of 15 or 17 digits that reads back the same double. */
        n = snprintf(tmp, sizeof tmp, "%.15g", v);
        if (strtod(tmp, NULL) != v)
            n = snprintf(tmp, sizeof tmp, "%.17g", v);
    }
    put(L, e->b, tmp, (size_t)n);
    return 0;
}

static int enc_value(lua_State *L, struct enc *e, int idx);

/* Whether the table at idx is an array: it has the json.array metatable, or its keys are
 * exactly 1..n for some n >= 1. *len is n. */
static int is_array(lua_State *L, struct enc *e, int idx, lua_Integer *len)
{
    *len = (lua_Integer)lua_rawlen(L, idx);
    if (lua_getmetatable(L, idx)) {
        int marked = lua_rawequal(L, -1, e->array_idx);
        lua_pop(L, 1);
        if (marked)
            return 1;
    }
    if (*len == 0)
        return 0;
    lua_Integer count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > *len) {
            lua_pop(L, 1);
            return 0;
        }
        count++;
    }
    return count == *len;
}

struct key_ref {
    const char *s; /* the key as text (anchored in the keys table) */
    size_t n;
    lua_Integer i; /* its index in the keys tables */
};

static int key_cmp(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->n < y->n ? x->n : y->n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* The table at idx as an object, its keys sorted bytewise so that equal tables give equal
 * text. Integer keys are written as decimal strings; other keys are refused. */
static int enc_object(lua_State *L, struct enc *e, int idx)
{
    lua_newtable(L); /* the keys as text */
    int text = lua_gettop(L);
    lua_newtable(L); /* the keys as they are */
    int orig = lua_gettop(L);
    lua_Integer n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING)
            lua_pushvalue(L, -1);
        else if (lua_type(L, -1) == LUA_TNUMBER && lua_isinteger(L, -1))
            lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, -1));
        else {
            e->why = "cannot encode a key that is not a string or an integer";
            return -1;
        }
        lua_rawseti(L, text, ++n);
        lua_pushvalue(L, -1);
        lua_rawseti(L, orig, n);
    }
    struct key_ref *keys = lua_newuserdatauv(L, (size_t)n * sizeof *keys + 1, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, text, i);
        keys[i - 1].s = lua_tolstring(L, -1, &keys[i - 1].n);
        keys[i - 1].i = i;
        lua_pop(L, 1);
    }
    qsort(keys, (size_t)n, sizeof *keys, key_cmp);
    put(L, e->b, "{", 1);
    for (lua_Integer i = 0; i < n; i++) {
        if (i > 0)
            put(L, e->b, ",", 1);
        if (enc_string(L, e, keys[i].s, keys[i].n) != 0)
            return -1;
        put(L, e->b, ":", 1);
        lua_rawgeti(L, orig, keys[i].i);
        lua_rawget(L, idx);
        if (enc_value(L, e, lua_gettop(L)) != 0)
            return -1;
        lua_pop(L, 1);
    }
    put(L, e->b, "}", 1);
    lua_settop(L, text - 1);
    return 0;
}

static int enc_table(lua_State *L, struct enc *e, int idx)
{
    if (++e->depth > HS_JSON_MAX_DEPTH) {
        e->why = "too deeply nested";
        return -1;
    }
    luaL_checkstack(L, 6, "json nesting");
    lua_pushvalue(L, idx);
    if (lua_rawget(L, e->seen_idx) != LUA_TNIL) {
        e->why = "cycle in table";
        return -1;
    }
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, e->seen_idx);
    lua_Integer len;
    if (is_array(L, e, idx, &len)) {
        put(L, e->b, "[", 1);
        for (lua_Integer i = 1; i <= len; i++) {
            if (i > 1)
                put(L, e->b, ",", 1);
            lua_rawgeti(L, idx, i);
            if (enc_value(L, e, lua_gettop(L)) != 0)
                return -1;
            lua_pop(L, 1);
        }
        put(L, e->b, "]", 1);
    } else {
        if (enc_object(L, e, idx) != 0)
            return -1;
    }
    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_rawset(L, e->seen_idx);
    e->depth--;
    return 0;
}

static int enc_value(lua_State *L, struct enc *e, int idx)
{
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        put(L, e->b, "null", 4);
        return 0;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            put(L, e->b, "true", 4);
        else
            put(L, e->b, "false", 5);
        return 0;
    case LUA_TNUMBER:
        return enc_number(L, e, idx);
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return enc_string(L, e, s, n);
    }
    case LUA_TTABLE:
        return enc_table(L, e, idx);
    case LUA_TLIGHTUSERDATA:
        if (lua_rawequal(L, idx, e->null_idx)) {
            put(L, e->b, "null", 4);
            return 0;
        }
        /* fall through */
    default:
        e->why = lua_type(L, idx) == LUA_TFUNCTION ? "cannot encode a function"
                 : lua_type(L, idx) == LUA_TTHREAD ? "cannot encode a coroutine"
                                                   : "cannot encode a userdata";
        return -1;
    }
}

/* json.encode(value) -> text | nil, "json: <why>" */
static int l_json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    struct jbuf *b = lua_newuserdatauv(L, sizeof *b, 0); /* 2 */
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, HS_JSON_BUF_MT);
    lua_newtable(L);                       /* 3: tables being encoded */
    lua_pushvalue(L, lua_upvalueindex(1)); /* 4: null */
    lua_pushvalue(L, lua_upvalueindex(2)); /* 5: the array metatable */
    struct enc e = {b, 0, 3, 4, 5, NULL};
    if (enc_value(L, &e, 1) != 0) {
        luaL_pushfail(L);
        lua_pushfstring(L, "json: %s", e.why);
        return 2;
    }
    lua_pushlstring(L, b->p ? b->p : "", b->n);
    free(b->p);
    b->p = NULL;
    return 1;
}

/* json.array([t]) -> t (or a new table), marked to encode as an array even when empty */
static int l_json_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_setmetatable(L, 1);
    return 1;
}

void hs__lua_open_json(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"encode", l_json_encode},
        {"decode", l_json_decode},
        {"array", l_json_array},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, HS_JSON_BUF_MT)) {
        lua_pushcfunction(L, l_jbuf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_newtable(L); /* hotsock.json */
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_pushlightuserdata(L, NULL);         /* upvalue 1: null */
    luaL_newmetatable(L, HS_JSON_ARRAY_MT); /* upvalue 2: the array marker */
    luaL_setfuncs(L, funcs, 2);
    lua_setfield(L, -2, "json");
}
