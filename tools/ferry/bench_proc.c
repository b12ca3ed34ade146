/*
 * bench_proc.c - runs one benchmark row in pinned child processes and survives whatever they do.
 *
 * The parent never measures anything: it sets the row up, forks role 0 and role 1 (each pinned to
 * its CPU with sched_setaffinity), then sleeps in sigtimedwait(SIGCHLD) until both exit or the
 * row's deadline passes. A child that crashes, exits without reporting, or hangs makes the row
 * "failed" with the reason; its partner is killed at once and every child is reaped, so the run
 * goes on. Results travel back through a MAP_SHARED control page created once before any fork. ipc
 * paths live in a private 0700 temp directory that is removed at exit (also on Ctrl-C).
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static bench_ctl *g_ctl;
static char g_tmpdir[128];
static volatile pid_t g_kids[BENCH_MAX_ROLES] = {-1, -1, -1, -1, -1};
/* Paths created in the temp dir for the current row, so the signal handler can remove them. */
static char g_paths[8][200];
static volatile int g_npaths;

const char *bench_tmp_path(const char *what)
{
    static unsigned serial;
    if (g_npaths >= 8)
        return NULL;
    char *p = g_paths[g_npaths];
    snprintf(p, sizeof g_paths[0], "%s/%s-%u", g_tmpdir, what, serial++);
    g_npaths++;
    return p;
}

static void bench_tmp_clear(void)
{
    for (int i = 0; i < g_npaths; i++)
        unlink(g_paths[i]);
    g_npaths = 0;
}

const char *bench_tmpdir(void)
{
    return g_tmpdir;
}

static void bench_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Ctrl-C or a kill: children die with the run and the temp directory goes. Only
 * async-signal-safe calls here (kill, waitpid, unlink, rmdir, write): the directory holds only
 * the paths registered with bench_tmp_path for the current row. */
static void bench_on_signal(int sig)
{
    for (int i = 0; i < BENCH_MAX_ROLES; i++)
        if (g_kids[i] > 0)
            kill(g_kids[i], SIGKILL);
    for (int i = 0; i < BENCH_MAX_ROLES; i++)
        if (g_kids[i] > 0)
            waitpid(g_kids[i], NULL, 0);
    for (int i = 0; i < g_npaths; i++)
        unlink(g_paths[i]);
    rmdir(g_tmpdir);
    static const char msg[] = "\nferry bench: interrupted\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

int bench_proc_init(const bench_cfg *cfg)
{
    (void)cfg;
    const char *base = getenv("TMPDIR");
    if (!base || !*base || strlen(base) > 64)
        base = "/tmp";
    snprintf(g_tmpdir, sizeof g_tmpdir, "%s/ferry-bench-XXXXXX", base);
    if (!mkdtemp(g_tmpdir)) {
        fprintf(stderr, "ferry bench: cannot create a temp directory in %s: %s\n", base,
                strerror(errno));
        return -1;
    }
    void *p =
        mmap(NULL, sizeof(bench_ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "ferry bench: cannot map the control page: %s\n", strerror(errno));
        rmdir(g_tmpdir);
        return -1;
    }
    g_ctl = p;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = bench_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    return 0;
}

void bench_proc_fini(void)
{
    if (g_tmpdir[0])
        bench_rmtree(g_tmpdir);
    g_tmpdir[0] = 0;
    if (g_ctl)
        munmap(g_ctl, sizeof(bench_ctl));
    g_ctl = NULL;
}

static void bench_ctl_reset(bench_ctl *c)
{
    atomic_store(&c->floor_line, 0);
    atomic_store(&c->total, UINT64_MAX);
    atomic_store(&c->stamp, 0);
    atomic_store(&c->bound, 0);
    for (int i = 0; i < BENCH_MAX_ROLES; i++) {
        atomic_store(&c->ready[i], 0);
        atomic_store(&c->joined[i], 0);
        atomic_store(&c->finished[i], 0);
        atomic_store(&c->progress[i].n, 0);
        atomic_store(&c->res[i].done, 0);
        c->res[i].rc = 0;
        c->res[i].err[0] = 0;
        c->res[i].count = c->res[i].ns = c->res[i].bytes = 0;
        c->res[i].cold_ns = c->res[i].idle_cpu = 0;
    }
    atomic_store(&c->go, 0);
    c->endpoint[0] = 0;
    bench_hist_init(&c->hist);
}

static int bench_pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set); /* 0 = the calling thread */
}

