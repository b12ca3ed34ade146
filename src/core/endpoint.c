/*
 * endpoint.c - endpoint URL parsing (pure) and address resolution (getaddrinfo).
 *
 * The parser is a straight scan over a bounded string with an explicit reason for every
 * rejection: users mistype URLs far more often than they hit any other error, so "invalid
 * argument" alone is not good enough. It never allocates and never consults the locale or the
 * environment, which keeps it fuzzable and usable on any thread. Only fy_endpoint_resolve talks
 * to the resolver.
 */
#include "core/endpoint.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

_Static_assert(FY_EP_IPC_MAX + 1 == sizeof(((struct sockaddr_un *)0)->sun_path),
               "FY_EP_IPC_MAX must match sun_path");

static int ep_fail(const char **why, const char *reason, int rc)
{
    if (why != NULL)
        *why = reason;
    return rc;
}

static int ep_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int ep_alnum(char c)
{
    return ep_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Parses exactly s[0..n) as a decimal number <= max; -1 when not. */
static long long ep_number(const char *s, size_t n, long long max)
{
    long long v = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!ep_digit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
        if (v > max)
            return -1;
    }
    return v;
}

/* A DNS name: labels of [A-Za-z0-9_-]{1,63} separated by dots, optional trailing dot. */
static int ep_dns_name(const char *s, size_t n, const char **why)
{
    size_t label = 0;
    int last_all_digits = 1;
    if (n > 254 || (n == 254 && s[253] != '.'))
        return ep_fail(why, "host name longer than 253 characters", FERRY_ENAMETOOLONG);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0)
                return ep_fail(why, "empty label in host name", FERRY_EINVAL);
            if (s[i - 1] == '-')
                return ep_fail(why, "host name label ends with '-'", FERRY_EINVAL);
            label = 0;
            continue;
        }
        if (!ep_alnum(c) && c != '-' && c != '_')
            return ep_fail(why, "invalid character in host name", FERRY_EINVAL);
        if (label == 0) {
            if (c == '-')
                return ep_fail(why, "host name label starts with '-'", FERRY_EINVAL);
            last_all_digits = 1;
        }
        if (!ep_digit(c))
            last_all_digits = 0;
        if (++label > 63)
            return ep_fail(why, "host name label longer than 63 characters", FERRY_EINVAL);
    }
    if (label > 0 && s[n - 1] == '-')
        return ep_fail(why, "host name label ends with '-'", FERRY_EINVAL);
    /* RFC 1123: a top-level label is never all digits, so this was meant as an IPv4 address. */
    if (last_all_digits)
        return ep_fail(why, "invalid IPv4 address", FERRY_EINVAL);
    return 0;
}

