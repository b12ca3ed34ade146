/*
 * test_transport_disconnect.c - ferry_socket_disconnect on inproc:// undoes exactly one connect:
 * a made link goes (both ends see the peer gone), a connect still waiting for its bind is
 * forgotten (the later bind makes no link), other links of the socket stay, and the URL can be
 * connected again. Unknown URLs, and URLs the socket bound rather than connected, are
 * FERRY_ENOENT.
 */
#include "testutil.h"

#include <ferry/ferry.h>

#include <string.h>

static uint32_t peers(ferry_socket *s)
{
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(s, &st));
    return (uint32_t)st.peers;
}

static void url_of(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "inproc://%s", tu_unique(tag));
}

int main(void)
{
    tu_deadline(60);
    char a[128], b[128], c[128];
    url_of(a, sizeof a, "dis-a");
    url_of(b, sizeof b, "dis-b");
    url_of(c, sizeof c, "dis-c");

    ferry_socket *push = tu_open_sock(FERRY_PUSH);
    ferry_socket *pa = tu_open_sock(FERRY_PULL);
    ferry_socket *pb = tu_open_sock(FERRY_PULL);
    CHECK_OK(ferry_socket_bind(pa, a));
    CHECK_OK(ferry_socket_bind(pb, b));
    CHECK_OK(ferry_socket_connect(push, a));
    CHECK_OK(ferry_socket_connect(push, b));
    tu_wait_peers(push, 2);
    tu_wait_peers(pa, 1);
    tu_wait_peers(pb, 1);

    /* Bad requests first: nothing changes. */
    CHECK_RC(ferry_socket_disconnect(push, c), FERRY_ENOENT);
    CHECK_RC(ferry_socket_disconnect(pa, a), FERRY_ENOENT); /* pa bound a, it did not connect */
    CHECK_RC(ferry_socket_disconnect(push, NULL), FERRY_EINVAL);
    CHECK(peers(push) == 2);

    /* Drop the link to a: both ends see it, b keeps working and gets everything. */
    CHECK_OK(ferry_socket_disconnect(push, a));
    tu_wait_peers(push, 1);
    tu_wait_peers(pa, 0);
    CHECK_RC(ferry_socket_disconnect(push, a), FERRY_ENOENT);
    for (int i = 0; i < 10; i++)
        tu_send_str(push, "to-b", 0);
    for (int i = 0; i < 10; i++)
        tu_recv_str(pb, "to-b", false);
    char buf[16];
    CHECK_RC(ferry_socket_recv(pa, buf, sizeof buf, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);

    /* Connect to a again: a fresh link. */
    CHECK_OK(ferry_socket_connect(push, a));
    tu_wait_peers(pa, 1);
    tu_wait_peers(push, 2);

    /* A connect waiting for its bind is forgotten: the later bind makes no link. */
    CHECK_OK(ferry_socket_connect(push, c));
    CHECK_OK(ferry_socket_disconnect(push, c));
    ferry_socket *pc = tu_open_sock(FERRY_PULL);
    CHECK_OK(ferry_socket_bind(pc, c)); /* an inproc link is made inside bind, if any */
    CHECK(peers(pc) == 0);
    CHECK(peers(push) == 2);

    /* Everything sent after the changes reaches the two remaining peers, round-robin. */
    for (int i = 0; i < 10; i++)
        tu_send_str(push, "rr", 0);
    for (int i = 0; i < 5; i++) {
        tu_recv_str(pa, "rr", false);
        tu_recv_str(pb, "rr", false);
    }

    ferry_socket_close(pc);
    ferry_socket_close(pb);
    ferry_socket_close(pa);
    ferry_socket_close(push);
    fprintf(stderr, "test_transport_disconnect: ok\n");
    return 0;
}
