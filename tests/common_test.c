/*
 * common_test.c — the private helpers of common/ that have no module of
 * their own to be tested with: orpc__buf (growth, the NUL after the bytes,
 * the error returns and the sticky failure flag under a failing allocator,
 * reserve_max's bound, consume, truncate, take, printf), the orpc_mem view
 * of a ProtobufCAllocator, base64 (the RFC 4648 section 10 vectors in both
 * alphabets with and without padding, and the decoder's refusals) and
 * percent-encoding.
 *
 * The failing allocator is test_alloc.h's, given to orpc__buf as it is (an
 * orpc_mem with every hook, realloc included) and through a
 * ProtobufCAllocator seen as hooks (orpc__mem_from_pb(): malloc and free
 * only, as JSON decoding gives it), so the counts of leaks and refusals
 * mean what they mean in the other unit tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <orpc/error.h>

#include "common/base64.h"
#include "common/buf.h"
#include "common/mem.h"
#include "common/pct.h"
#include "test_alloc.h"

/* ---- test_alloc.h as a ProtobufCAllocator, and that as hooks ------------- */

typedef struct pb_ta {
    test_alloc ta;
    orpc_mem mem;
    ProtobufCAllocator pb;
    orpc_mem view; /* |pb| as hooks, for orpc__buf */
} pb_ta;

static void *pb_ta_alloc(void *ud, size_t n)
{
    pb_ta *a = ud;
    return a->mem.malloc(n, a->mem.user_data);
}

static void pb_ta_free(void *ud, void *p)
{
    pb_ta *a = ud;
    a->mem.free(p, a->mem.user_data);
}

static const orpc_mem *pb_ta_init(pb_ta *a, long budget)
{
    a->mem = ta_mem(&a->ta, budget);
    a->pb.alloc = pb_ta_alloc;
    a->pb.free = pb_ta_free;
    a->pb.allocator_data = a;
    orpc__mem_from_pb(&a->view, &a->pb);
    return &a->view;
}

/* The hooks under test: test_alloc.h's own, or the same allocator through
 * a ProtobufCAllocator. */
static const orpc_mem *hooks(pb_ta *a, int via_pb, long budget)
{
    const orpc_mem *view = pb_ta_init(a, budget);
    return via_pb ? view : &a->mem;
}

/* ---- orpc__buf ----------------------------------------------------------- */

static void test_buf_basics(void **state)
{
    (void)state;
    for (int via_pb = 0; via_pb < 2; via_pb++) {
        pb_ta a;
        orpc__buf b;
        orpc__buf_init(&b, hooks(&a, via_pb, -1));
        assert_null(b.data);
        assert_int_equal(orpc__buf_append(&b, NULL, 0), 0);
        assert_int_equal(a.ta.calls, 0); /* nothing appended, nothing kept */
        assert_int_equal(orpc__buf_append(&b, "hello", 5), 0);
        assert_int_equal(orpc__buf_append(&b, " world", 6), 0);
        assert_int_equal(b.len, 11);
        assert_string_equal(orpc__buf_str(&b), "hello world");
        assert_int_equal(orpc__buf_reserve(&b, 1000), 0);
        assert_true(b.cap >= 1011);
        assert_string_equal(orpc__buf_str(&b), "hello world"); /* moved */
        orpc__buf_free(&b);
        assert_null(b.data);
        assert_int_equal(a.ta.live, 0);
        orpc__buf_free(&b); /* twice is harmless */
        orpc__buf_free(NULL);

        /* Many small appends grow geometrically. */
        a.ta.calls = 0;
        for (int i = 0; i < 100000; i++) {
            assert_int_equal(orpc__buf_append(&b, "x", 1), 0);
        }
        assert_true(a.ta.calls < 20);
        orpc__buf_free(&b);
        assert_int_equal(a.ta.live, 0);
    }
}

static void test_buf_empty(void **state)
{
    (void)state;
    orpc__buf b = {0};
    assert_string_equal(orpc__buf_str(&b), "");
    assert_null(b.data);
    orpc__buf_truncate(&b, 0); /* nothing allocated: a no-op */
    assert_null(b.data);
    size_t len = 99;
    char *s = orpc__buf_take(&b, &len); /* an empty string, allocated */
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    orpc__buf_free(&b);
    orpc__buf_free(&b); /* twice is fine */
}

