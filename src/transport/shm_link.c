/*
 * shm_link.c - the shared-memory link between two processes and how it is handed over.
 *
 * One link is one sealed memfd: a page of control header (layout below) followed by two SPSC
 * rings, one per direction, each page-aligned. The listener creates it (so a connector can never
 * make a listener map something it did not create) and passes it on the already authenticated Unix
 * socket with SCM_RIGHTS, together with two eventfds (one wakes each side) so a receiver can sleep
 * in its socket's epoll alongside kernel-socket peers.
 *
 * The connector treats the whole offer as hostile: the memfd must carry the seals (the segment
 * API checks), every header field must equal what it recomputes from the capacity, the eventfds
 * must really be eventfds (a pipe or a socket in their place could block or confuse a write).
 * Descriptors received in any failure path are closed, never leaked.
 *
 *   page 0        line 0: magic, version, header size, ring capacity, ring footprint, ring
 *                         offsets, total
 *                 line 1: consumed[0] - messages side 1 has taken out of ring 0 (written by side 1)
 *                 line 2: consumed[1] - messages side 0 has taken out of ring 1 (written by side 0)
 *                 last 384 bytes: ring 0's header, producer and consumer lines
 *   page 1        ring 0's data (side 0 -> side 1), capacity bytes
 *   next page     last 384 bytes: ring 1's header, producer and consumer lines
 *   next page     ring 1's data (side 1 -> side 0), capacity bytes
 *
 * Each ring's three control lines end exactly where a page starts, so its data area is whole pages
 * of its own. A receiver maps the data of its incoming ring read-only (mprotect): it only ever
 * reads there (records are copied out, or handed out read-only in place), and a stray write of
 * ours into memory the peer reads fails loudly instead of corrupting the peer's view. The words a
 * receiver must write (its head, its sleep announcement in the producer line, the consumed
 * counters) all live in the control pages, which stay writable. Version 2 is this layout.
 */
#include "transport/shm.h"
#include "ring/spsc_layout.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define SHM_MAGIC     UINT64_C(0x314d485359525246) /* "FRRYSHM1" little-endian */
#define SHM_VERSION   2u
#define SHM_PAGE      4096u
#define SHM_LINE      128u
#define SHM_MIN_RING  ((size_t)4096)
#define SHM_MAX_RING  ((size_t)1 << 30)
#define SHM_MAX_RXFDS 8
#define SHM_REQ_MAGIC "FYSHMRQ1"
#define SHM_OFF_MAGIC "FYSHMOF1"
#define SHM_ACK_MAGIC "FYSHMOK1"
#define SHM_NAK_MAGIC "FYSHMNO1"
#define SHM_REQ_LEN   16u
#define SHM_OFFER_LEN 32u
#define SHM_ACK_LEN   8u

typedef struct shm_hdr {
    uint64_t magic;
    uint32_t version;
    uint32_t hdr_size;
    uint64_t ring_cap;
    uint64_t ring_bytes;
    uint64_t ring_off[2];
    uint64_t total;
    uint8_t pad0_[SHM_LINE - 56];
    _Atomic uint64_t consumed0;
    uint8_t pad1_[SHM_LINE - 8];
    _Atomic uint64_t consumed1;
    uint8_t pad2_[SHM_LINE - 8];
} shm_hdr;

_Static_assert(sizeof(shm_hdr) == 3 * SHM_LINE, "three lines");
_Static_assert(sizeof(shm_hdr) + FY_SPSC_HDR_SIZE <= SHM_PAGE,
               "the link header and ring 0's control lines share page 0");
_Static_assert(SHM_PAGE % FY_SPSC_LINE == 0 && SHM_MIN_RING % SHM_PAGE == 0,
               "ring control lines stay line-aligned, ring data page-aligned");

struct fy_shm_link {
    ferry_segment *seg;
    int efd[2];
    int side;
    fy_shm_link_view view;
};

enum {
    HS_L_READ_REQ = 1,
    HS_L_SEND_OFFER,
    HS_L_READ_ACK,
    HS_C_SEND_REQ,
    HS_C_READ_OFFER,
    HS_C_SEND_ACK,
    HS_C_SEND_NAK,
    HS_DONE,
    HS_FAILED,
};

