/*
 * test_interop_reqrep.c - REQ-REP, REQ-ROUTER and DEALER-REP between ferry and
 * the real libzmq 4.3.4: ferry on either side, either side binding, tcp:// and
 * ipc://, the standard message set; the REQ envelope (empty delimiter) seen raw
 * by a ROUTER/DEALER, routing ids (explicit Identity and libzmq-style generated
 * 0x00+uint32), and a REQ recovering after its libzmq REP restarts.
 */
#include "interop_patterns.h"

static void case_req_rep(const ip_case *c)
{
    ip_sock a, b;
    ip_case_open(c, &a, &b, NULL, NULL);
    for (int i = 0; i < IP_ROUNDS; i++) {
        ip_msg req, rep;
        ip_msg_set(&req, i % IP_SET_SIZE, IP_TAG(i, "q"));
        ip_msg_set(&rep, (i + 1) % IP_SET_SIZE, IP_TAG(i, "r"));
        ip_send(&a, &req);
        ip_expect(&b, &req, "request at REP");
        ip_send(&b, &rep);
        ip_expect(&a, &rep, "reply at REQ");
        ip_msg_clear(&req);
        ip_msg_clear(&rep);
    }
    ip_close(&a);
    ip_close(&b);
}

static void case_req_router(const ip_case *c)
{
    /* Half the cases give the REQ an explicit routing id; the others get a
     * generated one. */
    const char *rid = c->a_binds ? "req-identity" : NULL;
    ip_sock a, b;
    ip_case_open(c, &a, &b, rid, NULL);
    unsigned char first_id[256];
    size_t first_len = 0;
    for (int i = 0; i < IP_ROUNDS; i++) {
        ip_msg req, got = {0};
        ip_msg_set(&req, i % IP_SET_SIZE, IP_TAG(i, "q"));
        ip_send(&a, &req);
        ip_recv_must(&b, &got, "request at ROUTER");
        /* [routing id][empty delimiter][request frames...] */
        CHECK(got.n == req.n + 2);
        unsigned char id[256];
        size_t idlen;
        ip_msg_pop_front(&got, id, sizeof id, &idlen);
        if (rid) {
            CHECK(idlen == strlen(rid) && memcmp(id, rid, idlen) == 0);
        } else {
            CHECK(idlen == 5 && id[0] == 0);
        }
        if (i == 0) {
            memcpy(first_id, id, idlen);
            first_len = idlen;
        } else {
            CHECK(idlen == first_len && memcmp(id, first_id, idlen) == 0);
        }
        CHECK(got.len[0] == 0);
        ip_msg_pop_front(&got, NULL, 0, NULL);
        CHECK(ip_msg_eq(&got, &req));
        /* Reply: [id][""][frames]. */
        ip_msg rep;
        ip_msg_set(&rep, (i + 3) % IP_SET_SIZE, IP_TAG(i, "r"));
        ip_msg wire = {0};
        for (int k = 0; k < rep.n; k++)
            ip_msg_add(&wire, rep.data[k], rep.len[k]);
        ip_msg_push_front(&wire, "", 0);
        ip_msg_push_front(&wire, id, idlen);
        ip_send(&b, &wire);
        ip_expect(&a, &rep, "reply at REQ");
        ip_msg_clear(&req);
        ip_msg_clear(&got);
        ip_msg_clear(&rep);
        ip_msg_clear(&wire);
    }
    ip_close(&a);
    ip_close(&b);
}

