/*
 * descpool.c — the `orpc` command's pool of FileDescriptorProtos (see
 * descpool.h): what `orpc call` and `orpc list` know of methods that are
 * not compiled into the command.
 *
 * Design notes:
 * - Files are unpacked with protobuf-c (liborpc's descriptor.pb-c) and kept
 *   as they are; lookups walk them by name each time.  A command looks up a
 *   handful of types per message, so an index would cost more than it
 *   saves.
 * - Bounds: the serialized bytes of all files together and the number of
 *   files are capped (descpool.h), so a server or a file cannot make the
 *   command hold more than that; bytes nested deeper than DPOOL_MAX_DEPTH
 *   are refused before protobuf-c (whose unpack recurses without a limit)
 *   unpacks them; name lookups descend at most 64 nested types.
 */
#include "descpool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deepest nesting of messages in descriptor bytes (each nested message
 * type is a level, each field of it one more). */
#define DPOOL_MAX_DEPTH 100

struct orpc__dpool {
    Google__Protobuf__FileDescriptorProto **files;
    size_t n_files, cap;
    size_t bytes; /* serialized size of everything added */
};

int orpc__dpool_new(orpc__dpool **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : -1;
}

void orpc__dpool_free(orpc__dpool *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n_files; i++)
        google__protobuf__file_descriptor_proto__free_unpacked(p->files[i],
                                                               NULL);
    free(p->files);
    free(p);
}

int orpc__dpool_has_file(const orpc__dpool *p, const char *name)
{
    for (size_t i = 0; i < p->n_files; i++)
        if (p->files[i]->name && strcmp(p->files[i]->name, name) == 0)
            return 1;
    return 0;
}

size_t orpc__dpool_n_files(const orpc__dpool *p)
{
    return p->n_files;
}

const Google__Protobuf__FileDescriptorProto *
orpc__dpool_file(const orpc__dpool *p, size_t i)
{
    return i < p->n_files ? p->files[i] : NULL;
}

/* Takes ownership of |f| (freed on failure). */
static int adopt(orpc__dpool *p, Google__Protobuf__FileDescriptorProto *f,
                 size_t len, char *err, size_t errlen)
{
    if (f->name == NULL || f->name[0] == '\0') {
        snprintf(err, errlen, "a file descriptor without a name");
        google__protobuf__file_descriptor_proto__free_unpacked(f, NULL);
        return -1;
    }
    if (orpc__dpool_has_file(p, f->name)) {
        google__protobuf__file_descriptor_proto__free_unpacked(f, NULL);
        return 0;
    }
    if (p->bytes + len > ORPC__DPOOL_MAX_BYTES ||
        p->n_files >= ORPC__DPOOL_MAX_FILES) {
        snprintf(err, errlen,
                 "descriptors over the limit (%u files, %u bytes in all)",
                 ORPC__DPOOL_MAX_FILES, ORPC__DPOOL_MAX_BYTES);
        google__protobuf__file_descriptor_proto__free_unpacked(f, NULL);
        return -1;
    }
    if (p->n_files == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        void *nf = realloc(p->files, cap * sizeof(*p->files));
        if (nf == NULL) {
            snprintf(err, errlen, "out of memory");
            google__protobuf__file_descriptor_proto__free_unpacked(f, NULL);
            return -1;
        }
        p->files = nf;
        p->cap = cap;
    }
    p->files[p->n_files++] = f;
    p->bytes += len;
    return 0;
}

/* Nonzero when data[0..len), read as a message of type |d|, nests its
 * messages at most DPOOL_MAX_DEPTH deep.  protobuf-c's unpack recurses
 * once per level without a limit, so hostile descriptor bytes (a
 * DescriptorProto nested a million times in 4 MiB) are measured first,
 * walking the wire format with the schema: only the fields that the schema
 * says are messages are descended into.  Malformed bytes pass here and
 * fail in the unpack. */
/* Reads a varint at *p (before |end|) into |*v|; 0, or -1 when it runs
 * past |end| or over 64 bits. */
static int varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p == end)
            return -1;
        uint8_t byte = *(*p)++;
        *v |= (uint64_t)(byte & 0x7f) << shift;
        if ((byte & 0x80) == 0)
            return 0;
    }
    return -1;
}

static int depth_ok(const ProtobufCMessageDescriptor *d, const uint8_t *p,
                    size_t len, int depth)
{
    if (depth > DPOOL_MAX_DEPTH)
        return 0;
    const uint8_t *end = p + len;
    while (p < end) {
        uint64_t tag, n;
        if (varint(&p, end, &tag) != 0)
            return 1;
        int wt = (int)(tag & 7);
        if (wt == 0) {
            if (varint(&p, end, &n) != 0)
                return 1;
        } else if (wt == 1 || wt == 5) {
            if ((size_t)(end - p) < (wt == 1 ? 8u : 4u))
                return 1;
            p += wt == 1 ? 8 : 4;
        } else if (wt == 2) {
            if (varint(&p, end, &n) != 0 || n > (uint64_t)(end - p))
                return 1;
            const ProtobufCFieldDescriptor *f =
                protobuf_c_message_descriptor_get_field(d,
                                                        (unsigned)(tag >> 3));
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                !depth_ok(f->descriptor, p, (size_t)n, depth + 1))
                return 0;
            p += n;
        } else {
            return 1;
        }
    }
    return 1;
}

/* Unpacks data[0..len) as a |d| (|what| in messages) once it is within the
 * bounds; NULL with |err| otherwise. */
