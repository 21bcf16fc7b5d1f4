/*
 * metadata_test.c — orpc_metadata: key rules (charset, "grpc-" prefix,
 * reserved HTTP/2 names, length bound), value rules (printable ASCII unless
 * "-bin"), order and repetition, lookup and removal, NUL-terminated values,
 * hostile arguments, and a failing-allocator sweep that must end in
 * ORPC_ENOMEM with the list intact and nothing leaked.
 *
 * Also orpc__md_from_header (rpc/src/grpc.c), which turns each received
 * header into these entries (what handlers and the authorization policy
 * see): which headers it skips, how it splits and decodes "-bin" values,
 * and that a header that is not valid metadata is ORPC_EINVAL rather than
 * dropped (a dropped header would slip past a policy's deny rule).  It is
 * hidden in liborpc; tests/authz.cmake compiles grpc.c into this test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <orpc/error.h>
#include <orpc/metadata.h>

#include "grpc.h"
#include "test_alloc.h"

/* ---- helpers ------------------------------------------------------------ */

static orpc_metadata *md_new(void)
{
    orpc_metadata *md = NULL;
    assert_int_equal(orpc_metadata_new(&md, NULL), 0);
    assert_non_null(md);
    return md;
}

static void assert_entry(const orpc_metadata *md, size_t i, const char *key,
                         const char *value)
{
    const char *k = NULL;
    const uint8_t *v = NULL;
    size_t len = 0;
    assert_int_equal(orpc_metadata_at(md, i, &k, &v, &len), 0);
    assert_string_equal(k, key);
    assert_int_equal(len, strlen(value));
    assert_memory_equal(v, value, len);
    assert_int_equal(v[len], '\0');
}

/* ---- tests --------------------------------------------------------------- */

static void test_null_arguments(void **state)
{
    (void)state;
    assert_int_equal(orpc_metadata_new(NULL, NULL), ORPC_EINVAL);
    orpc_metadata_free(NULL);
    assert_int_equal(orpc_metadata_count(NULL), 0);
    assert_int_equal(orpc_metadata_add(NULL, "k", "v", 1), ORPC_EINVAL);
    assert_int_equal(orpc_metadata_add_str(NULL, "k", "v"), ORPC_EINVAL);
    assert_int_equal(orpc_metadata_at(NULL, 0, NULL, NULL, NULL), ORPC_EINVAL);
    assert_int_equal(orpc_metadata_get(NULL, "k", NULL, NULL), ORPC_ENOTFOUND);
    assert_int_equal(orpc_metadata_remove(NULL, "k"), 0);
    assert_false(orpc_metadata_key_valid(NULL));

    orpc_metadata *md = md_new();
    assert_int_equal(orpc_metadata_add(md, NULL, "v", 1), ORPC_EINVAL);
    assert_int_equal(orpc_metadata_add(md, "k", NULL, 1), ORPC_EINVAL);
    assert_int_equal(orpc_metadata_add_str(md, "k", NULL), ORPC_EINVAL);
    assert_int_equal(orpc_metadata_add_str(md, NULL, "v"), ORPC_EINVAL);
    assert_int_equal(orpc_metadata_get(md, NULL, NULL, NULL), ORPC_EINVAL);
    assert_int_equal(orpc_metadata_remove(md, NULL), 0);
    assert_int_equal(orpc_metadata_count(md), 0);
    orpc_metadata_free(md);
}

static void test_valid_keys(void **state)
{
    (void)state;
    static const char *const good[] = {
        "a",        "x-user-id", "foo.bar_baz-1", "0",           "-",
        "a-bin",    "-bin",      "grpc",          "grpcx-foo",   "grpc_x",
        "x-grpc-y", "tex",       "te-",           "hosts",       "my-host",
        "content",  "upgrade2",  "connection-id", "user-agent2", ".",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!orpc_metadata_key_valid(good[i])) {
            fail_msg("key \"%s\" should be valid", good[i]);
        }
    }
}