static int ep_parse_tcp(const char *rest, size_t n, unsigned flags, fy_endpoint *ep,
                        const char **why)
{
    const char *host, *port;
    size_t hlen, plen;

    if (n == 0)
        return ep_fail(why, "tcp:// needs host:port", FERRY_EINVAL);
    if (memchr(rest, ';', n) != NULL)
        return ep_fail(why, "tcp source addresses (src;dst) are not supported", FERRY_EINVAL);
    if (memchr(rest, '/', n) != NULL)
        return ep_fail(why, "unexpected '/' in tcp endpoint", FERRY_EINVAL);
    if (rest[0] == '[') {
        const char *close = memchr(rest, ']', n);
        if (close == NULL)
            return ep_fail(why, "missing ']' after IPv6 address", FERRY_EINVAL);
        host = rest + 1;
        hlen = (size_t)(close - host);
        if ((size_t)(close - rest) + 1 >= n || close[1] != ':')
            return ep_fail(why, "missing ':port' after IPv6 address", FERRY_EINVAL);
        port = close + 2;
        plen = n - (size_t)(port - rest);
        if (hlen == 0)
            return ep_fail(why, "empty IPv6 address", FERRY_EINVAL);
        /* An optional zone (fe80::1%eth0): the address part must parse, the zone be a name. */
        const char *pct = memchr(host, '%', hlen);
        size_t alen = pct ? (size_t)(pct - host) : hlen;
        char tmp[INET6_ADDRSTRLEN + 1];
        struct in6_addr a6;
        if (alen == 0 || alen >= sizeof tmp)
            return ep_fail(why, "invalid IPv6 address", FERRY_EINVAL);
        memcpy(tmp, host, alen);
        tmp[alen] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return ep_fail(why, "invalid IPv6 address", FERRY_EINVAL);
        if (pct != NULL) {
            size_t zlen = hlen - alen - 1;
            if (zlen == 0 || zlen > 15)
                return ep_fail(why, "invalid IPv6 zone (1..15 characters)", FERRY_EINVAL);
            for (size_t i = 0; i < zlen; i++) {
                char c = pct[1 + i];
                if (!ep_alnum(c) && c != '.' && c != '_' && c != '-')
                    return ep_fail(why, "invalid character in IPv6 zone", FERRY_EINVAL);
            }
        }
        ep->host_kind = FY_HOST_IPV6;
    } else {
        const char *colon = memchr(rest, ':', n);
        if (colon == NULL)
            return ep_fail(why, "missing ':port' in tcp endpoint", FERRY_EINVAL);
        host = rest;
        hlen = (size_t)(colon - rest);
        port = colon + 1;
        plen = n - hlen - 1;
        if (memchr(port, ':', plen) != NULL)
            return ep_fail(why, "IPv6 addresses must be written in brackets: tcp://[::1]:port",
                           FERRY_EINVAL);
        if (hlen == 0)
            return ep_fail(why, "empty host in tcp endpoint", FERRY_EINVAL);
        if (hlen == 1 && host[0] == '*') {
            if (!(flags & FY_EP_BIND))
                return ep_fail(why, "host '*' is only valid for bind", FERRY_EINVAL);
            ep->host_kind = FY_HOST_ANY;
        } else {
            char tmp[16];
            struct in_addr a4;
            int rc;
            if (hlen < sizeof tmp) {
                memcpy(tmp, host, hlen);
                tmp[hlen] = '\0';
                if (inet_pton(AF_INET, tmp, &a4) == 1) {
                    ep->host_kind = FY_HOST_IPV4;
                    goto host_ok;
                }
            }
            rc = ep_dns_name(host, hlen, why);
            if (rc < 0)
                return rc;
            ep->host_kind = FY_HOST_NAME;
        }
    }
host_ok:
    if (hlen > FY_EP_HOST_MAX)
        return ep_fail(why, "host longer than 255 characters", FERRY_ENAMETOOLONG);
    memcpy(ep->host, host, hlen);
    ep->host[hlen] = '\0';
    if (plen == 0)
        return ep_fail(why, "empty port in tcp endpoint", FERRY_EINVAL);
    if (plen == 1 && port[0] == '*') {
        if (!(flags & FY_EP_BIND))
            return ep_fail(why, "port '*' is only valid for bind", FERRY_EINVAL);
        ep->port_any = 1;
        ep->port = 0;
        return 0;
    }
    long long p = ep_number(port, plen, 65535);
    if (p < 0)
        return ep_fail(why, "port must be a number 1..65535 (or * for bind)", FERRY_EINVAL);
    if (p == 0)
        return ep_fail(why, "port 0 is not valid: use * to let the kernel choose", FERRY_EINVAL);
    ep->port = (uint16_t)p;
    return 0;
}

