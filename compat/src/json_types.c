/*
 * json_types.c — what the mapping knows about protobuf-c types: memory
 * through a ProtobufCAllocator, the facts of each field type (integer
 * ranges, element sizes, names), message types paired with their orpc
 * tables, map detection, field lookup by JSON key, and scalar conversion
 * from text (JSON strings, map keys and URL text share it).
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
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/base64.h"

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

int orpc__json_is_int_type(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 1;
    default:
        return 0;
    }
}

int orpc__json_is_64bit_type(ProtobufCType t)
{
    return t == PROTOBUF_C_TYPE_INT64 || t == PROTOBUF_C_TYPE_SINT64 ||
           t == PROTOBUF_C_TYPE_SFIXED64 || t == PROTOBUF_C_TYPE_UINT64 ||
           t == PROTOBUF_C_TYPE_FIXED64;
}

const char *orpc__json_type_name(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
        return "int32";
    case PROTOBUF_C_TYPE_SINT32:
        return "sint32";
    case PROTOBUF_C_TYPE_SFIXED32:
        return "sfixed32";
    case PROTOBUF_C_TYPE_INT64:
        return "int64";
    case PROTOBUF_C_TYPE_SINT64:
        return "sint64";
    case PROTOBUF_C_TYPE_SFIXED64:
        return "sfixed64";
    case PROTOBUF_C_TYPE_UINT32:
        return "uint32";
    case PROTOBUF_C_TYPE_FIXED32:
        return "fixed32";
    case PROTOBUF_C_TYPE_UINT64:
        return "uint64";
    case PROTOBUF_C_TYPE_FIXED64:
        return "fixed64";
    case PROTOBUF_C_TYPE_FLOAT:
        return "float";
    case PROTOBUF_C_TYPE_DOUBLE:
        return "double";
    case PROTOBUF_C_TYPE_BOOL:
        return "bool";
    case PROTOBUF_C_TYPE_ENUM:
        return "enum";
    case PROTOBUF_C_TYPE_STRING:
        return "string";
    case PROTOBUF_C_TYPE_BYTES:
        return "bytes";
    case PROTOBUF_C_TYPE_MESSAGE:
        return "message";
    }
    return "?";
}

/* Stores sign/magnitude into an integer (or enum) member of type |t|;
 * 0, or -1 when out of range for |t|. */