static void test_invalid_keys(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "A",
        "X-User-Id",
        "x y",
        "x\ty",
        ":path",
        ":authority",
        "k:v",
        "k/v",
        "k=v",
        "\xc3\xa9",
        "x\x7f",
        /* reserved for the protocol */
        "grpc-",
        "grpc-timeout",
        "grpc-status",
        "grpc-status-details-bin",
        "grpc-foo",
        /* HTTP/2 connection-specific and runtime-owned */
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "content-type",
        "user-agent",
        "host",
    };
    orpc_metadata *md = md_new();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (orpc_metadata_key_valid(bad[i])) {
            fail_msg("key \"%s\" should be invalid", bad[i]);
        }
        assert_int_equal(orpc_metadata_add_str(md, bad[i], "v"), ORPC_EINVAL);
    }
    assert_int_equal(orpc_metadata_count(md), 0);
    orpc_metadata_free(md);
}

static void test_key_length_limit(void **state)
{
    (void)state;
    char key[1100];
    memset(key, 'k', sizeof(key));
    key[1024] = '\0';
    assert_true(orpc_metadata_key_valid(key));
    orpc_metadata *md = md_new();
    assert_int_equal(orpc_metadata_add_str(md, key, "v"), 0);
    const uint8_t *v;
    assert_int_equal(orpc_metadata_get(md, key, &v, NULL), 0);
    assert_string_equal((const char *)v, "v");
    key[1024] = 'k';
    key[1025] = '\0';
    assert_false(orpc_metadata_key_valid(key));
    assert_int_equal(orpc_metadata_add_str(md, key, "v"), ORPC_EINVAL);
    key[1099] = '\0';
    assert_false(orpc_metadata_key_valid(key));
    assert_int_equal(orpc_metadata_count(md), 1);
    orpc_metadata_free(md);
}

static void test_ascii_values(void **state)
{
    (void)state;
    orpc_metadata *md = md_new();
    char all[0x7f - 0x20 + 1];
    for (int c = 0x20; c <= 0x7e; c++) {
        all[c - 0x20] = (char)c;
    }
    all[sizeof(all) - 1] = '\0';
    assert_int_equal(orpc_metadata_add_str(md, "printable", all), 0);
    assert_entry(md, 0, "printable", all);

    /* Every byte outside 0x20-0x7E is refused, NUL included. */
    for (int c = 0; c < 256; c++) {
        if (c >= 0x20 && c <= 0x7e) {
            continue;
        }
        unsigned char v[3] = {'a', (unsigned char)c, 'b'};
        assert_int_equal(orpc_metadata_add(md, "k", v, sizeof(v)), ORPC_EINVAL);
    }
    assert_int_equal(orpc_metadata_add(md, "k", "ab\0", 3), ORPC_EINVAL);
    assert_int_equal(orpc_metadata_add_str(md, "k", "line\r\nx-evil: 1"),
                     ORPC_EINVAL);
    assert_int_equal(orpc_metadata_count(md), 1);

    /* An empty value, with or without a pointer. */
    assert_int_equal(orpc_metadata_add(md, "empty", NULL, 0), 0);
    assert_int_equal(orpc_metadata_add_str(md, "empty2", ""), 0);
    assert_entry(md, 1, "empty", "");
    assert_entry(md, 2, "empty2", "");
    orpc_metadata_free(md);
}

static void test_binary_values(void **state)
{
    (void)state;
    orpc_metadata *md = md_new();
    uint8_t bytes[256];
    for (int i = 0; i < 256; i++) {
        bytes[i] = (uint8_t)i;
    }
    assert_int_equal(orpc_metadata_add(md, "trace-bin", bytes, sizeof(bytes)),
                     0);
    const uint8_t *v = NULL;
    size_t len = 0;
    assert_int_equal(orpc_metadata_get(md, "trace-bin", &v, &len), 0);
    assert_int_equal(len, 256);
    assert_memory_equal(v, bytes, 256);
    assert_int_equal(v[256], 0); /* terminator, not counted */
    assert_ptr_not_equal(v, bytes);

    /* "-bin" must be the suffix, not merely present. */
    assert_int_equal(orpc_metadata_add(md, "x-bin-y", bytes, 4), ORPC_EINVAL);
    assert_int_equal(orpc_metadata_add(md, "xbin", bytes, 4), ORPC_EINVAL);
    assert_int_equal(orpc_metadata_add(md, "x-bi", bytes, 4), ORPC_EINVAL);
    assert_int_equal(orpc_metadata_add(md, "-bin", bytes, 4), 0);
    orpc_metadata_free(md);
}