static void test_buf_growth(void **state)
{
    (void)state;
    pb_ta a;
    orpc__buf b;
    orpc__buf_init(&b, pb_ta_init(&a, -1));
    char want[5001];
    for (size_t i = 0; i < 5000; i++) {
        char c = (char)('a' + i % 26);
        orpc__buf_putc(&b, c);
        want[i] = c;
        assert_int_equal(b.len, i + 1);
        assert_int_equal(b.data[b.len], '\0');
        assert_true(b.cap >= b.len);
    }
    want[5000] = '\0';
    assert_false(b.failed);
    assert_string_equal(orpc__buf_str(&b), want);
    /* doubling from 64: 64, 128, ..., 8192 — 8 blocks for 5000 bytes, and
     * one live */
    assert_int_equal(b.cap, 8192);
    assert_int_equal(a.ta.calls, 8);
    assert_int_equal(a.ta.live, 1);
    orpc__buf_free(&b);
    assert_int_equal(a.ta.live, 0);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

/* A reserve on an empty buffer is exact (decoded bytes kept in a message
 * take only their size); growth after it still doubles. */
static void test_buf_reserve_exact(void **state)
{
    (void)state;
    orpc__buf b = {0};
    assert_int_equal(orpc__buf_reserve(&b, 10), 0);
    assert_int_equal(b.cap, 10);
    assert_string_equal(orpc__buf_str(&b), "");
    orpc__buf_puts(&b, "0123456789");
    assert_int_equal(b.cap, 10); /* fits: no growth */
    orpc__buf_putc(&b, 'x');
    assert_int_equal(b.cap, 20);
    assert_int_equal(orpc__buf_reserve(&b, 100), 0);
    assert_int_equal(b.cap, 111);
    orpc__buf_free(&b);
    assert_int_equal(orpc__base64_decode(&b, "Zm9vYmFy", 8), 0);
    assert_int_equal(b.cap, 6);
    orpc__buf_free(&b);
}

static void test_buf_append_forms(void **state)
{
    (void)state;
    orpc__buf b = {0};
    orpc__buf_puts(&b, "ab");
    orpc__buf_append(&b, "c\0d", 3); /* binary: the NUL is kept */
    orpc__buf_putc(&b, 'e');
    orpc__buf_printf(&b, "[%d:%s]", 42, "x");
    orpc__buf_append(&b, NULL, 0);
    assert_int_equal(b.len, 12);
    assert_memory_equal(b.data, "abc\0de[42:x]", 13);
    /* printf longer than its stack buffer */
    char big[300];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    orpc__buf_printf(&b, "<%s>", big);
    assert_int_equal(b.len, 12 + 301);
    assert_int_equal(b.data[12], '<');
    assert_int_equal(b.data[12 + 300], '>');
    assert_int_equal(b.data[b.len], '\0');
    orpc__buf_free(&b);
}

static void test_buf_truncate(void **state)
{
    (void)state;
    orpc__buf b = {0};
    orpc__buf_puts(&b, "$.items");
    size_t mark = b.len;
    orpc__buf_puts(&b, "[12]");
    assert_string_equal(orpc__buf_str(&b), "$.items[12]");
    size_t cap = b.cap;
    orpc__buf_truncate(&b, mark);
    assert_string_equal(orpc__buf_str(&b), "$.items");
    assert_int_equal(b.cap, cap); /* the allocation stays */
    orpc__buf_truncate(&b, 100);  /* past the end: no-op */
    assert_string_equal(orpc__buf_str(&b), "$.items");
    orpc__buf_truncate(&b, 0);
    assert_string_equal(orpc__buf_str(&b), "");
    orpc__buf_puts(&b, "again");
    assert_string_equal(orpc__buf_str(&b), "again");
    orpc__buf_free(&b);
}

static void test_buf_take(void **state)
{
    (void)state;
    pb_ta a;
    const orpc_mem *view = pb_ta_init(&a, -1);
    ProtobufCAllocator *pa = &a.pb;
    orpc__buf b;
    orpc__buf_init(&b, view);
    orpc__buf_puts(&b, "hello");
    size_t len = 0;
    char *s = orpc__buf_take(&b, &len);
    assert_string_equal(s, "hello");
    assert_int_equal(len, 5);
    /* |b| is empty and reusable; the bytes are the caller's */
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.mem, view);
    orpc__buf_puts(&b, "next");
    char *t = orpc__buf_take(&b, NULL);
    assert_string_equal(t, "next");
    assert_int_equal(a.ta.live, 2);
    pa->free(pa->allocator_data, s); /* through the buffer's allocator */
    pa->free(pa->allocator_data, t);
    assert_int_equal(a.ta.live, 0);
}

