/*
 * common/mem.c — owns the defaults of the per-object allocator hooks
 * (orpc_mem).
 *
 * Shaped as four thin wrappers rather than a filled-in copy of the struct so
 * that an orpc_mem copied from the user keeps its NULLs: a NULL hook means
 * "the C library" at the moment of the call, and the fallbacks below keep a
 * block and its free on the same allocator (see common/mem.h for the exact
 * rules).  No global state: the hooks travel with each object.
 *
 * Also what the hooks build for the rest of the runtime: string copies, a
 * ProtobufCAllocator (and hooks over one, for common/buf.h), and statuses
 * (the orpc__status_*_mem() functions, which status.c's public ones call
 * with NULL hooks).
 */
#include "common/mem.h"

#include <orpc/error.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *orpc__mem_calloc(const orpc_mem *mem, size_t nmemb, size_t size)
{
    if (mem != NULL && mem->calloc != NULL) {
        return mem->calloc(nmemb, size, mem->user_data);
    }
    if (mem == NULL || mem->malloc == NULL) {
        return calloc(nmemb, size);
    }
    if (size != 0 && nmemb > SIZE_MAX / size) {
        return NULL;
    }
    void *p = mem->malloc(nmemb * size, mem->user_data);
    if (p != NULL) {
        memset(p, 0, nmemb * size);
    }
    return p;
}

void *orpc__mem_realloc(const orpc_mem *mem, void *ptr, size_t size)
{
    if (mem != NULL && mem->realloc != NULL) {
        return mem->realloc(ptr, size, mem->user_data);
    }
    if (mem == NULL || (mem->malloc == NULL && mem->free == NULL)) {
        return realloc(ptr, size);
    }
    if (ptr == NULL) {
        return orpc__mem_malloc(mem, size);
    }
    if (size == 0) {
        orpc__mem_free(mem, ptr);
        return NULL;
    }
    return NULL;
}

void *orpc__mem_grow(const orpc_mem *mem, void *ptr, size_t old_size,
                     size_t new_size)
{
    if (ptr == NULL) {
        return orpc__mem_malloc(mem, new_size);
    }
    if (mem == NULL || mem->realloc != NULL ||
        (mem->malloc == NULL && mem->free == NULL)) {
        if (new_size == 0) {
            /* realloc(p, 0) is implementation-defined; keep a live block. */
            new_size = 1;
        }
        return orpc__mem_realloc(mem, ptr, new_size);
    }
    void *p = orpc__mem_malloc(mem, new_size);
    if (p == NULL) {
        return NULL;
    }
    memcpy(p, ptr, old_size < new_size ? old_size : new_size);
    orpc__mem_free(mem, ptr);
    return p;
}

void orpc__mem_copy(orpc_mem *dst, const orpc_mem *src)
{
    if (src != NULL) {
        *dst = *src;
    } else {
        *dst = (orpc_mem){NULL, NULL, NULL, NULL, NULL};
    }
}

int orpc__mem_is_libc(const orpc_mem *mem)
{
    return mem == NULL || (mem->malloc == NULL && mem->free == NULL &&
                           mem->calloc == NULL && mem->realloc == NULL);
}

char *orpc__mem_strndup(const orpc_mem *mem, const char *s, size_t n)
{
    if (s == NULL) {
        return NULL;
    }
    size_t len = strnlen(s, n);
    char *p = orpc__mem_malloc(mem, len + 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

char *orpc__mem_strdup(const orpc_mem *mem, const char *s)
{
    return orpc__mem_strndup(mem, s, SIZE_MAX);
}

static void *pb_alloc(void *data, size_t size)
{
    return orpc__mem_malloc(data, size);
}

static void pb_free(void *data, void *ptr)
{
    orpc__mem_free(data, ptr);
}

void orpc__mem_pb_allocator(ProtobufCAllocator *out, const orpc_mem *mem)
{
    out->alloc = pb_alloc;
    out->free = pb_free;
    /* The hooks only read it. */
    out->allocator_data = (void *)(uintptr_t)mem;
}

static void *from_pb_malloc(size_t size, void *user_data)
{
    ProtobufCAllocator *a = user_data;
    return a->alloc(a->allocator_data, size);
}

static void from_pb_free(void *ptr, void *user_data)
{
    ProtobufCAllocator *a = user_data;
    if (ptr != NULL) { /* orpc_mem's free takes NULL; an allocator's may not */
        a->free(a->allocator_data, ptr);
    }
}

void orpc__mem_from_pb(orpc_mem *out, ProtobufCAllocator *a)
{
    if (a == NULL) {
        orpc__mem_copy(out, NULL);
        return;
    }
    *out = (orpc_mem){a, from_pb_malloc, from_pb_free, NULL, NULL};
}

/* ---- statuses built with an object's hooks (see status.c) ---- */

static orpc_code mem_status_code(int code)
{
    return (code >= 0 && code < ORPC_CODE_COUNT) ? (orpc_code)code
                                                 : ORPC_UNKNOWN;
}

orpc_status orpc__status_new_mem(const orpc_mem *mem, orpc_code code,
                                 const char *message)
{
    orpc_status st = ORPC_STATUS_OK;
    st.code = mem_status_code((int)code);
    st.message = orpc__mem_strdup(mem, message);
    return st;
}

orpc_status orpc__status_verrorf_mem(const orpc_mem *mem, orpc_code code,
                                     const char *fmt, va_list ap)
{
    orpc_status st = ORPC_STATUS_OK;
    st.code = mem_status_code((int)code);
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

orpc_status orpc__status_errorf_mem(const orpc_mem *mem, orpc_code code,
                                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    orpc_status st = orpc__status_verrorf_mem(mem, code, fmt, ap);
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

orpc_status orpc__status_copy_mem(const orpc_mem *mem, const orpc_status *st)
{
    orpc_status out = ORPC_STATUS_OK;
    if (st == NULL) {
        /* Nothing to copy is not a success: never invent an OK. */
        out.code = ORPC_UNKNOWN;
        return out;
    }
    out.code = mem_status_code((int)st->code);
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

void orpc__status_clear_mem(const orpc_mem *mem, orpc_status *st)
{
    if (st == NULL) {
        return;
    }
    orpc__mem_free(mem, st->message);
    orpc__mem_free(mem, st->details);
    *st = ORPC_STATUS_OK;
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
