/*
 * legacy_http.h — the compat layer's HTTP/1.1 client for the legacy
 * JSON/HTTP services (internal).
 *
 * One orpc__legacy_http per base URL ("http://jobs-service:3006"): a pool of
 * keep-alive connections driven by one libcurl multi handle and one worker
 * thread.  Calls block their caller and may come from any number of threads
 * at once.  Transport failures come back as an orpc_status (UNAVAILABLE,
 * DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ...); any HTTP reply, 4xx and 5xx
 * included, is a transport success whose status orpc__legacy_status() maps
 * to a gRPC code (/work/shared/DESIGN.md, "Compat and migration").
 *
 * Secrets: no function here logs, and no status message ever contains a
 * request header or a request body (bearer tokens and passwords travel
 * there).
 *
 * Thread-safety: orpc__legacy_http_do() from any thread, concurrently;
 * orpc__legacy_http_new()/_free() once each, and _free() only when no call
 * is in progress.  The reply and status helpers work on their arguments.
 */
#ifndef ORPC_COMPAT_LEGACY_HTTP_H
#define ORPC_COMPAT_LEGACY_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <orpc/status.h>

/** A connection pool to one legacy base URL. */
typedef struct orpc__legacy_http orpc__legacy_http;

/** Defaults (LEGACY_API.md, "Client settings in use today"). */
#define ORPC__HTTP_DEFAULT_MAX_CONNECTIONS 100
#define ORPC__HTTP_DEFAULT_MAX_KEEPALIVE 20
#define ORPC__HTTP_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define ORPC__HTTP_DEFAULT_MAX_REPLY_BYTES ((size_t)4 << 20)
#define ORPC__HTTP_DEFAULT_USER_AGENT "OpsConductor-orpc/1.0.0"

/** Pool options; a zero (or NULL) field takes its default. */
typedef struct orpc__http_opts {
    /** Most connections open at once (CURLMOPT_MAX_TOTAL_CONNECTIONS);
     *  requests beyond it wait for a free one.  Default 100. */
    long max_connections;
    /** Most idle connections kept for reuse (CURLMOPT_MAXCONNECTS).
     *  Default 20. */
    long max_keepalive;
    /** Connect timeout in ms; a connect that times out is UNAVAILABLE.
     *  Default 10000. */
    int64_t connect_timeout_ms;
    /** Largest reply body accepted; a larger one is RESOURCE_EXHAUSTED and
     *  is not read past the limit.  Default 4 MiB. */
    size_t max_reply_bytes;
    /** PEM CA bundle for https:// (otherwise the system's store). */
    const char *ca_file;
    /** User-Agent header.  Default "OpsConductor-orpc/1.0.0". */
    const char *user_agent;
} orpc__http_opts;

/*
 * A pool for |base_url| ("http://host:port" or "https://host:port", with an
 * optional path prefix; a trailing '/' is dropped).  |o| may be NULL.
 *
 * Returns 0 with |*out| set; ORPC_EINVAL (NULL argument); ORPC_ECONFIG (not
 * an http(s) URL, credentials in the URL, an unreadable |ca_file|, a
 * negative option); ORPC_ENOMEM; ORPC_ESYS (libcurl or the worker thread
 * could not start).  Copies |base_url| and the strings of |o|.
 */
int orpc__legacy_http_new(orpc__legacy_http **out, const char *base_url,
                          const orpc__http_opts *o);

/*
 * Stops the worker, closes the connections and frees |h|.  No call may be in
 * progress (or start) on |h|.  NULL is a no-op.
 */
void orpc__legacy_http_free(orpc__legacy_http *h);

/** One HTTP reply. */
typedef struct orpc__http_reply {
    /** HTTP status (200, 404, ...). */
    long status;
    /** The body, NUL-terminated (the NUL is not counted in |len|); never
     *  NULL after a successful orpc__legacy_http_do().  Owned. */
    char *body;
    /** Body length in bytes. */
    size_t len;
    /** The Content-Type header, or NULL when there was none.  Owned. */
    char *content_type;
    /** The Grpc-Status header an orpc gateway adds to its errors (the
     *  exact code, where HTTP has one status for several), or 0. */
    int grpc_status;
} orpc__http_reply;

/* Frees what |r| owns and zeroes it.  NULL is a no-op. */
void orpc__http_reply_clear(orpc__http_reply *r);

/*
 * Sends one request on |h|'s pool and waits for the reply.
 *
 * |method| is an HTTP method token ("GET", "POST", ...); |path_and_query|
 * starts with '/' and is already percent-encoded (printable ASCII only).
 * |headers| are |n_headers| "Name: value" lines sent besides User-Agent and,
 * when |body| is not NULL, "Content-Type: application/json" (a line of the
 * same name replaces either).  |body| (|body_len| bytes) may be NULL: no
 * body.  |timeout_ms| > 0 is the deadline of the whole request, time spent
 * waiting for a pooled connection included; 0 means none.  Redirects are not
 * followed.
 *
 * Returns OK with |*reply| filled in (any HTTP status), or:
 *   UNAVAILABLE        refused, reset or closed without a (whole) reply,
 *                      connect timeout, name resolution, TLS failures
 *   DEADLINE_EXCEEDED  |timeout_ms| ran out
 *   RESOURCE_EXHAUSTED the reply is over max_reply_bytes, or no memory
 *   INVALID_ARGUMENT   a malformed |method|, |path_and_query| or header
 *   INTERNAL           the peer does not speak HTTP/1.x
 *   CANCELLED          |h| is being freed
 * and |*reply| zeroed.  |*reply| is overwritten: clear a previous reply
 * first.  Borrows every argument for the duration of the call.
 *
 * Thread-safety: any thread, any number at once.
 */
orpc_status orpc__legacy_http_do(orpc__legacy_http *h, const char *method,
                                 const char *path_and_query,
                                 const char *const *headers, size_t n_headers,
                                 const char *body, size_t body_len,
                                 int64_t timeout_ms, orpc__http_reply *reply);

/*
 * The gRPC status a legacy reply stands for (DESIGN.md's table):
 *   2xx OK; 400, 422 INVALID_ARGUMENT; 401 UNAUTHENTICATED;
 *   403 PERMISSION_DENIED; 404 NOT_FOUND when the body is the service's own
 *   JSON ({"detail": ...}), UNIMPLEMENTED otherwise (no such route: a proxy
 *   or a service without it); 405 UNIMPLEMENTED (the route lacks the
 *   method); 408 DEADLINE_EXCEEDED; 409 ABORTED; 413 and 429
 *   RESOURCE_EXHAUSTED; 499 CANCELLED; any other 4xx FAILED_PRECONDITION;
 *   500 INTERNAL; 501 UNIMPLEMENTED; 502, 503 UNAVAILABLE;
 *   504 DEADLINE_EXCEEDED; any other 5xx, 1xx or 3xx (redirects are not
 *   followed) UNKNOWN.
 * The message is FastAPI's "detail": a string as it is, a validation list
 * as "body.payload.subject: Field required; path.job_id: ..." (at most 8
 * items, 1 KiB), anything else as compact JSON; without one, "HTTP <status>".
 *
 * Ownership: the status is allocated; clear it with orpc_status_clear().
 */
orpc_status orpc__legacy_status(const orpc__http_reply *r);

#endif /* ORPC_COMPAT_LEGACY_HTTP_H */
