/*
 * test_pattern_fanout.c - one PUB feeding more subscriber processes than the machine has CPUs.
 *
 * The fan-out collapse (docs/design.md "Fan-out on few CPUs"): with more runnable processes than
 * CPUs, a subscriber that was woken but is still waiting for its CPU made the publisher pay a
 * wake-up (futex + eventfd write) on every later message, so the publisher spent its time in
 * system calls and every subscriber starved with it. This test runs one publisher and
 * max(4, CPUs + 2) subscriber processes over shm:// (spinning and pure blocking, SPIN_NS 0),
 * ipc:// upgraded to shared memory, and blocking ipc:// without the upgrade and tcp://, and
 * checks:
 *  - with SNDHWM/RCVHWM 0 every subscriber receives every message exactly once and in order,
 *    then the end marker (a lost wake-up hangs a subscriber and fails the test at its deadline);
 *  - the publisher never drops (drops_hwm stays 0) and finishes its stream;
 *  - over shared memory, the publisher's write system calls during the stream (its wake-ups: the
 *    shm data path writes nothing else) are at most one per time a subscriber announced a sleep,
 *    plus a small allowance: one wake per sleep, not one per message. Each announcement is
 *    preceded by one read of the subscriber's wake eventfd (shm_pipe.c drains it before arming),
 *    so the subscribers' read system calls bound the announcements from above. Both counts come
 *    from /proc/self/io (the check is skipped when the kernel does not account them);
 *  - over ipc:// and tcp://, the subscribers together make at most one read per two messages
 *    received: the publisher's links batch their writes even though writing to the other links
 *    keeps each one "quiet" between two of its own appends.
 * Nothing here measures time.
 */
#include "testutil.h"

#include "ferry/ferry.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SUBS 8

/* Under ThreadSanitizer one send to 4 links takes about the engine's 10 us quiet gap by itself,
 * so the publisher really is "quiet" between messages and writing each one at once is the
 * engine's rule working, not the collapse: the read bound below is then not checked. The same
 * holds under AddressSanitizer on this VM: in CI (2026-12-07) a tcp send to 4 links took 42 us
 * with the publisher on CPU 99% of its loop (19 052 reads for 12 000 messages). The plain build
 * checks it (sends of 1-20 us there). */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define FAN_SLOW_SENDS 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define FAN_SLOW_SENDS 1
#endif
#endif
#ifndef FAN_SLOW_SENDS
#define FAN_SLOW_SENDS 0
#endif
#define END_MARKER UINT64_MAX

/* CPU time of the calling thread: the publisher's sends and writes run on it. */
static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    CHECK(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct sub_result {
    _Atomic int joined; /* received a probe: its subscription reached the publisher */
    _Atomic int done;
    uint64_t received; /* stream messages, in order */
    long nvcsw;        /* voluntary context switches from the first probe to the end marker */
    long long syscr;   /* read system calls over the same span, -1 when not accounted */
    int err;           /* 0, or the line that failed */
    uint64_t bad_value;
} sub_result;

typedef struct shared_ctl {
    _Atomic int bound; /* url holds the publisher's bound endpoint */
    char url[300];
    sub_result sub[MAX_SUBS];
} shared_ctl;

typedef struct fan_case {
    const char *name;
    const char *scheme; /* shm, ipc, tcp */
    int upgrade;        /* ipc: FERRY_OPT_SHM_UPGRADE */
    bool shm_path;      /* the data travels through shared-memory rings */
    int spin_ns;        /* -1: the default */
    uint64_t msgs;
} fan_case;

static long nvcsw_now(void)
{
    struct rusage ru;
    CHECK(getrusage(RUSAGE_SELF, &ru) == 0);
    return ru.ru_nvcsw;
}

/* A /proc/self/io counter (syscr, syscw) of this process, -1 when not available. */
static long long proc_io(const char *key)
{
    FILE *f = fopen("/proc/self/io", "r");
    if (!f)
        return -1;
    char line[128];
    long long v = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0 && sscanf(line + strlen(key), ": %lld", &v) == 1)
            break;
    fclose(f);
    return v;
}

static void set_common(ferry_socket *s, const fan_case *c)
{
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SNDHWM, 0));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RCVHWM, 0));
    if (c->spin_ns >= 0)
        CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SPIN_NS, c->spin_ns));
    if (strcmp(c->scheme, "ipc") == 0)
        CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SHM_UPGRADE, c->upgrade));
}

#define SUB_FAIL(r, v)                                                                             \
    do {                                                                                           \
        (r)->err = __LINE__;                                                                       \
        (r)->bad_value = (uint64_t)(v);                                                            \
        goto out;                                                                                  \
    } while (0)

