/*
 * grpc.c — message framing with compression and limits, outgoing chunk
 * queues, and the conversions between headers and orpc_metadata.
 *
 * Every received byte is untrusted: sizes are checked before allocation,
 * decompression is bounded by the receive limit, and a message that does
 * not unpack is INTERNAL with a message saying so.
 */
#include "grpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/mem.h"

/* ---- send queue ---- */

void orpc__sendq_push(orpc__sendq *q, orpc__chunk *c)
{
    c->next = NULL;
    if (q->tail)
        q->tail->next = c;
    else
        q->head = c;
    q->tail = c;
    q->bytes += c->len - c->off;
}

size_t orpc__sendq_read(orpc__sendq *q, uint8_t *buf, size_t len)
{
    size_t n = 0;
    while (n < len && q->head != NULL) {
        orpc__chunk *c = q->head;
        size_t take = c->len - c->off;
        if (take > len - n)
            take = len - n;
        memcpy(buf + n, c->data + c->off, take);
        c->off += take;
        n += take;
        if (c->off == c->len) {
            q->head = c->next;
            if (q->head == NULL)
                q->tail = NULL;
            orpc__mem_free(q->mem, c);
        }
    }
    q->bytes -= n;
    return n;
}

void orpc__sendq_clear(orpc__sendq *q)
{
    while (q->head) {
        orpc__chunk *c = q->head;
        q->head = c->next;
        orpc__mem_free(q->mem, c);
    }
    q->tail = NULL;
    q->bytes = 0;
}

/* ---- messages ---- */

orpc__chunk *orpc__encode_message(const orpc_mem *mem,
                                  const ProtobufCMessage *msg, int gzip,
                                  size_t max, int *err)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (n > UINT32_MAX || (max > 0 && n > max)) {
        *err = ORPC_ETOOBIG;
        return NULL;
    }
    orpc__chunk *c = orpc__mem_malloc(mem, sizeof(*c) + ORPC__MSG_HEADER + n);
    if (c == NULL) {
        *err = ORPC_ENOMEM;
        return NULL;
    }
    c->next = NULL;
    c->off = 0;
    c->len = ORPC__MSG_HEADER + n;
    protobuf_c_message_pack(msg, c->data + ORPC__MSG_HEADER);
    orpc__msg_header(c->data, 0, (uint32_t)n);
    if (gzip && n > 0) {
        orpc__buf z;
        orpc__buf_init(&z, mem);
        if (orpc__gzip_compress(c->data + ORPC__MSG_HEADER, n, &z) == 0 &&
            z.len < n) {
            orpc__chunk *zc =
                orpc__mem_malloc(mem, sizeof(*zc) + ORPC__MSG_HEADER + z.len);
            if (zc != NULL) {
                zc->next = NULL;
                zc->off = 0;
                zc->len = ORPC__MSG_HEADER + z.len;
                orpc__msg_header(zc->data, 1, (uint32_t)z.len);
                memcpy(zc->data + ORPC__MSG_HEADER, z.data, z.len);
                orpc__mem_free(mem, c);
                c = zc;
            }
        }
        orpc__buf_free(&z);
    }
    return c;
}

/*
 * protobuf-c's unpack says NULL whether the bytes are not the message or an
 * allocation failed; this allocator passes every call on to the caller's
 * (NULL: protobuf-c's default, malloc) and notes a failure, so that the
 * call ends RESOURCE_EXHAUSTED rather than blaming the peer's bytes.  The
 * blocks are the caller's allocator's: the message is freed with that.
 */
typedef struct unpack_guard {
    ProtobufCAllocator a;
    ProtobufCAllocator *inner;
    int oom;
} unpack_guard;

static void *guard_alloc(void *data, size_t size)
{
    unpack_guard *g = data;
    void *p = g->inner ? g->inner->alloc(g->inner->allocator_data, size)
                       : malloc(size);
    if (p == NULL)
        g->oom = 1;
    return p;
}

static void guard_free(void *data, void *ptr)
{
    unpack_guard *g = data;
    if (g->inner)
        g->inner->free(g->inner->allocator_data, ptr);
    else
        free(ptr);
}

