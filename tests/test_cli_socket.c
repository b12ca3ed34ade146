/*
 * test_cli_socket.c - the `ferry` pattern commands as a user runs them: the
 * built binary
 * ($FERRY_BIN) in real processes talking over ipc:// and tcp://. Covers
 * push/pull with --count and stdin lines, req/rep (fixed reply and echo),
 * router/dealer, pub/sub with topics (the publisher loops with --interval until
 * the subscriber has its --count), every --format on multipart and binary
 * frames (sent by this process through the library), and every error exit: 2
 * for usage, URL and bind failures, 1 for timeouts, 0 for --help.
 */
#include "cli_proc.h"

#include "ferry/ferry.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static cli_proc pa, pb, pc;

/*
 * Senders here read stdin lines from a held pipe, so they stay connected until
 * the receiver has printed everything; test_cli_delivery covers senders that
 * exit right after sending.
 */
static void test_push_pull(void)
{
    char url[256];
    cli_ipc_url(url, sizeof url);
    const char *pull[] = {"pull", "--bind", url, "--count", "3", "--timeout", "20000", NULL};
    const char *push[] = {"push", "--connect", url, "--timeout", "20000", NULL};
    cli_spawn(&pa, pull, NULL);
    cli_spawn_held(&pb, push, "alpha\n\nthird line\n");
    cli_wait(&pa, 30, "pull");
    cli_release(&pb);
    cli_wait(&pb, 30, "push");
    cli_expect(&pa, 0, "alpha\n\nthird line\n", "pull --count 3 of stdin lines (empty included)");
    cli_expect(&pb, 0, "", "push of stdin lines");

    /* The sender starts first, over tcp, with the --name=value option form. */
    char tcp[64], bindarg[100];
    snprintf(tcp, sizeof tcp, "tcp://127.0.0.1:%d", tu_free_port());
    snprintf(bindarg, sizeof bindarg, "--bind=%s", tcp);
    const char *push2[] = {"push", "--connect", tcp, "--timeout=20000", NULL};
    const char *pull2[] = {"pull", bindarg, "--count=2", "--timeout=20000", NULL};
    cli_spawn_held(&pb, push2, "x\ny\n");
    cli_spawn(&pa, pull2, NULL);
    cli_wait(&pa, 30, "pull over tcp");
    cli_release(&pb);
    cli_wait(&pb, 30, "push over tcp");
    cli_expect(&pa, 0, "x\ny\n", "pull over tcp");
    cli_expect(&pb, 0, "", "push over tcp");

    /* shm:// (the quick start's transport): the subscriber-side connects before the bind. */
    char shm[128];
    snprintf(shm, sizeof shm, "shm://%s", tu_unique("cli"));
    const char *pull_shm[] = {"pull", "--connect", shm, "--count", "2", "--timeout", "20000", NULL};
    const char *push_shm[] = {"push", "--bind", shm, "--timeout", "20000", NULL};
    cli_spawn(&pa, pull_shm, NULL);
    cli_spawn_held(&pb, push_shm, "s1\ns2\n");
    cli_wait(&pa, 30, "pull over shm");
    cli_release(&pb);
    cli_wait(&pb, 30, "push over shm");
    cli_expect(&pa, 0, "s1\ns2\n", "pull over shm://");
    cli_expect(&pb, 0, "", "push over shm://");

    /* With --count, a stdin sender stops after N lines even though stdin stays open. */
    cli_ipc_url(url, sizeof url);
    const char *pull3[] = {"pull", "--bind", url, "--count", "2", "--timeout", "20000", NULL};
    const char *push3[] = {"push", "--connect", url, "--count", "2", "--timeout", "20000", NULL};
    cli_spawn(&pa, pull3, NULL);
    cli_spawn_held(&pb, push3, "1\n2\n3\n");
    cli_wait(&pa, 30, "pull --count 2");
    cli_wait(&pb, 30, "push --count 2 from held stdin");
    cli_expect(&pa, 0, "1\n2\n", "pull --count 2");
    cli_expect(&pb, 0, "", "push --count 2 stops without stdin EOF");

    /* --count larger than stdin: the sender says so and fails. */
    const char *push4[] = {"push", "--connect", url, "--count", "5", "--timeout", "200", NULL};
    cli_run(&pb, push4, "", 30);
    cli_expect(&pb, 1, "", "push --count 5 with empty stdin");
    cli_expect_err(&pb, "standard input ended after 0 of 5", "push --count 5 with empty stdin");
}

