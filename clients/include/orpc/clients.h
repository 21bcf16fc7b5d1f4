/*
 * orpc/clients.h — OpsConductor service clients configured from the
 * environment.
 *
 * A process makes one orpc_env, then one client per service it calls:
 *
 *     orpc_env *env;
 *     orpc_error_detail why;         (on failure: why.message says why)
 *     orpc_env_new(&env, NULL, &why);
 *     orpc_env_client_new(&jobs, env,
 *         &opsconductor__jobs__v1__jobs_service__orpc_desc, &why);
 *     orpc_env_free(env);            (the clients keep what they use)
 *
 * Each client is a routed client (orpc/compat/router.h): per method, its
 * calls go to the gRPC server or to the legacy JSON/HTTP endpoint, as the
 * process's routing table says.  The env holds what the clients of a
 * process share: that one table (and its SIGHUP watcher) and one gRPC
 * channel per distinct target.
 *
 * Environment (values are untrusted: bounded and checked; a bad one is
 * ORPC_ECONFIG with a message naming the variable):
 *
 *   read by orpc_env_new():
 *     ORPC_IDENTITY       the calling identity, e.g. "scheduler-service"
 *                         ([A-Za-z0-9_-], 1..64 bytes); its service-token
 *                         credentials are <ID>_USERNAME and <ID>_PASSWORD
 *                         (ID upper-cased, '-' as '_').  Needed only when a
 *                         method goes to a legacy endpoint that wants a token.
 *     ORPC_ROUTES_FILE    the routing table file (see orpc/compat/router.h);
 *                         unset or empty: none.  ORPC_ROUTE_* overrides and
 *                         ORPC_ROUTES_STATS_FILE always apply.
 *     ORPC_TLS_CA         CA bundle verifying gRPC servers (PEM file).
 *     ORPC_TLS_CERT       own certificate for mutual TLS (PEM file); needs
 *                         ORPC_TLS_KEY and ORPC_TLS_CA.
 *     ORPC_TLS_KEY        its private key (PEM file); needs ORPC_TLS_CERT.
 *     ORPC_PLAINTEXT      "1": gRPC without TLS (h2c) when no ORPC_TLS_* is
 *                         set (TLS settings win), for tests and local
 *                         development; "0" or unset: TLS is required.
 *     ORPC_LEGACY_CA_FILE CA bundle for https:// legacy URLs; unset: the
 *                         system's.
 *   read by orpc_env_client_new(), per service; PREFIX is the service's
 *   legacy URL variable without "_URL" (JOBS_SERVICE_URL → JOBS_SERVICE),
 *   or the upper-snake service name (JobsService → JOBS_SERVICE):
 *     PREFIX_GRPC_TARGET       the gRPC target ("host:port",
 *                              "dns:///host:port", "unix:/path"); unset:
 *                              the client has no gRPC side (calls routed
 *                              to gRPC end UNAVAILABLE).
 *     PREFIX_GRPC_SPIFFE_ID    the server's expected SPIFFE ID (needs TLS).
 *     PREFIX_GRPC_SERVER_NAME  the name the server's certificate must carry
 *                              (needs TLS); default: the target's host.
 *   read by the routed client itself, and checked here first:
 *     <SERVICE>_SERVICE_URL    the legacy base URL (http:// or https://).
 *     AUTH_SERVICE_URL         where service tokens come from.
 *     <ID>_USERNAME, <ID>_PASSWORD  the identity's credentials.
 *     SERVICE_HTTP_TIMEOUT     legacy calls' default deadline, seconds.
 *     SERVICE_HTTP_CONNECT_TIMEOUT, SERVICE_HTTP_MAX_RETRIES,
 *     SERVICE_HTTP_RETRY_DELAY, SERVICE_HTTP_MAX_CONNECTIONS,
 *     SERVICE_HTTP_MAX_KEEPALIVE_CONNECTIONS  the legacy transport's
 *                              settings (LEGACY_API.md), in the ranges the
 *                              routed client accepts (docs/clients.md).
 *
 * Thread-safety: an env may be used from any thread (orpc_env_client_new()
 * calls may run concurrently); clients are thread-safe.  The environment is
 * read with getenv(3): do not change it while these functions run.
 */
#ifndef ORPC_CLIENTS_H
#define ORPC_CLIENTS_H

#include <stddef.h>

#include <orpc/client.h>
#include <orpc/common.h>
#include <orpc/compat/router.h>
#include <orpc/method.h>
#include <orpc/observe.h>

