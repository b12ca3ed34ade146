/*
 * test_wire_endpoint.c - the endpoint URL parser, table-driven: every accepted form with the
 * fields it must produce, every rejected form with its exact error code and a non-empty reason,
 * format() round trips, and address resolution for numeric hosts and ipc paths.
 */
#include "testutil.h"

#include "core/endpoint.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

struct ok_case {
    const char *url;
    unsigned flags;
    int scheme;
    int host_kind;
    const char *host_or_name;
    int port; /* -1 = port_any */
    int rfd, wfd;
    int abstract;
};

static const struct ok_case ok_cases[] = {
    {"tcp://127.0.0.1:5555", 0, FY_EP_TCP, FY_HOST_IPV4, "127.0.0.1", 5555, -1, -1, 0},
    {"tcp://0.0.0.0:1", 0, FY_EP_TCP, FY_HOST_IPV4, "0.0.0.0", 1, -1, -1, 0},
    {"tcp://255.255.255.255:65535", 0, FY_EP_TCP, FY_HOST_IPV4, "255.255.255.255", 65535, -1, -1,
     0},
    {"tcp://*:5555", FY_EP_BIND, FY_EP_TCP, FY_HOST_ANY, "*", 5555, -1, -1, 0},
    {"tcp://*:*", FY_EP_BIND, FY_EP_TCP, FY_HOST_ANY, "*", -1, -1, -1, 0},
    {"tcp://127.0.0.1:*", FY_EP_BIND, FY_EP_TCP, FY_HOST_IPV4, "127.0.0.1", -1, -1, -1, 0},
    {"tcp://[::1]:80", 0, FY_EP_TCP, FY_HOST_IPV6, "::1", 80, -1, -1, 0},
    {"tcp://[::]:*", FY_EP_BIND, FY_EP_TCP, FY_HOST_IPV6, "::", -1, -1, -1, 0},
    {"tcp://[fe80::1%eth0]:9", 0, FY_EP_TCP, FY_HOST_IPV6, "fe80::1%eth0", 9, -1, -1, 0},
    {"tcp://[2001:db8::ff00:42:8329]:443", 0, FY_EP_TCP, FY_HOST_IPV6, "2001:db8::ff00:42:8329",
     443, -1, -1, 0},
    {"tcp://[::ffff:192.0.2.1]:7", 0, FY_EP_TCP, FY_HOST_IPV6, "::ffff:192.0.2.1", 7, -1, -1, 0},
    {"tcp://localhost:5555", 0, FY_EP_TCP, FY_HOST_NAME, "localhost", 5555, -1, -1, 0},
    {"tcp://example.com.:80", 0, FY_EP_TCP, FY_HOST_NAME, "example.com.", 80, -1, -1, 0},
    {"tcp://my-host_1.internal:80", 0, FY_EP_TCP, FY_HOST_NAME, "my-host_1.internal", 80, -1, -1,
     0},
    {"tcp://1host.example:80", 0, FY_EP_TCP, FY_HOST_NAME, "1host.example", 80, -1, -1, 0},
    {"tcp://localhost:00080", 0, FY_EP_TCP, FY_HOST_NAME, "localhost", 80, -1, -1, 0},
    {"ipc:///tmp/ferry.sock", 0, FY_EP_IPC, 0, "/tmp/ferry.sock", 0, -1, -1, 0},
    {"ipc://relative/path", 0, FY_EP_IPC, 0, "relative/path", 0, -1, -1, 0},
    {"ipc://@abstract-name", 0, FY_EP_IPC, 0, "abstract-name", 0, -1, -1, 1},
    {"ipc://a b:c", 0, FY_EP_IPC, 0, "a b:c", 0, -1, -1, 0},
    {"inproc://x", 0, FY_EP_INPROC, 0, "x", 0, -1, -1, 0},
    {"inproc://any thing/at:all", 0, FY_EP_INPROC, 0, "any thing/at:all", 0, -1, -1, 0},
    {"shm://bus", 0, FY_EP_SHM, 0, "bus", 0, -1, -1, 0},
    {"shm://A.b_c-9", 0, FY_EP_SHM, 0, "A.b_c-9", 0, -1, -1, 0},
    {"shm://...", 0, FY_EP_SHM, 0, "...", 0, -1, -1, 0},
    {"fd://0", 0, FY_EP_FD, 0, "", 0, 0, 0, 0},
    {"fd://3,4", 0, FY_EP_FD, 0, "", 0, 3, 4, 0},
    {"fd://2147483647,7", 0, FY_EP_FD, 0, "", 0, 2147483647, 7, 0},
};

