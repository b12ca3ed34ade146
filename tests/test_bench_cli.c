/*
 * test_bench_cli.c - `ferry bench` as a user meets it: runs the built tool (FERRY_BIN) and checks
 * the usage errors (exit 2 with a message), the JSON line format of real short runs, --json-out and
 * --csv files, and that a row whose child crashes or hangs is reported as failed with its reason
 * while the run goes on, every child is reaped and the private temp directory is removed. The floor
 * is measured around every size section: each section's p50/floor ratios divide by its own floor
 * (floor_ns), a section whose floor moved says so, and --from renders old single-floor files.
 */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *g_bin;
static char g_out[512], g_err[512], g_tmp[512];

/* Runs `ferry bench <args...>` with stdout/stderr captured to files; returns the exit status (or
 * 128+signal). env: NULL-terminated extra "K=V" strings. */
static int run(const char *const *env, ...)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = g_bin;
    argv[n++] = "bench";
    va_list ap;
    va_start(ap, env);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 62)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    pid_t p = fork();
    CHECK(p >= 0);
    if (p == 0) {
        int o = open(g_out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(g_err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0 || e < 0)
            _exit(126);
        dup2(o, 1);
        dup2(e, 2);
        setenv("TMPDIR", g_tmp, 1);
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(g_bin, (char *const *)argv);
        _exit(127);
    }
    int st;
    uint64_t deadline = tu_now_ns() + 60ull * 1000000000ull;
    for (;;) {
        pid_t w = waitpid(p, &st, WNOHANG);
        CHECK(w >= 0);
        if (w == p)
            break;
        if (tu_now_ns() > deadline) {
            kill(p, SIGKILL);
            waitpid(p, &st, 0);
            fprintf(stderr, "ferry bench did not finish in 60 s\n");
            exit(1);
        }
        usleep(2000); /* waiting for a process to exit: there is no state to poll but its pid */
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    CHECK(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* The value text after "key": in a JSON line (up to the next , or }), or NULL. */
static const char *jget(const char *line, const char *key, char *val, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    size_t i = 0;
    if (*p == '"') {
        val[i++] = *p++;
        while (*p && *p != '"' && i < cap - 2)
            val[i++] = *p++;
        val[i++] = '"';
    } else {
        while (*p && *p != ',' && *p != '}' && i < cap - 1)
            val[i++] = *p++;
    }
    val[i] = 0;
    return val;
}

static bool is_number(const char *v)
{
    if (!*v)
        return false;
    for (const char *p = v; *p; p++)
        if (!strchr("0123456789.e+-", *p))
            return false;
    return true;
}

/* Checks the schema of one JSON line and returns its mode. */
static void check_line(const char *line, const char *want_tr, const char *want_mode)
{
    char v[256];
    CHECK(line[0] == '{');
    static const char *const keys[] = {
        "transport", "peer",   "wait",    "mode",   "size",       "status",      "count",
        "p50_ns",    "p99_ns", "p999_ns", "max_ns", "msgs_per_s", "bytes_per_s", "floor_ns"};
    for (unsigned i = 0; i < sizeof keys / sizeof keys[0]; i++)
        CHECK(jget(line, keys[i], v, sizeof v));
    char tr[64], mode[16];
    snprintf(tr, sizeof tr, "\"%s\"", want_tr);
    snprintf(mode, sizeof mode, "\"%s\"", want_mode);
    CHECK(!strcmp(jget(line, "transport", v, sizeof v), tr));
    CHECK(!strcmp(jget(line, "mode", v, sizeof v), mode));
    CHECK(!strcmp(jget(line, "status", v, sizeof v), "\"ok\""));
    CHECK(is_number(jget(line, "count", v, sizeof v)) && atof(v) > 0);
    bool rtt = !strcmp(want_mode, "rtt");
    static const char *const lat[] = {"p50_ns", "p99_ns", "p999_ns", "max_ns"};
    double prev = 0;
    for (int i = 0; i < 4; i++) {
        jget(line, lat[i], v, sizeof v);
        if (rtt) {
            CHECK(is_number(v));
            CHECK(atof(v) > 0 && atof(v) >= prev); /* p50 <= p99 <= p999 <= max */
            prev = atof(v);
        } else {
            CHECK(!strcmp(v, "null"));
        }
    }
    jget(line, "msgs_per_s", v, sizeof v);
    CHECK(rtt ? !strcmp(v, "null") : (is_number(v) && atof(v) > 0));
    double mps = atof(v);
    jget(line, "bytes_per_s", v, sizeof v);
    CHECK(rtt ? !strcmp(v, "null") : (is_number(v) && atof(v) > 0));
    if (!rtt) {
        char sz[32];
        jget(line, "size", sz, sizeof sz);
        /* bytes/s is msgs/s times the size, both printed rounded to integers: the rounding of
         * msgs/s alone moves the product by up to half a message (2 KiB at 4 KiB), which is more
         * than 0.1% whenever fewer than 500 msgs/s were measured (a loaded machine: 267 msgs/s
         * of 4 KiB over kernel:pipe in a 0.02 s row). */
        double want = mps * atof(sz), slack = want * 0.001 + atof(sz) / 2 + 1;
        CHECK(atof(v) > want - slack && atof(v) < want + slack);
    }
}

/* The line of transport tr in the table section whose header starts with hdr ("== 64 B =="),
 * or NULL. */
static const char *section_row(const char *table, const char *hdr, const char *tr, char *buf,
                               size_t cap)
{
    const char *p = strstr(table, hdr);
    if (!p)
        return NULL;
    const char *end = strstr(p + 1, "\n== ");
    size_t tl = strlen(tr);
    for (const char *l = strchr(p, '\n'); l && (!end || l < end); l = strchr(l + 1, '\n')) {
        if (!strncmp(l + 1, tr, tl) && l[1 + tl] == ' ') {
            size_t n = strcspn(l + 1, "\n");
            snprintf(buf, cap, "%.*s", (int)(n < cap ? n : cap - 1), l + 1);
            return buf;
        }
    }
    return NULL;
}

/* The p50/floor column of a table row (the fifth cell after the first '|'), as a number. */
static double row_ratio(const char *row)
{
    const char *p = strchr(row, '|');
    CHECK(p);
    char cell[5][32];
    CHECK(sscanf(p + 1, "%31s %31s %31s %31s %31s", cell[0], cell[1], cell[2], cell[3], cell[4]) ==
          5);
    CHECK(strchr(cell[4], 'x'));
    return atof(cell[4]);
}

/* Whether a ratio the table printed is want, within the rounding of how it prints it. */
static bool ratio_is(double shown, double want)
{
    double tol = want >= 1000 ? want * 0.06 : want >= 10 ? 0.51 : want >= 0.1 ? 0.0051 : 0.00051;
    return shown > want - tol && shown < want + tol;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    CHECK(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static void expect_usage_error(const char *what, const char *needle, ...)
{
    const char *args[16] = {0};
    int n = 0;
    va_list ap;
    va_start(ap, needle);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 15)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    int rc = run(NULL, args[0], args[1], args[2], args[3], args[4], args[5], NULL);
    if (rc != 2 || !strstr(slurp(g_err), needle)) {
        fprintf(stderr, "%s: rc %d, stderr: %s\n", what, rc, slurp(g_err));
        exit(1);
    }
    CHECK(slurp(g_out)[0] == 0); /* nothing measured, nothing printed */
}

int main(void)
{
    tu_deadline(120);
    g_bin = getenv("FERRY_BIN");
    if (!g_bin || access(g_bin, X_OK) != 0) {
        fprintf(stderr, "FERRY_BIN not set or not executable: skipped\n");
        return TEST_SKIP;
    }
    snprintf(g_out, sizeof g_out, "%s/out", tu_tmpdir());
    snprintf(g_err, sizeof g_err, "%s/err", tu_tmpdir());
    snprintf(g_tmp, sizeof g_tmp, "%s/tmp", tu_tmpdir());
    CHECK(mkdir(g_tmp, 0700) == 0);

    /* --help documents every option. */
    CHECK(run(NULL, "--help", NULL) == 0);
    const char *help = slurp(g_out);
    static const char *const opts[] = {"--transport", "--size", "--mode",     "--seconds",
                                       "--cpus",      "--json", "--json-out", "--csv",
                                       "--plot",      "--quiet"};
    for (unsigned i = 0; i < sizeof opts / sizeof opts[0]; i++)
        CHECK(strstr(help, opts[i]));
    CHECK(run(NULL, "--list", NULL) == 0);
    CHECK(strstr(slurp(g_out), "kernel:tcp") && strstr(slurp(g_out), "floor"));

    /* Usage errors: exit 2 and a message naming the problem. */
    expect_usage_error("unknown transport", "unknown transport 'bogus'", "--transport", "bogus",
                       NULL);
    expect_usage_error("unknown mode", "unknown mode 'fast'", "--mode", "fast", NULL);
    expect_usage_error("size 0", "bad size '0'", "--size", "0", NULL);
    expect_usage_error("size too big", "bad size '17M'", "--size", "64,17M", NULL);
    expect_usage_error("size not a number", "bad size 'x'", "--size", "x", NULL);
    expect_usage_error("seconds", "--seconds", "--seconds", "0", NULL);
    expect_usage_error("seconds text", "--seconds", "--seconds", "fast", NULL);
    expect_usage_error("cpus", "--cpus", "--cpus", "0", NULL);
    expect_usage_error("same cpus", "two different CPUs", "--cpus", "1,1", NULL);
    expect_usage_error("unknown option", "unknown option", "--frobnicate", NULL);
    expect_usage_error("missing value", "needs a value", "--size", NULL);
    expect_usage_error("stray argument", "unexpected argument", "floor", NULL);

    /* A short real run: one JSON object per row, in run order, with the right fields. */
    char jout[600], csv[600];
    snprintf(jout, sizeof jout, "%s/rows.json", tu_tmpdir());
    snprintf(csv, sizeof csv, "%s/rows.csv", tu_tmpdir());
    int rc = run(NULL, "--json", "--json-out", jout, "--csv", csv, "--transport",
                 "floor,memcpy,kernel:pipe,kernel:uds+batch", "--size", "64,4K", "--mode",
                 "rtt,thr", "--seconds", "0.02", "--warmup", "0", NULL);
    if (rc != 0) {
        fprintf(stderr, "short run: rc %d\n%s\n%s\n", rc, slurp(g_out), slurp(g_err));
        exit(1);
    }
    /* The floor opens and closes every size section (reported as size 64, one cache line). */
    static const char *const want[][5] = {
        {"floor", "rtt", "64", "64", "\"start\""},
        {"memcpy", "thr", "64"},
        {"kernel:pipe", "rtt", "64"},
        {"kernel:pipe", "thr", "64"},
        {"kernel:uds+batch", "thr", "64"},
        {"floor", "rtt", "64", "64", "\"end\""},
        {"floor", "rtt", "64", "4096", "\"start\""},
        {"memcpy", "thr", "4096"},
        {"kernel:pipe", "rtt", "4096"},
        {"kernel:pipe", "thr", "4096"},
        {"kernel:uds+batch", "thr", "4096"},
        {"floor", "rtt", "64", "4096", "\"end\""},
    };
    double start_floor = 0, pipe_p50[2] = {0, 0}, pipe_floor[2] = {0, 0};
    char out[1 << 16];
    snprintf(out, sizeof out, "%s", slurp(g_out));
    CHECK(!strcmp(out, slurp(jout))); /* --json-out holds the same lines */
    char *save = NULL, *line = strtok_r(out, "\n", &save);
    for (unsigned i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK(line);
        check_line(line, want[i][0], want[i][1]);
        char v[32];
        CHECK(!strcmp(jget(line, "size", v, sizeof v), want[i][2]));
        bool floor = !strcmp(want[i][0], "floor");
        if (floor) {
            CHECK(!strcmp(jget(line, "section", v, sizeof v), want[i][3]));
            CHECK(!strcmp(jget(line, "floor_at", v, sizeof v), want[i][4]));
            if (!strcmp(want[i][4], "\"start\""))
                start_floor = atof(jget(line, "p50_ns", v, sizeof v));
        } else {
            CHECK(!jget(line, "section", v, sizeof v) && !jget(line, "floor_at", v, sizeof v));
        }
        /* An rtt row carries the floor that opened its section; nothing else carries one. */
        jget(line, "floor_ns", v, sizeof v);
        if (!floor && !strcmp(want[i][1], "rtt")) {
            CHECK(is_number(v) && atof(v) == start_floor);
            int k = !strcmp(want[i][2], "4096");
            pipe_floor[k] = atof(v);
            pipe_p50[k] = atof(jget(line, "p50_ns", v, sizeof v));
        } else {
            CHECK(!strcmp(v, "null"));
        }
        line = strtok_r(NULL, "\n", &save);
    }
    CHECK(line == NULL);
    /* CSV: a header and one line per row. */
    const char *c = slurp(csv);
    CHECK(!strncmp(c, "transport,peer,wait,mode,size,status,", 37));
    int lines = 0;
    for (const char *p = c; *p; p++)
        lines += *p == '\n';
    CHECK(lines == 1 + (int)(sizeof want / sizeof want[0]));
    CHECK(count_entries(g_tmp) == 0); /* the private temp directory is gone */

    /* --from reads the rows back: the same JSON lines again, and a table without measuring. */
    char saved[1 << 16];
    snprintf(saved, sizeof saved, "%s", slurp(jout));
    CHECK(run(NULL, "--from", jout, "--json", NULL) == 0);
    CHECK(!strcmp(slurp(g_out), saved));
    CHECK(run(NULL, "--from", jout, NULL) == 0);
    CHECK(strstr(slurp(g_out), "rows read from") && strstr(slurp(g_out), "== 4 KiB"));
    char saved_path[600];
    snprintf(saved_path, sizeof saved_path, "%s/saved.json", tu_tmpdir());
    FILE *sv = fopen(saved_path, "w");
    CHECK(sv && fputs(saved, sv) >= 0 && fclose(sv) == 0);
    FILE *bad = fopen(jout, "a");
    CHECK(bad);
    fputs("{\"transport\":\"x\",\"mode\":\"sideways\"}\n", bad);
    fclose(bad);
    expect_usage_error("corrupt --from file", "rows.json:13: not a ferry bench JSON row", "--from",
                       jout, NULL);

    /* The table (from the saved rows: nothing to measure again): grouped by size, with the floor
     * and the ratios. */
    CHECK(run(NULL, "--quiet", "--from", saved_path, NULL) == 0);
    const char *t = slurp(g_out);
    CHECK(strstr(t, "floor (one cache line ping-pong)"));
    CHECK(strstr(t, "== 64 B") && strstr(t, "== 4 KiB"));
    CHECK(strstr(t, "p50/floor") && strstr(t, "/memcpy"));
    CHECK(strstr(t, "kernel:pipe") && strstr(t, "kernel:uds+batch"));
    /* Each section's header gives its two floors and its ratios divide by its own. */
    CHECK(strstr(t, "== 64 B == floor ") && strstr(t, "== 4 KiB == floor ") && strstr(t, " -> "));
    char row[512];
    CHECK(section_row(t, "== 64 B ==", "kernel:pipe", row, sizeof row));
    CHECK(ratio_is(row_ratio(row), pipe_p50[0] / pipe_floor[0]));
    CHECK(section_row(t, "== 4 KiB ==", "kernel:pipe", row, sizeof row));
    CHECK(ratio_is(row_ratio(row), pipe_p50[1] / pipe_floor[1]));

    /* A live table and --from of the run's JSON print the same table (from the floor line on). */
    char live[1 << 16];
    rc = run(NULL, "--quiet", "--json-out", jout, "--transport", "kernel:pipe", "--size", "64,1K",
             "--mode", "rtt", "--seconds", "0.02", "--warmup", "0", NULL);
    CHECK(rc == 0);
    CHECK(strstr(slurp(g_out), "== 1 KiB == floor "));
    snprintf(live, sizeof live, "%s", strstr(slurp(g_out), "\nfloor (one cache line"));
    CHECK(run(NULL, "--from", jout, NULL) == 0);
    CHECK(strstr(slurp(g_out), "\nfloor (one cache line"));
    CHECK(!strcmp(strstr(slurp(g_out), "\nfloor (one cache line"), live));

    /* A saved run whose floor moved during its 1 KiB section: each section divides by its own
     * floor (2000 ns is 20x the 64 B floor, 2.00x the 1 KiB one), and only the 1 KiB section is
     * flagged, in the table and on stderr. */
    char moved[600];
    snprintf(moved, sizeof moved, "%s/moved.json", tu_tmpdir());
    static const char floor_fmt[] =
        "{\"transport\":\"floor\",\"peer\":\"floor\",\"wait\":\"spin\",\"mode\":\"rtt\","
        "\"size\":64,\"status\":\"ok\",\"count\":1000,\"p50_ns\":%d,\"p99_ns\":%d,\"p999_ns\":%d,"
        "\"max_ns\":%d,\"msgs_per_s\":null,\"bytes_per_s\":null,\"cold_ns\":null,"
        "\"idle_cpu_pct\":null,\"floor_ns\":null,\"section\":%d,\"floor_at\":\"%s\"}\n";
    static const char pipe_fmt[] =
        "{\"transport\":\"kernel:pipe\",\"peer\":\"kernel\",\"wait\":\"blocking\",\"mode\":"
        "\"rtt\",\"size\":%d,\"status\":\"ok\",\"count\":1000,\"p50_ns\":2000,\"p99_ns\":3000,"
        "\"p999_ns\":4000,\"max_ns\":5000,\"msgs_per_s\":null,\"bytes_per_s\":null,"
        "\"cold_ns\":null,\"idle_cpu_pct\":null,\"floor_ns\":%d}\n";
    char text[4096];
    int len = 0;
    len += snprintf(text + len, sizeof text - len, floor_fmt, 100, 110, 120, 130, 64, "start");
    len += snprintf(text + len, sizeof text - len, pipe_fmt, 64, 100);
    len += snprintf(text + len, sizeof text - len, floor_fmt, 110, 120, 130, 140, 64, "end");
    len +=
        snprintf(text + len, sizeof text - len, floor_fmt, 1000, 1100, 1200, 1300, 1024, "start");
    len += snprintf(text + len, sizeof text - len, pipe_fmt, 1024, 1000);
    snprintf(text + len, sizeof text - len, floor_fmt, 1400, 1500, 1600, 1700, 1024, "end");
    write_file(moved, text);
    CHECK(run(NULL, "--from", moved, NULL) == 0);
    t = slurp(g_out);
    CHECK(strstr(t, "== 64 B == floor 100ns -> 110ns ="));
    CHECK(strstr(t, "== 1 KiB == floor 1000ns -> 1400ns ="));
    CHECK(section_row(t, "== 64 B ==", "kernel:pipe", row, sizeof row) &&
          ratio_is(row_ratio(row), 20));
    CHECK(section_row(t, "== 1 KiB ==", "kernel:pipe", row, sizeof row) &&
          ratio_is(row_ratio(row), 2));
    const char *warn = strstr(t, "warning: the floor moved from 1000ns to 1400ns during the 1 KiB");
    CHECK(warn && warn > strstr(t, "== 1 KiB ==") && !strstr(warn + 1, "warning: the floor moved"));
    CHECK(strstr(t, "warning: the floor moved") == warn);
    CHECK(strstr(slurp(g_err), "warning: the floor moved from 1000ns to 1400ns"));
    CHECK(run(NULL, "--from", moved, "--json", NULL) == 0);
    CHECK(!strcmp(slurp(g_out), text));

    /* A file from before per-section floors (one floor row, no floor_ns: the rows of
     * docs/bench-results/2026-11-25-session4-epyc-2vcpu.json) renders every section against its
     * one floor, without a warning. */
    char old[600];
    snprintf(old, sizeof old, "%s/old.json", tu_tmpdir());
    write_file(old,
               "{\"transport\":\"floor\",\"peer\":\"floor\",\"wait\":\"spin\",\"mode\":\"rtt\","
               "\"size\":64,\"status\":\"ok\",\"count\":437757,\"p50_ns\":441,\"p99_ns\":571,"
               "\"p999_ns\":699,\"max_ns\":246446,\"msgs_per_s\":null,\"bytes_per_s\":null,"
               "\"cold_ns\":null,\"idle_cpu_pct\":null}\n"
               "{\"transport\":\"ring:ref\",\"peer\":\"floor\",\"wait\":\"spin\",\"mode\":\"rtt\","
               "\"size\":64,\"status\":\"ok\",\"count\":241845,\"p50_ns\":739,\"p99_ns\":1079,"
               "\"p999_ns\":37631,\"max_ns\":1031752,\"msgs_per_s\":null,\"bytes_per_s\":null,"
               "\"cold_ns\":null,\"idle_cpu_pct\":null}\n"
               "{\"transport\":\"ring:ref\",\"peer\":\"floor\",\"wait\":\"spin\",\"mode\":\"rtt\","
               "\"size\":1024,\"status\":\"ok\",\"count\":126125,\"p50_ns\":1463,\"p99_ns\":1911,"
               "\"p999_ns\":40703,\"max_ns\":265874,\"msgs_per_s\":null,\"bytes_per_s\":null,"
               "\"cold_ns\":null,\"idle_cpu_pct\":null}\n");
    CHECK(run(NULL, "--from", old, NULL) == 0);
    t = slurp(g_out);
    CHECK(strstr(t, "== 64 B == floor 441ns (measured once") &&
          strstr(t, "== 1 KiB == floor 441ns (measured once"));
    CHECK(section_row(t, "== 64 B ==", "ring:ref", row, sizeof row) &&
          ratio_is(row_ratio(row), 739.0 / 441));
    CHECK(section_row(t, "== 1 KiB ==", "ring:ref", row, sizeof row) &&
          ratio_is(row_ratio(row), 1463.0 / 441));
    CHECK(!strstr(t, "warning: the floor moved") && !strstr(slurp(g_err), "warning"));
    /* And the saved runs in the source tree themselves, when the tree is where it was built. */
    char docs[1024];
    snprintf(docs, sizeof docs, "%s", __FILE__);
    char *slash = strrchr(docs, '/');
    if (slash && slash - docs > 6 && !strncmp(slash - 6, "/tests", 6)) {
        snprintf(slash - 6, sizeof docs - (size_t)(slash - 6 - docs),
                 "/docs/bench-results/2026-11-25-session4-epyc-2vcpu.json");
        if (access(docs, R_OK) == 0) {
            CHECK(run(NULL, "--from", docs, NULL) == 0);
            CHECK(strstr(slurp(g_out), "== 1 MiB == floor 441ns (measured once"));
        }
    }

    /* --plot writes a PNG through gnuplot (or says why not, and still exits 0). */
    char png[600];
    snprintf(png, sizeof png, "%s/plot.png", tu_tmpdir());
    CHECK(run(NULL, "--from", saved_path, "--plot", png, NULL) == 0);
    if (strstr(slurp(g_err), "gnuplot is not installed")) {
        CHECK(access(png, F_OK) != 0);
    } else {
        FILE *pf = fopen(png, "rb");
        CHECK(pf);
        unsigned char magic[8] = {0};
        CHECK(fread(magic, 1, 8, pf) == 8);
        fclose(pf);
        CHECK(!memcmp(magic, "\x89PNG\r\n\x1a\n", 8));
        CHECK(strstr(slurp(g_err), "plot written to"));
    }

    /* A child that dies: its row fails with the reason, the next row still runs, exit 1. */
    const char *crash[] = {"FERRY_BENCH_INJECT=crash:kernel:pipe", NULL};
    rc = run(crash, "--json", "--transport", "kernel:pipe,kernel:uds", "--size", "64", "--mode",
             "rtt", "--seconds", "0.02", "--warmup", "0", NULL);
    CHECK(rc == 1);
    snprintf(out, sizeof out, "%s", slurp(g_out));
    CHECK(strstr(out, "\"transport\":\"kernel:pipe\"") && strstr(out, "\"status\":\"failed\"") &&
          strstr(out, "killed by signal 9"));
    line = strstr(out, "\"transport\":\"kernel:uds\"");
    CHECK(line && strstr(line, "\"status\":\"ok\""));
    CHECK(count_entries(g_tmp) == 0);

    /* A child that hangs: killed at the row's deadline, reported (in the live table too), the
     * run goes on. */
    const char *hang[] = {"FERRY_BENCH_INJECT=hang:kernel:uds", "FERRY_BENCH_DEADLINE=1", NULL};
    rc = run(hang, "--json-out", jout, "--transport", "kernel:uds,kernel:pipe", "--size", "64",
             "--mode", "thr", "--seconds", "0.02", "--warmup", "0", NULL);
    CHECK(rc == 1);
    t = slurp(g_out);
    CHECK(strstr(t, "pinned to CPUs") && strstr(t, "clock_gettime costs"));
    CHECK(strstr(t, "timed out after 1.0 s") && strstr(t, "1 row(s) failed"));
    snprintf(out, sizeof out, "%s", slurp(jout));
    CHECK(strstr(out, "timed out after 1.0 s"));
    line = strstr(out, "\"transport\":\"kernel:pipe\"");
    CHECK(line && strstr(line, "\"status\":\"ok\""));
    CHECK(count_entries(g_tmp) == 0);

    /* A peer over ipc leaves no socket file behind (skipped quietly when libzmq is absent). */
    rc = run(NULL, "--json", "--transport", "zmq:ipc", "--size", "64", "--mode", "rtt", "--seconds",
             "0.02", "--warmup", "0", NULL);
    CHECK(rc == 0);
    /* The floor always comes first (every run measures its limits), then the peer. */
    snprintf(out, sizeof out, "%s", slurp(g_out));
    line = strtok_r(out, "\n", &save);
    CHECK(line);
    check_line(line, "floor", "rtt");
    line = strtok_r(NULL, "\n", &save);
    if (line)
        check_line(line, "zmq:ipc", "rtt");
    CHECK(count_entries(g_tmp) == 0);

    /* Fan-out: three rows (1, 2, 4 subscribers) with per-subscriber rates, when libzmq is here. */
    rc = run(NULL, "--json", "--transport", "zmq:tcp", "--size", "64", "--mode", "fan", "--seconds",
             "0.05", "--warmup", "0", NULL);
    CHECK(rc == 0);
    snprintf(out, sizeof out, "%s", slurp(g_out));
    if (strstr(out, "zmq:tcp")) {
        const char *subs[] = {"1", "2", "4"};
        line = strtok_r(out, "\n", &save);
        for (int i = 0; i < 3; i++) {
            char v[64];
            CHECK(line);
            CHECK(!strcmp(jget(line, "mode", v, sizeof v), "\"fan\""));
            CHECK(!strcmp(jget(line, "status", v, sizeof v), "\"ok\""));
            CHECK(!strcmp(jget(line, "subs", v, sizeof v), subs[i]));
            CHECK(is_number(jget(line, "msgs_per_s", v, sizeof v)) && atof(v) > 0);
            double mean = atof(v);
            CHECK(is_number(jget(line, "min_msgs_per_s", v, sizeof v)) && atof(v) <= mean + 1);
            CHECK(is_number(jget(line, "delivered", v, sizeof v)) && atof(v) > 0 && atof(v) <= 1);
            CHECK(!strcmp(jget(line, "p50_ns", v, sizeof v), "null"));
            line = strtok_r(NULL, "\n", &save);
        }
        CHECK(line == NULL);
    }
    CHECK(count_entries(g_tmp) == 0);

    rmdir(g_tmp);
    printf("test_bench_cli: ok\n");
    return 0;
}
