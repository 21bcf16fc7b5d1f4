/*
 * serve.c — orpc's gateway (orpc/compat/serve.h): the object, its options,
 * and the thin glue between orpc/gateway.h's exchanges and the core
 * (serve_route.c: routes and requests; serve_codec.c: responses, errors,
 * Connect; serve_auth.c: tokens).
 *
 * Design notes: on_request (the IO thread first: the gateway is
 * inline_first; a worker when it returned ORPC_EBLOCKING there) picks one
 * of three answers —
 * GET /health, a legacy route, a Connect call — and either answers at once
 * or starts the method with orpc_http_call(); the exchange's state (what
 * kind of answer, the method and rule, the request message, the identity)
 * lives until on_done.  Only a token the verifier must judge (a cache miss
 * with the default verifier, or a custom one not verify_nonblocking) can
 * block: on the IO thread that request returns ORPC_EBLOCKING before
 * anything is answered, and runs again on a worker.  A legacy route is matched
 * first; a request no route knows is then tried as Connect
 * ("/pkg.Service/Method"), so the two share one port without a prefix.  Route
 * tables are built in on_start, one per server the gateway is installed on.
 *
 * Locking theory: |mu| guards the list of route tables (added by on_start,
 * read by on_request on any worker); a table is never changed once built,
 * so it is read without the lock after being found.  The token cache has
 * its own lock (serve_auth.c).
 */
#include "serve_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include <orpc/error.h>
#include <orpc/gateway.h>

typedef struct table {
    struct table *next;
    const orpc_server *srv;
    orpc__lroutes routes;
} table;

struct orpc_legacy_serve {
    orpc_legacy_serve_opts opts;
    orpc__verify_ctx vctx;
    orpc__auth auth;
    orpc__token_cache cache;
    pthread_mutex_t mu;
    table *tables;
};

int orpc_legacy_serve_new(orpc_legacy_serve **out,
                          const orpc_legacy_serve_opts *opts)
{
    if (out == NULL)
        return ORPC_EINVAL;
    *out = NULL;
    orpc_legacy_serve *ls = calloc(1, sizeof(*ls));
    if (ls == NULL)
        return ORPC_ENOMEM;
    if (opts != NULL)
        ls->opts = *opts;
    orpc__token_cache_init(&ls->cache);
    pthread_mutex_init(&ls->mu, NULL);
    if (ls->opts.auth_channel != NULL)
        orpc_channel_ref(ls->opts.auth_channel);
    ls->vctx.channel = ls->opts.auth_channel;
    ls->vctx.timeout_ms = ls->opts.verify_timeout_ms;
    if (ls->opts.verify != NULL) {
        ls->auth.verify = ls->opts.verify;
        ls->auth.verify_ud = ls->opts.verify_user_data;
    } else if (ls->opts.auth_channel != NULL) {
        ls->auth.verify = orpc__verify_over_channel;
        ls->auth.verify_ud = &ls->vctx;
    }
    ls->auth.verify_nonblocking =
        ls->opts.verify != NULL && ls->opts.verify_nonblocking;
    ls->auth.cache_ms = ls->opts.verify_cache_ms;
    ls->auth.cache = &ls->cache;
    *out = ls;
    return 0;
}

void orpc_legacy_serve_free(orpc_legacy_serve *ls)
{
    if (ls == NULL)
        return;
    for (table *t = ls->tables, *n; t != NULL; t = n) {
        n = t->next;
        orpc__lroutes_free(&t->routes);
        free(t);
    }
    if (ls->opts.auth_channel != NULL)
        orpc_channel_unref(ls->opts.auth_channel);
    orpc__token_cache_destroy(&ls->cache);
    pthread_mutex_destroy(&ls->mu);
    free(ls);
}

enum { X_LEGACY = 1, X_CONNECT = 2, X_HEALTH = 3 };

typedef struct xstate {
    int kind;
    const orpc_method_desc *m;
    const orpc_http_rule *rule;
    ProtobufCMessage *req;
    orpc_metadata *md;
    char *identity;
    orpc__connect_codec codec;
    int serving; /* health: the reply said SERVING */
} xstate;

static const char *hdr_of(void *ud, const char *name)
{
    return orpc_http_header((const orpc_http_exchange *)ud, name);
}

static const orpc_method_desc *method_of(void *ud, const char *path)
{
    const orpc_server *srv = ud;
    for (size_t i = 0;; i++) {
        const orpc_service_desc *s = orpc_server_service(srv, i);
        if (s == NULL)
            return NULL;
        size_t n = strlen(s->full_name);
        if (path[0] == '/' && strncmp(path + 1, s->full_name, n) == 0 &&
            path[n + 1] == '/')
            return orpc_service_find_method(s, path);
    }
}

