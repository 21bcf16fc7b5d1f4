/*
 * status_test.c — orpc_status values (build, format, details, copy, clear)
 * and the code tables: names, parsing, and both HTTP mappings checked
 * against REFERENCE.md §2 written out here independently of ORPC_CODE_MAP.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <orpc/error.h>
#include <orpc/status.h>

static const char *const code_names[ORPC_CODE_COUNT] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

/* grpc-gateway's table (REFERENCE.md §2). */
static const int code_http[ORPC_CODE_COUNT] = {
    200, 499, 500, 400, 504, 404, 409, 403, 429,
    400, 409, 400, 501, 500, 503, 500, 401,
};

static void test_new_copies_message(void **state)
{
    (void)state;
    char buf[] = "no such job";
    orpc_status st = orpc_status_new(ORPC_NOT_FOUND, buf);
    assert_int_equal(st.code, ORPC_NOT_FOUND);
    assert_non_null(st.message);
    assert_ptr_not_equal(st.message, buf);
    buf[0] = 'X';
    assert_string_equal(st.message, "no such job");
    assert_null(st.details);
    assert_int_equal(st.details_len, 0);
    orpc_status_clear(&st);
    assert_int_equal(st.code, ORPC_OK);
    assert_null(st.message);
    assert_null(st.details);
    assert_int_equal(st.details_len, 0);
}

static void test_new_without_message(void **state)
{
    (void)state;
    orpc_status st = orpc_status_new(ORPC_INTERNAL, NULL);
    assert_int_equal(st.code, ORPC_INTERNAL);
    assert_null(st.message);
    orpc_status_clear(&st);

    st = orpc_status_new(ORPC_ABORTED, "");
    assert_non_null(st.message);
    assert_string_equal(st.message, "");
    orpc_status_clear(&st);
}

static void test_out_of_range_code_becomes_unknown(void **state)
{
    (void)state;
    orpc_status st = orpc_status_new((orpc_code)17, "x");
    assert_int_equal(st.code, ORPC_UNKNOWN);
    orpc_status_clear(&st);
    st = orpc_status_new((orpc_code)-1, NULL);
    assert_int_equal(st.code, ORPC_UNKNOWN);
    st = orpc_status_errorf((orpc_code)1000, "%d", 1);
    assert_int_equal(st.code, ORPC_UNKNOWN);
    assert_string_equal(st.message, "1");
    orpc_status_clear(&st);
}

static void test_clear_is_idempotent(void **state)
{
    (void)state;
    orpc_status_clear(NULL);
    orpc_status ok = ORPC_STATUS_OK;
    orpc_status_clear(&ok);
    orpc_status_clear(&ok);
    assert_int_equal(ok.code, ORPC_OK);
    orpc_status st = orpc_status_new(ORPC_CANCELLED, "gone");
    orpc_status_clear(&st);
    orpc_status_clear(&st);
    assert_null(st.message);
}

static orpc_status call_verrorf(orpc_code code, const char *fmt, ...)
    ORPC_PRINTF(2, 3);

static orpc_status call_verrorf(orpc_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    orpc_status st = orpc_status_verrorf(code, fmt, ap);
    va_end(ap);
    return st;
}

static void test_errorf_formats(void **state)
{
    (void)state;
    orpc_status st =
        orpc_status_errorf(ORPC_INVALID_ARGUMENT, "field %s: %d%%", "id", 42);
    assert_int_equal(st.code, ORPC_INVALID_ARGUMENT);
    assert_string_equal(st.message, "field id: 42%");
    orpc_status_clear(&st);

    st = call_verrorf(ORPC_DATA_LOSS, "%s/%u", "a", 7u);
    assert_int_equal(st.code, ORPC_DATA_LOSS);
    assert_string_equal(st.message, "a/7");
    orpc_status_clear(&st);
}

static void test_errorf_long_message(void **state)
{
    (void)state;
    size_t n = 100000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'q', n);
    big[n] = '\0';
    orpc_status st = orpc_status_errorf(ORPC_INTERNAL, "<%s>", big);
    assert_non_null(st.message);
    assert_int_equal(strlen(st.message), n + 2);
    assert_int_equal(st.message[0], '<');
    assert_int_equal(st.message[n + 1], '>');
    assert_int_equal(st.message[n / 2], 'q');
    orpc_status_clear(&st);
    free(big);
}

