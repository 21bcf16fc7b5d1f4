/*
 * routed_client.c — the routed client: an orpc_client whose invoker sends
 * each call where the routing table says (over gRPC, to the legacy
 * endpoint, gRPC first with the legacy endpoint as fallback, or one side
 * answering while the other shadows it).
 *
 * Design notes: a routed client is an orpc_client with an invoker (see
 * orpc/client.h), so generated stubs do not know which side serves them.
 * The mode is looked up per call: a reload moves the calls that start
 * afterwards.  Legacy calls use the HttpRule mapping (http_rule.c), the
 * libcurl pool of the service's base URL (legacy_http.c) and the calling
 * identity's token cache (tokens.c).  Asynchronous legacy calls and shadow
 * mirrors run on a bounded pool of at most 16 threads per routed client:
 * the legacy transport is blocking, and the legacy side is the old, slow
 * path being migrated away from.  They run on orpc's one worker pool
 * (common/pool.c), one pool per client started by its first task.  Streams
 * travel over gRPC only.
 *
 * Locking theory: |lock| guards whether the pool started, the count of
 * queued mirrors and |stopping|; it is taken before the pool's own lock
 * (submit), never while holding it, and tasks run with neither.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <uv.h>

#include <orpc/compat/router.h>
#include <orpc/context.h>
#include <orpc/error.h>
#include <orpc/observe.h>

#include "common/detail.h"
#include "http_rule.h"
#include "router_internal.h"

/* Every task passes here on a pool thread.  Once the client is going away
 * (|stopping|), the tasks still queued are discarded rather than run: the
 * pool's destroy drains its queue, so each comes by once more. */
static void task_main(orpc__job *job)
{
    task *t = (task *)job;
    routed *r = t->r;
    uv_mutex_lock(&r->lock);
    int stopping = r->stopping;
    if (t->is_mirror)
        r->mirrors_queued--;
    else
        r->calls_queued--;
    uv_mutex_unlock(&r->lock);
    if (stopping)
        t->discard(t);
    else
        t->run(r, t);
}

int orpc__routed_submit(routed *r, task *t)
{
    int rc = 0;
    uv_mutex_lock(&r->lock);
    if (t->is_mirror && r->mirrors_queued >= SHADOW_QUEUE) {
        uv_mutex_unlock(&r->lock);
        return 1;
    }
    if (!t->is_mirror && r->calls_queued >= r->max_queued) {
        uv_mutex_unlock(&r->lock);
        return ORPC_ELIMIT;
    }
    /* Started on demand: a client whose calls all go over gRPC never
     * starts a thread.  One thread stays once started; up to MAX_WORKERS
     * run while work waits, and those leave again after 30 s idle.  The
     * queue holds at most max_queued_legacy_calls calls (the pool refuses
     * more with ORPC_ELIMIT, which the caller gets from
     * orpc_client_invoke_async(): refused, never dropped once accepted)
     * besides the SHADOW_QUEUE mirrors bounded above. */
    if (!r->pool_started) {
        /* a failed init started no thread (min is 1), and its mutex and
         * conditions hold nothing on Linux: as the server does, nothing
         * to undo, and the next task tries again */
        if (orpc__pool_init(&r->pool, 1, MAX_WORKERS,
                            r->max_queued + SHADOW_QUEUE) != 0) {
            uv_mutex_unlock(&r->lock);
            return ORPC_ESYS;
        }
        r->pool_started = 1;
    }
    t->job.fn = task_main;
    t->r = r;
    rc = orpc__pool_submit(&r->pool, &t->job);
    if (rc == 0 && t->is_mirror)
        r->mirrors_queued++;
    else if (rc == 0)
        r->calls_queued++;
    uv_mutex_unlock(&r->lock);
    return rc;
}

/* An independent copy of |m| (the caller may reuse its own at once), or
 * NULL. */
ProtobufCMessage *orpc__copy_message(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return NULL;
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *c =
        protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
    free(buf);
    return c;
}

