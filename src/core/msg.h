/*
 * msg.h - the internal message frame (fy_msg), the storage behind the public ferry_msg.
 *
 * A fy_msg is one frame: flags plus a body that is either stored inline (small frames, no
 * allocation) or in a reference-counted heap/user block (large frames and zero-copy user buffers),
 * so a publisher can fan one frame out to many pipes with fy_msg_copy() without copying bytes.
 * It is exactly the size of ferry_msg, and the public API casts between the two.
 *
 * Ownership: a fy_msg owns one reference to its content. fy_msg_move() transfers it (the source is
 * left empty), fy_msg_copy() takes another reference, fy_msg_fini() drops it. An initialised empty
 * message (fy_msg_init) holds nothing and needs no fini, but fini on it is harmless.
 */
#ifndef FERRY_CORE_MSG_H
#define FERRY_CORE_MSG_H

#include "ferry/ferry.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Frame flags (fy_msg.flags). */
#define FY_MSG_MORE 0x1u /* more frames of the same message follow */
/*
 * The frame is a subscription control message in the normalised 3.0 form: body = 0x01 + prefix
 * (subscribe) or 0x00 + prefix (cancel). The stream engine encodes it as a ZMTP 3.1 SUBSCRIBE/
 * CANCEL command for peers announcing minor version >= 1 and as this plain frame for 3.0 peers;
 * incoming SUBSCRIBE/CANCEL commands are delivered in this form with this flag set. SUB/XSUB
 * patterns set it on the frames they send upstream; XPUB/PUB see it on what they receive (a 3.0
 * peer's subscription arrives as a plain frame without the flag: patterns must accept both).
 * Subscription frames bypass the SNDHWM check (they must never be lost).
 */
#define FY_MSG_SUB     0x2u
#define FY_MSG_COMMAND 0x4u /* engine-internal: a ZMTP command; never seen by patterns */

#define FY_MSG_INLINE 40 /* bodies up to this many bytes live inside the fy_msg */

/* Where a content's bytes live (fy_msg_content.zc). */
#define FY_MSG_ZC_NONE 0u /* heap or user memory */
#define FY_MSG_ZC_LOAN 1u /* space reserved in an shm peer's ring (ferry_msg_loan) */
#define FY_MSG_ZC_RING 2u /* a received frame still inside the peer's ring (released on drop) */

/* The shared body of a large or zero-copy frame. */
typedef struct fy_msg_content {
    _Atomic uint32_t refs;
    uint32_t zc;        /* FY_MSG_ZC_* */
    uint32_t cap;       /* cached and pooled blocks: bytes at data (else unused) */
    ferry_free_fn *ffn; /* NULL: the body is part of this allocation (or caller-owned) */
    void *hint;
    uint8_t *data;
    /* Transport-owned content (shm loans and in-ring frames, embedded in the transport's own
     * storage): called on the last reference instead of ffn + free. */
    void (*drop)(struct fy_msg_content *c);
} fy_msg_content;

typedef struct fy_msg {
    fy_msg_content *content; /* NULL: body is inline (size <= FY_MSG_INLINE) */
    uint64_t size;
    uint32_t flags;   /* FY_MSG_* */
    uint32_t unused_; /* keeps inline_ 8-aligned */
    uint8_t inline_[FY_MSG_INLINE];
} fy_msg;

_Static_assert(sizeof(fy_msg) == sizeof(ferry_msg), "fy_msg must overlay ferry_msg");

/* An empty frame (size 0, no flags). Never fails. */
void fy_msg_init(fy_msg *m);
/* A frame of size bytes (contents uninitialised): inline when small, else one heap block. */
int fy_msg_init_size(fy_msg *m, size_t size);
/* A frame holding a copy of buf[0..size). */
int fy_msg_init_copy(fy_msg *m, const void *buf, size_t size);
/* Zero-copy: the frame references data; ffn(data, hint) runs when the last reference goes
 * (ffn NULL: the caller keeps ownership and guarantees data outlives every copy). */
int fy_msg_init_data(fy_msg *m, void *data, size_t size, ferry_free_fn *ffn, void *hint);
/*
 * Reusable body blocks. A producer of many short-lived frames (the stream engine for every frame
 * it parses, ferry_socket_send for every buffer it copies) keeps one block in *cache and builds
 * each frame in it while nobody else still holds the previous one: one atomic release per frame
 * instead of a malloc/free pair. A frame somebody keeps (queued, held by the application) just
 * keeps its block; the cache then moves on to a fresh one. Bodies up to FY_MSG_INLINE stay
 * inline and bodies above FY_MSG_CACHE_MAX get their own block, as with fy_msg_init_size.
 * The cache belongs to one thread at a time (its owner's lock).
 */