/* Every allocation refused in turn: appends stop, |failed| sticks, take
 * returns NULL, and nothing leaks. */
static void test_buf_failing_allocator(void **state)
{
    (void)state;
    for (long k = 0; k < 12; k++) {
        long budget = k / 2;
        pb_ta a;
        const orpc_mem *mem = hooks(&a, (int)(k % 2), budget);
        orpc__buf b;
        orpc__buf_init(&b, mem);
        for (int i = 0; i < 100; i++) {
            orpc__buf_puts(&b, "0123456789");
        }
        /* 1000 bytes need blocks of 64..1024: 5 allocations */
        if (budget < 5) {
            assert_true(b.failed);
            assert_true(a.ta.failures > 0);
            /* what was appended before the failure is intact */
            assert_true(b.len < 1000);
            assert_int_equal(b.len % 10, 0);
            /* sticky: a later small append that would fit does nothing */
            size_t len = b.len;
            orpc__buf_putc(&b, 'x');
            assert_int_equal(b.len, len);
            assert_int_equal(orpc__buf_reserve(&b, 0), ORPC_ENOMEM);
            size_t tl = 7;
            assert_null(orpc__buf_take(&b, &tl));
            assert_int_equal(tl, 0);
            assert_false(b.failed); /* take freed it */
        } else {
            assert_false(b.failed);
            assert_int_equal(b.len, 1000);
            char *s = orpc__buf_take(&b, NULL);
            assert_non_null(s);
            orpc__mem_free(mem, s);
        }
        orpc__buf_free(&b);
        assert_int_equal(a.ta.live, 0);
    }
}

/* Out of memory, each call returns ORPC_ENOMEM and sets |failed|; from
 * then on everything that could allocate fails at once, even what would
 * fit, and leaves the bytes alone, until a free. */
static void test_buf_append_errors(void **state)
{
    (void)state;
    char big[200];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int via_pb = 0; via_pb < 2; via_pb++) {
        pb_ta a;
        orpc__buf b;
        orpc__buf_init(&b, hooks(&a, via_pb, 1));
        assert_int_equal(orpc__buf_puts(&b, "0123456789"), 0); /* 64 bytes */
        assert_int_equal(orpc__buf_append(&b, big, 100), ORPC_ENOMEM);
        assert_true(b.failed);
        assert_string_equal(orpc__buf_str(&b), "0123456789");
        assert_int_equal(orpc__buf_putc(&b, 'x'), ORPC_ENOMEM); /* fits */
        assert_int_equal(orpc__buf_puts(&b, "y"), ORPC_ENOMEM);
        assert_int_equal(orpc__buf_printf(&b, "%d", 1), ORPC_ENOMEM);
        assert_int_equal(orpc__buf_append(&b, NULL, 0), ORPC_ENOMEM);
        assert_int_equal(orpc__buf_reserve(&b, 0), ORPC_ENOMEM);
        assert_int_equal(orpc__buf_reserve_max(&b, 1, 64), ORPC_ENOMEM);
        assert_string_equal(orpc__buf_str(&b), "0123456789");
        /* consume and truncate still work, and keep the flag */
        orpc__buf_consume(&b, 2);
        orpc__buf_truncate(&b, 4);
        assert_string_equal(orpc__buf_str(&b), "2345");
        assert_true(b.failed);
        orpc__buf_free(&b); /* clears it */
        assert_false(b.failed);
        assert_int_equal(orpc__buf_puts(&b, "ok"), ORPC_ENOMEM); /* budget */
        assert_int_equal(a.ta.failures, 2);
        assert_int_equal(a.ta.live, 0);

        /* A printf longer than its stack buffer fails the same way. */
        orpc__buf_init(&b, hooks(&a, via_pb, 0));
        assert_int_equal(orpc__buf_printf(&b, "<%s>", big), ORPC_ENOMEM);
        assert_true(b.failed);
        assert_int_equal(b.len, 0);
        assert_null(orpc__buf_take(&b, NULL));
        assert_int_equal(a.ta.live, 0);
    }
}