#ifdef __cplusplus
extern "C" {
#endif

/** What a process's clients share: the routing table and the channels. */
typedef struct orpc_env orpc_env;

/**
 * Options of orpc_env_new().  Zero-initialise; fields are only appended.
 * Strings are copied.
 */
typedef struct orpc_env_opts {
    /** The calling identity; NULL reads ORPC_IDENTITY. */
    const char *identity;
    /** Logger for the channels, the routing table's watcher (reload
     *  outcomes) and shadow differences, or NULL. */
    orpc_log_fn log;
    /** Passed to |log|. */
    void *log_user_data;
    /** 1: do not start the routing table's watcher (no SIGHUP reload, no
     *  periodic stats file). */
    int no_watch;
    /** Where the call log goes (orpc/observe.h: one line per call, both
     *  sides), when SERVICE_COMM_LOG_ENABLED says to log (the default);
     *  NULL: stderr. */
    orpc_call_log_sink call_log;
    /** Passed to |call_log|. */
    void *call_log_user_data;
} orpc_env_opts;

/**
 * @function
 * Reads the process-wide settings (ORPC_IDENTITY, ORPC_ROUTES_FILE,
 * ORPC_TLS_*, ORPC_PLAINTEXT, ORPC_LEGACY_CA_FILE; the call log's
 * SERVICE_COMM_LOG_ENABLED, LOG_LEVEL, ORPC_CALL_LOG_FORMAT), loads the
 * routing table
 * and, unless |opts|->no_watch, starts its watcher on SIGHUP
 * (orpc_routes_watch(); libuv then handles SIGHUP for the process while
 * the table lives).  |opts| may be NULL.
 *
 * Returns 0; ORPC_EINVAL (|out| NULL); ORPC_ECONFIG with the problem in
 * |detail| (a variable's bad value, half-configured TLS, the routing
 * table's file:line message); ORPC_ENOMEM; ORPC_ESYS (the watcher did not
 * start).  With |detail| NULL the reason goes to the logger in |opts|, or
 * stderr.
 *
 * Ownership: copies what it keeps of |opts|; the caller frees the env with
 * orpc_env_free().
 * Threads: any thread.
 */
ORPC_EXTERN int orpc_env_new(orpc_env **out, const orpc_env_opts *opts,
                             orpc_error_detail *detail);

/**
 * @function
 * Drops the env's references to its routing table and channels.  Clients
 * made from it hold their own and keep working (the watcher runs until the
 * last of them is freed).  NULL is a no-op.
 *
 * Ownership: ends the caller's ownership of |env|.
 * Threads: any thread, not concurrently with another function on the same
 * env.
 */
ORPC_EXTERN void orpc_env_free(orpc_env *env);

/**
 * @function
 * The env's routing table, e.g. for orpc_routes_stats() or
 * orpc_routes_reload().
 *
 * Ownership: borrowed until orpc_env_free(); take a reference with
 * orpc_routes_ref() to keep it longer.
 * Threads: any thread.
 */
ORPC_EXTERN orpc_routes *orpc_env_routes(orpc_env *env);

/**
 * @function
 * A routed client of |svc| (a generated orpc_service_desc), configured from
 * the env and the service's variables (see the top of this file).  Clients
 * whose services resolve to the same gRPC target and TLS settings share
 * one channel.
 *
 * Returns 0; ORPC_EINVAL (a NULL argument, |svc| not a service
 * descriptor); ORPC_ECONFIG with the problem in |detail| — among them a
 * gRPC target without TLS and without ORPC_PLAINTEXT=1, a target that does
 * not parse, TLS material that does not load (naming the file), and
 * missing credentials for a service that reaches legacy endpoints needing
 * a token (naming the variables to set); ORPC_ENOMEM.  With |detail| NULL
 * the reason goes to the env's logger, or stderr.
 *
 * Ownership: the caller frees the client with orpc_client_free(); the
 * client holds references to the table and its channel, and |svc| must
 * outlive it (generated descriptors are static).
 * Threads: any thread; the env's channels are shared under its lock.
 */
ORPC_EXTERN int orpc_env_client_new(orpc_client **out, orpc_env *env,
                                    const orpc_service_desc *svc,
                                    orpc_error_detail *detail);

/**
 * @function
 * A client of |svc| with an env of its own: orpc_env_new() with default
 * options, orpc_env_client_new(), orpc_env_free().  For a program that
 * calls one service; a process calling several should share one env (one
 * routing table, one watcher, one stats file writer, shared channels).
 *
 * Returns as orpc_env_new() and orpc_env_client_new(), with their reason
 * in |detail| (NULL: on stderr).
 *
 * Ownership: the caller frees the client with orpc_client_free(), which
 * releases what the env held.
 * Threads: any thread.
 */
ORPC_EXTERN int orpc_client_new_from_env(orpc_client **out,
                                         const orpc_service_desc *svc,
                                         orpc_error_detail *detail);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_CLIENTS_H */
