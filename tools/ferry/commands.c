/* commands.c - the table of `ferry` subcommands. Each command lives in its own file. */
#include "cli.h"

int bench_main(int argc, char **argv); /* bench.c */

const cli_command cli_commands[] = {
    {"bench", "measure latency and throughput: ferry vs the floor, kernel, libzmq, nng", bench_main},
    {0, 0, 0},
};
