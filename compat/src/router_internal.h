/*
 * router_internal.h — what the four parts of the router share (internal):
 * the routing table's layout (routes.c builds and swaps it, route_stats.c
 * keeps its counters), the routed client's state (routed_client.c) and the
 * few calls that cross between them (shadow.c mirrors through the client's
 * threads and compares with the table's ignore lists).
 *
 * Why the table's struct is here and not opaque to the other files: the
 * counters (route_stats.c) and the routes (routes.c) live in one object
 * with two locks, and a reader of either file should see both locks'
 * scopes in one place.
 *
 * Locking theory (struct orpc_routes): |rw| guards |set|, which a reload
 * replaces whole (writers: orpc_routes_reload(), orpc_routes_set(); readers
 * hold it only to look a key up or copy a string out).  |lock| guards
 * |refs|, |stats|, |n_stats| and |dirty|, and |log| and |log_ud| for
 * readers other than the watcher.  Neither is held while the other is
 * taken, and no callback runs under either.  The watcher's fields are set
 * before its thread starts and read after it is joined.
 *
 * Thread-safety: every function here may be called from any thread.
 */
#ifndef ORPC_COMPAT_ROUTER_INTERNAL_H
#define ORPC_COMPAT_ROUTER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <orpc/compat/json.h>
#include <orpc/compat/router.h>
#include <orpc/error.h>

#include "common/pool.h"
#include "legacy_http.h"
#include "tokens.h"

/* ---- the table (routes.c) ---- */

typedef struct route {
    char *key; /* "*", "pkg.Svc", "pkg.Svc/Method", "ENV:<NAME>", or
                  "IGNORE:pkg.Svc/Method" (then |ignore| is set) */
    orpc_route_mode mode;
    char *ignore; /* comma-separated dotted field names */
} route;

/* What one load produces; a reload builds a new one and swaps it in. */
typedef struct route_set {
    route *r;
    size_t n;
    char *stats_file; /* `{pid}` expanded, or NULL */
    char *stats_glob; /* `{pid}` as `*` */
} route_set;

typedef struct method_stat {
    const orpc_method_desc *method;
    orpc_route_stats s;
} method_stat;

/* The routes are swapped under |rw| by a reload; the counters live under
 * |lock| and survive reloads.  |refs| counts the owner and routed clients. */
struct orpc_routes {
    uv_rwlock_t rw;
    route_set set;
    char *file; /* what orpc_routes_load() read, for reloads */
    int loaded; /* made by orpc_routes_load() (reloadable) */
    uv_mutex_t lock;
    int refs;
    method_stat *stats;
    size_t n_stats;
    int dirty; /* counters changed since the last write */
    /* the watcher thread (orpc_routes_watch) */
    int watching;
    uv_thread_t watcher;
    uv_loop_t loop;
    uv_async_t stop;
    uv_signal_t sig;
    uv_timer_t tick;
    int signum;
    orpc_log_fn log;
    void *log_ud;
};

/* Ends a failed public call: |d| (filled by orpc__detail_set(), or left
 * zeroed for a plain orpc_strerror(|code|) message) goes to the caller's
 * |detail|, or when that is NULL is reported once, through |log| if not
 * NULL, else to stderr as "orpc: error: router: <message>".  Returns
 * |code|. */
int orpc__router_report(orpc_error_detail *d, int code,
                        orpc_error_detail *detail, orpc_log_fn log,
                        void *log_ud);

/* Copies the ignore list of |m| into |buf| (empty: none). */
void orpc__routes_ignored_fields(const orpc_routes *ct,
                                 const orpc_method_desc *m, char *buf,
                                 size_t len);

/* ---- the counters (route_stats.c) ---- */

typedef enum counter {
    C_GRPC,
    C_LEGACY,
    C_FALLBACK,
    C_MATCH,
    C_MISMATCH,
    C_DROPPED,
    C_UNMIRRORED
} counter;

/* Adds one to counter |c| of |m| (C_FALLBACK also counts as C_LEGACY).
 * NULL |ct| is a no-op. */