static void routed_free(void *ud)
{
    routed *r = ud;
    if (r == NULL)
        return;
    /* Waits for the tasks in progress; the queued ones are discarded. */
    uv_mutex_lock(&r->lock);
    r->stopping = 1;
    int started = r->pool_started;
    uv_mutex_unlock(&r->lock);
    if (started)
        orpc__pool_destroy(&r->pool);
    uv_mutex_destroy(&r->lock);
    orpc__tokens_free(r->tokens);
    orpc__legacy_http_free(r->legacy);
    orpc__legacy_http_free(r->auth);
    orpc_channel_unref(r->channel);
    orpc_routes_unref(r->routes);
    for (size_t i = 0; i < r->n_ics; i++)
        orpc_interceptor_unref(r->ics[i]);
    free(r->legacy_url);
    orpc_metrics_unref(r->metrics);
    free(r);
}

/* Adds |md|'s trace context to the request's headers (W3C Trace Context
 * over HTTP: the same two headers).  Out of memory: the call goes on
 * untraced. */
static void add_trace_headers(orpc__http_request *hr, const orpc_metadata *md)
{
    static const char *const keys[] = {"traceparent", "tracestate"};
    for (size_t k = 0; md != NULL && k < 2; k++) {
        const uint8_t *v;
        size_t len;
        if (orpc_metadata_get(md, keys[k], &v, &len) != 0 || len > 512)
            continue;
        char **h = realloc(hr->headers, (hr->n_headers + 1) * sizeof(*h));
        if (h == NULL)
            return;
        hr->headers = h;
        size_t n = strlen(keys[k]) + 2 + len + 1;
        if ((h[hr->n_headers] = malloc(n)) == NULL)
            return;
        snprintf(h[hr->n_headers], n, "%s: %.*s", keys[k], (int)len,
                 (const char *)v);
        hr->n_headers++;
    }
}

static int has_auth_header(const orpc__http_request *hr)
{
    for (size_t i = 0; i < hr->n_headers; i++)
        if (strncasecmp(hr->headers[i], "authorization:", 14) == 0)
            return 1;
    return 0;
}

/* May a failed call of |m| be sent again?  Only when doing it twice is the
 * same as doing it once. */
static int repeatable(const orpc_method_desc *m)
{
    if (m->idempotency != ORPC_IDEMPOTENCY_UNKNOWN)
        return 1;
    if (m->http == NULL)
        return 0;
    const char *v = m->http->verb;
    return strcmp(v, "GET") == 0 || strcmp(v, "PUT") == 0 ||
           strcmp(v, "DELETE") == 0;
}

/* May a gRPC failure of |m| be answered by the legacy side instead?  Only
 * when the request provably ran nowhere — the server said UNIMPLEMENTED,
 * or UNAVAILABLE with the request never sent or refused unprocessed — or
 * when running it twice is the same as once.  A connection lost after the
 * request went out may have run RunJob already: that failure stands. */
static int fallback_safe(const orpc_method_desc *m, orpc_code code,
                         orpc_call_reach reach)
{
    if (code == ORPC_UNIMPLEMENTED)
        return 1;
    if (code != ORPC_UNAVAILABLE)
        return 0;
    return reach != ORPC_REACH_SENT || repeatable(m);
}