/* Drops bytes from the front in place, the NUL with them. */
static void test_buf_consume(void **state)
{
    (void)state;
    orpc__buf b = {0};
    orpc__buf_consume(&b, 3); /* nothing allocated: stays empty */
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(orpc__buf_puts(&b, "hello world"), 0);
    const uint8_t *block = b.data;
    size_t cap = b.cap;
    orpc__buf_consume(&b, 0);
    assert_string_equal(orpc__buf_str(&b), "hello world");
    orpc__buf_consume(&b, 6);
    assert_int_equal(b.len, 5);
    assert_string_equal(orpc__buf_str(&b), "world");
    assert_ptr_equal(b.data, block);
    assert_int_equal(b.cap, cap);
    orpc__buf_consume(&b, 99); /* past the end: empties */
    assert_int_equal(b.len, 0);
    assert_string_equal(orpc__buf_str(&b), "");
    assert_ptr_equal(b.data, block); /* the allocation stays */
    assert_int_equal(orpc__buf_puts(&b, "again"), 0);
    assert_string_equal(orpc__buf_str(&b), "again");
    orpc__buf_free(&b);
}

/* reserve_max grows as reserve does, but never past its bound. */
static void test_buf_reserve_max(void **state)
{
    (void)state;
    static const char fill[64] = {0};
    orpc__buf b = {0};
    assert_int_equal(orpc__buf_reserve_max(&b, 10, 100), 0);
    assert_int_equal(b.cap, 10); /* exact on an empty buffer */
    assert_int_equal(orpc__buf_append(&b, fill, 10), 0);
    assert_int_equal(orpc__buf_reserve_max(&b, 50, 100), 0);
    assert_int_equal(b.cap, 60); /* what it needs: more than double */
    assert_int_equal(orpc__buf_append(&b, fill, 50), 0);
    assert_int_equal(orpc__buf_reserve_max(&b, 30, 100), 0);
    assert_int_equal(b.cap, 100); /* double (120), held to the bound */
    assert_int_equal(orpc__buf_append(&b, fill, 30), 0);
    assert_int_equal(orpc__buf_reserve_max(&b, 10, 100), 0); /* fits */
    assert_int_equal(b.cap, 100);
    assert_false(b.failed);
    assert_int_equal(orpc__buf_reserve_max(&b, 11, 100), ORPC_ENOMEM);
    assert_true(b.failed);
    assert_int_equal(b.len, 90);
    orpc__buf_free(&b);
}

/* Code that writes into |data| itself may fill it up to |cap|: the block
 * has one byte more, for the NUL (ASan checks the writes). */
static void test_buf_direct_write(void **state)
{
    (void)state;
    pb_ta a;
    orpc__buf b;
    orpc__buf_init(&b, hooks(&a, 0, -1));
    assert_int_equal(orpc__buf_reserve(&b, 7), 0);
    assert_int_equal(b.cap, 7);
    memcpy(b.data + b.len, "1234567", 7);
    b.len += 7;
    b.data[b.len] = '\0';
    assert_int_equal(a.ta.max_size, 8);
    assert_string_equal(orpc__buf_str(&b), "1234567");
    /* growing keeps the bytes and writes a NUL after them */
    assert_int_equal(orpc__buf_reserve(&b, 100), 0);
    assert_string_equal(orpc__buf_str(&b), "1234567");
    orpc__buf_free(&b);
    assert_int_equal(a.ta.live, 0);
}