static ProtobufCMessage *unpack(const ProtobufCMessageDescriptor *d,
                                const char *what, const uint8_t *data,
                                size_t len, char *err, size_t errlen)
{
    ProtobufCMessage *m = NULL;
    if (len > ORPC__DPOOL_MAX_BYTES)
        snprintf(err, errlen, "a %s of %zu bytes (limit %u)", what, len,
                 ORPC__DPOOL_MAX_BYTES);
    else if (!depth_ok(d, data, len, 0))
        snprintf(err, errlen, "a %s nested over %d deep", what,
                 DPOOL_MAX_DEPTH);
    else if ((m = protobuf_c_message_unpack(d, NULL, len, data)) == NULL)
        snprintf(err, errlen, "not a %s", d->short_name);
    return m;
}

int orpc__dpool_add_file(orpc__dpool *p, const uint8_t *data, size_t len,
                         char *err, size_t errlen)
{
    ProtobufCMessage *f =
        unpack(&google__protobuf__file_descriptor_proto__descriptor,
               "file descriptor", data, len, err, errlen);
    return f ? adopt(p, (Google__Protobuf__FileDescriptorProto *)f, len, err,
                     errlen)
             : -1;
}

int orpc__dpool_add_set(orpc__dpool *p, const uint8_t *data, size_t len,
                        char *err, size_t errlen)
{
    Google__Protobuf__FileDescriptorSet *set =
        (Google__Protobuf__FileDescriptorSet *)unpack(
            &google__protobuf__file_descriptor_set__descriptor,
            "descriptor set", data, len, err, errlen);
    if (set == NULL)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < set->n_file && rc == 0; i++) {
        size_t n = google__protobuf__file_descriptor_proto__get_packed_size(
            set->file[i]);
        rc = adopt(p, set->file[i], n, err, errlen);
        set->file[i] = NULL; /* adopted (or freed) */
    }
    for (size_t i = 0; i < set->n_file; i++)
        if (set->file[i])
            google__protobuf__file_descriptor_proto__free_unpacked(set->file[i],
                                                                   NULL);
    set->n_file = 0;
    google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
    return rc;
}

/* |rest| relative to |f|'s package, or NULL when the name is not in it. */
static const char *in_package(const Google__Protobuf__FileDescriptorProto *f,
                              const char *name)
{
    if (name[0] == '.')
        name++;
    const char *pkg = f->package ? f->package : "";
    size_t n = strlen(pkg);
    if (n == 0)
        return name;
    if (strncmp(name, pkg, n) != 0 || name[n] != '.')
        return NULL;
    return name + n + 1;
}

/* Matches |name| against |n| at the start of |rest|: 1 for the whole of
 * |rest|, 2 when |rest| goes on with ".", 0 otherwise. */
static int match(const char *name, const char *rest)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || strncmp(rest, name, n) != 0)
        return 0;
    return rest[n] == '\0' ? 1 : rest[n] == '.' ? 2 : 0;
}

/* Walks nested messages: the message named |rest| among |msgs|, or (with
 * |want_enum|) the enum; the type found goes to |*msg_out| / |*enum_out|. */
static int walk(Google__Protobuf__DescriptorProto *const *msgs, size_t n_msgs,
                Google__Protobuf__EnumDescriptorProto *const *enums,
                size_t n_enums, const char *rest, int depth,
                const Google__Protobuf__DescriptorProto **msg_out,
                const Google__Protobuf__EnumDescriptorProto **enum_out)
{
    if (depth > 64)
        return 0;
    if (enum_out)
        for (size_t i = 0; i < n_enums; i++)
            if (match(enums[i]->name, rest) == 1) {
                *enum_out = enums[i];
                return 1;
            }
    for (size_t i = 0; i < n_msgs; i++) {
        int m = match(msgs[i]->name, rest);
        if (m == 1 && msg_out) {
            *msg_out = msgs[i];
            return 1;
        }
        if (m == 2 && walk(msgs[i]->nested_type, msgs[i]->n_nested_type,
                           msgs[i]->enum_type, msgs[i]->n_enum_type,
                           rest + strlen(msgs[i]->name) + 1, depth + 1, msg_out,
                           enum_out))
            return 1;
    }
    return 0;
}

int orpc__dpool_message(const orpc__dpool *p, const char *name, orpc__dmsg *out)
{
    for (size_t i = 0; i < p->n_files; i++) {
        const char *rest = in_package(p->files[i], name);
        const Google__Protobuf__DescriptorProto *m = NULL;
        if (rest && walk(p->files[i]->message_type, p->files[i]->n_message_type,
                         NULL, 0, rest, 0, &m, NULL)) {
            out->msg = m;
            out->file = p->files[i];
            return 1;
        }
    }
    return 0;
}

const Google__Protobuf__EnumDescriptorProto *
orpc__dpool_enum(const orpc__dpool *p, const char *name)
{
    for (size_t i = 0; i < p->n_files; i++) {
        const char *rest = in_package(p->files[i], name);
        const Google__Protobuf__EnumDescriptorProto *e = NULL;
        if (rest && walk(p->files[i]->message_type, p->files[i]->n_message_type,
                         p->files[i]->enum_type, p->files[i]->n_enum_type, rest,
                         0, NULL, &e))
            return e;
    }
    return NULL;
}

const Google__Protobuf__ServiceDescriptorProto *
orpc__dpool_service(const orpc__dpool *p, const char *name)
{
    for (size_t i = 0; i < p->n_files; i++) {
        const char *rest = in_package(p->files[i], name);
        for (size_t s = 0; rest && s < p->files[i]->n_service; s++)
            if (match(p->files[i]->service[s]->name, rest) == 1)
                return p->files[i]->service[s];
    }
    return NULL;
}
