/*
 * cmd_socket.c - the pattern commands of the `ferry` tool (pair, pub, sub, req, rep, push, pull,
 * dealer, router, xpub, xsub), in the spirit of nngcat: open one socket, bind and/or connect it,
 * then either send a payload (--data, --file, or each line of standard input) or print what
 * arrives, until --count is reached.
 *
 * They exist so that people who script ZeroMQ can poke at ferry (and ferry at ZeroMQ) from a shell,
 * and so the tests can drive real processes. Exit status is part of the interface: 0 when the work
 * is done, 1 on a runtime failure (timeout, peer or I/O error), 2 on bad usage (unknown option,
 * conflicting flags, unreadable --file, bad URL, a bind/connect the library refuses). Every failure
 * prints exactly one line on stderr naming the cause, with the FERRY_E* name when it came from the
 * library.
 */
#include "cli.h"

#include "ferry/ferry.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum sock_role {
    ROLE_SEND,   /* push, pub, xpub: send payloads */
    ROLE_RECV,   /* pull, sub, xsub: print messages */
    ROLE_REQ,    /* req: send a payload, print its reply, repeat */
    ROLE_REPLY,  /* rep, router: print a request, answer it */
    ROLE_EITHER, /* pair, dealer: send when given a payload source, else receive */
};

enum sock_format { FMT_RAW, FMT_HEX, FMT_QUOTED };

typedef struct sock_cmd {
    const char *name;
    int type;
    enum sock_role role;
    const char *what;
} sock_cmd;

static const sock_cmd sock_cmds[] = {
    {"pair", FERRY_PAIR, ROLE_EITHER,
     "one-to-one: send --data/--file/stdin with --send, else print"},
    {"pub", FERRY_PUB, ROLE_SEND, "publish the payload to every matching subscriber"},
    {"sub", FERRY_SUB, ROLE_RECV, "print published messages whose first frame matches --subscribe"},
    {"req", FERRY_REQ, ROLE_REQ, "send each payload as a request and print its reply"},
    {"rep", FERRY_REP, ROLE_REPLY,
     "print each request and answer it with --data/--file or an echo"},
    {"push", FERRY_PUSH, ROLE_SEND, "send the payload to pullers, round-robin"},
    {"pull", FERRY_PULL, ROLE_RECV, "print messages pushed to it, fair-queued"},
    {"dealer", FERRY_DEALER, ROLE_EITHER, "send --data/--file/stdin with --send, else print"},
    {"router", FERRY_ROUTER, ROLE_REPLY,
     "print each message and answer its sender (--data or echo)"},
    {"xpub", FERRY_XPUB, ROLE_SEND, "publish like pub (subscriptions are handled, not printed)"},
    {"xsub", FERRY_XSUB, ROLE_RECV,
     "print published messages matching --subscribe (none: nothing)"},
};

#define SOCK_NCMDS (sizeof sock_cmds / sizeof sock_cmds[0])

typedef struct sock_opts {
    const sock_cmd *cmd;
    const char **binds, **connects, **subs; /* argv pointers, in order given */
    int nbind, nconnect, nsubs;
    const char *data, *file, *identity;
    bool send;             /* pair/dealer: send (payload from stdin when no --data/--file) */
    long long count;       /* 0 = the role's default */
    long long interval_ms; /* pause between sends */
    long long delay_ms;    /* pause before the first send */
    long long timeout_ms;  /* per send/receive; -1 = forever */
    enum sock_format format;
} sock_opts;

