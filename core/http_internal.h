/* Byte classes the pure HTTP files share: core/http.c (heads), core/http_chunked.c (chunked
 * bodies) and core/http_path.c (paths). Nothing else includes this. */
#ifndef HS_HTTP_INTERNAL_H
#define HS_HTTP_INTERNAL_H

/* A token character of RFC 9110 (header names, chunk extension names). */
static inline int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return 1;
    default:
        return 0;
    }
}

static inline int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static inline int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

#endif
