/*
 * dynmsg.c — proto3 JSON <-> protobuf wire bytes for message types the
 * `orpc` command knows only from FileDescriptorProtos (server reflection,
 * --protoset, --proto), and the raw message that carries the bytes through
 * liborpc (see dynmsg.h).
 *
 * Design notes:
 * - The encoder walks the JSON object and writes each field as it comes
 *   (tag, then value); a nested message or a packed run is written into a
 *   buffer of its own first, for its length prefix.  Repeated scalars are
 *   packed as the file's syntax (proto3) or the field's [packed] option
 *   says; the decoder reads both forms.
 * - The decoder collects fields in a jansson object keyed by JSON name as
 *   they come off the wire (the last value of a singular field wins,
 *   repeated ones append, map entries insert), then reorders them into
 *   declaration order.  proto3's implicit-presence scalars equal to their
 *   default are left out, as protobuf's own printers do.
 * - The JSON mapping covered: every scalar (64-bit integers printed as
 *   strings, accepted as numbers or strings), NaN and Infinity, bytes as
 *   base64 (either alphabet in, standard out), enums by name (numbers
 *   accepted), nested messages, repeated, maps, oneofs (two members of one
 *   oneof refused), the special forms of the well-known types (wkt.c),
 *   Any as {"@type": URL, ...} when the pool has the type its URL names
 *   (else, decoding, the plain {"typeUrl", "value"}); groups are refused.
 * - Input is untrusted: nesting is at most ORPC__DYN_MAX_DEPTH, lengths are
 *   checked against what is left before anything is read, and text fields
 *   must be UTF-8 (jansson checks).
 */
#include "dynmsg.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "wkt.h"

typedef Google__Protobuf__FieldDescriptorProto Field;
#define T(x) GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_##x
#define REPEATED GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

typedef struct ctx {
    const orpc__dpool *pool;
    char *err;
    size_t errlen;
    char path[512]; /* "$.a.b[2]": where we are, for errors */
    size_t plen;
} ctx;

__attribute__((format(printf, 2, 3))) static int fail(ctx *c, const char *fmt,
                                                      ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s: %s", c->path, what);
    return -1;
}

/* Appends ".name" or "[i]" to the path; returns the old length. */
__attribute__((format(printf, 2, 3))) static size_t push(ctx *c,
                                                         const char *fmt, ...)
{
    size_t old = c->plen;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->path + c->plen, sizeof c->path - c->plen, fmt, ap);
    va_end(ap);
    if (n > 0)
        c->plen += (size_t)n;
    if (c->plen >= sizeof c->path)
        c->plen = sizeof c->path - 1;
    return old;
}

