/* Logging: one line per event to stderr, "TIME LEVEL message". */
#ifndef HS_LOG_H
#define HS_LOG_H

enum hs_log_level { HS_LOG_DEBUG, HS_LOG_INFO, HS_LOG_WARN, HS_LOG_ERROR };

/* The current threshold; messages below it are not formatted at all. */
extern enum hs_log_level hs__log_level;

/* Logs one line if level passes the threshold. The level check comes first so a disabled
 * message costs one comparison. */
#define hs_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((int)(level) >= (int)hs__log_level)                                                    \
            hs__log_write((level), __VA_ARGS__);                                                   \
    } while (0)

/* Writes one formatted line to stderr, newlines inside the message folded to " | " so each
 * event stays on one line. Use hs_log() instead of calling this directly. */
void hs__log_write(enum hs_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* For a warning that may repeat fast (messages dropped under load): whether a line may go now,
 * at most one every interval seconds. *last holds the monotonic time (core/clock.h) of the
 * previous line, 0 for none, and is set to now when the answer is yes (1); otherwise 0. */
int hs_log_due(double *last, double interval);

/* Sets the threshold. */
void hs_log_set_level(enum hs_log_level level);

/* Parses "debug", "info", "warn" or "error". Returns the level, or -1 for anything else. */
int hs_log_level_parse(const char *name);

/* Returns the lowercase name of level ("info", ...). */
const char *hs_log_level_name(enum hs_log_level level);

/* Sets a prefix added after the level on every line (for example "w1" for a worker), or
 * clears it with NULL. The string is copied. */
void hs_log_set_tag(const char *tag);

#endif
