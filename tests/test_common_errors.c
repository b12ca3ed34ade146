/* The error table: codes equal -errno, names and messages exist for every code, unknowns are safe.
 */
#include "testutil.h"

#include "ferry/ferry.h"

#include <string.h>

int main(void)
{
    CHECK(FERRY_EAGAIN == -EAGAIN);
    CHECK(FERRY_EPROTO == -EPROTO);
    CHECK(FERRY_EMSGSIZE == -EMSGSIZE);
    CHECK(FERRY_EFSM < -1000);
    CHECK(strcmp(ferry_errname(FERRY_EPROTO), "FERRY_EPROTO") == 0);
    CHECK(strcmp(ferry_errname(FERRY_EFSM), "FERRY_EFSM") == 0);
    CHECK(strcmp(ferry_errname(12345), "FERRY_E?") == 0);
    CHECK(strstr(ferry_strerror(FERRY_EPROTO), "protocol") != NULL);
    CHECK(strcmp(ferry_strerror(0), "success") == 0);
    CHECK(ferry_strerror(-EDOM) != NULL && strlen(ferry_strerror(-EDOM)) > 0);
    CHECK(strcmp(ferry_strerror(99999), "unknown error") == 0);
    /* Every code in the table is distinct and named. */
    static const int codes[] = {
#define X_(name, value, msg) value,
        FERRY_ERRORS(X_)
#undef X_
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        CHECK(codes[i] < 0);
        CHECK(strcmp(ferry_errname(codes[i]), "FERRY_E?") != 0);
        for (size_t j = i + 1; j < n; j++)
            CHECK(codes[i] != codes[j]);
    }
    char ver[32];
    snprintf(ver, sizeof ver, "%d.%d.%d", FERRY_VERSION_MAJOR, FERRY_VERSION_MINOR,
             FERRY_VERSION_PATCH);
    CHECK(strcmp(ferry_version(), ver) == 0);
    return 0;
}
