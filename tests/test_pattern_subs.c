/*
 * test_pattern_subs.c - the subscription set behind SUB/XSUB filtering and
 * PUB/XPUB fan-out: reference counts as libzmq counts them, prefix matching,
 * the empty prefix, binary prefixes and a larger randomised cross-check against
 * a naive model.
 */
#include "testutil.h"

#include "ferry/ferry.h"
#include "pattern/subs.h"

#include <string.h>

static int count_cb(void *ctx, const void *prefix, size_t len)
{
    (void)prefix;
    size_t *total = ctx;
    *total += len + 1;
    return 0;
}

static int stop_cb(void *ctx, const void *prefix, size_t len)
{
    (void)prefix;
    (void)len;
    int *calls = ctx;
    (*calls)++;
    return 42;
}

static void test_basic(void)
{
    fy_subs s;
    fy_subs_init(&s);
    CHECK(!fy_subs_match(&s, "abc", 3));
    CHECK(!fy_subs_match(&s, "", 0));
    CHECK(fy_subs_size(&s) == 0);

    CHECK_RC(fy_subs_add(&s, "ab", 2), 1);
    CHECK(fy_subs_match(&s, "ab", 2));
    CHECK(fy_subs_match(&s, "abc", 3));
    CHECK(!fy_subs_match(&s, "a", 1));
    CHECK(!fy_subs_match(&s, "ba", 2));
    CHECK(!fy_subs_match(&s, "", 0));

    /* Duplicate subscribe counts: two unsubscribes are needed (libzmq trie
     * semantics). */
    CHECK_RC(fy_subs_add(&s, "ab", 2), 0);
    CHECK(fy_subs_refs(&s, "ab", 2) == 2);
    CHECK(fy_subs_size(&s) == 1);
    CHECK_RC(fy_subs_rm(&s, "ab", 2), 0);
    CHECK(fy_subs_match(&s, "abc", 3));
    CHECK_RC(fy_subs_rm(&s, "ab", 2), 1);
    CHECK(!fy_subs_match(&s, "abc", 3));
    CHECK_RC(fy_subs_rm(&s, "ab", 2), FERRY_ENOENT);
    CHECK(fy_subs_refs(&s, "ab", 2) == 0);

    /* Unsubscribing something never subscribed is refused and changes nothing. */
    CHECK_RC(fy_subs_add(&s, "x", 1), 1);
    CHECK_RC(fy_subs_rm(&s, "xy", 2), FERRY_ENOENT);
    CHECK_RC(fy_subs_rm(&s, "", 0), FERRY_ENOENT);
    CHECK(fy_subs_match(&s, "xyz", 3));
    CHECK(!fy_subs_match(&s, "yx", 2));

    /* The empty prefix matches everything, including empty frames. */
    CHECK_RC(fy_subs_add(&s, NULL, 0), 1);
    CHECK(fy_subs_match(&s, "", 0));
    CHECK(fy_subs_match(&s, "zzz", 3));
    CHECK_RC(fy_subs_rm(&s, "", 0), 1);
    CHECK(!fy_subs_match(&s, "zzz", 3));
    CHECK(!fy_subs_match(&s, NULL, 0));
    fy_subs_fini(&s);

    /* fini leaves a reusable set; fini(NULL) is fine. */
    CHECK(fy_subs_size(&s) == 0);
    CHECK_RC(fy_subs_add(&s, "q", 1), 1);
    fy_subs_fini(&s);
    fy_subs_fini(NULL);
}

static void test_binary_and_lengths(void)
{
    fy_subs s;
    fy_subs_init(&s);
    const unsigned char bin[] = {0x00, 0x01, 0xff, 0x00};
    CHECK_RC(fy_subs_add(&s, bin, 2), 1);
    CHECK(fy_subs_match(&s, bin, 4));
    CHECK(fy_subs_match(&s, bin, 2));
    CHECK(!fy_subs_match(&s, bin, 1));
    const unsigned char other[] = {0x00, 0x02};
    CHECK(!fy_subs_match(&s, other, 2));

    /* Several prefixes of several lengths; removing one length keeps the others
     * working. */
    CHECK_RC(fy_subs_add(&s, "topic", 5), 1);
    CHECK_RC(fy_subs_add(&s, "t", 1), 1);
    CHECK_RC(fy_subs_add(&s, "other", 5), 1);
    CHECK(fy_subs_match(&s, "tx", 2));
    CHECK_RC(fy_subs_rm(&s, "t", 1), 1);
    CHECK(!fy_subs_match(&s, "tx", 2));
    CHECK(fy_subs_match(&s, "topic.a", 7));
    CHECK(fy_subs_match(&s, "otherwise", 9));
    CHECK_RC(fy_subs_rm(&s, "topic", 5), 1);
    CHECK(!fy_subs_match(&s, "topic.a", 7));
    CHECK(fy_subs_match(&s, "otherwise", 9));
    CHECK(fy_subs_size(&s) == 2);

    size_t total = 0;
    CHECK_RC(fy_subs_foreach(&s, count_cb, &total), 0);
    CHECK(total == (2 + 1) + (5 + 1));
    int calls = 0;
    CHECK_RC(fy_subs_foreach(&s, stop_cb, &calls), 42);
    CHECK(calls == 1);

    /* A 1 MiB prefix is just another length. */
    size_t big = 1u << 20;
    unsigned char *buf = malloc(big + 1);
    CHECK(buf);
    memset(buf, 'b', big + 1);
    CHECK_RC(fy_subs_add(&s, buf, big), 1);
    CHECK(fy_subs_match(&s, buf, big + 1));
    CHECK(!fy_subs_match(&s, buf, big - 1));
    free(buf);
    fy_subs_fini(&s);
}