struct bad_case {
    const char *url;
    unsigned flags;
    int rc;
};

static const struct bad_case bad_cases[] = {
    /* scheme */
    {"", 0, FERRY_EINVAL},
    {"tcp:/127.0.0.1:1", 0, FERRY_EINVAL},
    {"127.0.0.1:5555", 0, FERRY_EINVAL},
    {"://x", 0, FERRY_EINVAL},
    {"udp://127.0.0.1:1", 0, FERRY_EPROTONOSUPPORT},
    {"TCP://127.0.0.1:1", 0, FERRY_EPROTONOSUPPORT},
    {"pgm://eth0;239.0.0.1:1", 0, FERRY_EPROTONOSUPPORT},
    {"tcpx://a:1", 0, FERRY_EPROTONOSUPPORT},
    {"tc://a:1", 0, FERRY_EPROTONOSUPPORT},
    /* tcp */
    {"tcp://", 0, FERRY_EINVAL},
    {"tcp://127.0.0.1", 0, FERRY_EINVAL},
    {"tcp://127.0.0.1:", 0, FERRY_EINVAL},
    {"tcp://:5555", 0, FERRY_EINVAL},
    {"tcp://127.0.0.1:0", 0, FERRY_EINVAL},
    {"tcp://127.0.0.1:65536", 0, FERRY_EINVAL},
    {"tcp://127.0.0.1:99999999999999999999", 0, FERRY_EINVAL},
    {"tcp://127.0.0.1:-1", 0, FERRY_EINVAL},
    {"tcp://127.0.0.1:+80", 0, FERRY_EINVAL},
    {"tcp://127.0.0.1:80 ", 0, FERRY_EINVAL},
    {"tcp://127.0.0.1:8a", 0, FERRY_EINVAL},
    {"tcp://127.0.0.1:**", FY_EP_BIND, FERRY_EINVAL},
    {"tcp://*:5555", 0, FERRY_EINVAL},
    {"tcp://127.0.0.1:*", 0, FERRY_EINVAL},
    {"tcp://**:1", FY_EP_BIND, FERRY_EINVAL},
    {"tcp://256.0.0.1:1", 0, FERRY_EINVAL},
    {"tcp://1.2.3:1", 0, FERRY_EINVAL},
    {"tcp://1.2.3.4.5:1", 0, FERRY_EINVAL},
    {"tcp://01.2.3.4:1", 0, FERRY_EINVAL},
    {"tcp://::1:5555", 0, FERRY_EINVAL},
    {"tcp://[::1]", 0, FERRY_EINVAL},
    {"tcp://[::1]:", 0, FERRY_EINVAL},
    {"tcp://[::1]5555", 0, FERRY_EINVAL},
    {"tcp://[::1:5555", 0, FERRY_EINVAL},
    {"tcp://[]:5555", 0, FERRY_EINVAL},
    {"tcp://[1.2.3.4]:5555", 0, FERRY_EINVAL},
    {"tcp://[:::1]:5555", 0, FERRY_EINVAL},
    {"tcp://[fe80::1%]:5", 0, FERRY_EINVAL},
    {"tcp://[fe80::1%eth0/x]:5", 0, FERRY_EINVAL},
    {"tcp://[fe80::1%abcdefghijklmnop]:5", 0, FERRY_EINVAL},
    {"tcp://host name:1", 0, FERRY_EINVAL},
    {"tcp://-host:1", 0, FERRY_EINVAL},
    {"tcp://host-:1", 0, FERRY_EINVAL},
    {"tcp://a..b:1", 0, FERRY_EINVAL},
    {".tcp://a:1", 0, FERRY_EPROTONOSUPPORT},
    {"tcp://.a:1", 0, FERRY_EINVAL},
    {"tcp://a%b:1", 0, FERRY_EINVAL},
    {"tcp://eth0;127.0.0.1:5555", 0, FERRY_EINVAL},
    {"tcp://127.0.0.1:5555/resource", 0, FERRY_EINVAL},
    {"tcp://1.2.3.999:1", 0, FERRY_EINVAL},
    /* ipc */
    {"ipc://", 0, FERRY_EINVAL},
    {"ipc://@", 0, FERRY_EINVAL},
    {"ipc://*", FY_EP_BIND, FERRY_EINVAL},
    /* shm */
    {"shm://", 0, FERRY_EINVAL},
    {"shm://a/b", 0, FERRY_EINVAL},
    {"shm://a b", 0, FERRY_EINVAL},
    {"shm://.", 0, FERRY_EINVAL},
    {"shm://..", 0, FERRY_EINVAL},
    {"shm://caf\xc3\xa9", 0, FERRY_EINVAL},
    /* inproc */
    {"inproc://", 0, FERRY_EINVAL},
    /* fd */
    {"fd://", 0, FERRY_EINVAL},
    {"fd://-1", 0, FERRY_EINVAL},
    {"fd://3,", 0, FERRY_EINVAL},
    {"fd://,3", 0, FERRY_EINVAL},
    {"fd://3,4,5", 0, FERRY_EINVAL},
    {"fd://x", 0, FERRY_EINVAL},
    {"fd://2147483648", 0, FERRY_EINVAL},
    {"fd:// 3", 0, FERRY_EINVAL},
};

