/*
 * plan.h — one proto file, checked and ready to emit (internal).
 *
 * Planning decodes the options protobuf-c leaves as unknown fields
 * (google.api.http and orpc's own), validates them, and works out every
 * name the emitters print.  Emitters never fail: whatever could be wrong
 * with the input is found here and reported as a protoc error with the
 * file, line and column.
 */
#ifndef ORPC_CG_PLAN_H
#define ORPC_CG_PLAN_H

#include "google/api/http.pb-c.h"
#include "model.h"
#include "orpc/options.pb-c.h"

/* Extension numbers read from options. */
#define CG_EXT_HTTP 72295728u
#define CG_EXT_LEGACY_HEADER 58001u
#define CG_EXT_LEGACY_NAME 58002u
#define CG_EXT_METHOD 58003u
#define CG_EXT_SERVICE 58004u

typedef enum cg_kind {
    CG_UNARY = 0,
    CG_SERVER_STREAMING = 1,
    CG_CLIENT_STREAMING = 2,
    CG_BIDI_STREAMING = 3
} cg_kind;

typedef struct cg_method_plan {
    const cg_method *m;
    const cg_type *in, *out;
    cg_kind kind;
    Google__Api__HttpRule *http; /* or NULL */
    int no_auth;
    int idempotency; /* 0 unknown, 1 no side effects, 2 idempotent */
    char *lower;     /* get_job: function-name part */
    char *member;    /* get_job, or get_job_ if a C keyword: struct member */
    char *path;      /* "/pkg.Svc/Method" */
    int32_t loc[4];
} cg_method_plan;

typedef struct cg_service_plan {
    const cg_service *s;
    char *full_name;                           /* pkg.Svc */
    char *c_type;                              /* Pkg__Svc */
    char *c_lower;                             /* pkg__svc */
    char *legacy_url_env, *legacy_default_url; /* or NULL */
    size_t n_methods;
    cg_method_plan *methods;
    int32_t loc[2];
} cg_service_plan;

typedef struct cg_plan {
    cg_ctx *ctx;
    const cg_file *file;
    char *stem;            /* file name without .proto */
    char *ident;           /* file name as an identifier */
    const cg_type **types; /* the file's messages and enums, in order */
    size_t n_types;
    const cg_file **deps; /* files whose .orpc.h the header includes */
    size_t n_deps;
    cg_service_plan *services;
    size_t n_services;
} cg_plan;

/* Plans |file|; 0, or -1 with ctx->error set. */
int cg_plan_file(cg_ctx *ctx, const cg_file *file, cg_plan *out);
void cg_plan_free(cg_plan *plan);

/* Options carried as unknown fields.  Each returns 0 (|*out| NULL when the
 * option is absent) or -1 when it is present but does not decode. */
int cg_opt_legacy_header(const Google__Protobuf__FieldOptions *o,
                         Orpc__LegacyHeader **out);
int cg_opt_legacy_name(const Google__Protobuf__EnumValueOptions *o, char **out);

/* The field of |msg| called |name|, or NULL. */
const cg_field *cg_field_named(const cg_message *msg, const char *name);

/* HTTP verb of a rule ("GET", … or the custom kind) and its path. */
const char *cg_rule_verb(const Google__Api__HttpRule *r);
const char *cg_rule_path(const Google__Api__HttpRule *r);

/* Empty strings (proto3 defaults) count as unset. */
int cg_str_set(const char *s);

#endif
