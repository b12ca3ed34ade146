/*
 * bench_section.c - the floor around every size section of `ferry bench`.
 *
 * On a VM the hypervisor moves the two vCPUs between placements (on this project's 2-vCPU VM a
 * "close" one with a ~120-160 ns floor and a "far" one at ~400-600 ns, every few minutes), and
 * every cross-CPU figure moves with it. One floor per run made the later sections' p50/floor
 * ratios divide by a floor from the other placement (0.41x was seen). So the floor is measured
 * just before and just after the rows of every message size: the section's ratios divide by the
 * floor that opened it, and when the closing floor is more than 25 % away from it the placement
 * moved while the section ran and its ratios cannot be trusted, which the table and stderr say.
 * The first section's opening floor is the run's start and the last one's closing floor its end.
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>

extern const bench_transport bench_tr_floor;

void bench_floor_row(const bench_cfg *cfg, size_t section, int at, bench_row *r)
{
    bench_job job;
    memset(&job, 0, sizeof job);
    job.cfg = cfg;
    job.tr = &bench_tr_floor;
    job.mode = BENCH_RTT;
    job.size = 64; /* one cache line whatever the section's message size */
    bench_run_row(&job, r);
    r->section = section;
    r->floor_at = at;
}

void bench_section_floors(const bench_row *rows, int n, size_t size, const bench_row **start,
                          const bench_row **end)
{
    *start = *end = NULL;
    const bench_row *run = NULL;
    for (int i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        if (r->mode != BENCH_RTT || strcmp(r->tr->name, "floor"))
            continue;
        if (r->floor_at == BENCH_FLOOR_RUN && !run)
            run = r;
        else if (r->section == size && r->floor_at == BENCH_FLOOR_START && !*start)
            *start = r;
        else if (r->section == size && r->floor_at == BENCH_FLOOR_END && !*end)
            *end = r;
    }
    if (!*start && !*end)
        *start = run;
}

bool bench_floor_moved(const bench_row *start, const bench_row *end, char *buf, size_t cap)
{
    if (!start || !end || start->status || end->status || !start->p50 || !end->p50)
        return false;
    double hi = (double)(start->p50 > end->p50 ? start->p50 : end->p50);
    double lo = (double)(start->p50 > end->p50 ? end->p50 : start->p50);
    if (hi <= lo * 1.25)
        return false;
    char a[32], b[32], s[32];
    snprintf(buf, cap,
             "the floor moved from %s to %s during the %s section (the hypervisor placed the two "
             "vCPUs differently): its p50/floor ratios are not trustworthy; rerun",
             bench_fmt_ns(a, sizeof a, (double)start->p50),
             bench_fmt_ns(b, sizeof b, (double)end->p50),
             bench_fmt_size(s, sizeof s, start->section));
    return true;
}

void bench_floor_warn_all(const bench_cfg *cfg, const bench_row *rows, int n)
{
    for (int s = 0; s < cfg->nsizes; s++) {
        const bench_row *start, *end;
        char why[256];
        bench_section_floors(rows, n, cfg->sizes[s], &start, &end);
        if (bench_floor_moved(start, end, why, sizeof why))
            fprintf(stderr, "ferry bench: warning: %s\n", why);
    }
}
