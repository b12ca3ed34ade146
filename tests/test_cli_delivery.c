/*
 * test_cli_delivery.c - a sender that exits right after sending must still
 * deliver: `ferry push
 * --data x` (and dealer, pair, --file, over ipc:// and tcp://) started together
 * with its receiver, as a user does in a shell. The sender's whole life can fit
 * between the receiver accepting the connection and attaching it, so this
 * exercises the library's guarantee that what a peer sent before hanging up is
 * received (nothing lost), not only the CLI. Each case runs several times
 * because the window is a race.
 */
#include "cli_proc.h"

static cli_proc rx, tx;

typedef struct delivery_case {
    const char *rx[12], *tx[12];
    const char *want;
} delivery_case;

int main(void)
{
    tu_deadline(110);
    signal(SIGPIPE, SIG_IGN);
    cli_bin();
    char path[300];
    snprintf(path, sizeof path, "%s/%s", tu_tmpdir(), tu_unique("payload"));
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs("from a file\n", f);
    CHECK(fclose(f) == 0);

    for (int round = 0; round < 4; round++) {
        char ipc1[256], ipc2[256], ipc3[256], tcp[64];
        cli_ipc_url(ipc1, sizeof ipc1);
        cli_ipc_url(ipc2, sizeof ipc2);
        cli_ipc_url(ipc3, sizeof ipc3);
        snprintf(tcp, sizeof tcp, "tcp://127.0.0.1:%d", tu_free_port());
        const delivery_case cases[] = {
            {{"pull", "--bind", ipc1, "--count", "3", "--timeout", "10000", NULL},
             {"push", "--connect", ipc1, "--data", "x", "--count", "3", "--timeout", "10000", NULL},
             "x\nx\nx\n"},
            {{"pull", "--bind", tcp, "--count", "1", "--format", "quoted", "--timeout", "10000",
              NULL},
             {"push", "--connect", tcp, "--file", path, "--timeout", "10000", NULL},
             "\"from a file\\n\"\n"},
            {{"router", "--bind", ipc2, "--count", "1", "--timeout", "10000", NULL},
             {"dealer", "--connect", ipc2, "--data", "d", "--timeout", "10000", NULL},
             "d\n"},
            {{"pair", "--bind", ipc3, "--count", "2", "--timeout", "10000", NULL},
             {"pair", "--connect", ipc3, "--data", "p", "--count", "2", "--timeout", "10000", NULL},
             "p\np\n"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            char what[96];
            snprintf(what, sizeof what, "round %d: ferry %s -> ferry %s", round, cases[i].tx[0],
                     cases[i].rx[0]);
            cli_spawn(&rx, cases[i].rx, NULL);
            cli_run(&tx, cases[i].tx, NULL, 30);
            cli_wait(&rx, 30, what);
            cli_expect(&tx, 0, "", what);
            cli_expect(&rx, 0, cases[i].want, what);
        }
    }
    return 0;
}
