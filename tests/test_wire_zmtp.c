/*
 * test_wire_zmtp.c - the ZMTP codec against hand-written bytes from RFC 23/37: every encoder is
 * checked byte for byte, every decoder round-trips and rejects each class of malformed input, and
 * the greeting is fed split at every offset.
 */
#include "testutil.h"

#include "wire/zmtp.h"

#include <string.h>

#define BYTES(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static void check_bytes(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len,
                        int line)
{
    if (got_len != want_len || memcmp(got, want, want_len) != 0) {
        fprintf(stderr, "line %d: bytes differ (got %zu, want %zu)\n got :", line, got_len,
                want_len);
        for (size_t i = 0; i < got_len; i++)
            fprintf(stderr, " %02x", got[i]);
        fprintf(stderr, "\n want:");
        for (size_t i = 0; i < want_len; i++)
            fprintf(stderr, " %02x", want[i]);
        fprintf(stderr, "\n");
        exit(1);
    }
}
#define CHECK_BYTES(got, got_len, ...) check_bytes(got, got_len, BYTES(__VA_ARGS__), __LINE__)

/* ---------------------------------------------------------------------------------------- */

static void test_greeting_encode(void)
{
    uint8_t g[FY_ZMTP_GREETING_SIZE];
    uint8_t want[FY_ZMTP_GREETING_SIZE] = {0xFF, 0,    0, 0, 0,   0,   0,   0,
                                           0,    0x7F, 3, 1, 'N', 'U', 'L', 'L'};
    CHECK_RC(fy_zmtp_greeting_encode(g, 1, "NULL", 0), FY_ZMTP_GREETING_SIZE);
    check_bytes(g, sizeof g, want, sizeof want, __LINE__);
    /* 3.0 greeting */
    want[11] = 0;
    CHECK_RC(fy_zmtp_greeting_encode(g, 0, "NULL", 0), FY_ZMTP_GREETING_SIZE);
    check_bytes(g, sizeof g, want, sizeof want, __LINE__);
    /* as-server and a 20-char mechanism */
    CHECK_RC(fy_zmtp_greeting_encode(g, 1, "ABCDEFGHIJ0123456789", 1), 64);
    CHECK(memcmp(g + 12, "ABCDEFGHIJ0123456789", 20) == 0 && g[32] == 1);
    /* bad arguments */
    CHECK_RC(fy_zmtp_greeting_encode(g, 1, "", 0), FERRY_EINVAL);
    CHECK_RC(fy_zmtp_greeting_encode(g, 1, "ABCDEFGHIJ0123456789X", 0), FERRY_EINVAL);
    CHECK_RC(fy_zmtp_greeting_encode(g, 1, "null", 0), FERRY_EINVAL);
    CHECK_RC(fy_zmtp_greeting_encode(g, 1, NULL, 0), FERRY_EINVAL);
    CHECK_RC(fy_zmtp_greeting_encode(g, 1, "NULL", 2), FERRY_EINVAL);
}