static int on_start(orpc_server *srv, void *ud)
{
    orpc_legacy_serve *ls = ud;
    table *t = calloc(1, sizeof(*t));
    char err[256] = "";
    if (t == NULL)
        return ORPC_ENOMEM;
    t->srv = srv;
    for (size_t i = 0; !ls->opts.no_legacy_routes; i++) {
        const orpc_service_desc *s = orpc_server_service(srv, i);
        if (s == NULL)
            break;
        int rc = orpc__lroutes_add_service(&t->routes, s, err, sizeof(err));
        if (rc != 0) {
            if (err[0])
                fprintf(stderr, "orpc legacy gateway: %s\n", err);
            orpc__lroutes_free(&t->routes);
            free(t);
            return rc;
        }
    }
    pthread_mutex_lock(&ls->mu);
    t->next = ls->tables;
    ls->tables = t;
    pthread_mutex_unlock(&ls->mu);
    return 0;
}

static const orpc__lroutes *routes_of(orpc_legacy_serve *ls,
                                      const orpc_server *srv)
{
    const orpc__lroutes *r = NULL;
    pthread_mutex_lock(&ls->mu);
    for (table *t = ls->tables; t != NULL && r == NULL; t = t->next)
        if (t->srv == srv)
            r = &t->routes;
    pthread_mutex_unlock(&ls->mu);
    return r;
}

static int respond_json(orpc_http_exchange *x, int status, char *body,
                        size_t len)
{
    int rc = orpc_http_respond(x, status, "application/json",
                               body ? body : "{}", body ? len : 2);
    free(body);
    return rc;
}

static int respond_err(orpc_http_exchange *x, const orpc__serve_err *e)
{
    size_t len = 0;
    char *body = orpc__serve_detail_json(e->detail, &len);
    if (e->allow[0])
        orpc_http_add_header(x, "Allow", e->allow);
    if (e->www_auth)
        orpc_http_add_header(x, "WWW-Authenticate", "Bearer");
    return respond_json(x, e->status, body, len);
}

static int respond_connect_err(orpc_http_exchange *x, const orpc_status *st,
                               int http_status)
{
    size_t len = 0;
    char *body = orpc__connect_error_json(st, &len);
    return respond_json(
        x, http_status ? http_status : orpc_code_to_http(st->code), body, len);
}

static xstate *new_state(orpc_http_exchange *x, int kind)
{
    xstate *s = calloc(1, sizeof(*s));
    if (s != NULL) {
        s->kind = kind;
        orpc_http_set_state(x, s);
    }
    return s;
}

static int do_health(orpc_http_exchange *x)
{
    /* The built-in health service is read directly: a probe is not an RPC
     * caller, and a legacy port has no identity for the policy to allow. */
    orpc_health_status hs;
    if (orpc_server_get_health(orpc_http_server(x), "", &hs) == 0)
        return hs == ORPC_HEALTH_SERVING
                   ? orpc_http_respond(x, 200, "application/json",
                                       "{\"status\":\"healthy\"}", 20)
                   : orpc_http_respond(x, 503, "application/json",
                                       "{\"status\":\"unhealthy\"}", 22);
    const orpc_method_desc *m =
        method_of(orpc_http_server(x), "/grpc.health.v1.Health/Check");
    if (m == NULL)
        return orpc_http_respond(x, 200, "application/json",
                                 "{\"status\":\"healthy\"}", 20);
    xstate *s = new_state(x, X_HEALTH);
    if (s == NULL)
        return ORPC_ENOMEM;
    s->m = m;
    s->req = calloc(1, m->input->descriptor->sizeof_message);
    if (s->req == NULL)
        return ORPC_ENOMEM;
    m->input->descriptor->message_init(s->req);
    int rc = orpc_http_call(x, m->path, s->req, NULL);
    if (rc == ORPC_ENOTFOUND)
        return orpc_http_respond(x, 200, "application/json",
                                 "{\"status\":\"healthy\"}", 20);
    return rc;
}