static void test_ok_table(void)
{
    for (size_t i = 0; i < sizeof ok_cases / sizeof ok_cases[0]; i++) {
        const struct ok_case *c = &ok_cases[i];
        fy_endpoint ep;
        const char *why = NULL;
        int rc = fy_endpoint_parse(c->url, c->flags, &ep, &why);
        if (rc != 0) {
            fprintf(stderr, "%s: rc %d (%s): %s\n", c->url, rc, tu_errname(rc), why);
            exit(1);
        }
        CHECK(why != NULL && strcmp(why, "ok") == 0);
        CHECK(ep.scheme == c->scheme);
        if (c->scheme == FY_EP_TCP) {
            CHECK(ep.host_kind == c->host_kind);
            CHECK(strcmp(ep.host, c->host_or_name) == 0);
            if (c->port < 0)
                CHECK(ep.port_any == 1 && ep.port == 0);
            else
                CHECK(ep.port_any == 0 && ep.port == c->port);
        } else if (c->scheme == FY_EP_FD) {
            CHECK(ep.rfd == c->rfd && ep.wfd == c->wfd);
        } else {
            CHECK(strcmp(ep.name, c->host_or_name) == 0);
            CHECK(ep.name_len == strlen(c->host_or_name));
            CHECK(ep.abstract == c->abstract);
        }
        /* formatting and re-parsing gives the same endpoint */
        char buf[FY_EP_URL_MAX + 1];
        int n = fy_endpoint_format(&ep, buf, sizeof buf);
        CHECK(n > 0 && (size_t)n == strlen(buf));
        fy_endpoint again;
        CHECK_OK(fy_endpoint_parse(buf, c->flags, &again, NULL));
        CHECK(memcmp(&ep, &again, sizeof ep) == 0);
        CHECK_RC(fy_endpoint_format(&ep, buf, (size_t)n), FERRY_EMSGSIZE);
    }
}

static void test_bad_table(void)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *c = &bad_cases[i];
        fy_endpoint ep;
        const char *why = NULL;
        int rc = fy_endpoint_parse(c->url, c->flags, &ep, &why);
        if (rc != c->rc) {
            fprintf(stderr, "'%s': rc %d (%s), expected %s (reason: %s)\n", c->url, rc,
                    tu_errname(rc), tu_errname(c->rc), why ? why : "(none)");
            exit(1);
        }
        CHECK(why != NULL && strlen(why) > 5 && strcmp(why, "ok") != 0);
    }
    /* NULL arguments */
    fy_endpoint ep;
    const char *why = NULL;
    CHECK_RC(fy_endpoint_parse(NULL, 0, &ep, &why), FERRY_EINVAL);
    CHECK(why != NULL);
    CHECK_RC(fy_endpoint_parse("tcp://a:1", 0, NULL, NULL), FERRY_EINVAL);
    /* a parse failure leaves no stale data behind */
    CHECK_RC(fy_endpoint_parse("tcp://127.0.0.1:0", 0, &ep, NULL), FERRY_EINVAL);
    CHECK(ep.host[0] == '\0' && ep.port == 0);
    char buf[64];
    CHECK_RC(fy_endpoint_format(&ep, buf, sizeof buf), FERRY_EINVAL);
}

