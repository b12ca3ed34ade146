/*
 * msg.c - frames (fy_msg) and the public ferry_msg API on top of them.
 *
 * Small bodies live inline in the 64-byte message so that short frames cost no allocation; larger
 * ones live in one malloc block holding the reference count and the bytes, so fan-out (PUB) shares
 * a body instead of copying it. Zero-copy user buffers get a separate small header that calls the
 * user's free function when the last reference goes.
 */
#include "core/msg.h"
#include "common/copy.h"

#include <stdlib.h>
#include <string.h>

void fy_msg_init(fy_msg *m)
{
    m->content = NULL;
    m->size = 0;
    m->flags = 0;
    m->unused_ = 0;
}

int fy_msg_init_size(fy_msg *m, size_t size)
{
    fy_msg_init(m);
    if (size <= FY_MSG_INLINE) {
        m->size = size;
        return 0;
    }
    if (size > SIZE_MAX - sizeof(fy_msg_content))
        return FERRY_ENOMEM;
    fy_msg_content *c = malloc(sizeof *c + size);
    if (!c)
        return FERRY_ENOMEM;
    atomic_init(&c->refs, 1);
    c->zc = FY_MSG_ZC_NONE;
    c->ffn = NULL;
    c->hint = NULL;
    c->data = (uint8_t *)(c + 1);
    c->drop = NULL;
    m->content = c;
    m->size = size;
    return 0;
}

int fy_msg_init_copy(fy_msg *m, const void *buf, size_t size)
{
    int rc = fy_msg_init_size(m, size);
    if (rc == 0 && size)
        fy_copy(fy_msg_data(m), buf, size);
    return rc;
}

int fy_msg_init_data(fy_msg *m, void *data, size_t size, ferry_free_fn *ffn, void *hint)
{
    fy_msg_init(m);
    if (!data && size)
        return FERRY_EINVAL;
    fy_msg_content *c = malloc(sizeof *c);
    if (!c)
        return FERRY_ENOMEM;
    atomic_init(&c->refs, 1);
    c->zc = FY_MSG_ZC_NONE;
    c->ffn = ffn;
    c->hint = hint;
    c->data = data;
    c->drop = NULL;
    m->content = c;
    m->size = size;
    return 0;
}

static void fy_msg_content_release(fy_msg_content *c)
{
    /* acq_rel: the last releaser must see every write other holders made before releasing. */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (c->drop) {
        c->drop(c);
        return;
    }
    if (c->ffn)
        c->ffn(c->data, c->hint);
    free(c);
}

int fy_msg_init_cached(fy_msg *m, fy_msg_content **cache, size_t size)
{
    if (size <= FY_MSG_INLINE || size > FY_MSG_CACHE_MAX)
        return fy_msg_init_size(m, size);
    fy_msg_content *c = *cache;
    /* acquire: pairs with the acq_rel decrement of the frame that used the block last, so its
     * reads of the body happen before the next frame overwrites it. A count of 1 means only the
     * cache holds the block; nobody else can take a reference then, so the plain store below
     * cannot race. */
    if (c && (atomic_load_explicit(&c->refs, memory_order_acquire) != 1 || c->cap < size)) {
        fy_msg_content_release(c);
        c = *cache = NULL;
    }
    if (!c) {
        size_t cap = 256;
        while (cap < size)
            cap *= 2;
        c = malloc(sizeof *c + cap);
        if (!c)
            return FERRY_ENOMEM;
        atomic_init(&c->refs, 1);
        c->cap = (uint32_t)cap;
        c->zc = FY_MSG_ZC_NONE;
        c->ffn = NULL;
        c->hint = NULL;
        c->data = (uint8_t *)(c + 1);
        c->drop = NULL;
        *cache = c;
    }
    atomic_store_explicit(&c->refs, 2, memory_order_relaxed);
    fy_msg_init(m);
    m->content = c;
    m->size = size;
    return 0;
}

void fy_msg_cache_drop(fy_msg_content **cache)
{
    if (*cache)
        fy_msg_content_release(*cache);
    *cache = NULL;
}

static void fy_msg_block_free(void *data, void *hint)
{
    (void)hint;
    free(data);
}

int fy_msg_init_block(fy_msg *m, size_t size, size_t cap)
{
    fy_msg_init(m);
    if (cap > size)
        cap = size;
    if (size > UINT32_MAX)
        return FERRY_EMSGSIZE; /* beyond any frame the engine accepts (1 GiB) */
    fy_msg_content *c = malloc(sizeof *c);
    uint8_t *d = malloc(cap ? cap : 1);
    if (!c || !d) {
        free(c);
        free(d);
        return FERRY_ENOMEM;
    }
    atomic_init(&c->refs, 1);
    c->zc = FY_MSG_ZC_NONE;
    c->cap = (uint32_t)cap;
    c->ffn = fy_msg_block_free;
    c->hint = NULL;
    c->data = d;
    c->drop = NULL;
    m->content = c;
    m->size = size;
    return 0;
}

int fy_msg_block_grow(fy_msg *m, size_t cap)
{
    fy_msg_content *c = m->content;
    if (!c || c->ffn != fy_msg_block_free || cap > m->size)
        return FERRY_EINVAL;
    if (cap <= c->cap)
        return 0;
    uint8_t *d = realloc(c->data, cap);
    if (!d)
        return FERRY_ENOMEM;
    c->data = d;
    c->cap = (uint32_t)cap;
    return 0;
}

