/*
 * pipelist.c - the pipe list with round-robin send and fair-queued receive that PUSH, PULL,
 * DEALER, REQ, ROUTER and friends share (see pattern.h for the contract).
 */
#include "pattern/pattern.h"

#include "common/grow.h"

#include <stdlib.h>

int fy_pipelist_add(fy_pipelist *l, fy_pipe *p)
{
    if (l->n == l->cap && fy_grow32(&l->v, sizeof *l->v, &l->cap, l->n, 1, 8, UINT32_MAX) != 0)
        return FERRY_ENOMEM;
    l->v[l->n++] = p;
    return 0;
}

void fy_pipelist_remove(fy_pipelist *l, fy_pipe *p)
{
    for (uint32_t i = 0; i < l->n; i++) {
        if (l->v[i] != p)
            continue;
        l->v[i] = l->v[l->n - 1];
        l->n--;
        if (l->next >= l->n)
            l->next = 0;
        break;
    }
    if (l->send_cur == p) {
        /* It died in the middle of a message: the rest of that message has nowhere to go. */
        l->send_cur = NULL;
        l->send_dropping = true;
    }
    if (l->recv_cur == p) {
        l->recv_cur = NULL;
        l->cuts++;
    }
}

void fy_pipelist_fini(fy_pipelist *l)
{
    free(l->v);
    l->v = NULL;
    l->n = l->cap = l->next = 0;
    l->send_cur = l->recv_cur = NULL;
    l->send_dropping = false;
}

bool fy_pipelist_contains(const fy_pipelist *l, const fy_pipe *p)
{
    for (uint32_t i = 0; i < l->n; i++)
        if (l->v[i] == p)
            return true;
    return false;
}

int fy_pipelist_lb_send(fy_pipelist *l, fy_msg *m)
{
    bool more = fy_msg_more(m);
    if (l->send_dropping) {
        fy_msg_fini(m);
        if (!more)
            l->send_dropping = false;
        return 0;
    }
    if (l->send_cur) {
        int rc = fy_pipe_send_bound(l->send_cur, m);
        if (rc == FERRY_ENOMEM)
            return rc; /* m untouched; the message stays open on this pipe for a retry */
        if (rc != 0) {
            fy_msg_fini(m);
            l->send_dropping = more;
            l->send_cur = NULL;
            return 0;
        }
        if (!more)
            l->send_cur = NULL;
        return 0;
    }
    /* Round robin from next (< n while n > 0, see remove) without a division per call: this runs
     * for every frame sent. */
    bool nomem = false, full = false;
    for (uint32_t i = 0, idx = l->next < l->n ? l->next : 0; i < l->n; i++) {
        fy_pipe *p = l->v[idx];
        idx = idx + 1 == l->n ? 0 : idx + 1;
        int rc = fy_pipe_send(p, m);
        if (rc != 0) {
            nomem |= rc == FERRY_ENOMEM;
            full |= rc == FERRY_EAGAIN;
            continue; /* full (EAGAIN), dying (EPIPE) or out of memory: the next one */
        }
        l->next = idx;
        if (more)
            l->send_cur = p;
        return 0;
    }
    /* Waiting helps a full pipe, not one that is out of memory: then say so (m untouched). */
    return nomem && !full ? FERRY_ENOMEM : FERRY_EAGAIN;
}

int fy_pipelist_fq_recv(fy_pipelist *l, fy_msg *m, fy_pipe **from)
{
    if (l->recv_cur) {
        int rc = fy_pipe_recv(l->recv_cur, m);
        if (rc == 0) {
            if (from)
                *from = l->recv_cur;
            if (!fy_msg_more(m))
                l->recv_cur = NULL;
            return 0;
        }
        if (rc == FERRY_EAGAIN)
            return rc;      /* the rest of the message is on its way */
        l->recv_cur = NULL; /* the peer died mid-message */
        l->cuts++;
    }
    for (uint32_t i = 0, idx = l->next < l->n ? l->next : 0; i < l->n; i++) {
        fy_pipe *p = l->v[idx];
        idx = idx + 1 == l->n ? 0 : idx + 1;
        if (fy_pipe_recv(p, m) != 0)
            continue;
        l->next = idx;
        if (fy_msg_more(m))
            l->recv_cur = p;
        if (from)
            *from = p;
        return 0;
    }
    return FERRY_EAGAIN;
}

int fy_pipelist_fq_poll(fy_pipelist *l)
{
    if (l->recv_cur)
        return fy_pipe_poll_in(l->recv_cur) ? FERRY_POLLIN : 0;
    for (uint32_t i = 0; i < l->n; i++)
        if (fy_pipe_poll_in(l->v[i]))
            return FERRY_POLLIN;
    return 0;
}

int fy_pipelist_lb_poll(fy_pipelist *l)
{
    if (l->send_cur || l->send_dropping)
        return FERRY_POLLOUT;
    for (uint32_t i = 0; i < l->n; i++)
        if (fy_pipe_can_send(l->v[i]) && !atomic_load(&l->v[i]->dead))
            return FERRY_POLLOUT;
    return 0;
}