ProtobufCMessage *orpc__decode_message(const ProtobufCMessageDescriptor *desc,
                                       const uint8_t *p, size_t len,
                                       int compressed, int encoding_gzip,
                                       size_t max, ProtobufCAllocator *alloc,
                                       const orpc_mem *mem, orpc_status *st)
{
    orpc__buf z;
    ProtobufCMessage *m;
    orpc__buf_init(&z, mem);
    if (compressed) {
        if (!encoding_gzip) {
            *st = orpc__status_new_mem(mem, ORPC_INTERNAL,
                                       "compressed message without a "
                                       "supported grpc-encoding");
            return NULL;
        }
        int rc = orpc__gzip_decompress(p, len, max, &z);
        if (rc == ORPC_ETOOBIG) {
            *st = orpc__status_errorf_mem(mem, ORPC_RESOURCE_EXHAUSTED,
                                          "decompressed message larger than "
                                          "%zu bytes",
                                          max);
            orpc__buf_free(&z);
            return NULL;
        }
        if (rc != 0) {
            *st = rc == ORPC_ENOMEM
                      ? orpc__status_new_mem(mem, ORPC_RESOURCE_EXHAUSTED,
                                             "out of memory decompressing")
                      : orpc__status_new_mem(mem, ORPC_INTERNAL,
                                             "message does not decompress");
            orpc__buf_free(&z);
            return NULL;
        }
        p = z.data ? z.data : (const uint8_t *)"";
        len = z.len;
    }
    unpack_guard g = {{guard_alloc, guard_free, NULL}, alloc, 0};
    g.a.allocator_data = &g;
    m = protobuf_c_message_unpack(desc, &g.a, len, p);
    orpc__buf_free(&z);
    if (m == NULL && g.oom)
        *st =
            orpc__status_errorf_mem(mem, ORPC_RESOURCE_EXHAUSTED,
                                    "out of memory decoding a %s", desc->name);
    else if (m == NULL)
        *st = orpc__status_errorf_mem(mem, ORPC_INTERNAL,
                                      "message is not a valid %s", desc->name);
    return m;
}

/* ---- headers ---- */

int orpc__parse_status_code(const uint8_t *v, size_t len)
{
    int code = 0;
    if (len == 0 || len > 2 || (len == 2 && v[0] == '0'))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        code = code * 10 + (v[i] - '0');
    }
    return code <= 16 ? code : -1;
}

static int is_reserved(const uint8_t *name, size_t n)
{
    static const char *const skip[] = {
        "te",         "content-type",   "user-agent",     "host",
        "connection", "content-length", "accept-encoding"};
    if (n == 0 || name[0] == ':')
        return 1;
    if (n >= 5 && memcmp(name, "grpc-", 5) == 0)
        return 1;
    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        if (strlen(skip[i]) == n && memcmp(skip[i], name, n) == 0)
            return 1;
    return 0;
}

/*
 * Untrusted input: a malformed entry is an error, never dropped, because
 * what is dropped here is invisible to the authorization policy (a caller
 * could send a denied value in a form that vanishes) and to the handler.
 * Keys of 1024 bytes are the longest orpc_metadata accepts.  A well-formed
 * name that orpc_metadata_key_valid() refuses is a connection-level header
 * (keep-alive, upgrade, ...; nghttp2 refuses most of them before us), not
 * metadata, and is skipped like the reserved ones.
 */
int orpc__md_from_header(orpc_metadata *md, const uint8_t *name, size_t namelen,
                         const uint8_t *value, size_t valuelen)
{
    return orpc__md_from_header_mem(md, NULL, name, namelen, value, valuelen);
}

