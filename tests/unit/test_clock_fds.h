/* Two helpers every socket-level unit test needs: a monotonic clock in milliseconds (to bound
 * the loops that pump an event base) and the count of this process's open descriptors (to
 * show a test leaked none). Include after the system headers. */
#ifndef HS_TEST_CLOCK_FDS_H
#define HS_TEST_CLOCK_FDS_H

#include <dirent.h>
#include <time.h>

static inline long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Entries of /proc/self/fd (the directory's own descriptor included), or -1. */
static inline int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

#endif