void orpc__routes_count(const orpc_routes *ct, const orpc_method_desc *m,
                        counter c);

/* ---- the routed client (routed_client.c) ---- */

#define SHADOW_QUEUE 64   /* mirrors waiting at most; more are dropped */
#define MAX_WORKERS 16    /* threads per routed client, started on demand */
#define LEGACY_QUEUE 4096 /* default of max_queued_legacy_calls */

struct routed;

/* Work for the client's threads: an asynchronous legacy call or a mirror.
 * |run| does it and frees the task; |discard| frees it undone (the client
 * is going away). */
typedef struct task {
    orpc__job job; /* first: what the pool runs */
    struct routed *r;
    void (*run)(struct routed *r, struct task *t);
    void (*discard)(struct task *t);
    int is_mirror;
} task;

typedef struct routed {
    const orpc_service_desc *svc;
    /* the worker pool (common/pool.h), started by the first task; |lock|
     * guards |pool_started|, |mirrors_queued| and |stopping| */
    uv_mutex_t lock;
    orpc__pool pool;
    int pool_started;
    size_t mirrors_queued;
    int stopping;
    orpc_log_fn log;
    void *log_ud;
    orpc_routes *routes; /* a reference */
    orpc_channel *channel;
    orpc__legacy_http *legacy;
    orpc__legacy_http *auth;
    orpc__tokens *tokens;
    int64_t legacy_timeout_ms;
    int max_retries;        /* legacy retries of repeatable calls */
    int64_t retry_delay_ms; /* between them */
    orpc_json_opts jo;
    char *legacy_url;      /* the base URL, the legacy calls' peer */
    unsigned max_queued;   /* async legacy calls waiting for a thread ... */
    unsigned calls_queued; /* ... and how many do (|lock|) */
    /* the legacy calls' interceptors (references), defaults first */
    orpc_interceptor *ics[ORPC_MAX_INTERCEPTORS];
    size_t n_ics;
    orpc_metrics *metrics; /* a reference, or NULL */
} routed;

/* Counts |c| of |m| in the table's stats (orpc__routes_count()) and in
 * the client's metrics registry, if it has one. */
void orpc__routed_count(routed *r, const orpc_method_desc *m, counter c);

/* Queues |t| on the client's pool, starting the pool with the first task.
 * A mirror is refused (1) when SHADOW_QUEUE of them wait, a call
 * (ORPC_ELIMIT) when |max_queued| of them do.  Returns 0, 1, ORPC_ELIMIT,
 * ORPC_ESYS when no thread could be started, or what orpc__pool_submit()
 * returns. */
int orpc__routed_submit(routed *r, task *t);

/* An independent copy of |m| (the caller may reuse its own at once), or
 * NULL. */
ProtobufCMessage *orpc__copy_message(const ProtobufCMessage *m);

/* The call over the legacy endpoint of |m|'s google.api.http rule,
 * retried where a repeat is harmless; blocks.  |ci| (or NULL) hears of the
 * request and response bodies; the trace context of |md| (or NULL) goes
 * along as the traceparent and tracestate headers. */
orpc_status orpc__routed_legacy_invoke(routed *r, const orpc_method_desc *m,
                                       const ProtobufCMessage *req,
                                       ProtobufCMessage **resp,
                                       const orpc_call_opts *opts,
                                       orpc_call_info *ci,
                                       const orpc_metadata *md);

/* ---- shadow comparison (shadow.c) ---- */

/* Hands a copy of the call to the client's threads, to ask the other side
 * (the legacy one when |to_legacy|) and compare its answer with |code| and
 * |resp| (NULL unless OK); counts the call as unmirrored when it has side
 * effects, and drops it when SHADOW_QUEUE mirrors wait already, so the
 * caller never waits for the shadow side. */
void orpc__shadow_mirror(routed *r, const orpc_method_desc *m,
                         const ProtobufCMessage *req, int to_legacy,
                         orpc_code code, const ProtobufCMessage *resp);

#endif /* ORPC_COMPAT_ROUTER_INTERNAL_H */
