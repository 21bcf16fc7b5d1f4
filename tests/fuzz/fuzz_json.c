/*
 * fuzz_json.c — libFuzzer target for the proto3 JSON decoder
 * (orpc_json_decode, orpc/compat/json.h) over messages that between them
 * hold every field kind: tests/protos/json_types.proto (every scalar,
 * repeated, map key kind, oneof, a recursive message, every well-known
 * type), grpc.testing, the OpsConductor requests and replies, proto2's
 * descriptor.proto, and each well-known type as the root.
 *
 * Input layout:
 *   byte 0   the message type: TYPES[byte % N_TYPES]
 *   byte 1   options: bit 0 legacy, bit 1 ignore_unknown, bit 2
 *            emit_defaults, bit 3 proto_names, bits 4-5 max_depth
 *            (0: the default 64, then 3, 16, 100)
 *   rest     the JSON text (at most MAX_JSON bytes; longer inputs are
 *            skipped)
 *
 * Checked beyond "no crash, no leak, no UB":
 *   - the result is 0, ORPC_EPARSE or ORPC_ETOOBIG; an error leaves |*out|
 *     NULL and fills the detail with its code and a message that starts
 *     with the JSON path ("$") and is valid UTF-8 without control
 *     characters (it names input keys, escaped);
 *   - every allocation of the message goes through the caller's allocator
 *     and is given back to it (a tagged allocator; live count 0 after
 *     protobuf_c_message_free_unpacked());
 *   - a decoded message is of the requested type, passes
 *     protobuf_c_message_check(), packs to its packed size, and unpacks and
 *     packs again to the same bytes;
 *   - round trip: it encodes (orpc_json_encode) without error with the
 *     input's options and with the other profile (legacy, emit_defaults and
 *     proto_names flipped), to valid UTF-8 without NULs; each text decodes
 *     again without ignore_unknown ("what orpc writes it can read") and
 *     packs to the same bytes as the first message; encoding that second
 *     message gives the same text (the encoding is a fixed point);
 *   - with ignore_unknown, an unknown member holding an integer beyond 64
 *     bits, put first in the top-level object, changes nothing (such an
 *     integer switches the decoder to reading every number as a double).
 *
 * Built with -DORPC_FUZZ_STANDALONE it has a main() (standalone.h) that
 * runs the target over the files named on the command line, or over a fixed
 * set of generated inputs (fixed seed) when there are none: a regression
 * test.
 * "-write-seeds DIR" also saves those inputs in DIR, a seed corpus for
 * libFuzzer (which rarely finds, say, a valid Any with its type URL on its
 * own).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include <orpc/compat/json.h>
#include <orpc/error.h>

#include "fuzz.h"
#include "google/protobuf/any.orpc.h"
#include "google/protobuf/descriptor.orpc.h"
#include "google/protobuf/duration.orpc.h"
#include "google/protobuf/empty.orpc.h"
#include "google/protobuf/field_mask.orpc.h"
#include "google/protobuf/struct.orpc.h"
#include "google/protobuf/timestamp.orpc.h"
#include "google/protobuf/wrappers.orpc.h"
#include "google/rpc/status.orpc.h"
#include "grpc/testing/messages.orpc.h"
#include "json_canonical.h"
#include "json_types.orpc.h"
#include "opsconductor/auth/v1/auth.orpc.h"
#include "opsconductor/credentials/v1/credentials.orpc.h"
#include "opsconductor/jobs/v1/jobs.orpc.h"
#include "opsconductor/notification/v1/notification.orpc.h"
#include "opsconductor/user/v1/user.orpc.h"

#define MAX_JSON (64 * 1024)

/* The message types, by the first input byte.  The generator below refers
 * to the first ones by these indexes. */
enum {
    T_ALL,
    T_WKT,
    T_NESTED,
    T_NOTIF,
    T_SIMPLE_REQ,
    T_STREAM_REQ,
    T_JOB_EVENT,
    T_LOGIN_RESP,
    T_CREDS_RESP,
    T_STRUCT,
    T_VALUE,
    T_LIST_VALUE,
    T_TIMESTAMP,
    T_DURATION,
    T_FIELD_MASK,
    T_ANY,
    T_EMPTY,
    T_DOUBLE,
    T_FLOAT,
    T_INT64,
    T_UINT64,
    T_INT32,
    T_UINT32,
    T_BOOL,
    T_STRING,
    T_BYTES,
    T_FILE_DESC
};

