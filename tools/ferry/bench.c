/*
 * bench.c - `ferry bench`: the command line and the driver that runs every selected row.
 *
 * The driver runs, for every size, the floor (bench_section.c), every selected transport in every
 * mode it supports, through bench_run_row (separate pinned processes), and the floor again. Rows
 * stream out as JSON lines as they finish (--json, --json-out), so a run cut short still leaves its
 * data; the table, CSV and plot are written at the end from the same rows. Peers that are not
 * installed are skipped with one note each; rows that fail carry their reason.
 */
#include "bench.h"
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern const bench_transport bench_tr_floor, bench_tr_memcpy, bench_tr_ring, bench_tr_ring_poll,
    bench_tr_ring_block, bench_tr_pipe, bench_tr_pipe_batch, bench_tr_uds, bench_tr_uds_batch,
    bench_tr_seqpacket, bench_tr_seqpacket_batch, bench_tr_tcp, bench_tr_tcp_batch,
    bench_tr_zmq_ipc, bench_tr_zmq_tcp, bench_tr_zmq_inproc, bench_tr_nng_ipc, bench_tr_nng_tcp,
    bench_tr_nng_inproc, bench_tr_ferry_ipc, bench_tr_ferry_ipc_block, bench_tr_ferry_tcp,
    bench_tr_ferry_tcp_block, bench_tr_ferry_inproc, bench_tr_ferry_inproc_block,
    bench_tr_ferry_pipe, bench_tr_ferry_pipe_block, bench_tr_ferry_shm, bench_tr_ferry_shm_block,
    bench_tr_ferry_ipc_shm, bench_tr_ferry_shm_loan, bench_tr_ring_ref, bench_tr_ferry_shm_batch,
    bench_tr_ferry_ipc_batch, bench_tr_ferry_tcp_batch, bench_tr_floor_stream, bench_tr_ring_span;

const bench_transport *const bench_transports[] = {
    &bench_tr_floor,
    &bench_tr_memcpy,
    &bench_tr_ring,
    &bench_tr_ring_poll,
    &bench_tr_ring_block,
    &bench_tr_ring_span,
    &bench_tr_ring_ref,
    &bench_tr_floor_stream,
    &bench_tr_ferry_shm,
    &bench_tr_ferry_shm_block,
    &bench_tr_ferry_shm_loan,
    &bench_tr_ferry_shm_batch,
    &bench_tr_ferry_ipc_batch,
    &bench_tr_ferry_tcp_batch,
    &bench_tr_ferry_ipc_shm,
    &bench_tr_ferry_ipc,
    &bench_tr_ferry_ipc_block,
    &bench_tr_ferry_tcp,
    &bench_tr_ferry_tcp_block,
    &bench_tr_ferry_inproc,
    &bench_tr_ferry_inproc_block,
    &bench_tr_ferry_pipe,
    &bench_tr_ferry_pipe_block,
    &bench_tr_pipe,
    &bench_tr_pipe_batch,
    &bench_tr_uds,
    &bench_tr_uds_batch,
    &bench_tr_seqpacket,
    &bench_tr_seqpacket_batch,
    &bench_tr_tcp,
    &bench_tr_tcp_batch,
    &bench_tr_zmq_ipc,
    &bench_tr_zmq_tcp,
    &bench_tr_zmq_inproc,
    &bench_tr_nng_ipc,
    &bench_tr_nng_tcp,
    &bench_tr_nng_inproc,
    NULL,
};

static const char *const bench_mode_names[BENCH_MODES] = {"rtt", "thr", "idle", "fan"};

const char *bench_mode_name(int mode)
{
    return mode >= 0 && mode < BENCH_MODES ? bench_mode_names[mode] : "?";
}

const bench_transport *bench_transport_find(const char *name)
{
    for (const bench_transport *const *t = bench_transports; *t; t++)
        if (!strcmp((*t)->name, name))
            return *t;
    return NULL;
}

#define BENCH_DEFAULT_SIZES "8,64,1024,65536,1048576"
#define BENCH_MAX_SIZE      (16u << 20)

