/*
 * descpool.h — the `orpc` command's descriptor pool: the
 * FileDescriptorProtos that describe the methods `orpc call` and `orpc list`
 * reach without compiled-in tables, wherever they came from (server
 * reflection, a --protoset file, protoc run on --proto files).
 *
 * The pool takes serialized files, unpacks them with the
 * google/protobuf/descriptor.proto code liborpc carries, keeps one copy of
 * each file name and answers lookups by fully qualified name.  Everything
 * it is given is untrusted: the serialized files together are at most
 * ORPC__DPOOL_MAX_BYTES, and at most ORPC__DPOOL_MAX_FILES files.
 *
 * Threads: a pool belongs to one thread.
 */
#ifndef ORPC_TOOLS_DESCPOOL_H
#define ORPC_TOOLS_DESCPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "google/protobuf/descriptor.pb-c.h"

/* Bounds on what a pool holds (reflection answers, files). */
#define ORPC__DPOOL_MAX_BYTES (4u << 20)
#define ORPC__DPOOL_MAX_FILES 1024u

typedef struct orpc__dpool orpc__dpool;

/* A message type found in a pool, with the file declaring it (its syntax
 * decides proto3's implicit presence and packed default). */
typedef struct orpc__dmsg {
    const Google__Protobuf__DescriptorProto *msg;
    const Google__Protobuf__FileDescriptorProto *file;
} orpc__dmsg;

/* 0, or -1 when out of memory. */
int orpc__dpool_new(orpc__dpool **out);
/* Frees the pool and every file in it; NULL does nothing. */
void orpc__dpool_free(orpc__dpool *p);

/* Adds one serialized FileDescriptorProto (copied).  A file whose name the
 * pool already holds is ignored.  0, or -1 with |err| (of |errlen| bytes)
 * saying why: not a FileDescriptorProto, over the bounds, no memory. */
int orpc__dpool_add_file(orpc__dpool *p, const uint8_t *data, size_t len,
                         char *err, size_t errlen);
/* Adds every file of a serialized FileDescriptorSet; as add_file. */
int orpc__dpool_add_set(orpc__dpool *p, const uint8_t *data, size_t len,
                        char *err, size_t errlen);
/* Nonzero when the pool holds the file called |name|. */
int orpc__dpool_has_file(const orpc__dpool *p, const char *name);
/* The number of files, and file |i|, for walking the pool. */
size_t orpc__dpool_n_files(const orpc__dpool *p);
const Google__Protobuf__FileDescriptorProto *
orpc__dpool_file(const orpc__dpool *p, size_t i);

/* Lookups by fully qualified name, with or without the leading '.'
 * (".pkg.Outer.Inner", "pkg.Service").  Borrowed from the pool. */
int orpc__dpool_message(const orpc__dpool *p, const char *name,
                        orpc__dmsg *out);
const Google__Protobuf__EnumDescriptorProto *
orpc__dpool_enum(const orpc__dpool *p, const char *name);
const Google__Protobuf__ServiceDescriptorProto *
orpc__dpool_service(const orpc__dpool *p, const char *name);

#endif
