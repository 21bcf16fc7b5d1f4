/*
 * version.c — owns orpc_version(): the version this library was built as.
 *
 * A function rather than the header's macro so that a program can tell the
 * library it runs against from the headers it was compiled with.
 */
#include <orpc/common.h>

const char *orpc_version(void)
{
    return ORPC_VERSION_STRING;
}