static void test_value_length_limit(void **state)
{
    (void)state;
    size_t max = 1024 * 1024;
    uint8_t *big = malloc(max + 2);
    assert_non_null(big);
    memset(big, 'v', max + 2);
    orpc_metadata *md = md_new();
    assert_int_equal(orpc_metadata_add(md, "big-bin", big, max), 0);
    assert_int_equal(orpc_metadata_add(md, "big", big, max), 0);
    assert_int_equal(orpc_metadata_add(md, "big-bin", big, max + 1),
                     ORPC_EINVAL);
    assert_int_equal(orpc_metadata_add(md, "big", big, max + 1), ORPC_EINVAL);
    /* A bogus length is refused before anything reads that far. */
    assert_int_equal(orpc_metadata_add(md, "big-bin", big, SIZE_MAX),
                     ORPC_EINVAL);
    assert_int_equal(orpc_metadata_add(md, "big-bin", big, SIZE_MAX - 1),
                     ORPC_EINVAL);
    assert_int_equal(orpc_metadata_count(md), 2);
    size_t len;
    assert_int_equal(orpc_metadata_get(md, "big", NULL, &len), 0);
    assert_int_equal(len, max);
    orpc_metadata_free(md);
    free(big);
}

static void test_order_and_repetition(void **state)
{
    (void)state;
    orpc_metadata *md = md_new();
    assert_int_equal(orpc_metadata_add_str(md, "x-a", "1"), 0);
    assert_int_equal(orpc_metadata_add_str(md, "x-b", "2"), 0);
    assert_int_equal(orpc_metadata_add_str(md, "x-a", "3"), 0);
    assert_int_equal(orpc_metadata_add_str(md, "x-c", "4"), 0);
    assert_int_equal(orpc_metadata_add_str(md, "x-a", "5"), 0);
    assert_int_equal(orpc_metadata_count(md), 5);
    assert_entry(md, 0, "x-a", "1");
    assert_entry(md, 1, "x-b", "2");
    assert_entry(md, 2, "x-a", "3");
    assert_entry(md, 3, "x-c", "4");
    assert_entry(md, 4, "x-a", "5");

    /* get: the first match. */
    const uint8_t *v;
    size_t len;
    assert_int_equal(orpc_metadata_get(md, "x-a", &v, &len), 0);
    assert_int_equal(len, 1);
    assert_string_equal((const char *)v, "1");
    assert_int_equal(orpc_metadata_get(md, "x-a", NULL, NULL), 0);
    assert_int_equal(orpc_metadata_get(md, "x-d", &v, &len), ORPC_ENOTFOUND);
    assert_int_equal(orpc_metadata_get(md, "X-A", &v, &len), ORPC_ENOTFOUND);
    assert_int_equal(orpc_metadata_get(md, "x-", &v, &len), ORPC_ENOTFOUND);

    /* at: bounds and optional outputs. */
    assert_int_equal(orpc_metadata_at(md, 5, NULL, NULL, NULL), ORPC_EINVAL);
    assert_int_equal(orpc_metadata_at(md, SIZE_MAX, NULL, NULL, NULL),
                     ORPC_EINVAL);
    assert_int_equal(orpc_metadata_at(md, 4, NULL, NULL, NULL), 0);
    const char *k;
    assert_int_equal(orpc_metadata_at(md, 3, &k, NULL, NULL), 0);
    assert_string_equal(k, "x-c");

    /* remove: every match, the rest keep their order. */
    assert_int_equal(orpc_metadata_remove(md, "x-a"), 3);
    assert_int_equal(orpc_metadata_count(md), 2);
    assert_entry(md, 0, "x-b", "2");
    assert_entry(md, 1, "x-c", "4");
    assert_int_equal(orpc_metadata_remove(md, "x-a"), 0);
    assert_int_equal(orpc_metadata_remove(md, "nope"), 0);
    assert_int_equal(orpc_metadata_remove(md, "x-c"), 1);
    assert_int_equal(orpc_metadata_remove(md, "x-b"), 1);
    assert_int_equal(orpc_metadata_count(md), 0);
    /* Usable after emptying. */
    assert_int_equal(orpc_metadata_add_str(md, "x-z", "26"), 0);
    assert_entry(md, 0, "x-z", "26");
    orpc_metadata_free(md);
}

