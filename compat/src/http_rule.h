/*
 * http_rule.h — a method's google.api.http rule applied to a message
 * (internal): the legacy request a call becomes, and the message a legacy
 * reply becomes.
 */
#ifndef ORPC_COMPAT_HTTP_RULE_H
#define ORPC_COMPAT_HTTP_RULE_H

#include <orpc/compat/json.h>
#include <orpc/method.h>
#include <orpc/status.h>

typedef struct orpc__http_request {
    const char *verb; /* borrowed from the rule */
    char *path;       /* "/jobs/42/run?x=1", percent-encoded */
    char *body;       /* JSON text, or NULL for no body */
    size_t body_len;
    char **headers; /* "Name: value" for orpc.legacy_header fields */
    size_t n_headers;
} orpc__http_request;

/*
 * Builds the request for |msg| (of m->input's type) by |rule| (NULL: the
 * method's own).  Path variables take their fields' values (single-segment
 * variables percent-encode everything but unreserved characters; '**' and
 * pattern variables keep '/'); body "*" is every field not bound to the path
 * or a header, body "f" is field f, no body means none; every other field
 * that is set becomes a query parameter (repeated → repeated keys, nested →
 * dotted names); orpc.legacy_header fields become headers.
 * INVALID_ARGUMENT when a path variable's field is unset or empty, or the
 * message is not the method's input.
 */
orpc_status orpc__http_build(const orpc_method_desc *m,
                             const orpc_http_rule *rule,
                             const ProtobufCMessage *msg,
                             const orpc_json_opts *json,
                             orpc__http_request *out);

void orpc__http_request_clear(orpc__http_request *r);

/*
 * The response message from a legacy reply's JSON |body|: the whole
 * message, or with response_body "f" the value of field f.  An empty body
 * gives an empty message.  Malformed or wrongly shaped JSON is INTERNAL
 * (it is a service's reply, not the caller's input) naming the problem.
 */
orpc_status orpc__http_decode_response(const orpc_method_desc *m,
                                       const orpc_http_rule *rule,
                                       const char *body, size_t len,
                                       const orpc_json_opts *json,
                                       ProtobufCMessage **out);

#endif