static void test_greeting_decode(void)
{
    uint8_t g[FY_ZMTP_GREETING_SIZE];
    fy_zmtp_greeting out;
    CHECK_RC(fy_zmtp_greeting_encode(g, 1, "NULL", 0), 64);
    /* every prefix is "valid so far", the whole is complete */
    for (size_t i = 0; i < 64; i++)
        CHECK_RC(fy_zmtp_greeting_check(g, i, &out), 0);
    CHECK_RC(fy_zmtp_greeting_check(g, 64, &out), 64);
    CHECK(out.major == 3 && out.minor == 1 && strcmp(out.mechanism, "NULL") == 0);
    CHECK_RC(fy_zmtp_greeting_check(g, 200, &out), 64); /* trailing bytes are not ours */

    /* every split point through the incremental decoder, with READY bytes following */
    uint8_t stream[64 + 3];
    memcpy(stream, g, 64);
    stream[64] = 0x04;
    stream[65] = 0x01;
    stream[66] = 0x00;
    for (size_t split = 0; split <= sizeof stream; split++) {
        fy_zmtp_greeting_decoder d;
        size_t used1 = 99, used2 = 99;
        fy_zmtp_greeting_decoder_init(&d);
        int rc1 = fy_zmtp_greeting_feed(&d, stream, split, &used1);
        CHECK(used1 == (split < 64 ? split : 64));
        CHECK_RC(rc1, split >= 64 ? 1 : 0);
        int rc2 = fy_zmtp_greeting_feed(&d, stream + used1, sizeof stream - used1, &used2);
        CHECK_RC(rc2, 1);
        CHECK(used1 + used2 == 64);
        CHECK(d.greeting.major == 3 && d.greeting.minor == 1);
    }
    /* libzmq's staging: 10, then 1, then 53 bytes */
    {
        fy_zmtp_greeting_decoder d;
        size_t used;
        fy_zmtp_greeting_decoder_init(&d);
        CHECK_RC(fy_zmtp_greeting_feed(&d, g, 10, &used), 0);
        CHECK_RC(fy_zmtp_greeting_feed(&d, g + 10, 1, &used), 0);
        CHECK_RC(fy_zmtp_greeting_feed(&d, g + 11, 53, &used), 1);
        CHECK(used == 53);
        /* after completion nothing more is consumed */
        CHECK_RC(fy_zmtp_greeting_feed(&d, g, 10, &used), 1);
        CHECK(used == 0);
    }

    /* padding and filler are not significant; the low bit of byte 9 is what counts */
    uint8_t b[64];
    memcpy(b, g, 64);
    memset(b + 1, 0xAB, 8);
    b[9] = 0x01;
    b[33] = 0x55;
    CHECK_RC(fy_zmtp_greeting_check(b, 64, &out), 64);
    /* higher versions are accepted */
    memcpy(b, g, 64);
    b[10] = 4;
    b[11] = 7;
    CHECK_RC(fy_zmtp_greeting_check(b, 64, &out), 64);
    CHECK(out.major == 4 && out.minor == 7);
    CHECK(fy_zmtp_version_has_sub_commands(4, 0) == 1);
    CHECK(fy_zmtp_version_has_sub_commands(3, 1) == 1);
    CHECK(fy_zmtp_version_has_sub_commands(3, 0) == 0);

    /* bad signature: detected at the first byte that shows it */
    memcpy(b, g, 64);
    b[0] = 0x01; /* a ZMTP 1.0 short identity frame */
    CHECK_RC(fy_zmtp_greeting_check(b, 1, NULL), FERRY_EPROTO);
    memcpy(b, g, 64);
    b[9] = 0x7E; /* ZMTP 1.0 long length */
    CHECK_RC(fy_zmtp_greeting_check(b, 9, NULL), 0);
    CHECK_RC(fy_zmtp_greeting_check(b, 10, NULL), FERRY_EPROTO);
    /* old versions: known at byte 11 */
    for (uint8_t v = 0; v < 3; v++) {
        memcpy(b, g, 64);
        b[10] = v;
        CHECK_RC(fy_zmtp_greeting_check(b, 10, NULL), 0);
        CHECK_RC(fy_zmtp_greeting_check(b, 11, NULL), FERRY_EPROTONOSUPPORT);
        fy_zmtp_greeting_decoder d;
        size_t used;
        fy_zmtp_greeting_decoder_init(&d);
        CHECK_RC(fy_zmtp_greeting_feed(&d, b, 11, &used), FERRY_EPROTONOSUPPORT);
        CHECK_RC(fy_zmtp_greeting_feed(&d, b + 11, 53, &used), FERRY_EPROTONOSUPPORT); /* sticky */
        CHECK(used == 0);
    }
    /* other mechanisms: reported as soon as the field is complete, with its name
     */
    CHECK_RC(fy_zmtp_greeting_encode(b, 1, "CURVE", 0), 64);
    CHECK_RC(fy_zmtp_greeting_check(b, 31, &out), 0);
    CHECK_RC(fy_zmtp_greeting_check(b, 32, &out), FERRY_ENOTSUP);
    CHECK(strcmp(out.mechanism, "CURVE") == 0);
    CHECK_RC(fy_zmtp_greeting_check(b, 64, &out), FERRY_ENOTSUP);
    /* malformed mechanisms */
    memcpy(b, g, 64);
    memset(b + 12, 0, 20);
    CHECK_RC(fy_zmtp_greeting_check(b, 64, NULL), FERRY_EPROTO); /* empty */
    memcpy(b, g, 64);
    b[12] = 'n'; /* lower case is not a mechanism-char */
    CHECK_RC(fy_zmtp_greeting_check(b, 64, NULL), FERRY_EPROTO);
    memcpy(b, g, 64);
    b[20] = 'X'; /* "NULL\0\0\0\0X": garbage after the padding starts */
    CHECK_RC(fy_zmtp_greeting_check(b, 64, NULL), FERRY_EPROTO);
    memcpy(b, g, 64);
    memcpy(b + 12, "NULLNULLNULLNULLNULL", 20); /* full 20 chars, no NUL: fine but not NULL */
    CHECK_RC(fy_zmtp_greeting_check(b, 64, &out), FERRY_ENOTSUP);
    CHECK(strlen(out.mechanism) == 20);
}

/* ---------------------------------------------------------------------------------------- */

static void test_frame_header_encode(void)
{
    uint8_t h[FY_ZMTP_MAX_HEADER];
    CHECK_RC(fy_zmtp_frame_header_encode(h, 0, 0), 2);
    CHECK_BYTES(h, 2, 0x00, 0x00);
    CHECK_RC(fy_zmtp_frame_header_encode(h, FY_ZMTP_FLAG_MORE, 5), 2);
    CHECK_BYTES(h, 2, 0x01, 0x05);
    CHECK_RC(fy_zmtp_frame_header_encode(h, 0, 255), 2);
    CHECK_BYTES(h, 2, 0x00, 0xFF);
    CHECK_RC(fy_zmtp_frame_header_encode(h, 0, 256), 9);
    CHECK_BYTES(h, 9, 0x02, 0, 0, 0, 0, 0, 0, 0x01, 0x00);
    CHECK_RC(fy_zmtp_frame_header_encode(h, FY_ZMTP_FLAG_MORE, 256), 9);
    CHECK_BYTES(h, 9, 0x03, 0, 0, 0, 0, 0, 0, 0x01, 0x00);
    CHECK_RC(fy_zmtp_frame_header_encode(h, FY_ZMTP_FLAG_COMMAND, 255), 2);
    CHECK_BYTES(h, 2, 0x04, 0xFF);
    CHECK_RC(fy_zmtp_frame_header_encode(h, FY_ZMTP_FLAG_COMMAND, 256), 9);
    CHECK_BYTES(h, 9, 0x06, 0, 0, 0, 0, 0, 0, 0x01, 0x00);
    CHECK_RC(fy_zmtp_frame_header_encode(h, 0, UINT64_C(0x0102030405060708)), 9);
    CHECK_BYTES(h, 9, 0x02, 1, 2, 3, 4, 5, 6, 7, 8);
    CHECK_RC(fy_zmtp_frame_header_encode(h, 0, (UINT64_C(1) << 63) - 1), 9);
    CHECK_BYTES(h, 9, 0x02, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF);
    CHECK_RC(fy_zmtp_frame_header_encode(h, 0, UINT64_C(1) << 63), FERRY_EMSGSIZE);
    CHECK_RC(fy_zmtp_frame_header_encode(h, FY_ZMTP_FLAG_LONG, 1), FERRY_EINVAL);
    CHECK_RC(fy_zmtp_frame_header_encode(h, 0x08, 1), FERRY_EINVAL);
    CHECK_RC(fy_zmtp_frame_header_encode(h, FY_ZMTP_FLAG_MORE | FY_ZMTP_FLAG_COMMAND, 1),
             FERRY_EINVAL);
}