orpc_status orpc__routed_legacy_invoke(routed *r, const orpc_method_desc *m,
                                       const ProtobufCMessage *req,
                                       ProtobufCMessage **resp,
                                       const orpc_call_opts *opts,
                                       orpc_call_info *ci,
                                       const orpc_metadata *md)
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
                                  "%s: no legacy base URL configured", m->path);
    orpc_status st = orpc__http_build(m, NULL, req, &r->jo, &hr);
    if (st.code != ORPC_OK)
        return st;
    add_trace_headers(&hr, md);
    orpc_call_info_message(ci, 1, hr.body_len);
    int64_t timeout =
        opts && opts->timeout_ms > 0 ? opts->timeout_ms : r->legacy_timeout_ms;
    if (r->tokens == NULL && !m->legacy_no_auth && !has_auth_header(&hr)) {
        /* routed here by a reload, made without credentials: never send a
         * call the legacy service would take as anonymous */
        orpc__http_request_clear(&hr);
        return orpc_status_errorf(ORPC_UNAUTHENTICATED,
                                  "%s: no credentials for legacy calls (the "
                                  "client was made without a username and "
                                  "password)",
                                  m->path);
    }
    int64_t deadline = (int64_t)(uv_hrtime() / 1000000) + timeout;
    const char *const *hdrs = (const char *const *)hr.headers;
    for (int attempt = 0;; attempt++) {
        if (m->legacy_no_auth || has_auth_header(&hr))
            st = orpc__legacy_http_do(r->legacy, hr.verb, hr.path, hdrs,
                                      hr.n_headers, hr.body, hr.body_len,
                                      timeout, &reply);
        else
            st = orpc__legacy_call_authed(r->legacy, r->tokens, hr.verb,
                                          hr.path, hdrs, hr.n_headers, hr.body,
                                          hr.body_len, timeout, &reply);
        if (st.code == ORPC_OK && (reply.status < 200 || reply.status > 299))
            st = orpc__legacy_status(&reply);
        /* Today's clients retry a failed call SERVICE_HTTP_MAX_RETRIES
         * times; orpc does so only where a repeat is harmless, and never
         * past the call's deadline. */
        int64_t now = (int64_t)(uv_hrtime() / 1000000);
        if (st.code != ORPC_UNAVAILABLE || attempt >= r->max_retries ||
            !repeatable(m) || now + r->retry_delay_ms >= deadline)
            break;
        orpc_status_clear(&st);
        orpc__http_reply_clear(&reply);
        if (r->retry_delay_ms > 0)
            uv_sleep((unsigned)r->retry_delay_ms);
        timeout = deadline - (int64_t)(uv_hrtime() / 1000000);
        if (timeout <= 0)
            timeout = 1;
    }
    orpc__http_request_clear(&hr);
    if (st.code == ORPC_OK) {
        orpc_call_info_message(ci, 0, reply.len);
        st = orpc__http_decode_response(m, NULL, reply.body, reply.len, &r->jo,
                                        resp);
    }
    orpc__http_reply_clear(&reply);
    return st;
}

void orpc__routed_count(routed *r, const orpc_method_desc *m, counter c)
{
    orpc__routes_count(r->routes, m, c);
    if (r->metrics == NULL)
        return;
    const char *path = m && m->path ? m->path : "unknown";
    static const char *const results[] = {[C_MATCH] = "match",
                                          [C_MISMATCH] = "mismatch",
                                          [C_DROPPED] = "dropped",
                                          [C_UNMIRRORED] = "unmirrored"};
    if (c == C_GRPC || c == C_LEGACY || c == C_FALLBACK) {
        const char *l[] = {"method", path, "served_by",
                           c == C_GRPC ? "grpc" : "legacy", NULL};
        orpc_metrics_counter_add(r->metrics, "orpc_router_calls_total",
                                 "Routed calls, by the side that served them.",
                                 l, 1);
    }
    if (c == C_FALLBACK) {
        const char *l[] = {"method", path, NULL};
        orpc_metrics_counter_add(
            r->metrics, "orpc_router_fallbacks_total",
            "Routed calls that gRPC could not serve, sent to legacy.", l, 1);
    } else if (c >= C_MATCH && c <= C_UNMIRRORED) {
        const char *l[] = {"method", path, "result", results[c], NULL};
        orpc_metrics_counter_add(
            r->metrics, "orpc_router_shadow_total",
            "Shadowed calls: answers compared (match, mismatch), mirrors "
            "dropped (queue full, nowhere to send) and calls not mirrored "
            "(side effects).",
            l, 1);
    }
}

static void served(routed *r, const orpc_method_desc *m,
                   const orpc_call_opts *opts, orpc_served_by by, counter c)
{
    if (opts && opts->served_by)
        *opts->served_by = by;
    orpc__routed_count(r, m, c);
}