static void pop(ctx *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

/* ---- descriptors ---- */

static int wire_type(const Field *f)
{
    switch ((int)f->type) {
    case T(DOUBLE):
    case T(FIXED64):
    case T(SFIXED64):
        return WT_I64;
    case T(FLOAT):
    case T(FIXED32):
    case T(SFIXED32):
        return WT_I32;
    case T(STRING):
    case T(BYTES):
    case T(MESSAGE):
        return WT_LEN;
    case T(GROUP):
        return -1;
    default:
        return WT_VARINT;
    }
}

/* The JSON name of |f| into |buf|: json_name, else lowerCamelCase. */
static const char *json_name(const Field *f, char *buf, size_t cap)
{
    if (f->json_name && f->json_name[0])
        return f->json_name;
    size_t n = 0;
    int up = 0;
    for (const char *s = f->name ? f->name : ""; *s && n + 1 < cap; s++) {
        if (*s == '_') {
            up = 1;
            continue;
        }
        buf[n++] = up && *s >= 'a' && *s <= 'z' ? (char)(*s - 'a' + 'A') : *s;
        up = 0;
    }
    buf[n] = '\0';
    return buf;
}

static const Field *field_by_number(const orpc__dmsg *m, uint32_t num)
{
    for (size_t i = 0; i < m->msg->n_field; i++)
        if (m->msg->field[i]->has_number &&
            (uint32_t)m->msg->field[i]->number == num)
            return m->msg->field[i];
    return NULL;
}

static const Field *field_by_json(const orpc__dmsg *m, const char *key)
{
    char buf[256];
    for (size_t i = 0; i < m->msg->n_field; i++) {
        const Field *f = m->msg->field[i];
        if ((f->name && strcmp(f->name, key) == 0) ||
            strcmp(json_name(f, buf, sizeof buf), key) == 0)
            return f;
    }
    return NULL;
}

static int is_proto3(const orpc__dmsg *m)
{
    return m->file->syntax && strcmp(m->file->syntax, "proto3") == 0;
}

static int packed(const orpc__dmsg *m, const Field *f)
{
    if (f->label != REPEATED || wire_type(f) == WT_LEN || wire_type(f) < 0)
        return 0;
    if (f->options && f->options->has_packed)
        return f->options->packed;
    return is_proto3(m);
}

/* The message type of |f| (a message field); 0 when the pool lacks it. */
static int field_message(ctx *c, const Field *f, orpc__dmsg *out)
{
    if (f->type_name && orpc__dpool_message(c->pool, f->type_name, out))
        return 1;
    return fail(c, "type %s is not in the descriptors", f->type_name) + 1;
}

/* Nonzero for a google.protobuf.Value field, for which JSON null is a
 * value (NULL_VALUE), not "unset". */
static int null_is_value(const Field *f)
{
    return f->type == T(MESSAGE) && f->type_name &&
           orpc__wkt_is_value(f->type_name);
}

static int is_map(ctx *c, const Field *f, orpc__dmsg *entry)
{
    if (f->label != REPEATED || f->type != T(MESSAGE) || f->type_name == NULL)
        return 0;
    if (!orpc__dpool_message(c->pool, f->type_name, entry))
        return 0;
    return entry->msg->options && entry->msg->options->map_entry;
}

/* ---- encoding ---- */

static void put_varint(orpc__buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    orpc__buf_append(b, tmp, n);
}

static void put_fixed(orpc__buf *b, uint64_t v, int bytes)
{
    uint8_t tmp[8];
    for (int i = 0; i < bytes; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    orpc__buf_append(b, tmp, (size_t)bytes);
}

static void put_tag(orpc__buf *b, uint32_t num, int wt)
{
    put_varint(b, ((uint64_t)num << 3) | (uint64_t)wt);
}

/* An integer from a JSON number or a decimal string. */
static int json_int(ctx *c, const json_t *v, int is_signed, int64_t *s,
                    uint64_t *u)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (!is_signed && i < 0)
            return fail(c, "negative value for an unsigned field");
        *s = i;
        *u = (uint64_t)i;
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != floor(d) || d < -9.2233720368547758e18 ||
            d >= 1.8446744073709552e19 || (!is_signed && d < 0))
            return fail(c, "not an integer");
        if (is_signed && d >= 9.2233720368547758e18)
            return fail(c, "out of range");
        *s = (int64_t)d;
        *u = d < 0 ? (uint64_t)*s : (uint64_t)d;
        return 0;
    }
    if (json_is_string(v)) {
        const char *t = json_string_value(v);
        char *end = NULL;
        errno = 0;
        if (is_signed) {
            *s = strtoll(t, &end, 10);
            *u = (uint64_t)*s;
        } else {
            if (t[0] == '-')
                return fail(c, "negative value for an unsigned field");
            *u = strtoull(t, &end, 10);
            *s = (int64_t)*u;
        }
        if (end == t || *end != '\0' || errno == ERANGE)
            return fail(c, "not an integer: \"%s\"", t);
        return 0;
    }
    return fail(c, "not an integer");
}

static int json_float(ctx *c, const json_t *v, double *d)
{
    if (json_is_number(v)) {
        *d = json_number_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *t = json_string_value(v);
        if (strcmp(t, "NaN") == 0)
            *d = NAN;
        else if (strcmp(t, "Infinity") == 0)
            *d = INFINITY;
        else if (strcmp(t, "-Infinity") == 0)
            *d = -INFINITY;
        else {
            char *end = NULL;
            *d = strtod(t, &end);
            if (end == t || *end != '\0')
                return fail(c, "not a number: \"%s\"", t);
        }
        return 0;
    }
    return fail(c, "not a number");
}

static int encode_msg(ctx *c, const orpc__dmsg *m, const json_t *in,
                      orpc__buf *b, int depth);

static int is_any(const char *type)
{
    return strcmp(type[0] == '.' ? type + 1 : type, "google.protobuf.Any") == 0;
}

/* The type named by an Any's type URL ("type.googleapis.com/pkg.Msg"),
 * looked up in the pool; 0 when it is not there. */
