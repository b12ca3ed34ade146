/*
 * router.c - the ROUTER socket: every received message is prefixed with a frame
 * holding the sending peer's routing id, and every sent message's first frame
 * names the peer it goes to.
 *
 * Routing ids are the peer's Identity (its ROUTING_ID option) or, when it sent
 * none, a generated 5-byte id 0x00+uint32 (routing.h), as libzmq does. A second
 * peer announcing an id already in use is refused (the connection is closed),
 * matching libzmq's default of ignoring it. Sending to an unknown id, or to a
 * peer at SNDHWM, drops the message silently (libzmq's default without
 * ROUTER_MANDATORY); the HWM case is counted in drops_hwm. Sending never
 * blocks. With FERRY_OPT_ROUTER_MANDATORY the routing-id frame's send fails
 * instead: FERRY_EHOSTUNREACH for an unknown or departed peer, FERRY_EAGAIN
 * (the core waits up to SNDTIMEO, then reports it) for a peer at SNDHWM; in
 * both cases nothing of the message was taken.
 *
 * FERRY_OPT_ROUTER_HANDOVER (libzmq ZMQ_ROUTER_HANDOVER): the new peer with a
 * taken id gets it (messages sent to that id go to the newcomer from then on)
 * and the old peer is retired: it can no longer be addressed, but every whole
 * message it had sent is still delivered, in order and under the id it used,
 * and its connection is closed as soon as it has no complete frame waiting at a
 * message boundary (at once when it has nothing pending). libzmq 4.3.4 drops
 * the old pipe's unread input instead (its pipe terminates at once); ferry's
 * rule loses nothing that had arrived. A message the old peer had only
 * partly sent when it is closed is dropped, as for any peer that leaves in the
 * middle of a message.
 */
#include "pattern/pattern.h"
#include "pattern/routing.h"

#include <stdlib.h>
#include <string.h>

typedef struct router_peer {
    uint8_t id_len;
    uint8_t id[FY_ROUTING_ID_MAX];
    bool retired; /* handed over: not in the table, its input still delivered under id */
    bool closing; /* retired and drained: left the pipe list, its connection is being closed */
} router_peer;

typedef struct router_state {
    fy_pipelist pipes;
    fy_routing table;
    /* receive side */
    bool in_msg; /* frames of a message are being delivered */
    fy_msg pre;  /* a fetched frame waiting behind its id frame */
    bool has_pre;
    fy_pipe *pre_from;
    fy_pipe *msg_from; /* sender of the message being received (NULL: it left) */
    uint8_t pre_id_len;
    uint8_t pre_id[FY_ROUTING_ID_MAX];
    /* send side */
    bool sending;  /* the id frame was seen; body frames follow */
    bool started;  /* the body's first frame went out */
    bool dropping; /* unknown peer, full peer or peer gone: drop the rest */
    fy_pipe *out;
    bool mandatory; /* FERRY_OPT_ROUTER_MANDATORY */
    bool handover;  /* FERRY_OPT_ROUTER_HANDOVER */
} router_state;

static int router_init(fy_socket *s, void *st)
{
    (void)s;
    router_state *r = st;
    fy_routing_init(&r->table);
    fy_msg_init(&r->pre);
    return 0;
}

static void router_fini(fy_socket *s, void *st)
{
    (void)s;
    router_state *r = st;
    fy_pipelist_fini(&r->pipes);
    fy_routing_fini(&r->table);
    fy_msg_fini(&r->pre);
}

/* A retired peer's connection is closed once nothing of it is left to deliver: no message of it
 * half received (by the pattern or the application) and no complete frame waiting in its pipe.
 * It leaves the pipe list at once, so no frame is read from it after that check. */
static void router_retire_check(fy_socket *s, router_state *r, fy_pipe *p)
{
    router_peer *peer = p->pattern_data;
    if (!peer || !peer->retired || peer->closing)
        return;
    if (r->pipes.recv_cur == p || (r->has_pre && r->pre_from == p && fy_msg_more(&r->pre)))
        return;
    if (fy_pipe_poll_in(p))
        return;
    peer->closing = true;
    fy_pipelist_remove(&r->pipes, p);
    fy_socket_drop_pipe(s, p);
}

