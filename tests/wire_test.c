/*
 * wire_test.c — the wire formats of wire.h (their buffer, orpc__buf, is
 * common_test.c's): the deframer (split at every offset and every pair of
 * offsets, many messages in one piece, zero-length messages, zero-copy
 * delivery, over-limit and bad-flag refusal before anything is buffered,
 * partial detection, memory that grows with the bytes received); gzip (round
 * trips, a known vector, the max_out edge, a 10 MB bomb against a 1 MB limit
 * with bounded memory, corrupt, truncated and trailing-garbage streams);
 * grpc-timeout parse and format; grpc-message percent-encoding; base64 (checked
 * against OpenSSL's encoder); and a failing-allocator sweep over every
 * allocating function.
 *
 * The test allocator (test_alloc.h) counts live blocks and bytes and their
 * peak, and refuses allocations once its budget is spent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include <orpc/error.h>

#include "test_alloc.h"
#include "wire.h"

/* ---- helpers ------------------------------------------------------------- */

/* Deterministic pseudo-random bytes (xorshift32). */
static uint32_t rng_next(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

static void rng_fill(uint32_t *s, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)rng_next(s);
    }
}

/* ---- deframer ------------------------------------------------------------ */

#define MAX_MSGS 2048

/* A stream of length-prefixed messages and where each body starts. */
typedef struct stream {
    uint8_t *data;
    size_t len;
    size_t n;
    size_t body_off[MAX_MSGS];
    size_t body_len[MAX_MSGS];
    int flag[MAX_MSGS];
} stream;

static void stream_add(stream *s, int flag, const uint8_t *body, size_t len)
{
    assert_true(s->n < MAX_MSGS);
    s->data = realloc(s->data, s->len + ORPC__MSG_HEADER + len + 1);
    assert_non_null(s->data);
    orpc__msg_header(s->data + s->len, flag, (uint32_t)len);
    s->len += ORPC__MSG_HEADER;
    if (len > 0) {
        memcpy(s->data + s->len, body, len);
    }
    s->body_off[s->n] = s->len;
    s->body_len[s->n] = len;
    s->flag[s->n] = flag;
    s->n++;
    s->len += len;
}

/* A stream of messages of |n| lengths from |lens|, bodies filled with a
 * pattern that identifies the message and position. */
static void stream_make(stream *s, const size_t *lens, size_t n)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < n; i++) {
        uint8_t *body = malloc(lens[i] + 1);
        assert_non_null(body);
        for (size_t j = 0; j < lens[i]; j++) {
            body[j] = (uint8_t)(i * 31 + j * 7);
        }
        stream_add(s, (int)(i % 2), body, lens[i]);
        free(body);
    }
}

static void stream_free(stream *s)
{
    free(s->data);
    s->data = NULL;
}

/*
 * Feeds |s| cut at the |ncuts| offsets |cuts| (ascending) and checks that
 * every message comes out intact, in order, with its flag, and in place
 * (pointing into the piece) whenever its body lay within one piece.
 */
static void deframe_cuts(const stream *s, const size_t *cuts, size_t ncuts,
                         size_t max)
{
    orpc__deframer d;
    orpc__deframer_init(&d, max, NULL);
    size_t got = 0;
    size_t piece_start = 0;
    for (size_t c = 0; c <= ncuts; c++) {
        size_t piece_end = c < ncuts ? cuts[c] : s->len;
        const uint8_t *piece = s->data + piece_start;
        size_t plen = piece_end - piece_start;
        size_t off = 0;
        for (;;) {
            size_t used;
            const uint8_t *msg;
            size_t mlen;
            int flag;
            int rc = orpc__deframer_feed(&d, piece + off, plen - off, &used,
                                         &msg, &mlen, &flag);
            assert_true(rc == 0 || rc == 1);
            assert_true(used <= plen - off);
            off += used;
            if (rc == 0) {
                assert_int_equal(off, plen);
                break;
            }
            assert_true(got < s->n);
            assert_int_equal(mlen, s->body_len[got]);
            assert_int_equal(flag, s->flag[got]);
            if (mlen > 0) {
                assert_memory_equal(msg, s->data + s->body_off[got], mlen);
            }
            size_t bo = s->body_off[got];
            if (bo >= piece_start && bo + mlen <= piece_end) {
                assert_ptr_equal(msg, s->data + bo); /* zero-copy */
            } else {
                assert_ptr_equal(msg, d.buf.data);
            }
            got++;
        }
        /* Partial exactly when the cut is not at a message boundary. */
        int boundary = piece_end == 0 || piece_end == s->len;
        for (size_t i = 0; i < s->n && !boundary; i++) {
            boundary = piece_end == s->body_off[i] + s->body_len[i];
        }
        assert_int_equal(orpc__deframer_partial(&d) != 0, !boundary);
        piece_start = piece_end;
    }
    assert_int_equal(got, s->n);
    assert_false(orpc__deframer_partial(&d));
    orpc__deframer_free(&d);
}

static void test_msg_header(void **state)
{
    (void)state;
    uint8_t h[ORPC__MSG_HEADER];
    orpc__msg_header(h, 0, 0x01020304u);
    assert_memory_equal(h, "\x00\x01\x02\x03\x04", 5);
    orpc__msg_header(h, 1, 0xFFFFFFFFu);
    assert_memory_equal(h, "\x01\xFF\xFF\xFF\xFF", 5);
    orpc__msg_header(h, 7, 0); /* any nonzero flag means compressed */
    assert_memory_equal(h, "\x01\x00\x00\x00\x00", 5);
}