/*
 * Fault injection for the tests: FERRY_BENCH_INJECT="crash:<transport>" makes role 1 of that
 * transport's rows die by SIGKILL, "hang:<transport>" makes it block forever, so the tests can
 * check that such a row fails with its reason and the run goes on.
 */
static void bench_inject(const bench_job *j, int role)
{
    const char *v = getenv("FERRY_BENCH_INJECT");
    if (!v || role != 1)
        return;
    const char *colon = strchr(v, ':');
    if (!colon || strcmp(colon + 1, j->tr->name))
        return;
    if (!strncmp(v, "crash:", 6))
        raise(SIGKILL);
    if (!strncmp(v, "hang:", 5))
        for (;;)
            pause();
}

static void bench_role(bench_job *j, int role)
{
    bench_inject(j, role);
    bench_job jr = *j; /* the role's own copy: err points at its own result */
    jr.err = j->ctl->res[role].err;
    int rc;
    if (bench_pin(j->role_cpu[role]) != 0)
        rc = bench_fail(&jr, "cannot pin to CPU %d: %s", j->role_cpu[role], strerror(errno));
    else
        rc = j->tr->run ? j->tr->run(&jr, role) : bench_msg_run(&jr, role);
    j->ctl->res[role].rc = rc ? 1 : 0;
    if (rc && !jr.err[0])
        bench_fail(&jr, "failed");
    atomic_store_explicit(&j->ctl->res[role].done, 1, memory_order_release);
}

static void *bench_thread(void *arg)
{
    bench_role(arg, 1);
    return NULL;
}

/* The body of a forked child: one role, or both as threads of this process. */
static void bench_child(bench_job *j, int role)
{
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGPIPE, SIG_IGN); /* a dead peer must be an EPIPE error, not a silent death */
    if (j->tr->threads) {
        if (j->tr->child_setup && j->tr->child_setup(j) != 0) {
            for (int i = 0; i < 2; i++) {
                snprintf(j->ctl->res[i].err, sizeof j->ctl->res[i].err, "in-process setup failed");
                j->ctl->res[i].rc = 1;
                atomic_store(&j->ctl->res[i].done, 1);
            }
            _exit(1);
        }
        pthread_t t;
        int e = pthread_create(&t, NULL, bench_thread, j);
        if (e) {
            snprintf(j->ctl->res[1].err, sizeof j->ctl->res[1].err, "pthread_create: %s",
                     strerror(e));
            j->ctl->res[1].rc = 1;
            atomic_store(&j->ctl->res[1].done, 1);
            _exit(1);
        }
        bench_role(j, 0);
        pthread_join(t, NULL);
        if (j->tr->child_teardown)
            j->tr->child_teardown(j);
        _exit(j->ctl->res[0].rc || j->ctl->res[1].rc);
    }
    bench_role(j, role);
    _exit(j->ctl->res[role].rc);
}

