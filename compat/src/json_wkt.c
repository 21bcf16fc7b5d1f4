/*
 * json_wkt.c — the well-known types' own JSON forms, both ways: Timestamp
 * and Duration as strings, the wrappers as their value, Struct / Value /
 * ListValue as any JSON, FieldMask as "a.fooBar,b", and Any as its
 * message's fields (or "value" for a well-known type) beside "@type".
 *
 * Well-known types are recognised by their full name
 * ("google.protobuf.Timestamp") together with their generated struct size,
 * so a different message of the same name is not mistaken for one.  Value
 * numbers that are integers within ±2^53 are written as integers.  An Any
 * converts only when its type resolves to a protobuf-c descriptor
 * reachable from the message being converted or among liborpc's
 * well-known types and google.rpc.Status (there is no global type
 * registry), otherwise encoding is ORPC_EINVAL and decoding an error.
 */
#include "json_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "google/protobuf/any.orpc.h"
#include "google/protobuf/duration.orpc.h"
#include "google/protobuf/empty.orpc.h"
#include "google/protobuf/field_mask.orpc.h"
#include "google/protobuf/struct.orpc.h"
#include "google/protobuf/timestamp.orpc.h"
#include "google/protobuf/wrappers.orpc.h"
#include "google/rpc/status.orpc.h"

/* FieldMask path "foo_bar.baz" -> "fooBar.baz"; -1 when the path would not
 * read back the same (upper case, '_' not before a lower-case letter). */
static int fieldmask_path_to_json(orpc__buf *b, const char *p)
{
    int after = 0;
    for (; *p != '\0'; p++) {
        char c = *p;
        if (orpc__json_isupper(c)) {
            return -1;
        }
        if (after) {
            if (!orpc__json_islower(c)) {
                return -1;
            }
            orpc__buf_putc(b, (char)(c - 'a' + 'A'));
            after = 0;
        } else if (c == '_') {
            after = 1;
        } else {
            orpc__buf_putc(b, c);
        }
    }
    return after ? -1 : 0;
}

/* The well-known type |d| is, by full name and generated struct size. */
enum orpc__json_wkt orpc__json_wkt_of(const ProtobufCMessageDescriptor *d)
{
    static const struct {
        const char *name;
        enum orpc__json_wkt kind;
        size_t size;
        unsigned n_fields;
    } tab[] = {
        {"Any", ORPC__WKT_ANY, sizeof(Google__Protobuf__Any), 2},
        {"Timestamp", ORPC__WKT_TIMESTAMP, sizeof(Google__Protobuf__Timestamp),
         2},
        {"Duration", ORPC__WKT_DURATION, sizeof(Google__Protobuf__Duration), 2},
        {"DoubleValue", ORPC__WKT_WRAPPER,
         sizeof(Google__Protobuf__DoubleValue), 1},
        {"FloatValue", ORPC__WKT_WRAPPER, sizeof(Google__Protobuf__FloatValue),
         1},
        {"Int64Value", ORPC__WKT_WRAPPER, sizeof(Google__Protobuf__Int64Value),
         1},
        {"UInt64Value", ORPC__WKT_WRAPPER,
         sizeof(Google__Protobuf__UInt64Value), 1},
        {"Int32Value", ORPC__WKT_WRAPPER, sizeof(Google__Protobuf__Int32Value),
         1},
        {"UInt32Value", ORPC__WKT_WRAPPER,
         sizeof(Google__Protobuf__UInt32Value), 1},
        {"BoolValue", ORPC__WKT_WRAPPER, sizeof(Google__Protobuf__BoolValue),
         1},
        {"StringValue", ORPC__WKT_WRAPPER,
         sizeof(Google__Protobuf__StringValue), 1},
        {"BytesValue", ORPC__WKT_WRAPPER, sizeof(Google__Protobuf__BytesValue),
         1},
        {"Struct", ORPC__WKT_STRUCT, sizeof(Google__Protobuf__Struct), 1},
        {"Value", ORPC__WKT_VALUE, sizeof(Google__Protobuf__Value), 6},
        {"ListValue", ORPC__WKT_LIST, sizeof(Google__Protobuf__ListValue), 1},
        {"FieldMask", ORPC__WKT_FIELDMASK, sizeof(Google__Protobuf__FieldMask),
         1},
    };
    if (d == NULL || d->name == NULL ||
        strncmp(d->name, "google.protobuf.", 16) != 0) {
        return ORPC__WKT_NONE;
    }
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        if (strcmp(d->name + 16, tab[i].name) == 0) {
            return d->sizeof_message == tab[i].size &&
                           d->n_fields == tab[i].n_fields
                       ? tab[i].kind
                       : ORPC__WKT_NONE;
        }
    }
    return ORPC__WKT_NONE;
}

