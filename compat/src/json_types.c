/*
 * json_types.c — what the mapping knows about protobuf-c types: the table
 * of per-type traits (TRAITS: size, JSON kind, integer range and the
 * functions that encode, parse, print, test and free a value of the type),
 * memory through a ProtobufCAllocator, message types paired with their
 * orpc tables, map detection and field lookup by JSON key.
 *
 * Design notes.  Every place that once switched on ProtobufCType asks the
 * table instead, so adding a behaviour means adding a column, and a type's
 * whole behaviour reads across one row.  The functions are grouped by JSON
 * kind (orpc__json_ops), since the ten integer types differ only in size,
 * signedness and range, which are data: integers are loaded and stored as
 * a sign and a magnitude through those three columns.  No switch on
 * ProtobufCType is left: the few `type == PROTOBUF_C_TYPE_MESSAGE` tests
 * that remain hand a field to the message code (well-known types, maps,
 * oneofs, recursion), which needs the field's descriptor rather than
 * anything a row could hold.  The switches that remain in the mapping are
 * on other things: the JSON value's type (json_typeof), the well-known
 * type, a Value's kind.
 *
 * Messages are walked through their protobuf-c descriptors; the orpc tables
 * add JSON names, enum legacy spellings and the tables of field types.  A
 * type compiled without protoc-gen-orpc still works: its JSON names are
 * derived from the field names the way protoc derives them.  Map fields are
 * recognised by their entry type (repeated message, fields key = 1 / value
 * = 2, named after the field + "Entry", nested in the message): protobuf-c
 * 1.4 keeps no map flag.
 */
#include "json_internal.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/base64.h"
#include "common/mem.h"

/* ------------------------------------------------------------------ */
/* Memory                                                              */

void *orpc__json_alloc(ProtobufCAllocator *a, size_t n)
{
    if (n == 0) {
        n = 1;
    }
    return a != NULL ? a->alloc(a->allocator_data, n) : malloc(n);
}

void orpc__json_free(ProtobufCAllocator *a, void *p)
{
    if (p == NULL) {
        return;
    }
    if (a != NULL) {
        a->free(a->allocator_data, p);
    } else {
        free(p);
    }
}

char *orpc__json_strndup(ProtobufCAllocator *a, const char *s, size_t n)
{
    if (n == SIZE_MAX) {
        return NULL;
    }
    char *r = orpc__json_alloc(a, n + 1);
    if (r != NULL) {
        memcpy(r, s, n);
        r[n] = '\0';
    }
    return r;
}

/* A new message of type |d|, initialised; NULL when memory runs out. */
ProtobufCMessage *orpc__json_msg_new(ProtobufCAllocator *a,
                                     const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = orpc__json_alloc(a, d->sizeof_message);
    if (m == NULL) {
        return NULL;
    }
    if (d->message_init != NULL) {
        d->message_init(m);
    } else {
        memset(m, 0, d->sizeof_message);
        m->descriptor = d;
    }
    return m;
}

void orpc__json_msg_free(ProtobufCAllocator *a, ProtobufCMessage *m)
{
    if (m != NULL) {
        protobuf_c_message_free_unpacked(m, a);
    }
}

/* ------------------------------------------------------------------ */
/* Per-type traits                                                     */

/* The integer (or enum) at |member|, of |tr|'s size and signedness, as a
 * sign and a magnitude. */
static void load_int(const orpc__json_traits *tr, const void *member, int *neg,
                     uint64_t *mag)
{
    if (!tr->is_signed) {
        *neg = 0;
        *mag = tr->size == 8 ? *(const uint64_t *)member
                             : *(const uint32_t *)member;
        return;
    }
    int64_t v =
        tr->size == 8 ? *(const int64_t *)member : *(const int32_t *)member;
    *neg = v < 0;
    *mag = v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
}