static void sock_usage(const sock_cmd *c, FILE *out)
{
    fprintf(
        out,
        "usage: ferry %s (--bind URL | --connect URL)... [options]\n"
        "\n"
        "  %s\n"
        "\n"
        "endpoints (at least one; each repeatable, all are used):\n"
        "  --bind URL          listen on URL: tcp://HOST:PORT, ipc://PATH, shm://NAME,\n"
        "                      inproc://NAME, fd://RFD,WFD\n"
        "  --connect URL       connect to URL (in the background, reconnecting after loss)\n"
        "payload (senders, req, and rep/router replies):\n"
        "  --data TEXT         the payload\n"
        "  --file PATH         the payload is the whole content of PATH\n"
        "                      without either, senders send each line of standard input\n"
        "                      (newline stripped) and rep/router echo each request\n"
        "  --send              pair/dealer: send instead of printing what arrives\n"
        "  --count N           stop after N messages sent (senders, req) or received\n"
        "                      (receivers, rep, router); N >= 1. Default: once with\n"
        "                      --data/--file, every stdin line, or forever for receivers\n"
        "  --interval MS       pause between two sends, or two rep/router answers (default 0)\n"
        "  --delay MS          pause before the first send, e.g. to let subscribers join\n"
        "receiving:\n"
        "  --subscribe PREFIX  sub/xsub: receive messages starting with PREFIX; repeatable;\n"
        "                      sub without it receives everything, xsub nothing\n"
        "  --format F          how each received message prints, one per line:\n"
        "                        raw     frames concatenated as they are (default)\n"
        "                        hex     each frame in lower-case hex, frames separated by spaces\n"
        "                        quoted  each frame C-escaped in double quotes, separated by "
        "spaces\n"
        "other:\n"
        "  --identity ID       routing id announced to ROUTER peers\n"
        "  --timeout MS        give up (exit 1) when one send or receive waits longer than MS;\n"
        "                      also bounds the final flush on exit (default: wait forever)\n"
        "  --help              this text\n"
        "\n"
        "Options also accept the --name=value form.\n"
        "exit status: 0 done, 1 timeout or runtime error, 2 bad usage, URL or bind/connect "
        "failure\n",
        c->name, c->what);
}

__attribute__((format(printf, 2, 3))) static int sock_usage_error(const sock_opts *o,
                                                                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ferry %s: ", o->cmd->name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'ferry %s --help')\n", o->cmd->name);
    va_end(ap);
    return 2;
}

static int sock_parse_num(const sock_opts *o, const char *opt, const char *v, long long min,
                          long long max, long long *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) {
        if (max == LLONG_MAX)
            fprintf(stderr, "ferry %s: %s needs a whole number of at least %lld, not '%s'\n",
                    o->cmd->name, opt, min, v);
        else
            fprintf(stderr, "ferry %s: %s needs a whole number from %lld to %lld, not '%s'\n",
                    o->cmd->name, opt, min, max, v);
        return -1;
    }
    *out = n;
    return 0;
}

/* Options that take a value; everything else is a flag. */
static bool sock_takes_value(const char *name)
{
    static const char *const with_value[] = {
        "--bind",  "--connect", "--data",   "--file",      "--count",    "--interval",
        "--delay", "--timeout", "--format", "--subscribe", "--identity",
    };
    for (size_t i = 0; i < sizeof with_value / sizeof with_value[0]; i++)
        if (!strcmp(name, with_value[i]))
            return true;
    return false;
}