/* liborpc's well-known types, where google.protobuf.Any types resolve
 * besides the types reachable from the message being converted. */
static const orpc_message_info *const KNOWN_TYPES[] = {
    &google__protobuf__any__orpc_info,
    &google__protobuf__timestamp__orpc_info,
    &google__protobuf__duration__orpc_info,
    &google__protobuf__double_value__orpc_info,
    &google__protobuf__float_value__orpc_info,
    &google__protobuf__int64_value__orpc_info,
    &google__protobuf__uint64_value__orpc_info,
    &google__protobuf__int32_value__orpc_info,
    &google__protobuf__uint32_value__orpc_info,
    &google__protobuf__bool_value__orpc_info,
    &google__protobuf__string_value__orpc_info,
    &google__protobuf__bytes_value__orpc_info,
    &google__protobuf__struct__orpc_info,
    &google__protobuf__value__orpc_info,
    &google__protobuf__list_value__orpc_info,
    &google__protobuf__field_mask__orpc_info,
    &google__protobuf__empty__orpc_info,
    &google__rpc__status__orpc_info,
};

typedef struct typeset {
    orpc__json_mtype *v;
    size_t n;
    size_t cap;
} typeset;

static int typeset_add(typeset *s, orpc__json_mtype t)
{
    if (t.d == NULL) {
        return 0;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].d == t.d) {
            if (s->v[i].info == NULL) {
                s->v[i].info = t.info;
            }
            return 0;
        }
    }
    if (s->n == s->cap) {
        size_t cap = s->cap != 0 ? s->cap * 2 : 32;
        orpc__json_mtype *v = realloc(s->v, cap * sizeof *v);
        if (v == NULL) {
            return -1;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = t;
    return 0;
}

/* The type named |name| (|len| bytes) among those reachable from |root| and
 * KNOWN_TYPES: 1 found, 0 not, -1 out of memory.  |*cache| remembers the
 * last type found. */
static int find_type(orpc__json_mtype root, orpc__json_mtype *cache,
                     const char *name, size_t len, orpc__json_mtype *out)
{
    if (cache->d != NULL && strlen(cache->d->name) == len &&
        memcmp(cache->d->name, name, len) == 0) {
        *out = *cache;
        return 1;
    }
    typeset s = {NULL, 0, 0};
    int rc = typeset_add(&s, root);
    for (size_t k = 0;
         rc == 0 && k < sizeof KNOWN_TYPES / sizeof KNOWN_TYPES[0]; k++) {
        rc = typeset_add(
            &s, orpc__json_mt(KNOWN_TYPES[k]->descriptor, KNOWN_TYPES[k]));
    }
    for (size_t i = 0; rc == 0 && i < s.n; i++) {
        orpc__json_mtype t = s.v[i];
        if (t.d->name != NULL && strlen(t.d->name) == len &&
            memcmp(t.d->name, name, len) == 0) {
            *out = t;
            *cache = t;
            rc = 1;
            break;
        }
        for (unsigned f = 0; rc == 0 && f < t.d->n_fields; f++) {
            if (t.d->fields[f].type == PROTOBUF_C_TYPE_MESSAGE) {
                rc = typeset_add(&s, orpc__json_mt_field(t, f));
            }
        }
    }
    free(s.v);
    return rc;
}

/* The type name of a type URL: what follows the last '/'; NULL if none. */
static const char *type_url_name(const char *url)
{
    const char *slash = url != NULL ? strrchr(url, '/') : NULL;
    if (slash == NULL || slash[1] == '\0') {
        return NULL;
    }
    return slash + 1;
}

static int enc_value(orpc__json_enc *c, const Google__Protobuf__Value *v,
                     unsigned depth, json_t **out);

static int enc_struct(orpc__json_enc *c, const Google__Protobuf__Struct *s,
                      unsigned depth, json_t **out)
{
    if (depth + 1 > c->max_depth) {
        return orpc__json_enc_too_deep(c);
    }
    if (s != NULL && s->n_fields > 0 && s->fields == NULL) {
        return orpc__json_enc_fail(c, ORPC_EINVAL,
                                   "%zu Struct fields counted, none stored",
                                   s->n_fields);
    }
    json_t *obj = json_object();
    if (obj == NULL) {
        return ORPC_ENOMEM;
    }
    for (size_t k = 0; s != NULL && k < s->n_fields; k++) {
        const Google__Protobuf__Struct__FieldsEntry *e = s->fields[k];
        json_t *v = NULL;
        int rc = 0;
        const char *key = e != NULL && e->key != NULL ? e->key : "";
        if (e == NULL || !orpc__json_utf8_valid(key, strlen(key))) {
            size_t mark = orpc__json_path_index(&c->path, k);
            rc = orpc__json_enc_fail(c, ORPC_EINVAL,
                                     "Struct entry missing or its key not "
                                     "UTF-8");
            orpc__json_path_pop(&c->path, mark);
        }
        if (rc == 0) {
            size_t mark = orpc__json_path_mapkey(&c->path, key);
            rc = enc_value(c, e->value, depth + 1, &v);
            orpc__json_path_pop(&c->path, mark);
        }
        if (rc == 0 && json_object_set_new_nocheck(obj, key, v) < 0) {
            rc = ORPC_ENOMEM;
        }
        if (rc != 0) {
            json_decref(obj);
            return rc;
        }
    }
    *out = obj;
    return 0;
}

static int enc_list_value(orpc__json_enc *c,
                          const Google__Protobuf__ListValue *l, unsigned depth,
                          json_t **out)
{
    if (depth + 1 > c->max_depth) {
        return orpc__json_enc_too_deep(c);
    }
    if (l != NULL && l->n_values > 0 && l->values == NULL) {
        return orpc__json_enc_fail(c, ORPC_EINVAL,
                                   "%zu ListValue values counted, none stored",
                                   l->n_values);
    }
    json_t *a = json_array();
    if (a == NULL) {
        return ORPC_ENOMEM;
    }
    for (size_t k = 0; l != NULL && k < l->n_values; k++) {
        json_t *v = NULL;
        size_t mark = orpc__json_path_index(&c->path, k);
        int rc = enc_value(c, l->values[k], depth + 1, &v);
        orpc__json_path_pop(&c->path, mark);
        if (rc == 0 && json_array_append_new(a, v) < 0) {
            rc = ORPC_ENOMEM;
        }
        if (rc != 0) {
            json_decref(a);
            return rc;
        }
    }
    *out = a;
    return 0;
}

static int enc_value(orpc__json_enc *c, const Google__Protobuf__Value *v,
                     unsigned depth, json_t **out)
{
    if (v == NULL) {
        return orpc__json_mk(json_null(), out);
    }
    switch (v->kind_case) {
    case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE: {
        double d = v->number_value;
        if (!isfinite(d)) { /* would read back as a string */
            return orpc__json_enc_fail(c, ORPC_EINVAL,
                                       "Value number is not finite");
        }
        if (orpc__json_is_integral(d) &&
            orpc__json_dabs(d) <= ORPC__JSON_EXACT_DOUBLE_MAX &&
            !(d == 0 && signbit(d))) { /* -0.0 stays a real */
            return orpc__json_mk(json_integer((json_int_t)d), out);
        }
        return orpc__json_mk(json_real(d), out);
    }
    case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE: {
        const char *s = v->string_value != NULL ? v->string_value : "";
        int rc = orpc__json_mk_string(s, strlen(s), out);
        return rc == ORPC_EINVAL
                   ? orpc__json_enc_fail(c, rc, "invalid UTF-8 in a string")
                   : rc;
    }
    case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
        return orpc__json_mk(json_boolean(v->bool_value != 0), out);
    case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
        return enc_struct(c, v->struct_value, depth, out);
    case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE:
        return enc_list_value(c, v->list_value, depth, out);
    default: /* null_value, or nothing set */
        return orpc__json_mk(json_null(), out);
    }
}

static int enc_any(orpc__json_enc *c, const Google__Protobuf__Any *a,
                   unsigned depth, json_t **out)
{
    if (depth + 1 > c->max_depth) {
        return orpc__json_enc_too_deep(c);
    }
    const char *url = a->type_url != NULL ? a->type_url : "";
    if (url[0] == '\0' && a->value.len == 0) {
        return orpc__json_mk(json_object(), out);
    }
    const char *name = type_url_name(url);
    if (name == NULL || !orpc__json_utf8_valid(url, strlen(url)) ||
        (a->value.len > 0 && a->value.data == NULL)) {
        orpc__buf q = {0};
        orpc__json_enc_fail(c, ORPC_EINVAL, "invalid Any (type URL %s)",
                            orpc__json_quoted(&q, url));
        orpc__buf_free(&q);
        return ORPC_EINVAL;
    }
    orpc__json_mtype it;
    int rc = find_type(c->root, &c->any_cache, name, strlen(name), &it);
    if (rc < 0) {
        return ORPC_ENOMEM;
    }
    if (rc == 0) {
        orpc__buf q = {0};
        orpc__json_enc_fail(c, ORPC_EINVAL,
                            "Any of unknown type %s (no orpc table of it "
                            "is reachable)",
                            orpc__json_quoted(&q, name));
        orpc__buf_free(&q);
        return ORPC_EINVAL;
    }
    ProtobufCMessage *im =
        protobuf_c_message_unpack(it.d, NULL, a->value.len, a->value.data);
    if (im == NULL) {
        return orpc__json_enc_fail(
            c, ORPC_EINVAL, "Any value does not unpack as %s", it.d->name);
    }
    json_t *obj = json_object();
    json_t *inner = NULL;
    rc = obj != NULL ? 0 : ORPC_ENOMEM;
    if (rc == 0 && json_object_set_new_nocheck(obj, "@type",
                                               json_string_nocheck(url)) < 0) {
        rc = ORPC_ENOMEM;
    }
    if (rc == 0 && orpc__json_wkt_of(it.d) != ORPC__WKT_NONE) {
        size_t mark = orpc__json_path_key(&c->path, "value");
        rc = orpc__json_enc_msg(c, it, im, depth + 1, &inner);
        orpc__json_path_pop(&c->path, mark);
        if (rc == 0 && json_object_set_new_nocheck(obj, "value", inner) < 0) {
            rc = ORPC_ENOMEM;
        }
    } else if (rc == 0) {
        rc = orpc__json_enc_msg(c, it, im, depth, &inner);
        const char *k;
        json_t *x;
        json_object_foreach(inner, k, x)
        {
            if (rc == 0 && json_object_set_nocheck(obj, k, x) < 0) {
                rc = ORPC_ENOMEM;
            }
        }
        json_decref(inner);
    }
    protobuf_c_message_free_unpacked(im, NULL);
    if (rc != 0) {
        json_decref(obj);
        return rc;
    }
    *out = obj;
    return 0;
}

int orpc__json_enc_wkt(orpc__json_enc *c, enum orpc__json_wkt kind,
                       orpc__json_mtype t, const ProtobufCMessage *m,
                       unsigned depth, json_t **out)
{
    char buf[64];
    switch (kind) {
    case ORPC__WKT_TIMESTAMP: {
        const Google__Protobuf__Timestamp *ts = (const void *)m;
        if (orpc__json_fmt_timestamp(ts->seconds, ts->nanos, buf, sizeof buf) <
            0) {
            return orpc__json_enc_fail(
                c, ORPC_EINVAL,
                "Timestamp out of range (seconds %" PRId64 ", nanos %" PRId32
                ")",
                ts->seconds, ts->nanos);
        }
        return orpc__json_mk(json_string_nocheck(buf), out);
    }
    case ORPC__WKT_DURATION: {
        const Google__Protobuf__Duration *d = (const void *)m;
        if (orpc__json_fmt_duration(d->seconds, d->nanos, buf, sizeof buf) <
            0) {
            return orpc__json_enc_fail(c, ORPC_EINVAL,
                                       "Duration out of range (seconds %" PRId64
                                       ", nanos %" PRId32 ")",
                                       d->seconds, d->nanos);
        }
        return orpc__json_mk(json_string_nocheck(buf), out);
    }
    case ORPC__WKT_WRAPPER:
        return orpc__json_enc_scalar(c, &t.d->fields[0], NULL,
                                     (const char *)m + t.d->fields[0].offset,
                                     out);
    case ORPC__WKT_STRUCT:
        return enc_struct(c, (const void *)m, depth, out);
    case ORPC__WKT_VALUE:
        return enc_value(c, (const void *)m, depth, out);
    case ORPC__WKT_LIST:
        return enc_list_value(c, (const void *)m, depth, out);
    case ORPC__WKT_FIELDMASK: {
        const Google__Protobuf__FieldMask *fm = (const void *)m;
        orpc__buf b = {0};
        if (fm->n_paths > 0 && fm->paths == NULL) {
            return orpc__json_enc_fail(c, ORPC_EINVAL,
                                       "%zu FieldMask paths counted, none "
                                       "stored",
                                       fm->n_paths);
        }
        for (size_t k = 0; k < fm->n_paths; k++) {
            if (k > 0) {
                orpc__buf_putc(&b, ',');
            }
            if (fm->paths[k] == NULL ||
                fieldmask_path_to_json(&b, fm->paths[k]) < 0) {
                orpc__buf_free(&b);
                orpc__buf q = {0};
                orpc__json_enc_fail(
                    c, ORPC_EINVAL,
                    "FieldMask path %s has no JSON form (lower_snake_case "
                    "only)",
                    orpc__json_quoted(&q, fm->paths[k] != NULL ? fm->paths[k]
                                                               : "(null)"));
                orpc__buf_free(&q);
                return ORPC_EINVAL;
            }
        }
        if (b.failed) {
            orpc__buf_free(&b);
            return ORPC_ENOMEM;
        }
        int rc = orpc__json_mk_string(orpc__buf_str(&b), b.len, out);
        orpc__buf_free(&b);
        return rc == ORPC_EINVAL
                   ? orpc__json_enc_fail(c, rc, "invalid UTF-8 in a path")
                   : rc;
    }
    case ORPC__WKT_ANY:
        return enc_any(c, (const void *)m, depth, out);
    case ORPC__WKT_NONE:
        break;
    }
    return orpc__json_enc_fail(c, ORPC_EINVAL, "not a well-known type");
}

static int dec_value(orpc__json_dec *c, const ProtobufCMessageDescriptor *d,
                     json_t *v, unsigned depth, ProtobufCMessage **out);

static int dec_struct(orpc__json_dec *c, const ProtobufCMessageDescriptor *d,
                      json_t *v, unsigned depth, ProtobufCMessage **out)
{
    if (!json_is_object(v)) {
        return orpc__json_fail(c, "expected an object");
    }
    if (depth + 1 > c->max_depth) {
        return orpc__json_too_deep(c);
    }
    ProtobufCMessage *m = orpc__json_msg_new(c->alloc, d);
    if (m == NULL) {
        return orpc__json_nomem(c);
    }
    Google__Protobuf__Struct *s = (Google__Protobuf__Struct *)m;
    const ProtobufCMessageDescriptor *ed = d->fields[0].descriptor;
    const ProtobufCMessageDescriptor *vd = ed->fields[1].descriptor;
    size_t n = json_object_size(v);
    int rc = 0;
    if (n > 0) {
        s->fields = orpc__json_alloc(c->alloc, n * sizeof *s->fields);
        if (s->fields == NULL) {
            rc = orpc__json_nomem(c);
        }
    }
    const char *key;
    json_t *el;
    json_object_foreach(v, key, el)
    {
        if (rc < 0) {
            break;
        }
        size_t mark = orpc__json_path_mapkey(&c->path, key);
        ProtobufCMessage *e = orpc__json_msg_new(c->alloc, ed);
        if (e == NULL) {
            rc = orpc__json_nomem(c);
        } else {
            Google__Protobuf__Struct__FieldsEntry *fe = (void *)e;
            s->fields[s->n_fields++] = fe;
            char *k = orpc__json_strndup(c->alloc, key, strlen(key));
            if (k == NULL) {
                rc = orpc__json_nomem(c);
            } else {
                fe->key = k;
                ProtobufCMessage *val = NULL;
                rc = dec_value(c, vd, el, depth + 1, &val);
                fe->value = (Google__Protobuf__Value *)val;
            }
        }
        orpc__json_path_pop(&c->path, mark);
    }
    if (rc < 0) {
        orpc__json_msg_free(c->alloc, m);
        return -1;
    }
    *out = m;
    return 0;
}

static int dec_list_value(orpc__json_dec *c,
                          const ProtobufCMessageDescriptor *d, json_t *v,
                          unsigned depth, ProtobufCMessage **out)
{
    if (!json_is_array(v)) {
        return orpc__json_fail(c, "expected an array");
    }
    if (depth + 1 > c->max_depth) {
        return orpc__json_too_deep(c);
    }
    ProtobufCMessage *m = orpc__json_msg_new(c->alloc, d);
    if (m == NULL) {
        return orpc__json_nomem(c);
    }
    Google__Protobuf__ListValue *l = (Google__Protobuf__ListValue *)m;
    const ProtobufCMessageDescriptor *vd = d->fields[0].descriptor;
    size_t n = json_array_size(v);
    int rc = 0;
    if (n > 0) {
        l->values = orpc__json_alloc(c->alloc, n * sizeof *l->values);
        if (l->values == NULL) {
            rc = orpc__json_nomem(c);
        }
    }
    for (size_t k = 0; rc == 0 && k < n; k++) {
        size_t mark = orpc__json_path_index(&c->path, k);
        ProtobufCMessage *val = NULL;
        rc = dec_value(c, vd, json_array_get(v, k), depth + 1, &val);
        if (rc == 0) {
            l->values[l->n_values++] = (Google__Protobuf__Value *)val;
        }
        orpc__json_path_pop(&c->path, mark);
    }
    if (rc < 0) {
        orpc__json_msg_free(c->alloc, m);
        return -1;
    }
    *out = m;
    return 0;
}

static int dec_value(orpc__json_dec *c, const ProtobufCMessageDescriptor *d,
                     json_t *v, unsigned depth, ProtobufCMessage **out)
{
    ProtobufCMessage *m = orpc__json_msg_new(c->alloc, d);
    if (m == NULL) {
        return orpc__json_nomem(c);
    }
    Google__Protobuf__Value *val = (Google__Protobuf__Value *)m;
    ProtobufCMessage *sub = NULL;
    int rc = 0;
    switch (json_typeof(v)) {
    case JSON_NULL:
        val->null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
        val->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        val->bool_value = json_is_true(v);
        val->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        val->number_value = json_number_value(v);
        val->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
        break;
    case JSON_STRING:
        val->string_value = orpc__json_strndup(c->alloc, json_string_value(v),
                                               json_string_length(v));
        if (val->string_value == NULL) {
            rc = orpc__json_nomem(c);
        } else {
            val->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        }
        break;
    case JSON_OBJECT:
        rc = dec_struct(c, d->fields[4].descriptor, v, depth, &sub);
        if (rc == 0) {
            val->struct_value = (Google__Protobuf__Struct *)sub;
            val->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
        }
        break;
    case JSON_ARRAY:
        rc = dec_list_value(c, d->fields[5].descriptor, v, depth, &sub);
        if (rc == 0) {
            val->list_value = (Google__Protobuf__ListValue *)sub;
            val->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
        }
        break;
    }
    if (rc < 0) {
        orpc__json_msg_free(c->alloc, m);
        return -1;
    }
    *out = m;
    return 0;
}

/* google.protobuf.FieldMask from "fooBar.baz,qux". */
static int dec_fieldmask(orpc__json_dec *c, const ProtobufCMessageDescriptor *d,
                         json_t *v, ProtobufCMessage **out)
{
    if (!json_is_string(v)) {
        return orpc__json_fail(c, "expected a field mask string");
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    ProtobufCMessage *m = orpc__json_msg_new(c->alloc, d);
    if (m == NULL) {
        return orpc__json_nomem(c);
    }
    Google__Protobuf__FieldMask *fm = (Google__Protobuf__FieldMask *)m;
    size_t count = n > 0 ? 1 : 0;
    for (size_t i = 0; i < n; i++) {
        count += s[i] == ',';
    }
    int rc = 0;
    if (count > 0) {
        fm->paths = orpc__json_alloc(c->alloc, count * sizeof *fm->paths);
        if (fm->paths == NULL) {
            rc = orpc__json_nomem(c);
        }
    }
    size_t start = 0;
    while (rc == 0 && start < n + (n > 0)) {
        const char *comma = memchr(s + start, ',', n - start);
        size_t end = comma != NULL ? (size_t)(comma - s) : n;
        size_t upper = 0;
        for (size_t i = start; i < end; i++) {
            upper += orpc__json_isupper(s[i]);
            if (s[i] == '_') {
                rc = orpc__json_fail(
                    c, "field mask path must be lowerCamelCase (no '_')");
            }
        }
        if (rc == 0 && end == start) {
            rc = orpc__json_fail(c, "empty field mask path");
        }
        char *p = rc == 0 ? orpc__json_alloc(c->alloc, end - start + upper + 1)
                          : NULL;
        if (rc == 0 && p == NULL) {
            rc = orpc__json_nomem(c);
        }
        if (rc == 0) {
            size_t j = 0;
            for (size_t i = start; i < end; i++) {
                if (orpc__json_isupper(s[i])) {
                    p[j++] = '_';
                    p[j++] = (char)(s[i] - 'A' + 'a');
                } else {
                    p[j++] = s[i];
                }
            }
            p[j] = '\0';
            fm->paths[fm->n_paths++] = p;
        }
        start = end + 1;
    }
    if (rc < 0) {
        orpc__json_msg_free(c->alloc, m);
        return -1;
    }
    *out = m;
    return 0;
}

static int dec_any(orpc__json_dec *c, orpc__json_mtype t, json_t *v,
                   unsigned depth, ProtobufCMessage **out)
{
    if (!json_is_object(v)) {
        return orpc__json_fail(c, "expected an object for google.protobuf.Any");
    }
    if (depth + 1 > c->max_depth) {
        return orpc__json_too_deep(c);
    }
    json_t *ty = json_object_get(v, "@type");
    if (ty == NULL) {
        if (json_object_size(v) != 0) {
            return orpc__json_fail(c, "google.protobuf.Any without \"@type\"");
        }
        ProtobufCMessage *m = orpc__json_msg_new(c->alloc, t.d);
        if (m == NULL) {
            return orpc__json_nomem(c);
        }
        *out = m;
        return 0;
    }
    size_t mark = orpc__json_path_key(&c->path, "@type");
    if (!json_is_string(ty)) {
        orpc__json_fail(c, "expected a type URL string");
        orpc__json_path_pop(&c->path, mark);
        return -1;
    }
    const char *url = json_string_value(ty);
    const char *name = type_url_name(url);
    orpc__json_mtype it;
    int found = name != NULL
                    ? find_type(c->root, &c->any_cache, name, strlen(name), &it)
                    : 0;
    if (found <= 0) {
        orpc__buf q = {0};
        if (found < 0) {
            orpc__json_nomem(c);
        } else if (name == NULL) {
            orpc__json_fail(c, "invalid type URL %s",
                            orpc__json_quoted(&q, url));
        } else {
            orpc__json_fail(
                c, "unknown type %s (no orpc table of it is reachable)",
                orpc__json_quoted(&q, name));
        }
        orpc__buf_free(&q);
        orpc__json_path_pop(&c->path, mark);
        return -1;
    }
    orpc__json_path_pop(&c->path, mark);

    ProtobufCMessage *im = NULL;
    int rc = 0;
    if (orpc__json_wkt_of(it.d) != ORPC__WKT_NONE) {
        const char *key;
        json_t *el;
        json_object_foreach(v, key, el)
        {
            if (strcmp(key, "@type") != 0 && strcmp(key, "value") != 0 &&
                !c->ignore_unknown) {
                size_t m2 = orpc__json_path_key(&c->path, key);
                orpc__json_fail(c, "unknown field");
                orpc__json_path_pop(&c->path, m2);
                return -1;
            }
        }
        json_t *val = json_object_get(v, "value");
        if (val == NULL) {
            return orpc__json_fail(
                c, "google.protobuf.Any of %s without \"value\"", it.d->name);
        }
        size_t m2 = orpc__json_path_key(&c->path, "value");
        rc = orpc__json_dec_msg(c, it, val, depth + 1, &im);
        orpc__json_path_pop(&c->path, m2);
    } else {
        im = orpc__json_msg_new(c->alloc, it.d);
        if (im == NULL) {
            return orpc__json_nomem(c);
        }
        rc = orpc__json_dec_fields(c, it, v, depth + 1, im, 1);
        if (rc < 0) {
            orpc__json_msg_free(c->alloc, im);
            im = NULL;
        }
    }
    if (rc < 0) {
        return -1;
    }
    ProtobufCMessage *m = orpc__json_msg_new(c->alloc, t.d);
    size_t sz = protobuf_c_message_get_packed_size(im);
    uint8_t *buf = m != NULL ? orpc__json_alloc(c->alloc, sz) : NULL;
    char *type_url =
        buf != NULL ? orpc__json_strndup(c->alloc, url, strlen(url)) : NULL;
    if (type_url == NULL) {
        orpc__json_free(c->alloc, buf);
        orpc__json_msg_free(c->alloc, m);
        orpc__json_msg_free(c->alloc, im);
        return orpc__json_nomem(c);
    }
    protobuf_c_message_pack(im, buf);
    orpc__json_msg_free(c->alloc, im);
    Google__Protobuf__Any *a = (Google__Protobuf__Any *)m;
    a->type_url = type_url;
    a->value.data = sz > 0 ? buf : NULL;
    a->value.len = sz;
    if (sz == 0) {
        orpc__json_free(c->alloc, buf);
    }
    *out = m;
    return 0;
}

/* Timestamp, Duration and wrappers. */
static int dec_simple_wkt(orpc__json_dec *c, enum orpc__json_wkt kind,
                          orpc__json_mtype t, json_t *v, ProtobufCMessage **out)
{
    int64_t sec = 0;
    int32_t nanos = 0;
    if (kind == ORPC__WKT_TIMESTAMP || kind == ORPC__WKT_DURATION) {
        if (!json_is_string(v)) {
            return orpc__json_fail(
                c, kind == ORPC__WKT_TIMESTAMP
                       ? "expected an RFC 3339 timestamp string"
                       : "expected a duration string like \"1.5s\"");
        }
        int rc = kind == ORPC__WKT_TIMESTAMP
                     ? orpc__json_parse_timestamp(json_string_value(v),
                                                  json_string_length(v), &sec,
                                                  &nanos)
                     : orpc__json_parse_duration(json_string_value(v),
                                                 json_string_length(v), &sec,
                                                 &nanos);
        if (rc < 0) {
            orpc__buf q = {0};
            orpc__json_fail(c, "invalid %s %s",
                            kind == ORPC__WKT_TIMESTAMP ? "timestamp"
                                                        : "duration",
                            orpc__json_quoted(&q, json_string_value(v)));
            orpc__buf_free(&q);
            return -1;
        }
    } else if (json_is_null(v)) {
        return orpc__json_fail(c, "null is not allowed here");
    }
    ProtobufCMessage *m = orpc__json_msg_new(c->alloc, t.d);
    if (m == NULL) {
        return orpc__json_nomem(c);
    }
    if (kind == ORPC__WKT_TIMESTAMP) {
        Google__Protobuf__Timestamp *ts = (Google__Protobuf__Timestamp *)m;
        ts->seconds = sec;
        ts->nanos = nanos;
    } else if (kind == ORPC__WKT_DURATION) {
        Google__Protobuf__Duration *d = (Google__Protobuf__Duration *)m;
        d->seconds = sec;
        d->nanos = nanos;
    } else if (orpc__json_dec_scalar(c, &t.d->fields[0], NULL, v,
                                     (char *)m + t.d->fields[0].offset) != 0) {
        orpc__json_msg_free(c->alloc, m);
        return -1;
    }
    *out = m;
    return 0;
}

int orpc__json_dec_wkt(orpc__json_dec *c, enum orpc__json_wkt kind,
                       orpc__json_mtype t, json_t *v, unsigned depth,
                       ProtobufCMessage **out)
{
    switch (kind) {
    case ORPC__WKT_ANY:
        return dec_any(c, t, v, depth, out);
    case ORPC__WKT_TIMESTAMP:
    case ORPC__WKT_DURATION:
    case ORPC__WKT_WRAPPER:
        return dec_simple_wkt(c, kind, t, v, out);
    case ORPC__WKT_STRUCT:
        return dec_struct(c, t.d, v, depth, out);
    case ORPC__WKT_VALUE:
        return dec_value(c, t.d, v, depth, out);
    case ORPC__WKT_LIST:
        return dec_list_value(c, t.d, v, depth, out);
    case ORPC__WKT_FIELDMASK:
        return dec_fieldmask(c, t.d, v, out);
    case ORPC__WKT_NONE:
        break;
    }
    return orpc__json_fail(c, "not a well-known type");
}