int orpc__json_store_int(ProtobufCType t, int neg, uint64_t mag, void *member)
{
    if (mag == 0) {
        neg = 0;
    }
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        if (mag > (neg ? 2147483648u : 2147483647u)) {
            return -1;
        }
        *(int32_t *)member = neg ? (int32_t)(-(int64_t)mag) : (int32_t)mag;
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (neg || mag > UINT32_MAX) {
            return -1;
        }
        *(uint32_t *)member = (uint32_t)mag;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (mag > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX)) {
            return -1;
        }
        if (!neg) {
            *(int64_t *)member = (int64_t)mag;
        } else if (mag == (uint64_t)INT64_MAX + 1) {
            *(int64_t *)member = INT64_MIN;
        } else {
            *(int64_t *)member = -(int64_t)mag;
        }
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (neg) {
            return -1;
        }
        *(uint64_t *)member = mag;
        return 0;
    default:
        return -1;
    }
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
    switch (e->fields[0].type) {
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
    case PROTOBUF_C_TYPE_ENUM:
        return 0;
    default:
        break;
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

/* Size of one element of a repeated field of type |t|. */
size_t orpc__json_elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
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

/* ------------------------------------------------------------------ */
/* Text to scalar (JSON strings, map keys, URL text)                    */

/* Base64 text s[0..n) as the value of a bytes field, allocated with |a|
 * (no data for no bytes): ORPC__JSON_CV_OK, ORPC__JSON_CV_BAD or
 * ORPC__JSON_CV_NOMEM. */
static int bytes_from_base64(const char *s, size_t n, ProtobufCAllocator *a,
                             ProtobufCBinaryData *out, const char **why)
{
    orpc__buf b;
    orpc__buf_init(&b, a);
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

/* Converts text s[0..n) (NUL-terminated at n) for field |f| into |member|.
 * |bool_text|: accept "true"/"false" for bool fields.  ORPC__JSON_CV_OK,
 * ORPC__JSON_CV_BAD (with |*why|), ORPC__JSON_CV_NOMEM or
 * ORPC__JSON_CV_UNKNOWN_ENUM. */
int orpc__json_text_to_scalar(const ProtobufCFieldDescriptor *f,
                              const orpc_enum_info *ei, const char *s, size_t n,
                              void *member, ProtobufCAllocator *a,
                              int bool_text, const char **why)
{
    int neg;
    uint64_t mag;
    int rc;
    *why = "invalid value";
    if (orpc__json_is_int_type(f->type)) {
        rc = orpc__json_parse_int(s, n, &neg, &mag);
        if (rc == ORPC__JSON_NUM_SYNTAX) {
            *why = "not an integer";
            return ORPC__JSON_CV_BAD;
        }
        if (rc == ORPC__JSON_NUM_FRACTION) {
            *why = "not an integer (has a fraction)";
            return ORPC__JSON_CV_BAD;
        }
        if (rc != ORPC__JSON_NUM_OK ||
            orpc__json_store_int(f->type, neg, mag, member) < 0) {
            *why = "integer out of range";
            return ORPC__JSON_CV_BAD;
        }
        return ORPC__JSON_CV_OK;
    }
    switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v;
        if (strcmp(s, "NaN") == 0) {
            v = NAN;
        } else if (strcmp(s, "Infinity") == 0) {
            v = INFINITY;
        } else if (strcmp(s, "-Infinity") == 0) {
            v = -INFINITY;
        } else {
            rc = orpc__json_parse_double(s, n, &v);
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
        if (f->type == PROTOBUF_C_TYPE_FLOAT) {
            if (!orpc__json_fits_float(v)) {
                *why = "number out of range for float";
                return ORPC__JSON_CV_BAD;
            }
            *(float *)member = (float)v;
        } else {
            *(double *)member = v;
        }
        return ORPC__JSON_CV_OK;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (bool_text && strcmp(s, "true") == 0) {
            *(protobuf_c_boolean *)member = 1;
        } else if (bool_text && strcmp(s, "false") == 0) {
            *(protobuf_c_boolean *)member = 0;
        } else {
            *why = "expected true or false";
            return ORPC__JSON_CV_BAD;
        }
        return ORPC__JSON_CV_OK;
    case PROTOBUF_C_TYPE_STRING: {
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
    case PROTOBUF_C_TYPE_BYTES:
        return bytes_from_base64(s, n, a, member, why);
    case PROTOBUF_C_TYPE_ENUM: {
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
        rc = orpc__json_parse_int(s, n, &neg, &mag);
        if (rc == ORPC__JSON_NUM_OK) {
            if (orpc__json_store_int(PROTOBUF_C_TYPE_ENUM, neg, mag, member) <
                0) {
                *why = "enum number out of range";
                return ORPC__JSON_CV_BAD;
            }
            return ORPC__JSON_CV_OK;
        }
        *why = "unknown enum value";
        return ORPC__JSON_CV_UNKNOWN_ENUM;
    }
    default:
        *why = "not a scalar field";
        return ORPC__JSON_CV_BAD;
    }
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

/* A map key as text: into |buf| for numbers, else the string itself. */
int orpc__json_map_key_text(const ProtobufCFieldDescriptor *kf,
                            const void *member, char *buf, size_t cap,
                            const char **key)
{
    switch (kf->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        snprintf(buf, cap, "%" PRId32, *(const int32_t *)member);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf(buf, cap, "%" PRIu32, *(const uint32_t *)member);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(buf, cap, "%" PRId64, *(const int64_t *)member);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(buf, cap, "%" PRIu64, *(const uint64_t *)member);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        snprintf(buf, cap, "%s",
                 *(const protobuf_c_boolean *)member ? "true" : "false");
        break;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)member;
        if (s == NULL) {
            s = "";
        }
        if (!orpc__json_utf8_valid(s, strlen(s))) {
            return ORPC_EINVAL;
        }
        *key = s;
        return 0;
    }
    default:
        return ORPC_EINVAL;
    }
    *key = buf;
    return 0;
}
