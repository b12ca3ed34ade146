/*
 * pattern.h - the contract between the socket core and a messaging pattern (one file per socket
 * type under src/pattern/, one const fy_pattern_ops each).
 *
 * A pattern decides which pipe(s) a frame goes to (round-robin, fan-out, routing by id) and from
 * which pipe the next frame comes (fair queueing, envelope matching, filtering). It never blocks,
 * never waits and never touches file descriptors: every op returns at once, and FERRY_EAGAIN means
 * "cannot make progress now"; the core then waits (spin, then epoll, honouring DONTWAIT, SNDTIMEO/
 * RCVTIMEO) for any pipe to become readable/writable or the pipe set to change, and calls the op
 * again. All ops but link_up run on the socket's owner thread; no locking is needed inside a
 * pattern, except around the state link_up reads (see link_up and fy_socket_links_lock).
 *
 * Call order the core guarantees:
 *  - init(s, st) once after the socket is created (st = state_size zeroed bytes, owned by core).
 *  - Before every send/recv/events/setopt call, if the control thread published a pipe-set change
 *    (one atomic generation counter), the core first calls detach() for each pipe that died and
 *    attach() for each new pipe, in that order. Pipes are announced only when live (handshake
 * done).
 *  - send(s, st, m) is called once per frame; fy_msg_more(m) says whether more frames of the same
 *    message follow. The core never interleaves frames of two messages: after a MORE frame the
 *    next send call carries the next frame of that message. On success the pattern has taken m's
 *    content (m is empty: use fy_msg_move / fy_pipe_send which moves). On failure m must be left
 *    untouched so the core can retry it after waiting. FERRY_EAGAIN is legal only for the first
 *    frame of a message (pipes accept every later frame, see pipe.h). To drop a message (PUB at
 *    HWM, ROUTER to an unknown id) return 0 after fy_msg_fini(m) for each of its frames.
 *  - recv(s, st, m) fills m (initialised empty by the core) with the next frame and sets
 *    FY_MSG_MORE in m->flags when more frames of the message follow (the core exposes that as
 *    *more / FERRY_OPT_RCVMORE). Once a pattern returned a MORE frame it must return the rest of
 *    that message (from the same pipe) on the following recv calls.
 *  - detach(s, st, p) is called for each remaining pipe, then fini(s, st), when the socket closes.
 *
 * Return codes for ops: 0 or a negative FERRY_E* (EAGAIN, EFSM, ENOTSUP, EINVAL, EHOSTUNREACH ...).
 * A NULL send or recv op means the socket type cannot do that: the core returns FERRY_ENOTSUP.
 *
 * Reference implementations: pair.c (one peer), push.c (round-robin), pull.c (fair queue).
 */
#ifndef FERRY_PATTERN_PATTERN_H
#define FERRY_PATTERN_PATTERN_H

#include "core/msg.h"
#include "core/pipe.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Pattern-specific options passed through ferry_socket_setopt_bytes/ferry_socket_subscribe. The
 * core handles every public FERRY_OPT_* itself; these internal numbers reach setopt(). */
enum fy_pattern_opt {
    FY_OPT_SUBSCRIBE = 1000,   /* bytes: prefix (ferry_socket_subscribe) */
    FY_OPT_UNSUBSCRIBE = 1001, /* bytes: prefix (ferry_socket_unsubscribe) */
};

/*
 * Public int options a pattern owns (FERRY_OPT_ROUTER_MANDATORY, FERRY_OPT_XPUB_VERBOSE) reach
 * setopt/getopt as one int64_t: the core decodes the 4- or 8-byte forms of
 * ferry_socket_setopt_bytes before they get here. These read and write such a 0/1 value.
 */
static inline int fy_opt_get_bool(const void *val, size_t len, bool *out)
{
    int64_t v;
    if (len != sizeof v)
        return FERRY_EINVAL;
    memcpy(&v, val, sizeof v);
    if (v != 0 && v != 1)
        return FERRY_EINVAL;
    *out = v == 1;
    return 0;
}