int fy_shm_ring_capacity(int64_t requested, size_t *cap)
{
    if (!cap)
        return FERRY_EINVAL;
    if (requested == 0) {
        *cap = FY_SHM_DEFAULT_RING;
        return 0;
    }
    if (requested < 0 || (uint64_t)requested > SHM_MAX_RING)
        return FERRY_EINVAL;
    size_t c = SHM_MIN_RING;
    while (c < (size_t)requested)
        c <<= 1;
    *cap = c;
    return 0;
}

/* A ring's footprint: its three control lines and its data. */
static uint64_t shm_ring_bytes(uint64_t cap)
{
    return ferry_spsc_footprint((size_t)cap);
}

/* Where ring i starts: its control lines end on a page boundary, where its data begins. */
static uint64_t shm_ring_off(uint64_t cap, int i)
{
    return (uint64_t)(i + 1) * SHM_PAGE + (uint64_t)i * cap - FY_SPSC_HDR_SIZE;
}

static uint64_t shm_seg_size(uint64_t cap)
{
    return 2 * (uint64_t)SHM_PAGE + 2 * cap;
}

/* Fills the view from the capacity we validated (never from the shared header, which the peer
 * can rewrite) and makes the incoming ring's data read-only for us. */
static int shm_link_fill_view(fy_shm_link *l, uint64_t cap)
{
    uint8_t *base = ferry_segment_base(l->seg);
    shm_hdr *h = (shm_hdr *)base;
    l->view.ring[0] = base + shm_ring_off(cap, 0);
    l->view.ring[1] = base + shm_ring_off(cap, 1);
    l->view.ring_bytes = (size_t)shm_ring_bytes(cap);
    l->view.consumed[0] = &h->consumed0;
    l->view.consumed[1] = &h->consumed1;
    /* Only where the layout allows: the data must be whole pages of the running system. */
    uint8_t *in = (uint8_t *)l->view.ring[1 - l->side] + FY_SPSC_HDR_SIZE;
    long pg = sysconf(_SC_PAGESIZE);
    if (pg > 0 && ((uintptr_t)in % (uintptr_t)pg) == 0 && cap % (uint64_t)pg == 0) {
        if (mprotect(in, (size_t)cap, PROT_READ) != 0)
            return -errno;
    }
    return 0;
}

static fy_shm_link *shm_link_alloc(int side)
{
    fy_shm_link *l = calloc(1, sizeof *l);
    if (l) {
        l->efd[0] = l->efd[1] = -1;
        l->side = side;
    }
    return l;
}

void fy_shm_link_free(fy_shm_link *l)
{
    if (!l)
        return;
    ferry_segment_close(l->seg);
    for (int i = 0; i < 2; i++)
        if (l->efd[i] >= 0)
            close(l->efd[i]);
    free(l);
}

void fy_shm_link_view_get(const fy_shm_link *l, fy_shm_link_view *v)
{
    *v = l->view;
}

int fy_shm_link_efd(const fy_shm_link *l, int side)
{
    return l->efd[side & 1];
}

int fy_shm_link_side(const fy_shm_link *l)
{
    return l->side;
}

