/*
 * model.h — protoc-gen-orpc's view of a CodeGeneratorRequest (internal).
 *
 * protoc hands the plugin every file it parsed as FileDescriptorProtos.  The
 * model indexes all their messages and enums by full name (a field's type may
 * live in any imported file), finds source locations for comments and error
 * positions, and names things the way protoc-c does, so that the generated
 * code refers to protoc-c's types and descriptors by their real names.
 */
#ifndef ORPC_CG_MODEL_H
#define ORPC_CG_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "google/protobuf/compiler/plugin.pb-c.h"
#include "google/protobuf/descriptor.pb-c.h"

typedef Google__Protobuf__FileDescriptorProto cg_file;
typedef Google__Protobuf__DescriptorProto cg_message;
typedef Google__Protobuf__EnumDescriptorProto cg_enum;
typedef Google__Protobuf__FieldDescriptorProto cg_field;
typedef Google__Protobuf__ServiceDescriptorProto cg_service;
typedef Google__Protobuf__MethodDescriptorProto cg_method;

/* Field numbers of descriptor.proto used in source-location paths. */
enum {
    CG_FILE_MESSAGE = 4,
    CG_FILE_ENUM = 5,
    CG_FILE_SERVICE = 6,
    CG_MSG_FIELD = 2,
    CG_MSG_NESTED = 3,
    CG_MSG_ENUM = 4,
    CG_ENUM_VALUE = 2,
    CG_SERVICE_METHOD = 2,
    CG_FIELD_OPTIONS = 8,
    CG_METHOD_OPTIONS = 4,
    CG_SERVICE_OPTIONS = 3,
    CG_ENUM_VALUE_OPTIONS = 3
};

/* Longest source path the model keeps (nesting depth of messages). */
#define CG_MAX_PATH 64

/* A message or enum of any file of the request. */
typedef struct cg_type {
    char *full_name;       /* "pkg.Outer.Inner", no leading dot */
    const cg_file *file;   /* where it is defined */
    const cg_message *msg; /* exactly one of msg and enm is set */
    const cg_enum *enm;
    char *c_type;  /* protoc-c's type name, Pkg__Outer__Inner */
    char *c_lower; /* protoc-c's function prefix, pkg__outer__inner */
    int32_t path[CG_MAX_PATH]; /* source path within |file| */
    size_t path_len;
} cg_type;

typedef struct cg_ctx {
    const Google__Protobuf__Compiler__CodeGeneratorRequest *req;
    cg_type *types; /* sorted by full_name */
    size_t n_types;
    char *error; /* the first error, "file:line:col: reason" */
} cg_ctx;

/* Builds the index; returns 0 or -1 with ctx->error set. */
int cg_ctx_init(cg_ctx *ctx,
                const Google__Protobuf__Compiler__CodeGeneratorRequest *req);
void cg_ctx_free(cg_ctx *ctx);

/* The file of the request called |name|, or NULL. */
const cg_file *cg_find_file(const cg_ctx *ctx, const char *name);

/* The type named |name| (".pkg.Msg" or "pkg.Msg"), or NULL. */
const cg_type *cg_find_type(const cg_ctx *ctx, const char *name);

/* The type whose descriptor is |msg| / |enm|, or NULL. */
const cg_type *cg_type_of_message(const cg_ctx *ctx, const cg_message *msg);
const cg_type *cg_type_of_enum(const cg_ctx *ctx, const cg_enum *enm);

/* Records an error at the source location |path| of |file| (the longest
 * prefix of |path| that has a location); only the first error is kept.
 * Always returns -1. */
int cg_error(cg_ctx *ctx, const cg_file *file, const int32_t *path,
             size_t path_len, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Leading (else trailing) comment at exactly |path|, or NULL. */
const char *cg_comment(const cg_file *file, const int32_t *path,
                       size_t path_len);

/* --- names, as protoc-c makes them (protoc-c/c_helpers.cc) --- */
char *cg_full_to_c(const char *full_name); /* a.b_c.FooBar -> A__BC__FooBar */
char *cg_full_to_lower(const char *full_name); /* -> a__b_c__foo_bar */
char *cg_full_to_upper(const char *full_name); /* -> A__B_C__FOO_BAR */
char *cg_camel_to_lower(const char *name);     /* GetJob -> get_job */
char *cg_camel_to_upper(const char *name);     /* GetJob -> GET_JOB */
char *cg_file_ident(const char *filename);     /* a/b.proto -> a_b_proto */
int cg_is_c_keyword(const char *name);
/* "pkg" + "." + "Name", or "Name" when pkg is empty. */
char *cg_qualify(const char *package, const char *name);
/* A file's name without ".proto". */
char *cg_strip_proto(const char *filename);

#endif
