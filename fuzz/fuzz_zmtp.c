/*
 * fuzz_zmtp.c - libFuzzer target for the ZMTP codec. The input is used three ways: as a peer
 * greeting (whole, and through the incremental decoder at split points taken from the input), as
 * a stream of frames (every complete frame is decoded as a command, READY properties are looked
 * up, subscriptions interpreted, and the first frames are re-decoded from truncated prefixes cut
 * at every point where the decoder's answer changes, to check the "need N more bytes" answers), and
 * round trips of re-encoded commands. Any disagreement between the paths aborts, so the fuzzer
 * checks consistency, not only crashes.
 */
#include "wire/zmtp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Frames per pass whose truncations are checked: later frames reach no new decoder state. */
#define FZ_TRUNC_FRAMES 8

#define FZ_ASSERT(c)                                                                               \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static void fz_greeting(const uint8_t *data, size_t size)
{
    fy_zmtp_greeting g;
    int whole = fy_zmtp_greeting_check(data, size, &g);
    FZ_ASSERT(whole == 0 || whole == FY_ZMTP_GREETING_SIZE || whole == FERRY_EPROTO ||
              whole == FERRY_EPROTONOSUPPORT || whole == FERRY_ENOTSUP);
    if (whole == FY_ZMTP_GREETING_SIZE)
        FZ_ASSERT(g.major >= 3 && strcmp(g.mechanism, "NULL") == 0);

    /* Feed in chunks whose sizes come from the input itself. */
    fy_zmtp_greeting_decoder d;
    fy_zmtp_greeting_decoder_init(&d);
    size_t off = 0, k = 0;
    int rc = 0;
    while (off < size) {
        size_t chunk = 1 + (data[k++ % size] % 13);
        if (chunk > size - off)
            chunk = size - off;
        size_t used = 0;
        rc = fy_zmtp_greeting_feed(&d, data + off, chunk, &used);
        FZ_ASSERT(used <= chunk);
        off += used;
        if (rc != 0 || used < chunk)
            break;
    }
    size_t fed = size < FY_ZMTP_GREETING_SIZE ? size : FY_ZMTP_GREETING_SIZE;
    /* The incremental answer must equal the one-shot answer on what was consumed.
     */
    if (rc == 1) {
        FZ_ASSERT(off == FY_ZMTP_GREETING_SIZE && whole == FY_ZMTP_GREETING_SIZE);
        FZ_ASSERT(memcmp(&d.greeting, &g, sizeof g) == 0);
    } else if (rc == 0) {
        FZ_ASSERT(off == fed && whole == 0);
    } else {
        FZ_ASSERT(rc == fy_zmtp_greeting_check(data, off, NULL));
        FZ_ASSERT(rc == whole);
    }
}

static void fz_command(const uint8_t *body, size_t len)
{
    fy_zmtp_command c;
    uint8_t out[FY_ZMTP_MAX_HEADER + 512];
    int rc = fy_zmtp_command_decode(body, len, &c);
    if (rc < 0) {
        FZ_ASSERT(rc == FERRY_EPROTO);
        return;
    }
    FZ_ASSERT(c.name_len >= 1 && c.name_len <= 255 && 1 + c.name_len + c.data_len == len);
    FZ_ASSERT(c.arg_len <= c.data_len);
    switch (c.type) {
    case FY_ZMTP_CMD_READY: {
        for (int t = -1; t <= 11; t++) {
            fy_zmtp_peer_info info;
            const char *why = NULL;
            int r = fy_zmtp_ready_peer(&c, t, &info, &why);
            FZ_ASSERT(why != NULL);
            FZ_ASSERT(r == 0 || r == FERRY_EPROTO || r == FERRY_EPROTONOSUPPORT);
            if (r == 0) {
                FZ_ASSERT(fy_zmtp_socket_types_compatible(t, info.socket_type));
                FZ_ASSERT(info.identity_len <= FY_ZMTP_IDENTITY_MAX);
                (void)fy_zmtp_ferry_has_cap(&info, "shm");
            }
        }
        /* Every property found by iteration is found by (case-insensitive) lookup.
         */
        size_t pos = 0;
        fy_zmtp_prop p;
        char name[256];
        int n = 0;
        while (fy_zmtp_props_next(c.data, c.data_len, &pos, &p) == 1 && n++ < 64) {
            FZ_ASSERT(p.name_len >= 1 && p.name_len <= 255);
            if (memchr(p.name, 0, p.name_len) != NULL)
                continue;
            memcpy(name, p.name, p.name_len);
            name[p.name_len] = '\0';
            FZ_ASSERT(fy_zmtp_props_find(c.data, c.data_len, name, NULL, NULL) == 1);
        }
        break;
    }
    case FY_ZMTP_CMD_PING: {
        ssize_t n = fy_zmtp_ping_encode(out, sizeof out, c.ttl_ds, c.arg, c.arg_len);
        FZ_ASSERT(n > 2 && (size_t)n - 2 == len && memcmp(out + 2, body, len) == 0);
        break;
    }
    case FY_ZMTP_CMD_PONG: {
        ssize_t n = fy_zmtp_pong_encode(out, sizeof out, c.arg, c.arg_len);
        FZ_ASSERT(n > 2 && (size_t)n - 2 == len && memcmp(out + 2, body, len) == 0);
        break;
    }
    case FY_ZMTP_CMD_ERROR: {
        ssize_t n = fy_zmtp_error_encode(out, sizeof out, (const char *)c.arg, c.arg_len);
        FZ_ASSERT(n > 0);
        fy_zmtp_frame f;
        FZ_ASSERT(fy_zmtp_frame_decode(out, (size_t)n, NULL, &f, NULL) == 1);
        FZ_ASSERT(f.size == len && memcmp(out + f.header_len, body, len) == 0);
        break;
    }
    default:
        break;
    }
}