/* Listener: a fresh segment with both rings formatted, and both eventfds. */
static int shm_link_create(size_t cap, fy_shm_link **out)
{
    *out = NULL;
    uint64_t rb = shm_ring_bytes(cap);
    if (rb == 0 || cap < SHM_MIN_RING || cap > SHM_MAX_RING)
        return FERRY_EINVAL;
    fy_shm_link *l = shm_link_alloc(0);
    if (!l)
        return FERRY_ENOMEM;
    ferry_segment_opts o = {.size = (size_t)shm_seg_size(cap)};
    int rc = ferry_segment_open(&l->seg, &o);
    if (rc < 0)
        goto fail;
    uint8_t *base = ferry_segment_base(l->seg);
    shm_hdr *h = (shm_hdr *)base;
    memset(h, 0, sizeof *h);
    h->magic = SHM_MAGIC;
    h->version = SHM_VERSION;
    h->hdr_size = SHM_PAGE;
    h->ring_cap = cap;
    h->ring_bytes = rb;
    h->ring_off[0] = shm_ring_off(cap, 0);
    h->ring_off[1] = shm_ring_off(cap, 1);
    h->total = shm_seg_size(cap);
    if ((rc = ferry_spsc_format(base + shm_ring_off(cap, 0), (size_t)rb, cap)) < 0 ||
        (rc = ferry_spsc_format(base + shm_ring_off(cap, 1), (size_t)rb, cap)) < 0)
        goto fail;
    for (int i = 0; i < 2; i++) {
        l->efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (l->efd[i] < 0) {
            rc = -errno;
            goto fail;
        }
    }
    if ((rc = shm_link_fill_view(l, cap)) < 0)
        goto fail;
    *out = l;
    return 0;
fail:
    fy_shm_link_free(l);
    return rc;
}

/* Connector: is fd really an eventfd? Anything else in its place is a protocol violation. */
static bool shm_is_eventfd(int fd)
{
    char proc[64], target[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, target, sizeof target - 1);
    if (n <= 0)
        return false;
    target[n] = 0;
    return strcmp(target, "anon_inode:[eventfd]") == 0;
}

/* Connector: validates the offer and the received descriptors and maps the segment. On success
 * the link owns the fds; on failure the caller still owns them. */
static int shm_link_adopt(fy_shm_hs *hs, uint64_t cap, uint64_t seg_size, fy_shm_link **out)
{
    *out = NULL;
    int *fds = hs->got_fds;
    if (cap < SHM_MIN_RING || cap > SHM_MAX_RING || (cap & (cap - 1)) != 0) {
        hs->why = "shm offer: bad ring capacity";
        return FERRY_EPROTO;
    }
    uint64_t rb = shm_ring_bytes(cap);
    if (seg_size != shm_seg_size(cap)) {
        hs->why = "shm offer: segment size does not match the capacity";
        return FERRY_EPROTO;
    }
    if (!shm_is_eventfd(fds[1]) || !shm_is_eventfd(fds[2])) {
        hs->why = "shm offer: wake descriptors are not eventfds";
        return FERRY_EPROTO;
    }
    fy_shm_link *l = shm_link_alloc(1);
    if (!l)
        return FERRY_ENOMEM;
    int rc = ferry_segment_attach(&l->seg, fds[0], 0);
    if (rc < 0) {
        free(l);
        hs->why = "shm offer: segment refused (not a sealed memfd of page size)";
        return rc == FERRY_ENOMEM || rc == FERRY_EMFILE ? rc : FERRY_EPROTO;
    }
    /* From here the segment owns fds[0]. */
    fds[0] = -1;
    rc = FERRY_EPROTO;
    const volatile shm_hdr *h = ferry_segment_base(l->seg);
    if (ferry_segment_size(l->seg) != seg_size || h->magic != SHM_MAGIC ||
        h->version != SHM_VERSION || h->hdr_size != SHM_PAGE || h->ring_cap != cap ||
        h->ring_bytes != rb || h->ring_off[0] != shm_ring_off(cap, 0) ||
        h->ring_off[1] != shm_ring_off(cap, 1) || h->total != seg_size) {
        hs->why = "shm offer: segment header does not match the offer";
        goto fail;
    }
    for (int i = 0; i < 2; i++) {
        int fl = fcntl(fds[1 + i], F_GETFL);
        if (fl < 0 || fcntl(fds[1 + i], F_SETFL, fl | O_NONBLOCK) != 0) {
            rc = -errno;
            goto fail;
        }
    }
    if ((rc = shm_link_fill_view(l, cap)) < 0)
        goto fail;
    l->efd[0] = fds[1];
    l->efd[1] = fds[2];
    fds[1] = fds[2] = -1;
    *out = l;
    return 0;
fail:
    fy_shm_link_free(l);
    return rc;
}