int orpc__json_store_int(const orpc__json_traits *tr, int neg, uint64_t mag,
                         void *member)
{
    if (tr->kind != ORPC__JSON_INT && tr->kind != ORPC__JSON_INT64 &&
        tr->kind != ORPC__JSON_ENUM) {
        return -1;
    }
    if (mag == 0) {
        neg = 0;
    }
    if (neg ? !tr->is_signed || mag - 1 > tr->max : mag > tr->max) {
        return -1;
    }
    /* Two's complement, which the exact-width types are: the bits of -mag
     * are those of 2^N - mag, for signed and unsigned members alike. */
    uint64_t bits = neg ? 0 - mag : mag;
    if (tr->size == 8) {
        memcpy(member, &bits, 8);
    } else {
        uint32_t low = (uint32_t)bits;
        memcpy(member, &low, 4);
    }
    return 0;
}

/* The float or double at |member| as the double JSON writes (a float as
 * the shortest decimal that reads back as it). */
static double load_real(const orpc__json_traits *tr, const void *member)
{
    if (tr->size == sizeof(float)) {
        float f = *(const float *)member;
        return isfinite(f) ? orpc__json_float_as_double(f) : (double)f;
    }
    return *(const double *)member;
}

int orpc__json_store_real(const orpc__json_traits *tr, double v, void *member)
{
    if (tr->size == sizeof(float)) {
        if (!orpc__json_fits_float(v)) {
            return -1;
        }
        *(float *)member = (float)v;
    } else {
        *(double *)member = v;
    }
    return 0;
}

/* ---- encode: |member| as a JSON value ------------------------------- */

/* 32-bit integers as numbers; 64-bit ones as decimal strings, or in the
 * legacy profile as numbers when a double holds them exactly. */
