/*
 * bench.h - internals of `ferry bench` shared between its files.
 *
 * A benchmark row is one (transport, mode, size). The driver (bench.c) asks the supervisor
 * (bench_proc.c) to run it: the transport's setup runs in the parent, then two children pinned to
 * two CPUs run role 0 (pinger / producer) and role 1 (ponger / consumer), or one child runs both
 * roles as threads for in-process transports. Children talk to the parent only through a MAP_SHARED
 * control page (bench_ctl) holding rendezvous words and results, so a crashed or hung child costs
 * one failed row, never the run. Transports (floor, memcpy, kernel, ring, zmq, nng, ferry) are
 * tables of callbacks; message-shaped ones (send/recv a buffer) share the generic loops in
 * bench_loop.c so that every transport is measured by the same code.
 */
#ifndef FERRY_BENCH_H
#define FERRY_BENCH_H

#include "bench_hist.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum bench_mode {
    BENCH_RTT = 0,  /* ping-pong round trips, latency histogram */
    BENCH_THR = 1,  /* one-way stream, msgs/s and bytes/s at the consumer */
    BENCH_IDLE = 2, /* receiver blocked 1 s: its CPU% and the first message's latency after */
    BENCH_FAN = 3,  /* one publisher, 1/2/4 subscribers: msgs/s per subscriber */
    BENCH_MODES = 4,
};
#define BENCH_M(m) (1u << (m))
/* Roles of one row: 0 and 1, or a publisher and up to 4 subscribers (fan-out). */
#define BENCH_MAX_ROLES 5
/* A one-way row sends at least this many messages, so even a slow 1 MiB row has a rate. */
#define BENCH_MIN_MSGS 16
/* An rtt row keeps going past its time (up to 5x) until it has this many samples, so a
 * preemption on a busy machine cannot leave a percentile resting on a handful of round trips. */
#define BENCH_MIN_RTT 200

const char *bench_mode_name(int mode);

/* Everything the command line chose. */
typedef struct bench_cfg {
    const struct bench_transport **tr; /* selected transports, in run order */
    int ntr;
    size_t sizes[32];
    int nsizes;
    unsigned modes; /* BENCH_M() bits */
    double seconds; /* measured time per row */
    double warmup;  /* unmeasured time before it */
    int cpu[2];
    int nice;         /* nice value of the measuring processes (--nice) */
    const char *from; /* --from: rows come from this JSON-lines file */
    bool json, quiet;
    const char *json_out, *csv, *plot;
    double clock_ns; /* cost of one clock_gettime, measured at start */
    double load[2];  /* 1-minute load average before and after the run */
} bench_cfg;

/* Where a floor row was measured: just before or just after the rows of one size section. A row
 * read from a file written before floors were per section has BENCH_FLOOR_RUN (its one floor row
 * stands for the whole run). */
enum bench_floor_at {
    BENCH_FLOOR_RUN = 0,
    BENCH_FLOOR_START = 1,
    BENCH_FLOOR_END = 2,
};

/* One result row. */
typedef struct bench_row {
    const struct bench_transport *tr;
    int mode;
    size_t size;
    int status; /* 0 ok, 1 failed, 2 skipped */
    char note[256];
    uint64_t count; /* round trips (rtt) or messages (thr) measured */
    uint64_t p50, p99, p999, max;
    double msgs_per_s, bytes_per_s;
    double cold_ns, idle_cpu; /* BENCH_IDLE */
    int subs;                 /* BENCH_FAN: subscribers */
    double pub_msgs_per_s;    /* BENCH_FAN: the publisher's send rate */
    double delivered;         /* BENCH_FAN: fraction of published messages the subscribers got */
    double min_msgs_per_s;    /* BENCH_FAN: the slowest subscriber */
    /* A measured rtt row: the floor p50 its p50/floor divides by (its section's opening floor);
     * 0 when there is none or the row came from an older file. */
    uint64_t floor_ns;
    /* Floor rows: the message size of the section they bracket (0 with BENCH_FLOOR_RUN). */
    size_t section;
    int floor_at; /* floor rows: enum bench_floor_at */
} bench_row;

