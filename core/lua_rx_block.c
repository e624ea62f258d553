/* A large read given to on_message without a copy: the read goes straight into the block that
 * becomes the message's Lua string.
 *
 * Why: a script's message is a Lua string, and Lua 5.4's API copies every string it is given
 * (lua_pushlstring allocates the string and memcpy's the bytes in). For an echo of 4 KiB
 * messages pipelined, each 64 KiB read was copied twice: by the kernel into the input buffer,
 * then into the string, about 1.2 µs per read on the bench machine, and the servers it is
 * compared with copy once (bench/results/placement.md, RESULTS.md).
 *
 * How: lua_pushlstring of a long string asks the state's allocator for exactly
 * str_head + len + 1 bytes, tagged LUA_TSTRING, and copies the bytes after the header
 * (getstr). So the read goes into a block of our own at str_head; the push names that block
 * (rx_want); lua_alloc hands the block over for that one request (hs__lua_rx_take) instead of
 * a fresh one; Lua's copy then has the same source and destination, which glibc's memcpy
 * returns from at once. str_head is measured on the running Lua, not assumed: if a Lua did not
 * ask for that size, or asked for anything else first, the block is not taken and the push
 * copies as before; nothing depends on the hand-over happening. */
#include "core/hs.h"
#include "core/lua_internal.h"

#include <stdlib.h>
#include <string.h>

/* A read of this many bytes or more is handed over; a smaller one is copied (a block the size
 * of a whole read held by a small string would waste memory until the string is collected). */
#define RX_MIN (16 * 1024)

/* The header size of a long string: the allocator sees str_head + len + 1 for a string of
 * len bytes. Measured once per state with a string of a known length. */
void hs__lua_rx_calibrate(struct hs_lua *hl)
{
    char probe[100];
    memset(probe, 'x', sizeof probe);
    hl->rx_probe = 1;
    hl->rx_probe_size = 0;
    lua_pushlstring(hl->L, probe, sizeof probe);
    lua_pop(hl->L, 1);
    hl->rx_probe = 0;
    size_t n = hl->rx_probe_size;
    /* A header of a few words, aligned as malloc aligns: anything else is not understood. */
    if (n > sizeof probe + 1 && n - sizeof probe - 1 <= 64 && (n - sizeof probe - 1) % 8 == 0)
        hl->str_head = n - sizeof probe - 1;
    else
        hl->str_head = 0;
}

unsigned char *hs__lua_rx_buffer(struct hs_lua *hl, size_t size)
{
    if (hl->str_head == 0)
        return NULL;
    if (hl->rx_block == NULL || hl->rx_size < size) {
        free(hl->rx_block);
        hl->rx_block = malloc(hl->str_head + size + 1);
        hl->rx_size = hl->rx_block ? size : 0;
        if (hl->rx_block == NULL)
            return NULL;
    }
    return (unsigned char *)hl->rx_block + hl->str_head;
}

HS_HOT void hs__lua_rx_push(struct hs_lua *hl, lua_State *L, const unsigned char *p, size_t len)
{
    if (hl->rx_block == NULL || p != (unsigned char *)hl->rx_block + hl->str_head || len < RX_MIN) {
        lua_pushlstring(L, (const char *)p, len);
        return;
    }
    size_t want = hl->str_head + len + 1;
    if (len < hl->rx_size) {
        /* Give back the tail a short read left unused (glibc shrinks in place). */
        void *b = realloc(hl->rx_block, want);
        if (b != NULL)
            hl->rx_block = b;
        hl->rx_size = len;
        p = (unsigned char *)hl->rx_block + hl->str_head;
    }
    hl->rx_want = want;
    lua_pushlstring(L, (const char *)p, len);
    /* Taken, or not (the Lua asked otherwise: the push copied, and the block serves again). */
    hl->rx_want = 0;
}

void *hs__lua_rx_take(struct hs_lua *hl, size_t nsize)
{
    if (hl->rx_probe) {
        if (hl->rx_probe_size == 0)
            hl->rx_probe_size = nsize; /* the first string asked for is the probe's */
        return NULL;
    }
    if (nsize != hl->rx_want)
        return NULL;
    void *b = hl->rx_block;
    hl->rx_block = NULL;
    hl->rx_size = 0;
    hl->rx_want = 0;
    return b;
}

void hs__lua_rx_free(struct hs_lua *hl)
{
    free(hl->rx_block);
    hl->rx_block = NULL;
    hl->rx_size = 0;
}
