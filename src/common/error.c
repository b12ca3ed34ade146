/*
 * error.c - messages and names for FERRY_E* codes, generated from the single X-macro table in
 * ferry.h so that the enum, the names and the messages can never drift apart.
 */
#include "ferry/ferry.h"

#include <string.h>

#define FERRY_STR_(x)  #x
#define FERRY_XSTR_(x) FERRY_STR_(x)

const char *ferry_version(void)
{
    return FERRY_XSTR_(FERRY_VERSION_MAJOR) "." FERRY_XSTR_(FERRY_VERSION_MINOR) "." FERRY_XSTR_(
        FERRY_VERSION_PATCH);
}

const char *ferry_strerror(int err)
{
    switch (err) {
#define FERRY_ERRMSG_(name, value, msg)                                                            \
    case (value):                                                                                  \
        return msg;
        FERRY_ERRORS(FERRY_ERRMSG_)
#undef FERRY_ERRMSG_
    default:
        break;
    }
    if (err == 0)
        return "success";
    /* Any other negative errno still gets the C library's wording (thread-safe variant). */
    if (err < 0 && err > -4096)
        return strerrordesc_np(-err) ? strerrordesc_np(-err) : "unknown error";
    return "unknown error";
}

const char *ferry_errname(int err)
{
    switch (err) {
#define FERRY_ERRNAME_(name, value, msg)                                                           \
    case (value):                                                                                  \
        return "FERRY_" #name;
        FERRY_ERRORS(FERRY_ERRNAME_)
#undef FERRY_ERRNAME_
    default:
        return "FERRY_E?";
    }
}
