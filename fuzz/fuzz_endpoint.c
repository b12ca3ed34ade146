/*
 * fuzz_endpoint.c - libFuzzer target for the endpoint URL parser: the input (NUL-terminated copy)
 * is parsed for connect and for bind; every success must format back to a URL that parses to the
 * identical structure, and every failure must carry one of the documented codes and a reason.
 */
#include "core/endpoint.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_ASSERT(c)                                                                               \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = malloc(size + 1);
    if (url == NULL)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';
    for (unsigned flags = 0; flags <= FY_EP_BIND; flags++) {
        fy_endpoint ep, again;
        const char *why = NULL;
        int rc = fy_endpoint_parse(url, flags, &ep, &why);
        FZ_ASSERT(why != NULL && why[0] != '\0');
        if (rc < 0) {
            FZ_ASSERT(rc == FERRY_EINVAL || rc == FERRY_EPROTONOSUPPORT ||
                      rc == FERRY_ENAMETOOLONG);
            continue;
        }
        FZ_ASSERT(rc == 0);
        FZ_ASSERT(ep.scheme >= FY_EP_TCP && ep.scheme <= FY_EP_FD);
        if (ep.scheme == FY_EP_TCP) {
            FZ_ASSERT(ep.port_any ? ep.port == 0 : ep.port != 0);
            FZ_ASSERT((flags & FY_EP_BIND) || (!ep.port_any && ep.host_kind != FY_HOST_ANY));
            FZ_ASSERT(strlen(ep.host) <= FY_EP_HOST_MAX && ep.host[0] != '\0');
        } else if (ep.scheme == FY_EP_FD) {
            FZ_ASSERT(ep.rfd >= 0 && ep.wfd >= 0);
        } else {
            FZ_ASSERT(ep.name_len >= 1 && ep.name_len == strlen(ep.name));
        }
        char buf[FY_EP_URL_MAX + 16];
        int n = fy_endpoint_format(&ep, buf, sizeof buf);
        FZ_ASSERT(n > 0 && (size_t)n == strlen(buf));
        FZ_ASSERT(fy_endpoint_parse(buf, flags, &again, NULL) == 0);
        FZ_ASSERT(memcmp(&ep, &again, sizeof ep) == 0);
    }
    free(url);
    return 0;
}