static void test_buf_overflow_refused(void **state)
{
    (void)state;
    orpc__buf b = {0};
    orpc__buf_putc(&b, 'a');
    assert_int_equal(orpc__buf_reserve(&b, SIZE_MAX - 1), ORPC_ENOMEM);
    assert_true(b.failed);
    assert_null(orpc__buf_take(&b, NULL));
}

/* ---- orpc__mem_from_pb ------------------------------------------------ */

/* NULL gives the C library's hooks; an allocator gives malloc and free
 * only, through which blocks still grow (allocate, copy, free). */
static void test_mem_from_pb(void **state)
{
    (void)state;
    orpc_mem m;
    orpc__mem_from_pb(&m, NULL);
    assert_true(orpc__mem_is_libc(&m));

    pb_ta a;
    const orpc_mem *view = pb_ta_init(&a, -1);
    assert_non_null(view->malloc);
    assert_non_null(view->free);
    assert_null(view->calloc);
    assert_null(view->realloc);
    char *p = orpc__mem_malloc(view, 4);
    assert_non_null(p);
    memcpy(p, "abc", 4);
    p = orpc__mem_grow(view, p, 4, 100);
    assert_non_null(p);
    assert_string_equal(p, "abc");
    assert_int_equal(a.ta.calls, 2);
    assert_int_equal(a.ta.live, 1);
    orpc__mem_free(view, p);
    orpc__mem_free(view, NULL); /* never reaches the allocator */
    assert_int_equal(a.ta.live, 0);
}

/* ---- base64 -------------------------------------------------------------- */

/* RFC 4648 section 10, plus bytes that use the two alphabet-specific
 * digits (0xfb 0xff -> "+/8" / "-_8"). */
static const struct {
    const char *bytes;
    size_t n;
    const char *padded;
} VECTORS[] = {
    {"", 0, ""},
    {"f", 1, "Zg=="},
    {"fo", 2, "Zm8="},
    {"foo", 3, "Zm9v"},
    {"foob", 4, "Zm9vYg=="},
    {"fooba", 5, "Zm9vYmE="},
    {"foobar", 6, "Zm9vYmFy"},
    {"\xfb\xff", 2, "+/8="},
    {"\xfb\xef\xbe", 3, "++++"},
    {"\xff\xff\xff", 3, "////"},
    {"\x00\x00\x00", 3, "AAAA"},
};
#define N_VECTORS (sizeof VECTORS / sizeof VECTORS[0])

/* |s| with the URL alphabet and/or without padding. */
static void respell(const char *s, unsigned flags, char *out)
{
    size_t j = 0;
    for (; *s != '\0'; s++) {
        char c = *s;
        if (c == '=' && (flags & ORPC__BASE64_NOPAD)) {
            continue;
        }
        if (flags & ORPC__BASE64_URL) {
            c = c == '+' ? '-' : c == '/' ? '_' : c;
        }
        out[j++] = c;
    }
    out[j] = '\0';
}

static void test_base64_encode_vectors(void **state)
{
    (void)state;
    static const unsigned FLAGS[] = {0, ORPC__BASE64_URL, ORPC__BASE64_NOPAD,
                                     ORPC__BASE64_URL | ORPC__BASE64_NOPAD};
    for (size_t i = 0; i < N_VECTORS; i++) {
        for (size_t k = 0; k < 4; k++) {
            char want[16];
            char got[16];
            respell(VECTORS[i].padded, FLAGS[k], want);
            size_t n = orpc__base64_encoded_len(VECTORS[i].n, FLAGS[k]);
            assert_int_equal(n, strlen(want));
            memset(got, '#', sizeof got);
            assert_int_equal(orpc__base64_encode(got, VECTORS[i].bytes,
                                                 VECTORS[i].n, FLAGS[k]),
                             n);
            assert_string_equal(got, want);
            orpc__buf b = {0};
            orpc__buf_puts(&b, ">");
            assert_int_equal(orpc__base64_append(&b, VECTORS[i].bytes,
                                                 VECTORS[i].n, FLAGS[k]),
                             0);
            assert_string_equal(orpc__buf_str(&b) + 1, want);
            orpc__buf_free(&b);
        }
    }
    assert_int_equal(orpc__base64_encoded_len(SIZE_MAX, 0), SIZE_MAX);
}

