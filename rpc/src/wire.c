/*
 * wire.c — owns the gRPC wire formats that are not HTTP/2 itself (wire.h):
 * length-prefixed message framing, gzip, grpc-timeout, grpc-message
 * percent-encoding and base64 for "-bin" metadata.  No I/O and no global
 * state; every input is untrusted.
 *
 * Design notes:
 *   - Buffers.  Output goes to orpc__buf (common/buf.h), which grows
 *     geometrically through its orpc_mem.  The deframer and the gzip
 *     decoder grow theirs with orpc__buf_reserve_max(), so that they never
 *     hold more than the size they were told to accept.
 *   - Deframer.  A two-state machine, HEADER -> BODY -> HEADER; a negative
 *     state is the sticky error.  Header bytes are collected in d->hdr only
 *     when the 5-byte prefix is split across pieces.  The declared length is
 *     checked against |max| as soon as the prefix is complete, before any
 *     body byte is stored.  A body that lies entirely within the current
 *     piece is returned in place (zero-copy); otherwise it is gathered in
 *     d->buf, which grows with the bytes actually received (doubling, capped
 *     at the declared length), so a peer that declares a large message and
 *     sends little costs little.  At most one message is returned per call.
 *   - gzip.  zlib with windowBits 16+MAX_WBITS (gzip wrapper only; the CRC-32
 *     and length trailer are checked by zlib).  zlib allocates through the
 *     output buffer's hooks.  Decompression inflates straight into |out|,
 *     whose capacity is never grown past its length on entry plus |max_out|;
 *     once that much has been produced, one more inflate into a 1-byte probe
 *     tells "stream ends here" from "would exceed" (ORPC_ETOOBIG), so a bomb
 *     costs at most max_out plus zlib's ~40 KiB of state.  A stream that
 *     ends before its trailer, or is followed by any byte (trailing garbage
 *     or a second gzip member), is ORPC_EPROTO.  On any error |out| is put
 *     back to its length on entry (its capacity may have grown).
 *   - grpc-timeout.  1-8 ASCII digits and one unit, nothing else (no sign,
 *     no space).  "0n" is accepted (an already expired deadline).  Parsing
 *     saturates at INT64_MAX (only hours can overflow).  Formatting picks
 *     the smallest unit in which the value, rounded UP, fits in 8 digits, so
 *     the deadline sent is never shorter than the one asked for; ns <= 0
 *     (outside the contract) gives "1n", the smallest valid positive value.
 *   - base64.  Our own strict decoder rather than OpenSSL's EVP_DecodeBlock,
 *     which needs padded input, skips leading/trailing whitespace and other
 *     garbage, and reports padding bytes as output.  Accepted: the standard
 *     alphabet, with either full padding (total length a multiple of 4,
 *     one or two '=' at the end) or none (length mod 4 of 0, 2 or 3).
 *     Refused: any other character (including ',', whitespace and the URL
 *     alphabet), '=' anywhere else, and length mod 4 == 1.  Non-zero unused
 *     low bits in the last character are accepted, as Go's and gRPC core's
 *     decoders do; a strict rejection there would only break interop.  On
 *     error nothing is appended.
 */
#define ZLIB_CONST
#include "wire.h"

#include <limits.h>
#include <string.h>
#include <zlib.h>

#include "common/base64.h"
#include "common/buf.h"
#include "common/mem.h"
#include "common/pct.h"

/* ---- length-prefixed messages -------------------------------------------- */

enum { DF_HEADER = 0, DF_BODY = 1 }; /* a negative state is the error */

/* A gathering buffer larger than this is released before the next message
 * that needs far less, so one big message does not pin memory forever. */
#define DF_KEEP_CAP (64 * 1024)

void orpc__msg_header(uint8_t out[ORPC__MSG_HEADER], int compressed,
                      uint32_t len)
{
    out[0] = compressed ? 1 : 0;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}

