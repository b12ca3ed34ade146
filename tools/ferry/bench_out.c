/*
 * bench_out.c - what `ferry bench` prints: the table, the JSON lines and the CSV.
 *
 * The table is grouped by message size; each transport is one line with its round-trip percentiles
 * and its one-way rate, and the ratios that make one run meaningful on a noisy VM: rtt p50 / floor
 * p50, rtt p50 / zmq:ipc p50, thr bytes/s / memcpy bytes/s at that size and thr msgs/s / zmq:ipc
 * msgs/s. Absolute numbers drift between runs; ratios taken in one run do not. Everything in the
 * table comes from the rows, so `--from` of a saved run prints the same table again.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

const char *bench_fmt_ns(char *b, size_t cap, double ns)
{
    if (ns < 1e4)
        snprintf(b, cap, "%.0fns", ns);
    else if (ns < 1e7)
        snprintf(b, cap, "%.1fus", ns / 1e3);
    else
        snprintf(b, cap, "%.1fms", ns / 1e6);
    return b;
}

static const char *fmt_si(char *b, size_t cap, double v, const char *unit)
{
    if (v >= 1e9)
        snprintf(b, cap, "%.2fG%s", v / 1e9, unit);
    else if (v >= 1e6)
        snprintf(b, cap, "%.2fM%s", v / 1e6, unit);
    else if (v >= 1e3)
        snprintf(b, cap, "%.1fk%s", v / 1e3, unit);
    else
        snprintf(b, cap, "%.0f%s", v, unit);
    return b;
}

static const char *fmt_ratio(char *b, size_t cap, double r)
{
    if (!(r > 0) || !isfinite(r))
        snprintf(b, cap, "-");
    else if (r < 0.1)
        snprintf(b, cap, "%.3fx", r);
    else if (r < 10)
        snprintf(b, cap, "%.2fx", r);
    else if (r < 1000)
        snprintf(b, cap, "%.0fx", r);
    else
        snprintf(b, cap, "%.1ex", r);
    return b;
}

const char *bench_fmt_size(char *b, size_t cap, size_t s)
{
    if (s >= 1048576 && s % 1048576 == 0)
        snprintf(b, cap, "%zu MiB", s / 1048576);
    else if (s >= 1024 && s % 1024 == 0)
        snprintf(b, cap, "%zu KiB", s / 1024);
    else
        snprintf(b, cap, "%zu B", s);
    return b;
}

static const bench_row *find_row(const bench_row *rows, int n, const char *tr, int mode,
                                 size_t size)
{
    for (int i = 0; i < n; i++)
        if (rows[i].status == 0 && rows[i].mode == mode && !strcmp(rows[i].tr->name, tr) &&
            (size == 0 || rows[i].size == size))
            return &rows[i];
    return NULL;
}

static void bench_machine(char *b, size_t cap)
{
    char model[128] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f)) {
            if (!strncmp(line, "model name", 10)) {
                char *p = strchr(line, ':');
                if (p) {
                    p++;
                    while (*p == ' ')
                        p++;
                    p[strcspn(p, "\n")] = 0;
                    snprintf(model, sizeof model, "%s", p);
                }
                break;
            }
        }
        fclose(f);
    }
    struct utsname u;
    if (uname(&u) != 0)
        memset(&u, 0, sizeof u);
    snprintf(b, cap, "%s, %ld CPUs online, Linux %s %s", model, sysconf(_SC_NPROCESSORS_ONLN),
             u.release, u.machine);
}

/* The floor rr's p50/floor divides by: the one it carries, else (a file written before floors
 * were per section) the floor that opened its section. */
static uint64_t bench_row_floor(const bench_row *rr, const bench_row *section_start)
{
    if (rr->floor_ns)
        return rr->floor_ns;
    return section_start && section_start->status == 0 ? section_start->p50 : 0;
}

