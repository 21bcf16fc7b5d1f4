/*
 * common/base64.h — base64 (RFC 4648) for orpc's own code: bytes fields in
 * proto3 JSON and URL text, and binary metadata.  Private.
 *
 * Encoding writes one alphabet, standard ("+/") or URL-safe ("-_"), with or
 * without '=' padding, as the caller's format asks.  Decoding is the strict
 * reader proto3 JSON asks for: either alphabet, padded or not, and nothing
 * else (no whitespace, no line breaks, no mixed alphabets, no partial
 * padding, no stray bits), so that one byte string has one accepted
 * spelling per alphabet and padding choice.  Threads: no state; any thread.
 */
#ifndef ORPC_COMMON_BASE64_H
#define ORPC_COMMON_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Encoding flags (0: standard alphabet, padded). */
#define ORPC__BASE64_URL 0x1u   /* the URL-safe alphabet: '-' and '_' */
#define ORPC__BASE64_NOPAD 0x2u /* no '=' padding */
/* Decoding flags (0: either alphabet, unused bits zero). */
#define ORPC__BASE64_STD_ONLY 0x4u /* refuse the URL-safe alphabet */
#define ORPC__BASE64_ANY_BITS 0x8u /* let a last digit's unused bits be 1 */
#define ORPC__BASE64_CHECK 0x10u   /* validate and measure; write nothing */

/* The length of the encoding of |n| bytes with |flags|, without the NUL;
 * SIZE_MAX when it does not fit in a size_t. */
size_t orpc__base64_encoded_len(size_t n, unsigned flags);

/* Writes the encoding of src[0..n) and a NUL to |dst|, which has room for
 * orpc__base64_encoded_len(n, flags) + 1 bytes; returns the length written
 * (without the NUL). */
size_t orpc__base64_encode(char *dst, const void *src, size_t n,
                           unsigned flags);

/* Appends the encoding of src[0..n) to |b|.  0, or ORPC_ENOMEM with
 * b->failed set. */
int orpc__base64_append(orpc__buf *b, const void *src, size_t n,
                        unsigned flags);

/* Decodes s[0..n) and appends the bytes to |out| (into an empty |out|: one
 * allocation, of the exact size).  Accepts the standard or the URL-safe
 * alphabet (one per text), unpadded or with complete padding ("=" or "=="
 * ending a length that is a multiple of 4), and requires the unused bits of the
 * last digit to be zero.  0; ORPC_EPARSE when |s| is not such text (|out|
 * unchanged); ORPC_ENOMEM (b->failed set). */
int orpc__base64_decode(orpc__buf *out, const char *s, size_t n);

/* The decoder under both: decodes s[0..n) into |dst| (room for n / 4 * 3 +
 * 2 bytes; NULL with ORPC__BASE64_CHECK) and returns the number of bytes,
 * or SIZE_MAX when |s| is not base64 as |flags| read it (padding as
 * above; ORPC__BASE64_STD_ONLY and ORPC__BASE64_ANY_BITS as gRPC's -bin
 * metadata is read).  Nothing is written unless all of |s| is valid. */
size_t orpc__base64_decode_raw(uint8_t *dst, const char *s, size_t n,
                               unsigned flags);

#endif
