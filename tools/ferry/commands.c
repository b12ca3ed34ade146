/* commands.c - the table of `ferry` subcommands. Each command lives in its own file. */
#include "cli.h"

const cli_command cli_commands[] = {
    {0, 0, 0},
};
