/*
 * json_encode.c — messages to proto3 JSON: orpc_json_encode() and
 * orpc__json_encode_value(), field presence, repeated fields, maps and
 * oneofs, and the text of the jansson tree.
 *
 * Encoding choices: compact output; fields in number order; reals in the
 * shortest form that reads back to the same double (float fields: to the
 * same float); 64-bit integers as strings (the legacy profile: numbers
 * within ±2^53); a missing message where one is needed (list element, map
 * value) as its default instance; nesting deeper than max_depth is
 * ORPC_ETOOBIG, so that what orpc writes it can read.  A value JSON cannot
 * carry (a string that is not UTF-8, a Timestamp out of range, an Any of
 * a type that does not resolve) is ORPC_EINVAL, with the path of the field
 * in the detail.  The path is kept as the encoder walks (as in the
 * decoder) so that the fault is named where it is found.  The tree is
 * written here rather than by json_dumps(), whose reals are not
 * shortest-exact.
 */
#include "json_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/detail.h"

int orpc__json_mk_string(const char *s, size_t n, json_t **out)
{
    if (!orpc__json_utf8_valid(s, n)) {
        return ORPC_EINVAL;
    }
    *out = json_stringn_nocheck(s, n);
    return *out != NULL ? 0 : ORPC_ENOMEM;
}

int orpc__json_mk(json_t *v, json_t **out)
{
    *out = v;
    return v != NULL ? 0 : ORPC_ENOMEM;
}

int orpc__json_enc_fail(orpc__json_enc *c, int code, const char *fmt, ...)
{
    if (c->err.code != 0) {
        return code;
    }
    if (c->path.failed) {
        code = ORPC_ENOMEM;
        orpc__detail_set(&c->err, code, "out of memory encoding JSON");
        return code;
    }
    char reason[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    orpc__json_set_error(&c->err, code, &c->path, reason);
    return code;
}

int orpc__json_enc_too_deep(orpc__json_enc *c)
{
    return orpc__json_enc_fail(c, ORPC_ETOOBIG, "nesting deeper than %u levels",
                               c->max_depth);
}

/* The traits' encoder, whose only refusals are a string that is not UTF-8
 * and a type protobuf-c does not have: named here, with the path. */
int orpc__json_enc_scalar(orpc__json_enc *c, const ProtobufCFieldDescriptor *f,
                          const orpc_enum_info *ei, const void *member,
                          json_t **out)
{
    const orpc__json_traits *tr = orpc__json_traits_of(f->type);
    int rc = tr->ops->encode(f, ei, c->legacy, member, out);
    if (rc == ORPC_EINVAL) {
        return orpc__json_enc_fail(c, rc, "%s",
                                   tr->kind == ORPC__JSON_STRING
                                       ? "invalid UTF-8 in a string"
                                       : "unsupported field type");
    }
    return rc;
}

/* One value of field |i| of |t| stored at |member| (for messages, the
 * pointer to the message). */
static int enc_elem(orpc__json_enc *c, orpc__json_mtype t, unsigned i,
                    const void *member, unsigned depth, json_t **out)
{
    const ProtobufCFieldDescriptor *f = &t.d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
        return orpc__json_enc_scalar(c, f, orpc__json_enum_of(t, i), member,
                                     out);
    }
    orpc__json_mtype st = orpc__json_mt_field(t, i);
    const ProtobufCMessage *sm = *(const ProtobufCMessage *const *)member;
    if (sm != NULL) {
        if (sm->descriptor != st.d) {
            return orpc__json_enc_fail(c, ORPC_EINVAL, "not a %s message",
                                       st.d->name);
        }
        return orpc__json_enc_msg(c, st, sm, depth, out);
    }
    if (orpc__json_wkt_of(st.d) == ORPC__WKT_VALUE) {
        return orpc__json_mk(json_null(), out);
    }
    /* A missing message where one is needed (map value, list element):
     * its default instance. */
    ProtobufCMessage *tmp = orpc__json_msg_new(NULL, st.d);
    if (tmp == NULL) {
        return ORPC_ENOMEM;
    }
    int rc = orpc__json_enc_msg(c, st, tmp, depth, out);
    free(tmp); /* a fresh message owns nothing */
    return rc;
}

/* Whether singular field |f| of the message at |base| is present. */
static int field_present(const ProtobufCFieldDescriptor *f, const char *base)
{
    const orpc__json_ops *ops = orpc__json_traits_of(f->type)->ops;
    const void *member = base + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REQUIRED) {
        return 1;
    }
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
        if (ops->by_pointer) {
            const void *p = *(const void *const *)member;
            return p != NULL && p != f->default_value;
        }
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset) != 0;
    }
    return !ops->is_default(f, member);
}