static const orpc_message_info *const TYPES[] = {
    [T_ALL] = &orpc__test__json__all_types__orpc_info,
    [T_WKT] = &orpc__test__json__well_known__orpc_info,
    [T_NESTED] = &orpc__test__json__nested__orpc_info,
    [T_NOTIF] =
        &opsconductor__notification__v1__send_notification_request__orpc_info,
    [T_SIMPLE_REQ] = &grpc__testing__simple_request__orpc_info,
    [T_STREAM_REQ] = &grpc__testing__streaming_output_call_request__orpc_info,
    [T_JOB_EVENT] = &opsconductor__jobs__v1__job_event__orpc_info,
    [T_LOGIN_RESP] = &opsconductor__auth__v1__login_response__orpc_info,
    [T_CREDS_RESP] =
        &opsconductor__credentials__v1__list_target_credentials_response__orpc_info,
    [T_STRUCT] = &google__protobuf__struct__orpc_info,
    [T_VALUE] = &google__protobuf__value__orpc_info,
    [T_LIST_VALUE] = &google__protobuf__list_value__orpc_info,
    [T_TIMESTAMP] = &google__protobuf__timestamp__orpc_info,
    [T_DURATION] = &google__protobuf__duration__orpc_info,
    [T_FIELD_MASK] = &google__protobuf__field_mask__orpc_info,
    [T_ANY] = &google__protobuf__any__orpc_info,
    [T_EMPTY] = &google__protobuf__empty__orpc_info,
    [T_DOUBLE] = &google__protobuf__double_value__orpc_info,
    [T_FLOAT] = &google__protobuf__float_value__orpc_info,
    [T_INT64] = &google__protobuf__int64_value__orpc_info,
    [T_UINT64] = &google__protobuf__uint64_value__orpc_info,
    [T_INT32] = &google__protobuf__int32_value__orpc_info,
    [T_UINT32] = &google__protobuf__uint32_value__orpc_info,
    [T_BOOL] = &google__protobuf__bool_value__orpc_info,
    [T_STRING] = &google__protobuf__string_value__orpc_info,
    [T_BYTES] = &google__protobuf__bytes_value__orpc_info,
    [T_FILE_DESC] = &google__protobuf__file_descriptor_proto__orpc_info,
    /* The rest only through the first byte (no generated seeds). */
    &orpc__test__json__all_types__mint64_nested_entry__orpc_info,
    &grpc__testing__simple_response__orpc_info,
    &grpc__testing__streaming_output_call_response__orpc_info,
    &grpc__testing__reconnect_info__orpc_info,
    &opsconductor__auth__v1__login_request__orpc_info,
    &opsconductor__auth__v1__verify_response__orpc_info,
    &opsconductor__credentials__v1__get_credential_response__orpc_info,
    &opsconductor__jobs__v1__run_job_request__orpc_info,
    &opsconductor__jobs__v1__get_job_response__orpc_info,
    &opsconductor__notification__v1__send_batch_response__orpc_info,
    &opsconductor__user__v1__get_user_response__orpc_info,
    &opsconductor__user__v1__get_user_preferences_response__orpc_info,
    &google__protobuf__file_descriptor_set__orpc_info,
};

#define N_TYPES (sizeof(TYPES) / sizeof(TYPES[0]))

/* Inputs that decoded, and that went through the round trip (the
 * standalone runner reports how many). */
static unsigned long n_decoded, n_round_trips;

/* ---- a tagged allocator: every block carries a header ------------------ */

/* A block from anything but tag_alloc() fails the magic check (or, under
 * ASan, is read out of bounds); blocks still live after a free_unpacked()
 * are counted. */
#define TAG_MAGIC 0x4f52504358u /* "ORPCX" */

typedef struct tag_hdr {
    uint64_t magic;
    uint64_t size;
} tag_hdr;

static long tag_live;

static void *tag_alloc(void *ud, size_t n)
{
    (void)ud;
    CHECK(n <= SIZE_MAX - sizeof(tag_hdr));
    tag_hdr *h = malloc(sizeof(tag_hdr) + n);
    CHECK(h != NULL);
    h->magic = TAG_MAGIC;
    h->size = n;
    tag_live++;
    return h + 1;
}

static void tag_free(void *ud, void *p)
{
    (void)ud;
    if (p == NULL) {
        return;
    }
    tag_hdr *h = (tag_hdr *)p - 1;
    CHECK(h->magic == TAG_MAGIC);
    h->magic = 0;
    tag_live--;
    free(h);
}

static ProtobufCAllocator tag_allocator = {tag_alloc, tag_free, NULL};

/* The message type named |name| among those reachable from |d| and the
 * well-known ones (where an Any's type is looked for), or NULL. */
static const ProtobufCMessageDescriptor *
find_type(const ProtobufCMessageDescriptor *d, const char *name, int depth)
{
    if (d == NULL || depth > 32) {
        return NULL;
    }
    if (strcmp(d->name, name) == 0) {
        return d;
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && f->descriptor != d) {
            const ProtobufCMessageDescriptor *r =
                find_type(f->descriptor, name, depth + 1);
            if (r != NULL) {
                return r;
            }
        }
    }
    return NULL;
}