static void bench_describe_status(char *buf, size_t cap, int role, int st)
{
    if (WIFSIGNALED(st))
        snprintf(buf, cap, "role %d killed by signal %d (%s)", role, WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    else
        snprintf(buf, cap, "role %d exited with status %d without a result", role, WEXITSTATUS(st));
}

void bench_run_row(bench_job *j, bench_row *r)
{
    memset(r, 0, sizeof *r);
    r->tr = j->tr;
    r->mode = j->mode;
    r->size = j->size;
    r->subs = j->subs;
    const char *why = j->tr->skip ? j->tr->skip(j->mode, j->size) : NULL;
    if (why) {
        r->status = 2;
        snprintf(r->note, sizeof r->note, "%s", why);
        return;
    }
    bench_ctl *c = g_ctl;
    bench_ctl_reset(c);
    j->ctl = c;
    j->tmpdir = g_tmpdir;
    j->state = j->tstate = NULL;
    for (int i = 0; i < 4; i++)
        j->fd[i] = -1;
    /* Role 0 (pinger, producer, publisher) on the first CPU, every other role on the second. */
    for (int i = 0; i < BENCH_MAX_ROLES; i++)
        j->role_cpu[i] = j->cfg->cpu[i == 0 ? 0 : 1];
    char setup_err[160] = "";
    j->err = setup_err;
    int setup_rc = j->tr->setup ? j->tr->setup(j) : 0;
    if (setup_rc != 0) {
        /* > 0: this machine cannot run the row (a stated reason, not a failure). */
        r->status = setup_rc > 0 ? 2 : 1;
        snprintf(r->note, sizeof r->note, "%s%s",
                 setup_rc > 0 ? "" : "setup: ", setup_err[0] ? setup_err : "failed");
        if (j->tr->teardown)
            j->tr->teardown(j);
        bench_tmp_clear();
        return;
    }
    j->err = NULL;

    bool solo = j->tr->solo;
    int nkids = (j->tr->threads || solo) ? 1 : j->mode == BENCH_FAN ? 1 + j->subs : 2;
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    fflush(stdout);
    fflush(stderr);
    int st[BENCH_MAX_ROLES] = {0};
    bool exited[BENCH_MAX_ROLES] = {false};
    for (int i = 0; i < nkids; i++) {
        pid_t p = fork();
        if (p == 0)
            bench_child(j, i);
        if (p < 0) {
            r->status = 1;
            snprintf(r->note, sizeof r->note, "fork: %s", strerror(errno));
            exited[i] = true;
            for (int k = i + 1; k < nkids; k++)
                exited[k] = true;
            break;
        }
        g_kids[i] = p;
    }
    for (int i = nkids; i < BENCH_MAX_ROLES; i++)
        exited[i] = true;

    double budget = j->cfg->warmup + j->cfg->seconds + (j->mode == BENCH_IDLE ? 1.0 : 0.0);
    /* Slack for setup, connection and draining backlog; generous because a 2-vCPU VM is noisy. */
    double limit = budget * 2 + 5.0;
    const char *dl = getenv("FERRY_BENCH_DEADLINE"); /* seconds; lets the tests fail fast */
    if (dl && atof(dl) > 0)
        limit = atof(dl);
    uint64_t deadline = bench_now_ns() + (uint64_t)(limit * 1e9);
    bool killed = false, timed_out = false;
    char reason[160] = "";
    for (;;) {
        bool all = true;
        for (int i = 0; i < BENCH_MAX_ROLES; i++) {
            if (exited[i])
                continue;
            pid_t w = waitpid(g_kids[i], &st[i], WNOHANG);
            if (w == g_kids[i]) {
                exited[i] = true;
                g_kids[i] = -1;
                bool clean = WIFEXITED(st[i]) && WEXITSTATUS(st[i]) == 0;
                if (!clean && !killed) {
                    /* Its partner would wait forever for a dead peer: end it now. */
                    if (!atomic_load(&c->res[i].done) || !c->res[i].err[0])
                        bench_describe_status(reason, sizeof reason, i, st[i]);
                    for (int k = 0; k < BENCH_MAX_ROLES; k++)
                        if (!exited[k])
                            kill(g_kids[k], SIGKILL);
                    killed = true;
                }
            }
            all &= exited[i];
        }
        if (all)
            break;
        uint64_t now = bench_now_ns();
        if (now >= deadline && !killed) {
            for (int k = 0; k < BENCH_MAX_ROLES; k++)
                if (!exited[k])
                    kill(g_kids[k], SIGKILL);
            killed = true;
            timed_out = true;
            deadline = now + 5000000000ull; /* SIGKILL is not ignorable: reaping follows */
            continue;
        }
        uint64_t left = deadline > now ? deadline - now : 1000000;
        if (left > 200000000ull)
            left = 200000000ull;
        struct timespec ts = {(time_t)(left / 1000000000ull), (long)(left % 1000000000ull)};
        sigtimedwait(&chld, NULL, &ts);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (j->tr->teardown)
        j->tr->teardown(j);
    bench_tmp_clear();
    if (r->status)
        return;

    /* Reasons, most specific first: a role's own error, then how it died, then the timeout. */
    for (int i = 0; i < nkids; i++) {
        if (c->res[i].rc || (atomic_load(&c->res[i].done) && c->res[i].err[0])) {
            static const char *const names[BENCH_MODES][2] = {{"pinger", "ponger"},
                                                              {"sender", "receiver"},
                                                              {"sender", "receiver"},
                                                              {"publisher", "subscriber"}};
            r->status = 1;
            snprintf(r->note, sizeof r->note, "%s: %s", names[j->mode][i == 0 ? 0 : 1],
                     c->res[i].err[0] ? c->res[i].err : "failed");
            return;
        }
    }
    if (reason[0]) {
        r->status = 1;
        snprintf(r->note, sizeof r->note, "%s", reason);
        return;
    }
    if (timed_out) {
        r->status = 1;
        /* Where each side stopped: the first clue to who is stuck. */
        char where[160] = "";
        size_t used = 0;
        for (int i = 0; i < nkids && used < sizeof where; i++) {
            int w = snprintf(where + used, sizeof where - used, "%s role %d %s at %llu",
                             i ? "," : "", i, atomic_load(&c->finished[i]) ? "finished" : "stuck",
                             (unsigned long long)atomic_load(&c->progress[i].n));
            if (w > 0)
                used += (size_t)w;
        }
        snprintf(r->note, sizeof r->note, "timed out after %.1f s (killed;%s)", limit, where);
        return;
    }
    if (j->mode == BENCH_RTT) {
        if (c->hist.count == 0) {
            r->status = 1;
            snprintf(r->note, sizeof r->note, "no round trip was measured");
            return;
        }
        r->count = c->hist.count;
        r->p50 = bench_hist_quantile(&c->hist, 0.50);
        r->p99 = bench_hist_quantile(&c->hist, 0.99);
        r->p999 = bench_hist_quantile(&c->hist, 0.999);
        r->max = c->hist.max;
    } else if (j->mode == BENCH_THR) {
        const bench_result *res = &c->res[solo ? 0 : 1];
        if (res->count == 0 || res->ns == 0) {
            r->status = 1;
            snprintf(r->note, sizeof r->note, "no message was measured");
            return;
        }
        r->count = res->count;
        r->msgs_per_s = (double)res->count * 1e9 / (double)res->ns;
        r->bytes_per_s =
            (double)(res->bytes ? res->bytes : res->count * j->size) * 1e9 / (double)res->ns;
    } else if (j->mode == BENCH_IDLE) {
        r->count = c->res[1].count;
        r->cold_ns = c->res[1].cold_ns;
        r->idle_cpu = c->res[1].idle_cpu;
    } else {
        /* Fan-out: the mean and the minimum per-subscriber rate, and how much of what the
         * publisher sent reached them (PUB drops at its high-water mark instead of blocking). */
        double sum = 0, min = 0;
        uint64_t got = 0;
        r->subs = j->subs;
        for (int i = 1; i <= j->subs; i++) {
            const bench_result *res = &c->res[i];
            if (res->count == 0 || res->ns == 0) {
                r->status = 1;
                snprintf(r->note, sizeof r->note, "subscriber %d measured no message", i);
                return;
            }
            double rate = (double)res->count * 1e9 / (double)res->ns;
            sum += rate;
            min = i == 1 || rate < min ? rate : min;
            got += res->all;
            r->count += res->count;
        }
        r->msgs_per_s = sum / j->subs;
        r->bytes_per_s = r->msgs_per_s * (double)j->size;
        r->min_msgs_per_s = min;
        const bench_result *pub = &c->res[0];
        r->pub_msgs_per_s = pub->ns ? (double)pub->count * 1e9 / (double)pub->ns : 0;
        r->delivered = pub->all ? (double)got / ((double)pub->all * j->subs) : 0;
    }
}