static void bench_usage(FILE *out)
{
    fprintf(
        out,
        "usage: ferry bench [--transport LIST] [--size LIST] [--mode LIST] [--seconds S]\n"
        "                   [--warmup S] [--cpus A,B] [--json] [--json-out FILE] [--csv FILE]\n"
        "                   [--plot FILE.png] [--quiet] [--list]\n"
        "\n"
        "Measures message passing between two processes pinned to two CPUs: ferry's ring and\n"
        "sockets, the kernel baselines and libzmq/nng (loaded with dlopen when installed),\n"
        "side by side with the hardware floor (a cache line ping-pong) and memcpy bandwidth.\n"
        "The producer writes every payload byte, the consumer reads every byte.\n"
        "\n"
        "  --transport LIST  comma-separated names (see --list) or groups: all, kernel, zmq,\n"
        "                    nng, peers, ferry; default: every transport but ring:poll.\n"
        "                    floor (rtt) and memcpy (thr) always run: the ratios need them;\n"
        "                    the floor runs before and after every size, whose p50/floor\n"
        "                    ratios divide by the floor before it (a warning when the two\n"
        "                    differ by more than 25 %%: the vCPUs were moved meanwhile)\n"
        "  --size LIST       message sizes in bytes, K/M suffixes allowed (1 B .. 16 MiB);\n"
        "                    default " BENCH_DEFAULT_SIZES "\n"
        "  --mode LIST       rtt   ping-pong round trips: p50/p99/p999/max latency\n"
        "                    thr   one way: msgs/s and bytes/s at the consumer\n"
        "                    idle  CPU%% of a receiver blocked 1 s, then the latency of the\n"
        "                          first message after it (smallest size only)\n"
        "                    fan   one publisher to 1, 2 and 4 subscribers: msgs/s per\n"
        "                          subscriber (smallest size only; PUB/SUB transports)\n"
        "                    all;  default rtt,thr,idle,fan\n"
        "  --seconds S       measured time per row (default 0.2; 0.01 .. 60)\n"
        "  --warmup S        unmeasured time before each row (default 0.04; 0 .. 10)\n"
        "  --nice N          run the measuring processes at this nice value (e.g. -10 on a\n"
        "                    shared machine; negative values need root or CAP_SYS_NICE)\n"
        "  --cpus A,B        the two CPUs to pin the two sides to (default 0,1, or the first\n"
        "                    two this process may use)\n"
        "  --json            print one JSON object per row on stdout instead of the table\n"
        "  --json-out FILE   also write the JSON lines to FILE (the table still prints)\n"
        "  --csv FILE        write the rows as CSV to FILE\n"
        "  --plot FILE.png   draw latency and throughput vs size with gnuplot\n"
        "  --quiet           no progress bar or notes on stderr\n"
        "  --list            list the transports and exit\n"
        "  --from FILE       measure nothing: print the table (and --csv, --plot, --json) again\n"
        "                    from the JSON lines a run wrote with --json-out\n"
        "\n"
        "JSON fields: transport, peer (ferry|zmq|nng|kernel|floor), wait (spin|poll|blocking;\n"
        "- for memcpy), mode, size, status (ok|failed|skipped), count, p50_ns, p99_ns, p999_ns,\n"
        "max_ns (rtt), msgs_per_s, bytes_per_s (thr, fan), cold_ns, idle_cpu_pct (idle),\n"
        "floor_ns (rtt: the floor p50 its p50/floor divides by), subs, min_msgs_per_s,\n"
        "pub_msgs_per_s, delivered (fan), section, floor_at (start|end: floor rows only), note.\n"
        "Fields that do not apply to a row are null. Exit status: 0 when every row ran (or\n"
        "was skipped for a stated reason), 1 when a row failed, 2 on a usage error.\n"
        "docs/bench.md explains the method.\n");
}

static void bench_list(void)
{
    for (const bench_transport *const *t = bench_transports; *t; t++) {
        char why[160] = "";
        bool ok = !(*t)->available || (*t)->available(why, sizeof why);
        printf("  %-24s %-9s %s%s%s%s\n", (*t)->name, (*t)->wait, (*t)->help, ok ? "" : " [",
               ok ? "" : why, ok ? "" : "]");
    }
}