static void test_deframe_split_every_offset(void **state)
{
    (void)state;
    /* Zero-length messages, lengths around the header size, and one long
     * enough to span several pieces. */
    const size_t lens[] = {3, 0, 1, 5, 0, 0, 4, 6, 300, 2, 0};
    stream s;
    stream_make(&s, lens, sizeof(lens) / sizeof(lens[0]));
    /* Whole. */
    deframe_cuts(&s, NULL, 0, 1000);
    /* Two pieces, cut at every offset (incl. an empty first/last piece). */
    for (size_t k = 0; k <= s.len; k++) {
        deframe_cuts(&s, &k, 1, 1000);
    }
    /* One byte at a time. */
    size_t *cuts = malloc(s.len * sizeof(size_t));
    assert_non_null(cuts);
    for (size_t k = 0; k + 1 < s.len; k++) {
        cuts[k] = k + 1;
    }
    deframe_cuts(&s, cuts, s.len - 1, 1000);
    /* Fixed-size pieces of every size. */
    for (size_t step = 2; step < s.len; step++) {
        size_t nc = 0;
        for (size_t k = step; k < s.len; k += step) {
            cuts[nc++] = k;
        }
        deframe_cuts(&s, cuts, nc, 1000);
    }
    free(cuts);
    stream_free(&s);
}

static void test_deframe_split_every_pair(void **state)
{
    (void)state;
    /* The header split at every pair of offsets, around short bodies. */
    const size_t lens[] = {2, 0, 7, 1, 0, 9};
    stream s;
    stream_make(&s, lens, sizeof(lens) / sizeof(lens[0]));
    for (size_t a = 0; a <= s.len; a++) {
        for (size_t b = a; b <= s.len; b++) {
            size_t cuts[2] = {a, b};
            deframe_cuts(&s, cuts, 2, 9);
        }
    }
    stream_free(&s);
}

static void test_deframe_packed_zero_copy(void **state)
{
    (void)state;
    size_t lens[1000];
    for (size_t i = 0; i < 1000; i++) {
        lens[i] = i % 13;
    }
    stream s;
    stream_make(&s, lens, 1000);
    test_alloc ta;
    orpc_mem m = ta_mem(&ta, -1);
    orpc__deframer d;
    orpc__deframer_init(&d, 12, &m);
    size_t off = 0, got = 0;
    for (;;) {
        size_t used, mlen;
        const uint8_t *msg;
        int flag;
        int rc = orpc__deframer_feed(&d, s.data + off, s.len - off, &used, &msg,
                                     &mlen, &flag);
        off += used;
        if (rc == 0) {
            break;
        }
        assert_int_equal(rc, 1);
        assert_ptr_equal(msg, s.data + s.body_off[got]);
        assert_int_equal(mlen, s.body_len[got]);
        assert_int_equal(flag, s.flag[got]);
        got++;
    }
    assert_int_equal(got, 1000);
    assert_int_equal(off, s.len);
    assert_int_equal(ta.calls, 0); /* nothing was ever buffered */
    orpc__deframer_free(&d);
    stream_free(&s);
}

static void test_deframe_large_in_chunks(void **state)
{
    (void)state;
    /* Big messages in irregular pieces; the gathering buffer is released
     * when a much smaller message follows a big one. */
    const size_t lens[] = {200000, 17, 70000, 0, 1, 150000, 3};
    stream s;
    stream_make(&s, lens, sizeof(lens) / sizeof(lens[0]));
    uint32_t seed = 12345;
    size_t cuts[2000];
    size_t nc = 0;
    for (size_t k = 1; k < s.len && nc < 2000;) {
        cuts[nc++] = k;
        k += 1 + rng_next(&seed) % 4096;
    }
    deframe_cuts(&s, cuts, nc, 200000);
    stream_free(&s);
}

static void test_deframe_zero_length(void **state)
{
    (void)state;
    orpc__deframer d;
    orpc__deframer_init(&d, 0, NULL); /* max 0 still allows empty messages */
    const uint8_t h[5] = {0, 0, 0, 0, 0};
    size_t used, mlen = 99;
    const uint8_t *msg;
    int flag = -1;
    assert_int_equal(orpc__deframer_feed(&d, h, 5, &used, &msg, &mlen, &flag),
                     1);
    assert_int_equal(used, 5);
    assert_int_equal(mlen, 0);
    assert_int_equal(flag, 0);
    assert_non_null(msg);
    assert_false(orpc__deframer_partial(&d));
    /* Split 2 + 3. */
    assert_int_equal(orpc__deframer_feed(&d, h, 2, &used, &msg, &mlen, &flag),
                     0);
    assert_int_equal(used, 2);
    assert_true(orpc__deframer_partial(&d));
    assert_int_equal(
        orpc__deframer_feed(&d, h + 2, 3, &used, &msg, &mlen, &flag), 1);
    assert_int_equal(used, 3);
    assert_int_equal(mlen, 0);
    assert_false(orpc__deframer_partial(&d));
    /* An empty piece (even NULL) consumes nothing. */
    assert_int_equal(
        orpc__deframer_feed(&d, NULL, 0, &used, &msg, &mlen, &flag), 0);
    assert_int_equal(used, 0);
    assert_null(msg);
    orpc__deframer_free(&d);
}