static void test_req_rep(void)
{
    char url[256];
    cli_ipc_url(url, sizeof url);
    const char *rep[] = {"rep",    "--bind", url,         "--count", "2",
                         "--data", "pong",   "--timeout", "20000",   NULL};
    const char *req[] = {"req",     "--connect", url,         "--data", "ping",
                         "--count", "2",         "--timeout", "20000",  NULL};
    cli_spawn(&pa, rep, NULL);
    cli_run(&pb, req, NULL, 30);
    cli_wait(&pa, 30, "rep");
    cli_expect(&pb, 0, "pong\npong\n", "req prints each reply");
    cli_expect(&pa, 0, "ping\nping\n", "rep prints each request");

    /* rep without --data echoes; req sends each stdin line and prints the echo in hex. */
    cli_ipc_url(url, sizeof url);
    const char *rep2[] = {"rep", "--bind", url, "--count", "2", "--timeout", "20000", NULL};
    const char *req2[] = {"req", "--connect", url, "--format", "hex", "--timeout", "20000", NULL};
    cli_spawn(&pa, rep2, NULL);
    cli_run(&pb, req2, "AB\nz\n", 30);
    cli_wait(&pa, 30, "rep echo");
    cli_expect(&pb, 0, "4142\n7a\n", "req --format hex of echoed replies");
    cli_expect(&pa, 0, "AB\nz\n", "rep echo prints requests");
}

static void test_router_dealer(void)
{
    /* router prints bodies without the routing id and answers each sender; dealer
     * --send sends stdin lines. */
    char url[256];
    cli_ipc_url(url, sizeof url);
    const char *router[] = {"router", "--bind", url,         "--count", "2",
                            "--data", "back",   "--timeout", "20000",   NULL};
    const char *dealer[] = {"dealer", "--connect", url,     "--send", "--identity",
                            "d1",     "--timeout", "20000", NULL};
    cli_spawn(&pa, router, NULL);
    cli_spawn_held(&pb, dealer, "one\ntwo\n");
    cli_wait(&pa, 30, "router");
    cli_release(&pb);
    cli_wait(&pb, 30, "dealer --send");
    cli_expect(&pa, 0, "one\ntwo\n", "router prints the bodies");
    cli_expect(&pb, 0, "", "dealer --send from stdin");

    /* A req talks to a router: the router's echo keeps the envelope, so req gets its request. */
    cli_ipc_url(url, sizeof url);
    const char *router2[] = {"router",   "--bind", url,         "--count", "1",
                             "--format", "quoted", "--timeout", "20000",   NULL};
    const char *req[] = {"req", "--connect", url, "--data", "echo me", "--timeout", "20000", NULL};
    cli_spawn(&pa, router2, NULL);
    cli_run(&pb, req, NULL, 30);
    cli_wait(&pa, 30, "router echo");
    cli_expect(&pb, 0, "echo me\n", "req through an echoing router");
    cli_expect(&pa, 0, "\"\" \"echo me\"\n", "router shows the req envelope (empty delimiter)");

    /* router --data answers a REQ through its envelope (routing id + empty delimiter). */
    cli_ipc_url(url, sizeof url);
    const char *router3[] = {"router", "--bind", url,         "--count", "2",
                             "--data", "ans",    "--timeout", "20000",   NULL};
    const char *req3[] = {"req",     "--connect", url,         "--data", "q",
                          "--count", "2",         "--timeout", "20000",  NULL};
    cli_spawn(&pa, router3, NULL);
    cli_run(&pb, req3, NULL, 30);
    cli_wait(&pa, 30, "router --data to req");
    cli_expect(&pb, 0, "ans\nans\n", "req gets router --data answers");
    cli_expect(&pa, 0, "q\nq\n",
               "router prints req bodies (raw: the empty delimiter adds nothing)");
}

static void test_pair(void)
{
    char url[256];
    cli_ipc_url(url, sizeof url);
    const char *recv[] = {"pair", "--bind", url, "--count", "2", "--timeout", "20000", NULL};
    const char *send[] = {"pair", "--connect", url, "--send", "--timeout", "20000", NULL};
    cli_spawn(&pa, recv, NULL);
    cli_spawn_held(&pb, send, "p\nq\n");
    cli_wait(&pa, 30, "pair receiver");
    cli_release(&pb);
    cli_wait(&pb, 30, "pair sender");
    cli_expect(&pb, 0, "", "pair --send");
    cli_expect(&pa, 0, "p\nq\n", "pair receiver");
}