void orpc__deframer_init(orpc__deframer *d, size_t max, const orpc_mem *mem)
{
    memset(d, 0, sizeof(*d));
    d->state = DF_HEADER;
    d->max = max;
    orpc__buf_init(&d->buf, mem);
}

void orpc__deframer_free(orpc__deframer *d)
{
    if (d == NULL) {
        return;
    }
    orpc__buf_free(&d->buf);
    d->state = DF_HEADER;
    d->hdr_have = 0;
}

/* Validates a complete prefix and records flag and length. */
static int df_header(orpc__deframer *d, const uint8_t *h)
{
    if (h[0] > 1) {
        return ORPC_EPROTO;
    }
    uint32_t n = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 |
                 (uint32_t)h[3] << 8 | (uint32_t)h[4];
    if ((uint64_t)n > (uint64_t)d->max) {
        return ORPC_ETOOBIG;
    }
    d->compressed = h[0];
    d->len = n;
    return 0;
}

int orpc__deframer_feed(orpc__deframer *d, const uint8_t *data, size_t len,
                        size_t *consumed, const uint8_t **msg, size_t *msg_len,
                        int *compressed)
{
    size_t pos = 0;
    int rc;

    *consumed = 0;
    *msg = NULL;
    *msg_len = 0;
    *compressed = 0;
    if (d->state < 0) {
        return d->state;
    }
    if (len == 0) {
        return 0;
    }

    if (d->state == DF_HEADER) {
        const uint8_t *h;
        if (d->hdr_have == 0 && len >= ORPC__MSG_HEADER) {
            h = data; /* whole prefix in this piece: read it in place */
            pos = ORPC__MSG_HEADER;
        } else {
            size_t take = ORPC__MSG_HEADER - d->hdr_have;
            if (take > len) {
                take = len;
            }
            memcpy(d->hdr + d->hdr_have, data, take);
            d->hdr_have += take;
            pos = take;
            if (d->hdr_have < ORPC__MSG_HEADER) {
                *consumed = pos;
                return 0;
            }
            h = d->hdr;
        }
        d->hdr_have = 0;
        rc = df_header(d, h);
        if (rc != 0) {
            d->state = rc;
            *consumed = pos;
            return rc;
        }
        /* A new body: the message last handed out from d->buf is no longer
         * valid, so the buffer can be reused (or released if oversized). */
        d->buf.len = 0;
        if (d->buf.cap > DF_KEEP_CAP && d->len < d->buf.cap / 4) {
            orpc__buf_free(&d->buf);
        }
        d->state = DF_BODY;
    }

    /* DF_BODY */
    if (d->buf.len == 0 && len - pos >= d->len) {
        /* The body lies within this piece (whether or not its prefix did):
         * hand it out in place. */
        d->state = DF_HEADER;
        *msg = data + pos;
        *msg_len = d->len;
        *compressed = d->compressed;
        *consumed = pos + d->len;
        return 1;
    }
    size_t take = d->len - d->buf.len;
    if (take > len - pos) {
        take = len - pos;
    }
    if (take > 0) {
        rc = orpc__buf_reserve_max(&d->buf, take, d->len);
        if (rc != 0) {
            d->state = rc;
            *consumed = pos;
            return rc;
        }
        memcpy(d->buf.data + d->buf.len, data + pos, take);
        d->buf.len += take;
        pos += take;
    }
    *consumed = pos;
    if (d->buf.len < d->len) {
        return 0;
    }
    d->state = DF_HEADER;
    *msg = d->buf.data;
    *msg_len = d->len;
    *compressed = d->compressed;
    return 1;
}

int orpc__deframer_partial(const orpc__deframer *d)
{
    return d->state == DF_BODY || (d->state == DF_HEADER && d->hdr_have > 0);
}

size_t orpc__deframer_body_len(const orpc__deframer *d)
{
    return d->state == DF_BODY ? ORPC__MSG_HEADER + (size_t)d->len : 0;
}