static orpc_status via_legacy(routed *r, const orpc_method_desc *m,
                              const ProtobufCMessage *req,
                              ProtobufCMessage **resp,
                              const orpc_call_opts *opts, counter c)
{
    orpc_call_info *ci = NULL;
    orpc_metadata *md = NULL; /* the call's, and what interceptors add */
    if (r->n_ics > 0) {
        if (opts && opts->metadata && orpc_metadata_count(opts->metadata) > 0 &&
            (orpc_metadata_new(&md, NULL) != 0 ||
             orpc_metadata_add_all(md, opts->metadata) != 0)) {
            orpc_metadata_free(md);
            served(r, m, opts, ORPC_SERVED_LEGACY, c);
            return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
        }
        orpc_call_info_params p = {
            .interceptors = r->ics,
            .n_interceptors = r->n_ics,
            .method = m,
            .side = ORPC_SIDE_CLIENT,
            .served_by = ORPC_SERVED_LEGACY,
            .peer = r->legacy_url,
            .metadata = &md,
            .parent_metadata =
                opts && opts->parent ? orpc_ctx_metadata(opts->parent) : NULL};
        const char *why = NULL;
        orpc_code code = orpc_call_info_begin(&ci, &p, &why);
        if (code != ORPC_OK) {
            orpc_metadata_free(md);
            served(r, m, opts, ORPC_SERVED_LEGACY, c);
            return orpc_status_new(code, why);
        }
    }
    orpc_status st = orpc__routed_legacy_invoke(r, m, req, resp, opts, ci, md);
    served(r, m, opts, ORPC_SERVED_LEGACY, c);
    orpc_call_info_end(ci, &st);
    orpc_metadata_free(md);
    return st;
}

static orpc_status via_grpc(routed *r, const orpc_method_desc *m,
                            const ProtobufCMessage *req,
                            ProtobufCMessage **resp, const orpc_call_opts *opts)
{
    if (r->channel == NULL)
        return orpc_status_errorf(ORPC_UNAVAILABLE,
                                  "%s is routed to gRPC but the client has no "
                                  "channel (no gRPC target configured)",
                                  m->path);
    orpc_status st = orpc_channel_invoke(r->channel, m, req, resp, opts);
    served(r, m, opts, ORPC_SERVED_GRPC, C_GRPC);
    return st;
}

static orpc_status routed_invoke(const orpc_method_desc *m,
                                 const ProtobufCMessage *req,
                                 ProtobufCMessage **resp,
                                 const orpc_call_opts *opts, void *ud)
{
    routed *r = ud;
    orpc_status st;
    if (opts && opts->served_by)
        *opts->served_by = ORPC_SERVED_NONE;
    switch (orpc_routes_mode(r->routes, m)) {
    case ORPC_ROUTE_GRPC:
        return via_grpc(r, m, req, resp, opts);
    case ORPC_ROUTE_SHADOW:
        /* the legacy side answers; gRPC is asked off the caller's path */
        st = via_legacy(r, m, req, resp, opts, C_LEGACY);
        orpc__shadow_mirror(r, m, req, 0, st.code,
                            st.code == ORPC_OK ? *resp : NULL);
        return st;
    case ORPC_ROUTE_SHADOW_GRPC:
        st = via_grpc(r, m, req, resp, opts);
        orpc__shadow_mirror(r, m, req, 1, st.code,
                            st.code == ORPC_OK ? *resp : NULL);
        return st;
    case ORPC_ROUTE_FALLBACK: {
        if (r->channel == NULL)
            return via_legacy(r, m, req, resp, opts, C_FALLBACK);
        orpc_call_reach reach = ORPC_REACH_NONE;
        orpc_call_opts o = opts ? *opts : (orpc_call_opts){0};
        o.reached = &reach;
        st = orpc_channel_invoke(r->channel, m, req, resp, &o);
        if (opts && opts->reached)
            *opts->reached = reach;
        if (fallback_safe(m, st.code, reach)) {
            orpc_status_clear(&st);
            return via_legacy(r, m, req, resp, opts, C_FALLBACK);
        }
        served(r, m, opts, ORPC_SERVED_GRPC, C_GRPC);
        return st;
    }
    case ORPC_ROUTE_LEGACY:
    default:
        return via_legacy(r, m, req, resp, opts, C_LEGACY);
    }
}

