/*
 * json_test.c — the proto3 JSON mapping (compat/src/json_*.c): every scalar
 * type, repeated fields, maps with every key kind, oneofs and every
 * well-known type both ways, with exact expected texts; JSON and proto
 * names; the legacy profile on the OpsConductor notification request;
 * number, base64, enum, timestamp and duration edge cases; and hostile
 * input (deep nesting, huge numbers, bad base64, duplicate keys, invalid
 * UTF-8, NUL, wrong types at every level of every field), which must end in
 * INVALID_ARGUMENT naming a path, never in a crash or a leak.  Messages are
 * built with a counting ProtobufCAllocator, swept through every allocation
 * failure.  The hidden orpc__json_* functions are reached because the
 * json_*.c files are compiled into this test (tests/json.cmake).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json_internal.h"

#include <orpc/error.h>

#include "google/protobuf/descriptor.orpc.h"
#include "google/protobuf/struct.orpc.h"
#include "google/protobuf/timestamp.orpc.h"
#include "grpc/testing/messages.orpc.h"
#include "json_canonical.h"
#include "json_types.orpc.h"
#include "opsconductor/auth/v1/auth.orpc.h"
#include "opsconductor/credentials/v1/credentials.orpc.h"
#include "opsconductor/jobs/v1/jobs.orpc.h"
#include "opsconductor/notification/v1/notification.orpc.h"

#define ALL (&orpc__test__json__all_types__orpc_info)
#define WKT (&orpc__test__json__well_known__orpc_info)
#define NESTED (&orpc__test__json__nested__orpc_info)
#define NOTIF                                                                  \
    (&opsconductor__notification__v1__send_notification_request__orpc_info)

/* A string literal and its length, for inputs with NULs or without one. */
#define LIT(s) (s), (sizeof(s) - 1)

typedef Orpc__Test__Json__AllTypes AllTypes;
typedef Orpc__Test__Json__WellKnown WellKnown;
typedef Orpc__Test__Json__Nested Nested;

/* ---- a counting, failing ProtobufCAllocator ------------------------------ */

typedef struct counting {
    long budget; /* allocations still allowed; -1: unlimited */
    long live;
    size_t calls;
} counting;

static void *c_alloc(void *ud, size_t n)
{
    counting *c = ud;
    if (c->budget == 0) {
        return NULL;
    }
    if (c->budget > 0) {
        c->budget--;
    }
    c->live++;
    c->calls++;
    return malloc(n);
}

static void c_free(void *ud, void *p)
{
    counting *c = ud;
    if (p != NULL) {
        c->live--;
        free(p);
    }
}

/* ---- helpers ------------------------------------------------------------- */

static ProtobufCMessage *dec_opts(const orpc_message_info *info,
                                  const char *json, const orpc_json_opts *opts)
{
    ProtobufCMessage *m = NULL;
    orpc_error_detail d = {0};
    int rc = orpc_json_decode(&m, info, json, strlen(json), opts, NULL, &d);
    if (rc != 0) {
        print_error("decode of %s failed: %s: %s\n", json, orpc_err_name(rc),
                    d.message);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(d.code, 0); /* untouched on success */
    assert_non_null(m);
    return m;
}

static ProtobufCMessage *dec(const orpc_message_info *info, const char *json)
{
    return dec_opts(info, json, NULL);
}

/* Decoding |json| fails with |code|, and a detail of that code whose
 * message starts with |prefix| (the JSON path) and contains |part| unless
 * NULL. */
static void dec_fails(const orpc_message_info *info, const char *json,
                      size_t len, const orpc_json_opts *opts, int code,
                      const char *prefix, const char *part)
{
    ProtobufCMessage *m = (ProtobufCMessage *)&m; /* must be reset */
    orpc_error_detail d = {0};
    int rc = orpc_json_decode(&m, info, json, len, opts, NULL, &d);
    if (rc != code || d.code != code ||
        strncmp(d.message, prefix, strlen(prefix)) != 0 ||
        (part != NULL && strstr(d.message, part) == NULL)) {
        print_error("input %.200s: got %s \"%s\", want %s \"%s...%s\"\n", json,
                    orpc_err_name(rc), d.message, orpc_err_name(code), prefix,
                    part != NULL ? part : "");
        fail();
    }
    assert_null(m);
}

/* ... with ORPC_EPARSE: the text is not JSON or does not fit the type. */
static void dec_err_opts(const orpc_message_info *info, const char *json,
                         size_t len, const orpc_json_opts *opts,
                         const char *prefix, const char *part)
{
    dec_fails(info, json, len, opts, ORPC_EPARSE, prefix, part);
}

/* ... with ORPC_ETOOBIG: nested too deep. */
static void dec_deep(const orpc_message_info *info, const char *json,
                     size_t len, const orpc_json_opts *opts, const char *prefix,
                     const char *part)
{
    dec_fails(info, json, len, opts, ORPC_ETOOBIG, prefix, part);
}

static void dec_err(const orpc_message_info *info, const char *json,
                    const char *prefix, const char *part)
{
    dec_err_opts(info, json, strlen(json), NULL, prefix, part);
}

static char *enc_opts(const orpc_message_info *info, const ProtobufCMessage *m,
                      const orpc_json_opts *opts)
{
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(orpc_json_encode(&out, &len, info, m, opts, NULL), 0);
    assert_non_null(out);
    assert_int_equal(len, strlen(out));
    return out;
}

/* Encoding |m| fails with |code|, and a detail of that code whose message
 * starts with |prefix| (the JSON path of the fault). */
static void enc_fails(const orpc_message_info *info, const ProtobufCMessage *m,
                      const orpc_json_opts *opts, int code, const char *prefix)
{
    char *out = (char *)&out; /* must be reset */
    size_t len = 7;
    orpc_error_detail d = {0};
    int rc = orpc_json_encode(&out, &len, info, m, opts, &d);
    if (rc != code || d.code != code ||
        strncmp(d.message, prefix, strlen(prefix)) != 0) {
        print_error("got %s \"%s\", want %s \"%s...\"\n", orpc_err_name(rc),
                    d.message, orpc_err_name(code), prefix);
        fail();
    }
    assert_null(out);
    assert_int_equal(len, 0);
}

static void assert_enc(const orpc_message_info *info, const ProtobufCMessage *m,
                       const orpc_json_opts *opts, const char *want)
{
    char *out = enc_opts(info, m, opts);
    assert_string_equal(out, want);
    free(out);
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len + 1);
    assert_non_null(b);
    protobuf_c_message_pack(m, b);
    return b;
}