/* Returns 0 to run, 1 after --help (exit 0), or 2 on a usage error (message printed). */
static int sock_parse(sock_opts *o, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            sock_usage(o->cmd, stdout);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0)
            return sock_usage_error(o, "unexpected argument '%s'", arg);
        /* Split --name=value; the name is copied so argv stays untouched. */
        char name[32];
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (nlen >= sizeof name)
            return sock_usage_error(o, "unknown option '%s'", arg);
        memcpy(name, arg, nlen);
        name[nlen] = 0;
        const char *v = NULL;
        if (sock_takes_value(name)) {
            if (eq)
                v = eq + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else
                return sock_usage_error(o, "%s needs a value", name);
        } else if (eq) {
            if (!strcmp(name, "--send"))
                return sock_usage_error(o, "%s takes no value", name);
            return sock_usage_error(o, "unknown option '%s'", name);
        }

        long long n;
        if (!strcmp(name, "--bind")) {
            o->binds[o->nbind++] = v;
        } else if (!strcmp(name, "--connect")) {
            o->connects[o->nconnect++] = v;
        } else if (!strcmp(name, "--subscribe")) {
            o->subs[o->nsubs++] = v;
        } else if (!strcmp(name, "--data") || !strcmp(name, "--file")) {
            const char **slot = name[2] == 'd' ? &o->data : &o->file;
            if (*slot)
                return sock_usage_error(o, "%s given twice", name);
            *slot = v;
        } else if (!strcmp(name, "--identity")) {
            if (!*v || strlen(v) > 255)
                return sock_usage_error(o, "--identity must be 1 to 255 bytes, not '%s'", v);
            o->identity = v;
        } else if (!strcmp(name, "--send")) {
            o->send = true;
        } else if (!strcmp(name, "--count")) {
            if (sock_parse_num(o, name, v, 1, LLONG_MAX, &o->count) < 0)
                return 2;
        } else if (!strcmp(name, "--interval") || !strcmp(name, "--delay") ||
                   !strcmp(name, "--timeout")) {
            if (sock_parse_num(o, name, v, 0, INT_MAX, &n) < 0)
                return 2;
            if (name[2] == 'i')
                o->interval_ms = n;
            else if (name[2] == 'd')
                o->delay_ms = n;
            else
                o->timeout_ms = n;
        } else if (!strcmp(name, "--format")) {
            if (!strcmp(v, "raw"))
                o->format = FMT_RAW;
            else if (!strcmp(v, "hex"))
                o->format = FMT_HEX;
            else if (!strcmp(v, "quoted"))
                o->format = FMT_QUOTED;
            else
                return sock_usage_error(o, "--format must be raw, hex or quoted, not '%s'", v);
        } else {
            return sock_usage_error(o, "unknown option '%s'", name);
        }
    }

    const char *cmd = o->cmd->name;
    enum sock_role role = o->cmd->role;
    if (o->nbind + o->nconnect == 0)
        return sock_usage_error(o, "give at least one --bind URL or --connect URL");
    if (o->data && o->file)
        return sock_usage_error(o, "--data and --file cannot be used together");
    if (o->nsubs && o->cmd->type != FERRY_SUB && o->cmd->type != FERRY_XSUB)
        return sock_usage_error(o, "--subscribe applies to sub and xsub only, not %s", cmd);
    if (o->send && role != ROLE_EITHER)
        return sock_usage_error(o, "--send applies to pair and dealer only, not %s", cmd);
    if (role == ROLE_EITHER && (o->data || o->file))
        o->send = true;
    bool sends = role == ROLE_SEND || role == ROLE_REQ || o->send;
    if ((o->data || o->file) && role == ROLE_RECV)
        return sock_usage_error(o, "%s only receives: --data/--file do not apply", cmd);
    if (!sends && o->delay_ms)
        return sock_usage_error(o, "%s does not send here: --delay does not apply", cmd);
    if (!sends && o->interval_ms && role != ROLE_REPLY)
        return sock_usage_error(o, "%s does not send here: --interval does not apply", cmd);
    return 0;
}