/* Length limits exactly at and just past each boundary. */
static void test_lengths(void)
{
    char url[2200];
    fy_endpoint ep;
    const char *why;

    /* ipc path: 107 bytes fit sun_path with its NUL, 108 do not */
    memset(url, 0, sizeof url);
    strcpy(url, "ipc://");
    memset(url + 6, 'p', 107);
    CHECK_OK(fy_endpoint_parse(url, 0, &ep, &why));
    CHECK(ep.name_len == 107);
    url[6 + 107] = 'p';
    CHECK_RC(fy_endpoint_parse(url, 0, &ep, &why), FERRY_ENAMETOOLONG);
    CHECK(strstr(why, "107") != NULL);
    /* abstract: '@' + 107 bytes fit (no NUL needed), 108 do not */
    memset(url, 0, sizeof url);
    strcpy(url, "ipc://@");
    memset(url + 7, 'a', 107);
    CHECK_OK(fy_endpoint_parse(url, 0, &ep, &why));
    CHECK(ep.abstract && ep.name_len == 107);
    url[7 + 107] = 'a';
    CHECK_RC(fy_endpoint_parse(url, 0, &ep, &why), FERRY_ENAMETOOLONG);
    /* shm: 64 */
    memset(url, 0, sizeof url);
    strcpy(url, "shm://");
    memset(url + 6, 's', 64);
    CHECK_OK(fy_endpoint_parse(url, 0, &ep, &why));
    url[6 + 64] = 's';
    CHECK_RC(fy_endpoint_parse(url, 0, &ep, &why), FERRY_ENAMETOOLONG);
    /* inproc: 255 */
    memset(url, 0, sizeof url);
    strcpy(url, "inproc://");
    memset(url + 9, 'i', 255);
    CHECK_OK(fy_endpoint_parse(url, 0, &ep, &why));
    url[9 + 255] = 'i';
    CHECK_RC(fy_endpoint_parse(url, 0, &ep, &why), FERRY_ENAMETOOLONG);
    /* DNS labels: 63 ok, 64 not; names up to 253 */
    memset(url, 0, sizeof url);
    strcpy(url, "tcp://");
    memset(url + 6, 'h', 63);
    strcpy(url + 6 + 63, ".x:1");
    CHECK_OK(fy_endpoint_parse(url, 0, &ep, &why));
    memset(url, 0, sizeof url);
    strcpy(url, "tcp://");
    memset(url + 6, 'h', 64);
    strcpy(url + 6 + 64, ".x:1");
    CHECK_RC(fy_endpoint_parse(url, 0, &ep, &why), FERRY_EINVAL);
    memset(url, 0, sizeof url);
    strcpy(url, "tcp://");
    for (int i = 0; i < 4; i++) { /* 4 * 63 + 3 dots = 255 > 253 */
        memset(url + strlen(url), 'n', 63);
        if (i < 3)
            strcat(url, ".");
    }
    strcat(url, ":1");
    CHECK_RC(fy_endpoint_parse(url, 0, &ep, &why), FERRY_ENAMETOOLONG);
    /* whole URL */
    memset(url, 0, sizeof url);
    strcpy(url, "inproc://");
    memset(url + 9, 'i', 2000);
    CHECK_RC(fy_endpoint_parse(url, 0, &ep, &why), FERRY_ENAMETOOLONG);
}

