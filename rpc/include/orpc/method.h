/*
 * orpc/method.h — the tables protoc-gen-orpc generates, and lookups on them.
 *
 * protobuf-c's descriptors say nothing about call kinds, HTTP rules, JSON
 * names or options (see REFERENCE.md, "what users ask for" 5).  For every
 * .proto file the plugin therefore emits, beside protoc-c's descriptors:
 *
 *   - an orpc_service_desc per service with an orpc_method_desc per method
 *     (full path, call kind, message types, google.api.http rules,
 *     idempotency and orpc's own options);
 *   - an orpc_message_info per message: each field's JSON name, the info of
 *     its message or enum type, and orpc's field options;
 *   - an orpc_enum_info per enum with each value's legacy spelling;
 *   - an orpc_file_desc listing all of the above.
 *
 * These are constant data: all of it lives in read-only storage and may be
 * read from any thread.
 */
#ifndef ORPC_METHOD_H
#define ORPC_METHOD_H

#include <protobuf-c/protobuf-c.h>

#include <orpc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The four kinds of gRPC call. */
typedef enum orpc_call_kind {
    /** One request, one response. */
    ORPC_CALL_UNARY = 0,
    /** One request, a stream of responses. */
    ORPC_CALL_SERVER_STREAMING = 1,
    /** A stream of requests, one response. */
    ORPC_CALL_CLIENT_STREAMING = 2,
    /** Streams both ways. */
    ORPC_CALL_BIDI_STREAMING = 3
} orpc_call_kind;

/** A method's `idempotency_level` option. */
typedef enum orpc_idempotency {
    /** Not stated: the call may have side effects and is never replayed. */
    ORPC_IDEMPOTENCY_UNKNOWN = 0,
    /** The call only reads (HTTP GET semantics); safe to retry or hedge. */
    ORPC_NO_SIDE_EFFECTS = 1,
    /** Repeating the call has the effect of doing it once. */
    ORPC_IDEMPOTENT = 2
} orpc_idempotency;

/** A google.api.HttpRule, as generated from a method's options. */
typedef struct orpc_http_rule {
    /** "GET", "PUT", "POST", "DELETE", "PATCH", or a custom pattern's kind. */
    const char *verb;
    /** Nonzero when the rule was a `custom` pattern. */
    int custom;
    /** The path template, e.g. "/jobs/{job_id}/run"; already validated. */
    const char *path;
    /** NULL: no request body; "*": every field not bound to the path;
     *  otherwise the name of the top-level request field sent as the body. */
    const char *body;
    /** NULL: the whole response message is the body; otherwise the name of
     *  the response field that is. */
    const char *response_body;
    /** Number of entries in |additional_bindings|. */
    size_t n_additional_bindings;
    /** Further routes to the same method (never nested further). */
    const struct orpc_http_rule *additional_bindings;
} orpc_http_rule;

/** orpc.legacy_header: a request field that travels as an HTTP header. */
typedef struct orpc_legacy_header {
    /** Header name, e.g. "Authorization". */
    const char *name;
    /** Put before the value, e.g. "Bearer "; "" for none. */
    const char *prefix;
} orpc_legacy_header;

typedef struct orpc_message_info orpc_message_info;
typedef struct orpc_enum_info orpc_enum_info;

/** What orpc knows of one message field beyond protobuf-c's descriptor. */
typedef struct orpc_field_info {
    /** Field number; equal to descriptor->fields[i].id for the same i. */
    uint32_t number;
    /** proto3 JSON name (`json_name`, lowerCamelCase by default). */
    const char *json_name;
    /** For message-typed fields, the type's info; NULL otherwise or when
     *  the type was compiled without protoc-gen-orpc. */
    const orpc_message_info *message;
    /** For enum fields, the enum's info; NULL otherwise. */
    const orpc_enum_info *enum_info;
    /** orpc.legacy_header, or NULL. */
    const orpc_legacy_header *legacy_header;
} orpc_field_info;

