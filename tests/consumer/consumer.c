/* A program outside the ferry tree: proves the installed headers and libraries are usable. */
#include <ferry/ferry.h>
#include <ferry/ring.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    if (strcmp(ferry_errname(FERRY_EPROTO), "FERRY_EPROTO") != 0)
        return 1;
    printf("ferry %s: %s\n", ferry_version(), ferry_strerror(FERRY_EAGAIN));
    return 0;
}