static int any_type(ctx *c, const char *url, orpc__dmsg *m, const char **name)
{
    const char *slash = strrchr(url, '/');
    *name = slash ? slash + 1 : url;
    return (*name)[0] != '\0' && orpc__dpool_message(c->pool, *name, m);
}

/* {"@type": URL, ...} -> the plain Any {"typeUrl": URL, "value": base64 of
 * the packed message}: the fields (or, for a well-known type with a
 * special form, "value") encoded as the type the URL names. */
static json_t *any_to_plain(ctx *c, const json_t *v, int depth)
{
    const char *url = json_string_value(json_object_get(v, "@type")), *name;
    orpc__dmsg m;
    if (!json_is_object(v) || url == NULL) {
        fail(c, "an Any without \"@type\"");
        return NULL;
    }
    if (!any_type(c, url, &m, &name)) {
        fail(c, "Any of type %s: the type is not in the descriptors", url);
        return NULL;
    }
    json_t *body;
    char why[256];
    if (orpc__wkt_is_special(name)) {
        body = orpc__wkt_to_plain(name, json_object_get(v, "value"), why,
                                  sizeof why);
        if (body == NULL) {
            fail(c, "Any of type %s: %s", url, why);
            return NULL;
        }
    } else {
        body = json_deep_copy(v);
        json_object_del(body, "@type");
    }
    orpc__buf bytes = {0}, text = {0};
    int rc = body ? encode_msg(c, &m, body, &bytes, depth + 1) : -1;
    json_decref(body);
    json_t *out = NULL;
    if (rc == 0 &&
        orpc__base64_append(&text, bytes.data ? bytes.data : (uint8_t *)"",
                            bytes.len, 0) == 0)
        out = json_pack("{s:s, s:s}", "typeUrl", url, "value",
                        text.data ? (char *)text.data : "");
    orpc__buf_free(&bytes);
    orpc__buf_free(&text);
    return out;
}

/* Writes the integer |v| as the integer field type |type| reads it: range
 * (32 or 64 bits, signed or not), then varint, zigzag or fixed width. */
static int encode_int(ctx *c, int type, const json_t *v, orpc__buf *b)
{
    int is32 = type == T(INT32) || type == T(SINT32) || type == T(SFIXED32) ||
               type == T(UINT32) || type == T(FIXED32);
    int is_signed = type == T(INT32) || type == T(SINT32) ||
                    type == T(SFIXED32) || type == T(INT64) ||
                    type == T(SINT64) || type == T(SFIXED64);
    int64_t s = 0;
    uint64_t u = 0;
    if (json_int(c, v, is_signed, &s, &u) != 0)
        return -1;
    if (is32 && (is_signed ? s < INT32_MIN || s > INT32_MAX : u > UINT32_MAX))
        return fail(c, "out of range for a 32-bit integer");
    uint64_t w = is_signed ? (uint64_t)s : u;
    if (type == T(SINT32))
        w = (uint32_t)(((uint32_t)s << 1) ^ (uint32_t)(s >> 31));
    else if (type == T(SINT64))
        w = ((uint64_t)s << 1) ^ (uint64_t)(s >> 63);
    if (type == T(FIXED32) || type == T(SFIXED32))
        put_fixed(b, (uint32_t)w, 4);
    else if (type == T(FIXED64) || type == T(SFIXED64))
        put_fixed(b, w, 8);
    else
        put_varint(b, w);
    return 0;
}

