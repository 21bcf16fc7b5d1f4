/*
 * health.c — gRPC's health checking protocol (grpc.health.v1.Health), built
 * into every server: a table of serving statuses the application sets with
 * orpc_server_set_health(), Check (unary) and Watch (server streaming)
 * answering from it, and the shutdown rule that load balancers hear
 * NOT_SERVING before the GOAWAY.
 *
 * Design notes:
 * - The service is registered non-blocking at orpc_server_start(): both
 *   handlers run inline on the call's IO thread, so a server whose own
 *   services are non-blocking still needs no worker pool, and a Watch holds
 *   no thread while it waits.  N watchers cost N small records (in their
 *   calls' arenas) and no threads; |max_health_watchers| bounds N.
 * - A Watch is a deferred call (orpc_ctx_defer()).  Its record sits on the
 *   watcher list while the call is alive.  A status change wakes the
 *   watchers of that service (orpc__ctx_wake(): a task posted to the call's
 *   IO thread, which runs the handler again); each run compares the
 *   service's status with the last one it sent and sends only when they
 *   differ.  So a watcher that has not taken the previous status gets the
 *   latest, never a backlog (as gRPC's own servers do), and every send
 *   happens on the call's own thread.  The handler also runs again when
 *   the call is cancelled (client gone, deadline, connection lost): it
 *   leaves the list and ends the call.
 * - Shutdown: orpc_server_shutdown() calls orpc__health_shutdown() before
 *   it posts the IO threads' shutdown tasks.  That flips every status to
 *   NOT_SERVING and wakes every watcher; each watcher's task is queued on
 *   its IO thread ahead of that thread's shutdown task, so its handler has
 *   queued NOT_SERVING (and ended the call UNAVAILABLE, "server shutting
 *   down": a Watch is no call to wait for through the grace period) before
 *   the shutdown task pulls the session's frames and only then submits the
 *   GOAWAY (server.c).  Statuses stay NOT_SERVING from then on.
 * - A service the application registers under the name
 *   grpc.health.v1.Health replaces this one; the table then stays unused
 *   and orpc_server_set_health() answers ORPC_ENOTSUP.
 *
 * Locking theory: h->lock guards the table, the watcher list and its
 * count, and the flags.  It is taken on any thread (set_health, and
 * orpc__health_get() for the admin listener) and on IO threads (the
 * handlers).  Held, it may take a call's lock and an IO
 * thread's task lock (orpc__ctx_wake() posts), never the reverse: the
 * handlers drop it before they send.  A watcher's |last| belongs to its
 * call's IO thread.
 */
#include "server_internal.h"

#include <string.h>

#include <orpc/error.h>

#include "admin.h"
#include "common/mem.h"
#include "grpc/health/v1/health.orpc.h"

typedef Grpc__Health__V1__HealthCheckRequest HealthReq;
typedef Grpc__Health__V1__HealthCheckResponse HealthResp;

typedef struct hentry {
    char *name;
    orpc_health_status status;
} hentry;

/* One Watch call, in its call's arena. */
typedef struct hwatch {
    orpc_ctx *ctx;
    const char *service;        /* the request's (the call's arena) */
    struct hwatch *prev, *next; /* h->lock */
    int linked;                 /* h->lock */
    int last;                   /* status last sent, -1: none (IO thread) */
} hwatch;

struct orpc__health {
    const orpc_mem *mem; /* the server's */
    uv_mutex_t lock;
    hentry *entries;
    size_t n, cap;
    hwatch *watchers;
    unsigned n_watchers, max_watchers;
    int registered; /* orpc__health_start() registered the service */
    int replaced;   /* the application registered its own */
    int stopping;   /* shutdown began: NOT_SERVING for good */
};

typedef struct orpc__health orpc__health;

/* ---- the table (under h->lock) ---------------------------------------- */

static hentry *find_locked(orpc__health *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->entries[i].name, name) == 0)
            return &h->entries[i];
    return NULL;
}

/* ORPC_HEALTH_SERVICE_UNKNOWN when |name| is not in the table. */
static orpc_health_status status_locked(orpc__health *h, const char *name)
{
    hentry *e = find_locked(h, name);
    return e ? e->status : ORPC_HEALTH_SERVICE_UNKNOWN;
}

static int add_locked(orpc__health *h, const char *name,
                      orpc_health_status status)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 8;
        hentry *n = orpc__mem_grow(h->mem, h->entries, h->cap * sizeof(*n),
                                   cap * sizeof(*n));
        if (n == NULL)
            return ORPC_ENOMEM;
        h->entries = n;
        h->cap = cap;
    }
    char *copy = orpc__mem_strdup(h->mem, name);
    if (copy == NULL)
        return ORPC_ENOMEM;
    h->entries[h->n].name = copy;
    h->entries[h->n].status = status;
    h->n++;
    return 0;
}