static inline int fy_opt_put_bool(bool b, void *val, size_t *len)
{
    int64_t v = b;
    if (*len < sizeof v) {
        *len = sizeof v;
        return FERRY_EMSGSIZE;
    }
    memcpy(val, &v, sizeof v);
    *len = sizeof v;
    return 0;
}

typedef struct fy_pattern_ops {
    int type;          /* enum ferry_socket_type */
    const char *name;  /* "PAIR", "PUB", ... as in ZMTP Socket-Type */
    size_t state_size; /* bytes of per-socket state the core allocates (zeroed) for the pattern */

    int (*init)(fy_socket *s, void *st);  /* optional */
    void (*fini)(fy_socket *s, void *st); /* optional; pipes are already detached */
    /* A new live pipe. Return < 0 to refuse it (e.g. PAIR already has a peer): the core then
     * closes that connection and never calls detach for it. */
    int (*attach)(fy_socket *s, void *st, fy_pipe *p);
    /* The pipe is going away; drop every reference to it (it is freed right after). */
    void (*detach)(fy_socket *s, void *st, fy_pipe *p);
    int (*send)(fy_socket *s, void *st, fy_msg *m); /* NULL: FERRY_ENOTSUP */
    int (*recv)(fy_socket *s, void *st, fy_msg *m); /* NULL: FERRY_ENOTSUP */
    /* FERRY_POLLIN when recv would not return FERRY_EAGAIN, FERRY_POLLOUT when send of a first
     * frame would not; never blocks. May pre-fetch (e.g. SUB filtering) into its own state. */
    int (*events)(fy_socket *s, void *st);
    /* Optional, required for every pattern that keeps received frames in its own state (a
     * prefetched frame, queued notices, a lost reply to report): true when recv would return a
     * frame (or an error other than FERRY_EAGAIN) from that state alone, without reading any pipe.
     * Never reads, never allocates. The core ORs it with the pipes' has_input to keep the
     * level-triggered pollfd readable (ferry_socket_pollfd); a pattern that buffers without
     * answering here makes an event loop sleep forever on input it already holds. */
    bool (*has_input)(fy_socket *s, void *st);
    /* Optional: the pipe a whole single-frame message may move on right now without the pattern
     * (out: the pipe send would pick; in: the pipe recv would read), when that choice needs no
     * pattern state: one peer, no message half sent (out) or half received (in), nothing queued
     * in the pattern. NULL otherwise. ferry_socket_send/recv then move such a frame on it
     * themselves (the stream engine's fast path); the pattern's state is the same before and
     * after such a frame, so the pattern never notices. */
    fy_pipe *(*direct)(fy_socket *s, void *st, bool out);
    /* Optional: p is about to be published to the socket (pipe.h step 1). Runs on the thread that
     * publishes it (the control thread, or the thread making an inproc link), with the socket's
     * link lock held (fy_socket_links_lock) and before the owner can see p, so it may send on p:
     * this is how a SUB's subscriptions reach a new publisher without any call by the owner. It
     * may read only pattern state that the owner changes under that lock, and must not block.
     * p->pattern_data/pattern_u64 are zeroed before and kept until attach (flags only: a pipe
     * may be released without ever being attached). */
    void (*link_up)(fy_socket *s, void *st, fy_pipe *p);
    /* Optional: pattern options (enum fy_pattern_opt or pattern-specific); FERRY_EINVAL for a bad
     * value, FERRY_ENOTSUP when the option does not apply to this type. */
    int (*setopt)(fy_socket *s, void *st, int opt, const void *val, size_t len);
    int (*getopt)(fy_socket *s, void *st, int opt, void *val, size_t *len);
} fy_pattern_ops;

/* The ops for a socket type, or NULL (unknown type). Defined in registry.c: every pattern file
 * adds one line there. */
const fy_pattern_ops *fy_pattern_lookup(int type);