/** What orpc knows of a message type. */
struct orpc_message_info {
    /** protobuf-c's descriptor of the message. */
    const ProtobufCMessageDescriptor *descriptor;
    /** Full proto name, e.g. "google.protobuf.Struct". */
    const char *full_name;
    /** Equal to descriptor->n_fields. */
    size_t n_fields;
    /** One per field, in the order of descriptor->fields (by number). */
    const orpc_field_info *fields;
};

/** A value of an enum, with its legacy spelling. */
typedef struct orpc_enum_value_info {
    /** The value's number. */
    int32_t number;
    /** The proto name, e.g. "NOTIFICATION_TYPE_EMAIL". */
    const char *name;
    /** orpc.legacy_name, e.g. "email", or NULL. */
    const char *legacy_name;
} orpc_enum_value_info;

/** What orpc knows of an enum type. */
struct orpc_enum_info {
    /** protobuf-c's descriptor of the enum. */
    const ProtobufCEnumDescriptor *descriptor;
    /** Full proto name. */
    const char *full_name;
    /** Number of entries in |values|. */
    size_t n_values;
    /** One per declared value (aliases included), in declaration order. */
    const orpc_enum_value_info *values;
};

typedef struct orpc_service_desc orpc_service_desc;

/** One RPC method. */
typedef struct orpc_method_desc {
    /** The method's name, e.g. "GetJob". */
    const char *name;
    /** The HTTP/2 :path, "/opsconductor.jobs.v1.JobsService/GetJob". */
    const char *path;
    /** Unary or streaming, and which way. */
    orpc_call_kind kind;
    /** The request type. */
    const orpc_message_info *input;
    /** The response type. */
    const orpc_message_info *output;
    /** The google.api.http rule, or NULL when the method has none. */
    const orpc_http_rule *http;
    /** The idempotency_level option. */
    orpc_idempotency idempotency;
    /** orpc.method.legacy_no_auth: the legacy call carries no token. */
    int legacy_no_auth;
    /** The service this method belongs to. */
    const orpc_service_desc *service;
} orpc_method_desc;

/** Magic number in every orpc_service_desc, to catch a wrong pointer. */
#define ORPC_SERVICE_DESC_MAGIC 0x6f727063u /* "orpc" */

/**
 * One RPC service.
 *
 * Generated code lays methods out in an array, whose elements could not
 * grow if their size were fixed: so the service says how large each
 * element was when it was generated (|method_size|, sizeof(orpc_method_desc)
 * of that generator), and the runtime steps through |methods| by that size
 * (orpc_service_method()) and reads only the fields an element that size
 * has.  orpc_method_desc therefore also only ever grows at its end.  Code
 * outside orpc reaches methods through orpc_service_method() or the
 * generated per-method pointers, never by indexing |methods|.
 */
struct orpc_service_desc {
    /** ORPC_SERVICE_DESC_MAGIC. */
    uint32_t magic;
    /** sizeof(orpc_method_desc) as the generator of this table saw it. */
    uint32_t method_size;
    /** The service's name, e.g. "JobsService". */
    const char *name;
    /** Fully qualified, e.g. "opsconductor.jobs.v1.JobsService". */
    const char *full_name;
    /** The proto package, e.g. "opsconductor.jobs.v1"; "" for none. */
    const char *package;
    /** Number of entries in |methods|. */
    size_t n_methods;
    /** The methods, in declaration order. */
    const orpc_method_desc *methods;
    /** orpc.service.legacy_url_env, or NULL. */
    const char *legacy_url_env;
    /** orpc.service.legacy_default_url, or NULL. */
    const char *legacy_default_url;
    /** The file that declares the service (server reflection reads its
     * descriptor); NULL in tables generated before orpc 0.2. */
    const struct orpc_file_desc *file;
};

