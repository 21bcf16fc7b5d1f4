/*
 * metadata_test.c — orpc_metadata: key rules (charset, "grpc-" prefix,
 * reserved HTTP/2 names, length bound), value rules (printable ASCII unless
 * "-bin"), order and repetition, lookup and removal, NUL-terminated values,
 * hostile arguments, and a failing-allocator sweep that must end in
 * ORPC_ENOMEM with the list intact and nothing leaked.
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
        cmocka_unit_test(test_copies_inputs),
        cmocka_unit_test(test_many_entries),
        cmocka_unit_test(test_failing_allocator),
        cmocka_unit_test(test_failing_allocator_malloc_free_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