static void test_deframe_too_big(void **state)
{
    (void)state;
    test_alloc ta;
    orpc_mem m = ta_mem(&ta, -1);
    uint8_t buf[5 + 101];
    memset(buf, 'x', sizeof(buf));
    size_t used, mlen;
    const uint8_t *msg;
    int flag;
    orpc__deframer d;

    /* Exactly max: accepted. */
    orpc__msg_header(buf, 0, 100);
    orpc__deframer_init(&d, 100, &m);
    assert_int_equal(
        orpc__deframer_feed(&d, buf, 105, &used, &msg, &mlen, &flag), 1);
    assert_int_equal(mlen, 100);
    orpc__deframer_free(&d);

    /* One over, whole or split at every offset of the prefix: refused as
     * soon as the prefix is complete, nothing allocated. */
    orpc__msg_header(buf, 0, 101);
    for (size_t k = 0; k <= 5; k++) {
        orpc__deframer_init(&d, 100, &m);
        int rc = orpc__deframer_feed(&d, buf, k, &used, &msg, &mlen, &flag);
        if (k < 5) {
            assert_int_equal(rc, 0);
            rc = orpc__deframer_feed(&d, buf + k, 2, &used, &msg, &mlen, &flag);
            if (k + 2 < 5) {
                assert_int_equal(rc, 0);
                rc = orpc__deframer_feed(&d, buf + k + 2, sizeof(buf) - k - 2,
                                         &used, &msg, &mlen, &flag);
            }
        }
        assert_int_equal(rc, ORPC_ETOOBIG);
        assert_null(msg);
        /* The error is sticky. */
        assert_int_equal(orpc__deframer_feed(&d, buf, sizeof(buf), &used, &msg,
                                             &mlen, &flag),
                         ORPC_ETOOBIG);
        assert_int_equal(used, 0);
        orpc__deframer_free(&d);
    }
    assert_int_equal(ta.calls, 0);

    /* The largest declarable length against a small max. */
    orpc__msg_header(buf, 1, 0xFFFFFFFFu);
    orpc__deframer_init(&d, 1 << 20, &m);
    assert_int_equal(orpc__deframer_feed(&d, buf, 5, &used, &msg, &mlen, &flag),
                     ORPC_ETOOBIG);
    assert_int_equal(used, 5);
    orpc__deframer_free(&d);
    assert_int_equal(ta.calls, 0);
}

static void test_deframe_bad_flag(void **state)
{
    (void)state;
    const uint8_t flags[] = {2, 3, 0x80, 0xFF};
    for (size_t i = 0; i < sizeof(flags); i++) {
        uint8_t buf[8] = {flags[i], 0, 0, 0, 3, 'a', 'b', 'c'};
        orpc__deframer d;
        size_t used, mlen;
        const uint8_t *msg;
        int flag;
        orpc__deframer_init(&d, 100, NULL);
        assert_int_equal(
            orpc__deframer_feed(&d, buf, 8, &used, &msg, &mlen, &flag),
            ORPC_EPROTO);
        assert_int_equal(
            orpc__deframer_feed(&d, buf, 8, &used, &msg, &mlen, &flag),
            ORPC_EPROTO);
        orpc__deframer_free(&d);
        /* Also when the flag byte arrives alone. */
        orpc__deframer_init(&d, 100, NULL);
        assert_int_equal(
            orpc__deframer_feed(&d, buf, 1, &used, &msg, &mlen, &flag), 0);
        assert_int_equal(
            orpc__deframer_feed(&d, buf + 1, 7, &used, &msg, &mlen, &flag),
            ORPC_EPROTO);
        assert_int_equal(used, 4);
        orpc__deframer_free(&d);
    }
}

static void test_deframe_partial_and_bounded_buffer(void **state)
{
    (void)state;
    test_alloc ta;
    orpc_mem m = ta_mem(&ta, -1);
    orpc__deframer d;
    orpc__deframer_init(&d, 4u << 20, &m);
    size_t used, mlen;
    const uint8_t *msg;
    int flag;
    uint8_t buf[5 + 10];
    orpc__msg_header(buf, 1, 1u << 20); /* declares 1 MiB */
    memset(buf + 5, 'z', 10);
    assert_false(orpc__deframer_partial(&d));
    for (size_t k = 1; k < 5; k++) {
        assert_int_equal(
            orpc__deframer_feed(&d, buf + k - 1, 1, &used, &msg, &mlen, &flag),
            0);
        assert_true(orpc__deframer_partial(&d));
    }
    /* The last prefix byte and 10 body bytes: a partial message whose
     * buffer holds about what was received, not what was declared. */
    assert_int_equal(
        orpc__deframer_feed(&d, buf + 4, 11, &used, &msg, &mlen, &flag), 0);
    assert_int_equal(used, 11);
    assert_true(orpc__deframer_partial(&d));
    assert_true(d.buf.cap <= 64);
    assert_true(ta.peak_bytes <= 64);
    /* Feed the rest in 1000-byte pieces; the buffer never exceeds 1 MiB. */
    uint8_t chunk[1000];
    memset(chunk, 'z', sizeof(chunk));
    size_t left = (1u << 20) - 10;
    int rc = 0;
    while (left > 0) {
        size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
        rc = orpc__deframer_feed(&d, chunk, n, &used, &msg, &mlen, &flag);
        assert_int_equal(used, n);
        left -= n;
        assert_int_equal(rc, left == 0 ? 1 : 0);
    }
    assert_int_equal(mlen, 1u << 20);
    assert_int_equal(flag, 1);
    assert_ptr_equal(msg, d.buf.data);
    assert_true(d.buf.cap == 1u << 20);
    assert_false(orpc__deframer_partial(&d));
    orpc__deframer_free(&d);
    assert_int_equal(ta.live, 0);
}

