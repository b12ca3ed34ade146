/*
 * zmtp.c - the pure ZMTP 3.0/3.1 codec: greeting, frame headers, commands, READY metadata,
 * socket-type table and subscriptions (see zmtp.h for the contract, docs/wire.md for the limits).
 *
 * Why it looks the way it does: every decoder takes (pointer, length) of untrusted bytes and does
 * all size arithmetic in uint64_t against the remaining length before touching a byte, so a peer
 * can neither make us read out of bounds nor make us allocate (nothing here allocates). Encoders
 * compute the exact size first and write only when it fits, so a failed encode leaves the
 * caller's buffer untouched.
 */
#include "wire/zmtp.h"

#include <limits.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------- */
/* Byte helpers                                                                                */
/* ------------------------------------------------------------------------------------------- */

static uint64_t zmtp_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t zmtp_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void zmtp_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static void zmtp_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static int zmtp_ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int zmtp_mechanism_char(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
           c == '+';
}

/* RFC 37 name-char: ALPHA | DIGIT | "-" | "_" | "." | "+" */
static int zmtp_prop_name_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || zmtp_mechanism_char(c);
}

static int zmtp_alpha(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The size of a frame carrying body_len bytes, or 0 when it cannot be framed (>= 2^63). */
static uint64_t zmtp_frame_size(uint64_t body_len)
{
    if (body_len >= (UINT64_C(1) << 63) - FY_ZMTP_MAX_HEADER)
        return 0;
    return body_len + (body_len <= FY_ZMTP_SHORT_MAX ? 2 : FY_ZMTP_MAX_HEADER);
}

/* Common prologue of every (buf, cap) encoder: size query, or room check. */
static ssize_t zmtp_check_room(const uint8_t *buf, size_t cap, uint64_t need)
{
    if (need == 0 || need > (uint64_t)SSIZE_MAX)
        return FERRY_EMSGSIZE;
    if (buf != NULL && cap < need)
        return FERRY_EMSGSIZE;
    return (ssize_t)need;
}

/* ------------------------------------------------------------------------------------------- */
/* Greeting                                                                                    */
/* ------------------------------------------------------------------------------------------- */

int fy_zmtp_greeting_encode(uint8_t out[FY_ZMTP_GREETING_SIZE], uint8_t minor,
                            const char *mechanism, int as_server)
{
    if (mechanism == NULL || (as_server != 0 && as_server != 1))
        return FERRY_EINVAL;
    size_t mlen = strnlen(mechanism, FY_ZMTP_MECHANISM_SIZE + 1);
    if (mlen == 0 || mlen > FY_ZMTP_MECHANISM_SIZE)
        return FERRY_EINVAL;
    for (size_t i = 0; i < mlen; i++)
        if (!zmtp_mechanism_char((uint8_t)mechanism[i]))
            return FERRY_EINVAL;
    memset(out, 0, FY_ZMTP_GREETING_SIZE);
    out[0] = 0xFF;
    out[9] = 0x7F;
    out[10] = FY_ZMTP_MAJOR;
    out[11] = minor;
    memcpy(out + 12, mechanism, mlen);
    out[32] = (uint8_t)as_server;
    return FY_ZMTP_GREETING_SIZE;
}

int fy_zmtp_greeting_check(const uint8_t *buf, size_t len, fy_zmtp_greeting *out)
{
    if (len > FY_ZMTP_GREETING_SIZE)
        len = FY_ZMTP_GREETING_SIZE;
    if (len == 0)
        return 0;
    if (buf[0] != 0xFF)
        return FERRY_EPROTO;
    if (len < FY_ZMTP_SIGNATURE_SIZE)
        return 0;
    /*
     * The padding is "not significant" (RFC 23/37) and must not be validated. Like libzmq we
     * only require the low bit of byte 9: when it is 0 the peer is a ZMTP 1.0 one that sent a
     * long identity length, not a signature.
     */
    if ((buf[9] & 0x01) == 0)
        return FERRY_EPROTO;
    if (len < 11)
        return 0;
    if (buf[10] < FY_ZMTP_MAJOR)
        return FERRY_EPROTONOSUPPORT;
    if (len < 12 + FY_ZMTP_MECHANISM_SIZE)
        return 0;
    /* mechanism: 1..20 mechanism chars, then only zero padding */
    size_t mlen = 0;
    while (mlen < FY_ZMTP_MECHANISM_SIZE && buf[12 + mlen] != 0) {
        if (!zmtp_mechanism_char(buf[12 + mlen]))
            return FERRY_EPROTO;
        mlen++;
    }
    if (mlen == 0)
        return FERRY_EPROTO;
    for (size_t i = mlen; i < FY_ZMTP_MECHANISM_SIZE; i++)
        if (buf[12 + i] != 0)
            return FERRY_EPROTO;
    int is_null = (mlen == 4 && memcmp(buf + 12, "NULL", 4) == 0);
    if (len < FY_ZMTP_GREETING_SIZE && is_null)
        return 0;
    if (out != NULL) {
        memset(out, 0, sizeof *out);
        out->major = buf[10];
        out->minor = buf[11];
        memcpy(out->mechanism, buf + 12, mlen);
        out->mechanism[mlen] = '\0';
        out->as_server = len > 32 ? buf[32] : 0;
    }
    /* A different mechanism is fatal (RFC 37): report it as soon as it is known. */
    if (!is_null)
        return FERRY_ENOTSUP;
    return FY_ZMTP_GREETING_SIZE;
}

void fy_zmtp_greeting_decoder_init(fy_zmtp_greeting_decoder *d)
{
    memset(d, 0, sizeof *d);
}

int fy_zmtp_greeting_feed(fy_zmtp_greeting_decoder *d, const uint8_t *data, size_t len,
                          size_t *consumed)
{
    size_t take = 0;
    if (d->status < 0 || d->status == FY_ZMTP_GREETING_SIZE) {
        if (consumed != NULL)
            *consumed = 0;
        return d->status < 0 ? d->status : 1;
    }
    if (d->have < FY_ZMTP_GREETING_SIZE && len > 0) {
        take = FY_ZMTP_GREETING_SIZE - d->have;
        if (take > len)
            take = len;
        memcpy(d->buf + d->have, data, take);
        d->have += (uint32_t)take;
    }
    if (consumed != NULL)
        *consumed = take;
    d->status = fy_zmtp_greeting_check(d->buf, d->have, &d->greeting);
    if (d->status < 0)
        return d->status;
    return d->status == FY_ZMTP_GREETING_SIZE ? 1 : 0;
}

int fy_zmtp_version_has_sub_commands(uint8_t major, uint8_t minor)
{
    return major > 3 || (major == 3 && minor >= 1);
}

/* ------------------------------------------------------------------------------------------- */
/* Frames                                                                                      */
/* ------------------------------------------------------------------------------------------- */

int fy_zmtp_frame_header_encode(uint8_t hdr[FY_ZMTP_MAX_HEADER], uint8_t flags, uint64_t size)
{
    if ((flags & ~(FY_ZMTP_FLAG_MORE | FY_ZMTP_FLAG_COMMAND)) != 0 ||
        flags == (FY_ZMTP_FLAG_MORE | FY_ZMTP_FLAG_COMMAND))
        return FERRY_EINVAL;
    if (size >= (UINT64_C(1) << 63))
        return FERRY_EMSGSIZE;
    if (size <= FY_ZMTP_SHORT_MAX) {
        hdr[0] = flags;
        hdr[1] = (uint8_t)size;
        return 2;
    }
    hdr[0] = flags | FY_ZMTP_FLAG_LONG;
    zmtp_put_be64(hdr + 1, size);
    return FY_ZMTP_MAX_HEADER;
}

int fy_zmtp_frame_decode(const uint8_t *buf, size_t len, const fy_zmtp_limits *lim,
                         fy_zmtp_frame *f, uint64_t *need)
{
    uint64_t max_msg = lim ? lim->max_msg_size : FY_ZMTP_DEFAULT_MAX_MSG;
    uint64_t max_cmd = lim ? lim->max_command_size : FY_ZMTP_DEFAULT_MAX_COMMAND;
    uint64_t missing;

    f->size = 0;
    f->header_len = 0;
    f->flags = 0;
    if (len == 0) {
        missing = 2;
        goto incomplete;
    }
    uint8_t flags = buf[0];
    if ((flags & ~FY_ZMTP_FLAGS_KNOWN) != 0)
        return FERRY_EPROTO;
    if ((flags & FY_ZMTP_FLAG_COMMAND) && (flags & FY_ZMTP_FLAG_MORE))
        return FERRY_EPROTO;
    f->flags = flags;
    unsigned hlen = (flags & FY_ZMTP_FLAG_LONG) ? FY_ZMTP_MAX_HEADER : 2;
    if (len < hlen) {
        missing = hlen - len;
        goto incomplete;
    }
    uint64_t size = (flags & FY_ZMTP_FLAG_LONG) ? zmtp_get_be64(buf + 1) : buf[1];
    if (size >= (UINT64_C(1) << 63))
        return FERRY_EPROTO;
    if (flags & FY_ZMTP_FLAG_COMMAND) {
        if (size > max_cmd)
            return FERRY_EPROTO;
    } else if (size > max_msg) {
        return FERRY_EMSGSIZE;
    }
    f->size = size;
    f->header_len = (uint8_t)hlen;
    /* len >= hlen here, so the subtraction cannot wrap; size < 2^63 so the sum cannot either. */
    if ((uint64_t)(len - hlen) < size) {
        missing = size - (uint64_t)(len - hlen);
        goto incomplete;
    }
    if (need != NULL)
        *need = 0;
    return 1;

incomplete:
    if (need != NULL)
        *need = missing;
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Commands                                                                                    */
/* ------------------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    uint8_t len;
    int type;
} zmtp_commands[] = {
    {"READY", 5, FY_ZMTP_CMD_READY},         {"ERROR", 5, FY_ZMTP_CMD_ERROR},
    {"SUBSCRIBE", 9, FY_ZMTP_CMD_SUBSCRIBE}, {"CANCEL", 6, FY_ZMTP_CMD_CANCEL},
    {"PING", 4, FY_ZMTP_CMD_PING},           {"PONG", 4, FY_ZMTP_CMD_PONG},
};

int fy_zmtp_command_decode(const uint8_t *body, size_t len, fy_zmtp_command *out)
{
    memset(out, 0, sizeof *out);
    if (len < 1)
        return FERRY_EPROTO;
    size_t nlen = body[0];
    if (nlen == 0 || nlen > len - 1)
        return FERRY_EPROTO;
    out->name = (const char *)body + 1;
    out->name_len = nlen;
    out->data = body + 1 + nlen;
    out->data_len = len - 1 - nlen;
    out->type = FY_ZMTP_CMD_UNKNOWN;
    for (size_t i = 0; i < sizeof zmtp_commands / sizeof zmtp_commands[0]; i++) {
        if (zmtp_commands[i].len == nlen && memcmp(zmtp_commands[i].name, out->name, nlen) == 0) {
            out->type = zmtp_commands[i].type;
            break;
        }
    }
    const uint8_t *d = out->data;
    size_t dlen = out->data_len;
    switch (out->type) {
    case FY_ZMTP_CMD_READY: {
        /* Validate the whole list now so later lookups only meet well-formed data. */
        size_t pos = 0;
        fy_zmtp_prop p;
        int rc;
        while ((rc = fy_zmtp_props_next(d, dlen, &pos, &p)) == 1)
            ;
        if (rc < 0)
            return rc;
        break;
    }
    case FY_ZMTP_CMD_ERROR:
        if (dlen < 1 || (size_t)d[0] != dlen - 1)
            return FERRY_EPROTO;
        out->arg = d + 1;
        out->arg_len = dlen - 1;
        break;
    case FY_ZMTP_CMD_SUBSCRIBE:
    case FY_ZMTP_CMD_CANCEL:
        out->arg = d;
        out->arg_len = dlen;
        break;
    case FY_ZMTP_CMD_PING:
        if (dlen < 2 || dlen - 2 > FY_ZMTP_PING_CONTEXT_MAX)
            return FERRY_EPROTO;
        out->ttl_ds = (uint16_t)((d[0] << 8) | d[1]);
        out->arg = d + 2;
        out->arg_len = dlen - 2;
        break;
    case FY_ZMTP_CMD_PONG:
        if (dlen > FY_ZMTP_PING_CONTEXT_MAX)
            return FERRY_EPROTO;
        out->arg = d;
        out->arg_len = dlen;
        break;
    default:
        break;
    }
    if (out->arg_len == 0)
        out->arg = NULL;
    return 0;
}

