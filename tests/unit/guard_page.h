/* Input placed against a guard page (picohttpparser's test idea): a parser that reads one byte
 * past its input faults at once. For the parser tests (test_http.c, test_http_response.c,
 * test_resp.c); include after cmocka.h with GUARD_DATA (bytes readable before the guard page)
 * defined, and pass guard_setup/guard_teardown to cmocka_run_group_tests. */
#ifndef HS_TEST_GUARD_PAGE_H
#define HS_TEST_GUARD_PAGE_H

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static char *guard_map;
static size_t guard_map_len;

/* Maps GUARD_DATA readable bytes followed by one PROT_NONE page (/dev/zero: MAP_ANONYMOUS is
 * outside POSIX). */
static int guard_setup(void **state)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    int fd = open("/dev/zero", O_RDWR);
    void *m;

    (void)state;
    if (fd < 0)
        return -1;
    guard_map_len = GUARD_DATA + page;
    m = mmap(NULL, guard_map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return -1;
    guard_map = m;
    return mprotect(guard_map + GUARD_DATA, page, PROT_NONE);
}

static int guard_teardown(void **state)
{
    (void)state;
    return munmap(guard_map, guard_map_len);
}

/* Copies s[0..n) so that it ends exactly at the guard page; returns where it starts. */
static const char *guard_put(const char *s, size_t n)
{
    assert_true(n <= GUARD_DATA);
    memmove(guard_map + GUARD_DATA - n, s, n);
    return guard_map + GUARD_DATA - n;
}

#endif
