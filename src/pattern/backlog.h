/*
 * backlog.h - FERRY_OPT_IMMEDIATE=0 for the load-balancing patterns (PUSH, DEALER).
 *
 * ferry's pipes exist only once a connection is complete, so by default (IMMEDIATE=1, as libzmq
 * with ZMQ_IMMEDIATE=1) a PUSH or DEALER with no peer cannot take a message: send waits, or fails
 * with FERRY_EAGAIN under DONTWAIT. With IMMEDIATE=0 a socket that has at least one connect
 * endpoint behaves like libzmq's default instead: while no peer is connected, messages are queued
 * in the socket (up to SNDHWM messages, whole messages only) and handed to the first peers as
 * they connect, in order, round-robin. One difference from libzmq remains and is documented
 * (docs/sockets.md): libzmq also round-robins into the queue of an endpoint that is down while
 * another one is up; ferry only queues when no peer at all is up, so a dead endpoint never
 * strands messages while a live one could take them.
 */
#ifndef FY_PATTERN_BACKLOG_H
#define FY_PATTERN_BACKLOG_H

#include "pattern/msgq.h"
#include "pattern/pattern.h"

#include <stdbool.h>

typedef struct fy_backlog {
    fy_msgq q; /* whole messages, plus the message being queued */
} fy_backlog;

void fy_backlog_fini(fy_backlog *b);
/* Hands queued messages to the pipes while they take them (never blocks). Call after attach. */
void fy_backlog_drain(fy_backlog *b, fy_pipelist *l);
/* fy_pipelist_lb_send with the queue in front of it (same contract; FERRY_ENOMEM possible). */
int fy_backlog_lb_send(fy_backlog *b, fy_pipelist *l, fy_socket *s, fy_msg *m);
/* fy_pipelist_lb_poll that counts room in the queue. */
int fy_backlog_lb_poll(fy_backlog *b, fy_pipelist *l, fy_socket *s);

#endif