static int bench_add_tr(bench_cfg *cfg, const bench_transport *t)
{
    for (int i = 0; i < cfg->ntr; i++)
        if (cfg->tr[i] == t)
            return 0;
    cfg->tr[cfg->ntr++] = t;
    return 0;
}

/* The machine's 1-minute load average: a busy machine wrecks spinning rows, so the table says. */
static double bench_loadavg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

/* What one clock read costs (the smallest gap between two reads): it is inside every sample. */
static double bench_clock_cost(void)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 20000; i++) {
        uint64_t a = bench_now_ns(), b = bench_now_ns();
        if (b - a < best)
            best = b - a;
    }
    return (double)best;
}

static bool bench_in_group(const bench_transport *t, const char *g)
{
    if (!strcmp(g, "all"))
        return true;
    if (!strcmp(g, "peers"))
        return !strcmp(t->peer, "zmq") || !strcmp(t->peer, "nng");
    return !strcmp(t->peer, g);
}

static int bench_parse_transports(bench_cfg *cfg, const char *list)
{
    char *dup = strdup(list), *save = NULL;
    if (!dup)
        return -1;
    int rc = 0;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        const bench_transport *t = bench_transport_find(tok);
        if (t) {
            bench_add_tr(cfg, t);
            continue;
        }
        bool any = false;
        if (!strcmp(tok, "all") || !strcmp(tok, "kernel") || !strcmp(tok, "zmq") ||
            !strcmp(tok, "nng") || !strcmp(tok, "peers") || !strcmp(tok, "ferry")) {
            for (const bench_transport *const *p = bench_transports; *p; p++)
                if (bench_in_group(*p, tok)) {
                    bench_add_tr(cfg, *p);
                    any = true;
                }
            if (any)
                continue;
        }
        fprintf(stderr, "ferry bench: unknown transport '%s' (ferry bench --list shows them)\n",
                tok);
        rc = -1;
        break;
    }
    free(dup);
    if (rc == 0 && cfg->ntr == 0) {
        fprintf(stderr, "ferry bench: --transport selects nothing\n");
        rc = -1;
    }
    return rc;
}

static int bench_parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno || *s == '-')
        return -1;
    if (*end == 'k' || *end == 'K')
        v *= 1024, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1024 * 1024, end++;
    if (*end == 'i' && (end[1] == 'B' || end[1] == 'b'))
        end += 2;
    else if (*end == 'B' || *end == 'b')
        end++;
    if (*end || v < 1 || v > BENCH_MAX_SIZE)
        return -1;
    *out = (size_t)v;
    return 0;
}

static int bench_cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static int bench_parse_sizes(bench_cfg *cfg, const char *list)
{
    char *dup = strdup(list), *save = NULL;
    if (!dup)
        return -1;
    cfg->nsizes = 0;
    int rc = 0;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t v;
        if (bench_parse_size(tok, &v) != 0) {
            fprintf(stderr, "ferry bench: bad size '%s' (1 .. 16M bytes, K/M suffixes allowed)\n",
                    tok);
            rc = -1;
            break;
        }
        if (cfg->nsizes == (int)(sizeof cfg->sizes / sizeof cfg->sizes[0])) {
            fprintf(stderr, "ferry bench: at most %zu sizes\n",
                    sizeof cfg->sizes / sizeof cfg->sizes[0]);
            rc = -1;
            break;
        }
        bool dupl = false;
        for (int i = 0; i < cfg->nsizes; i++)
            dupl |= cfg->sizes[i] == v;
        if (!dupl)
            cfg->sizes[cfg->nsizes++] = v;
    }
    free(dup);
    if (rc == 0 && cfg->nsizes == 0) {
        fprintf(stderr, "ferry bench: --size selects nothing\n");
        rc = -1;
    }
    qsort(cfg->sizes, (size_t)cfg->nsizes, sizeof cfg->sizes[0], bench_cmp_size);
    return rc;
}

