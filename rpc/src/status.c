/*
 * status.c — owns orpc_status (the outcome of an RPC) and the tables that
 * name gRPC codes and map them to and from HTTP statuses.
 *
 * Design notes:
 *   - A status is a value, never a pointer, so it can never be a bare NULL.
 *     Building one cannot fail: when memory runs out the code survives and
 *     the message (or details) is dropped.  The public functions use the
 *     C library's allocator (orpc__mem_* with NULL hooks) rather than
 *     taking an orpc_mem: a status outlives the objects that produce it and
 *     is freed by whoever holds it, with orpc_status_clear().  Servers and
 *     channels keep their own statuses with their hooks, through the
 *     orpc__status_*_mem() twins in common/mem.c (in orpc_common, which
 *     tests that build statuses without the rest of the library link), of
 *     which these are the libc versions; a status crosses to the
 *     application as a copy in libc memory.
 *   - A code outside 0–16 is stored as ORPC_UNKNOWN, as gRPC does with an
 *     unrecognised grpc-status, so that every status holds a valid code.
 *   - Names and the HTTP column come from ORPC_CODE_MAP (orpc/status.h);
 *     the HTTP→gRPC direction is gRPC's own, different table (REFERENCE.md
 *     §2), written out here.
 */
#include <orpc/error.h>
#include <orpc/status.h>

#include <stdarg.h>

#include "common/mem.h"

orpc_status orpc_status_new(orpc_code code, const char *message)
{
    return orpc__status_new_mem(NULL, code, message);
}

orpc_status orpc_status_verrorf(orpc_code code, const char *fmt, va_list ap)
{
    return orpc__status_verrorf_mem(NULL, code, fmt, ap);
}

orpc_status orpc_status_errorf(orpc_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    orpc_status st = orpc__status_verrorf_mem(NULL, code, fmt, ap);
    va_end(ap);
    return st;
}

int orpc_status_set_details(orpc_status *st, const void *data, size_t len)
{
    return orpc__status_set_details_mem(NULL, st, data, len);
}

orpc_status orpc_status_copy(const orpc_status *st)
{
    return orpc__status_copy_mem(NULL, st);
}

void orpc_status_clear(orpc_status *st)
{
    orpc__status_clear_mem(NULL, st);
}

const char *orpc_code_name(orpc_code code)
{
    switch (code) {
#define ORPC_CODE_NAME_(name, value, http)                                     \
    case (value):                                                              \
        return #name;
        ORPC_CODE_MAP(ORPC_CODE_NAME_)
#undef ORPC_CODE_NAME_
    default:
        return "UNKNOWN_CODE";
    }
}

/* ASCII-only case folding: names are ASCII and the locale must not matter. */
static int ascii_upper(int c)
{
    return (c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c;
}

static int name_equal_ci(const char *a, const char *canonical)
{
    while (*a != '\0' && *canonical != '\0') {
        if (ascii_upper((unsigned char)*a) != (unsigned char)*canonical) {
            return 0;
        }
        a++;
        canonical++;
    }
    return *a == '\0' && *canonical == '\0';
}

int orpc_code_parse(orpc_code *out, const char *name)
{
    if (name == NULL || out == NULL || name[0] == '\0') {
        return ORPC_EINVAL;
    }
    if (name[0] >= '0' && name[0] <= '9') {
        /* Canonical decimal only: no sign, no blanks, no leading zero. */
        int v = name[0] - '0';
        if (name[1] != '\0') {
            if (name[0] == '0' || name[1] < '0' || name[1] > '9' ||
                name[2] != '\0') {
                return ORPC_EINVAL;
            }
            v = v * 10 + (name[1] - '0');
        }
        if (v >= ORPC_CODE_COUNT) {
            return ORPC_EINVAL;
        }
        *out = (orpc_code)v;
        return 0;
    }
#define ORPC_CODE_PARSE_(cname, value, http)                                   \
    if (name_equal_ci(name, #cname)) {                                         \
        *out = ORPC_##cname;                                                   \
        return 0;                                                              \
    }
    ORPC_CODE_MAP(ORPC_CODE_PARSE_)
#undef ORPC_CODE_PARSE_
    return ORPC_EINVAL;
}

orpc_code orpc_code_from_grpc_http(int http_status)
{
    switch (http_status) {
    case 400:
        return ORPC_INTERNAL;
    case 401:
        return ORPC_UNAUTHENTICATED;
    case 403:
        return ORPC_PERMISSION_DENIED;
    case 404:
        return ORPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return ORPC_UNAVAILABLE;
    case 431:
        return ORPC_INTERNAL;
    default:
        return ORPC_UNKNOWN;
    }
}

int orpc_code_to_http(orpc_code code)
{
    switch (code) {
#define ORPC_CODE_HTTP_(name, value, http)                                     \
    case (value):                                                              \
        return (http);
        ORPC_CODE_MAP(ORPC_CODE_HTTP_)
#undef ORPC_CODE_HTTP_
    default:
        return 500;
    }
}
