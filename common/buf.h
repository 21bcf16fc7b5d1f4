/*
 * common/buf.h — orpc__buf, the one growable byte buffer of orpc's own
 * code: the runtime's wire data (output waiting for the socket, a message
 * gathered from DATA frames, gzip output, decoded grpc-message and -bin
 * values) and the text that the compat layer builds (JSON, error paths,
 * URLs, base64).  Private.
 *
 * Shape:
 *   - Errors.  Everything that can allocate returns 0 or ORPC_ENOMEM, and on
 *     failure (memory, or a size that would overflow) sets the sticky
 *     |failed| flag, after which every append and reserve fails at once and
 *     leaves the bytes alone.  So code that cannot go on without the bytes
 *     checks each return, and code that builds a whole text ignores them and
 *     checks |failed| once at the end (orpc__buf_take() returns NULL then).
 *     Only orpc__buf_free() (and a take) clears it.
 *   - A NUL follows the bytes once anything was reserved, after every call
 *     below, so a text buffer is a C string as it grows; binary data may
 *     hold NULs of its own.  The block always has one byte more than |cap|
 *     for it: code that writes into |data| itself (a decoder, zlib, a TLS
 *     BIO) may fill it up to |cap| and writes its own NUL if it wants one.
 *   - Memory comes from a borrowed `const orpc_mem *` (NULL: the C
 *     library; common/mem.h), which must outlive the buffer and whatever
 *     orpc__buf_take() hands out.  JSON decoding leaves bytes inside a
 *     message freed by a ProtobufCAllocator: it gives the buffer the
 *     orpc_mem view of that allocator (orpc__mem_from_pb()).
 *   - Growth: appends grow from 64 bytes by doubling, so n appended bytes
 *     cost O(n) copies; a reserve on an empty buffer allocates just what it
 *     asks, so bytes of a known size (decoded base64 stored in a message,
 *     a gzip bound) are allocated once, at that size; growing after that
 *     doubles again.  orpc__buf_reserve_max() also caps the capacity, for
 *     buffers that must never hold more than a peer was allowed to send.
 *
 * A zero-initialised orpc__buf is a valid empty buffer on the C library.
 * Threads: a buffer belongs to one thread at a time.
 */
#ifndef ORPC_COMMON_BUF_H
#define ORPC_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

#include <orpc/common.h>

typedef struct orpc__buf {
    uint8_t *data; /* NULL until something is reserved; then NUL-terminated */
    size_t len;    /* bytes in |data|, not counting the NUL */
    size_t cap;    /* bytes |data| holds before it must grow (+1 for the NUL) */
    int failed;    /* sticky: an allocation failed or a size overflowed */
    const orpc_mem *mem; /* borrowed; NULL: malloc/realloc/free */
} orpc__buf;

/* An empty buffer allocating through |mem| (NULL: the C library); nothing
 * is allocated yet.  Same as zero-initialising and setting |mem|. */
void orpc__buf_init(orpc__buf *b, const orpc_mem *mem);

/* Frees the bytes and leaves |b| empty (|failed| cleared, |mem| kept).
 * Does nothing on NULL; freeing twice is harmless. */
void orpc__buf_free(orpc__buf *b);

/* Makes room for |n| more bytes (and the NUL after them), so that
 * data[len .. len + n) may be written: see the header comment for how
 * much it allocates.  0, or ORPC_ENOMEM with |failed| set (also when it
 * was already set). */
int orpc__buf_reserve(orpc__buf *b, size_t n);

/* The same, but growing never takes |cap| past |max|: for a buffer whose
 * contents are bounded (a declared message length, a decompression
 * limit), so that it never holds more than the bound.  len + n > max is
 * ORPC_ENOMEM with |failed| set. */
int orpc__buf_reserve_max(orpc__buf *b, size_t n, size_t max);

/* Appends p[0..n) (n == 0 allocates nothing) / the C string |s| / the byte
 * |c|.  0, or ORPC_ENOMEM with |failed| set; then nothing is appended. */
int orpc__buf_append(orpc__buf *b, const void *p, size_t n);
int orpc__buf_puts(orpc__buf *b, const char *s);
int orpc__buf_putc(orpc__buf *b, char c);

/* Appends printf output.  0; ORPC_ENOMEM; ORPC_EINVAL when |fmt| cannot be
 * formatted (an encoding error): both set |failed|, and append nothing. */
int orpc__buf_printf(orpc__buf *b, const char *fmt, ...) ORPC_PRINTF(2, 3);

/* Drops the first |n| bytes (memmove); n >= len empties.  Keeps the
 * allocation. */
void orpc__buf_consume(orpc__buf *b, size_t n);

/* Cuts the contents back to |len| bytes (no-op when |len| is past the
 * end, or nothing was allocated); keeps the allocation and |failed|. */
void orpc__buf_truncate(orpc__buf *b, size_t len);

/* The contents as a C string: "" when nothing was appended.  Borrowed
 * until the next change to |b|. */
const char *orpc__buf_str(const orpc__buf *b);

/* Hands the bytes (NUL-terminated, allocated through |b->mem|: free them
 * with orpc__mem_free(b->mem, ...)) to the caller, |*len| their length when
 * |len| is not NULL, and leaves |b| empty.  NULL when |failed| is set or
 * the terminator cannot be allocated; |b| is then freed. */
char *orpc__buf_take(orpc__buf *b, size_t *len);

#endif
