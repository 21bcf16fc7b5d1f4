/*
 * service_config_test.c — the service config parser (rpc/src/
 * service_config.c): valid configs and what they say per method, and
 * invalid ones refused with ORPC_ECONFIG and the JSON path of the fault.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <orpc/orpc.h>

#include "service_config.h"
#include "test_alloc.h"

static orpc__svc_config *parse_ok(const char *json)
{
    orpc__svc_config *sc = NULL;
    orpc_error_detail d = {0};
    int rc = orpc__svc_config_parse(&sc, json, strlen(json), NULL, &d);
    if (rc != 0)
        fail_msg("config refused (%d): %s\n%s", rc, d.message, json);
    assert_non_null(sc);
    return sc;
}

/* Refused with ORPC_ECONFIG and a message holding |want|. */
static void parse_bad(const char *json, const char *want)
{
    orpc__svc_config *sc = (orpc__svc_config *)1;
    orpc_error_detail d = {0};
    int rc = orpc__svc_config_parse(&sc, json, strlen(json), NULL, &d);
    if (rc != ORPC_ECONFIG || strstr(d.message, want) == NULL)
        fail_msg("want ORPC_ECONFIG with \"%s\", got %d \"%s\" for\n%s", want,
                 rc, d.message, json);
    assert_int_equal(d.code, ORPC_ECONFIG);
    assert_null(sc);
}

#define MS (1000000ll)

static void test_full_config(void **state)
{
    (void)state;
    orpc__svc_config *sc = parse_ok(
        "{\"methodConfig\": ["
        " {\"name\": [{\"service\": \"pkg.Svc\", \"method\": \"Get\"}],"
        "  \"timeout\": \"1.5s\", \"waitForReady\": true,"
        "  \"maxRequestMessageBytes\": 1024,"
        "  \"maxResponseMessageBytes\": \"2048\","
        "  \"retryPolicy\": {\"maxAttempts\": 4, \"initialBackoff\": \"0.1s\","
        "   \"maxBackoff\": \"1s\", \"backoffMultiplier\": 2,"
        "   \"retryableStatusCodes\": [\"UNAVAILABLE\", 4, \"ABORTED\"]}},"
        " {\"name\": [{\"service\": \"pkg.Svc\"}], \"timeout\": \"2s\","
        "  \"waitForReady\": false},"
        " {\"name\": [{}], \"timeout\": \"0.000000001s\","
        "  \"hedgingPolicy\": {\"maxAttempts\": 9, \"hedgingDelay\": \"0s\","
        "   \"nonFatalStatusCodes\": [\"INTERNAL\"]}}"
        "],"
        " \"retryThrottling\": {\"maxTokens\": 10, \"tokenRatio\": 0.1234},"
        " \"loadBalancingConfig\": [{\"grpclb\": {}}, {\"round_robin\": {}},"
        "   {\"pick_first\": {}}]}");
    const orpc__method_config *mc = orpc__svc_config_method(sc, "/pkg.Svc/Get");
    assert_non_null(mc);
    assert_int_equal(mc->timeout_ns, 1500 * MS);
    assert_int_equal(mc->wait_for_ready, 1);
    assert_true(mc->has_max_request && mc->has_max_response);
    assert_int_equal(mc->max_request_bytes, 1024);
    assert_int_equal(mc->max_response_bytes, 2048);
    assert_non_null(mc->retry);
    assert_null(mc->hedging);
    assert_int_equal(mc->retry->max_attempts, 4);
    assert_int_equal(mc->retry->initial_backoff_ns, 100 * MS);
    assert_int_equal(mc->retry->max_backoff_ns, 1000 * MS);
    assert_true(mc->retry->backoff_multiplier == 2.0);
    assert_int_equal(mc->retry->codes, (1u << ORPC_UNAVAILABLE) |
                                           (1u << ORPC_DEADLINE_EXCEEDED) |
                                           (1u << ORPC_ABORTED));
    /* the service's other methods */
    mc = orpc__svc_config_method(sc, "/pkg.Svc/List");
    assert_non_null(mc);
    assert_int_equal(mc->timeout_ns, 2000 * MS);
    assert_int_equal(mc->wait_for_ready, 0);
    assert_null(mc->retry);
    assert_false(mc->has_max_request);
    /* anything else: the default */
    const char *others[] = {"/pkg.Other/Get", "/pkg.Sv/Get", "/pkg.Svcx/Get",
                            "/Get", "nonsense"};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
        mc = orpc__svc_config_method(sc, others[i]);
        assert_non_null(mc);
        assert_int_equal(mc->timeout_ns, 1);
        assert_int_equal(mc->wait_for_ready, -1);
        assert_non_null(mc->hedging);
        assert_int_equal(mc->hedging->max_attempts, 5); /* capped */
        assert_int_equal(mc->hedging->delay_ns, 0);
        assert_int_equal(mc->hedging->codes, 1u << ORPC_INTERNAL);
    }
    int max = 0, ratio = 0;
    assert_int_equal(orpc__svc_config_throttling(sc, &max, &ratio), 1);
    assert_int_equal(max, 10000);
    assert_int_equal(ratio, 123); /* three decimals */
    assert_int_equal(orpc__svc_config_lb(sc), ORPC__SC_LB_ROUND_ROBIN);
    orpc__svc_config_free(sc);
}