static int ep_parse_ipc(const char *rest, size_t n, fy_endpoint *ep, const char **why)
{
    if (n == 0)
        return ep_fail(why, "ipc:// needs a path", FERRY_EINVAL);
    if (n == 1 && rest[0] == '*')
        return ep_fail(why, "ipc://* (generated path) is not supported: name a path", FERRY_EINVAL);
    if (rest[0] == '@') {
        if (n == 1)
            return ep_fail(why, "empty abstract socket name after '@'", FERRY_EINVAL);
        /* The abstract name fills sun_path after its leading NUL, without a terminator. */
        if (n - 1 > FY_EP_IPC_MAX)
            return ep_fail(why, "abstract socket name longer than 107 bytes", FERRY_ENAMETOOLONG);
        ep->abstract = 1;
        memcpy(ep->name, rest + 1, n - 1);
        ep->name_len = n - 1;
    } else {
        if (n > FY_EP_IPC_MAX)
            return ep_fail(why, "ipc path longer than 107 bytes (sun_path)", FERRY_ENAMETOOLONG);
        memcpy(ep->name, rest, n);
        ep->name_len = n;
    }
    ep->name[ep->name_len] = '\0';
    return 0;
}

static int ep_parse_shm(const char *rest, size_t n, fy_endpoint *ep, const char **why)
{
    if (n == 0)
        return ep_fail(why, "shm:// needs a name", FERRY_EINVAL);
    if (n > FY_EP_SHM_MAX)
        return ep_fail(why, "shm name longer than 64 characters", FERRY_ENAMETOOLONG);
    for (size_t i = 0; i < n; i++) {
        char c = rest[i];
        if (!ep_alnum(c) && c != '.' && c != '_' && c != '-')
            return ep_fail(why, "shm name may contain only A-Z a-z 0-9 . _ -", FERRY_EINVAL);
    }
    /* The name becomes a file name in the runtime directory: "." and ".." would escape it. */
    if ((n == 1 && rest[0] == '.') || (n == 2 && rest[0] == '.' && rest[1] == '.'))
        return ep_fail(why, "shm name may not be '.' or '..'", FERRY_EINVAL);
    memcpy(ep->name, rest, n);
    ep->name[n] = '\0';
    ep->name_len = n;
    return 0;
}

static int ep_parse_inproc(const char *rest, size_t n, fy_endpoint *ep, const char **why)
{
    if (n == 0)
        return ep_fail(why, "inproc:// needs a name", FERRY_EINVAL);
    if (n > FY_EP_INPROC_MAX)
        return ep_fail(why, "inproc name longer than 255 bytes", FERRY_ENAMETOOLONG);
    memcpy(ep->name, rest, n);
    ep->name[n] = '\0';
    ep->name_len = n;
    return 0;
}

static int ep_parse_fd(const char *rest, size_t n, fy_endpoint *ep, const char **why)
{
    const char *comma = memchr(rest, ',', n);
    size_t rlen = comma ? (size_t)(comma - rest) : n;
    long long r = ep_number(rest, rlen, 0x7FFFFFFF);
    if (n == 0)
        return ep_fail(why, "fd:// needs a descriptor number (fd://N or fd://R,W)", FERRY_EINVAL);
    if (r < 0)
        return ep_fail(why, "fd numbers must be non-negative decimal integers", FERRY_EINVAL);
    long long w = r;
    if (comma != NULL) {
        w = ep_number(comma + 1, n - rlen - 1, 0x7FFFFFFF);
        if (w < 0)
            return ep_fail(why, "fd numbers must be non-negative decimal integers (fd://R,W)",
                           FERRY_EINVAL);
    }
    ep->rfd = (int)r;
    ep->wfd = (int)w;
    return 0;
}

