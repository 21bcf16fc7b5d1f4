/*
 * error.c — owns the text, names and fatality of the API error codes.
 *
 * Every table here is generated from ORPC_ERRNO_MAP in orpc/error.h, as
 * libuv does with UV_ERRNO_MAP: a code added to the map gets its string,
 * its name and its fatal flag without touching this file.  Switches rather
 * than arrays, because the codes are negative and must never be renumbered
 * to suit an index.
 */
#include <orpc/error.h>

const char *orpc_strerror(int err)
{
    switch (err) {
    case ORPC_EOK:
        return "success";
#define ORPC_STRERROR_(name, value, fatal, text)                               \
    case ORPC_##name:                                                          \
        return text;
        ORPC_ERRNO_MAP(ORPC_STRERROR_)
#undef ORPC_STRERROR_
    default:
        return "unknown error";
    }
}

const char *orpc_err_name(int err)
{
    switch (err) {
    case ORPC_EOK:
        return "ORPC_EOK";
#define ORPC_ERR_NAME_(name, value, fatal, text)                               \
    case ORPC_##name:                                                          \
        return "ORPC_" #name;
        ORPC_ERRNO_MAP(ORPC_ERR_NAME_)
#undef ORPC_ERR_NAME_
    default:
        return "ORPC_E?";
    }
}

int orpc_err_is_fatal(int err)
{
    switch (err) {
#define ORPC_ERR_FATAL_(name, value, fatal, text)                              \
    case ORPC_##name:                                                          \
        return (fatal);
        ORPC_ERRNO_MAP(ORPC_ERR_FATAL_)
#undef ORPC_ERR_FATAL_
    default:
        return 0;
    }
}
