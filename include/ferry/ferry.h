/*
 * ferry.h - the public contract of the ferry messaging library.
 *
 * ferry gives ZeroMQ-style sockets whose same-host links run on lock-free shared-memory rings and
 * which speak ZMTP 3.1 on ipc:// and tcp://, so every ZeroMQ program is a peer.
 *
 * Conventions that hold for every declaration in this header:
 *  - Functions return int (or ssize_t for byte counts): >= 0 is success, a negative FERRY_E* code
 * is failure. FERRY_E* codes equal -errno on Linux where an errno exists; ferry never sets or
 * relies on errno for its own results.
 *  - Destructors (close/free/fini) accept NULL.
 *  - Ownership of every pointer argument and result is stated next to the declaration.
 */
#ifndef FERRY_FERRY_H
#define FERRY_FERRY_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(FERRY_STATIC)
#define FERRY_API
#elif defined(FERRY_BUILDING)
#define FERRY_API __attribute__((visibility("default")))
#else
#define FERRY_API
#endif

#define FERRY_VERSION_MAJOR 0
#define FERRY_VERSION_MINOR 1
#define FERRY_VERSION_PATCH 0

/* The library's version as "MAJOR.MINOR.PATCH"; static storage, never free it. */
FERRY_API const char *ferry_version(void);

/*
 * Error codes. X(name, value, message): values are -errno where Linux has one; conditions with no
 * errno equivalent live at -1000 and below so they can never collide with a future errno.
 */
#define FERRY_ERRORS(X)                                                                            \
    X(EPERM, -EPERM, "operation not permitted")                                                    \
    X(ENOENT, -ENOENT, "no such file, endpoint or object")                                         \
    X(EINTR, -EINTR, "interrupted by a signal")                                                    \
    X(EIO, -EIO, "input/output error")                                                             \
    X(EBADF, -EBADF, "bad file descriptor or closed handle")                                       \
    X(EAGAIN, -EAGAIN, "resource temporarily unavailable: try again")                              \
    X(ENOMEM, -ENOMEM, "out of memory")                                                            \
    X(EACCES, -EACCES, "permission denied")                                                        \
    X(EFAULT, -EFAULT, "bad address")                                                              \
    X(EBUSY, -EBUSY, "resource busy")                                                              \
    X(EEXIST, -EEXIST, "already exists")                                                           \
    X(ENODEV, -ENODEV, "no such device")                                                           \
    X(EINVAL, -EINVAL, "invalid argument")                                                         \
    X(EMFILE, -EMFILE, "too many open files")                                                      \
    X(ENOSPC, -ENOSPC, "no space left (memory file system full?)")                                 \
    X(EPIPE, -EPIPE, "broken pipe: peer has gone")                                                 \
    X(ERANGE, -ERANGE, "value out of range")                                                       \
    X(ENAMETOOLONG, -ENAMETOOLONG, "name too long")                                                \
    X(ENOSYS, -ENOSYS, "function not implemented by this kernel")                                  \
    X(EPROTO, -EPROTO, "protocol error: the peer or shared memory sent invalid data")              \
    X(EMSGSIZE, -EMSGSIZE, "message too long")                                                     \
    X(EPROTONOSUPPORT, -EPROTONOSUPPORT, "transport or protocol not supported")                    \
    X(ENOTSUP, -ENOTSUP, "operation not supported")                                                \
    X(EADDRINUSE, -EADDRINUSE, "address already in use")                                           \
    X(EADDRNOTAVAIL, -EADDRNOTAVAIL, "address not available")                                      \
    X(ENETDOWN, -ENETDOWN, "network is down")                                                      \
    X(ECONNABORTED, -ECONNABORTED, "connection aborted")                                           \
    X(ECONNRESET, -ECONNRESET, "connection reset by peer")                                         \
    X(ENOTCONN, -ENOTCONN, "not connected: no peer available")                                     \
    X(ETIMEDOUT, -ETIMEDOUT, "timed out")                                                          \
    X(ECONNREFUSED, -ECONNREFUSED, "connection refused")                                           \
    X(EHOSTUNREACH, -EHOSTUNREACH, "host unreachable")                                             \
    X(EALREADY, -EALREADY, "operation already in progress")                                        \
    X(EINPROGRESS, -EINPROGRESS, "operation now in progress")                                      \
    X(ENOTSOCK, -ENOTSOCK, "not a socket")                                                         \
    X(EOVERFLOW, -EOVERFLOW, "value too large for defined data type")                              \
    X(EFSM, -1001, "operation not valid in the socket's current state")                            \
    X(ETERM, -1002, "the socket or library is shutting down")                                      \
    X(ECHILD_FORK, -1003, "handle was inherited across fork() and cannot be used in the child")

enum ferry_error {
#define FERRY_ERRENUM_(name, value, msg) FERRY_##name = (value),
    FERRY_ERRORS(FERRY_ERRENUM_)
#undef FERRY_ERRENUM_
};

/* A human-readable message for a FERRY_E* code (or any negative errno); static storage. */
FERRY_API const char *ferry_strerror(int err);
/* The symbolic name ("FERRY_EPROTO") of a code, or "FERRY_E?" when unknown; static storage. */
FERRY_API const char *ferry_errname(int err);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_FERRY_H */