int fy_endpoint_parse(const char *url, unsigned flags, fy_endpoint *ep, const char **why)
{
    static const struct {
        const char *name;
        size_t len;
        int scheme;
    } schemes[] = {
        {"tcp", 3, FY_EP_TCP}, {"ipc", 3, FY_EP_IPC},       {"shm", 3, FY_EP_SHM},
        {"fd", 2, FY_EP_FD},   {"inproc", 6, FY_EP_INPROC},
    };

    if (ep == NULL)
        return ep_fail(why, "no endpoint structure", FERRY_EINVAL);
    memset(ep, 0, sizeof *ep);
    ep->rfd = ep->wfd = -1;
    if (url == NULL)
        return ep_fail(why, "endpoint is NULL", FERRY_EINVAL);
    size_t n = strnlen(url, FY_EP_URL_MAX + 1);
    if (n > FY_EP_URL_MAX)
        return ep_fail(why, "endpoint longer than 1024 characters", FERRY_ENAMETOOLONG);
    const char *sep = strstr(url, "://");
    if (sep == NULL)
        return ep_fail(why, "missing '://' (expected e.g. tcp://host:port)", FERRY_EINVAL);
    size_t slen = (size_t)(sep - url);
    if (slen == 0)
        return ep_fail(why, "empty scheme before '://'", FERRY_EINVAL);
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        if (schemes[i].len == slen && memcmp(schemes[i].name, url, slen) == 0) {
            ep->scheme = schemes[i].scheme;
            break;
        }
    }
    if (ep->scheme == 0)
        return ep_fail(why, "unknown scheme (use tcp, ipc, shm, inproc or fd)",
                       FERRY_EPROTONOSUPPORT);
    const char *rest = sep + 3;
    size_t rlen = n - slen - 3;
    int rc;
    switch (ep->scheme) {
    case FY_EP_TCP:
        rc = ep_parse_tcp(rest, rlen, flags, ep, why);
        break;
    case FY_EP_IPC:
        rc = ep_parse_ipc(rest, rlen, ep, why);
        break;
    case FY_EP_SHM:
        rc = ep_parse_shm(rest, rlen, ep, why);
        break;
    case FY_EP_INPROC:
        rc = ep_parse_inproc(rest, rlen, ep, why);
        break;
    default:
        rc = ep_parse_fd(rest, rlen, ep, why);
        break;
    }
    if (rc < 0) {
        int scheme = ep->scheme;
        memset(ep, 0, sizeof *ep);
        ep->scheme = scheme;
        ep->rfd = ep->wfd = -1;
        return rc;
    }
    return ep_fail(why, "ok", 0);
}

int fy_endpoint_format(const fy_endpoint *ep, char *buf, size_t cap)
{
    char port[8];
    int n;

    if (ep == NULL || buf == NULL)
        return FERRY_EINVAL;
    switch (ep->scheme) {
    case FY_EP_TCP:
        if (ep->port_any)
            snprintf(port, sizeof port, "*");
        else
            snprintf(port, sizeof port, "%u", (unsigned)ep->port);
        if (ep->host_kind == FY_HOST_IPV6)
            n = snprintf(buf, cap, "tcp://[%s]:%s", ep->host, port);
        else if (ep->host_kind >= FY_HOST_ANY && ep->host_kind <= FY_HOST_NAME)
            n = snprintf(buf, cap, "tcp://%s:%s", ep->host, port);
        else
            return FERRY_EINVAL;
        break;
    case FY_EP_IPC:
        n = snprintf(buf, cap, "ipc://%s%s", ep->abstract ? "@" : "", ep->name);
        break;
    case FY_EP_SHM:
        n = snprintf(buf, cap, "shm://%s", ep->name);
        break;
    case FY_EP_INPROC:
        n = snprintf(buf, cap, "inproc://%s", ep->name);
        break;
    case FY_EP_FD:
        if (ep->rfd < 0 || ep->wfd < 0)
            return FERRY_EINVAL;
        if (ep->rfd == ep->wfd)
            n = snprintf(buf, cap, "fd://%d", ep->rfd);
        else
            n = snprintf(buf, cap, "fd://%d,%d", ep->rfd, ep->wfd);
        break;
    default:
        return FERRY_EINVAL;
    }
    if (n < 0)
        return FERRY_EINVAL;
    if ((size_t)n >= cap)
        return FERRY_EMSGSIZE;
    return n;
}

static int ep_gai_error(int rc)
{
    switch (rc) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
    case EAI_FAIL:
        return FERRY_ENOENT;
    case EAI_AGAIN:
        return FERRY_EAGAIN;
    case EAI_MEMORY:
        return FERRY_ENOMEM;
    default:
        return FERRY_EINVAL;
    }
}