void bench_out_table(const bench_cfg *cfg, const bench_row *rows, int n)
{
    char machine[320], a[32], b[32], c[32], d[32], e[32], f[32], g[32], h[32];
    if (cfg->from) {
        printf("ferry bench: rows read from %s (measured earlier; see that run for the machine)\n",
               cfg->from);
    } else {
        bench_machine(machine, sizeof machine);
        printf("ferry bench: %s\n", machine);
        printf("pinned to CPUs %d and %d; %.2f s measured per row after %.2f s "
               "warm-up; payload "
               "written by the producer, every byte read by the consumer\n",
               cfg->cpu[0], cfg->cpu[1], cfg->seconds, cfg->warmup);
        if (cfg->nice)
            printf("measuring processes ran at nice %d\n", cfg->nice);
        printf("clock_gettime costs %.0f ns (one read per rtt sample, in every row); load average "
               "%.2f before, %.2f after\n",
               cfg->clock_ns, cfg->load[0], cfg->load[1]);
        if (cfg->load[0] > 1.5) /* "after" includes the run itself: two busy CPUs */
            printf("warning: the machine was busy: other processes share the two CPUs, so spinning "
                   "rows "
                   "(spin, poll) lose whole time slices; compare ratios, and rerun on an idle "
                   "machine\n");
    }
    /* The run's first and last floors; each section divides by its own (its header). */
    const bench_row *fl = NULL, *fl_last = NULL;
    for (int i = 0; i < n; i++) {
        if (rows[i].status || rows[i].mode != BENCH_RTT || strcmp(rows[i].tr->name, "floor"))
            continue;
        if (!fl)
            fl = &rows[i];
        else
            fl_last = &rows[i];
    }
    if (fl)
        printf("floor (one cache line ping-pong): rtt p50 %s  p99 %s  p999 %s  max "
               "%s\n",
               bench_fmt_ns(a, sizeof a, (double)fl->p50),
               bench_fmt_ns(b, sizeof b, (double)fl->p99),
               bench_fmt_ns(c, sizeof c, (double)fl->p999),
               bench_fmt_ns(d, sizeof d, (double)fl->max));
    else
        printf("floor: not measured (add --transport floor for the ratios)\n");
    if (fl_last) {
        double drift = (double)fl_last->p50 / (double)(fl->p50 ? fl->p50 : 1);
        printf("floor again after the last row: rtt p50 %s (%.2fx the first); every size section "
               "divides by the floor measured just before it (section headers)\n",
               bench_fmt_ns(a, sizeof a, (double)fl_last->p50), drift);
    }

    for (int s = 0; s < cfg->nsizes; s++) {
        size_t size = cfg->sizes[s];
        const bench_row *mc = find_row(rows, n, "memcpy", BENCH_THR, size);
        const bench_row *zr = find_row(rows, n, "zmq:ipc", BENCH_RTT, size);
        const bench_row *zt = find_row(rows, n, "zmq:ipc", BENCH_THR, size);
        bool any = false;
        for (int i = 0; i < n; i++)
            any |= rows[i].size == size && rows[i].mode != BENCH_IDLE && rows[i].tr->name[0] &&
                   strcmp(rows[i].tr->name, "floor");
        if (!any)
            continue;
        const bench_row *fs, *fe;
        bench_section_floors(rows, n, size, &fs, &fe);
        int w = printf("\n== %s ==", bench_fmt_size(a, sizeof a, size));
        if (fs || fe) {
            const char *st = fs && fs->status == 0 ? bench_fmt_ns(b, sizeof b, (double)fs->p50)
                             : fs                  ? "failed"
                                                   : "-";
            const char *en = fe && fe->status == 0 ? bench_fmt_ns(c, sizeof c, (double)fe->p50)
                             : fe                  ? "failed"
                                                   : NULL;
            if (fs && fs->floor_at == BENCH_FLOOR_RUN)
                w += printf(" floor %s (measured once, at the start of the run) ==", st);
            else
                w += printf(" floor %s -> %s ==", st, en ? en : "-");
        }
        for (int i = w; i < 1 + 110; i++) /* w counts the newline */
            putchar('=');
        char why[256];
        if (bench_floor_moved(fs, fe, why, sizeof why))
            printf("\nwarning: %s", why);
        printf("\n%-22s %-8s | %8s %8s %8s %8s %9s %8s | %9s %10s %9s %8s\n", "transport", "wait",
               "rtt p50", "p99", "p999", "max", "p50/floor", "p50/zmq", "msgs/s", "bytes/s",
               "/memcpy", "/zmq");
        /* One line per transport, in run order, for those with a row at this size. */
        const bench_transport *seen[64];
        int nseen = 0;
        for (int i = 0; i < n; i++) {
            const bench_row *r = &rows[i];
            if (r->size != size || r->mode == BENCH_IDLE || !strcmp(r->tr->name, "floor"))
                continue;
            bool dup = false;
            for (int k = 0; k < nseen; k++)
                dup |= seen[k] == r->tr;
            if (dup || nseen == 64)
                continue;
            seen[nseen++] = r->tr;
            const bench_row *rr = NULL, *tr = NULL;
            const char *rnote = NULL, *tnote = NULL;
            for (int k = 0; k < n; k++) {
                if (rows[k].tr != r->tr || rows[k].size != size)
                    continue;
                if (rows[k].mode == BENCH_RTT) {
                    if (rows[k].status == 0)
                        rr = &rows[k];
                    else
                        rnote = rows[k].note;
                } else if (rows[k].mode == BENCH_THR) {
                    if (rows[k].status == 0)
                        tr = &rows[k];
                    else
                        tnote = rows[k].note;
                }
            }
            printf("%-22s %-8s |", r->tr->name, r->tr->wait);
            if (rr)
                printf(" %8s %8s %8s %8s %9s %8s |", bench_fmt_ns(a, sizeof a, (double)rr->p50),
                       bench_fmt_ns(b, sizeof b, (double)rr->p99),
                       bench_fmt_ns(c, sizeof c, (double)rr->p999),
                       bench_fmt_ns(d, sizeof d, (double)rr->max),
                       fmt_ratio(e, sizeof e,
                                 bench_row_floor(rr, fs)
                                     ? (double)rr->p50 / (double)bench_row_floor(rr, fs)
                                     : 0),
                       fmt_ratio(f, sizeof f, zr ? (double)rr->p50 / (double)zr->p50 : 0));
            else
                printf(" %-55.55s |", rnote ? rnote : "-");
            if (tr)
                printf(" %9s %10s %9s %8s", fmt_si(a, sizeof a, tr->msgs_per_s, ""),
                       fmt_si(b, sizeof b, tr->bytes_per_s, "B/s"),
                       fmt_ratio(c, sizeof c, mc ? tr->bytes_per_s / mc->bytes_per_s : 0),
                       fmt_ratio(d, sizeof d, zt ? tr->msgs_per_s / zt->msgs_per_s : 0));
            else
                printf(" %s", tnote ? tnote : "-");
            putchar('\n');
        }
    }

    bool idle = false;
    for (int i = 0; i < n; i++)
        idle |= rows[i].mode == BENCH_IDLE;
    if (idle) {
        printf("\n== idle receiver: blocked 1 s in recv, then one message ");
        for (int i = 0; i < 44; i++)
            putchar('=');
        printf("\n%-22s %-8s | %8s %10s | %s\n", "transport", "wait", "size", "idle CPU",
               "first message after idle (one-way)");
        for (int i = 0; i < n; i++) {
            const bench_row *r = &rows[i];
            if (r->mode != BENCH_IDLE)
                continue;
            if (r->status)
                printf("%-22s %-8s | %8zu %s\n", r->tr->name, r->tr->wait, r->size, r->note);
            else
                printf("%-22s %-8s | %8zu %9.2f%% | %s\n", r->tr->name, r->tr->wait, r->size,
                       r->idle_cpu, bench_fmt_ns(a, sizeof a, r->cold_ns));
        }
    }
    bool fan = false;
    for (int i = 0; i < n; i++)
        fan |= rows[i].mode == BENCH_FAN;
    if (fan) {
        printf("\n== fan-out: one publisher, every subscriber gets every message it can ");
        for (int i = 0; i < 29; i++)
            putchar('=');
        printf("\n%-22s %-8s | %8s %4s | %12s %12s %12s %10s\n", "transport", "wait", "size",
               "subs", "msgs/s/sub", "slowest sub", "published/s", "delivered");
        for (int i = 0; i < n; i++) {
            const bench_row *r = &rows[i];
            if (r->mode != BENCH_FAN)
                continue;
            /* One line for a transport whose every fan-out row was skipped for the same reason. */
            if (r->status == 2 && i > 0 && rows[i - 1].tr == r->tr &&
                rows[i - 1].mode == BENCH_FAN && !strcmp(rows[i - 1].note, r->note))
                continue;
            if (r->status == 2)
                printf("%-22s %-8s | %8zu %4s | %s\n", r->tr->name, r->tr->wait, r->size, "-",
                       r->note);
            else if (r->status)
                printf("%-22s %-8s | %8zu %4d | %s\n", r->tr->name, r->tr->wait, r->size, r->subs,
                       r->note);
            else
                printf("%-22s %-8s | %8zu %4d | %12s %12s %12s %9.1f%%\n", r->tr->name, r->tr->wait,
                       r->size, r->subs, fmt_si(a, sizeof a, r->msgs_per_s, ""),
                       fmt_si(b, sizeof b, r->min_msgs_per_s, ""),
                       fmt_si(c, sizeof c, r->pub_msgs_per_s, ""), 100.0 * r->delivered);
        }
        printf("(subscribers share the second CPU; PUB drops what a subscriber cannot take, so\n"
               " 'delivered' is the share of published messages that arrived)\n");
    }
    int nfail = 0;
    for (int i = 0; i < n; i++)
        nfail += rows[i].status == 1;
    (void)g;
    (void)h;
    printf("\nratios: p50/floor = rtt p50 / the section's floor p50 (1.00 is the hardware); "
           "p50/zmq = rtt p50 / "
           "zmq:ipc p50 (< 1 is faster);\n/memcpy = one-way bytes/s / "
           "single-core memcpy bytes/s "
           "at that size; /zmq = msgs/s / zmq:ipc msgs/s (> 1 is faster).\n"
           "wait: spin/poll = the receiver busy-polls (burns its CPU), blocking "
           "= it sleeps in "
           "the kernel; compare like with like.\n");
    if (nfail)
        printf("%d row(s) failed; the reason is in the row.\n", nfail);
}