static void test_copies_inputs(void **state)
{
    (void)state;
    orpc_metadata *md = md_new();
    char key[] = "x-key";
    char val[] = "value";
    assert_int_equal(orpc_metadata_add_str(md, key, val), 0);
    key[0] = 'y';
    val[0] = 'V';
    assert_entry(md, 0, "x-key", "value");
    orpc_metadata_free(md);
}

static void test_many_entries(void **state)
{
    (void)state;
    orpc_metadata *md = md_new();
    char key[32];
    char val[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "k%d", i % 7);
        snprintf(val, sizeof(val), "%d", i);
        assert_int_equal(orpc_metadata_add_str(md, key, val), 0);
    }
    assert_int_equal(orpc_metadata_count(md), 2000);
    for (int i = 0; i < 2000; i += 97) {
        snprintf(key, sizeof(key), "k%d", i % 7);
        snprintf(val, sizeof(val), "%d", i);
        assert_entry(md, (size_t)i, key, val);
    }
    size_t removed = orpc_metadata_remove(md, "k3");
    assert_int_equal(removed, 2000 / 7 + (2000 % 7 > 3 ? 1 : 0));
    assert_int_equal(orpc_metadata_count(md), 2000 - removed);
    assert_entry(md, 3, "k4", "4");
    orpc_metadata_free(md);
}

/* Builds a list under |m|; returns nonzero when nothing failed. */
static int md_scenario(const orpc_mem *m)
{
    orpc_metadata *md = (orpc_metadata *)&md; /* must be overwritten */
    int rc = orpc_metadata_new(&md, m);
    if (rc != 0) {
        assert_int_equal(rc, ORPC_ENOMEM);
        assert_null(md);
        return 0;
    }
    int clean = 1;
    size_t expect = 0;
    char key[16];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "key-%d", i % 3);
        rc = orpc_metadata_add_str(md, key, "some value");
        if (rc == 0) {
            expect++;
        } else {
            /* A failed add leaves the list exactly as it was. */
            assert_int_equal(rc, ORPC_ENOMEM);
            clean = 0;
        }
        assert_int_equal(orpc_metadata_count(md), expect);
        if (expect > 0) {
            const char *k;
            const uint8_t *v;
            assert_int_equal(orpc_metadata_at(md, expect - 1, &k, &v, NULL), 0);
            assert_string_equal((const char *)v, "some value");
        }
    }
    expect -= orpc_metadata_remove(md, "key-1");
    assert_int_equal(orpc_metadata_count(md), expect);
    const uint8_t bin[] = {0, 1, 2};
    rc = orpc_metadata_add(md, "x-bin", bin, sizeof(bin));
    if (rc != 0) {
        assert_int_equal(rc, ORPC_ENOMEM);
        clean = 0;
    }
    orpc_metadata_free(md);
    return clean;
}

static void test_failing_allocator(void **state)
{
    (void)state;
    long budget;
    for (budget = 0; budget < 1000; budget++) {
        test_alloc ta;
        orpc_mem m = ta_mem(&ta, budget);
        int clean = md_scenario(&m);
        assert_int_equal(ta.live, 0);
        if (clean) {
            assert_int_equal(ta.failures, 0);
            break;
        }
        assert_true(ta.failures > 0);
    }
    assert_true(budget > 40);
    assert_true(budget < 1000);
}

