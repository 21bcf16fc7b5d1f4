/*
 * common/pct.c — owns the percent-encoder and decoder of common/pct.h.
 *
 * Measure, then write: callers reserve exactly once in whatever buffer
 * they keep (the runtime's wire buffers, the compat layer's text buffers),
 * so the functions here never allocate.
 */
#include "common/pct.h"

#include <stdint.h>

static const char HEX[] = "0123456789ABCDEF";

static int kept(unsigned char c, orpc__pct_set set)
{
    if (set == ORPC__PCT_PRINTABLE)
        return c >= 0x20 && c <= 0x7E && c != '%';
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
           c == '~' || (set == ORPC__PCT_UNRESERVED_SLASH && c == '/');
}

size_t orpc__pct_encoded_len(const void *s, size_t n, orpc__pct_set set)
{
    const unsigned char *p = s;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = kept(p[i], set) ? 1 : 3;
        if (len > SIZE_MAX - 1 - k)
            return SIZE_MAX;
        len += k;
    }
    return len;
}

size_t orpc__pct_encode(char *dst, const void *s, size_t n, orpc__pct_set set)
{
    const unsigned char *p = s;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (kept(p[i], set)) {
            dst[j++] = (char)p[i];
        } else {
            dst[j++] = '%';
            dst[j++] = HEX[p[i] >> 4];
            dst[j++] = HEX[p[i] & 0x0F];
        }
    }
    dst[j] = '\0';
    return j;
}

static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

size_t orpc__pct_decode(char *dst, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (p[i] == '%' && n - i >= 3 && (hi = hex_val(p[i + 1])) >= 0 &&
            (lo = hex_val(p[i + 2])) >= 0) {
            dst[j++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            dst[j++] = (char)p[i]; /* a '%' that starts no valid escape */
        }
    }
    dst[j] = '\0';
    return j;
}