static void test_base64_decode_vectors(void **state)
{
    (void)state;
    static const unsigned FLAGS[] = {0, ORPC__BASE64_URL, ORPC__BASE64_NOPAD,
                                     ORPC__BASE64_URL | ORPC__BASE64_NOPAD};
    for (size_t i = 0; i < N_VECTORS; i++) {
        for (size_t k = 0; k < 4; k++) {
            char text[16];
            respell(VECTORS[i].padded, FLAGS[k], text);
            orpc__buf b = {0};
            orpc__buf_puts(&b, "keep");
            assert_int_equal(orpc__base64_decode(&b, text, strlen(text)), 0);
            assert_int_equal(b.len, 4 + VECTORS[i].n);
            assert_memory_equal(b.data, "keep", 4);
            assert_memory_equal(b.data + 4, VECTORS[i].bytes, VECTORS[i].n);
            assert_int_equal(b.data[b.len], '\0');
            orpc__buf_free(&b);
        }
    }
}

static void test_base64_decode_refusals(void **state)
{
    (void)state;
    static const char *const BAD[] = {
        "Z",        /* one digit cannot carry a byte */
        "Zm9vY",    /* ... nor can 4n + 1 */
        "Zg=",      /* incomplete padding */
        "Zg===",    /* too much */
        "Z===",     /* too much */
        "=",        /* padding alone */
        "==",       /* ... */
        "Zm8==",    /* padding where one digit is missing, not two */
        "Zm9v=",    /* padding after a full group */
        "Zg==Zg==", /* padding inside */
        "Zm=v",     /* '=' in the middle */
        "Zm9v\n",   /* whitespace and line breaks */
        " Zm9v",    /* ... */
        "Zm 9v",    /* ... */
        "Zm9v!",    /* outside both alphabets */
        "Zm9v.",    /* ... */
        "+-==",     /* the two alphabets mixed */
        "_/8=",     /* ... */
        "Zh==",     /* stray bits: 'h' leaves 0001 unused */
        "Zm9=",     /* stray bits: '9' leaves 01 unused */
        "Zh",       /* ... unpadded too */
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        orpc__buf b = {0};
        orpc__buf_puts(&b, "keep");
        int rc = orpc__base64_decode(&b, BAD[i], strlen(BAD[i]));
        if (rc != ORPC_EPARSE) {
            print_error("\"%s\": %d\n", BAD[i], rc);
            fail();
        }
        assert_string_equal(orpc__buf_str(&b), "keep"); /* untouched */
        orpc__buf_free(&b);
    }
    /* a NUL inside is garbage too, not the end of the text */
    orpc__buf b = {0};
    assert_int_equal(orpc__base64_decode(&b, "Zm\0v", 4), ORPC_EPARSE);
    orpc__buf_free(&b);
}

static void test_base64_decode_failing_allocator(void **state)
{
    (void)state;
    pb_ta a;
    orpc__buf b;
    orpc__buf_init(&b, pb_ta_init(&a, 0));
    assert_int_equal(orpc__base64_decode(&b, "Zm9vYmFy", 8), ORPC_ENOMEM);
    assert_true(b.failed);
    orpc__buf_free(&b);
    orpc__buf_init(&b, pb_ta_init(&a, 0));
    assert_int_equal(orpc__base64_append(&b, "foo", 3, 0), ORPC_ENOMEM);
    orpc__buf_free(&b);
    assert_int_equal(a.ta.live, 0);
}

