/*
 * tokens.h — the legacy service-token flow (internal): log in to the auth
 * service with a calling identity's own credentials, cache the bearer
 * token, refresh it with a single flight, and make authenticated calls that
 * refresh and retry once on a 401 (LEGACY_API.md, "Service tokens").
 *
 * Unlike today's Python clients there is no default account: an identity
 * without explicit credentials is refused.  No message ever contains the
 * password or a token.
 *
 * Thread-safety: orpc__tokens_get() and orpc__legacy_call_authed() from any
 * thread, concurrently; orpc__tokens_new()/_free() once each, _free() only
 * when no call is using the object.
 */
#ifndef ORPC_COMPAT_TOKENS_H
#define ORPC_COMPAT_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include <orpc/status.h>

#include "legacy_http.h"

/** Refresh this long before a token's expires_in runs out. */
#define ORPC__TOKEN_REFRESH_MARGIN_S 60
/** expires_in when the login reply has none. */
#define ORPC__TOKEN_DEFAULT_TTL_S 3600

/** The token cache of one calling identity. */
typedef struct orpc__tokens orpc__tokens;

/*
 * A token cache that logs in with |username|/|password| through |auth|
 * (the auth service's pool, which must outlive the cache).
 *
 * Returns 0 with |*out| set; ORPC_EINVAL (|out| or |auth| NULL);
 * ORPC_ECONFIG (|username| or |password| NULL or empty, or a control
 * character in |username|): there is no default account, ever;
 * ORPC_ENOMEM; ORPC_ESYS.  Copies the credentials; borrows |auth|.
 */
int orpc__tokens_new(orpc__tokens **out, orpc__legacy_http *auth,
                     const char *username, const char *password);

/* Frees |t| and wipes the credentials and token it holds.  NULL is a
 * no-op. */
void orpc__tokens_free(orpc__tokens *t);

/*
 * A valid token, in |*token| (malloc'd; the caller frees it).
 *
 * The cached token is returned until ORPC__TOKEN_REFRESH_MARGIN_S before
 * its expires_in (absent: 3600) runs out; then POST /login
 * {"username","password"} (no Authorization header) fetches a new one, so
 * with expires_in <= 60 every call logs in.  Concurrent callers share one
 * login in flight and its outcome, success or failure (a waiter whose own
 * deadline has not passed tries again itself when the login it waited for
 * ran out of its caller's time).  |force| discards the cached token first,
 * for a caller that got a 401 with |stale| — unless the cached token is no
 * longer |stale| (another caller refreshed it meanwhile), in which case the
 * new one is returned; |stale| NULL always discards.  |timeout_ms| (0: none)
 * bounds the wait and the login.
 *
 * Returns OK, or: UNAUTHENTICATED "login refused for <username>" (401, or
 * a 200 without access_token); the transport's status or the mapped HTTP
 * status of the login, prefixed "login for <username>: "; INTERNAL (a
 * reply that is not a JSON object, or a token unfit for a header);
 * DEADLINE_EXCEEDED; INVALID_ARGUMENT.  The password never appears.
 *
 * Thread-safety: any thread.
 */
orpc_status orpc__tokens_get(orpc__tokens *t, int force, const char *stale,
                             int64_t timeout_ms, char **token);

/*
 * One authenticated call: as orpc__legacy_http_do() on |h| with
 * "Authorization: Bearer <token>" added to |headers| (which must not hold
 * one), and when the reply is a 401, one forced refresh
 * (orpc__tokens_get(t, 1, <that token>, ...)) and one retry; the reply of
 * the retry is the result, whatever it is.  |timeout_ms| (0: none) bounds
 * everything: the token, the call, the refresh and the retry.
 *
 * Returns as orpc__legacy_http_do(), or the status of orpc__tokens_get()
 * (with |*reply| zeroed).  Borrows every argument for the call.
 */
orpc_status orpc__legacy_call_authed(orpc__legacy_http *h, orpc__tokens *t,
                                     const char *method,
                                     const char *path_and_query,
                                     const char *const *headers,
                                     size_t n_headers, const char *body,
                                     size_t body_len, int64_t timeout_ms,
                                     orpc__http_reply *reply);

#endif /* ORPC_COMPAT_TOKENS_H */
