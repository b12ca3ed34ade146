/*
 * zmtp.h - the pure ZMTP 3.0/3.1 codec (RFC 23, RFC 37) with the NULL mechanism.
 *
 * Everything here is arithmetic on caller buffers: no I/O, no globals, no allocation, so the stream
 * engine can parse many frames out of one large read and build a writev of header+body without
 * copying bodies, and so the fuzzers can drive every function directly. Every byte handed to a
 * decoder is treated as hostile: lengths are checked in 64-bit arithmetic before any use and no
 * size claimed by a peer ever drives an allocation here.
 *
 * Conventions: functions return >= 0 on success and a negative FERRY_E* code on failure. Decoded
 * results point INTO the caller's buffer (zero copy): they stay valid as long as that buffer does.
 * Encoders that produce variable-length output take (buf, cap): with buf == NULL they only return
 * the size they would write; with a too-small cap they write nothing and return FERRY_EMSGSIZE.
 */
#ifndef FERRY_WIRE_ZMTP_H
#define FERRY_WIRE_ZMTP_H

#include "ferry/ferry.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ------------------------------------------------------------------------------------------- */
/* Greeting                                                                                    */
/* ------------------------------------------------------------------------------------------- */

#define FY_ZMTP_GREETING_SIZE  64
#define FY_ZMTP_SIGNATURE_SIZE 10 /* 0xFF, 8 padding bytes, 0x7F: libzmq sends this part first */
#define FY_ZMTP_MECHANISM_SIZE 20
#define FY_ZMTP_MAJOR          3
#define FY_ZMTP_MINOR          1 /* ours; a peer announcing 3.0 gets the 3.0 subscription form */

/* A decoded greeting. mechanism is NUL-terminated with the zero padding stripped. */
typedef struct fy_zmtp_greeting {
    uint8_t major;
    uint8_t minor;
    uint8_t as_server; /* raw byte; ignored by the NULL mechanism */
    char mechanism[FY_ZMTP_MECHANISM_SIZE + 1];
} fy_zmtp_greeting;

/*
 * Writes our 64-byte greeting: signature 0xFF 0*8 0x7F, version 3.minor, `mechanism` (1..20 chars
 * of A-Z 0-9 - _ . +) zero-padded to 20 bytes, as-server (0/1), 31 zero filler bytes. We always
 * send all 64 bytes at once (waiting for the peer's first part as libzmq does can deadlock two
 * ferry peers). Returns FY_ZMTP_GREETING_SIZE or FERRY_EINVAL (bad mechanism / as_server).
 */
int fy_zmtp_greeting_encode(uint8_t out[FY_ZMTP_GREETING_SIZE], uint8_t minor,
                            const char *mechanism, int as_server);

/*
 * Validates the first `len` bytes (any len, bytes past 64 are ignored) of a peer's greeting, as
 * far as they go, so that a bad peer is rejected as early as its bytes allow (libzmq sends the
 * greeting in stages: 10 bytes, then 1, then the rest; any split must work).
 * Returns FY_ZMTP_GREETING_SIZE when all 64 bytes are present and valid (*out filled in; out may
 * be NULL), 0 when the prefix is valid so far but incomplete, or:
 *   FERRY_EPROTO            signature is not 0xFF ... 0x7F (e.g. a ZMTP 1.0 peer or not ZMTP at
 *                           all), or the mechanism field is not [A-Z0-9-_.+]{1,20} zero-padded;
 *   FERRY_EPROTONOSUPPORT   major version < 3 (ZMTP 1.0/2.0 peers);
 *   FERRY_ENOTSUP           a well-formed mechanism other than NULL (PLAIN, CURVE, ...).
 * On FERRY_ENOTSUP *out is still filled in so the caller can log which mechanism was asked for.
 * Padding, as-server and filler bytes are not significant and are not checked (libzmq puts its
 * identity length + 1 in the padding); of byte 9 only the low bit is checked, as libzmq does.
 * Major versions above 3 are accepted (RFC 37: the higher peer talks down to us).
 */
int fy_zmtp_greeting_check(const uint8_t *buf, size_t len, fy_zmtp_greeting *out);

/* Incremental wrapper for engines that do not keep the bytes themselves. */
typedef struct fy_zmtp_greeting_decoder {
    uint8_t buf[FY_ZMTP_GREETING_SIZE];
    uint32_t have;
    int status;                /* last result of fy_zmtp_greeting_check on buf[0..have) */
    fy_zmtp_greeting greeting; /* valid once fy_zmtp_greeting_feed returned 1 */
} fy_zmtp_greeting_decoder;

