/* string.find, string.match, string.gmatch and string.gsub with a time budget.
 *
 * Lua's own pattern functions run in C: the count hook that enforces the time limit never
 * fires inside them, and a backtracking pattern such as ("a*"):rep(16) .. "b" over a short
 * subject runs for seconds. These are our own implementations of the same pattern language
 * (Lua 5.4 manual §6.4.1: classes, sets, the four quantifiers, captures and position
 * captures, back-references, %b and %f, ^ and $ anchors) and the same function semantics;
 * the matcher counts its steps and every SLICE_STEPS steps asks hs__lua_check_time, which
 * raises the time-limit error once the running call is past its deadline. Results larger
 * than HS_LUA_MAX_STRING are refused. */
#include "core/lua_internal.h"
#include "core/lua_sandbox.h"

#include <ctype.h>
#include <string.h>

#define MAX_CAPTURES 32   /* captures in one pattern, as Lua's LUA_MAXCAPTURES */
#define MAX_DEPTH 200     /* nested matcher calls before "pattern too complex" */
#define SLICE_STEPS 2048  /* matcher steps between two looks at the clock */
#define CAP_OPEN (-1)     /* capture length: still open */
#define CAP_POSITION (-2) /* capture length: a position capture "()" */

struct matcher {
    lua_State *L;
    const char *subj, *subj_end; /* the subject string */
    const char *pat_end;         /* end of the pattern (the '^' anchor already skipped) */
    int depth_left;              /* nested do_match calls still allowed */
    int ncap;                    /* captures started so far */
    int budget;                  /* steps left before the next look at the clock */
    struct {
        const char *at; /* where it starts in the subject */
        ptrdiff_t len;  /* its length, or CAP_OPEN / CAP_POSITION */
    } cap[MAX_CAPTURES];
};

/* One unit of work; every loop of the matcher calls it. */
static void tick(struct matcher *m)
{
    if (--m->budget > 0)
        return;
    m->budget = SLICE_STEPS;
    hs__lua_check_time(m->L);
}

/* A comparison of n bytes counts for about n / 64 steps. */
static void charge(struct matcher *m, size_t n)
{
    m->budget -= n / 64 > SLICE_STEPS ? SLICE_STEPS : (int)(n / 64);
    tick(m);
}

static void matcher_init(struct matcher *m, lua_State *L, const char *s, size_t ls,
                         const char *p_end)
{
    m->L = L;
    m->subj = s;
    m->subj_end = s + ls;
    m->pat_end = p_end;
    m->budget = SLICE_STEPS;
}

static void matcher_reset(struct matcher *m)
{
    m->ncap = 0;
    m->depth_left = MAX_DEPTH;
}

/* Whether byte c belongs to class letter cl (%a, %d, ...); an upper-case letter is the
 * complement, any other character stands for itself. */
static int in_class(int c, int cl)
{
    int yes;
    switch (tolower(cl)) {
    case 'a':
        yes = isalpha(c);
        break;
    case 'c':
        yes = iscntrl(c);
        break;
    case 'd':
        yes = isdigit(c);
        break;
    case 'g':
        yes = isgraph(c);
        break;
    case 'l':
        yes = islower(c);
        break;
    case 'p':
        yes = ispunct(c);
        break;
    case 's':
        yes = isspace(c);
        break;
    case 'u':
        yes = isupper(c);
        break;
    case 'w':
        yes = isalnum(c);
        break;
    case 'x':
        yes = isxdigit(c);
        break;
    case 'z': /* deprecated, still in Lua 5.4: the zero byte */
        yes = c == 0;
        break;
    default:
        return cl == c;
    }
    if (isupper(cl))
        return !yes;
    return yes != 0;
}

/* The end of the single-character item at p (a literal, %x, '.' or a [set]). */
static const char *item_end(struct matcher *m, const char *p)
{
    if (*p == '%') {
        if (p + 1 >= m->pat_end)
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 2;
    }
    if (*p != '[')
        return p + 1;
    const char *q = p + 1;
    if (q < m->pat_end && *q == '^')
        q++;
    /* The first member is taken literally, even a ']'. */
    for (int first = 1;; first = 0) {
        if (q >= m->pat_end)
            luaL_error(m->L, "malformed pattern (missing ']')");
        if (*q == ']' && !first)
            return q + 1;
        if (*q == '%' && q + 1 < m->pat_end)
            q++;
        q++;
    }
}

