/*
 * subside.h - the subscribing side shared by SUB and XSUB: the local
 * subscription set, sending subscriptions to every current and future
 * publisher, and prefix filtering on receive.
 *
 * Subscriptions go out as frames 0x01/0x00 + prefix flagged FY_MSG_SUB, which
 * the engine writes as a ZMTP 3.1 SUBSCRIBE/CANCEL command to 3.1 peers and as
 * the 3.0 message form to 3.0 peers; that is what libzmq 4.3.4's SUB does.
 * Semantics follow libzmq: every subscribe is forwarded (the publisher
 * deduplicates per peer), an unsubscribe is forwarded only when the last local
 * reference goes, and a new publisher receives each distinct prefix once, as
 * soon as its handshake is done (link_up, on the publishing thread: the owner
 * need not call ferry for it).
 * Filtering is also applied locally, so messages published before a cancel took
 * effect at the publisher are not delivered.
 */
#ifndef FY_PATTERN_SUBSIDE_H
#define FY_PATTERN_SUBSIDE_H

#include "pattern/dist.h"
#include "pattern/pattern.h"
#include "pattern/subs.h"

#include <stdbool.h>

typedef struct fy_subside {
    fy_pipelist pipes;
    fy_subs subs;
    fy_dist dist; /* XSUB: upstream messages */
    fy_msg pre;   /* the next deliverable frame, fetched ahead (events, filtering) */
    bool has_pre;
    bool in_msg;     /* frames of a matched message are being delivered */
    bool discarding; /* dropping the rest of a message that did not match */
    bool resend;     /* an attached pipe missed part of the set (out of memory): retry it */
    uint32_t cuts;   /* pipes.cuts when last looked at */
} fy_subside;

int fy_subside_init(fy_subside *ss);
void fy_subside_fini(fy_subside *ss);
/* A new publisher (any thread, link lock held): sends it the whole set now, so it gets the
 * subscriptions even if the owner makes no call. */
void fy_subside_link_up(fy_subside *ss, fy_pipe *p);
int fy_subside_attach(fy_subside *ss, fy_pipe *p);
void fy_subside_detach(fy_subside *ss, fy_pipe *p);
/* Changes a local subscription and tells the publishers, attached or pending (libzmq rules,
 * see above). Takes s's link lock. */
int fy_subside_subscribe(fy_subside *ss, fy_socket *s, int subscribe, const void *prefix,
                         size_t len);
/* The next frame of a matching message, or FERRY_EAGAIN. */
int fy_subside_recv(fy_subside *ss, fy_msg *m);
/* 1 when a frame is ready for fy_subside_recv (fetches ahead), 0 when not, < 0
 * on error. */
int fy_subside_poll(fy_subside *ss);
/* XSUB send: a single-frame message starting 0x01/0x00 is a subscription
 * change; everything else goes to every publisher (dropped per peer at SNDHWM).
 * Always consumes m. */
int fy_subside_send(fy_subside *ss, fy_socket *s, fy_msg *m);

/* The fy_pattern_ops entries SUB and XSUB share (st is a fy_subside); each socket type keeps
 * only the ops in which it differs (events, and XSUB's send). */
int fy_subside_op_init(fy_socket *s, void *st);
void fy_subside_op_fini(fy_socket *s, void *st);
void fy_subside_op_link_up(fy_socket *s, void *st, fy_pipe *p);
int fy_subside_op_attach(fy_socket *s, void *st, fy_pipe *p);
void fy_subside_op_detach(fy_socket *s, void *st, fy_pipe *p);
int fy_subside_op_recv(fy_socket *s, void *st, fy_msg *m);
/* A matching frame was fetched ahead (filtering, events). */
bool fy_subside_op_has_input(fy_socket *s, void *st);
/* FY_OPT_SUBSCRIBE / FY_OPT_UNSUBSCRIBE; FERRY_ENOTSUP for any other option. */
int fy_subside_op_setopt(fy_socket *s, void *st, int opt, const void *val, size_t len);

#endif
