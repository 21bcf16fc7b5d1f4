/*
 * router.c — routing tables and routed clients: each method's calls go over
 * gRPC, to the legacy JSON/HTTP endpoint, or gRPC first with the legacy
 * endpoint as fallback.
 *
 * Design notes: a routed client is an orpc_client with an invoker (see
 * orpc/client.h), so generated stubs do not know which side serves them.
 * The table is a snapshot: the file and the ORPC_ROUTE_* environment are
 * read when it is loaded (start-up, or a reload), never while calls run.
 * Legacy calls use the HttpRule mapping (http_rule.c), the libcurl pool of
 * the service's base URL (legacy_http.c) and the calling identity's token
 * cache (tokens.c).  Asynchronous legacy calls run on a short-lived thread
 * each: the legacy transport is blocking, and the legacy side is the old,
 * slow path being migrated away from.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pthread.h>

#include <uv.h>

#include <orpc/compat/json.h>
#include <orpc/compat/router.h>
#include <orpc/error.h>

#include "http_rule.h"
#include "legacy_http.h"
#include "tokens.h"

extern char **environ;

/* ---- modes and tables ---- */

const char *orpc_route_mode_name(int mode)
{
    switch (mode) {
    case ORPC_ROUTE_LEGACY: return "legacy";
    case ORPC_ROUTE_GRPC: return "grpc";
    case ORPC_ROUTE_FALLBACK: return "fallback";
    case ORPC_ROUTE_SHADOW: return "shadow";
    default: return "?";
    }
}

static int parse_mode(const char *s, size_t n, orpc_route_mode *out)
{
    static const struct {
        const char *name;
        orpc_route_mode mode;
    } modes[] = {{"legacy", ORPC_ROUTE_LEGACY},
                 {"grpc", ORPC_ROUTE_GRPC},
                 {"fallback", ORPC_ROUTE_FALLBACK},
                 {"shadow", ORPC_ROUTE_SHADOW}};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        if (strlen(modes[i].name) == n && strncasecmp(modes[i].name, s, n) == 0) {
            *out = modes[i].mode;
            return 0;
        }
    return -1;
}

typedef struct route {
    char *key; /* "*", "pkg.Svc", "pkg.Svc/Method", or "ENV:<NAME>" */
    orpc_route_mode mode;
} route;

struct orpc_routes {
    route *r;
    size_t n;
};

static int add_route(orpc_routes *t, const char *key, size_t klen,
                     orpc_route_mode mode)
{
    route *n = realloc(t->r, (t->n + 1) * sizeof(*n));
    if (n == NULL)
        return ORPC_ENOMEM;
    t->r = n;
    n[t->n].key = strndup(key, klen);
    if (n[t->n].key == NULL)
        return ORPC_ENOMEM;
    n[t->n].mode = mode;
    t->n++;
    return 0;
}

static int load_file(orpc_routes *t, const char *path, char *err,
                     size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    int lineno = 0;
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open", path);
        return ORPC_ECONFIG;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (lineno > 100000 || strchr(line, '\n') == NULL) {
            if (!feof(f)) {
                snprintf(err, errlen, "%s:%d: line too long", path, lineno);
                fclose(f);
                return ORPC_ECONFIG;
            }
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            continue;
        char *eq = strchr(p, '=');
        char *kend = eq;
        if (eq == NULL) {
            snprintf(err, errlen, "%s:%d: expected `key = mode`", path,
                     lineno);
            fclose(f);
            return ORPC_ECONFIG;
        }
        while (kend > p && isspace((unsigned char)kend[-1]))
            kend--;
        char *m = eq + 1;
        while (isspace((unsigned char)*m))
            m++;
        char *mend = m + strlen(m);
        while (mend > m && isspace((unsigned char)mend[-1]))
            mend--;
        orpc_route_mode mode;
        if (kend == p || parse_mode(m, (size_t)(mend - m), &mode) != 0) {
            snprintf(err, errlen,
                     "%s:%d: %s (modes: legacy, grpc, fallback, shadow)", path,
                     lineno, kend == p ? "empty key" : "unknown mode");
            fclose(f);
            return ORPC_ECONFIG;
        }
        if (mode == ORPC_ROUTE_SHADOW) {
            snprintf(err, errlen, "%s:%d: shadow is not implemented yet",
                     path, lineno);
            fclose(f);
            return ORPC_ECONFIG;
        }
        if (add_route(t, p, (size_t)(kend - p), mode) != 0) {
            fclose(f);
            return ORPC_ENOMEM;
        }
    }
    fclose(f);
    return 0;
}

