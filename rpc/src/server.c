/*
 * server.c — the gRPC server object: options and their defaults, TLS
 * material and the authorization policy (loaded, reloaded on SIGHUP,
 * shared by reference), services, the IO threads and the worker pool,
 * start, graceful shutdown, orpc_server_run(), and the server's own
 * reference-counted lifetime.
 *
 * The rest of the server, by job (each file says more at its top):
 *   server_listen.c  listening sockets (addresses, port sharing)
 *   server_conn.c    accepted connections: limits, handshake timeout,
 *                    keepalive, ping policing, connection loss
 *   server_h2.c      the HTTP/2 side of a call: nghttp2 callbacks,
 *                    request validation, routing, authorization
 *   server_call.c    the life of a call: responses, trailers, handlers on
 *                    the worker pool or inline, deadlines, cancellation
 *   context.c        the orpc_ctx API handlers use
 *   stream.c         inbound messages and flow-control credit
 *   health.c         the built-in grpc.health.v1.Health service
 *   reflection.c     the built-in grpc.reflection.v1{,alpha} services
 *
 * Design notes:
 * - Threads.  N IO threads each run a loop with their own listening socket
 *   on the same port (SO_REUSEPORT: the kernel spreads connections) and
 *   their own connections; a connection never changes thread.  Unix-socket
 *   listeners live on IO thread 0.  Blocking handlers run on the worker
 *   pool; handlers of services registered non-blocking run inline.
 * - The server's memory is reference-counted: the application holds one
 *   reference, every call another (see orpc__srv_ref()).
 *
 * Locking theory: the server's lock guards |state|, the shutdown
 * bookkeeping, |live_conns|, |refs| and the swapped TLS context and policy;
 * it is never held while calling out.  Call counters are atomics.
 */
#include "server_internal.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <orpc/channel.h>
#include <orpc/error.h>

#include "admin.h"
#include "common/detail.h"
#include "common/log.h"
#include "common/mem.h"
#include "tls_internal.h"

void orpc__srv_log(orpc_server *s, orpc_log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    orpc__logv(s->opts.log, s->opts.log_user_data, "server", lvl, fmt, ap);
    va_end(ap);
}

static unsigned ncpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* ---- authorization and TLS material (any thread) ---- */

policy_ref *orpc__srv_policy_get(orpc_server *srv)
{
    uv_mutex_lock(&srv->lock);
    policy_ref *p = srv->policy;
    if (p)
        p->refs++;
    uv_mutex_unlock(&srv->lock);
    return p;
}

void orpc__srv_policy_put(orpc_server *srv, policy_ref *p)
{
    if (p == NULL)
        return;
    uv_mutex_lock(&srv->lock);
    int last = --p->refs == 0;
    uv_mutex_unlock(&srv->lock);
    if (last) {
        orpc__authz_free_mem(&srv->mem, p->authz);
        orpc__mem_free(&srv->mem, p);
    }
}

SSL_CTX *orpc__srv_ssl_ctx_get(orpc_server *srv)
{
    uv_mutex_lock(&srv->lock);
    SSL_CTX *c = srv->ssl_ctx;
    if (c)
        SSL_CTX_up_ref(c);
    uv_mutex_unlock(&srv->lock);
    return c;
}

/* Reports a failure of construction, listen or reload: into |detail| when
 * the caller gave one, else through the server's logger or stderr. */
#define SRV_FAIL(srv, detail, code, ...)                                       \
    orpc__fail((detail), (srv)->opts.log, (srv)->opts.log_user_data, "server", \
               (code), __VA_ARGS__)

/* Loads what reload swaps in: a TLS context and a policy.  0, or
 * ORPC_ECONFIG having said why (never key material). */