static void test_frame_decode(void)
{
    fy_zmtp_frame f;
    uint64_t need;
    /* empty input needs at least the 2-byte short header */
    CHECK_RC(fy_zmtp_frame_decode(NULL, 0, NULL, &f, &need), 0);
    CHECK(need == 2 && f.header_len == 0);
    /* short frame, body incomplete then complete */
    uint8_t s[2 + 255];
    memset(s, 'x', sizeof s);
    s[0] = 0x01;
    s[1] = 0xFF;
    CHECK_RC(fy_zmtp_frame_decode(s, 1, NULL, &f, &need), 0);
    CHECK(need == 1 && f.header_len == 0);
    CHECK_RC(fy_zmtp_frame_decode(s, 2, NULL, &f, &need), 0);
    CHECK(need == 255 && f.header_len == 2 && f.size == 255 && fy_zmtp_frame_more(&f));
    CHECK_RC(fy_zmtp_frame_decode(s, 100, NULL, &f, &need), 0);
    CHECK(need == 157);
    CHECK_RC(fy_zmtp_frame_decode(s, sizeof s, NULL, &f, &need), 1);
    CHECK(need == 0 && f.size == 255 && f.header_len == 2 && !fy_zmtp_frame_is_command(&f));
    CHECK_RC(fy_zmtp_frame_decode(s, sizeof s, NULL, &f, NULL), 1);
    /* long frame: header arrives in pieces */
    uint8_t l[9 + 300];
    memset(l, 'y', sizeof l);
    CHECK_RC(fy_zmtp_frame_header_encode(l, 0, 300), 9);
    for (size_t i = 1; i < 9; i++) {
        CHECK_RC(fy_zmtp_frame_decode(l, i, NULL, &f, &need), 0);
        CHECK(need == 9 - i && f.header_len == 0);
    }
    CHECK_RC(fy_zmtp_frame_decode(l, 9, NULL, &f, &need), 0);
    CHECK(need == 300 && f.header_len == 9 && f.size == 300);
    CHECK_RC(fy_zmtp_frame_decode(l, sizeof l, NULL, &f, &need), 1);
    /* LONG with a small size is legal */
    CHECK_RC(fy_zmtp_frame_decode(BYTES(0x02, 0, 0, 0, 0, 0, 0, 0, 1, 'z'), NULL, &f, &need), 1);
    CHECK(f.size == 1 && f.header_len == 9);
    CHECK_RC(fy_zmtp_frame_decode(BYTES(0x06, 0, 0, 0, 0, 0, 0, 0, 0), NULL, &f, &need), 1);
    CHECK(f.size == 0 && fy_zmtp_frame_is_command(&f));
    /* several frames back to back in one buffer */
    {
        const uint8_t many[] = {0x01, 0x01, 'a', 0x01, 0x00, 0x00, 0x02, 'b', 'c', 0x04, 0x00};
        size_t off = 0;
        int count = 0;
        while (off < sizeof many) {
            CHECK_RC(fy_zmtp_frame_decode(many + off, sizeof many - off, NULL, &f, &need), 1);
            off += f.header_len + f.size;
            count++;
        }
        CHECK(count == 4 && off == sizeof many);
    }
    /* reserved flag bits */
    for (unsigned bit = 3; bit < 8; bit++) {
        uint8_t bad[2] = {(uint8_t)(1u << bit), 0};
        CHECK_RC(fy_zmtp_frame_decode(bad, 1, NULL, &f, &need), FERRY_EPROTO);
        CHECK_RC(fy_zmtp_frame_decode(bad, 2, NULL, &f, &need), FERRY_EPROTO);
    }
    /* COMMAND with MORE */
    CHECK_RC(fy_zmtp_frame_decode(BYTES(0x05, 0), NULL, &f, &need), FERRY_EPROTO);
    CHECK_RC(fy_zmtp_frame_decode(BYTES(0x07, 0, 0, 0, 0, 0, 0, 0, 0), NULL, &f, &need),
             FERRY_EPROTO);
    /* LONG size >= 2^63 */
    CHECK_RC(fy_zmtp_frame_decode(BYTES(0x02, 0x80, 0, 0, 0, 0, 0, 0, 0), NULL, &f, &need),
             FERRY_EPROTO);
    CHECK_RC(fy_zmtp_frame_decode(BYTES(0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF), NULL,
                                  &f, &need),
             FERRY_EPROTO);
    /* default limits: 1 GiB messages, 64 KiB commands; rejected from the header alone */
    CHECK_RC(fy_zmtp_frame_decode(BYTES(0x02, 0, 0, 0, 0, 0x40, 0, 0, 0), NULL, &f, &need), 0);
    CHECK(need == (UINT64_C(1) << 30) && f.size == (UINT64_C(1) << 30));
    CHECK_RC(fy_zmtp_frame_decode(BYTES(0x02, 0, 0, 0, 0, 0x40, 0, 0, 1), NULL, &f, &need),
             FERRY_EMSGSIZE);
    CHECK_RC(fy_zmtp_frame_decode(BYTES(0x02, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF), NULL,
                                  &f, &need),
             FERRY_EMSGSIZE);
    CHECK_RC(fy_zmtp_frame_decode(BYTES(0x06, 0, 0, 0, 0, 0, 1, 0, 0), NULL, &f, &need), 0);
    CHECK_RC(fy_zmtp_frame_decode(BYTES(0x06, 0, 0, 0, 0, 0, 1, 0, 1), NULL, &f, &need),
             FERRY_EPROTO);
    /* custom limits */
    fy_zmtp_limits lim = {.max_msg_size = 10, .max_command_size = 3};
    CHECK_RC(fy_zmtp_frame_decode(BYTES(0x00, 10), &lim, &f, &need), 0);
    CHECK_RC(fy_zmtp_frame_decode(BYTES(0x00, 11), &lim, &f, &need), FERRY_EMSGSIZE);
    CHECK_RC(fy_zmtp_frame_decode(BYTES(0x04, 3), &lim, &f, &need), 0);
    CHECK_RC(fy_zmtp_frame_decode(BYTES(0x04, 4), &lim, &f, &need), FERRY_EPROTO);
    lim.max_msg_size = UINT64_MAX;
    CHECK_RC(fy_zmtp_frame_decode(BYTES(0x02, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF), &lim,
                                  &f, &need),
             0);
    CHECK(need == (UINT64_C(1) << 63) - 1);
}

