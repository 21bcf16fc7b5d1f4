/*
 * main.c — opsconductor-service: one executable for the five OpsConductor
 * services on orpc, picked with --service=NAME (auth, jobs, notification,
 * credentials, user).  See README.md for every flag.
 *
 *   opsconductor-service --service=jobs --listen=127.0.0.1:0 \
 *       --tls-cert=certs/jobs.pem --tls-key=certs/jobs.key \
 *       --tls-ca=certs/ca.pem --policy=policies/jobs.json \
 *       --admin=127.0.0.1:0 --db=/var/lib/opsconductor/jobs.db
 *
 * Every flag --foo-bar may also come from the environment as OPSC_FOO_BAR
 * (the flag wins).  Serving gRPC over mutual TLS is the default: a
 * certificate, its key and a CA bundle are required, and clients must
 * present a certificate the CA signed; --plaintext (h2c) is for local
 * experiments only.  Calls are logged as orpc's clients log them
 * (SERVICE_COMM_LOG_ENABLED, LOG_LEVEL, ORPC_CALL_LOG_FORMAT) and counted
 * on the admin listener's /metrics.
 *
 * Legacy JSON callers: the service's legacy routes are answered by orpc's
 * gateway on the gRPC port (HTTP/1.1 by ALPN) and, with --legacy-listen, on
 * a cleartext HTTP/1.1-only port (orpc_server_listen_legacy(), the
 * service's old port).  Their bearer tokens are judged by the auth service
 * (--auth-target) or, in auth, in process.  auth's legacy port is a second
 * server (plaintext, HTTP/1.1 only, no policy) with the same handlers and
 * gateway: POST /login carries no identity, and the mutual-TLS server
 * refuses every call without one (require_client_cert), so it could not be
 * answered on a legacy port of the main server.
 *
 * Prints "listening on <port>" (and "admin on <port>", "legacy on <port>")
 * on stdout once it serves.  Signals: SIGTERM and SIGINT are blocked
 * before any thread starts and taken by the main thread with sigwait() (no
 * handler runs): the
 * service's waits end (jobs: watchers UNAVAILABLE), every health status
 * turns NOT_SERVING, GOAWAY goes out, calls in flight get --grace-ms to
 * finish, and the process exits 0.  SIGHUP rereads the TLS files and the
 * authorization policy.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <orpc/observe.h>
#include <orpc/orpc.h>

#include "svc.h"

static const svc_kind *const kinds[] = {&svc_auth_kind, &svc_jobs_kind,
                                        &svc_notification_kind,
                                        &svc_credentials_kind, &svc_user_kind};

typedef enum { F_STR, F_INT, F_BOOL } flag_kind;

typedef struct flag {
    const char *name; /* --name; the variable is OPSC_NAME */
    flag_kind kind;
    size_t off; /* into svc_config */
    int64_t min, max;
    const char *help;
} flag;

