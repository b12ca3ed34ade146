/*
 * testutil.h - the few helpers every ferry test shares: assertions that report file:line and the
 * FERRY_E* name, unique names for sockets/segments/ports so tests can run in parallel, and a clock.
 */
#ifndef FERRY_TESTUTIL_H
#define FERRY_TESTUTIL_H

#include "ferry/ferry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

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
/* A free TCP port on 127.0.0.1 (bound then released; collisions are retried by callers), picked
 * at random outside the kernel's ephemeral range, so no port-0 bind or outgoing connect of a test
 * running beside this one can take it. */
int tu_free_port(void);
/* Monotonic nanoseconds. */
uint64_t tu_now_ns(void);
/* Sets the process's fatal-signal alarm: the test dies with a message after `seconds`. */
void tu_deadline(unsigned seconds);

/* ---- socket helpers (the socket tests share them) ---- */

/* What every tu_ socket helper waits at most before the test fails. */
#define TU_TIMEOUT_MS 5000

/* Opens a socket of `type` with LINGER 0 and RCVTIMEO/SNDTIMEO TU_TIMEOUT_MS. */
ferry_socket *tu_open_sock(int type);
/* "ipc://<tu_tmpdir()>/<tu_unique(tag)>" into buf. */
void tu_ipc_url(char *buf, size_t cap, const char *tag);
/* A fresh endpoint of transport ("ipc", "tcp", "shm", "inproc") into buf: ipc as tu_ipc_url, tcp
 * on 127.0.0.1 at a free port, the others a unique name. */
void tu_transport_url(char *buf, size_t cap, const char *transport, const char *tag);
/* tu_open_sock for a case run over transport: ipc stays plain ZMTP (FERRY_OPT_SHM_UPGRADE 0, the
 * stream engine; shm:// covers the rings). */
ferry_socket *tu_open_sock_on(int type, const char *transport);
/* Binds s to a fresh tu_transport_url (written to buf), retrying a tcp port taken meanwhile. */
void tu_bind_on(ferry_socket *s, const char *transport, char *buf, size_t cap, const char *tag);
/* Polls s's statistics until exactly n peers are attached (the calls attach them). */
void tu_wait_peers(ferry_socket *s, uint32_t n);
/* Sends the string (without its NUL) as one frame. */
void tu_send_str(ferry_socket *s, const char *str, int flags);
/* Receives one frame (blocking, RCVTIMEO applies) and checks it equals `want` and its MORE flag. */
void tu_recv_str(ferry_socket *s, const char *want, bool more);
/* XPUB: receives one notice and checks it is 0x01+prefix (on) or 0x00+prefix (off). */
void tu_expect_sub(ferry_socket *x, bool on, const char *prefix);

/* ---- leak and shm helpers (the shm and hardening tests share them) ---- */

/* Entries in /proc/self/fd (compare before/after: the count includes the directory's own fd). */
int tu_count_fds(void);
/* Mappings of ferry segment memfds ("memfd:ferry-segment") in /proc/self/maps: the allocator and
 * the sanitizers map and unmap freely, so only ours are counted. */
int tu_count_segment_maps(void);
struct fy_shm_hs;
/* Drives an shm hand-over (fy_shm_hs_step) on fd, waiting with poll: its final result (1 = done,
 * or a FERRY_E* code), FERRY_ETIMEDOUT after 10 s without progress. */
int tu_shm_handover(struct fy_shm_hs *hs, int fd);
struct fy_pipe;
/* Forks; each process returns a live shm pipe over one fresh link (parent side 0, child side 1;
 * ring bytes per direction, SNDHWM and frame size limit as given, 0 = none). *child is the
 * child's pid in the parent and 0 in the child. */
struct fy_pipe *tu_shm_pipe_fork(size_t ring, int sndhwm, uint64_t max_msg, pid_t *child);
/* Sleeps the way the socket core does: announce (fy_shm_pipe_prepare_wait), then poll the wake
 * eventfd and the link's Unix socket, whose hang-up kills the pipe. 10 s at most. */
void tu_shm_pipe_wait(struct fy_pipe *p, bool in, bool out);
/* n bytes derived from seed, and their check (payloads whose corruption must be noticed). */
void tu_fill_seeded(uint8_t *b, size_t n, uint32_t seed);
bool tu_check_seeded(const uint8_t *b, size_t n, uint32_t seed);
/* Frame k of message i in the multi-frame stream tests (test_core_batch, test_interop_batch):
 * its n bytes, and whether got bytes at b are that frame of want bytes. */
void tu_fill_frame(uint8_t *b, size_t n, uint32_t i, uint32_t k);
bool tu_frame_ok(const uint8_t *b, size_t got, size_t want, uint32_t i, uint32_t k);
/* Writes all n bytes to a blocking fd (short writes continued, EINTR retried; fails the test on
 * an error). */
void tu_write_all(int fd, const void *buf, size_t n);
/* ---- the library's test-only fault hook (testfault.c; pattern.h lists the sites) ---- */

/* At site, the next `skip` calls go through and the `fail` after them fail as if out of memory
 * (calls from any thread; _here: only the calling thread's). Resets the hit count. */
void tu_fault_arm(int site, int skip, int fail);
void tu_fault_arm_here(int site, int skip, int fail);
/* Calls still to let through before the remaining failures. */
void tu_fault_set_skip(int skip);
/* Disarms: every site goes through. */
void tu_fault_off(void);
/* Calls failed since the last arm, and failures still to come. */
int tu_fault_hits(void);
int tu_fault_left(void);

/* CPU time (user + system) this process has used so far, in milliseconds. */
double tu_cpu_ms(void);

#endif