int orpc_routes_load(orpc_routes **out, const char *config_file, char *err,
                     size_t errlen)
{
    if (out == NULL)
        return ORPC_EINVAL;
    if (errlen > 0)
        err[0] = '\0';
    orpc_routes *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return ORPC_ENOMEM;
    int rc = 0;
    if (config_file != NULL)
        rc = load_file(t, config_file, err, errlen);
    /* the environment's overrides, as a snapshot */
    for (char **e = environ; rc == 0 && e && *e; e++) {
        if (strncmp(*e, "ORPC_ROUTE_", 11) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        orpc_route_mode mode;
        if (eq == NULL)
            continue;
        if (parse_mode(eq + 1, strlen(eq + 1), &mode) != 0 ||
            mode == ORPC_ROUTE_SHADOW) {
            snprintf(err, errlen, "%.*s: %s", (int)(eq - *e), *e,
                     mode == ORPC_ROUTE_SHADOW ? "shadow is not implemented yet"
                                               : "unknown mode");
            rc = ORPC_ECONFIG;
            break;
        }
        char key[300];
        snprintf(key, sizeof(key), "ENV:%.*s", (int)(eq - *e - 11), *e + 11);
        rc = add_route(t, key, strlen(key), mode);
    }
    if (rc != 0) {
        orpc_routes_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int orpc_routes_new(orpc_routes **out)
{
    if (out == NULL)
        return ORPC_EINVAL;
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : ORPC_ENOMEM;
}

int orpc_routes_set(orpc_routes *t, const char *key, orpc_route_mode mode)
{
    if (t == NULL || key == NULL || *key == '\0' ||
        strncmp(key, "ENV:", 4) == 0 ||
        (mode != ORPC_ROUTE_LEGACY && mode != ORPC_ROUTE_GRPC &&
         mode != ORPC_ROUTE_FALLBACK))
        return ORPC_EINVAL;
    return add_route(t, key, strlen(key), mode);
}

void orpc_routes_free(orpc_routes *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->r[i].key);
    free(t->r);
    free(t);
}

/* "GetJob" -> "GET_JOB"; appends to |out|. */
static void upper_snake(char *out, size_t len, const char *s, size_t n)
{
    size_t j = strlen(out);
    for (size_t i = 0; i < n && j + 2 < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i > 0 && isupper(c) &&
            (islower((unsigned char)s[i - 1]) || isdigit((unsigned char)s[i - 1])))
            out[j++] = '_';
        out[j++] = (char)toupper(c);
    }
    out[j] = '\0';
}

static int find(const orpc_routes *t, const char *key, orpc_route_mode *mode)
{
    for (size_t i = t->n; i-- > 0;) /* the last entry for a key wins */
        if (strcmp(t->r[i].key, key) == 0) {
            *mode = t->r[i].mode;
            return 1;
        }
    return 0;
}

orpc_route_mode orpc_routes_mode(const orpc_routes *t,
                                 const orpc_method_desc *m)
{
    orpc_route_mode mode = ORPC_ROUTE_LEGACY;
    if (t == NULL || m == NULL || m->service == NULL)
        return mode;
    const orpc_service_desc *s = m->service;
    char svc[128] = "ENV:", meth[256], key[512];
    size_t sn = strlen(s->name);
    if (sn > 7 && strcmp(s->name + sn - 7, "Service") == 0)
        sn -= 7;
    upper_snake(svc, sizeof(svc), s->name, sn);
    snprintf(meth, sizeof(meth), "%s_", svc);
    upper_snake(meth, sizeof(meth), m->name, strlen(m->name));
    if (find(t, meth, &mode) || find(t, svc, &mode))
        return mode;
    snprintf(key, sizeof(key), "%s/%s", s->full_name, m->name);
    if (find(t, key, &mode) || find(t, s->full_name, &mode) ||
        find(t, "*", &mode))
        return mode;
    return ORPC_ROUTE_LEGACY;
}

/* ---- routed clients ---- */

typedef struct routed {
    const orpc_service_desc *svc;
    const orpc_routes *routes;
    orpc_channel *channel;
    orpc__legacy_http *legacy;
    orpc__legacy_http *auth;
    orpc__tokens *tokens;
    int64_t legacy_timeout_ms;
    orpc_json_opts jo;
} routed;

static void routed_free(void *ud)
{
    routed *r = ud;
    if (r == NULL)
        return;
    orpc__tokens_free(r->tokens);
    orpc__legacy_http_free(r->legacy);
    orpc__legacy_http_free(r->auth);
    orpc_channel_free(r->channel);
    free(r);
}

static int has_auth_header(const orpc__http_request *hr)
{
    for (size_t i = 0; i < hr->n_headers; i++)
        if (strncasecmp(hr->headers[i], "authorization:", 14) == 0)
            return 1;
    return 0;
}

static orpc_status legacy_invoke(routed *r, const orpc_method_desc *m,
                                 const ProtobufCMessage *req,
                                 ProtobufCMessage **resp,
                                 const orpc_call_opts *opts)
{
    orpc__http_request hr;
    orpc__http_reply reply = {0};
    if (m->http == NULL)
        return orpc_status_errorf(ORPC_UNIMPLEMENTED,
                                  "%s has no legacy endpoint (no "
                                  "google.api.http rule)",
                                  m->path);
    if (r->legacy == NULL)
        return orpc_status_errorf(ORPC_UNAVAILABLE,
                                  "%s: no legacy base URL configured",
                                  m->path);
    orpc_status st = orpc__http_build(m, NULL, req, &r->jo, &hr);
    if (st.code != ORPC_OK)
        return st;
    int64_t timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms
                                                   : r->legacy_timeout_ms;
    const char *const *hdrs = (const char *const *)hr.headers;
    if (m->legacy_no_auth || has_auth_header(&hr) || r->tokens == NULL)
        st = orpc__legacy_http_do(r->legacy, hr.verb, hr.path, hdrs,
                                  hr.n_headers, hr.body, hr.body_len, timeout,
                                  &reply);
    else
        st = orpc__legacy_call_authed(r->legacy, r->tokens, hr.verb, hr.path,
                                      hdrs, hr.n_headers, hr.body,
                                      hr.body_len, timeout, &reply);
    orpc__http_request_clear(&hr);
    if (st.code == ORPC_OK && (reply.status < 200 || reply.status > 299))
        st = orpc__legacy_status(&reply);
    if (st.code == ORPC_OK)
        st = orpc__http_decode_response(m, NULL, reply.body, reply.len,
                                        &r->jo, resp);
    orpc__http_reply_clear(&reply);
    return st;
}

static orpc_status routed_invoke(const orpc_method_desc *m,
                                 const ProtobufCMessage *req,
                                 ProtobufCMessage **resp,
                                 const orpc_call_opts *opts, void *ud)
{
    routed *r = ud;
    orpc_route_mode mode = orpc_routes_mode(r->routes, m);
    if (mode == ORPC_ROUTE_LEGACY)
        return legacy_invoke(r, m, req, resp, opts);
    if (r->channel == NULL) {
        if (mode == ORPC_ROUTE_FALLBACK)
            return legacy_invoke(r, m, req, resp, opts);
        return orpc_status_errorf(ORPC_UNAVAILABLE,
                                  "%s is routed to gRPC but the client has no "
                                  "channel",
                                  m->path);
    }
    orpc_status st = orpc_channel_invoke(r->channel, m, req, resp, opts);
    if (mode == ORPC_ROUTE_FALLBACK &&
        (st.code == ORPC_UNAVAILABLE || st.code == ORPC_UNIMPLEMENTED)) {
        /* nothing came back from the gRPC side: the legacy one answers */
        orpc_status_clear(&st);
        return legacy_invoke(r, m, req, resp, opts);
    }
    return st;
}

typedef struct async_job {
    routed *r;
    const orpc_method_desc *m;
    ProtobufCMessage *req; /* a copy */
    orpc_call_opts opts;
    int has_opts;
    orpc_unary_trampoline done;
    orpc_fn typed_cb;
    void *cb_ud;
} async_job;

static void async_run(void *arg)
{
    async_job *j = arg;
    ProtobufCMessage *resp = NULL;
    orpc_status st = routed_invoke(j->m, j->req, &resp,
                                   j->has_opts ? &j->opts : NULL, j->r);
    j->done(&st, resp, j->typed_cb, j->cb_ud);
    orpc_status_clear(&st);
    protobuf_c_message_free_unpacked(j->req, NULL);
    free(j);
}

static int routed_invoke_async(const orpc_method_desc *m,
                               const ProtobufCMessage *req,
                               const orpc_call_opts *opts,
                               orpc_unary_trampoline done, orpc_fn typed_cb,
                               void *cb_ud, void *ud)
{
    routed *r = ud;
    if (orpc_routes_mode(r->routes, m) == ORPC_ROUTE_GRPC && r->channel)
        return orpc_channel_invoke_async_typed(r->channel, m, req, opts, done,
                                               typed_cb, cb_ud);
    async_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return ORPC_ENOMEM;
    /* the request is serialized now: the caller may reuse it at once */
    size_t n = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL) {
        free(j);
        return ORPC_ENOMEM;
    }
    protobuf_c_message_pack(req, buf);
    j->req = protobuf_c_message_unpack(req->descriptor, NULL, n, buf);
    free(buf);
    if (j->req == NULL) {
        free(j);
        return ORPC_ENOMEM;
    }
    j->r = r;
    j->m = m;
    if (opts) {
        j->opts = *opts;
        j->opts.metadata = NULL; /* not carried to the legacy side */
        j->has_opts = 1;
    }
    j->done = done;
    j->typed_cb = typed_cb;
    j->cb_ud = cb_ud;
    uv_thread_t t;
    if (uv_thread_create(&t, async_run, j) != 0) {
        protobuf_c_message_free_unpacked(j->req, NULL);
        free(j);
        return ORPC_ESYS;
    }
    pthread_detach(t);
    return 0;
}