static void test_deframe_enomem(void **state)
{
    (void)state;
    test_alloc ta;
    orpc_mem m = ta_mem(&ta, 0);
    orpc__deframer d;
    orpc__deframer_init(&d, 100, &m);
    uint8_t buf[5 + 3];
    orpc__msg_header(buf, 0, 3);
    memcpy(buf + 5, "abc", 3);
    size_t used, mlen;
    const uint8_t *msg;
    int flag;
    assert_int_equal(orpc__deframer_feed(&d, buf, 6, &used, &msg, &mlen, &flag),
                     ORPC_ENOMEM);
    assert_int_equal(
        orpc__deframer_feed(&d, buf + 6, 2, &used, &msg, &mlen, &flag),
        ORPC_ENOMEM);
    orpc__deframer_free(&d);
    assert_int_equal(ta.live, 0);
}

/* ---- gzip ------------------------------------------------------------- */

/* `printf 'hello, gzip\n' | gzip -9n` */
static const uint8_t gz_hello[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb,
    0x48, 0xcd, 0xc9, 0xc9, 0xd7, 0x51, 0x48, 0xaf, 0xca, 0x2c, 0xe0,
    0x02, 0x00, 0x86, 0x1f, 0x82, 0xa4, 0x0c, 0x00, 0x00, 0x00};

static void test_gzip_known_vector(void **state)
{
    (void)state;
    orpc__buf out;
    orpc__buf_init(&out, NULL);
    assert_int_equal(
        orpc__gzip_decompress(gz_hello, sizeof(gz_hello), 100, &out), 0);
    assert_int_equal(out.len, 12);
    assert_memory_equal(out.data, "hello, gzip\n", 12);
    orpc__buf_free(&out);
}

static void gzip_round_trip(const uint8_t *in, size_t len)
{
    orpc__buf z, out;
    orpc__buf_init(&z, NULL);
    orpc__buf_init(&out, NULL);
    assert_int_equal(orpc__buf_append(&z, "pre", 3), 0);
    assert_int_equal(orpc__gzip_compress(in, len, &z), 0);
    assert_memory_equal(z.data, "pre", 3); /* appended */
    assert_true(z.len >= 3 + 18);
    assert_int_equal(z.data[3], 0x1f);
    assert_int_equal(z.data[4], 0x8b);
    assert_int_equal(orpc__buf_append(&out, "xy", 2), 0);
    assert_int_equal(orpc__gzip_decompress(z.data + 3, z.len - 3, len, &out),
                     0);
    assert_int_equal(out.len, 2 + len);
    assert_memory_equal(out.data, "xy", 2);
    if (len > 0) {
        assert_memory_equal(out.data + 2, in, len);
        /* One byte less allowed: refused, |out| left as it was. */
        assert_int_equal(
            orpc__gzip_decompress(z.data + 3, z.len - 3, len - 1, &out),
            ORPC_ETOOBIG);
        assert_int_equal(out.len, 2 + len);
    }
    orpc__buf_free(&z);
    orpc__buf_free(&out);
}

static void test_gzip_round_trip(void **state)
{
    (void)state;
    gzip_round_trip(NULL, 0);
    gzip_round_trip((const uint8_t *)"a", 1);
    gzip_round_trip((const uint8_t *)"hello, gzip\n", 12);
    size_t n = 1u << 20;
    uint8_t *p = malloc(n);
    assert_non_null(p);
    uint32_t seed = 7;
    rng_fill(&seed, p, n); /* incompressible */
    gzip_round_trip(p, n);
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t) "abcabcabd"[i % 9]; /* very compressible */
    }
    gzip_round_trip(p, n);
    free(p);
}

static void test_gzip_bomb(void **state)
{
    (void)state;
    size_t n = 10u << 20;
    uint8_t *zeros = calloc(1, n);
    assert_non_null(zeros);
    orpc__buf z;
    orpc__buf_init(&z, NULL);
    assert_int_equal(orpc__gzip_compress(zeros, n, &z), 0);
    free(zeros);
    assert_true(z.len < 64 * 1024); /* ~10 KB */

    test_alloc ta;
    orpc_mem m = ta_mem(&ta, -1);
    orpc__buf out;
    orpc__buf_init(&out, &m);
    size_t max = 1u << 20;
    assert_int_equal(orpc__gzip_decompress(z.data, z.len, max, &out),
                     ORPC_ETOOBIG);
    assert_int_equal(out.len, 0);
    assert_true(out.cap <= max);
    /* Everything allocated at once: the output, zlib's state, and while
     * the test allocator's realloc copies, the half-size old block. */
    assert_true(ta.peak_bytes <= max + max / 2 + 64 * 1024);
    assert_int_equal(ta.live, out.data != NULL ? 1 : 0);

    /* A limit of 0, and the bound counted from what |out| already held. */
    assert_int_equal(orpc__gzip_decompress(z.data, z.len, 0, &out),
                     ORPC_ETOOBIG);
    assert_int_equal(orpc__buf_append(&out, "abc", 3), 0);
    assert_int_equal(orpc__gzip_decompress(z.data, z.len, 1000, &out),
                     ORPC_ETOOBIG);
    assert_int_equal(out.len, 3);
    assert_true(out.cap <= max);
    orpc__buf_free(&out);
    assert_int_equal(ta.live, 0);

    /* The same stream with enough room decompresses. */
    orpc__buf_init(&out, NULL);
    assert_int_equal(orpc__gzip_decompress(z.data, z.len, n, &out), 0);
    assert_int_equal(out.len, n);
    assert_true(out.cap <= n);
    orpc__buf_free(&out);
    orpc__buf_free(&z);
}

