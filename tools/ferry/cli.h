/* cli.h - the command table of the `ferry` tool: each subcommand is one entry point. */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name; returns the exit status */
} cli_command;

/* The NULL-terminated table of subcommands, defined in commands.c. */
extern const cli_command cli_commands[];

#endif
