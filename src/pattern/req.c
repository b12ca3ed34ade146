/*
 * req.c - the REQ socket: strict request/reply alternation (FERRY_EFSM
 * otherwise, as libzmq), requests round-robined over peers with an empty
 * delimiter frame prepended, and only the reply from the peer that got the
 * request accepted (anything else is dropped, as is a reply without the
 * delimiter). The delimiter is stripped before the application sees the reply.
 *
 * One deliberate difference from libzmq: when the peer holding the outstanding
 * request goes away, libzmq's REQ waits forever; ferry's recv returns
 * FERRY_EPIPE once and the socket is ready to send again, so the application
 * can retry instead of hanging.
 */
#include "pattern/pattern.h"

typedef struct req_state {
    fy_pipelist pipes;
    bool sending; /* a request's first frame went out, its last has not */
    bool waiting; /* the request is complete; the reply is due */
    bool lost;    /* the reply's peer went away while waiting */
    fy_pipe *reply_pipe;
    bool reply_started; /* the delimiter of the reply was seen */
    bool discarding;    /* dropping the rest of a message from the wrong peer or
                           malformed */
    fy_msg pre;
    bool has_pre;
} req_state;

static int req_init(fy_socket *s, void *st)
{
    (void)s;
    req_state *r = st;
    fy_msg_init(&r->pre);
    return 0;
}

static void req_fini(fy_socket *s, void *st)
{
    (void)s;
    req_state *r = st;
    fy_pipelist_fini(&r->pipes);
    fy_msg_fini(&r->pre);
}

static int req_attach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    req_state *r = st;
    return fy_pipelist_add(&r->pipes, p);
}

static void req_detach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    req_state *r = st;
    if (r->pipes.recv_cur == p)
        r->discarding = false;
    if (r->reply_pipe == p) {
        r->reply_pipe = NULL;
        /* Frames already fetched are still delivered (req_fetch returns them
         * first). */
        if (r->waiting)
            r->lost = true;
    }
    fy_pipelist_remove(&r->pipes, p);
}

static int req_send(fy_socket *s, void *st, fy_msg *m)
{
    (void)s;
    req_state *r = st;
    if (r->waiting)
        return FERRY_EFSM;
    if (!r->sending) {
        /* The delimiter picks the pipe; the request's frames follow it there. */
        fy_msg delim;
        fy_msg_init(&delim);
        delim.flags = FY_MSG_MORE;
        int rc = fy_pipelist_lb_send(&r->pipes, &delim);
        if (rc < 0)
            return rc;
        r->reply_pipe = r->pipes.send_cur;
        r->sending = true;
        r->lost = false;
    }
    bool more = fy_msg_more(m);
    int rc = fy_pipelist_lb_send(&r->pipes, m);
    if (rc < 0)
        return rc; /* cannot happen after the first frame (pipe.h); m is untouched
                    */
    if (!more) {
        r->sending = false;
        r->waiting = true;
        r->reply_started = false;
        /* If the pipe died mid-request the rest was discarded: no reply can come.
         */
        if (!r->reply_pipe)
            r->lost = true;
    }
    return 0;
}

/* Fetches the next frame of the reply into r->pre, dropping everything else. */
static int req_fetch(req_state *r)
{
    while (!r->has_pre) {
        if (r->lost)
            return FERRY_EPIPE;
        fy_msg f;
        fy_msg_init(&f);
        fy_pipe *from = NULL;
        int rc = fy_pipelist_fq_recv(&r->pipes, &f, &from);
        if (rc < 0)
            return rc;
        bool more = fy_msg_more(&f);
        if (r->discarding) {
            r->discarding = more;
            fy_msg_fini(&f);
            continue;
        }
        if (!r->reply_started) {
            /* A reply starts with an empty delimiter frame from the pipe we asked. */
            if (from != r->reply_pipe || fy_msg_size(&f) != 0 || !more) {
                r->discarding = more;
                fy_msg_fini(&f);
                continue;
            }
            r->reply_started = true;
            fy_msg_fini(&f);
            continue;
        }
        fy_msg_move(&r->pre, &f);
        r->has_pre = true;
    }
    return 0;
}

static int req_recv(fy_socket *s, void *st, fy_msg *m)
{
    (void)s;
    req_state *r = st;
    if (!r->waiting)
        return FERRY_EFSM;
    int rc = req_fetch(r);
    if (rc == FERRY_EPIPE) {
        r->waiting = false;
        r->lost = false;
        r->reply_started = false;
        return rc;
    }
    if (rc < 0)
        return rc;
    fy_msg_move(m, &r->pre);
    r->has_pre = false;
    if (!fy_msg_more(m)) {
        r->waiting = false;
        r->lost = false;
        r->reply_started = false;
        r->reply_pipe = NULL;
    }
    return 0;
}

static int req_events(fy_socket *s, void *st)
{
    (void)s;
    req_state *r = st;
    if (!r->waiting) {
        int out = fy_pipelist_lb_poll(&r->pipes);
        return out;
    }
    int rc = req_fetch(r);
    /* A lost reply is reported by recv, so it counts as readable. */
    if (rc == 0 || rc == FERRY_EPIPE)
        return FERRY_POLLIN;
    return rc == FERRY_EAGAIN ? 0 : rc;
}

/* A fetched reply frame, or a lost reply that recv reports as FERRY_EPIPE. */
static bool req_has_input(fy_socket *s, void *st)
{
    (void)s;
    const req_state *r = st;
    return r->waiting && (r->has_pre || r->lost);
}

const fy_pattern_ops fy_pattern_req = {
    .type = FERRY_REQ,
    .name = "REQ",
    .state_size = sizeof(req_state),
    .init = req_init,
    .fini = req_fini,
    .attach = req_attach,
    .detach = req_detach,
    .send = req_send,
    .recv = req_recv,
    .events = req_events,
    .has_input = req_has_input,
};