/*
 * Writes the header and command name of a command frame whose data part is data_len bytes;
 * returns the total frame size or an error. Writes nothing when buf is NULL.
 */
static ssize_t zmtp_command_start(uint8_t *buf, size_t cap, const char *name, size_t nlen,
                                  uint64_t data_len, uint8_t **data_out)
{
    if (nlen == 0 || nlen > 255)
        return FERRY_EINVAL;
    for (size_t i = 0; i < nlen; i++)
        if (!zmtp_alpha((uint8_t)name[i]))
            return FERRY_EINVAL;
    if (data_len >= (UINT64_C(1) << 62))
        return FERRY_EMSGSIZE;
    uint64_t body = 1 + nlen + data_len;
    ssize_t total = zmtp_check_room(buf, cap, zmtp_frame_size(body));
    if (total < 0 || buf == NULL)
        return total;
    int h = fy_zmtp_frame_header_encode(buf, FY_ZMTP_FLAG_COMMAND, body);
    if (h < 0)
        return h;
    buf[h] = (uint8_t)nlen;
    memcpy(buf + h + 1, name, nlen);
    *data_out = buf + h + 1 + nlen;
    return total;
}

ssize_t fy_zmtp_command_encode(uint8_t *buf, size_t cap, const char *name, const void *data,
                               size_t data_len)
{
    if (name == NULL || (data == NULL && data_len > 0))
        return FERRY_EINVAL;
    uint8_t *d = NULL;
    ssize_t n = zmtp_command_start(buf, cap, name, strnlen(name, 256), data_len, &d);
    if (n > 0 && buf != NULL && data_len > 0)
        memcpy(d, data, data_len);
    return n;
}

