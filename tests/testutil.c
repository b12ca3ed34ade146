/* testutil.c - shared helpers for the test programs (see testutil.h). */
#include "testutil.h"

#include "ferry/ferry.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *tu_errname(int rc)
{
    return rc >= 0 ? "ok" : ferry_errname(rc);
}

const char *tu_unique(const char *prefix)
{
    static char bufs[8][96];
    static unsigned n;
    static unsigned salt;
    if (!salt)
        salt = (unsigned)(tu_now_ns() ^ ((uint64_t)getpid() << 16)) | 1u;
    char *b = bufs[n % 8];
    snprintf(b, sizeof bufs[0], "%s-%d-%u-%x", prefix, (int)getpid(), n, salt & 0xffffu);
    n++;
    return b;
}

const char *tu_tmpdir(void)
{
    static char dir[256];
    if (dir[0])
        return dir;
    const char *base = getenv("FERRY_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(dir, sizeof dir, "%s/t-%d-%llx", base, (int)getpid(),
             (unsigned long long)(tu_now_ns() & 0xffffff));
    if (mkdir(dir, 0700) != 0) {
        perror("mkdir test tmpdir");
        exit(1);
    }
    return dir;
}

int tu_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t l = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

uint64_t tu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void tu_on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test deadline exceeded\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(1);
}

void tu_deadline(unsigned seconds)
{
    signal(SIGALRM, tu_on_alarm);
    alarm(seconds);
}