/* Where else the decoder looks for an Any's type. */
static const ProtobufCMessageDescriptor *const WKT_DESCS[] = {
    &google__protobuf__any__descriptor,
    &google__protobuf__timestamp__descriptor,
    &google__protobuf__duration__descriptor,
    &google__protobuf__double_value__descriptor,
    &google__protobuf__float_value__descriptor,
    &google__protobuf__int64_value__descriptor,
    &google__protobuf__uint64_value__descriptor,
    &google__protobuf__int32_value__descriptor,
    &google__protobuf__uint32_value__descriptor,
    &google__protobuf__bool_value__descriptor,
    &google__protobuf__string_value__descriptor,
    &google__protobuf__bytes_value__descriptor,
    &google__protobuf__struct__descriptor,
    &google__protobuf__value__descriptor,
    &google__protobuf__list_value__descriptor,
    &google__protobuf__field_mask__descriptor,
    &google__protobuf__empty__descriptor,
    &google__rpc__status__descriptor,
};

#define N_WKT (sizeof(WKT_DESCS) / sizeof(WKT_DESCS[0]))

/* The |k|th value of field |f| of |m| (repeated or not), or NULL when a
 * oneof member is not the one set; |*n| the number of values. */
static const char *values(const ProtobufCMessage *m,
                          const ProtobufCFieldDescriptor *f, size_t *n)
{
    const char *base = (const char *)m;
    *n = 1;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        *n = *(const size_t *)(const void *)(base + f->quantifier_offset);
        return *(const char *const *)(const void *)(base + f->offset);
    }
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        *(const uint32_t *)(const void *)(base + f->quantifier_offset) !=
            f->id) {
        *n = 0;
    }
    return base + f->offset;
}

/* Whether map entry type |d| (a nested "...Entry" of key = 1, value = 2)
 * has a key of 8 bytes, 4 bytes or a string (0). */
static int map_key_size(const ProtobufCMessageDescriptor *d)
{
    size_t n = strlen(d->name);
    if (d->n_fields != 2 || d->fields[0].id != 1 || d->fields[1].id != 2 ||
        n < 5 || strcmp(d->name + n - 5, "Entry") != 0) {
        return -1;
    }
    switch (d->fields[0].type) {
    case PROTOBUF_C_TYPE_STRING:
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return 8;
    default:
        return 4;
    }
}

/* Whether one of |m|'s maps holds a key twice. */
static int own_dup_map_key(const ProtobufCMessage *m)
{
    for (unsigned i = 0; i < m->descriptor->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];
        if (f->label != PROTOBUF_C_LABEL_REPEATED ||
            f->type != PROTOBUF_C_TYPE_MESSAGE) {
            continue;
        }
        const ProtobufCMessageDescriptor *ed = f->descriptor;
        int ks = map_key_size(ed);
        if (ks < 0) {
            continue;
        }
        size_t n;
        const ProtobufCMessage *const *e = (const void *)values(m, f, &n);
        size_t off = ed->fields[0].offset;
        for (size_t a = 0; a < n; a++) {
            for (size_t b = a + 1; b < n; b++) {
                const char *ka = (const char *)e[a] + off;
                const char *kb = (const char *)e[b] + off;
                if (ks == 0 ? strcmp(*(char *const *)(const void *)ka,
                                     *(char *const *)(const void *)kb) == 0
                            : memcmp(ka, kb, (size_t)ks) == 0) {
                    return 1;
                }
            }
        }
    }
    return 0;
}

/* Whether |pred| holds for |m| or a message inside it, Anys' contents
 * included (unpacked with the type the decoder would have used). */
static int any_msg(const ProtobufCMessageDescriptor *root,
                   const ProtobufCMessage *m, int depth,
                   int (*pred)(const ProtobufCMessage *))
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (depth > 200) {
        return 0;
    }
    if (pred(m)) {
        return 1;
    }
    if (d == &google__protobuf__any__descriptor) {
        const Google__Protobuf__Any *any = (const void *)m;
        const char *slash = any->type_url ? strrchr(any->type_url, '/') : NULL;
        const ProtobufCMessageDescriptor *t =
            slash == NULL ? NULL : find_type(root, slash + 1, 0);
        for (size_t i = 0; t == NULL && slash != NULL && i < N_WKT; i++) {
            t = find_type(WKT_DESCS[i], slash + 1, 0);
        }
        ProtobufCMessage *in =
            t == NULL ? NULL
                      : protobuf_c_message_unpack(t, NULL, any->value.len,
                                                  any->value.data);
        int r = in != NULL && any_msg(root, in, depth + 1, pred);
        protobuf_c_message_free_unpacked(in, NULL);
        return r;
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
            continue;
        }
        size_t n;
        const ProtobufCMessage *const *sub = (const void *)values(m, f, &n);
        for (size_t k = 0; k < n; k++) {
            if (sub[k] != NULL && any_msg(root, sub[k], depth + 1, pred)) {
                return 1;
            }
        }
    }
    return 0;
}