static void test_pub_sub(void)
{
    /* The subscriber binds; two publishers connect, one per topic, looping until
     * stopped. Only the subscribed topic may ever be printed. */
    char url[256];
    cli_ipc_url(url, sizeof url);
    const char *sub[] = {"sub",     "--bind", url,         "--subscribe", "wx.",
                         "--count", "3",      "--timeout", "20000",       NULL};
    const char *pub_wx[] = {"pub",     "--connect", url,          "--data", "wx.rain",
                            "--count", "100000",    "--interval", "5",      NULL};
    const char *pub_fx[] = {"pub",     "--connect", url,          "--data", "fx.eur",
                            "--count", "100000",    "--interval", "5",      NULL};
    cli_spawn(&pa, sub, NULL);
    cli_spawn(&pb, pub_wx, NULL);
    cli_spawn(&pc, pub_fx, NULL);
    cli_wait(&pa, 30, "sub --subscribe");
    cli_stop(&pb);
    cli_stop(&pc);
    cli_expect(&pa, 0, "wx.rain\nwx.rain\nwx.rain\n", "sub prints only its topic");

    /* No --subscribe: everything; xsub with a subscription behaves the same for its topic. */
    cli_ipc_url(url, sizeof url);
    const char *pub[] = {"pub",     "--bind", url,          "--data", "any",
                         "--count", "100000", "--interval", "5",      NULL};
    const char *sub_all[] = {"sub", "--connect", url, "--count", "2", "--timeout", "20000", NULL};
    const char *xsub[] = {"xsub",    "--connect", url,         "--subscribe", "an",
                          "--count", "2",         "--timeout", "20000",       NULL};
    cli_spawn(&pb, pub, NULL);
    cli_spawn(&pa, sub_all, NULL);
    cli_spawn(&pc, xsub, NULL);
    cli_wait(&pa, 30, "sub without --subscribe");
    cli_wait(&pc, 30, "xsub --subscribe");
    cli_stop(&pb);
    cli_expect(&pa, 0, "any\nany\n", "sub without --subscribe receives everything");
    cli_expect(&pc, 0, "any\nany\n", "xsub --subscribe");
}

