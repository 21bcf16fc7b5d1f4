/*
 * orpc/compat/json.h — the proto3 JSON mapping, generic over the message
 * tables protoc-gen-orpc generates (orpc/method.h).
 *
 * Both directions, for every field type: JSON names and original names
 * accepted on input; 64-bit integers as strings or numbers; enums by name or
 * number (and by orpc.legacy_name); bytes as standard or URL-safe base64;
 * repeated fields, maps, oneofs, nested messages; the well-known types
 * Timestamp, Duration, the wrappers, Struct/Value/ListValue, FieldMask and
 * Empty.  A "legacy" output profile speaks the way the OpsConductor Python
 * services do: snake_case names, integers as JSON numbers where they fit,
 * enums by their legacy spelling.
 *
 * Errors are orpc's (orpc/error.h): 0 or a negative ORPC_E* code, and the
 * optional orpc_error_detail says where and why, naming the JSON path of
 * the fault: `$.jobs[2].status: unknown enum value "RUNNIN" of
 * opsconductor.jobs.v1.JobStatus`, and for text that is not JSON at all the
 * line and column.  Input is untrusted: depth, size and number ranges are
 * bounded.  These functions judge data, not configuration, so given no
 * detail they log nothing (a bad request is its sender's fault, and must
 * not flood a log); a caller that answers a request with a gRPC status
 * builds it from the detail, e.g.
 *
 *     orpc_error_detail d;
 *     int rc = orpc_json_decode(&req, info, body, len, NULL, NULL, &d);
 *     if (rc != 0)
 *         return orpc_status_new(rc == ORPC_ENOMEM ? ORPC_RESOURCE_EXHAUSTED
 *                                                  : ORPC_INVALID_ARGUMENT,
 *                                d.message);
 *
 * Thread-safety: all functions work on their arguments only; any thread.
 */
#ifndef ORPC_COMPAT_JSON_H
#define ORPC_COMPAT_JSON_H

#include <protobuf-c/protobuf-c.h>

#include <orpc/common.h>
#include <orpc/error.h>
#include <orpc/method.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Options of the mapping.  Zero-initialise; fields are only appended. */
typedef struct orpc_json_opts {
    /** Output in the legacy profile: original (snake_case) field names,
     *  64-bit integers as JSON numbers when within ±2^53, enums by
     *  orpc.legacy_name when they have one. */
    int legacy;
    /** Output fields that hold their default value too. */
    int emit_defaults;
    /** Output original field names instead of JSON names (implied by
     *  |legacy|). */
    int proto_names;
    /** Input: skip unknown fields instead of failing. */
    int ignore_unknown;
    /** Deepest nesting of objects and arrays read or written; 0 for 64. */
    unsigned max_depth;
} orpc_json_opts;

/**
 * @function
 * Encodes |msg|, a message of the type |info| describes, as proto3 JSON
 * text (compact; |opts| NULL for the standard profile).
 *
 * Returns 0 with |*out| the NUL-terminated text and |*len| (when |len| is
 * not NULL) its length; ORPC_EINVAL when an argument is wrong (NULL |out|,
 * |info| or |msg|, or |msg| not of |info|'s type) or |msg| holds a value
 * JSON cannot carry (a string that is not UTF-8, a Timestamp out of range,
 * an Any whose type does not resolve), the detail naming its path;
 * ORPC_ETOOBIG when |msg| nests deeper than |opts|->max_depth (64 by
 * default), so that what is written can be read back; ORPC_ENOMEM.  On
 * failure |*out| is NULL and |*len| 0, and |detail| (when not NULL) is
 * filled.
 *
 * Ownership: |*out| is the caller's, to free with free(3).  |info|, |msg|
 * and |opts| are only read during the call.
 * Threads: any thread; concurrent calls may share |info|, |msg| and
 * |opts|, which are not written.
 */
ORPC_EXTERN int orpc_json_encode(char **out, size_t *len,
                                 const orpc_message_info *info,
                                 const ProtobufCMessage *msg,
                                 const orpc_json_opts *opts,
                                 orpc_error_detail *detail);

/**
 * @function
 * Decodes |len| bytes of proto3 JSON text (not necessarily NUL-terminated)
 * into a new message of the type |info| describes, allocated with |alloc|
 * (NULL: malloc); |opts| NULL for the defaults.
 *
 * Returns 0 with |*out| set; ORPC_EPARSE when the text is not JSON or does
 * not match the message (a wrong type, an unknown field or enum name, a
 * number out of range, bad base64, a duplicate key...), the detail naming
 * the JSON path and the reason (`$.items[2].when: invalid timestamp
 * "yesterday"`), or the line and column for text that is not JSON;
 * ORPC_ETOOBIG when it nests deeper than |opts|->max_depth (64 by
 * default); ORPC_ENOMEM; ORPC_EINVAL for a NULL |out| or |info|, or a NULL
 * |json| with |len| > 0.  On failure |*out| is NULL, nothing is left
 * allocated, and |detail| (when not NULL) is filled.
 *
 * Ownership: |*out| is the caller's: free it with
 * protobuf_c_message_free_unpacked(*out, alloc), so |alloc| must outlive
 * it.  |json|, |info| and |opts| are only read during the call.
 * Threads: any thread; concurrent calls may share |info|, |opts| and
 * |json|; |alloc| must be usable from the calling thread.
 */
ORPC_EXTERN int
orpc_json_decode(ProtobufCMessage **out, const orpc_message_info *info,
                 const char *json, size_t len, const orpc_json_opts *opts,
                 ProtobufCAllocator *alloc, orpc_error_detail *detail);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_COMPAT_JSON_H */