/* Writes the value |v| of field |f| (no tag) to |b|. */
static int encode_value(ctx *c, const Field *f, const json_t *v, orpc__buf *b,
                        int depth)
{
    int64_t s = 0;
    uint64_t u = 0;
    double d = 0;
    switch ((int)f->type) {
    case T(INT32):
    case T(SINT32):
    case T(SFIXED32):
    case T(UINT32):
    case T(FIXED32):
    case T(INT64):
    case T(SINT64):
    case T(SFIXED64):
    case T(UINT64):
    case T(FIXED64):
        return encode_int(c, (int)f->type, v, b);
    case T(BOOL):
        if (!json_is_boolean(v))
            return fail(c, "not a boolean");
        put_varint(b, json_is_true(v));
        return 0;
    case T(DOUBLE):
    case T(FLOAT): {
        if (json_float(c, v, &d) != 0)
            return -1;
        if (f->type == T(FLOAT)) {
            float fl = (float)d;
            uint32_t bits;
            if (isfinite(d) && !isfinite(fl))
                return fail(c, "out of range for a float");
            memcpy(&bits, &fl, 4);
            put_fixed(b, bits, 4);
        } else {
            uint64_t bits;
            memcpy(&bits, &d, 8);
            put_fixed(b, bits, 8);
        }
        return 0;
    }
    case T(ENUM): {
        if (json_is_string(v)) {
            const Google__Protobuf__EnumDescriptorProto *e =
                f->type_name ? orpc__dpool_enum(c->pool, f->type_name) : NULL;
            const char *name = json_string_value(v);
            for (size_t i = 0; e && i < e->n_value; i++)
                if (e->value[i]->name && strcmp(e->value[i]->name, name) == 0) {
                    put_varint(b, (uint64_t)(int64_t)e->value[i]->number);
                    return 0;
                }
            return fail(c, "no enum value \"%s\"", name);
        }
        if (json_int(c, v, 1, &s, &u) != 0 || s < INT32_MIN || s > INT32_MAX)
            return fail(c, "not an enum value");
        put_varint(b, (uint64_t)s);
        return 0;
    }
    case T(STRING):
        if (!json_is_string(v))
            return fail(c, "not a string");
        put_varint(b, json_string_length(v));
        orpc__buf_append(b, json_string_value(v), json_string_length(v));
        return 0;
    case T(BYTES): {
        if (!json_is_string(v))
            return fail(c, "not a base64 string");
        orpc__buf raw = {0};
        if (orpc__base64_decode(&raw, json_string_value(v),
                                json_string_length(v)) != 0) {
            orpc__buf_free(&raw);
            return fail(c, "not base64");
        }
        put_varint(b, raw.len);
        orpc__buf_append(b, raw.data, raw.len);
        orpc__buf_free(&raw);
        return 0;
    }
    case T(MESSAGE): {
        orpc__dmsg sub;
        if (!field_message(c, f, &sub))
            return -1;
        char why[256];
        json_t *plain =
            is_any(f->type_name)
                ? any_to_plain(c, v, depth)
                : orpc__wkt_to_plain(f->type_name, v, why, sizeof why);
        if (plain == NULL)
            return is_any(f->type_name) ? -1 : fail(c, "%s", why);
        orpc__buf tmp = {0};
        int rc = encode_msg(c, &sub, plain, &tmp, depth + 1);
        json_decref(plain);
        if (rc == 0) {
            put_varint(b, tmp.len);
            orpc__buf_append(b, tmp.data, tmp.len);
        }
        orpc__buf_free(&tmp);
        return rc;
    }
    default:
        return fail(c, "groups are not supported");
    }
}

/* A map key, given as a JSON object key, as the JSON value the key field's
 * type reads. */
static json_t *map_key(const Field *kf, const char *key)
{
    if (kf->type == T(STRING))
        return json_string(key);
    if (kf->type == T(BOOL))
        return strcmp(key, "true") == 0    ? json_true()
               : strcmp(key, "false") == 0 ? json_false()
                                           : json_string(key);
    return json_string(key); /* integers are read from strings too */
}

static int encode_field(ctx *c, const orpc__dmsg *m, const Field *f,
                        const json_t *v, orpc__buf *b, int depth)
{
    uint32_t num = (uint32_t)f->number;
    orpc__dmsg entry;
    if (f->label != REPEATED) {
        put_tag(b, num, wire_type(f));
        return encode_value(c, f, v, b, depth);
    }
    if (is_map(c, f, &entry)) {
        const Field *kf = field_by_number(&entry, 1),
                    *vf = field_by_number(&entry, 2);
        if (!json_is_object(v) || kf == NULL || vf == NULL)
            return fail(c, "not an object (a map)");
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val)
        {
            size_t old = push(c, "[\"%s\"]", key);
            orpc__buf e = {0};
            json_t *k = map_key(kf, key);
            put_tag(&e, 1, wire_type(kf));
            int rc = encode_value(c, kf, k, &e, depth);
            json_decref(k);
            if (rc == 0 && (!json_is_null(val) || null_is_value(vf))) {
                put_tag(&e, 2, wire_type(vf));
                rc = encode_value(c, vf, val, &e, depth + 1);
            }
            if (rc == 0) {
                put_tag(b, num, WT_LEN);
                put_varint(b, e.len);
                orpc__buf_append(b, e.data, e.len);
            }
            orpc__buf_free(&e);
            if (rc != 0)
                return -1;
            pop(c, old);
        }
        return 0;
    }
    if (!json_is_array(v))
        return fail(c, "not an array (a repeated field)");
    int pk = packed(m, f);
    orpc__buf run = {0};
    size_t i;
    json_t *el;
    json_array_foreach(v, i, el)
    {
        size_t old = push(c, "[%zu]", i);
        if (!pk)
            put_tag(b, num, wire_type(f));
        if (encode_value(c, f, el, pk ? &run : b, depth) != 0) {
            orpc__buf_free(&run);
            return -1;
        }
        pop(c, old);
    }
    if (pk && json_array_size(v) > 0) {
        put_tag(b, num, WT_LEN);
        put_varint(b, run.len);
        orpc__buf_append(b, run.data, run.len);
    }
    orpc__buf_free(&run);
    return 0;
}