/* ---- gzip ------------------------------------------------------------- */

/* Initial output room while inflating, and the smallest growth step. */
#define GZ_STEP (16 * 1024)

static voidpf gz_alloc(voidpf opaque, uInt items, uInt size)
{
    if (size != 0 && items > SIZE_MAX / size) {
        return Z_NULL;
    }
    return orpc__mem_malloc((const orpc_mem *)opaque, (size_t)items * size);
}

static void gz_free(voidpf opaque, voidpf p)
{
    if (p != NULL) {
        orpc__mem_free((const orpc_mem *)opaque, p);
    }
}

/* A zeroed stream whose allocations go through |mem| (NULL: zlib's). */
static void gz_stream(z_stream *zs, const orpc_mem *mem)
{
    memset(zs, 0, sizeof(*zs));
    if (mem != NULL) {
        zs->zalloc = gz_alloc;
        zs->zfree = gz_free;
        /* zlib's opaque is a plain pointer; the hooks only read it. */
        zs->opaque = (voidpf)(uintptr_t)mem;
    }
}

/* Hands zlib the next slice of input (zlib counts in uInt). */
static void gz_refill(z_stream *zs, size_t *in_left)
{
    if (zs->avail_in == 0 && *in_left > 0) {
        uInt n = *in_left > UINT_MAX ? UINT_MAX : (uInt)*in_left;
        zs->avail_in = n;
        *in_left -= n;
    }
}

static uInt gz_room(const orpc__buf *b, size_t limit)
{
    size_t room = (b->cap < limit ? b->cap : limit) - b->len;
    return room > UINT_MAX ? UINT_MAX : (uInt)room;
}

int orpc__gzip_compress(const uint8_t *in, size_t len, orpc__buf *out)
{
    z_stream zs;
    size_t start = out->len;
    size_t in_left = len;
    int rc = 0;

    gz_stream(&zs, out->mem);
    int zr = deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
                          16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    if (zr != Z_OK) {
        /* Only Z_MEM_ERROR is possible with constant, valid parameters
         * (Z_VERSION_ERROR would be a broken installation). */
        return zr == Z_MEM_ERROR ? ORPC_ENOMEM : ORPC_EINVAL;
    }
    /* One reservation is enough for all but huge inputs. */
    uLong bound = deflateBound(&zs, len > ULONG_MAX ? ULONG_MAX : (uLong)len);
    rc = orpc__buf_reserve(out, bound);
    zs.next_in = in;
    while (rc == 0) {
        gz_refill(&zs, &in_left);
        if (out->len == out->cap) {
            rc = orpc__buf_reserve(out, GZ_STEP);
            if (rc != 0) {
                break;
            }
        }
        zs.next_out = out->data + out->len;
        zs.avail_out = gz_room(out, SIZE_MAX);
        zr = deflate(&zs, in_left == 0 ? Z_FINISH : Z_NO_FLUSH);
        out->len = (size_t)(zs.next_out - out->data);
        if (zr == Z_STREAM_END) {
            break;
        }
        if (zr == Z_MEM_ERROR) {
            rc = ORPC_ENOMEM;
        } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = ORPC_EINVAL; /* Z_STREAM_ERROR: cannot happen */
        }
    }
    deflateEnd(&zs);
    if (rc != 0) {
        out->len = start;
    }
    return rc;
}