static int router_attach(fy_socket *s, void *st, fy_pipe *p)
{
    router_state *r = st;
    router_peer *peer = calloc(1, sizeof *peer);
    if (!peer)
        return FERRY_ENOMEM;
    /* The only step that can fail once the id is decided comes first, so a refused newcomer
     * leaves the table and the old holder of its id untouched. */
    int rc = fy_pipelist_add(&r->pipes, p);
    if (rc < 0) {
        free(peer);
        return rc;
    }
    fy_pipe *old = NULL;
    if (p->peer.id_len) {
        rc = fy_routing_add(&r->table, p->peer.id, p->peer.id_len, p);
        if (rc == FERRY_EEXIST && r->handover) {
            /* Retarget the id in place (no allocation, so nothing to undo). */
            old = fy_routing_replace(&r->table, p->peer.id, p->peer.id_len, p);
            rc = 0;
        }
        if (rc == 0) {
            peer->id_len = p->peer.id_len;
            memcpy(peer->id, p->peer.id, p->peer.id_len);
        }
    } else {
        rc = fy_routing_generate(&r->table, p, peer->id);
        peer->id_len = FY_ROUTING_GEN_LEN;
    }
    if (rc < 0) {
        fy_pipelist_remove(&r->pipes, p);
        free(peer);
        return rc;
    }
    p->pattern_data = peer;
    if (old) {
        ((router_peer *)old->pattern_data)->retired = true;
        router_retire_check(s, r, old);
    }
    return 0;
}

static void router_detach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    router_state *r = st;
    router_peer *peer = p->pattern_data;
    if (r->out == p) {
        r->out = NULL;
        r->dropping = true;
    }
    if (r->msg_from == p)
        r->msg_from = NULL; /* its message, if unfinished, ends here: see router_fetch */
    if (r->pre_from == p) {
        r->pre_from = NULL;
        /* A fetched first frame whose rest will never come (the sender died
         * mid-message) is dropped before its id is handed out; a complete one is
         * still delivered. */
        if (r->has_pre && !r->in_msg && fy_msg_more(&r->pre)) {
            fy_msg_fini(&r->pre);
            r->has_pre = false;
        }
    }
    fy_pipelist_remove(&r->pipes, p);
    if (peer) {
        /* A retired peer's id belongs to its successor. */
        if (!peer->retired)
            fy_routing_remove(&r->table, peer->id, peer->id_len);
        free(peer);
        p->pattern_data = NULL;
    }
}

static int router_send(fy_socket *s, void *st, fy_msg *m)
{
    router_state *r = st;
    bool more = fy_msg_more(m);
    if (!r->sending) {
        /* The routing id frame: look the peer up, never forward the frame itself.
         */
        fy_pipe *to = fy_routing_find(&r->table, fy_msg_cdata(m), fy_msg_size(m));
        if (r->mandatory && more) {
            /* Fail before anything is consumed; the body's first frame cannot meet SNDHWM
             * after this check (only the owner adds to the pipe). */
            if (!to || atomic_load(&to->dead))
                return FERRY_EHOSTUNREACH;
            if (!fy_pipe_can_send(to))
                return FERRY_EAGAIN;
        }
        r->out = to;
        r->dropping = r->out == NULL;
        r->started = false;
        r->sending = more;
        fy_msg_fini(m);
        return 0;
    }
    if (!r->dropping) {
        bool first = !r->started;
        int rc = fy_pipe_send_bound(r->out, m);
        if (rc == FERRY_ENOMEM)
            return rc; /* m untouched: the message stays open on that peer for a retry */
        if (rc < 0) {
            /* At SNDHWM (only possible on the body's first frame) or gone: drop the
             * message. */
            if (rc == FERRY_EAGAIN && first)
                fy_socket_count_drop(s, 1);
            r->dropping = true;
        }
        r->started = true;
    }
    if (r->dropping)
        fy_msg_fini(m);
    if (!more) {
        r->sending = false;
        r->dropping = false;
        r->out = NULL;
    }
    return 0;
}