static int bench_parse_modes(bench_cfg *cfg, const char *list)
{
    char *dup = strdup(list), *save = NULL;
    if (!dup)
        return -1;
    cfg->modes = 0;
    int rc = 0;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int m = -1;
        for (int i = 0; i < BENCH_MODES; i++)
            if (!strcmp(tok, bench_mode_names[i]))
                m = i;
        if (!strcmp(tok, "all")) {
            cfg->modes = (1u << BENCH_MODES) - 1;
            continue;
        }
        if (m < 0) {
            fprintf(stderr, "ferry bench: unknown mode '%s' (rtt, thr, idle, fan, all)\n", tok);
            rc = -1;
            break;
        }
        cfg->modes |= BENCH_M(m);
    }
    free(dup);
    if (rc == 0 && !cfg->modes) {
        fprintf(stderr, "ferry bench: --mode selects nothing\n");
        rc = -1;
    }
    return rc;
}

static int bench_parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int bench_parse_cpus(bench_cfg *cfg, const char *s)
{
    int a, b, n = 0;
    if (sscanf(s, "%d,%d%n", &a, &b, &n) != 2 || s[n] || a < 0 || b < 0 || a >= CPU_SETSIZE ||
        b >= CPU_SETSIZE) {
        fprintf(stderr, "ferry bench: --cpus wants two CPU numbers, e.g. 0,1\n");
        return -1;
    }
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 &&
        (!CPU_ISSET(a, &set) || !CPU_ISSET(b, &set))) {
        fprintf(stderr, "ferry bench: CPU %d is not available to this process\n",
                CPU_ISSET(a, &set) ? b : a);
        return -1;
    }
    if (a == b) {
        fprintf(stderr, "ferry bench: --cpus needs two different CPUs\n");
        return -1;
    }
    cfg->cpu[0] = a;
    cfg->cpu[1] = b;
    return 0;
}

/* Whether row (t, mode, size) belongs to the run. idle runs at the smallest size only, the floor
 * around every size (bench_floor_row, not here), and modes a transport cannot do are not rows. */
static bool bench_wanted(const bench_cfg *cfg, const bench_transport *t, int mode, int size_idx)
{
    if (!(cfg->modes & BENCH_M(mode)) || !(t->modes & BENCH_M(mode)))
        return false;
    if ((mode == BENCH_IDLE || mode == BENCH_FAN) && size_idx != 0)
        return false;
    /* Fan-out needs PUB/SUB over separate processes: message transports with a receive timeout. */
    if (mode == BENCH_FAN && (t->threads || !t->ops || !t->ops->set_rcvtimeo))
        return false;
    return t != &bench_tr_floor;
}

static void bench_progress(const bench_cfg *cfg, int done, int total, const bench_row *r)
{
    if (cfg->quiet)
        return;
    if (!isatty(2)) {
        /* A log, not a terminal: one line per tenth of the run instead of a redrawn bar. */
        static int last_tenth = 0;
        int tenth = total ? done * 10 / total : 10;
        if (r && tenth > last_tenth) {
            fprintf(stderr, "ferry bench: %d%% (%d of %d rows)\n", tenth * 10, done, total);
            last_tenth = tenth;
        }
        return;
    }
    if (!r) {
        fprintf(stderr, "\r%*s\r", 100, "");
        return;
    }
    int width = 30, fill = total ? done * width / total : width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r[%s] %3d/%d  %-22s %-4s %8zu B   ", bar, done, total, r->tr->name,
            bench_mode_name(r->mode), r->size);
}

/* A finished row, as a JSON line on stdout (--json) and in the --json-out file, at once: a run
 * cut short still leaves its data. */
static void bench_put_row(const bench_cfg *cfg, FILE *jf, const bench_row *r)
{
    char line[1024];
    bench_out_json_line(line, sizeof line, r);
    if (cfg->json) {
        fputs(line, stdout);
        fflush(stdout);
    }
    if (jf) {
        fputs(line, jf);
        fflush(jf);
    }
}