static int do_connect(orpc_legacy_serve *ls, orpc_http_exchange *x, int *taken)
{
    orpc__connect_req cr;
    orpc_status st;
    int hs = 0;
    size_t len = 0;
    const uint8_t *body = orpc_http_body(x, &len);
    (void)ls;
    *taken = 1;
    int rc =
        orpc__connect_parse(method_of, orpc_http_server(x), orpc_http_method(x),
                            orpc_http_target(x), orpc_http_headers(x), hdr_of,
                            x, body, len, &cr, &st, &hs);
    if (rc == 1) {
        *taken = 0;
        return 0;
    }
    if (rc != 0) {
        rc = respond_connect_err(x, &st, hs);
        orpc_status_clear(&st);
        return rc;
    }
    xstate *s = new_state(x, X_CONNECT);
    if (s == NULL) {
        orpc__connect_req_clear(&cr);
        return ORPC_ENOMEM;
    }
    s->m = cr.m;
    s->codec = cr.codec;
    s->req = cr.msg;
    s->md = cr.md;
    orpc_http_call_opts co = {.timeout_ms = cr.timeout_ms, .metadata = s->md};
    rc = orpc_http_call(x, s->m->path, s->req, &co);
    if (rc != 0) {
        orpc_status e = orpc_status_errorf(
            ORPC_UNIMPLEMENTED, "%s cannot be called here", s->m->path);
        rc = respond_connect_err(x, &e, 0);
        orpc_status_clear(&e);
    }
    return rc;
}

static int on_request(orpc_http_exchange *x, void *ud)
{
    orpc_legacy_serve *ls = ud;
    const char *verb = orpc_http_method(x);
    const char *target = orpc_http_target(x);
    size_t plen = strcspn(target, "?");
    if (strcmp(verb, "GET") == 0 && plen == 7 &&
        strncmp(target, "/health", 7) == 0)
        return do_health(x);
    const orpc__lroutes *rt = routes_of(ls, orpc_http_server(x));
    orpc__serve_err e = {.status = 404};
    snprintf(e.detail, sizeof(e.detail), "Not Found");
    if (rt != NULL && !ls->opts.no_legacy_routes) {
        orpc__legacy_call lc;
        size_t len = 0;
        const uint8_t *body = orpc_http_body(x, &len);
        orpc__auth auth = ls->auth;
        auth.no_block = !orpc_http_may_block(x);
        int rc = orpc__serve_legacy_request(rt, &auth, verb, target, hdr_of, x,
                                            body, len, &lc, &e);
        if (rc == ORPC_EBLOCKING)
            return rc; /* again on a worker */
        if (rc == 0) {
            xstate *s = new_state(x, X_LEGACY);
            if (s == NULL) {
                orpc__legacy_call_clear(&lc);
                return ORPC_ENOMEM;
            }
            s->m = lc.route->m;
            s->rule = lc.route->rule;
            s->req = lc.msg;
            s->identity = lc.identity; /* both freed by on_done */
            orpc_http_call_opts co = {.identity = s->identity};
            if (orpc_http_call(x, s->m->path, s->req, &co) != 0) {
                orpc__serve_err ce = {.status = 501};
                snprintf(ce.detail, sizeof(ce.detail), "Not Implemented");
                return respond_err(x, &ce);
            }
            return 0;
        }
        if (e.status != 404)
            return respond_err(x, &e);
    }
    if (e.status == 404 && !ls->opts.no_connect) {
        int taken = 0;
        int rc = do_connect(ls, x, &taken);
        if (taken)
            return rc;
    }
    return respond_err(x, &e);
}

static int on_message(orpc_http_exchange *x, const ProtobufCMessage *msg,
                      void *ud)
{
    xstate *s = orpc_http_state(x);
    (void)ud;
    if (s == NULL)
        return -1;
    if (s->kind == X_HEALTH) {
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(msg->descriptor,
                                                            "status");
        s->serving = f && *(const int *)((const char *)msg + f->offset) == 1;
        return 0;
    }
    if (s->kind == X_CONNECT) {
        uint8_t *b = NULL;
        size_t n = 0;
        int rc = orpc__connect_encode(s->m, s->codec, msg, &b, &n);
        if (rc == 0)
            rc = orpc_http_body_append(x, b, n);
        free(b);
        return rc;
    }
    char *b = NULL;
    size_t n = 0;
    int rc = orpc__serve_encode_legacy(s->m, s->rule, msg, &b, &n);
    if (rc == 0)
        rc = orpc_http_body_append(x, b, n);
    if (rc == 0 && s->m->kind == ORPC_CALL_SERVER_STREAMING)
        rc = orpc_http_body_append(x, "\n", 1);
    free(b);
    return rc;
}

/* Connect's unary responses carry the call's metadata as headers: its
 * response headers as they are, its trailers prefixed "trailer-", "-bin"
 * values in unpadded base64.  Entries HTTP would refuse are left out. */