/* The raw decoder's flags, as gRPC's -bin metadata reads base64. */
static void test_base64_decode_raw_flags(void **state)
{
    (void)state;
    uint8_t out[16];
    const unsigned bin = ORPC__BASE64_STD_ONLY | ORPC__BASE64_ANY_BITS;
    assert_int_equal(orpc__base64_decode_raw(out, "Zm9vYg", 6, bin), 4);
    assert_memory_equal(out, "foob", 4);
    assert_int_equal(orpc__base64_decode_raw(out, "Zm9vYg==", 8, bin), 4);
    /* stray bits pass with ANY_BITS, and only then */
    assert_int_equal(orpc__base64_decode_raw(out, "Zh", 2, bin), 1);
    assert_int_equal(out[0], 'f');
    assert_int_equal(orpc__base64_decode_raw(out, "Zh", 2, 0), SIZE_MAX);
    /* STD_ONLY refuses the URL-safe alphabet */
    assert_int_equal(orpc__base64_decode_raw(out, "-_8", 3, 0), 2);
    assert_int_equal(orpc__base64_decode_raw(out, "-_8", 3, bin), SIZE_MAX);
    /* CHECK measures and writes nothing */
    memset(out, 0x5a, sizeof out);
    assert_int_equal(
        orpc__base64_decode_raw(out, "Zm9v", 4, ORPC__BASE64_CHECK), 3);
    assert_int_equal(out[0], 0x5a);
    /* a refused text writes nothing either */
    assert_int_equal(orpc__base64_decode_raw(out, "Zm9v!", 5, 0), SIZE_MAX);
    assert_int_equal(out[0], 0x5a);
}

/* ---- percent-encoding -----------------------------------------------------
 */

static void test_pct_encode_sets(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        orpc__pct_set set;
        const char *want;
    } CASES[] = {
        {"a-b_c.d~e", ORPC__PCT_UNRESERVED, "a-b_c.d~e"},
        {"a/b c", ORPC__PCT_UNRESERVED, "a%2Fb%20c"},
        {"shelves/1/books/2", ORPC__PCT_UNRESERVED_SLASH, "shelves/1/books/2"},
        {"../x?y#z", ORPC__PCT_UNRESERVED_SLASH, "../x%3Fy%23z"},
        {"caf\xc3\xa9", ORPC__PCT_UNRESERVED, "caf%C3%A9"},
        {"100% done\n", ORPC__PCT_PRINTABLE, "100%25 done%0A"},
        {"", ORPC__PCT_PRINTABLE, ""},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        size_t n = strlen(CASES[i].in);
        size_t len = orpc__pct_encoded_len(CASES[i].in, n, CASES[i].set);
        assert_int_equal(len, strlen(CASES[i].want));
        char got[64];
        assert_int_equal(orpc__pct_encode(got, CASES[i].in, n, CASES[i].set),
                         len);
        assert_string_equal(got, CASES[i].want);
        /* and back */
        char back[64];
        assert_int_equal(orpc__pct_decode(back, got, len), n);
        assert_memory_equal(back, CASES[i].in, n);
    }
}

static void test_pct_decode_lenient(void **state)
{
    (void)state;
    char out[32];
    /* escapes of either case; a '%' that starts no escape stays */
    assert_int_equal(orpc__pct_decode(out, "%41%6a", 6), 2);
    assert_string_equal(out, "Aj");
    assert_int_equal(orpc__pct_decode(out, "50% off %zz %4", 14), 14);
    assert_string_equal(out, "50% off %zz %4");
    /* an escaped NUL is a byte like any other */
    assert_int_equal(orpc__pct_decode(out, "a%00b", 5), 3);
    assert_memory_equal(out, "a\0b", 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_basics),
        cmocka_unit_test(test_buf_empty),
        cmocka_unit_test(test_buf_growth),
        cmocka_unit_test(test_buf_reserve_exact),
        cmocka_unit_test(test_buf_append_forms),
        cmocka_unit_test(test_buf_truncate),
        cmocka_unit_test(test_buf_take),
        cmocka_unit_test(test_buf_failing_allocator),
        cmocka_unit_test(test_buf_append_errors),
        cmocka_unit_test(test_buf_consume),
        cmocka_unit_test(test_buf_reserve_max),
        cmocka_unit_test(test_buf_direct_write),
        cmocka_unit_test(test_buf_overflow_refused),
        cmocka_unit_test(test_mem_from_pb),
        cmocka_unit_test(test_base64_encode_vectors),
        cmocka_unit_test(test_base64_decode_vectors),
        cmocka_unit_test(test_base64_decode_refusals),
        cmocka_unit_test(test_base64_decode_raw_flags),
        cmocka_unit_test(test_pct_encode_sets),
        cmocka_unit_test(test_pct_decode_lenient),
        cmocka_unit_test(test_base64_decode_failing_allocator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