static void json_str(char **p, char *end, const char *s)
{
    if (*p < end)
        *(*p)++ = '"';
    for (; *s && *p < end - 7; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            *p += snprintf(*p, (size_t)(end - *p), "\\%c", ch);
        else if (ch < 0x20)
            *p += snprintf(*p, (size_t)(end - *p), "\\u%04x", ch);
        else
            *(*p)++ = (char)ch;
    }
    if (*p < end)
        *(*p)++ = '"';
}

static void json_num(char **p, char *end, const char *key, bool have, double v, bool integer)
{
    if (*p >= end)
        return;
    if (!have)
        *p += snprintf(*p, (size_t)(end - *p), ",\"%s\":null", key);
    else if (integer)
        *p += snprintf(*p, (size_t)(end - *p), ",\"%s\":%.0f", key, v);
    else
        *p += snprintf(*p, (size_t)(end - *p), ",\"%s\":%.6g", key, v);
    if (*p > end)
        *p = end;
}

int bench_out_json_line(char *buf, size_t cap, const bench_row *r)
{
    char *p = buf, *end = buf + cap - 2;
    static const char *const st[] = {"ok", "failed", "skipped"};
    p += snprintf(p, (size_t)(end - p), "{\"transport\":");
    json_str(&p, end, r->tr->name);
    p += snprintf(p, (size_t)(end - p), ",\"peer\":");
    json_str(&p, end, r->tr->peer);
    p += snprintf(p, (size_t)(end - p), ",\"wait\":");
    json_str(&p, end, r->tr->wait);
    p += snprintf(p, (size_t)(end - p), ",\"mode\":\"%s\",\"size\":%zu,\"status\":\"%s\"",
                  bench_mode_name(r->mode), r->size, st[r->status]);
    bool ok = r->status == 0;
    json_num(&p, end, "count", ok, (double)r->count, true);
    bool rtt = ok && r->mode == BENCH_RTT, thr = ok && r->mode == BENCH_THR,
         idle = ok && r->mode == BENCH_IDLE;
    json_num(&p, end, "p50_ns", rtt, (double)r->p50, true);
    json_num(&p, end, "p99_ns", rtt, (double)r->p99, true);
    json_num(&p, end, "p999_ns", rtt, (double)r->p999, true);
    json_num(&p, end, "max_ns", rtt, (double)r->max, true);
    bool fan = ok && r->mode == BENCH_FAN;
    json_num(&p, end, "msgs_per_s", thr || fan, r->msgs_per_s, true);
    json_num(&p, end, "bytes_per_s", thr || fan, r->bytes_per_s, true);
    json_num(&p, end, "cold_ns", idle, r->cold_ns, true);
    json_num(&p, end, "idle_cpu_pct", idle, r->idle_cpu, false);
    json_num(&p, end, "floor_ns", r->floor_ns != 0, (double)r->floor_ns, true);
    if (r->mode == BENCH_FAN) {
        json_num(&p, end, "subs", true, r->subs, true);
        json_num(&p, end, "min_msgs_per_s", fan, r->min_msgs_per_s, true);
        json_num(&p, end, "pub_msgs_per_s", fan, r->pub_msgs_per_s, true);
        json_num(&p, end, "delivered", fan, r->delivered, false);
    }
    if (r->floor_at != BENCH_FLOOR_RUN && p < end) {
        json_num(&p, end, "section", true, (double)r->section, true);
        p += snprintf(p, (size_t)(end - p), ",\"floor_at\":\"%s\"",
                      r->floor_at == BENCH_FLOOR_START ? "start" : "end");
        if (p > end)
            p = end;
    }
    if (!ok && p < end) {
        p += snprintf(p, (size_t)(end - p), ",\"note\":");
        json_str(&p, end, r->note);
    }
    if (p > end)
        p = end;
    *p++ = '}';
    *p++ = '\n';
    *p = 0;
    return (int)(p - buf);
}

