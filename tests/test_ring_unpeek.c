/*
 * test_ring_unpeek.c - ferry_spsc_unpeek: a peeked record put back is returned again by the next
 * peek (same bytes, same length), across the wrap (padding record) too; release after unpeek is an
 * error; unpeek without a peek is FERRY_EINVAL. The batch receive path relies on it to leave a
 * record it does not handle to the ordinary receive.
 */
#include "testutil.h"

#include "ferry/ring.h"

#include <string.h>

int main(void)
{
    size_t cap = 4096, size = ferry_spsc_footprint(cap);
    void *mem = aligned_alloc(128, size);
    CHECK(mem);
    CHECK_OK(ferry_spsc_format(mem, size, cap));
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
    CHECK_OK(ferry_spsc_tx_init(&tx, mem, size));
    CHECK_OK(ferry_spsc_rx_init(&rx, mem, size));
    CHECK_RC(ferry_spsc_unpeek(NULL), FERRY_EINVAL);
    CHECK_RC(ferry_spsc_unpeek(&rx), FERRY_EINVAL);
    uint8_t buf[1000];
    /* 1000-byte records: the fifth one wraps (a padding record fills the end of the ring). */
    for (uint32_t i = 0; i < 40; i++) {
        memset(buf, (int)i, sizeof buf);
        size_t len = 900 + i % 7;
        CHECK_OK(ferry_spsc_write(&tx, buf, len, 0));
        const void *d1, *d2;
        size_t l1, l2;
        CHECK_OK(ferry_spsc_peek(&rx, &d1, &l1));
        CHECK_OK(ferry_spsc_unpeek(&rx));
        CHECK_RC(ferry_spsc_release(&rx, 0), FERRY_EINVAL); /* nothing peeked any more */
        CHECK_RC(ferry_spsc_unpeek(&rx), FERRY_EINVAL);
        CHECK_OK(ferry_spsc_peek(&rx, &d2, &l2));
        CHECK(d1 == d2 && l1 == len && l2 == len);
        CHECK(((const uint8_t *)d2)[0] == (uint8_t)i &&
              ((const uint8_t *)d2)[len - 1] == (uint8_t)i);
        CHECK_OK(ferry_spsc_release(&rx, 0));
        CHECK_RC(ferry_spsc_peek(&rx, &d1, &l1), FERRY_EAGAIN);
    }
    free(mem);
    return 0;
}