/* ---------------------------------------------------------------------------------------- */

static void test_ready(void)
{
    uint8_t buf[512];
    /* RFC 37 worked example: DEALER with an empty Identity */
    ssize_t n = fy_zmtp_ready_encode(buf, sizeof buf, FERRY_DEALER, NULL, 0, NULL);
    CHECK_BYTES(buf, (size_t)n, 0x04, 41, 5, 'R', 'E', 'A', 'D', 'Y', 11, 'S', 'o', 'c', 'k', 'e',
                't', '-', 'T', 'y', 'p', 'e', 0, 0, 0, 6, 'D', 'E', 'A', 'L', 'E', 'R', 8, 'I', 'd',
                'e', 'n', 't', 'i', 't', 'y', 0, 0, 0, 0);
    CHECK(fy_zmtp_ready_encode(NULL, 0, FERRY_DEALER, NULL, 0, NULL) == n);
    /* RFC 37 worked example: ROUTER reply with only Socket-Type */
    fy_zmtp_prop only = {"Socket-Type", 11, "ROUTER", 6};
    n = fy_zmtp_ready_encode_props(buf, sizeof buf, &only, 1);
    CHECK_BYTES(buf, (size_t)n, 0x04, 28, 5, 'R', 'E', 'A', 'D', 'Y', 11, 'S', 'o', 'c', 'k', 'e',
                't', '-', 'T', 'y', 'p', 'e', 0, 0, 0, 6, 'R', 'O', 'U', 'T', 'E', 'R');
    /* ours: SUB with identity "ab" and X-Ferry */
    n = fy_zmtp_ready_encode(buf, sizeof buf, FERRY_SUB, "ab", 2, "1;shm");
    CHECK_BYTES(buf, (size_t)n, 0x04, 57, 5, 'R', 'E', 'A', 'D', 'Y', 11, 'S', 'o', 'c', 'k', 'e',
                't', '-', 'T', 'y', 'p', 'e', 0, 0, 0, 3, 'S', 'U', 'B', 8, 'I', 'd', 'e', 'n', 't',
                'i', 't', 'y', 0, 0, 0, 2, 'a', 'b', 7, 'X', '-', 'F', 'e', 'r', 'r', 'y', 0, 0, 0,
                5, '1', ';', 's', 'h', 'm');
    /* too small a buffer: nothing written */
    memset(buf, 0xEE, sizeof buf);
    CHECK_RC(fy_zmtp_ready_encode(buf, (size_t)n - 1, FERRY_SUB, "ab", 2, "1;shm"), FERRY_EMSGSIZE);
    CHECK(buf[0] == 0xEE);
    /* bad arguments */
    uint8_t id[256];
    memset(id, 'i', sizeof id);
    CHECK_RC(fy_zmtp_ready_encode(buf, sizeof buf, 99, NULL, 0, NULL), FERRY_EINVAL);
    CHECK_RC(fy_zmtp_ready_encode(buf, sizeof buf, FERRY_REQ, id, 256, NULL), FERRY_EINVAL);
    CHECK_RC(fy_zmtp_ready_encode(buf, sizeof buf, FERRY_REQ, "\0x", 2, NULL), FERRY_EINVAL);
    fy_zmtp_prop badname = {"Bad Name", 8, "", 0};
    CHECK_RC(fy_zmtp_ready_encode_props(buf, sizeof buf, &badname, 1), FERRY_EINVAL);
    fy_zmtp_prop emptyname = {"", 0, "", 0};
    CHECK_RC(fy_zmtp_ready_encode_props(buf, sizeof buf, &emptyname, 1), FERRY_EINVAL);
    /* a long READY (identity 255) switches to the LONG header */
    n = fy_zmtp_ready_encode(buf, sizeof buf, FERRY_ROUTER, id, 255, "1;shm");
    CHECK(n > 0 && buf[0] == 0x06);

    /* decode it back */
    n = fy_zmtp_ready_encode(buf, sizeof buf, FERRY_REQ, "peer-7", 6, "1;shm,zc");
    fy_zmtp_frame f;
    CHECK_RC(fy_zmtp_frame_decode(buf, (size_t)n, NULL, &f, NULL), 1);
    CHECK(fy_zmtp_frame_is_command(&f));
    fy_zmtp_command c;
    CHECK_OK(fy_zmtp_command_decode(buf + f.header_len, (size_t)f.size, &c));
    CHECK(c.type == FY_ZMTP_CMD_READY && c.name_len == 5 && memcmp(c.name, "READY", 5) == 0);
    const void *v;
    size_t vlen;
    CHECK_RC(fy_zmtp_props_find(c.data, c.data_len, "socket-type", &v, &vlen), 1);
    CHECK(vlen == 3 && memcmp(v, "REQ", 3) == 0);
    CHECK_RC(fy_zmtp_props_find(c.data, c.data_len, "IDENTITY", &v, &vlen), 1);
    CHECK(vlen == 6 && memcmp(v, "peer-7", 6) == 0);
    CHECK_RC(fy_zmtp_props_find(c.data, c.data_len, "Resource", &v, &vlen), 0);
    CHECK_RC(fy_zmtp_props_find(c.data, c.data_len, "Socket-Typ", NULL, NULL), 0);
    size_t pos = 0;
    fy_zmtp_prop p;
    int count = 0;
    while (fy_zmtp_props_next(c.data, c.data_len, &pos, &p) == 1)
        count++;
    CHECK(count == 3 && pos == c.data_len);

    fy_zmtp_peer_info info;
    const char *why = NULL;
    CHECK_OK(fy_zmtp_ready_peer(&c, FERRY_ROUTER, &info, &why));
    CHECK(info.socket_type == FERRY_REQ && info.identity_len == 6 && info.ferry == 1 &&
          info.ferry_version == 1);
    CHECK(fy_zmtp_ferry_has_cap(&info, "shm") == 1);
    CHECK(fy_zmtp_ferry_has_cap(&info, "zc") == 1);
    CHECK(fy_zmtp_ferry_has_cap(&info, "sh") == 0);
    CHECK(fy_zmtp_ferry_has_cap(&info, "") == 0);
    CHECK_RC(fy_zmtp_ready_peer(&c, FERRY_PUB, &info, &why), FERRY_EPROTONOSUPPORT);
    CHECK(why != NULL && strstr(why, "type") != NULL);

    /* a libzmq-style READY: no X-Ferry, lower-case property names accepted */
    static const uint8_t lz[] = {5,   'R', 'E', 'A', 'D', 'Y', 11,  's', 'o', 'c', 'k', 'e', 't',
                                 '-', 't', 'y', 'p', 'e', 0,   0,   0,   4,   'P', 'U', 'S', 'H',
                                 8,   'i', 'd', 'e', 'n', 't', 'i', 't', 'y', 0,   0,   0,   0};
    CHECK_OK(fy_zmtp_command_decode(lz, sizeof lz, &c));
    CHECK_OK(fy_zmtp_ready_peer(&c, FERRY_PULL, &info, &why));
    CHECK(info.socket_type == FERRY_PUSH && info.ferry == 0 && info.identity == NULL);
    CHECK(fy_zmtp_ferry_has_cap(&info, "shm") == 0);
    /* Socket-Type values are case-sensitive (like libzmq) */
    static const uint8_t lower[] = {5,   'R', 'E', 'A', 'D', 'Y', 11, 'S', 'o', 'c', 'k', 'e', 't',
                                    '-', 'T', 'y', 'p', 'e', 0,   0,  0,   4,   'p', 'u', 's', 'h'};
    CHECK_OK(fy_zmtp_command_decode(lower, sizeof lower, &c));
    CHECK_RC(fy_zmtp_ready_peer(&c, FERRY_PULL, &info, &why), FERRY_EPROTO);
    /* READY without Socket-Type */
    static const uint8_t notype[] = {5, 'R', 'E', 'A', 'D', 'Y'};
    CHECK_OK(fy_zmtp_command_decode(notype, sizeof notype, &c));
    CHECK_RC(fy_zmtp_ready_peer(&c, FERRY_PULL, &info, &why), FERRY_EPROTO);
    /* X-Ferry that does not parse: still a ferry peer, no capabilities */
    fy_zmtp_prop odd[2] = {{"Socket-Type", 11, "PAIR", 4}, {"X-Ferry", 7, "junk", 4}};
    n = fy_zmtp_ready_encode_props(buf, sizeof buf, odd, 2);
    CHECK(n > 0);
    CHECK_OK(fy_zmtp_command_decode(buf + 2, (size_t)n - 2, &c));
    CHECK_OK(fy_zmtp_ready_peer(&c, FERRY_PAIR, &info, &why));
    CHECK(info.ferry == 1 && info.ferry_version == 0 && !fy_zmtp_ferry_has_cap(&info, "shm"));
    /* a PING is not a READY */
    n = fy_zmtp_ping_encode(buf, sizeof buf, 0, NULL, 0);
    CHECK_OK(fy_zmtp_command_decode(buf + 2, (size_t)n - 2, &c));
    CHECK_RC(fy_zmtp_ready_peer(&c, FERRY_PAIR, &info, &why), FERRY_EPROTO);
}