int bench_out_csv(const char *path, const bench_row *rows, int n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "transport,peer,wait,mode,size,status,count,p50_ns,p99_ns,p999_ns,max_ns,"
               "msgs_per_s,bytes_per_s,cold_ns,idle_cpu_pct,subs,min_msgs_per_s,pub_msgs_per_s,"
               "delivered,note,floor_ns,section,floor_at\n");
    for (int i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        static const char *const st[] = {"ok", "failed", "skipped"};
        fprintf(f, "%s,%s,%s,%s,%zu,%s,", r->tr->name, r->tr->peer, r->tr->wait,
                bench_mode_name(r->mode), r->size, st[r->status]);
        if (r->status == 0)
            fprintf(f, "%llu", (unsigned long long)r->count);
        if (r->status == 0 && r->mode == BENCH_RTT)
            fprintf(f, ",%llu,%llu,%llu,%llu,,", (unsigned long long)r->p50,
                    (unsigned long long)r->p99, (unsigned long long)r->p999,
                    (unsigned long long)r->max);
        else if (r->status == 0 && (r->mode == BENCH_THR || r->mode == BENCH_FAN))
            fprintf(f, ",,,,,%.0f,%.0f", r->msgs_per_s, r->bytes_per_s);
        else
            fprintf(f, ",,,,,,");
        if (r->status == 0 && r->mode == BENCH_IDLE)
            fprintf(f, ",%.0f,%.3f,", r->cold_ns, r->idle_cpu);
        else
            fprintf(f, ",,,");
        if (r->mode == BENCH_FAN)
            fprintf(f, "%d,", r->subs);
        else
            fprintf(f, ",");
        if (r->status == 0 && r->mode == BENCH_FAN)
            fprintf(f, "%.0f,%.0f,%.4f,", r->min_msgs_per_s, r->pub_msgs_per_s, r->delivered);
        else
            fprintf(f, ",,,");
        /* Quote the note, doubling quotes, as RFC 4180 wants. */
        if (r->status) {
            fputc('"', f);
            for (const char *s = r->note; *s; s++) {
                if (*s == '"')
                    fputc('"', f);
                fputc(*s, f);
            }
            fputc('"', f);
        }
        fputc(',', f);
        if (r->floor_ns)
            fprintf(f, "%llu", (unsigned long long)r->floor_ns);
        if (r->floor_at != BENCH_FLOOR_RUN)
            fprintf(f, ",%zu,%s", r->section, r->floor_at == BENCH_FLOOR_START ? "start" : "end");
        else
            fprintf(f, ",,");
        fputc('\n', f);
    }
    return fclose(f) == 0 ? 0 : -1;
}