void fy_shm_hs_init(fy_shm_hs *hs, int side, size_t ring_cap)
{
    memset(hs, 0, sizeof *hs);
    hs->side = side ? 1 : 0;
    hs->ring_cap = ring_cap ? ring_cap : FY_SHM_DEFAULT_RING;
    hs->got_fds[0] = hs->got_fds[1] = hs->got_fds[2] = -1;
    if (hs->side == 0) {
        hs->state = HS_L_READ_REQ;
    } else {
        hs->state = HS_C_SEND_REQ;
        memcpy(hs->buf, SHM_REQ_MAGIC, 8);
    }
}

static void shm_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t shm_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void shm_close_fds(int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

/* Sends hs->buf[have..len), with the link's descriptors on the first byte when pass_fds. 1 when
 * all is out, 0 when the socket is full, < 0 on error. */
static int shm_hs_send(fy_shm_hs *hs, int fd, size_t len, bool pass_fds)
{
    while (hs->have < len) {
        struct iovec iov = {hs->buf + hs->have, len - hs->have};
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(3 * sizeof(int))];
        } u;
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        if (pass_fds && hs->have == 0) {
            memset(&u, 0, sizeof u);
            m.msg_control = u.b;
            m.msg_controllen = sizeof u.b;
            struct cmsghdr *c = CMSG_FIRSTHDR(&m);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(3 * sizeof(int));
            int fds[3] = {ferry_segment_fd(hs->link->seg), hs->link->efd[0], hs->link->efd[1]};
            memcpy(CMSG_DATA(c), fds, sizeof fds);
        }
        ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return errno == EPIPE ? FERRY_ECONNRESET : -errno;
        }
        hs->have += (size_t)n;
    }
    return 1;
}

/* Receives into hs->buf[have..len); with_fds collects SCM_RIGHTS descriptors into got_fds (only
 * with the first bytes of the message, exactly 3). 1 when complete, 0 when more is needed. */
static int shm_hs_recv(fy_shm_hs *hs, int fd, size_t len, bool with_fds)
{
    while (hs->have < len) {
        struct iovec iov = {hs->buf + hs->have, len - hs->have};
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(SHM_MAX_RXFDS * sizeof(int))];
        } u;
        struct msghdr m = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b};
        ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return errno == ECONNRESET ? FERRY_ECONNRESET : -errno;
        }
        /* Collect every descriptor first so none can leak, then judge. */
        int got[SHM_MAX_RXFDS];
        int ngot = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k; i++) {
                int f;
                memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
                if (ngot < SHM_MAX_RXFDS)
                    got[ngot++] = f;
                else
                    close(f);
            }
        }
        bool bad = (m.msg_flags & MSG_CTRUNC) != 0;
        if (ngot > 0) {
            if (!with_fds || hs->have != 0 || ngot != 3 || hs->got_fds[0] >= 0)
                bad = true;
            else
                memcpy(hs->got_fds, got, sizeof hs->got_fds);
        }
        if (bad) {
            if (ngot > 0 && hs->got_fds[0] != got[0])
                shm_close_fds(got, ngot);
            hs->why = "shm hand-over: unexpected descriptors";
            return FERRY_EPROTO;
        }
        if (n == 0) {
            hs->why = "shm hand-over: peer hung up";
            return FERRY_ECONNRESET;
        }
        hs->have += (size_t)n;
    }
    return 1;
}

