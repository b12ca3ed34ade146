/*
 * segment.c - shared-memory segments: sealed memfds (default) or named POSIX
 * shm objects.
 *
 * A segment is the unit of memory two processes share. Anonymous segments are
 * memfds that are fully allocated (posix_fallocate) before anyone maps them, so
 * an exhausted tmpfs or memory limit is reported here as
 * FERRY_ENOSPC/FERRY_ENOMEM instead of as SIGBUS on first touch, and then
 * sealed against shrinking and growing so a peer holding the fd can never pull
 * pages out from under our mapping. Attaching to a received fd re-checks those
 * seals and the size before mapping anything: the fd comes from a peer we do
 * not trust.
 */
#include "ferry/ring.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#ifdef FERRY_HAVE_NUMA
#include <numaif.h>
#endif

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif

#define FY_SEG_REQUIRED_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define FY_SEG_HUGE_SIZE      (2u * 1024u * 1024u)
#define FY_SEG_NAME_MAX       255

struct ferry_segment {
    void *base;
    size_t size;
    int fd;
    bool hugetlb;
    char *name; /* set only for a named segment this process created: unlinked on
                   close */
};

static size_t fy_seg_page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096u;
}

/* Rounds up to a multiple of align (a power of two); 0 on overflow. */
static size_t fy_seg_round_up(size_t v, size_t align)
{
    if (v > SIZE_MAX - (align - 1))
        return 0;
    return (v + align - 1) & ~(align - 1);
}

/*
 * A memfd lives on the kernel's internal tmpfs, which has no size limit:
 * posix_fallocate of more than the machine can hold would push the whole system
 * into the OOM killer before failing. Refuse such sizes up front; smaller
 * requests that still do not fit fail inside posix_fallocate.
 */
static int fy_seg_check_memory(size_t size)
{
    struct sysinfo si;
    if (sysinfo(&si) != 0)
        return 0;
    unsigned __int128 total = ((unsigned __int128)si.totalram + si.totalswap) * si.mem_unit;
    return (unsigned __int128)size > total ? FERRY_ENOMEM : 0;
}

static int fy_seg_fallocate(int fd, size_t size)
{
    if (size > (size_t)LLONG_MAX)
        return FERRY_EINVAL;
    int r;
    do {
        r = posix_fallocate(fd, 0, (off_t)size); /* returns the error, does not set errno */
    } while (r == EINTR);
    if (r == 0)
        return 0;
    if (r == EFBIG || r == ENOSPC)
        return FERRY_ENOSPC;
    return -r;
}

static int fy_seg_numa_bind(void *base, size_t size, int node)
{
#ifdef FERRY_HAVE_NUMA
    if (node < 0 || node >= 1024)
        return FERRY_EINVAL;
    unsigned long mask[1024 / (8 * sizeof(unsigned long))];
    memset(mask, 0, sizeof mask);
    mask[(unsigned)node / (8 * sizeof(unsigned long))] |=
        1ul << ((unsigned)node % (8 * sizeof(unsigned long)));
    if (mbind(base, size, MPOL_BIND, mask, 1024, MPOL_MF_STRICT | MPOL_MF_MOVE) != 0)
        return -errno;
    return 0;
#else
    (void)base;
    (void)size;
    (void)node;
    return FERRY_ENOTSUP;
#endif
}

static int fy_seg_wrap(ferry_segment **out, void *base, size_t size, int fd, bool hugetlb,
                       const char *name)
{
    ferry_segment *seg = calloc(1, sizeof *seg);
    if (!seg)
        return FERRY_ENOMEM;
    if (name) {
        seg->name = strdup(name);
        if (!seg->name) {
            free(seg);
            return FERRY_ENOMEM;
        }
    }
    seg->base = base;
    seg->size = size;
    seg->fd = fd;
    seg->hugetlb = hugetlb;
    *out = seg;
    return 0;
}

static int fy_seg_check_name(const char *name)
{
    /* POSIX shm names are "/something" with no further slash; accept "something"
     * too. */
    const char *n = name[0] == '/' ? name + 1 : name;
    size_t len = strlen(n);
    if (len == 0 || strchr(n, '/'))
        return FERRY_EINVAL;
    if (len > FY_SEG_NAME_MAX - 1)
        return FERRY_ENAMETOOLONG;
    return 0;
}

static void fy_seg_format_name(char *buf, const char *name)
{
    buf[0] = '/';
    strcpy(buf + 1, name[0] == '/' ? name + 1 : name);
}

