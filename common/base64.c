/*
 * common/base64.c — owns the base64 encoder and the strict decoder of
 * common/base64.h.
 *
 * The decoder checks the whole text before writing a byte (length and
 * padding first, then every digit), so a refused text leaves the output
 * buffer as it was.  Digits are looked up with a branch per range rather
 * than a 256-entry table: the texts are short (bytes fields, metadata
 * values) and the ranges say what is accepted.
 */
#include "common/base64.h"

#include <stdint.h>

#include <orpc/error.h>

static const char B64_STD[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64_URL[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t orpc__base64_encoded_len(size_t n, unsigned flags)
{
    size_t rem = n % 3;
    if (n / 3 > (SIZE_MAX - 4) / 4) {
        return SIZE_MAX;
    }
    if (rem == 0 || !(flags & ORPC__BASE64_NOPAD)) {
        return (n + 2) / 3 * 4;
    }
    return n / 3 * 4 + rem + 1;
}

size_t orpc__base64_encode(char *dst, const void *src, size_t n, unsigned flags)
{
    const char *abc = (flags & ORPC__BASE64_URL) ? B64_URL : B64_STD;
    const uint8_t *p = src;
    size_t j = 0;
    size_t i = 0;
    for (; n - i >= 3; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        dst[j++] = abc[v >> 18 & 63];
        dst[j++] = abc[v >> 12 & 63];
        dst[j++] = abc[v >> 6 & 63];
        dst[j++] = abc[v & 63];
    }
    if (n - i > 0) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (n - i == 2) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        dst[j++] = abc[v >> 18 & 63];
        dst[j++] = abc[v >> 12 & 63];
        if (n - i == 2) {
            dst[j++] = abc[v >> 6 & 63];
        }
        if (!(flags & ORPC__BASE64_NOPAD)) {
            dst[j++] = '=';
            if (n - i == 1) {
                dst[j++] = '=';
            }
        }
    }
    dst[j] = '\0';
    return j;
}

int orpc__base64_append(orpc__buf *b, const void *src, size_t n, unsigned flags)
{
    size_t len = orpc__base64_encoded_len(n, flags);
    if (len == SIZE_MAX) {
        b->failed = 1;
        return ORPC_ENOMEM;
    }
    int rc = orpc__buf_reserve(b, len);
    if (rc != 0) {
        return rc;
    }
    b->len += orpc__base64_encode((char *)b->data + b->len, src, n, flags);
    return 0;
}

/* The value of base64 digit |c| of either alphabet, or -1; records in
 * |*alphabets| which alphabet a digit of only one belongs to (1 standard,
 * 2 URL-safe). */
static int digit(char c, unsigned *alphabets)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+' || c == '/') {
        *alphabets |= 1;
        return c == '+' ? 62 : 63;
    }
    if (c == '-' || c == '_') {
        *alphabets |= 2;
        return c == '-' ? 62 : 63;
    }
    return -1;
}

size_t orpc__base64_decode_raw(uint8_t *dst, const char *s, size_t n,
                               unsigned flags)
{
    size_t pad = 0;
    while (pad < 2 && pad < n && s[n - 1 - pad] == '=') {
        pad++;
    }
    size_t m = n - pad; /* digits */
    size_t rem = m % 4;
    if (rem == 1 || (pad > 0 && (n % 4 != 0 || pad != 4 - rem))) {
        return SIZE_MAX;
    }
    unsigned alphabets = 0;
    for (size_t i = 0; i < m; i++) {
        if (digit(s[i], &alphabets) < 0 || alphabets == 3 ||
            ((flags & ORPC__BASE64_STD_ONLY) && alphabets == 2)) {
            return SIZE_MAX;
        }
    }
    /* The last digit of a partial group carries 2 (rem 3) or 4 (rem 2)
     * bits that no byte uses: they must be zero, unless told otherwise. */
    if (rem != 0 && !(flags & ORPC__BASE64_ANY_BITS)) {
        int last = digit(s[m - 1], &alphabets);
        if (last & (rem == 3 ? 0x3 : 0xF)) {
            return SIZE_MAX;
        }
    }
    size_t len = m / 4 * 3 + (rem == 0 ? 0 : rem - 1);
    if (flags & ORPC__BASE64_CHECK) {
        return len;
    }
    uint8_t *o = dst;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < m; i++) {
        acc = acc << 6 | (uint32_t)digit(s[i], &alphabets);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *o++ = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return len;
}

int orpc__base64_decode(orpc__buf *out, const char *s, size_t n)
{
    /* Checked before anything is reserved: a refused text costs nothing,
     * and the reservation is exact. */
    size_t len = orpc__base64_decode_raw(NULL, s, n, ORPC__BASE64_CHECK);
    if (len == SIZE_MAX) {
        return ORPC_EPARSE;
    }
    int rc = orpc__buf_reserve(out, len);
    if (rc != 0) {
        return rc;
    }
    out->len += orpc__base64_decode_raw(out->data + out->len, s, n, 0);
    out->data[out->len] = '\0';
    return 0;
}
