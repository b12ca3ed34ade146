/*
 * bench_plot.c - `ferry bench --plot FILE.png`: latency and throughput against message size.
 *
 * The rows are handed to gnuplot (run through popen, never linked) as inline data blocks: one panel
 * with rtt p50 per transport, one with one-way bytes/s per transport, both log-log, one line per
 * transport. Colour tells transports apart; the dash pattern tells the peer family (ferry solid and
 * thick, kernel dashed, libzmq dotted, nng dash-dot), and the floor and memcpy limits are drawn in
 * black. pngcairo is used when gnuplot has it, the plain png terminal if not.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static bool plot_have_gnuplot(void)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    char dir[512];
    while (*path) {
        size_t l = strcspn(path, ":");
        if (l && l < sizeof dir - 10) {
            char f[600];
            memcpy(dir, path, l);
            dir[l] = 0;
            snprintf(f, sizeof f, "%s/gnuplot", dir);
            if (access(f, X_OK) == 0)
                return true;
        }
        path += l;
        if (*path == ':')
            path++;
    }
    return false;
}

static void plot_style(FILE *g, const bench_transport *t, int color, int lw_extra)
{
    static const char *const pal[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                      "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
                                      "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"};
    const char *col = pal[color % (int)(sizeof pal / sizeof pal[0])];
    int dt = 1;
    double lw = 1.5;
    const char *pt = "7";
    if (!strcmp(t->peer, "floor")) {
        col = "#000000";
        lw = 2.5;
        dt = 1;
    } else if (!strcmp(t->peer, "ferry")) {
        lw = 3.0;
    } else if (!strcmp(t->peer, "kernel")) {
        dt = 2;
        pt = "5";
    } else if (!strcmp(t->peer, "zmq")) {
        dt = 3;
        pt = "9";
    } else if (!strcmp(t->peer, "nng")) {
        dt = 4;
        pt = "11";
    }
    fprintf(g, " lc rgb '%s' dt %d lw %.1f pt %s ps 0.9", col, dt, lw + lw_extra, pt);
}

/* Panel rows: 0 = ferry's transports plus the limits and zmq:ipc as the reference; 1 = the
 * kernel baselines and the peers plus the limits and the spinning ring as the reference. */
static bool plot_in_group(const bench_transport *t, int grp)
{
    if (!strcmp(t->peer, "floor"))
        return true;
    if (grp == 0)
        return !strcmp(t->peer, "ferry") || !strcmp(t->name, "zmq:ipc");
    return strcmp(t->peer, "ferry") != 0 || !strcmp(t->name, "ring");
}

/* x tics at the measured sizes, labelled in binary units. */
static void plot_xtics(FILE *g, const bench_row *rows, int n)
{
    size_t sizes[64];
    int ns = 0;
    fprintf(g, "set xtics (");
    for (int i = 0; i < n && ns < 64; i++) {
        if (rows[i].status || (rows[i].mode != BENCH_RTT && rows[i].mode != BENCH_THR) ||
            !strcmp(rows[i].tr->name, "floor"))
            continue;
        bool seen = false;
        for (int k = 0; k < ns; k++)
            seen |= sizes[k] == rows[i].size;
        if (seen)
            continue;
        sizes[ns++] = rows[i].size;
        size_t s = rows[i].size;
        if (s >= 1048576 && s % 1048576 == 0)
            fprintf(g, "%s'%zuMiB' %zu", ns > 1 ? ", " : "", s / 1048576, s);
        else if (s >= 1024 && s % 1024 == 0)
            fprintf(g, "%s'%zuKiB' %zu", ns > 1 ? ", " : "", s / 1024, s);
        else
            fprintf(g, "%s'%zuB' %zu", ns > 1 ? ", " : "", s, s);
    }
    if (!ns)
        fprintf(g, "'64B' 64");
    fprintf(g, ")\n");
}