/* Whether c is in the set [ ... ] spanning p (at '[') to close (at its ']'). */
static int in_set(int c, const char *p, const char *close)
{
    int want = 1;
    p++;
    if (*p == '^') {
        want = 0;
        p++;
    }
    while (p < close) {
        if (*p == '%' && p + 1 < close) {
            if (in_class(c, (unsigned char)p[1]))
                return want;
            p += 2;
        } else if (p + 2 < close && p[1] == '-') {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return want;
            p += 3;
        } else {
            if ((unsigned char)*p == c)
                return want;
            p++;
        }
    }
    return !want;
}

/* Whether the subject byte at s matches the item p..ep. */
static int item_matches(const struct matcher *m, const char *s, const char *p, const char *ep)
{
    if (s >= m->subj_end)
        return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return 1;
    case '%':
        return in_class(c, (unsigned char)p[1]);
    case '[':
        return in_set(c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

static const char *do_match(struct matcher *m, const char *s, const char *p);

/* item* and item+ (from s): the longest run first, then shorter ones. */
static const char *greedy(struct matcher *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t n = 0;
    while (item_matches(m, s + n, p, ep)) {
        tick(m);
        n++;
    }
    for (; n >= 0; n--) {
        tick(m);
        const char *r = do_match(m, s + n, ep + 1);
        if (r != NULL)
            return r;
    }
    return NULL;
}

/* item-: the shortest run first. */
static const char *lazy(struct matcher *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        tick(m);
        const char *r = do_match(m, s, ep + 1);
        if (r != NULL)
            return r;
        if (!item_matches(m, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *open_capture(struct matcher *m, const char *s, const char *p, ptrdiff_t kind)
{
    if (m->ncap >= MAX_CAPTURES)
        luaL_error(m->L, "too many captures");
    m->cap[m->ncap].at = s;
    m->cap[m->ncap].len = kind;
    m->ncap++;
    const char *r = do_match(m, s, p);
    if (r == NULL)
        m->ncap--;
    return r;
}

static const char *close_capture(struct matcher *m, const char *s, const char *p)
{
    int i = m->ncap - 1;
    while (i >= 0 && m->cap[i].len != CAP_OPEN)
        i--;
    if (i < 0)
        luaL_error(m->L, "invalid pattern capture");
    m->cap[i].len = s - m->cap[i].at;
    const char *r = do_match(m, s, p);
    if (r == NULL)
        m->cap[i].len = CAP_OPEN;
    return r;
}

/* %bxy at p (pointing at x): a balanced run from s, or NULL. */
static const char *balanced(struct matcher *m, const char *s, const char *p)
{
    if (p + 1 >= m->pat_end)
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->subj_end || *s != p[0])
        return NULL;
    int open = 1;
    while (++s < m->subj_end) {
        tick(m);
        if (*s == p[1]) {
            if (--open == 0)
                return s + 1;
        } else if (*s == p[0]) {
            open++;
        }
    }
    return NULL;
}

/* %N at p (pointing at the digit): the text of capture N again, or NULL. */
static const char *backref(struct matcher *m, const char *s, int digit)
{
    int i = digit - '1';
    if (i < 0 || i >= m->ncap || m->cap[i].len == CAP_OPEN)
        luaL_error(m->L, "invalid capture index %%%d", i + 1);
    ptrdiff_t len = m->cap[i].len;
    if (len < 0 || m->subj_end - s < len || memcmp(m->cap[i].at, s, (size_t)len) != 0)
        return NULL;
    charge(m, (size_t)len);
    return s + len;
}

/* Matches pattern p (to m->pat_end) at subject position s: the end of the match, or NULL. */
static const char *do_match(struct matcher *m, const char *s, const char *p)
{
    if (m->depth_left-- == 0)
        luaL_error(m->L, "pattern too complex");
    for (;;) {
        tick(m);
        if (p == m->pat_end)
            break;
        if (*p == '(') {
            if (p + 1 < m->pat_end && p[1] == ')')
                s = open_capture(m, s, p + 2, CAP_POSITION);
            else
                s = open_capture(m, s, p + 1, CAP_OPEN);
            break;
        }
        if (*p == ')') {
            s = close_capture(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == m->pat_end) {
            if (s != m->subj_end)
                s = NULL;
            break;
        }
        if (*p == '%' && p + 1 < m->pat_end) {
            if (p[1] == 'b') {
                s = balanced(m, s, p + 2);
                if (s == NULL)
                    break;
                p += 4;
                continue;
            }
            if (p[1] == 'f') {
                p += 2;
                if (p >= m->pat_end || *p != '[')
                    luaL_error(m->L, "missing '[' after '%%f' in pattern");
                const char *ep = item_end(m, p);
                int before = s == m->subj ? 0 : (unsigned char)s[-1];
                int at = s < m->subj_end ? (unsigned char)*s : 0;
                if (in_set(before, p, ep - 1) || !in_set(at, p, ep - 1)) {
                    s = NULL;
                    break;
                }
                p = ep;
                continue;
            }
            if (isdigit((unsigned char)p[1])) {
                s = backref(m, s, p[1]);
                if (s == NULL)
                    break;
                p += 2;
                continue;
            }
        }
        /* A single-character item, maybe followed by a quantifier. */
        const char *ep = item_end(m, p);
        char q = ep < m->pat_end ? *ep : '\0';
        if (!item_matches(m, s, p, ep)) {
            if (q == '*' || q == '?' || q == '-') {
                p = ep + 1; /* zero repetitions are fine */
                continue;
            }
            s = NULL;
            break;
        }
        if (q == '?') {
            const char *r = do_match(m, s + 1, ep + 1);
            if (r != NULL) {
                s = r;
                break;
            }
            p = ep + 1;
            continue;
        }
        if (q == '+') {
            s = greedy(m, s + 1, p, ep);
            break;
        }
        if (q == '*') {
            s = greedy(m, s, p, ep);
            break;
        }
        if (q == '-') {
            s = lazy(m, s, p, ep);
            break;
        }
        s++;
        p = ep;
    }
    m->depth_left++;
    return s;
}

/* Pushes capture i of the match s..e (i == 0 with no captures: the whole match). */
static void push_capture(struct matcher *m, int i, const char *s, const char *e)
{
    if (i >= m->ncap) {
        if (i != 0)
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_OPEN)
        luaL_error(m->L, "unfinished capture");
    if (len == CAP_POSITION)
        lua_pushinteger(m->L, (lua_Integer)(m->cap[i].at - m->subj) + 1);
    else
        lua_pushlstring(m->L, m->cap[i].at, (size_t)len);
}

/* Pushes every capture (or the whole match when there is none and s != NULL). */
static int push_all(struct matcher *m, const char *s, const char *e)
{
    int n = m->ncap == 0 && s != NULL ? 1 : m->ncap;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(m, i, s, e);
    return n;
}

/* A 1-based start position, as string.find takes it: negative counts from the end. */
static size_t start_index(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 1;
    return len + (size_t)pos + 1;
}

static int has_specials(const char *p, size_t lp)
{
    for (size_t i = 0; i < lp; i++)
        if (strchr("^$*+?.([%-", p[i]) != NULL && p[i] != '\0')
            return 1;
    return 0;
}

/* Plain substring search, counted against the budget like the matcher. */
static const char *find_plain(struct matcher *m, const char *s, size_t ls, const char *p, size_t lp)
{
    if (lp == 0)
        return s;
    if (lp > ls)
        return NULL;
    const char *last = s + (ls - lp);
    for (const char *at = s; at <= last; at++) {
        at = memchr(at, p[0], (size_t)(last - at) + 1);
        if (at == NULL)
            return NULL;
        charge(m, lp);
        if (memcmp(at + 1, p + 1, lp - 1) == 0)
            return at;
    }
    return NULL;
}

static int find_or_match(lua_State *L, int find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_index(luaL_optinteger(L, 3, 1), ls);
    if (init > ls + 1) {
        luaL_pushfail(L);
        return 1;
    }
    struct matcher m;
    matcher_init(&m, L, s, ls, p + lp);
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        const char *at = find_plain(&m, s + init - 1, ls - init + 1, p, lp);
        if (at == NULL) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (lua_Integer)(at - s) + 1);
        lua_pushinteger(L, (lua_Integer)(at - s) + (lua_Integer)lp);
        return 2;
    }
    int anchored = lp > 0 && *p == '^';
    if (anchored)
        p++;
    const char *from = s + init - 1;
    do {
        matcher_reset(&m);
        const char *e = do_match(&m, from, p);
        if (e != NULL) {
            if (!find)
                return push_all(&m, from, e);
            lua_pushinteger(L, (lua_Integer)(from - s) + 1);
            lua_pushinteger(L, (lua_Integer)(e - s));
            return push_all(&m, NULL, NULL) + 2;
        }
    } while (from++ < m.subj_end && !anchored);
    luaL_pushfail(L);
    return 1;
}

static int l_string_find(lua_State *L)
{
    return find_or_match(L, 1);
}

static int l_string_match(lua_State *L)
{
    return find_or_match(L, 0);
}

/* The iterator of gmatch: upvalues are the subject, the pattern and a state userdata. */
struct gmatch_state {
    size_t pos;       /* offset where the next attempt starts */
    ptrdiff_t last_e; /* offset where the last match ended, or -1 */
};

static int gmatch_next(lua_State *L)
{
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    struct gmatch_state *st = lua_touserdata(L, lua_upvalueindex(3));
    struct matcher m;
    matcher_init(&m, L, s, ls, p + lp);
    for (const char *from = s + st->pos; from <= m.subj_end; from++) {
        matcher_reset(&m);
        const char *e = do_match(&m, from, p);
        /* An empty match right where the last one ended is skipped (Lua 5.4). */
        if (e != NULL && e - s != st->last_e) {
            st->pos = (size_t)(e - s);
            st->last_e = e - s;
            return push_all(&m, from, e);
        }
    }
    st->pos = ls + 1;
    return 0;
}

static int l_string_gmatch(lua_State *L)
{
    size_t ls;
    luaL_checklstring(L, 1, &ls);
    luaL_checkstring(L, 2);
    size_t init = start_index(luaL_optinteger(L, 3, 1), ls);
    lua_settop(L, 2);
    struct gmatch_state *st = lua_newuserdatauv(L, sizeof *st, 0);
    st->pos = init > ls + 1 ? ls + 1 : init - 1; /* past the end: nothing matches */
    st->last_e = -1;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

static void check_size(lua_State *L, size_t n)
{
    if (n > HS_LUA_MAX_STRING)
        luaL_error(L, "resulting string too large (over %d MiB)", (int)(HS_LUA_MAX_STRING >> 20));
}

/* Appends the replacement string (argument 3) for the match s..e, expanding %0-%9 and %%. */
static void add_template(struct matcher *m, luaL_Buffer *b, const char *s, const char *e)
{
    size_t lr;
    const char *r = lua_tolstring(m->L, 3, &lr);
    const char *end = r + lr;
    while (r < end) {
        const char *pct = memchr(r, '%', (size_t)(end - r));
        if (pct == NULL) {
            luaL_addlstring(b, r, (size_t)(end - r));
            break;
        }
        luaL_addlstring(b, r, (size_t)(pct - r));
        r = pct + 1;
        if (r < end && *r == '%') {
            luaL_addchar(b, '%');
        } else if (r < end && isdigit((unsigned char)*r)) {
            if (*r == '0')
                luaL_addlstring(b, s, (size_t)(e - s));
            else {
                push_capture(m, *r - '1', s, e);
                luaL_tolstring(m->L, -1, NULL);
                lua_remove(m->L, -2);
                luaL_addvalue(b);
            }
        } else {
            luaL_error(m->L, "invalid use of '%%' in replacement string");
        }
        r++;
        tick(m);
    }
}

/* Appends the replacement for the match s..e, by the type of argument 3. */
static void add_replacement(struct matcher *m, luaL_Buffer *b, const char *s, const char *e,
                            int kind)
{
    lua_State *L = m->L;
    if (kind == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_all(m, s, e);
        lua_call(L, n, 1);
    } else if (kind == LUA_TTABLE) {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_template(m, b, s, e);
        return;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s)); /* nil or false: keep the original text */
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    } else {
        luaL_addvalue(b);
    }
}

static int l_string_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int kind = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L,
                     kind == LUA_TNUMBER || kind == LUA_TSTRING || kind == LUA_TFUNCTION ||
                         kind == LUA_TTABLE,
                     3, "string/function/table");
    struct matcher m;
    int anchored = lp > 0 && *p == '^';
    if (anchored) {
        p++;
        lp--;
    }
    matcher_init(&m, L, s, ls, p + lp);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *at = s, *last_e = NULL;
    lua_Integer n = 0;
    while (n < max) {
        matcher_reset(&m);
        const char *e = do_match(&m, at, p);
        if (e != NULL && e != last_e) {
            n++;
            add_replacement(&m, &b, at, e, kind);
            at = last_e = e;
        } else if (at < m.subj_end) {
            luaL_addchar(&b, *at++);
        } else {
            break;
        }
        check_size(L, luaL_bufflen(&b));
        if (anchored)
            break;
    }
    if (n == 0) {
        lua_pushvalue(L, 1); /* nothing replaced: the subject itself */
    } else {
        luaL_addlstring(&b, at, (size_t)(m.subj_end - at));
        check_size(L, luaL_bufflen(&b));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void hs__lua_open_patterns(lua_State *L, int string_table)
{
    static const luaL_Reg funcs[] = {
        {"find", l_string_find},
        {"match", l_string_match},
        {"gmatch", l_string_gmatch},
        {"gsub", l_string_gsub},
        {NULL, NULL},
    };
    string_table = lua_absindex(L, string_table);
    for (const luaL_Reg *f = funcs; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, string_table, f->name);
    }
}