static void test_minimal_configs(void **state)
{
    (void)state;
    /* empty, unknown fields everywhere, nulls as "not set" */
    const char *ok[] = {
        "{}",
        " { \"methodConfig\": [] } ",
        "{\"methodConfig\": null, \"retryThrottling\": null}",
        ("{\"future\": {\"x\": [1, 2]}, \"methodConfig\": [{\"name\": "
         "[{\"service\": \"a.B\", \"extra\": 1}], \"newKnob\": \"x\", "
         "\"timeout\": null, \"retryPolicy\": {\"maxAttempts\": 2, "
         "\"initialBackoff\": \"1s\", \"maxBackoff\": \"1s\", "
         "\"backoffMultiplier\": \"1.5\", \"retryableStatusCodes\": [14], "
         "\"perAttemptRecvTimeout\": \"1s\"}}]}"),
        "{\"methodConfig\": [{\"timeout\": \"1s\"}]}", /* no name: unused */
        "{\"loadBalancingPolicy\": \"ROUND_ROBIN\"}",
        ("{\"loadBalancingConfig\": [{\"pick_first\": "
         "{\"shuffleAddressList\": true}}]}"),
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        orpc__svc_config *sc = parse_ok(ok[i]);
        orpc__svc_config_free(sc);
    }
    orpc__svc_config *sc = parse_ok("{}");
    assert_null(orpc__svc_config_method(sc, "/a.B/C"));
    int max, ratio;
    assert_int_equal(orpc__svc_config_throttling(sc, &max, &ratio), 0);
    assert_int_equal(orpc__svc_config_lb(sc), ORPC__SC_LB_UNSET);
    orpc__svc_config_free(sc);

    sc = parse_ok(ok[3]);
    const orpc__method_config *mc = orpc__svc_config_method(sc, "/a.B/C");
    assert_non_null(mc);
    assert_non_null(mc->retry);
    assert_true(mc->retry->backoff_multiplier == 1.5);
    assert_int_equal(mc->retry->codes, 1u << ORPC_UNAVAILABLE);
    assert_int_equal(mc->timeout_ns, 0);
    assert_null(orpc__svc_config_method(sc, "/a.Bc/C")); /* no default */
    orpc__svc_config_free(sc);

    sc = parse_ok(ok[5]);
    assert_int_equal(orpc__svc_config_lb(sc), ORPC__SC_LB_ROUND_ROBIN);
    orpc__svc_config_free(sc);
    sc = parse_ok(ok[6]);
    assert_int_equal(orpc__svc_config_lb(sc), ORPC__SC_LB_PICK_FIRST);
    orpc__svc_config_free(sc);
}

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t ns;
    } cases[] = {
        {"1s", 1000 * MS},
        {"0.5s", 500 * MS},
        {"1.000340012s", 1000340012},
        {"0.1s", 100 * MS},
        {"315576000000s", INT64_MAX}, /* beyond int64 ns: saturates */
        {"9s", 9000 * MS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char json[200];
        snprintf(json, sizeof json,
                 "{\"methodConfig\": [{\"name\": [{}], \"timeout\": \"%s\"}]}",
                 cases[i].text);
        orpc__svc_config *sc = parse_ok(json);
        const orpc__method_config *mc = orpc__svc_config_method(sc, "/a/b");
        assert_non_null(mc);
        if (mc->timeout_ns != cases[i].ns)
            fail_msg("%s: %lld", cases[i].text, (long long)mc->timeout_ns);
        orpc__svc_config_free(sc);
    }
    const char *bad[] = {"1",  "1.s", "s",    "1.0000000001s", "1 s", "-1s",
                         "0s", "+1s", "1.5S", "315576000001s", "1e3s"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char json[200];
        snprintf(json, sizeof json,
                 "{\"methodConfig\": [{\"name\": [{}], \"timeout\": \"%s\"}]}",
                 bad[i]);
        parse_bad(json, "methodConfig[0].timeout: ");
    }
}