int orpc__md_from_header_mem(orpc_metadata *md, const orpc_mem *mem,
                             const uint8_t *name, size_t namelen,
                             const uint8_t *value, size_t valuelen)
{
    char key[1025];
    if (md == NULL || name == NULL || namelen == 0 ||
        (value == NULL && valuelen > 0))
        return ORPC_EINVAL;
    if (is_reserved(name, namelen))
        return 0;
    if (namelen >= sizeof(key))
        return ORPC_EINVAL;
    for (size_t i = 0; i < namelen; i++) {
        uint8_t c = name[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' ||
              c == '.' || c == '-'))
            return ORPC_EINVAL;
    }
    memcpy(key, name, namelen);
    key[namelen] = '\0';
    if (!orpc_metadata_key_valid(key))
        return 0;
    if (value == NULL)
        value = (const uint8_t *)"";
    if (namelen <= 4 || memcmp(name + namelen - 4, "-bin", 4) != 0)
        return orpc_metadata_add(md, key, value, valuelen);

    /* -bin: each ','-separated piece, without the spaces and tabs around
     * it, is one base64 value (padded or not). */
    orpc__buf b;
    orpc__buf_init(&b, mem);
    int rc = 0;
    size_t start = 0;
    for (size_t i = 0; i <= valuelen && rc == 0; i++) {
        if (i < valuelen && value[i] != ',')
            continue;
        size_t s = start, e = i;
        while (s < e && (value[s] == ' ' || value[s] == '\t'))
            s++;
        while (e > s && (value[e - 1] == ' ' || value[e - 1] == '\t'))
            e--;
        b.len = 0;
        rc = orpc__b64_decode((const char *)value + s, e - s, &b);
        if (rc == 0)
            rc = orpc_metadata_add(md, key, b.data ? b.data : (uint8_t *)"",
                                   b.len);
        start = i + 1;
    }
    orpc__buf_free(&b);
    return rc;
}

void orpc__hdrs_init(orpc__hdrs *h, const orpc_mem *mem)
{
    h->mem = mem;
    h->nv = h->nv_buf;
    h->offs = h->offs_buf;
    h->str = h->str_buf;
    h->n = 0;
    h->cap = sizeof(h->nv_buf) / sizeof(h->nv_buf[0]);
    h->str_len = 0;
    h->str_cap = sizeof(h->str_buf);
}

void orpc__hdrs_free(orpc__hdrs *h)
{
    if (h->nv != h->nv_buf)
        orpc__mem_free(h->mem, h->nv);
    if (h->offs != h->offs_buf)
        orpc__mem_free(h->mem, h->offs);
    if (h->str != h->str_buf)
        orpc__mem_free(h->mem, h->str);
    orpc__hdrs_init(h, h->mem);
}

static int hdrs_room(orpc__hdrs *h, size_t bytes)
{
    if (h->n == h->cap) {
        size_t cap = h->cap * 2;
        nghttp2_nv *nv = orpc__mem_malloc(h->mem, cap * sizeof(*nv));
        size_t *offs = orpc__mem_malloc(h->mem, cap * 4 * sizeof(*offs));
        if (nv == NULL || offs == NULL) {
            orpc__mem_free(h->mem, nv);
            orpc__mem_free(h->mem, offs);
            return ORPC_ENOMEM;
        }
        memcpy(nv, h->nv, h->n * sizeof(*nv));
        memcpy(offs, h->offs, h->n * 4 * sizeof(*offs));
        if (h->nv != h->nv_buf)
            orpc__mem_free(h->mem, h->nv);
        if (h->offs != h->offs_buf)
            orpc__mem_free(h->mem, h->offs);
        h->nv = nv;
        h->offs = offs;
        h->cap = cap;
    }
    if (bytes > h->str_cap - h->str_len) {
        if (bytes > SIZE_MAX / 2 - h->str_len)
            return ORPC_ENOMEM;
        size_t cap = h->str_cap * 2;
        while (cap - h->str_len < bytes)
            cap *= 2;
        uint8_t *str = orpc__mem_malloc(h->mem, cap);
        if (str == NULL)
            return ORPC_ENOMEM;
        memcpy(str, h->str, h->str_len);
        if (h->str != h->str_buf)
            orpc__mem_free(h->mem, h->str);
        h->str = str;
        h->str_cap = cap;
    }
    return 0;
}

int orpc__hdrs_add(orpc__hdrs *h, const char *name, const void *value,
                   size_t valuelen)
{
    size_t nl = strlen(name);
    if (valuelen > SIZE_MAX / 2 || hdrs_room(h, nl + valuelen) != 0)
        return ORPC_ENOMEM;
    size_t *o = &h->offs[h->n * 4];
    o[0] = h->str_len;
    o[1] = nl;
    memcpy(h->str + h->str_len, name, nl);
    h->str_len += nl;
    o[2] = h->str_len;
    o[3] = valuelen;
    if (valuelen > 0)
        memcpy(h->str + h->str_len, value, valuelen);
    h->str_len += valuelen;
    h->n++;
    return 0;
}

