/*
 * json_url.c — one scalar field as URL text (orpc__json_scalar_text) and
 * back (orpc__json_scalar_parse), for google.api.http path variables,
 * query parameters and headers: the JSON spelling of the value without
 * quotes, so that a path, a query and a body spell a field the same way.
 *
 * Bytes are URL-safe base64 with padding; bool only "true"/"false".
 * orpc__json_scalar_text() also takes one element of a repeated field
 * (query parameters repeat).  orpc__json_scalar_parse() (singular fields
 * only) treats |member| as a field inside its message (member - f->offset):
 * it sets the oneof case or proto2 has_ flag, and frees the value it
 * replaces (which must then have been allocated with |alloc|, or be the
 * field's default).
 */
#include "json_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/base64.h"

int orpc__json_scalar_text(const ProtobufCFieldDescriptor *f,
                           const orpc_field_info *fi, const void *member,
                           const orpc_json_opts *opts, char **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    /* A repeated field is accepted too: |member| is then one element (the
     * storage of an element is that of a singular value). */
    if (f == NULL || member == NULL || out == NULL ||
        f->type == PROTOBUF_C_TYPE_MESSAGE) {
        return ORPC_EINVAL;
    }
    char buf[64] = "";
    const char *text = buf;
    switch (f->type) {
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
    case PROTOBUF_C_TYPE_BOOL:
        orpc__json_map_key_text(f, member, buf, sizeof buf,
                                &text); /* map keys' form */
        break;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v = f->type == PROTOBUF_C_TYPE_FLOAT
                       ? orpc__json_float_as_double(*(const float *)member)
                       : *(const double *)member;
        if (isnan(v)) {
            text = "NaN";
        } else if (isinf(v)) {
            text = v > 0 ? "Infinity" : "-Infinity";
        } else {
            orpc__json_fmt_double(v, buf, sizeof buf);
        }
        break;
    }
    case PROTOBUF_C_TYPE_STRING:
        text = *(char *const *)member != NULL ? *(char *const *)member : "";
        if (!orpc__json_utf8_valid(text, strlen(text))) {
            return ORPC_EINVAL;
        }
        break;
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = member;
        orpc__buf t = {0};
        orpc__base64_append(&t, b->data, b->data != NULL ? b->len : 0,
                            ORPC__BASE64_URL);
        *out = orpc__buf_take(&t, NULL);
        return *out != NULL ? 0 : ORPC_ENOMEM;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        int32_t n = *(const int32_t *)member;
        text = orpc__json_enum_name(f, orpc__json_enum_of_fi(f, fi),
                                    opts != NULL && opts->legacy, n);
        if (text == NULL) {
            snprintf(buf, sizeof buf, "%" PRId32, n);
            text = buf;
        }
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return ORPC_EINVAL;
    }
    size_t n = strlen(text);
    *out = malloc(n + 1);
    if (*out == NULL) {
        return ORPC_ENOMEM;
    }
    memcpy(*out, text, n + 1);
    return 0;
}

/* Frees what the value of field |f| at |member| owns (strings, bytes,
 * messages), unless it is the field's static default. */
static void free_member(const ProtobufCFieldDescriptor *f, void *member,
                        ProtobufCAllocator *alloc)
{
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        char *s = *(char **)member;
        if (s != NULL && s != f->default_value) {
            orpc__json_free(alloc, s);
        }
        *(char **)member = NULL;
    } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
        ProtobufCBinaryData *b = member;
        const ProtobufCBinaryData *def = f->default_value;
        if (b->data != NULL && (def == NULL || def->data != b->data)) {
            orpc__json_free(alloc, b->data);
        }
        b->data = NULL;
        b->len = 0;
    } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        ProtobufCMessage *m = *(ProtobufCMessage **)member;
        if (m != NULL && (const void *)m != f->default_value) {
            protobuf_c_message_free_unpacked(m, alloc);
        }
        *(ProtobufCMessage **)member = NULL;
    }
}

int orpc__json_scalar_parse(const ProtobufCFieldDescriptor *f,
                            const orpc_field_info *fi, void *member,
                            const char *text, ProtobufCAllocator *alloc)
{
    if (f == NULL || member == NULL || text == NULL ||
        f->label == PROTOBUF_C_LABEL_REPEATED ||
        f->type == PROTOBUF_C_TYPE_MESSAGE) {
        return ORPC_EINVAL;
    }
    union {
        int32_t i32;
        uint32_t u32;
        int64_t i64;
        uint64_t u64;
        float f;
        double d;
        protobuf_c_boolean b;
        char *s;
        ProtobufCBinaryData bd;
    } tmp;
    memset(&tmp, 0, sizeof tmp);
    const char *why = NULL;
    int rc = orpc__json_text_to_scalar(f, orpc__json_enum_of_fi(f, fi), text,
                                       strlen(text), &tmp, alloc, 1, &why);
    if (rc == ORPC__JSON_CV_NOMEM) {
        return ORPC_ENOMEM;
    }
    if (rc != ORPC__JSON_CV_OK) {
        return ORPC_EINVAL;
    }
    /* The message that holds |member|, for the oneof case or has_ flag. */
    char *base = (char *)member - f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *oneof_case = (uint32_t *)(base + f->quantifier_offset);
        if (*oneof_case == f->id) {
            free_member(f, member, alloc);
        } else if (*oneof_case != 0) {
            /* Another member of the oneof holds the storage: release it. */
            const ProtobufCMessage *m = (const ProtobufCMessage *)base;
            const ProtobufCMessageDescriptor *d = m->descriptor;
            if (d != NULL && d->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC) {
                for (unsigned k = 0; k < d->n_fields; k++) {
                    if (d->fields[k].id == *oneof_case) {
                        free_member(&d->fields[k], base + d->fields[k].offset,
                                    alloc);
                    }
                }
            }
        }
        memcpy(member, &tmp, orpc__json_elem_size(f->type));
        *oneof_case = f->id;
        return 0;
    }
    free_member(f, member, alloc);
    memcpy(member, &tmp, orpc__json_elem_size(f->type));
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
        f->type != PROTOBUF_C_TYPE_STRING) {
        *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
    }
    return 0;
}