static int encode_msg(ctx *c, const orpc__dmsg *m, const json_t *in,
                      orpc__buf *b, int depth)
{
    if (depth > ORPC__DYN_MAX_DEPTH)
        return fail(c, "messages nested too deep");
    if (!json_is_object(in))
        return fail(c, "not an object (message %s)",
                    m->msg->name ? m->msg->name : "");
    int32_t oneof_set[64];
    const char *oneof_by[64];
    for (size_t i = 0; i < 64; i++) {
        oneof_set[i] = 0;
        oneof_by[i] = "";
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)in, key, v)
    {
        size_t old = push(c, ".%s", key);
        const Field *f = field_by_json(m, key);
        if (f == NULL)
            return fail(c, "no such field in %s",
                        m->msg->name ? m->msg->name : "");
        if (json_is_null(v) && !null_is_value(f)) {
            pop(c, old);
            continue;
        }
        if (f->has_oneof_index && f->oneof_index >= 0 && f->oneof_index < 64) {
            if (oneof_set[f->oneof_index])
                return fail(c, "another member of the same oneof (%s) is set",
                            oneof_by[f->oneof_index]);
            oneof_set[f->oneof_index] = 1;
            oneof_by[f->oneof_index] = key;
        }
        if (encode_field(c, m, f, v, b, depth) != 0)
            return -1;
        pop(c, old);
    }
    return b->failed ? fail(c, "out of memory") : 0;
}

int orpc__dyn_encode(const orpc__dpool *p, const char *type, const json_t *in,
                     orpc__buf *out, char *err, size_t errlen)
{
    ctx c = {.pool = p, .err = err, .errlen = errlen, .path = "$", .plen = 1};
    orpc__dmsg m;
    if (!orpc__dpool_message(p, type, &m))
        return fail(&c, "type %s is not in the descriptors", type);
    char why[256];
    json_t *plain = orpc__wkt_to_plain(type, in, why, sizeof why);
    if (plain == NULL)
        return fail(&c, "%s", why);
    int rc = encode_msg(&c, &m, plain, out, 0);
    json_decref(plain);
    return rc;
}

/* ---- decoding ---- */

typedef struct rd {
    const uint8_t *p, *end;
} rd;

static int get_varint(rd *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end)
            return -1;
        uint8_t byte = *r->p++;
        x |= (uint64_t)(byte & 0x7f) << shift;
        if ((byte & 0x80) == 0) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

static int get_fixed(rd *r, int bytes, uint64_t *v)
{
    if (r->end - r->p < bytes)
        return -1;
    uint64_t x = 0;
    for (int i = 0; i < bytes; i++)
        x |= (uint64_t)r->p[i] << (8 * i);
    r->p += bytes;
    *v = x;
    return 0;
}

/* A double as JSON: NaN and the infinities as proto3 JSON's strings. */
static json_t *json_double(double d)
{
    if (isnan(d))
        return json_string("NaN");
    if (isinf(d))
        return json_string(d > 0 ? "Infinity" : "-Infinity");
    return json_real(d);
}

static json_t *json_u64(uint64_t v)
{
    char t[24];
    snprintf(t, sizeof t, "%llu", (unsigned long long)v);
    return json_string(t);
}

static json_t *json_s64(int64_t v)
{
    char t[24];
    snprintf(t, sizeof t, "%lld", (long long)v);
    return json_string(t);
}

static json_t *decode_msg(ctx *c, const orpc__dmsg *m, const uint8_t *data,
                          size_t len, int depth);