/* A subscriber process: everything after the probes must be 1, 2, ..., msgs, END_MARKER. */
static void sub_main(const fan_case *c, shared_ctl *ctl, sub_result *r)
{
    uint64_t end = tu_now_ns() + 20ull * 1000000000u;
    while (!atomic_load(&ctl->bound)) {
        CHECK(tu_now_ns() < end);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    const char *url = ctl->url;
    ferry_socket *s = tu_open_sock(FERRY_SUB);
    set_common(s, c);
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RCVTIMEO, 20000));
    CHECK_OK(ferry_socket_subscribe(s, "", 0));
    CHECK_OK(ferry_socket_connect(s, url));
    uint64_t want = 1;
    long nv0 = 0;
    long long r0 = -1;
    for (;;) {
        uint64_t v;
        ssize_t n = ferry_socket_recv(s, &v, sizeof v, 0, NULL);
        if (n != (ssize_t)sizeof v)
            SUB_FAIL(r, n);
        if (v == 0) {
            if (want != 1)
                SUB_FAIL(r, v); /* a probe after the stream began */
            if (!atomic_load(&r->joined)) {
                nv0 = nvcsw_now();
                r0 = proc_io("syscr");
                atomic_store(&r->joined, 1);
            }
            continue;
        }
        if (v == END_MARKER) {
            if (want != c->msgs + 1)
                SUB_FAIL(r, v);
            break;
        }
        if (v != want)
            SUB_FAIL(r, v);
        want++;
    }
    r->nvcsw = nvcsw_now() - nv0;
    long long r1 = proc_io("syscr");
    r->syscr = r0 >= 0 && r1 >= 0 ? r1 - r0 : -1;
out:
    r->received = want - 1;
    atomic_store(&r->done, 1);
    ferry_socket_close(s);
}

static void make_url(char *url, size_t cap, const fan_case *c)
{
    if (strcmp(c->scheme, "ipc") == 0)
        tu_ipc_url(url, cap, "fan");
    else if (strcmp(c->scheme, "tcp") == 0)
        snprintf(url, cap, "tcp://127.0.0.1:%d", tu_free_port());
    else
        snprintf(url, cap, "shm://%s", tu_unique("fan"));
}