static void remove_locked(orpc__health *h, hentry *e)
{
    orpc__mem_free(h->mem, e->name);
    *e = h->entries[--h->n];
}

/* Wakes the watchers of |name| (all of them for NULL). */
static void wake_locked(orpc__health *h, const char *name)
{
    for (hwatch *w = h->watchers; w; w = w->next)
        if (name == NULL || strcmp(w->service, name) == 0)
            orpc__ctx_wake(w->ctx);
}

/* ---- the handlers (the call's IO thread) ------------------------------ */

static orpc_status check(orpc_ctx *ctx, const HealthReq *req, HealthResp *resp,
                         void *user_data)
{
    orpc__health *h = user_data;
    const char *name = req->service ? req->service : "";
    (void)ctx;
    uv_mutex_lock(&h->lock);
    orpc_health_status st = status_locked(h, name);
    uv_mutex_unlock(&h->lock);
    if (st == ORPC_HEALTH_SERVICE_UNKNOWN)
        return orpc_status_errorf(ORPC_NOT_FOUND, "unknown service \"%.200s\"",
                                  name);
    resp->status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)st;
    return ORPC_STATUS_OK;
}

static void unlink_watch(orpc__health *h, hwatch *w)
{
    uv_mutex_lock(&h->lock);
    if (w->linked) {
        if (w->prev)
            w->prev->next = w->next;
        else
            h->watchers = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->linked = 0;
        h->n_watchers--;
    }
    uv_mutex_unlock(&h->lock);
}

/* Run when the call starts and again each time it is woken: a status
 * change, room to send, a cancellation, shutdown. */
static orpc_status watch(orpc_ctx *ctx, const HealthReq *req,
                         Grpc__Health__V1__Health_Watch_ServerWriter *writer,
                         void *user_data)
{
    orpc__health *h = user_data;
    hwatch *w = ctx->rt_state;
    if (w == NULL) { /* the first run */
        w = orpc_arena_alloc(orpc_ctx_arena(ctx), sizeof(*w));
        if (w == NULL)
            return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
        memset(w, 0, sizeof(*w));
        w->ctx = ctx;
        w->service = req->service ? req->service : "";
        w->last = -1;
        uv_mutex_lock(&h->lock);
        if (h->n_watchers >= h->max_watchers) {
            unsigned max = h->max_watchers;
            uv_mutex_unlock(&h->lock);
            return orpc_status_errorf(ORPC_RESOURCE_EXHAUSTED,
                                      "too many health watchers (%u, "
                                      "max_health_watchers)",
                                      max);
        }
        w->next = h->watchers;
        if (h->watchers)
            h->watchers->prev = w;
        h->watchers = w;
        w->linked = 1;
        h->n_watchers++;
        uv_mutex_unlock(&h->lock);
        ctx->rt_state = w;
    }
    if (orpc_ctx_is_cancelled(ctx)) {
        unlink_watch(h, w);
        return orpc_status_new(ORPC_CANCELLED, "watch cancelled");
    }
    uv_mutex_lock(&h->lock);
    orpc_health_status st = status_locked(h, w->service);
    int stopping = h->stopping;
    uv_mutex_unlock(&h->lock);
    if ((int)st != w->last) {
        HealthResp resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)st;
        int rc = grpc__health__v1__health__server__watch__send(writer, &resp);
        if (rc == ORPC_EAGAIN) {
            /* the send buffer is full: run again when there is room, and
             * send whatever the status is then */
            orpc_ctx_defer(ctx);
            return ORPC_STATUS_OK;
        }
        if (rc != 0) { /* the call is over (cancelled, or out of memory) */
            unlink_watch(h, w);
            return orpc_status_errorf(rc == ORPC_ECANCELLED ? ORPC_CANCELLED
                                                            : ORPC_INTERNAL,
                                      "health watch: %s", orpc_strerror(rc));
        }
        w->last = (int)st;
    }
    if (stopping) {
        unlink_watch(h, w);
        return orpc_status_new(ORPC_UNAVAILABLE, "server shutting down");
    }
    orpc_ctx_defer(ctx); /* until the next wake */
    return ORPC_STATUS_OK;
}

static const Grpc__Health__V1__Health_Handlers handlers = {
    .check = check,
    .watch = watch,
};

/* ---- the server's side ------------------------------------------------ */

int orpc__health_new(orpc_server *srv)
{
    orpc__health *h = orpc__mem_calloc(&srv->mem, 1, sizeof(*h));
    if (h == NULL)
        return ORPC_ENOMEM;
    if (uv_mutex_init(&h->lock) != 0) {
        orpc__mem_free(&srv->mem, h);
        return ORPC_ENOMEM;
    }
    h->mem = &srv->mem;
    h->max_watchers = srv->opts.max_health_watchers;
    srv->health = h;
    return 0;
}

