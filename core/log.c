#include "core/log.h"
#include "core/clock.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum hs_log_level hs__log_level = HS_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static char log_tag[32];

void hs_log_set_level(enum hs_log_level level)
{
    hs__log_level = level;
}

int hs_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

const char *hs_log_level_name(enum hs_log_level level)
{
    return level_names[level];
}

void hs_log_set_tag(const char *tag)
{
    if (tag == NULL)
        log_tag[0] = '\0';
    else
        snprintf(log_tag, sizeof log_tag, "%s ", tag);
}

void hs__log_write(enum hs_log_level level, const char *fmt, ...)
{
    char line[4096];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], log_tag);
    if (n < 0)
        return;
    size_t head = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + head, sizeof line - head, fmt, ap);
    va_end(ap);

    /* Fold embedded newlines (tracebacks) so one event is one line; the traceback's leading
     * tabs go too. Other control bytes are written as \xHH so text from a client can never
     * fake a log line or drive a terminal. */
    char out[sizeof line * 2];
    size_t o = 0;
    int cut = 0;
    for (const unsigned char *p = (const unsigned char *)line; *p; p++) {
        if (o + 20 >= sizeof out) {
            cut = 1;
            break;
        }
        if (*p == '\n') {
            memcpy(out + o, " | ", 3);
            o += 3;
            while (p[1] == '\t')
                p++;
        } else if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)snprintf(out + o, 5, "\\x%02x", *p);
        } else {
            out[o++] = (char)*p;
        }
    }
    if (cut || strlen(line) == sizeof line - 1) {
        memcpy(out + o, " ...[truncated]", 15);
        o += 15;
    }
    out[o++] = '\n';
    /* One write(2) per line so lines from several processes never interleave. */
    ssize_t w = write(STDERR_FILENO, out, o);
    (void)w;
}

int hs_log_due(double *last, double interval)
{
    double now = hs_clock_mono();
    /* 0 is "none yet", not a time: CLOCK_MONOTONIC may start near 0 at boot. */
    if (*last != 0 && now - *last < interval)
        return 0;
    *last = now;
    return 1;
}