/* A block in the pool is free when only the pool holds it. */
static bool fy_msg_pool_free_slot(fy_msg_content *c, size_t size)
{
    /* acquire: pairs with the acq_rel decrement of the frame that used the block last (maybe on
     * another thread: a write by the control thread, a release by the application), so its reads
     * of the body happen before the next frame overwrites it. */
    return c && c->cap >= size && c->cap / FY_MSG_POOL_SLACK <= size &&
           atomic_load_explicit(&c->refs, memory_order_acquire) == 1;
}

int fy_msg_pool_take(fy_msg *m, fy_msg_pool *pool, size_t size)
{
    fy_msg_init(m);
    for (int i = 0; i < FY_MSG_POOL_SLOTS; i++) {
        fy_msg_content *c = pool->slot[i];
        if (!fy_msg_pool_free_slot(c, size))
            continue;
        /* Only the pool holds it, so nobody can take a reference concurrently. */
        atomic_store_explicit(&c->refs, 2, memory_order_relaxed);
        m->content = c;
        m->size = size;
        return 1;
    }
    return 0;
}

void fy_msg_pool_keep(fy_msg_pool *pool, const fy_msg *m)
{
    fy_msg_content *c = m->content;
    if (!c || c->ffn != fy_msg_block_free || c->cap > FY_MSG_POOL_MAX)
        return;
    int victim = -1;
    for (int i = 0; i < FY_MSG_POOL_SLOTS; i++) {
        if (pool->slot[i] == c)
            return;
        if (victim < 0 && !pool->slot[i])
            victim = i;
    }
    if (victim < 0) {
        /* Prefer a block that is in use (its holder frees it) or smaller than this one. */
        for (int i = 0; i < FY_MSG_POOL_SLOTS && victim < 0; i++) {
            fy_msg_content *o = pool->slot[i];
            if (atomic_load_explicit(&o->refs, memory_order_relaxed) != 1 || o->cap < c->cap)
                victim = i;
        }
        if (victim < 0)
            victim = (int)(pool->next++ % FY_MSG_POOL_SLOTS);
        fy_msg_content_release(pool->slot[victim]);
    }
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    pool->slot[victim] = c;
}

int fy_msg_init_pooled(fy_msg *m, fy_msg_pool *pool, size_t size)
{
    if (size <= FY_MSG_CACHE_MAX || size > FY_MSG_POOL_MAX)
        return fy_msg_init_size(m, size);
    if (fy_msg_pool_take(m, pool, size))
        return 0;
    int rc = fy_msg_init_block(m, size, size);
    if (rc == 0)
        fy_msg_pool_keep(pool, m);
    return rc;
}

void fy_msg_pool_fini(fy_msg_pool *pool)
{
    if (!pool)
        return;
    for (int i = 0; i < FY_MSG_POOL_SLOTS; i++) {
        if (pool->slot[i])
            fy_msg_content_release(pool->slot[i]);
        pool->slot[i] = NULL;
    }
}

void fy_msg_fini(fy_msg *m)
{
    if (!m)
        return;
    if (m->content)
        fy_msg_content_release(m->content);
    fy_msg_init(m);
}

void fy_msg_move(fy_msg *dst, fy_msg *src)
{
    if (dst == src)
        return;
    fy_msg_fini(dst);
    *dst = *src;
    fy_msg_init(src);
}

void fy_msg_copy(fy_msg *dst, const fy_msg *src)
{
    if (dst == src)
        return;
    fy_msg_fini(dst);
    *dst = *src;
    if (src->content)
        atomic_fetch_add_explicit(&src->content->refs, 1, memory_order_relaxed);
}

/* ---- public ferry_msg API ---- */

void ferry_msg_init(ferry_msg *m)
{
    if (m)
        fy_msg_init((fy_msg *)m);
}

int ferry_msg_init_size(ferry_msg *m, size_t size)
{
    if (!m)
        return FERRY_EINVAL;
    return fy_msg_init_size((fy_msg *)m, size);
}

int ferry_msg_init_data(ferry_msg *m, void *data, size_t size, ferry_free_fn *ffn, void *hint)
{
    if (!m)
        return FERRY_EINVAL;
    return fy_msg_init_data((fy_msg *)m, data, size, ffn, hint);
}

void ferry_msg_fini(ferry_msg *m)
{
    fy_msg_fini((fy_msg *)m);
}

void *ferry_msg_data(ferry_msg *m)
{
    return m ? fy_msg_data((fy_msg *)m) : NULL;
}

size_t ferry_msg_size(const ferry_msg *m)
{
    return m ? fy_msg_size((const fy_msg *)m) : 0;
}

int ferry_msg_more(const ferry_msg *m)
{
    return m ? fy_msg_more((const fy_msg *)m) : 0;
}

int ferry_msg_is_loaned(const ferry_msg *m)
{
    return m && fy_msg_zc((const fy_msg *)m) != FY_MSG_ZC_NONE;
}

int ferry_msg_trim(ferry_msg *m, size_t size)
{
    if (!m)
        return FERRY_EINVAL;
    fy_msg *f = (fy_msg *)m;
    if (size > fy_msg_size(f))
        return FERRY_ERANGE;
    f->size = size;
    return 0;
}