static int enc_int(const ProtobufCFieldDescriptor *f, const orpc_enum_info *ei,
                   int legacy, const void *member, json_t **out)
{
    const orpc__json_traits *tr = orpc__json_traits_of(f->type);
    int neg;
    uint64_t mag;
    load_int(tr, member, &neg, &mag);
    if (tr->kind == ORPC__JSON_INT ||
        (legacy && mag <= (uint64_t)ORPC__JSON_EXACT_DOUBLE_MAX)) {
        json_int_t v = neg ? -(json_int_t)mag : (json_int_t)mag;
        return orpc__json_mk(json_integer(v), out);
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%s%" PRIu64, neg ? "-" : "", mag);
    return orpc__json_mk(json_string_nocheck(buf), out);
}

static int enc_real(const ProtobufCFieldDescriptor *f, const orpc_enum_info *ei,
                    int legacy, const void *member, json_t **out)
{
    double v = load_real(orpc__json_traits_of(f->type), member);
    if (isnan(v)) {
        return orpc__json_mk(json_string_nocheck("NaN"), out);
    }
    if (isinf(v)) {
        return orpc__json_mk(
            json_string_nocheck(v > 0 ? "Infinity" : "-Infinity"), out);
    }
    return orpc__json_mk(json_real(v), out);
}

static int enc_bool(const ProtobufCFieldDescriptor *f, const orpc_enum_info *ei,
                    int legacy, const void *member, json_t **out)
{
    return orpc__json_mk(json_boolean(*(const protobuf_c_boolean *)member != 0),
                         out);
}

static int enc_string(const ProtobufCFieldDescriptor *f,
                      const orpc_enum_info *ei, int legacy, const void *member,
                      json_t **out)
{
    const char *s = *(char *const *)member;
    if (s == NULL) {
        s = "";
    }
    return orpc__json_mk_string(s, strlen(s), out);
}

static int enc_bytes(const ProtobufCFieldDescriptor *f,
                     const orpc_enum_info *ei, int legacy, const void *member,
                     json_t **out)
{
    const ProtobufCBinaryData *b = member;
    orpc__buf t = {0};
    if (orpc__base64_append(&t, b->data, b->data != NULL ? b->len : 0, 0) !=
        0) {
        return ORPC_ENOMEM;
    }
    *out = json_stringn_nocheck(orpc__buf_str(&t), t.len);
    orpc__buf_free(&t);
    return *out != NULL ? 0 : ORPC_ENOMEM;
}

static int enc_enum(const ProtobufCFieldDescriptor *f, const orpc_enum_info *ei,
                    int legacy, const void *member, json_t **out)
{
    int32_t n = *(const int32_t *)member;
    if (orpc__json_is_null_enum(f)) {
        return orpc__json_mk(json_null(), out);
    }
    const char *name = orpc__json_enum_name(f, ei, legacy, n);
    if (name == NULL) {
        return orpc__json_mk(json_integer(n), out);
    }
    return orpc__json_mk(json_string_nocheck(name), out);
}

/* Messages are encoded by the caller (json_encode.c, json_wkt.c). */
static int enc_none(const ProtobufCFieldDescriptor *f, const orpc_enum_info *ei,
                    int legacy, const void *member, json_t **out)
{
    return ORPC_EINVAL;
}

/* ---- parse: text (a JSON string, a map key, URL text) into |member| - */

static int parse_int(const ProtobufCFieldDescriptor *f,
                     const orpc_enum_info *ei, const char *s, size_t n,
                     void *member, ProtobufCAllocator *a, int bool_text,
                     const char **why)
{
    int neg;
    uint64_t mag;
    int rc = orpc__json_parse_int(s, n, &neg, &mag);
    if (rc == ORPC__JSON_NUM_SYNTAX) {
        *why = "not an integer";
        return ORPC__JSON_CV_BAD;
    }
    if (rc == ORPC__JSON_NUM_FRACTION) {
        *why = "not an integer (has a fraction)";
        return ORPC__JSON_CV_BAD;
    }
    if (rc != ORPC__JSON_NUM_OK ||
        orpc__json_store_int(orpc__json_traits_of(f->type), neg, mag, member) <
            0) {
        *why = "integer out of range";
        return ORPC__JSON_CV_BAD;
    }
    return ORPC__JSON_CV_OK;
}

static int parse_real(const ProtobufCFieldDescriptor *f,
                      const orpc_enum_info *ei, const char *s, size_t n,
                      void *member, ProtobufCAllocator *a, int bool_text,
                      const char **why)
{
    double v;
    if (strcmp(s, "NaN") == 0) {
        v = NAN;
    } else if (strcmp(s, "Infinity") == 0) {
        v = INFINITY;
    } else if (strcmp(s, "-Infinity") == 0) {
        v = -INFINITY;
    } else {
        int rc = orpc__json_parse_double(s, n, &v);
        if (rc == ORPC__JSON_NUM_NOMEM) {
            return ORPC__JSON_CV_NOMEM;
        }
        if (rc == ORPC__JSON_NUM_SYNTAX) {
            *why = "not a number";
            return ORPC__JSON_CV_BAD;
        }
        if (rc != ORPC__JSON_NUM_OK) {
            *why = "number out of range";
            return ORPC__JSON_CV_BAD;
        }
    }
    if (orpc__json_store_real(orpc__json_traits_of(f->type), v, member) < 0) {
        *why = "number out of range for float";
        return ORPC__JSON_CV_BAD;
    }
    return ORPC__JSON_CV_OK;
}

/* "true" and "false" only where the text is not JSON (map keys, URLs):
 * a JSON string is not a bool. */
static int parse_bool(const ProtobufCFieldDescriptor *f,
                      const orpc_enum_info *ei, const char *s, size_t n,
                      void *member, ProtobufCAllocator *a, int bool_text,
                      const char **why)
{
    if (bool_text && strcmp(s, "true") == 0) {
        *(protobuf_c_boolean *)member = 1;
    } else if (bool_text && strcmp(s, "false") == 0) {
        *(protobuf_c_boolean *)member = 0;
    } else {
        *why = "expected true or false";
        return ORPC__JSON_CV_BAD;
    }
    return ORPC__JSON_CV_OK;
}

static int parse_string(const ProtobufCFieldDescriptor *f,
                        const orpc_enum_info *ei, const char *s, size_t n,
                        void *member, ProtobufCAllocator *a, int bool_text,
                        const char **why)
{
    if (!orpc__json_utf8_valid(s, n) || memchr(s, '\0', n) != NULL) {
        *why = "invalid UTF-8";
        return ORPC__JSON_CV_BAD;
    }
    char *copy = orpc__json_strndup(a, s, n);
    if (copy == NULL) {
        return ORPC__JSON_CV_NOMEM;
    }
    *(char **)member = copy;
    return ORPC__JSON_CV_OK;
}

/* Base64 (either alphabet, padded or not) into a bytes member, allocated
 * with |a| (the buffer sees it as orpc_mem hooks); no data for no bytes. */
static int parse_bytes(const ProtobufCFieldDescriptor *f,
                       const orpc_enum_info *ei, const char *s, size_t n,
                       void *member, ProtobufCAllocator *a, int bool_text,
                       const char **why)
{
    ProtobufCBinaryData *out = member;
    orpc_mem mem;
    orpc__mem_from_pb(&mem, a);
    orpc__buf b;
    orpc__buf_init(&b, &mem);
    int rc = orpc__base64_decode(&b, s, n);
    if (rc != 0) {
        orpc__buf_free(&b);
        if (rc == ORPC_EPARSE) {
            *why = "invalid base64";
            return ORPC__JSON_CV_BAD;
        }
        return ORPC__JSON_CV_NOMEM;
    }
    out->len = b.len;
    if (b.len == 0) {
        orpc__buf_free(&b);
        out->data = NULL;
        return ORPC__JSON_CV_OK;
    }
    out->data = (uint8_t *)orpc__buf_take(&b, NULL);
    return out->data != NULL ? ORPC__JSON_CV_OK : ORPC__JSON_CV_NOMEM;
}

/* An enum by name (the orpc table's, with legacy spellings, then
 * protobuf-c's) or by number. */
static int parse_enum(const ProtobufCFieldDescriptor *f,
                      const orpc_enum_info *ei, const char *s, size_t n,
                      void *member, ProtobufCAllocator *a, int bool_text,
                      const char **why)
{
    if (ei != NULL) {
        const orpc_enum_value_info *v = orpc_enum_info_find(ei, s);
        if (v != NULL) {
            *(int32_t *)member = v->number;
            return ORPC__JSON_CV_OK;
        }
    }
    const ProtobufCEnumValue *ev =
        protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, s);
    if (ev != NULL) {
        *(int32_t *)member = ev->value;
        return ORPC__JSON_CV_OK;
    }
    int neg;
    uint64_t mag;
    if (orpc__json_parse_int(s, n, &neg, &mag) == ORPC__JSON_NUM_OK) {
        if (orpc__json_store_int(orpc__json_traits_of(f->type), neg, mag,
                                 member) < 0) {
            *why = "enum number out of range";
            return ORPC__JSON_CV_BAD;
        }
        return ORPC__JSON_CV_OK;
    }
    *why = "unknown enum value";
    return ORPC__JSON_CV_UNKNOWN_ENUM;
}