/* A retryPolicy with one field replaced by |field|: |value|. */
static void bad_retry(const char *field, const char *value, const char *want)
{
    static const char *const fields[] = {"maxAttempts", "initialBackoff",
                                         "maxBackoff", "backoffMultiplier",
                                         "retryableStatusCodes"};
    static const char *const values[] = {"3", "\"0.1s\"", "\"1s\"", "2",
                                         "[\"UNAVAILABLE\"]"};
    char policy[512] = "";
    size_t n = 0;
    for (size_t i = 0; i < 5; i++) {
        const char *v = values[i];
        if (strcmp(fields[i], field) == 0) {
            if (value == NULL)
                continue; /* left out */
            v = value;
        }
        n += (size_t)snprintf(policy + n, sizeof policy - n, "%s\"%s\": %s",
                              n ? ", " : "", fields[i], v);
    }
    char json[1024];
    snprintf(json, sizeof json,
             "{\"methodConfig\": [{\"name\": [{\"service\": \"a.B\"}]}, "
             "{\"name\": [{\"service\": \"c.D\"}], \"retryPolicy\": {%s}}]}",
             policy);
    parse_bad(json, want);
}

static void test_bad_retry_policies(void **state)
{
    (void)state;
    const char *p = "methodConfig[1].retryPolicy.";
    char want[128];
#define BAD(field, value, msg)                                                 \
    do {                                                                       \
        snprintf(want, sizeof want, "%s%s%s%s", p, field,                      \
                 (msg)[0] == '[' ? "" : ": ", msg);                            \
        bad_retry(field, value, want);                                         \
    } while (0)
    BAD("maxAttempts", "1", "must be at least 2");
    BAD("maxAttempts", "0", "must be at least 2");
    BAD("maxAttempts", "-3", "must be an integer");
    BAD("maxAttempts", "2.5", "must be an integer");
    BAD("maxAttempts", "\"two\"", "must be an integer");
    BAD("maxAttempts", "true", "must be an integer");
    BAD("maxAttempts", "4294967296", "must be an integer");
    BAD("maxAttempts", NULL, "required");
    BAD("initialBackoff", "\"0s\"", "must be greater than 0");
    BAD("initialBackoff", "\"-1s\"", "must be greater than 0");
    BAD("initialBackoff", "1", "must be a duration");
    BAD("initialBackoff", NULL, "required");
    BAD("maxBackoff", "\"0s\"", "must be greater than 0");
    BAD("maxBackoff", "\"1m\"", "must be a duration");
    BAD("maxBackoff", NULL, "required");
    BAD("backoffMultiplier", "0", "must be greater than 0");
    BAD("backoffMultiplier", "-1.5", "must be greater than 0");
    BAD("backoffMultiplier", "\"fast\"", "must be a number");
    BAD("backoffMultiplier", "\"Infinity\"", "must be a number");
    BAD("backoffMultiplier", "[]", "must be a number");
    BAD("backoffMultiplier", NULL, "required");
    BAD("retryableStatusCodes", "[]", "must not be empty");
    BAD("retryableStatusCodes", NULL, "required");
    BAD("retryableStatusCodes", "\"UNAVAILABLE\"", "must be a list");
    BAD("retryableStatusCodes", "[\"UNAVAILABLE\", \"UNAVAILIBLE\"]",
        "[1]: unknown status code \"UNAVAILIBLE\"");
    BAD("retryableStatusCodes", "[14, 17]", "[1]: no status code 17");
    BAD("retryableStatusCodes", "[-1]", "[0]: no status code -1");
    BAD("retryableStatusCodes", "[{}]", "[0]: must be a status code");
#undef BAD
    parse_bad("{\"methodConfig\": [{\"retryPolicy\": 3}]}",
              "methodConfig[0].retryPolicy: must be an object");
}