/* Maps fd (already sized and allocated) with the requested placement options.
 */
static int fy_seg_map(int fd, size_t size, bool hugetlb, const ferry_segment_opts *opts,
                      void **base_out)
{
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return errno == ENOMEM ? FERRY_ENOMEM : -errno;
    if ((opts->flags & FERRY_SEG_HUGEPAGES) && !hugetlb)
        (void)madvise(base, size, MADV_HUGEPAGE); /* best effort: THP may be disabled */
    if (opts->flags & FERRY_SEG_NUMA) {
        int rc = fy_seg_numa_bind(base, size, opts->numa_node);
        if (rc < 0) {
            munmap(base, size);
            return rc;
        }
    }
    *base_out = base;
    return 0;
}

/*
 * Creates one anonymous memfd: size it, map it (so NUMA policy applies to the
 * allocation), allocate every page, then seal it.
 */
static int fy_seg_open_memfd(const ferry_segment_opts *opts, size_t size, bool hugetlb, int *fd_out,
                             void **base_out)
{
    unsigned mflags = MFD_CLOEXEC | MFD_ALLOW_SEALING | (hugetlb ? MFD_HUGETLB : 0);
    int fd = memfd_create("ferry-segment", mflags);
    if (fd < 0)
        return errno == EMFILE || errno == ENFILE ? FERRY_EMFILE : -errno;
    int rc = 0;
    void *base = NULL;
    if (ftruncate(fd, (off_t)size) != 0) {
        rc = errno == EFBIG ? FERRY_ENOSPC : -errno;
        goto fail;
    }
    rc = fy_seg_map(fd, size, hugetlb, opts, &base);
    if (rc < 0)
        goto fail;
    rc = fy_seg_fallocate(fd, size);
    if (rc < 0)
        goto fail;
    if (fcntl(fd, F_ADD_SEALS, FY_SEG_REQUIRED_SEALS) != 0) {
        rc = -errno;
        goto fail;
    }
    *fd_out = fd;
    *base_out = base;
    return 0;
fail:
    if (base)
        munmap(base, size);
    close(fd);
    return rc;
}

static int fy_seg_open_named(const ferry_segment_opts *opts, size_t size, int *fd_out,
                             void **base_out)
{
    char path[FY_SEG_NAME_MAX + 2];
    fy_seg_format_name(path, opts->name);
    mode_t mode = opts->mode ? (mode_t)(opts->mode & 0777) : 0600;
    int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    /* shm_open applies the umask; the caller asked for exactly these bits. */
    int rc = 0;
    void *base = NULL;
    if (fchmod(fd, mode) != 0) {
        rc = -errno;
        goto fail;
    }
    if (ftruncate(fd, (off_t)size) != 0) {
        rc = errno == EFBIG ? FERRY_ENOSPC : -errno;
        goto fail;
    }
    rc = fy_seg_map(fd, size, false, opts, &base);
    if (rc < 0)
        goto fail;
    rc = fy_seg_fallocate(fd, size);
    if (rc < 0)
        goto fail;
    *fd_out = fd;
    *base_out = base;
    return 0;
fail:
    if (base)
        munmap(base, size);
    close(fd);
    shm_unlink(path);
    return rc;
}

