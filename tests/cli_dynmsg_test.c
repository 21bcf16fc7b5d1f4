/*
 * cli_dynmsg_test.c — the `orpc` command's dynamic codec (tools/dynmsg.c,
 * tools/wkt.c) and descriptor pool (tools/descpool.c) against protobuf-c
 * and orpc's compiled JSON mapping (compat), on the messages of
 * tests/protos/json_types.proto:
 *
 *   - the bytes the dynamic encoder writes for a JSON request are the
 *     message compat's orpc_json_decode makes of the same JSON (both
 *     unpacked by protobuf-c and packed again, to compare one spelling);
 *   - the dynamic decoder reads protobuf-c's bytes back to JSON equal to
 *     compat's orpc_json_encode of the message;
 *   - the raw message packs back to the bytes it was made from;
 *   - hostile input: nesting past the bound both ways, truncated and
 *     random bytes (no crash, no leak: the asan preset runs this), a pool
 *     that refuses a file over its byte bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <orpc/compat/json.h>

#include "json_types.orpc.h"
#include "tools/descpool.h"
#include "tools/dynmsg.h"

#define ALL "orpc.test.json.AllTypes"
#define WK "orpc.test.json.WellKnown"

/* Adds |f| and its imports, transitively, to |p|. */
static void add_file(orpc__dpool *p, const orpc_file_desc *f)
{
    char err[256];
    for (size_t i = 0; i < f->n_dependencies; i++)
        add_file(p, f->dependencies[i]);
    assert_non_null(f->descriptor);
    assert_int_equal(orpc__dpool_add_file(p, f->descriptor, f->descriptor_size,
                                          err, sizeof err),
                     0);
}

static int setup(void **state)
{
    orpc__dpool *p;
    assert_int_equal(orpc__dpool_new(&p), 0);
    add_file(p, &json_types_proto__orpc_file);
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    orpc__dpool_free(*state);
    return 0;
}

/* protobuf-c's canonical bytes of |data| read as |desc|. */
static void canonical(const ProtobufCMessageDescriptor *desc,
                      const uint8_t *data, size_t len, orpc__buf *out)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, data);
    assert_non_null(m);
    size_t n = protobuf_c_message_get_packed_size(m);
    assert_int_equal(orpc__buf_reserve(out, n), 0);
    out->len = protobuf_c_message_pack(m, out->data);
    protobuf_c_message_free_unpacked(m, NULL);
}

static const char *const requests[] = {
    "{\"fInt32\": -5, \"fInt64\": \"-9000000000\", \"fUint32\": 4000000000,"
    " \"fUint64\": \"18446744073709551615\", \"fSint32\": -7, \"fSint64\":"
    " \"-9\", \"fFixed32\": 7, \"fFixed64\": \"8\", \"fSfixed32\": -3,"
    " \"fSfixed64\": \"-4\", \"fFloat\": 0.1, \"fDouble\": 1e+100, \"fBool\":"
    " true, \"fString\": \"h\\u00e9\", \"fBytes\": \"AQID/w==\", \"fEnum\":"
    " \"COLOR_GREEN\", \"fNested\": {\"a\": 1, \"child\": {\"b\": \"x\"}}}",
    "{\"rInt32\": [1, -2], \"rInt64\": [\"5\"], \"rSint64\": [\"-1\"],"
    " \"rFixed64\": [\"3\"], \"rFloat\": [1.5, -0.25], \"rDouble\": [2.5],"
    " \"rBool\": [true, false], \"rString\": [\"a\", \"\"], \"rBytes\":"
    " [\"AA==\"], \"rEnum\": [\"COLOR_RED\", \"COLOR_BLUE\"], \"rNested\":"
    " [{\"a\": 1}, {}]}",
    "{\"mStringInt32\": {\"k\": 3}, \"mInt32String\": {\"-1\": \"n\"},"
    " \"mInt64Nested\": {\"5\": {\"a\": 7}}, \"mUint32Double\": {\"1\": 0.5},"
    " \"mUint64Enum\": {\"2\": \"COLOR_RED\"}, \"mSint32Bytes\": {\"-3\":"
    " \"AQ==\"}, \"mSint64Bool\": {\"4\": true}, \"mFixed32Int64\": {\"6\":"
    " \"-6\"}, \"mFixed64Uint64\": {\"7\": \"7\"}, \"mSfixed32Float\":"
    " {\"-8\": 1.25}, \"mSfixed64String\": {\"-9\": \"s\"}, \"mBoolString\":"
    " {\"true\": \"t\"}, \"oNested\": {\"b\": \"one\"}, \"optInt32\": 0,"
    " \"customName\": 4}",
    ("{\"mStringValue\": {\"a\": [1, \"x\", null, {\"b\": false}]},"
     " \"oValue\": {\"k\": 1}}"),
};

