/*
 * wkt.h — the special proto3 JSON forms of google.protobuf's well-known
 * types (Timestamp, Duration, the wrappers, Struct, Value, ListValue,
 * FieldMask) for the `orpc` command's dynamic codec; wkt.c tells how.
 *
 * Threads: no state; any thread.
 */
#ifndef ORPC_TOOLS_WKT_H
#define ORPC_TOOLS_WKT_H

#include <stddef.h>

#include <jansson.h>

/* The plain form (what the generic codec encodes) of |in|, a value in the
 * special JSON form of message type |type| (".google.protobuf.Timestamp"
 * or without the dot); |in| itself, with a new reference, for other types.
 * NULL with |err| when |in| is not such a value. */
json_t *orpc__wkt_to_plain(const char *type, const json_t *in, char *err,
                           size_t errlen);

/* The special JSON form of |in| (taken), a decoded plain message of type
 * |type|; |in| itself for other types. */
json_t *orpc__wkt_from_plain(const char *type, json_t *in);

/* Nonzero for the types with a special form (not Any, not Empty). */
int orpc__wkt_is_special(const char *type);

/* Nonzero for google.protobuf.Value, whose JSON null is a value. */
int orpc__wkt_is_value(const char *type);

#endif