/* ---- checks -------------------------------------------------------------- */

static void check_error(int rc, const orpc_error_detail *d,
                        const ProtobufCMessage *m)
{
    CHECK(rc == ORPC_EPARSE || rc == ORPC_ETOOBIG);
    CHECK(d->code == rc);
    CHECK(m == NULL);
    CHECK(d->message[0] == '$');
    size_t n = strlen(d->message);
    CHECK(n < sizeof d->message);
    CHECK(utf8_ok((const uint8_t *)d->message, n));
    for (size_t i = 0; i < n; i++) {
        CHECK((unsigned char)d->message[i] >= 0x20);
    }
}

/* |m| packed, in a new buffer of |*len| bytes. */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len + 1);
    CHECK(buf != NULL);
    CHECK(protobuf_c_message_pack(m, buf) == *len);
    return buf;
}

static void free_msg(ProtobufCMessage *m)
{
    protobuf_c_message_free_unpacked(m, &tag_allocator);
    CHECK(tag_live == 0);
}

/* The decoded message is whole: of its type, valid, and protobuf-c reads
 * back what it packs. */
static void check_message(const orpc_message_info *info,
                          const ProtobufCMessage *m, const uint8_t *bytes,
                          size_t len)
{
    CHECK(m != NULL && m->descriptor == info->descriptor);
    CHECK(protobuf_c_message_check(m));
    long live = tag_live;
    ProtobufCMessage *u =
        protobuf_c_message_unpack(info->descriptor, &tag_allocator, len, bytes);
    CHECK(u != NULL);
    size_t len2;
    uint8_t *bytes2 = pack(u, &len2);
    CHECK(len2 == len && memcmp(bytes2, bytes, len) == 0);
    free(bytes2);
    protobuf_c_message_free_unpacked(u, &tag_allocator);
    CHECK(tag_live == live);
}

/* Encodes |m| with |eo|, decodes the text strictly, and checks it holds
 * |bytes|; with |fixed|, also that re-encoding gives the same text. */
static void round_trip(const orpc_message_info *info, const ProtobufCMessage *m,
                       const orpc_json_opts *eo, const uint8_t *bytes,
                       size_t len, int fixed)
{
    char *text = NULL;
    size_t tlen = 0;
    orpc_error_detail d;
    int rc = orpc_json_encode(&text, &tlen, info, m, eo, &d);
    if (rc != 0) {
        fprintf(stderr, "encode of a decoded %s failed: %s: %s\n",
                info->descriptor->name, orpc_err_name(rc), d.message);
    }
    CHECK(rc == 0);
    CHECK(text != NULL && tlen == strlen(text));
    CHECK(utf8_ok((const uint8_t *)text, tlen));

    orpc_json_opts strict = {.max_depth = eo->max_depth};
    ProtobufCMessage *m2 = NULL;
    long live = tag_live;
    rc = orpc_json_decode(&m2, info, text, tlen, &strict, &tag_allocator, &d);
    if (rc != 0) {
        fprintf(stderr,
                "orpc cannot read what it wrote (%s, legacy %d):\n%s\n"
                "error: %s\n",
                info->descriptor->name, eo->legacy, text, d.message);
    }
    CHECK(rc == 0);
    size_t len2;
    uint8_t *bytes2 = pack(m2, &len2);
    if (len2 != len || memcmp(bytes2, bytes, len) != 0) {
        fprintf(stderr, "round trip changed the %s (legacy %d): %s\n",
                info->descriptor->name, eo->legacy, text);
    }
    CHECK(len2 == len && memcmp(bytes2, bytes, len) == 0);
    free(bytes2);

    if (fixed) {
        char *text2 = NULL;
        size_t tlen2 = 0;
        CHECK(orpc_json_encode(&text2, &tlen2, info, m2, eo, NULL) == 0);
        if (tlen2 != tlen || memcmp(text2, text, tlen) != 0) {
            fprintf(stderr, "encoding is no fixed point:\n%s\n%s\n", text,
                    text2);
        }
        CHECK(tlen2 == tlen && memcmp(text2, text, tlen) == 0);
        free(text2);
    }
    protobuf_c_message_free_unpacked(m2, &tag_allocator);
    CHECK(tag_live == live);
    free(text);
}

/*
 * An unknown member skipped (ignore_unknown) changes nothing: the text with
 * "zzBig":<an integer beyond 64 bits> first in its top-level object, if it
 * decodes, packs to |bytes| too.  (Such an integer makes the decoder read
 * the whole document again with every number as a double, where 64-bit
 * fields take only what is exact.)
 */
