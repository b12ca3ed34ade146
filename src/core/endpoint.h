/*
 * endpoint.h - parsing of endpoint URLs (tcp://, ipc://, shm://, inproc://, fd://).
 *
 * fy_endpoint_parse is pure (no I/O, no allocation, no locale) so it can be fuzzed and called on
 * any thread; it writes everything into a fixed-size struct owned by the caller. Turning a tcp
 * name into an address needs the resolver and lives in a separate function, fy_endpoint_resolve.
 * Every failure comes with a static human-readable reason so users see what was wrong with their
 * URL, not just FERRY_EINVAL.
 */
#ifndef FERRY_CORE_ENDPOINT_H
#define FERRY_CORE_ENDPOINT_H

#include "ferry/ferry.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum fy_endpoint_scheme {
    FY_EP_TCP = 1,
    FY_EP_IPC,
    FY_EP_SHM,
    FY_EP_INPROC,
    FY_EP_FD,
};

enum fy_endpoint_host {
    FY_HOST_ANY = 1, /* "*" (bind only) */
    FY_HOST_IPV4,    /* dotted quad */
    FY_HOST_IPV6,    /* was in brackets; host holds it without them, zone included */
    FY_HOST_NAME,    /* a DNS name, resolved later */
};

#define FY_EP_HOST_MAX   255 /* bytes, excluding the NUL */
#define FY_EP_IPC_MAX    107 /* sizeof(sun_path) - 1: a path needs its NUL, abstract names do not */
#define FY_EP_SHM_MAX    64
#define FY_EP_INPROC_MAX 255
#define FY_EP_URL_MAX    1024 /* longer input is FERRY_ENAMETOOLONG without further parsing */

/* Parse flags. */
#define FY_EP_BIND 0x1 /* the URL is for bind: allows the "*" host and "*" port */

typedef struct fy_endpoint {
    int scheme; /* enum fy_endpoint_scheme */
    /* tcp */
    int host_kind;                 /* enum fy_endpoint_host */
    char host[FY_EP_HOST_MAX + 1]; /* NUL-terminated, brackets stripped */
    uint16_t port;                 /* 0 only when port_any */
    uint8_t port_any;              /* "*": the kernel picks (bind only) */
    /* ipc, shm, inproc: the name (ipc: the path; abstract ipc: WITHOUT the leading '@') */
    char name[FY_EP_INPROC_MAX + 1]; /* NUL-terminated */
    size_t name_len;
    uint8_t abstract; /* ipc://@name: Linux abstract socket namespace */
    /* fd */
    int rfd, wfd; /* fd://N gives rfd == wfd == N */
} fy_endpoint;

/*
 * Parses url into *ep (fully overwritten). flags: FY_EP_BIND or 0. Returns 0, or
 *   FERRY_EPROTONOSUPPORT  unknown scheme (schemes are lower-case: tcp ipc shm inproc fd);
 *   FERRY_ENAMETOOLONG     ipc path > 107 bytes, shm name > 64, inproc name > 255, host > 255,
 *                          URL > FY_EP_URL_MAX;
 *   FERRY_EINVAL           anything else malformed (missing "://", empty parts, bad port, bad
 *                          characters, wildcard on connect, ...).
 * *why (may be NULL) receives a static string saying what was wrong; on success it is set to
 * "ok". url may be NULL (FERRY_EINVAL).
 */
int fy_endpoint_parse(const char *url, unsigned flags, fy_endpoint *ep, const char **why);

/*
 * Formats ep back into a canonical URL (IPv6 hosts in brackets, "*" wildcards kept) as a
 * NUL-terminated string in buf. Returns the length, or FERRY_EMSGSIZE when cap is too small,
 * FERRY_EINVAL for an ep that was not produced by a successful parse.
 */
int fy_endpoint_format(const fy_endpoint *ep, char *buf, size_t cap);

/*
 * Resolves a tcp or ipc endpoint to a socket address (tcp names use getaddrinfo, so this may
 * block and may do I/O; IPv4 is preferred when a name has both). passive: for bind ("*" becomes
 * 0.0.0.0, and a host that names a network interface, e.g. tcp://lo:5555, binds to that
 * interface's address (IPv4 preferred), as libzmq does). Returns 0, FERRY_ENOENT (name does not
 * resolve), FERRY_EAGAIN (temporary resolver failure), FERRY_ENOMEM, FERRY_EINVAL (not tcp/ipc, or
 * wildcard without passive).
 */
int fy_endpoint_resolve(const fy_endpoint *ep, int passive, struct sockaddr_storage *addr,
                        socklen_t *addrlen);

#endif /* FERRY_CORE_ENDPOINT_H */
