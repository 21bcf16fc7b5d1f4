/*
 * spiffe_test.c — orpc_spiffe_id_parse(): the strict SPIFFE ID grammar,
 * with the offsets it reports, every way an ID can be almost right (case,
 * ports, user info, queries, fragments, percent-encoding, dot segments,
 * empty segments, trailing slashes), the 2048-byte bound at its edge, and
 * hostile inputs (very long strings, NULLs, aliasing the output).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <orpc/error.h>
#include <orpc/tls.h>

static void expect_ok(const char *uri, size_t td_len, size_t path_off)
{
    orpc_spiffe_id id;
    memset(&id, 0x5a, sizeof(id));
    if (orpc_spiffe_id_parse(&id, uri) != 0) {
        fail_msg("\"%s\" should parse", uri);
    }
    assert_string_equal(id.id, uri);
    assert_int_equal(id.trust_domain_len, td_len);
    assert_int_equal(id.path_offset, path_off);
    assert_int_equal(id.id[id.path_offset], '/');
    assert_int_equal(id.path_offset, 9 + id.trust_domain_len);
}

static void test_valid_ids(void **state)
{
    (void)state;
    expect_ok("spiffe://example.org/service/jobs", 11, 20);
    expect_ok("spiffe://a/b", 1, 10);
    expect_ok("spiffe://ex-ample_1.org/A.b-c_d/0", 14, 23);
    expect_ok("spiffe://1.2.3.4/x", 7, 16);
    expect_ok("spiffe://-/x", 1, 10);
    expect_ok("spiffe://td/.../a..b/.x/x./..x/x..", 2, 11);
    expect_ok("spiffe://prod.acme.com/ns/default/sa/Web-Frontend", 13, 22);

    orpc_spiffe_id id;
    assert_int_equal(
        orpc_spiffe_id_parse(&id, "spiffe://td.example/service/api"), 0);
    assert_memory_equal(id.id + 9, "td.example", id.trust_domain_len);
    assert_string_equal(id.id + id.path_offset, "/service/api");
}

static void test_invalid_ids(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "spiffe",
        "spiffe:",
        "spiffe:/",
        "spiffe://",
        "spiffe:///",
        "spiffe:///path",
        "spiffe://example.org",
        "spiffe://example.org/",
        "spiffe://example.org/a/",
        "spiffe://example.org//a",
        "spiffe://example.org/a//b",
        "spiffe://example.org/.",
        "spiffe://example.org/..",
        "spiffe://example.org/./a",
        "spiffe://example.org/a/..",
        "spiffe://example.org/a/../b",
        /* scheme spelling */
        "SPIFFE://example.org/a",
        "Spiffe://example.org/a",
        "spiffE://example.org/a",
        "spiffe:/example.org/a",
        "spiffe//example.org/a",
        "spiffe:example.org/a",
        "https://example.org/a",
        "spiffes://example.org/a",
        " spiffe://example.org/a",
        /* trust domain */
        "spiffe://Example.org/a",
        "spiffe://EXAMPLE/a",
        "spiffe://exa mple.org/a",
        "spiffe://example.org:443/a",
        "spiffe://example.org:/a",
        "spiffe://user@example.org/a",
        "spiffe://user:pw@example.org/a",
        "spiffe://[::1]/a",
        "spiffe://ex%41mple.org/a",
        "spiffe://\xc3\xa9xample.org/a",
        "spiffe://example.org\\a",
        "spiffe://example.org?a",
        "spiffe://example.org#a",
        /* path */
        "spiffe://example.org/a?x=1",
        "spiffe://example.org/a?",
        "spiffe://example.org/a#frag",
        "spiffe://example.org/a#",
        "spiffe://example.org/a%20b",
        "spiffe://example.org/%2e%2e",
        "spiffe://example.org/a b",
        "spiffe://example.org/a\n",
        "spiffe://example.org/a\t",
        "spiffe://example.org/a:b",
        "spiffe://example.org/a@b",
        "spiffe://example.org/a~b",
        "spiffe://example.org/a+b",
        "spiffe://example.org/\xc3\xa9",
        "spiffe://example.org/a\x7f",
        "spiffe://example.org/a\\b",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        orpc_spiffe_id id;
        if (orpc_spiffe_id_parse(&id, bad[i]) != ORPC_EINVAL) {
            fail_msg("\"%s\" should be refused", bad[i]);
        }
        /* Nothing stale is left behind. */
        assert_int_equal(id.id[0], '\0');
        assert_int_equal(id.trust_domain_len, 0);
        assert_int_equal(id.path_offset, 0);
    }
}