#define S(field) offsetof(svc_config, field)
static const flag flags[] = {
    {"service", F_STR, S(service), 0, 0,
     "auth, jobs, notification, credentials or user"},
    {"listen", F_STR, S(listen), 0, 0,
     "gRPC address host:port (127.0.0.1:0; port 0 picks one)"},
    {"tls-cert", F_STR, S(tls_cert), 0, 0, "the service's certificate (PEM)"},
    {"tls-key", F_STR, S(tls_key), 0, 0, "its private key (PEM, mode 0600)"},
    {"tls-ca", F_STR, S(tls_ca), 0, 0,
     "CA bundle: clients must present a certificate it signed"},
    {"plaintext", F_BOOL, S(plaintext), 0, 1,
     "serve h2c without TLS (local experiments only)"},
    {"policy", F_STR, S(policy), 0, 0,
     "gRPC authorization policy (A43 JSON); reread on SIGHUP"},
    {"admin", F_STR, S(admin), 0, 0,
     "host:port of the plain-HTTP /metrics and /healthz listener"},
    {"db", F_STR, S(db), 0, 0, "jobs: the SQLite database file"},
    {"db-sync-full", F_BOOL, S(db_sync_full), 0, 1,
     "jobs: fsync every commit (synchronous=FULL)"},
    {"accounts", F_STR, S(accounts), 0, 0,
     "auth: the accounts file (name:password lines)"},
    {"identities", F_STR, S(identities), 0, 0,
     "auth, jobs: `account spiffe-id` lines"},
    {"token-ttl", F_INT, S(token_ttl_s), 1, 2592000,
     "auth: token lifetime in seconds (3600)"},
    {"max-tokens", F_INT, S(max_tokens), 1, 10000000,
     "auth: live tokens kept (100000)"},
    {"run-delay-ms", F_INT, S(run_delay_ms), 0, 3600000,
     "jobs: queued -> running after this long (300)"},
    {"finish-delay-ms", F_INT, S(finish_delay_ms), 0, 3600000,
     "jobs: running -> succeeded|failed after this long (700)"},
    {"max-watchers", F_INT, S(max_watchers), 1, 100000,
     "jobs: WatchJob calls open at once (256)"},
    {"max-watch-ms", F_INT, S(max_watch_ms), 1, 86400000,
     "jobs: the longest a WatchJob call lasts (3600000)"},
    {"max-batch", F_INT, S(max_batch), 1, 10000000,
     "notification: messages per SendBatch (10000)"},
    {"max-recorded", F_INT, S(max_recorded), 1, 10000000,
     "notification: sent notifications kept in memory (1000)"},
    {"grace-ms", F_INT, S(grace_ms), 0, 600000,
     "SIGTERM: how long calls in flight may finish (5000)"},
    {"die-with-parent", F_BOOL, S(die_with_parent), 0, 1,
     "tests: exit when the parent process dies"},
    {"legacy-listen", F_STR, S(legacy_listen), 0, 0,
     "host:port of a cleartext HTTP/1.1 port for legacy JSON callers"},
    {"auth-target", F_STR, S(auth_target), 0, 0,
     "host:port of the auth service (Verify of legacy tokens)"},
};
#undef S

static void usage(FILE *to)
{
    fprintf(to, "usage: opsconductor-service --service=NAME [flags]\n"
                "Each --flag may be given as OPSC_FLAG in the environment.\n");
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        fprintf(to, "  --%-16s %s\n", flags[i].name, flags[i].help);
}

/* Stores |value| into the field of |f|; returns 0 or -1 (says why). */
static int set_flag(svc_config *cfg, const flag *f, const char *value,
                    const char *from)
{
    char *p = (char *)cfg + f->off;
    if (f->kind == F_STR) {
        if (value[0] == '\0') {
            fprintf(stderr, "opsconductor-service: %s is empty\n", from);
            return -1;
        }
        *(const char **)p = value;
        return 0;
    }
    if (f->kind == F_BOOL) {
        if (strcmp(value, "1") == 0 || strcmp(value, "true") == 0) {
            *(int *)p = 1;
        } else if (strcmp(value, "0") == 0 || strcmp(value, "false") == 0) {
            *(int *)p = 0;
        } else {
            fprintf(stderr, "opsconductor-service: %s: want true or false\n",
                    from);
            return -1;
        }
        return 0;
    }
    char *end;
    errno = 0;
    long long n = strtoll(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || n < f->min ||
        n > f->max) {
        fprintf(stderr,
                "opsconductor-service: %s: want a whole number in "
                "%" PRId64 "..%" PRId64 "\n",
                from, f->min, f->max);
        return -1;
    }
    *(int64_t *)p = n;
    return 0;
}

static int parse(svc_config *cfg, int argc, char **argv)
{
    /* the environment first, then the flags over it */
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        char var[64] = "OPSC_";
        size_t k = 5;
        for (const char *c = flags[i].name; *c && k + 1 < sizeof(var); c++)
            var[k++] = *c == '-' ? '_' : (char)toupper((unsigned char)*c);
        var[k] = '\0';
        const char *v = getenv(var);
        if (v != NULL && v[0] != '\0' && set_flag(cfg, &flags[i], v, var) != 0)
            return -1;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "opsconductor-service: unexpected %s\n", arg);
            return -1;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const flag *f = NULL;
        for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
            if (strlen(flags[i].name) == len &&
                strncmp(flags[i].name, name, len) == 0)
                f = &flags[i];
        if (f == NULL) {
            fprintf(stderr, "opsconductor-service: unknown flag %s\n", arg);
            usage(stderr);
            return -1;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (value == NULL && f->kind == F_BOOL)
            value = "1";
        if (value == NULL) {
            if (a + 1 >= argc) {
                fprintf(stderr, "opsconductor-service: %s needs a value\n",
                        arg);
                return -1;
            }
            value = argv[++a];
        }
        if (set_flag(cfg, f, value, arg) != 0)
            return -1;
    }
    return 0;
}