static void test_ready_malformed(void)
{
    fy_zmtp_command c;
    /* name-size 0 */
    CHECK_RC(fy_zmtp_command_decode(BYTES(5, 'R', 'E', 'A', 'D', 'Y', 0, 0, 0, 0, 0), &c),
             FERRY_EPROTO);
    /* name past the end */
    CHECK_RC(fy_zmtp_command_decode(BYTES(5, 'R', 'E', 'A', 'D', 'Y', 4, 'a', 'b'), &c),
             FERRY_EPROTO);
    /* value-size field truncated */
    CHECK_RC(fy_zmtp_command_decode(BYTES(5, 'R', 'E', 'A', 'D', 'Y', 1, 'a', 0, 0, 0), &c),
             FERRY_EPROTO);
    /* value past the end */
    CHECK_RC(fy_zmtp_command_decode(BYTES(5, 'R', 'E', 'A', 'D', 'Y', 1, 'a', 0, 0, 0, 2, 'x'), &c),
             FERRY_EPROTO);
    /* huge value-size (no overflow) */
    CHECK_RC(fy_zmtp_command_decode(
                 BYTES(5, 'R', 'E', 'A', 'D', 'Y', 1, 'a', 0xFF, 0xFF, 0xFF, 0xFF, 'x'), &c),
             FERRY_EPROTO);
    /* > 2^31-1 is invalid even if it were present */
    CHECK_RC(fy_zmtp_command_decode(BYTES(5, 'R', 'E', 'A', 'D', 'Y', 1, 'a', 0x80, 0, 0, 0), &c),
             FERRY_EPROTO);
    /* a trailing partial property */
    CHECK_RC(fy_zmtp_command_decode(BYTES(5, 'R', 'E', 'A', 'D', 'Y', 1, 'a', 0, 0, 0, 0, 3), &c),
             FERRY_EPROTO);
    /* props_find reports malformed lists too */
    CHECK_RC(fy_zmtp_props_find((const uint8_t[]){1, 'a', 0}, 3, "b", NULL, NULL), FERRY_EPROTO);
    CHECK_RC(fy_zmtp_props_find((const uint8_t[]){1, 'a', 0, 0, 0, 0}, 6, "a", NULL, NULL), 1);
}