/* The JSON value of a scalar read as |raw| (varint/fixed). */
static json_t *scalar_json(ctx *c, const Field *f, uint64_t raw)
{
    switch ((int)f->type) {
    case T(INT32):
    case T(SFIXED32):
        return json_integer((int32_t)(uint32_t)raw);
    case T(SINT32):
        return json_integer(
            (int32_t)(((uint32_t)raw >> 1) ^ (uint32_t) - (int32_t)(raw & 1)));
    case T(UINT32):
    case T(FIXED32):
        return json_integer((uint32_t)raw);
    case T(INT64):
    case T(SFIXED64):
        return json_s64((int64_t)raw);
    case T(SINT64):
        return json_s64(
            (int64_t)((raw >> 1) ^ (uint64_t) - (int64_t)(raw & 1)));
    case T(UINT64):
    case T(FIXED64):
        return json_u64(raw);
    case T(BOOL):
        return json_boolean(raw != 0);
    case T(DOUBLE): {
        double d;
        memcpy(&d, &raw, 8);
        return json_double(d);
    }
    case T(FLOAT): {
        uint32_t bits = (uint32_t)raw;
        float fl;
        memcpy(&fl, &bits, 4);
        if (!isfinite(fl))
            return json_double(fl);
        /* the shortest decimal that reads back as the same float */
        char t[32];
        for (int prec = 1; prec <= 9; prec++) {
            snprintf(t, sizeof t, "%.*g", prec, (double)fl);
            if ((float)strtod(t, NULL) == fl)
                break;
        }
        return json_real(strtod(t, NULL));
    }
    case T(ENUM): {
        int32_t n = (int32_t)(uint32_t)raw;
        const Google__Protobuf__EnumDescriptorProto *e =
            f->type_name ? orpc__dpool_enum(c->pool, f->type_name) : NULL;
        for (size_t i = 0; e && i < e->n_value; i++)
            if (e->value[i]->number == n && e->value[i]->name)
                return json_string(e->value[i]->name);
        return json_integer(n);
    }
    default:
        return NULL;
    }
}

/* The plain Any |plain| (taken) -> {"@type": URL, ...the message's
 * fields} or, for a well-known type with a special form, {"@type": URL,
 * "value": ...}.  An Any whose type the pool does not have stays plain. */
static json_t *any_from_plain(ctx *c, json_t *plain, int depth)
{
    const char *url = json_string_value(json_object_get(plain, "typeUrl"));
    const char *b64 = json_string_value(json_object_get(plain, "value"));
    const char *name;
    orpc__dmsg m;
    if (url == NULL || !any_type(c, url, &m, &name))
        return plain;
    orpc__buf bytes = {0};
    if (b64 && orpc__base64_decode(&bytes, b64, strlen(b64)) != 0) {
        orpc__buf_free(&bytes);
        return plain;
    }
    json_t *body = decode_msg(c, &m, bytes.data, bytes.len, depth + 1);
    orpc__buf_free(&bytes);
    if (body == NULL) {
        json_decref(plain);
        return NULL;
    }
    body = orpc__wkt_from_plain(name, body);
    json_t *out = json_pack("{s:s}", "@type", url);
    if (orpc__wkt_is_special(name))
        json_object_set_new(out, "value", body);
    else {
        json_object_update(out, body);
        json_decref(body);
    }
    json_decref(plain);
    return out;
}

/* The JSON value of a length-delimited field. */
static json_t *len_json(ctx *c, const Field *f, const uint8_t *p, size_t n,
                        int depth)
{
    if (f->type == T(STRING)) {
        json_t *s = json_stringn((const char *)p, n);
        if (s == NULL)
            fail(c, "a string that is not UTF-8");
        return s;
    }
    if (f->type == T(BYTES)) {
        orpc__buf b = {0};
        orpc__base64_append(&b, p, n, 0);
        json_t *s = b.failed ? NULL : json_stringn((char *)b.data, b.len);
        orpc__buf_free(&b);
        return s ? s : json_string("");
    }
    orpc__dmsg sub;
    if (!field_message(c, f, &sub))
        return NULL;
    json_t *plain = decode_msg(c, &sub, p, n, depth + 1);
    if (plain && is_any(f->type_name))
        return any_from_plain(c, plain, depth);
    return plain ? orpc__wkt_from_plain(f->type_name, plain) : NULL;
}