static void test_failure_clears_previous_result(void **state)
{
    (void)state;
    orpc_spiffe_id id;
    assert_int_equal(orpc_spiffe_id_parse(&id, "spiffe://good.org/svc"), 0);
    assert_int_equal(orpc_spiffe_id_parse(&id, "spiffe://good.org/svc/"),
                     ORPC_EINVAL);
    assert_string_equal(id.id, "");
    assert_int_equal(orpc_spiffe_id_parse(&id, NULL), ORPC_EINVAL);
    assert_string_equal(id.id, "");
    assert_int_equal(orpc_spiffe_id_parse(NULL, "spiffe://a/b"), ORPC_EINVAL);
}

/* "spiffe://" + td + "/" + "aaa…" of |total| bytes in all. */
static char *make_id(size_t total, size_t td_len)
{
    char *s = malloc(total + 1);
    assert_non_null(s);
    memcpy(s, "spiffe://", 9);
    memset(s + 9, 't', td_len);
    s[9 + td_len] = '/';
    memset(s + 10 + td_len, 'a', total - 10 - td_len);
    s[total] = '\0';
    return s;
}

static void test_length_limit(void **state)
{
    (void)state;
    orpc_spiffe_id *id = malloc(sizeof(*id));
    assert_non_null(id);

    char *s = make_id(ORPC_SPIFFE_ID_MAX, 20);
    assert_int_equal(orpc_spiffe_id_parse(id, s), 0);
    assert_int_equal(strlen(id->id), ORPC_SPIFFE_ID_MAX);
    assert_string_equal(id->id, s);
    free(s);

    /* Many short segments up to the limit. */
    s = make_id(ORPC_SPIFFE_ID_MAX, 1);
    for (size_t i = 12; i < ORPC_SPIFFE_ID_MAX - 1; i += 2) {
        s[i] = '/';
    }
    assert_int_equal(orpc_spiffe_id_parse(id, s), 0);
    free(s);

    s = make_id(ORPC_SPIFFE_ID_MAX + 1, 20);
    assert_int_equal(orpc_spiffe_id_parse(id, s), ORPC_EINVAL);
    free(s);

    /* The trust domain alone over the limit. */
    s = make_id(ORPC_SPIFFE_ID_MAX + 100, ORPC_SPIFFE_ID_MAX);
    assert_int_equal(orpc_spiffe_id_parse(id, s), ORPC_EINVAL);
    free(s);

    /* A megabyte of valid-looking ID. */
    s = make_id(1024 * 1024, 10);
    assert_int_equal(orpc_spiffe_id_parse(id, s), ORPC_EINVAL);
    free(s);
    free(id);
}

static void test_reparse_in_place(void **state)
{
    (void)state;
    orpc_spiffe_id id;
    assert_int_equal(orpc_spiffe_id_parse(&id, "spiffe://x.y/service/z"), 0);
    /* The output may be the input. */
    assert_int_equal(orpc_spiffe_id_parse(&id, id.id), 0);
    assert_string_equal(id.id, "spiffe://x.y/service/z");
    assert_int_equal(id.trust_domain_len, 3);
    assert_int_equal(id.path_offset, 12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_ids),
        cmocka_unit_test(test_invalid_ids),
        cmocka_unit_test(test_failure_clears_previous_result),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_reparse_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