static void check_unrelated_member(const orpc_message_info *info,
                                   const orpc_json_opts *o, const char *json,
                                   size_t len, const uint8_t *bytes,
                                   size_t blen)
{
    static const char big[] = "\"zzBig\":100000000000000000000";
    const ProtobufCMessageDescriptor *d = info->descriptor;
    size_t at = 0;
    while (at < len && strchr(" \t\r\n", json[at]) != NULL) {
        at++;
    }
    /* Only messages whose JSON is an object of their fields. */
    if (at == len || json[at] != '{' ||
        strcmp(d->package_name, "google.protobuf") == 0) {
        return;
    }
    at++;
    size_t k = at;
    while (k < len && strchr(" \t\r\n", json[k]) != NULL) {
        k++;
    }
    int empty = k < len && json[k] == '}';
    size_t n = len + sizeof(big);
    char *text = malloc(n);
    CHECK(text != NULL);
    memcpy(text, json, at);
    memcpy(text + at, big, sizeof(big) - 1);
    size_t pos = at + sizeof(big) - 1;
    if (!empty) {
        text[pos++] = ',';
    }
    memcpy(text + pos, json + at, len - at);
    pos += len - at;

    ProtobufCMessage *m = NULL;
    long live = tag_live;
    if (orpc_json_decode(&m, info, text, pos, o, &tag_allocator, NULL) == 0) {
        size_t len2;
        uint8_t *bytes2 = pack(m, &len2);
        if (len2 != blen || memcmp(bytes2, bytes, blen) != 0) {
            fprintf(stderr, "an ignored member changed the %s: %.*s\n", d->name,
                    (int)pos, text);
        }
        CHECK(len2 == blen && memcmp(bytes2, bytes, blen) == 0);
        free(bytes2);
        protobuf_c_message_free_unpacked(m, &tag_allocator);
    }
    CHECK(tag_live == live);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned depths[] = {0, 3, 16, 100};
    if (size < 2 || size - 2 > MAX_JSON) {
        return 0;
    }
    const orpc_message_info *info = TYPES[data[0] % N_TYPES];
    orpc_json_opts o = {
        .legacy = data[1] & 1,
        .ignore_unknown = (data[1] >> 1) & 1,
        .emit_defaults = (data[1] >> 2) & 1,
        .proto_names = (data[1] >> 3) & 1,
        .max_depth = depths[(data[1] >> 4) & 3],
    };
    /* A copy of exactly the text, so ASan sees any read past it. */
    size_t len = size - 2;
    char *json = malloc(len ? len : 1);
    CHECK(json != NULL);
    memcpy(json, data + 2, len);

    ProtobufCMessage *m = (ProtobufCMessage *)&o; /* must be reset */
    CHECK(tag_live == 0);
    orpc_error_detail d;
    int rc = orpc_json_decode(&m, info, json, len, &o, &tag_allocator, &d);
    if (rc != 0) {
        check_error(rc, &d, m);
        CHECK(tag_live == 0);
        free(json);
        return 0;
    }
    n_decoded++;
    size_t blen;
    uint8_t *bytes = pack(m, &blen);
    check_message(info, m, bytes, blen);
    /* one key once per map, however the JSON spelt it */
    CHECK(!any_msg(info->descriptor, m, 0, own_dup_map_key));
    if (o.ignore_unknown) {
        check_unrelated_member(info, &o, json, len, bytes, blen);
    }
    free(json);

    n_round_trips++;
    round_trip(info, m, &o, bytes, blen, 1);
    orpc_json_opts other = o;
    other.legacy = !o.legacy;
    other.emit_defaults = !o.emit_defaults;
    other.proto_names = !o.proto_names;
    round_trip(info, m, &other, bytes, blen, 0);

    free(bytes);
    free_msg(m);
    return 0;
}

#ifdef ORPC_FUZZ_STANDALONE

/* ---- regression runner: files, or generated inputs --------------------- */

#include "standalone.h"

/* Valid documents (most from tests/json_test.c), each for its type. */
typedef struct seed {
    int type;
    const char *json;
} seed;

