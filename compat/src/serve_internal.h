/*
 * serve_internal.h — the gateway's core (orpc/compat/serve.h), without
 * HTTP: routes matched and requests decoded from (verb, target, headers,
 * body); responses and errors encoded to (HTTP status, body); Connect
 * requests parsed; the token cache.  serve.c is the thin glue between
 * these and orpc/gateway.h's exchanges.  Internal to liborpc-compat;
 * tests compile these files in.
 */
#ifndef ORPC_COMPAT_SERVE_INTERNAL_H
#define ORPC_COMPAT_SERVE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <orpc/compat/json.h>
#include <orpc/compat/serve.h>
#include <orpc/metadata.h>
#include <orpc/method.h>
#include <orpc/status.h>

#include "common/path_template.h"

/* Input bounds. */
#define ORPC__SERVE_MAX_QUERY 8192   /* bytes of the query string */
#define ORPC__SERVE_MAX_PARAMS 128   /* query parameters */
#define ORPC__SERVE_MAX_PATH 4096    /* bytes of the path */
#define ORPC__SERVE_MAX_SEGMENTS 64  /* path segments */
#define ORPC__SERVE_MAX_DEPTH 32     /* JSON nesting */
#define ORPC__SERVE_CACHE_SLOTS 1024 /* token cache entries */

/* An HTTP error the gateway answers itself: status and detail text;
 * |allow| for 405, |www_auth| for 401. */
typedef struct orpc__serve_err {
    int status;
    char detail[256];
    char allow[64];
    int www_auth;
} orpc__serve_err;

/* Reads request header |name| (case-insensitive), or NULL. */
typedef const char *(*orpc__serve_header_fn)(void *ud, const char *name);

/* One legacy route: a rule (the method's own or an additional binding). */
typedef struct orpc__lroute {
    const orpc_method_desc *m;
    const orpc_http_rule *rule;
    orpc_path_template *t;
    size_t literals; /* literal segments and verb: more wins a tie */
} orpc__lroute;

typedef struct orpc__lroutes {
    orpc__lroute *v;
    size_t n, cap;
} orpc__lroutes;

/* Adds every rule of every method of |s|.  0, ORPC_ENOMEM, or ORPC_ECONFIG
 * (|err| says which) when a template does not parse or two methods claim
 * the same verb and template shape. */
int orpc__lroutes_add_service(orpc__lroutes *rt, const orpc_service_desc *s,
                              char *err, size_t errlen);
void orpc__lroutes_free(orpc__lroutes *rt);

/* The route |verb| |target| names: 0 with |*out|; -1 with |e| filled (404,
 * 405 with Allow, 400 for a refused path: dot segments, encoded slashes,
 * control characters, over the bounds). */
int orpc__lroute_find(const orpc__lroutes *rt, const char *verb,
                      const char *target, const orpc__lroute **out,
                      orpc__serve_err *e);

/* The request message of |r| from |target| (path variables, query),
 * headers (orpc.legacy_header fields) and |body|: 0 with |*out| (free with
 * protobuf_c_message_free_unpacked(*out, NULL)); -1 with |e| filled (400,
 * 415). */
int orpc__lroute_decode(const orpc__lroute *r, const char *target,
                        orpc__serve_header_fn hdr, void *hdr_ud,
                        const uint8_t *body, size_t len, ProtobufCMessage **out,
                        orpc__serve_err *e);

/* The legacy profile, as the compat client reads it. */
void orpc__serve_legacy_opts(orpc_json_opts *jo);

/* A response message |msg| of |m| by |rule| (response_body) in the legacy
 * profile: 0 with malloc'd |*body|, |*len|; ORPC_EINVAL/ORPC_ENOMEM. */
int orpc__serve_encode_legacy(const orpc_method_desc *m,
                              const orpc_http_rule *rule,
                              const ProtobufCMessage *msg, char **body,
                              size_t *len);

/* The HTTP status of a gRPC code on the legacy side (the inverse of the
 * client's table, compat/src/legacy_http.c). */
int orpc__serve_http_status(orpc_code code);

/* {"detail": |detail|} (invalid UTF-8 replaced), malloc'd. */
char *orpc__serve_detail_json(const char *detail, size_t *len);

/* The NDJSON line ending a stream that failed after messages:
 * {"error": {"code": <HTTP status>, "status": "NOT_FOUND", "detail": ...}}
 * and a newline. */
char *orpc__serve_stream_error(const orpc_status *st, size_t *len);

/* ---- Connect ---------------------------------------------------------- */

typedef enum orpc__connect_codec {
    ORPC__CONNECT_JSON = 0,
    ORPC__CONNECT_PROTO = 1
} orpc__connect_codec;

/* A Connect unary request, parsed. */
typedef struct orpc__connect_req {
    const orpc_method_desc *m;
    orpc__connect_codec codec;
    int64_t timeout_ms; /* 0: none */
    ProtobufCMessage *msg;
    orpc_metadata *md; /* request metadata from the headers, or NULL */
} orpc__connect_req;

void orpc__connect_req_clear(orpc__connect_req *r);

/* Finds a registered method by its path ("/pkg.Service/Method"). */
typedef const orpc_method_desc *(*orpc__serve_method_fn)(void *ud,
                                                         const char *path);