/*
 * For bind, libzmq accepts an interface name as the host (tcp://eth0:5555) and tries it before
 * DNS. Returns 1 when `name` is an interface with an address (IPv4 preferred), 0 when not.
 */
static int ep_interface_addr(const char *name, uint16_t port, struct sockaddr_storage *addr,
                             socklen_t *addrlen)
{
    struct ifaddrs *list = NULL;
    const struct ifaddrs *v6 = NULL, *v4 = NULL;
    if (strlen(name) >= IF_NAMESIZE || getifaddrs(&list) != 0)
        return 0;
    for (const struct ifaddrs *i = list; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL || strcmp(i->ifa_name, name) != 0)
            continue;
        if (i->ifa_addr->sa_family == AF_INET && v4 == NULL)
            v4 = i;
        else if (i->ifa_addr->sa_family == AF_INET6 && v6 == NULL)
            v6 = i;
    }
    int found = 1;
    memset(addr, 0, sizeof *addr);
    if (v4 != NULL) {
        struct sockaddr_in *in = (struct sockaddr_in *)addr;
        memcpy(in, v4->ifa_addr, sizeof *in);
        in->sin_port = htons(port);
        *addrlen = sizeof *in;
    } else if (v6 != NULL) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
        memcpy(in6, v6->ifa_addr, sizeof *in6);
        in6->sin6_port = htons(port);
        *addrlen = sizeof *in6;
    } else {
        found = 0;
    }
    freeifaddrs(list);
    return found;
}

int fy_endpoint_resolve(const fy_endpoint *ep, int passive, struct sockaddr_storage *addr,
                        socklen_t *addrlen)
{
    if (ep == NULL || addr == NULL || addrlen == NULL)
        return FERRY_EINVAL;
    memset(addr, 0, sizeof *addr);
    if (ep->scheme == FY_EP_IPC) {
        struct sockaddr_un *un = (struct sockaddr_un *)addr;
        if (ep->name_len == 0 || ep->name_len > FY_EP_IPC_MAX)
            return FERRY_EINVAL;
        un->sun_family = AF_UNIX;
        if (ep->abstract) {
            /* Abstract names are length-delimited: no NUL terminator is counted. */
            memcpy(un->sun_path + 1, ep->name, ep->name_len);
            *addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + ep->name_len);
        } else {
            memcpy(un->sun_path, ep->name, ep->name_len);
            *addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + ep->name_len + 1);
        }
        return 0;
    }
    if (ep->scheme != FY_EP_TCP)
        return FERRY_EINVAL;
    if ((ep->host_kind == FY_HOST_ANY || ep->port_any) && !passive)
        return FERRY_EINVAL;
    if (ep->host_kind == FY_HOST_ANY) {
        struct sockaddr_in *in = (struct sockaddr_in *)addr;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_ANY);
        in->sin_port = htons(ep->port);
        *addrlen = sizeof *in;
        return 0;
    }
    if (passive && ep->host_kind == FY_HOST_NAME &&
        ep_interface_addr(ep->host, ep->port, addr, addrlen))
        return 0;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = ep->host_kind == FY_HOST_IPV4   ? AF_INET
                      : ep->host_kind == FY_HOST_IPV6 ? AF_INET6
                                                      : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = (passive ? AI_PASSIVE : 0) |
                     (ep->host_kind == FY_HOST_NAME ? 0 : AI_NUMERICHOST) | AI_NUMERICSERV;
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)ep->port);
    int rc = getaddrinfo(ep->host, port, &hints, &res);
    if (rc != 0)
        return ep_gai_error(rc);
    /* Prefer IPv4 for names with both, like libzmq without ZMQ_IPV6. */
    const struct addrinfo *pick = res;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    }
    if (pick == NULL || pick->ai_addrlen > sizeof *addr) {
        freeaddrinfo(res);
        return FERRY_ENOENT;
    }
    memcpy(addr, pick->ai_addr, pick->ai_addrlen);
    *addrlen = pick->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}
