/*
 * common/buf.c — owns orpc__buf (common/buf.h): growth, the sticky failure
 * flag, the NUL after the bytes and the hand-over of the bytes.
 *
 * One growth function serves every way in: an empty buffer gets |first|
 * bytes (64 for appends, 0 — just what is asked — for reserves), a full
 * one at least doubles, and nothing grows past |max| (the buffer's own
 * bound, SIZE_MAX / 2, unless the caller gives a smaller one), so the
 * doubling and the NUL's extra byte cannot overflow.  Blocks move through
 * orpc__mem_grow(), which uses the hooks' realloc when there is one (or
 * libc's) and otherwise allocates, copies and frees: a ProtobufCAllocator
 * seen as an orpc_mem has no realloc.  An append that fits costs the two
 * checks (|failed|, room), a memcpy and the NUL's store; only growing calls
 * out.
 */
#include "common/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <orpc/error.h>

#include "common/mem.h"

#define BUF_MIN_CAP 64u
#define BUF_MAX_CAP (SIZE_MAX / 2)

void orpc__buf_init(orpc__buf *b, const orpc_mem *mem)
{
    memset(b, 0, sizeof *b);
    b->mem = mem;
}

void orpc__buf_free(orpc__buf *b)
{
    if (b == NULL) {
        return;
    }
    if (b->data != NULL) {
        orpc__mem_free(b->mem, b->data);
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
}

static int fail(orpc__buf *b)
{
    b->failed = 1;
    return ORPC_ENOMEM;
}

/* Room for |n| more bytes and the NUL, for a buffer that has not failed
 * and lacks it (or has nothing allocated): see the file comment. */
static int grow(orpc__buf *b, size_t n, size_t first, size_t max)
{
    if (max > BUF_MAX_CAP) {
        max = BUF_MAX_CAP;
    }
    if (b->len > max || n > max - b->len) {
        return fail(b);
    }
    size_t need = b->len + n;
    size_t cap = b->cap == 0 ? first : b->cap * 2; /* cap <= BUF_MAX_CAP */
    if (cap < need) {
        cap = need;
    }
    if (cap > max) {
        cap = max;
    }
    uint8_t *p = orpc__mem_grow(b->mem, b->data, b->len, cap + 1);
    if (p == NULL) {
        return fail(b);
    }
    p[b->len] = '\0';
    b->data = p;
    b->cap = cap;
    return 0;
}

int orpc__buf_reserve(orpc__buf *b, size_t n)
{
    return orpc__buf_reserve_max(b, n, BUF_MAX_CAP);
}

int orpc__buf_reserve_max(orpc__buf *b, size_t n, size_t max)
{
    if (b->failed) {
        return ORPC_ENOMEM;
    }
    if (b->data != NULL && b->cap - b->len >= n) {
        return 0;
    }
    return grow(b, n, 0, max);
}

int orpc__buf_append(orpc__buf *b, const void *p, size_t n)
{
    if (b->failed) {
        return ORPC_ENOMEM;
    }
    if (n == 0) {
        return 0;
    }
    if (b->cap - b->len < n) { /* also an empty buffer: cap 0, n > 0 */
        int rc = grow(b, n, BUF_MIN_CAP, BUF_MAX_CAP);
        if (rc != 0) {
            return rc;
        }
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int orpc__buf_puts(orpc__buf *b, const char *s)
{
    return orpc__buf_append(b, s, strlen(s));
}

int orpc__buf_putc(orpc__buf *b, char c)
{
    return orpc__buf_append(b, &c, 1);
}

int orpc__buf_printf(orpc__buf *b, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1; /* an encoding error: the text is not what was asked */
        return ORPC_EINVAL;
    }
    if ((size_t)n < sizeof small) {
        return orpc__buf_append(b, small, (size_t)n);
    }
    int rc = orpc__buf_reserve(b, (size_t)n);
    if (rc != 0) {
        return rc;
    }
    va_start(ap, fmt);
    (void)vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void orpc__buf_consume(orpc__buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data != NULL) {
        b->data[b->len] = '\0';
    }
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
    return b->data != NULL ? (const char *)b->data : "";
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
    char *p = (char *)b->data;
    if (len != NULL) {
        *len = b->len;
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
