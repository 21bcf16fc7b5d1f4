/*
 * json_internal.h — the JSON mapping at the jansson level, for the rest of
 * the compat layer (HTTP rules build bodies and query strings from it).
 */
#ifndef ORPC_COMPAT_JSON_INTERNAL_H
#define ORPC_COMPAT_JSON_INTERNAL_H

#include <jansson.h>

#include <orpc/compat/json.h>

/* |msg| as a jansson value (a new reference in |*out|); 0, ORPC_EINVAL or
 * ORPC_ENOMEM. */
int orpc__json_encode_value(const orpc_message_info *info,
                            const ProtobufCMessage *msg,
                            const orpc_json_opts *opts, json_t **out);

/* |v| into a new message; errors name |path| (e.g. "$" or "$.body") as the
 * root.  See orpc_json_decode(). */
orpc_status orpc__json_decode_value(const orpc_message_info *info, json_t *v,
                                    const orpc_json_opts *opts,
                                    ProtobufCAllocator *alloc,
                                    const char *path, ProtobufCMessage **out);

/* One singular scalar or enum field's value (or one element of a repeated
 * one) as the text that goes into a
 * URL path segment, a query parameter or a header (the JSON text of the
 * value without quotes: 42, true, "x" → x, enums by name or legacy name,
 * bytes as URL-safe base64).  |member| points at the field's storage in the
 * message.  0 with a malloc'd |*out|, or ORPC_EINVAL / ORPC_ENOMEM. */
int orpc__json_scalar_text(const ProtobufCFieldDescriptor *f,
                           const orpc_field_info *fi, const void *member,
                           const orpc_json_opts *opts, char **out);

/* Sets a singular scalar or enum field from |text| (a URL segment or query
 * value, already percent-decoded), setting its oneof case or has_ flag too
 * and freeing the value it replaces (which must have come from |alloc| or
 * be the field's default).  0 or ORPC_EINVAL (|text| does not parse as the
 * field's type) / ORPC_ENOMEM; strings and bytes are allocated with
 * |alloc|. */
int orpc__json_scalar_parse(const ProtobufCFieldDescriptor *f,
                            const orpc_field_info *fi, void *member,
                            const char *text, ProtobufCAllocator *alloc);

#endif
