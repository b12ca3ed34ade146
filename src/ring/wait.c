/*
 * wait.c - blocking on a word in shared memory: spin, then sched_yield, then a
 * shared futex.
 *
 * Rings are lock-free, so "wait until readable" needs its own sleeping primitive that works across
 * processes. The sleeper announces itself in ferry_waitword.sleepers before its last look at the
 * condition; the waker publishes its change and looks at sleepers afterwards. Once the waker's
 * store-then-load is ordered by a full barrier, one of them must see the other (Dekker), so a
 * wake-up is never lost and an uncontended wake costs one load instead of a system call. The
 * barrier is a seq_cst fence for generic wakers (ferry_wait_wake); SPSC wakers skip it and the
 * sleeper forces it onto them with membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) (see
 * wait_internal.h). The futex is not FUTEX_PRIVATE because the word lives in a mapping shared
 * between processes.
 *
 * One wake per sleep: `sleepers` holds the sleeper count in its low bits plus two flags. WOKEN is
 * set by the first waker that sees the current sleepers, and every later publish then returns
 * after one load: a sleeper that was woken but has not run yet (its CPU is busy with other
 * processes) must not cost its producer two system calls per message, or a publisher feeding
 * more subscribers than there are CPUs spends its time waking them (the fan-out collapse). Every
 * arm clears WOKEN, so a sleeper that looks again and goes back to sleep is woken again. FUTEX
 * says that some sleeper sleeps in FUTEX_WAIT (ferry_wait_block) rather than on an eventfd
 * (ferry_wait_arm users), so wakers of epoll sleepers skip the FUTEX_WAKE call nobody waits in.
 */
#include "ring/wait_internal.h"

#include "ferry/ring.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FY_WAIT_DEFAULT_SPIN_NS  20000u
#define FY_WAIT_DEFAULT_YIELD_NS 20000u

static inline void fy_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

void fy_wait_spin_pause(uint64_t spun_ns)
{
    if (spun_ns < FY_WAIT_SPIN_PURE_NS)
        fy_cpu_relax();
    else
        sched_yield();
}

static uint64_t fy_wait_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void ferry_wait_policy_init(ferry_wait_policy *pol)
{
    if (!pol)
        return;
    pol->spin_ns = FY_WAIT_DEFAULT_SPIN_NS;
    pol->yield_ns = FY_WAIT_DEFAULT_YIELD_NS;
    pol->eventfd = -1;
}

/*
 * FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a wait
 * interrupted and resumed any number of times never extends the caller's
 * timeout. deadline_ns == 0 means forever.
 */
static int fy_futex_wait(_Atomic uint32_t *word, uint32_t expect, uint64_t deadline_ns)
{
    struct timespec ts, *tsp = NULL;
    if (deadline_ns) {
        ts.tv_sec = (time_t)(deadline_ns / 1000000000u);
        ts.tv_nsec = (long)(deadline_ns % 1000000000u);
        tsp = &ts;
    }
    long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET, expect, tsp, NULL,
                     FUTEX_BITSET_MATCH_ANY);
    if (r == 0)
        return 0;
    switch (errno) {
    case EAGAIN: /* seq moved before we slept: a wake-up happened, re-check */
        return 0;
    case ETIMEDOUT:
        return FERRY_ETIMEDOUT;
    case EINTR:
        return FERRY_EINTR;
    default:
        return -errno;
    }
}

/* 1: this process is registered for global expedited membarriers; -1: it could not register. */
static _Atomic int fy_wait_asym_state;
/* Set when a sleeper's membarrier failed: futex sleeps are then capped (see ferry_wait_block). */
static _Atomic int fy_wait_asym_broken;
static pthread_once_t fy_wait_asym_once = PTHREAD_ONCE_INIT;

static void fy_wait_asym_do_register(void)
{
    long r = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0);
    /* relaxed: the value is only ever read by this process's own later calls. */
    atomic_store_explicit(&fy_wait_asym_state, r == 0 ? 1 : -1, memory_order_relaxed);
}

/* Whether the registration survives fork is not documented: a child registers again. */
static void fy_wait_asym_child(void)
{
    if (atomic_load_explicit(&fy_wait_asym_state, memory_order_relaxed) == 1)
        fy_wait_asym_do_register();
}