ssize_t fy_zmtp_error_encode(uint8_t *buf, size_t cap, const char *reason, size_t reason_len)
{
    if (reason_len > 255 || (reason == NULL && reason_len > 0))
        return FERRY_EINVAL;
    uint8_t *d = NULL;
    ssize_t n = zmtp_command_start(buf, cap, "ERROR", 5, 1 + reason_len, &d);
    if (n > 0 && buf != NULL) {
        d[0] = (uint8_t)reason_len;
        if (reason_len > 0)
            memcpy(d + 1, reason, reason_len);
    }
    return n;
}

ssize_t fy_zmtp_ping_encode(uint8_t *buf, size_t cap, uint16_t ttl_ds, const void *ctx,
                            size_t ctx_len)
{
    if (ctx_len > FY_ZMTP_PING_CONTEXT_MAX || (ctx == NULL && ctx_len > 0))
        return FERRY_EINVAL;
    uint8_t *d = NULL;
    ssize_t n = zmtp_command_start(buf, cap, "PING", 4, 2 + ctx_len, &d);
    if (n > 0 && buf != NULL) {
        d[0] = (uint8_t)(ttl_ds >> 8);
        d[1] = (uint8_t)ttl_ds;
        if (ctx_len > 0)
            memcpy(d + 2, ctx, ctx_len);
    }
    return n;
}