static int load_material(orpc_server *srv, SSL_CTX **ctx, policy_ref **pol,
                         orpc_error_detail *detail)
{
    char err[512];
    *ctx = NULL;
    *pol = NULL;
    if (!srv->opts.plaintext) {
        *ctx = orpc__tls_server_ctx(&srv->opts.tls, err, sizeof(err));
        if (*ctx == NULL)
            return SRV_FAIL(srv, detail, ORPC_ECONFIG, "tls: %s", err);
    }
    if (srv->policy_file != NULL) {
        orpc__authz *a = NULL;
        if (orpc__authz_load_file_mem(srv->policy_file, &srv->mem, &a, err,
                                      sizeof(err)) != 0) {
            if (*ctx)
                SSL_CTX_free(*ctx);
            *ctx = NULL;
            return SRV_FAIL(srv, detail, ORPC_ECONFIG, "authz_policy_file: %s",
                            err);
        }
        *pol = orpc__mem_calloc(&srv->mem, 1, sizeof(**pol));
        if (*pol == NULL) {
            orpc__authz_free_mem(&srv->mem, a);
            if (*ctx)
                SSL_CTX_free(*ctx);
            *ctx = NULL;
            return SRV_FAIL(srv, detail, ORPC_ENOMEM,
                            "out of memory loading the policy");
        }
        (*pol)->authz = a;
        (*pol)->refs = 1;
    }
    return 0;
}

/* ====================================================================== */
/* the server's own lifetime                                               */
/* ====================================================================== */

/*
 * The server's memory is reference-counted: the application holds one
 * reference (dropped by orpc_server_free()) and every call another, so a
 * handler that deferred its call and finishes it from its own thread after
 * orpc_server_free() touches live memory (its call was cancelled when its
 * connection closed; the IO thread it posts to answers ORPC_ECLOSED).
 */
static void srv_destroy(orpc_server *srv);

void orpc__srv_ref(orpc_server *srv)
{
    uv_mutex_lock(&srv->lock);
    srv->refs++;
    uv_mutex_unlock(&srv->lock);
}

void orpc__srv_unref(orpc_server *srv)
{
    uv_mutex_lock(&srv->lock);
    int last = --srv->refs == 0;
    uv_mutex_unlock(&srv->lock);
    if (last)
        srv_destroy(srv);
}

/* ====================================================================== */
/* server object                                                           */
/* ====================================================================== */

/* Copies a TLS option; *failed is set when memory ran out (a NULL copy
 * would silently fall back to another source of the material). */
static char *dup_opt(orpc_server *srv, int slot, const char *s, int *failed)
{
    if (s == NULL)
        return NULL;
    srv->tls_strings[slot] = orpc__mem_strdup(&srv->mem, s);
    if (srv->tls_strings[slot] == NULL)
        *failed = 1;
    return srv->tls_strings[slot];
}