static void test_gzip_bad_streams(void **state)
{
    (void)state;
    orpc__buf z, out;
    orpc__buf_init(&z, NULL);
    orpc__buf_init(&out, NULL);
    uint8_t text[4000];
    for (size_t i = 0; i < sizeof(text); i++) {
        text[i] = (uint8_t)("lorem ipsum dolor "[i % 18] + i / 500);
    }
    assert_int_equal(orpc__gzip_compress(text, sizeof(text), &z), 0);

    /* Empty input, junk, a zlib (not gzip) stream, raw deflate. */
    assert_int_equal(orpc__gzip_decompress(NULL, 0, 1000, &out), ORPC_EPROTO);
    assert_int_equal(
        orpc__gzip_decompress((const uint8_t *)"hello", 5, 1000, &out),
        ORPC_EPROTO);
    const uint8_t zlib_hello[] = {0x78, 0x9c, 0xcb, 0x48, 0xcd, 0xc9, 0xc9,
                                  0x07, 0x00, 0x06, 0x2c, 0x02, 0x15};
    assert_int_equal(
        orpc__gzip_decompress(zlib_hello, sizeof(zlib_hello), 1000, &out),
        ORPC_EPROTO);

    /* Truncated at every length. */
    for (size_t k = 0; k < z.len; k++) {
        assert_int_equal(orpc__gzip_decompress(z.data, k, 10000, &out),
                         ORPC_EPROTO);
        assert_int_equal(out.len, 0);
    }

    /* Corrupt: the magic, the method, the CRC, the length, the body. */
    const size_t at[] = {0, 1, 2, z.len - 8, z.len - 5, z.len - 4, z.len - 1};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        z.data[at[i]] ^= 0x40;
        assert_int_equal(orpc__gzip_decompress(z.data, z.len, 10000, &out),
                         ORPC_EPROTO);
        assert_int_equal(out.len, 0);
        z.data[at[i]] ^= 0x40;
    }
    /* Every single-byte flip in the compressed body is caught (by the
     * decoder or by the CRC-32): never a wrong result. */
    for (size_t i = 10; i < z.len; i++) {
        z.data[i] ^= 0x01;
        int rc = orpc__gzip_decompress(z.data, z.len, 10000, &out);
        assert_true(rc == ORPC_EPROTO || rc == ORPC_ETOOBIG);
        z.data[i] ^= 0x01;
    }
    assert_int_equal(orpc__gzip_decompress(z.data, z.len, 10000, &out), 0);
    assert_int_equal(out.len, sizeof(text));
    out.len = 0;

    /* Trailing garbage: one byte, zeros, a second gzip member. */
    size_t good = z.len;
    assert_int_equal(orpc__buf_append(&z, "\0", 1), 0);
    assert_int_equal(orpc__gzip_decompress(z.data, z.len, 10000, &out),
                     ORPC_EPROTO);
    z.len = good;
    assert_int_equal(orpc__buf_append(&z, "\0\0\0\0\0\0\0\0", 8), 0);
    assert_int_equal(orpc__gzip_decompress(z.data, z.len, 10000, &out),
                     ORPC_EPROTO);
    z.len = good;
    assert_int_equal(orpc__buf_append(&z, gz_hello, sizeof(gz_hello)), 0);
    assert_int_equal(orpc__gzip_decompress(z.data, z.len, 10000, &out),
                     ORPC_EPROTO);
    assert_int_equal(out.len, 0);

    orpc__buf_free(&z);
    orpc__buf_free(&out);
}

/* ---- grpc-timeout -------------------------------------------------------- */

static int parse_str(const char *s, int64_t *ns)
{
    return orpc__timeout_parse(s, strlen(s), ns);
}

static void test_timeout_parse(void **state)
{
    (void)state;
    int64_t ns;
    const struct {
        const char *s;
        int64_t ns;
    } ok[] = {
        {"1n", 1},
        {"1u", 1000},
        {"1m", 1000000},
        {"1S", 1000000000},
        {"1M", INT64_C(60000000000)},
        {"1H", INT64_C(3600000000000)},
        {"250m", 250000000},
        {"0n", 0},
        {"00000001S", 1000000000},
        {"99999999n", 99999999},
        {"99999999u", INT64_C(99999999000)},
        {"99999999S", INT64_C(99999999000000000)},
        {"99999999M", INT64_C(5999999940000000000)},
        {"2562047H", INT64_C(9223369200000000000)},
        {"2562048H", INT64_MAX}, /* saturates */
        {"99999999H", INT64_MAX},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ns = -1;
        assert_int_equal(parse_str(ok[i].s, &ns), 0);
        assert_true(ns == ok[i].ns);
    }
    const char *bad[] = {
        "",           "S",
        "1",          "12",
        "100000000n", "000000001S",
        "1s",         "1h",
        "1x",         "+1S",
        "-1S",        " 1S",
        "1S ",        "1 S",
        "1.5S",       "1SS",
        "0x1S",       "1e3m",
        "S1",         "１S",
        "1\tS",       "99999999999999999999H",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ns = 42;
        assert_int_equal(parse_str(bad[i], &ns), ORPC_EINVAL);
        assert_true(ns == 42); /* untouched on error */
    }
    /* Length-delimited, not NUL-terminated. */
    assert_int_equal(orpc__timeout_parse("1\0S", 3, &ns), ORPC_EINVAL);
    assert_int_equal(orpc__timeout_parse("10Sxyz", 3, &ns), 0);
    assert_true(ns == INT64_C(10000000000));
    assert_int_equal(orpc__timeout_parse("10S", 2, &ns), ORPC_EINVAL);
    assert_int_equal(orpc__timeout_parse(NULL, 0, &ns), ORPC_EINVAL);
}