static const seed SEEDS[] = {
    {T_ALL, ORPC_TEST_ALL_JSON},
    {T_ALL, "{\"f_int64\":1e3,\"f_uint64\":\"1.5e1\",\"f_float\":\"-0\","
            "\"f_double\":-0.0,\"f_enum\":\"red\",\"r_enum\":[\"green\",2],"
            "\"o_value\":{\"a\":[null]},\"renamed\":7,\"f_bytes\":\"-_8\"}"},
    {T_ALL,
     "{\"oBytes\":\"YQ\",\"mSint64Bool\":{\"0\":false},"
     "\"mBoolString\":{\"false\":\"\"},\"rNested\":[],\"fNested\":null}"},
    {T_WKT, ORPC_TEST_WKT_JSON},
    {T_WKT, "{\"ts\":\"2024-02-29T23:59:60+01:30\",\"dur\":\"0.000000001s\","
            "\"any\":{\"@type\":\"t/google.protobuf.Any\",\"value\":"
            "{\"@type\":\"t/google.rpc.Status\",\"code\":5,"
            "\"message\":\"m\"}},\"fm\":\"\",\"val\":null}"},
    {T_NESTED, "{\"a\":1,\"b\":\"x\",\"child\":{\"a\":2,\"child\":{}}}"},
    {T_NOTIF, "{\"type\":\"slack\",\"destination\":\"#ops\","
              "\"payload\":{\"text\":\"hi\",\"n\":[1,2.5]},"
              "\"template_id\":12}"},
    {T_NOTIF, "{\"type\":\"NOTIFICATION_TYPE_EMAIL\",\"templateId\":\"7\"}"},
    {T_SIMPLE_REQ, "{\"responseSize\":314159,\"payload\":{\"body\":\"AAAA\"},"
                   "\"fillUsername\":true,\"responseCompressed\":{\"value\":"
                   "true},\"responseStatus\":{\"code\":3,\"message\":\"bad\"},"
                   "\"expectCompressed\":{}}"},
    {T_STREAM_REQ, "{\"responseParameters\":[{\"size\":1,\"intervalUs\":2},"
                   "{\"compressed\":{}}],\"payload\":{}}"},
    {T_JOB_EVENT, "{\"jobId\":\"12\",\"status\":\"running\","
                  "\"changedAt\":\"2024-02-29T21:59:59.500Z\","
                  "\"detail\":{\"progress\":0.5}}"},
    {T_LOGIN_RESP, "{\"access_token\":\"t\",\"expires_in\":0,"
                   "\"token_type\":\"bearer\"}"},
    {T_CREDS_RESP, "{\"credentials\":[{\"id\":1,\"secret\":null},{}]}"},
    {T_STRUCT, "{\"a\":{\"b\":[1,\"2\",true,null,{}]},\"\":-1e-7}"},
    {T_VALUE, "[1,{\"x\":\"y\"},[[]],null,false,1.7976931348623157e308]"},
    {T_LIST_VALUE, "[\"a\",{},[],-0]"},
    {T_TIMESTAMP, "\"1969-12-31T23:59:59.999999999Z\""},
    {T_DURATION, "\"-315576000000.999999999s\""},
    {T_FIELD_MASK, "\"a.bC,dEF.g\""},
    {T_ANY, "{\"@type\":\"type.googleapis.com/google.protobuf.FieldMask\","
            "\"value\":\"x.y\"}"},
    {T_EMPTY, "{}"},
    {T_DOUBLE, "\"-Infinity\""},
    {T_FLOAT, "3.4028234663852886e38"},
    {T_INT64, "\"-9223372036854775808\""},
    {T_UINT64, "18446744073709551615"},
    {T_INT32, "\"-2147483648\""},
    {T_UINT32, "4294967295"},
    {T_BOOL, "true"},
    {T_STRING, "\"\\ud83d\\ude00\""},
    {T_BYTES, "\"_-8=\""},
    {T_FILE_DESC, "{\"name\":\"a.proto\",\"messageType\":[{\"name\":\"M\","
                  "\"field\":[{\"name\":\"f\",\"number\":1,\"label\":"
                  "\"LABEL_OPTIONAL\",\"type\":\"TYPE_INT32\"}]}],"
                  "\"options\":{\"uninterpretedOption\":[{\"name\":"
                  "[{\"namePart\":\"x\",\"isExtension\":false}]}]}}"},
};

#define N_SEEDS (sizeof(SEEDS) / sizeof(SEEDS[0]))

/* Hostile documents, each for its type: duplicate keys (also one field by
 * both names, two members of one oneof, one map key spelt two ways), bad
 * base64, numbers out of range, wrong nesting. */