int orpc_server_new(orpc_server **out, const orpc_server_opts *opts,
                    const orpc_mem *mem, orpc_error_detail *detail)
{
    orpc_log_fn log = opts ? opts->log : NULL;
    void *log_ud = opts ? opts->log_user_data : NULL;
    if (out == NULL)
        return orpc__fail(detail, log, log_ud, "server", ORPC_EINVAL,
                          "orpc_server_new: |out| is NULL");
    *out = NULL;
    orpc_server *srv = orpc__mem_calloc(mem, 1, sizeof(*srv));
    if (srv == NULL)
        return orpc__fail(detail, log, log_ud, "server", ORPC_ENOMEM,
                          "out of memory creating a server");
    if (opts)
        srv->opts = *opts;
    orpc__mem_copy(&srv->mem, mem);
    orpc__mem_pb_allocator(&srv->pb, &srv->mem);
    orpc_server_opts *o = &srv->opts;
    int oom = 0;
    o->tls.ca_file = dup_opt(srv, 0, o->tls.ca_file, &oom);
    o->tls.ca_pem = dup_opt(srv, 1, o->tls.ca_pem, &oom);
    o->tls.cert_file = dup_opt(srv, 2, o->tls.cert_file, &oom);
    o->tls.cert_pem = dup_opt(srv, 3, o->tls.cert_pem, &oom);
    o->tls.key_file = dup_opt(srv, 4, o->tls.key_file, &oom);
    o->tls.key_pem = dup_opt(srv, 5, o->tls.key_pem, &oom);
    o->tls.server_name = NULL;
    o->tls.expected_spiffe_id = NULL;
    if (oom) {
        orpc_server_free(srv);
        return orpc__fail(detail, log, log_ud, "server", ORPC_ENOMEM,
                          "out of memory copying the TLS options");
    }
    if (o->authz_policy_file) {
        srv->policy_file = orpc__mem_strdup(&srv->mem, o->authz_policy_file);
        if (srv->policy_file == NULL) {
            orpc_server_free(srv);
            return orpc__fail(detail, log, log_ud, "server", ORPC_ENOMEM,
                              "out of memory copying the TLS options");
        }
    }
    o->authz_policy_file = srv->policy_file;
    if (o->io_threads == 0)
        o->io_threads = ncpus();
    if (o->io_threads > ORPC__MAX_LISTENERS)
        o->io_threads = ORPC__MAX_LISTENERS;
    if (o->worker_threads == 0)
        o->worker_threads = 2 * ncpus();
    if (o->max_recv_message_size == 0)
        o->max_recv_message_size = ORPC_DEFAULT_MAX_RECV_MESSAGE;
    if (o->max_concurrent_streams == 0)
        o->max_concurrent_streams = ORPC__DEFAULT_STREAMS;
    if (o->max_header_list_size == 0)
        o->max_header_list_size = 16 * 1024;
    if (o->handshake_timeout_ms <= 0)
        o->handshake_timeout_ms = 20000;
    if (o->keepalive_time_ms <= 0)
        o->keepalive_time_ms = 2 * 3600 * 1000;
    if (o->keepalive_timeout_ms <= 0)
        o->keepalive_timeout_ms = 20000;
    if (o->min_ping_interval_ms <= 0)
        o->min_ping_interval_ms = 5 * 60 * 1000;
    if (o->max_ping_strikes == 0)
        o->max_ping_strikes = 2;
    if (o->max_connection_buffer == 0)
        o->max_connection_buffer = 4 * o->max_recv_message_size;
    if (o->max_connections == 0)
        o->max_connections = ORPC__DEFAULT_MAX_CONNECTIONS;
    if (o->max_concurrent_calls == 0)
        o->max_concurrent_calls = ORPC__DEFAULT_MAX_CALLS;
    if (o->max_worker_threads == 0)
        o->max_worker_threads = ORPC__DEFAULT_MAX_WORKERS;
    if (o->max_worker_threads < o->worker_threads)
        o->max_worker_threads = o->worker_threads;
    if (o->max_queued_calls == 0)
        o->max_queued_calls = ORPC__DEFAULT_MAX_QUEUED;
    if (o->max_blocking_streams == 0)
        o->max_blocking_streams =
            o->max_worker_threads > 1 ? o->max_worker_threads / 2 : 1;
    if (o->max_health_watchers == 0)
        o->max_health_watchers = ORPC__DEFAULT_MAX_HEALTH_WATCHERS;
    if (o->http1_max_request_line == 0)
        o->http1_max_request_line = 8 * 1024;
    if (o->http1_max_header_bytes == 0)
        o->http1_max_header_bytes = 32 * 1024;
    if (o->http1_max_headers == 0)
        o->http1_max_headers = 100;
    if (o->http1_max_body == 0)
        o->http1_max_body = o->max_recv_message_size;
    if (o->http1_header_timeout_ms <= 0)
        o->http1_header_timeout_ms = 10000;
    if (o->http1_body_timeout_ms <= 0)
        o->http1_body_timeout_ms = 30000;
    if (o->http1_idle_timeout_ms <= 0)
        o->http1_idle_timeout_ms = 60000;
    if (o->http1_max_pending == 0)
        o->http1_max_pending =
            o->max_queued_calls >= 8 ? o->max_queued_calls / 4 : 1;
    srv->n_io = o->io_threads;
    uv_mutex_init(&srv->lock);
    uv_cond_init(&srv->cond);
    srv->lock_ok = 1;
    srv->refs = 1; /* the application's */
    int rc = load_material(srv, &srv->ssl_ctx, &srv->policy, detail);
    if (rc != 0) {
        orpc_server_free(srv);
        return rc;
    }
    if (!o->disable_health && orpc__health_new(srv) != 0) {
        orpc_server_free(srv);
        return orpc__fail(detail, log, log_ud, "server", ORPC_ENOMEM,
                          "out of memory creating the health service");
    }
    const char *cwhy = NULL;
    rc = orpc__chain_build(&srv->chain, o->no_default_interceptors, o->metrics,
                           &srv->mem, &srv->metrics, o->interceptors,
                           o->n_interceptors, &cwhy);
    o->metrics = NULL;
    o->interceptors = NULL;
    o->n_interceptors = 0;
    if (rc != 0) {
        orpc_server_free(srv);
        return orpc__fail(detail, log, log_ud, "server", rc, "interceptors: %s",
                          cwhy);
    }
    if (orpc__srv_h2_setup(srv) != 0) {
        orpc_server_free(srv);
        return orpc__fail(detail, log, log_ud, "server", ORPC_ENOMEM,
                          "out of memory setting up HTTP/2");
    }
    if (o->admin_address != NULL) {
        orpc_error_detail d;
        rc = orpc__admin_start(&srv->admin, o->admin_address, srv, srv->metrics,
                               &d);
        if (rc != 0) {
            orpc_server_free(srv);
            return orpc__fail(detail, log, log_ud, "server", rc, "%s",
                              d.message);
        }
    }
    o->admin_address = NULL; /* not kept: the listener is bound */
    *out = srv;
    return 0;
}