static void fy_wait_asym_init(void)
{
    fy_wait_asym_do_register();
    if (atomic_load_explicit(&fy_wait_asym_state, memory_order_relaxed) == 1 &&
        pthread_atfork(NULL, NULL, fy_wait_asym_child) != 0)
        atomic_store_explicit(&fy_wait_asym_state, -1, memory_order_relaxed);
}

bool fy_wait_asym_register(void)
{
    pthread_once(&fy_wait_asym_once, fy_wait_asym_init);
    return atomic_load_explicit(&fy_wait_asym_state, memory_order_relaxed) == 1;
}

/*
 * Announces one more sleeper (futex: it will sleep in FUTEX_WAIT) and clears WOKEN, so the next
 * publish wakes. seq_cst RMW + fence: pairs with the seq_cst fence in ferry_wait_wake and with the
 * full fence of a waker that could not register (seq_cst publish + sleepers load in the SPSC fast
 * paths). Whatever the caller checks after this call is ordered after the announcement, so the
 * waker either sees a sleeper without WOKEN or the caller sees its change. A hostile peer may
 * have written any value: the count saturates instead of wrapping to "nobody".
 */
static void fy_wait_announce(ferry_waitword *w, uint32_t futex)
{
    uint32_t cur = atomic_load_explicit(&w->sleepers, memory_order_relaxed);
    for (;;) {
        uint32_t n = cur & FY_WAIT_COUNT;
        if (n < FY_WAIT_COUNT)
            n++;
        uint32_t nv = (cur & FY_WAIT_FUTEX) | futex | n;
        if (atomic_compare_exchange_weak_explicit(&w->sleepers, &cur, nv, memory_order_seq_cst,
                                                  memory_order_relaxed))
            break;
    }
    atomic_thread_fence(memory_order_seq_cst);
    /* The barrier registered wakers skipped: pairs with the release store + compiler barrier +
     * sleepers load in ferry_spsc_flush/rx_flush. After it returns, every registered thread's
     * publish that precedes its sleepers load in program order is visible to our re-check, or
     * its sleepers load comes after our announcement. */
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) != 0)
        atomic_store_explicit(&fy_wait_asym_broken, 1, memory_order_relaxed);
}

void ferry_wait_arm(ferry_waitword *w)
{
    fy_wait_announce(w, 0);
}

void ferry_wait_disarm(ferry_waitword *w)
{
    /* relaxed: only the count matters; a stale non-zero costs the waker one spurious wake. The
     * last sleeper leaving clears the flags too, so an idle word reads 0 and the inline waker
     * checks (sleepers != 0) stay one load. A hostile peer may have zeroed it, so never take it
     * below zero. */
    uint32_t cur = atomic_load_explicit(&w->sleepers, memory_order_relaxed);
    while ((cur & FY_WAIT_COUNT) != 0) {
        uint32_t n = (cur & FY_WAIT_COUNT) - 1;
        uint32_t nv = n ? (cur & ~FY_WAIT_COUNT) | n : 0;
        if (atomic_compare_exchange_weak_explicit(&w->sleepers, &cur, nv, memory_order_relaxed,
                                                  memory_order_relaxed))
            return;
    }
    if (cur != 0) /* flags without a count: only a peer writes that; clear it */
        atomic_compare_exchange_strong_explicit(&w->sleepers, &cur, 0, memory_order_relaxed,
                                                memory_order_relaxed);
}