static const seed HOSTILE[] = {
    {T_ALL, "{\"fInt32\":1,\"fInt32\":2}"},
    {T_ALL, "{\"fInt32\":1,\"f_int32\":2}"},
    {T_ALL, "{\"oString\":\"a\",\"oInt64\":\"1\"}"},
    {T_ALL, "{\"oString\":null,\"oInt64\":\"1\"}"},
    {T_WKT, "{\"st\":{\"a\":1,\"a\":2}}"},
    {T_ALL, "{\"mBoolString\":{\"true\":\"a\",\"True\":\"b\"}}"},
    {T_ALL, "{\"mInt32String\":{\"1\":\"a\",\"1.0\":\"b\"}}"}, /* refused */
    {T_ALL, "{\"fBytes\":\"AP8\"}"},
    {T_ALL, "{\"fBytes\":\"AP8==\"}"},
    {T_ALL, "{\"fBytes\":\"AP+_\"}"},
    {T_ALL, "{\"fBytes\":\"AR==\"}"},
    {T_ALL, "{\"rBytes\":[\"A\",\"====\"]}"},
    {T_WKT, "{\"wBytes\":\"AP 8Q\"}"},
    {T_ALL, "{\"mSint32Bytes\":{\"1\":\"AQ=\"}}"},
    {T_ALL, "{\"fInt32\":2147483648}"},
    {T_ALL, "{\"fUint64\":18446744073709551616}"},
    {T_ALL, "{\"fInt64\":9007199254740993,\"fDouble\":1e999}"},
    {T_ALL, "{\"fInt64\":9007199254740993,\"oInt64\":-9007199254740993}"},
    {T_ALL, "{\"fFloat\":3.5e38}"},
    {T_ALL, "{\"fInt32\":1.5}"},
    {T_ALL, "{\"fInt64\":\"1e-400\"}"},
    {T_ALL, "{\"fInt64\":\"0.0000001e7\"}"},
    {T_WKT, "{\"ts\":\"10000-01-01T00:00:00Z\"}"},
    {T_WKT, "{\"dur\":\"315576000001s\"}"},
    {T_WKT, "{\"any\":{\"@type\":\"x/no.such.Type\"}}"},
    {T_WKT, "{\"fm\":\"a_b\"}"},
    {T_ALL, "{\"rInt32\":[1,null]}"},
    {T_ALL, "{\"fEnum\":\"COLOR_PURPLE\"}"},
    {T_ALL, "{\"unknownField\":{\"x\":[1,2,3]},\"fInt32\":5}"},
};

#define N_HOSTILE (sizeof(HOSTILE) / sizeof(HOSTILE[0]))

/* Deep nesting: prefix, |d| x open, middle, |d| x close, suffix. */
typedef struct nest {
    int type;
    const char *prefix, *open, *middle, *close, *suffix;
} nest;

static const nest NESTS[] = {
    {T_WKT, "{\"val\":", "[", "1", "]", "}"},
    {T_ALL, "{\"fNested\":", "{\"child\":", "{}", "}", "}"},
    {T_STRUCT, "{\"a\":", "{\"b\":", "null", "}", "}"},
    {T_VALUE, "", "{\"k\":[", "true", "]}", ""},
    {T_WKT, "{\"any\":", "{\"@type\":\"t/google.protobuf.Any\",\"value\":",
     "{\"@type\":\"t/google.protobuf.Empty\"}", "}", "}"},
    {T_LIST_VALUE, "", "[", "", "]", ""},
};

#define N_NESTS (sizeof(NESTS) / sizeof(NESTS[0]))

/* Numbers that stress the integer and real paths. */
static const char *const NUMBERS[] = {
    "1e400",
    "-1e400",
    "123456789012345678901234567890",
    "18446744073709551616",
    "-9223372036854775809",
    "9007199254740993",
    "1.5",
    "-0",
    "1e-400",
    "4294967296",
    "2147483648",
    "\"1e2\"",
    "\"0x10\"",
    "\"-0.0e5\"",
    "\"18446744073709551615\"",
};

/* Byte sequences that break UTF-8 (or, as escapes, its surrogates). */
static const char *const BAD_UTF8[] = {
    "\xff",     "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80",
    "\xe2\x82", "\\ud800",  "\\udc00x",     "\\u0000",
};

static size_t put(uint8_t *buf, size_t len, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n > cap - len) {
        n = cap - len;
    }
    memcpy(buf + len, s, n);
    return len + n;
}

/* Inserts |s| at |at| in |buf| (|len| bytes used of |cap|). */
static size_t insert(uint8_t *buf, size_t len, size_t cap, size_t at,
                     const char *s, size_t n)
{
    if (n > cap - len) {
        return len;
    }
    memmove(buf + at + n, buf + at, len - at);
    memcpy(buf + at, s, n);
    return len + n;
}

/* An offset in the text part (>= 2) just after a byte in |set|, or 0. */
static size_t find_after(uint32_t *st, const uint8_t *buf, size_t len,
                         const char *set)
{
    size_t hits = 0;
    for (size_t i = 2; i < len; i++) {
        hits += buf[i] != 0 && strchr(set, buf[i]) != NULL;
    }
    if (hits == 0) {
        return 0;
    }
    size_t k = rng_next(st) % hits;
    for (size_t i = 2; i < len; i++) {
        if (buf[i] != 0 && strchr(set, buf[i]) != NULL && k-- == 0) {
            return i + 1;
        }
    }
    return 0;
}

/* Replaces the number that starts at |at| (after ':', '[' or ',') with a
 * hostile one; a no-op when none starts there. */