/* orpc's own warnings and errors, as one line each. */
static void log_orpc(orpc_log_level level, const char *msg, void *ud)
{
    (void)ud;
    if (level > ORPC_LOG_WARN)
        return; /* connection comings and goings: the call log has calls */
    svc_log("%s: %s",
            level == ORPC_LOG_ERROR  ? "error"
            : level == ORPC_LOG_WARN ? "warning"
                                     : "info",
            msg);
}

/*
 * The legacy port of a legacy_anonymous service (auth): a cleartext
 * HTTP/1.1-only server with the service's handlers and gateway, the
 * logging, metrics and limits of |main_opts|, and neither client
 * certificates nor a policy (its callers have no certificate, and a login
 * no token).  Returns 0 with |*out| listening, or an ORPC_E* code with
 * |why| set.
 */
static int legacy_server(orpc_server **out, const svc_kind *kind, void *state,
                         const orpc_server_opts *main_opts, const char *address,
                         int *port, orpc_error_detail *why)
{
    orpc_server_opts o = *main_opts;
    memset(&o.tls, 0, sizeof(o.tls));
    o.plaintext = 1;
    o.authz_policy_file = NULL;
    o.admin_address = NULL; /* the main server's admin listener has it all */
    int rc = orpc_server_new(out, &o, NULL, why);
    if (rc == 0 && (rc = kind->register_(*out, state)) != 0)
        snprintf(why->message, sizeof(why->message), "register: %s",
                 orpc_strerror(rc));
    if (rc == 0 && (rc = kind->install_legacy(*out, state)) != 0)
        snprintf(why->message, sizeof(why->message), "legacy routes: %s",
                 orpc_strerror(rc));
    if (rc == 0)
        rc = orpc_server_listen_legacy(*out, address, port, why);
    if (rc != 0) {
        orpc_server_free(*out);
        *out = NULL;
    }
    return rc;
}

int main(int argc, char **argv)
{
    svc_config cfg = {
        .listen = "127.0.0.1:0",
        .token_ttl_s = 3600,
        .max_tokens = 100000,
        .run_delay_ms = 300,
        .finish_delay_ms = 700,
        .max_watchers = 256,
        .max_watch_ms = 3600000,
        .max_batch = 10000,
        .max_recorded = 1000,
        .grace_ms = 5000,
    };
    if (parse(&cfg, argc, argv) != 0)
        return 2;
    const svc_kind *kind = NULL;
    for (size_t i = 0; cfg.service && i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(kinds[i]->name, cfg.service) == 0)
            kind = kinds[i];
    if (kind == NULL) {
        fprintf(stderr, "opsconductor-service: --service must be auth, jobs, "
                        "notification, credentials or user\n");
        return 2;
    }
    svc_log_set_name(kind->name);
    if (!cfg.plaintext &&
        (cfg.tls_cert == NULL || cfg.tls_key == NULL || cfg.tls_ca == NULL)) {
        svc_log("mutual TLS needs --tls-cert, --tls-key and --tls-ca "
                "(or --plaintext for a local experiment)");
        return 2;
    }
    if (cfg.plaintext && (cfg.tls_cert || cfg.tls_key || cfg.tls_ca)) {
        svc_log("--plaintext goes without --tls-*");
        return 2;
    }
#ifdef __linux__
    if (cfg.die_with_parent) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1)
            return 1; /* the parent is already gone */
    }