int bench_plot(const char *png, const bench_row *rows, int n, char *why, size_t cap)
{
    if (!plot_have_gnuplot()) {
        snprintf(why, cap, "gnuplot is not installed (Debian: apt-get install gnuplot-nox)");
        return -1;
    }
    if (strchr(png, '\'') || strchr(png, '\n')) {
        snprintf(why, cap, "the plot file name may not contain quotes or newlines");
        return -1;
    }
    /* Transports in run order, and the size range for the floor's horizontal line. */
    const bench_transport *trs[64];
    int ntr = 0;
    size_t smin = SIZE_MAX, smax = 0;
    for (int i = 0; i < n; i++) {
        if (rows[i].status || (rows[i].mode != BENCH_RTT && rows[i].mode != BENCH_THR))
            continue;
        if (strcmp(rows[i].tr->name, "floor")) {
            if (rows[i].size < smin)
                smin = rows[i].size;
            if (rows[i].size > smax)
                smax = rows[i].size;
        }
        bool seen = false;
        for (int k = 0; k < ntr; k++)
            seen |= trs[k] == rows[i].tr;
        if (!seen && ntr < 64)
            trs[ntr++] = rows[i].tr;
    }
    if (!ntr) {
        snprintf(why, cap, "no row was measured");
        return -1;
    }
    if (smax == 0)
        smin = smax = 64;

    fflush(stdout);
    FILE *g = popen("gnuplot 2>&1", "w");
    if (!g) {
        snprintf(why, cap, "cannot run gnuplot: %s", strerror(errno));
        return -1;
    }
    /* Data blocks: $r<i> rtt p50 (ns) and $t<i> bytes/s, "size value" per line. */
    for (int k = 0; k < ntr; k++) {
        for (int mode = BENCH_RTT; mode <= BENCH_THR; mode++) {
            fprintf(g, "$%c%d << EOD\n", mode == BENCH_RTT ? 'r' : 't', k);
            for (int i = 0; i < n; i++) {
                const bench_row *r = &rows[i];
                if (r->tr != trs[k] || r->mode != mode || r->status)
                    continue;
                /* The floor each section's ratios divide by, at that section's size; an older
                 * file's single floor is a horizontal line. */
                if (mode == BENCH_RTT && r->floor_at == BENCH_FLOOR_START)
                    fprintf(g, "%zu %llu\n", r->section, (unsigned long long)r->p50);
                else if (mode == BENCH_RTT && r->floor_at == BENCH_FLOOR_END)
                    continue;
                else if (mode == BENCH_RTT && !strcmp(r->tr->name, "floor"))
                    fprintf(g, "%zu %llu\n%zu %llu\n", smin, (unsigned long long)r->p50, smax,
                            (unsigned long long)r->p50);
                else if (mode == BENCH_RTT)
                    fprintf(g, "%zu %llu\n", r->size, (unsigned long long)r->p50);
                else
                    fprintf(g, "%zu %.6g\n", r->size, r->bytes_per_s);
            }
            fprintf(g, "EOD\n");
        }
    }
    /* Shared y ranges, so panels side by side and above each other compare directly. */
    double lmin = 1e300, lmax = 0, tmin = 1e300, tmax = 0;
    for (int i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        if (r->status)
            continue;
        if (r->mode == BENCH_RTT && r->p50 > 0) {
            lmin = (double)r->p50 < lmin ? (double)r->p50 : lmin;
            lmax = (double)r->p50 > lmax ? (double)r->p50 : lmax;
        } else if (r->mode == BENCH_THR && r->bytes_per_s > 0) {
            tmin = r->bytes_per_s < tmin ? r->bytes_per_s : tmin;
            tmax = r->bytes_per_s > tmax ? r->bytes_per_s : tmax;
        }
    }
    fprintf(g,
            "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
            "  set terminal pngcairo size 2000,1500 font 'sans,11' linewidth 1\n"
            "} else {\n"
            "  set terminal png size 2000,1500\n"
            "}\n"
            "set output '%s'\n"
            "set multiplot layout 2,2 title 'ferry bench: two processes pinned to two CPUs, "
            "payload written and read in full (same axes in every panel)' font ',14'\n"
            "set logscale xy\n"
            "set grid xtics ytics lc rgb '#d8d8d8'\n"
            "set key outside right top Left reverse samplen 3 spacing 1.0 font ',9'\n"
            "set xlabel 'message size (log)'\n"
            "set lmargin 11\n"
            "set rmargin 40\n",
            png);
    plot_xtics(g, rows, n);
    if (smin == smax)
        fprintf(g, "set xrange [%g:%g]\n", (double)smin / 2, (double)smax * 2);
    else
        fprintf(g, "set xrange [%g:%g]\n", (double)smin / 1.5, (double)smax * 1.5);
    /* Rows: ferry (with zmq:ipc as the reference), then the kernel and the peers (with the ring
     * as the reference). Columns: latency, throughput. */
    for (int grp = 0; grp < 2; grp++) {
        for (int mode = BENCH_RTT; mode <= BENCH_THR; mode++) {
            if (mode == BENCH_RTT)
                fprintf(g,
                        "set title '%s: round trip p50 (lower is better)'\n"
                        "set ylabel 'round trip p50'\n"
                        "set yrange [%g:%g]\n"
                        "set ytics ('10ns' 10, '100ns' 100, '1us' 1000, '10us' 10000, "
                        "'100us' 100000, '1ms' 1000000, '10ms' 10000000, '100ms' 100000000, "
                        "'1s' 1000000000)\n",
                        grp ? "kernel, libzmq, nng" : "ferry", lmax > 0 ? lmin / 2 : 10,
                        lmax > 0 ? lmax * 2 : 1e9);
            else
                fprintf(g,
                        "set title '%s: one-way throughput at the consumer (higher is better)'\n"
                        "set ylabel 'bytes per second'\n"
                        "set yrange [%g:%g]\n"
                        "set ytics ('1kB/s' 1e3, '10kB/s' 1e4, '100kB/s' 1e5, '1MB/s' 1e6, "
                        "'10MB/s' 1e7, '100MB/s' 1e8, '1GB/s' 1e9, '10GB/s' 1e10, "
                        "'100GB/s' 1e11)\n",
                        grp ? "kernel, libzmq, nng" : "ferry", tmax > 0 ? tmin / 2 : 1e3,
                        tmax > 0 ? tmax * 2 : 1e11);
            fprintf(g, "plot ");
            int first = 1;
            for (int k = 0; k < ntr; k++) {
                if (!plot_in_group(trs[k], grp))
                    continue;
                bool has = false;
                for (int i = 0; i < n; i++)
                    has |= rows[i].tr == trs[k] && rows[i].mode == mode && !rows[i].status;
                if (!has)
                    continue;
                bool limit = !strcmp(trs[k]->peer, "floor");
                fprintf(g, "%s$%c%d using 1:2 with linespoints title '%s%s%s%s'",
                        first ? "" : ", \\\n  ", mode == BENCH_RTT ? 'r' : 't', k, trs[k]->name,
                        limit ? " (limit)" : " (", limit ? "" : trs[k]->wait, limit ? "" : ")");
                plot_style(g, trs[k], k, 0);
                first = 0;
            }
            if (first)
                fprintf(g, "NaN title 'nothing measured'");
            fprintf(g, "\n");
        }
    }
    fprintf(g, "unset multiplot\nset output\n");
    int st = pclose(g);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(why, cap, "gnuplot failed (status %d)", st == -1 ? -1 : WEXITSTATUS(st));
        return -1;
    }
    if (access(png, F_OK) != 0) {
        snprintf(why, cap, "gnuplot wrote no %s", png);
        return -1;
    }
    return 0;
}
