/*
 * fuzz_wire.c — libFuzzer target for the parsers of wire.h other than the
 * deframer: gzip decompression with a small max_out, grpc-timeout parsing,
 * grpc-message percent-decoding and base64 decoding.  Every input goes
 * through all of them (each is cheap), plus round trips of the matching
 * encoders over the same bytes.
 *
 * Checked beyond "no crash, no leak, no UB":
 *   - gzip: only 0, ORPC_ETOOBIG or ORPC_EPROTO; the output buffer never
 *     grows past max_out; a success re-compresses and decompresses to the
 *     same bytes; compress(input) decompresses to the input.
 *   - timeout: accepted exactly when a reference grammar accepts; the value
 *     is >= 0; format(value) is at most 9 characters and parses back to no
 *     less than it; format of the input's first 8 bytes as an int64 too.
 *   - percent: decoding never fails, never grows, and is NUL-terminated;
 *     decode(encode(input)) == input and the encoding is printable ASCII.
 *   - base64: only 0 or ORPC_EINVAL; on success the length agrees with the
 *     input's and encode(decoded) decodes to the same bytes;
 *     decode(encode(input)) == input.
 *
 * Built with -DORPC_FUZZ_STANDALONE it has a main() (standalone.h) that
 * runs the target over the files named on the command line, or over a fixed
 * set of generated inputs (fixed seed) when there are none: a regression
 * test.
 * "-write-seeds DIR" also saves those inputs in DIR, a seed corpus for
 * libFuzzer (which rarely finds, say, a valid gzip CRC on its own).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "fuzz.h"
#include "wire.h"

#define GZ_MAX (64 * 1024)

static int same(const orpc__buf *b, const void *p, size_t n)
{
    return b->len == n && (n == 0 || memcmp(b->data, p, n) == 0);
}

static void fuzz_gzip(const uint8_t *data, size_t size)
{
    orpc__buf out, z, again;
    orpc__buf_init(&out, NULL);
    orpc__buf_init(&z, NULL);
    orpc__buf_init(&again, NULL);

    int rc = orpc__gzip_decompress(data, size, GZ_MAX, &out);
    CHECK(rc == 0 || rc == ORPC_ETOOBIG || rc == ORPC_EPROTO);
    CHECK(out.cap <= GZ_MAX);
    if (rc == 0) {
        CHECK(out.len <= GZ_MAX);
        CHECK(orpc__gzip_compress(out.data, out.len, &z) == 0);
        CHECK(orpc__gzip_decompress(z.data, z.len, out.len, &again) == 0);
        CHECK(same(&again, out.data, out.len));
    } else {
        CHECK(out.len == 0);
    }

    /* The compressor over arbitrary bytes. */
    z.len = 0;
    again.len = 0;
    CHECK(orpc__gzip_compress(data, size, &z) == 0);
    CHECK(orpc__gzip_decompress(z.data, z.len, size, &again) == 0);
    CHECK(same(&again, data, size));

    orpc__buf_free(&out);
    orpc__buf_free(&z);
    orpc__buf_free(&again);
}

/* The grammar, said another way: 1-8 digits, then one of "HMSmun". */
static int timeout_ref_ok(const uint8_t *s, size_t len)
{
    if (len < 2 || len > 9 || memchr("HMSmun", s[len - 1], 6) == NULL) {
        return 0;
    }
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return 1;
}

static void check_format(int64_t ns)
{
    char buf[16];
    memset(buf, '#', sizeof(buf));
    size_t n = orpc__timeout_format(ns, buf);
    CHECK(n >= 2 && n <= 9);
    CHECK(buf[n] == '\0' && buf[10] == '#');
    int64_t back;
    CHECK(orpc__timeout_parse(buf, n, &back) == 0);
    CHECK(back >= (ns > 0 ? ns : 1));
}

static void fuzz_timeout(const uint8_t *data, size_t size)
{
    int64_t ns = -7;
    int rc = orpc__timeout_parse((const char *)data, size, &ns);
    CHECK(rc == 0 || rc == ORPC_EINVAL);
    CHECK((rc == 0) == timeout_ref_ok(data, size));
    if (rc == 0) {
        CHECK(ns >= 0);
        check_format(ns);
    } else {
        CHECK(ns == -7);
    }
    if (size >= 8) {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) {
            v = v << 8 | data[i];
        }
        check_format((int64_t)v);
    }
}

static void fuzz_percent(const uint8_t *data, size_t size)
{
    orpc__buf dec, enc, back;
    orpc__buf_init(&dec, NULL);
    orpc__buf_init(&enc, NULL);
    orpc__buf_init(&back, NULL);

    CHECK(orpc__percent_decode((const char *)data, size, &dec) == 0);
    CHECK(dec.len <= size);
    CHECK(dec.data[dec.len] == '\0');

    CHECK(orpc__percent_encode((const char *)data, size, &enc) == 0);
    CHECK(enc.data[enc.len] == '\0');
    for (size_t i = 0; i < enc.len; i++) {
        CHECK(enc.data[i] >= 0x20 && enc.data[i] <= 0x7E);
    }
    CHECK(orpc__percent_decode((const char *)enc.data, enc.len, &back) == 0);
    CHECK(same(&back, data, size));

    orpc__buf_free(&dec);
    orpc__buf_free(&enc);
    orpc__buf_free(&back);
}