int orpc__gzip_decompress(const uint8_t *in, size_t len, size_t max_out,
                          orpc__buf *out)
{
    z_stream zs;
    size_t start = out->len;
    size_t limit = max_out > SIZE_MAX - start ? SIZE_MAX : start + max_out;
    size_t in_left = len;
    uint8_t probe;
    int rc = 0;

    gz_stream(&zs, out->mem);
    int zr = inflateInit2(&zs, 16 + MAX_WBITS);
    if (zr != Z_OK) {
        return zr == Z_MEM_ERROR ? ORPC_ENOMEM : ORPC_EINVAL;
    }
    zs.next_in = in;
    for (;;) {
        gz_refill(&zs, &in_left);
        int probing = out->len >= limit;
        if (probing) {
            /* max_out bytes produced: is there one more? */
            zs.next_out = &probe;
            zs.avail_out = 1;
        } else {
            if (out->len == out->cap) {
                /* Grow with the output (doubling), never past the limit. */
                size_t step = out->len - start;
                if (step < GZ_STEP) {
                    step = GZ_STEP;
                }
                if (step > limit - out->len) {
                    step = limit - out->len;
                }
                rc = orpc__buf_reserve_max(out, step, limit);
                if (rc != 0) {
                    break;
                }
            }
            zs.next_out = out->data + out->len;
            zs.avail_out = gz_room(out, limit);
        }
        zr = inflate(&zs, Z_NO_FLUSH);
        if (probing) {
            if (zs.avail_out == 0) {
                rc = ORPC_ETOOBIG;
                break;
            }
        } else {
            out->len = (size_t)(zs.next_out - out->data);
        }
        if (zr == Z_STREAM_END) {
            if (zs.avail_in != 0 || in_left != 0) {
                rc = ORPC_EPROTO; /* trailing bytes or a second member */
            }
            break;
        }
        if (zr == Z_OK) {
            continue;
        }
        /* Z_BUF_ERROR: no progress with input and room available, i.e. the
         * input ended before the stream did.  Z_DATA_ERROR, Z_NEED_DICT:
         * not a valid gzip stream. */
        rc = zr == Z_MEM_ERROR ? ORPC_ENOMEM : ORPC_EPROTO;
        break;
    }
    inflateEnd(&zs);
    if (rc != 0) {
        out->len = start;
    }
    return rc;
}

/* ---- grpc-timeout -------------------------------------------------------- */

#define TIMEOUT_MAX_DIGITS 8
#define TIMEOUT_MAX_VALUE 99999999

static const struct {
    char unit;
    int64_t ns;
} timeout_units[] = {
    /* smallest first: the order orpc__timeout_format() tries them in */
    {'n', 1},
    {'u', 1000},
    {'m', 1000000},
    {'S', 1000000000},
    {'M', INT64_C(60000000000)},
    {'H', INT64_C(3600000000000)},
};

int orpc__timeout_parse(const char *s, size_t len, int64_t *ns)
{
    if (s == NULL || len < 2 || len > TIMEOUT_MAX_DIGITS + 1) {
        return ORPC_EINVAL;
    }
    int64_t v = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return ORPC_EINVAL;
        }
        v = v * 10 + (s[i] - '0');
    }
    for (size_t i = 0; i < sizeof(timeout_units) / sizeof(timeout_units[0]);
         i++) {
        if (s[len - 1] == timeout_units[i].unit) {
            int64_t m = timeout_units[i].ns;
            *ns = v > INT64_MAX / m ? INT64_MAX : v * m;
            return 0;
        }
    }
    return ORPC_EINVAL;
}

size_t orpc__timeout_format(int64_t ns, char *buf)
{
    if (ns <= 0) {
        ns = 1;
    }
    size_t u = 0;
    int64_t v = ns;
    for (;; u++) {
        int64_t m = timeout_units[u].ns;
        v = ns / m + (ns % m != 0); /* round up: never shorten */
        if (v <= TIMEOUT_MAX_VALUE ||
            u + 1 == sizeof(timeout_units) / sizeof(timeout_units[0])) {
            break; /* hours always fit: INT64_MAX ns < 2.6e6 H */
        }
    }
    char digits[TIMEOUT_MAX_DIGITS + 1];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0 && n < TIMEOUT_MAX_DIGITS);
    for (size_t i = 0; i < n; i++) {
        buf[i] = digits[n - 1 - i];
    }
    buf[n] = timeout_units[u].unit;
    buf[n + 1] = '\0';
    return n + 1;
}