/* The map key of |entry| (a decoded entry object) as a JSON object key. */
static void map_key_text(const json_t *k, char *buf, size_t cap)
{
    if (json_is_string(k))
        snprintf(buf, cap, "%s", json_string_value(k));
    else if (json_is_integer(k))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(k));
    else if (json_is_boolean(k))
        snprintf(buf, cap, "%s", json_is_true(k) ? "true" : "false");
    else
        buf[0] = '\0';
}

/* The default JSON value of a map entry's missing value field. */
static json_t *default_json(ctx *c, const Field *f)
{
    if (f->type == T(MESSAGE))
        return json_object();
    if (f->type == T(STRING) || f->type == T(BYTES))
        return json_string("");
    return scalar_json(c, f, 0);
}

/* Stores |v| (taken) as field |f| of |obj|. */
static int store(ctx *c, json_t *obj, const orpc__dmsg *m, const Field *f,
                 json_t *v, int is_default)
{
    char buf[256];
    const char *key = json_name(f, buf, sizeof buf);
    orpc__dmsg entry;
    if (v == NULL)
        return -1;
    if (f->label != REPEATED) {
        /* proto3 implicit presence: the default is not printed */
        if (is_default && is_proto3(m) && !f->has_oneof_index &&
            f->type != T(MESSAGE)) {
            json_decref(v);
            json_object_del(obj, key);
            return 0;
        }
        return json_object_set_new(obj, key, v);
    }
    json_t *arr = json_object_get(obj, key);
    if (is_map(c, f, &entry)) {
        if (arr == NULL) {
            arr = json_object();
            json_object_set_new(obj, key, arr);
        }
        const Field *kf = field_by_number(&entry, 1),
                    *vf = field_by_number(&entry, 2);
        char kb[256], kbuf[32], vbuf[32];
        if (kf == NULL || vf == NULL) {
            json_decref(v);
            return fail(c, "a map entry type without key or value");
        }
        json_t *k = json_object_get(v, json_name(kf, kbuf, sizeof kbuf));
        json_t *val = json_object_get(v, json_name(vf, vbuf, sizeof vbuf));
        if (k)
            map_key_text(k, kb, sizeof kb);
        else
            snprintf(kb, sizeof kb, "%s",
                     kf->type == T(BOOL)     ? "false"
                     : kf->type == T(STRING) ? ""
                                             : "0");
        json_object_set_new(arr, kb,
                            val ? json_incref(val) : default_json(c, vf));
        json_decref(v);
        return 0;
    }
    if (arr == NULL) {
        arr = json_array();
        json_object_set_new(obj, key, arr);
    }
    return json_array_append_new(arr, v);
}

static json_t *decode_msg(ctx *c, const orpc__dmsg *m, const uint8_t *data,
                          size_t len, int depth)
{
    if (depth > ORPC__DYN_MAX_DEPTH) {
        fail(c, "messages nested too deep");
        return NULL;
    }
    json_t *obj = json_object();
    rd r = {data, data + len};
    while (obj && r.p < r.end) {
        uint64_t tag, raw = 0;
        if (get_varint(&r, &tag) != 0 || (tag >> 3) == 0 ||
            (tag >> 3) > 0x1fffffff)
            goto bad;
        int wt = (int)(tag & 7);
        const uint8_t *lp = NULL;
        if (wt == WT_VARINT) {
            if (get_varint(&r, &raw) != 0)
                goto bad;
        } else if (wt == WT_I64 || wt == WT_I32) {
            if (get_fixed(&r, wt == WT_I64 ? 8 : 4, &raw) != 0)
                goto bad;
        } else if (wt == WT_LEN) {
            if (get_varint(&r, &raw) != 0 || raw > (uint64_t)(r.end - r.p))
                goto bad;
            lp = r.p;
            r.p += raw;
        } else {
            fail(c, "groups are not supported");
            goto out;
        }
        const Field *f = field_by_number(m, (uint32_t)(tag >> 3));
        if (f == NULL)
            continue; /* unknown fields are not printed */
        char nb[256];
        size_t old = push(c, ".%s", json_name(f, nb, sizeof nb));
        int want = wire_type(f);
        if (wt == WT_LEN && want != WT_LEN && f->label == REPEATED &&
            want >= 0) {
            /* a packed run */
            rd pr = {lp, lp + raw};
            while (pr.p < pr.end) {
                uint64_t x;
                int rc = want == WT_VARINT
                             ? get_varint(&pr, &x)
                             : get_fixed(&pr, want == WT_I64 ? 8 : 4, &x);
                if (rc != 0 || store(c, obj, m, f, scalar_json(c, f, x), 0))
                    goto bad;
            }
        } else if (wt != want) {
            fail(c, "wire type does not match the field's type");
            goto out;
        } else if (wt == WT_LEN) {
            json_t *v = len_json(c, f, lp, (size_t)raw, depth);
            if (v == NULL)
                goto out;
            if (store(c, obj, m, f, v, raw == 0 && f->type != T(MESSAGE)))
                goto bad;
        } else if (store(c, obj, m, f, scalar_json(c, f, raw), raw == 0)) {
            goto bad;
        }
        pop(c, old);
    }
    if (obj == NULL) {
        fail(c, "out of memory");
        return NULL;
    }
    /* declaration order */
    json_t *sorted = json_object();
    char nb[256];
    for (size_t i = 0; sorted && i < m->msg->n_field; i++) {
        const char *k = json_name(m->msg->field[i], nb, sizeof nb);
        json_t *v = json_object_get(obj, k);
        if (v)
            json_object_set(sorted, k, v);
    }
    json_decref(obj);
    return sorted;
bad:
    if (c->err[0] == '\0')
        fail(c, "malformed protobuf data");
out:
    json_decref(obj);
    return NULL;
}