static void assert_same_message(const ProtobufCMessage *a,
                                const ProtobufCMessage *b)
{
    size_t la;
    size_t lb;
    uint8_t *pa = pack(a, &la);
    uint8_t *pb = pack(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(pa, pb, la);
    free(pa);
    free(pb);
}

/* JSON -> message -> JSON is the identity on |json| (canonical form), and
 * the message survives a second round. */
static void assert_canonical(const orpc_message_info *info, const char *json,
                             const orpc_json_opts *opts)
{
    ProtobufCMessage *m = dec_opts(info, json, opts);
    char *out = enc_opts(info, m, opts);
    assert_string_equal(out, json);
    ProtobufCMessage *m2 = dec_opts(info, out, opts);
    assert_same_message(m, m2);
    free(out);
    protobuf_c_message_free_unpacked(m, NULL);
    protobuf_c_message_free_unpacked(m2, NULL);
}

/* The canonical texts used by several tests. */
static const char ALL_JSON[] = ORPC_TEST_ALL_JSON;

static const char WKT_JSON[] = ORPC_TEST_WKT_JSON;

/* ---- round trips --------------------------------------------------------- */

static void test_all_types_canonical(void **state)
{
    (void)state;
    assert_canonical(ALL, ALL_JSON, NULL);
    assert_canonical(ALL, "{}", NULL);
    assert_canonical(WKT, WKT_JSON, NULL);
    assert_canonical(WKT, "{}", NULL);
}

static void test_all_types_values(void **state)
{
    (void)state;
    AllTypes *m = (AllTypes *)dec(ALL, ALL_JSON);
    assert_int_equal(m->f_int32, INT32_MIN);
    assert_true(m->f_int64 == INT64_MIN);
    assert_true(m->f_uint64 == UINT64_MAX);
    assert_true(m->f_sint64 == 9007199254740993LL);
    assert_true(m->f_float == 0.1f);
    assert_true(m->f_double == 1.0 / 3);
    assert_string_equal(m->f_string,
                        "h\xc3\xa9llo \"q\" \\ \n\t\x01 \xf0\x9f\x98\x80");
    assert_int_equal(m->f_bytes.len, 3);
    assert_memory_equal(m->f_bytes.data, "\x00\xff\x10", 3);
    assert_int_equal(m->f_enum, ORPC__TEST__JSON__COLOR__COLOR_RED);
    assert_int_equal(m->f_nested->child->child->a, 3);
    assert_int_equal(m->n_r_enum, 3);
    assert_int_equal(m->r_enum[2], 99);
    assert_int_equal(m->n_r_float, 6);
    assert_true(m->r_float[3] == 3.4028234663852886e38f);
    assert_int_equal(m->n_m_bool_string, 2);
    assert_int_equal(m->m_bool_string[1]->key, 0);
    assert_true(m->m_int64_nested[0]->key == INT64_MIN);
    assert_non_null(m->m_int64_nested[1]->value);
    assert_int_equal(m->renamed, 42);
    assert_int_equal(m->choice_case,
                     ORPC__TEST__JSON__ALL_TYPES__CHOICE_O_STRING);
    assert_int_equal(m->_opt_int32_case,
                     ORPC__TEST__JSON__ALL_TYPES___OPT_INT32_OPT_INT32);
    assert_int_equal(m->opt_int32, 0);
    Google__Protobuf__Value *n = m->m_string_value[0]->value;
    assert_int_equal(n->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void test_proto_names_and_inputs(void **state)
{
    (void)state;
    const orpc_json_opts pn = {.proto_names = 1};
    assert_canonical(
        ALL,
        "{\"f_int32\":1,\"f_int64\":\"2\",\"f_enum\":\"COLOR_BLUE\","
        "\"r_nested\":[{\"a\":1}],\"m_bool_string\":{\"false\":\"\"},"
        "\"o_nested\":{\"child\":{}},\"renamed\":3}",
        &pn);
    /* Input: JSON and proto names both work, mixed. */
    AllTypes *m = (AllTypes *)dec(
        ALL, "{\"f_int32\":1,\"fUint32\":2,\"customName\":3,\"r_int32\":[4],"
             "\"o_enum\":\"COLOR_GREEN\",\"opt_int32\":5}");
    assert_int_equal(m->f_int32, 1);
    assert_int_equal(m->f_uint32, 2);
    assert_int_equal(m->renamed, 3);
    assert_int_equal(m->r_int32[0], 4);
    assert_int_equal(m->o_enum, ORPC__TEST__JSON__COLOR__COLOR_GREEN);
    assert_int_equal(m->opt_int32, 5);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    m = (AllTypes *)dec(ALL, "{\"renamed\":7}");
    assert_int_equal(m->renamed, 7);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void test_emit_defaults(void **state)
{
    (void)state;
    const orpc_json_opts ed = {.emit_defaults = 1};
    AllTypes m = ORPC__TEST__JSON__ALL_TYPES__INIT;
    char *out = enc_opts(ALL, &m.base, &ed);
    assert_non_null(strstr(out, "{\"fInt32\":0,\"fInt64\":\"0\","));
    assert_non_null(strstr(out,
                           "\"fFloat\":0,\"fDouble\":0,\"fBool\":false,"
                           "\"fString\":\"\",\"fBytes\":\"\","
                           "\"fEnum\":\"COLOR_UNSPECIFIED\",\"rInt32\":[]"));
    assert_non_null(strstr(out, "\"mStringValue\":{},\"customName\":0}"));
    assert_null(strstr(out, "fNested")); /* messages and oneofs: unset */
    assert_null(strstr(out, "oString"));
    assert_null(strstr(out, "optInt32"));
    AllTypes *back = (AllTypes *)dec(ALL, out);
    assert_same_message(&m.base, &back->base);
    protobuf_c_message_free_unpacked(&back->base, NULL);
    free(out);
}

static void test_encode_from_c(void **state)
{
    (void)state;
    AllTypes m = ORPC__TEST__JSON__ALL_TYPES__INIT;
    Nested n = ORPC__TEST__JSON__NESTED__INIT;
    int32_t ri[2] = {1, -2};
    Orpc__Test__Json__Color re[2] = {ORPC__TEST__JSON__COLOR__COLOR_GREEN, 7};
    m.f_int64 = 1LL << 60;
    m.f_uint64 = 9007199254740992ULL;
    m.f_float = 3.14f;
    m.f_double = -0.1;
    m.f_string = "x\"y";
    m.f_bytes.data = (uint8_t *)"\xfb\xff";
    m.f_bytes.len = 2;
    m.f_enum = ORPC__TEST__JSON__COLOR__COLOR_RED;
    n.a = 5;
    m.f_nested = &n;
    m.n_r_int32 = 2;
    m.r_int32 = ri;
    m.n_r_enum = 2;
    m.r_enum = re;
    m.choice_case = ORPC__TEST__JSON__ALL_TYPES__CHOICE_O_INT64;
    m.o_int64 = -(1LL << 53);
    m.renamed = 1;
    assert_enc(ALL, &m.base, NULL,
               "{\"fInt64\":\"1152921504606846976\","
               "\"fUint64\":\"9007199254740992\",\"fFloat\":3.14,"
               "\"fDouble\":-0.1,\"fString\":\"x\\\"y\",\"fBytes\":\"+/8=\","
               "\"fEnum\":\"COLOR_RED\",\"fNested\":{\"a\":5},"
               "\"rInt32\":[1,-2],\"rEnum\":[\"COLOR_GREEN\",7],"
               "\"oInt64\":\"-9007199254740992\",\"customName\":1}");
    /* Legacy: snake_case, 64-bit integers as numbers within ±2^53, enums by
     * legacy spelling where they have one. */
    const orpc_json_opts legacy = {.legacy = 1};
    assert_enc(ALL, &m.base, &legacy,
               "{\"f_int64\":\"1152921504606846976\","
               "\"f_uint64\":9007199254740992,\"f_float\":3.14,"
               "\"f_double\":-0.1,\"f_string\":\"x\\\"y\",\"f_bytes\":\"+/8=\","
               "\"f_enum\":\"red\",\"f_nested\":{\"a\":5},"
               "\"r_int32\":[1,-2],\"r_enum\":[\"green\",7],"
               "\"o_int64\":-9007199254740992,\"renamed\":1}");
    /* Both read back to the same message. */
    ProtobufCMessage *a = dec(ALL, "{\"f_int64\":\"1152921504606846976\","
                                   "\"f_uint64\":9007199254740992,"
                                   "\"f_float\":3.14,\"f_double\":-0.1,"
                                   "\"f_string\":\"x\\\"y\","
                                   "\"f_bytes\":\"-_8\",\"f_enum\":\"red\","
                                   "\"f_nested\":{\"a\":5},\"r_int32\":[1,-2],"
                                   "\"r_enum\":[\"green\",7],\"renamed\":1,"
                                   "\"o_int64\":-9007199254740992}");
    assert_same_message(&m.base, a);
    protobuf_c_message_free_unpacked(a, NULL);
}

static void test_shortest_reals(void **state)
{
    (void)state;
    static const struct {
        double d;
        const char *want;
    } cases[] = {
        {0.1, "{\"fDouble\":0.1}"},
        {5.0, "{\"fDouble\":5}"},
        {1e21, "{\"fDouble\":1e+21}"},
        {-1.5e-7, "{\"fDouble\":-1.5e-07}"},
        {123456789012345678.0, "{\"fDouble\":1.2345678901234568e+17}"},
        {5e-324, "{\"fDouble\":5e-324}"},
        {1.7976931348623157e308, "{\"fDouble\":1.7976931348623157e+308}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        AllTypes m = ORPC__TEST__JSON__ALL_TYPES__INIT;
        m.f_double = cases[i].d;
        assert_enc(ALL, &m.base, NULL, cases[i].want);
        AllTypes *b = (AllTypes *)dec(ALL, cases[i].want);
        assert_true(b->f_double == cases[i].d);
        protobuf_c_message_free_unpacked(&b->base, NULL);
    }
    AllTypes m = ORPC__TEST__JSON__ALL_TYPES__INIT;
    m.f_float = 16777217.0f; /* rounds to 16777216 */
    assert_enc(ALL, &m.base, NULL, "{\"fFloat\":16777216}");
    m.f_float = 1.17549435e-38f;
    assert_enc(ALL, &m.base, NULL, "{\"fFloat\":1.1754944e-38}");
}

/* The project's own messages: grpc.testing and the OpsConductor services. */
static void test_project_messages(void **state)
{
    (void)state;
    const orpc_json_opts legacy = {.legacy = 1};
    assert_canonical(
        &grpc__testing__simple_request__orpc_info,
        "{\"responseSize\":314159,\"payload\":{\"body\":\"AAAA\"},"
        "\"fillUsername\":true,\"responseCompressed\":{\"value\":"
        "true},\"responseStatus\":{\"code\":3,\"message\":\"bad\"},"
        "\"expectCompressed\":{}}",
        NULL);
    assert_canonical(&grpc__testing__streaming_output_call_request__orpc_info,
                     "{\"responseParameters\":[{\"size\":1,\"intervalUs\":2},"
                     "{\"compressed\":{}}],\"payload\":{}}",
                     NULL);
    assert_canonical(&opsconductor__jobs__v1__job_event__orpc_info,
                     "{\"jobId\":\"12\",\"status\":\"running\","
                     "\"changedAt\":\"2024-02-29T21:59:59.500Z\","
                     "\"detail\":{\"progress\":0.5}}",
                     NULL);
    assert_canonical(&opsconductor__jobs__v1__job_event__orpc_info,
                     "{\"job_id\":12,\"status\":\"running\","
                     "\"changed_at\":\"2024-02-29T21:59:59.500Z\"}",
                     &legacy);
    assert_canonical(&opsconductor__auth__v1__login_response__orpc_info,
                     "{\"accessToken\":\"t\",\"expiresIn\":\"3600\"}", NULL);
    assert_canonical(&opsconductor__auth__v1__login_response__orpc_info,
                     "{\"access_token\":\"t\",\"expires_in\":0,"
                     "\"token_type\":\"bearer\"}",
                     &legacy);
    assert_canonical(
        &opsconductor__credentials__v1__list_target_credentials_response__orpc_info,
        "{\"credentials\":[{\"id\":1,\"secret\":null},{}]}", &legacy);
}

/* ---- well-known types ---------------------------------------------------- */

static void test_timestamps(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t sec;
        int32_t nanos;
        const char *out;
    } ok[] = {
        {"1970-01-01T00:00:00Z", 0, 0, "1970-01-01T00:00:00Z"},
        {"1972-01-01T10:00:20.021+01:00", 63104420, 21000000,
         "1972-01-01T09:00:20.021Z"},
        {"2000-02-29T23:59:59.5-00:30", 951870599, 500000000,
         "2000-03-01T00:29:59.500Z"},
        {"1969-12-31T23:59:59.999999999Z", -1, 999999999,
         "1969-12-31T23:59:59.999999999Z"},
        {"0001-01-01T00:00:00Z", -62135596800LL, 0, "0001-01-01T00:00:00Z"},
        {"9999-12-31T23:59:59.1Z", 253402300799LL, 100000000,
         "9999-12-31T23:59:59.100Z"},
        {"2024-06-01T12:00:00.000123Z", 1717243200, 123000,
         "2024-06-01T12:00:00.000123Z"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"ts\":\"%s\"}", ok[i].in);
        WellKnown *m = (WellKnown *)dec(WKT, json);
        assert_true(m->ts->seconds == ok[i].sec);
        assert_int_equal(m->ts->nanos, ok[i].nanos);
        snprintf(json, sizeof json, "{\"ts\":\"%s\"}", ok[i].out);
        assert_enc(WKT, &m->base, NULL, json);
        protobuf_c_message_free_unpacked(&m->base, NULL);
    }
    static const char *const bad[] = {
        "1970-01-01T00:00:00",
        "1970-01-01t00:00:00Z",
        "1970-01-01 00:00:00Z",
        "1970-01-01T00:00:00z",
        "1970-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "1970-01-32T00:00:00Z",
        "1970-01-01T24:00:00Z",
        "1970-01-01T00:60:00Z",
        "1970-01-01T00:00:60Z",
        "1970-01-01T00:00:00.Z",
        "1970-01-01T00:00:00.1234567891Z",
        "0000-12-31T00:00:00Z",
        "0001-01-01T00:00:00+00:01",
        "9999-12-31T23:59:59-00:01",
        "1970-01-01T00:00:00+24:00",
        "1970-01-01T00:00:00+0100",
        "+1970-01-01T00:00:00Z",
        "",
        "1970-01-01T00:00:00ZZ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"ts\":\"%s\"}", bad[i]);
        dec_err(WKT, json, "$.ts: invalid timestamp", NULL);
    }
    dec_err(WKT, "{\"ts\":0}", "$.ts: expected an RFC 3339 timestamp", NULL);
    dec_err(WKT, "{\"rTs\":[\"1970-01-01T00:00:00Z\",{}]}", "$.rTs[1]: ", NULL);
    /* Top level: the message is a string. */
    ProtobufCMessage *t = dec(&google__protobuf__timestamp__orpc_info,
                              "\"2001-09-09T01:46:40Z\"");
    assert_true(((Google__Protobuf__Timestamp *)t)->seconds == 1000000000);
    assert_enc(&google__protobuf__timestamp__orpc_info, t, NULL,
               "\"2001-09-09T01:46:40Z\"");
    protobuf_c_message_free_unpacked(t, NULL);
}

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t sec;
        int32_t nanos;
        const char *out;
    } ok[] = {
        {"0s", 0, 0, "0s"},
        {"1.5s", 1, 500000000, "1.500s"},
        {"-0.5s", 0, -500000000, "-0.500s"},
        {"-1.000000001s", -1, -1, "-1.000000001s"},
        {"315576000000s", 315576000000LL, 0, "315576000000s"},
        {"-315576000000.999999999s", -315576000000LL, -999999999,
         "-315576000000.999999999s"},
        {"0.000010s", 0, 10000, "0.000010s"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"dur\":\"%s\"}", ok[i].in);
        WellKnown *m = (WellKnown *)dec(WKT, json);
        assert_true(m->dur->seconds == ok[i].sec);
        assert_int_equal(m->dur->nanos, ok[i].nanos);
        snprintf(json, sizeof json, "{\"dur\":\"%s\"}", ok[i].out);
        assert_enc(WKT, &m->base, NULL, json);
        protobuf_c_message_free_unpacked(&m->base, NULL);
    }
    static const char *const bad[] = {
        "1",
        "s",
        "1.s",
        "1.0000000001s",
        "315576000001s",
        "+1s",
        "1S",
        "1.5 s",
        " 1s",
        "--1s",
        "1e3s",
        "",
        "-s",
        "99999999999999999999999s",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"dur\":\"%s\"}", bad[i]);
        dec_err(WKT, json, "$.dur: invalid duration", NULL);
    }
}

