/*
 * json_decode.c — proto3 JSON to messages: orpc_json_decode() and
 * orpc__json_decode_value(), with the error path that names where the
 * input went wrong.
 *
 * Decoding choices, all stricter than "the last key wins":
 *   - duplicate JSON keys are refused (jansson's JSON_REJECT_DUPLICATES), and
 *     so is one field given by both its JSON and its proto name; so are two
 *     members of one oneof (null members do not count);
 *   - nesting deeper than max_depth objects/arrays is refused before the
 *     decoder recurses (jansson itself stops at 2048);
 *   - integers are range-checked exactly: strings are parsed as exact
 *     decimals (exponent and fraction allowed when the value is integral),
 *     numbers must be integral; an integer literal beyond 64 bits makes
 *     jansson fail, and the document is then read again with every number
 *     as a double, where 64-bit fields accept only |v| <= 2^53;
 *   - bytes: standard or URL-safe base64, padded or not, but one alphabet
 *     per string, correct padding and zero trailing bits;
 *   - "\u0000" in strings and invalid UTF-8 are refused (jansson);
 *   - null means "unset" except for google.protobuf.Value (null_value) and
 *     NullValue fields; null inside a list or as a map value is refused;
 *   - unknown fields are refused unless ignore_unknown, which also skips
 *     unknown enum names;
 *   - required (proto2) strings and messages must be present; required
 *     scalars cannot be checked (protobuf-c keeps no presence for them);
 *   - the size of the text is the caller's to bound (|len|).
 * Every fault is ORPC_EPARSE with "<path>: <reason>" in the detail, with
 * "(line L, column C)" for syntax errors (jansson's position); nesting past
 * max_depth is ORPC_ETOOBIG, running out of memory ORPC_ENOMEM.  The first
 * fault recorded wins: the decoder stops there, and what it finds while
 * unwinding is not news.  A message under construction is always
 * consistent for protobuf_c_message_free_unpacked(), which frees it on
 * error: values are stored only once complete, a oneof's case is set after
 * its member, a repeated count counts complete elements only.
 */
#include "json_internal.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/detail.h"

int orpc__json_nomem(orpc__json_dec *c)
{
    if (c->err.code == 0) {
        orpc__detail_set(&c->err, ORPC_ENOMEM, "out of memory decoding JSON");
    }
    return -1;
}

/* Records |code| with "<path>: <reason>" as the error (the first one
 * wins); -1. */
static int vfail(orpc__json_dec *c, int code, const char *fmt, va_list ap)
    ORPC_PRINTF(3, 0);

static int vfail(orpc__json_dec *c, int code, const char *fmt, va_list ap)
{
    if (c->err.code != 0) {
        return -1;
    }
    if (c->path.failed) {
        return orpc__json_nomem(c);
    }
    char reason[200];
    vsnprintf(reason, sizeof reason, fmt, ap);
    orpc__json_set_error(&c->err, code, &c->path, reason);
    return -1;
}

int orpc__json_fail(orpc__json_dec *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, ORPC_EPARSE, fmt, ap);
    va_end(ap);
    return -1;
}

int orpc__json_too_deep(orpc__json_dec *c)
{
    return orpc__json_fail_code(c, ORPC_ETOOBIG,
                                "nesting deeper than %u levels", c->max_depth);
}

