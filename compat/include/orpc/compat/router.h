/*
 * orpc/compat/router.h — per-method routing between gRPC and the legacy
 * JSON/HTTP endpoints, so a caller's code never changes when an endpoint
 * moves.
 *
 * A routing table maps each method to a mode:
 *   grpc         the call goes over the gRPC channel;
 *   legacy       the call goes to the legacy endpoint of its google.api.http
 *                rule (today's behaviour, and the default);
 *   fallback     gRPC first; the legacy endpoint when gRPC answers
 *                UNAVAILABLE or UNIMPLEMENTED (nothing came back);
 *   shadow       the legacy endpoint answers; the call is mirrored to gRPC
 *                off the caller's path (a bounded queue that drops when
 *                full) and the two responses are compared field by field;
 *   shadow-grpc  the same with the sides swapped: gRPC answers, the legacy
 *                endpoint is mirrored.
 * Only calls without side effects are mirrored (idempotency_level
 * NO_SIDE_EFFECTS, or a GET rule): mirroring a write would perform it twice.
 * Other calls of a shadowed method are served by the answering side and
 * counted as unmirrored.  A method without a google.api.http rule has no
 * legacy endpoint: it always travels over gRPC, whatever the table says.
 *
 * The table comes from a file and from environment overrides.  File lines:
 *   key = mode             key: `*`, `pkg.Service` or `pkg.Service/Method`
 *                          (proto identifiers; any other key is refused)
 *   ignore pkg.Service/Method = a.b, c
 *                          response fields (dotted proto names) that shadow
 *                          comparisons skip, e.g. timestamps
 *   stats_file = PATH      where orpc_routes_watch() writes the counters
 *                          (`{pid}` becomes the process id); `orpc routes`
 *                          reads them from there
 *   # comment
 * Environment: ORPC_ROUTE_<SERVICE> and ORPC_ROUTE_<SERVICE>_<METHOD>, where
 * SERVICE is the service's name without its "Service" suffix and METHOD the
 * method's name, both upper-case with '_' between words (ORPC_ROUTE_JOBS,
 * ORPC_ROUTE_JOBS_GET_JOB); ORPC_ROUTES_STATS_FILE overrides stats_file.
 * Most specific wins: env method, env service, file method, file service,
 * file `*`, then legacy.
 *
 * Every call is counted per method by the side that answered it (and
 * whether it fell back); orpc_call_opts.served_by tells one caller which.
 *
 * Thread-safety: a table is reference-counted and thread-safe; a reload
 * swaps its routes atomically for calls that start afterwards, and keeps
 * its counters.  A routed client is thread-safe.
 */
#ifndef ORPC_COMPAT_ROUTER_H
#define ORPC_COMPAT_ROUTER_H

#include <orpc/channel.h>
#include <orpc/client.h>
#include <orpc/common.h>
#include <orpc/error.h>
#include <orpc/method.h>
#include <orpc/metrics.h>