int orpc__hdrs_add_static(orpc__hdrs *h, const char *name, const char *value)
{
    if (hdrs_room(h, 0) != 0)
        return ORPC_ENOMEM;
    nghttp2_nv *nv = &h->nv[h->n];
    nv->name = (uint8_t *)name;
    nv->namelen = strlen(name);
    nv->value = (uint8_t *)value;
    nv->valuelen = strlen(value);
    nv->flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
    h->offs[h->n * 4] = SIZE_MAX;
    h->n++;
    return 0;
}

int orpc__hdrs_add_str(orpc__hdrs *h, const char *name, const char *value)
{
    return orpc__hdrs_add(h, name, value, strlen(value));
}

int orpc__hdrs_add_md(orpc__hdrs *h, const orpc_metadata *md)
{
    size_t n = orpc_metadata_count(md);
    for (size_t i = 0; i < n; i++) {
        const char *k;
        const uint8_t *v;
        size_t len;
        orpc_metadata_at(md, i, &k, &v, &len);
        size_t kl = strlen(k);
        if (kl > 4 && strcmp(k + kl - 4, "-bin") == 0) {
            orpc__buf b;
            orpc__buf_init(&b, h->mem);
            int rc = orpc__b64_encode(v, len, &b);
            if (rc == 0)
                rc = orpc__hdrs_add(h, k, b.data ? b.data : (uint8_t *)"",
                                    b.len);
            orpc__buf_free(&b);
            if (rc != 0)
                return rc;
        } else if (orpc__hdrs_add(h, k, v, len) != 0) {
            return ORPC_ENOMEM;
        }
    }
    return 0;
}

void orpc__hdrs_finish(orpc__hdrs *h)
{
    for (size_t i = 0; i < h->n; i++) {
        const size_t *o = &h->offs[i * 4];
        if (o[0] == SIZE_MAX)
            continue; /* static: already points at its literals */
        h->nv[i].name = h->str + o[0];
        h->nv[i].namelen = o[1];
        h->nv[i].value = o[3] ? h->str + o[2] : (uint8_t *)"";
        h->nv[i].valuelen = o[3];
        /* A traceparent is new on every call: indexed, it would only push
         * the headers that do repeat out of the peer's HPACK table. */
        h->nv[i].flags =
            o[1] == 11 && memcmp(h->str + o[0], "traceparent", 11) == 0
                ? NGHTTP2_NV_FLAG_NO_INDEX
                : NGHTTP2_NV_FLAG_NONE;
    }
}

int orpc__hdrs_add_status(orpc__hdrs *h, const orpc_status *st)
{
    static const char *const codes[17] = {"0",  "1",  "2",  "3",  "4",  "5",
                                          "6",  "7",  "8",  "9",  "10", "11",
                                          "12", "13", "14", "15", "16"};
    int c = (int)st->code;
    if (c < 0 || c > 16)
        c = ORPC_UNKNOWN;
    if (orpc__hdrs_add_static(h, "grpc-status", codes[c]) != 0)
        return ORPC_ENOMEM;
    if (st->message != NULL && st->message[0] != '\0') {
        orpc__buf b;
        orpc__buf_init(&b, h->mem);
        int rc = orpc__percent_encode(st->message, strlen(st->message), &b);
        if (rc == 0)
            rc = orpc__hdrs_add(h, "grpc-message", b.data, b.len);
        orpc__buf_free(&b);
        if (rc != 0)
            return rc;
    }
    if (st->details != NULL && st->details_len > 0) {
        orpc__buf b;
        orpc__buf_init(&b, h->mem);
        int rc = orpc__b64_encode(st->details, st->details_len, &b);
        if (rc == 0)
            rc = orpc__hdrs_add(h, "grpc-status-details-bin", b.data, b.len);
        orpc__buf_free(&b);
        if (rc != 0)
            return rc;
    }
    return 0;
}
