#include "core/scaffold.h"
#include "core/hs.h"
#include "core/templates.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int hs_scaffold_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > HS_SCAFFOLD_NAME_MAX)
        return 0;
    if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z')))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

/* The template with every NAME replaced by name, in a new string (caller frees), or NULL. */
static char *expand(const char *tpl, const char *name)
{
    size_t count = 0, nl = strlen(name);
    for (const char *p = tpl; (p = strstr(p, "NAME")) != NULL; p += 4)
        count++;
    size_t len = strlen(tpl) + count * nl;
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    char *o = out;
    for (const char *p = tpl; *p;) {
        if (strncmp(p, "NAME", 4) == 0) {
            memcpy(o, name, nl);
            o += nl;
            p += 4;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

/* Creates path exclusively and writes text. Returns 0 or a negative errno. */
static int write_new(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int r = -errno;
            close(fd);
            unlink(path);
            return r;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0) {
        int r = -errno;
        unlink(path);
        return r;
    }
    return 0;
}

int hs_scaffold_write(const char *dir, const char *name, char *err, size_t errlen)
{
    char hpath[4096], spath[4096];
    if (!hs_scaffold_name_ok(name)) {
        snprintf(err, errlen,
                 "'%s' is not a handler name: a letter, then letters, digits, '_' or '-' "
                 "(at most %d)",
                 name, HS_SCAFFOLD_NAME_MAX);
        return HS_EBADSPEC;
    }
    snprintf(hpath, sizeof hpath, "%s/%s.lua", dir, name);
    snprintf(spath, sizeof spath, "%s/%s_spec.lua", dir, name);
    if (access(hpath, F_OK) == 0 || access(spath, F_OK) == 0) {
        snprintf(err, errlen, "%s or %s exists already; not overwriting", hpath, spath);
        return -EEXIST;
    }
    char *h = expand(hs_template_handler, name);
    char *s = expand(hs_template_handler_spec, name);
    int r = (h && s) ? 0 : -ENOMEM;
    if (r == 0 && (r = write_new(hpath, h)) != 0)
        snprintf(err, errlen, "cannot write %s: %s", hpath, strerror(-r));
    if (r == 0 && (r = write_new(spath, s)) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", spath, strerror(-r));
        unlink(hpath);
    }
    if (r == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    free(h);
    free(s);
    return r;
}