int orpc__json_fail_code(orpc__json_dec *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, code, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *enum_type_name(const ProtobufCFieldDescriptor *f)
{
    const ProtobufCEnumDescriptor *e = f->descriptor;
    return e != NULL && e->name != NULL ? e->name : "enum";
}

/* A scalar or enum JSON value into |member|: 0, -1, or 1 when an unknown
 * enum name is skipped (ignore_unknown).  The switch is on the JSON value's
 * type; what the field's type accepts comes from its traits. */
int orpc__json_dec_scalar(orpc__json_dec *c, const ProtobufCFieldDescriptor *f,
                          const orpc_enum_info *ei, json_t *v, void *member)
{
    const orpc__json_traits *tr = orpc__json_traits_of(f->type);
    int neg = 0;
    uint64_t mag = 0;
    int rc;
    switch (json_typeof(v)) {
    case JSON_STRING: {
        /* bool_text 0: "true" in quotes is not a bool */
        const char *why = "invalid value";
        rc = tr->ops->parse(f, ei, json_string_value(v), json_string_length(v),
                            member, c->alloc, 0, &why);
        if (rc == ORPC__JSON_CV_NOMEM) {
            return orpc__json_nomem(c);
        }
        if (rc == ORPC__JSON_CV_UNKNOWN_ENUM) {
            if (c->ignore_unknown) {
                return 1;
            }
            orpc__buf q = {0};
            orpc__json_fail(c, "unknown enum value %s of %s",
                            orpc__json_quoted(&q, json_string_value(v)),
                            enum_type_name(f));
            orpc__buf_free(&q);
            return -1;
        }
        if (rc != ORPC__JSON_CV_OK) {
            return orpc__json_is_integer(tr)
                       ? orpc__json_fail(c, "%s for %s", why, tr->name)
                       : orpc__json_fail(c, "%s", why);
        }
        return 0;
    }
    case JSON_INTEGER:
    case JSON_REAL: {
        double d = json_number_value(v);
        if (tr->kind == ORPC__JSON_REAL) {
            if (orpc__json_store_real(tr, d, member) < 0) {
                return orpc__json_fail(c, "number out of range for float");
            }
            return 0;
        }
        if (!orpc__json_is_integer(tr) && tr->kind != ORPC__JSON_ENUM) {
            return orpc__json_fail(c, "%s", tr->ops->expected);
        }
        if (json_is_integer(v)) {
            json_int_t iv = json_integer_value(v);
            neg = iv < 0;
            mag = neg ? (uint64_t)(-(iv + 1)) + 1 : (uint64_t)iv;
            rc = ORPC__JSON_NUM_OK;
        } else {
            rc = orpc__json_double_to_int(d, &neg, &mag);
            /* read as a double, 2^53 itself may be 2^53 + 1 rounded */
            if (rc != ORPC__JSON_NUM_FRACTION && c->real_ints &&
                tr->kind == ORPC__JSON_INT64 &&
                orpc__json_dabs(d) >= ORPC__JSON_EXACT_DOUBLE_MAX) {
                return orpc__json_fail(
                    c, "integer too large to be exact as a JSON "
                       "number; send it as a string");
            }
        }
        if (rc == ORPC__JSON_NUM_FRACTION) {
            return orpc__json_fail(c, "not an integer (has a fraction) for %s",
                                   tr->name);
        }
        if (rc != ORPC__JSON_NUM_OK ||
            orpc__json_store_int(tr, neg, mag, member) < 0) {
            return orpc__json_fail(c, "integer out of range for %s", tr->name);
        }
        return 0;
    }
    case JSON_TRUE:
    case JSON_FALSE:
        if (tr->kind != ORPC__JSON_BOOL) {
            return orpc__json_fail(c, "%s", tr->ops->expected);
        }
        *(protobuf_c_boolean *)member = json_is_true(v);
        return 0;
    case JSON_NULL:
        if (orpc__json_is_null_enum(f)) {
            *(int32_t *)member = 0;
            return 0;
        }
        return orpc__json_fail(c, "null is not allowed here");
    default:
        return orpc__json_fail(c, "%s", tr->ops->expected);
    }
}

/* One value of field |i| of |t| into |member| (for messages, the pointer):
 * 0, -1, or 1 when skipped. */
static int dec_elem(orpc__json_dec *c, orpc__json_mtype t, unsigned i,
                    json_t *v, unsigned depth, void *member)
{
    const ProtobufCFieldDescriptor *f = &t.d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
        return orpc__json_dec_scalar(c, f, orpc__json_enum_of(t, i), v, member);
    }
    ProtobufCMessage *sub = NULL;
    if (orpc__json_dec_msg(c, orpc__json_mt_field(t, i), v, depth, &sub) < 0) {
        return -1;
    }
    *(ProtobufCMessage **)member = sub;
    return 0;
}

/* Whether JSON null is a value (not "unset") for field |f|. */
static int null_is_value(const ProtobufCFieldDescriptor *f)
{
    return (f->type == PROTOBUF_C_TYPE_MESSAGE &&
            orpc__json_wkt_of(f->descriptor) == ORPC__WKT_VALUE) ||
           orpc__json_is_null_enum(f);
}

