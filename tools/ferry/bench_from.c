/*
 * bench_from.c - `ferry bench --from FILE`: the table, CSV and plot again from saved JSON lines.
 *
 * A run's --json-out file is the durable record (the table is for eyes, the JSON for tools); this
 * reads it back so a chart or a table can be redrawn without measuring again, e.g. for a README.
 * Only the format `ferry bench` writes is accepted (one flat object per line, the keys of
 * bench_out_json_line); anything else is reported with its line number. Files written before the
 * floor was measured around every size section (one floor row, no floor_ns) are read too.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Transports named in the file but unknown to this build get a stand-in entry. */
static bench_transport from_tr[64];
static char from_names[64][3][48];
static int from_ntr;

/* Finds "key": in line and returns a pointer to its value, or NULL. */
static const char *from_key(const char *line, const char *key)
{
    char pat[48];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    return p ? p + strlen(pat) : NULL;
}

/* Copies a JSON string value (with \" \\ and \u00XX escapes) into buf; false if malformed. */
static bool from_str(const char *line, const char *key, char *buf, size_t cap)
{
    const char *p = from_key(line, key);
    if (!p || *p != '"')
        return false;
    p++;
    size_t n = 0;
    while (*p && *p != '"') {
        char c = *p++;
        if (c == '\\') {
            if (*p == 'u' && p[1] == '0' && p[2] == '0' && p[3] && p[4]) {
                char hex[3] = {p[3], p[4], 0};
                c = (char)strtol(hex, NULL, 16);
                p += 5;
            } else if (*p) {
                c = *p++;
            } else {
                return false;
            }
        }
        if (n + 1 < cap)
            buf[n++] = c;
    }
    buf[n] = 0;
    return *p == '"';
}

/* A number, or null (have = false). False if the key is missing or the value malformed. */
static bool from_num(const char *line, const char *key, double *v, bool *have)
{
    const char *p = from_key(line, key);
    if (!p)
        return false;
    if (!strncmp(p, "null", 4)) {
        *have = false;
        *v = 0;
        return true;
    }
    char *end;
    errno = 0;
    *v = strtod(p, &end);
    if (end == p || errno || (*end != ',' && *end != '}'))
        return false;
    *have = true;
    return true;
}

static const bench_transport *from_transport(const char *name, const char *peer, const char *wait)
{
    const bench_transport *t = bench_transport_find(name);
    if (t)
        return t;
    for (int i = 0; i < from_ntr; i++)
        if (!strcmp(from_tr[i].name, name))
            return &from_tr[i];
    if (from_ntr == 64)
        return NULL;
    char(*s)[48] = from_names[from_ntr];
    snprintf(s[0], sizeof s[0], "%s", name);
    snprintf(s[1], sizeof s[1], "%s", peer);
    snprintf(s[2], sizeof s[2], "%s", wait);
    bench_transport *n = &from_tr[from_ntr++];
    memset(n, 0, sizeof *n);
    n->name = s[0];
    n->peer = s[1];
    n->wait = s[2];
    n->help = "read from a file";
    return n;
}