/** Everything generated for one .proto file. */
typedef struct orpc_file_desc {
    /** The file's name as protoc saw it, e.g.
     * "opsconductor/jobs/v1/jobs.proto". */
    const char *name;
    /** The proto package. */
    const char *package;
    /** Number of entries in |services|. */
    size_t n_services;
    /** The file's services. */
    const orpc_service_desc *const *services;
    /** Number of entries in |messages|. */
    size_t n_messages;
    /** Every message of the file, nested ones included. */
    const orpc_message_info *const *messages;
    /** Number of entries in |enums|. */
    size_t n_enums;
    /** Every enum of the file, nested ones included. */
    const orpc_enum_info *const *enums;
    /* Appended in orpc 0.2 (tables generated earlier leave them 0): */
    /** The file's serialized google.protobuf.FileDescriptorProto, without
     * source_code_info; NULL when the table carries none. */
    const uint8_t *descriptor;
    /** Size of |descriptor| in bytes. */
    size_t descriptor_size;
    /** Number of entries in |dependencies|. */
    size_t n_dependencies;
    /** The files this one imports, in import order. */
    const struct orpc_file_desc *const *dependencies;
} orpc_file_desc;

/**
 * @function
 * Method |i| of |service| (0 <= i < n_methods), stepping by the table's own
 * element size; NULL when |i| is out of range, |service| is not a service
 * descriptor, or its elements are smaller than this runtime can read.
 *
 * Ownership: borrowed from the descriptor (generated, static).
 * Threads: any thread.
 */
ORPC_EXTERN const orpc_method_desc *
orpc_service_method(const orpc_service_desc *service, size_t i);

/**
 * @function
 * The method of |svc| called |name|: either the bare method name ("GetJob")
 * or the full path ("/opsconductor.jobs.v1.JobsService/GetJob").
 *
 * Returns the method, or NULL when |svc| has none of that name (or either
 * argument is NULL, or |svc| is not a service descriptor).
 *
 * Ownership: borrowed from the descriptor (generated, static); |name| is
 * borrowed for the call.
 * Threads: any thread.
 */
ORPC_EXTERN const orpc_method_desc *
orpc_service_find_method(const orpc_service_desc *svc, const char *name);

/**
 * @function
 * The field info of field number |number| of |info|, or NULL.
 *
 * Ownership: borrowed from |info| (generated, static).
 * Threads: any thread.
 */
ORPC_EXTERN const orpc_field_info *
orpc_message_info_field(const orpc_message_info *info, uint32_t number);

/**
 * @function
 * The index into descriptor->fields and info->fields of the field whose JSON
 * name or proto name is |name| (the proto3 JSON parser accepts both), or -1.
 *
 * Ownership: borrows |name| for the call.
 * Threads: any thread.
 */
ORPC_EXTERN int orpc_message_info_find(const orpc_message_info *info,
                                       const char *name);

/**
 * @function
 * The value info of |number| in |info| (the first declared when aliased),
 * or NULL.
 *
 * Ownership: borrowed from |info| (generated, static).
 * Threads: any thread.
 */
ORPC_EXTERN const orpc_enum_value_info *
orpc_enum_info_value(const orpc_enum_info *info, int32_t number);

/**
 * @function
 * The value info whose legacy spelling, or failing that whose proto name,
 * is |name|; NULL when none is.
 *
 * Ownership: borrowed from |info| (generated, static); |name| is borrowed
 * for the call.
 * Threads: any thread.
 */
ORPC_EXTERN const orpc_enum_value_info *
orpc_enum_info_find(const orpc_enum_info *info, const char *name);

/**
 * @function
 * A short lower-case name for |kind|: "unary", "server_streaming",
 * "client_streaming", "bidi_streaming" ("unknown" for another value).
 *
 * Ownership: the string is static: never free it.
 * Threads: any thread.
 */
ORPC_EXTERN const char *orpc_call_kind_name(orpc_call_kind kind);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_METHOD_H */