static size_t swap_number(uint32_t *st, uint8_t *buf, size_t len, size_t cap,
                          size_t at)
{
    size_t end = at;
    while (end < len && buf[end] != 0 && strchr("-+.eE0123456789", buf[end])) {
        end++;
    }
    if (end == at) {
        return len;
    }
    const char *num =
        NUMBERS[rng_next(st) % (sizeof(NUMBERS) / sizeof(*NUMBERS))];
    memmove(buf + at, buf + end, len - end);
    len -= end - at;
    return insert(buf, len, cap, at, num, strlen(num));
}

/* One generated input: a seed document, whole or mutated, or a hostile
 * one, or a deeply nested one. */
static size_t gen_input(uint32_t *st, int i, uint8_t *buf, size_t cap)
{
    const seed *s = &SEEDS[(size_t)i % N_SEEDS];
    size_t nth = (size_t)i;
    uint32_t kind = nth < N_SEEDS               ? 0
                    : nth < N_SEEDS + N_HOSTILE ? 1
                                                : rng_next(st) % 9;
    size_t len = 2, at;
    /* Options: mostly the defaults, so that the seeds decode. */
    buf[1] = (uint8_t)(rng_next(st) & 0x0F);
    if (kind == 1) {
        s = &HOSTILE[nth < N_SEEDS + N_HOSTILE ? nth - N_SEEDS
                                               : rng_next(st) % N_HOSTILE];
    }
    if (kind == 2) {
        const nest *n = &NESTS[rng_next(st) % N_NESTS];
        static const int depths[] = {2, 15, 16, 62, 63, 64, 99, 100, 3000};
        int d = depths[rng_next(st) % (sizeof(depths) / sizeof(*depths))];
        buf[0] = (uint8_t)n->type;
        buf[1] = (uint8_t)(buf[1] | (rng_next(st) % 4) << 4);
        len = put(buf, len, cap, n->prefix);
        for (int k = 0; k < d; k++) {
            len = put(buf, len, cap, n->open);
        }
        len = put(buf, len, cap, n->middle);
        for (int k = 0; k < d; k++) {
            len = put(buf, len, cap, n->close);
        }
        return put(buf, len, cap, n->suffix);
    }
    buf[0] = (uint8_t)s->type;
    len = put(buf, len, cap, s->json);
    switch (kind) {
    case 3: /* a hostile number where a value starts */
        for (int k = 0; k < 3; k++) {
            at = find_after(st, buf, len, ":[,");
            if (at != 0) {
                len = swap_number(st, buf, len, cap, at);
            }
        }
        break;
    case 4: /* broken UTF-8 just inside a string */
        at = find_after(st, buf, len, "\"");
        if (at != 0) {
            const char *b =
                BAD_UTF8[rng_next(st) % (sizeof(BAD_UTF8) / sizeof(*BAD_UTF8))];
            len = insert(buf, len, cap, at, b, strlen(b));
        }
        break;
    case 5: /* a raw NUL */
        at = 2 + rng_next(st) % (len - 1);
        len = insert(buf, len, cap, at, "", 1);
        break;
    case 6: /* a member repeated: the text from a '{' to the next ',' */
        at = find_after(st, buf, len, "{");
        if (at != 0) {
            uint8_t *comma = memchr(buf + at, ',', len - at);
            if (comma != NULL) {
                size_t n = (size_t)(comma - (buf + at)) + 1;
                char tmp[256];
                if (n < sizeof(tmp)) {
                    memcpy(tmp, buf + at, n);
                    len = insert(buf, len, cap, at, tmp, n);
                }
            }
        }
        break;
    case 7: /* cut short */
        len = 2 + rng_next(st) % (len - 1);
        break;
    case 8: /* a few bytes flipped, and other options */
        buf[1] = (uint8_t)rng_next(st);
        for (int k = 0; k < 3 && len > 2; k++) {
            buf[2 + rng_next(st) % (len - 2)] ^=
                (uint8_t)(1 << (rng_next(st) % 8));
        }
        break;
    default: /* as it is */
        break;
    }
    return len;
}

/* Input |i| of the run: first every seed as it is, then every hostile
 * document, then mutations. */
static size_t next_input(uint32_t *st, int i, uint8_t *buf, size_t len,
                         size_t cap)
{
    (void)len;
    return gen_input(st, i, buf, cap);
}

int main(int argc, char **argv)
{
    int n = 100;
    int rc = fuzz_standalone_main(argc, argv, "fuzz_json",
                                  0x6a736f6eu /* "json" */, n, next_input);
    printf("fuzz_json: %lu input(s) decoded, %lu round-tripped\n", n_decoded,
           n_round_trips);
    if (argc == 1) {
        /* The seeds at least: otherwise the round trip goes untested. */
        CHECK(n_decoded >= N_SEEDS && n_round_trips >= N_SEEDS / 2);
    }
    return rc;
}

#endif /* ORPC_FUZZ_STANDALONE */