int orpc_server_add_service(orpc_server *srv, const orpc_service_desc *service,
                            const orpc_method_handler *handlers,
                            const void *impl, void *user_data,
                            const orpc_service_opts *opts)
{
    if (srv == NULL || service == NULL ||
        service->magic != ORPC_SERVICE_DESC_MAGIC ||
        (handlers == NULL && service->n_methods > 0) ||
        (service->n_methods > 0 && orpc_service_method(service, 0) == NULL))
        return ORPC_EINVAL;
    if (srv->state != SRV_NEW)
        return ORPC_ESTATE;
    for (size_t i = 0; i < srv->n_svcs; i++)
        if (strcmp(srv->svcs[i].desc->full_name, service->full_name) == 0)
            return ORPC_EEXIST;
    orpc__svc_entry *n =
        orpc__mem_grow(&srv->mem, srv->svcs, srv->n_svcs * sizeof(*srv->svcs),
                       (srv->n_svcs + 1) * sizeof(*srv->svcs));
    if (n == NULL)
        return ORPC_ENOMEM;
    srv->svcs = n;
    n[srv->n_svcs].desc = service;
    n[srv->n_svcs].handlers = handlers;
    n[srv->n_svcs].impl = impl;
    n[srv->n_svcs].user_data = user_data;
    n[srv->n_svcs].nonblocking = opts ? opts->nonblocking : 0;
    srv->n_svcs++;
    return 0;
}

/* ---- IO thread stop: close listeners, connections ---- */

/* Stops accepting: closes this IO thread's listening handles. */
static void close_listeners(orpc__srv_io *sio)
{
    for (int i = 0; i < sio->n_tcp; i++)
        if (!uv_is_closing((uv_handle_t *)&sio->tcp[i]))
            uv_close((uv_handle_t *)&sio->tcp[i], NULL);
    for (int i = 0; i < sio->n_pipe; i++)
        if (!uv_is_closing((uv_handle_t *)&sio->pipe[i]))
            uv_close((uv_handle_t *)&sio->pipe[i], NULL);
}

static void close_all(orpc__srv_io *sio)
{
    close_listeners(sio);
    for (orpc__sconn *sc = sio->conns; sc; sc = sc->next)
        orpc__conn_close(sc->conn, "server stopped");
    if (!uv_is_closing((uv_handle_t *)&sio->grace_timer))
        uv_close((uv_handle_t *)&sio->grace_timer, NULL);
    if (!uv_is_closing((uv_handle_t *)&sio->trim_timer))
        uv_close((uv_handle_t *)&sio->trim_timer, NULL);
}

static void on_io_stop(orpc__io *io, void *user_data)
{
    (void)io;
    close_all(user_data);
}

static void grace_expired(uv_timer_t *t)
{
    orpc__srv_io *sio = t->data;
    for (orpc__sconn *sc = sio->conns; sc; sc = sc->next)
        orpc__conn_close(sc->conn, "shutdown grace period over");
}

