/*
 * test_pattern_linkup.c - a SUB/XSUB whose owner subscribes and then makes no ferry call at all
 * still gets its subscriptions to a new publisher: they go out when the link comes up, on the
 * thread that completes it (docs/patterns.md "When pattern code runs"). Checked over ipc, tcp,
 * shm, inproc and fd, with the SUB binding and connecting: a verbose XPUB (every subscribe
 * reported, so a second copy would show) must see the subscription and publish before the SUB's
 * owner makes its first call after connecting, and the SUB's next call (which attaches the pipe)
 * must not send the set again. A second case changes subscriptions on one thread while
 * publishers appear on another, and checks every publisher saw exactly the SUB's changes.
 */
#include "testutil.h"

#include "ferry/ferry.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void make_url(char *url, size_t cap, const char *tr)
{
    if (strcmp(tr, "ipc") == 0)
        tu_ipc_url(url, cap, "lu");
    else if (strcmp(tr, "tcp") == 0)
        snprintf(url, cap, "tcp://127.0.0.1:%d", tu_free_port());
    else
        snprintf(url, cap, "%s://%s", tr, tu_unique("lu"));
}

/* Links sub and pub over tr; the SUB's side is the binding one when sub_binds. fd://: one
 * socketpair, adopted by both. */
static void link_pair(ferry_socket *sub, ferry_socket *pub, const char *tr, bool sub_binds)
{
    if (strcmp(tr, "fd") == 0) {
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        CHECK_OK(ferry_socket_adopt(sub, sv[0], sv[0]));
        CHECK_OK(ferry_socket_adopt(pub, sv[1], sv[1]));
        return;
    }
    char url[300];
    make_url(url, sizeof url, tr);
    if (sub_binds) {
        CHECK_OK(ferry_socket_bind(sub, url));
        CHECK_OK(ferry_socket_connect(pub, url));
    } else {
        CHECK_OK(ferry_socket_connect(sub, url));
        CHECK_OK(ferry_socket_bind(pub, url));
    }
}

static void case_idle_sub(const char *tr, int subt, bool sub_binds)
{
    printf("  %s %s %s\n", tr, subt == FERRY_SUB ? "SUB" : "XSUB",
           sub_binds ? "binds" : "connects");
    fflush(stdout);
    ferry_socket *sub = tu_open_sock(subt), *x = tu_open_sock(FERRY_XPUB);
    CHECK_OK(ferry_socket_setopt_int(sub, FERRY_OPT_RECONNECT_IVL, 10));
    CHECK_OK(ferry_socket_setopt_int(x, FERRY_OPT_RECONNECT_IVL, 10));
    CHECK_OK(ferry_socket_setopt_int(x, FERRY_OPT_XPUB_VERBOSE, 1));
    CHECK_OK(ferry_socket_setopt_int(x, FERRY_OPT_RCVTIMEO, 4 * TU_TIMEOUT_MS));
    CHECK_OK(ferry_socket_subscribe(sub, "a", 1));
    CHECK_OK(ferry_socket_subscribe(sub, "cc", 2));
    link_pair(sub, x, tr, sub_binds);
    /* From here on the SUB's owner makes no call until the publisher has published. */
    char got[2][8];
    for (int i = 0; i < 2; i++) {
        ssize_t n = ferry_socket_recv(x, got[i], sizeof got[i] - 1, 0, NULL);
        if (n < 0) {
            fprintf(stderr, "%s: the XPUB never saw the idle SUB's subscriptions: %s\n", tr,
                    ferry_errname((int)n));
            exit(1);
        }
        got[i][n] = 0;
    }
    /* One notice per prefix, in any order. */
    bool a_first = strcmp(got[0], "\1a") == 0;
    CHECK(strcmp(got[a_first ? 0 : 1], "\1a") == 0 && strcmp(got[a_first ? 1 : 0], "\1cc") == 0);
    tu_send_str(x, "b-not-for-you", 0);
    tu_send_str(x, "cc-1", 0);
    tu_send_str(x, "a-2", 0);
    /* The owner's first call attaches the pipe and receives what was published meanwhile. */
    tu_recv_str(sub, "cc-1", false);
    tu_recv_str(sub, "a-2", false);
    /* No second copy of the set went out on attach: the next notice is the new prefix. */
    CHECK_OK(ferry_socket_subscribe(sub, "z", 1));
    tu_expect_sub(x, true, "z");
    CHECK_OK(ferry_socket_unsubscribe(sub, "a", 1));
    tu_expect_sub(x, false, "a");
    ferry_socket_close(sub);
    ferry_socket_close(x);
}

/* ---- subscription changes racing with new links ---- */

#define RACE_PUBS     4
#define RACE_PREFIXES 6
#define RACE_TOGGLES  240

typedef struct race {
    ferry_socket *sub;
    _Atomic int toggles; /* subscription changes made so far */
    bool on[RACE_PREFIXES];
} race;

static uint32_t peers_of(ferry_socket *s)
{
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(s, &st));
    return st.peers;
}