/* Encodes |json| as |type| with the dynamic encoder and with compat, and
 * checks that protobuf-c reads both to the same message; then decodes
 * compat's bytes with the dynamic decoder into |*text| (the caller frees
 * it) and compat's own JSON of the message into |*reftext|. */
static void against_compat(orpc__dpool *p, const char *type,
                           const orpc_message_info *info, const char *json,
                           char **text, char **reftext)
{
    char err[512] = "";
    json_t *in = json_loads(json, 0, NULL);
    assert_non_null(in);
    orpc__buf mine = {0}, a = {0}, b = {0};
    if (orpc__dyn_encode(p, type, in, &mine, err, sizeof err) != 0)
        fail_msg("encode %s: %s", json, err);
    json_decref(in);
    ProtobufCMessage *ref = NULL;
    orpc_error_detail d;
    assert_int_equal(
        orpc_json_decode(&ref, info, json, strlen(json), NULL, NULL, &d), 0);
    size_t n = protobuf_c_message_get_packed_size(ref);
    uint8_t *refbytes = malloc(n + 1);
    protobuf_c_message_pack(ref, refbytes);
    canonical(info->descriptor, mine.data, mine.len, &a);
    canonical(info->descriptor, refbytes, n, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    json_t *got = orpc__dyn_decode(p, type, refbytes, n, err, sizeof err);
    if (got == NULL)
        fail_msg("decode %s: %s", json, err);
    *text = orpc__dyn_dumps(got);
    assert_int_equal(orpc_json_encode(reftext, NULL, info, ref, NULL, NULL), 0);
    json_decref(got);
    free(refbytes);
    protobuf_c_message_free_unpacked(ref, NULL);
    orpc__buf_free(&mine);
    orpc__buf_free(&a);
    orpc__buf_free(&b);
}

static void test_encode_matches_compat(void **state)
{
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        char *text, *reftext;
        against_compat(*state, ALL, &orpc__test__json__all_types__orpc_info,
                       requests[i], &text, &reftext);
        json_t *x = json_loads(text, 0, NULL),
               *y = json_loads(reftext, 0, NULL);
        if (!json_equal(x, y))
            fail_msg("request %zu:\n mine %s\n compat %s", i, text, reftext);
        json_decref(x);
        json_decref(y);
        free(text);
        free(reftext);
    }
}

static void test_well_known_matches_compat(void **state)
{
    const char *req =
        "{\"ts\": \"2024-02-29T23:59:59.500Z\", \"dur\": \"-1.000000001s\","
        " \"wDouble\": 1.5, \"wInt64\": \"-5\", \"wUint32\": 0, \"wBool\":"
        " false, \"wString\": \"s\", \"wBytes\": \"AQ==\", \"st\": {\"a\": 1,"
        " \"b\": [true, null]}, \"val\": \"v\", \"lv\": [{}, []], \"fm\":"
        " \"fooBar,a.bC\", \"empty\": {}, \"any\": {\"@type\":"
        " \"type.googleapis.com/orpc.test.json.Nested\", \"a\": 1, \"child\":"
        " {\"b\": \"x\"}}, \"rTs\": [\"1970-01-01T00:00:00Z\"], \"rAny\":"
        " [{\"@type\": \"type.googleapis.com/google.protobuf.Duration\","
        " \"value\": \"1.500s\"}, {\"@type\": \"t/google.protobuf.Struct\","
        " \"value\": {\"k\": [1]}}], \"mDur\": {\"x\": \"3s\"}}";
    char *text, *reftext;
    against_compat(*state, WK, &orpc__test__json__well_known__orpc_info, req,
                   &text, &reftext);
    /* as text, the request's own spelling: a Value's number is a double,
     * 1 prints as 1 */
    json_t *in = json_loads(req, 0, NULL);
    char *want = orpc__dyn_dumps(in);
    if (strcmp(text, want) != 0)
        fail_msg("got %s\nwant %s", text, want);
    json_decref(in);
    free(want);
    free(text);
    free(reftext);
}

static void test_raw_round_trip(void **state)
{
    (void)state;
    static const uint8_t bytes[] = {
        0x08, 0x96, 0x01, 0x12, 0x03, 'a', 'b', 'c', 0x1d, 1, 2,    3,
        4,    0x21, 1,    2,    3,    4,   5,   6,   7,    8, 0x08, 0x01};
    ProtobufCMessage *m = orpc__raw_wrap(bytes, sizeof bytes);
    assert_non_null(m);
    orpc__buf out = {0};
    assert_int_equal(orpc__raw_bytes(m, &out), 0);
    assert_int_equal(out.len, sizeof bytes);
    assert_memory_equal(out.data, bytes, sizeof bytes);
    orpc__buf_free(&out);
    protobuf_c_message_free_unpacked(m, NULL);
    static const uint8_t bad[] = {0x12, 0x05, 'a'}; /* length past the end */
    assert_null(orpc__raw_wrap(bad, sizeof bad));
}

