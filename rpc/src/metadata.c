/*
 * metadata.c — owns orpc_metadata, the ordered key/value list of gRPC
 * metadata, and the rules that say which keys an application may set.
 *
 * Design notes:
 *   - A growable array of entries, in insertion order (keys repeat and order
 *     is part of gRPC metadata, so no hashing).  Lists are short (a handful
 *     of headers), so lookups are linear.
 *   - Each entry is one allocation laid out as "key\0value\0": one malloc per
 *     add, and the value is NUL-terminated for free, as orpc_metadata_at()
 *     promises.  The array grows by doubling through orpc__mem_grow(), which
 *     works with any set of hooks.
 *   - An add either fully succeeds or leaves the list unchanged.
 *
 * Limits (per entry; the transport's header-list limit bounds the whole):
 *   - key: 1 to MD_KEY_MAX (1024) bytes.  Real keys are a few dozen bytes;
 *     the bound keeps a hostile key from being scanned or copied at length.
 *   - value: at most MD_VALUE_MAX (1 MiB) bytes, after base64 decoding for
 *     "-bin" keys.  Far above gRPC's usual 8–16 KiB header-list limits, so
 *     it never gets in the way of a configured limit, but it stops a caller's
 *     bogus length long before size arithmetic could overflow.
 *   Over-long keys are not valid keys; over-long values are refused with
 *   ORPC_EINVAL, the code orpc/metadata.h lists for a bad entry.
 */
#include <orpc/error.h>
#include <orpc/metadata.h>

#include <stdint.h>
#include <string.h>

#include "common/mem.h"
#include "metadata_internal.h"

#define MD_KEY_MAX ((size_t)1024)
#define MD_VALUE_MAX ((size_t)1024 * 1024)
#define MD_INITIAL_CAP ((size_t)8)
#define MD_INLINE ((size_t)4) /* entries kept in the list object itself */

typedef struct md_entry {
    /* "key\0value\0" in one allocation; |value| points into it.  A
     * borrowed entry's strings belong to whoever added it (the runtime's
     * own, orpc__md_add_borrowed()) and are not freed here. */
    char *key;
    uint8_t *value;
    size_t len;
    int borrowed;
} md_entry;

struct orpc_metadata {
    orpc_mem mem;
    md_entry *entries; /* |inline_entries| until more are needed */
    size_t count;
    size_t cap;
    /* Most lists (a call's request metadata) hold a few entries: they need
     * no allocation besides the list's own. */
    md_entry inline_entries[MD_INLINE];
};

/*
 * Keys applications may not set even though they are well formed.  Besides
 * the "grpc-" prefix (reserved by the gRPC protocol for the runtime):
 *   - the HTTP/2 connection-specific headers, which RFC 9113 §8.2.2 forbids
 *     in HTTP/2 (connection, keep-alive, proxy-connection, transfer-encoding,
 *     upgrade) and "te", which gRPC itself sets to "trailers";
 *   - the headers the gRPC runtime writes on every request or response
 *     (content-type, user-agent) and "host", which HTTP/2 replaces with the
 *     :authority pseudo-header.
 * Pseudo-headers (":path", ...) need no entry: ':' is not a key character.
 */
static const struct {
    const char *key;
    size_t len;
} md_reserved[] = {
#define RESERVED(k)                                                            \
    {                                                                          \
        k, sizeof(k) - 1                                                       \
    }
    RESERVED("connection"),
    RESERVED("keep-alive"),
    RESERVED("proxy-connection"),
    RESERVED("transfer-encoding"),
    RESERVED("upgrade"),
    RESERVED("te"),
    RESERVED("content-type"),
    RESERVED("user-agent"),
    RESERVED("host"),
#undef RESERVED
};

static int md_key_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' ||
           c == '.' || c == '-';
}

/* The length of |key| when it is valid for an application, else 0. */
static size_t md_key_check(const char *key)
{
    if (key == NULL) {
        return 0;
    }
    size_t n = 0;
    while (key[n] != '\0') {
        if (n == MD_KEY_MAX || !md_key_char((unsigned char)key[n])) {
            return 0;
        }
        n++;
    }
    if (n == 0 || (n >= 5 && memcmp(key, "grpc-", 5) == 0)) {
        return 0;
    }
    for (size_t i = 0; i < sizeof(md_reserved) / sizeof(md_reserved[0]); i++) {
        if (n == md_reserved[i].len &&
            memcmp(key, md_reserved[i].key, n) == 0) {
            return 0;
        }
    }
    return n;
}

static int md_key_is_bin(const char *key, size_t key_len)
{
    return key_len >= 4 && memcmp(key + key_len - 4, "-bin", 4) == 0;
}

int orpc_metadata_key_valid(const char *key)
{
    return md_key_check(key) != 0;
}

int orpc_metadata_new(orpc_metadata **out, const orpc_mem *mem)
{
    if (out == NULL) {
        return ORPC_EINVAL;
    }
    *out = NULL;
    orpc_metadata *md = orpc__mem_malloc(mem, sizeof(*md));
    if (md == NULL) {
        return ORPC_ENOMEM;
    }
    orpc__mem_copy(&md->mem, mem);
    md->entries = md->inline_entries;
    md->count = 0;
    md->cap = MD_INLINE;
    *out = md;
    return 0;
}

void orpc_metadata_free(orpc_metadata *md)
{
    if (md == NULL) {
        return;
    }
    for (size_t i = 0; i < md->count; i++) {
        if (!md->entries[i].borrowed)
            orpc__mem_free(&md->mem, md->entries[i].key);
    }
    if (md->entries != md->inline_entries)
        orpc__mem_free(&md->mem, md->entries);
    orpc_mem mem = md->mem;
    orpc__mem_free(&mem, md);
}