int ferry_segment_open(ferry_segment **out, const ferry_segment_opts *opts)
{
    if (!out)
        return FERRY_EINVAL;
    *out = NULL;
    if (!opts || opts->size == 0)
        return FERRY_EINVAL;
    if (opts->flags & ~(unsigned)(FERRY_SEG_HUGEPAGES | FERRY_SEG_NUMA))
        return FERRY_EINVAL; /* READONLY/TRUSTED are attach-only */
    if (opts->mode & ~0777u)
        return FERRY_EINVAL;
#ifndef FERRY_HAVE_NUMA
    if (opts->flags & FERRY_SEG_NUMA)
        return FERRY_ENOTSUP;
#endif
    if (opts->name) {
        int rc = fy_seg_check_name(opts->name);
        if (rc < 0)
            return rc;
    }
    size_t size = fy_seg_round_up(opts->size, fy_seg_page_size());
    if (size == 0 || size > (size_t)LLONG_MAX)
        return FERRY_EINVAL;
    int rc = fy_seg_check_memory(size);
    if (rc < 0)
        return rc;

    int fd = -1;
    void *base = NULL;
    bool hugetlb = false;
    if (opts->name) {
        rc = fy_seg_open_named(opts, size, &fd, &base);
    } else {
        rc = -1;
        if (opts->flags & FERRY_SEG_HUGEPAGES) {
            size_t hsize = fy_seg_round_up(opts->size, FY_SEG_HUGE_SIZE);
            if (hsize != 0 && hsize <= (size_t)LLONG_MAX &&
                fy_seg_open_memfd(opts, hsize, true, &fd, &base) == 0) {
                size = hsize;
                hugetlb = true;
                rc = 0;
            }
        }
        if (!hugetlb) /* no hugetlbfs pages reserved: THP via madvise in fy_seg_map
                       */
            rc = fy_seg_open_memfd(opts, size, false, &fd, &base);
    }
    if (rc < 0)
        return rc;
    rc = fy_seg_wrap(out, base, size, fd, hugetlb, opts->name);
    if (rc < 0) {
        munmap(base, size);
        close(fd);
        if (opts->name) {
            char path[FY_SEG_NAME_MAX + 2];
            fy_seg_format_name(path, opts->name);
            shm_unlink(path);
        }
    }
    return rc;
}

/* Validates a peer's fd and maps it; on failure the fd is left open for the
 * caller. */
static int fy_seg_attach_fd(ferry_segment **out, int fd, unsigned flags, bool require_seals)
{
    if (require_seals) {
        int seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0)
            return errno == EBADF ? FERRY_EBADF : FERRY_EPROTO; /* EINVAL: not a memfd */
        if ((seals & FY_SEG_REQUIRED_SEALS) != FY_SEG_REQUIRED_SEALS)
            return FERRY_EPROTO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > (uint64_t)SIZE_MAX ||
        ((uint64_t)st.st_size % fy_seg_page_size()) != 0)
        return FERRY_EPROTO;
    size_t size = (size_t)st.st_size;
    int prot = (flags & FERRY_SEG_READONLY) ? PROT_READ : PROT_READ | PROT_WRITE;
    void *base = mmap(NULL, size, prot, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return errno == ENOMEM ? FERRY_ENOMEM : -errno;
    int rc = fy_seg_wrap(out, base, size, fd, false, NULL);
    if (rc < 0)
        munmap(base, size);
    return rc;
}

int ferry_segment_attach(ferry_segment **out, int fd, unsigned flags)
{
    if (!out)
        return FERRY_EINVAL;
    *out = NULL;
    if (fd < 0)
        return FERRY_EBADF;
    if (flags & ~(unsigned)(FERRY_SEG_READONLY | FERRY_SEG_TRUSTED))
        return FERRY_EINVAL;
    return fy_seg_attach_fd(out, fd, flags, !(flags & FERRY_SEG_TRUSTED));
}

int ferry_segment_attach_named(ferry_segment **out, const char *name, unsigned flags)
{
    if (!out || !name)
        return FERRY_EINVAL;
    *out = NULL;
    if (flags & ~(unsigned)(FERRY_SEG_READONLY | FERRY_SEG_TRUSTED))
        return FERRY_EINVAL;
    int rc = fy_seg_check_name(name);
    if (rc < 0)
        return rc;
    char path[FY_SEG_NAME_MAX + 2];
    fy_seg_format_name(path, name);
    int fd = shm_open(path, ((flags & FERRY_SEG_READONLY) ? O_RDONLY : O_RDWR) | O_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* POSIX shm objects cannot carry seals: a named segment's users trust each
     * other. */
    rc = fy_seg_attach_fd(out, fd, flags, false);
    if (rc < 0)
        close(fd);
    return rc;
}

void *ferry_segment_base(const ferry_segment *seg)
{
    return seg ? seg->base : NULL;
}

size_t ferry_segment_size(const ferry_segment *seg)
{
    return seg ? seg->size : 0;
}

int ferry_segment_fd(const ferry_segment *seg)
{
    return seg ? seg->fd : FERRY_EINVAL;
}

void ferry_segment_close(ferry_segment *seg)
{
    if (!seg)
        return;
    if (seg->base)
        munmap(seg->base, seg->size);
    if (seg->fd >= 0)
        close(seg->fd);
    if (seg->name) {
        char path[FY_SEG_NAME_MAX + 2];
        fy_seg_format_name(path, seg->name);
        shm_unlink(path);
        free(seg->name);
    }
    free(seg);
}