/* The floor row that opens (at BENCH_FLOOR_START) or closes (BENCH_FLOOR_END) the section of
 * message size `section`, row `done` of `total`: shown in the progress line, measured into *r and
 * written out like every row. 1 when it failed, else 0. */
static int bench_floor_step(const bench_cfg *cfg, FILE *jf, int done, int total, size_t section,
                            int at, bench_row *r)
{
    bench_row pr = {.tr = &bench_tr_floor, .mode = BENCH_RTT, .size = 64};
    bench_progress(cfg, done, total, &pr);
    bench_floor_row(cfg, section, at, r);
    bench_put_row(cfg, jf, r);
    return r->status == 1;
}

/* Table (unless --json), CSV and plot from finished rows; 0 or -1 when a file failed. */
static int bench_emit(const bench_cfg *cfg, const bench_row *rows, int n)
{
    int rc = 0;
    if (!cfg->json)
        bench_out_table(cfg, rows, n);
    if (cfg->csv && bench_out_csv(cfg->csv, rows, n) != 0) {
        fprintf(stderr, "ferry bench: cannot write %s: %s\n", cfg->csv, strerror(errno));
        rc = -1;
    }
    if (cfg->plot) {
        char why[256] = "";
        if (bench_plot(cfg->plot, rows, n, why, sizeof why) != 0)
            fprintf(stderr, "ferry bench: no plot: %s\n", why);
        else if (!cfg->quiet)
            fprintf(stderr, "ferry bench: plot written to %s\n", cfg->plot);
    }
    return rc;
}

/* --from FILE: the outputs again from a saved --json-out file, nothing measured. */
static int bench_replay(bench_cfg *cfg)
{
    bench_row *rows;
    int n;
    if (bench_from_file(cfg->from, &rows, &n) != 0)
        return 2;
    cfg->nsizes = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(rows[i].tr->name, "floor") || rows[i].mode == BENCH_IDLE ||
            rows[i].mode == BENCH_FAN)
            continue;
        bool seen = false;
        for (int k = 0; k < cfg->nsizes; k++)
            seen |= cfg->sizes[k] == rows[i].size;
        if (!seen && cfg->nsizes < (int)(sizeof cfg->sizes / sizeof cfg->sizes[0]))
            cfg->sizes[cfg->nsizes++] = rows[i].size;
    }
    qsort(cfg->sizes, (size_t)cfg->nsizes, sizeof cfg->sizes[0], bench_cmp_size);
    bench_floor_warn_all(cfg, rows, n);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        failed += rows[i].status == 1;
        if (cfg->json) {
            char line[1024];
            bench_out_json_line(line, sizeof line, &rows[i]);
            fputs(line, stdout);
        }
    }
    int rc = bench_emit(cfg, rows, n) != 0 || failed ? 1 : 0;
    free(rows);
    return rc;
}