typedef struct async_job {
    task t; /* first: a job is a task */
    const orpc_method_desc *m;
    ProtobufCMessage *req; /* a copy */
    orpc_metadata *md;     /* a copy, or NULL */
    orpc_call_opts opts;
    int has_opts;
    orpc_unary_trampoline done;
    orpc_fn typed_cb;
    void *cb_ud;
} async_job;

static void async_job_free(async_job *j)
{
    protobuf_c_message_free_unpacked(j->req, NULL);
    orpc_metadata_free(j->md);
    free(j);
}

static void async_run(routed *r, task *t)
{
    async_job *j = (async_job *)t;
    ProtobufCMessage *resp = NULL;
    orpc_status st =
        routed_invoke(j->m, j->req, &resp, j->has_opts ? &j->opts : NULL, r);
    j->done(&st, resp, j->typed_cb, j->cb_ud);
    orpc_status_clear(&st);
    async_job_free(j);
}

/* The client was freed with the call still queued (a caller's bug: calls
 * must finish first); it still gets its one callback. */
static void async_discard(task *t)
{
    async_job *j = (async_job *)t;
    orpc_status st = orpc_status_new(ORPC_CANCELLED, "the client was freed");
    j->done(&st, NULL, j->typed_cb, j->cb_ud);
    orpc_status_clear(&st);
    async_job_free(j);
}

/* Copies |md| into |*out| (NULL when empty).  Returns 0 or ORPC_ENOMEM. */
static int copy_metadata(const orpc_metadata *md, orpc_metadata **out)
{
    *out = NULL;
    if (md == NULL || orpc_metadata_count(md) == 0)
        return 0;
    if (orpc_metadata_new(out, NULL) != 0)
        return ORPC_ENOMEM;
    if (orpc_metadata_add_all(*out, md) != 0) {
        orpc_metadata_free(*out);
        *out = NULL;
        return ORPC_ENOMEM;
    }
    return 0;
}

static int routed_invoke_async(const orpc_method_desc *m,
                               const ProtobufCMessage *req,
                               const orpc_call_opts *opts,
                               orpc_unary_trampoline done, orpc_fn typed_cb,
                               void *cb_ud, void *ud)
{
    routed *r = ud;
    if (orpc_routes_mode(r->routes, m) == ORPC_ROUTE_GRPC && r->channel) {
        int rc = orpc_channel_invoke_async_typed(r->channel, m, req, opts, done,
                                                 typed_cb, cb_ud);
        if (rc == 0)
            orpc__routed_count(r, m, C_GRPC);
        return rc;
    }
    /* The legacy transport blocks: the call runs on one of the client's
     * threads, with copies of what the caller may reuse at once. */
    async_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return ORPC_ENOMEM;
    j->req = orpc__copy_message(req);
    if (j->req == NULL ||
        (opts && copy_metadata(opts->metadata, &j->md) != 0)) {
        async_job_free(j);
        return ORPC_ENOMEM;
    }
    j->t.run = async_run;
    j->t.discard = async_discard;
    j->m = m;
    if (opts) {
        j->opts = *opts;
        j->opts.metadata = j->md;
        j->has_opts = 1;
    }
    j->done = done;
    j->typed_cb = typed_cb;
    j->cb_ud = cb_ud;
    int rc = orpc__routed_submit(r, &j->t);
    if (rc != 0) {
        async_job_free(j);
        return rc;
    }
    return 0;
}

static int routed_call_start(orpc_call **out, const orpc_method_desc *m,
                             const ProtobufCMessage *req,
                             const orpc_call_opts *opts, void *ud)
{
    routed *r = ud;
    orpc_route_mode mode = orpc_routes_mode(r->routes, m);
    /* Streams travel over gRPC only: no legacy endpoint streams, and a
     * streaming method has no HTTP rule (so its mode is always grpc). */
    if (mode == ORPC_ROUTE_LEGACY || r->channel == NULL)
        return ORPC_ENOTSUP;
    int rc = orpc_channel_call_start(out, r->channel, m, req, opts);
    if (rc == 0)
        orpc__routed_count(r, m, C_GRPC);
    return rc;
}