/* Per-role results written by a child into the control page. */
typedef struct bench_result {
    _Atomic int done;
    int rc;         /* 0 ok, else failed */
    char err[160];  /* reason when rc != 0 */
    uint64_t count; /* messages or round trips measured */
    uint64_t ns;    /* measured interval */
    uint64_t bytes;
    uint64_t all; /* fan-out: every message sent (publisher) or received (subscriber) */
    double cold_ns, idle_cpu;
} bench_result;

/* One role's progress counter on a line of its own. */
typedef struct bench_progress_word {
    _Alignas(128) _Atomic uint64_t n;
} bench_progress_word;

/*
 * The MAP_SHARED page(s) between the parent and the children. Rendezvous words are separated by a
 * cache line so the harness never shares a line with the floor's ping-pong line.
 */
typedef struct bench_ctl {
    _Alignas(128) _Atomic uint64_t floor_line; /* the floor's ping-pong counter */
    _Alignas(128) _Atomic uint64_t total;      /* messages role 0 will send; UINT64_MAX = not yet */
    _Atomic uint64_t stamp;                    /* BENCH_IDLE: send time of the cold message */
    _Atomic int ready[BENCH_MAX_ROLES];        /* role is set up (e.g. connected) */
    _Atomic int joined[BENCH_MAX_ROLES];       /* fan-out: the subscriber got its first message */
    _Atomic int bound;                         /* the binding side published its endpoint */
    _Atomic int go;
    _Atomic int
        finished[BENCH_MAX_ROLES]; /* role's body is over: its last message was sent and received */
    char endpoint[256];            /* role 1 publishes where it listens (zmq/nng tcp port) */
    /* Messages each role has handled so far, so a row that times out can say where each side
     * stopped. Each role's word has its own line, away from `total` (which the receiving side
     * reads every message): sharing a line, the two sides' progress stores moved it between the
     * CPUs on every round trip and every few one-way messages, a cost the ring rows (which keep
     * no progress) never paid. */
    bench_progress_word progress[BENCH_MAX_ROLES];
    _Alignas(128) bench_result res[BENCH_MAX_ROLES];
    bench_hist hist; /* rtt samples, written by role 0 */
} bench_ctl;
_Static_assert(sizeof(bench_progress_word) == 128, "one line pair per progress counter");
_Static_assert(offsetof(bench_ctl, progress) / 128 != offsetof(bench_ctl, total) / 128,
               "progress counters away from total's line");

struct bench_job;

/* A transport's message operations (one endpoint in one role). */
typedef struct bench_msg_ops {
    /* Opens the endpoint of `role` into *h. */
    int (*open)(struct bench_job *j, int role, void **h);
    /* Sends len bytes; 0 or an error (the err buffer names it). */
    int (*send)(void *h, const void *buf, size_t len);
    /* Receives exactly one message of up to cap bytes; returns its length or < 0. */
    long (*recv)(void *h, void *buf, size_t cap);
    /* Fan-out only: a receive timeout in ms, after which recv returns BENCH_TIMEDOUT without
     * recording an error (subscribers cannot know when a lossy stream has ended). */
    int (*set_rcvtimeo)(void *h, int ms);
    void (*close)(void *h);
} bench_msg_ops;

typedef struct bench_transport {
    const char *name;
    const char *peer; /* floor, memcpy, kernel, ferry, zmq, nng */
    const char *wait; /* spin, poll, blocking, - */
    const char *help; /* one line for --help */
    unsigned modes;   /* BENCH_M() bits it can measure */
    bool threads;     /* both roles are threads of one process (inproc) */
    bool solo;        /* only role 0 runs (memcpy) */
    bool default_on;  /* part of the default run */
    /* Optional: whether it can run here (dlopen ...). Returns false and fills why if not. */
    bool (*available)(char *why, size_t cap);
    /* Optional: why this row is not measured (e.g. size too big); NULL to measure it. */
    const char *(*skip)(int mode, size_t size);
    /* Optional: parent-side setup before fork (fds, segments) and teardown after reaping. Setup
     * returns 0, < 0 (the row failed) or > 0 (not measurable here: skipped, reason in err). */
    int (*setup)(struct bench_job *j);
    void (*teardown)(struct bench_job *j);
    /* Optional, threads only: state both threads share (j->tstate), made in the child. */
    int (*child_setup)(struct bench_job *j);
    void (*child_teardown)(struct bench_job *j);
    /* Either a custom body per role, or message ops driven by bench_loop.c. */
    int (*run)(struct bench_job *j, int role);
    const bench_msg_ops *ops;
    void *priv; /* transport-specific constant (e.g. a socket type) */
} bench_transport;