ssize_t fy_zmtp_pong_encode(uint8_t *buf, size_t cap, const void *ctx, size_t ctx_len)
{
    if (ctx_len > FY_ZMTP_PING_CONTEXT_MAX || (ctx == NULL && ctx_len > 0))
        return FERRY_EINVAL;
    uint8_t *d = NULL;
    ssize_t n = zmtp_command_start(buf, cap, "PONG", 4, ctx_len, &d);
    if (n > 0 && buf != NULL && ctx_len > 0)
        memcpy(d, ctx, ctx_len);
    return n;
}

/* ------------------------------------------------------------------------------------------- */
/* READY properties                                                                            */
/* ------------------------------------------------------------------------------------------- */

#define ZMTP_PROP_VALUE_MAX UINT64_C(0x7FFFFFFF) /* RFC 37: 0..2^31-1 octets */

int fy_zmtp_props_next(const uint8_t *data, size_t len, size_t *pos, fy_zmtp_prop *p)
{
    size_t at = *pos;
    if (at >= len)
        return 0;
    uint64_t left = (uint64_t)(len - at);
    size_t nlen = data[at];
    if (nlen == 0 || left < 1 + (uint64_t)nlen + 4)
        return FERRY_EPROTO;
    uint64_t vlen = zmtp_get_be32(data + at + 1 + nlen);
    if (vlen > ZMTP_PROP_VALUE_MAX || left - 1 - nlen - 4 < vlen)
        return FERRY_EPROTO;
    p->name = (const char *)data + at + 1;
    p->name_len = nlen;
    p->value = data + at + 1 + nlen + 4;
    p->value_len = (size_t)vlen;
    *pos = at + 1 + nlen + 4 + (size_t)vlen;
    return 1;
}

