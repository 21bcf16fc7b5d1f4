/*
 * common/pct.h — percent-encoding (RFC 3986 §2.1) for orpc's own code:
 * grpc-message values on the wire, and path and query values of HttpRule
 * requests.  Private.
 *
 * The encoders differ only in which bytes stay as they are, so one
 * function takes that set; upper-case hex digits always.  Decoding is
 * gRPC's lenient reading: a '%' that starts no valid escape is kept as it
 * is (a peer's odd message is shown, not refused).  Threads: no state; any
 * thread.
 */
#ifndef ORPC_COMMON_PCT_H
#define ORPC_COMMON_PCT_H

#include <stddef.h>

/* Which bytes are written as they are; every other byte becomes %XX. */
typedef enum orpc__pct_set {
    /* RFC 3986 unreserved: A-Z a-z 0-9 - _ . ~ (a path segment or a query
     * name or value) */
    ORPC__PCT_UNRESERVED = 0,
    /* the same and '/' (a multi-segment path variable) */
    ORPC__PCT_UNRESERVED_SLASH = 1,
    /* printable ASCII 0x20-0x7E except '%' (gRPC's grpc-message) */
    ORPC__PCT_PRINTABLE = 2
} orpc__pct_set;

/* The length of the encoding of s[0..n), without the NUL; SIZE_MAX when it
 * does not fit in a size_t. */
size_t orpc__pct_encoded_len(const void *s, size_t n, orpc__pct_set set);

/* Writes the encoding of s[0..n) and a NUL to |dst| (room for
 * orpc__pct_encoded_len() + 1 bytes); returns the length written. */
size_t orpc__pct_encode(char *dst, const void *s, size_t n, orpc__pct_set set);

/* Writes the decoding of s[0..n) and a NUL to |dst| (room for n + 1 bytes;
 * decoding never grows); returns the length written. */
size_t orpc__pct_decode(char *dst, const char *s, size_t n);

#endif