static int parse_none(const ProtobufCFieldDescriptor *f,
                      const orpc_enum_info *ei, const char *s, size_t n,
                      void *member, ProtobufCAllocator *a, int bool_text,
                      const char **why)
{
    *why = "not a scalar field";
    return ORPC__JSON_CV_BAD;
}

/* ---- text: |member| as map-key or URL text -------------------------- */

static int text_int(const ProtobufCFieldDescriptor *f, const orpc_enum_info *ei,
                    int legacy, const void *member, orpc__buf *out)
{
    int neg;
    uint64_t mag;
    load_int(orpc__json_traits_of(f->type), member, &neg, &mag);
    orpc__buf_printf(out, "%s%" PRIu64, neg ? "-" : "", mag);
    return 0;
}

static int text_real(const ProtobufCFieldDescriptor *f,
                     const orpc_enum_info *ei, int legacy, const void *member,
                     orpc__buf *out)
{
    double v = load_real(orpc__json_traits_of(f->type), member);
    char buf[64];
    if (isnan(v)) {
        orpc__buf_puts(out, "NaN");
    } else if (isinf(v)) {
        orpc__buf_puts(out, v > 0 ? "Infinity" : "-Infinity");
    } else {
        orpc__json_fmt_double(v, buf, sizeof buf);
        orpc__buf_puts(out, buf);
    }
    return 0;
}