static void shutdown_task(orpc__task *t, void *arg)
{
    orpc__srv_io *sio = arg;
    (void)t;
    close_listeners(sio);
    for (orpc__sconn *sc = sio->conns; sc; sc = sc->next) {
        nghttp2_session *s = sc->conn->session;
        if (s == NULL) {
            orpc__h1_shutdown(sc); /* HTTP/1.1, or not yet chosen */
            continue;
        }
        /* What the calls queued before this task (the health watchers'
         * NOT_SERVING among it) goes out ahead of the GOAWAY, which
         * nghttp2 would otherwise send before any DATA it holds. */
        orpc__conn_pull(sc->conn);
        if (sc->conn->closing || sc->conn->session == NULL)
            continue;
        sc->goaway = 1;
        nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(s),
                              NGHTTP2_NO_ERROR, NULL, 0);
        orpc__conn_kick(sc->conn);
    }
    int64_t g = sio->srv->grace_ms;
    uv_timer_start(&sio->grace_timer, grace_expired, g > 0 ? (uint64_t)g : 0,
                   0);
    uv_unref((uv_handle_t *)&sio->grace_timer);
}

int orpc_server_start(orpc_server *srv)
{
    if (srv == NULL)
        return ORPC_EINVAL;
    if (srv->state != SRV_NEW || srv->n_listeners == 0)
        return ORPC_ESTATE;
    int hrc = orpc__health_start(srv); /* registers grpc.health.v1.Health */
    if (hrc == 0) /* registers grpc.reflection.v1{,alpha}.ServerReflection */
        hrc = orpc__reflection_start(srv);
    if (hrc != 0)
        return hrc;
    if (srv->gw != NULL && srv->gw->on_start != NULL) {
        hrc = srv->gw->on_start(srv, srv->gw_ud);
        if (hrc != 0)
            return hrc;
    }
    int blocking = srv->gw != NULL; /* on_request runs on the workers */
    for (size_t i = 0; i < srv->n_svcs; i++)
        blocking |= !srv->svcs[i].nonblocking;
    if (blocking) { /* a server of non-blocking services needs no workers */
        if (orpc__pool_init(&srv->pool, srv->opts.worker_threads,
                            srv->opts.max_worker_threads,
                            srv->opts.max_queued_calls) != 0)
            return ORPC_ESYS;
        srv->pool_ok = 1;
    }
    srv->ios = orpc__mem_calloc(&srv->mem, srv->n_io, sizeof(*srv->ios));
    if (srv->ios == NULL) {
        if (srv->pool_ok) {
            orpc__pool_destroy(&srv->pool);
            srv->pool_ok = 0;
        }
        return ORPC_ENOMEM;
    }
    for (unsigned i = 0; i < srv->n_io; i++) {
        orpc__srv_io *sio = &srv->ios[i];
        orpc__io_init(&sio->io, i, on_io_stop, sio);
        sio->srv = srv;
        orpc__task_init(&sio->shutdown_task, shutdown_task, sio);
        uv_timer_init(&sio->io.loop, &sio->grace_timer);
        sio->grace_timer.data = sio;
        uv_unref((uv_handle_t *)&sio->grace_timer);
        uv_timer_init(&sio->io.loop, &sio->trim_timer);
        sio->trim_timer.data = sio;
        uv_timer_start(&sio->trim_timer, orpc__srv_trim_idle, ORPC__TRIM_MS,
                       ORPC__TRIM_MS);
        uv_unref((uv_handle_t *)&sio->trim_timer);
        for (int l = 0; l < srv->n_listeners; l++) {
            listener *ls = &srv->listeners[l];
            if (ls->is_pipe) {
                if (i != 0)
                    continue;
                uv_pipe_t *p = &sio->pipe[sio->n_pipe++];
                uv_pipe_init(&sio->io.loop, p, 0);
                p->data = sio;
                uv_pipe_open(p, ls->fds[0]);
                ls->fds[0] = -1;
                uv_listen((uv_stream_t *)p, 1024, orpc__srv_on_connection);
            } else {
                sio->tcp_legacy[sio->n_tcp] = (unsigned char)ls->legacy;
                uv_tcp_t *t = &sio->tcp[sio->n_tcp++];
                uv_tcp_init(&sio->io.loop, t);
                t->data = sio;
                uv_tcp_open(t, ls->fds[i]);
                ls->fds[i] = -1;
                uv_listen((uv_stream_t *)t, 1024, orpc__srv_on_connection);
            }
        }
    }
    for (unsigned i = 0; i < srv->n_io; i++)
        orpc__io_start(&srv->ios[i].io);
    uv_mutex_lock(&srv->lock);
    srv->state = SRV_RUNNING;
    uv_mutex_unlock(&srv->lock);
    return 0;
}

