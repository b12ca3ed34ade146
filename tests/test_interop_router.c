/*
 * test_interop_router.c - DEALER-ROUTER, DEALER-DEALER and ROUTER-ROUTER
 * between ferry and the real libzmq 4.3.4: ferry on either side, either side
 * binding, tcp:// and ipc://, the standard message set; routing ids (explicit
 * and generated), ROUTER-ROUTER with explicit identities, and a ferry DEALER
 * reaching a libzmq ROUTER again after that ROUTER restarts.
 */
#include "interop_patterns.h"

static void expect_routed(ip_sock *router, const ip_msg *body, const char *want_id,
                          unsigned char *id_out, size_t *id_len)
{
    ip_msg got = {0};
    ip_recv_must(router, &got, "message at ROUTER");
    CHECK(got.n == body->n + 1);
    unsigned char id[256];
    size_t idlen;
    ip_msg_pop_front(&got, id, sizeof id, &idlen);
    if (want_id)
        CHECK(idlen == strlen(want_id) && memcmp(id, want_id, idlen) == 0);
    else
        CHECK(idlen == 5 && id[0] == 0);
    if (!ip_msg_eq(&got, body)) {
        ip_msg_print("want", body);
        ip_msg_print("got ", &got);
        exit(1);
    }
    memcpy(id_out, id, idlen);
    *id_len = idlen;
    ip_msg_clear(&got);
}

static void case_dealer_router(const ip_case *c)
{
    const char *did = c->a_binds ? NULL : "dealer-A";
    ip_sock a, b;
    ip_case_open(c, &a, &b, did, NULL);
    for (int i = 0; i < IP_ROUNDS; i++) {
        ip_msg m;
        ip_msg_set(&m, i % IP_SET_SIZE, IP_TAG(i, "x"));
        ip_send(&a, &m);
        unsigned char id[256];
        size_t idlen;
        expect_routed(&b, &m, did, id, &idlen);
        ip_msg rep;
        ip_msg_set(&rep, IP_SET_SIZE - 1 - i % IP_SET_SIZE, IP_TAG(i, "y"));
        ip_msg wire = {0};
        for (int k = 0; k < rep.n; k++)
            ip_msg_add(&wire, rep.data[k], rep.len[k]);
        ip_msg_push_front(&wire, id, idlen);
        ip_send(&b, &wire);
        ip_expect(&a, &rep, "reply at DEALER");
        ip_msg_clear(&m);
        ip_msg_clear(&rep);
        ip_msg_clear(&wire);
    }
    /* A message to an unknown routing id is dropped silently (libzmq default),
     * and the link keeps working. */
    ip_msg wire = {0}, m = {0};
    ip_msg_add_str(&wire, "no-such-peer");
    ip_msg_add_str(&wire, "lost");
    ip_send(&b, &wire);
    ip_msg_add_str(&m, "still-alive");
    ip_send(&a, &m);
    unsigned char id[256];
    size_t idlen;
    expect_routed(&b, &m, did, id, &idlen);
    ip_msg_clear(&wire);
    ip_msg_add(&wire, id, idlen);
    ip_msg_add_str(&wire, "last");
    ip_send(&b, &wire);
    ip_msg_clear(&m);
    ip_msg_add_str(&m, "last");
    ip_expect(&a, &m, "reply after a dropped message");
    ip_msg_clear(&wire);
    ip_msg_clear(&m);
    ip_close(&a);
    ip_close(&b);
}

static void case_dealer_dealer(const ip_case *c)
{
    ip_sock a, b;
    ip_case_open(c, &a, &b, NULL, NULL);
    for (int i = 0; i < IP_SET_SIZE; i++) {
        ip_msg m, r;
        ip_msg_set(&m, i % IP_SET_SIZE, "");
        ip_msg_set(&r, (i + 4) % IP_SET_SIZE, "");
        ip_send(&a, &m);
        ip_expect(&b, &m, "message at DEALER b");
        ip_send(&b, &r);
        ip_expect(&a, &r, "message at DEALER a");
        ip_msg_clear(&m);
        ip_msg_clear(&r);
    }
    ip_close(&a);
    ip_close(&b);
}

