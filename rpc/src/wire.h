/*
 * wire.h — the gRPC-over-HTTP/2 wire formats that are not HTTP/2 itself
 * (internal): length-prefixed messages, gzip, grpc-timeout, grpc-message
 * percent-encoding and base64 for "-bin" metadata.
 *
 * Pure functions and small state machines with no I/O, so each can be tested
 * and fuzzed on its own.  Every input is untrusted: lengths are bounded by
 * the caller's limits and malformed input is an error code, never a crash.
 * Output is appended to an orpc__buf (common/buf.h), allocated through its
 * hooks; when one of these runs out of memory growing it, the buffer's
 * sticky |failed| is set, as by any append.
 */
#ifndef ORPC_WIRE_H
#define ORPC_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <orpc/common.h>
#include <orpc/error.h>

#include "common/buf.h" /* the byte buffer of everything below */

/* ---- length-prefixed messages -------------------------------------------- */

#define ORPC__MSG_HEADER 5

/* Writes the 5-byte prefix (flag, big-endian length) into |out|. */
void orpc__msg_header(uint8_t out[ORPC__MSG_HEADER], int compressed,
                      uint32_t len);

/*
 * Incremental decoder of a stream of length-prefixed messages arriving in
 * arbitrary pieces (DATA frames bear no relation to message boundaries).
 */
typedef struct orpc__deframer {
    int state; /* internal */
    uint8_t hdr[ORPC__MSG_HEADER];
    size_t hdr_have;
    int compressed; /* flag of the message being read */
    uint32_t len;   /* its declared length */
    orpc__buf buf;  /* its bytes when they span several pieces */
    size_t max;     /* largest message accepted (declared length) */
} orpc__deframer;

void orpc__deframer_init(orpc__deframer *d, size_t max, const orpc_mem *mem);
void orpc__deframer_free(orpc__deframer *d);

/*
 * Feeds up to |len| bytes.  Returns 1 when a whole message is available:
 * |*msg| / |*msg_len| point at it (into |data| when it lay within this piece,
 * else into the deframer's buffer; valid until the next call), |*compressed|
 * is its flag, and |*consumed| says how much of |data| was used — call again
 * with the rest.  Returns 0 when all of |data| was consumed without
 * completing a message.  Errors: ORPC_ETOOBIG (declared length over |max|;
 * nothing is buffered for it), ORPC_EPROTO (flag not 0 or 1), ORPC_ENOMEM.
 * After an error the deframer must not be fed again.
 */
int orpc__deframer_feed(orpc__deframer *d, const uint8_t *data, size_t len,
                        size_t *consumed, const uint8_t **msg, size_t *msg_len,
                        int *compressed);

/* Nonzero when the deframer holds part of a message (a stream that ends
 * now was cut short). */
int orpc__deframer_partial(const orpc__deframer *d);

/* The whole wire length (prefix included) of the message whose body is
 * being read, or 0 when no prefix has been read yet. */
size_t orpc__deframer_body_len(const orpc__deframer *d);

/* ---- gzip ------------------------------------------------------------- */

/* gzip-compresses |len| bytes, appending to |out|.  0 or ORPC_ENOMEM. */
int orpc__gzip_compress(const uint8_t *in, size_t len, orpc__buf *out);

/* Decompresses one gzip stream, appending to |out|; ORPC_ETOOBIG when the
 * result would exceed |max_out| (checked while inflating: a small bomb never
 * allocates more than max_out), ORPC_EPROTO when |in| is not exactly one
 * valid gzip stream, ORPC_ENOMEM. */
int orpc__gzip_decompress(const uint8_t *in, size_t len, size_t max_out,
                          orpc__buf *out);

/* ---- grpc-timeout -------------------------------------------------------- */

/* Parses a grpc-timeout value ("1S", "250m", 1–8 digits and one of
 * H M S m u n) into nanoseconds, saturating at INT64_MAX.  0 or
 * ORPC_EINVAL. */
int orpc__timeout_parse(const char *s, size_t len, int64_t *ns);

/* Formats |ns| (> 0) as a grpc-timeout value of at most 8 digits, rounding
 * up to the next representable value in the smallest unit that fits.
 * |buf| holds at least 10 bytes.  Returns the length. */
size_t orpc__timeout_format(int64_t ns, char *buf);

/* ---- grpc-message percent-encoding ------------------------------------- */

/* Percent-encodes |len| bytes for grpc-message: 0x20–0x24 and 0x26–0x7E stay,
 * everything else becomes %XX (upper-case hex).  Appends to |out| with a
 * terminating NUL not counted in out->len.  0 or ORPC_ENOMEM. */
int orpc__percent_encode(const char *in, size_t len, orpc__buf *out);

/* Decodes; never fails on bad input: a '%' not followed by two hex digits is
 * kept as is.  Appends to |out| NUL-terminated.  0 or ORPC_ENOMEM. */
int orpc__percent_decode(const char *in, size_t len, orpc__buf *out);

/* Makes |b| (|len| bytes, NUL-terminated) valid UTF-8 without NULs: each
 * byte that does not start or continue a well-formed sequence (overlong
 * forms, surrogates and code points past U+10FFFF included) and each NUL
 * becomes U+FFFD, as gRPC's other implementations do with a grpc-message
 * that is not UTF-8.  0 or ORPC_ENOMEM (|b| unchanged). */
int orpc__utf8_repair(orpc__buf *b);

/* ---- base64 for -bin metadata -------------------------------------------- */

/* Standard base64 without padding (what gRPC emits); appends NUL-terminated.
 * 0 or ORPC_ENOMEM. */
int orpc__b64_encode(const uint8_t *in, size_t len, orpc__buf *out);

/* Decodes one standard base64 value, padded or not (callers split a header
 * on ',' first: each piece is its own metadata value), appending
 * NUL-terminated.  ORPC_EINVAL on a character outside the alphabet, ',',
 * misplaced padding or an impossible length; ORPC_ENOMEM. */
int orpc__b64_decode(const char *in, size_t len, orpc__buf *out);

#endif /* ORPC_WIRE_H */