static void test_commands(void)
{
    uint8_t buf[512];
    fy_zmtp_command c;
    ssize_t n;

    /* generic */
    n = fy_zmtp_command_encode(buf, sizeof buf, "HELLO", "ab", 2);
    CHECK_BYTES(buf, (size_t)n, 0x04, 8, 5, 'H', 'E', 'L', 'L', 'O', 'a', 'b');
    CHECK_OK(fy_zmtp_command_decode(buf + 2, (size_t)n - 2, &c));
    CHECK(c.type == FY_ZMTP_CMD_UNKNOWN && c.name_len == 5 && c.data_len == 2);
    CHECK_RC(fy_zmtp_command_encode(buf, sizeof buf, "", NULL, 0), FERRY_EINVAL);
    CHECK_RC(fy_zmtp_command_encode(buf, sizeof buf, "NO-DASH", NULL, 0), FERRY_EINVAL);
    char longname[257];
    memset(longname, 'A', 256);
    longname[256] = 0;
    CHECK_RC(fy_zmtp_command_encode(buf, sizeof buf, longname, NULL, 0), FERRY_EINVAL);
    longname[255] = 0;
    n = fy_zmtp_command_encode(buf, sizeof buf, longname, NULL, 0);
    CHECK(n == 9 + 256 && buf[0] == 0x06);
    /* names are case-sensitive: "ready" is an unknown command */
    CHECK_OK(fy_zmtp_command_decode(BYTES(5, 'r', 'e', 'a', 'd', 'y'), &c));
    CHECK(c.type == FY_ZMTP_CMD_UNKNOWN);

    /* ERROR */
    n = fy_zmtp_error_encode(buf, sizeof buf, "Bad", 3);
    CHECK_BYTES(buf, (size_t)n, 0x04, 10, 5, 'E', 'R', 'R', 'O', 'R', 3, 'B', 'a', 'd');
    CHECK_OK(fy_zmtp_command_decode(buf + 2, (size_t)n - 2, &c));
    CHECK(c.type == FY_ZMTP_CMD_ERROR && c.arg_len == 3 && memcmp(c.arg, "Bad", 3) == 0);
    n = fy_zmtp_error_encode(buf, sizeof buf, NULL, 0);
    CHECK_BYTES(buf, (size_t)n, 0x04, 7, 5, 'E', 'R', 'R', 'O', 'R', 0);
    CHECK_RC(fy_zmtp_error_encode(buf, sizeof buf, longname, 256), FERRY_EINVAL);
    CHECK_RC(fy_zmtp_command_decode(BYTES(5, 'E', 'R', 'R', 'O', 'R'), &c), FERRY_EPROTO);
    CHECK_RC(fy_zmtp_command_decode(BYTES(5, 'E', 'R', 'R', 'O', 'R', 2, 'x'), &c), FERRY_EPROTO);
    CHECK_RC(fy_zmtp_command_decode(BYTES(5, 'E', 'R', 'R', 'O', 'R', 0, 'x'), &c), FERRY_EPROTO);

    /* PING / PONG */
    n = fy_zmtp_ping_encode(buf, sizeof buf, 0x0102, "ctx", 3);
    CHECK_BYTES(buf, (size_t)n, 0x04, 10, 4, 'P', 'I', 'N', 'G', 0x01, 0x02, 'c', 't', 'x');
    CHECK_OK(fy_zmtp_command_decode(buf + 2, (size_t)n - 2, &c));
    CHECK(c.type == FY_ZMTP_CMD_PING && c.ttl_ds == 0x0102 && c.arg_len == 3);
    n = fy_zmtp_ping_encode(buf, sizeof buf, 300, NULL, 0);
    CHECK_BYTES(buf, (size_t)n, 0x04, 7, 4, 'P', 'I', 'N', 'G', 0x01, 0x2C);
    n = fy_zmtp_pong_encode(buf, sizeof buf, "ctx", 3);
    CHECK_BYTES(buf, (size_t)n, 0x04, 8, 4, 'P', 'O', 'N', 'G', 'c', 't', 'x');
    CHECK_OK(fy_zmtp_command_decode(buf + 2, (size_t)n - 2, &c));
    CHECK(c.type == FY_ZMTP_CMD_PONG && c.arg_len == 3 && memcmp(c.arg, "ctx", 3) == 0);
    n = fy_zmtp_pong_encode(buf, sizeof buf, NULL, 0);
    CHECK_BYTES(buf, (size_t)n, 0x04, 5, 4, 'P', 'O', 'N', 'G');
    uint8_t ctx17[17] = {0};
    CHECK(fy_zmtp_ping_encode(buf, sizeof buf, 1, ctx17, 16) == 2 + 5 + 2 + 16);
    CHECK_RC(fy_zmtp_ping_encode(buf, sizeof buf, 1, ctx17, 17), FERRY_EINVAL);
    CHECK_RC(fy_zmtp_pong_encode(buf, sizeof buf, ctx17, 17), FERRY_EINVAL);
    CHECK_RC(fy_zmtp_command_decode(BYTES(4, 'P', 'I', 'N', 'G'), &c), FERRY_EPROTO);
    CHECK_RC(fy_zmtp_command_decode(BYTES(4, 'P', 'I', 'N', 'G', 0), &c), FERRY_EPROTO);
    CHECK_OK(fy_zmtp_command_decode(BYTES(4, 'P', 'I', 'N', 'G', 0, 0), &c));
    CHECK(c.ttl_ds == 0 && c.arg_len == 0);
    uint8_t ping17[5 + 2 + 17] = {4, 'P', 'I', 'N', 'G'};
    CHECK_RC(fy_zmtp_command_decode(ping17, sizeof ping17, &c), FERRY_EPROTO);
    CHECK_OK(fy_zmtp_command_decode(ping17, sizeof ping17 - 1, &c));
    uint8_t pong17[5 + 17] = {4, 'P', 'O', 'N', 'G'};
    CHECK_RC(fy_zmtp_command_decode(pong17, sizeof pong17, &c), FERRY_EPROTO);
    CHECK_OK(fy_zmtp_command_decode(pong17, sizeof pong17 - 1, &c));

    /* structurally broken commands */
    CHECK_RC(fy_zmtp_command_decode(buf, 0, &c), FERRY_EPROTO);
    CHECK_RC(fy_zmtp_command_decode(BYTES(0), &c), FERRY_EPROTO);
    CHECK_RC(fy_zmtp_command_decode(BYTES(0, 'x'), &c), FERRY_EPROTO);
    CHECK_RC(fy_zmtp_command_decode(BYTES(5, 'R', 'E', 'A', 'D'), &c), FERRY_EPROTO);
    CHECK_RC(fy_zmtp_command_decode(BYTES(255, 'A'), &c), FERRY_EPROTO);

    /* size queries agree with real encodes, and too-small buffers write nothing
     */
    CHECK(fy_zmtp_ping_encode(NULL, 0, 5, "ab", 2) == 11);
    CHECK(fy_zmtp_pong_encode(NULL, 0, "ab", 2) == 9);
    CHECK(fy_zmtp_error_encode(NULL, 0, "ab", 2) == 11);
    CHECK_RC(fy_zmtp_ping_encode(buf, 10, 5, "ab", 2), FERRY_EMSGSIZE);
}