/* Room for one more entry. */
static int md_reserve(orpc_metadata *md)
{
    if (md->count < md->cap) {
        return 0;
    }
    size_t cap = md->cap <= MD_INLINE ? MD_INITIAL_CAP : md->cap;
    if (md->cap > MD_INLINE) {
        if (cap > SIZE_MAX / 2 / sizeof(md_entry)) {
            return ORPC_ENOMEM;
        }
        cap *= 2;
    }
    md_entry *e;
    if (md->entries == md->inline_entries) {
        e = orpc__mem_malloc(&md->mem, cap * sizeof(md_entry));
        if (e != NULL)
            memcpy(e, md->inline_entries, md->count * sizeof(md_entry));
    } else {
        e = orpc__mem_grow(&md->mem, md->entries, md->count * sizeof(md_entry),
                           cap * sizeof(md_entry));
    }
    if (e == NULL) {
        return ORPC_ENOMEM;
    }
    md->entries = e;
    md->cap = cap;
    return 0;
}

static int md_add_unchecked(orpc_metadata *md, const char *key, size_t key_len,
                            const void *value, size_t len);

int orpc_metadata_add(orpc_metadata *md, const char *key, const void *value,
                      size_t len)
{
    if (md == NULL || (value == NULL && len > 0)) {
        return ORPC_EINVAL;
    }
    size_t key_len = md_key_check(key);
    if (key_len == 0 || len > MD_VALUE_MAX) {
        return ORPC_EINVAL;
    }
    if (!md_key_is_bin(key, key_len)) {
        const unsigned char *v = value;
        for (size_t i = 0; i < len; i++) {
            if (v[i] < 0x20 || v[i] > 0x7E) {
                return ORPC_EINVAL;
            }
        }
    }
    return md_add_unchecked(md, key, key_len, value, len);
}

static int md_add_unchecked(orpc_metadata *md, const char *key, size_t key_len,
                            const void *value, size_t len)
{
    int rc = md_reserve(md);
    if (rc != 0) {
        return rc;
    }
    /* Both lengths are bounded above, so this cannot overflow. */
    char *buf = orpc__mem_malloc(&md->mem, key_len + 1 + len + 1);
    if (buf == NULL) {
        return ORPC_ENOMEM;
    }
    memcpy(buf, key, key_len);
    buf[key_len] = '\0';
    uint8_t *v = (uint8_t *)buf + key_len + 1;
    if (len > 0) {
        memcpy(v, value, len);
    }
    v[len] = '\0';
    md_entry *e = &md->entries[md->count++];
    e->key = buf;
    e->value = v;
    e->len = len;
    e->borrowed = 0;
    return 0;
}

int orpc__md_add_borrowed(orpc_metadata *md, char *key, uint8_t *value,
                          size_t len)
{
    int rc = md_reserve(md);
    if (rc != 0) {
        return rc;
    }
    md_entry *e = &md->entries[md->count++];
    e->key = key;
    e->value = value;
    e->len = len;
    e->borrowed = 1;
    return 0;
}

int orpc_metadata_add_all(orpc_metadata *dst, const orpc_metadata *src)
{
    if (dst == NULL || dst == src) {
        return ORPC_EINVAL;
    }
    if (src == NULL) {
        return 0;
    }
    size_t before = dst->count;
    for (size_t i = 0; i < src->count; i++) {
        const md_entry *e = &src->entries[i];
        int rc = orpc_metadata_add(dst, e->key, e->value, e->len);
        if (rc != 0) {
            /* all or nothing: drop what this call added */
            while (dst->count > before) {
                orpc__mem_free(&dst->mem, dst->entries[--dst->count].key);
            }
            return rc;
        }
    }
    return 0;
}

int orpc_metadata_add_str(orpc_metadata *md, const char *key, const char *value)
{
    if (value == NULL) {
        return ORPC_EINVAL;
    }
    return orpc_metadata_add(md, key, value, strlen(value));
}

size_t orpc_metadata_count(const orpc_metadata *md)
{
    return md != NULL ? md->count : 0;
}

int orpc_metadata_at(const orpc_metadata *md, size_t index, const char **key,
                     const uint8_t **value, size_t *len)
{
    if (md == NULL || index >= md->count) {
        return ORPC_EINVAL;
    }
    const md_entry *e = &md->entries[index];
    if (key != NULL) {
        *key = e->key;
    }
    if (value != NULL) {
        *value = e->value;
    }
    if (len != NULL) {
        *len = e->len;
    }
    return 0;
}

int orpc_metadata_get(const orpc_metadata *md, const char *key,
                      const uint8_t **value, size_t *len)
{
    if (key == NULL) {
        return ORPC_EINVAL;
    }
    if (md == NULL) {
        return ORPC_ENOTFOUND; /* as an empty list */
    }
    for (size_t i = 0; i < md->count; i++) {
        if (strcmp(md->entries[i].key, key) == 0) {
            return orpc_metadata_at(md, i, NULL, value, len);
        }
    }
    return ORPC_ENOTFOUND;
}

size_t orpc_metadata_remove(orpc_metadata *md, const char *key)
{
    if (md == NULL || key == NULL) {
        return 0;
    }
    size_t kept = 0;
    for (size_t i = 0; i < md->count; i++) {
        if (strcmp(md->entries[i].key, key) == 0) {
            if (!md->entries[i].borrowed)
                orpc__mem_free(&md->mem, md->entries[i].key);
        } else {
            md->entries[kept++] = md->entries[i];
        }
    }
    size_t removed = md->count - kept;
    md->count = kept;
    return removed;
}