static int dec_list(orpc__json_dec *c, orpc__json_mtype t, unsigned i,
                    ProtobufCMessage *m, json_t *v, unsigned depth)
{
    const ProtobufCFieldDescriptor *f = &t.d->fields[i];
    char *base = (char *)m;
    if (json_is_null(v)) {
        return 0;
    }
    if (!json_is_array(v)) {
        return orpc__json_fail(c, "expected an array");
    }
    if (depth + 1 > c->max_depth) {
        return orpc__json_too_deep(c);
    }
    size_t n = json_array_size(v);
    if (n == 0) {
        return 0;
    }
    size_t esz = orpc__json_traits_of(f->type)->size;
    if (n > SIZE_MAX / esz) {
        return orpc__json_nomem(c);
    }
    char *arr = orpc__json_alloc(c->alloc, n * esz);
    if (arr == NULL) {
        return orpc__json_nomem(c);
    }
    memset(arr, 0, n * esz);
    size_t *count = (size_t *)(base + f->quantifier_offset);
    *(char **)(base + f->offset) = arr;
    *count = 0;
    for (size_t k = 0; k < n; k++) {
        json_t *el = json_array_get(v, k);
        size_t mark = orpc__json_path_index(&c->path, k);
        int rc;
        if (json_is_null(el) && !null_is_value(f)) {
            rc = orpc__json_fail(c, "null is not allowed in a list");
        } else {
            rc = dec_elem(c, t, i, el, depth + 1, arr + *count * esz);
        }
        orpc__json_path_pop(&c->path, mark);
        if (rc < 0) {
            return -1;
        }
        if (rc == 0) {
            (*count)++;
        }
    }
    return 0;
}

/* A map key into the key member of an entry. */
static int dec_map_key(orpc__json_dec *c, const ProtobufCFieldDescriptor *kf,
                       const char *key, void *member)
{
    const orpc__json_traits *tr = orpc__json_traits_of(kf->type);
    const char *why = "invalid value";
    int rc =
        tr->ops->parse(kf, NULL, key, strlen(key), member, c->alloc, 1, &why);
    if (rc == ORPC__JSON_CV_NOMEM) {
        return orpc__json_nomem(c);
    }
    if (rc != ORPC__JSON_CV_OK) {
        return orpc__json_fail(c, "invalid %s map key: %s", tr->name, why);
    }
    if (tr->kind == ORPC__JSON_STRING) {
        return 0;
    }
    /* One spelling per key ("1", not "1.0" or "01"): the JSON object
     * cannot then hold one key twice, which duplicate-key refusal relies
     * on (python's json_format takes only these spellings as well). */
    orpc__buf *canon = &c->scratch;
    orpc__buf_truncate(canon, 0);
    if (tr->ops->text(kf, NULL, 0, member, canon) != 0) {
        return orpc__json_fail(c, "invalid %s map key", tr->name);
    }
    if (canon->failed) {
        return orpc__json_nomem(c);
    }
    if (strcmp(orpc__buf_str(canon), key) != 0) {
        return orpc__json_fail(
            c, "%s map key not in canonical form (write \"%s\")", tr->name,
            orpc__buf_str(canon));
    }
    return 0;
}

static int dec_map(orpc__json_dec *c, orpc__json_mtype t, unsigned i,
                   ProtobufCMessage *m, json_t *v, unsigned depth)
{
    const ProtobufCFieldDescriptor *f = &t.d->fields[i];
    char *base = (char *)m;
    if (json_is_null(v)) {
        return 0;
    }
    if (!json_is_object(v)) {
        return orpc__json_fail(c, "expected an object (a map)");
    }
    if (depth + 1 > c->max_depth) {
        return orpc__json_too_deep(c);
    }
    size_t n = json_object_size(v);
    if (n == 0) {
        return 0;
    }
    if (n > SIZE_MAX / sizeof(ProtobufCMessage *)) {
        return orpc__json_nomem(c);
    }
    ProtobufCMessage **arr = orpc__json_alloc(c->alloc, n * sizeof *arr);
    if (arr == NULL) {
        return orpc__json_nomem(c);
    }
    size_t *count = (size_t *)(base + f->quantifier_offset);
    *(ProtobufCMessage ***)(base + f->offset) = arr;
    *count = 0;
    orpc__json_mtype et = orpc__json_mt_field(t, i);
    const ProtobufCFieldDescriptor *kf = &et.d->fields[0];
    const ProtobufCFieldDescriptor *vf = &et.d->fields[1];
    const char *key;
    json_t *el;
    json_object_foreach(v, key, el)
    {
        size_t mark = orpc__json_path_mapkey(&c->path, key);
        ProtobufCMessage *e = orpc__json_msg_new(c->alloc, et.d);
        if (e == NULL) {
            return orpc__json_nomem(c);
        }
        arr[(*count)++] = e;
        int rc = dec_map_key(c, kf, key, (char *)e + kf->offset);
        if (rc == 0) {
            if (json_is_null(el) && !null_is_value(vf)) {
                rc = orpc__json_fail(c, "null is not allowed as a map value");
            } else {
                rc = dec_elem(c, et, 1, el, depth + 1, (char *)e + vf->offset);
            }
        }
        orpc__json_path_pop(&c->path, mark);
        if (rc < 0) {
            return -1;
        }
        if (rc == 1) { /* unknown enum value skipped: drop the entry */
            (*count)--;
            orpc__json_msg_free(c->alloc, e);
        }
    }
    return 0;
}