/* ---------------------------------------------------------------------------------------- */

static void test_socket_types(void)
{
    static const char *names[] = {"PAIR",   "PUB",  "SUB",  "REQ",  "REP", "DEALER",
                                  "ROUTER", "PULL", "PUSH", "XPUB", "XSUB"};
    for (int t = 0; t <= FERRY_XSUB; t++) {
        CHECK(strcmp(fy_zmtp_socket_type_name(t), names[t]) == 0);
        CHECK_RC(fy_zmtp_socket_type_from_name(names[t], strlen(names[t])), t);
    }
    CHECK(fy_zmtp_socket_type_name(-1) == NULL && fy_zmtp_socket_type_name(11) == NULL);
    CHECK_RC(fy_zmtp_socket_type_from_name("pub", 3), FERRY_EINVAL);
    CHECK_RC(fy_zmtp_socket_type_from_name("PUBX", 3), FERRY_PUB); /* length-delimited */
    CHECK_RC(fy_zmtp_socket_type_from_name("PUB", 4), FERRY_EINVAL);
    CHECK_RC(fy_zmtp_socket_type_from_name("CLIENT", 6), FERRY_EINVAL);

    static const int valid[][2] = {
        {FERRY_PAIR, FERRY_PAIR},     {FERRY_PUB, FERRY_SUB},       {FERRY_PUB, FERRY_XSUB},
        {FERRY_XPUB, FERRY_SUB},      {FERRY_XPUB, FERRY_XSUB},     {FERRY_REQ, FERRY_REP},
        {FERRY_REQ, FERRY_ROUTER},    {FERRY_DEALER, FERRY_REP},    {FERRY_DEALER, FERRY_ROUTER},
        {FERRY_DEALER, FERRY_DEALER}, {FERRY_ROUTER, FERRY_ROUTER}, {FERRY_PUSH, FERRY_PULL},
    };
    int pairs = 0;
    for (int a = -1; a <= 12; a++) {
        for (int b = -1; b <= 12; b++) {
            int want = 0;
            for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
                if ((valid[i][0] == a && valid[i][1] == b) ||
                    (valid[i][0] == b && valid[i][1] == a))
                    want = 1;
            if (fy_zmtp_socket_types_compatible(a, b) != want) {
                fprintf(stderr, "compatible(%d, %d) != %d\n", a, b, want);
                exit(1);
            }
            pairs += want;
        }
    }
    CHECK(pairs == 2 * 12 - 3); /* the 3 same-type pairs count once */
}

/* ---------------------------------------------------------------------------------------- */