static int text_bool(const ProtobufCFieldDescriptor *f,
                     const orpc_enum_info *ei, int legacy, const void *member,
                     orpc__buf *out)
{
    orpc__buf_puts(out, *(const protobuf_c_boolean *)member ? "true" : "false");
    return 0;
}

static int text_string(const ProtobufCFieldDescriptor *f,
                       const orpc_enum_info *ei, int legacy, const void *member,
                       orpc__buf *out)
{
    const char *s = *(char *const *)member;
    if (s == NULL) {
        s = "";
    }
    if (!orpc__json_utf8_valid(s, strlen(s))) {
        return ORPC_EINVAL;
    }
    orpc__buf_puts(out, s);
    return 0;
}

/* URL-safe base64 with padding: what goes into a URL unescaped. */
static int text_bytes(const ProtobufCFieldDescriptor *f,
                      const orpc_enum_info *ei, int legacy, const void *member,
                      orpc__buf *out)
{
    const ProtobufCBinaryData *b = member;
    orpc__base64_append(out, b->data, b->data != NULL ? b->len : 0,
                        ORPC__BASE64_URL);
    return 0;
}

static int text_enum(const ProtobufCFieldDescriptor *f,
                     const orpc_enum_info *ei, int legacy, const void *member,
                     orpc__buf *out)
{
    int32_t n = *(const int32_t *)member;
    const char *name = orpc__json_enum_name(f, ei, legacy, n);
    if (name != NULL) {
        orpc__buf_puts(out, name);
    } else {
        orpc__buf_printf(out, "%" PRId32, n);
    }
    return 0;
}

static int text_none(const ProtobufCFieldDescriptor *f,
                     const orpc_enum_info *ei, int legacy, const void *member,
                     orpc__buf *out)
{
    return ORPC_EINVAL;
}

/* ---- is_default: whether a proto3 field holds its default ----------- */

static int int_is_default(const ProtobufCFieldDescriptor *f, const void *member)
{
    int neg;
    uint64_t mag;
    load_int(orpc__json_traits_of(f->type), member, &neg, &mag);
    return mag == 0;
}

/* -0.0 counts as the default, as 0.0 == -0.0. */
static int real_is_default(const ProtobufCFieldDescriptor *f,
                           const void *member)
{
    return orpc__json_traits_of(f->type)->size == sizeof(float)
               ? *(const float *)member == 0
               : *(const double *)member == 0;
}

static int bool_is_default(const ProtobufCFieldDescriptor *f,
                           const void *member)
{
    return *(const protobuf_c_boolean *)member == 0;
}

static int string_is_default(const ProtobufCFieldDescriptor *f,
                             const void *member)
{
    const char *s = *(const char *const *)member;
    return s == NULL || s[0] == '\0';
}

static int bytes_is_default(const ProtobufCFieldDescriptor *f,
                            const void *member)
{
    return ((const ProtobufCBinaryData *)member)->len == 0;
}

static int message_is_default(const ProtobufCFieldDescriptor *f,
                              const void *member)
{
    return *(const void *const *)member == NULL;
}

/* Not a type protobuf-c has: never written. */
static int none_is_default(const ProtobufCFieldDescriptor *f,
                           const void *member)
{
    return 1;
}