/* Fetches the next frame; for a message's first frame also records the sender's
 * id, so a message whose sender leaves before the application reads it still
 * carries the right id. */
static int router_fetch(fy_socket *s, router_state *r)
{
    if (r->has_pre)
        return 0;
    fy_msg f;
    fy_msg_init(&f);
    fy_pipe *from = NULL;
    int rc = fy_pipelist_fq_recv(&r->pipes, &f, &from);
    if (rc < 0)
        return rc;
    f.flags &= ~(uint32_t)FY_MSG_SUB;
    fy_msg_move(&r->pre, &f);
    r->has_pre = true;
    r->pre_from = from;
    const router_peer *peer = from->pattern_data;
    /* The sender of the message the application is reading left before its last frame (the
     * fair queue moved on): that message stays incomplete and this frame starts a new one, with
     * its id frame (docs/sockets.md), never passing for the rest of the cut one. */
    if (r->in_msg && from != r->msg_from)
        r->in_msg = false;
    if (!r->in_msg) {
        r->msg_from = from;
        r->pre_id_len = peer->id_len;
        memcpy(r->pre_id, peer->id, peer->id_len);
    }
    if (peer->retired && !fy_msg_more(&r->pre))
        router_retire_check(s, r, from); /* at each of its message boundaries */
    return 0;
}

static int router_recv(fy_socket *s, void *st, fy_msg *m)
{
    router_state *r = st;
    int rc = router_fetch(s, r);
    if (rc < 0)
        return rc;
    if (!r->in_msg) {
        /* Deliver the routing id first; the fetched frame follows on the next call.
         */
        rc = fy_msg_init_copy(m, r->pre_id, r->pre_id_len);
        if (rc < 0)
            return rc;
        m->flags = FY_MSG_MORE;
        r->in_msg = true;
        return 0;
    }
    fy_msg_move(m, &r->pre);
    r->has_pre = false;
    if (!fy_msg_more(m))
        r->in_msg = false;
    return 0;
}

static int router_events(fy_socket *s, void *st)
{
    router_state *r = st;
    int rc = router_fetch(s, r);
    if (rc < 0 && rc != FERRY_EAGAIN)
        return rc;
    return FERRY_POLLOUT | (rc == 0 ? FERRY_POLLIN : 0);
}

/* A fetched frame: its id frame (not yet delivered) or the frame itself is what recv returns. */
static bool router_has_input(fy_socket *s, void *st)
{
    (void)s;
    return ((const router_state *)st)->has_pre;
}

static int router_setopt(fy_socket *s, void *st, int opt, const void *val, size_t len)
{
    (void)s;
    router_state *r = st;
    if (opt == FERRY_OPT_ROUTER_MANDATORY)
        return fy_opt_get_bool(val, len, &r->mandatory);
    if (opt == FERRY_OPT_ROUTER_HANDOVER)
        return fy_opt_get_bool(val, len, &r->handover);
    return FERRY_EINVAL;
}

static int router_getopt(fy_socket *s, void *st, int opt, void *val, size_t *len)
{
    (void)s;
    router_state *r = st;
    if (opt == FERRY_OPT_ROUTER_MANDATORY)
        return fy_opt_put_bool(r->mandatory, val, len);
    if (opt == FERRY_OPT_ROUTER_HANDOVER)
        return fy_opt_put_bool(r->handover, val, len);
    return FERRY_EINVAL;
}

const fy_pattern_ops fy_pattern_router = {
    .type = FERRY_ROUTER,
    .name = "ROUTER",
    .state_size = sizeof(router_state),
    .init = router_init,
    .fini = router_fini,
    .attach = router_attach,
    .detach = router_detach,
    .send = router_send,
    .recv = router_recv,
    .events = router_events,
    .has_input = router_has_input,
    .setopt = router_setopt,
    .getopt = router_getopt,
};