int orpc_server_shutdown(orpc_server *srv, int64_t grace_ms)
{
    if (srv == NULL)
        return ORPC_EINVAL;
    uv_mutex_lock(&srv->lock);
    if (srv->state != SRV_RUNNING) {
        int st = srv->state;
        uv_mutex_unlock(&srv->lock);
        return st == SRV_NEW ? ORPC_ESTATE : 0;
    }
    srv->state = SRV_STOPPING;
    srv->grace_ms = grace_ms;
    uv_cond_broadcast(&srv->cond);
    uv_mutex_unlock(&srv->lock);
    /* NOT_SERVING first: each watcher's task is posted before its IO
     * thread's shutdown task, so the news is queued ahead of the GOAWAY. */
    orpc__health_shutdown(srv);
    for (unsigned i = 0; i < srv->n_io; i++)
        orpc__io_post(&srv->ios[i].io, &srv->ios[i].shutdown_task);
    return 0;
}

int orpc_server_wait(orpc_server *srv)
{
    if (srv == NULL)
        return ORPC_EINVAL;
    uv_mutex_lock(&srv->lock);
    if (srv->state == SRV_NEW) {
        uv_mutex_unlock(&srv->lock);
        return ORPC_ESTATE;
    }
    while (srv->state == SRV_RUNNING)
        uv_cond_wait(&srv->cond, &srv->lock);
    int already = srv->state == SRV_STOPPED;
    uv_mutex_unlock(&srv->lock);
    if (already)
        return 0;
    /* Connections end by themselves once GOAWAY has drained them, or when
     * the grace timer closes them; wait for that (with a margin), then stop
     * the IO threads, which closes whatever is left. */
    uint64_t margin_ns = (uint64_t)(srv->grace_ms + 2000) * 1000000u;
    uint64_t end = uv_hrtime() + margin_ns;
    uv_mutex_lock(&srv->lock);
    while (srv->live_conns > 0) {
        uint64_t now = uv_hrtime();
        if (now >= end ||
            uv_cond_timedwait(&srv->cond, &srv->lock, end - now) != 0)
            break;
    }
    uv_mutex_unlock(&srv->lock);
    for (unsigned i = 0; i < srv->n_io; i++)
        orpc__io_stop(&srv->ios[i].io);
    if (srv->pool_ok) {
        orpc__pool_destroy(&srv->pool);
        srv->pool_ok = 0;
    }
    uv_mutex_lock(&srv->lock);
    srv->state = SRV_STOPPED;
    uv_cond_broadcast(&srv->cond);
    uv_mutex_unlock(&srv->lock);
    return 0;
}

int orpc_server_reload(orpc_server *srv, orpc_error_detail *detail)
{
    SSL_CTX *ctx;
    policy_ref *pol;
    if (srv == NULL)
        return orpc__detail_set(detail, ORPC_EINVAL,
                                "orpc_server_reload: |srv| is NULL");
    int rc = load_material(srv, &ctx, &pol, detail);
    if (rc != 0) {
        orpc__srv_log(
            srv, ORPC_LOG_WARN,
            "reload failed; keeping the current certificates and policy");
        return rc;
    }
    uv_mutex_lock(&srv->lock);
    SSL_CTX *old_ctx = srv->ssl_ctx;
    policy_ref *old_pol = srv->policy;
    srv->ssl_ctx = ctx;
    srv->policy = pol;
    uv_mutex_unlock(&srv->lock);
    if (old_ctx)
        SSL_CTX_free(old_ctx); /* open connections keep their own */
    orpc__srv_policy_put(srv, old_pol);
    orpc__srv_log(srv, ORPC_LOG_INFO, "reloaded TLS material%s",
                  pol ? " and authorization policy" : "");
    return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
    orpc_server *srv = h->data;
    if (signum == SIGHUP) {
        orpc_server_reload(srv, NULL); /* says why itself */
        return;
    }
    orpc_server_shutdown(srv, 5000);
    uv_stop(h->loop);
}