static void test_set_details(void **state)
{
    (void)state;
    orpc_status st = orpc_status_new(ORPC_FAILED_PRECONDITION, "m");
    const uint8_t d1[] = {0x08, 0x09, 0x00, 0x12, 0x01, 'm'};
    assert_int_equal(orpc_status_set_details(&st, d1, sizeof(d1)), 0);
    assert_non_null(st.details);
    assert_ptr_not_equal(st.details, d1);
    assert_int_equal(st.details_len, sizeof(d1));
    assert_memory_equal(st.details, d1, sizeof(d1));

    /* Replace. */
    const uint8_t d2[] = {0xff};
    assert_int_equal(orpc_status_set_details(&st, d2, 1), 0);
    assert_int_equal(st.details_len, 1);
    assert_int_equal(st.details[0], 0xff);

    /* Self-aliasing: a slice of its own details. */
    assert_int_equal(orpc_status_set_details(&st, d1, sizeof(d1)), 0);
    assert_int_equal(orpc_status_set_details(&st, st.details + 2, 3), 0);
    assert_int_equal(st.details_len, 3);
    assert_memory_equal(st.details, d1 + 2, 3);

    /* Length 0 drops them, with or without a pointer. */
    assert_int_equal(orpc_status_set_details(&st, NULL, 0), 0);
    assert_null(st.details);
    assert_int_equal(st.details_len, 0);
    assert_int_equal(orpc_status_set_details(&st, d1, sizeof(d1)), 0);
    assert_int_equal(orpc_status_set_details(&st, d1, 0), 0);
    assert_null(st.details);
    assert_int_equal(st.details_len, 0);

    /* Bad arguments leave the status alone. */
    assert_int_equal(orpc_status_set_details(&st, d1, sizeof(d1)), 0);
    assert_int_equal(orpc_status_set_details(NULL, d1, 1), ORPC_EINVAL);
    assert_int_equal(orpc_status_set_details(&st, NULL, 1), ORPC_EINVAL);
    assert_int_equal(st.details_len, sizeof(d1));
    assert_string_equal(st.message, "m");
    orpc_status_clear(&st);
    assert_null(st.details);
}

static void test_copy_is_deep(void **state)
{
    (void)state;
    orpc_status st = orpc_status_new(ORPC_ALREADY_EXISTS, "dup");
    const uint8_t d[] = {1, 2, 3, 0, 5};
    assert_int_equal(orpc_status_set_details(&st, d, sizeof(d)), 0);
    orpc_status c = orpc_status_copy(&st);
    assert_int_equal(c.code, ORPC_ALREADY_EXISTS);
    assert_ptr_not_equal(c.message, st.message);
    assert_string_equal(c.message, "dup");
    assert_ptr_not_equal(c.details, st.details);
    assert_int_equal(c.details_len, sizeof(d));
    assert_memory_equal(c.details, d, sizeof(d));
    orpc_status_clear(&st);
    /* The copy survives the original. */
    assert_string_equal(c.message, "dup");
    orpc_status_clear(&c);

    orpc_status ok = ORPC_STATUS_OK;
    c = orpc_status_copy(&ok);
    assert_int_equal(c.code, ORPC_OK);
    assert_null(c.message);
    assert_null(c.details);

    /* Copying nothing never invents a success. */
    c = orpc_status_copy(NULL);
    assert_int_equal(c.code, ORPC_UNKNOWN);
    orpc_status_clear(&c);
}

static void test_code_names(void **state)
{
    (void)state;
    for (int i = 0; i < ORPC_CODE_COUNT; i++) {
        assert_string_equal(orpc_code_name(i), code_names[i]);
    }
    assert_string_equal(orpc_code_name(-1), "UNKNOWN_CODE");
    assert_string_equal(orpc_code_name(17), "UNKNOWN_CODE");
    assert_string_equal(orpc_code_name(INT_MAX), "UNKNOWN_CODE");
    assert_string_equal(orpc_code_name(INT_MIN), "UNKNOWN_CODE");
}

static void lower(char *dst, const char *src)
{
    for (; *src != '\0'; src++) {
        *dst++ = (*src >= 'A' && *src <= 'Z') ? (char)(*src - 'A' + 'a') : *src;
    }
    *dst = '\0';
}