static int enc_map(orpc__json_enc *c, orpc__json_mtype t, unsigned i,
                   const char *base, unsigned depth, json_t **out)
{
    const ProtobufCFieldDescriptor *f = &t.d->fields[i];
    size_t n = *(const size_t *)(base + f->quantifier_offset);
    ProtobufCMessage *const *arr =
        *(ProtobufCMessage *const *const *)(base + f->offset);
    orpc__json_mtype et = orpc__json_mt_field(t, i);
    if (depth + 1 > c->max_depth) {
        return orpc__json_enc_too_deep(c);
    }
    json_t *obj = json_object();
    if (obj == NULL) {
        return ORPC_ENOMEM;
    }
    const ProtobufCFieldDescriptor *kf = &et.d->fields[0];
    const orpc__json_ops *kops = orpc__json_traits_of(kf->type)->ops;
    orpc__buf key = {0};
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < n; k++) {
        const ProtobufCMessage *e = arr != NULL ? arr[k] : NULL;
        if (e == NULL || e->descriptor != et.d) {
            size_t mark = orpc__json_path_index(&c->path, k);
            rc = orpc__json_enc_fail(
                c, ORPC_EINVAL, "map entry missing or not a %s", et.d->name);
            orpc__json_path_pop(&c->path, mark);
            break;
        }
        const char *eb = (const char *)e;
        json_t *v = NULL;
        orpc__buf_truncate(&key, 0);
        rc = kops->text(kf, NULL, c->legacy, eb + kf->offset, &key);
        if (rc == 0 && key.failed) {
            rc = ORPC_ENOMEM;
        } else if (rc != 0) {
            size_t mark = orpc__json_path_index(&c->path, k);
            rc = orpc__json_enc_fail(c, rc, "map key is not UTF-8");
            orpc__json_path_pop(&c->path, mark);
        }
        if (rc == 0) {
            size_t mark = orpc__json_path_mapkey(&c->path, orpc__buf_str(&key));
            rc = enc_elem(c, et, 1, eb + et.d->fields[1].offset, depth + 1, &v);
            orpc__json_path_pop(&c->path, mark);
        }
        /* json_object_set_new*() takes |v| even when it fails. */
        if (rc == 0 &&
            json_object_set_new_nocheck(obj, orpc__buf_str(&key), v) < 0) {
            rc = ORPC_ENOMEM;
        }
    }
    orpc__buf_free(&key);
    if (rc != 0) {
        json_decref(obj);
        return rc;
    }
    *out = obj;
    return 0;
}

static int enc_list(orpc__json_enc *c, orpc__json_mtype t, unsigned i,
                    const char *base, unsigned depth, json_t **out)
{
    const ProtobufCFieldDescriptor *f = &t.d->fields[i];
    size_t n = *(const size_t *)(base + f->quantifier_offset);
    const char *arr = *(const char *const *)(base + f->offset);
    size_t esz = orpc__json_traits_of(f->type)->size;
    if (depth + 1 > c->max_depth) {
        return orpc__json_enc_too_deep(c);
    }
    if (n > 0 && arr == NULL) {
        return orpc__json_enc_fail(c, ORPC_EINVAL,
                                   "%zu elements counted, none stored", n);
    }
    json_t *a = json_array();
    if (a == NULL) {
        return ORPC_ENOMEM;
    }
    for (size_t k = 0; k < n; k++) {
        json_t *v = NULL;
        size_t mark = orpc__json_path_index(&c->path, k);
        int rc = enc_elem(c, t, i, arr + k * esz, depth + 1, &v);
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

int orpc__json_enc_msg(orpc__json_enc *c, orpc__json_mtype t,
                       const ProtobufCMessage *m, unsigned depth, json_t **out)
{
    enum orpc__json_wkt kind = orpc__json_wkt_of(t.d);
    if (kind != ORPC__WKT_NONE) {
        return orpc__json_enc_wkt(c, kind, t, m, depth, out);
    }
    if (depth + 1 > c->max_depth) {
        return orpc__json_enc_too_deep(c);
    }
    json_t *obj = json_object();
    if (obj == NULL) {
        return ORPC_ENOMEM;
    }
    const char *base = (const char *)m;
    for (unsigned i = 0; i < t.d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &t.d->fields[i];
        const void *member = base + f->offset;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id) {
                continue;
            }
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (*(const size_t *)(base + f->quantifier_offset) == 0 &&
                !c->emit_defaults) {
                continue;
            }
        } else if (!field_present(f, base) &&
                   !(c->emit_defaults && f->label == PROTOBUF_C_LABEL_NONE &&
                     f->type != PROTOBUF_C_TYPE_MESSAGE)) {
            continue;
        }
        const char *name = f->name;
        char *derived = NULL;
        if (!c->proto_names) {
            if (t.info != NULL && t.info->fields[i].json_name != NULL) {
                name = t.info->fields[i].json_name;
            } else {
                name = derived = orpc__json_name_dup(f->name);
            }
        }
        json_t *v = NULL;
        int rc = name != NULL ? 0 : ORPC_ENOMEM;
        if (rc == 0) {
            size_t mark = orpc__json_path_key(&c->path, name);
            if (f->label == PROTOBUF_C_LABEL_REPEATED &&
                !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) {
                rc = orpc__json_is_map(t.d, f)
                         ? enc_map(c, t, i, base, depth + 1, &v)
                         : enc_list(c, t, i, base, depth + 1, &v);
            } else {
                rc = enc_elem(c, t, i, member, depth + 1, &v);
            }
            orpc__json_path_pop(&c->path, mark);
        }
        /* json_object_set_new*() takes |v| even when it fails. */
        if (rc == 0 && json_object_set_new_nocheck(obj, name, v) < 0) {
            rc = ORPC_ENOMEM;
        }
        free(derived);
        if (rc != 0) {
            json_decref(obj);
            return rc;
        }
    }
    *out = obj;
    return 0;
}