/* ---- release: free what |member| owns, unless it is |f|'s default ---- */

static void release_string(const ProtobufCFieldDescriptor *f, void *member,
                           ProtobufCAllocator *a)
{
    char *s = *(char **)member;
    if (s != NULL && s != f->default_value) {
        orpc__json_free(a, s);
    }
    *(char **)member = NULL;
}

static void release_bytes(const ProtobufCFieldDescriptor *f, void *member,
                          ProtobufCAllocator *a)
{
    ProtobufCBinaryData *b = member;
    const ProtobufCBinaryData *def = f->default_value;
    if (b->data != NULL && (def == NULL || def->data != b->data)) {
        orpc__json_free(a, b->data);
    }
    b->data = NULL;
    b->len = 0;
}

static void release_message(const ProtobufCFieldDescriptor *f, void *member,
                            ProtobufCAllocator *a)
{
    ProtobufCMessage *m = *(ProtobufCMessage **)member;
    if (m != NULL && (const void *)m != f->default_value) {
        protobuf_c_message_free_unpacked(m, a);
    }
    *(ProtobufCMessage **)member = NULL;
}

/* ---- the table ------------------------------------------------------ */

/* What the values of each JSON kind do.  Integer types share theirs
 * (enc_int tells INT from INT64); map_key and by_pointer follow the kind. */
static const orpc__json_ops INT_OPS = {
    .expected = "expected an integer",
    .map_key = 1,
    .encode = enc_int,
    .parse = parse_int,
    .text = text_int,
    .is_default = int_is_default,
};
static const orpc__json_ops REAL_OPS = {
    .expected = "expected a number",
    .encode = enc_real,
    .parse = parse_real,
    .text = text_real,
    .is_default = real_is_default,
};
static const orpc__json_ops BOOL_OPS = {
    .expected = "expected true or false",
    .map_key = 1,
    .encode = enc_bool,
    .parse = parse_bool,
    .text = text_bool,
    .is_default = bool_is_default,
};
static const orpc__json_ops STRING_OPS = {
    .expected = "expected a string",
    .map_key = 1,
    .by_pointer = 1,
    .encode = enc_string,
    .parse = parse_string,
    .text = text_string,
    .is_default = string_is_default,
    .release = release_string,
};
static const orpc__json_ops BYTES_OPS = {
    .expected = "expected a base64 string",
    .encode = enc_bytes,
    .parse = parse_bytes,
    .text = text_bytes,
    .is_default = bytes_is_default,
    .release = release_bytes,
};
static const orpc__json_ops ENUM_OPS = {
    .expected = "expected an enum name or number",
    .encode = enc_enum,
    .parse = parse_enum,
    .text = text_enum,
    .is_default = int_is_default,
};
static const orpc__json_ops MESSAGE_OPS = {
    .expected = "expected an object",
    .by_pointer = 1,
    .encode = enc_none,
    .parse = parse_none,
    .text = text_none,
    .is_default = message_is_default,
    .release = release_message,
};
static const orpc__json_ops NONE_OPS = {
    .expected = "unsupported field type",
    .encode = enc_none,
    .parse = parse_none,
    .text = text_none,
    .is_default = none_is_default,
};

/* One row per ProtobufCType: name, kind, size of the C value, signedness
 * and largest value (integers and enums), ops. */
