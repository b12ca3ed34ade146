/*
 * shm_record.c - the receiver's check of the shm pipe's ring records (format in shm_record.h).
 * Pure: it reads only its arguments, so fuzz/fuzz_shm_records.c drives it with arbitrary meta
 * words, lengths and limits at full speed, and shm_pipe.c's reader relies on the same code.
 */
#include "transport/shm_record.h"

#include "ferry/ferry.h"

int fy_shm_rec_check(const fy_shm_rec_asm *a, uint64_t meta, size_t len, uint64_t max_msg,
                     fy_shm_rec *r)
{
    if (len < FY_SHM_REC_META)
        return FERRY_EPROTO;
    uint32_t fl = (uint32_t)(meta & 0xffu);
    uint64_t total = meta >> 8;
    uint64_t n = (uint64_t)len - FY_SHM_REC_META;
    if (fl & ~FY_SHM_REC_FLAGS)
        return FERRY_EPROTO;
    r->flags = fl & (FY_SHM_REC_MORE | FY_SHM_REC_SUB);
    r->total = total;
    r->n = n;
    if (!a->on) {
        if (fl & FY_SHM_REC_CONT)
            return FERRY_EPROTO;
        if (!(fl & FY_SHM_REC_CHUNK)) {
            /* A whole record obeys the same size limit as a reassembled one (a hostile peer
             * could otherwise deliver anything up to the ring's size: known bug 4). */
            if (total != n || total > max_msg)
                return FERRY_EPROTO;
            r->kind = FY_SHM_REC_WHOLE;
            return 0;
        }
        /* A first chunk that already holds the whole frame is no chunk. */
        if (total <= n || total > max_msg)
            return FERRY_EPROTO;
        r->kind = FY_SHM_REC_FIRST;
        return 0;
    }
    /* a->have <= a->total always (advance only adds what this check allowed). */
    uint64_t left = a->total - a->have;
    if (!(fl & FY_SHM_REC_CONT) || total != a->total || r->flags != a->flags || n > left)
        return FERRY_EPROTO;
    if (fl & FY_SHM_REC_CHUNK) {
        if (n == left) /* says more follow, but nothing is left for them */
            return FERRY_EPROTO;
        r->kind = FY_SHM_REC_MIDDLE;
    } else {
        if (n != left)
            return FERRY_EPROTO;
        r->kind = FY_SHM_REC_LAST;
    }
    return 0;
}

void fy_shm_rec_advance(fy_shm_rec_asm *a, const fy_shm_rec *r)
{
    switch (r->kind) {
    case FY_SHM_REC_FIRST:
        a->on = true;
        a->total = r->total;
        a->have = r->n;
        a->flags = r->flags;
        break;
    case FY_SHM_REC_MIDDLE:
        a->have += r->n;
        break;
    case FY_SHM_REC_LAST:
        *a = (fy_shm_rec_asm){0};
        break;
    default: /* FY_SHM_REC_WHOLE: nothing open before or after */
        break;
    }
}
