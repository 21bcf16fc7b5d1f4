/*
 * authz.h — internal: the gRPC authorization policy engine (gRFC A43).
 *
 * Owns the reading of an A43 policy (JSON: a name, optional deny_rules,
 * required allow_rules) into an immutable compiled form, and the per-RPC
 * decision.  It knows nothing of connections or TLS: the server fills in an
 * orpc__authz_peer from the handshake and passes the request's path and
 * headers.  The server keeps the last good policy when a reload fails, so
 * parsing never changes anything it was not given.
 *
 * Decision (A43): a request matching any deny rule is denied; otherwise one
 * matching any allow rule is allowed; otherwise it is denied.  A rule
 * matches when its source (principals, OR'd) and its request (paths, OR'd;
 * headers, AND'd, each header's values OR'd) both match; a missing or empty
 * list does not constrain.  Patterns: "abc" exact, "abc*" prefix, "*abc"
 * suffix, "*" any non-empty value.
 *
 * Thread-safety: a compiled policy is never modified after
 * orpc__authz_parse() returns it, so orpc__authz_check() may run on any
 * number of threads at once; orpc__authz_free() must not race with them.
 */
#ifndef ORPC_AUTHZ_H
#define ORPC_AUTHZ_H

#include <stddef.h>

#include <orpc/metadata.h>

/* Limits on what a policy may hold; beyond them parsing fails. */
#define ORPC__AUTHZ_MAX_BYTES (1024 * 1024) /* policy text */
#define ORPC__AUTHZ_MAX_RULES 10000         /* deny + allow rules together */
#define ORPC__AUTHZ_MAX_STRING 4096         /* bytes in any string */

/* A compiled policy. */
typedef struct orpc__authz orpc__authz;

/*
 * Parses and validates the |len| bytes at |json| (need not be
 * NUL-terminated).  Unknown fields, wrong types, duplicate object keys,
 * duplicate rule names within a list, strings holding NUL and anything over
 * the limits above are errors: a policy is never half-understood.  So is a
 * header key that could never match: one A43 forbids (Host, hop-by-hop,
 * pseudo-headers, grpc-*) and any other the server does not present to the
 * policy, which sees only the request's application metadata (the keys
 * orpc_metadata_key_valid() accepts, less content-length and
 * accept-encoding; docs/authz.md lists them).
 *
 * Returns 0 and sets |*out|; ORPC_ECONFIG, with a message in |err| such as
 * `allow_rules[1] "ops": request.paths[0]: not a string` (the rule by its
 * name, or by index alone when it has no usable name); ORPC_EINVAL (NULL
 * |json| or |out|); ORPC_ENOMEM.  |err| may be NULL or |errlen| 0; the
 * message is truncated to fit and always NUL-terminated.
 * Ownership: copies what it needs from |json|; free |*out| with
 * orpc__authz_free().
 */
int orpc__authz_parse(const char *json, size_t len, orpc__authz **out,
                      char *err, size_t errlen);

/*
 * As orpc__authz_parse() on the contents of the file at |path|, which must
 * be a regular file of at most ORPC__AUTHZ_MAX_BYTES.  A file that cannot
 * be opened or read, a directory, or a file too large gives ORPC_ECONFIG
 * with a message naming |path|.  Never blocks on a FIFO.
 */
int orpc__authz_load_file(const char *path, orpc__authz **out, char *err,
                          size_t errlen);

/* The same with the policy (and the buffers used to build it) allocated
 * with |mem| (NULL: libc); free it with orpc__authz_free_mem() and the same
 * |mem|.  jansson's own allocations are not among them. */
int orpc__authz_parse_mem(const char *json, size_t len, const orpc_mem *mem,
                          orpc__authz **out, char *err, size_t errlen);
int orpc__authz_load_file_mem(const char *path, const orpc_mem *mem,
                              orpc__authz **out, char *err, size_t errlen);

/* Frees |a|.  NULL is a no-op. */
void orpc__authz_free(orpc__authz *a);
void orpc__authz_free_mem(const orpc_mem *mem, orpc__authz *a);

/* The policy's "name".  Borrowed until orpc__authz_free(). */
const char *orpc__authz_name(const orpc__authz *a);

/* What the transport knows about the peer.  Borrowed for one check. */
typedef struct orpc__authz_peer {
    int tls;      /* connection is TLS */
    int has_cert; /* the peer presented a verified certificate */
    const char *const *uri_sans;
    size_t n_uri_sans;
    const char *const *dns_sans;
    size_t n_dns_sans;
    const char *subject; /* RFC 2253 subject, or NULL */
} orpc__authz_peer;

/*
 * Decides one RPC to |path| ("/pkg.Service/Method") with request |headers|
 * (may be NULL: no headers) from |peer| (NULL: a peer without TLS).
 * A header that appears several times is matched as its values joined with
 * "," (A43); a "-bin" header's values are its decoded bytes.  Keys are
 * compared without regard to ASCII case.
 *
 * Returns 1 to allow, 0 to deny (also for a NULL |a|).  |*rule|, when |rule|
 * is not NULL, gets the name of the deciding rule (a deny rule's name on a
 * deny by rule, an allow rule's on an allow), or NULL for the default deny.
 * Ownership: the name is borrowed until orpc__authz_free().  Never
 * allocates.
 */
int orpc__authz_check(const orpc__authz *a, const orpc__authz_peer *peer,
                      const char *path, const orpc_metadata *headers,
                      const char **rule);

#endif /* ORPC_AUTHZ_H */