/* add_all copies in order, and is all or nothing when memory runs out. */
static void test_add_all(void **state)
{
    (void)state;
    orpc_metadata *src, *dst;
    assert_int_equal(orpc_metadata_new(&src, NULL), 0);
    assert_int_equal(orpc_metadata_add_str(src, "a", "1"), 0);
    assert_int_equal(orpc_metadata_add(src, "b-bin", "\0\1", 2), 0);
    assert_int_equal(orpc_metadata_add_str(src, "a", "2"), 0);
    assert_int_equal(orpc_metadata_add_all(NULL, src), ORPC_EINVAL);
    assert_int_equal(orpc_metadata_add_all(src, src), ORPC_EINVAL);
    long budget;
    for (budget = 0; budget < 100; budget++) {
        test_alloc ta;
        orpc_mem m = ta_mem(&ta, budget);
        assert_int_equal(orpc_metadata_new(&dst, &m) == 0, budget > 0);
        if (dst == NULL)
            continue;
        assert_int_equal(orpc_metadata_add_str(dst, "x", "0") == 0, budget > 1);
        size_t had = orpc_metadata_count(dst);
        int rc = orpc_metadata_add_all(dst, src);
        if (rc != 0) {
            assert_int_equal(rc, ORPC_ENOMEM);
            assert_int_equal(orpc_metadata_count(dst), had);
        } else {
            assert_int_equal(orpc_metadata_count(dst), had + 3);
            const char *k;
            const uint8_t *v;
            size_t len;
            assert_int_equal(orpc_metadata_at(dst, had + 1, &k, &v, &len), 0);
            assert_string_equal(k, "b-bin");
            assert_int_equal(len, 2);
            assert_int_equal(v[1], 1);
            assert_int_equal(orpc_metadata_at(dst, had + 2, &k, &v, &len), 0);
            assert_string_equal((const char *)v, "2");
        }
        orpc_metadata_free(dst);
        dst = NULL;
        assert_int_equal(ta.live, 0);
        if (rc == 0 && had == 1)
            break;
    }
    assert_true(budget < 100);
    assert_int_equal(orpc_metadata_add_all(NULL, NULL), ORPC_EINVAL);
    orpc_metadata_free(src);
}

static void test_failing_allocator_malloc_free_only(void **state)
{
    (void)state;
    /* Without calloc/realloc hooks the list must still grow through the
     * caller's malloc and free alone. */
    long budget;
    for (budget = 0; budget < 1000; budget++) {
        test_alloc ta;
        orpc_mem m = ta_mem(&ta, budget);
        m.calloc = NULL;
        m.realloc = NULL;
        int clean = md_scenario(&m);
        assert_int_equal(ta.live, 0);
        if (clean) {
            break;
        }
    }
    assert_true(budget < 1000);
}

/* ---- orpc__md_from_header: received headers ------------------------------ */

/* orpc__md_from_header() with C strings. */
static int from_header(orpc_metadata *md, const char *name, const char *value)
{
    return orpc__md_from_header(md, (const uint8_t *)name, strlen(name),
                                (const uint8_t *)value, strlen(value));
}

static void test_from_header_skips_protocol_headers(void **state)
{
    (void)state;
    /* The runtime's own and HTTP's connection-level headers are not
     * metadata: skipped, not an error. */
    static const char *const skipped[] = {
        ":path",
        ":authority",
        ":method",
        ":scheme",
        "grpc-timeout",
        "grpc-encoding",
        "grpc-x",
        "te",
        "content-type",
        "user-agent",
        "host",
        "connection",
        "content-length",
        "accept-encoding",
        "keep-alive",
        "upgrade",
        "transfer-encoding",
        "proxy-connection",
    };
    orpc_metadata *md = md_new();
    for (size_t i = 0; i < sizeof(skipped) / sizeof(skipped[0]); i++) {
        int rc = from_header(md, skipped[i], "v");
        if (rc != 0) {
            fail_msg("\"%s\": want 0 (skipped), got %d", skipped[i], rc);
        }
    }
    assert_int_equal(orpc_metadata_count(md), 0);
    /* ... while application keys are kept, in order, repeated or not. */
    assert_int_equal(from_header(md, "x-user", "alice"), 0);
    assert_int_equal(from_header(md, "x-role", "a,b"), 0);
    assert_int_equal(from_header(md, "x-role", "c"), 0);
    assert_int_equal(from_header(md, "user-agent2", ""), 0);
    assert_int_equal(orpc_metadata_count(md), 4);
    assert_entry(md, 0, "x-user", "alice");
    assert_entry(md, 1, "x-role", "a,b"); /* a non-bin value is not split */
    assert_entry(md, 2, "x-role", "c");
    assert_entry(md, 3, "user-agent2", "");
    orpc_metadata_free(md);
}