/*
 * Truncations of a complete frame (total bytes at p, decoded as f) must each answer "incomplete"
 * with the exact number of missing bytes. The decoder's answer depends only on where the cut lies
 * against the flags byte, the end of the header and the end of the body, so every cut inside the
 * header, one past it, one in the middle and the last byte cover all of its branches. (Sampling 64
 * cuts of every frame, as this harness first did, cost up to ~12 000 decode calls per 4 KiB input
 * and held the target at ~1 700 exec/s without reaching anything more.)
 */
static void fz_truncations(const uint8_t *p, uint64_t total, const fy_zmtp_limits *lim,
                           const fy_zmtp_frame *f)
{
    uint64_t cuts[FY_ZMTP_MAX_HEADER + 4];
    size_t n = 0;
    for (uint64_t c = 0; c <= (uint64_t)f->header_len + 1 && c < total; c++)
        cuts[n++] = c;
    if (total / 2 > (uint64_t)f->header_len + 1)
        cuts[n++] = total / 2;
    if (total - 1 > (uint64_t)f->header_len + 1)
        cuts[n++] = total - 1;
    for (size_t i = 0; i < n; i++) {
        fy_zmtp_frame g;
        uint64_t need = 0;
        FZ_ASSERT(fy_zmtp_frame_decode(p, (size_t)cuts[i], lim, &g, &need) == 0);
        FZ_ASSERT(need >= 1 && cuts[i] + need <= total);
        if (g.header_len != 0)
            FZ_ASSERT(cuts[i] + need == total && g.size == f->size && g.flags == f->flags);
    }
}

static void fz_frames(const uint8_t *data, size_t size, const fy_zmtp_limits *lim)
{
    size_t off = 0;
    int frames = 0;
    while (off < size && frames++ < 256) {
        fy_zmtp_frame f;
        uint64_t need = 0;
        int rc = fy_zmtp_frame_decode(data + off, size - off, lim, &f, &need);
        if (rc < 0) {
            FZ_ASSERT(rc == FERRY_EPROTO || rc == FERRY_EMSGSIZE);
            return;
        }
        if (rc == 0) {
            FZ_ASSERT(need >= 1);
            if (f.header_len != 0)
                FZ_ASSERT((uint64_t)(size - off) + need == f.header_len + f.size);
            return;
        }
        uint64_t total = f.header_len + f.size;
        FZ_ASSERT(total <= size - off);
        /* Truncations of a complete frame ask for exactly the missing bytes. */
        if (frames <= FZ_TRUNC_FRAMES)
            fz_truncations(data + off, total, lim, &f);
        /* Re-encoding the header gives the canonical form of the same frame. */
        uint8_t hdr[FY_ZMTP_MAX_HEADER];
        int h = fy_zmtp_frame_header_encode(
            hdr, f.flags & (FY_ZMTP_FLAG_MORE | FY_ZMTP_FLAG_COMMAND), f.size);
        FZ_ASSERT(h == 2 || h == 9);
        fy_zmtp_frame g;
        FZ_ASSERT(fy_zmtp_frame_decode(hdr, (size_t)h, NULL, &g, NULL) == (f.size == 0 ? 1 : 0) ||
                  f.size > FY_ZMTP_DEFAULT_MAX_COMMAND);
        const uint8_t *body = data + off + f.header_len;
        if (fy_zmtp_frame_is_command(&f))
            fz_command(body, (size_t)f.size);
        fy_zmtp_subscription s;
        int sr = fy_zmtp_subscription_decode(&f, body, &s);
        FZ_ASSERT(sr == 0 || sr == 1 || sr == FERRY_EPROTO);
        if (sr == 1) {
            FZ_ASSERT(s.len < f.size + 1);
            /* The 3.0 and 3.1 encodings of what we decoded both decode back to it. */
            uint8_t buf[FY_ZMTP_MAX_HEADER + 16 + 512];
            for (uint8_t minor = 0; minor <= 1 && s.len <= 512; minor++) {
                ssize_t n = fy_zmtp_subscription_encode(buf, sizeof buf, 3, minor, s.subscribe,
                                                        s.prefix, s.len);
                FZ_ASSERT(n > 0);
                fy_zmtp_frame e;
                fy_zmtp_subscription t;
                FZ_ASSERT(fy_zmtp_frame_decode(buf, (size_t)n, NULL, &e, NULL) == 1);
                FZ_ASSERT(fy_zmtp_subscription_decode(&e, buf + e.header_len, &t) == 1);
                FZ_ASSERT(t.subscribe == s.subscribe && t.len == s.len);
                FZ_ASSERT(s.len == 0 || memcmp(t.prefix, s.prefix, s.len) == 0);
            }
        }
        off += (size_t)total;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_greeting(data, size);
    /* Bytes after a greeting are frames; also treat the whole input as frames. */
    if (size > FY_ZMTP_GREETING_SIZE)
        fz_frames(data + FY_ZMTP_GREETING_SIZE, size - FY_ZMTP_GREETING_SIZE, NULL);
    fz_frames(data, size, NULL);
    /* Tiny limits driven by the first bytes exercise the limit checks on small inputs. */
    if (size >= 2) {
        fy_zmtp_limits lim = {.max_msg_size = data[0], .max_command_size = data[1]};
        fz_frames(data + 2, size - 2, &lim);
    }
    /* The whole input as one command body. */
    fz_command(data, size);
    return 0;
}