int bench_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"transport", required_argument, NULL, 't'},
        {"size", required_argument, NULL, 's'},
        {"mode", required_argument, NULL, 'm'},
        {"seconds", required_argument, NULL, 'S'},
        {"warmup", required_argument, NULL, 'w'},
        {"cpus", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"json-out", required_argument, NULL, 'J'},
        {"csv", required_argument, NULL, 'C'},
        {"plot", required_argument, NULL, 'p'},
        {"quiet", no_argument, NULL, 'q'},
        {"list", no_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"nice", required_argument, NULL, 'n'},
        {"from", required_argument, NULL, 'F'},
        {NULL, 0, NULL, 0},
    };
    const bench_transport *trs[64];
    bench_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.tr = trs;
    cfg.seconds = 0.2;
    cfg.warmup = 0.04;
    cfg.cpu[0] = 0;
    cfg.cpu[1] = 1;
    const char *tr_list = NULL, *size_list = BENCH_DEFAULT_SIZES, *mode_list = "rtt,thr,idle,fan";
    const char *cpus = NULL;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":t:s:m:S:w:c:jJ:C:p:qlhn:F:", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            tr_list = optarg;
            break;
        case 's':
            size_list = optarg;
            break;
        case 'm':
            mode_list = optarg;
            break;
        case 'S':
            if (bench_parse_double(optarg, 0.01, 60, &cfg.seconds) != 0) {
                fprintf(stderr, "ferry bench: --seconds wants a number in 0.01 .. 60\n");
                return 2;
            }
            break;
        case 'w':
            if (bench_parse_double(optarg, 0, 10, &cfg.warmup) != 0) {
                fprintf(stderr, "ferry bench: --warmup wants a number in 0 .. 10\n");
                return 2;
            }
            break;
        case 'c':
            cpus = optarg;
            break;
        case 'n': {
            double v;
            if (bench_parse_double(optarg, -20, 19, &v) != 0 || v != (int)v) {
                fprintf(stderr, "ferry bench: --nice wants an integer in -20 .. 19\n");
                return 2;
            }
            cfg.nice = (int)v;
            break;
        }
        case 'j':
            cfg.json = true;
            break;
        case 'J':
            cfg.json_out = optarg;
            break;
        case 'C':
            cfg.csv = optarg;
            break;
        case 'p':
            cfg.plot = optarg;
            break;
        case 'q':
            cfg.quiet = true;
            break;
        case 'l':
            bench_list();
            return 0;
        case 'F':
            cfg.from = optarg;
            break;
        case 'h':
            bench_usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "ferry bench: option '%s' needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "ferry bench: unknown option '%s' (ferry bench --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ferry bench: unexpected argument '%s' (ferry bench --help)\n",
                argv[optind]);
        return 2;
    }
    if (cfg.from)
        return bench_replay(&cfg);
    if (!tr_list)
        for (const bench_transport *const *t = bench_transports; *t; t++)
            if ((*t)->default_on)
                bench_add_tr(&cfg, *t);
    if ((tr_list && bench_parse_transports(&cfg, tr_list) != 0) ||
        bench_parse_sizes(&cfg, size_list) != 0 || bench_parse_modes(&cfg, mode_list) != 0 ||
        (cpus && bench_parse_cpus(&cfg, cpus) != 0))
        return 2;
    /* Every run measures its limits: the floor for round trips, memcpy for one-way rates, first,
     * so the ratios always have a denominator from the same run. */
    {
        const bench_transport *lim[2] = {(cfg.modes & BENCH_M(BENCH_RTT)) ? &bench_tr_floor : NULL,
                                         (cfg.modes & BENCH_M(BENCH_THR)) ? &bench_tr_memcpy
                                                                          : NULL};
        const bench_transport *rest[64];
        int nrest = 0;
        for (int i = 0; i < cfg.ntr; i++)
            if (cfg.tr[i] != &bench_tr_floor && cfg.tr[i] != &bench_tr_memcpy)
                rest[nrest++] = cfg.tr[i];
        cfg.ntr = 0;
        for (int i = 0; i < 2; i++)
            if (lim[i])
                cfg.tr[cfg.ntr++] = lim[i];
        for (int i = 0; i < nrest; i++)
            cfg.tr[cfg.ntr++] = rest[i];
    }
    if (!cpus) {
        /* Default: CPUs 0 and 1, or the first two this process may run on (containers, taskset). */
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) == 0 &&
            (!CPU_ISSET(0, &set) || !CPU_ISSET(1, &set))) {
            int found = 0;
            for (int cpu = 0; cpu < CPU_SETSIZE && found < 2; cpu++)
                if (CPU_ISSET(cpu, &set))
                    cfg.cpu[found++] = cpu;
            if (found < 2) {
                fprintf(stderr, "ferry bench: needs two CPUs to pin the two sides to; this process "
                                "may run on one only\n");
                return 2;
            }
        }
    }

    /* Children inherit the parent's nice value. */
    if (cfg.nice != 0 && setpriority(PRIO_PROCESS, 0, cfg.nice) != 0) {
        fprintf(stderr, "ferry bench: --nice %d: %s\n", cfg.nice, strerror(errno));
        return 2;
    }

    FILE *jf = NULL;
    if (cfg.json_out && !(jf = fopen(cfg.json_out, "w"))) {
        fprintf(stderr, "ferry bench: cannot write %s: %s\n", cfg.json_out, strerror(errno));
        return 2;
    }

    /* Availability first: one note per missing peer, and its rows are left out. */
    const bench_transport *run_tr[64];
    int nrun = 0;
    for (int i = 0; i < cfg.ntr; i++) {
        char why[160] = "";
        if (cfg.tr[i]->available && !cfg.tr[i]->available(why, sizeof why)) {
            if (!cfg.quiet)
                fprintf(stderr, "ferry bench: skipping %s: %s\n", cfg.tr[i]->name, why);
            continue;
        }
        run_tr[nrun++] = cfg.tr[i];
    }

    bool floors = false;
    for (int t = 0; t < nrun; t++)
        floors |= run_tr[t] == &bench_tr_floor;
    int total = floors ? 2 * cfg.nsizes : 0;
    for (int s = 0; s < cfg.nsizes; s++)
        for (int t = 0; t < nrun; t++)
            for (int m = 0; m < BENCH_MODES; m++)
                total += bench_wanted(&cfg, run_tr[t], m, s) * (m == BENCH_FAN ? 3 : 1);
    bench_row *rows = calloc((size_t)total + 1, sizeof *rows);
    if (!rows || bench_proc_init(&cfg) != 0) {
        free(rows);
        if (jf)
            fclose(jf);
        return 1;
    }
    cfg.load[0] = bench_loadavg();
    cfg.clock_ns = bench_clock_cost();
    int n = 0, failed = 0;
    for (int s = 0; s < cfg.nsizes; s++) {
        uint64_t floor_ns = 0;
        const bench_row *start = NULL;
        if (floors) {
            failed +=
                bench_floor_step(&cfg, jf, n, total, cfg.sizes[s], BENCH_FLOOR_START, &rows[n]);
            start = &rows[n];
            floor_ns = rows[n].status == 0 ? rows[n].p50 : 0;
            n++;
        }
        for (int t = 0; t < nrun; t++) {
            for (int m = 0; m < BENCH_MODES; m++) {
                if (!bench_wanted(&cfg, run_tr[t], m, s))
                    continue;
                /* Fan-out is three rows: 1, 2 and 4 subscribers. */
                for (int f = 0; f < (m == BENCH_FAN ? 3 : 1); f++) {
                    bench_job job;
                    memset(&job, 0, sizeof job);
                    job.cfg = &cfg;
                    job.tr = run_tr[t];
                    job.mode = m;
                    job.subs = m == BENCH_FAN ? 1 << f : 0;
                    /* The floor is one cache line whatever the message size. */
                    job.size = run_tr[t] == &bench_tr_floor ? 64 : cfg.sizes[s];
                    bench_row pr = {.tr = job.tr, .mode = m, .size = job.size};
                    bench_progress(&cfg, n, total, &pr);
                    bench_run_row(&job, &rows[n]);
                    failed += rows[n].status == 1;
                    if (m == BENCH_RTT && rows[n].status == 0)
                        rows[n].floor_ns = floor_ns;
                    bench_put_row(&cfg, jf, &rows[n]);
                    n++;
                }
            }
        }
        if (floors) {
            failed += bench_floor_step(&cfg, jf, n, total, cfg.sizes[s], BENCH_FLOOR_END, &rows[n]);
            char why[256];
            if (bench_floor_moved(start, &rows[n], why, sizeof why)) {
                bench_progress(&cfg, n, total, NULL);
                fprintf(stderr, "ferry bench: warning: %s\n", why);
            }
            n++;
        }
    }
    bench_progress(&cfg, n, total, NULL);
    bench_proc_fini();
    cfg.load[1] = bench_loadavg();
    int rc = failed ? 1 : 0;
    if (jf && fclose(jf) != 0) {
        fprintf(stderr, "ferry bench: writing %s failed\n", cfg.json_out);
        rc = 1;
    }
    if (bench_emit(&cfg, rows, n) != 0)
        rc = 1;
    if (jf && !cfg.quiet)
        fprintf(stderr, "ferry bench: JSON lines written to %s\n", cfg.json_out);
    free(rows);
    return rc;
}