static void *race_owner(void *arg)
{
    race *r = arg;
    unsigned seed = 12345;
    uint64_t end = tu_now_ns() + 4ull * TU_TIMEOUT_MS * 1000000u;
    /* Keep changing until every publisher is linked, so links come up between changes. */
    for (int i = 0; i < RACE_TOGGLES || peers_of(r->sub) < RACE_PUBS; i++) {
        CHECK(tu_now_ns() < end);
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 16) % RACE_PREFIXES);
        char p[2] = {(char)('a' + k), 0};
        /* Toggle, so each change is exactly one frame on the wire (no reference counts). */
        if (r->on[k])
            CHECK_OK(ferry_socket_unsubscribe(r->sub, p, 1));
        else
            CHECK_OK(ferry_socket_subscribe(r->sub, p, 1));
        r->on[k] = !r->on[k];
        atomic_store(&r->toggles, i + 1);
        sched_yield();
    }
    /* Every link is up (and got its snapshot): the marker comes after everything else. */
    CHECK_OK(ferry_socket_subscribe(r->sub, "~end", 4));
    return NULL;
}

static void case_race(const char *tr)
{
    printf("  %s: subscription changes racing with %d new publishers\n", tr, RACE_PUBS);
    fflush(stdout);
    race r = {.sub = tu_open_sock(FERRY_SUB)};
    CHECK_OK(ferry_socket_setopt_int(r.sub, FERRY_OPT_RECONNECT_IVL, 5));
    char urls[RACE_PUBS][300];
    for (int i = 0; i < RACE_PUBS; i++) {
        make_url(urls[i], sizeof urls[i], tr);
        CHECK_OK(ferry_socket_connect(r.sub, urls[i]));
    }
    pthread_t th;
    CHECK(pthread_create(&th, NULL, race_owner, &r) == 0);
    ferry_socket *x[RACE_PUBS];
    for (int i = 0; i < RACE_PUBS; i++) {
        /* Publisher i appears once the owner made i/RACE_PUBS of its changes. */
        uint64_t end = tu_now_ns() + 4ull * TU_TIMEOUT_MS * 1000000u;
        while (atomic_load(&r.toggles) < i * RACE_TOGGLES / RACE_PUBS) {
            CHECK(tu_now_ns() < end);
            usleep(100); /* pacing only: the condition is the owner's progress */
        }
        x[i] = tu_open_sock(FERRY_XPUB);
        CHECK_OK(ferry_socket_setopt_int(x[i], FERRY_OPT_XPUB_VERBOSE, 1));
        CHECK_OK(ferry_socket_setopt_int(x[i], FERRY_OPT_RCVTIMEO, 4 * TU_TIMEOUT_MS));
        CHECK_OK(ferry_socket_bind(x[i], urls[i]));
    }
    CHECK(pthread_join(th, NULL) == 0);
    for (int i = 0; i < RACE_PUBS; i++) {
        /* Per prefix the notices must alternate subscribe/cancel starting with a subscribe (a
         * duplicate shows as two in a row, a lost change as a wrong final state), and end in the
         * SUB's final state. */
        int state[RACE_PREFIXES] = {0};
        for (;;) {
            char b[8];
            ssize_t n = ferry_socket_recv(x[i], b, sizeof b, 0, NULL);
            if (n < 0) {
                fprintf(stderr, "%s publisher %d: %s before the end marker\n", tr, i,
                        ferry_errname((int)n));
                exit(1);
            }
            if (n == 5 && memcmp(b, "\1~end", 5) == 0)
                break;
            CHECK(n == 2 && b[0] <= 1 && b[1] >= 'a' && b[1] < 'a' + RACE_PREFIXES);
            int k = b[1] - 'a';
            if (state[k] == b[0]) {
                fprintf(stderr, "%s publisher %d: prefix %c %s twice in a row\n", tr, i, b[1],
                        b[0] ? "subscribed" : "cancelled");
                exit(1);
            }
            state[k] = b[0];
        }
        for (int k = 0; k < RACE_PREFIXES; k++) {
            if (state[k] != (int)r.on[k]) {
                fprintf(stderr, "%s publisher %d: prefix %c is %d there, %d at the SUB\n", tr, i,
                        'a' + k, state[k], (int)r.on[k]);
                exit(1);
            }
        }
        ferry_socket_close(x[i]);
    }
    ferry_socket_close(r.sub);
}

int main(void)
{
    tu_deadline(120);
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *trs[] = {"ipc", "tcp", "shm", "inproc"};
    for (size_t t = 0; t < sizeof trs / sizeof trs[0]; t++) {
        for (int b = 0; b < 2; b++) {
            case_idle_sub(trs[t], FERRY_SUB, b == 1);
            case_idle_sub(trs[t], FERRY_XSUB, b == 1);
        }
    }
    case_idle_sub("fd", FERRY_SUB, false);
    case_idle_sub("fd", FERRY_XSUB, false);
    for (size_t t = 0; t < sizeof trs / sizeof trs[0]; t++)
        case_race(trs[t]);
    printf("test_pattern_linkup: ok\n");
    return 0;
}
