/*
 * ipc.c - ipc:// : Unix stream sockets for the stream engine.
 *
 * Access control: the socket file is made 0600 right after bind (fchmod before bind has no effect
 * on the file and umask varies, so chmod the path), and every accepted or connected peer's
 * SO_PEERCRED uid must be ours or the one FERRY_OPT_PEER_UID allows. A stale socket file left by a
 * dead process is replaced (probe: nobody accepts on it); a live one gives FERRY_EADDRINUSE.
 * Abstract names (ipc://@name) have no file and no permissions: only the uid check protects them.
 */
#include "core/endpoint.h"
#include "transport/transport.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <stdio.h>

static int ipc_addr(const fy_endpoint *ep, struct sockaddr_un *sa, socklen_t *sl)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (ep->name_len + 1 > sizeof sa->sun_path)
        return FERRY_ENAMETOOLONG;
    if (ep->abstract) {
        memcpy(sa->sun_path + 1, ep->name, ep->name_len);
        *sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + ep->name_len);
    } else {
        memcpy(sa->sun_path, ep->name, ep->name_len);
        *sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + ep->name_len + 1);
    }
    return 0;
}

/* True when something accepts connections on the path (a live socket, not a stale file). */
static int ipc_alive(const struct sockaddr_un *sa, socklen_t sl)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 1;
    int alive = connect(fd, (const struct sockaddr *)sa, sl) == 0 || errno != ECONNREFUSED;
    close(fd);
    return alive;
}

static int ipc_listen(const fy_endpoint *ep, int *out, char *resolved, size_t cap)
{
    struct sockaddr_un sa;
    socklen_t sl;
    int rc = ipc_addr(ep, &sa, &sl);
    if (rc)
        return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sa, sl) != 0) {
        rc = -errno;
        if (rc == FERRY_EADDRINUSE && !ep->abstract && !ipc_alive(&sa, sl)) {
            unlink(ep->name);
            rc = bind(fd, (struct sockaddr *)&sa, sl) == 0 ? 0 : -errno;
        }
        if (rc) {
            close(fd);
            return rc;
        }
    }
    if (!ep->abstract && chmod(ep->name, 0600) != 0) {
        rc = -errno;
        unlink(ep->name);
        close(fd);
        return rc;
    }
    if (listen(fd, 128) != 0) {
        rc = -errno;
        if (!ep->abstract)
            unlink(ep->name);
        close(fd);
        return rc;
    }
    snprintf(resolved, cap, "ipc://%s%s", ep->abstract ? "@" : "", ep->name);
    *out = fd;
    return 0;
}

static int ipc_connect(const fy_endpoint *ep, int *out)
{
    struct sockaddr_un sa;
    socklen_t sl;
    int rc = ipc_addr(ep, &sa, &sl);
    if (rc)
        return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    *out = fd;
    if (connect(fd, (struct sockaddr *)&sa, sl) == 0)
        return 0;
    /* A Unix-socket connect never stays in progress: EAGAIN means the listener's backlog is
     * full and nothing is pending, so fail and let the reconnect timer retry. */
    if (errno == EINPROGRESS)
        return FERRY_EINPROGRESS;
    rc = -errno;
    close(fd);
    *out = -1;
    return rc;
}

/*
 * The default Unix-socket send buffer (net.core.wmem_default, 208 KiB here) caps the bytes in
 * flight per link, and a sender is only woken again when three quarters of it have drained: a
 * 1 MiB message then takes five or more sleep/wake rounds on each side (each ~20 us or more on a
 * VM), which made 1 MiB over ipc:// ten times slower than over tcp://, whose buffers autotune up
 * to net.ipv4.tcp_wmem (4 MiB). Ask for FY_IPC_SNDBUF (the kernel caps it at net.core.wmem_max
 * and doubles it for its bookkeeping). It costs nothing while the link is idle: a Unix socket
 * charges only the bytes actually queued. Best effort: a refusal leaves the default.
 */
#define FY_IPC_SNDBUF (4 * 1024 * 1024)

static int ipc_prepare(int fd, const fy_link_cfg *cfg)
{
    int sz = FY_IPC_SNDBUF;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    struct ucred cr;
    socklen_t l = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) != 0)
        return FERRY_EACCES;
    if (cr.uid == geteuid())
        return 0;
    if (cfg->peer_uid >= 0 && cr.uid == (uid_t)cfg->peer_uid)
        return 0;
    return FERRY_EACCES;
}

static void ipc_unlisten(const fy_endpoint *ep, int fd)
{
    close(fd);
    if (!ep->abstract)
        unlink(ep->name);
}

const fy_transport_ops fy_transport_ipc = {
    .scheme = FY_EP_IPC,
    .name = "ipc",
    .listen = ipc_listen,
    .connect = ipc_connect,
    .prepare = ipc_prepare,
    .unlisten = ipc_unlisten,
};
