/*
 * pubside.h - the publishing side shared by PUB and XPUB: per-peer subscription
 * sets, fan-out by prefix match, and the processing of what subscribers send
 * upstream.
 *
 * Subscribers send subscriptions in two encodings (ZMTP 3.1 SUBSCRIBE/CANCEL
 * commands, which the engine hands over as frames flagged FY_MSG_SUB,
 * and 3.0-style single-frame messages starting with 0x01/0x00); both are
 * applied the same way. Each peer's set has set semantics, as in libzmq's
 * mtrie: a peer subscribing twice to one prefix holds it once. `all` counts,
 * per prefix, how many peers hold it, which is what XPUB needs to report a
 * subscription only when it is new and a cancel only when the last holder
 * leaves (libzmq's default, non-verbose XPUB).
 *
 * The application's thread is the only one that runs pattern code, so upstream
 * traffic is read when the application calls: on every recv/poll (XPUB), and on
 * send at most every FY_PUBSIDE_PUMP_MSGS messages or FY_PUBSIDE_PUMP_NS
 * nanoseconds, which bounds the cost of polling every peer on a hot publishing
 * loop while keeping subscription latency small.
 */
#ifndef FY_PATTERN_PUBSIDE_H
#define FY_PATTERN_PUBSIDE_H

#include "pattern/dist.h"
#include "pattern/msgq.h"
#include "pattern/pattern.h"
#include "pattern/subs.h"

#include <stdbool.h>
#include <stdint.h>

#define FY_PUBSIDE_PUMP_MSGS 64u
#define FY_PUBSIDE_PUMP_NS   200000u

typedef struct fy_pubside {
    fy_pipelist pipes;
    fy_dist dist;
    fy_subs all;  /* prefix -> number of peers holding it */
    bool xpub;    /* queue notices and upstream messages for the application */
    bool verbose; /* XPUB: report every subscribe, not only new prefixes (FERRY_OPT_XPUB_VERBOSE) */
    bool verbose_unsubs; /* XPUB: report every cancel too (FERRY_OPT_XPUB_VERBOSER) */
    bool manual;         /* XPUB: the application applies subscriptions (FERRY_OPT_XPUB_MANUAL) */
    fy_msgq queue;       /* XPUB: frames for the application */
    /* XPUB: notices that arrived while the application was inside an upstream message whose
     * last frame had not arrived (fy_msgq_inside_open): queued, in order, when it ends. */
    fy_msgq held;
    /* XPUB: the pipe id of every notice in `queue` and then `held`, in order (0: a departed
     * peer's cancel); the notices carry FY_MSG_SUB while queued to tell them from upstream
     * messages. */
    uint64_t *note_ids;
    size_t note_head, note_n, note_cap;
    uint64_t last_pipe; /* manual: id of the pipe whose notice was received last, 0 = none */
    /* welcome message (FERRY_OPT_XPUB_WELCOME_MSG), read by link_up: under the link lock */
    uint8_t *welcome;
    size_t welcome_len;
    uint64_t last_pump_ns;
    uint32_t sends_since_pump;
} fy_pubside;

int fy_pubside_init(fy_pubside *ps, bool xpub);
void fy_pubside_fini(fy_pubside *ps);
int fy_pubside_attach(fy_pubside *ps, fy_pipe *p);
void fy_pubside_detach(fy_pubside *ps, fy_pipe *p);
/* Publishes one frame (never blocks; drops per peer at SNDHWM). */
int fy_pubside_send(fy_pubside *ps, fy_socket *s, fy_msg *m);
/* XPUB: the next frame for the application, or FERRY_EAGAIN. Like the events ops, it first
 * hands subscribers what they are owed (fy_dist_flush), which sends do on their own. */
int fy_pubside_recv(fy_pubside *ps, fy_socket *s, fy_msg *m);
/* Reads everything peers sent (subscriptions applied; XPUB queues notices and, below RCVHWM
 * queued messages, upstream messages). */
int fy_pubside_pump(fy_pubside *ps, fy_socket *s);
/* XPUB_MANUAL: the application's subscribe/unsubscribe on the XPUB, applied to the filter of
 * the peer whose notice it received last (nothing when there is none or it left). 0 or
 * FERRY_ENOMEM. */
int fy_pubside_manual(fy_pubside *ps, int subscribe, const void *prefix, size_t len);
/* XPUB_WELCOME_MSG: replaces the welcome message (len 0: none). Takes s's link lock. */
int fy_pubside_set_welcome(fy_pubside *ps, fy_socket *s, const void *msg, size_t len);
/* A new subscriber (any thread, link lock held): sends it the welcome message, if any. */
void fy_pubside_link_up(fy_pubside *ps, fy_pipe *p);

#endif
