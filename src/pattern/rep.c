/*
 * rep.c - the REP socket: fair-queued requests, strict recv/send alternation
 * (FERRY_EFSM otherwise), and replies routed back with the request's envelope.
 *
 * The envelope is every frame of the request up to and including the first
 * empty delimiter (one frame from a REQ; the hops' ids plus the delimiter when
 * routed through ROUTER/DEALER proxies). It is kept while the application works
 * and sent in front of the reply to the peer the request came from. A request
 * without a delimiter is malformed and dropped, as libzmq does. Envelopes
 * deeper than FY_REP_MAX_HOPS frames are dropped too: they bound the memory a
 * hostile peer can pin. If the requester disappears before the reply, the reply
 * is dropped silently (libzmq).
 */
#include "pattern/pattern.h"

#include "common/grow.h"

#include <stdlib.h>

#define FY_REP_MAX_HOPS 256u

typedef struct rep_state {
    fy_pipelist pipes;
    fy_msg *env; /* envelope frames of the current request */
    uint32_t nenv, capenv;
    fy_pipe *from;       /* pipe of the request being received / answered */
    bool in_body;        /* the delimiter was seen; body frames are being delivered */
    bool discarding;     /* dropping the rest of a malformed request */
    bool replying;       /* the whole request was delivered: send is next */
    bool reply_started;  /* the reply's first frame went out */
    bool reply_dropping; /* the requester is gone or full: drop the rest of the
                            reply */
    uint32_t env_sent;   /* envelope frames of the reply already handed to the pipe */
    fy_msg pre;
    bool has_pre;
    uint32_t cuts; /* pipes.cuts when last looked at */
} rep_state;

static int rep_init(fy_socket *s, void *st)
{
    (void)s;
    rep_state *r = st;
    fy_msg_init(&r->pre);
    return 0;
}

static void rep_clear_env(rep_state *r)
{
    for (uint32_t i = 0; i < r->nenv; i++)
        fy_msg_fini(&r->env[i]);
    r->nenv = 0;
}

static void rep_fini(fy_socket *s, void *st)
{
    (void)s;
    rep_state *r = st;
    rep_clear_env(r);
    free(r->env);
    fy_pipelist_fini(&r->pipes);
    fy_msg_fini(&r->pre);
}

static int rep_attach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    rep_state *r = st;
    return fy_pipelist_add(&r->pipes, p);
}

static void rep_detach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    rep_state *r = st;
    if (r->pipes.recv_cur == p)
        r->discarding = false;
    if (r->from == p) {
        r->from = NULL; /* a reply now has nowhere to go: rep_send drops it (libzmq) */
        bool complete = r->replying || (r->has_pre && !fy_msg_more(&r->pre));
        if (!complete) {
            /* The requester vanished mid-request: its rest never comes. Forget the
             * partial request so the next frames (from other peers) start a new one.
             */
            rep_clear_env(r);
            r->in_body = false;
            fy_msg_fini(&r->pre);
            r->has_pre = false;
        }
    }
    fy_pipelist_remove(&r->pipes, p);
}

static int rep_push_env(rep_state *r, fy_msg *f)
{
    if (r->nenv == r->capenv &&
        fy_grow32(&r->env, sizeof *r->env, &r->capenv, r->nenv, 1, 4, UINT32_MAX) != 0)
        return FERRY_ENOMEM;
    fy_msg_init(&r->env[r->nenv]);
    fy_msg_move(&r->env[r->nenv], f);
    r->nenv++;
    return 0;
}

/* Fetches the next body frame of a request into r->pre, collecting its envelope
 * first. */