static void ectx_init(orpc__json_enc *c, const orpc_json_opts *opts,
                      orpc__json_mtype root)
{
    memset(c, 0, sizeof *c);
    if (opts != NULL) {
        c->legacy = opts->legacy != 0;
        c->emit_defaults = opts->emit_defaults != 0;
        c->proto_names = opts->proto_names != 0 || c->legacy;
        c->max_depth = opts->max_depth;
    }
    if (c->max_depth == 0) {
        c->max_depth = ORPC__JSON_DEFAULT_MAX_DEPTH;
    }
    c->root = root;
}

/* Compact JSON text of |v|, reals in their shortest exact form. */
void orpc__json_dump(orpc__buf *b, json_t *v)
{
    char buf[64];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        int first = 1;
        orpc__buf_putc(b, '{');
        json_object_foreach(v, k, x)
        {
            if (!first) {
                orpc__buf_putc(b, ',');
            }
            first = 0;
            orpc__buf_putc(b, '"');
            orpc__json_escape(b, k, strlen(k));
            orpc__buf_puts(b, "\":");
            orpc__json_dump(b, x);
        }
        orpc__buf_putc(b, '}');
        break;
    }
    case JSON_ARRAY:
        orpc__buf_putc(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0) {
                orpc__buf_putc(b, ',');
            }
            orpc__json_dump(b, json_array_get(v, i));
        }
        orpc__buf_putc(b, ']');
        break;
    case JSON_STRING:
        orpc__buf_putc(b, '"');
        orpc__json_escape(b, json_string_value(v), json_string_length(v));
        orpc__buf_putc(b, '"');
        break;
    case JSON_INTEGER:
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        orpc__buf_puts(b, buf);
        break;
    case JSON_REAL:
        orpc__json_fmt_double(json_real_value(v), buf, sizeof buf);
        orpc__buf_puts(b, buf);
        break;
    case JSON_TRUE:
        orpc__buf_puts(b, "true");
        break;
    case JSON_FALSE:
        orpc__buf_puts(b, "false");
        break;
    case JSON_NULL:
        orpc__buf_puts(b, "null");
        break;
    }
}

static int bad_args(const orpc_message_info *info, const ProtobufCMessage *msg)
{
    return info == NULL || info->descriptor == NULL ||
           info->descriptor->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC ||
           msg == NULL || msg->descriptor != info->descriptor;
}

int orpc__json_encode_value(json_t **out, const orpc_message_info *info,
                            const ProtobufCMessage *msg,
                            const orpc_json_opts *opts,
                            orpc_error_detail *detail)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || bad_args(info, msg)) {
        return orpc__detail_set(detail, ORPC_EINVAL,
                                "$: invalid arguments (no result, no message "
                                "table, or a message not of its type)");
    }
    orpc__json_mtype root = orpc__json_mt(info->descriptor, info);
    orpc__json_enc c;
    ectx_init(&c, opts, root);
    orpc__buf_puts(&c.path, "$");
    int rc = orpc__json_enc_msg(&c, root, msg, 0, out);
    orpc__buf_free(&c.path);
    if (rc != 0) {
        if (c.err.code != rc) { /* not recorded where it happened */
            orpc__detail_set(&c.err, rc, "%s",
                             rc == ORPC_ENOMEM ? "out of memory encoding JSON"
                                               : "$: cannot encode");
        }
        if (detail != NULL) {
            *detail = c.err;
        }
        *out = NULL;
        return rc;
    }
    return 0;
}

int orpc_json_encode(char **out, size_t *len, const orpc_message_info *info,
                     const ProtobufCMessage *msg, const orpc_json_opts *opts,
                     orpc_error_detail *detail)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (len != NULL) {
        *len = 0;
    }
    if (out == NULL) {
        return orpc__detail_set(detail, ORPC_EINVAL,
                                "$: invalid arguments (no result)");
    }
    json_t *v = NULL;
    int rc = orpc__json_encode_value(&v, info, msg, opts, detail);
    if (rc != 0) {
        return rc;
    }
    orpc__buf b = {0};
    orpc__json_dump(&b, v);
    json_decref(v);
    *out = orpc__buf_take(&b, len);
    if (*out == NULL) {
        return orpc__detail_set(detail, ORPC_ENOMEM,
                                "out of memory encoding JSON");
    }
    return 0;
}
