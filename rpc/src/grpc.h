/*
 * grpc.h — gRPC message and header plumbing shared by server and channel
 * (internal): the queue of outgoing framed messages a data provider reads
 * from, message encode/decode with compression and limits, and header
 * conversions.
 */
#ifndef ORPC_GRPC_H
#define ORPC_GRPC_H

#include <string.h>

#include <nghttp2/nghttp2.h>
#include <protobuf-c/protobuf-c.h>

#include <orpc/metadata.h>
#include <orpc/status.h>

#include "wire.h"

/* Outgoing bytes of one stream, in chunks (one per message). */
typedef struct orpc__chunk {
    struct orpc__chunk *next;
    size_t len, off;
    uint8_t data[]; /* len bytes */
} orpc__chunk;

typedef struct orpc__sendq {
    orpc__chunk *head, *tail;
    size_t bytes;        /* not yet handed to nghttp2 */
    const orpc_mem *mem; /* the chunks' allocator (NULL: libc) */
} orpc__sendq;

void orpc__sendq_push(orpc__sendq *q, orpc__chunk *c);
/* Copies up to |len| bytes into |buf|; returns how many. */
size_t orpc__sendq_read(orpc__sendq *q, uint8_t *buf, size_t len);
void orpc__sendq_clear(orpc__sendq *q);

/*
 * Serializes |msg| as one length-prefixed message in a new chunk allocated
 * with |mem| (free it with the same, or push it on a sendq of that |mem|),
 * gzip-compressed when |gzip| (and only if that makes it smaller).
 * Returns NULL with |*err| = ORPC_ETOOBIG (over |max|, 0 = no limit) or
 * ORPC_ENOMEM.
 */
orpc__chunk *orpc__encode_message(const orpc_mem *mem,
                                  const ProtobufCMessage *msg, int gzip,
                                  size_t max, int *err);

/*
 * Decodes one received message: decompresses it when |compressed| (only
 * gzip is understood: |encoding_gzip| says the stream declared it), checks
 * the |max| size, and unpacks with |desc| using |alloc| (NULL: malloc).
 * Returns the message, or NULL with |*st| set, made with |mem| (as is the
 * decompression buffer): RESOURCE_EXHAUSTED (too big, or out of memory),
 * INTERNAL (bad compression, or bytes that are not the message).
 */
ProtobufCMessage *orpc__decode_message(const ProtobufCMessageDescriptor *desc,
                                       const uint8_t *p, size_t len,
                                       int compressed, int encoding_gzip,
                                       size_t max, ProtobufCAllocator *alloc,
                                       const orpc_mem *mem, orpc_status *st);

/*
 * Adds the received header |name|: |value| to |md| when it is application
 * metadata, the entries a handler sees through orpc_ctx_metadata() and the
 * authorization policy matches on.  Skipped (returns 0, |md| unchanged):
 * pseudo-headers, grpc-*, te, content-type, user-agent, host,
 * content-length, accept-encoding, and the connection-specific headers
 * orpc_metadata_key_valid() refuses (connection, keep-alive, upgrade, ...).
 * A "-bin" value is split on ',' and each piece, without surrounding spaces
 * and tabs, is base64-decoded (padded or not) into one entry.
 *
 * Returns 0; ORPC_EINVAL when the header is not valid metadata: an empty
 * name or one outside [0-9a-z_.-] or over 1024 bytes, a non-bin value with
 * a byte outside 0x20-0x7E, a "-bin" piece that is not base64, a value over
 * orpc_metadata's 1 MiB limit, or NULL arguments; ORPC_ENOMEM.  Nothing
 * malformed is dropped silently: the caller must fail the call (server) or
 * end it (channel), because a dropped header would be invisible to the
 * policy.  On an error |md| may hold the pieces of a "-bin" header that
 * came before the bad one.
 * Ownership: copies |name| and |value|.  Thread: the caller's, which owns
 * |md|.
 */
int orpc__md_from_header(orpc_metadata *md, const uint8_t *name, size_t namelen,
                         const uint8_t *value, size_t valuelen);
/* The same, decoding a "-bin" value in a buffer allocated with |mem| (the
 * hooks |md| was made with; NULL: libc). */
int orpc__md_from_header_mem(orpc_metadata *md, const orpc_mem *mem,
                             const uint8_t *name, size_t namelen,
                             const uint8_t *value, size_t valuelen);

/* A header list to send.  Lives on the stack: small lists (every gRPC
 * response and most requests) never touch the heap; larger ones, and the
 * encoding of values, allocate with |mem|. */
typedef struct orpc__hdrs {
    const orpc_mem *mem;
    nghttp2_nv *nv;
    size_t n, cap;
    size_t *offs; /* name/value offsets into |str|, 4 per entry; SIZE_MAX
                     in offs[0]: a static entry whose nv points at literals */
    uint8_t *str;
    size_t str_len, str_cap;
    nghttp2_nv nv_buf[24];
    size_t offs_buf[96];
    uint8_t str_buf[1024];
} orpc__hdrs;

void orpc__hdrs_init(orpc__hdrs *h, const orpc_mem *mem);
void orpc__hdrs_free(orpc__hdrs *h);
int orpc__hdrs_add(orpc__hdrs *h, const char *name, const void *value,
                   size_t valuelen);
int orpc__hdrs_add_str(orpc__hdrs *h, const char *name, const char *value);
/* Adds literals that outlive the frame (string constants): nothing is
 * copied, by us or by nghttp2. */
int orpc__hdrs_add_static(orpc__hdrs *h, const char *name, const char *value);
/* Adds every entry of |md|, base64-encoding -bin values. */
int orpc__hdrs_add_md(orpc__hdrs *h, const orpc_metadata *md);
/* Fixes the nv pointers; call before handing h->nv to nghttp2. */
void orpc__hdrs_finish(orpc__hdrs *h);

/* Adds grpc-status, grpc-message (percent-encoded) and
 * grpc-status-details-bin for |st|. */
int orpc__hdrs_add_status(orpc__hdrs *h, const orpc_status *st);

/* Parses grpc-status: 0–16 decimal without leading zeros; others → -1. */
int orpc__parse_status_code(const uint8_t *v, size_t len);

/* Whether the header name |n| (|len| bytes, not NUL-terminated) is the
 * literal |lit|. */
static inline int orpc__name_is(const uint8_t *n, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(n, lit, len) == 0;
}

#endif
