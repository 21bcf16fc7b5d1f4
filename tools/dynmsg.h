/*
 * dynmsg.h — the `orpc` command's dynamic protobuf codec: proto3 JSON to
 * wire bytes and back for message types known only from descriptors (an
 * orpc__dpool), and the "raw" message type that carries those bytes
 * through liborpc's calls.
 *
 * Threads: no state of its own; a pool belongs to one thread.
 */
#ifndef ORPC_TOOLS_DYNMSG_H
#define ORPC_TOOLS_DYNMSG_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include <orpc/method.h>

#include "common/buf.h"
#include "descpool.h"

/* Deepest nesting of messages encoded or decoded. */
#define ORPC__DYN_MAX_DEPTH 64

/* Encodes the JSON object |in| as a message of type |type| (fully
 * qualified) into |out| (appended).  0, or -1 with |err| saying why (the
 * JSON path of the fault, e.g. "$.items[2].id: not an integer"). */
int orpc__dyn_encode(const orpc__dpool *p, const char *type, const json_t *in,
                     orpc__buf *out, char *err, size_t errlen);

/* Decodes the wire bytes data[0..len) of a message of type |type| into a
 * new JSON object (the caller decrefs it): 64-bit integers as strings,
 * bytes as base64, enums by name, well-known types in their special
 * forms (Any excepted), fields in declaration order, proto3's
 * implicit-presence fields left out when they hold their default.  NULL
 * with |err| on malformed input. */
json_t *orpc__dyn_decode(const orpc__dpool *p, const char *type,
                         const uint8_t *data, size_t len, char *err,
                         size_t errlen);

/* Compact JSON text of |v| (the caller frees it), doubles in their
 * shortest round-trip spelling; NULL when out of memory. */
char *orpc__dyn_dumps(const json_t *v);

/*
 * The raw message.  liborpc sends and receives ProtobufCMessages through
 * protobuf-c's pack and unpack; a message type with no fields at all keeps
 * every field it is given as an unknown field, and packs them back in
 * order, byte for byte.  So unpacking bytes with orpc__raw_info's
 * descriptor wraps them in a message that packs to the same bytes, and a
 * response unpacked with it packs back to what the server sent: method
 * descriptors built at run time use it for both directions and the
 * command never needs a ProtobufCMessageDescriptor of the real types.
 */
extern const orpc_message_info orpc__raw_info;

/* Wraps data[0..len) (copied) in a raw message, freed with
 * protobuf_c_message_free_unpacked(m, NULL); NULL when the bytes are not
 * protobuf wire format or memory ran out. */
ProtobufCMessage *orpc__raw_wrap(const uint8_t *data, size_t len);

/* The bytes of |m| (a raw message) into |out|.  0 or -1. */
int orpc__raw_bytes(const ProtobufCMessage *m, orpc__buf *out);

#endif