int orpc_server_run(orpc_server *srv)
{
    if (srv == NULL)
        return ORPC_EINVAL;
    if (srv->state == SRV_NEW) {
        int rc = orpc_server_start(srv);
        if (rc != 0)
            return rc;
    }
    uv_loop_t loop;
    uv_signal_t sig[3];
    int signums[3] = {SIGTERM, SIGINT, SIGHUP};
    uv_loop_init(&loop);
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&loop, &sig[i]);
        sig[i].data = srv;
        uv_signal_start(&sig[i], on_signal, signums[i]);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&sig[i], NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return orpc_server_wait(srv);
}

void orpc_server_free(orpc_server *srv)
{
    if (srv == NULL)
        return;
    orpc__admin_stop(srv->admin); /* it reads the health table */
    srv->admin = NULL;
    if (srv->state == SRV_RUNNING)
        orpc_server_shutdown(srv, 0);
    if (srv->state == SRV_STOPPING)
        orpc_server_wait(srv);
    for (int l = 0; l < srv->n_listeners; l++) {
        for (int i = 0; i < srv->listeners[l].n_fds; i++)
            if (srv->listeners[l].fds[i] > 0)
                close(srv->listeners[l].fds[i]);
        srv->listeners[l].n_fds = 0;
        if (srv->listeners[l].is_pipe && srv->listeners[l].path[0])
            unlink(srv->listeners[l].path);
    }
    if (!srv->lock_ok) { /* failed early in orpc_server_new() */
        srv_destroy(srv);
        return;
    }
    /* Calls still deferred by their handlers hold the rest until they are
     * finished (they were cancelled when their connections closed). */
    orpc__srv_unref(srv);
}

static void srv_destroy(orpc_server *srv)
{
    if (srv->cbs) {
        nghttp2_session_callbacks_del(srv->cbs);
        nghttp2_option_del(srv->h2opt);
    }
    if (srv->ssl_ctx)
        SSL_CTX_free(srv->ssl_ctx);
    if (srv->policy) {
        orpc__authz_free_mem(&srv->mem, srv->policy->authz);
        orpc__mem_free(&srv->mem, srv->policy);
    }
    orpc__mem_free(&srv->mem, srv->policy_file);
    orpc__health_free(srv);
    orpc__reflection_free(srv);
    orpc__chain_destroy(&srv->chain);
    orpc_metrics_unref(srv->metrics);
    if (srv->lock_ok) {
        uv_mutex_destroy(&srv->lock);
        uv_cond_destroy(&srv->cond);
    }
    for (unsigned i = 0; srv->ios && i < srv->n_io; i++)
        orpc__io_destroy(&srv->ios[i].io);
    for (int i = 0; i < 6; i++) /* key_pem among them */
        orpc__tls_wipe_free_mem(&srv->mem, srv->tls_strings[i]);
    orpc__mem_free(&srv->mem, srv->svcs);
    orpc__mem_free(&srv->mem, srv->ios);
    orpc_mem mem = srv->mem;
    orpc__mem_free(&mem, srv);
}

int orpc_server_admin_port(const orpc_server *srv)
{
    return srv ? orpc__admin_port(srv->admin) : 0;
}

orpc_metrics *orpc_server_metrics(orpc_server *srv)
{
    return srv ? srv->metrics : NULL;
}

int orpc_server_set_gateway(orpc_server *srv, const orpc_gateway *gw,
                            void *user_data)
{
    if (srv == NULL || gw == NULL || gw->on_request == NULL ||
        srv->state != SRV_NEW)
        return ORPC_EINVAL;
    srv->gw = gw;
    srv->gw_ud = user_data;
    return 0;
}

const struct orpc_service_desc *orpc_server_service(const orpc_server *srv,
                                                    size_t i)
{
    if (srv == NULL || i >= srv->n_svcs)
        return NULL;
    return srv->svcs[i].desc;
}
