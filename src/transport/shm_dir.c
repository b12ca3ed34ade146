/*
 * shm_dir.c - where shm:// endpoints live and who may use them.
 *
 * An shm:// name is a Unix socket in a per-user runtime directory. The directory is the security
 * boundary: if anyone else could create or rename entries in it, they could impersonate a
 * listener and receive our data, so we refuse a directory that is a symlink, belongs to someone
 * else or grants group/other bits, instead of "fixing" it. Socket files are 0600 on top. A
 * listener killed with SIGKILL leaves its socket file behind; a connect probe tells a stale file
 * (refused) from a live listener, so a restarted server can bind again without manual cleanup.
 */
#include "transport/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Opens dir without following a symlink and checks it is ours and private. */
static int shm_dir_check(const char *dir, bool created)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ELOOP || errno == ENOTDIR ? FERRY_EACCES : -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
    } else if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
        rc = FERRY_EACCES;
    } else if (created && (st.st_mode & 07777) != 0700) {
        /* Our own fresh directory: the umask may have removed bits we need. */
        if (fchmod(fd, 0700) != 0)
            rc = -errno;
    } else if ((st.st_mode & 077) != 0 || (st.st_mode & 0700) != 0700) {
        rc = FERRY_EACCES;
    }
    close(fd);
    return rc;
}

static int shm_dir_make(const char *dir)
{
    bool created = mkdir(dir, 0700) == 0;
    if (!created && errno != EEXIST)
        return -errno;
    return shm_dir_check(dir, created);
}

int fy_shm_dir(char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return FERRY_EINVAL;
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    struct stat st;
    int n;
    if (xdg && xdg[0] == '/' && stat(xdg, &st) == 0 && S_ISDIR(st.st_mode))
        n = snprintf(buf, cap, "%s/ferry", xdg);
    else
        n = snprintf(buf, cap, "/tmp/ferry-%u", (unsigned)geteuid());
    if (n < 0 || (size_t)n >= cap)
        return FERRY_ENAMETOOLONG;
    return shm_dir_make(buf);
}

int fy_shm_path(const char *name, char *buf, size_t cap)
{
    if (!name || !buf)
        return FERRY_EINVAL;
    size_t len = strlen(name);
    if (len == 0 || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return FERRY_EINVAL;
    if (len > 64)
        return FERRY_ENAMETOOLONG;
    char dir[FY_SHM_PATH_MAX];
    int rc = fy_shm_dir(dir, sizeof dir);
    if (rc < 0)
        return rc;
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap || (size_t)n >= FY_SHM_PATH_MAX)
        return FERRY_ENAMETOOLONG;
    return 0;
}

static int shm_addr(const char *path, struct sockaddr_un *a)
{
    size_t len = strlen(path);
    if (len == 0)
        return FERRY_EINVAL;
    if (len >= sizeof a->sun_path)
        return FERRY_ENAMETOOLONG;
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    memcpy(a->sun_path, path, len + 1);
    return 0;
}

/* 1 when a listener answers at path, 0 when the file is stale, < 0 when unknown. */
static int shm_probe(const struct sockaddr_un *a)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = connect(fd, (const struct sockaddr *)a, sizeof *a) == 0 ? 1 : -errno;
    close(fd);
    if (rc == FERRY_ECONNREFUSED)
        return 0;
    if (rc == FERRY_EAGAIN) /* backlog full: very much alive */
        return 1;
    return rc;
}

int fy_shm_listen_path(const char *path, int *fdp)
{
    if (!path || !fdp)
        return FERRY_EINVAL;
    *fdp = -1;
    struct sockaddr_un a;
    int rc = shm_addr(path, &a);
    if (rc < 0)
        return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* Linux applies the socket inode's mode (minus umask) to the file bind creates, so the file
     * is never visible with wider permissions. */
    if (fchmod(fd, 0600) != 0) {
        rc = -errno;
        goto fail;
    }
    for (int attempt = 0;; attempt++) {
        if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0)
            break;
        rc = -errno;
        if (rc != FERRY_EADDRINUSE || attempt >= 2)
            goto fail;
        struct stat st;
        if (lstat(path, &st) != 0)
            continue; /* vanished meanwhile: try again */
        if (!S_ISSOCK(st.st_mode)) {
            rc = FERRY_EEXIST;
            goto fail;
        }
        int live = shm_probe(&a);
        if (live == FERRY_ENOENT)
            continue; /* unlinked meanwhile */
        if (live != 0) {
            rc = live == 1 ? FERRY_EADDRINUSE : live;
            goto fail;
        }
        /* Stale: its listener died without unlinking. Replace it. */
        if (unlink(path) != 0 && errno != ENOENT) {
            rc = -errno;
            goto fail;
        }
    }
    if (chmod(path, 0600) != 0 || listen(fd, 128) != 0) {
        rc = -errno;
        unlink(path);
        goto fail;
    }
    *fdp = fd;
    return 0;
fail:
    close(fd);
    return rc;
}

void fy_shm_unlisten_path(const char *path, int fd)
{
    if (path && path[0]) {
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(path);
    }
    if (fd >= 0)
        close(fd);
}

int fy_shm_connect_path(const char *path, int *fdp)
{
    if (!path || !fdp)
        return FERRY_EINVAL;
    *fdp = -1;
    struct sockaddr_un a;
    int rc = shm_addr(path, &a);
    if (rc < 0)
        return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        *fdp = fd;
        return 0;
    }
    rc = -errno;
    if (rc == FERRY_EINPROGRESS) {
        *fdp = fd;
        return FERRY_EINPROGRESS;
    }
    close(fd);
    return rc;
}

int fy_shm_peer_check(int fd, int peer_uid)
{
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
        return -errno;
    if (len != sizeof cr)
        return FERRY_EACCES;
    if (cr.uid == geteuid() || (peer_uid >= 0 && cr.uid == (uid_t)peer_uid))
        return 0;
    return FERRY_EACCES;
}