json_t *orpc__dyn_decode(const orpc__dpool *p, const char *type,
                         const uint8_t *data, size_t len, char *err,
                         size_t errlen)
{
    ctx c = {.pool = p, .err = err, .errlen = errlen, .path = "$", .plen = 1};
    orpc__dmsg m;
    err[0] = '\0';
    if (!orpc__dpool_message(p, type, &m)) {
        fail(&c, "type %s is not in the descriptors", type);
        return NULL;
    }
    json_t *plain = decode_msg(&c, &m, data, len, 0);
    return plain ? orpc__wkt_from_plain(type, plain) : NULL;
}

/* ---- output ---- */

static void dump(orpc__buf *b, const json_t *v, int depth)
{
    if (depth > ORPC__DYN_MAX_DEPTH + 4) {
        b->failed = 1;
        return;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        int first = 1;
        orpc__buf_putc(b, '{');
        json_object_foreach((json_t *)v, k, x)
        {
            if (!first)
                orpc__buf_putc(b, ',');
            first = 0;
            json_t *ks = json_string(k);
            dump(b, ks, depth + 1);
            json_decref(ks);
            orpc__buf_putc(b, ':');
            dump(b, x, depth + 1);
        }
        orpc__buf_putc(b, '}');
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        orpc__buf_putc(b, '[');
        json_array_foreach(v, i, x)
        {
            if (i)
                orpc__buf_putc(b, ',');
            dump(b, x, depth + 1);
        }
        orpc__buf_putc(b, ']');
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        char t[40];
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(t, sizeof t, "%.*g", prec, d);
            if (strtod(t, NULL) == d)
                break;
        }
        orpc__buf_puts(b, t);
    } else {
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (s == NULL)
            b->failed = 1;
        else
            orpc__buf_puts(b, s);
        free(s);
    }
}

char *orpc__dyn_dumps(const json_t *v)
{
    orpc__buf b = {0};
    dump(&b, v, 0);
    if (b.failed) {
        orpc__buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

/* ---- the raw message ---- */

static const ProtobufCMessageDescriptor raw_descriptor = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "orpc.cli.Raw",
    "Raw",
    "Orpc__Cli__Raw",
    "orpc.cli",
    sizeof(ProtobufCMessage),
    0,
    NULL,
    NULL,
    0,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL};

const orpc_message_info orpc__raw_info = {&raw_descriptor, "orpc.cli.Raw", 0,
                                          NULL};

ProtobufCMessage *orpc__raw_wrap(const uint8_t *data, size_t len)
{
    return protobuf_c_message_unpack(&raw_descriptor, NULL, len, data);
}

int orpc__raw_bytes(const ProtobufCMessage *m, orpc__buf *out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    if (orpc__buf_reserve(out, n) != 0)
        return -1;
    out->len += protobuf_c_message_pack(m, out->data + out->len);
    out->data[out->len] = '\0';
    return 0;
}
