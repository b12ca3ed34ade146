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
 *
 * FERRY_OPT_REQ_RELAXED lets a send abandon the outstanding request (libzmq
 * ZMQ_REQ_RELAXED); FERRY_OPT_REQ_CORRELATE puts a 4-byte request id frame in
 * front of the delimiter and accepts only the reply that echoes it (libzmq
 * ZMQ_REQ_CORRELATE: host byte order, incremented per request from a random
 * start).
 */
#include "pattern/pattern.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t req_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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
    bool relaxed;        /* FERRY_OPT_REQ_RELAXED */
    bool correlate;      /* FERRY_OPT_REQ_CORRELATE */
    bool id_seen;        /* correlate: the reply's request id frame matched */
    bool id_sent;        /* correlate: the request id frame went out, the delimiter not yet */
    uint32_t cuts;       /* pipes.cuts when last looked at */
    uint32_t request_id; /* correlate: the id of the current request */
} req_state;

static int req_init(fy_socket *s, void *st)
{
    (void)s;
    req_state *r = st;
    fy_msg_init(&r->pre);
    /* A random start, as libzmq, so a restarted requester does not reuse the ids of its previous
     * life while old replies may still be around. */
    if (getrandom(&r->request_id, sizeof r->request_id, GRND_NONBLOCK) !=
        (ssize_t)sizeof r->request_id)
        r->request_id = (uint32_t)req_clock_ns() ^ (uint32_t)getpid();
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

/* RELAXED: a new request abandons the outstanding one. */
static void req_abandon(req_state *r)
{
    r->waiting = false;
    r->lost = false;
    r->reply_started = false;
    r->id_seen = false;
    r->reply_pipe = NULL;
}

/* RELAXED, before each request: whatever reply is already here belongs to an older request and
 * is dropped now (libzmq drains its input at this point too), so it cannot pass for the new
 * request's reply when both go to the same peer. Strict sockets skip this: they cannot have
 * sent an earlier request whose reply is still due. */
static void req_drain(req_state *r)
{
    bool more = false;
    if (r->has_pre) {
        more = fy_msg_more(&r->pre);
        fy_msg_fini(&r->pre);
        r->has_pre = false;
    } else {
        more = r->discarding;
    }
    for (;;) {
        fy_msg f;
        fy_msg_init(&f);
        if (fy_pipelist_fq_recv(&r->pipes, &f, NULL) < 0)
            break;
        more = fy_msg_more(&f);
        fy_msg_fini(&f);
    }
    /* The rest of a message that is still arriving is dropped as it comes. */
    r->discarding = more;
}

/* Starts a request: [request id,] empty delimiter. The first of them picks the pipe; the
 * request's frames follow it there. m is untouched on failure. */
static int req_begin(req_state *r)
{
    fy_msg head;
    int rc;
    if (r->correlate && !r->id_sent) {
        uint32_t id = r->request_id + 1;
        rc = fy_msg_init_size(&head, sizeof id);
        if (rc < 0)
            return rc;
        memcpy(fy_msg_data(&head), &id, sizeof id);
        head.flags = FY_MSG_MORE;
        rc = fy_pipelist_lb_send(&r->pipes, &head);
        if (rc < 0) {
            fy_msg_fini(&head);
            return rc;
        }
        r->request_id = id;
        r->id_sent = true;
    }
    fy_msg_init(&head);
    head.flags = FY_MSG_MORE;
    /* After an id frame this fails only out of memory (later frames of a started message are
     * taken, or discarded when the pipe died meanwhile); the retry then sends only this. */
    rc = fy_pipelist_lb_send(&r->pipes, &head);
    if (rc < 0)
        return rc;
    r->id_sent = false;
    r->reply_pipe = r->pipes.send_cur;
    r->sending = true;
    r->lost = false;
    return 0;
}

static int req_send(fy_socket *s, void *st, fy_msg *m)
{
    (void)s;
    req_state *r = st;
    if (r->waiting) {
        if (!r->relaxed)
            return FERRY_EFSM;
        req_abandon(r);
    }
    if (!r->sending) {
        if (r->relaxed)
            req_drain(r);
        int rc = req_begin(r);
        if (rc < 0)
            return rc;
    }
    bool more = fy_msg_more(m);
    int rc = fy_pipelist_lb_send(&r->pipes, m);
    if (rc < 0)
        return rc; /* after the first frame only out of memory; m is untouched */
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
        if (r->pipes.cuts != r->cuts) {
            /* The message being read was cut (its peer left): f starts a new one, whatever was
             * being discarded. A cut reply is reported by detach (lost). */
            r->cuts = r->pipes.cuts;
            r->discarding = false;
        }
        if (r->discarding) {
            r->discarding = more;
            fy_msg_fini(&f);
            continue;
        }
        if (from != r->reply_pipe) {
            /* Only the peer that got the request answers it: anything else (a late reply to
             * an abandoned request, a stray message) is dropped whole. */
            r->discarding = more;
            fy_msg_fini(&f);
            continue;
        }
        if (r->correlate && !r->id_seen) {
            /* The reply must start with the current request's id (from the pipe we asked). */
            if (fy_msg_size(&f) != sizeof r->request_id || !more ||
                memcmp(fy_msg_cdata(&f), &r->request_id, sizeof r->request_id) != 0) {
                r->discarding = more;
                fy_msg_fini(&f);
                continue;
            }
            r->id_seen = true;
            fy_msg_fini(&f);
            continue;
        }
        if (!r->reply_started) {
            /* A reply starts with an empty delimiter frame from the pipe we asked. */
            if (fy_msg_size(&f) != 0 || !more) {
                r->id_seen = false;
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
        r->id_seen = false;
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
        r->id_seen = false;
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
    /* RELAXED: a new request may be sent while the reply is due. */
    int out = r->relaxed ? fy_pipelist_lb_poll(&r->pipes) : 0;
    int rc = req_fetch(r);
    /* A lost reply is reported by recv, so it counts as readable. */
    if (rc == 0 || rc == FERRY_EPIPE)
        return FERRY_POLLIN | out;
    return rc == FERRY_EAGAIN ? out : rc;
}

/* A fetched reply frame, or a lost reply that recv reports as FERRY_EPIPE. */
static bool req_has_input(fy_socket *s, void *st)
{
    (void)s;
    const req_state *r = st;
    return r->waiting && (r->has_pre || r->lost);
}

static int req_setopt(fy_socket *s, void *st, int opt, const void *val, size_t len)
{
    (void)s;
    req_state *r = st;
    if (opt == FERRY_OPT_REQ_RELAXED)
        return fy_opt_get_bool(val, len, &r->relaxed);
    if (opt == FERRY_OPT_REQ_CORRELATE)
        return fy_opt_get_bool(val, len, &r->correlate);
    return FERRY_EINVAL;
}

static int req_getopt(fy_socket *s, void *st, int opt, void *val, size_t *len)
{
    (void)s;
    req_state *r = st;
    if (opt == FERRY_OPT_REQ_RELAXED)
        return fy_opt_put_bool(r->relaxed, val, len);
    if (opt == FERRY_OPT_REQ_CORRELATE)
        return fy_opt_put_bool(r->correlate, val, len);
    return FERRY_EINVAL;
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
    .setopt = req_setopt,
    .getopt = req_getopt,
};