/* The state of one row while it runs. The parent fills it, the children inherit it by fork. */
typedef struct bench_job {
    const bench_cfg *cfg;
    const bench_transport *tr;
    int mode;
    size_t size;
    bench_ctl *ctl;
    const char *tmpdir; /* private 0700 directory for ipc paths, removed at exit */
    int fd[4];          /* transport fds created by setup, -1 when unused */
    void *state;        /* transport state created by setup */
    void *tstate;       /* in-process (threads) state created in the child */
    int subs;           /* BENCH_FAN: subscribers, roles 1..subs */
    int role_cpu[BENCH_MAX_ROLES];
    char *err; /* the current role's error buffer (ctl->res[role].err) */
} bench_job;

/* The `ferry bench` command (argv[0] is "bench"). */
int bench_main(int argc, char **argv);

/* Registry (bench_reg.c order = run order). */
extern const bench_transport *const bench_transports[];
const bench_transport *bench_transport_find(const char *name);

/* Supervisor (bench_proc.c). Runs one row and fills r. */
void bench_run_row(bench_job *j, bench_row *r);
int bench_proc_init(const bench_cfg *cfg); /* temp dir, control page */
void bench_proc_fini(void);
const char *bench_tmpdir(void);
/* A fresh path "<tmpdir>/<what>-<n>" removed after the row (and on Ctrl-C); NULL when full. */
const char *bench_tmp_path(const char *what);

#define BENCH_TIMEDOUT (-2)

/* Helpers for role bodies (bench_loop.c). */
uint64_t bench_now_ns(void);
int bench_fail(bench_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Producer side: writes every byte of buf with the message's sequence byte. Inline: at 64 B a
 * function call is a measurable share of a ring message. */
static inline void bench_fill(void *buf, size_t len, uint64_t seq)
{
    __builtin_memset(buf, (int)(seq & 0xff), len);
}

/* Consumer side: reads every byte and returns a sum the caller keeps alive. 64 bytes per step
 * into four independent accumulators: a single 8-byte add chain retires about 8 bytes a cycle,
 * below what a core can stream from its caches, so it would measure this loop instead of the
 * transport for large messages. Every row's consumer uses it (ring, ferry, libzmq, nng, kernel). */
typedef uint64_t bench_v2u64 __attribute__((vector_size(16)));
static inline uint64_t bench_touch(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    bench_v2u64 a = {0, 0}, b = {0, 0}, c = {0, 0}, d = {0, 0};
    size_t i = 0;
    for (; i + 64 <= len; i += 64) {
        bench_v2u64 w[4];
        __builtin_memcpy(w, p + i, 64);
        a += w[0];
        b += w[1];
        c += w[2];
        d += w[3];
    }
    a += b + c + d;
    uint64_t s = a[0] + a[1];
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        __builtin_memcpy(&w, p + i, 8);
        s += w;
    }
    for (; i < len; i++)
        s += p[i];
    return s;
}

/* Verifies the first byte carries the expected sequence byte (a cheap corruption check). */
static inline bool bench_check(const void *buf, size_t len, uint64_t seq)
{
    return len == 0 || ((const unsigned char *)buf)[0] == (unsigned char)(seq & 0xff);
}

/*
 * The spinning one-way loops of `ring` (bench_ring.c) and its yardstick `ring:ref` (bench_ref.c)
 * share these, so both rows are measured by exactly the same rules. Records per published flush
 * (a power of two minus one, for a mask), and records between clock reads / end checks: */
static inline uint64_t bench_thr_batch_mask(size_t size)
{
    return (size <= 256 ? 64 : size <= 4096 ? 8 : 1) - 1;
}
static inline uint64_t bench_thr_tick_mask(size_t size)
{
    return size >= 65536 ? 0 : size >= 4096 ? 15 : size >= 256 ? 1023 : 65535;
}

