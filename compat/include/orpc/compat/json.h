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
 * Input is untrusted: depth, size and number ranges are bounded, and an
 * error is INVALID_ARGUMENT whose message names the JSON path, e.g.
 * `$.payload.items[2]: expected a number`, and for text that is not JSON
 * at all the line and column.
 *
 * Thread-safety: all functions work on their arguments only; any thread.
 */
#ifndef ORPC_COMPAT_JSON_H
#define ORPC_COMPAT_JSON_H

#include <protobuf-c/protobuf-c.h>

#include <orpc/common.h>
#include <orpc/method.h>
#include <orpc/status.h>

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
    /** Input: deepest nesting accepted; 0 for 64. */
    unsigned max_depth;
} orpc_json_opts;

/**
 * @function
 * Encodes |msg| (of the type |info| describes) as JSON text.
 *
 * Returns 0 with |*out| a NUL-terminated string the caller frees with
 * free(3) (|*len| its length when |len| is not NULL); ORPC_EINVAL (|msg| is
 * not of |info|'s type, or a value JSON cannot carry: a Timestamp out of
 * range, invalid UTF-8 in a string); ORPC_ENOMEM.
 */
ORPC_EXTERN int orpc_json_encode(const orpc_message_info *info,
                                 const ProtobufCMessage *msg,
                                 const orpc_json_opts *opts, char **out,
                                 size_t *len);

/**
 * @function
 * Decodes |len| bytes of JSON text into a new message of |info|'s type,
 * allocated with |alloc| (NULL: malloc).  On ORPC_OK |*out| is set; free it
 * with protobuf_c_message_free_unpacked(*out, alloc).
 *
 * Returns ORPC_OK, INVALID_ARGUMENT with the path, position and reason, or
 * RESOURCE_EXHAUSTED when memory runs out.  Ownership: the caller clears
 * the status.
 */
ORPC_EXTERN orpc_status orpc_json_decode(const orpc_message_info *info,
                                         const char *json, size_t len,
                                         const orpc_json_opts *opts,
                                         ProtobufCAllocator *alloc,
                                         ProtobufCMessage **out);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_COMPAT_JSON_H */
