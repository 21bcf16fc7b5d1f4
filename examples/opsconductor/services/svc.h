/*
 * svc.h — what the five OpsConductor services of opsconductor-service share:
 * the configuration read from flags and the environment, the table of
 * services main() picks one from, and the helpers every handler uses
 * (JSON objects into google.protobuf.Struct, the legacy services' time
 * formats, the caller's identity name).
 *
 * Threads: the configuration is written by main() before the server starts
 * and only read afterwards; the helpers work on their arguments only.
 */
#ifndef OPSC_SVC_H
#define OPSC_SVC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <orpc/compat/serve.h>
#include <orpc/orpc.h>

#include "google/protobuf/struct.orpc.h"

/** Everything the flags and the environment say (README.md, "Flags"). */
typedef struct svc_config {
    const char *service;       /* auth, jobs, notification, credentials, user */
    const char *listen;        /* host:port; port 0 picks one */
    const char *tls_cert;      /* the service's certificate (PEM) */
    const char *tls_key;       /* its private key */
    const char *tls_ca;        /* CA bundle: client certificates are required */
    int plaintext;             /* h2c, for local experiments only */
    const char *policy;        /* A43 authorization policy (JSON file) */
    const char *admin;         /* host:port of the /metrics listener, or NULL */
    const char *db;            /* jobs: the SQLite database */
    int db_sync_full;          /* jobs: PRAGMA synchronous = FULL */
    const char *accounts;      /* auth: `name:password` lines */
    const char *identities;    /* auth, jobs: `account spiffe-id` lines */
    int64_t token_ttl_s;       /* auth: lifetime of a token */
    int64_t max_tokens;        /* auth: live tokens kept */
    int64_t run_delay_ms;      /* jobs: queued -> running */
    int64_t finish_delay_ms;   /* jobs: running -> succeeded | failed */
    int64_t max_watchers;      /* jobs: WatchJob calls open at once */
    int64_t max_watch_ms;      /* jobs: longest a WatchJob call lasts */
    int64_t max_batch;         /* notification: messages per SendBatch */
    int64_t max_recorded;      /* notification: sent notifications kept */
    int64_t grace_ms;          /* SIGTERM: how long calls may finish */
    const char *legacy_listen; /* host:port of the cleartext HTTP/1.1 port */
    const char *auth_target;   /* host:port of auth: legacy tokens' Verify */
    int die_with_parent;       /* tests: SIGKILL when the parent dies */
} svc_config;

/** The map between accounts and SPIFFE IDs (identities file). */
typedef struct svc_identities {
    size_t n;
    char **account;
    char **spiffe;
} svc_identities;

/**
 * One service of the executable.  |open| makes its state (NULL |err| never;
 * |err| gets one line on failure), |register_| puts its gRPC handlers on
 * the server, |install_legacy| installs the gateway (orpc/compat/serve.h)
 * that answers its legacy JSON routes on the same port (see each
 * service's file; it may be called for two servers, the gateway serving
 * both), |stopping| is called on SIGTERM before the server drains (ends
 * waits), |close| frees the state (and the gateway) after the servers are
 * freed.  |legacy_anonymous|: the service has a route that needs no token
 * (auth's POST /login), so its --legacy-listen port is a server of its own
 * without client certificates (main.c says why).
 */
typedef struct svc_kind {
    const char *name;
    int (*open)(void **state, const svc_config *cfg, orpc_metrics *metrics,
                char *err, size_t errlen);
    int (*register_)(orpc_server *srv, void *state);
    int (*install_legacy)(orpc_server *srv, void *state);
    void (*stopping)(void *state);
    void (*close)(void *state);
    int legacy_anonymous;
} svc_kind;

extern const svc_kind svc_auth_kind;
extern const svc_kind svc_jobs_kind;
extern const svc_kind svc_notification_kind;
extern const svc_kind svc_credentials_kind;
extern const svc_kind svc_user_kind;

/** Writes one line "opsconductor-<svc>: <text>" to stderr. */
void svc_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** The service name svc_log() prefixes (set once by main()). */
void svc_log_set_name(const char *name);

/**
 * Converts |obj| (a JSON object; borrowed) into a google.protobuf.Struct
 * allocated in the call's arena.  Returns 0 or a negative ORPC_E* code.
 */
int svc_struct(orpc_ctx *ctx, const json_t *obj,
               Google__Protobuf__Struct **out);

/** Status for a failed svc_struct(): RESOURCE_EXHAUSTED or INTERNAL. */
orpc_status svc_struct_failed(int rc);

/** The current UTC time as the legacy services print it:
 *  2026-12-07T01:02:03.456789Z (Python's "%Y-%m-%dT%H:%M:%S.%fZ"). */
void svc_now_iso(char out[40]);

/** 2024-01-01T00:00:00Z plus |hours|, as "%Y-%m-%dT%H:%M:%SZ" (the
 *  legacy fixture's iso()). */
void svc_iso_hours(int64_t hours, char out[40]);

/** Parses what svc_now_iso() or svc_iso_hours() wrote into seconds and
 *  nanoseconds since the epoch; returns 0 or -1. */
int svc_parse_iso(const char *s, int64_t *sec, int32_t *nanos);

/** Wall-clock milliseconds since the epoch. */
int64_t svc_wall_ms(void);

/**
 * Loads an identities file: `account spiffe-id` lines, `#` comments.
 * Returns 0, or -1 with one line in |err|.  NULL |path|: an empty map.
 */
int svc_identities_load(svc_identities *ids, const char *path, char *err,
                        size_t errlen);

/** Frees what svc_identities_load() made (a zeroed map is fine). */
void svc_identities_free(svc_identities *ids);

/** The SPIFFE ID |account| belongs to, or NULL when the map has none. */
const char *svc_identities_spiffe(const svc_identities *ids,
                                  const char *account);

/**
 * The account name of the caller of |ctx| (the name a legacy caller's
 * token carries): the account |ids| maps its SPIFFE ID to; else, for
 * spiffe://TD/service/NAME, "NAME-service"; else the SPIFFE ID itself;
 * NULL for a caller without one (no mutual TLS).  Written into |buf|.
 */
const char *svc_caller_name(orpc_ctx *ctx, const svc_identities *ids, char *buf,
                            size_t cap);

/**
 * The legacy gateway of a service whose legacy callers' tokens the auth
 * service judges (jobs, notification, credentials, user): with
 * |cfg|->auth_target, AuthService/Verify over a channel to it with the
 * service's own certificate (mutual TLS; h2c with --plaintext); without,
 * a verifier that cannot judge, so every route needing a token answers
 * 503 "Auth service unavailable" (and a warning says so once).  Returns 0,
 * or -1 with one line in |err|.
 */
int svc_legacy_new(orpc_legacy_serve **out, const svc_config *cfg, char *err,
                   size_t errlen);

/** Bumps the application counter |name|{label=value} by one (ignores
 *  errors: counting never fails a call). */
void svc_count(orpc_metrics *m, const char *name, const char *help,
               const char *label, const char *value);

#endif /* OPSC_SVC_H */