void fy_zmtp_greeting_decoder_init(fy_zmtp_greeting_decoder *d);
/*
 * Consumes at most the bytes still missing from the greeting (never more, so what follows it,
 * typically READY, stays in the caller's buffer); *consumed says how many. Returns 1 when the
 * greeting is complete and valid (d->greeting), 0 when more bytes are needed, or the negative
 * code of fy_zmtp_greeting_check (sticky: later calls return it again).
 */
int fy_zmtp_greeting_feed(fy_zmtp_greeting_decoder *d, const uint8_t *data, size_t len,
                          size_t *consumed);

/* 1 when a peer with this version expects SUBSCRIBE/CANCEL commands (3.1 and later), else 0. */
int fy_zmtp_version_has_sub_commands(uint8_t major, uint8_t minor);

/* ------------------------------------------------------------------------------------------- */
/* Frames                                                                                      */
/* ------------------------------------------------------------------------------------------- */

#define FY_ZMTP_FLAG_MORE           0x01
#define FY_ZMTP_FLAG_LONG           0x02
#define FY_ZMTP_FLAG_COMMAND        0x04
#define FY_ZMTP_FLAGS_KNOWN         0x07 /* any other bit set in a received flags byte is FERRY_EPROTO */
#define FY_ZMTP_MAX_HEADER          9   /* flags + 8-byte size */
#define FY_ZMTP_SHORT_MAX           255 /* bodies up to this use the 2-byte header */
#define FY_ZMTP_DEFAULT_MAX_MSG     (UINT64_C(1) << 30) /* 1 GiB per frame */
#define FY_ZMTP_DEFAULT_MAX_COMMAND (UINT64_C(1) << 16) /* 64 KiB per command frame */

/*
 * Writes the header of a frame of `size` body bytes into hdr: short form (flags, size) when
 * size <= 255, else LONG with the size as 8 bytes big-endian. flags may contain only
 * FY_ZMTP_FLAG_MORE or FY_ZMTP_FLAG_COMMAND (LONG is chosen here; commands never carry MORE).
 * Returns the header length (2 or 9), or FERRY_EINVAL for bad flags, FERRY_EMSGSIZE when
 * size >= 2^63.
 */
int fy_zmtp_frame_header_encode(uint8_t hdr[FY_ZMTP_MAX_HEADER], uint8_t flags, uint64_t size);

/* Per-connection receive limits; pass NULL to the decoder for the defaults above. */
typedef struct fy_zmtp_limits {
    uint64_t max_msg_size;     /* message frame bodies above this: FERRY_EMSGSIZE */
    uint64_t max_command_size; /* command frame bodies above this: FERRY_EPROTO */
} fy_zmtp_limits;

/* A received frame header. The body is at buf + header_len, size bytes long. */
typedef struct fy_zmtp_frame {
    uint64_t size;      /* body size; valid once header_len != 0 */
    uint8_t header_len; /* 2 or 9; 0 while the header itself is incomplete */
    uint8_t flags;      /* raw flags byte (only known bits can be set) */
} fy_zmtp_frame;

static inline int fy_zmtp_frame_more(const fy_zmtp_frame *f)
{
    return (f->flags & FY_ZMTP_FLAG_MORE) != 0;
}
static inline int fy_zmtp_frame_is_command(const fy_zmtp_frame *f)
{
    return (f->flags & FY_ZMTP_FLAG_COMMAND) != 0;
}

/*
 * Looks at the next frame in buf[0..len) (received bytes, starting at a frame boundary).
 * Returns:
 *   1  the whole frame is present: header f->header_len bytes, then f->size body bytes; the next
 *      frame starts at buf + f->header_len + f->size.
 *   0  incomplete: at least *need (>= 1) more bytes are required. While the header itself is
 *      incomplete (f->header_len == 0) that is a lower bound (a LONG flag seen later asks for
 *      more); once f->header_len != 0 the header is complete and validated (f->size, f->flags
 *      are final) and *need is exactly the missing body, so the engine may allocate the
 *      destination and read the remaining body straight into it.
 *   FERRY_EPROTO    reserved flag bits set, COMMAND together with MORE, a LONG size >= 2^63, or a
 *                   command body above lim->max_command_size;
 *   FERRY_EMSGSIZE  a message body above lim->max_msg_size.
 * A LONG header carrying a size < 256 is legal and accepted. need may be NULL. lim may be NULL.
 */
int fy_zmtp_frame_decode(const uint8_t *buf, size_t len, const fy_zmtp_limits *lim,
                         fy_zmtp_frame *f, uint64_t *need);

