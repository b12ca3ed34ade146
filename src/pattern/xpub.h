/*
 * xpub.h - the XPUB pattern ops that PUB shares. libzmq's PUB is an XPUB that cannot receive, so
 * it takes every XPUB_* option: XPUB_WELCOME_MSG works as on XPUB (sent to each new subscriber at
 * link-up), XPUB_MANUAL stops subscriptions being applied (and, as a PUB never receives a notice,
 * ferry_socket_subscribe on it has no peer to act on: nothing is ever published to anyone but
 * the welcome), and XPUB_VERBOSE/XPUB_VERBOSER are accepted and read back but change nothing a
 * PUB can observe (they only choose which notices an XPUB application receives).
 */
#ifndef FY_PATTERN_XPUB_H
#define FY_PATTERN_XPUB_H

#include "pattern/pattern.h"

/* st is a fy_pubside (pubside.h) for all three. */
int fy_xpub_op_setopt(fy_socket *s, void *st, int opt, const void *val, size_t len);
int fy_xpub_op_getopt(fy_socket *s, void *st, int opt, void *val, size_t *len);
void fy_xpub_op_link_up(fy_socket *s, void *st, fy_pipe *p);

#endif
