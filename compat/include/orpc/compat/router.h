/*
 * orpc/compat/router.h — per-method routing between gRPC and the legacy
 * JSON/HTTP endpoints, so a caller's code never changes when an endpoint
 * moves.
 *
 * A routing table maps each method to a mode:
 *   grpc      the call goes over the gRPC channel;
 *   legacy    the call goes to the legacy endpoint of its google.api.http
 *             rule (today's behaviour, and the default);
 *   fallback  gRPC first; the legacy endpoint when gRPC answers UNAVAILABLE
 *             or UNIMPLEMENTED;
 *   shadow    the legacy endpoint answers; the call is mirrored to gRPC off
 *             the caller's path (a bounded queue that drops when full) and
 *             the two responses are compared field by field, counting
 *             matches and mismatches per method (orpc_routes_shadow_stats)
 *             and logging a sample difference.
 *
 * The table comes from a file of `key = mode` lines (`#` starts a comment;
 * a key is `*`, `pkg.Service` or `pkg.Service/Method`) and from environment
 * overrides: ORPC_ROUTE_<SERVICE> and ORPC_ROUTE_<SERVICE>_<METHOD>, where
 * SERVICE is the service's name without its "Service" suffix and METHOD the
 * method's name, both upper-case with '_' between words (ORPC_ROUTE_JOBS,
 * ORPC_ROUTE_JOBS_GET_JOB).  Most specific wins: env method, env service,
 * file method, file service, file `*`, then legacy.  A file line
 * `ignore pkg.Service/Method = a.b, c` names response fields (dotted proto
 * names) that shadow comparisons skip, e.g. timestamps.
 *
 * Thread-safety: a loaded table is immutable (any thread); a routed client
 * is thread-safe.
 */
#ifndef ORPC_COMPAT_ROUTER_H
#define ORPC_COMPAT_ROUTER_H

#include <orpc/channel.h>
#include <orpc/client.h>
#include <orpc/common.h>
#include <orpc/method.h>

#ifdef __cplusplus
extern "C" {
#endif

/** How a method's calls travel. */
typedef enum orpc_route_mode {
    ORPC_ROUTE_LEGACY = 0,
    ORPC_ROUTE_GRPC = 1,
    ORPC_ROUTE_FALLBACK = 2,
    ORPC_ROUTE_SHADOW = 3
} orpc_route_mode;

/**
 * @function
 * "legacy", "grpc", "fallback" or "shadow"; "?" for anything else.
 */
ORPC_EXTERN const char *orpc_route_mode_name(int mode);

/** A routing table. */
typedef struct orpc_routes orpc_routes;

/**
 * @function
 * Loads the table from |config_file| (NULL: none) and the environment.
 *
 * Returns 0; ORPC_ECONFIG with the file, line and problem in |err| (a line
 * that does not parse, an unknown mode, an environment override with an
 * unknown mode); ORPC_ENOMEM.  Ownership: the
 * caller frees the table with orpc_routes_free().
 */
ORPC_EXTERN int orpc_routes_load(orpc_routes **out, const char *config_file,
                                 char *err, size_t errlen);

/**
 * @function
 * An empty table (every method legacy), to fill with orpc_routes_set().
 *
 * Returns 0, ORPC_EINVAL or ORPC_ENOMEM.
 */
ORPC_EXTERN int orpc_routes_new(orpc_routes **out);

/**
 * @function
 * Sets the mode of |key| (`*`, `pkg.Service` or `pkg.Service/Method`); a
 * later setting of the same key wins.  Environment overrides read by
 * orpc_routes_load() still take precedence.
 *
 * Returns 0; ORPC_EINVAL; ORPC_ENOMEM.  Ownership: copies |key|.
 */
ORPC_EXTERN int orpc_routes_set(orpc_routes *routes, const char *key,
                                orpc_route_mode mode);

/**
 * @function
 * Frees the table.  NULL is a no-op.
 */
ORPC_EXTERN void orpc_routes_free(orpc_routes *routes);

/**
 * @function
 * The mode of |method| under |routes| (NULL routes: legacy).
 */
ORPC_EXTERN orpc_route_mode orpc_routes_mode(const orpc_routes *routes,
                                             const orpc_method_desc *method);

/** Shadow comparison counters of one method. */
typedef struct orpc_shadow_stats {
    /** Both sides answered alike (status and, when OK, every compared field). */
    uint64_t matches;
    /** They differed. */
    uint64_t mismatches;
    /** Mirrors dropped because the queue was full. */
    uint64_t dropped;
} orpc_shadow_stats;

/**
 * @function
 * The shadow counters of |method| accumulated in |routes| by the routed
 * clients using it.  Any thread.
 *
 * Returns 0, or ORPC_EINVAL.
 */
ORPC_EXTERN int orpc_routes_shadow_stats(const orpc_routes *routes,
                                         const orpc_method_desc *method,
                                         orpc_shadow_stats *out);

/**
 * Settings of a routed client.  Zero-initialise; strings are copied.
 */
typedef struct orpc_routed_opts {
    /** The table; borrowed for the client's life.  NULL: all legacy. */
    const orpc_routes *routes;
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
    /** CA bundle for https:// legacy URLs; NULL for the system's. */
    const char *ca_file;
    /** Logger for shadow differences (a sample), or NULL. */
    orpc_log_fn log;
    /** Passed to |log|. */
    void *log_user_data;
} orpc_routed_opts;

/**
 * @function
 * A client of |service| whose calls go where the table says.  A client
 * that may call legacy endpoints needs credentials: none given (and none in
 * the environment) is ORPC_ECONFIG — there is no default account.
 *
 * Returns 0, ORPC_EINVAL, ORPC_ECONFIG, ORPC_ENOMEM.  Ownership: the caller
 * frees the client with orpc_client_free().
 */
ORPC_EXTERN int orpc_routed_client_new(orpc_client **out,
                                       const orpc_service_desc *service,
                                       const orpc_routed_opts *opts);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_COMPAT_ROUTER_H */