static void test_code_parse_names(void **state)
{
    (void)state;
    for (int i = 0; i < ORPC_CODE_COUNT; i++) {
        orpc_code c = (orpc_code)-1;
        assert_int_equal(orpc_code_parse(&c, code_names[i]), 0);
        assert_int_equal(c, i);
        char low[64];
        lower(low, code_names[i]);
        c = (orpc_code)-1;
        assert_int_equal(orpc_code_parse(&c, low), 0);
        assert_int_equal(c, i);
        /* Round trip through orpc_code_name(). */
        assert_int_equal(orpc_code_parse(&c, orpc_code_name(i)), 0);
        assert_int_equal(c, i);
    }
    orpc_code c;
    assert_int_equal(orpc_code_parse(&c, "Not_Found"), 0);
    assert_int_equal(c, ORPC_NOT_FOUND);
    assert_int_equal(orpc_code_parse(&c, "unAuthenticated"), 0);
    assert_int_equal(c, ORPC_UNAUTHENTICATED);
}

static void test_code_parse_numbers(void **state)
{
    (void)state;
    char buf[8];
    for (int i = 0; i < ORPC_CODE_COUNT; i++) {
        snprintf(buf, sizeof(buf), "%d", i);
        orpc_code c = (orpc_code)-1;
        assert_int_equal(orpc_code_parse(&c, buf), 0);
        assert_int_equal(c, i);
    }
}

static void test_code_parse_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "17",
        "99",
        "100",
        "-1",
        "+3",
        " 3",
        "3 ",
        "03",
        "00",
        "017",
        "1a",
        "0x1",
        "99999999999999999999999",
        "OKAY",
        "OK ",
        " OK",
        "NOT-FOUND",
        "NOTFOUND",
        "NOT_FOUND\n",
        "UNKNOWN_CODE",
        "CANCELED",
        "ok\xff",
        "\xc3\x96K",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        orpc_code c = ORPC_DATA_LOSS;
        assert_int_equal(orpc_code_parse(&c, bad[i]), ORPC_EINVAL);
        /* |*out| is untouched on failure. */
        assert_int_equal(c, ORPC_DATA_LOSS);
    }
    orpc_code c;
    assert_int_equal(orpc_code_parse(&c, NULL), ORPC_EINVAL);
    assert_int_equal(orpc_code_parse(NULL, "OK"), ORPC_EINVAL);
}

static void test_code_from_grpc_http(void **state)
{
    (void)state;
    assert_int_equal(orpc_code_from_grpc_http(400), ORPC_INTERNAL);
    assert_int_equal(orpc_code_from_grpc_http(401), ORPC_UNAUTHENTICATED);
    assert_int_equal(orpc_code_from_grpc_http(403), ORPC_PERMISSION_DENIED);
    assert_int_equal(orpc_code_from_grpc_http(404), ORPC_UNIMPLEMENTED);
    assert_int_equal(orpc_code_from_grpc_http(429), ORPC_UNAVAILABLE);
    assert_int_equal(orpc_code_from_grpc_http(431), ORPC_INTERNAL);
    assert_int_equal(orpc_code_from_grpc_http(502), ORPC_UNAVAILABLE);
    assert_int_equal(orpc_code_from_grpc_http(503), ORPC_UNAVAILABLE);
    assert_int_equal(orpc_code_from_grpc_http(504), ORPC_UNAVAILABLE);
    /* Everything else, 200 without grpc-status included. */
    const int other[] = {200, 204, 301, 402, 405, 408, 415,
                         500, 501, 505, 0,   -1,  100, INT_MAX};
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        assert_int_equal(orpc_code_from_grpc_http(other[i]), ORPC_UNKNOWN);
    }
}

static void test_code_to_http(void **state)
{
    (void)state;
    for (int i = 0; i < ORPC_CODE_COUNT; i++) {
        assert_int_equal(orpc_code_to_http(i), code_http[i]);
    }
    assert_int_equal(orpc_code_to_http(ORPC_FAILED_PRECONDITION), 400);
    assert_int_equal(orpc_code_to_http(ORPC_CANCELLED), 499);
    assert_int_equal(orpc_code_to_http(-1), 500);
    assert_int_equal(orpc_code_to_http(17), 500);
    assert_int_equal(orpc_code_to_http(INT_MIN), 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_copies_message),
        cmocka_unit_test(test_new_without_message),
        cmocka_unit_test(test_out_of_range_code_becomes_unknown),
        cmocka_unit_test(test_clear_is_idempotent),
        cmocka_unit_test(test_errorf_formats),
        cmocka_unit_test(test_errorf_long_message),
        cmocka_unit_test(test_set_details),
        cmocka_unit_test(test_copy_is_deep),
        cmocka_unit_test(test_code_names),
        cmocka_unit_test(test_code_parse_names),
        cmocka_unit_test(test_code_parse_numbers),
        cmocka_unit_test(test_code_parse_rejects),
        cmocka_unit_test(test_code_from_grpc_http),
        cmocka_unit_test(test_code_to_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
