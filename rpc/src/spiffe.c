/*
 * spiffe.c — owns orpc_spiffe_id_parse(): the strict reading of a SPIFFE ID
 * that decides a peer's identity (orpc/tls.h).
 *
 * Deliberately not a general URI parser.  A SPIFFE ID has exactly one
 * spelling (the SPIFFE-ID standard, §2): "spiffe://", a trust domain of
 * [a-z0-9._-], then one or more "/segment" with segments of [A-Za-z0-9._-].
 * Everything a URI parser would normalise or tolerate is refused outright:
 * an upper-case scheme or trust domain, percent-encoding, a port, user info,
 * a query, a fragment, empty, "." or ".." segments, a trailing slash.  Each
 * of those characters (':', '@', '?', '#', '%', '/') is simply outside the
 * allowed sets, so a single left-to-right pass over a bounded prefix of the
 * input decides, and two IDs are the same identity exactly when they are the
 * same bytes.  The scan never reads past ORPC_SPIFFE_ID_MAX + 1 bytes, so a
 * hostile string of any length costs the same.  orpc also requires a path,
 * which the standard leaves optional: a bare trust domain names no service.
 */
#include <orpc/error.h>
#include <orpc/tls.h>

#include <string.h>

#define SPIFFE_PREFIX "spiffe://"
#define SPIFFE_PREFIX_LEN (sizeof(SPIFFE_PREFIX) - 1)

static int td_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

static int seg_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static int spiffe_check(const char *uri, size_t *td_len, size_t *path_off,
                        size_t *total)
{
    /* The prefix, byte for byte (the scheme is lower-case only). */
    if (strncmp(uri, SPIFFE_PREFIX, SPIFFE_PREFIX_LEN) != 0) {
        return ORPC_EINVAL;
    }
    size_t i = SPIFFE_PREFIX_LEN;
    while (i <= ORPC_SPIFFE_ID_MAX && td_char((unsigned char)uri[i])) {
        i++;
    }
    if (i == SPIFFE_PREFIX_LEN || i > ORPC_SPIFFE_ID_MAX || uri[i] != '/') {
        return ORPC_EINVAL; /* no trust domain, or no path, or a bad byte */
    }
    *td_len = i - SPIFFE_PREFIX_LEN;
    *path_off = i;
    /* One or more "/segment"; stops at the first byte of neither kind. */
    while (uri[i] == '/') {
        size_t start = ++i;
        while (i <= ORPC_SPIFFE_ID_MAX && seg_char((unsigned char)uri[i])) {
            i++;
        }
        size_t len = i - start;
        if (len == 0 || (len == 1 && uri[start] == '.') ||
            (len == 2 && uri[start] == '.' && uri[start + 1] == '.')) {
            return ORPC_EINVAL;
        }
        if (i > ORPC_SPIFFE_ID_MAX) {
            return ORPC_EINVAL;
        }
    }
    if (uri[i] != '\0') {
        return ORPC_EINVAL;
    }
    *total = i;
    return 0;
}

int orpc_spiffe_id_parse(orpc_spiffe_id *out, const char *uri)
{
    if (out == NULL) {
        return ORPC_EINVAL;
    }
    size_t td_len = 0;
    size_t path_off = 0;
    size_t total = 0;
    if (uri == NULL || spiffe_check(uri, &td_len, &path_off, &total) != 0) {
        /* Leave no stale identity behind in a reused struct. */
        out->id[0] = '\0';
        out->trust_domain_len = 0;
        out->path_offset = 0;
        return ORPC_EINVAL;
    }
    /* memmove: |uri| may be out->id itself (re-parsing a parsed ID). */
    memmove(out->id, uri, total);
    out->id[total] = '\0';
    out->trust_domain_len = td_len;
    out->path_offset = path_off;
    return 0;
}