/* Field |i| of |t| from JSON value |v| into message |m|. */
static int dec_field(orpc__json_dec *c, orpc__json_mtype t, unsigned i,
                     ProtobufCMessage *m, json_t *v, unsigned depth)
{
    const ProtobufCFieldDescriptor *f = &t.d->fields[i];
    char *base = (char *)m;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        return orpc__json_is_map(t.d, f) ? dec_map(c, t, i, m, v, depth)
                                         : dec_list(c, t, i, m, v, depth);
    }
    if (json_is_null(v) && !null_is_value(f)) {
        return 0; /* null: unset */
    }
    uint32_t *oneof_case = NULL;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        oneof_case = (uint32_t *)(base + f->quantifier_offset);
        if (*oneof_case != 0) {
            const char *other = "another field";
            for (unsigned k = 0; k < t.d->n_fields; k++) {
                if (t.d->fields[k].id == *oneof_case) {
                    other = t.d->fields[k].name;
                }
            }
            return orpc__json_fail(
                c,
                "oneof field set together with \"%s\" of the same "
                "oneof",
                other);
        }
    }
    int rc = dec_elem(c, t, i, v, depth, base + f->offset);
    if (rc != 0) {
        return rc < 0 ? -1 : 0;
    }
    if (oneof_case != NULL) {
        *oneof_case = f->id;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
               !orpc__json_traits_of(f->type)->ops->by_pointer) {
        *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
    }
    return 0;
}

/* The members of JSON object |v| into message |m| of type |t|; |depth|
 * counts the containers around the members.  |any_inner|: skip "@type". */
int orpc__json_dec_fields(orpc__json_dec *c, orpc__json_mtype t, json_t *v,
                          unsigned depth, ProtobufCMessage *m, int any_inner)
{
    unsigned char small[64];
    unsigned char *seen = small;
    size_t nbytes = (t.d->n_fields + 7u) / 8u;
    if (nbytes > sizeof small) {
        seen = calloc(nbytes, 1);
        if (seen == NULL) {
            return orpc__json_nomem(c);
        }
    } else {
        memset(small, 0, sizeof small);
    }
    int rc = 0;
    const char *key;
    json_t *el;
    json_object_foreach(v, key, el)
    {
        if (any_inner && strcmp(key, "@type") == 0) {
            continue;
        }
        int i = orpc__json_find_field(t, key);
        if (i < 0) {
            if (c->ignore_unknown) {
                continue;
            }
            size_t mark = orpc__json_path_key(&c->path, key);
            rc = orpc__json_fail(c, "unknown field");
            orpc__json_path_pop(&c->path, mark);
            break;
        }
        size_t mark = orpc__json_path_key(&c->path, key);
        if (seen[i / 8] & (1u << (i % 8))) {
            rc = orpc__json_fail(
                c,
                "field \"%s\" given twice (by its JSON name and its "
                "proto name)",
                t.d->fields[i].name);
        } else {
            seen[i / 8] |= (unsigned char)(1u << (i % 8));
            rc = dec_field(c, t, (unsigned)i, m, el, depth);
        }
        orpc__json_path_pop(&c->path, mark);
        if (rc < 0) {
            break;
        }
    }
    if (seen != small) {
        free(seen);
    }
    return rc < 0 ? -1 : 0;
}

/* A message of type |t| from |v|; |depth| counts the containers around
 * |v|. */
int orpc__json_dec_msg(orpc__json_dec *c, orpc__json_mtype t, json_t *v,
                       unsigned depth, ProtobufCMessage **out)
{
    enum orpc__json_wkt kind = orpc__json_wkt_of(t.d);
    if (kind != ORPC__WKT_NONE) {
        return orpc__json_dec_wkt(c, kind, t, v, depth, out);
    }
    if (!json_is_object(v)) {
        return orpc__json_fail(c, "expected an object for %s", t.d->name);
    }
    if (depth + 1 > c->max_depth) {
        return orpc__json_too_deep(c);
    }
    ProtobufCMessage *m = orpc__json_msg_new(c->alloc, t.d);
    if (m == NULL) {
        return orpc__json_nomem(c);
    }
    if (orpc__json_dec_fields(c, t, v, depth + 1, m, 0) < 0) {
        orpc__json_msg_free(c->alloc, m);
        return -1;
    }
    *out = m;
    return 0;
}