int fy_zmtp_props_find(const uint8_t *data, size_t len, const char *name, const void **value,
                       size_t *value_len)
{
    size_t want = name ? strlen(name) : 0;
    size_t pos = 0;
    fy_zmtp_prop p;
    int rc;
    while ((rc = fy_zmtp_props_next(data, len, &pos, &p)) == 1) {
        if (p.name_len != want)
            continue;
        size_t i = 0;
        while (i < want &&
               zmtp_ascii_lower((uint8_t)p.name[i]) == zmtp_ascii_lower((uint8_t)name[i]))
            i++;
        if (i == want) {
            if (value != NULL)
                *value = p.value;
            if (value_len != NULL)
                *value_len = p.value_len;
            return 1;
        }
    }
    return rc;
}

ssize_t fy_zmtp_ready_encode_props(uint8_t *buf, size_t cap, const fy_zmtp_prop *props, size_t n)
{
    if (props == NULL && n > 0)
        return FERRY_EINVAL;
    uint64_t data_len = 0;
    for (size_t i = 0; i < n; i++) {
        const fy_zmtp_prop *p = &props[i];
        if (p->name == NULL || p->name_len == 0 || p->name_len > 255)
            return FERRY_EINVAL;
        for (size_t j = 0; j < p->name_len; j++)
            if (!zmtp_prop_name_char((uint8_t)p->name[j]))
                return FERRY_EINVAL;
        if ((uint64_t)p->value_len > ZMTP_PROP_VALUE_MAX || (p->value == NULL && p->value_len))
            return FERRY_EINVAL;
        data_len += 1 + p->name_len + 4 + (uint64_t)p->value_len;
        if (data_len >= (UINT64_C(1) << 62))
            return FERRY_EMSGSIZE;
    }
    uint8_t *d = NULL;
    ssize_t total = zmtp_command_start(buf, cap, "READY", 5, data_len, &d);
    if (total <= 0 || buf == NULL)
        return total;
    for (size_t i = 0; i < n; i++) {
        const fy_zmtp_prop *p = &props[i];
        *d++ = (uint8_t)p->name_len;
        memcpy(d, p->name, p->name_len);
        d += p->name_len;
        zmtp_put_be32(d, (uint32_t)p->value_len);
        d += 4;
        if (p->value_len > 0)
            memcpy(d, p->value, p->value_len);
        d += p->value_len;
    }
    return total;
}

ssize_t fy_zmtp_ready_encode(uint8_t *buf, size_t cap, int socket_type, const void *identity,
                             size_t identity_len, const char *ferry_value)
{
    const char *type_name = fy_zmtp_socket_type_name(socket_type);
    if (type_name == NULL || identity_len > FY_ZMTP_IDENTITY_MAX ||
        (identity == NULL && identity_len > 0))
        return FERRY_EINVAL;
    /* Identities starting with a zero byte are reserved for generated ones (RFC 37). */
    if (identity_len > 0 && ((const uint8_t *)identity)[0] == 0)
        return FERRY_EINVAL;
    fy_zmtp_prop props[3] = {
        {FY_ZMTP_PROP_SOCKET_TYPE, sizeof FY_ZMTP_PROP_SOCKET_TYPE - 1, type_name,
         strlen(type_name)},
        {FY_ZMTP_PROP_IDENTITY, sizeof FY_ZMTP_PROP_IDENTITY - 1, identity, identity_len},
        {FY_ZMTP_PROP_FERRY, sizeof FY_ZMTP_PROP_FERRY - 1, ferry_value,
         ferry_value ? strlen(ferry_value) : 0},
    };
    return fy_zmtp_ready_encode_props(buf, cap, props, ferry_value ? 3 : 2);
}

