/*
 * common/buf.c — owns orpc__buf (common/buf.h): growth, the sticky failure
 * flag and the hand-over of the bytes.
 *
 * Appends grow the block by doubling from 64 bytes, so n appended bytes
 * cost O(n) copies; an explicit reserve on an empty buffer allocates just
 * what it asks, so bytes whose size is known (decoded base64 stored in a
 * message) take no more room than they need.  A
 * ProtobufCAllocator has no realloc: with one, growing allocates the new
 * block and copies; without one, realloc(3) may extend in place.
 */
#include "common/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#define BUF_MIN_CAP 64u

void orpc__buf_init(orpc__buf *b, ProtobufCAllocator *alloc)
{
    memset(b, 0, sizeof *b);
    b->alloc = alloc;
}

/* b->data moved to a block of |cap| bytes, contents and NUL kept; NULL
 * (b->data untouched) when memory runs out. */
static char *grow(orpc__buf *b, size_t cap)
{
    if (b->alloc == NULL) {
        return realloc(b->data, cap);
    }
    char *p = b->alloc->alloc(b->alloc->allocator_data, cap);
    if (p != NULL && b->data != NULL) {
        memcpy(p, b->data, b->len + 1);
        b->alloc->free(b->alloc->allocator_data, b->data);
    }
    return p;
}

/* Room for |n| more bytes and the NUL.  A buffer that grows gets at least
 * twice its capacity; an empty one gets |first| bytes, or just what is
 * needed if that is more. */
static int ensure(orpc__buf *b, size_t n, size_t first)
{
    if (b->failed) {
        return ORPC_ENOMEM;
    }
    if (b->data != NULL && b->cap - b->len > n) {
        return 0;
    }
    if (n >= SIZE_MAX / 2 - b->len) {
        b->failed = 1;
        return ORPC_ENOMEM;
    }
    size_t need = b->len + n + 1;
    size_t cap = b->cap == 0 ? first : b->cap <= SIZE_MAX / 2 ? b->cap * 2 : 0;
    if (cap < need) {
        cap = need;
    }
    char *p = grow(b, cap);
    if (p == NULL) {
        b->failed = 1;
        return ORPC_ENOMEM;
    }
    if (b->data == NULL) {
        p[0] = '\0';
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int orpc__buf_reserve(orpc__buf *b, size_t n)
{
    return ensure(b, n, 0);
}

void orpc__buf_append(orpc__buf *b, const void *p, size_t n)
{
    if (ensure(b, n, BUF_MIN_CAP) != 0) {
        return;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
}

void orpc__buf_puts(orpc__buf *b, const char *s)
{
    orpc__buf_append(b, s, strlen(s));
}

void orpc__buf_putc(orpc__buf *b, char c)
{
    orpc__buf_append(b, &c, 1);
}

void orpc__buf_printf(orpc__buf *b, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1; /* an encoding error: the text is not what was asked */
        return;
    }
    if ((size_t)n < sizeof small) {
        orpc__buf_append(b, small, (size_t)n);
        return;
    }
    if (orpc__buf_reserve(b, (size_t)n) != 0) {
        return;
    }
    va_start(ap, fmt);
    (void)vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void orpc__buf_truncate(orpc__buf *b, size_t len)
{
    if (b->data != NULL && len <= b->len) {
        b->len = len;
        b->data[len] = '\0';
    }
}

const char *orpc__buf_str(const orpc__buf *b)
{
    return b->data != NULL ? b->data : "";
}

char *orpc__buf_take(orpc__buf *b, size_t *len)
{
    if (len != NULL) {
        *len = 0;
    }
    if (orpc__buf_reserve(b, 0) != 0) {
        orpc__buf_free(b);
        return NULL;
    }
    char *p = b->data;
    if (len != NULL) {
        *len = b->len;
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

void orpc__buf_free(orpc__buf *b)
{
    if (b->data != NULL) {
        if (b->alloc == NULL) {
            free(b->data);
        } else {
            b->alloc->free(b->alloc->allocator_data, b->data);
        }
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
}