/* Naive model: an array of (prefix, refs). */
#define MODEL_N 64
struct model {
    char p[MODEL_N][4];
    size_t len[MODEL_N];
    int refs[MODEL_N];
};

static bool model_match(const struct model *m, const char *d, size_t len)
{
    for (int i = 0; i < MODEL_N; i++)
        if (m->refs[i] > 0 && m->len[i] <= len && memcmp(m->p[i], d, m->len[i]) == 0)
            return true;
    return false;
}

static void test_random_model(void)
{
    /* Prefixes over a 2-letter alphabet of length 0..3 collide often, exercising
     * shared lengths. */
    struct model m;
    memset(&m, 0, sizeof m);
    int n = 0;
    for (size_t len = 0; len <= 3; len++)
        for (int code = 0; code < (1 << len); code++) {
            for (size_t k = 0; k < len; k++)
                m.p[n][k] = (code >> k) & 1 ? 'b' : 'a';
            m.len[n] = len;
            n++;
        }
    fy_subs s;
    fy_subs_init(&s);
    uint64_t x = 0x12345678u;
    for (int step = 0; step < 20000; step++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int i = (int)((x >> 33) % (uint64_t)n);
        if ((x >> 20) & 1) {
            int rc = fy_subs_add(&s, m.p[i], m.len[i]);
            CHECK_RC(rc, m.refs[i] == 0 ? 1 : 0);
            m.refs[i]++;
        } else {
            int rc = fy_subs_rm(&s, m.p[i], m.len[i]);
            CHECK_RC(rc, m.refs[i] == 0 ? FERRY_ENOENT : (m.refs[i] == 1 ? 1 : 0));
            if (m.refs[i] > 0)
                m.refs[i]--;
        }
        /* Probe with every string of length 0..4. */
        for (size_t len = 0; len <= 4; len++)
            for (int code = 0; code < (1 << len); code++) {
                char d[4];
                for (size_t k = 0; k < len; k++)
                    d[k] = (code >> k) & 1 ? 'b' : 'a';
                CHECK(fy_subs_match(&s, d, len) == model_match(&m, d, len));
            }
    }
    fy_subs_fini(&s);
}

static void test_many(void)
{
    /* Thousands of distinct prefixes force several table growths. */
    fy_subs s;
    fy_subs_init(&s);
    char buf[32];
    for (int i = 0; i < 5000; i++) {
        int l = snprintf(buf, sizeof buf, "k%d.", i);
        CHECK_RC(fy_subs_add(&s, buf, (size_t)l), 1);
    }
    CHECK(fy_subs_size(&s) == 5000);
    for (int i = 0; i < 5000; i++) {
        int l = snprintf(buf, sizeof buf, "k%d.tail", i);
        CHECK(fy_subs_match(&s, buf, (size_t)l));
    }
    CHECK(!fy_subs_match(&s, "k5000.", 6));
    for (int i = 0; i < 5000; i += 2) {
        int l = snprintf(buf, sizeof buf, "k%d.", i);
        CHECK_RC(fy_subs_rm(&s, buf, (size_t)l), 1);
    }
    for (int i = 0; i < 5000; i++) {
        int l = snprintf(buf, sizeof buf, "k%d.x", i);
        CHECK(fy_subs_match(&s, buf, (size_t)l) == (i % 2 == 1));
    }
    fy_subs_fini(&s);
}

int main(void)
{
    tu_deadline(60);
    test_basic();
    test_binary_and_lengths();
    test_random_model();
    test_many();
    return 0;
}