static void connect_metadata(orpc_http_exchange *x, const orpc_metadata *md,
                             const char *prefix)
{
    const char *key;
    const uint8_t *v;
    size_t len;
    for (size_t i = 0; orpc_metadata_at(md, i, &key, &v, &len) == 0; i++) {
        char name[256];
        size_t kl = strlen(key);
        if (snprintf(name, sizeof(name), "%s%s", prefix, key) >=
            (int)sizeof(name))
            continue;
        int bin = kl > 4 && strcmp(key + kl - 4, "-bin") == 0;
        size_t cap = bin ? 4 * ((len + 2) / 3) + 1 : len + 1;
        char *val = malloc(cap);
        if (val == NULL)
            return;
        if (bin) {
            int n =
                len ? EVP_EncodeBlock((unsigned char *)val, v, (int)len) : 0;
            while (n > 0 && val[n - 1] == '=')
                n--;
            val[n] = '\0';
        } else {
            memcpy(val, v, len);
            val[len] = '\0';
        }
        (void)orpc_http_add_header(x, name, val); /* EINVAL: left out */
        free(val);
    }
}

static void on_status(orpc_http_exchange *x, const orpc_status *st, void *ud)
{
    xstate *s = orpc_http_state(x);
    size_t len = 0;
    char *body = NULL;
    (void)ud;
    if (s == NULL)
        return;
    if (s->kind == X_HEALTH) {
        int ok =
            st->code == ORPC_OK ? s->serving : st->code == ORPC_UNIMPLEMENTED;
        const char *b =
            ok ? "{\"status\":\"healthy\"}" : "{\"status\":\"unhealthy\"}";
        orpc_http_body_reset(x);
        orpc_http_set_status(x, ok ? 200 : 503);
        orpc_http_add_header(x, "Content-Type", "application/json");
        orpc_http_body_append(x, b, strlen(b));
        return;
    }
    if (orpc_http_started(x)) {
        /* a stream that already sent messages: its error is the last line */
        if (st->code != ORPC_OK && (body = orpc__serve_stream_error(st, &len)))
            orpc_http_body_append(x, body, len);
        free(body);
        return;
    }
    if (s->kind == X_CONNECT) {
        connect_metadata(x, orpc_http_response_headers(x), "");
        connect_metadata(x, orpc_http_response_trailers(x), "trailer-");
    }
    if (st->code == ORPC_OK) {
        orpc_http_set_status(x, 200);
        if (s->kind == X_CONNECT)
            orpc_http_add_header(x, "Content-Type",
                                 s->codec == ORPC__CONNECT_PROTO
                                     ? "application/proto"
                                     : "application/json");
        else if (s->m->kind == ORPC_CALL_SERVER_STREAMING)
            orpc_http_add_header(x, "Content-Type", "application/x-ndjson");
        else
            orpc_http_add_header(x, "Content-Type", "application/json");
        return;
    }
    orpc_http_body_reset(x);
    if (s->kind == X_CONNECT) {
        body = orpc__connect_error_json(st, &len);
        orpc_http_set_status(x, orpc_code_to_http(st->code));
    } else {
        body = orpc__serve_detail_json(st->message && st->message[0]
                                           ? st->message
                                           : orpc_code_name(st->code),
                                       &len);
        orpc_http_set_status(x, orpc__serve_http_status(st->code));
        /* the exact code for orpc's own client, where HTTP has one status
         * for several (legacy_http.c reads it; others ignore it) */
        char code[16];
        snprintf(code, sizeof(code), "%d", (int)st->code);
        orpc_http_add_header(x, "Grpc-Status", code);
        if (st->code == ORPC_UNAUTHENTICATED)
            orpc_http_add_header(x, "WWW-Authenticate", "Bearer");
    }
    orpc_http_add_header(x, "Content-Type", "application/json");
    if (body != NULL)
        orpc_http_body_append(x, body, len);
    free(body);
}

static void on_done(orpc_http_exchange *x, void *ud)
{
    xstate *s = orpc_http_state(x);
    (void)ud;
    if (s == NULL)
        return;
    if (s->req != NULL)
        protobuf_c_message_free_unpacked(s->req, NULL);
    orpc_metadata_free(s->md);
    free(s->identity);
    free(s);
    orpc_http_set_state(x, NULL);
}

static const orpc_gateway gateway = {
    .on_start = on_start,
    .on_request = on_request,
    .on_message = on_message,
    .on_status = on_status,
    .on_done = on_done,
    .inline_first = 1,
};

int orpc_legacy_serve_install(orpc_legacy_serve *ls, orpc_server *srv)
{
    if (ls == NULL || srv == NULL)
        return ORPC_EINVAL;
    return orpc_server_set_gateway(srv, &gateway, ls);
}
