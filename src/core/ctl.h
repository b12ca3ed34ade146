/*
 * ctl.h - the process-wide control thread: accept, connect, handshakes, reconnect with backoff,
 * heartbeats, peer-death handling and the tail flush of output the application left behind.
 *
 * It starts lazily with the first bind/connect/adopt and owns every stream-engine pipe until its
 * handshake completes; then it publishes the pipe to the socket (fy_socket_publish_pipe) and only
 * watches it (hang-up, timers). Pipes are freed only here (fy_ctl_release_pipe), between epoll
 * batches, so no event can refer to freed memory. After fork() the child gets a fresh control
 * thread on first use; sockets inherited from the parent refuse to work (FERRY_ECHILD_FORK).
 */
#ifndef FERRY_CORE_CTL_H
#define FERRY_CORE_CTL_H

#include "core/endpoint.h"
#include "core/socket.h"
#include "transport/transport.h"

#include <stdbool.h>

/* Per-socket control record; created with the socket. */
int fy_ctl_sock_new(fy_socket *s);

/* Binds (listen now, so errors are synchronous; accept on the control thread). resolved gets
 * the URL as bound (real port). */
int fy_ctl_bind(fy_socket *s, const fy_transport_ops *t, const fy_endpoint *ep, const char *url,
                const fy_link_cfg *cfg, char *resolved, size_t cap);
/* Starts connecting in the background (reconnects forever until disconnect/close). */
int fy_ctl_connect(fy_socket *s, const fy_transport_ops *t, const fy_endpoint *ep, const char *url,
                   const fy_link_cfg *cfg);
/* Adopts connected fds (fd://, ferry_socket_adopt): the engine owns them on success. */
int fy_ctl_adopt(fy_socket *s, int rfd, int wfd, const fy_link_cfg *cfg);
/* Stops a bind / connect made with this exact URL (or the resolved bind URL). FERRY_ENOENT. */
int fy_ctl_unbind(fy_socket *s, const char *url);
int fy_ctl_disconnect(fy_socket *s, const char *url);
/*
 * Socket close: stops every listener and connecter of s and frees every engine pipe of s (the
 * owner has detached them all and emptied s->incoming first). Frees the control record.
 */
void fy_ctl_socket_close(fy_socket *s);

/* Owner: the pipe was detached; the control thread frees it (asynchronously). */
void fy_ctl_release_pipe(fy_pipe *p);
/* Owner: output was left queued in user space; make sure the control thread drains it if the
 * owner does not come back soon. Costs one atomic load when the tail flush is already active. */
void fy_ctl_flush_watch(void);
/* Owner: it consumed a wake-up of a pipe whose tail flush the control thread waits for (see
 * fy_shm_pipe_ctl_watch): run the next tail-flush pass now. */
void fy_ctl_flush_kick(void);
/* Control thread (engine.c): the engine does / does not need EPOLLOUT on its write fd. */
void fy_ctl_want_out(fy_pipe *p, bool want);
/* Control thread (engine.c): watch the engine's input edge-triggered while its owner is idle, so
 * PINGs are answered promptly when the application is not receiving. */
void fy_ctl_watch_in(fy_pipe *p, bool watch);
/* Control thread: remember why a link of s failed (static string), for diagnostics. */
void fy_ctl_note_error(fy_socket *s, const char *why);
/* The last such reason for s, or NULL (any thread; static string). */
const char *fy_ctl_last_error(fy_socket *s);
/* How many links of s failed their handshake or were dropped for misbehaving. */
uint64_t fy_ctl_link_errors(fy_socket *s);

#endif
