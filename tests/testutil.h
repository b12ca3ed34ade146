/*
 * testutil.h - the few helpers every ferry test shares: assertions that report file:line and the
 * FERRY_E* name, unique names for sockets/segments/ports so tests can run in parallel, and a clock.
 */
#ifndef FERRY_TESTUTIL_H
#define FERRY_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define TEST_SKIP 77

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Asserts a ferry call returned exactly `want` (0 or a FERRY_E* code) and names both on failure. */
#define CHECK_RC(expr, want)                                                                       \
    do {                                                                                           \
        long long rc_ = (long long)(expr);                                                         \
        long long want_ = (long long)(want);                                                       \
        if (rc_ != want_) {                                                                        \
            fprintf(stderr, "%s:%d: %s returned %lld (%s), expected %lld (%s)\n", __FILE__,        \
                    __LINE__, #expr, rc_, tu_errname((int)rc_), want_, tu_errname((int)want_));    \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_OK(expr) CHECK_RC(expr, 0)

const char *tu_errname(int rc);
/* A name unique to this process and call: "<prefix>-<pid>-<counter>-<random>". Static buffer ring.
 */
const char *tu_unique(const char *prefix);
/* A private scratch directory for this test process (created on first use, 0700). */
const char *tu_tmpdir(void);
/* A free TCP port on 127.0.0.1 (bound then released; collisions are retried by callers). */
int tu_free_port(void);
/* Monotonic nanoseconds. */
uint64_t tu_now_ns(void);
/* Sets the process's fatal-signal alarm: the test dies with a message after `seconds`. */
void tu_deadline(unsigned seconds);

#endif