static void check_format(int64_t ns)
{
    char buf[16];
    memset(buf, '#', sizeof(buf));
    size_t n = orpc__timeout_format(ns, buf);
    assert_true(n >= 2 && n <= 9);
    assert_int_equal(buf[n], '\0');
    assert_int_equal(strlen(buf), n);
    assert_int_equal(buf[10], '#'); /* stays within 10 bytes */
    assert_true(buf[0] != '0' || n == 2);
    int64_t back;
    assert_int_equal(orpc__timeout_parse(buf, n, &back), 0);
    int64_t want = ns > 0 ? ns : 1;
    assert_true(back >= want); /* never shortened */
    /* The smallest unit that fits: the value is more than 8 digits' worth
     * of the next smaller unit, so the rounding is under one unit. */
    static const char units[] = "numSMH";
    static const int64_t mult[] = {1,
                                   1000,
                                   1000000,
                                   1000000000,
                                   INT64_C(60000000000),
                                   INT64_C(3600000000000)};
    size_t u = (size_t)(strchr(units, buf[n - 1]) - units);
    assert_true(back == INT64_MAX || back - want < mult[u]);
    if (u > 0) {
        int64_t m = mult[u - 1];
        assert_true(want / m + (want % m != 0) > 99999999);
    }
}

static void test_timeout_format(void **state)
{
    (void)state;
    const struct {
        int64_t ns;
        const char *s;
    } table[] = {
        {1, "1n"},
        {999, "999n"},
        {99999999, "99999999n"},
        {100000000, "100000u"},
        {100000001, "100001u"},
        {1000000000, "1000000u"},
        {INT64_C(99999999000), "99999999u"},
        {INT64_C(99999999001), "100000m"},
        {INT64_C(3600000000000), "3600000m"},
        {INT64_C(100000000000000), "100000S"},
        {INT64_C(100000000000000000), "1666667M"},
        {INT64_MAX, "2562048H"},
        {0, "1n"},
        {-5, "1n"},
        {INT64_MIN, "1n"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        char buf[10];
        size_t n = orpc__timeout_format(table[i].ns, buf);
        assert_string_equal(buf, table[i].s);
        assert_int_equal(n, strlen(table[i].s));
    }
    uint32_t seed = 99;
    for (int i = 0; i < 100000; i++) {
        uint64_t r = (uint64_t)rng_next(&seed) << 32 | rng_next(&seed);
        int shift = (int)(rng_next(&seed) % 63);
        check_format((int64_t)(r >> 1 >> shift));
    }
    for (int64_t p = 1; p > 0 && p <= INT64_MAX / 10; p *= 10) {
        check_format(p - 1);
        check_format(p);
        check_format(p + 1);
    }
    check_format(INT64_MAX);
    check_format(INT64_MAX - 1);
}

/* ---- grpc-message percent-encoding ------------------------------------- */

static void pct_enc_is(const char *in, size_t len, const char *want)
{
    orpc__buf out;
    orpc__buf_init(&out, NULL);
    assert_int_equal(orpc__percent_encode(in, len, &out), 0);
    assert_int_equal(out.len, strlen(want));
    assert_string_equal((const char *)out.data, want);
    orpc__buf_free(&out);
}

static void pct_dec_is(const char *in, const char *want, size_t want_len)
{
    orpc__buf out;
    orpc__buf_init(&out, NULL);
    assert_int_equal(orpc__percent_decode(in, strlen(in), &out), 0);
    assert_int_equal(out.len, want_len);
    assert_memory_equal(out.data, want, want_len);
    assert_int_equal(out.data[out.len], '\0');
    orpc__buf_free(&out);
}

static void test_percent_encode(void **state)
{
    (void)state;
    pct_enc_is("", 0, "");
    pct_enc_is(" !\"#$", 5, " !\"#$"); /* 0x20-0x24 raw */
    pct_enc_is("%", 1, "%25");
    pct_enc_is("&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~", 33,
               "&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~");
    pct_enc_is("\x7f", 1, "%7F");
    pct_enc_is("\x1f", 1, "%1F");
    pct_enc_is("a\nb\rc\td", 7, "a%0Ab%0Dc%09d");
    pct_enc_is("\0", 1, "%00");
    pct_enc_is("caf\xc3\xa9 \xe2\x82\xac", 9, "caf%C3%A9 %E2%82%AC");
    pct_enc_is("\xff\xfe", 2, "%FF%FE");
    pct_enc_is("100% sure", 9, "100%25 sure");

    /* Appends, NUL-terminated, not counted. */
    orpc__buf out;
    orpc__buf_init(&out, NULL);
    assert_int_equal(orpc__buf_append(&out, "A:", 2), 0);
    assert_int_equal(orpc__percent_encode("%", 1, &out), 0);
    assert_int_equal(out.len, 5);
    assert_string_equal((const char *)out.data, "A:%25");
    orpc__buf_free(&out);
}

/* grpc-message is UTF-8 once decoded: what is not becomes U+FFFD. */
static void repair_case(const char *in, size_t n, const char *want)
{
    orpc__buf b;
    orpc__buf_init(&b, NULL);
    assert_int_equal(orpc__buf_append(&b, in, n), 0);
    assert_int_equal(orpc__buf_reserve(&b, 1), 0);
    b.data[b.len] = '\0';
    assert_int_equal(orpc__utf8_repair(&b), 0);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    assert_int_equal(b.data[b.len], 0);
    orpc__buf_free(&b);
}

static void test_utf8_repair(void **state)
{
    (void)state;
    repair_case("plain", 5, "plain");
    repair_case("", 0, "");
    repair_case("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
                "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    repair_case("bad \xff\xfe utf-8", 12, "bad \xef\xbf\xbd\xef\xbf\xbd utf-8");
    repair_case("a\0b", 3,
                "a\xef\xbf\xbd"
                "b");                                       /* NUL */
    repair_case("\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"); /* overlong */
    repair_case("\xed\xa0\x80", 3,
                "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
    repair_case("\xf4\x90\x80\x80", 4,
                "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    repair_case("cut \xe2\x82", 6, "cut \xef\xbf\xbd\xef\xbf\xbd");
}

static void test_percent_decode(void **state)
{
    (void)state;
    pct_dec_is("", "", 0);
    pct_dec_is("plain text", "plain text", 10);
    pct_dec_is("%25", "%", 1);
    pct_dec_is("caf%C3%A9", "caf\xc3\xa9", 5);
    pct_dec_is("caf%c3%a9", "caf\xc3\xa9", 5); /* lower-case hex */
    pct_dec_is("%00x", "\0x", 2);
    /* Bad escapes are kept verbatim. */
    pct_dec_is("%", "%", 1);
    pct_dec_is("100%", "100%", 4);
    pct_dec_is("%2", "%2", 2);
    pct_dec_is("%zz", "%zz", 3);
    pct_dec_is("%2g", "%2g", 3);
    pct_dec_is("%g2", "%g2", 3);
    pct_dec_is("%%41", "%A", 2);
    pct_dec_is("%%%", "%%%", 3);
    pct_dec_is("% 41", "% 41", 4);
    pct_dec_is("%+1", "%+1", 3);
    /* Raw bytes a sender should have escaped pass through. */
    pct_dec_is("\xc3\xa9\n", "\xc3\xa9\n", 3);
}

static void test_percent_all_bytes(void **state)
{
    (void)state;
    char all[256];
    for (int i = 0; i < 256; i++) {
        all[i] = (char)i;
    }
    orpc__buf enc, dec;
    orpc__buf_init(&enc, NULL);
    orpc__buf_init(&dec, NULL);
    assert_int_equal(orpc__percent_encode(all, 256, &enc), 0);
    size_t raw = 0;
    for (int i = 0; i < 256; i++) {
        raw += (i >= 0x20 && i <= 0x7E && i != '%');
    }
    assert_int_equal(raw, 94);
    assert_int_equal(enc.len, raw + 3 * (256 - raw));
    for (size_t i = 0; i < enc.len; i++) {
        assert_true(enc.data[i] >= 0x20 && enc.data[i] <= 0x7E);
    }
    assert_int_equal(
        orpc__percent_decode((const char *)enc.data, enc.len, &dec), 0);
    assert_int_equal(dec.len, 256);
    assert_memory_equal(dec.data, all, 256);
    orpc__buf_free(&enc);
    orpc__buf_free(&dec);
}

/* ---- base64 -------------------------------------------------------------- */

static void b64_dec_is(const char *in, const char *want, size_t want_len)
{
    orpc__buf out;
    orpc__buf_init(&out, NULL);
    assert_int_equal(orpc__b64_decode(in, strlen(in), &out), 0);
    assert_int_equal(out.len, want_len);
    if (want_len > 0) {
        assert_memory_equal(out.data, want, want_len);
    }
    assert_int_equal(out.data[out.len], '\0');
    orpc__buf_free(&out);
}

static void test_b64_vectors(void **state)
{
    (void)state;
    /* RFC 4648 section 10, unpadded as gRPC emits, and decoded both ways. */
    const struct {
        const char *plain, *unpadded, *padded;
    } v[] = {
        {"", "", ""},
        {"f", "Zg", "Zg=="},
        {"fo", "Zm8", "Zm8="},
        {"foo", "Zm9v", "Zm9v"},
        {"foob", "Zm9vYg", "Zm9vYg=="},
        {"fooba", "Zm9vYmE", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        orpc__buf out;
        orpc__buf_init(&out, NULL);
        assert_int_equal(orpc__b64_encode((const uint8_t *)v[i].plain,
                                          strlen(v[i].plain), &out),
                         0);
        assert_int_equal(out.len, strlen(v[i].unpadded));
        assert_string_equal((const char *)out.data, v[i].unpadded);
        orpc__buf_free(&out);
        b64_dec_is(v[i].unpadded, v[i].plain, strlen(v[i].plain));
        b64_dec_is(v[i].padded, v[i].plain, strlen(v[i].plain));
    }
    b64_dec_is("+/+/", "\xfb\xff\xbf", 3);
    b64_dec_is("AAEC", "\x00\x01\x02", 3);
    /* Non-zero unused bits in the last character are tolerated. */
    b64_dec_is("Zh", "f", 1);
    b64_dec_is("Zh==", "f", 1);
}

static void test_b64_invalid(void **state)
{
    (void)state;
    /* clang-format off */
    const char *bad[] = {
        "Z", "Zm9vY", "Zm9vYmFyZ",                  /* length mod 4 == 1 */
        "Z===", "====", "=", "==", "Zg=", "Zm8==",  /* bad padding */
        "Zg===", "Zm9v=", "Zm=v", "=Zm9", "Zg==Zg==", "Zm9v====",
        "Zm9v,Zg", "Zg,", ",",                      /* a header not split */
        "Zm9v\n", " Zm9v", "Zm 9v", "Zm9v\r\n",     /* whitespace */
        "Zm\n9", " Zm9", "Zm9v\tZg==",
        "Zm9-", "Zm9_", "Zm9.", "Zm9*",             /* other alphabets */
        "Zm9\xc3\xa9", "Zm9\xff",                   /* non-ASCII */
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        orpc__buf out;
        orpc__buf_init(&out, NULL);
        assert_int_equal(orpc__buf_append(&out, "keep", 4), 0);
        assert_int_equal(orpc__b64_decode(bad[i], strlen(bad[i]), &out),
                         ORPC_EINVAL);
        assert_int_equal(out.len, 4); /* nothing appended */
        orpc__buf_free(&out);
    }
    /* A NUL inside the counted length is just another bad character. */
    orpc__buf out;
    orpc__buf_init(&out, NULL);
    assert_int_equal(orpc__b64_decode("Zm\0v", 4, &out), ORPC_EINVAL);
    orpc__buf_free(&out);
}

static void test_b64_round_trip(void **state)
{
    (void)state;
    uint32_t seed = 4242;
    for (size_t len = 0; len <= 10; len++) {
        for (int rep = 0; rep < 200; rep++) {
            uint8_t in[11]; /* one spare: gcc -O2 cannot see len <= 10 */
            rng_fill(&seed, in, len);
            if (rep == 0) {
                memset(in, 0x00, len);
            } else if (rep == 1) {
                memset(in, 0xFF, len);
            }
            orpc__buf enc, dec;
            orpc__buf_init(&enc, NULL);
            orpc__buf_init(&dec, NULL);
            assert_int_equal(orpc__b64_encode(in, len, &enc), 0);
            assert_int_equal(enc.len, (len * 4 + 2) / 3);
            assert_int_not_equal(enc.len % 4, 1);
            assert_int_equal(enc.data[enc.len], '\0');
            assert_int_equal(
                orpc__b64_decode((const char *)enc.data, enc.len, &dec), 0);
            assert_int_equal(dec.len, len);
            if (len > 0) {
                assert_memory_equal(dec.data, in, len);
            }
            /* OpenSSL's padded encoding is ours plus '='s, and decodes to
             * the same bytes. */
            unsigned char ossl[20];
            int n = EVP_EncodeBlock(ossl, in, (int)len);
            assert_int_equal((size_t)n, (len + 2) / 3 * 4);
            assert_memory_equal(ossl, enc.data, enc.len);
            for (size_t i = enc.len; i < (size_t)n; i++) {
                assert_int_equal(ossl[i], '=');
            }
            dec.len = 0;
            assert_int_equal(
                orpc__b64_decode((const char *)ossl, (size_t)n, &dec), 0);
            assert_int_equal(dec.len, len);
            if (len > 0) {
                assert_memory_equal(dec.data, in, len);
            }
            orpc__buf_free(&enc);
            orpc__buf_free(&dec);
        }
    }
}

/* ---- failing allocator sweep ------------------------------------------- */

/* Runs |op| with an allocation budget of 0, 1, 2, ... until it succeeds:
 * every failure must be ORPC_ENOMEM and leave nothing allocated but what
 * |out| holds. */
typedef int (*alloc_op)(orpc__buf *out);

static const uint8_t sweep_text[] = "sweep sweep sweep sweep sweep sweep";

static int op_compress(orpc__buf *out)
{
    return orpc__gzip_compress(sweep_text, sizeof(sweep_text), out);
}

static int op_decompress(orpc__buf *out)
{
    return orpc__gzip_decompress(gz_hello, sizeof(gz_hello), 100, out);
}

static int op_pct_encode(orpc__buf *out)
{
    return orpc__percent_encode("a%b", 3, out);
}

static int op_pct_decode(orpc__buf *out)
{
    return orpc__percent_decode("a%25b", 5, out);
}

static int op_b64_encode(orpc__buf *out)
{
    return orpc__b64_encode(sweep_text, 5, out);
}

static int op_b64_decode(orpc__buf *out)
{
    return orpc__b64_decode("Zm9vYg", 6, out);
}

static void test_failing_allocator(void **state)
{
    (void)state;
    const alloc_op ops[] = {op_compress,   op_decompress, op_pct_encode,
                            op_pct_decode, op_b64_encode, op_b64_decode};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        int done = 0;
        for (long budget = 0; budget < 100 && !done; budget++) {
            test_alloc ta;
            orpc_mem m = ta_mem(&ta, budget);
            orpc__buf out;
            orpc__buf_init(&out, &m);
            int rc = ops[i](&out);
            if (rc == 0) {
                done = 1;
                assert_true(out.len > 0);
            } else {
                assert_int_equal(rc, ORPC_ENOMEM);
                assert_int_equal(out.len, 0);
            }
            orpc__buf_free(&out);
            assert_int_equal(ta.live, 0);
        }
        assert_true(done);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_header),
        cmocka_unit_test(test_deframe_split_every_offset),
        cmocka_unit_test(test_deframe_split_every_pair),
        cmocka_unit_test(test_deframe_packed_zero_copy),
        cmocka_unit_test(test_deframe_large_in_chunks),
        cmocka_unit_test(test_deframe_zero_length),
        cmocka_unit_test(test_deframe_too_big),
        cmocka_unit_test(test_deframe_bad_flag),
        cmocka_unit_test(test_deframe_partial_and_bounded_buffer),
        cmocka_unit_test(test_deframe_enomem),
        cmocka_unit_test(test_gzip_known_vector),
        cmocka_unit_test(test_gzip_round_trip),
        cmocka_unit_test(test_gzip_bomb),
        cmocka_unit_test(test_gzip_bad_streams),
        cmocka_unit_test(test_timeout_parse),
        cmocka_unit_test(test_timeout_format),
        cmocka_unit_test(test_percent_encode),
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_utf8_repair),
        cmocka_unit_test(test_percent_all_bytes),
        cmocka_unit_test(test_b64_vectors),
        cmocka_unit_test(test_b64_invalid),
        cmocka_unit_test(test_b64_round_trip),
        cmocka_unit_test(test_failing_allocator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