/* ------------------------------------------------------------------------------------------- */
/* Commands (a command frame's body: name-size, name, data)                                   */
/* ------------------------------------------------------------------------------------------- */

enum fy_zmtp_command_type {
    FY_ZMTP_CMD_UNKNOWN = 0, /* well-formed, name not one we know: callers ignore it */
    FY_ZMTP_CMD_READY,
    FY_ZMTP_CMD_ERROR,
    FY_ZMTP_CMD_SUBSCRIBE,
    FY_ZMTP_CMD_CANCEL,
    FY_ZMTP_CMD_PING,
    FY_ZMTP_CMD_PONG,
};

#define FY_ZMTP_PING_CONTEXT_MAX 16

/* A decoded command; every pointer points into the body that was parsed. */
typedef struct fy_zmtp_command {
    int type;            /* enum fy_zmtp_command_type */
    const char *name;    /* command name, NOT NUL-terminated */
    size_t name_len;     /* 1..255 */
    const uint8_t *data; /* everything after the name (READY: the property list) */
    size_t data_len;
    const uint8_t *arg; /* ERROR: reason; SUBSCRIBE/CANCEL: prefix; PING/PONG: context */
    size_t arg_len;
    uint16_t ttl_ds; /* PING only: the peer's TTL in deciseconds (0 = none) */
} fy_zmtp_command;

/*
 * Parses a command frame body. Names are matched exactly (case-sensitive, as libzmq does).
 * Returns 0 with *out filled in (type FY_ZMTP_CMD_UNKNOWN for unknown names), or FERRY_EPROTO
 * when malformed: empty body, name-size 0 or past the end, READY whose property list does not
 * parse exactly to the end, ERROR whose reason length does not match the data, PING with fewer
 * than 2 TTL bytes or a context > 16 bytes, PONG context > 16 bytes.
 */
int fy_zmtp_command_decode(const uint8_t *body, size_t len, fy_zmtp_command *out);

/*
 * Writes a complete command frame (header + body) with this name (1..255 bytes) and data.
 * buf/cap as described at the top. Returns the frame length or FERRY_EINVAL / FERRY_EMSGSIZE.
 */
ssize_t fy_zmtp_command_encode(uint8_t *buf, size_t cap, const char *name, const void *data,
                               size_t data_len);

/* ERROR command frame; reason 0..255 bytes (FERRY_EINVAL beyond). */
ssize_t fy_zmtp_error_encode(uint8_t *buf, size_t cap, const char *reason, size_t reason_len);
/* PING frame: ttl in deciseconds (RFC 37), context 0..16 bytes (FERRY_EINVAL beyond). */
ssize_t fy_zmtp_ping_encode(uint8_t *buf, size_t cap, uint16_t ttl_ds, const void *ctx,
                            size_t ctx_len);
/* PONG frame echoing a PING's context (0..16 bytes). */
ssize_t fy_zmtp_pong_encode(uint8_t *buf, size_t cap, const void *ctx, size_t ctx_len);

/* ------------------------------------------------------------------------------------------- */
/* READY and its metadata properties                                                          */
/* ------------------------------------------------------------------------------------------- */

/* Property names exactly as libzmq spells them (libzmq compares case-sensitively). */
#define FY_ZMTP_PROP_SOCKET_TYPE "Socket-Type"
#define FY_ZMTP_PROP_IDENTITY    "Identity"
#define FY_ZMTP_PROP_FERRY       "X-Ferry"
#define FY_ZMTP_FERRY_PROTO      1 /* version number we put first in X-Ferry */
#define FY_ZMTP_IDENTITY_MAX     255

/* One property: name 1..255 bytes (not NUL-terminated when decoded), value 0..2^32-1 bytes. */
typedef struct fy_zmtp_prop {
    const char *name;
    size_t name_len;
    const void *value;
    size_t value_len;
} fy_zmtp_prop;

/*
 * READY frame with exactly these properties, in this order. Names must be 1..255 chars of
 * A-Z a-z 0-9 - _ . + (FERRY_EINVAL otherwise), values < 2^32 bytes.
 */
ssize_t fy_zmtp_ready_encode_props(uint8_t *buf, size_t cap, const fy_zmtp_prop *props, size_t n);

/*
 * Our READY: Socket-Type (name of socket_type), Identity (0..255 bytes, may be empty), and, when
 * ferry_value is non-NULL, X-Ferry (e.g. "1;shm": our X-Ferry version, ';', comma-separated
 * capabilities). FERRY_EINVAL for an unknown socket type or an identity > 255 bytes.
 */