static const orpc__json_traits TRAITS[] = {
    [PROTOBUF_C_TYPE_INT32] = {"int32", ORPC__JSON_INT, 4, 1, INT32_MAX,
                               &INT_OPS},
    [PROTOBUF_C_TYPE_SINT32] = {"sint32", ORPC__JSON_INT, 4, 1, INT32_MAX,
                                &INT_OPS},
    [PROTOBUF_C_TYPE_SFIXED32] = {"sfixed32", ORPC__JSON_INT, 4, 1, INT32_MAX,
                                  &INT_OPS},
    [PROTOBUF_C_TYPE_INT64] = {"int64", ORPC__JSON_INT64, 8, 1, INT64_MAX,
                               &INT_OPS},
    [PROTOBUF_C_TYPE_SINT64] = {"sint64", ORPC__JSON_INT64, 8, 1, INT64_MAX,
                                &INT_OPS},
    [PROTOBUF_C_TYPE_SFIXED64] = {"sfixed64", ORPC__JSON_INT64, 8, 1, INT64_MAX,
                                  &INT_OPS},
    [PROTOBUF_C_TYPE_UINT32] = {"uint32", ORPC__JSON_INT, 4, 0, UINT32_MAX,
                                &INT_OPS},
    [PROTOBUF_C_TYPE_FIXED32] = {"fixed32", ORPC__JSON_INT, 4, 0, UINT32_MAX,
                                 &INT_OPS},
    [PROTOBUF_C_TYPE_UINT64] = {"uint64", ORPC__JSON_INT64, 8, 0, UINT64_MAX,
                                &INT_OPS},
    [PROTOBUF_C_TYPE_FIXED64] = {"fixed64", ORPC__JSON_INT64, 8, 0, UINT64_MAX,
                                 &INT_OPS},
    [PROTOBUF_C_TYPE_FLOAT] = {"float", ORPC__JSON_REAL, sizeof(float), 0, 0,
                               &REAL_OPS},
    [PROTOBUF_C_TYPE_DOUBLE] = {"double", ORPC__JSON_REAL, sizeof(double), 0, 0,
                                &REAL_OPS},
    [PROTOBUF_C_TYPE_BOOL] = {"bool", ORPC__JSON_BOOL,
                              sizeof(protobuf_c_boolean), 0, 0, &BOOL_OPS},
    [PROTOBUF_C_TYPE_ENUM] = {"enum", ORPC__JSON_ENUM, 4, 1, INT32_MAX,
                              &ENUM_OPS},
    [PROTOBUF_C_TYPE_STRING] = {"string", ORPC__JSON_STRING, sizeof(char *), 0,
                                0, &STRING_OPS},
    [PROTOBUF_C_TYPE_BYTES] = {"bytes", ORPC__JSON_BYTES,
                               sizeof(ProtobufCBinaryData), 0, 0, &BYTES_OPS},
    [PROTOBUF_C_TYPE_MESSAGE] = {"message", ORPC__JSON_MESSAGE,
                                 sizeof(ProtobufCMessage *), 0, 0,
                                 &MESSAGE_OPS},
};

/* A type value protobuf-c 1.4 does not have (a corrupt descriptor). */
static const orpc__json_traits NONE = {
    "?", ORPC__JSON_NONE, sizeof(uint32_t), 0, 0, &NONE_OPS};

const orpc__json_traits *orpc__json_traits_of(ProtobufCType t)
{
    if ((unsigned)t >= sizeof TRAITS / sizeof TRAITS[0] ||
        TRAITS[t].name == NULL) {
        return &NONE;
    }
    return &TRAITS[t];
}

/* ------------------------------------------------------------------ */
/* Message types                                                       */

orpc__json_mtype orpc__json_mt(const ProtobufCMessageDescriptor *d,
                               const orpc_message_info *info)
{
    orpc__json_mtype t;
    t.d = d;
    t.info = info;
    if (info != NULL &&
        (info->descriptor != d || d == NULL || info->n_fields != d->n_fields ||
         (d->n_fields > 0 && info->fields == NULL))) {
        t.info = NULL; /* not the table of this type: do without */
    }
    return t;
}

/* The type of message field |i| of |t|. */
orpc__json_mtype orpc__json_mt_field(orpc__json_mtype t, unsigned i)
{
    return orpc__json_mt(t.d->fields[i].descriptor,
                         t.info != NULL ? t.info->fields[i].message : NULL);
}

