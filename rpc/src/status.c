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
 *     orpc__status_*_mem() twins below (declared in mem.h), and copy one
 *     into libc memory when it crosses to the application.
 *   - A code outside 0–16 is stored as ORPC_UNKNOWN, as gRPC does with an
 *     unrecognised grpc-status, so that every status holds a valid code.
 *   - Names and the HTTP column come from ORPC_CODE_MAP (orpc/status.h);
 *     the HTTP→gRPC direction is gRPC's own, different table (REFERENCE.md
 *     §2), written out here.
 */
#include <orpc/error.h>
#include <orpc/status.h>

#include <stdio.h>
#include <string.h>

#include "mem.h"

static orpc_code status_norm_code(int code)
{
    return (code >= 0 && code < ORPC_CODE_COUNT) ? (orpc_code)code
                                                 : ORPC_UNKNOWN;
}

orpc_status orpc__status_new_mem(const orpc_mem *mem, orpc_code code,
                                 const char *message)
{
    orpc_status st = ORPC_STATUS_OK;
    st.code = status_norm_code((int)code);
    st.message = orpc__mem_strdup(mem, message);
    return st;
}

orpc_status orpc_status_new(orpc_code code, const char *message)
{
    return orpc__status_new_mem(NULL, code, message);
}

orpc_status orpc__status_verrorf_mem(const orpc_mem *mem, orpc_code code,
                                     const char *fmt, va_list ap)
{
    orpc_status st = ORPC_STATUS_OK;
    st.code = status_norm_code((int)code);
    if (fmt == NULL) {
        return st;
    }
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        return st;
    }
    char *buf = orpc__mem_malloc(mem, (size_t)n + 1);
    if (buf == NULL) {
        return st;
    }
    if (vsnprintf(buf, (size_t)n + 1, fmt, ap) != n) {
        orpc__mem_free(mem, buf);
        return st;
    }
    st.message = buf;
    return st;
}

orpc_status orpc_status_verrorf(orpc_code code, const char *fmt, va_list ap)
{
    return orpc__status_verrorf_mem(NULL, code, fmt, ap);
}

orpc_status orpc__status_errorf_mem(const orpc_mem *mem, orpc_code code,
                                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    orpc_status st = orpc__status_verrorf_mem(mem, code, fmt, ap);
    va_end(ap);
    return st;
}

orpc_status orpc_status_errorf(orpc_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    orpc_status st = orpc__status_verrorf_mem(NULL, code, fmt, ap);
    va_end(ap);
    return st;
}

int orpc__status_set_details_mem(const orpc_mem *mem, orpc_status *st,
                                 const void *data, size_t len)
{
    if (st == NULL || (data == NULL && len > 0)) {
        return ORPC_EINVAL;
    }
    uint8_t *copy = NULL;
    if (len > 0) {
        /* Copy before freeing the old details: |data| may point into them. */
        copy = orpc__mem_malloc(mem, len);
        if (copy == NULL) {
            return ORPC_ENOMEM;
        }
        memcpy(copy, data, len);
    }
    orpc__mem_free(mem, st->details);
    st->details = copy;
    st->details_len = len;
    return 0;
}

int orpc_status_set_details(orpc_status *st, const void *data, size_t len)
{
    return orpc__status_set_details_mem(NULL, st, data, len);
}

orpc_status orpc__status_copy_mem(const orpc_mem *mem, const orpc_status *st)
{
    orpc_status out = ORPC_STATUS_OK;
    if (st == NULL) {
        /* Nothing to copy is not a success: never invent an OK. */
        out.code = ORPC_UNKNOWN;
        return out;
    }
    out.code = status_norm_code((int)st->code);
    out.message = orpc__mem_strdup(mem, st->message);
    if (st->details != NULL && st->details_len > 0) {
        out.details = orpc__mem_malloc(mem, st->details_len);
        if (out.details != NULL) {
            memcpy(out.details, st->details, st->details_len);
            out.details_len = st->details_len;
        }
    }
    return out;
}

orpc_status orpc_status_copy(const orpc_status *st)
{
    return orpc__status_copy_mem(NULL, st);
}

void orpc__status_clear_mem(const orpc_mem *mem, orpc_status *st)
{
    if (st == NULL) {
        return;
    }
    orpc__mem_free(mem, st->message);
    orpc__mem_free(mem, st->details);
    *st = ORPC_STATUS_OK;
}

void orpc_status_clear(orpc_status *st)
{
    orpc__status_clear_mem(NULL, st);
}

orpc_status orpc__status_adopt_mem(const orpc_mem *mem, orpc_status st)
{
    if (orpc__mem_is_libc(mem) ||
        (st.message == NULL && (st.details == NULL || st.details_len == 0))) {
        return st;
    }
    orpc_status out = orpc__status_copy_mem(mem, &st);
    orpc__status_clear_mem(NULL, &st);
    return out;
}

const char *orpc_code_name(int code)
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

int orpc_code_to_http(int code)
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
