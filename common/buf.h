/*
 * common/buf.h — orpc__buf, the growable byte and string buffer of orpc's
 * own code (JSON text, error paths, base64, URLs).  Private.
 *
 * Shape: appends never return an error.  A failed allocation (or a size
 * that would overflow) sets the sticky |failed| flag, after which every
 * append does nothing; the caller builds the whole text and checks once,
 * at the end (orpc__buf_take() returns NULL then).  The bytes are always
 * followed by a NUL once anything was reserved, so a text buffer is a C
 * string as it grows; binary data may hold NULs of its own.
 *
 * Memory comes from an optional ProtobufCAllocator (NULL: malloc), so a
 * buffer can build bytes that end up inside a message decoded with that
 * allocator.  A zero-initialised orpc__buf is a valid empty buffer on
 * malloc.  Threads: a buffer belongs to one thread at a time.
 */
#ifndef ORPC_COMMON_BUF_H
#define ORPC_COMMON_BUF_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include <orpc/common.h>

typedef struct orpc__buf {
    char *data; /* NULL until something is reserved; then NUL-terminated */
    size_t len; /* bytes in |data|, not counting the NUL */
    size_t cap; /* bytes allocated at |data| */
    int failed; /* sticky: an allocation failed or a size overflowed */
    ProtobufCAllocator *alloc; /* NULL: malloc/realloc/free */
} orpc__buf;

/* An empty buffer allocating through |alloc| (NULL: malloc); nothing is
 * allocated yet.  Same as zero-initialising and setting |alloc|. */
void orpc__buf_init(orpc__buf *b, ProtobufCAllocator *alloc);

/* Makes room for |n| more bytes (and the NUL): on an empty buffer exactly
 * that, so bytes of a known size are allocated once at that size; a buffer
 * that has to grow at least doubles.  0, or ORPC_ENOMEM with |failed| set
 * (also when it was already set). */
int orpc__buf_reserve(orpc__buf *b, size_t n);

/* Appends p[0..n) / the C string |s| / the byte |c| / printf output. */
void orpc__buf_append(orpc__buf *b, const void *p, size_t n);
void orpc__buf_puts(orpc__buf *b, const char *s);
void orpc__buf_putc(orpc__buf *b, char c);
void orpc__buf_printf(orpc__buf *b, const char *fmt, ...) ORPC_PRINTF(2, 3);

/* Cuts the contents back to |len| bytes (no-op when |len| is past the
 * end, or nothing was allocated); keeps the allocation. */
void orpc__buf_truncate(orpc__buf *b, size_t len);

/* The contents as a C string: "" when nothing was appended.  Borrowed
 * until the next change to |b|. */
const char *orpc__buf_str(const orpc__buf *b);

/* Hands the bytes (NUL-terminated, allocated through |b->alloc|: free(3)
 * for NULL) to the caller, |*len| their length when |len| is not NULL, and
 * leaves |b| empty.  NULL when |failed| is set or the terminator cannot be
 * allocated; |b| is then freed. */
char *orpc__buf_take(orpc__buf *b, size_t *len);

/* Frees the bytes and leaves |b| empty (|failed| cleared, |alloc| kept). */
void orpc__buf_free(orpc__buf *b);

#endif