static void sock_sleep_ms(long long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Reads the whole file into a malloc'd buffer (*out may be NULL for an empty file). */
static int sock_read_file(const sock_opts *o, char **out, size_t *len)
{
    FILE *f = fopen(o->file, "rb");
    if (!f) {
        fprintf(stderr, "ferry %s: cannot open --file '%s': %s\n", o->cmd->name, o->file,
                strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                fprintf(stderr, "ferry %s: out of memory reading '%s'\n", o->cmd->name, o->file);
                free(buf);
                fclose(f);
                return -1;
            }
            buf = nb;
            cap = ncap;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) {
        fprintf(stderr, "ferry %s: error reading '%s': %s\n", o->cmd->name, o->file, strerror(err));
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* Reports a failed library call made while `doing` something; timeouts get their own words. */
static int sock_fail(const sock_opts *o, const char *doing, int rc, long long done)
{
    if (rc == FERRY_EAGAIN || rc == FERRY_ETIMEDOUT)
        fprintf(stderr, "ferry %s: timed out after %lld ms %s (%lld messages done)\n", o->cmd->name,
                o->timeout_ms, doing, done);
    else
        fprintf(stderr, "ferry %s: error %s: %s (%s)\n", o->cmd->name, doing, ferry_strerror(rc),
                ferry_errname(rc));
    return 1;
}

static void sock_print_frame(enum sock_format fmt, const unsigned char *d, size_t n, bool first)
{
    if (fmt == FMT_RAW) {
        fwrite(d, 1, n, stdout);
        return;
    }
    if (!first)
        putchar(' ');
    if (fmt == FMT_HEX) {
        for (size_t i = 0; i < n; i++)
            printf("%02x", d[i]);
        return;
    }
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = d[i];
        switch (c) {
        case '"':
            fputs("\\\"", stdout);
            break;
        case '\\':
            fputs("\\\\", stdout);
            break;
        case '\n':
            fputs("\\n", stdout);
            break;
        case '\r':
            fputs("\\r", stdout);
            break;
        case '\t':
            fputs("\\t", stdout);
            break;
        default:
            /* Plain ASCII only: locale-dependent isprint() would make the output unstable. */
            if (c >= 0x20 && c < 0x7f)
                putchar(c);
            else
                printf("\\x%02x", c);
        }
    }
    putchar('"');
}

/* The frames of one received message, kept when a reply must echo them. */
typedef struct sock_frames {
    ferry_msg *f;
    int n, cap;
} sock_frames;

static void sock_frames_clear(sock_frames *fr)
{
    for (int i = 0; i < fr->n; i++)
        ferry_msg_fini(&fr->f[i]);
    fr->n = 0;
}

/*
 * Receives one whole message and prints it as one line, leaving out the first `skip` frames (a
 * ROUTER's routing id). With keep, every frame is also moved into keep (for echo replies).
 * Returns 0, or the exit status after printing the failure.
 */
static int sock_recv_print(const sock_opts *o, ferry_socket *s, int skip, sock_frames *keep,
                           long long done)
{
    ferry_msg m;
    ferry_msg_init(&m);
    int idx = 0;
    for (bool more = true; more; idx++) {
        int rc = ferry_msg_recv(s, &m, 0);
        if (rc < 0) {
            ferry_msg_fini(&m);
            if (idx > 0)
                putchar('\n');
            return sock_fail(o, idx ? "receiving the rest of a message" : "waiting for a message",
                             rc, done);
        }
        more = ferry_msg_more(&m);
        if (idx >= skip)
            sock_print_frame(o->format, ferry_msg_data(&m), ferry_msg_size(&m), idx == skip);
        if (keep) {
            if (keep->n == keep->cap) {
                int ncap = keep->cap ? keep->cap * 2 : 8;
                ferry_msg *nf = realloc(keep->f, (size_t)ncap * sizeof *nf);
                if (!nf) {
                    ferry_msg_fini(&m);
                    fprintf(stderr, "ferry %s: out of memory\n", o->cmd->name);
                    return 1;
                }
                keep->f = nf;
                keep->cap = ncap;
            }
            /* A bitwise move is not part of the msg contract, so the echo copies the frame. */
            ferry_msg *k = &keep->f[keep->n];
            ferry_msg_init(k);
            rc = ferry_msg_init_size(k, ferry_msg_size(&m));
            if (rc < 0) {
                ferry_msg_fini(&m);
                return sock_fail(o, "keeping a frame for the reply", rc, done);
            }
            keep->n++;
            if (ferry_msg_size(&m))
                memcpy(ferry_msg_data(k), ferry_msg_data(&m), ferry_msg_size(&m));
        }
    }
    ferry_msg_fini(&m);
    putchar('\n');
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "ferry %s: cannot write to standard output: %s\n", o->cmd->name,
                strerror(errno));
        return 1;
    }
    return 0;
}

/* Where a sender's payloads come from: fixed bytes, or one stdin line per message. */
typedef struct sock_src {
    const char *fixed; /* NULL: read stdin */
    size_t fixed_len;
    char *line;
    size_t cap;
} sock_src;

/* Returns 1 with a payload, 0 at the end of stdin, -1 on a read error. */
static int sock_next(sock_src *src, const char **data, size_t *len)
{
    if (src->fixed) {
        *data = src->fixed;
        *len = src->fixed_len;
        return 1;
    }
    ssize_t n = getline(&src->line, &src->cap, stdin);
    if (n < 0)
        return ferror(stdin) ? -1 : 0;
    if (n > 0 && src->line[n - 1] == '\n')
        n--;
    *data = src->line;
    *len = (size_t)n;
    return 1;
}