/* The orpc table of enum field |i| of |t|, or NULL. */
const orpc_enum_info *orpc__json_enum_of(orpc__json_mtype t, unsigned i)
{
    const orpc_enum_info *e =
        t.info != NULL ? t.info->fields[i].enum_info : NULL;
    if (e != NULL && e->descriptor != t.d->fields[i].descriptor) {
        e = NULL;
    }
    return e;
}

const orpc_enum_info *orpc__json_enum_of_fi(const ProtobufCFieldDescriptor *f,
                                            const orpc_field_info *fi)
{
    const orpc_enum_info *e = fi != NULL ? fi->enum_info : NULL;
    if (e != NULL && e->descriptor != f->descriptor) {
        e = NULL;
    }
    return e;
}

int orpc__json_is_null_enum(const ProtobufCFieldDescriptor *f)
{
    const ProtobufCEnumDescriptor *e = f->descriptor;
    return f->type == PROTOBUF_C_TYPE_ENUM && e != NULL && e->name != NULL &&
           strcmp(e->name, "google.protobuf.NullValue") == 0;
}

/* Whether repeated field |f| of |parent| is a map: its entry type is the
 * nested "<FieldName>Entry" with key = 1 and value = 2. */
int orpc__json_is_map(const ProtobufCMessageDescriptor *parent,
                      const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED ||
        f->type != PROTOBUF_C_TYPE_MESSAGE) {
        return 0;
    }
    const ProtobufCMessageDescriptor *e = f->descriptor;
    if (e == NULL || e->n_fields != 2 || e->fields[0].id != 1 ||
        e->fields[1].id != 2 || strcmp(e->fields[0].name, "key") != 0 ||
        strcmp(e->fields[1].name, "value") != 0 ||
        e->fields[0].label == PROTOBUF_C_LABEL_REPEATED ||
        e->fields[1].label == PROTOBUF_C_LABEL_REPEATED) {
        return 0;
    }
    if (!orpc__json_traits_of(e->fields[0].type)->ops->map_key) {
        return 0;
    }
    /* protoc's MapEntryName(field name), nested in |parent|. */
    size_t pl = strlen(parent->name);
    const char *n = e->name;
    if (strncmp(n, parent->name, pl) != 0 || n[pl] != '.') {
        return 0;
    }
    n += pl + 1;
    int cap = 1;
    for (const char *p = f->name; *p != '\0'; p++) {
        char c = *p;
        if (c == '_') {
            cap = 1;
            continue;
        }
        if (cap && orpc__json_islower(c)) {
            c = (char)(c - 'a' + 'A');
        }
        cap = 0;
        if (*n++ != c) {
            return 0;
        }
    }
    return strcmp(n, "Entry") == 0;
}

/* The index of the field of |t| that JSON key |key| names, or -1. */
int orpc__json_find_field(orpc__json_mtype t, const char *key)
{
    if (t.info != NULL) {
        return orpc_message_info_find(t.info, key);
    }
    for (unsigned i = 0; i < t.d->n_fields && i < INT_MAX; i++) {
        if (orpc__json_name_eq(t.d->fields[i].name, key)) {
            return (int)i;
        }
    }
    for (unsigned i = 0; i < t.d->n_fields && i < INT_MAX; i++) {
        if (strcmp(t.d->fields[i].name, key) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* The name enum value |n| is written as; NULL when |n| has none. */
const char *orpc__json_enum_name(const ProtobufCFieldDescriptor *f,
                                 const orpc_enum_info *ei, int legacy,
                                 int32_t n)
{
    if (ei != NULL) {
        const orpc_enum_value_info *v = orpc_enum_info_value(ei, n);
        if (v != NULL) {
            return legacy && v->legacy_name != NULL ? v->legacy_name : v->name;
        }
    }
    const ProtobufCEnumValue *ev =
        protobuf_c_enum_descriptor_get_value(f->descriptor, n);
    return ev != NULL ? ev->name : NULL;
}