int fy_shm_hs_step(fy_shm_hs *hs, int fd, bool *want_out)
{
    bool dummy;
    if (!want_out)
        want_out = &dummy;
    *want_out = false;
    int rc;
    for (;;) {
        switch (hs->state) {
        case HS_L_READ_REQ:
            rc = shm_hs_recv(hs, fd, SHM_REQ_LEN, false);
            if (rc <= 0)
                goto out;
            if (memcmp(hs->buf, SHM_REQ_MAGIC, 8) != 0 || shm_get64(hs->buf + 8) != 0) {
                hs->why = "shm hand-over: bad request";
                rc = FERRY_EPROTO;
                goto out;
            }
            rc = shm_link_create(hs->ring_cap, &hs->link);
            if (rc < 0) {
                hs->why = "shm hand-over: cannot create the segment";
                goto out;
            }
            memcpy(hs->buf, SHM_OFF_MAGIC, 8);
            shm_put64(hs->buf + 8, hs->ring_cap);
            shm_put64(hs->buf + 16, ferry_segment_size(hs->link->seg));
            shm_put64(hs->buf + 24, 0);
            hs->have = 0;
            hs->state = HS_L_SEND_OFFER;
            break;
        case HS_L_SEND_OFFER:
            rc = shm_hs_send(hs, fd, SHM_OFFER_LEN, true);
            if (rc <= 0) {
                *want_out = rc == 0;
                goto out;
            }
            hs->have = 0;
            hs->state = HS_L_READ_ACK;
            break;
        case HS_L_READ_ACK:
            rc = shm_hs_recv(hs, fd, SHM_ACK_LEN, false);
            if (rc <= 0)
                goto out;
            if (memcmp(hs->buf, SHM_ACK_MAGIC, 8) != 0) {
                bool nak = memcmp(hs->buf, SHM_NAK_MAGIC, 8) == 0;
                hs->why = nak ? "shm hand-over: the peer refused our segment"
                              : "shm hand-over: bad acknowledgement";
                rc = nak ? FERRY_ECONNREFUSED : FERRY_EPROTO;
                goto out;
            }
            hs->state = HS_DONE;
            return 1;
        case HS_C_SEND_REQ:
            rc = shm_hs_send(hs, fd, SHM_REQ_LEN, false);
            if (rc <= 0) {
                *want_out = rc == 0;
                goto out;
            }
            hs->have = 0;
            hs->state = HS_C_READ_OFFER;
            break;
        case HS_C_READ_OFFER: {
            rc = shm_hs_recv(hs, fd, SHM_OFFER_LEN, true);
            if (rc <= 0)
                goto out;
            if (memcmp(hs->buf, SHM_OFF_MAGIC, 8) != 0 || hs->got_fds[0] < 0 ||
                shm_get64(hs->buf + 24) != 0) {
                hs->why = "shm hand-over: bad offer";
                rc = FERRY_EPROTO;
                goto out;
            }
            rc = shm_link_adopt(hs, shm_get64(hs->buf + 8), shm_get64(hs->buf + 16), &hs->link);
            if (rc < 0) {
                /* Tell the listener why it should not wait; best effort. */
                shm_close_fds(hs->got_fds, 3);
                memcpy(hs->buf, SHM_NAK_MAGIC, 8);
                hs->have = 0;
                (void)shm_hs_send(hs, fd, SHM_ACK_LEN, false);
                goto out;
            }
            memcpy(hs->buf, SHM_ACK_MAGIC, 8);
            hs->have = 0;
            hs->state = HS_C_SEND_ACK;
            break;
        }
        case HS_C_SEND_ACK:
            rc = shm_hs_send(hs, fd, SHM_ACK_LEN, false);
            if (rc <= 0) {
                *want_out = rc == 0;
                goto out;
            }
            hs->state = HS_DONE;
            return 1;
        case HS_DONE:
            return 1;
        default:
            return FERRY_EPROTO;
        }
    }
out:
    if (rc < 0)
        hs->state = HS_FAILED;
    return rc;
}

int fy_shm_hs_feed(fy_shm_hs *hs, const uint8_t *data, size_t len)
{
    if (len == 0)
        return 0;
    if (hs->state != HS_L_READ_REQ || len > SHM_REQ_LEN - hs->have) {
        hs->why = "shm hand-over: unexpected bytes";
        return FERRY_EPROTO;
    }
    memcpy(hs->buf + hs->have, data, len);
    hs->have += len;
    return 0;
}

fy_shm_link *fy_shm_hs_take(fy_shm_hs *hs)
{
    if (hs->state != HS_DONE)
        return NULL;
    fy_shm_link *l = hs->link;
    hs->link = NULL;
    return l;
}

void fy_shm_hs_fini(fy_shm_hs *hs)
{
    if (!hs)
        return;
    fy_shm_link_free(hs->link);
    hs->link = NULL;
    shm_close_fds(hs->got_fds, 3);
}