static void test_from_header_bin_pieces(void **state)
{
    (void)state;
    orpc_metadata *md = md_new();
    /* Padded and unpadded, split on ',', spaces and tabs around pieces. */
    assert_int_equal(from_header(md, "x-t-bin", "YWJj,YQ== ,\tYQ, YWI"), 0);
    assert_int_equal(from_header(md, "x-e-bin", ""), 0);
    assert_int_equal(orpc_metadata_count(md), 5);
    assert_entry(md, 0, "x-t-bin", "abc");
    assert_entry(md, 1, "x-t-bin", "a");
    assert_entry(md, 2, "x-t-bin", "a");
    assert_entry(md, 3, "x-t-bin", "ab");
    assert_entry(md, 4, "x-e-bin", "");
    /* Any byte value decodes ("AP8=" is 00 ff). */
    assert_int_equal(from_header(md, "x-b-bin", "AP8="), 0);
    const uint8_t *v;
    size_t len;
    assert_int_equal(orpc_metadata_at(md, 5, NULL, &v, &len), 0);
    assert_int_equal(len, 2);
    assert_int_equal(v[0], 0x00);
    assert_int_equal(v[1], 0xff);
    orpc_metadata_free(md);
}

static void test_from_header_bad_bin_is_einval(void **state)
{
    (void)state;
    /* Each has one piece that is not base64, first, in the middle or last:
     * the header is refused, not dropped (nor kept in part, when first). */
    static const struct {
        const char *value;
        int first_bad; /* the first piece is the bad one */
    } bad[] = {
        {"!!!!", 1},     {"Y", 1},         {"YWJjZ", 1},     {"YW=j", 1},
        {"YQ=", 1},      {"YWJj YWJj", 1}, {"YQ==YQ==", 1},  {"YWJj;YQ", 1},
        {"YWJj\x80", 1}, {"YWJj,!!", 0},   {"YWJj,Y,YQ", 0}, {"YQ,,Y", 0},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        orpc_metadata *md = md_new();
        int rc = from_header(md, "x-tok-bin", bad[i].value);
        if (rc != ORPC_EINVAL) {
            fail_msg("\"%s\": want ORPC_EINVAL, got %d", bad[i].value, rc);
        }
        if (bad[i].first_bad) {
            assert_int_equal(orpc_metadata_count(md), 0);
        }
        orpc_metadata_free(md);
    }
}

static void test_from_header_bad_ascii_is_einval(void **state)
{
    (void)state;
    orpc_metadata *md = md_new();
    /* The whole printable range is fine... */
    assert_int_equal(from_header(md, "x-p", " !~azAZ09"), 0);
    assert_int_equal(orpc_metadata_count(md), 1);
    /* ... any other byte in a non-bin value is refused. */
    for (int c = 0; c < 256; c++) {
        if (c >= 0x20 && c <= 0x7e) {
            continue;
        }
        const uint8_t v[3] = {'a', (uint8_t)c, 'b'};
        int rc = orpc__md_from_header(md, (const uint8_t *)"x-p", 3, v, 3);
        if (rc != ORPC_EINVAL) {
            fail_msg("byte 0x%02x: want ORPC_EINVAL, got %d", c, rc);
        }
    }
    assert_int_equal(orpc_metadata_count(md), 1);
    orpc_metadata_free(md);
}