static int routed_call_start_async(orpc_call **out, const orpc_method_desc *m,
                                   const ProtobufCMessage *req,
                                   const orpc_call_opts *opts,
                                   const orpc_call_callbacks *cbs, void *cb_ud,
                                   void *ud)
{
    routed *r = ud;
    /* As routed_call_start(): streams travel over gRPC only. */
    if (orpc_routes_mode(r->routes, m) == ORPC_ROUTE_LEGACY ||
        r->channel == NULL)
        return ORPC_ENOTSUP;
    int rc = orpc_channel_call_start_async(out, r->channel, m, req, opts, cbs,
                                           cb_ud);
    if (rc == 0)
        orpc__routed_count(r, m, C_GRPC);
    return rc;
}

static const orpc_invoker routed_invoker = {routed_invoke, routed_invoke_async,
                                            routed_call_start, routed_free,
                                            routed_call_start_async};

/* Does any method of |s| reach a legacy endpoint that wants a token? */
static int needs_token(const orpc_routes *t, const orpc_service_desc *s)
{
    for (size_t i = 0; i < s->n_methods; i++) {
        const orpc_method_desc *m = orpc_service_method(s, i);
        if (m == NULL || m->http == NULL || m->legacy_no_auth ||
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

/* The legacy side's chain: the trace-context interceptor unless
 * |no_default_interceptors|, then the application's; and the base URL the
 * calls name as their peer. */
static int set_interceptors(routed *r, const orpc_routed_opts *o,
                            const char *base, orpc_error_detail *d)
{
    size_t n_user = o->n_interceptors;
    if (n_user > 0 && o->interceptors == NULL)
        return orpc__detail_set(d, ORPC_EINVAL,
                                "n_interceptors is set but interceptors is "
                                "NULL");
    if (n_user + !o->no_default_interceptors > ORPC_MAX_INTERCEPTORS)
        return orpc__detail_set(d, ORPC_EINVAL,
                                "more interceptors than "
                                "ORPC_MAX_INTERCEPTORS");
    if (!o->no_default_interceptors) {
        if (orpc_trace_interceptor_new(&r->ics[r->n_ics], NULL) != 0)
            return orpc__detail_set(d, ORPC_ENOMEM, "out of memory");
        r->n_ics++;
    }
    for (size_t i = 0; i < n_user; i++) {
        if (o->interceptors[i] == NULL)
            return orpc__detail_set(d, ORPC_EINVAL,
                                    "a NULL entry in interceptors");
        r->ics[r->n_ics++] = orpc_interceptor_ref(o->interceptors[i]);
    }
    if (base != NULL && (r->legacy_url = strdup(base)) == NULL)
        return orpc__detail_set(d, ORPC_ENOMEM, "out of memory");
    return 0;
}

/* |name| as an integer in [lo, hi]; 0 (the transport's default) when unset
 * or out of range. */
static long env_long(const char *name, long lo, long hi)
{
    const char *v = getenv(name);
    char *end;
    long n = v && *v ? strtol(v, &end, 10) : 0;
    return v && *v && *end == '\0' && n >= lo && n <= hi ? n : 0;
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = name ? getenv(name) : NULL;
    return v && *v ? v : dflt;
}

/* Whether |s| has no control character (it goes into a header). */
static int printable(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return 0;
    return 1;
}

/* Words a failure |rc| of orpc__legacy_http_new() for the base URL that
 * |url_from| names into |d|.  Returns |rc|. */
static int http_failed(orpc_error_detail *d, int rc, const char *svc,
                       const char *url_from, const orpc_routed_opts *o)
{
    if (rc == ORPC_ESYS)
        return orpc__detail_set(d, rc,
                                "%s: the legacy HTTP transport did not start "
                                "(libcurl, or its thread)",
                                svc);
    if (rc != ORPC_ECONFIG)
        return rc; /* ENOMEM: the plain message */
    /* the checks orpc__legacy_http_new() makes, in its order */
    if (o->ca_file != NULL && access(o->ca_file, R_OK) != 0)
        return orpc__detail_set(d, rc, "%s: orpc_routed_opts.ca_file %s: %s",
                                svc, o->ca_file,
                                uv_strerror(uv_translate_sys_error(errno)));
    if (o->identity != NULL && !printable(o->identity))
        return orpc__detail_set(
            d, rc, "%s: orpc_routed_opts.identity: has a control character",
            svc);
    /* never the URL itself: credentials in it are one reason to refuse it */
    return orpc__detail_set(d, rc,
                            "%s: %s: not an http:// or https:// base URL "
                            "with a host (and no credentials, query or "
                            "fragment)",
                            svc, url_from);
}

/* The ORPC_ECONFIG of a client that needs a token and has not both
 * credentials, naming what to set. */
static int no_credentials(orpc_error_detail *d, const char *svc,
                          const orpc_routed_opts *o, const char *user,
                          const char *pass, const char *user_from,
                          const char *pass_from)
{
    if (user != NULL || pass != NULL)
        return orpc__detail_set(d, ORPC_ECONFIG,
                                "%s: no credentials for legacy calls: %s is "
                                "set, %s is not",
                                svc, user ? user_from : pass_from,
                                user ? pass_from : user_from);
    if (o->identity != NULL)
        return orpc__detail_set(d, ORPC_ECONFIG,
                                "%s: no credentials for legacy calls: set %s "
                                "and %s (identity %s), or "
                                "orpc_routed_opts.username and .password",
                                svc, user_from, pass_from, o->identity);
    return orpc__detail_set(d, ORPC_ECONFIG,
                            "%s: no credentials for legacy calls: set "
                            "orpc_routed_opts.identity (for "
                            "<IDENTITY>_USERNAME and _PASSWORD), or .username "
                            "and .password",
                            svc);
}

int orpc_routed_client_new(orpc_client **out, const orpc_service_desc *s,
                           const orpc_routed_opts *o, orpc_error_detail *detail)
{
    orpc_routed_opts none = {0};
    orpc_error_detail d = {0};
    if (o == NULL)
        o = &none;
    if (out == NULL || s == NULL || s->magic != ORPC_SERVICE_DESC_MAGIC) {
        orpc__detail_set(&d, ORPC_EINVAL, "orpc_routed_client_new: %s",
                         out == NULL ? "|out| is NULL"
                                     : "|service| is not a service "
                                       "descriptor");
        return orpc__router_report(&d, ORPC_EINVAL, detail, o->log,
                                   o->log_user_data);
    }
    routed *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return orpc__router_report(&d, ORPC_ENOMEM, detail, o->log,
                                   o->log_user_data);
    r->svc = s;
    r->routes = orpc_routes_ref(o->routes);
    r->metrics = orpc_metrics_ref(o->metrics);
    uv_mutex_init(&r->lock);
    r->log = o->log;
    r->log_ud = o->log_user_data;
    r->jo.legacy = 1;
    r->jo.ignore_unknown = 1; /* legacy replies carry more than the proto */
    r->legacy_timeout_ms = o->legacy_timeout_ms;
    r->max_queued = o->max_queued_legacy_calls > 0 &&
                            o->max_queued_legacy_calls <= UINT_MAX / 4
                        ? o->max_queued_legacy_calls
                        : LEGACY_QUEUE;
    if (r->legacy_timeout_ms <= 0) {
        const char *t = getenv("SERVICE_HTTP_TIMEOUT");
        long secs = t ? strtol(t, NULL, 10) : 0;
        r->legacy_timeout_ms = (secs > 0 && secs < 86400 ? secs : 30) * 1000;
    }
    r->max_retries = o->legacy_max_retries;
    if (r->max_retries == 0) {
        const char *t = getenv("SERVICE_HTTP_MAX_RETRIES");
        long n = t && *t ? strtol(t, NULL, 10) : 3;
        r->max_retries = n >= 0 && n <= 10 ? (int)n : 3;
    } else if (r->max_retries < 0 || r->max_retries > 10) {
        r->max_retries = r->max_retries < 0 ? 0 : 10;
    }
    r->retry_delay_ms = o->legacy_retry_delay_ms;
    if (r->retry_delay_ms <= 0) {
        const char *t = getenv("SERVICE_HTTP_RETRY_DELAY");
        double secs = t && *t ? strtod(t, NULL) : 1.0;
        r->retry_delay_ms =
            secs >= 0 && secs <= 60 ? (int64_t)(secs * 1000) : 1000;
    }
    if (o->channel)
        r->channel = orpc_channel_ref(o->channel);
    char ua[160];
    snprintf(ua, sizeof(ua), "OpsConductor-%s/1.0.0",
             o->identity ? o->identity : "orpc");
    /* the pool settings of today's clients (LEGACY_API.md), bounded */
    orpc__http_opts ho = {
        .ca_file = o->ca_file,
        .user_agent = ua,
        .max_connections = env_long("SERVICE_HTTP_MAX_CONNECTIONS", 1, 10000),
        .max_keepalive =
            env_long("SERVICE_HTTP_MAX_KEEPALIVE_CONNECTIONS", 1, 10000),
        .connect_timeout_ms =
            env_long("SERVICE_HTTP_CONNECT_TIMEOUT", 1, 600) * 1000};
    const char *base = o->legacy_url
                           ? o->legacy_url
                           : env_or(s->legacy_url_env, s->legacy_default_url);
    const char *base_from = o->legacy_url ? "orpc_routed_opts.legacy_url"
                            : env_or(s->legacy_url_env, NULL)
                                ? s->legacy_url_env
                                : "the service's legacy_default_url";
    int rc = 0;
    if (base != NULL &&
        (rc = orpc__legacy_http_new(&r->legacy, base, &ho)) != 0)
        rc = http_failed(&d, rc, s->full_name, base_from, o);
    if (rc == 0)
        rc = set_interceptors(r, o, base, &d);
    /* Credentials are taken whenever they are configured, not only when
     * the table routes a method to a legacy endpoint now: a reload may. */
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
    const char *user_from = o->username   ? "orpc_routed_opts.username"
                            : o->identity ? uname
                                          : "orpc_routed_opts.username";
    const char *pass_from = o->password   ? "orpc_routed_opts.password"
                            : o->identity ? pname
                                          : "orpc_routed_opts.password";
    if (rc == 0 && (user == NULL || pass == NULL)) {
        /* no default account, ever */
        if (needs_token(o->routes, s))
            rc = no_credentials(&d, s->full_name, o, user, pass, user_from,
                                pass_from);
    } else if (rc == 0) {
        const char *auth_url = o->auth_url ? o->auth_url
                                           : env_or("AUTH_SERVICE_URL",
                                                    "http://auth-service:3001");
        const char *auth_from = o->auth_url ? "orpc_routed_opts.auth_url"
                                : env_or("AUTH_SERVICE_URL", NULL)
                                    ? "AUTH_SERVICE_URL"
                                    : "the default auth URL";
        rc = orpc__legacy_http_new(&r->auth, auth_url, &ho);
        if (rc != 0)
            rc = http_failed(&d, rc, s->full_name, auth_from, o);
        else if ((rc = orpc__tokens_new(&r->tokens, r->auth, user, pass)) ==
                 ORPC_ECONFIG)
            rc = orpc__detail_set(&d, rc, "%s: %s: %s", s->full_name,
                                  user[0] == '\0'   ? user_from
                                  : pass[0] == '\0' ? pass_from
                                                    : user_from,
                                  user[0] == '\0' || pass[0] == '\0'
                                      ? "empty"
                                      : "has a control character");
    }
    if (rc != 0) {
        routed_free(r);
        return orpc__router_report(&d, rc, detail, o->log, o->log_user_data);
    }
    /* on failure the invoker's destroy (routed_free) has run */
    rc = orpc_client_new_with_invoker(out, s, &routed_invoker, r, NULL, &d);
    if (rc != 0)
        return orpc__router_report(&d, rc, detail, o->log, o->log_user_data);
    return 0;
}