extern const fy_pattern_ops fy_pattern_pair;
extern const fy_pattern_ops fy_pattern_pub;
extern const fy_pattern_ops fy_pattern_sub;
extern const fy_pattern_ops fy_pattern_req;
extern const fy_pattern_ops fy_pattern_rep;
extern const fy_pattern_ops fy_pattern_dealer;
extern const fy_pattern_ops fy_pattern_router;
extern const fy_pattern_ops fy_pattern_pull;
extern const fy_pattern_ops fy_pattern_push;
extern const fy_pattern_ops fy_pattern_xpub;
extern const fy_pattern_ops fy_pattern_xsub;

/* ---- what a pattern may ask of its socket (implemented in src/core/socket.c) ---- */

/* Socket options relevant to patterns (values as set by the user; defaults like libzmq). */
typedef struct fy_sockopts {
    int sndhwm, rcvhwm; /* messages per pipe; 0 = unlimited; default 1000 */
    int immediate;      /* FERRY_OPT_IMMEDIATE: 1 (default) or 0 (backlog.h) */
    uint32_t connects;  /* connect endpoints in use (connect minus disconnect) */
    uint8_t routing_id_len;
    uint8_t routing_id[255];
} fy_sockopts;

int fy_socket_type(const fy_socket *s);
const fy_sockopts *fy_socket_opts(const fy_socket *s);
/* Adds n messages to the socket's drops_hwm statistic (PUB/XPUB/ROUTER dropping at HWM). */
void fy_socket_count_drop(fy_socket *s, uint64_t n);

/*
 * The socket's link lock: held while link_up runs and while a pipe joins the set of published
 * pipes the owner has not attached yet ("pending"). A pattern with a link_up op takes it around
 * every change of the state link_up reads, and sends such a change to the pending pipes too
 * (they got the state as it was at their link_up, and attach must not send it again). Owner
 * thread; never hold it across a wait.
 */
void fy_socket_links_lock(fy_socket *s);
void fy_socket_links_unlock(fy_socket *s);
/* Under the link lock: calls fn for every published pipe not attached yet. */
void fy_socket_foreach_pending(fy_socket *s, void (*fn)(void *ctx, fy_pipe *p), void *ctx);
/* Owner: closes p's connection; the core detaches p at the next call (its unread input is
 * dropped). For ROUTER_HANDOVER. */
void fy_socket_drop_pipe(fy_socket *s, fy_pipe *p);

/*
 * Test-only fault injection at a few places where an allocation or a send can fail but tests
 * cannot make it fail on demand. A test program that defines fy_test_fault(site) makes the site
 * behave as if it got FERRY_ENOMEM whenever the function returns non-zero (it may be called on
 * the control thread). The library's reference is weak and hidden: in libferry.so, and in any
 * program that does not define it, it is null, so each site costs one compare with a link-time
 * constant. The subscription sites are on cold paths; FY_FAULT_MSG_SEND is checked once per frame
 * sent on a pipe the message is already bound to (fy_pipe_send_bound), where the compare is all
 * it costs. FY_FAULT_ENG_END is checked once per message on the stream engine's general send
 * path (eng_pipe_send), never on its single-frame or batch fast paths; FY_FAULT_ENG_SEG once per
 * large frame there, and wherever a frame's bytes start a new output segment (after a large
 * frame, or on an idle link), not when they are appended to the current one.
 */
enum fy_fault_site {
    FY_FAULT_SUB_FRAME = 1, /* subside.c: building a subscription frame */
    FY_FAULT_SUB_SEND = 2,  /* subside.c: a pipe taking a subscription frame */
    FY_FAULT_MSG_SEND = 3,  /* fy_pipe_send_bound: a pipe taking a frame of a bound message */
    FY_FAULT_ENG_END = 4,   /* engine.c: room to record a message's end (SNDHWM accounting) */
    FY_FAULT_ENG_SEG = 5,   /* engine.c: room for the output segments a frame starts */
};
int fy_test_fault(int site) __attribute__((weak, visibility("hidden")));
static inline bool fy_fault(int site)
{
    return fy_test_fault && fy_test_fault(site) != 0;
}

/*
 * fy_pipe_send for a frame whose pipe the message is already bound to: a later frame of a
 * message open on that pipe (PUSH, DEALER, REQ, PAIR), a REP reply's envelope and body, a ROUTER
 * message's body. A pipe out of memory there returns FERRY_ENOMEM with m untouched, and the
 * pattern keeps the message open for the application's retry (docs/sockets.md); the test-only
 * FY_FAULT_MSG_SEND site makes the pipe refuse the frame that way.
 */
