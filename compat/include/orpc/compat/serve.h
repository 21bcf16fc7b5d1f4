/*
 * orpc/compat/serve.h — orpc's own gateway (orpc/gateway.h): an orpc server
 * answers the legacy JSON/HTTP routes of its methods' google.api.http rules
 * and the Connect protocol's unary calls, from the same handlers as gRPC,
 * on the same listeners.
 *
 *     orpc_legacy_serve *ls;
 *     orpc_legacy_serve_opts o = {.auth_channel = auth};
 *     orpc_legacy_serve_new(&ls, &o);
 *     orpc_legacy_serve_install(ls, srv);      (before orpc_server_start)
 *     ...
 *     orpc_server_free(srv);  orpc_legacy_serve_free(ls);
 *
 * Legacy routes speak the "legacy profile" the compat client reads
 * (snake_case names, 64-bit integers as JSON numbers, enums by
 * orpc.legacy_name), answer errors FastAPI's way ({"detail": "..."}) and
 * need `Authorization: Bearer <token>` (except methods marked
 * orpc.method.legacy_no_auth): the token's verified identity
 * ("legacy-user:alice", "legacy-service:scheduler-service") becomes the
 * call's identity, which the server's authorization policy matches as the
 * principal.  See docs/compat.md, "Serving legacy callers".
 *
 * Thread-safety: a orpc_legacy_serve is configured on one thread, then used
 * by the server's IO and worker threads at once (its token cache has its
 * own lock).  A request is answered on the IO thread when nothing would
 * block there (no token needed, the token cached, or a verify_nonblocking
 * verifier); a token only the auth service (or a blocking verifier) can
 * judge moves it to a worker.
 */
#ifndef ORPC_COMPAT_SERVE_H
#define ORPC_COMPAT_SERVE_H

#include <stdint.h>

#include <orpc/channel.h>
#include <orpc/common.h>
#include <orpc/server.h>

#ifdef __cplusplus
extern "C" {
#endif

/** orpc's gateway: legacy routes, Connect, /health. */
typedef struct orpc_legacy_serve orpc_legacy_serve;

/**
 * Verifies a bearer |token| (without "Bearer ").  Returns 0 with
 * |*identity| set (malloc'd, freed by the gateway; e.g.
 * "legacy-user:alice"); ORPC_EAGAIN when the token cannot be judged now
 * (the auth service is down: the request is answered 503); any other
 * negative code when the token is invalid or expired (401).  Runs on a
 * server worker thread and may block (unless declared verify_nonblocking,
 * when it runs on the IO thread and must not).
 */
typedef int (*orpc_token_verify_fn)(const char *token, char **identity,
                                    void *user_data);

/** Options of orpc_legacy_serve_new(); zero-initialise. */
typedef struct orpc_legacy_serve_opts {
    /** A custom verifier (wins over |auth_channel|), or NULL. */
    orpc_token_verify_fn verify;
    /** Passed to |verify|. */
    void *verify_user_data;
    /** The default verifier calls opsconductor.auth.v1.AuthService/Verify
     *  on this channel (a reference is taken).  With neither this nor
     *  |verify|, every route that needs a token answers 401. */
    orpc_channel *auth_channel;
    /** Positive verdicts are cached this long (0: 30000 ms; negative: no
     *  cache), never past the token's own expiry when it is a JWT with an
     *  "exp" claim.  At most 1024 tokens are cached. */
    int64_t verify_cache_ms;
    /** Timeout of each Verify call in ms (0: 5000). */
    int64_t verify_timeout_ms;
    /** Nonzero: no Connect protocol (POST /pkg.Service/Method is 404). */
    int no_connect;
    /** Nonzero: no legacy routes (only Connect and /health). */
    int no_legacy_routes;
    /** Nonzero: |verify| never blocks (no I/O, no wait), so it may run on
     *  the server's IO thread and a request it judges is answered there
     *  without a hand-off to a worker.  0: it runs on a worker, as the
     *  default verifier always does on a cache miss. */
    int verify_nonblocking;
} orpc_legacy_serve_opts;

/**
 * @function
 * Creates a gateway with |opts| (NULL: the defaults).
 *
 * Returns 0 with |*out| set; ORPC_EINVAL for a NULL |out|; ORPC_ENOMEM.
 *
 * Ownership: |opts| is copied; |opts|->auth_channel gets a reference of
 * its own (orpc_channel_ref), dropped by orpc_legacy_serve_free().  The
 * caller frees |*out| with orpc_legacy_serve_free() after the servers it
 * is installed on are freed.
 * Threads: any thread.
 */
ORPC_EXTERN int orpc_legacy_serve_new(orpc_legacy_serve **out,
                                      const orpc_legacy_serve_opts *opts);

/**
 * @function
 * Installs |ls| as |srv|'s gateway (orpc_server_set_gateway()) before
 * orpc_server_start(); the route table is built when the server starts,
 * from every service registered then.  One gateway may serve several
 * servers.
 *
 * Returns 0; ORPC_EINVAL for NULL arguments or a started server;
 * ORPC_ECONFIG (at orpc_server_start()) when two methods claim the same
 * verb and path template.
 *
 * Ownership: borrows |ls| until |srv| is freed.
 * Threads: the thread configuring |srv|.
 */
ORPC_EXTERN int orpc_legacy_serve_install(orpc_legacy_serve *ls,
                                          orpc_server *srv);

/**
 * @function
 * Frees |ls| (NULL: nothing), its token cache and its channel reference.
 *
 * Ownership: takes |ls|.
 * Threads: any thread, once no server it is installed on runs.
 */
ORPC_EXTERN void orpc_legacy_serve_free(orpc_legacy_serve *ls);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_COMPAT_SERVE_H */