#ifdef __cplusplus
extern "C" {
#endif

/** How a method's calls travel. */
typedef enum orpc_route_mode {
    ORPC_ROUTE_LEGACY = 0,
    ORPC_ROUTE_GRPC = 1,
    ORPC_ROUTE_FALLBACK = 2,
    ORPC_ROUTE_SHADOW = 3,
    ORPC_ROUTE_SHADOW_GRPC = 4
} orpc_route_mode;

/**
 * @function
 * The name of |mode| as the routes file spells it: "legacy", "grpc",
 * "fallback", "shadow" or "shadow-grpc"; "?" for any other value.
 *
 * Ownership: returns a static string.
 * Threads: any thread.
 */
ORPC_EXTERN const char *orpc_route_mode_name(orpc_route_mode mode);

/** A routing table. */
typedef struct orpc_routes orpc_routes;

/**
 * @function
 * Loads the table from |config_file| (NULL: none) and the environment.
 *
 * Returns 0; ORPC_EINVAL (|out| is NULL); ORPC_ECONFIG: the file cannot be
 * opened, or a line does not parse (a line without `=`, a key that is not
 * a proto name, an unknown mode, a stats_file without a path, a line too
 * long), or an ORPC_ROUTE_* variable has an unknown mode; ORPC_ENOMEM.
 * On failure |*out| is left as it was, and |detail| (when not NULL) says
 * why, naming the file and line, the setting and what is wrong:
 * "routes.conf:7: jobs.v1.JobsService/RunJob: unknown mode \"grcp\"
 * (grpc, legacy, fallback, shadow, shadow-grpc)", or for the environment
 * "ORPC_ROUTE_JOBS: unknown mode ...".  With a NULL |detail| the failure is
 * written to stderr once, as "orpc: error: router: <message>".
 *
 * Ownership: copies |config_file| (a reload reads the same path again);
 * the caller holds the one reference to |*out| and drops it with
 * orpc_routes_unref(); |detail| is the caller's and only written.
 * Threads: any thread.  Reads the environment: not safe against a
 * concurrent setenv() or putenv() in another thread.
 */
ORPC_EXTERN int orpc_routes_load(orpc_routes **out, const char *config_file,
                                 orpc_error_detail *detail);

/**
 * @function
 * An empty table (every method legacy), to fill with orpc_routes_set().
 *
 * Returns 0, ORPC_EINVAL or ORPC_ENOMEM.
 *
 * Ownership: the caller holds the one reference to |*out| and drops it
 * with orpc_routes_unref().
 * Threads: any thread.
 */
ORPC_EXTERN int orpc_routes_new(orpc_routes **out);

/**
 * @function
 * Sets the mode of |key| (`*`, `pkg.Service` or `pkg.Service/Method`); a
 * later setting of the same key wins.  Environment overrides read by
 * orpc_routes_load() still take precedence, and a reload of a loaded table
 * replaces every setting with what the file and environment say.
 *
 * Returns 0; ORPC_EINVAL; ORPC_ENOMEM.
 *
 * Ownership: copies |key|.
 * Threads: any thread, also while routed clients of the table call (a call
 * reads its mode once, when it starts).
 */
ORPC_EXTERN int orpc_routes_set(orpc_routes *routes, const char *key,
                                orpc_route_mode mode);

/**
 * @function
 * Takes a reference to |routes| (NULL is returned as is).
 *
 * Ownership: the caller owns the new reference and drops it with
 * orpc_routes_unref().
 * Threads: any thread.
 */
ORPC_EXTERN orpc_routes *orpc_routes_ref(orpc_routes *routes);

/**
 * @function
 * Drops a reference; the last one stops the watcher (writing the counters
 * one last time) and frees the table.  NULL is a no-op.
 *
 * Ownership: takes the caller's reference.  Strings borrowed from the table
 * (orpc_routes_stats_file()) are freed with the last one.
 * Threads: any thread except the watcher's: the last reference joins the
 * watcher thread, so it must not be dropped from inside the |log| callback
 * of orpc_routes_watch().
 */
ORPC_EXTERN void orpc_routes_unref(orpc_routes *routes);

/**
 * @function
 * Rereads the file the table was loaded from and the environment, and
 * swaps the new routes in for calls that start afterwards; counters are
 * kept.  On any error the table is left as it was.
 *
 * Returns 0; ORPC_ECONFIG (as orpc_routes_load(), with the same messages in
 * |detail|); ORPC_EINVAL (NULL |routes|, or a table made with
 * orpc_routes_new()); ORPC_ENOMEM.  With a NULL |detail| the failure is
 * reported once through the |log| of orpc_routes_watch() when the table is
 * watched, else to stderr as "orpc: error: router: <message>".
 *
 * Ownership: |detail| is the caller's and only written.
 * Threads: any thread, also while routed clients of the table call and
 * while another thread reloads (the last swap wins).  The watcher calls it
 * on its own thread for the reload signal.  Reads the environment (see
 * orpc_routes_load()).  A NULL |detail|'s report runs |log| on the calling
 * thread.
 */
ORPC_EXTERN int orpc_routes_reload(orpc_routes *routes,
                                   orpc_error_detail *detail);

/**
 * @function
 * Starts the table's watcher thread: on |reload_signal| (e.g. SIGHUP; 0 for
 * none) it calls orpc_routes_reload() and logs the outcome through |log|;
 * once a second, when counters changed, it writes them to the table's
 * stats file (atomically: a temporary file renamed over it).  The signal
 * is caught through libuv, which shares it with other libuv loops of the
 * process (orpc_server_run()'s SIGHUP reload keeps working).  Stopped by
 * the last orpc_routes_unref().
 *
 * Returns 0; ORPC_EINVAL (already watching, bad signal); ORPC_ESYS.
 *
 * Ownership: borrows |log| and |log_user_data| until the last
 * orpc_routes_unref() (|log| may be NULL: nothing is logged).
 * Threads: any thread, once per table.  |log| runs on the watcher thread
 * (reload outcomes, stats files that cannot be written), and on the thread
 * of a failed orpc_routes_reload() given a NULL detail.
 */
ORPC_EXTERN int orpc_routes_watch(orpc_routes *routes, int reload_signal,
                                  orpc_log_fn log, void *log_user_data);

/**
 * @function
 * Writes the counters to the table's stats file now (see orpc_routes_watch()).
 *
 * Returns 0; ORPC_EINVAL when no stats file is configured; ORPC_ESYS when it
 * cannot be written.
 *
 * Ownership: keeps nothing.
 * Threads: any thread, the watcher's own writes going on included (each
 * write has a temporary file of its own; the last rename wins).
 */
ORPC_EXTERN int orpc_routes_write_stats(orpc_routes *routes);

/**
 * @function
 * Copies the stats file configured for |routes| (`{pid}` expanded) into
 * |buf| (of |len| bytes).
 *
 * Returns 0; ORPC_ENOTFOUND (none configured; |buf| is ""); ORPC_ETOOBIG
 * (|buf| too small; PATH_MAX always fits); ORPC_EINVAL.
 * Ownership: copies into the caller's |buf|: a reload may replace the name
 * at any time.
 * Threads: any thread, also while the table reloads.
 */
ORPC_EXTERN int orpc_routes_stats_file(const orpc_routes *routes, char *buf,
                                       size_t len);

/**
 * @function
 * The stats file's name with `{pid}` as `*`: a glob(3) pattern matching the
 * files of every process using the same configuration (what `orpc routes`
 * sums up), copied into |buf| (of |len| bytes).
 *
 * Returns as orpc_routes_stats_file().
 * Ownership: as orpc_routes_stats_file().
 * Threads: as orpc_routes_stats_file().
 */
ORPC_EXTERN int orpc_routes_stats_glob(const orpc_routes *routes, char *buf,
                                       size_t len);

/**
 * @function
 * The mode of |method| under |routes| (NULL routes: legacy).  A method
 * with no legacy endpoint to call — no google.api.http rule, or a
 * streaming one (streams travel over gRPC only) — is always grpc.
 *
 * Ownership: borrows both for the call.
 * Threads: any thread, also during a reload (the old routes or the new).
 */
ORPC_EXTERN orpc_route_mode orpc_routes_mode(const orpc_routes *routes,
                                             const orpc_method_desc *method);

/** Counters of one method, accumulated by the routed clients of a table. */
typedef struct orpc_route_stats {
    /** Calls the gRPC side answered (any status). */
    uint64_t grpc;
    /** Calls the legacy side answered (any status). */
    uint64_t legacy;
    /** Of |legacy|: calls that tried gRPC first (fallback mode). */
    uint64_t fallbacks;
    /** Shadow: both sides answered alike (status and, when OK, every
     *  compared field). */
    uint64_t matches;
    /** Shadow: they differed. */
    uint64_t mismatches;
    /** Shadow: mirrors dropped because the queue was full. */
    uint64_t dropped;
    /** Shadow: calls not mirrored because the method has side effects. */
    uint64_t unmirrored;
} orpc_route_stats;

/**
 * @function
 * The counters of |method| in |routes|.
 *
 * Returns 0, or ORPC_EINVAL.
 *
 * Ownership: copies them into |*out|.
 * Threads: any thread, while calls count (a consistent snapshot of the
 * method's counters).
 */
ORPC_EXTERN int orpc_routes_stats(const orpc_routes *routes,
                                  const orpc_method_desc *method,
                                  orpc_route_stats *out);

/**
 * Settings of a routed client.  Zero-initialise; strings are copied.
 */
typedef struct orpc_routed_opts {
    /** The table; the client takes a reference.  NULL: all legacy. */
    orpc_routes *routes;
    /** The gRPC side; the client takes a reference.  NULL: grpc and
     *  fallback calls fail with UNAVAILABLE. */
    orpc_channel *channel;
    /** Legacy base URL; NULL: the service's orpc.service.legacy_url_env
     *  variable, else its legacy_default_url. */
    const char *legacy_url;
    /** Login endpoint's base URL; NULL: AUTH_SERVICE_URL, else
     *  http://auth-service:3001. */
    const char *auth_url;
    /** The calling identity, e.g. "scheduler-service": its credentials
     *  come from <IDENTITY>_USERNAME and <IDENTITY>_PASSWORD (upper-case,
     *  '-' as '_') unless |username| and |password| are given. */
    const char *identity;
    /** Explicit credentials (override the environment). */
    const char *username;
    /** See |username|. */
    const char *password;
    /** Legacy calls' deadline when the call sets none, in ms; 0 for
     *  SERVICE_HTTP_TIMEOUT seconds, else 30 s. */
    int64_t legacy_timeout_ms;
    /** Retries of a legacy call that failed UNAVAILABLE (unreachable, 502,
     *  503), for repeatable methods only (idempotency_level set, or a GET,
     *  PUT or DELETE rule), within the call's deadline; 0 for
     *  SERVICE_HTTP_MAX_RETRIES, else 3; negative for none; at most 10. */
    int legacy_max_retries;
    /** Wait between those retries in ms; 0 for SERVICE_HTTP_RETRY_DELAY
     *  seconds, else 1 s. */
    int64_t legacy_retry_delay_ms;
    /** CA bundle for https:// legacy URLs; NULL for the system's. */
    const char *ca_file;
    /** Logger for shadow differences (a sample) and, when
     *  orpc_routed_client_new() is given no detail, its failure; or NULL
     *  (that failure then goes to stderr). */
    orpc_log_fn log;
    /** Passed to |log|. */
    void *log_user_data;
    /** Interceptors (orpc/interceptor.h) run around the calls this client
     *  sends to the legacy side, after the default ones (trace context),
     *  with orpc_call_info_served_by() ORPC_SERVED_LEGACY and the legacy
     *  base URL as the peer; the client takes a reference to each.  Calls
     *  it sends over gRPC run the channel's chain instead (give the channel
     *  the same interceptors: orpc_env_client_new() does).  At most
     *  ORPC_MAX_INTERCEPTORS - 1. */
    orpc_interceptor *const *interceptors;
    /** Entries in |interceptors|. */
    size_t n_interceptors;
    /** Nonzero: no default interceptors on the legacy side. */
    int no_default_interceptors;
    /** Where the client counts its routing (orpc/metrics.h: the
     *  orpc_router_* counters of docs/metrics.md); the client takes a
     *  reference.  NULL: none. */
    orpc_metrics *metrics;
    /** Asynchronous legacy calls waiting for one of the client's threads
     *  (16 run at once); past it orpc_client_invoke_async() returns
     *  ORPC_ELIMIT and nothing is sent.  0 for 4096. */
    unsigned max_queued_legacy_calls;
} orpc_routed_opts;

/**
 * @function
 * A client of |service| whose calls go where the table says.  A client
 * that may call legacy endpoints needs credentials: none given (and none in
 * the environment) is ORPC_ECONFIG — there is no default account.
 *
 * Returns 0; ORPC_EINVAL (|out| NULL, |service| not a service descriptor);
 * ORPC_ECONFIG (no credentials, an empty username or password, a legacy or
 * auth base URL that is not http(s)://host, an unreadable |ca_file|);
 * ORPC_ESYS; ORPC_ENOMEM.  On failure |detail| (when not NULL) names the
 * setting and what is wrong ("jobs.v1.JobsService: no credentials for
 * legacy calls: set SCHEDULER_SERVICE_USERNAME and ..."); with a NULL
 * |detail| the failure goes once to |opts|' |log|, else to stderr as
 * "orpc: error: router: <message>".
 *
 * Ownership: takes a reference to |opts|' routes, channel and metrics;
 * copies its strings; borrows |log_user_data| until the client is freed;
 * |service| must outlive the client (generated descriptors are static).  The
 * caller frees the client with orpc_client_free(), which waits for the shadow
 * mirrors and asynchronous legacy calls in progress (each bounded by the
 * legacy timeout) and discards the ones still queued (a discarded call
 * gets its callback with CANCELLED).
 * Threads: any thread; the client may then be called from any number of
 * threads at once.  Callbacks of asynchronous legacy calls, and |log| for
 * shadow mismatches, run on the client's worker threads; callbacks of
 * calls over gRPC on the channel's IO threads.
 */
ORPC_EXTERN int orpc_routed_client_new(orpc_client **out,
                                       const orpc_service_desc *service,
                                       const orpc_routed_opts *opts,
                                       orpc_error_detail *detail);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_COMPAT_ROUTER_H */