/* Parses a Connect unary request.  Returns 1 when |target| is not a
 * Connect path at all (not "/x.Y/Z": the caller goes on to other routes),
 * 0 with |*out| filled, or -1 with |*err| (an error status: the code
 * decides the HTTP status, orpc__connect_error_json the body) and
 * |*http_status| (nonzero where Connect's table does not decide: 404 for an
 * unknown method, 405, 414, 415). */
int orpc__connect_parse(orpc__serve_method_fn find, void *find_ud,
                        const char *verb, const char *target,
                        const orpc_metadata *headers, orpc__serve_header_fn hdr,
                        void *hdr_ud, const uint8_t *body, size_t len,
                        orpc__connect_req *out, orpc_status *err,
                        int *http_status);

/* Connect's lower-case code name ("not_found"). */
const char *orpc__connect_code_name(orpc_code code);

/* Connect's JSON error {"code": ..., "message": ...}, malloc'd. */
char *orpc__connect_error_json(const orpc_status *st, size_t *len);

/* A Connect response message in |codec|: 0 with malloc'd |*body|. */
int orpc__connect_encode(const orpc_method_desc *m, orpc__connect_codec codec,
                         const ProtobufCMessage *msg, uint8_t **body,
                         size_t *len);

/* ---- tokens ----------------------------------------------------------- */

typedef struct orpc__token_slot {
    unsigned char hash[32]; /* SHA-256 of the token; all zero: empty */
    char *identity;
    int64_t expires_ms; /* monotonic */
} orpc__token_slot;

/* A direct-mapped cache of positive verdicts, keyed by the token's
 * SHA-256 (the token itself is never stored). */
typedef struct orpc__token_cache {
    pthread_mutex_t mu;
    orpc__token_slot slots[ORPC__SERVE_CACHE_SLOTS];
    uint64_t hits, misses;
} orpc__token_cache;

void orpc__token_cache_init(orpc__token_cache *c);
void orpc__token_cache_destroy(orpc__token_cache *c);
/* A malloc'd copy of the cached identity of |token| at |now_ms|, or NULL. */
char *orpc__token_cache_get(orpc__token_cache *c, const char *token,
                            int64_t now_ms);
void orpc__token_cache_put(orpc__token_cache *c, const char *token,
                           const char *identity, int64_t expires_ms);

/* The "exp" claim (seconds since the epoch) of a JWT, or -1. */
int64_t orpc__jwt_exp(const char *token);

/* The identity of a Verify reply's user object: "legacy-service:<name>"
 * when it describes a service account ("service": true, or "type" /
 * "kind" "service"), else "legacy-user:<name>", the name being "username"
 * (or "name", or "id").  Malloc'd, or NULL when no name is there. */
char *orpc__identity_from_user_json(const char *user_json, size_t len);

/* Authenticates a legacy request's Authorization header value |authz|
 * (NULL: absent): 0 with malloc'd |*identity|, or -1 with |e| (401 with
 * FastAPI's texts; 503 when the verifier cannot judge). */
typedef struct orpc__auth {
    orpc_token_verify_fn verify;
    void *verify_ud;
    int verify_nonblocking; /* |verify| never blocks */
    int64_t cache_ms;       /* <0: no cache */
    orpc__token_cache *cache;
    /* nonzero: the caller may not block (an IO thread); a token that only
     * a blocking verifier can judge is then ORPC_EBLOCKING */
    int no_block;
} orpc__auth;
/* 0 (|*identity| set), -1 (|e| says the answer), or ORPC_EBLOCKING (|a|
 * no_block and a blocking verifier would have to run; nothing is set). */
int orpc__serve_authenticate(const orpc__auth *a, const char *authz,
                             char **identity, orpc__serve_err *e);

/* The default verifier: AuthService/Verify on the orpc_channel |ud| points
 * at (a struct orpc__verify_ctx). */
typedef struct orpc__verify_ctx {
    void *channel; /* orpc_channel * */
    int64_t timeout_ms;
} orpc__verify_ctx;
int orpc__verify_over_channel(const char *token, char **identity, void *ud);

int64_t orpc__serve_now_ms(void);

/* ---- a legacy request, whole ------------------------------------------ */

/* What a legacy request becomes: the method to run, its request message
 * (free with protobuf_c_message_free_unpacked(msg, NULL)) and the caller's
 * identity (malloc'd; NULL for a legacy_no_auth method). */
typedef struct orpc__legacy_call {
    const orpc__lroute *route;
    ProtobufCMessage *msg;
    char *identity;
} orpc__legacy_call;

void orpc__legacy_call_clear(orpc__legacy_call *c);

/* The whole of on_request's legacy side: the route (404, 405, 400), the
 * bearer token unless the method is legacy_no_auth (401, 503), the call
 * kind (501 for client and bidi streaming), the request message (400,
 * 415).  0 with |out| filled, -1 with |e|, or ORPC_EBLOCKING (|auth|
 * no_block: the token needs a blocking verifier; nothing is filled). */
int orpc__serve_legacy_request(const orpc__lroutes *rt, const orpc__auth *auth,
                               const char *verb, const char *target,
                               orpc__serve_header_fn hdr, void *hdr_ud,
                               const uint8_t *body, size_t len,
                               orpc__legacy_call *out, orpc__serve_err *e);

#endif