int fy_zmtp_ready_peer(const fy_zmtp_command *ready, int our_type, fy_zmtp_peer_info *info,
                       const char **why)
{
    const char *reason = "ok";
    int rc = 0;
    const void *v;
    size_t vlen;

    memset(info, 0, sizeof *info);
    info->socket_type = -1;
    if (ready == NULL || ready->type != FY_ZMTP_CMD_READY) {
        reason = "expected a READY command";
        rc = FERRY_EPROTO;
        goto out;
    }
    rc = fy_zmtp_props_find(ready->data, ready->data_len, FY_ZMTP_PROP_SOCKET_TYPE, &v, &vlen);
    if (rc <= 0) {
        reason = rc < 0 ? "malformed READY property list" : "READY without Socket-Type";
        rc = FERRY_EPROTO;
        goto out;
    }
    rc = fy_zmtp_socket_type_from_name(v, vlen);
    if (rc < 0) {
        reason = "READY with an unknown Socket-Type";
        rc = FERRY_EPROTO;
        goto out;
    }
    info->socket_type = rc;
    if (!fy_zmtp_socket_types_compatible(our_type, info->socket_type)) {
        reason = "peer socket type cannot talk to ours";
        rc = FERRY_EPROTONOSUPPORT;
        goto out;
    }
    rc = fy_zmtp_props_find(ready->data, ready->data_len, FY_ZMTP_PROP_IDENTITY, &v, &vlen);
    if (rc == 1) {
        if (vlen > FY_ZMTP_IDENTITY_MAX) {
            reason = "Identity longer than 255 bytes";
            rc = FERRY_EPROTO;
            goto out;
        }
        info->identity = vlen ? v : NULL;
        info->identity_len = vlen;
    }
    rc = fy_zmtp_props_find(ready->data, ready->data_len, FY_ZMTP_PROP_FERRY, &v, &vlen);
    if (rc == 1) {
        const char *s = v;
        size_t i = 0;
        int ver = 0;
        info->ferry = 1;
        while (i < vlen && s[i] >= '0' && s[i] <= '9' && ver < 100000)
            ver = ver * 10 + (s[i++] - '0');
        if (i == vlen || s[i] != ';' || i == 0) {
            /* Unparseable version: treat as ferry with no capabilities rather than failing. */
            info->ferry_version = 0;
        } else {
            info->ferry_version = ver;
            info->ferry_caps = s + i + 1;
            info->ferry_caps_len = vlen - i - 1;
        }
    }
    rc = 0;
out:
    if (why != NULL)
        *why = reason;
    return rc;
}