static int routed_call_start(orpc_call **out, const orpc_method_desc *m,
                             const ProtobufCMessage *req,
                             const orpc_call_opts *opts, void *ud)
{
    routed *r = ud;
    orpc_route_mode mode = orpc_routes_mode(r->routes, m);
    if (mode == ORPC_ROUTE_LEGACY || r->channel == NULL)
        return ORPC_ENOTSUP; /* streams travel over gRPC only, today */
    return orpc_channel_call_start(out, r->channel, m, req, opts);
}

static const orpc_invoker routed_invoker = {routed_invoke, routed_invoke_async,
                                            routed_call_start, routed_free};

/* Does any method of |s| reach a legacy endpoint that wants a token? */
static int needs_token(const orpc_routes *t, const orpc_service_desc *s)
{
    for (size_t i = 0; i < s->n_methods; i++) {
        const orpc_method_desc *m = &s->methods[i];
        if (m->http == NULL || m->legacy_no_auth ||
            orpc_routes_mode(t, m) == ORPC_ROUTE_GRPC)
            continue;
        int header_auth = 0;
        for (size_t f = 0; f < m->input->n_fields; f++) {
            const orpc_legacy_header *h = m->input->fields[f].legacy_header;
            if (h && strcasecmp(h->name, "Authorization") == 0)
                header_auth = 1;
        }
        if (!header_auth)
            return 1;
    }
    return 0;
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = name ? getenv(name) : NULL;
    return v && *v ? v : dflt;
}