static void case_router_router(const ip_case *c)
{
    ip_sock a, b;
    ip_case_open(c, &a, &b, "router-a", "router-b");
    ip_sock *conn = c->a_binds ? &b : &a, *bound = c->a_binds ? &a : &b;
    const char *conn_id = c->a_binds ? "router-b" : "router-a";
    const char *bound_id = c->a_binds ? "router-a" : "router-b";
    /* The connecting side learns the bound side's id from the handshake; until
     * then its messages to that id are dropped, so probe until one arrives. */
    ip_msg probe = {0}, got = {0}, want = {0};
    ip_msg_add_str(&probe, bound_id);
    ip_msg_add_str(&probe, "hello");
    ip_msg_add_str(&want, conn_id);
    ip_msg_add_str(&want, "hello");
    uint64_t end = tu_now_ns() + (uint64_t)IP_TIMEOUT_MS * 2000000u;
    for (;;) {
        ip_send(conn, &probe);
        if (ip_recv(bound, &got, 20) == 0)
            break;
        CHECK(tu_now_ns() < end);
    }
    CHECK(ip_msg_eq(&got, &want));
    /* Drain further probes that were in flight. */
    while (ip_recv(bound, &got, 50) == 0)
        CHECK(ip_msg_eq(&got, &want));
    for (int i = 0; i < IP_SET_SIZE; i++) {
        ip_msg m;
        ip_msg_set(&m, i % IP_SET_SIZE, "");
        ip_msg_push_front(&m, conn_id, strlen(conn_id));
        ip_send(bound, &m);
        ip_msg_pop_front(&m, NULL, 0, NULL);
        ip_msg_push_front(&m, bound_id, strlen(bound_id));
        ip_expect(conn, &m, "at connecting ROUTER");
        ip_msg_pop_front(&m, NULL, 0, NULL);
        ip_msg_push_front(&m, bound_id, strlen(bound_id));
        ip_send(conn, &m);
        ip_msg_pop_front(&m, NULL, 0, NULL);
        ip_msg_push_front(&m, conn_id, strlen(conn_id));
        ip_expect(bound, &m, "at bound ROUTER");
        ip_msg_clear(&m);
    }
    ip_msg_clear(&probe);
    ip_msg_clear(&got);
    ip_msg_clear(&want);
    ip_close(&a);
    ip_close(&b);
}

/* A ferry DEALER whose libzmq ROUTER restarts on the same endpoint reaches the
 * new one. */
static void case_router_restart(const char *transport)
{
    fprintf(stderr, "restart: DEALER(ferry) - ROUTER(libzmq) over %s\n", transport);
    ip_sock d, r;
    ip_open(&d, false, FERRY_DEALER);
    ip_set_id(&d, "dealer-r");
    ip_open(&r, true, FERRY_ROUTER);
    ip_bind(&r, transport);
    char url[512];
    snprintf(url, sizeof url, "%s", r.ep);
    ip_connect(&d, url);
    ip_msg m = {0};
    ip_msg_add_str(&m, "one");
    ip_send(&d, &m);
    unsigned char id[256];
    size_t idlen;
    expect_routed(&r, &m, "dealer-r", id, &idlen);
    ip_close(&r);
    ip_open(&r, true, FERRY_ROUTER);
    ip_bind_url(&r, url);
    /* Messages sent while the link is down may be lost with it: probe until one
     * arrives. */
    ip_msg_clear(&m);
    ip_msg_add_str(&m, "two");
    ip_msg got = {0};
    uint64_t end = tu_now_ns() + (uint64_t)IP_TIMEOUT_MS * 2000000u;
    for (;;) {
        ip_send(&d, &m);
        if (ip_recv(&r, &got, 20) == 0)
            break;
        CHECK(tu_now_ns() < end);
    }
    CHECK(got.n == 2 && ip_msg_is(&got, "dealer-r") && got.len[1] == 3);
    ip_msg reply = {0};
    ip_msg_add_str(&reply, "dealer-r");
    ip_msg_add_str(&reply, "back");
    ip_send(&r, &reply);
    ip_msg_clear(&m);
    ip_msg_add_str(&m, "back");
    ip_expect(&d, &m, "reply after restart");
    ip_msg_clear(&m);
    ip_msg_clear(&got);
    ip_msg_clear(&reply);
    ip_close(&d);
    ip_close(&r);
}

int main(void)
{
    tu_deadline(100);
    int n = 0;
    n += ip_run_pair(FERRY_DEALER, FERRY_ROUTER, case_dealer_router);
    n += ip_run_pair(FERRY_DEALER, FERRY_DEALER, case_dealer_dealer);
    n += ip_run_pair(FERRY_ROUTER, FERRY_ROUTER, case_router_router);
    case_router_restart("tcp");
    case_router_restart("ipc");
    fprintf(stderr, "%d router/dealer interop cases passed\n", n + 2);
    return 0;
}