static int rep_fetch(rep_state *r)
{
    while (!r->has_pre) {
        fy_msg f;
        fy_msg_init(&f);
        fy_pipe *from = NULL;
        int rc = fy_pipelist_fq_recv(&r->pipes, &f, &from);
        if (rc < 0)
            return rc;
        bool more = fy_msg_more(&f);
        if (r->pipes.cuts != r->cuts) {
            /* The request being read was cut (its sender left before its last frame, and the
             * fair queue moved on): forget it, f starts a new request. Its envelope must not
             * route this one's reply, and a body already half delivered ends here (the next
             * frames are the new request's, as for any message cut this way). */
            r->cuts = r->pipes.cuts;
            r->discarding = false;
            rep_clear_env(r);
            r->in_body = false;
            r->from = NULL;
        }
        if (r->discarding) {
            r->discarding = more;
            fy_msg_fini(&f);
            continue;
        }
        if (r->in_body) {
            fy_msg_move(&r->pre, &f);
            r->has_pre = true;
            break;
        }
        if (r->nenv == 0)
            r->from = from;
        bool bottom = fy_msg_size(&f) == 0;
        if (!more || r->nenv >= FY_REP_MAX_HOPS) {
            /* No delimiter before the end (or too deep): malformed, drop all of it.
             */
            fy_msg_fini(&f);
            rep_clear_env(r);
            r->discarding = more;
            r->from = NULL;
            continue;
        }
        rc = rep_push_env(r, &f);
        if (rc < 0) {
            fy_msg_fini(&f);
            rep_clear_env(r);
            r->discarding = true;
            r->from = NULL;
            return rc;
        }
        if (bottom)
            r->in_body = true;
    }
    return 0;
}

static int rep_recv(fy_socket *s, void *st, fy_msg *m)
{
    (void)s;
    rep_state *r = st;
    if (r->replying)
        return FERRY_EFSM;
    int rc = rep_fetch(r);
    if (rc < 0)
        return rc;
    fy_msg_move(m, &r->pre);
    r->has_pre = false;
    if (!fy_msg_more(m)) {
        r->in_body = false;
        r->replying = true;
        r->reply_started = false;
        r->reply_dropping = false;
    }
    return 0;
}

static void rep_reply_done(rep_state *r)
{
    rep_clear_env(r);
    r->replying = false;
    r->reply_started = false;
    r->reply_dropping = false;
    r->env_sent = 0;
    r->from = NULL;
}

static int rep_send(fy_socket *s, void *st, fy_msg *m)
{
    (void)s;
    rep_state *r = st;
    if (!r->replying)
        return FERRY_EFSM;
    bool more = fy_msg_more(m);
    if (!r->reply_started) {
        if (!r->from) {
            r->reply_dropping = true; /* the requester left: drop the reply (libzmq) */
        } else {
            /* The envelope's first frame is the message's first frame: only it may
             * see SNDHWM, and then nothing was consumed, so the core can wait and
             * retry. Out of memory (any frame) is returned with m untouched; the
             * retry goes on from the first envelope frame not sent. */
            while (r->env_sent < r->nenv) {
                int rc = fy_pipe_send_bound(r->from, &r->env[r->env_sent]);
                if (rc == 0) {
                    r->env_sent++;
                    continue;
                }
                if (rc == FERRY_EAGAIN || rc == FERRY_ENOMEM)
                    return rc;
                r->reply_dropping = true; /* the requester is gone */
                break;
            }
        }
        r->reply_started = true;
    }
    if (!r->reply_dropping) {
        int rc = fy_pipe_send_bound(r->from, m);
        if (rc == FERRY_ENOMEM)
            return rc; /* m untouched: the reply stays open for a retry */
        if (rc < 0)
            r->reply_dropping = true;
    }
    if (r->reply_dropping)
        fy_msg_fini(m);
    if (!more)
        rep_reply_done(r);
    return 0;
}

static int rep_events(fy_socket *s, void *st)
{
    (void)s;
    rep_state *r = st;
    if (r->replying) {
        if (r->reply_started || !r->from || r->env_sent)
            return FERRY_POLLOUT; /* only a reply's first frame meets SNDHWM */
        return fy_pipe_can_send(r->from) ? FERRY_POLLOUT : 0;
    }
    int rc = rep_fetch(r);
    if (rc == 0)
        return FERRY_POLLIN;
    return rc == FERRY_EAGAIN ? 0 : rc;
}

static bool rep_has_input(fy_socket *s, void *st)
{
    (void)s;
    const rep_state *r = st;
    return !r->replying && r->has_pre;
}

const fy_pattern_ops fy_pattern_rep = {
    .type = FERRY_REP,
    .name = "REP",
    .state_size = sizeof(rep_state),
    .init = rep_init,
    .fini = rep_fini,
    .attach = rep_attach,
    .detach = rep_detach,
    .send = rep_send,
    .recv = rep_recv,
    .events = rep_events,
    .has_input = rep_has_input,
};
