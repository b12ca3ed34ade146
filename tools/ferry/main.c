/*
 * main.c - entry point of the `ferry` tool: dispatches to a subcommand from cli_commands.
 */
#include "cli.h"

#include "ferry/ferry.h"

#include <stdio.h>
#include <string.h>

static void cli_usage(FILE *out)
{
    fprintf(out, "usage: ferry <command> [options]\n\ncommands:\n");
    for (const cli_command *c = cli_commands; c->name; c++)
        fprintf(out, "  %-10s %s\n", c->name, c->summary);
    fprintf(out, "\n`ferry <command> --help` describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        cli_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        cli_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("ferry %s\n", ferry_version());
        return 0;
    }
    for (const cli_command *c = cli_commands; c->name; c++)
        if (!strcmp(argv[1], c->name))
            return c->run(argc - 1, argv + 1);
    fprintf(stderr, "ferry: unknown command '%s'\n", argv[1]);
    cli_usage(stderr);
    return 2;
}