int orpc_routed_client_new(orpc_client **out, const orpc_service_desc *s,
                           const orpc_routed_opts *o)
{
    orpc_routed_opts none = {0};
    if (out == NULL || s == NULL || s->magic != ORPC_SERVICE_DESC_MAGIC)
        return ORPC_EINVAL;
    if (o == NULL)
        o = &none;
    routed *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return ORPC_ENOMEM;
    r->svc = s;
    r->routes = o->routes;
    r->jo.legacy = 1;
    r->jo.ignore_unknown = 1; /* legacy replies carry more than the proto */
    r->legacy_timeout_ms = o->legacy_timeout_ms;
    if (r->legacy_timeout_ms <= 0) {
        const char *t = getenv("SERVICE_HTTP_TIMEOUT");
        long secs = t ? strtol(t, NULL, 10) : 0;
        r->legacy_timeout_ms = (secs > 0 && secs < 86400 ? secs : 30) * 1000;
    }
    if (o->channel)
        r->channel = orpc_channel_ref(o->channel);
    char ua[160];
    snprintf(ua, sizeof(ua), "OpsConductor-%s/1.0.0",
             o->identity ? o->identity : "orpc");
    orpc__http_opts ho = {.ca_file = o->ca_file, .user_agent = ua};
    const char *base = o->legacy_url ? o->legacy_url
                                     : env_or(s->legacy_url_env,
                                              s->legacy_default_url);
    int rc = 0;
    if (base != NULL)
        rc = orpc__legacy_http_new(&r->legacy, base, &ho);
    if (rc == 0 && needs_token(o->routes, s)) {
        char uname[160] = "", pname[160] = "";
        if (o->identity) {
            char id[128] = "";
            for (size_t i = 0; o->identity[i] && i + 1 < sizeof(id); i++)
                id[i] = o->identity[i] == '-'
                            ? '_'
                            : (char)toupper((unsigned char)o->identity[i]);
            snprintf(uname, sizeof(uname), "%s_USERNAME", id);
            snprintf(pname, sizeof(pname), "%s_PASSWORD", id);
        }
        const char *user = o->username ? o->username : env_or(uname, NULL);
        const char *pass = o->password ? o->password : env_or(pname, NULL);
        if (user == NULL || pass == NULL) {
            rc = ORPC_ECONFIG; /* no default account, ever */
        } else {
            const char *auth_url = o->auth_url ? o->auth_url
                                               : env_or("AUTH_SERVICE_URL",
                                                        "http://auth-service:3001");
            rc = orpc__legacy_http_new(&r->auth, auth_url, &ho);
            if (rc == 0)
                rc = orpc__tokens_new(&r->tokens, r->auth, user, pass);
        }
    }
    if (rc != 0) {
        routed_free(r);
        return rc;
    }
    return orpc_client_new_with_invoker(out, s, &routed_invoker, r, NULL);
}
