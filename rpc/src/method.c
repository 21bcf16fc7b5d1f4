/*
 * method.c — owns the lookups on the tables protoc-gen-orpc generates
 * (orpc/method.h): methods by name or path, fields by number or name, enum
 * values by number or spelling.
 *
 * The tables are constant data emitted by a generator, but a pointer handed
 * in by a program may still be wrong, so every lookup tolerates NULL and
 * empty tables, and method lookup checks the service's magic number first.
 * Field lookup by number is a binary search because the generator emits
 * fields in protobuf-c's order, by number; everything else is a linear scan
 * over a handful of entries, in declaration order, which is also the order
 * that decides between aliases.
 */
#include <orpc/method.h>

#include <limits.h>
#include <stddef.h>
#include <string.h>

static int str_eq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* The smallest method element this runtime can read: every field up to
 * |service|, which the first generator with method_size already had. */
#define MIN_METHOD_SIZE                                                        \
    (offsetof(orpc_method_desc, service) + sizeof(const orpc_service_desc *))

const orpc_method_desc *orpc_service_method(const orpc_service_desc *svc,
                                            size_t i)
{
    if (svc == NULL || svc->magic != ORPC_SERVICE_DESC_MAGIC ||
        svc->methods == NULL || i >= svc->n_methods ||
        svc->method_size < MIN_METHOD_SIZE)
        return NULL;
    return (const orpc_method_desc *)(const void *)((const char *)svc->methods +
                                                    i * svc->method_size);
}

const orpc_method_desc *orpc_service_find_method(const orpc_service_desc *svc,
                                                 const char *name)
{
    if (svc == NULL || name == NULL || svc->magic != ORPC_SERVICE_DESC_MAGIC ||
        (svc->methods == NULL && svc->n_methods > 0)) {
        return NULL;
    }
    /* A name with a '/' can only be a full path; a bare name has none. */
    int is_path = name[0] == '/';
    for (size_t i = 0; i < svc->n_methods; i++) {
        const orpc_method_desc *m = orpc_service_method(svc, i);
        if (m == NULL)
            return NULL;
        if (str_eq(is_path ? m->path : m->name, name)) {
            return m;
        }
    }
    return NULL;
}

const orpc_field_info *orpc_message_info_field(const orpc_message_info *info,
                                               uint32_t number)
{
    if (info == NULL || info->fields == NULL) {
        return NULL;
    }
    size_t lo = 0;
    size_t hi = info->n_fields;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t n = info->fields[mid].number;
        if (n == number) {
            return &info->fields[mid];
        }
        if (n < number) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

int orpc_message_info_find(const orpc_message_info *info, const char *name)
{
    if (info == NULL || name == NULL) {
        return -1;
    }
    size_t n = info->n_fields;
    if (n > INT_MAX) {
        n = INT_MAX;
    }
    /* JSON names first: proto3 JSON prints them and protoc guarantees they
     * do not collide with one another. */
    if (info->fields != NULL) {
        for (size_t i = 0; i < n; i++) {
            if (str_eq(info->fields[i].json_name, name)) {
                return (int)i;
            }
        }
    }
    const ProtobufCMessageDescriptor *d = info->descriptor;
    if (d != NULL && d->fields != NULL) {
        size_t nd = d->n_fields < n ? d->n_fields : n;
        for (size_t i = 0; i < nd; i++) {
            if (str_eq(d->fields[i].name, name)) {
                return (int)i;
            }
        }
    }
    return -1;
}

const orpc_enum_value_info *orpc_enum_info_value(const orpc_enum_info *info,
                                                 int32_t number)
{
    if (info == NULL || info->values == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < info->n_values; i++) {
        if (info->values[i].number == number) {
            return &info->values[i];
        }
    }
    return NULL;
}

const orpc_enum_value_info *orpc_enum_info_find(const orpc_enum_info *info,
                                                const char *name)
{
    if (info == NULL || info->values == NULL || name == NULL) {
        return NULL;
    }
    /* A legacy spelling wins over a proto name anywhere in the enum. */
    for (size_t i = 0; i < info->n_values; i++) {
        if (str_eq(info->values[i].legacy_name, name)) {
            return &info->values[i];
        }
    }
    for (size_t i = 0; i < info->n_values; i++) {
        if (str_eq(info->values[i].name, name)) {
            return &info->values[i];
        }
    }
    return NULL;
}

const char *orpc_call_kind_name(orpc_call_kind kind)
{
    switch (kind) {
    case ORPC_CALL_UNARY:
        return "unary";
    case ORPC_CALL_SERVER_STREAMING:
        return "server_streaming";
    case ORPC_CALL_CLIENT_STREAMING:
        return "client_streaming";
    case ORPC_CALL_BIDI_STREAMING:
        return "bidi_streaming";
    }
    return "unknown";
}