static int sock_run_sender(const sock_opts *o, ferry_socket *s, sock_src *src, bool req)
{
    long long limit = o->count ? o->count : (src->fixed ? 1 : LLONG_MAX);
    sock_sleep_ms(o->delay_ms);
    for (long long i = 0; i < limit; i++) {
        const char *d;
        size_t n;
        int got = sock_next(src, &d, &n);
        if (got < 0) {
            fprintf(stderr, "ferry %s: error reading standard input: %s\n", o->cmd->name,
                    strerror(errno));
            return 1;
        }
        if (got == 0) {
            if (o->count) {
                fprintf(stderr, "ferry %s: standard input ended after %lld of %lld messages\n",
                        o->cmd->name, i, o->count);
                return 1;
            }
            break;
        }
        if (i > 0)
            sock_sleep_ms(o->interval_ms);
        int rc = ferry_socket_send(s, d, n, 0);
        if (rc < 0)
            return sock_fail(o, "sending", rc, i);
        if (req) {
            int st = sock_recv_print(o, s, 0, NULL, i);
            if (st)
                return st;
        }
    }
    return 0;
}

static int sock_run_receiver(const sock_opts *o, ferry_socket *s)
{
    long long limit = o->count ? o->count : LLONG_MAX;
    for (long long i = 0; i < limit; i++) {
        int st = sock_recv_print(o, s, 0, NULL, i);
        if (st)
            return st;
    }
    return 0;
}

/* rep/router: print each request, then answer it with the fixed payload or an echo. */
static int sock_run_replier(const sock_opts *o, ferry_socket *s, sock_src *src)
{
    bool router = o->cmd->type == FERRY_ROUTER;
    long long limit = o->count ? o->count : LLONG_MAX;
    sock_frames fr = {0};
    int status = 0;
    for (long long i = 0; i < limit && status == 0; i++) {
        status = sock_recv_print(o, s, router ? 1 : 0, &fr, i);
        if (status)
            break;
        int rc = 0;
        if (i > 0)
            sock_sleep_ms(o->interval_ms);
        if (src->fixed) {
            /* A ROUTER reply repeats the envelope it received: the routing id, and for REQ
             * peers every frame up to the empty delimiter, so a REQ accepts the answer. */
            int env = 0;
            if (router) {
                env = 1;
                for (int k = 1; k + 1 < fr.n; k++)
                    if (ferry_msg_size(&fr.f[k]) == 0) {
                        env = k + 1;
                        break;
                    }
            }
            for (int k = 0; k < env && rc == 0; k++)
                rc = ferry_msg_send(s, &fr.f[k], FERRY_MORE);
            if (rc == 0)
                rc = ferry_socket_send(s, src->fixed, src->fixed_len, 0);
        } else {
            for (int k = 0; k < fr.n && rc == 0; k++)
                rc = ferry_msg_send(s, &fr.f[k], k + 1 < fr.n ? FERRY_MORE : 0);
        }
        sock_frames_clear(&fr);
        if (rc < 0)
            status = sock_fail(o, "replying", rc, i);
    }
    sock_frames_clear(&fr);
    free(fr.f);
    return status;
}