static void case_dealer_rep(const ip_case *c)
{
    ip_sock a, b;
    ip_case_open(c, &a, &b, NULL, NULL);
    for (int i = 0; i < IP_ROUNDS; i++) {
        ip_msg body, wire = {0};
        ip_msg_set(&body, i % IP_SET_SIZE, IP_TAG(i, "d"));
        for (int k = 0; k < body.n; k++)
            ip_msg_add(&wire, body.data[k], body.len[k]);
        ip_msg_push_front(&wire, "", 0);
        ip_send(&a, &wire);
        ip_expect(&b, &body, "request at REP (envelope stripped)");
        ip_msg rep;
        ip_msg_set(&rep, (i + 2) % IP_SET_SIZE, IP_TAG(i, "r"));
        ip_send(&b, &rep);
        ip_msg_push_front(&rep, "", 0);
        ip_expect(&a, &rep, "reply at DEALER (with delimiter)");
        ip_msg_clear(&body);
        ip_msg_clear(&wire);
        ip_msg_clear(&rep);
    }
    /* A longer envelope (two hops) comes back intact. */
    ip_msg wire = {0}, body = {0};
    ip_msg_add_str(&wire, "hop1");
    ip_msg_add_str(&wire, "hop2");
    ip_msg_add(&wire, "", 0);
    ip_msg_add_str(&wire, "payload");
    ip_msg_add_str(&body, "payload");
    ip_send(&a, &wire);
    ip_expect(&b, &body, "enveloped request at REP");
    ip_msg_clear(&body);
    ip_msg_add_str(&body, "answer");
    ip_send(&b, &body);
    ip_msg_clear(&wire);
    ip_msg_add_str(&wire, "hop1");
    ip_msg_add_str(&wire, "hop2");
    ip_msg_add(&wire, "", 0);
    ip_msg_add_str(&wire, "answer");
    ip_expect(&a, &wire, "reply with the full envelope");
    ip_msg_clear(&wire);
    ip_msg_clear(&body);
    ip_close(&a);
    ip_close(&b);
}

/* A ferry REQ connected to a libzmq REP which answers once, restarts on the
 * same endpoint and answers again: the REQ must deliver its next request to the
 * new incarnation. */
static void case_rep_restart(const char *transport)
{
    fprintf(stderr, "restart: REQ(ferry) - REP(libzmq) over %s\n", transport);
    ip_sock req, rep;
    ip_open(&req, false, FERRY_REQ);
    ip_open(&rep, true, FERRY_REP);
    ip_bind(&rep, transport);
    char url[512];
    snprintf(url, sizeof url, "%s", rep.ep);
    ip_connect(&req, url);
    ip_msg q = {0}, r = {0};
    ip_msg_add_str(&q, "before");
    ip_msg_add_str(&r, "ok-before");
    ip_send(&req, &q);
    ip_expect(&rep, &q, "first request");
    ip_send(&rep, &r);
    ip_expect(&req, &r, "first reply");
    ip_close(&rep);
    ip_open(&rep, true, FERRY_REP);
    ip_bind_url(&rep, url);
    ip_msg_clear(&q);
    ip_msg_clear(&r);
    ip_msg_add_str(&q, "after");
    ip_msg_add_str(&r, "ok-after");
    /* The request may leave on the old connection before its death is noticed; ferry's REQ then
     * reports FERRY_EPIPE from recv (where libzmq's would wait forever) and may send again. */
    ip_send(&req, &q);
    ip_msg got = {0};
    uint64_t end = tu_now_ns() + (uint64_t)IP_TIMEOUT_MS * 2000000u;
    int resent = 0;
    while (ip_recv(&rep, &got, 20) != 0) {
        CHECK(tu_now_ns() < end);
        char buf[16];
        ssize_t n = ferry_socket_recv(req.f, buf, sizeof buf, FERRY_DONTWAIT, NULL);
        if (n == FERRY_EPIPE) {
            ip_send(&req, &q);
            resent++;
        } else {
            CHECK(n == FERRY_EAGAIN);
        }
    }
    CHECK(ip_msg_eq(&got, &q));
    ip_msg_clear(&got);
    if (resent)
        fprintf(stderr, "  request resent %d time(s) after FERRY_EPIPE\n", resent);
    ip_send(&rep, &r);
    ip_expect(&req, &r, "reply after restart");
    ip_msg_clear(&q);
    ip_msg_clear(&r);
    ip_close(&req);
    ip_close(&rep);
}

int main(void)
{
    tu_deadline(100);
    int n = 0;
    n += ip_run_pair(FERRY_REQ, FERRY_REP, case_req_rep);
    n += ip_run_pair(FERRY_REQ, FERRY_ROUTER, case_req_router);
    n += ip_run_pair(FERRY_DEALER, FERRY_REP, case_dealer_rep);
    case_rep_restart("tcp");
    case_rep_restart("ipc");
    fprintf(stderr, "%d req/rep interop cases passed\n", n + 2);
    return 0;
}
