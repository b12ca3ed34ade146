/*
 * tcp.c - tcp:// : listening and connecting TCP sockets for the stream engine.
 *
 * Only fd plumbing lives here: name resolution (fy_endpoint_resolve), SO_REUSEADDR on listeners so
 * a restarted server can bind again at once, TCP_NODELAY on every link (the engine batches frames
 * itself; Nagle would only add latency).
 */
#include "core/endpoint.h"
#include "transport/transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int tcp_listen(const fy_endpoint *ep, int *out, char *resolved, size_t cap)
{
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    int rc = fy_endpoint_resolve(ep, 1, &sa, &sl);
    if (rc != 0)
        return rc;
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sl) != 0 || listen(fd, 128) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    sl = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&sa;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        snprintf(resolved, cap, "tcp://%s:%u", host, port);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&sa;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        snprintf(resolved, cap, "tcp://[%s]:%u", host, port);
    }
    *out = fd;
    return 0;
}

static int tcp_connect(const fy_endpoint *ep, int *out)
{
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    int rc = fy_endpoint_resolve(ep, 0, &sa, &sl);
    if (rc != 0)
        return rc;
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    *out = fd;
    if (connect(fd, (struct sockaddr *)&sa, sl) == 0)
        return 0;
    if (errno == EINPROGRESS)
        return FERRY_EINPROGRESS;
    rc = -errno;
    close(fd);
    *out = -1;
    return rc;
}

static int tcp_prepare(int fd, const fy_link_cfg *cfg)
{
    (void)cfg;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
}

static void tcp_unlisten(const fy_endpoint *ep, int fd)
{
    (void)ep;
    close(fd);
}

const fy_transport_ops fy_transport_tcp = {
    .scheme = FY_EP_TCP,
    .name = "tcp",
    .listen = tcp_listen,
    .connect = tcp_connect,
    .prepare = tcp_prepare,
    .unlisten = tcp_unlisten,
};
