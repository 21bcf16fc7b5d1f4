/*
 * error_test.c — orpc_strerror(), orpc_err_name(), orpc_err_is_fatal() and
 * orpc_version(): every code of ORPC_ERRNO_MAP has its text, its name and its
 * fatal flag, codes keep their published numbers, and anything unknown gets
 * the documented fallbacks.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <orpc/common.h>
#include <orpc/error.h>

typedef struct err_row {
    int value;
    int fatal;
    const char *name;
    const char *text;
} err_row;

static const err_row err_rows[] = {
#define ROW_(name, value, fatal, text) {(value), (fatal), "ORPC_" #name, text},
    ORPC_ERRNO_MAP(ROW_)
#undef ROW_
};
#define N_ROWS (sizeof(err_rows) / sizeof(err_rows[0]))

static void test_every_code_has_text_name_and_flag(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ROWS; i++) {
        const err_row *r = &err_rows[i];
        assert_true(r->value < 0);
        assert_string_equal(orpc_strerror(r->value), r->text);
        assert_string_not_equal(orpc_strerror(r->value), "unknown error");
        assert_string_equal(orpc_err_name(r->value), r->name);
        assert_int_equal(orpc_err_is_fatal(r->value) != 0, r->fatal != 0);
    }
}

static void test_codes_are_unique(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ROWS; i++) {
        for (size_t j = i + 1; j < N_ROWS; j++) {
            assert_int_not_equal(err_rows[i].value, err_rows[j].value);
            assert_string_not_equal(err_rows[i].name, err_rows[j].name);
        }
    }
}

static void test_published_numbers_never_move(void **state)
{
    (void)state;
    assert_int_equal(ORPC_EOK, 0);
    assert_int_equal(ORPC_EINVAL, -1);
    assert_int_equal(ORPC_ENOMEM, -2);
    assert_int_equal(ORPC_ECALLBACK, -3);
    assert_int_equal(ORPC_EPROTO, -10);
    assert_int_equal(ORPC_ETOOBIG, -11);
    assert_int_equal(ORPC_ENOTFOUND, -13);
    assert_int_equal(ORPC_EPARSE, -18);
    assert_int_equal(ORPC_ESYS, -19);
    assert_int_equal(ORPC_ELIMIT, -20);
    assert_int_equal(ORPC_EBLOCKING, -21);
}

static void test_success(void **state)
{
    (void)state;
    assert_string_equal(orpc_strerror(0), "success");
    assert_string_equal(orpc_err_name(0), "ORPC_EOK");
    assert_int_equal(orpc_err_is_fatal(0), 0);
}

static void test_fatal_codes(void **state)
{
    (void)state;
    assert_false(orpc_err_is_fatal(ORPC_ENOMEM)); /* objects stay usable */
    assert_true(orpc_err_is_fatal(ORPC_EIO));
    assert_true(orpc_err_is_fatal(ORPC_EPROTO));
    assert_false(orpc_err_is_fatal(ORPC_EINVAL));
    assert_false(orpc_err_is_fatal(ORPC_EAGAIN));
    assert_false(orpc_err_is_fatal(ORPC_ETIMEDOUT));
}

static void test_unknown_codes(void **state)
{
    (void)state;
    const int unknown[] = {1, 2, 100, -22, -99, -900, -1000, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        assert_string_equal(orpc_strerror(unknown[i]), "unknown error");
        assert_string_equal(orpc_err_name(unknown[i]), "ORPC_E?");
        assert_int_equal(orpc_err_is_fatal(unknown[i]), 0);
    }
}

static void test_version(void **state)
{
    (void)state;
    const char *v = orpc_version();
    assert_non_null(v);
    assert_string_equal(v, ORPC_VERSION_STRING);
    char want[32];
    snprintf(want, sizeof(want), "%d.%d.%d", ORPC_VERSION_MAJOR,
             ORPC_VERSION_MINOR, ORPC_VERSION_PATCH);
    assert_string_equal(v, want);
    /* A static string: the same pointer every time. */
    assert_ptr_equal(v, orpc_version());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_text_name_and_flag),
        cmocka_unit_test(test_codes_are_unique),
        cmocka_unit_test(test_published_numbers_never_move),
        cmocka_unit_test(test_success),
        cmocka_unit_test(test_fatal_codes),
        cmocka_unit_test(test_unknown_codes),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