/* ---- grpc-message percent-encoding (common/pct.c) ------------------------ */

int orpc__percent_encode(const char *in, size_t len, orpc__buf *out)
{
    size_t need = orpc__pct_encoded_len(in, len, ORPC__PCT_PRINTABLE);
    if (need == SIZE_MAX) {
        out->failed = 1;
        return ORPC_ENOMEM;
    }
    int rc = orpc__buf_reserve(out, need);
    if (rc != 0) {
        return rc;
    }
    out->len += orpc__pct_encode((char *)out->data + out->len, in, len,
                                 ORPC__PCT_PRINTABLE);
    return 0;
}

int orpc__percent_decode(const char *in, size_t len, orpc__buf *out)
{
    int rc = orpc__buf_reserve(out, len); /* decoding never grows */
    if (rc != 0) {
        return rc;
    }
    out->len += orpc__pct_decode((char *)out->data + out->len, in, len);
    return 0;
}

/* ---- UTF-8 ------------------------------------------------------------ */

/* Length of the well-formed sequence at |p| (|n| bytes left), or 0. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c >= 0x01 && c < 0x80)
        return 1;
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlong forms */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* nothing past U+10FFFF */
    } else {
        return 0; /* NUL, a continuation byte, C0, C1, F5..FF */
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return len;
}

int orpc__utf8_repair(orpc__buf *b)
{
    size_t i = 0;
    while (i < b->len && utf8_seq(b->data + i, b->len - i) > 0)
        i += utf8_seq(b->data + i, b->len - i);
    if (i == b->len)
        return 0; /* the common case: nothing to repair */
    orpc__buf out;
    orpc__buf_init(&out, b->mem);
    orpc__buf_append(&out, b->data, i);
    static const uint8_t fffd[3] = {0xEF, 0xBF, 0xBD};
    while (i < b->len) {
        size_t k = utf8_seq(b->data + i, b->len - i);
        if (k > 0)
            orpc__buf_append(&out, b->data + i, k);
        else
            orpc__buf_append(&out, fffd, sizeof(fffd));
        i += k > 0 ? k : 1;
    }
    if (out.failed) { /* checked once: a failed append appends nothing */
        orpc__buf_free(&out);
        return ORPC_ENOMEM;
    }
    orpc__buf_free(b);
    *b = out;
    return 0;
}

/* ---- base64 for -bin metadata (common/base64.c) ---------------------------
 */

/* gRPC sends -bin values unpadded in the standard alphabet, and reads them
 * padded or not; their last digit's unused bits are not checked, as other
 * implementations do not check them either. */
int orpc__b64_encode(const uint8_t *in, size_t len, orpc__buf *out)
{
    size_t olen = orpc__base64_encoded_len(len, ORPC__BASE64_NOPAD);
    if (olen == SIZE_MAX) {
        out->failed = 1;
        return ORPC_ENOMEM;
    }
    int rc = orpc__buf_reserve(out, olen);
    if (rc != 0) {
        return rc;
    }
    out->len += orpc__base64_encode((char *)out->data + out->len, in, len,
                                    ORPC__BASE64_NOPAD);
    return 0;
}

int orpc__b64_decode(const char *in, size_t len, orpc__buf *out)
{
    const unsigned flags = ORPC__BASE64_STD_ONLY | ORPC__BASE64_ANY_BITS;
    size_t olen =
        orpc__base64_decode_raw(NULL, in, len, flags | ORPC__BASE64_CHECK);
    if (olen == SIZE_MAX) {
        return ORPC_EINVAL; /* ',', whitespace, misplaced '=', ... */
    }
    int rc = orpc__buf_reserve(out, olen);
    if (rc != 0) {
        return rc;
    }
    out->len += orpc__base64_decode_raw(out->data + out->len, in, len, flags);
    out->data[out->len] = '\0';
    return 0;
}