static int sock_setup(const sock_opts *o, ferry_socket *s)
{
    const char *cmd = o->cmd->name;
    /* On exit, queued output is flushed for up to --timeout (or until delivered). */
    int rc = ferry_socket_setopt_int(s, FERRY_OPT_LINGER, o->timeout_ms);
    if (rc == 0)
        rc = ferry_socket_setopt_int(s, FERRY_OPT_RCVTIMEO, o->timeout_ms);
    if (rc == 0)
        rc = ferry_socket_setopt_int(s, FERRY_OPT_SNDTIMEO, o->timeout_ms);
    if (rc == 0 && o->identity)
        rc = ferry_socket_setopt_bytes(s, FERRY_OPT_ROUTING_ID, o->identity, strlen(o->identity));
    if (rc < 0) {
        fprintf(stderr, "ferry %s: cannot set socket options: %s (%s)\n", cmd, ferry_strerror(rc),
                ferry_errname(rc));
        return 1;
    }
    /* Subscriptions before connecting, so the first message after the handshake already passes. */
    if (o->cmd->type == FERRY_SUB && o->nsubs == 0)
        rc = ferry_socket_subscribe(s, "", 0);
    for (int i = 0; i < o->nsubs && rc == 0; i++)
        rc = ferry_socket_subscribe(s, o->subs[i], strlen(o->subs[i]));
    if (rc < 0) {
        fprintf(stderr, "ferry %s: cannot subscribe: %s (%s)\n", cmd, ferry_strerror(rc),
                ferry_errname(rc));
        return 1;
    }
    for (int i = 0; i < o->nbind; i++) {
        rc = ferry_socket_bind(s, o->binds[i]);
        if (rc < 0) {
            fprintf(stderr, "ferry %s: cannot bind '%s': %s (%s)\n", cmd, o->binds[i],
                    ferry_strerror(rc), ferry_errname(rc));
            return 2;
        }
    }
    for (int i = 0; i < o->nconnect; i++) {
        rc = ferry_socket_connect(s, o->connects[i]);
        if (rc < 0) {
            fprintf(stderr, "ferry %s: cannot connect to '%s': %s (%s)\n", cmd, o->connects[i],
                    ferry_strerror(rc), ferry_errname(rc));
            return 2;
        }
    }
    return 0;
}

/* Entry point for every socket command (argv[0] names it); registered in commands.c. */
int socket_cmd_main(int argc, char **argv);

int socket_cmd_main(int argc, char **argv)
{
    const sock_cmd *cmd = NULL;
    for (size_t i = 0; i < SOCK_NCMDS; i++)
        if (!strcmp(argv[0], sock_cmds[i].name))
            cmd = &sock_cmds[i];
    if (!cmd) {
        fprintf(stderr, "ferry: '%s' is not a socket type\n", argv[0]);
        return 2;
    }
    sock_opts o = {.cmd = cmd, .timeout_ms = -1};
    /* Each list can hold every argument, so no option is ever dropped for lack of room. */
    o.binds = calloc((size_t)argc * 3, sizeof *o.binds);
    if (!o.binds) {
        fprintf(stderr, "ferry %s: out of memory\n", cmd->name);
        return 1;
    }
    o.connects = o.binds + argc;
    o.subs = o.binds + 2 * argc;

    int status = sock_parse(&o, argc, argv);
    if (status) {
        free(o.binds);
        return status == 1 ? 0 : status;
    }

    sock_src src = {0};
    char *filebuf = NULL;
    if (o.file) {
        size_t len = 0;
        if (sock_read_file(&o, &filebuf, &len) < 0) {
            free(o.binds);
            return 2; /* an unreadable --file is a bad option value */
        }
        src.fixed = filebuf ? filebuf : "";
        src.fixed_len = len;
    } else if (o.data) {
        src.fixed = o.data;
        src.fixed_len = strlen(o.data);
    }

    ferry_socket *s = NULL;
    int rc = ferry_socket_open(&s, cmd->type);
    if (rc < 0) {
        fprintf(stderr, "ferry %s: cannot open the socket: %s (%s)\n", cmd->name,
                ferry_strerror(rc), ferry_errname(rc));
        status = 1;
    } else {
        status = sock_setup(&o, s);
    }
    if (status == 0) {
        switch (cmd->role) {
        case ROLE_SEND:
            status = sock_run_sender(&o, s, &src, false);
            break;
        case ROLE_REQ:
            status = sock_run_sender(&o, s, &src, true);
            break;
        case ROLE_RECV:
            status = sock_run_receiver(&o, s);
            break;
        case ROLE_REPLY:
            status = sock_run_replier(&o, s, &src);
            break;
        case ROLE_EITHER:
            status = o.send ? sock_run_sender(&o, s, &src, false) : sock_run_receiver(&o, s);
            break;
        }
    }
    ferry_socket_close(s);
    free(src.line);
    free(filebuf);
    free(o.binds);
    return status;
}