int fy_zmtp_ferry_has_cap(const fy_zmtp_peer_info *info, const char *cap)
{
    if (info == NULL || !info->ferry || cap == NULL || info->ferry_caps == NULL)
        return 0;
    size_t want = strlen(cap);
    const char *s = info->ferry_caps;
    size_t n = info->ferry_caps_len, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == ',') {
            if (i - start == want && want > 0 && memcmp(s + start, cap, want) == 0)
                return 1;
            start = i + 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Socket types                                                                                */
/* ------------------------------------------------------------------------------------------- */

static const char *const zmtp_type_names[] = {
    [FERRY_PAIR] = "PAIR",     [FERRY_PUB] = "PUB",   [FERRY_SUB] = "SUB",
    [FERRY_REQ] = "REQ",       [FERRY_REP] = "REP",   [FERRY_DEALER] = "DEALER",
    [FERRY_ROUTER] = "ROUTER", [FERRY_PULL] = "PULL", [FERRY_PUSH] = "PUSH",
    [FERRY_XPUB] = "XPUB",     [FERRY_XSUB] = "XSUB",
};

#define ZMTP_NTYPES ((int)(sizeof zmtp_type_names / sizeof zmtp_type_names[0]))

const char *fy_zmtp_socket_type_name(int type)
{
    if (type < 0 || type >= ZMTP_NTYPES)
        return NULL;
    return zmtp_type_names[type];
}

int fy_zmtp_socket_type_from_name(const char *name, size_t len)
{
    if (name == NULL)
        return FERRY_EINVAL;
    for (int t = 0; t < ZMTP_NTYPES; t++) {
        const char *n = zmtp_type_names[t];
        if (strlen(n) == len && memcmp(n, name, len) == 0)
            return t;
    }
    return FERRY_EINVAL;
}

/* Bit b of zmtp_peers[a] set: a may talk to b. Kept symmetric (checked by the tests). */
#define ZMTP_BIT(t) (1u << (t))
static const uint32_t zmtp_peers[] = {
    [FERRY_PAIR] = ZMTP_BIT(FERRY_PAIR),
    [FERRY_PUB] = ZMTP_BIT(FERRY_SUB) | ZMTP_BIT(FERRY_XSUB),
    [FERRY_SUB] = ZMTP_BIT(FERRY_PUB) | ZMTP_BIT(FERRY_XPUB),
    [FERRY_REQ] = ZMTP_BIT(FERRY_REP) | ZMTP_BIT(FERRY_ROUTER),
    [FERRY_REP] = ZMTP_BIT(FERRY_REQ) | ZMTP_BIT(FERRY_DEALER),
    [FERRY_DEALER] = ZMTP_BIT(FERRY_REP) | ZMTP_BIT(FERRY_DEALER) | ZMTP_BIT(FERRY_ROUTER),
    [FERRY_ROUTER] = ZMTP_BIT(FERRY_REQ) | ZMTP_BIT(FERRY_DEALER) | ZMTP_BIT(FERRY_ROUTER),
    [FERRY_PULL] = ZMTP_BIT(FERRY_PUSH),
    [FERRY_PUSH] = ZMTP_BIT(FERRY_PULL),
    [FERRY_XPUB] = ZMTP_BIT(FERRY_SUB) | ZMTP_BIT(FERRY_XSUB),
    [FERRY_XSUB] = ZMTP_BIT(FERRY_PUB) | ZMTP_BIT(FERRY_XPUB),
};

int fy_zmtp_socket_types_compatible(int a, int b)
{
    if (a < 0 || a >= ZMTP_NTYPES || b < 0 || b >= ZMTP_NTYPES)
        return 0;
    return (zmtp_peers[a] & ZMTP_BIT(b)) != 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Subscriptions                                                                               */
/* ------------------------------------------------------------------------------------------- */

ssize_t fy_zmtp_subscription_encode(uint8_t *buf, size_t cap, uint8_t peer_major,
                                    uint8_t peer_minor, int subscribe, const void *prefix,
                                    size_t len)
{
    if (prefix == NULL && len > 0)
        return FERRY_EINVAL;
    if (fy_zmtp_version_has_sub_commands(peer_major, peer_minor)) {
        const char *name = subscribe ? "SUBSCRIBE" : "CANCEL";
        uint8_t *d = NULL;
        ssize_t n = zmtp_command_start(buf, cap, name, strlen(name), len, &d);
        if (n > 0 && buf != NULL && len > 0)
            memcpy(d, prefix, len);
        return n;
    }
    if ((uint64_t)len >= (UINT64_C(1) << 62))
        return FERRY_EMSGSIZE;
    ssize_t total = zmtp_check_room(buf, cap, zmtp_frame_size(1 + (uint64_t)len));
    if (total < 0 || buf == NULL)
        return total;
    int h = fy_zmtp_frame_header_encode(buf, 0, 1 + (uint64_t)len);
    if (h < 0)
        return h;
    buf[h] = subscribe ? 1 : 0;
    if (len > 0)
        memcpy(buf + h + 1, prefix, len);
    return total;
}

int fy_zmtp_subscription_decode(const fy_zmtp_frame *f, const uint8_t *body,
                                fy_zmtp_subscription *out)
{
    memset(out, 0, sizeof *out);
    if (f->flags & FY_ZMTP_FLAG_COMMAND) {
        fy_zmtp_command c;
        int rc = fy_zmtp_command_decode(body, (size_t)f->size, &c);
        if (rc < 0)
            return rc;
        if (c.type != FY_ZMTP_CMD_SUBSCRIBE && c.type != FY_ZMTP_CMD_CANCEL)
            return 0;
        out->subscribe = c.type == FY_ZMTP_CMD_SUBSCRIBE;
        out->prefix = c.arg;
        out->len = c.arg_len;
        return 1;
    }
    if (f->size == 0 || (f->flags & FY_ZMTP_FLAG_MORE) || body[0] > 1)
        return 0;
    out->subscribe = body[0] == 1;
    out->len = (size_t)f->size - 1;
    out->prefix = out->len ? body + 1 : NULL;
    return 1;
}