static void test_subscriptions(void)
{
    uint8_t buf[512];
    ssize_t n;
    fy_zmtp_frame f;
    fy_zmtp_subscription s;

    /* 3.1: commands */
    n = fy_zmtp_subscription_encode(buf, sizeof buf, 3, 1, 1, "abc", 3);
    CHECK_BYTES(buf, (size_t)n, 0x04, 13, 9, 'S', 'U', 'B', 'S', 'C', 'R', 'I', 'B', 'E', 'a', 'b',
                'c');
    CHECK_RC(fy_zmtp_frame_decode(buf, (size_t)n, NULL, &f, NULL), 1);
    CHECK_RC(fy_zmtp_subscription_decode(&f, buf + f.header_len, &s), 1);
    CHECK(s.subscribe == 1 && s.len == 3 && memcmp(s.prefix, "abc", 3) == 0);
    n = fy_zmtp_subscription_encode(buf, sizeof buf, 3, 1, 0, "abc", 3);
    CHECK_BYTES(buf, (size_t)n, 0x04, 10, 6, 'C', 'A', 'N', 'C', 'E', 'L', 'a', 'b', 'c');
    CHECK_RC(fy_zmtp_frame_decode(buf, (size_t)n, NULL, &f, NULL), 1);
    CHECK_RC(fy_zmtp_subscription_decode(&f, buf + f.header_len, &s), 1);
    CHECK(s.subscribe == 0 && s.len == 3);
    n = fy_zmtp_subscription_encode(buf, sizeof buf, 4, 0, 1, NULL, 0); /* empty = everything */
    CHECK_BYTES(buf, (size_t)n, 0x04, 10, 9, 'S', 'U', 'B', 'S', 'C', 'R', 'I', 'B', 'E');
    CHECK_RC(fy_zmtp_frame_decode(buf, (size_t)n, NULL, &f, NULL), 1);
    CHECK_RC(fy_zmtp_subscription_decode(&f, buf + f.header_len, &s), 1);
    CHECK(s.subscribe == 1 && s.len == 0);

    /* 3.0: messages */
    n = fy_zmtp_subscription_encode(buf, sizeof buf, 3, 0, 1, "abc", 3);
    CHECK_BYTES(buf, (size_t)n, 0x00, 4, 0x01, 'a', 'b', 'c');
    CHECK_RC(fy_zmtp_frame_decode(buf, (size_t)n, NULL, &f, NULL), 1);
    CHECK_RC(fy_zmtp_subscription_decode(&f, buf + f.header_len, &s), 1);
    CHECK(s.subscribe == 1 && s.len == 3 && memcmp(s.prefix, "abc", 3) == 0);
    n = fy_zmtp_subscription_encode(buf, sizeof buf, 3, 0, 0, "abc", 3);
    CHECK_BYTES(buf, (size_t)n, 0x00, 4, 0x00, 'a', 'b', 'c');
    CHECK_RC(fy_zmtp_frame_decode(buf, (size_t)n, NULL, &f, NULL), 1);
    CHECK_RC(fy_zmtp_subscription_decode(&f, buf + f.header_len, &s), 1);
    CHECK(s.subscribe == 0);
    n = fy_zmtp_subscription_encode(buf, sizeof buf, 3, 0, 1, NULL, 0);
    CHECK_BYTES(buf, (size_t)n, 0x00, 1, 0x01);
    /* a 255-byte prefix crosses into the LONG form (body 256) */
    uint8_t big[255];
    memset(big, 'p', sizeof big);
    n = fy_zmtp_subscription_encode(buf, sizeof buf, 3, 0, 1, big, sizeof big);
    CHECK(n == 9 + 256 && buf[0] == 0x02 && buf[9] == 0x01);
    CHECK_RC(fy_zmtp_subscription_encode(buf, 100, 3, 0, 1, big, sizeof big), FERRY_EMSGSIZE);
    CHECK(fy_zmtp_subscription_encode(NULL, 0, 3, 1, 1, big, sizeof big) == 9 + 10 + 255);

    /* not subscriptions */
    f = (fy_zmtp_frame){.size = 0, .header_len = 2, .flags = 0};
    CHECK_RC(fy_zmtp_subscription_decode(&f, buf, &s), 0);
    f = (fy_zmtp_frame){.size = 2, .header_len = 2, .flags = 0};
    CHECK_RC(fy_zmtp_subscription_decode(&f, (const uint8_t *)"\x02x", &s), 0);
    f = (fy_zmtp_frame){.size = 2, .header_len = 2, .flags = FY_ZMTP_FLAG_MORE};
    CHECK_RC(fy_zmtp_subscription_decode(&f, (const uint8_t *)"\x01x", &s), 0);
    n = fy_zmtp_ping_encode(buf, sizeof buf, 1, NULL, 0);
    CHECK_RC(fy_zmtp_frame_decode(buf, (size_t)n, NULL, &f, NULL), 1);
    CHECK_RC(fy_zmtp_subscription_decode(&f, buf + f.header_len, &s), 0);
    /* malformed command */
    f = (fy_zmtp_frame){.size = 1, .header_len = 2, .flags = FY_ZMTP_FLAG_COMMAND};
    CHECK_RC(fy_zmtp_subscription_decode(&f, (const uint8_t *)"\x09", &s), FERRY_EPROTO);
}

int main(void)
{
    tu_deadline(60);
    test_greeting_encode();
    test_greeting_decode();
    test_frame_header_encode();
    test_frame_decode();
    test_ready();
    test_ready_malformed();
    test_commands();
    test_socket_types();
    test_subscriptions();
    printf("test_wire_zmtp: ok\n");
    return 0;
}