#endif
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0) {
        svc_log("cannot block SIGTERM");
        return 1;
    }

    orpc_metrics *metrics = NULL;
    orpc_interceptor *call_log = NULL;
    orpc_call_log_opts lo = {0};
    int log_calls = 0;
    orpc_error_detail why = {0};
    if (orpc_metrics_new(&metrics, NULL, NULL) != 0) {
        svc_log("out of memory");
        return 1;
    }
    if (orpc_call_log_opts_from_env(&lo, &log_calls, &why) != 0) {
        svc_log("%s", why.message);
        orpc_metrics_unref(metrics);
        return 2;
    }
    if (log_calls && orpc_call_log_interceptor_new(&call_log, &lo) != 0) {
        svc_log("out of memory");
        orpc_metrics_unref(metrics);
        return 1;
    }

    void *state = NULL;
    char err[512] = "";
    if (kind->open(&state, &cfg, metrics, err, sizeof(err)) != 0) {
        svc_log("%s", err);
        orpc_interceptor_unref(call_log);
        orpc_metrics_unref(metrics);
        return 1;
    }

    orpc_server_opts o = {
        .plaintext = cfg.plaintext,
        .authz_policy_file = cfg.policy,
        .log = log_orpc,
        .metrics = metrics,
        .admin_address = cfg.admin,
        .interceptors = call_log ? &call_log : NULL,
        .n_interceptors = call_log ? 1 : 0,
    };
    if (!cfg.plaintext) {
        o.tls.cert_file = cfg.tls_cert;
        o.tls.key_file = cfg.tls_key;
        o.tls.ca_file = cfg.tls_ca;
        o.tls.require_client_cert = 1;
    }
    orpc_server *srv = NULL;
    int port = 0;
    int rc = orpc_server_new(&srv, &o, NULL, &why);
    orpc_interceptor_unref(call_log); /* the server holds its own */
    orpc_metrics_unref(metrics);
    if (rc == 0 && (rc = kind->register_(srv, state)) != 0)
        snprintf(why.message, sizeof(why.message), "register: %s",
                 orpc_strerror(rc));
    if (rc == 0 && (rc = kind->install_legacy(srv, state)) != 0)
        snprintf(why.message, sizeof(why.message), "legacy routes: %s",
                 orpc_strerror(rc));
    if (rc == 0)
        rc = orpc_server_listen(srv, cfg.listen, &port, &why);
    orpc_server *lsrv = NULL; /* auth's legacy port: see the top comment */
    int lport = 0;
    if (rc == 0 && cfg.legacy_listen != NULL && kind->legacy_anonymous)
        rc = legacy_server(&lsrv, kind, state, &o, cfg.legacy_listen, &lport,
                           &why);
    else if (rc == 0 && cfg.legacy_listen != NULL)
        rc = orpc_server_listen_legacy(srv, cfg.legacy_listen, &lport, &why);
    if (rc == 0 && (rc = orpc_server_start(srv)) != 0)
        snprintf(why.message, sizeof(why.message), "start: %s",
                 orpc_strerror(rc));
    if (rc == 0 && lsrv != NULL && (rc = orpc_server_start(lsrv)) != 0)
        snprintf(why.message, sizeof(why.message), "start: %s",
                 orpc_strerror(rc));
    if (rc != 0) {
        svc_log("%s", why.message);
        orpc_server_free(lsrv);
        orpc_server_free(srv);
        kind->close(state);
        return 1;
    }
    if (cfg.admin != NULL)
        printf("admin on %d\n", orpc_server_admin_port(srv));
    if (cfg.legacy_listen != NULL)
        printf("legacy on %d\n", lport);
    printf("listening on %d\n", port);
    fflush(stdout);
    svc_log("serving %s on port %d (%s%s)", cfg.service, port,
            cfg.plaintext ? "h2c" : "mutual TLS",
            cfg.policy ? ", authorization policy" : "");
    if (cfg.legacy_listen != NULL)
        svc_log("legacy JSON routes on port %d (cleartext HTTP/1.1%s)", lport,
                lsrv ? ", no client certificates or policy" : "");

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            if (orpc_server_reload(srv, &why) == 0)
                svc_log("reloaded the TLS files and the policy");
            else
                svc_log("reload failed, keeping the previous: %s", why.message);
            continue;
        }
        svc_log("signal %d: draining", sig);
        break;
    }
    if (kind->stopping != NULL)
        kind->stopping(state);
    int lrc = lsrv ? orpc_server_shutdown(lsrv, cfg.grace_ms) : 0;
    rc = orpc_server_shutdown(srv, cfg.grace_ms);
    if (lrc == 0 && lsrv != NULL)
        lrc = orpc_server_wait(lsrv);
    if (rc == 0)
        rc = orpc_server_wait(srv);
    if (rc == 0)
        rc = lrc;
    orpc_server_free(lsrv);
    orpc_server_free(srv);
    kind->close(state); /* the gateway too: after every server it served */
    if (rc != 0) {
        svc_log("shutdown: %s", orpc_strerror(rc));
        return 1;
    }
    svc_log("stopped");
    return 0;
}