static void test_wrappers_struct_value(void **state)
{
    (void)state;
    /* null: unset wrapper; values equal to the default are kept. */
    WellKnown *m = (WellKnown *)dec(
        WKT, "{\"wInt32\":null,\"wBool\":false,\"wString\":\"\","
             "\"val\":null,\"st\":{},\"lv\":[]}");
    assert_null(m->w_int32);
    assert_non_null(m->w_bool);
    assert_non_null(m->w_string);
    assert_non_null(m->val);
    assert_int_equal(m->val->kind_case,
                     GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
    assert_enc(WKT, &m->base, NULL,
               "{\"wBool\":false,\"wString\":\"\",\"st\":{},\"val\":null,"
               "\"lv\":[]}");
    protobuf_c_message_free_unpacked(&m->base, NULL);
    /* Value: every kind; numbers keep integer spelling when integral. */
    assert_canonical(&google__protobuf__value__orpc_info,
                     "{\"a\":[1,2.5,-3e+100,\"s\",true,false,null,{},[]],"
                     "\"b\":{\"c\":{\"d\":null}}}",
                     NULL);
    assert_canonical(&google__protobuf__value__orpc_info, "null", NULL);
    assert_canonical(&google__protobuf__value__orpc_info, "\"x\"", NULL);
    /* Numbers are doubles: 2^53 + 1 reads as 2^53. */
    assert_canonical(&google__protobuf__struct__orpc_info,
                     "{\"k\":9007199254740992}", NULL);
    ProtobufCMessage *big =
        dec(&google__protobuf__struct__orpc_info, "{\"k\":9007199254740993}");
    assert_enc(&google__protobuf__struct__orpc_info, big, NULL,
               "{\"k\":9007199254740992}");
    protobuf_c_message_free_unpacked(big, NULL);
    dec_err(&google__protobuf__struct__orpc_info, "[]", "$: expected an object",
            NULL);
    /* Wrappers take the wrapped type's rules. */
    dec_err(WKT, "{\"wInt32\":\"x\"}", "$.wInt32: not an integer", NULL);
    dec_err(WKT, "{\"wUint32\":-1}", "$.wUint32: integer out of range", NULL);
    dec_err(WKT, "{\"wBool\":\"true\"}", "$.wBool: expected true or false",
            NULL);
    dec_err(WKT, "{\"rWInt32\":[1,null]}",
            "$.rWInt32[1]: null is not allowed in a list", NULL);
    dec_err(WKT, "{\"mWString\":{\"k\":null}}",
            "$.mWString[\"k\"]: null is not allowed as a map value", NULL);
    /* A Value list element may be null; a repeated Value keeps it. */
    m = (WellKnown *)dec(WKT, "{\"rVal\":[null]}");
    assert_int_equal(m->n_r_val, 1);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    /* Encoding: a Value that JSON cannot carry. */
    Google__Protobuf__Value v = GOOGLE__PROTOBUF__VALUE__INIT;
    v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
    v.number_value = 1.0 / 0.0;
    enc_fails(&google__protobuf__value__orpc_info, &v.base, NULL, ORPC_EINVAL,
              "$: Value number is not finite");
    v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND__NOT_SET;
    assert_enc(&google__protobuf__value__orpc_info, &v.base, NULL, "null");
}

static void test_field_mask(void **state)
{
    (void)state;
    WellKnown *m = (WellKnown *)dec(WKT, "{\"fm\":\"fooBar.bazQux,a,b.c\"}");
    assert_int_equal(m->fm->n_paths, 3);
    assert_string_equal(m->fm->paths[0], "foo_bar.baz_qux");
    assert_string_equal(m->fm->paths[1], "a");
    assert_string_equal(m->fm->paths[2], "b.c");
    assert_enc(WKT, &m->base, NULL, "{\"fm\":\"fooBar.bazQux,a,b.c\"}");
    protobuf_c_message_free_unpacked(&m->base, NULL);
    m = (WellKnown *)dec(WKT, "{\"fm\":\"\"}");
    assert_int_equal(m->fm->n_paths, 0);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    dec_err(WKT, "{\"fm\":\"foo_bar\"}", "$.fm: field mask path", NULL);
    dec_err(WKT, "{\"fm\":\"a,,b\"}", "$.fm: empty field mask path", NULL);
    dec_err(WKT, "{\"fm\":\"a,\"}", "$.fm: empty field mask path", NULL);
    dec_err(WKT, "{\"fm\":[\"a\"]}", "$.fm: expected a field mask", NULL);
    /* Paths that would not read back are refused on output. */
    static const char *const unprintable[] = {"fooBar", "foo__bar", "foo_",
                                              "foo_1"};
    for (size_t i = 0; i < 4; i++) {
        Google__Protobuf__FieldMask fm = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
        char *paths[1] = {(char *)unprintable[i]};
        fm.n_paths = 1;
        fm.paths = paths;
        WellKnown w = ORPC__TEST__JSON__WELL_KNOWN__INIT;
        w.fm = &fm;
        enc_fails(WKT, &w.base, NULL, ORPC_EINVAL, "$.fm: FieldMask path \"");
    }
}

static void test_any(void **state)
{
    (void)state;
    /* Types resolve among those reachable from the root and liborpc's
     * well-known ones. */
    WellKnown *m = (WellKnown *)dec(
        WKT, "{\"any\":{\"b\":\"x\",\"@type\":\"example.com/a/b/"
             "orpc.test.json.Nested\",\"child\":{\"a\":1}}}");
    assert_string_equal(m->any->type_url,
                        "example.com/a/b/orpc.test.json.Nested");
    Nested *n = (Nested *)protobuf_c_message_unpack(
        &orpc__test__json__nested__descriptor, NULL, m->any->value.len,
        m->any->value.data);
    assert_non_null(n);
    assert_string_equal(n->b, "x");
    assert_int_equal(n->child->a, 1);
    protobuf_c_message_free_unpacked(&n->base, NULL);
    assert_enc(WKT, &m->base, NULL,
               "{\"any\":{\"@type\":\"example.com/a/b/orpc.test.json.Nested\","
               "\"b\":\"x\",\"child\":{\"a\":1}}}");
    protobuf_c_message_free_unpacked(&m->base, NULL);
    /* Any in Any, and google.rpc.Status. */
    assert_canonical(WKT,
                     "{\"any\":{\"@type\":\"t/google.protobuf.Any\",\"value\":"
                     "{\"@type\":\"t/google.rpc.Status\",\"code\":5,"
                     "\"message\":\"m\"}}}",
                     NULL);
    dec_err(WKT, "{\"any\":{\"a\":1}}", "$.any: google.protobuf.Any without",
            NULL);
    dec_err(WKT, "{\"any\":{\"@type\":1}}", "$.any[\"@type\"]: expected", NULL);
    dec_err(WKT, "{\"any\":{\"@type\":\"nourl\"}}",
            "$.any[\"@type\"]: invalid type URL", NULL);
    dec_err(WKT, "{\"any\":{\"@type\":\"x/\"}}",
            "$.any[\"@type\"]: invalid type URL", NULL);
    dec_err(WKT, "{\"any\":{\"@type\":\"x/no.such.Type\"}}",
            "$.any[\"@type\"]: unknown type \"no.such.Type\"", NULL);
    dec_err(WKT, "{\"any\":{\"@type\":\"x/orpc.test.json.Nested\",\"z\":1}}",
            "$.any.z: unknown field", NULL);
    dec_err(WKT,
            "{\"any\":{\"@type\":\"x/google.protobuf.Duration\",\"v\":\"1s\"}}",
            "$.any.v: unknown field", NULL);
    dec_err(WKT, "{\"any\":{\"@type\":\"x/google.protobuf.Duration\"}}",
            "$.any: google.protobuf.Any of google.protobuf.Duration without",
            NULL);
    dec_err(WKT,
            "{\"any\":{\"@type\":\"x/google.protobuf.Duration\","
            "\"value\":\"1\"}}",
            "$.any.value: invalid duration", NULL);
    /* Encoding: unresolvable or undecodable payloads are ORPC_EINVAL. */
    Google__Protobuf__Any a = GOOGLE__PROTOBUF__ANY__INIT;
    WellKnown w = ORPC__TEST__JSON__WELL_KNOWN__INIT;
    w.any = &a;
    a.type_url = "type.googleapis.com/not.Known";
    enc_fails(WKT, &w.base, NULL, ORPC_EINVAL,
              "$.any: Any of unknown type \"not.Known\"");
    a.type_url = "type.googleapis.com/orpc.test.json.Nested";
    a.value.data = (uint8_t *)"\xff\xff\xff";
    a.value.len = 3;
    enc_fails(WKT, &w.base, NULL, ORPC_EINVAL,
              "$.any: Any value does not unpack as orpc.test.json.Nested");
    a.type_url = "";
    a.value.len = 0;
    assert_enc(WKT, &w.base, NULL, "{\"any\":{}}");
    /* From a root that reaches no AllTypes, AllTypes does not resolve. */
    dec_err(&google__protobuf__any__orpc_info,
            "{\"@type\":\"t/orpc.test.json.AllTypes\"}",
            "$[\"@type\"]: unknown type", NULL);
}

/* ---- the legacy profile -------------------------------------------------- */

static void test_legacy_notification(void **state)
{
    (void)state;
    Opsconductor__Notification__V1__SendNotificationRequest r =
        OPSCONDUCTOR__NOTIFICATION__V1__SEND_NOTIFICATION_REQUEST__INIT;
    Google__Protobuf__Struct payload = GOOGLE__PROTOBUF__STRUCT__INIT;
    Google__Protobuf__Struct__FieldsEntry e1 =
        GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    Google__Protobuf__Struct__FieldsEntry e2 =
        GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    Google__Protobuf__Value v1 = GOOGLE__PROTOBUF__VALUE__INIT;
    Google__Protobuf__Value v2 = GOOGLE__PROTOBUF__VALUE__INIT;
    Google__Protobuf__Struct__FieldsEntry *entries[2] = {&e1, &e2};
    v1.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    v1.string_value = "Disk full";
    v2.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    v2.string_value = "on host a";
    e1.key = "subject";
    e1.value = &v1;
    e2.key = "body";
    e2.value = &v2;
    payload.n_fields = 2;
    payload.fields = entries;
    r.type =
        OPSCONDUCTOR__NOTIFICATION__V1__NOTIFICATION_TYPE__NOTIFICATION_TYPE_EMAIL;
    r.destination = "ops@example.com";
    r.payload = &payload;
    r._template_id_case =
        OPSCONDUCTOR__NOTIFICATION__V1__SEND_NOTIFICATION_REQUEST___TEMPLATE_ID_TEMPLATE_ID;
    r.template_id = 42;
    const orpc_json_opts legacy = {.legacy = 1};
    const char *want =
        "{\"type\":\"email\",\"destination\":\"ops@example.com\","
        "\"payload\":{\"subject\":\"Disk full\",\"body\":\"on host a\"},"
        "\"template_id\":42}";
    assert_enc(NOTIF, &r.base, &legacy, want);
    assert_enc(NOTIF, &r.base, NULL,
               "{\"type\":\"NOTIFICATION_TYPE_EMAIL\","
               "\"destination\":\"ops@example.com\","
               "\"payload\":{\"subject\":\"Disk full\",\"body\":\"on host a\"},"
               "\"templateId\":\"42\"}");
    /* The legacy body reads back to the same message. */
    ProtobufCMessage *back = dec(NOTIF, want);
    assert_same_message(&r.base, back);
    protobuf_c_message_free_unpacked(back, NULL);
    /* template_id unset: the key is absent, even with emit_defaults; a
     * template_id of 0 that is set is present. */
    r._template_id_case =
        OPSCONDUCTOR__NOTIFICATION__V1__SEND_NOTIFICATION_REQUEST___TEMPLATE_ID__NOT_SET;
    const orpc_json_opts legacy_ed = {.legacy = 1, .emit_defaults = 1};
    char *out = enc_opts(NOTIF, &r.base, &legacy_ed);
    assert_null(strstr(out, "template_id"));
    free(out);
    r._template_id_case =
        OPSCONDUCTOR__NOTIFICATION__V1__SEND_NOTIFICATION_REQUEST___TEMPLATE_ID_TEMPLATE_ID;
    r.template_id = 0;
    out = enc_opts(NOTIF, &r.base, &legacy);
    assert_non_null(strstr(out, "\"template_id\":0}"));
    free(out);
    /* Slack, by proto name or legacy name or number. */
    static const char *const slack[] = {
        "{\"type\":\"slack\"}", "{\"type\":\"NOTIFICATION_TYPE_SLACK\"}",
        "{\"type\":2}", "{\"type\":\"2\"}"};
    for (size_t i = 0; i < 4; i++) {
        Opsconductor__Notification__V1__SendNotificationRequest *s =
            (void *)dec(NOTIF, slack[i]);
        assert_int_equal(s->type, 2);
        protobuf_c_message_free_unpacked(&s->base, NULL);
    }
    dec_err(NOTIF, "{\"type\":\"sms\"}",
            "$.type: unknown enum value \"sms\" of "
            "opsconductor.notification.v1.NotificationType",
            NULL);
    dec_err(NOTIF, "{\"template_id\":4.5}", "$.template_id: not an integer",
            NULL);
}

/* ---- numbers, bytes, enums ------------------------------------------------
 */

static void test_integers(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        int ok;
        int64_t want; /* of the field read back (signed view) */
    } cases[] = {
        {"{\"fInt32\":2147483647}", 1, 2147483647},
        {"{\"fInt32\":-2147483648}", 1, INT32_MIN},
        {"{\"fInt32\":2147483648}", 0, 0},
        {"{\"fInt32\":-2147483649}", 0, 0},
        {"{\"fInt32\":\"2147483647\"}", 1, 2147483647},
        {"{\"fInt32\":\"-0\"}", 1, 0},
        {"{\"fInt32\":-0.0}", 1, 0},
        {"{\"fInt32\":1e3}", 1, 1000},
        {"{\"fInt32\":1.0}", 1, 1},
        {"{\"fInt32\":12.5e1}", 1, 125},
        {"{\"fInt32\":\"1e2\"}", 1, 100},
        {"{\"fInt32\":\"1.50e1\"}", 1, 15},
        {"{\"fInt32\":\"100e-2\"}", 1, 1},
        {"{\"fInt32\":\"0e999999999\"}", 1, 0},
        {"{\"fInt32\":1.5}", 0, 0},
        {"{\"fInt32\":\"1.5\"}", 0, 0},
        {"{\"fInt32\":\"15e-1\"}", 0, 0},
        {"{\"fInt32\":\"1e-999999999\"}", 0, 0},
        {"{\"fInt32\":\"0x10\"}", 0, 0},
        {"{\"fInt32\":\" 1\"}", 0, 0},
        {"{\"fInt32\":\"1 \"}", 0, 0},
        {"{\"fInt32\":\"+1\"}", 0, 0},
        {"{\"fInt32\":\"01\"}", 0, 0},
        {"{\"fInt32\":\"\"}", 0, 0},
        {"{\"fInt32\":true}", 0, 0},
        {"{\"fInt32\":[1]}", 0, 0},
        {"{\"fInt32\":{}}", 0, 0},
        {"{\"fUint32\":4294967295}", 1, 4294967295LL},
        {"{\"fUint32\":4294967296}", 0, 0},
        {"{\"fUint32\":-1}", 0, 0},
        {"{\"fUint32\":\"-0\"}", 1, 0},
        {"{\"fInt64\":\"9223372036854775807\"}", 1, INT64_MAX},
        {"{\"fInt64\":\"-9223372036854775808\"}", 1, INT64_MIN},
        {"{\"fInt64\":9223372036854775807}", 1, INT64_MAX},
        {"{\"fInt64\":\"9223372036854775808\"}", 0, 0},
        {"{\"fInt64\":\"-9223372036854775809\"}", 0, 0},
        {"{\"fInt64\":\"9.223372036854775807e18\"}", 1, INT64_MAX},
        {"{\"fInt64\":\"99999999999999999999\"}", 0, 0},
        {"{\"fInt64\":99999999999999999999}", 0, 0},
        {"{\"fInt64\":1e19}", 0, 0},
        {"{\"fInt64\":1e18}", 1, 1000000000000000000LL},
        {"{\"fSint64\":\"-1\"}", 1, -1},
        {"{\"fSfixed64\":\"1e18\"}", 1, 1000000000000000000LL},
        {"{\"fUint64\":\"18446744073709551615\"}", 1, -1},
        {"{\"fUint64\":\"18446744073709551616\"}", 0, 0},
        {"{\"fUint64\":\"-1\"}", 0, 0},
        {"{\"fFixed64\":\"1.8446744073709551615e19\"}", 1, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ProtobufCMessage *m = NULL;
        orpc_error_detail d = {0};
        int rc = orpc_json_decode(&m, ALL, cases[i].json, strlen(cases[i].json),
                                  NULL, NULL, &d);
        if ((rc == 0) != cases[i].ok) {
            print_error("%s: %s\n", cases[i].json,
                        rc != 0 ? d.message : "accepted");
            fail();
        }
        if (rc == 0) {
            AllTypes *a = (AllTypes *)m;
            int64_t got = a->f_int32 != 0    ? a->f_int32
                          : a->f_uint32 != 0 ? (int64_t)a->f_uint32
                          : a->f_int64 != 0  ? a->f_int64
                          : a->f_sint64 != 0 ? a->f_sint64
                          : a->f_sfixed64 != 0
                              ? a->f_sfixed64
                              : (int64_t)(a->f_uint64 | a->f_fixed64);
            assert_true(got == cases[i].want);
            protobuf_c_message_free_unpacked(m, NULL);
        } else {
            assert_int_equal(rc, ORPC_EPARSE);
            assert_true(d.message[0] == '$');
        }
    }
    dec_err(ALL, "{\"fInt32\":2147483648}",
            "$.fInt32: integer out of range for int32", NULL);
    dec_err(ALL, "{\"rUint64\":[1,-1]}",
            "$.rUint64[1]: integer out of range for uint64", NULL);
    dec_err(ALL, "{\"fInt64\":99999999999999999999}",
            "$.fInt64: integer too large to be exact", NULL);
    dec_err(ALL, "{\"mInt32String\":{\"1.5\":\"x\"}}",
            "$.mInt32String[\"1.5\"]: invalid int32 map key", NULL);
    dec_err(ALL, "{\"mBoolString\":{\"1\":\"x\"}}",
            "$.mBoolString[\"1\"]: invalid bool map key", NULL);
    dec_err(ALL, "{\"mUint64Enum\":{\"-1\":1}}",
            "$.mUint64Enum[\"-1\"]: invalid uint64 map key", NULL);
}

static void test_floats(void **state)
{
    (void)state;
    AllTypes *m = (AllTypes *)dec(
        ALL, "{\"fFloat\":\"-Infinity\",\"fDouble\":\"NaN\","
             "\"rFloat\":[\"1.5\",3.4028235e38,-3.4028235e38,1e-50,7],"
             "\"rDouble\":[\"Infinity\",99999999999999999999,\"-2.5e-3\","
             "1e-400]}");
    assert_true(m->f_float < -3.4e38f); /* -Infinity */
    assert_true(m->f_double != m->f_double);
    assert_true(m->r_float[0] == 1.5f);
    assert_true(m->r_float[1] == 3.4028234663852886e38f);
    assert_true(m->r_float[3] == 0.0f);
    assert_true(m->r_float[4] == 7.0f);
    assert_true(m->r_double[1] == 1e20);
    assert_true(m->r_double[2] == -2.5e-3);
    assert_true(m->r_double[3] == 0.0);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    dec_err(ALL, "{\"fFloat\":3.5e38}",
            "$.fFloat: number out of range for "
            "float",
            NULL);
    dec_err(ALL, "{\"fFloat\":\"-1e39\"}", "$.fFloat: number out of range",
            NULL);
    dec_err(ALL, "{\"fDouble\":\"1e400\"}", "$.fDouble: number out of range",
            NULL);
    dec_err(ALL, "{\"fDouble\":1e400}", "$: real number overflow",
            "(line 1, column");
    dec_err(ALL, "{\"fDouble\":\"nan\"}", "$.fDouble: not a number", NULL);
    dec_err(ALL, "{\"fDouble\":\"inf\"}", "$.fDouble: not a number", NULL);
    dec_err(ALL, "{\"fDouble\":\"1.\"}", "$.fDouble: not a number", NULL);
    dec_err(ALL, "{\"fDouble\":\" 1\"}", "$.fDouble: not a number", NULL);
    dec_err(ALL, "{\"fDouble\":true}", "$.fDouble: expected a number", NULL);
    dec_err(ALL, "{\"fBool\":1}", "$.fBool: expected true or false", NULL);
    dec_err(ALL, "{\"fBool\":\"true\"}", "$.fBool: expected true or false",
            NULL);
}

/* What the fuzzer found (tests/fuzz/regressions): the sign of zero, map
 * keys spelt two ways, and 64-bit integers read as doubles. */
static void test_fuzz_findings(void **state)
{
    (void)state;
    /* -0.0 keeps its sign through JSON, in fields and in Values */
    assert_canonical(ALL, "{\"rDouble\":[-0.0,0]}", NULL);
    AllTypes *m = (AllTypes *)dec(ALL, "{\"rDouble\":[-0.0,-1e-400]}");
    assert_int_equal(m->n_r_double, 2);
    assert_true(m->r_double[0] == 0 && signbit(m->r_double[0]));
    assert_true(m->r_double[1] == 0 && signbit(m->r_double[1]));
    protobuf_c_message_free_unpacked(&m->base, NULL);
    assert_canonical(
        WKT, "{\"wDouble\":-0.0,\"st\":{\"z\":-0.0},\"rVal\":[-0.0]}", NULL);
    /* an integer map key has one spelling, so it cannot come twice */
    dec_err(ALL, "{\"mInt32String\":{\"1\":\"a\",\"1.0\":\"b\"}}",
            "$.mInt32String[\"1.0\"]: int32 map key not in canonical form "
            "(write \"1\")",
            NULL);
    dec_err(ALL, "{\"mInt32String\":{\"1e0\":\"a\"}}", "$.mInt32String",
            "not in canonical form");
    /* a document with a literal beyond 64 bits is read as doubles: a
     * 64-bit field then refuses what a double cannot hold exactly */
    orpc_json_opts lax = {.ignore_unknown = 1};
    const char *big =
        "{\"zz\":100000000000000000000,\"fInt64\":9007199254740993}";
    dec_err_opts(ALL, big, strlen(big), &lax,
                 "$.fInt64: integer too large to be exact", NULL);
    m = (AllTypes *)dec_opts(
        ALL, "{\"zz\":100000000000000000000,\"fInt64\":9007199254740991}",
        &lax);
    assert_true(m->f_int64 == 9007199254740991LL);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void test_bytes(void **state)
{
    (void)state;
    static const struct {
        const char *b64;
        const char *raw;
        size_t len;
    } ok[] = {
        {"", "", 0},
        {"AQID", "\x01\x02\x03", 3},
        {"AQI=", "\x01\x02", 2},
        {"AQI", "\x01\x02", 2},
        {"AQ==", "\x01", 1},
        {"AQ", "\x01", 1},
        {"+/8=", "\xfb\xff", 2},
        {"-_8=", "\xfb\xff", 2},
        {"-_8", "\xfb\xff", 2},
        {"+/+/", "\xfb\xff\xbf", 3},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char json[64];
        snprintf(json, sizeof json, "{\"fBytes\":\"%s\"}", ok[i].b64);
        AllTypes *m = (AllTypes *)dec(ALL, json);
        assert_int_equal(m->f_bytes.len, ok[i].len);
        if (ok[i].len > 0) {
            assert_memory_equal(m->f_bytes.data, ok[i].raw, ok[i].len);
        }
        protobuf_c_message_free_unpacked(&m->base, NULL);
    }
    static const char *const bad[] = {
        "A",     "AQ=",     "AQ===", "AQI==",    "AQID=",    "=",
        "==",    "A=QI",    "AR==",  "AQJ=",     "+_8=",     "-/8=",
        "AQ ID", "AQ\\nID", "AQ.D",  "AQID====", "\xc3\xa9",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char json[64];
        snprintf(json, sizeof json, "{\"rBytes\":[\"\",\"%s\"]}", bad[i]);
        dec_err(ALL, json, "$.rBytes[1]: invalid base64", NULL);
    }
    dec_err(ALL, "{\"fBytes\":7}", "$.fBytes: expected a base64 string", NULL);
}

static void test_enums(void **state)
{
    (void)state;
    AllTypes *m = (AllTypes *)dec(
        ALL, "{\"fEnum\":\"red\",\"rEnum\":[\"COLOR_RED\",\"green\",3,-5,"
             "\"2\"],\"mUint64Enum\":{\"1\":\"COLOR_BLUE\"},"
             "\"oEnum\":\"COLOR_UNSPECIFIED\"}");
    assert_int_equal(m->f_enum, 1);
    assert_int_equal(m->n_r_enum, 5);
    assert_int_equal(m->r_enum[1], 2);
    assert_true((int32_t)m->r_enum[3] == -5);
    assert_int_equal(m->r_enum[4], 2);
    assert_int_equal(m->m_uint64_enum[0]->value, 3);
    assert_int_equal(m->choice_case,
                     ORPC__TEST__JSON__ALL_TYPES__CHOICE_O_ENUM);
    const orpc_json_opts legacy = {.legacy = 1};
    assert_enc(ALL, &m->base, &legacy,
               "{\"f_enum\":\"red\",\"r_enum\":[\"red\",\"green\","
               "\"COLOR_BLUE\",-5,\"green\"],\"m_uint64_enum\":{\"1\":"
               "\"COLOR_BLUE\"},\"o_enum\":\"COLOR_UNSPECIFIED\"}");
    protobuf_c_message_free_unpacked(&m->base, NULL);
    dec_err(ALL, "{\"fEnum\":\"purple\"}",
            "$.fEnum: unknown enum value \"purple\" of orpc.test.json.Color",
            NULL);
    dec_err(ALL, "{\"fEnum\":\"color_red\"}", "$.fEnum: unknown enum value",
            NULL);
    dec_err(ALL, "{\"fEnum\":2147483648}",
            "$.fEnum: integer out of range for enum", NULL);
    dec_err(ALL, "{\"fEnum\":1.5}", "$.fEnum: not an integer", NULL);
    dec_err(ALL, "{\"fEnum\":true}", "$.fEnum: expected an enum", NULL);
    /* ignore_unknown skips unknown names: unset, dropped from lists/maps. */
    const orpc_json_opts ign = {.ignore_unknown = 1};
    m = (AllTypes *)dec_opts(
        ALL,
        "{\"fEnum\":\"purple\",\"rEnum\":[\"purple\",\"red\",\"x\"],"
        "\"mUint64Enum\":{\"1\":\"purple\",\"2\":\"red\"},"
        "\"oEnum\":\"purple\",\"oString\":\"s\"}",
        &ign);
    assert_int_equal(m->f_enum, 0);
    assert_int_equal(m->n_r_enum, 1);
    assert_int_equal(m->r_enum[0], 1);
    assert_int_equal(m->n_m_uint64_enum, 1);
    assert_true(m->m_uint64_enum[0]->key == 2);
    assert_int_equal(m->choice_case,
                     ORPC__TEST__JSON__ALL_TYPES__CHOICE_O_STRING);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

/* ---- structure: names, oneofs, nulls, unknown fields, depth ----------------
 */

static void test_structure_errors(void **state)
{
    (void)state;
    dec_err(ALL, "{\"fInt32\":1,\"f_int32\":2}",
            "$.f_int32: field \"f_int32\" given twice", NULL);
    dec_err(ALL, "{\"renamed\":1,\"customName\":2}",
            "$.customName: field \"renamed\" given twice", NULL);
    dec_err(ALL, "{\"oString\":\"a\",\"oInt64\":1}",
            "$.oInt64: oneof field set together with \"o_string\"", NULL);
    dec_err(ALL, "{\"oNested\":{},\"o_value\":null}",
            "$.o_value: oneof field set together with \"o_nested\"", NULL);
    /* A null member does not count; null is "unset" for others. */
    AllTypes *m = (AllTypes *)dec(
        ALL, "{\"oString\":null,\"oInt64\":\"3\",\"fString\":null,"
             "\"fNested\":null,\"rInt32\":null,\"mBoolString\":null,"
             "\"fEnum\":null}");
    assert_int_equal(m->choice_case,
                     ORPC__TEST__JSON__ALL_TYPES__CHOICE_O_INT64);
    assert_null(m->f_nested);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    m = (AllTypes *)dec(ALL, "{\"oValue\":null}");
    assert_int_equal(m->choice_case,
                     ORPC__TEST__JSON__ALL_TYPES__CHOICE_O_VALUE);
    assert_int_equal(m->o_value->kind_case,
                     GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
    assert_enc(ALL, &m->base, NULL, "{\"oValue\":null}");
    protobuf_c_message_free_unpacked(&m->base, NULL);
    dec_err(ALL, "{\"rInt32\":[1,null]}",
            "$.rInt32[1]: null is not allowed in a list", NULL);
    dec_err(ALL, "{\"rNested\":[{},null]}",
            "$.rNested[1]: null is not allowed in a list", NULL);
    dec_err(ALL, "{\"mStringInt32\":{\"a\":null}}",
            "$.mStringInt32[\"a\"]: null is not allowed as a map value", NULL);
    dec_err(ALL, "{\"nope\":1}", "$.nope: unknown field", NULL);
    dec_err(ALL, "{\"fNested\":{\"child\":{\"x y\":1}}}",
            "$.fNested.child[\"x y\"]: unknown field", NULL);
    dec_err(ALL, "{\"@type\":\"x\"}", "$[\"@type\"]: unknown field", NULL);
    dec_err(ALL, "{\"rNested\":[{},{\"c\":1}]}",
            "$.rNested[1].c: unknown field", NULL);
    dec_err(ALL, "{\"mInt64Nested\":{\"1\":{\"q\":1}}}",
            "$.mInt64Nested[\"1\"].q: unknown field", NULL);
    dec_err(ALL, "{\"mStringValue\":{\"a\\\"b\":{\"c\":[1,{\"d\":[1e400]}]}}}",
            "$: real number overflow", NULL);
    /* ignore_unknown */
    const orpc_json_opts ign = {.ignore_unknown = 1};
    m = (AllTypes *)dec_opts(ALL, "{\"nope\":{\"deep\":[1]},\"fInt32\":3}",
                             &ign);
    assert_int_equal(m->f_int32, 3);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    /* Wrong top-level types. */
    dec_err(ALL, "[]", "$: expected an object for orpc.test.json.AllTypes",
            NULL);
    dec_err(ALL, "null", "$: expected an object", NULL);
    dec_err(ALL, "1", "$: expected an object", NULL);
    dec_err(ALL, "\"x\"", "$: expected an object", NULL);
    dec_err(ALL, "", "$: ", "(line 1, column 0)");
    dec_err(ALL, "{} x", "$: end of file expected", "(line 1, column");
    dec_err(ALL, "{\"a\":", "$: ", "(line 1, column");
}

static void test_depth(void **state)
{
    (void)state;
    const orpc_json_opts d3 = {.max_depth = 3};
    ProtobufCMessage *m = dec_opts(ALL, "{\"fNested\":{\"child\":{}}}", &d3);
    protobuf_c_message_free_unpacked(m, NULL);
    dec_deep(ALL, LIT("{\"fNested\":{\"child\":{\"child\":{}}}}"), &d3,
             "$.fNested.child.child: nesting deeper than 3 levels", NULL);
    m = dec_opts(ALL, "{\"rNested\":[{}]}", &d3);
    protobuf_c_message_free_unpacked(m, NULL);
    dec_deep(ALL, LIT("{\"rNested\":[{\"child\":{}}]}"), &d3,
             "$.rNested[0].child: nesting deeper", NULL);
    dec_deep(ALL, LIT("{\"mStringValue\":{\"a\":[[]]}}"), &d3,
             "$.mStringValue[\"a\"][0]: nesting deeper", NULL);
    /* Default 64: 64 nested ListValues read, 65 do not. */
    char buf[300];
    for (int depth = 64; depth <= 65; depth++) {
        size_t n = 0;
        for (int i = 0; i < depth; i++) {
            buf[n++] = '[';
        }
        for (int i = 0; i < depth; i++) {
            buf[n++] = ']';
        }
        buf[n] = '\0';
        if (depth == 64) {
            assert_canonical(&google__protobuf__list_value__orpc_info, buf,
                             NULL);
        } else {
            dec_deep(&google__protobuf__list_value__orpc_info, buf, n, NULL,
                     "$[0][0][0]", "nesting deeper than 64 levels");
        }
    }
    /* Encoding refuses what it could not read back. */
    Nested chain[70];
    for (int i = 0; i < 70; i++) {
        Nested init = ORPC__TEST__JSON__NESTED__INIT;
        chain[i] = init;
        chain[i].child = i + 1 < 70 ? &chain[i + 1] : NULL;
    }
    char *out = NULL;
    orpc_error_detail d = {0};
    assert_int_equal(
        orpc_json_encode(&out, NULL, NESTED, &chain[0].base, NULL, &d),
        ORPC_ETOOBIG);
    assert_null(out);
    assert_int_equal(d.code, ORPC_ETOOBIG);
    assert_string_equal(d.message + strlen(d.message) -
                            strlen(".child.child: nesting deeper than 64 "
                                   "levels"),
                        ".child.child: nesting deeper than 64 levels");
    assert_memory_equal(d.message, "$....child.child.", 17); /* cut in front */
    const orpc_json_opts d100 = {.max_depth = 100};
    out = enc_opts(NESTED, &chain[0].base, &d100);
    ProtobufCMessage *back = dec_opts(NESTED, out, &d100);
    assert_same_message(&chain[0].base, back);
    protobuf_c_message_free_unpacked(back, NULL);
    free(out);
}

/* ---- hostile input --------------------------------------------------------
 */

static void test_hostile(void **state)
{
    (void)state;
    /* 10000 '[' and '{': jansson's own limit (2048) answers first. */
    size_t n = 10000;
    char *deep = malloc(n * 8 + 16);
    assert_non_null(deep);
    memset(deep, '[', n);
    dec_deep(&google__protobuf__value__orpc_info, deep, n, NULL,
             "$: maximum parsing depth reached", "(line 1, column");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(deep + k, "{\"a\":", 5);
        k += 5;
    }
    dec_deep(&google__protobuf__value__orpc_info, deep, k, NULL,
             "$: maximum parsing depth reached", NULL);
    /* 2000 levels that jansson reads: orpc's limit. */
    k = 0;
    memcpy(deep, "{\"fNested\":", 11);
    k = 11;
    for (size_t i = 0; i < 2000; i++) {
        memcpy(deep + k, "{\"child\":", 9);
        k += 9;
    }
    memcpy(deep + k, "1", 1);
    k++;
    memset(deep + k, '}', 2001);
    k += 2001;
    dec_deep(ALL, deep, k, NULL, "$....child.child.child",
             ".child: nesting deeper than 64 levels");
    free(deep);

    /* Invalid UTF-8, NUL, surrogates, control characters. */
    static const struct {
        const char *json;
        size_t len;
        const char *prefix;
    } bad[] = {
        {LIT("{\"fString\":\"\xff\"}"), "$: unable to decode byte 0xff"},
        {LIT("{\"fString\":\"\xc0\xaf\"}"), "$: unable to decode byte"},
        {LIT("{\"fString\":\"\xed\xa0\x80\"}"), "$: unable to decode byte"},
        {LIT("{\"fString\":\"\xf4\x90\x80\x80\"}"), "$: unable to decode byte"},
        {LIT("{\"fString\":\"a\\u0000b\"}"), "$: \\u0000 is not allowed"},
        {LIT("{\"fString\":\"a\0b\"}"), "$: "},
        {LIT("{\"f\\u0000\":1}"), "$: NUL byte in object key"},
        {LIT("{\"fString\":\"\\ud800\"}"), "$: invalid Unicode"},
        {LIT("{\"fString\":\"\x01\"}"), "$: control character"},
        {LIT("{\"\xff\":1}"), "$: unable to decode byte"},
        {LIT("{\"fInt32\":1,\"fInt32\":2}"), "$: duplicate object key"},
        {LIT("{\"fNested\":{\"a\":1,\"a\":2}}"), "$: duplicate object key"},
        {LIT("{\"mStringInt32\":{\"k\":1,\"k\":1}}"),
         "$: duplicate object key"},
        {LIT("{\"fInt32\":99999999999999999999}"), "$.fInt32: integer"},
        {LIT("{\"fDouble\":1e400}"), "$: real number overflow"},
        {LIT("{\"fInt32\":-}"), "$: "},
        {LIT("{\"fInt32\":NaN}"), "$: "},
        {LIT("{\"fInt32\":0x10}"), "$: "},
        {LIT("{'fInt32':1}"), "$: "},
        {LIT("{\"fInt32\":1,}"), "$: "},
        {LIT("\xef\xbb\xbf{}"), "$: "},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dec_err_opts(ALL, bad[i].json, bad[i].len, NULL, bad[i].prefix, NULL);
    }
    /* Error messages stay printable even when quoting hostile input. */
    ProtobufCMessage *m = NULL;
    orpc_error_detail d;
    assert_int_equal(orpc_json_decode(&m, ALL, "{\"fString\":\"\xff\xfe\"}", 16,
                                      NULL, NULL, &d),
                     ORPC_EPARSE);
    for (const char *p = d.message; *p != '\0'; p++) {
        assert_true(*p >= 0x20 && *p < 0x7f);
    }
    /* Long keys are cut in the path. */
    char big[400];
    memset(big, 'x', sizeof big);
    memcpy(big, "{\"", 2);
    big[1] = '"';
    memcpy(big + sizeof big - 5, "\":1}", 4);
    big[sizeof big - 1] = '\0';
    big[2] = '-';
    assert_int_equal(
        orpc_json_decode(&m, ALL, big, strlen(big), NULL, NULL, &d),
        ORPC_EPARSE);
    assert_true(strlen(d.message) < 150);
    assert_non_null(strstr(d.message, "...\"]: unknown field"));
}

/* Feeds every field of |info| (and of messages inside it, lists and maps)
 * values of every JSON type; whatever is refused must be refused with a
 * path that names the field. */
static void wrong_types(const orpc_message_info *info, const char *open,
                        const char *close, const char *inner_prefix)
{
    static const char *const values[] = {"{}",
                                         "[]",
                                         "[{}]",
                                         "[[]]",
                                         "\"x\"",
                                         "\"\"",
                                         "\"1\"",
                                         "1",
                                         "-1",
                                         "1.5",
                                         "1e30",
                                         "true",
                                         "false",
                                         "null",
                                         "{\"a\":1}",
                                         "[1,2]",
                                         "[null]",
                                         "\"NaN\"",
                                         "\"AQ==\"",
                                         "\"COLOR_RED\"",
                                         "{\"1\":{}}",
                                         "{\"true\":[]}",
                                         "\"1970-01-01T00:00:00Z\"",
                                         "\"1s\"",
                                         "[\"x\",1,{}]"};
    const ProtobufCMessageDescriptor *d = info->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
            char json[256];
            snprintf(json, sizeof json, "%s\"%s\":%s%s", open,
                     info->fields[i].json_name, values[v], close);
            ProtobufCMessage *m = NULL;
            orpc_error_detail det = {0};
            int rc = orpc_json_decode(&m, inner_prefix != NULL ? ALL : info,
                                      json, strlen(json), NULL, NULL, &det);
            if (rc == 0) {
                protobuf_c_message_free_unpacked(m, NULL);
            } else {
                char want[128];
                snprintf(want, sizeof want, "%s%s",
                         inner_prefix != NULL ? inner_prefix : "$.",
                         info->fields[i].json_name);
                if (rc != ORPC_EPARSE ||
                    strncmp(det.message, want, strlen(want)) != 0) {
                    print_error("%s: %s\n", json, det.message);
                    fail();
                }
                assert_null(m);
            }
        }
    }
}

static void test_wrong_types_everywhere(void **state)
{
    (void)state;
    wrong_types(ALL, "{", "}", NULL);
    wrong_types(WKT, "{", "}", NULL);
    wrong_types(NOTIF, "{", "}", NULL);
    wrong_types(NESTED, "{\"fNested\":{\"child\":{", "}}}", "$.fNested.child.");
    wrong_types(NESTED, "{\"rNested\":[{},{", "}]}", "$.rNested[1].");
    wrong_types(NESTED, "{\"mInt64Nested\":{\"7\":{", "}}}",
                "$.mInt64Nested[\"7\"].");
    wrong_types(NESTED, "{\"oNested\":{", "}}", "$.oNested.");
}

/* ---- memory ----------------------------------------------------------------
 */

static void test_allocator_and_oom(void **state)
{
    (void)state;
    static const struct {
        const orpc_message_info *info;
        const char *json;
    } docs[] = {{ALL, ALL_JSON}, {WKT, WKT_JSON}};
    for (size_t d = 0; d < 2; d++) {
        counting c = {-1, 0, 0};
        ProtobufCAllocator a = {c_alloc, c_free, &c};
        ProtobufCMessage *full = NULL;
        assert_int_equal(orpc_json_decode(&full, docs[d].info, docs[d].json,
                                          strlen(docs[d].json), NULL, &a, NULL),
                         0);
        size_t needed = c.calls;
        assert_true(needed > 10);
        for (long budget = 0; budget <= (long)needed; budget++) {
            counting cb = {budget, 0, 0};
            ProtobufCAllocator ab = {c_alloc, c_free, &cb};
            ProtobufCMessage *m = NULL;
            orpc_error_detail e = {0};
            int rc = orpc_json_decode(&m, docs[d].info, docs[d].json,
                                      strlen(docs[d].json), NULL, &ab, &e);
            if (budget < (long)needed) {
                assert_int_equal(rc, ORPC_ENOMEM);
                assert_int_equal(e.code, ORPC_ENOMEM);
                assert_string_equal(e.message, "out of memory decoding JSON");
                assert_null(m);
                assert_int_equal(cb.live, 0);
            } else {
                assert_int_equal(rc, 0);
                assert_same_message(full, m);
                protobuf_c_message_free_unpacked(m, &ab);
                assert_int_equal(cb.live, 0);
            }
        }
        protobuf_c_message_free_unpacked(full, &a);
        assert_int_equal(c.live, 0);
    }
    /* Errors half-way through free everything built so far. */
    static const char *const broken[] = {
        "{\"rString\":[\"a\",\"b\",1]}",
        "{\"rNested\":[{\"b\":\"x\"},{\"child\":{\"b\":\"y\",\"a\":\"z\"}}]}",
        "{\"mStringValue\":{\"a\":{\"b\":[\"c\",{\"d\":\"e\"}]},\"f\":"
        "{\"g\":1}},\"mInt32String\":{\"1\":\"x\",\"y\":\"z\"}}",
        "{\"fString\":\"s\",\"fBytes\":\"AQID\",\"oString\":\"o\","
        "\"oBytes\":\"AQ==\"}",
        "{\"mInt64Nested\":{\"1\":{\"b\":\"x\"},\"2\":{\"child\":7}}}",
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        counting c = {-1, 0, 0};
        ProtobufCAllocator a = {c_alloc, c_free, &c};
        ProtobufCMessage *m = NULL;
        assert_int_equal(orpc_json_decode(&m, ALL, broken[i], strlen(broken[i]),
                                          NULL, &a, NULL),
                         ORPC_EPARSE);
        assert_true(c.calls > 0);
        assert_int_equal(c.live, 0);
    }
    counting c = {-1, 0, 0};
    ProtobufCAllocator a = {c_alloc, c_free, &c};
    ProtobufCMessage *m = NULL;
    orpc_error_detail e = {0};
    assert_int_equal(
        orpc_json_decode(
            &m, WKT,
            LIT("{\"rAny\":[{\"@type\":\"t/orpc.test.json.Nested\",\"a\":1},"
                "{\"@type\":\"t/orpc.test.json.Nested\",\"b\":2}]}"),
            NULL, &a, &e),
        ORPC_EPARSE);
    assert_int_equal(e.code, ORPC_EPARSE);
    assert_string_equal(e.message, "$.rAny[1].b: expected a string");
    assert_int_equal(c.live, 0);
}

/* ---- API edges
 * --------------------------------------------------------------- */

static void test_api_edges(void **state)
{
    (void)state;
    char *out = (char *)&out;
    size_t len = 7;
    orpc_error_detail d = {0};
    AllTypes m = ORPC__TEST__JSON__ALL_TYPES__INIT;
    assert_int_equal(orpc_json_encode(&out, &len, NULL, &m.base, NULL, &d),
                     ORPC_EINVAL);
    assert_null(out);
    assert_int_equal(len, 0);
    assert_int_equal(d.code, ORPC_EINVAL);
    assert_non_null(strstr(d.message, "invalid arguments"));
    assert_int_equal(orpc_json_encode(&out, NULL, ALL, NULL, NULL, NULL),
                     ORPC_EINVAL);
    assert_int_equal(orpc_json_encode(NULL, NULL, ALL, &m.base, NULL, &d),
                     ORPC_EINVAL);
    assert_int_equal(orpc_json_encode(&out, NULL, WKT, &m.base, NULL, NULL),
                     ORPC_EINVAL); /* not of that type */
    m.f_string = "bad \xc3";
    enc_fails(ALL, &m.base, NULL, ORPC_EINVAL,
              "$.fString: invalid UTF-8 in a string");
    m.f_string = "";
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    Google__Protobuf__Duration du = GOOGLE__PROTOBUF__DURATION__INIT;
    WellKnown w = ORPC__TEST__JSON__WELL_KNOWN__INIT;
    w.ts = &ts;
    ts.seconds = 253402300800LL;
    enc_fails(WKT, &w.base, NULL, ORPC_EINVAL,
              "$.ts: Timestamp out of range (seconds 253402300800, nanos 0)");
    ts.seconds = 0;
    ts.nanos = -1;
    enc_fails(WKT, &w.base, NULL, ORPC_EINVAL, "$.ts: Timestamp out of range");
    w.ts = NULL;
    w.dur = &du;
    du.seconds = 1;
    du.nanos = -1;
    enc_fails(WKT, &w.base, NULL, ORPC_EINVAL,
              "$.dur: Duration out of range (seconds 1, nanos -1)");
    du.seconds = 315576000001LL;
    du.nanos = 0;
    enc_fails(WKT, &w.base, NULL, ORPC_EINVAL, "$.dur: Duration out of range");
    du.seconds = 0;
    du.nanos = 1000000000;
    enc_fails(WKT, &w.base, NULL, ORPC_EINVAL, "$.dur: Duration out of range");
    /* ... inside a list and a map too: the path has the index and key */
    w.dur = NULL;
    Google__Protobuf__Timestamp good = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    Google__Protobuf__Timestamp *tsv[2] = {&good, &ts};
    ts.nanos = -1;
    w.n_r_ts = 2;
    w.r_ts = tsv;
    enc_fails(WKT, &w.base, NULL, ORPC_EINVAL,
              "$.rTs[1]: Timestamp out of range");
    w.n_r_ts = 0;
    Orpc__Test__Json__WellKnown__MDurEntry de =
        ORPC__TEST__JSON__WELL_KNOWN__MDUR_ENTRY__INIT;
    Orpc__Test__Json__WellKnown__MDurEntry *dep = &de;
    de.key = "slow";
    de.value = &du;
    w.n_m_dur = 1;
    w.m_dur = &dep;
    enc_fails(WKT, &w.base, NULL, ORPC_EINVAL,
              "$.mDur[\"slow\"]: Duration out of range");
    w.n_m_dur = 0;
    /* Map string keys and Struct keys are checked too. */
    Orpc__Test__Json__AllTypes__MStringInt32Entry e =
        ORPC__TEST__JSON__ALL_TYPES__MSTRING_INT32_ENTRY__INIT;
    Orpc__Test__Json__AllTypes__MStringInt32Entry *ep = &e;
    AllTypes mm = ORPC__TEST__JSON__ALL_TYPES__INIT;
    e.key = "\xe2\x82";
    mm.n_m_string_int32 = 1;
    mm.m_string_int32 = &ep;
    enc_fails(ALL, &mm.base, NULL, ORPC_EINVAL,
              "$.mStringInt32[0]: map key is not UTF-8");
    e.key = "\xe2\x82\xac";
    assert_enc(ALL, &mm.base, NULL, "{\"mStringInt32\":{\"\xe2\x82\xac\":0}}");

    ProtobufCMessage *msg = (ProtobufCMessage *)&msg;
    memset(&d, 0, sizeof d);
    assert_int_equal(orpc_json_decode(&msg, NULL, "{}", 2, NULL, NULL, &d),
                     ORPC_EINVAL);
    assert_null(msg);
    assert_int_equal(d.code, ORPC_EINVAL);
    assert_non_null(strstr(d.message, "invalid arguments"));
    assert_int_equal(orpc_json_decode(&msg, ALL, NULL, 2, NULL, NULL, NULL),
                     ORPC_EINVAL);
    assert_int_equal(orpc_json_decode(NULL, ALL, "{}", 2, NULL, NULL, NULL),
                     ORPC_EINVAL);
    /* No JSON text at all is a parse error (EPARSE), not a bad argument. */
    assert_int_equal(orpc_json_decode(&msg, ALL, NULL, 0, NULL, NULL, NULL),
                     ORPC_EPARSE);
    /* Not NUL-terminated input: only |len| bytes are read. */
    memset(&d, 0, sizeof d);
    assert_int_equal(orpc_json_decode(&msg, ALL, "{\"fInt32\":5}garbage", 12,
                                      NULL, NULL, &d),
                     0);
    assert_int_equal(d.code, 0); /* untouched on success */
    assert_int_equal(((AllTypes *)msg)->f_int32, 5);
    protobuf_c_message_free_unpacked(msg, NULL);
}

/* The traits table: one row per ProtobufCType, sizes that are those of
 * protobuf-c's C values, integer ranges, and a harmless row for a type
 * value protobuf-c does not have. */
static void test_traits_table(void **state)
{
    (void)state;
    static const struct {
        ProtobufCType t;
        const char *name;
        size_t size;
        int is_signed;
        uint64_t max;
    } want[] = {
        {PROTOBUF_C_TYPE_INT32, "int32", sizeof(int32_t), 1, INT32_MAX},
        {PROTOBUF_C_TYPE_SINT32, "sint32", sizeof(int32_t), 1, INT32_MAX},
        {PROTOBUF_C_TYPE_SFIXED32, "sfixed32", sizeof(int32_t), 1, INT32_MAX},
        {PROTOBUF_C_TYPE_INT64, "int64", sizeof(int64_t), 1, INT64_MAX},
        {PROTOBUF_C_TYPE_SINT64, "sint64", sizeof(int64_t), 1, INT64_MAX},
        {PROTOBUF_C_TYPE_SFIXED64, "sfixed64", sizeof(int64_t), 1, INT64_MAX},
        {PROTOBUF_C_TYPE_UINT32, "uint32", sizeof(uint32_t), 0, UINT32_MAX},
        {PROTOBUF_C_TYPE_FIXED32, "fixed32", sizeof(uint32_t), 0, UINT32_MAX},
        {PROTOBUF_C_TYPE_UINT64, "uint64", sizeof(uint64_t), 0, UINT64_MAX},
        {PROTOBUF_C_TYPE_FIXED64, "fixed64", sizeof(uint64_t), 0, UINT64_MAX},
        {PROTOBUF_C_TYPE_FLOAT, "float", sizeof(float), 0, 0},
        {PROTOBUF_C_TYPE_DOUBLE, "double", sizeof(double), 0, 0},
        {PROTOBUF_C_TYPE_BOOL, "bool", sizeof(protobuf_c_boolean), 0, 0},
        {PROTOBUF_C_TYPE_ENUM, "enum", sizeof(int32_t), 1, INT32_MAX},
        {PROTOBUF_C_TYPE_STRING, "string", sizeof(char *), 0, 0},
        {PROTOBUF_C_TYPE_BYTES, "bytes", sizeof(ProtobufCBinaryData), 0, 0},
        {PROTOBUF_C_TYPE_MESSAGE, "message", sizeof(ProtobufCMessage *), 0, 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const orpc__json_traits *tr = orpc__json_traits_of(want[i].t);
        assert_string_equal(tr->name, want[i].name);
        assert_int_equal(tr->size, want[i].size);
        assert_int_equal(tr->is_signed, want[i].is_signed);
        assert_true(tr->max == want[i].max);
        assert_non_null(tr->ops);
        assert_non_null(tr->ops->encode);
        assert_non_null(tr->ops->parse);
        assert_non_null(tr->ops->text);
        assert_non_null(tr->ops->is_default);
        /* what owns memory can free it, and only that */
        assert_int_equal(tr->ops->release != NULL,
                         want[i].t == PROTOBUF_C_TYPE_STRING ||
                             want[i].t == PROTOBUF_C_TYPE_BYTES ||
                             want[i].t == PROTOBUF_C_TYPE_MESSAGE);
    }
    /* integer ranges through store_int: both ends, and one past */
    const orpc__json_traits *i32 = orpc__json_traits_of(PROTOBUF_C_TYPE_INT32);
    const orpc__json_traits *u64 = orpc__json_traits_of(PROTOBUF_C_TYPE_UINT64);
    const orpc__json_traits *s64 =
        orpc__json_traits_of(PROTOBUF_C_TYPE_SFIXED64);
    int32_t v32 = 0;
    uint64_t vu = 0;
    int64_t v64 = 0;
    assert_int_equal(orpc__json_store_int(i32, 1, 2147483648u, &v32), 0);
    assert_true(v32 == INT32_MIN);
    assert_int_equal(orpc__json_store_int(i32, 1, 2147483649u, &v32), -1);
    assert_int_equal(orpc__json_store_int(i32, 0, 2147483648u, &v32), -1);
    assert_int_equal(orpc__json_store_int(u64, 0, UINT64_MAX, &vu), 0);
    assert_true(vu == UINT64_MAX);
    assert_int_equal(orpc__json_store_int(u64, 1, 1, &vu), -1);
    assert_int_equal(orpc__json_store_int(u64, 1, 0, &vu), 0); /* -0 is 0 */
    assert_true(vu == 0);
    assert_int_equal(
        orpc__json_store_int(s64, 1, (uint64_t)INT64_MAX + 1, &v64), 0);
    assert_true(v64 == INT64_MIN);
    assert_int_equal(orpc__json_store_int(s64, 1, 5, &v64), 0);
    assert_true(v64 == -5);
    /* not an integer type: refused */
    double dv = 0;
    assert_int_equal(
        orpc__json_store_int(orpc__json_traits_of(PROTOBUF_C_TYPE_DOUBLE), 0, 1,
                             &dv),
        -1);
    /* a type value protobuf-c does not have */
    const orpc__json_traits *none = orpc__json_traits_of((ProtobufCType)99);
    assert_int_equal(none->kind, ORPC__JSON_NONE);
    assert_true(none->size > 0);
    const char *why = NULL;
    int32_t x = 0;
    assert_int_equal(none->ops->parse(NULL, NULL, "1", 1, &x, NULL, 1, &why),
                     ORPC__JSON_CV_BAD);
}

/* The fault is named by its JSON path however deep it is, and the reason
 * survives a path too long for the detail (the path is cut in front). */
static void test_error_paths(void **state)
{
    (void)state;
    dec_err(ALL, "{\"rEnum\":[\"COLOR_RED\",\"green\",\"GREN\"]}",
            "$.rEnum[2]: unknown enum value \"GREN\" of orpc.test.json.Color",
            NULL);
    dec_err(ALL, "{\"rNested\":[{},{\"child\":{\"a\":\"x\"}}]}",
            "$.rNested[1].child.a: not an integer for int32", NULL);
    dec_err(ALL, "{\"mInt64Nested\":{\"7\":{\"b\":false}}}",
            "$.mInt64Nested[\"7\"].b: expected a string", NULL);
    dec_err(WKT, "{\"ts\":\"x\"}", "$.ts: invalid timestamp \"x\"", NULL);
    dec_err(WKT, "{\"mDur\":{\"x\":\"1\"}}",
            "$.mDur[\"x\"]: invalid duration \"1\"", NULL);
    dec_err(ALL, "{\"fBytes\":\"AQ=\"}", "$.fBytes: invalid base64", NULL);
    dec_err(ALL, "{\"odd key\":1}", "$[\"odd key\"]: unknown field", NULL);
    const orpc_json_opts d4 = {.max_depth = 4};
    dec_deep(WKT, LIT("{\"st\":{\"a b\":{\"c\":[{\"d\":{}}]}}}"), &d4,
             "$.st[\"a b\"][\"c\"][0]: nesting deeper than 4 levels", NULL);
    /* A Struct 60 levels deep, refused at 50: the path is longer than the
     * detail holds, so it loses its front. */
    orpc__buf doc = {0};
    orpc__buf_puts(&doc, "{\"st\":");
    for (int i = 0; i < 60; i++) {
        orpc__buf_puts(&doc, "{\"level\":");
    }
    orpc__buf_puts(&doc, "{}");
    for (int i = 0; i < 61; i++) {
        orpc__buf_putc(&doc, '}');
    }
    assert_false(doc.failed);
    const orpc_json_opts d50 = {.max_depth = 50};
    ProtobufCMessage *m = (ProtobufCMessage *)&m;
    orpc_error_detail d = {0};
    assert_int_equal(
        orpc_json_decode(&m, WKT, orpc__buf_str(&doc), doc.len, &d50, NULL, &d),
        ORPC_ETOOBIG);
    assert_null(m);
    assert_int_equal(d.code, ORPC_ETOOBIG);
    assert_memory_equal(d.message, "$...[\"level\"][\"level\"]", 22);
    const char *tail = "[\"level\"]: nesting deeper than 50 levels";
    assert_true(strlen(d.message) > strlen(tail));
    assert_string_equal(d.message + strlen(d.message) - strlen(tail), tail);
    orpc__buf_free(&doc);
}

static void test_internal_json_value(void **state)
{
    (void)state;
    json_error_t err;
    json_t *v = json_loads("{\"fInt32\":1,\"rBool\":[true,1]}", 0, &err);
    assert_non_null(v);
    ProtobufCMessage *m = (ProtobufCMessage *)&m;
    orpc_error_detail d = {0};
    assert_int_equal(
        orpc__json_decode_value(&m, ALL, v, "$.body", NULL, NULL, &d),
        ORPC_EPARSE);
    assert_string_equal(d.message, "$.body.rBool[1]: expected true or false");
    assert_null(m);
    json_decref(v);
    v = json_loads("{\"fInt32\":1}", 0, &err);
    assert_int_equal(
        orpc__json_decode_value(&m, ALL, v, NULL, NULL, NULL, NULL), 0);
    json_t *out = NULL;
    const orpc_json_opts legacy = {.legacy = 1};
    assert_int_equal(orpc__json_encode_value(&out, ALL, m, &legacy, NULL), 0);
    assert_int_equal(json_integer_value(json_object_get(out, "f_int32")), 1);
    json_decref(out);
    json_decref(v);
    protobuf_c_message_free_unpacked(m, NULL);
    assert_int_equal(orpc__json_encode_value(&out, ALL, NULL, NULL, &d),
                     ORPC_EINVAL);
    assert_int_equal(d.code, ORPC_EINVAL);
    assert_null(out);
}

/* A type compiled without protoc-gen-orpc (or whose table does not fit its
 * descriptor) still maps: JSON names come from the field names the way
 * protoc derives them, enums by proto name, maps and WKTs by descriptor. */
static void test_without_tables(void **state)
{
    (void)state;
    const orpc_message_info bare = {
        .descriptor = &orpc__test__json__all_types__descriptor,
        .full_name = "orpc.test.json.AllTypes",
        .n_fields = orpc__test__json__all_types__descriptor.n_fields,
        .fields = NULL,
    };
    ProtobufCMessage *m = dec(ALL, ALL_JSON);
    char *out = enc_opts(&bare, m, NULL);
    /* Only the custom json_name is lost: it lives in the orpc table. */
    const char *custom = strstr(ALL_JSON, "\"customName\":42}");
    assert_non_null(custom);
    assert_memory_equal(out, ALL_JSON, (size_t)(custom - ALL_JSON));
    assert_string_equal(out + (custom - ALL_JSON), "\"renamed\":42}");
    ProtobufCMessage *back = dec(&bare, out);
    assert_same_message(m, back);
    protobuf_c_message_free_unpacked(back, NULL);
    /* Legacy spellings need the table too. */
    dec_err(&bare, "{\"fEnum\":\"red\"}", "$.fEnum: unknown enum value", NULL);
    dec_err(&bare, "{\"f_enum\":\"COLOR_RED\",\"fEnum\":null}",
            "$.fEnum: field \"f_enum\" given twice", NULL);
    free(out);
    protobuf_c_message_free_unpacked(m, NULL);
}

/* ---- scalars as URL text
 * ------------------------------------------------------ */

static const ProtobufCFieldDescriptor *field(const orpc_message_info *info,
                                             const char *name,
                                             const orpc_field_info **fi)
{
    int i = orpc_message_info_find(info, name);
    assert_true(i >= 0);
    *fi = &info->fields[i];
    return &info->descriptor->fields[i];
}

static void assert_text(const orpc_message_info *info, ProtobufCMessage *m,
                        const char *name, const orpc_json_opts *opts,
                        const char *want)
{
    const orpc_field_info *fi;
    const ProtobufCFieldDescriptor *f = field(info, name, &fi);
    char *out = NULL;
    assert_int_equal(
        orpc__json_scalar_text(f, fi, (char *)m + f->offset, opts, &out), 0);
    assert_string_equal(out, want);
    free(out);
}

static int parse_text(const orpc_message_info *info, ProtobufCMessage *m,
                      const char *name, const char *text, ProtobufCAllocator *a)
{
    const orpc_field_info *fi;
    const ProtobufCFieldDescriptor *f = field(info, name, &fi);
    return orpc__json_scalar_parse(f, fi, (char *)m + f->offset, text, a);
}

static void test_scalar_text_and_parse(void **state)
{
    (void)state;
    counting c = {-1, 0, 0};
    ProtobufCAllocator a = {c_alloc, c_free, &c};
    AllTypes *m = (AllTypes *)dec(ALL, ALL_JSON);
    const orpc_json_opts legacy = {.legacy = 1};
    assert_text(ALL, &m->base, "fInt32", NULL, "-2147483648");
    assert_text(ALL, &m->base, "fInt64", NULL, "-9223372036854775808");
    assert_text(ALL, &m->base, "fUint64", NULL, "18446744073709551615");
    assert_text(ALL, &m->base, "fFloat", NULL, "0.1");
    assert_text(ALL, &m->base, "fDouble", NULL, "0.3333333333333333");
    assert_text(ALL, &m->base, "fBool", NULL, "true");
    assert_text(ALL, &m->base, "fString", NULL,
                "h\xc3\xa9llo \"q\" \\ \n\t\x01 \xf0\x9f\x98\x80");
    assert_text(ALL, &m->base, "fBytes", NULL, "AP8Q");
    assert_text(ALL, &m->base, "fEnum", NULL, "COLOR_RED");
    assert_text(ALL, &m->base, "fEnum", &legacy, "red");
    assert_text(ALL, &m->base, "oString", NULL, "one");
    protobuf_c_message_free_unpacked(&m->base, NULL);

    /* Parse into a message built with |a|; every value replaces (and
     * frees) the previous one. */
    m = (AllTypes *)protobuf_c_message_unpack(
        &orpc__test__json__all_types__descriptor, &a, 0, (const uint8_t *)"");
    assert_non_null(m);
    assert_int_equal(parse_text(ALL, &m->base, "fInt64", "-42", &a), 0);
    assert_true(m->f_int64 == -42);
    assert_int_equal(parse_text(ALL, &m->base, "fUint32", "4294967295", &a), 0);
    assert_int_equal(parse_text(ALL, &m->base, "fUint32", "4294967296", &a),
                     ORPC_EINVAL);
    assert_int_equal(parse_text(ALL, &m->base, "fInt32", "1.5", &a),
                     ORPC_EINVAL);
    assert_int_equal(parse_text(ALL, &m->base, "fInt32", "", &a), ORPC_EINVAL);
    assert_int_equal(parse_text(ALL, &m->base, "fBool", "true", &a), 0);
    assert_true(m->f_bool);
    assert_int_equal(parse_text(ALL, &m->base, "fBool", "false", &a), 0);
    assert_false(m->f_bool);
    assert_int_equal(parse_text(ALL, &m->base, "fBool", "1", &a), ORPC_EINVAL);
    assert_int_equal(parse_text(ALL, &m->base, "fDouble", "-Infinity", &a), 0);
    assert_int_equal(parse_text(ALL, &m->base, "fFloat", "2.5e1", &a), 0);
    assert_true(m->f_float == 25.0f);
    assert_int_equal(parse_text(ALL, &m->base, "fString", "first", &a), 0);
    assert_int_equal(parse_text(ALL, &m->base, "fString", "second", &a), 0);
    assert_string_equal(m->f_string, "second");
    assert_int_equal(parse_text(ALL, &m->base, "fString", "\xff", &a),
                     ORPC_EINVAL);
    assert_int_equal(parse_text(ALL, &m->base, "fBytes", "-_8", &a), 0);
    assert_int_equal(parse_text(ALL, &m->base, "fBytes", "AQID", &a), 0);
    assert_int_equal(m->f_bytes.len, 3);
    assert_int_equal(parse_text(ALL, &m->base, "fBytes", "AQI*", &a),
                     ORPC_EINVAL);
    assert_int_equal(parse_text(ALL, &m->base, "fEnum", "green", &a), 0);
    assert_int_equal(m->f_enum, 2);
    assert_int_equal(parse_text(ALL, &m->base, "fEnum", "COLOR_BLUE", &a), 0);
    assert_int_equal(parse_text(ALL, &m->base, "fEnum", "17", &a), 0);
    assert_int_equal(m->f_enum, 17);
    assert_int_equal(parse_text(ALL, &m->base, "fEnum", "purple", &a),
                     ORPC_EINVAL);
    /* Oneof members set the case and release the member they replace. */
    assert_int_equal(parse_text(ALL, &m->base, "oString", "s1", &a), 0);
    assert_int_equal(m->choice_case,
                     ORPC__TEST__JSON__ALL_TYPES__CHOICE_O_STRING);
    assert_int_equal(parse_text(ALL, &m->base, "oString", "s2", &a), 0);
    assert_int_equal(parse_text(ALL, &m->base, "oBytes", "AQID", &a), 0);
    assert_int_equal(m->choice_case,
                     ORPC__TEST__JSON__ALL_TYPES__CHOICE_O_BYTES);
    assert_int_equal(parse_text(ALL, &m->base, "oInt64", "7", &a), 0);
    assert_int_equal(m->choice_case,
                     ORPC__TEST__JSON__ALL_TYPES__CHOICE_O_INT64);
    assert_true(m->o_int64 == 7);
    assert_int_equal(parse_text(ALL, &m->base, "optInt32", "0", &a), 0);
    assert_int_equal(m->_opt_int32_case,
                     ORPC__TEST__JSON__ALL_TYPES___OPT_INT32_OPT_INT32);
    /* Not scalars. */
    assert_int_equal(parse_text(ALL, &m->base, "fNested", "{}", &a),
                     ORPC_EINVAL);
    assert_int_equal(parse_text(ALL, &m->base, "rInt32", "1", &a), ORPC_EINVAL);
    char *out = NULL;
    const orpc_field_info *fi;
    const ProtobufCFieldDescriptor *f = field(ALL, "fNested", &fi);
    assert_int_equal(orpc__json_scalar_text(f, fi, &m->f_nested, NULL, &out),
                     ORPC_EINVAL);
    assert_null(out);
    /* One element of a repeated field (a repeated query parameter). */
    int32_t elems[2] = {5, -6};
    f = field(ALL, "rInt32", &fi);
    assert_int_equal(orpc__json_scalar_text(f, fi, &elems[1], NULL, &out), 0);
    assert_string_equal(out, "-6");
    free(out);
    Orpc__Test__Json__Color colors[1] = {ORPC__TEST__JSON__COLOR__COLOR_GREEN};
    f = field(ALL, "rEnum", &fi);
    assert_int_equal(orpc__json_scalar_text(f, fi, &colors[0], &legacy, &out),
                     0);
    assert_string_equal(out, "green");
    free(out);
    /* Text of what was parsed; bytes as URL-safe base64 with padding. */
    assert_int_equal(parse_text(ALL, &m->base, "fBytes", "+/8", &a), 0);
    assert_text(ALL, &m->base, "fBytes", NULL, "-_8=");
    assert_text(ALL, &m->base, "fDouble", NULL, "-Infinity");
    assert_text(ALL, &m->base, "fEnum", NULL, "17");
    assert_text(ALL, &m->base, "oInt64", NULL, "7");
    /* Everything parsed was allocated with |a| and is released with it. */
    AllTypes *copy = (AllTypes *)dec(ALL, "{}");
    protobuf_c_message_free_unpacked(&copy->base, NULL);
    protobuf_c_message_free_unpacked(&m->base, &a);
    assert_int_equal(c.live, 0);
    /* Out of memory while parsing a string or bytes. */
    counting none = {0, 0, 0};
    ProtobufCAllocator an = {c_alloc, c_free, &none};
    AllTypes z = ORPC__TEST__JSON__ALL_TYPES__INIT;
    assert_int_equal(parse_text(ALL, &z.base, "fString", "x", &an),
                     ORPC_ENOMEM);
    assert_int_equal(parse_text(ALL, &z.base, "fBytes", "AQID", &an),
                     ORPC_ENOMEM);
}

/* proto2 presence (has_ flags, NULL strings), required fields, and map
 * entries or list elements without a value. */
static void test_proto2_and_missing_values(void **state)
{
    (void)state;
    const orpc_message_info *fdp =
        &google__protobuf__field_descriptor_proto__orpc_info;
    Google__Protobuf__FieldDescriptorProto *f = (void *)dec(
        fdp, "{\"name\":\"\",\"number\":0,\"label\":\"LABEL_OPTIONAL\","
             "\"proto3Optional\":false,\"options\":{}}");
    assert_non_null(f->name);
    assert_true(f->has_number && f->has_label && f->has_proto3_optional);
    assert_false(f->has_type);
    assert_null(f->type_name);
    /* Present means present, default value or not. */
    assert_enc(fdp, &f->base, NULL,
               "{\"name\":\"\",\"number\":0,\"label\":\"LABEL_OPTIONAL\","
               "\"options\":{},\"proto3Optional\":false}");
    const orpc_json_opts ed = {.emit_defaults = 1};
    assert_enc(fdp, &f->base, &ed,
               "{\"name\":\"\",\"number\":0,\"label\":\"LABEL_OPTIONAL\","
               "\"options\":{\"uninterpretedOption\":[]},"
               "\"proto3Optional\":false}");
    /* URL text into a proto2 field sets its has_ flag. */
    const orpc_field_info *fi;
    const ProtobufCFieldDescriptor *fd = field(fdp, "oneofIndex", &fi);
    assert_int_equal(
        orpc__json_scalar_parse(fd, fi, &f->oneof_index, "3", NULL), 0);
    assert_true(f->has_oneof_index);
    assert_int_equal(f->oneof_index, 3);
    fd = field(fdp, "typeName", &fi);
    assert_int_equal(
        orpc__json_scalar_parse(fd, fi, &f->type_name, ".a.B", NULL), 0);
    assert_string_equal(f->type_name, ".a.B");
    protobuf_c_message_free_unpacked(&f->base, NULL);
    /* Required fields must be there (those protobuf-c can tell: strings and
     * messages; a required scalar has no presence in protobuf-c). */
    const orpc_message_info *np =
        &google__protobuf__uninterpreted_option__name_part__orpc_info;
    dec_err(np, "{\"isExtension\":true}", "$: a required field is missing",
            NULL);
    ProtobufCMessage *ok =
        dec(np, "{\"namePart\":\"x\",\"isExtension\":false}");
    assert_enc(np, ok, NULL, "{\"namePart\":\"x\",\"isExtension\":false}");
    protobuf_c_message_free_unpacked(ok, NULL);

    /* A map entry without its message value prints the default message;
     * without its Value, null. */
    Orpc__Test__Json__AllTypes__MInt64NestedEntry e1 =
        ORPC__TEST__JSON__ALL_TYPES__MINT64_NESTED_ENTRY__INIT;
    Orpc__Test__Json__AllTypes__MStringValueEntry e2 =
        ORPC__TEST__JSON__ALL_TYPES__MSTRING_VALUE_ENTRY__INIT;
    Orpc__Test__Json__AllTypes__MInt64NestedEntry *p1 = &e1;
    Orpc__Test__Json__AllTypes__MStringValueEntry *p2 = &e2;
    AllTypes m = ORPC__TEST__JSON__ALL_TYPES__INIT;
    e1.key = 5;
    e2.key = "v";
    m.n_m_int64_nested = 1;
    m.m_int64_nested = &p1;
    m.n_m_string_value = 1;
    m.m_string_value = &p2;
    assert_enc(ALL, &m.base, NULL,
               "{\"mInt64Nested\":{\"5\":{}},\"mStringValue\":{\"v\":null}}");
    /* A list element or map entry that is not there is an error. */
    m.n_m_string_value = 0;
    m.m_int64_nested = NULL;
    enc_fails(ALL, &m.base, NULL, ORPC_EINVAL,
              "$.mInt64Nested[0]: map entry missing");
    m.n_m_int64_nested = 0;
    m.n_r_int32 = 2;
    enc_fails(ALL, &m.base, NULL, ORPC_EINVAL,
              "$.rInt32: 2 elements counted, none stored");
    /* Depth limits of Struct and ListValue on output. */
    Google__Protobuf__Value v[3];
    Google__Protobuf__ListValue l[3];
    Google__Protobuf__Value *vp[3];
    for (int i = 0; i < 3; i++) {
        Google__Protobuf__Value vi = GOOGLE__PROTOBUF__VALUE__INIT;
        Google__Protobuf__ListValue li = GOOGLE__PROTOBUF__LIST_VALUE__INIT;
        v[i] = vi;
        l[i] = li;
        vp[i] = &v[i];
    }
    for (int i = 0; i < 2; i++) {
        v[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
        v[i].list_value = &l[i];
        l[i].n_values = 1;
        l[i].values = &vp[i + 1];
    }
    const orpc_json_opts d2 = {.max_depth = 2};
    assert_enc(&google__protobuf__value__orpc_info, &v[0].base, &d2,
               "[[null]]");
    const orpc_json_opts d1 = {.max_depth = 1};
    enc_fails(&google__protobuf__value__orpc_info, &v[0].base, &d1,
              ORPC_ETOOBIG, "$[0]: nesting deeper than 1 levels");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_types_canonical),
        cmocka_unit_test(test_all_types_values),
        cmocka_unit_test(test_proto_names_and_inputs),
        cmocka_unit_test(test_emit_defaults),
        cmocka_unit_test(test_encode_from_c),
        cmocka_unit_test(test_shortest_reals),
        cmocka_unit_test(test_project_messages),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_wrappers_struct_value),
        cmocka_unit_test(test_field_mask),
        cmocka_unit_test(test_any),
        cmocka_unit_test(test_legacy_notification),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_fuzz_findings),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_enums),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_wrong_types_everywhere),
        cmocka_unit_test(test_allocator_and_oom),
        cmocka_unit_test(test_api_edges),
        cmocka_unit_test(test_traits_table),
        cmocka_unit_test(test_error_paths),
        cmocka_unit_test(test_internal_json_value),
        cmocka_unit_test(test_without_tables),
        cmocka_unit_test(test_proto2_and_missing_values),
        cmocka_unit_test(test_scalar_text_and_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