/* Round-trip loops (role 0): bench_rtt_mark at the end of every round trip records its time once
 * the warm-up is over and moves *prev to now; bench_rtt_done writes role 0's result. */
static inline void bench_rtt_mark(bench_ctl *c, uint64_t *prev, uint64_t warm_end)
{
    uint64_t now = bench_now_ns();
    if (*prev >= warm_end)
        bench_hist_record(&c->hist, now - *prev);
    *prev = now;
}
static inline int bench_rtt_done(bench_ctl *c, uint64_t prev, uint64_t warm_end)
{
    c->res[0].count = c->hist.count;
    c->res[0].ns = prev - warm_end;
    return 0;
}

/* The consumer's clock: call bench_thr_tick at every record i with (i & mask) == 0; it returns the
 * end time once i is the producer's last record (c->total), else 0. bench_thr_done then writes
 * role 1's result (warm-up excluded unless it was nearly all of the run). */
typedef struct bench_thr_clock {
    uint64_t warm, mask, t_first, t0, k0;
} bench_thr_clock;

static inline uint64_t bench_thr_tick(bench_thr_clock *k, bench_ctl *c, uint64_t i)
{
    if (i == k->mask + 1) {
        k->t_first = bench_now_ns();
    } else if (!k->k0 && bench_now_ns() >= k->t_first + k->warm) {
        k->k0 = i;
        k->t0 = bench_now_ns();
    }
    if (i < atomic_load_explicit(&c->total, memory_order_acquire))
        return 0;
    return bench_now_ns();
}

static inline void bench_thr_done(bench_thr_clock *k, bench_ctl *c, uint64_t i, uint64_t t1,
                                  size_t size)
{
    if (!k->k0 || i - k->k0 < (k->mask + 1) * 4) {
        k->k0 = k->mask + 1;
        k->t0 = k->t_first;
    }
    c->res[1].count = i - k->k0;
    c->res[1].ns = t1 - k->t0;
    c->res[1].bytes = (i - k->k0) * size;
}

/* Spins until flag is non-zero or the timeout passes; 0 or -1. */
int bench_await(_Atomic int *flag, double seconds);
/* Generic loops for message transports. */
int bench_msg_run(bench_job *j, int role);
/* Allocates a page-aligned buffer of at least len bytes (pre-faulted); NULL on failure. */
void *bench_buf(size_t len);
void bench_buf_free(void *p, size_t len);
/* Every consumer adds its checksum here so the compiler cannot drop the reads. */
extern volatile uint64_t bench_sink;

/* The floor around each size section (bench_section.c). Measures the floor row that opens or
 * closes the section of message size `section` into r. */
void bench_floor_row(const bench_cfg *cfg, size_t section, int at, bench_row *r);
/* The floor rows around the section of message size `size`, whatever their status (NULL when not
 * measured); an older file's single floor row opens every section and none closes it. */
void bench_section_floors(const bench_row *rows, int n, size_t size, const bench_row **start,
                          const bench_row **end);
/* Whether the section's opening and closing floors are more than 25 % apart: the hypervisor
 * moved the two vCPUs while it ran. Writes the one-line warning into buf when they are. */
bool bench_floor_moved(const bench_row *start, const bench_row *end, char *buf, size_t cap);
/* Prints that warning on stderr for every section whose floor moved (a saved run, --from). */
void bench_floor_warn_all(const bench_cfg *cfg, const bench_row *rows, int n);

/* Output (bench_out.c). */
const char *bench_fmt_size(char *b, size_t cap, size_t s);
const char *bench_fmt_ns(char *b, size_t cap, double ns);
void bench_out_table(const bench_cfg *cfg, const bench_row *rows, int n);
int bench_out_json_line(char *buf, size_t cap, const bench_row *r);
int bench_out_csv(const char *path, const bench_row *rows, int n);
/* Reads rows back from a --json-out file (bench_from.c): 0, or -1 after a message. */
int bench_from_file(const char *path, bench_row **rows, int *n);
/* Plot (bench_plot.c): 0, or < 0 with why filled. */
int bench_plot(const char *png, const bench_row *rows, int n, char *why, size_t cap);

#endif
