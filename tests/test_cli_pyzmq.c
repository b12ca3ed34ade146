/*
 * test_cli_pyzmq.c - the `ferry` pattern commands against real pyzmq (libzmq)
 * programs run by /usr/bin/python3, in both directions and over ipc:// and
 * tcp://: a pyzmq PUSH feeding `ferry pull` (multipart, binary and empty
 * frames), `ferry push` feeding a pyzmq PULL, `ferry req` asking a pyzmq REP,
 * and `ferry pub` publishing to a pyzmq SUB with a topic. Skipped (77) when
 * python3-zmq is not installed for /usr/bin/python3.
 */
#include "cli_proc.h"

#define PY "/usr/bin/python3"

static cli_proc pf, pp;

/* Starts `python3 -c script url`; with hold, the script may wait for stdin EOF before closing. */
static void py_spawn(cli_proc *p, const char *script, const char *url, bool hold)
{
    const char *argv[] = {PY, "-c", script, url, NULL};
    cli_spawn_path(p, PY, argv, hold ? "" : NULL, hold);
}

static void test_pyzmq_push_to_ferry_pull(void)
{
    /* pyzmq keeps its socket until this test has seen the messages (stdin EOF).
     */
    static const char script[] = "import sys, zmq\n"
                                 "c = zmq.Context(); s = c.socket(zmq.PUSH); s.bind(sys.argv[1])\n"
                                 "s.send(b'one')\n"
                                 "s.send_multipart([b'two', b'\\x00\\xff\\n'])\n"
                                 "s.send(b'')\n"
                                 "sys.stdin.read()\n"
                                 "s.close(linger=5000); c.term()\n";
    char url[256];
    cli_ipc_url(url, sizeof url);
    py_spawn(&pp, script, url, true);
    const char *pull[] = {"pull",    "--connect", url,         "--format", "quoted",
                          "--count", "3",         "--timeout", "20000",    NULL};
    cli_run(&pf, pull, NULL, 30);
    cli_release(&pp);
    cli_wait(&pp, 30, "pyzmq PUSH");
    cli_expect(&pf, 0, "\"one\"\n\"two\" \"\\x00\\xff\\n\"\n\"\"\n", "ferry pull from pyzmq PUSH");
    cli_expect(&pp, 0, "", "pyzmq PUSH");
}

static void test_ferry_push_to_pyzmq_pull(void)
{
    static const char script[] = "import sys, zmq\n"
                                 "c = zmq.Context(); s = c.socket(zmq.PULL); s.bind(sys.argv[1])\n"
                                 "s.setsockopt(zmq.RCVTIMEO, 20000)\n"
                                 "for i in range(2): print(repr(s.recv_multipart()))\n"
                                 "s.close(); c.term()\n";
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", tu_free_port());
    py_spawn(&pp, script, url, false);
    const char *push[] = {"push", "--connect", url, "--timeout", "20000", NULL};
    cli_spawn_held(&pf, push, "hello\n\n");
    cli_wait(&pp, 30, "pyzmq PULL");
    cli_release(&pf);
    cli_wait(&pf, 30, "ferry push");
    cli_expect(&pp, 0, "[b'hello']\n[b'']\n", "pyzmq PULL from ferry push");
    cli_expect(&pf, 0, "", "ferry push to pyzmq");
}

static void test_ferry_req_to_pyzmq_rep(void)
{
    static const char script[] = "import sys, zmq\n"
                                 "c = zmq.Context(); s = c.socket(zmq.REP); s.bind(sys.argv[1])\n"
                                 "s.setsockopt(zmq.RCVTIMEO, 20000)\n"
                                 "for i in range(2): s.send(b'py:' + s.recv())\n"
                                 "s.close(linger=5000); c.term()\n";
    char url[256];
    cli_ipc_url(url, sizeof url);
    py_spawn(&pp, script, url, false);
    const char *req[] = {"req",     "--connect", url,         "--data", "ping",
                         "--count", "2",         "--timeout", "20000",  NULL};
    cli_run(&pf, req, NULL, 30);
    cli_wait(&pp, 30, "pyzmq REP");
    cli_expect(&pf, 0, "py:ping\npy:ping\n", "ferry req to pyzmq REP");
    cli_expect(&pp, 0, "", "pyzmq REP");
}

static void test_ferry_pub_to_pyzmq_sub(void)
{
    static const char script[] =
        "import sys, zmq\n"
        "c = zmq.Context(); s = c.socket(zmq.SUB); s.connect(sys.argv[1])\n"
        "s.setsockopt(zmq.SUBSCRIBE, b'wx'); s.setsockopt(zmq.RCVTIMEO, 20000)\n"
        "for i in range(2): print(s.recv().decode())\n"
        "s.close(); c.term()\n";
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", tu_free_port());
    /* ferry publishes until stopped (pyzmq joins late and must not miss the rest). */
    const char *pub[] = {"pub",     "--bind", url,          "--data", "wx.sun",
                         "--count", "100000", "--interval", "5",      NULL};
    cli_spawn(&pf, pub, NULL);
    py_spawn(&pp, script, url, false);
    cli_wait(&pp, 30, "pyzmq SUB");
    cli_stop(&pf);
    cli_expect(&pp, 0, "wx.sun\nwx.sun\n", "pyzmq SUB from ferry pub");
}

static void test_pyzmq_pub_to_ferry_sub(void)
{
    /* pyzmq publishes two topics until stopped; ferry sub must print only its own. */
    static const char script[] = "import sys, time, zmq\n"
                                 "c = zmq.Context(); s = c.socket(zmq.PUB); s.bind(sys.argv[1])\n"
                                 "for i in range(4000):\n"
                                 "    s.send(b'fx.eur'); s.send_multipart([b'wx.rain', b'2mm'])\n"
                                 "    time.sleep(0.005)\n"
                                 "s.close(); c.term()\n";
    char url[256];
    cli_ipc_url(url, sizeof url);
    py_spawn(&pp, script, url, false);
    const char *sub[] = {"sub",     "--connect", url,         "--subscribe", "wx",
                         "--count", "2",         "--timeout", "20000",       NULL};
    cli_run(&pf, sub, NULL, 30);
    cli_stop(&pp);
    cli_expect(&pf, 0, "wx.rain2mm\nwx.rain2mm\n", "ferry sub --subscribe from pyzmq PUB");
}

int main(void)
{
    tu_deadline(110);
    signal(SIGPIPE, SIG_IGN);
    cli_bin();
    const char *probe[] = {PY, "-c", "import zmq", NULL};
    cli_spawn_path(&pp, PY, probe, NULL, false);
    if (cli_wait(&pp, 30, "python3 -c 'import zmq'") != 0) {
        fprintf(stderr, "pyzmq not importable by %s: skipped\n", PY);
        return TEST_SKIP;
    }
    test_pyzmq_push_to_ferry_pull();
    test_ferry_push_to_pyzmq_pull();
    test_ferry_req_to_pyzmq_rep();
    test_ferry_pub_to_pyzmq_sub();
    test_pyzmq_pub_to_ferry_sub();
    return 0;
}