static inline int fy_pipe_send_bound(fy_pipe *p, fy_msg *m)
{
    if (fy_fault(FY_FAULT_MSG_SEND))
        return FERRY_ENOMEM;
    return fy_pipe_send(p, m);
}

/* ---- pipe lists: round-robin send and fair-queued receive, shared by the patterns ---- */

/*
 * A growable array of pipes with the state for round-robin/fair queueing. Owned by the pattern
 * state; zero-initialised storage is a valid empty list. fy_pipelist_add may allocate
 * (FERRY_ENOMEM); everything else never allocates.
 */
typedef struct fy_pipelist {
    fy_pipe **v;
    uint32_t n, cap;
    uint32_t next;      /* round-robin / fair-queue cursor */
    fy_pipe *send_cur;  /* pipe carrying the message being sent (after a MORE frame), or NULL */
    fy_pipe *recv_cur;  /* pipe delivering the message being received, or NULL */
    bool send_dropping; /* send_cur died mid-message: discard frames until the last one */
    /* Incremented whenever recv_cur goes away before the last frame of its message (its peer
     * died, or it was removed): the message being received was cut, and the next frame
     * fq_recv returns starts a new one. A pattern that keeps per-message receive state (an
     * envelope, "discard the rest", "in a message") compares it with the value it saw last and
     * forgets that state when it changed, so no other peer's frame passes for the rest. */
    uint32_t cuts;
} fy_pipelist;

int fy_pipelist_add(fy_pipelist *l, fy_pipe *p);
/* Removes p if present (keeps the cursors sane). */
void fy_pipelist_remove(fy_pipelist *l, fy_pipe *p);
void fy_pipelist_fini(fy_pipelist *l); /* frees the array (not the pipes) */
bool fy_pipelist_contains(const fy_pipelist *l, const fy_pipe *p);
/* For the direct op: the list's only pipe when a whole message may go to it now (no message
 * half sent or being dropped) / come from it now (none half received), else NULL. */
static inline fy_pipe *fy_pipelist_sole_out(const fy_pipelist *l)
{
    return l->n == 1 && !l->send_cur && !l->send_dropping ? l->v[0] : NULL;
}
static inline fy_pipe *fy_pipelist_sole_in(const fy_pipelist *l)
{
    return l->n == 1 && !l->recv_cur ? l->v[0] : NULL;
}

/*
 * Load-balanced send (PUSH, DEALER, REQ): the first frame of a message goes to the next pipe in
 * round-robin order that accepts it (pipes at SNDHWM or dead are skipped); the message's later
 * frames follow on the same pipe. Returns 0 (m moved) or FERRY_EAGAIN when no pipe can take a new
 * message (none attached, or all full). If the pipe dies in the middle of a message, the rest of
 * that message is discarded (returns 0). FERRY_ENOMEM (m untouched): a pipe could not take the
 * frame for lack of memory (a later frame, the message staying open on that pipe for a retry; or
 * a first frame that no other pipe took and no full pipe may take later).
 */
int fy_pipelist_lb_send(fy_pipelist *l, fy_msg *m);
/*
 * Fair-queued receive (PULL, DEALER, ROUTER, SUB...): takes the next frame from the next pipe in
 * round-robin order that has one, and stays on that pipe until the message's last frame. *from
 * (if non-NULL) gets the pipe it came from. Returns 0 or FERRY_EAGAIN (nothing to receive now).
 * Dead pipes are skipped (the core detaches them).
 */
int fy_pipelist_fq_recv(fy_pipelist *l, fy_msg *m, fy_pipe **from);
/* FERRY_POLLIN if fq_recv would return a frame now (may read the kernel, never blocks). */
int fy_pipelist_fq_poll(fy_pipelist *l);
/* FERRY_POLLOUT if lb_send could take a new message now. */
int fy_pipelist_lb_poll(fy_pipelist *l);

#endif