static void test_bad_configs(void **state)
{
    (void)state;
    static const struct {
        const char *json, *want;
    } cases[] = {
        /* not JSON, not an object */
        {"", "line 1 column 0: "},
        {"{\"methodConfig\": [}", "line 1 column"},
        {"[]", "must be a JSON object"},
        {"{\"a\": 1, \"a\": 2}", "duplicate object key"},
        /* methodConfig and names */
        {"{\"methodConfig\": {}}", "methodConfig: must be a list"},
        {"{\"methodConfig\": [[]]}", "methodConfig[0]: must be an object"},
        {"{\"methodConfig\": [{}, 1]}", "methodConfig[1]: must be an object"},
        {"{\"methodConfig\": [{\"name\": {}}]}",
         "methodConfig[0].name: must be a list"},
        {"{\"methodConfig\": [{\"name\": [\"a.B/C\"]}]}",
         "methodConfig[0].name[0]: must be an object"},
        {"{\"methodConfig\": [{\"name\": [{\"service\": 1}]}]}",
         "methodConfig[0].name[0].service: must be a string"},
        {"{\"methodConfig\": [{\"name\": [{\"service\": \"a\", "
         "\"method\": []}]}]}",
         "methodConfig[0].name[0].method: must be a string"},
        {"{\"methodConfig\": [{\"name\": [{\"method\": \"Get\"}]}]}",
         "methodConfig[0].name[0]: method \"Get\" without a service"},
        {"{\"methodConfig\": [{\"name\": [{\"service\": \"a.B\", "
         "\"method\": \"C\"}]}, {\"name\": [{\"service\": \"x.Y\"}, "
         "{\"service\": \"a.B\", \"method\": \"C\"}]}]}",
         "methodConfig[1].name[1]: duplicate method \"a.B/C\" (also "
         "methodConfig[0].name[0])"},
        {"{\"methodConfig\": [{\"name\": [{\"service\": \"a.B\"}, "
         "{\"service\": \"a.B\", \"method\": \"\"}]}]}",
         "methodConfig[0].name[1]: duplicate service \"a.B\" (also "
         "methodConfig[0].name[0])"},
        {"{\"methodConfig\": [{\"name\": [{}]}, {\"name\": [{\"service\": "
         "\"\"}]}]}",
         "methodConfig[1].name[0]: duplicate default (empty) name (also "
         "methodConfig[0].name[0])"},
        /* per-method settings */
        {"{\"methodConfig\": [{\"timeout\": 1.5}]}",
         "methodConfig[0].timeout: must be a duration string"},
        {"{\"methodConfig\": [{\"waitForReady\": \"true\"}]}",
         "methodConfig[0].waitForReady: must be true or false"},
        {"{\"methodConfig\": [{\"waitForReady\": 1}]}",
         "methodConfig[0].waitForReady: must be true or false"},
        {"{\"methodConfig\": [{\"maxRequestMessageBytes\": -1}]}",
         "methodConfig[0].maxRequestMessageBytes: must be an integer"},
        {"{\"methodConfig\": [{\"maxResponseMessageBytes\": \"1k\"}]}",
         "methodConfig[0].maxResponseMessageBytes: must be an integer"},
        {"{\"methodConfig\": [{\"maxResponseMessageBytes\": 1e10}]}",
         "methodConfig[0].maxResponseMessageBytes: must be an integer"},
        {"{\"methodConfig\": [{}, {\"retryPolicy\": {}, "
         "\"hedgingPolicy\": {}}]}",
         "methodConfig[1]: retryPolicy and hedgingPolicy cannot both be set"},
        /* hedging */
        {"{\"methodConfig\": [{\"hedgingPolicy\": []}]}",
         "methodConfig[0].hedgingPolicy: must be an object"},
        {"{\"methodConfig\": [{\"hedgingPolicy\": {}}]}",
         "methodConfig[0].hedgingPolicy.maxAttempts: required"},
        {"{\"methodConfig\": [{\"hedgingPolicy\": {\"maxAttempts\": 1}}]}",
         "methodConfig[0].hedgingPolicy.maxAttempts: must be at least 2"},
        {"{\"methodConfig\": [{\"hedgingPolicy\": {\"maxAttempts\": 2, "
         "\"hedgingDelay\": \"-0.5s\"}}]}",
         "methodConfig[0].hedgingPolicy.hedgingDelay: must be 0 or more"},
        {"{\"methodConfig\": [{\"hedgingPolicy\": {\"maxAttempts\": 2, "
         "\"nonFatalStatusCodes\": [\"NOPE\"]}}]}",
         "methodConfig[0].hedgingPolicy.nonFatalStatusCodes[0]: unknown "
         "status code \"NOPE\""},
        /* throttling */
        {"{\"retryThrottling\": 5}", "retryThrottling: must be an object"},
        {"{\"retryThrottling\": {\"tokenRatio\": 1}}",
         "retryThrottling.maxTokens: required"},
        {"{\"retryThrottling\": {\"maxTokens\": 0, \"tokenRatio\": 1}}",
         "retryThrottling.maxTokens: must be from 1 to 1000"},
        {"{\"retryThrottling\": {\"maxTokens\": 1001, \"tokenRatio\": 1}}",
         "retryThrottling.maxTokens: must be from 1 to 1000"},
        {"{\"retryThrottling\": {\"maxTokens\": 10}}",
         "retryThrottling.tokenRatio: required"},
        {"{\"retryThrottling\": {\"maxTokens\": 10, \"tokenRatio\": 0}}",
         "retryThrottling.tokenRatio: must be greater than 0"},
        {"{\"retryThrottling\": {\"maxTokens\": 10, \"tokenRatio\": 0.0004}}",
         "retryThrottling.tokenRatio: must be at least 0.001"},
        {"{\"retryThrottling\": {\"maxTokens\": 10, \"tokenRatio\": null, "
         "\"x\": 1}}",
         "retryThrottling.tokenRatio: required"},
        /* load balancing */
        {"{\"loadBalancingConfig\": {\"round_robin\": {}}}",
         "loadBalancingConfig: must be a list"},
        {"{\"loadBalancingConfig\": []}",
         "loadBalancingConfig: no policy orpc supports"},
        {"{\"loadBalancingConfig\": [{\"grpclb\": {}}, {\"xds\": {}}]}",
         "loadBalancingConfig: no policy orpc supports"},
        {"{\"loadBalancingConfig\": [{\"round_robin\": {}, "
         "\"pick_first\": {}}]}",
         "loadBalancingConfig[0]: must be an object with one policy name"},
        {"{\"loadBalancingConfig\": [\"round_robin\"]}",
         "loadBalancingConfig[0]: must be an object with one policy name"},
        {"{\"loadBalancingConfig\": [{\"round_robin\": []}]}",
         "loadBalancingConfig[0].round_robin: must be an object"},
        {"{\"loadBalancingConfig\": [{\"pick_first\": "
         "{\"shuffleAddressList\": 1}}]}",
         "loadBalancingConfig[0].pick_first.shuffleAddressList: must be "
         "true or false"},
        {"{\"loadBalancingPolicy\": \"weighted\"}",
         "loadBalancingPolicy: unknown policy \"weighted\""},
        {"{\"loadBalancingPolicy\": 1}",
         "loadBalancingPolicy: must be a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        parse_bad(cases[i].json, cases[i].want);
}

static void test_limits_and_args(void **state)
{
    (void)state;
    orpc__svc_config *sc = NULL;
    orpc_error_detail d = {0};
    assert_int_equal(orpc__svc_config_parse(NULL, "{}", 2, NULL, &d),
                     ORPC_EINVAL);
    assert_int_equal(orpc__svc_config_parse(&sc, NULL, 0, NULL, &d),
                     ORPC_EINVAL);
    /* over the size limit: refused before parsing */
    size_t big = ORPC__SVC_CONFIG_MAX_BYTES + 1;
    char *text = malloc(big);
    assert_non_null(text);
    memset(text, ' ', big);
    text[0] = '{';
    text[big - 1] = '}';
    assert_int_equal(orpc__svc_config_parse(&sc, text, big, NULL, &d),
                     ORPC_ECONFIG);
    assert_non_null(strstr(d.message, "larger than"));
    /* not NUL-terminated: only |len| bytes are read */
    memcpy(text, "{}garbage", 9);
    assert_int_equal(orpc__svc_config_parse(&sc, text, 2, NULL, &d), 0);
    orpc__svc_config_free(sc);
    free(text);
    orpc__svc_config_free(NULL);
    assert_null(orpc__svc_config_method(NULL, "/a/b"));
    assert_int_equal(orpc__svc_config_lb(NULL), ORPC__SC_LB_UNSET);
}

/* Many names: lookups find each, through the sorted table. */
static void test_many_names(void **state)
{
    (void)state;
    size_t cap = 64 * 1024, n = 0;
    char *json = malloc(cap);
    assert_non_null(json);
    n += (size_t)snprintf(json + n, cap - n, "{\"methodConfig\": [");
    for (int i = 0; i < 200; i++) {
        n += (size_t)snprintf(json + n, cap - n,
                              "%s{\"name\": [{\"service\": \"s%d.S\", "
                              "\"method\": \"M%d\"}, {\"service\": \"s%d.S\"}],"
                              " \"timeout\": \"%ds\"}",
                              i ? ", " : "", i % 50, i, i + 1000, i + 1);
    }
    snprintf(json + n, cap - n, "]}");
    orpc__svc_config *sc = parse_ok(json);
    for (int i = 0; i < 200; i++) {
        char path[64];
        snprintf(path, sizeof path, "/s%d.S/M%d", i % 50, i);
        const orpc__method_config *mc = orpc__svc_config_method(sc, path);
        assert_non_null(mc);
        assert_int_equal(mc->timeout_ns, (int64_t)(i + 1) * 1000 * MS);
        snprintf(path, sizeof path, "/s%d.S/Other", i + 1000);
        mc = orpc__svc_config_method(sc, path);
        assert_non_null(mc);
        assert_int_equal(mc->timeout_ns, (int64_t)(i + 1) * 1000 * MS);
    }
    assert_null(orpc__svc_config_method(sc, "/s1.S/Other"));
    orpc__svc_config_free(sc);
    free(json);
}

/* Every allocation failing in turn: ORPC_ENOMEM, nothing leaked. */
static void test_failing_allocator(void **state)
{
    (void)state;
    const char *json =
        "{\"methodConfig\": [{\"name\": [{\"service\": \"a.B\", \"method\": "
        "\"C\"}, {}], \"retryPolicy\": {\"maxAttempts\": 3, "
        "\"initialBackoff\": \"1s\", \"maxBackoff\": \"2s\", "
        "\"backoffMultiplier\": 2, \"retryableStatusCodes\": [14]}}]}";
    int done = 0;
    for (long budget = 0; budget < 100 && !done; budget++) {
        test_alloc ta;
        orpc_mem mem = ta_mem(&ta, budget);
        orpc__svc_config *sc = NULL;
        orpc_error_detail d = {0};
        int rc = orpc__svc_config_parse(&sc, json, strlen(json), &mem, &d);
        if (rc == 0) {
            done = 1;
            assert_non_null(orpc__svc_config_method(sc, "/a.B/C"));
            orpc__svc_config_free(sc);
        } else {
            assert_int_equal(rc, ORPC_ENOMEM);
            assert_int_equal(d.code, ORPC_ENOMEM);
            assert_null(sc);
        }
        assert_int_equal(ta.live, 0);
    }
    assert_true(done);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_minimal_configs),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_bad_retry_policies),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_limits_and_args),
        cmocka_unit_test(test_many_names),
        cmocka_unit_test(test_failing_allocator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