static void test_from_header_bad_names_are_einval(void **state)
{
    (void)state;
    static const char *const bad[] = {"X-User", "x user", "x!y",   "x~y",
                                      "x/y",    "x=y",    "x\x80", "x\ty"};
    char name[1100];
    orpc_metadata *md = md_new();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = from_header(md, bad[i], "v");
        if (rc != ORPC_EINVAL) {
            fail_msg("name \"%s\": want ORPC_EINVAL, got %d", bad[i], rc);
        }
    }
    assert_int_equal(orpc__md_from_header(md, (const uint8_t *)"", 0,
                                          (const uint8_t *)"v", 1),
                     ORPC_EINVAL);
    assert_int_equal(orpc_metadata_count(md), 0);
    /* The longest key orpc_metadata takes comes through; one more byte is
     * refused rather than dropped. */
    memset(name, 'k', sizeof(name));
    assert_int_equal(orpc__md_from_header(md, (const uint8_t *)name, 1024,
                                          (const uint8_t *)"v", 1),
                     0);
    assert_int_equal(orpc_metadata_count(md), 1);
    assert_int_equal(orpc__md_from_header(md, (const uint8_t *)name, 1025,
                                          (const uint8_t *)"v", 1),
                     ORPC_EINVAL);
    assert_int_equal(orpc__md_from_header(md, (const uint8_t *)name,
                                          sizeof(name), (const uint8_t *)"v",
                                          1),
                     ORPC_EINVAL);
    assert_int_equal(orpc_metadata_count(md), 1);
    /* NULL arguments. */
    assert_int_equal(orpc__md_from_header(NULL, (const uint8_t *)"k", 1,
                                          (const uint8_t *)"v", 1),
                     ORPC_EINVAL);
    assert_int_equal(orpc__md_from_header(md, (const uint8_t *)"k", 1, NULL, 1),
                     ORPC_EINVAL);
    assert_int_equal(orpc__md_from_header(md, (const uint8_t *)"k", 1, NULL, 0),
                     0);
    assert_entry(md, 1, "k", "");
    orpc_metadata_free(md);
}

static void test_from_header_enomem(void **state)
{
    (void)state;
    /* Out of memory is ORPC_ENOMEM, never ORPC_EINVAL nor a silent 0, and
     * leaks nothing. */
    long budget;
    for (budget = 0; budget < 100; budget++) {
        test_alloc ta;
        orpc_mem m = ta_mem(&ta, budget);
        orpc_metadata *md = NULL;
        int rc = orpc_metadata_new(&md, &m);
        if (rc == 0) {
            rc = from_header(md, "x-a", "v");
        }
        if (rc == 0) {
            rc = from_header(md, "x-t-bin", "YQ,YWI,YWJj,YWJjZA");
        }
        if (rc == 0) {
            assert_int_equal(orpc_metadata_count(md), 5);
            assert_entry(md, 4, "x-t-bin", "abcd");
        } else {
            assert_int_equal(rc, ORPC_ENOMEM);
        }
        orpc_metadata_free(md);
        assert_int_equal(ta.live, 0);
        if (rc == 0) {
            assert_int_equal(ta.failures, 0);
            break;
        }
        assert_true(ta.failures > 0);
    }
    assert_true(budget > 3);
    assert_true(budget < 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_valid_keys),
        cmocka_unit_test(test_invalid_keys),
        cmocka_unit_test(test_key_length_limit),
        cmocka_unit_test(test_ascii_values),
        cmocka_unit_test(test_binary_values),
        cmocka_unit_test(test_value_length_limit),
        cmocka_unit_test(test_order_and_repetition),
        cmocka_unit_test(test_add_all),
        cmocka_unit_test(test_copies_inputs),
        cmocka_unit_test(test_many_entries),
        cmocka_unit_test(test_failing_allocator),
        cmocka_unit_test(test_failing_allocator_malloc_free_only),
        cmocka_unit_test(test_from_header_skips_protocol_headers),
        cmocka_unit_test(test_from_header_bin_pieces),
        cmocka_unit_test(test_from_header_bad_bin_is_einval),
        cmocka_unit_test(test_from_header_bad_ascii_is_einval),
        cmocka_unit_test(test_from_header_bad_names_are_einval),
        cmocka_unit_test(test_from_header_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
