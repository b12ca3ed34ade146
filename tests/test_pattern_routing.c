/*
 * test_pattern_routing.c - the ROUTER routing-id table: explicit ids, generated
 * libzmq-style ids (0x00 + big-endian uint32), duplicates refused, generation
 * skipping ids a peer already claimed.
 */
#include "testutil.h"

#include "ferry/ferry.h"
#include "pattern/routing.h"

#include <string.h>

static int peers[4096];

static void test_explicit(void)
{
    fy_routing t;
    fy_routing_init(&t);
    CHECK(fy_routing_find(&t, "A", 1) == NULL);
    CHECK_OK(fy_routing_add(&t, "A", 1, &peers[0]));
    CHECK_OK(fy_routing_add(&t, "AB", 2, &peers[1]));
    CHECK(fy_routing_find(&t, "A", 1) == &peers[0]);
    CHECK(fy_routing_find(&t, "AB", 2) == &peers[1]);
    CHECK(fy_routing_find(&t, "ABC", 3) == NULL);
    /* A second peer with a taken id is refused; the first keeps it. */
    CHECK_RC(fy_routing_add(&t, "A", 1, &peers[2]), FERRY_EEXIST);
    CHECK(fy_routing_find(&t, "A", 1) == &peers[0]);
    /* Bad ids and peers. */
    CHECK_RC(fy_routing_add(&t, "", 0, &peers[3]), FERRY_EINVAL);
    CHECK_RC(fy_routing_add(&t, "x", 1, NULL), FERRY_EINVAL);
    unsigned char big[256];
    memset(big, 'z', sizeof big);
    CHECK_RC(fy_routing_add(&t, big, 256, &peers[3]), FERRY_EINVAL);
    CHECK_OK(fy_routing_add(&t, big, 255, &peers[3]));
    CHECK(fy_routing_find(&t, big, 255) == &peers[3]);
    CHECK(fy_routing_find(&t, big, 256) == NULL);
    CHECK(fy_routing_find(&t, big, 0) == NULL);
    CHECK(fy_routing_size(&t) == 3);
    CHECK_OK(fy_routing_remove(&t, "A", 1));
    CHECK_RC(fy_routing_remove(&t, "A", 1), FERRY_ENOENT);
    CHECK_RC(fy_routing_remove(&t, "", 0), FERRY_ENOENT);
    CHECK(fy_routing_find(&t, "A", 1) == NULL);
    /* Once freed, the id can be claimed again. */
    CHECK_OK(fy_routing_add(&t, "A", 1, &peers[2]));
    CHECK(fy_routing_find(&t, "A", 1) == &peers[2]);
    fy_routing_fini(&t);
    fy_routing_fini(NULL);
}

static uint32_t id_num(const unsigned char id[5])
{
    return (uint32_t)id[1] << 24 | (uint32_t)id[2] << 16 | (uint32_t)id[3] << 8 | id[4];
}

static void test_generated(void)
{
    fy_routing t;
    fy_routing_init(&t);
    unsigned char id[FY_ROUTING_GEN_LEN], prev[FY_ROUTING_GEN_LEN];
    CHECK_OK(fy_routing_generate(&t, &peers[0], id));
    CHECK(id[0] == 0);
    CHECK(fy_routing_find(&t, id, 5) == &peers[0]);
    memcpy(prev, id, 5);
    /* Consecutive generated ids count up by one, like libzmq's. */
    CHECK_OK(fy_routing_generate(&t, &peers[1], id));
    CHECK(id[0] == 0);
    CHECK(id_num(id) == id_num(prev) + 1);
    CHECK(fy_routing_find(&t, id, 5) == &peers[1]);
    CHECK_RC(fy_routing_generate(&t, NULL, id), FERRY_EINVAL);

    /* A peer that claimed the next ids explicitly forces generation to skip them.
     */
    uint32_t n = id_num(id);
    for (uint32_t k = 1; k <= 3; k++) {
        unsigned char claim[5] = {0, (unsigned char)((n + k) >> 24), (unsigned char)((n + k) >> 16),
                                  (unsigned char)((n + k) >> 8), (unsigned char)(n + k)};
        CHECK_OK(fy_routing_add(&t, claim, 5, &peers[10 + k]));
    }
    CHECK_OK(fy_routing_generate(&t, &peers[2], id));
    CHECK(id_num(id) == n + 4);
    CHECK(fy_routing_find(&t, id, 5) == &peers[2]);
    /* The claimed ones still map to their claimants. */
    unsigned char c1[5] = {0, (unsigned char)((n + 1) >> 24), (unsigned char)((n + 1) >> 16),
                           (unsigned char)((n + 1) >> 8), (unsigned char)(n + 1)};
    CHECK(fy_routing_find(&t, c1, 5) == &peers[11]);

    /* Many peers: all distinct, all found. */
    unsigned char ids[1000][5];
    for (int i = 0; i < 1000; i++)
        CHECK_OK(fy_routing_generate(&t, &peers[100 + i], ids[i]));
    for (int i = 0; i < 1000; i++)
        CHECK(fy_routing_find(&t, ids[i], 5) == &peers[100 + i]);
    for (int i = 0; i < 1000; i++)
        CHECK_OK(fy_routing_remove(&t, ids[i], 5));
    CHECK(fy_routing_size(&t) == 6);
    fy_routing_fini(&t);
}

static void test_random_start(void)
{
    /* Two tables start their counters at independent random points (libzmq does
     * the same). */
    fy_routing a, b;
    fy_routing_init(&a);
    fy_routing_init(&b);
    unsigned char ia[5], ib[5];
    CHECK_OK(fy_routing_generate(&a, &peers[0], ia));
    CHECK_OK(fy_routing_generate(&b, &peers[0], ib));
    /* Equal starts would happen with probability 2^-32. */
    CHECK(memcmp(ia, ib, 5) != 0);
    fy_routing_fini(&a);
    fy_routing_fini(&b);
}

int main(void)
{
    tu_deadline(60);
    test_explicit();
    test_generated();
    test_random_start();
    return 0;
}