/* This process sends multipart, binary and empty frames; `ferry pull` prints them. */
static void test_formats(void)
{
    static const struct {
        const char *format, *want;
    } cases[] = {
        {"raw", "a\"b\\\x01\xff\nc\n" /* frames concatenated, then a newline */},
        {"hex", "6122625c 01ff0a  63\n"},
        {"quoted", "\"a\\\"b\\\\\" \"\\x01\\xff\\n\" \"\" \"c\"\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* A fresh socket per case: the previous puller exited, and a PUSH may still pick its
         * dying pipe before the hang-up is noticed (as in libzmq), which would lose the message. */
        ferry_socket *push = NULL;
        CHECK_OK(ferry_socket_open(&push, FERRY_PUSH));
        CHECK_OK(ferry_socket_setopt_int(push, FERRY_OPT_SNDTIMEO, 20000));
        char url[256];
        cli_ipc_url(url, sizeof url);
        CHECK_OK(ferry_socket_bind(push, url));
        const char *pull[] = {"pull",    "--connect", url,         "--format", cases[i].format,
                              "--count", "1",         "--timeout", "20000",    NULL};
        cli_spawn(&pa, pull, NULL);
        CHECK_OK(ferry_socket_send(push, "a\"b\\", 4, FERRY_MORE));
        CHECK_OK(ferry_socket_send(push, "\x01\xff\n", 3, FERRY_MORE));
        CHECK_OK(ferry_socket_send(push, "", 0, FERRY_MORE));
        CHECK_OK(ferry_socket_send(push, "c", 1, 0));
        cli_wait(&pa, 30, cases[i].format);
        cli_expect(&pa, 0, cases[i].want, cases[i].format);
        ferry_socket_close(push);
    }
}

typedef struct err_case {
    const char *args[12];
    int status;
    const char *needle; /* must appear on stderr */
} err_case;

static void test_errors(void)
{
    char url[256], missing[300], inuse[64];
    cli_ipc_url(url, sizeof url);
    snprintf(missing, sizeof missing, "ipc://%s/no/such/dir/x", tu_tmpdir());

    /* A port somebody else is listening on. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 1) == 0);
    socklen_t al = sizeof a;
    CHECK(getsockname(lfd, (struct sockaddr *)&a, &al) == 0);
    snprintf(inuse, sizeof inuse, "tcp://127.0.0.1:%d", ntohs(a.sin_port));

    const err_case cases[] = {
        {{"bogus", NULL}, 2, "unknown command 'bogus'"},
        {{"pull", "--count", "3", NULL}, 2, "--bind"},
        {{"push", "--connect", url, "--data", "x", "--file", "/etc/hostname", NULL},
         2,
         "--data and --file"},
        {{"push", "--connect", url, "--count", "0", NULL}, 2, "--count"},
        {{"push", "--connect", url, "--count", "-1", NULL}, 2, "--count"},
        {{"push", "--connect", url, "--count", "3x", NULL}, 2, "'3x'"},
        {{"pull", "--bind", url, "--format", "weird", NULL}, 2, "'weird'"},
        {{"pull", "--bind", url, "--bogus", NULL}, 2, "unknown option '--bogus'"},
        {{"pull", "--bind", NULL}, 2, "--bind needs a value"},
        {{"pull", "--bind", url, "stray", NULL}, 2, "unexpected argument 'stray'"},
        {{"pull", "--bind", url, "--data", "x", NULL}, 2, "only receives"},
        {{"push", "--connect", url, "--subscribe", "x", NULL}, 2, "--subscribe"},
        {{"push", "--connect", url, "--send", NULL}, 2, "--send"},
        {{"rep", "--bind", url, "--delay", "5", NULL}, 2, "--delay"},
        {{"pull", "--bind", url, "--interval", "5", NULL}, 2, "--interval"},
        {{"push", "--connect", url, "--timeout", "-5", NULL}, 2, "--timeout"},
        {{"dealer", "--connect", url, "--identity", "", NULL}, 2, "--identity"},
        {{"push", "--connect", url, "--file", missing + 6, NULL}, 2, "cannot open --file"},
        {{"pull", "--bind", missing, NULL}, 2, "FERRY_ENOENT"},
        {{"pull", "--bind", inuse, NULL}, 2, "FERRY_EADDRINUSE"},
        {{"pull", "--bind", "bogus://nowhere", NULL}, 2, "cannot bind 'bogus://nowhere'"},
        {{"push", "--connect", "tcp://127.0.0.1", "--data", "x", NULL}, 2, "cannot connect"},
        {{"pull", "--connect", "ipc://", NULL}, 2, "cannot connect to 'ipc://'"},
        /* Timeouts are runtime failures: exit 1 and say so. */
        {{"pull", "--bind", url, "--timeout", "100", NULL}, 1, "timed out after 100 ms"},
        {{"push", "--connect", url, "--data", "x", "--timeout", "100", NULL}, 1, "timed out"},
        {{"req", "--connect", url, "--data", "x", "--timeout", "100", NULL}, 1, "timed out"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_run(&pa, cases[i].args, NULL, 30);
        char what[64];
        snprintf(what, sizeof what, "error case %zu (ferry %s)", i, cases[i].args[0]);
        cli_expect(&pa, cases[i].status, "", what);
        cli_expect_err(&pa, cases[i].needle, what);
        /* Exactly one line of diagnosis for usage errors (no usage dump on top). */
        if (cases[i].status == 2 && strcmp(cases[i].args[0], "bogus") != 0) {
            const char *nl = strchr(pa.ebuf, '\n');
            CHECK(nl && nl[1] == 0);
        }
    }
    close(lfd);
}

static void test_help(void)
{
    const char *h[] = {"--help", NULL};
    cli_run(&pa, h, NULL, 30);
    cli_expect(&pa, 0, NULL, "ferry --help");
    const char *names[] = {"pair", "pub",    "sub",    "req",  "rep", "push",
                           "pull", "dealer", "router", "xpub", "xsub"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char needle[32];
        snprintf(needle, sizeof needle, "\n  %s ", names[i]);
        CHECK(strstr(pa.obuf, needle) != NULL);
        const char *hc[] = {names[i], "--help", NULL};
        cli_run(&pb, hc, NULL, 30);
        cli_expect(&pb, 0, NULL, names[i]);
        const char *opts[] = {"--bind",     "--connect",   "--data",     "--file",   "--count",
                              "--interval", "--subscribe", "--timeout",  "--format", "raw",
                              "hex",        "quoted",      "exit status"};
        for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++)
            if (!strstr(pb.obuf, opts[k])) {
                fprintf(stderr, "ferry %s --help does not mention %s\n", names[i], opts[k]);
                exit(1);
            }
    }
}

int main(void)
{
    tu_deadline(110);
    signal(SIGPIPE, SIG_IGN);
    cli_bin();
    test_help();
    test_errors();
    test_push_pull();
    test_req_rep();
    test_router_dealer();
    test_pair();
    test_pub_sub();
    test_formats();
    return 0;
}