static void test_resolve(void)
{
    fy_endpoint ep;
    struct sockaddr_storage ss;
    socklen_t len;

    CHECK_OK(fy_endpoint_parse("tcp://127.0.0.1:5555", 0, &ep, NULL));
    CHECK_OK(fy_endpoint_resolve(&ep, 0, &ss, &len));
    const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
    CHECK(in->sin_family == AF_INET && ntohs(in->sin_port) == 5555 &&
          in->sin_addr.s_addr == htonl(INADDR_LOOPBACK) && len == sizeof *in);

    CHECK_OK(fy_endpoint_parse("tcp://*:*", FY_EP_BIND, &ep, NULL));
    CHECK_OK(fy_endpoint_resolve(&ep, 1, &ss, &len));
    CHECK(in->sin_family == AF_INET && in->sin_port == 0 && in->sin_addr.s_addr == INADDR_ANY);
    CHECK_RC(fy_endpoint_resolve(&ep, 0, &ss, &len), FERRY_EINVAL);

    CHECK_OK(fy_endpoint_parse("tcp://[::1]:6000", 0, &ep, NULL));
    CHECK_OK(fy_endpoint_resolve(&ep, 0, &ss, &len));
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
    CHECK(in6->sin6_family == AF_INET6 && ntohs(in6->sin6_port) == 6000 &&
          IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));

    CHECK_OK(fy_endpoint_parse("tcp://localhost:7000", 0, &ep, NULL));
    int rc = fy_endpoint_resolve(&ep, 0, &ss, &len);
    CHECK(rc == 0 || rc == FERRY_EAGAIN); /* a VM without a resolver may not know localhost */
    if (rc == 0)
        CHECK((ss.ss_family == AF_INET || ss.ss_family == AF_INET6) && ntohs(in->sin_port) == 7000);

    CHECK_OK(fy_endpoint_parse("ipc:///tmp/x.sock", 0, &ep, NULL));
    CHECK_OK(fy_endpoint_resolve(&ep, 0, &ss, &len));
    const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
    CHECK(un->sun_family == AF_UNIX && strcmp(un->sun_path, "/tmp/x.sock") == 0);
    CHECK(len == offsetof(struct sockaddr_un, sun_path) + strlen("/tmp/x.sock") + 1);

    CHECK_OK(fy_endpoint_parse("ipc://@abs", 0, &ep, NULL));
    CHECK_OK(fy_endpoint_resolve(&ep, 0, &ss, &len));
    CHECK(un->sun_path[0] == 0 && memcmp(un->sun_path + 1, "abs", 3) == 0);
    CHECK(len == offsetof(struct sockaddr_un, sun_path) + 4);

    /* an IPv6 zone resolves to the interface's scope id */
    CHECK_OK(fy_endpoint_parse("tcp://[fe80::1%lo]:5", 0, &ep, NULL));
    CHECK_OK(fy_endpoint_resolve(&ep, 0, &ss, &len));
    CHECK(in6->sin6_family == AF_INET6 && in6->sin6_scope_id == if_nametoindex("lo"));

    /* bind to an interface by name (libzmq's tcp://eth0:port); the loopback always exists */
    CHECK_OK(fy_endpoint_parse("tcp://lo:5001", FY_EP_BIND, &ep, NULL));
    CHECK(ep.host_kind == FY_HOST_NAME);
    CHECK_OK(fy_endpoint_resolve(&ep, 1, &ss, &len));
    CHECK(in->sin_family == AF_INET && in->sin_addr.s_addr == htonl(INADDR_LOOPBACK) &&
          ntohs(in->sin_port) == 5001);

    CHECK_OK(fy_endpoint_parse("shm://x", 0, &ep, NULL));
    CHECK_RC(fy_endpoint_resolve(&ep, 0, &ss, &len), FERRY_EINVAL);
    CHECK_RC(fy_endpoint_resolve(NULL, 0, &ss, &len), FERRY_EINVAL);
}

int main(void)
{
    tu_deadline(60);
    test_ok_table();
    test_bad_table();
    test_lengths();
    test_resolve();
    printf("test_wire_endpoint: ok (%zu valid, %zu invalid cases)\n",
           sizeof ok_cases / sizeof ok_cases[0], sizeof bad_cases / sizeof bad_cases[0]);
    return 0;
}