int ferry_wait_block(ferry_waitword *w, ferry_wait_ready_fn ready, void *arg,
                     const ferry_wait_policy *pol, int timeout_ms)
{
    if (!w || !ready)
        return FERRY_EINVAL;
    if (ready(arg))
        return 0;
    if (timeout_ms == 0)
        return FERRY_ETIMEDOUT;

    ferry_wait_policy defpol;
    if (!pol) {
        ferry_wait_policy_init(&defpol);
        pol = &defpol;
    }
    uint64_t start = fy_wait_now_ns();
    uint64_t deadline = timeout_ms > 0 ? start + (uint64_t)timeout_ms * 1000000u : 0;
    uint64_t spin_end = start + pol->spin_ns;
    uint64_t yield_end = spin_end + pol->yield_ns;

    /* Spin: the clock is read only every 64 checks to keep the reaction time
     * short. */
    for (unsigned i = 1;; i++) {
        if (ready(arg))
            return 0;
        fy_cpu_relax();
        if ((i & 63) == 0) {
            uint64_t now = fy_wait_now_ns();
            if (deadline && now >= deadline)
                return FERRY_ETIMEDOUT;
            if (now >= spin_end)
                break;
        }
    }
    for (;;) {
        if (ready(arg))
            return 0;
        uint64_t now = fy_wait_now_ns();
        if (deadline && now >= deadline)
            return FERRY_ETIMEDOUT;
        if (now >= yield_end)
            break;
        sched_yield();
    }

    for (;;) {
        /* acquire: pairs with the seq_cst increment of seq in ferry_wait_wake;
         * taken before the re-check so a wake that lands between the check and the
         * futex call changes the value and makes FUTEX_WAIT return at once. */
        uint32_t seq = atomic_load_explicit(&w->seq, memory_order_acquire);
        fy_wait_announce(w, FY_WAIT_FUTEX);
        if (ready(arg)) {
            ferry_wait_disarm(w);
            return 0;
        }
        /* Without a working membarrier a registered waker in another process might miss us: cap
         * each sleep at 10 ms so the condition is re-checked (relaxed: a hint only). */
        uint64_t until = deadline;
        if (atomic_load_explicit(&fy_wait_asym_broken, memory_order_relaxed)) {
            uint64_t cap = fy_wait_now_ns() + 10u * 1000000u;
            if (!until || cap < until)
                until = cap;
        }
        int rc = fy_futex_wait(&w->seq, seq, until);
        if (rc == FERRY_ETIMEDOUT && until != deadline)
            rc = 0;
        ferry_wait_disarm(w);
        if (ready(arg))
            return 0;
        if (rc == FERRY_ETIMEDOUT || rc == FERRY_EINTR)
            return rc;
        if (rc < 0 && rc != FERRY_EAGAIN)
            return rc;
        if (deadline && fy_wait_now_ns() >= deadline)
            return FERRY_ETIMEDOUT;
    }
}

void ferry_wait_wake_slow_(ferry_waitword *w, const ferry_wait_policy *pol)
{
    /* The caller ordered its change before its own load of sleepers (which was non-zero); this
     * reload reads that value or a later one. WOKEN set: a waker already woke every sleeper that
     * announced itself so far (any later announcement clears it), and each of those re-checks
     * after waking or announces again, which sees our change (the argument in the file comment:
     * our load precedes that announcement, which fences). Only the waker whose CAS sets WOKEN
     * makes the system calls. relaxed: the ordering comes from the caller's Dekker half. */
    uint32_t cur = atomic_load_explicit(&w->sleepers, memory_order_relaxed);
    for (;;) {
        if ((cur & FY_WAIT_COUNT) == 0 || (cur & FY_WAIT_WOKEN))
            return;
        if (atomic_compare_exchange_weak_explicit(&w->sleepers, &cur,
                                                  (cur | FY_WAIT_WOKEN) & ~FY_WAIT_FUTEX,
                                                  memory_order_relaxed, memory_order_relaxed))
            break;
    }
    /* seq_cst: pairs with the acquire load of seq in ferry_wait_block; a sleeper
     * that read the old value sees FUTEX_WAIT fail with EAGAIN or is woken below.
     */
    atomic_fetch_add_explicit(&w->seq, 1, memory_order_seq_cst);
    if (cur & FY_WAIT_FUTEX)
        syscall(SYS_futex, (uint32_t *)&w->seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    if (pol && pol->eventfd >= 0) {
        uint64_t one = 1;
        /* A full eventfd counter (EAGAIN on a non-blocking fd) already means
         * "readable". */
        ssize_t r = write(pol->eventfd, &one, sizeof one);
        (void)r;
    }
}

void ferry_wait_wake(ferry_waitword *w, const ferry_wait_policy *pol)
{
    if (!w)
        return;
    /* seq_cst fence: pairs with the fence in ferry_wait_arm. The caller's change
     * to the condition (made before this call) is ordered before the sleepers
     * load. */
    atomic_thread_fence(memory_order_seq_cst);
    uint32_t v = atomic_load_explicit(&w->sleepers, memory_order_relaxed);
    if ((v & FY_WAIT_COUNT) != 0 && !(v & FY_WAIT_WOKEN))
        ferry_wait_wake_slow_(w, pol);
}