int orpc__health_start(orpc_server *srv)
{
    orpc__health *h = srv->health;
    if (h == NULL || h->registered || h->replaced)
        return 0;
    const char *own = grpc__health__v1__health__orpc_desc.full_name;
    for (size_t i = 0; i < srv->n_svcs; i++)
        if (strcmp(srv->svcs[i].desc->full_name, own) == 0) {
            uv_mutex_lock(&h->lock);
            h->replaced = 1;
            uv_mutex_unlock(&h->lock);
            return 0;
        }
    /* "" and the services, SERVING unless the application said otherwise
     * before starting (a start that failed and is tried again finds those
     * it added itself already there) */
    uv_mutex_lock(&h->lock);
    int rc = 0;
    if (find_locked(h, "") == NULL)
        rc = add_locked(h, "", ORPC_HEALTH_SERVING);
    for (size_t i = 0; rc == 0 && i < srv->n_svcs; i++) {
        const char *name = srv->svcs[i].desc->full_name;
        if (find_locked(h, name) == NULL)
            rc = add_locked(h, name, ORPC_HEALTH_SERVING);
    }
    uv_mutex_unlock(&h->lock);
    if (rc != 0)
        return rc;
    orpc_service_opts so = {.nonblocking = 1};
    rc = grpc__health__v1__health__server__register_with_opts(srv, &handlers, h,
                                                              &so);
    if (rc != 0)
        return rc;
    uv_mutex_lock(&h->lock);
    h->registered = 1;
    uv_mutex_unlock(&h->lock);
    return 0;
}

void orpc__health_shutdown(orpc_server *srv)
{
    orpc__health *h = srv->health;
    if (h == NULL)
        return;
    uv_mutex_lock(&h->lock);
    if (!h->stopping && !h->replaced) {
        h->stopping = 1;
        for (size_t i = 0; i < h->n; i++)
            h->entries[i].status = ORPC_HEALTH_NOT_SERVING;
        wake_locked(h, NULL);
    }
    uv_mutex_unlock(&h->lock);
}

void orpc__health_free(orpc_server *srv)
{
    orpc__health *h = srv->health;
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n; i++)
        orpc__mem_free(h->mem, h->entries[i].name);
    orpc__mem_free(h->mem, h->entries);
    uv_mutex_destroy(&h->lock);
    orpc__mem_free(&srv->mem, h);
    srv->health = NULL;
}

int orpc_server_set_health(orpc_server *srv, const char *service,
                           orpc_health_status status)
{
    if (srv == NULL || service == NULL ||
        (unsigned)status > (unsigned)ORPC_HEALTH_SERVICE_UNKNOWN)
        return ORPC_EINVAL;
    orpc__health *h = srv->health;
    if (h == NULL)
        return ORPC_ENOTSUP;
    int rc = 0;
    uv_mutex_lock(&h->lock);
    if (h->replaced) {
        rc = ORPC_ENOTSUP;
        goto out;
    }
    if (h->stopping) {
        rc = ORPC_ESTATE;
        goto out;
    }
    hentry *e = find_locked(h, service);
    if (status == ORPC_HEALTH_SERVICE_UNKNOWN) {
        if (e == NULL)
            goto out;
        remove_locked(h, e);
    } else if (e != NULL) {
        if (e->status == status)
            goto out;
        e->status = status;
    } else if ((rc = add_locked(h, service, status)) != 0) {
        goto out;
    }
    wake_locked(h, service);
out:
    uv_mutex_unlock(&h->lock);
    return rc;
}

int orpc_server_get_health(orpc_server *srv, const char *service,
                           orpc_health_status *out)
{
    if (srv == NULL || service == NULL || out == NULL)
        return ORPC_EINVAL;
    orpc__health *h = srv->health;
    if (h == NULL)
        return ORPC_ENOTSUP;
    uv_mutex_lock(&h->lock);
    int replaced = h->replaced;
    if (!replaced)
        *out = status_locked(h, service);
    uv_mutex_unlock(&h->lock);
    return replaced ? ORPC_ENOTSUP : 0;
}

orpc_health_status orpc__health_get(orpc_server *srv, const char *service)
{
    orpc__health *h = srv ? srv->health : NULL;
    if (h == NULL || service == NULL)
        return ORPC_HEALTH_SERVICE_UNKNOWN;
    uv_mutex_lock(&h->lock);
    orpc_health_status st =
        h->replaced ? ORPC_HEALTH_SERVICE_UNKNOWN : status_locked(h, service);
    uv_mutex_unlock(&h->lock);
    return st;
}