static void test_depth_bounds(void **state)
{
    orpc__dpool *p = *state;
    char err[512] = "";
    /* JSON: fNested, then child 100 deep */
    orpc__buf text = {0};
    orpc__buf_puts(&text, "{\"fNested\":");
    for (int i = 0; i < 100; i++)
        orpc__buf_puts(&text, "{\"child\":");
    orpc__buf_puts(&text, "{}");
    for (int i = 0; i < 101; i++)
        orpc__buf_putc(&text, '}');
    json_t *in = json_loads((char *)text.data, 0, NULL);
    assert_non_null(in);
    orpc__buf out = {0};
    assert_int_equal(orpc__dyn_encode(p, ALL, in, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "nested too deep"));
    orpc__buf_free(&out);
    json_decref(in);
    orpc__buf_free(&text);
    /* wire: Nested.child (3) nested 100 deep, built inside out */
    orpc__buf msg = {0};
    for (int i = 0; i < 100; i++) {
        orpc__buf next = {0};
        uint8_t hdr[4] = {0x1a}, k = 1;
        size_t len = msg.len;
        do {
            hdr[k++] = (uint8_t)((len & 0x7f) | (len > 0x7f ? 0x80 : 0));
            len >>= 7;
        } while (len);
        orpc__buf_append(&next, hdr, k);
        orpc__buf_append(&next, msg.data, msg.len);
        orpc__buf_free(&msg);
        msg = next;
    }
    assert_false(msg.failed);
    json_t *got = orpc__dyn_decode(p, "orpc.test.json.Nested", msg.data,
                                   msg.len, err, sizeof err);
    assert_null(got);
    assert_non_null(strstr(err, "nested too deep"));
    orpc__buf_free(&msg);
}

static void test_hostile_bytes(void **state)
{
    orpc__dpool *p = *state;
    char err[512];
    uint8_t buf[64];
    unsigned seed = 12345;
    int parsed = 0;
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(round % (int)sizeof buf);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = (uint8_t)(seed >> 16);
        }
        json_t *v =
            orpc__dyn_decode(p, round & 1 ? ALL : WK, buf, n, err, sizeof err);
        if (v) {
            parsed++;
            char *t = orpc__dyn_dumps(v);
            assert_non_null(t);
            free(t);
        }
        json_decref(v);
    }
    assert_true(parsed > 0); /* some random bytes are valid messages */
    /* a valid message cut anywhere: never a crash, an error or a message */
    static const uint8_t whole[] = {0x08, 0x96, 0x01, 0x72, 0x03, 'a', 'b',
                                    'c',  0x8a, 0x01, 0x02, 0x08, 0x05};
    for (size_t cut = 0; cut < sizeof whole; cut++) {
        json_t *v = orpc__dyn_decode(p, ALL, whole, cut, err, sizeof err);
        json_decref(v);
    }
    json_t *v = orpc__dyn_decode(p, ALL, whole, sizeof whole, err, sizeof err);
    assert_non_null(v);
    assert_int_equal(json_integer_value(json_object_get(v, "fInt32")), 150);
    assert_string_equal(json_string_value(json_object_get(v, "fString")),
                        "abc");
    json_decref(v);
}

static void test_pool_bounds(void **state)
{
    (void)state;
    orpc__dpool *p;
    char err[256];
    assert_int_equal(orpc__dpool_new(&p), 0);
    uint8_t *big = calloc(1, ORPC__DPOOL_MAX_BYTES + 1);
    assert_int_equal(orpc__dpool_add_file(p, big, ORPC__DPOOL_MAX_BYTES + 1,
                                          err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "limit"));
    free(big);
    static const uint8_t junk[] = {0xff, 0xff};
    assert_int_equal(orpc__dpool_add_set(p, junk, sizeof junk, err, sizeof err),
                     -1);
    assert_int_equal(orpc__dpool_n_files(p), 0);
    orpc__dpool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_encode_matches_compat, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_well_known_matches_compat, setup,
                                        teardown),
        cmocka_unit_test(test_raw_round_trip),
        cmocka_unit_test_setup_teardown(test_depth_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_bytes, setup, teardown),
        cmocka_unit_test(test_pool_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