#define FY_MSG_CACHE_MAX 8192
int fy_msg_init_cached(fy_msg *m, fy_msg_content **cache, size_t size);
/* Drops the cache's reference (the block lives on while frames use it). Accepts *cache NULL. */
void fy_msg_cache_drop(fy_msg_content **cache);
/*
 * Large body blocks (above FY_MSG_CACHE_MAX). A fresh multi-megabyte malloc per frame is mostly
 * page faults and zeroing (mmap), which made 1 MiB frames cost more than the copies themselves.
 * A pool keeps up to FY_MSG_POOL_SLOTS blocks of at most FY_MSG_POOL_MAX bytes and hands out one
 * nobody else holds (reference count back to 1, read with acquire) and that is big enough, but
 * not more than FY_MSG_POOL_SLACK times too big (a kept frame pins its whole block). A frame the
 * application keeps just keeps its block; the pool then allocates another one. A block's bytes
 * live in their own buffer (c->data, c->cap bytes) so a receiver can grow it as bytes arrive.
 * A pool belongs to one thread at a time (the socket's owner); blocks may be released anywhere.
 */
#define FY_MSG_POOL_SLOTS 4
#define FY_MSG_POOL_MAX   (8u * 1024u * 1024u)
#define FY_MSG_POOL_SLACK 4u
typedef struct fy_msg_pool {
    fy_msg_content *slot[FY_MSG_POOL_SLOTS];
    uint32_t next; /* victim when every slot is taken */
} fy_msg_pool;
/* A frame of size bytes in a pooled block when one is free, else in a new block of exactly size
 * bytes that the pool keeps (when size <= FY_MSG_POOL_MAX). Small sizes fall back to
 * fy_msg_init_size. */
int fy_msg_init_pooled(fy_msg *m, fy_msg_pool *pool, size_t size);
/* A frame of size bytes in a free pooled block of at least size bytes, if the pool has one:
 * 1 (m set), 0 (m left empty, nothing allocated). */
int fy_msg_pool_take(fy_msg *m, fy_msg_pool *pool, size_t size);
/* A frame of size bytes whose block has room for only cap (<= size) bytes so far, for bodies
 * filled as they arrive; fy_msg_block_grow raises the room (realloc, the frame must not be shared
 * yet). fy_msg_block_cap tells the room of such a block. */
int fy_msg_init_block(fy_msg *m, size_t size, size_t cap);
int fy_msg_block_grow(fy_msg *m, size_t cap);
static inline size_t fy_msg_block_cap(const fy_msg *m)
{
    return m->content ? m->content->cap : 0;
}
/* Offers m's block (made by fy_msg_init_block, complete) to the pool, which takes a reference
 * when the block is not too large. */
void fy_msg_pool_keep(fy_msg_pool *pool, const fy_msg *m);
/* Drops the pool's references (blocks in use live on). Accepts NULL. */
void fy_msg_pool_fini(fy_msg_pool *pool);
/* Drops the content reference and leaves m empty. Accepts NULL. */
void fy_msg_fini(fy_msg *m);
/* dst (whose old content is released first) takes src's content; src is left empty. */
void fy_msg_move(fy_msg *dst, fy_msg *src);
/* dst (old content released) shares src's body (reference count; inline bodies are copied) and
 * gets src's flags. Never fails. */
void fy_msg_copy(fy_msg *dst, const fy_msg *src);

static inline uint8_t *fy_msg_data(fy_msg *m)
{
    return m->content ? m->content->data : m->inline_;
}
static inline const uint8_t *fy_msg_cdata(const fy_msg *m)
{
    return m->content ? m->content->data : m->inline_;
}
static inline size_t fy_msg_size(const fy_msg *m)
{
    return (size_t)m->size;
}
static inline unsigned fy_msg_zc(const fy_msg *m)
{
    return m->content ? m->content->zc : FY_MSG_ZC_NONE;
}
static inline bool fy_msg_more(const fy_msg *m)
{
    return (m->flags & FY_MSG_MORE) != 0;
}

#endif