ssize_t fy_zmtp_ready_encode(uint8_t *buf, size_t cap, int socket_type, const void *identity,
                             size_t identity_len, const char *ferry_value);

/*
 * Iterates a READY property list (fy_zmtp_command.data). *pos starts at 0. Returns 1 with *p
 * filled, 0 at the end, FERRY_EPROTO when malformed (name-size 0, lengths past the end).
 */
int fy_zmtp_props_next(const uint8_t *data, size_t len, size_t *pos, fy_zmtp_prop *p);

/*
 * Finds the first property whose name equals `name` ignoring ASCII case. Returns 1 and sets
 * *value / *value_len (either may be NULL), 0 when absent, FERRY_EPROTO when malformed.
 */
int fy_zmtp_props_find(const uint8_t *data, size_t len, const char *name, const void **value,
                       size_t *value_len);

/* What a READY told us about the peer. Pointers point into the READY body. */
typedef struct fy_zmtp_peer_info {
    int socket_type;         /* enum ferry_socket_type */
    const uint8_t *identity; /* NULL/0 when the peer sent none */
    size_t identity_len;     /* 0..255 */
    int ferry;               /* 1 when the peer sent X-Ferry */
    int ferry_version;       /* the number before ';' (0 if absent or not a number) */
    const char *ferry_caps;  /* after ';', comma-separated, NOT NUL-terminated */
    size_t ferry_caps_len;
} fy_zmtp_peer_info;

/*
 * Validates a decoded READY against our socket type and extracts the peer's properties.
 * Returns 0, or FERRY_EPROTO (not a READY, Socket-Type missing or unknown, Identity > 255 bytes,
 * malformed list) or FERRY_EPROTONOSUPPORT (valid type that cannot talk to ours, e.g. PUSH-SUB).
 * *why (may be NULL) gets a static human-readable reason on failure.
 */
int fy_zmtp_ready_peer(const fy_zmtp_command *ready, int our_type, fy_zmtp_peer_info *info,
                       const char **why);

/* 1 when the peer's X-Ferry capability list (comma-separated) contains `cap` exactly. */
int fy_zmtp_ferry_has_cap(const fy_zmtp_peer_info *info, const char *cap);

/* ------------------------------------------------------------------------------------------- */
/* Socket types                                                                                */
/* ------------------------------------------------------------------------------------------- */

/* "PAIR", "PUB", ... for enum ferry_socket_type values; NULL for anything else. Static. */
const char *fy_zmtp_socket_type_name(int type);
/* The type for an exact (case-sensitive, as libzmq) name of len bytes, or FERRY_EINVAL. */
int fy_zmtp_socket_type_from_name(const char *name, size_t len);
/*
 * 1 when a socket of type a may talk to a peer of type b (symmetric): PAIR-PAIR, PUB-SUB,
 * PUB-XSUB, XPUB-SUB, XPUB-XSUB, REQ-REP, REQ-ROUTER, DEALER-REP, DEALER-ROUTER, DEALER-DEALER,
 * ROUTER-ROUTER, PUSH-PULL. 0 otherwise (including unknown types).
 */
int fy_zmtp_socket_types_compatible(int a, int b);

/* ------------------------------------------------------------------------------------------- */
/* Subscriptions                                                                               */
/* ------------------------------------------------------------------------------------------- */

/*
 * Writes a complete subscribe (subscribe=1) or cancel (0) frame for `prefix` in the form a peer
 * of version major.minor expects: 3.1+ a SUBSCRIBE/CANCEL command, 3.0 a single-frame message
 * whose first byte is 1 (subscribe) / 0 (cancel) followed by the prefix.
 */
ssize_t fy_zmtp_subscription_encode(uint8_t *buf, size_t cap, uint8_t peer_major,
                                    uint8_t peer_minor, int subscribe, const void *prefix,
                                    size_t len);

typedef struct fy_zmtp_subscription {
    int subscribe;         /* 1 subscribe, 0 cancel */
    const uint8_t *prefix; /* points into the body */
    size_t len;
} fy_zmtp_subscription;

/*
 * Interprets a received frame on a PUB/XPUB link as a subscription in either form. Pass the
 * decoded header and its complete body; for message frames pass only frames that START a
 * message. Returns 1 with *out filled, 0 when the frame is not a subscription (another command,
 * an empty message, a message whose first byte is neither 0 nor 1, or a multi-frame message:
 * XPUB hands those to the application), FERRY_EPROTO for a malformed command.
 */
int fy_zmtp_subscription_decode(const fy_zmtp_frame *f, const uint8_t *body,
                                fy_zmtp_subscription *out);

#endif /* FERRY_WIRE_ZMTP_H */
