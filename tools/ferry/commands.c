/* commands.c - the table of `ferry` subcommands. Each command lives in its own file. */
#include "cli.h"

int bench_main(int argc, char **argv);      /* bench.c */
int socket_cmd_main(int argc, char **argv); /* cmd_socket.c: every socket type */

const cli_command cli_commands[] = {
    {"bench", "measure latency and throughput: ferry vs the floor, kernel, libzmq, nng",
     bench_main},
    {"pair", "PAIR socket: send with --send/--data/--file, else print", socket_cmd_main},
    {"pub", "PUB socket: publish --data/--file/stdin lines", socket_cmd_main},
    {"sub", "SUB socket: print messages matching --subscribe (default: all)", socket_cmd_main},
    {"req", "REQ socket: send each request and print its reply", socket_cmd_main},
    {"rep", "REP socket: print each request, answer with --data or an echo", socket_cmd_main},
    {"push", "PUSH socket: send --data/--file/stdin lines round-robin", socket_cmd_main},
    {"pull", "PULL socket: print each message", socket_cmd_main},
    {"dealer", "DEALER socket: send with --send/--data/--file, else print", socket_cmd_main},
    {"router", "ROUTER socket: print each message, answer its sender", socket_cmd_main},
    {"xpub", "XPUB socket: publish like pub", socket_cmd_main},
    {"xsub", "XSUB socket: print messages; --subscribe sends subscriptions", socket_cmd_main},
    {0, 0, 0},
};