static void fuzz_b64(const uint8_t *data, size_t size)
{
    orpc__buf dec, enc, back;
    orpc__buf_init(&dec, NULL);
    orpc__buf_init(&enc, NULL);
    orpc__buf_init(&back, NULL);

    int rc = orpc__b64_decode((const char *)data, size, &dec);
    CHECK(rc == 0 || rc == ORPC_EINVAL);
    if (rc == 0) {
        size_t unpadded = size;
        while (unpadded > 0 && data[unpadded - 1] == '=') {
            unpadded--;
        }
        CHECK(size - unpadded <= 2);
        CHECK(unpadded == size || size % 4 == 0);
        CHECK(dec.len == unpadded * 3 / 4);
        CHECK(dec.data[dec.len] == '\0');
        CHECK(orpc__b64_encode(dec.data, dec.len, &enc) == 0);
        CHECK(enc.len == unpadded);
        CHECK(orpc__b64_decode((const char *)enc.data, enc.len, &back) == 0);
        CHECK(same(&back, dec.data, dec.len));
    } else {
        CHECK(dec.len == 0);
    }

    enc.len = 0;
    back.len = 0;
    CHECK(orpc__b64_encode(data, size, &enc) == 0);
    CHECK(orpc__b64_decode((const char *)enc.data, enc.len, &back) == 0);
    CHECK(same(&back, data, size));

    orpc__buf_free(&dec);
    orpc__buf_free(&enc);
    orpc__buf_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_gzip(data, size);
    fuzz_timeout(data, size);
    fuzz_percent(data, size);
    fuzz_b64(data, size);
    return 0;
}

#ifdef ORPC_FUZZ_STANDALONE

/* ---- regression runner: files, or generated inputs --------------------- */

#include "standalone.h"

/* Text drawn from a small alphabet, so it compresses and sometimes forms
 * escapes, base64 or timeouts. */
static size_t gen_text(uint32_t *st, uint8_t *out, size_t n, const char *abc)
{
    size_t k = strlen(abc);
    for (size_t i = 0; i < n; i++) {
        out[i] = (uint8_t)abc[rng_next(st) % k];
    }
    return n;
}

/* One of several shapes of input, each aimed at one parser. */
static size_t gen_input(uint32_t *st, uint8_t *out, size_t cap)
{
    static const char *const timeouts[] = {"1S",  "250m",       "99999999H",
                                           "0n",  "100000000n", "1s",
                                           "+1S", "12345678u"};
    uint8_t tmp[4096];
    size_t n = rng_next(st) % sizeof(tmp);
    orpc__buf b;
    orpc__buf_init(&b, NULL);
    size_t len = 0;
    switch (rng_next(st) % 6) {
    case 0: /* random bytes */
        for (size_t i = 0; i < n; i++) {
            out[i] = (uint8_t)rng_next(st);
        }
        len = n;
        break;
    case 1: /* a gzip stream: valid, flipped, cut, or with trailing junk */
        gen_text(st, tmp, n, "ab ");
        CHECK(orpc__gzip_compress(tmp, n, &b) == 0);
        len = b.len < cap - 1 ? b.len : cap - 1;
        memcpy(out, b.data, len);
        switch (rng_next(st) % 4) {
        case 0:
            out[rng_next(st) % len] ^= (uint8_t)(1 + rng_next(st) % 255);
            break;
        case 1:
            len = rng_next(st) % len;
            break;
        case 2:
            out[len++] = (uint8_t)rng_next(st);
            break;
        default:
            break;
        }
        break;
    case 2: { /* a gzip bomb-let: far larger than GZ_MAX */
        uint8_t *zeros = calloc(1, 20 * sizeof(tmp));
        CHECK(zeros != NULL);
        CHECK(orpc__gzip_compress(zeros, 20 * sizeof(tmp), &b) == 0);
        free(zeros);
        len = b.len < cap ? b.len : cap;
        memcpy(out, b.data, len);
        break;
    }
    case 3: { /* a timeout, valid or not */
        const char *t = timeouts[rng_next(st) % 8];
        len = strlen(t);
        memcpy(out, t, len);
        break;
    }
    case 4: /* percent escapes, good and bad */
        len = gen_text(st, out, n, "%%%0123456789abcdefABCDEFxyz ");
        break;
    default: /* base64, with padding and stray characters */
        gen_text(st, tmp, n % 64,
                 "\x01\xff"
                 "abc");
        CHECK(orpc__b64_encode(tmp, n % 64, &b) == 0);
        len = b.len;
        memcpy(out, b.data, len);
        if (rng_next(st) % 3 == 0) {
            while (len % 4 != 0) {
                out[len++] = '=';
            }
        }
        if (rng_next(st) % 3 == 0 && len > 0) {
            out[rng_next(st) % len] = (uint8_t) ",= \n-_"[rng_next(st) % 6];
        }
        break;
    }
    orpc__buf_free(&b);
    return len;
}

FUZZ_STANDALONE_MAIN("fuzz_wire", 0x77697265u /* "wire" */, gen_input)

#endif /* ORPC_FUZZ_STANDALONE */