static void run_case(const fan_case *c, int nsubs)
{
    shared_ctl *ctl =
        mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(ctl != MAP_FAILED);
    memset(ctl, 0, sizeof *ctl);

    /* Subscribers are forked before this process has any ferry thread (fork of a
     * multi-threaded process is not something ThreadSanitizer follows); they connect once the
     * publisher is bound. */
    pid_t pids[MAX_SUBS];
    for (int k = 0; k < nsubs; k++) {
        pids[k] = fork();
        CHECK(pids[k] >= 0);
        if (pids[k] == 0) {
            sub_main(c, ctl, &ctl->sub[k]);
            _exit(0);
        }
    }
    ferry_socket *pub = tu_open_sock(FERRY_PUB);
    set_common(pub, c);
    int rc = FERRY_EADDRINUSE;
    for (int tries = 0; tries < 20 && rc == FERRY_EADDRINUSE; tries++) {
        make_url(ctl->url, sizeof ctl->url, c);
        rc = ferry_socket_bind(pub, ctl->url);
    }
    CHECK_OK(rc);
    atomic_store(&ctl->bound, 1);

    /* Slow joiners: probe until every subscriber has seen one (polled with a deadline). */
    uint64_t zero = 0, end = tu_now_ns() + 20ull * 1000000000u;
    for (;;) {
        int joined = 0;
        for (int k = 0; k < nsubs; k++)
            joined += atomic_load(&ctl->sub[k].joined) || atomic_load(&ctl->sub[k].done);
        if (joined == nsubs)
            break;
        CHECK(tu_now_ns() < end);
        CHECK_OK(ferry_socket_send(pub, &zero, sizeof zero, 0));
        struct timespec ts = {0, 1000000}; /* pacing of the probes, not a wait for state */
        nanosleep(&ts, NULL);
    }

    long long w0 = proc_io("syscw");
    uint64_t wall0 = tu_now_ns(), cpu0 = thread_cpu_ns();
    for (uint64_t i = 1; i <= c->msgs; i++)
        CHECK_OK(ferry_socket_send(pub, &i, sizeof i, 0));
    uint64_t wall = tu_now_ns() - wall0, cpu = thread_cpu_ns() - cpu0;
    uint64_t marker = END_MARKER;
    CHECK_OK(ferry_socket_send(pub, &marker, sizeof marker, 0));

    /* The publisher stays open (its queue drains in the background) until every subscriber
     * has its end marker or failed. */
    end = tu_now_ns() + 60ull * 1000000000u;
    for (;;) {
        int done = 0;
        for (int k = 0; k < nsubs; k++)
            done += atomic_load(&ctl->sub[k].done);
        if (done == nsubs)
            break;
        if (tu_now_ns() > end) {
            fprintf(stderr, "%s: a subscriber never got the end marker\n", c->name);
            for (int k = 0; k < nsubs; k++)
                fprintf(stderr, "  sub %d: done %d\n", k, atomic_load(&ctl->sub[k].done));
            CHECK(false);
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    long long w1 = proc_io("syscw");
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(pub, &st));
    ferry_socket_close(pub);

    long sleeps = 0;
    long long reads = 0;
    for (int k = 0; k < nsubs; k++) {
        int wst;
        CHECK(waitpid(pids[k], &wst, 0) == pids[k]);
        CHECK(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
        sub_result *r = &ctl->sub[k];
        if (r->err)
            fprintf(stderr,
                    "%s: sub %d failed at line %d after %" PRIu64 " messages (got %" PRIu64 ")\n",
                    c->name, k, r->err, r->received, r->bad_value);
        CHECK(r->err == 0);
        CHECK(r->received == c->msgs);
        sleeps += r->nvcsw;
        reads = reads < 0 || r->syscr < 0 ? -1 : reads + r->syscr;
    }
    CHECK(st.drops_hwm == 0);
    long long writes = w0 >= 0 && w1 >= 0 ? w1 - w0 : -1;
    printf("%-18s %d subs, %" PRIu64 " msgs each: in order, no drop; publisher writes %lld; "
           "subscribers: reads %lld, sleeps %ld; send loop %.1f ms, on CPU %.0f%%\n",
           c->name, nsubs, c->msgs, writes, reads, sleeps, wall / 1e6,
           wall ? 100.0 * (double)cpu / (double)wall : 100.0);
    if (c->shm_path && writes >= 0 && reads >= 0)
        CHECK(writes <= reads + 4 * nsubs + 16);
    /* Stream links: the publisher batches its writes (engine.c eng_send_done), so a subscriber
     * reads many messages per read. Before the engines discounted each other's write time, a
     * tcp PUB with 4 subscribers on 2 CPUs wrote every message to every link on its own and the
     * subscribers made more reads than there were messages (21 000-27 800 for 4 x 3000). The
     * bound is one read per message: the fixed engine made 0.01-0.63 reads per message in plain
     * builds on this VM, the collapse 1.75-2.3. */
    /* The rule batches only while the publisher sends faster than the quiet gap. A publisher
     * that spent most of its send loop descheduled (a machine loaded by other work: it was seen
     * at load 11 under ASan) leaves every link quiet between its sends, and writing each message
     * at once is then the rule working. The collapse this guards against was CPU-bound (the
     * publisher busy writing every message to every link), so it still fails the check. */
    bool preempted = cpu < wall / 3;
    if (!c->shm_path && reads >= 0 && !FAN_SLOW_SENDS && preempted)
        printf("%-18s read bound not checked: the publisher was on a CPU for %.0f%% of its send "
               "loop\n",
               c->name, 100.0 * (double)cpu / (double)wall);
    if (!c->shm_path && reads >= 0 && !FAN_SLOW_SENDS && !preempted)
        CHECK(reads <= (long long)(c->msgs * (uint64_t)nsubs));
    CHECK(munmap(ctl, sizeof *ctl) == 0);
}

int main(void)
{
    tu_deadline(120);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int nsubs = cpus + 2 > 4 ? (int)cpus + 2 : 4;
    if (nsubs > MAX_SUBS)
        nsubs = MAX_SUBS;
    /* The stream transports only blocking: their spinning rows never collapsed, and each case
     * costs seconds under the sanitizers (process start-up and exit). */
    static const fan_case cases[] = {
        {"shm poll", "shm", 1, true, -1, 10000},     {"shm blocking", "shm", 1, true, 0, 10000},
        {"ipc+shm poll", "ipc", 1, true, -1, 10000}, {"ipc blocking", "ipc", 0, false, 0, 3000},
        {"tcp blocking", "tcp", 1, false, 0, 3000},
    };
    /* Each case in its own process, so that every one starts without ferry threads. */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fflush(stdout);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            run_case(&cases[i], nsubs);
            fflush(stdout);
            _exit(0);
        }
        int st;
        CHECK(waitpid(pid, &st, 0) == pid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    printf("pattern fanout: ok\n");
    return 0;
}
