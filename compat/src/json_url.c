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
    orpc__buf text = {0};
    int rc = orpc__json_traits_of(f->type)->ops->text(
        f, orpc__json_enum_of_fi(f, fi), opts != NULL && opts->legacy, member,
        &text);
    if (rc != 0) {
        orpc__buf_free(&text);
        return rc;
    }
    *out = orpc__buf_take(&text, NULL);
    return *out != NULL ? 0 : ORPC_ENOMEM;
}

/* Frees what the value of field |f| at |member| owns (strings, bytes,
 * messages), unless it is the field's static default. */
static void free_member(const ProtobufCFieldDescriptor *f, void *member,
                        ProtobufCAllocator *alloc)
{
    const orpc__json_ops *ops = orpc__json_traits_of(f->type)->ops;
    if (ops->release != NULL) {
        ops->release(f, member, alloc);
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
    const orpc__json_traits *tr = orpc__json_traits_of(f->type);
    const char *why = "invalid value";
    int rc = tr->ops->parse(f, orpc__json_enum_of_fi(f, fi), text, strlen(text),
                            &tmp, alloc, 1, &why);
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
        memcpy(member, &tmp, tr->size);
        *oneof_case = f->id;
        return 0;
    }
    free_member(f, member, alloc);
    memcpy(member, &tmp, tr->size);
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && !tr->ops->by_pointer) {
        *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
    }
    return 0;
}
