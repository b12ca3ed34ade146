/*
 * test_ring_ffi.c - the exported (non-inline) copies of the SPSC fast paths, as FFI users and
 * FERRY_SPSC_NO_INLINE callers reach them: same behaviour as the inline versions.
 */
#define FERRY_SPSC_NO_INLINE 1
#include "ferry/ring.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

int main(void)
{
    tu_deadline(30);
    size_t cap = 4096, size = ferry_spsc_footprint(cap);
    void *mem = aligned_alloc(128, size);
    CHECK(mem);
    CHECK_OK(ferry_spsc_format(mem, size, cap));
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
    CHECK_OK(ferry_spsc_tx_init(&tx, mem, size));
    CHECK_OK(ferry_spsc_rx_init(&rx, mem, size));

    /* These are the library's symbols, not inline copies. */
    int (*reserve)(ferry_spsc_tx *, size_t, void **) = ferry_spsc_reserve;
    CHECK(reserve != NULL);

    void *w;
    CHECK_OK(ferry_spsc_reserve(&tx, 10, &w));
    CHECK_RC(ferry_spsc_reserve(&tx, 10, &w), FERRY_EBUSY);
    memcpy(w, "0123456789", 10);
    CHECK_RC(ferry_spsc_commit(&tx, 11, 0), FERRY_EINVAL);
    CHECK_OK(ferry_spsc_commit(&tx, 10, FERRY_RING_DEFER));
    const void *d;
    size_t len;
    CHECK_RC(ferry_spsc_peek(&rx, &d, &len), FERRY_EAGAIN);
    CHECK_OK(ferry_spsc_flush(&tx));
    CHECK_OK(ferry_spsc_peek(&rx, &d, &len));
    CHECK(len == 10 && memcmp(d, "0123456789", 10) == 0);
    CHECK_RC(ferry_spsc_peek(&rx, &d, &len), FERRY_EBUSY);
    CHECK_OK(ferry_spsc_release(&rx, FERRY_RING_DEFER));
    CHECK_RC(ferry_spsc_release(&rx, 0), FERRY_EINVAL);
    CHECK_OK(ferry_spsc_rx_flush(&rx));
    CHECK(atomic_load(rx.head_word_) == 24);

    char buf[64];
    CHECK_OK(ferry_spsc_write(&tx, "abc", 3, 0));
    CHECK_RC(ferry_spsc_read(&rx, buf, 2, 0), FERRY_EMSGSIZE);
    CHECK_RC(ferry_spsc_read(&rx, buf, sizeof buf, 0), 3);
    CHECK(memcmp(buf, "abc", 3) == 0);
    CHECK_RC(ferry_spsc_read(&rx, buf, sizeof buf, 0), FERRY_EAGAIN);
    CHECK_RC(ferry_spsc_write(&tx, buf, FERRY_SPSC_MAX_RECORD(cap) + 1, 0), FERRY_EMSGSIZE);

    /* A lying producer: the exported peek fails the endpoint like the inline one. */
    atomic_store(tx.tail_word_, 5);
    CHECK_RC(ferry_spsc_peek(&rx, &d, &len), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_read(&rx, buf, sizeof buf, 0), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_release(&rx, 0), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_rx_flush(&rx), FERRY_EPROTO);
    free(mem);
    printf("ring ffi: ok\n");
    return 0;
}