int bench_from_file(const char *path, bench_row **out, int *nout)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "ferry bench: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    int cap = 64, n = 0, lineno = 0, rc = 0;
    bench_row *rows = calloc((size_t)cap, sizeof *rows);
    char line[4096];
    while (rows && fgets(line, sizeof line, f)) {
        lineno++;
        if (line[strspn(line, " \t\r\n")] == 0)
            continue;
        if (n == cap) {
            bench_row *r2 = realloc(rows, (size_t)cap * 2 * sizeof *rows);
            if (!r2)
                break;
            memset(r2 + cap, 0, (size_t)cap * sizeof *rows);
            rows = r2;
            cap *= 2;
        }
        bench_row *r = &rows[n];
        memset(r, 0, sizeof *r);
        char name[48], peer[48], wait[48], mode[16], status[16];
        double v;
        bool have, ok = line[0] == '{' && from_str(line, "transport", name, sizeof name) &&
                        from_str(line, "peer", peer, sizeof peer) &&
                        from_str(line, "wait", wait, sizeof wait) &&
                        from_str(line, "mode", mode, sizeof mode) &&
                        from_str(line, "status", status, sizeof status) &&
                        from_num(line, "size", &v, &have) && have && v >= 1;
        if (ok) {
            r->size = (size_t)v;
            r->mode = -1;
            for (int m = 0; m < BENCH_MODES; m++)
                if (!strcmp(mode, bench_mode_name(m)))
                    r->mode = m;
            r->status = !strcmp(status, "ok") ? 0 : !strcmp(status, "failed") ? 1 : 2;
            ok = r->mode >= 0 && (r->status != 2 || !strcmp(status, "skipped"));
        }
        if (ok)
            ok = (r->tr = from_transport(name, peer, wait)) != NULL;
        if (ok && r->status) {
            if (!from_str(line, "note", r->note, sizeof r->note))
                r->note[0] = 0;
        } else if (ok) {
            /* The fields a row of this mode must carry, as the writer puts them. */
            struct {
                const char *key;
                int mode;
            } need[] = {{"count", -1},
                        {"p50_ns", BENCH_RTT},
                        {"p99_ns", BENCH_RTT},
                        {"p999_ns", BENCH_RTT},
                        {"max_ns", BENCH_RTT},
                        {"msgs_per_s", BENCH_THR},
                        {"bytes_per_s", BENCH_THR},
                        {"cold_ns", BENCH_IDLE},
                        {"idle_cpu_pct", BENCH_IDLE},
                        {"msgs_per_s", BENCH_FAN},
                        {"subs", BENCH_FAN},
                        {"min_msgs_per_s", BENCH_FAN},
                        {"pub_msgs_per_s", BENCH_FAN},
                        {"delivered", BENCH_FAN}};
            double val[14];
            for (int k = 0; k < 14 && ok; k++) {
                val[k] = 0;
                if (need[k].mode != -1 && need[k].mode != r->mode)
                    continue;
                ok = from_num(line, need[k].key, &val[k], &have) && have && val[k] >= 0;
            }
            if (ok) {
                r->count = (uint64_t)val[0];
                r->p50 = (uint64_t)val[1];
                r->p99 = (uint64_t)val[2];
                r->p999 = (uint64_t)val[3];
                r->max = (uint64_t)val[4];
                r->msgs_per_s = r->mode == BENCH_FAN ? val[9] : val[5];
                r->bytes_per_s = val[6];
                r->cold_ns = val[7];
                r->idle_cpu = val[8];
                r->subs = (int)val[10];
                r->min_msgs_per_s = val[11];
                r->pub_msgs_per_s = val[12];
                r->delivered = val[13];
                if (r->mode == BENCH_FAN) {
                    double b;
                    r->bytes_per_s = from_num(line, "bytes_per_s", &b, &have) && have ? b : 0;
                }
            }
        }
        /* Newer files only: a file without them renders with its one floor for every section. */
        if (ok) {
            char at[16];
            if (from_num(line, "floor_ns", &v, &have) && have && v > 0)
                r->floor_ns = (uint64_t)v;
            if (from_str(line, "floor_at", at, sizeof at) && from_num(line, "section", &v, &have) &&
                have && v >= 1) {
                r->section = (size_t)v;
                r->floor_at = !strcmp(at, "start") ? BENCH_FLOOR_START
                              : !strcmp(at, "end") ? BENCH_FLOOR_END
                                                   : BENCH_FLOOR_RUN;
                ok = r->floor_at != BENCH_FLOOR_RUN;
            }
        }
        if (r->mode == BENCH_FAN && ok && r->status) {
            if (from_num(line, "subs", &v, &have) && have)
                r->subs = (int)v;
        }
        if (!ok) {
            fprintf(stderr, "ferry bench: %s:%d: not a ferry bench JSON row\n", path, lineno);
            rc = -1;
            break;
        }
        n++;
    }
    fclose(f);
    if (!rows) {
        fprintf(stderr, "ferry bench: out of memory\n");
        return -1;
    }
    if (rc == 0 && n == 0) {
        fprintf(stderr, "ferry bench: %s holds no rows\n", path);
        rc = -1;
    }
    if (rc) {
        free(rows);
        return -1;
    }
    *out = rows;
    *nout = n;
    return 0;
}