static int decode_root(ProtobufCMessage **out, const orpc_message_info *info,
                       json_t *v, const char *path, const orpc_json_opts *opts,
                       ProtobufCAllocator *alloc, int real_ints,
                       orpc_error_detail *detail)
{
    orpc__json_dec c;
    memset(&c, 0, sizeof c);
    c.ignore_unknown = opts != NULL && opts->ignore_unknown;
    c.max_depth = opts != NULL && opts->max_depth > 0
                      ? opts->max_depth
                      : ORPC__JSON_DEFAULT_MAX_DEPTH;
    c.real_ints = real_ints;
    c.alloc = alloc;
    c.root = orpc__json_mt(info->descriptor, info);
    orpc__buf_puts(&c.path, path);
    ProtobufCMessage *m = NULL;
    int rc = orpc__json_dec_msg(&c, c.root, v, 0, &m);
    if (rc == 0 && !protobuf_c_message_check(m)) {
        orpc__json_msg_free(alloc, m);
        m = NULL;
        rc = orpc__json_fail(&c, "a required field is missing");
    }
    orpc__buf_free(&c.path);
    orpc__buf_free(&c.scratch);
    if (rc < 0) {
        if (c.err.code == 0) { /* cannot happen; never report success */
            orpc__detail_set(&c.err, ORPC_EPARSE, "%s: invalid JSON", path);
        }
        if (detail != NULL) {
            *detail = c.err;
        }
        return c.err.code;
    }
    *out = m;
    return 0;
}

static int bad_info(const orpc_message_info *info)
{
    return info == NULL || info->descriptor == NULL ||
           info->descriptor->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC;
}

int orpc__json_decode_value(ProtobufCMessage **out,
                            const orpc_message_info *info, json_t *v,
                            const char *path, const orpc_json_opts *opts,
                            ProtobufCAllocator *alloc,
                            orpc_error_detail *detail)
{
    if (path == NULL) {
        path = "$";
    }
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || bad_info(info) || v == NULL) {
        return orpc__detail_set(detail, ORPC_EINVAL,
                                "%s: invalid arguments (no message table, "
                                "value or result)",
                                path);
    }
    return decode_root(out, info, v, path, opts, alloc, 0, detail);
}

/* jansson's error for text that is not JSON, with its position: EPARSE,
 * or ETOOBIG for nesting beyond jansson's own limit (2048), or ENOMEM. */
static int load_error(const json_error_t *err, orpc_error_detail *detail)
{
    if (json_error_code(err) == json_error_out_of_memory) {
        return orpc__detail_set(detail, ORPC_ENOMEM,
                                "out of memory decoding JSON");
    }
    int code = json_error_code(err) == json_error_stack_overflow ? ORPC_ETOOBIG
                                                                 : ORPC_EPARSE;
    /* jansson's text may quote input bytes: keep it printable ASCII. */
    char text[JSON_ERROR_TEXT_LENGTH];
    size_t k = 0;
    for (; k + 1 < sizeof text && err->text[k] != '\0'; k++) {
        unsigned char ch = (unsigned char)err->text[k];
        text[k] = ch < 0x20 || ch >= 0x7f ? '?' : (char)ch;
    }
    text[k] = '\0';
    return orpc__detail_set(detail, code, "$: %s (line %d, column %d)", text,
                            err->line, err->column);
}

int orpc_json_decode(ProtobufCMessage **out, const orpc_message_info *info,
                     const char *json, size_t len, const orpc_json_opts *opts,
                     ProtobufCAllocator *alloc, orpc_error_detail *detail)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || bad_info(info) || (json == NULL && len > 0)) {
        return orpc__detail_set(detail, ORPC_EINVAL,
                                "$: invalid arguments (no message table or "
                                "result, or no text)");
    }
    const size_t flags = JSON_DECODE_ANY | JSON_REJECT_DUPLICATES;
    json_error_t err;
    json_t *root = json_loadb(json != NULL ? json : "", len, flags, &err);
    int real_ints = 0;
    if (root == NULL && json_error_code(&err) == json_error_numeric_overflow) {
        /* An integer literal beyond 64 bits: read every number as a double
         * (a double field takes it; an integer field refuses it). */
        json_error_t err2;
        root = json_loadb(json, len, flags | JSON_DECODE_INT_AS_REAL, &err2);
        real_ints = root != NULL;
    }
    if (root == NULL) {
        return load_error(&err, detail);
    }
    int rc = decode_root(out, info, root, "$", opts, alloc, real_ints, detail);
    json_decref(root);
    return rc;
}
