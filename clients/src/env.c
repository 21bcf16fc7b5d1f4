/*
 * env.c — the OpsConductor service clients, configured from the environment
 * (orpc/clients.h).
 *
 * Shape: an orpc_env is a snapshot of the process-wide variables (identity,
 * TLS files, plaintext, legacy CA bundle), checked once when it is made,
 * plus the two things a process's clients share: one reference to the
 * routing table (ORPC_ROUTES_FILE and ORPC_ROUTE_*, reloaded on SIGHUP by
 * its watcher) and a list of gRPC channels, one per distinct target,
 * server-identity settings and service config file.
 * orpc_env_client_new() reads the service's own variables (PREFIX_GRPC_*),
 * finds or makes its channel, and hands table and channel to
 * orpc_routed_client_new(), which does the routing, the legacy transport
 * and the service tokens.  This file adds no behaviour to calls: it only
 * turns variables into those settings (a service config file into the
 * channel's service_config), and bad variables into ORPC_ECONFIG with a
 * message that names them.
 *
 * Ownership: everything shared is reference-counted.  The env holds one
 * reference to the table and one to each channel it made; every routed
 * client takes its own.  orpc_env_free() drops the env's, so clients
 * outlive their env, and the table's watcher stops with the last client.
 * The call log's interceptors (SERVICE_COMM_LOG_ENABLED) are shared the
 * same way by every channel and routed client the env makes.
 * Nothing is global: two envs in one process are independent.
 *
 * Locking theory: |lock| guards |channels| (the list and its entries), the
 * only part of an env that changes after orpc_env_new().  It is held while
 * a channel is looked up or made (orpc_channel_new() does not connect, so
 * the lock is never held across network waits) and never while calling
 * into the router.  Every other field is written before orpc_env_new()
 * returns and only read afterwards.
 *
 * Untrusted input: every variable is length-bounded and checked for
 * control characters before use; messages quote paths and targets
 * (truncated), never URLs (they may carry user info) or credentials.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <orpc/channel.h>
#include <orpc/clients.h>
#include <orpc/error.h>
#include <orpc/tls.h>

#include "common/log.h"

/* Bounds of what the environment may hold, in bytes. */
#define IDENTITY_MAX 64
#define FILE_MAX 4095 /* a file path */
#define URL_MAX 2048
#define TARGET_MAX 512
#define SERVER_NAME_MAX 253
#define SECRET_MAX 1024                  /* a username or password */
#define PREFIX_MAX 96                    /* a service's variable prefix */
#define SHOW_MAX 96                      /* of a value quoted in a message */
#define SERVICE_CONFIG_MAX (1024 * 1024) /* a service config file */

typedef struct env_channel {
    struct env_channel *next;
    char *key; /* target, expected SPIFFE ID, server name and service
                  config file, '\n' between them */
    orpc_channel *ch;
} env_channel;

struct orpc_env {
    char *identity; /* NULL when none was given */
    char *tls_ca;   /* NULL when unset, and so on */
    char *tls_cert;
    char *tls_key;
    int plaintext;
    char *legacy_ca;
    orpc_routes *routes;
    orpc_log_fn log;
    void *log_ud;
    pthread_mutex_t lock; /* guards |channels| */
    env_channel *channels;
    /* with the call log on (SERVICE_COMM_LOG_ENABLED): a trace interceptor
     * that starts client traces (both sides' lines share the trace id),
     * then the log, run by every channel and routed client the env makes;
     * none when off */
    orpc_interceptor *ics[2];
    size_t n_ics;
};

/* ---- messages and variables ---- */

static int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
    ORPC_PRINTF(4, 5);

/* Writes the message to |err| (when there is room) and returns |rc|. */
static int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* The value of variable |name| in |*out|: NULL when unset or empty.
 * ORPC_ECONFIG when it is over |max| bytes or holds a control character
 * (or, unless |spaces|, a space). */
static int env_get(const char *name, size_t max, int spaces, const char **out,
                   char *err, size_t errlen)
{
    const char *v = getenv(name);
    *out = NULL;
    if (v == NULL || *v == '\0')
        return 0;
    size_t n = strnlen(v, max + 1);
    if (n > max)
        return errf(err, errlen, ORPC_ECONFIG, "%s: longer than %zu bytes",
                    name, max);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f)
            return errf(err, errlen, ORPC_ECONFIG,
                        "%s: contains a control character", name);
        if (c == ' ' && !spaces)
            return errf(err, errlen, ORPC_ECONFIG, "%s: contains a space",
                        name);
    }
    *out = v;
    return 0;
}

/* |path| (from variable |name|) is a file this process can read. */
static int check_readable(const char *name, const char *path, char *err,
                          size_t errlen)
{
    if (access(path, R_OK) == 0)
        return 0;
    return errf(err, errlen, ORPC_ECONFIG, "%s=%.*s: %s", name, SHOW_MAX, path,
                errno == ENOENT ? "no such file" : "cannot be read");
}

static int dup_opt(const char *s, char **out)
{
    *out = NULL;
    if (s == NULL)
        return 0;
    *out = strdup(s);
    return *out == NULL ? ORPC_ENOMEM : 0;
}

/* 1..IDENTITY_MAX bytes of [A-Za-z0-9_-]: it becomes part of variable
 * names. */
static int check_identity(const char *from, const char *id, char *err,
                          size_t errlen)
{
    size_t n = strnlen(id, IDENTITY_MAX + 1);
    if (n == 0 || n > IDENTITY_MAX)
        return errf(err, errlen, ORPC_ECONFIG, "%s: expected 1 to %d bytes",
                    from, IDENTITY_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!isalnum(c) && c != '-' && c != '_')
            return errf(err, errlen, ORPC_ECONFIG,
                        "%s: only letters, digits, '-' and '_' are allowed "
                        "(e.g. scheduler-service)",
                        from);
    }
    return 0;
}

/* "scheduler-service" -> "SCHEDULER_SERVICE_USERNAME", as the routed
 * client spells it. */
static void credential_var(const char *identity, const char *suffix, char *out,
                           size_t len)
{
    size_t j = 0;
    for (size_t i = 0; identity[i] != '\0' && j + 1 < len; i++)
        out[j++] = identity[i] == '-'
                       ? '_'
                       : (char)toupper((unsigned char)identity[i]);
    out[j] = '\0';
    snprintf(out + j, len - j, "_%s", suffix);
}

/* ---- the env ---- */

static int read_settings(orpc_env *env, const orpc_env_opts *opts, char *err,
                         size_t errlen)
{
    const char *v;
    int rc;
    /* the calling identity */
    if (opts->identity != NULL) {
        rc = check_identity("orpc_env_opts.identity", opts->identity, err,
                            errlen);
        v = opts->identity;
    } else {
        rc = env_get("ORPC_IDENTITY", IDENTITY_MAX, 0, &v, err, errlen);
        if (rc == 0 && v != NULL)
            rc = check_identity("ORPC_IDENTITY", v, err, errlen);
    }
    if (rc != 0 || (rc = dup_opt(v, &env->identity)) != 0)
        return rc;
    /* plaintext: an explicit choice, never a default */
    if ((rc = env_get("ORPC_PLAINTEXT", 8, 0, &v, err, errlen)) != 0)
        return rc;
    if (v != NULL && strcmp(v, "1") != 0 && strcmp(v, "0") != 0)
        return errf(err, errlen, ORPC_ECONFIG,
                    "ORPC_PLAINTEXT: expected 1 (gRPC without TLS) or 0");
    env->plaintext = v != NULL && strcmp(v, "1") == 0;
    /* TLS: the CA alone (server authentication), or CA, certificate and
     * key (mutual TLS); anything in between is a mistake */
    const char *ca, *cert, *key;
    if ((rc = env_get("ORPC_TLS_CA", FILE_MAX, 1, &ca, err, errlen)) != 0 ||
        (rc = env_get("ORPC_TLS_CERT", FILE_MAX, 1, &cert, err, errlen)) != 0 ||
        (rc = env_get("ORPC_TLS_KEY", FILE_MAX, 1, &key, err, errlen)) != 0)
        return rc;
    if (cert != NULL && key == NULL)
        return errf(err, errlen, ORPC_ECONFIG,
                    "ORPC_TLS_CERT is set but ORPC_TLS_KEY is not: mutual "
                    "TLS needs the certificate's private key");
    if (key != NULL && cert == NULL)
        return errf(err, errlen, ORPC_ECONFIG,
                    "ORPC_TLS_KEY is set but ORPC_TLS_CERT is not: mutual "
                    "TLS needs the certificate the key belongs to");
    if (cert != NULL && ca == NULL)
        return errf(err, errlen, ORPC_ECONFIG,
                    "ORPC_TLS_CERT and ORPC_TLS_KEY are set but ORPC_TLS_CA "
                    "is not: set the CA bundle that verifies the servers");
    if ((ca != NULL &&
         (rc = check_readable("ORPC_TLS_CA", ca, err, errlen)) != 0) ||
        (cert != NULL &&
         (rc = check_readable("ORPC_TLS_CERT", cert, err, errlen)) != 0) ||
        (key != NULL &&
         (rc = check_readable("ORPC_TLS_KEY", key, err, errlen)) != 0))
        return rc;
    if ((rc = dup_opt(ca, &env->tls_ca)) != 0 ||
        (rc = dup_opt(cert, &env->tls_cert)) != 0 ||
        (rc = dup_opt(key, &env->tls_key)) != 0)
        return rc;
    /* the legacy side's CA bundle */
    if ((rc = env_get("ORPC_LEGACY_CA_FILE", FILE_MAX, 1, &v, err, errlen)) !=
        0)
        return rc;
    if (v != NULL &&
        (rc = check_readable("ORPC_LEGACY_CA_FILE", v, err, errlen)) != 0)
        return rc;
    if ((rc = dup_opt(v, &env->legacy_ca)) != 0)
        return rc;
    /* the call log, as today's clients read its settings */
    orpc_call_log_opts lo = {.sink = opts->call_log,
                             .user_data = opts->call_log_user_data};
    orpc_error_detail ld;
    int on = 0;
    if ((rc = orpc_call_log_opts_from_env(&lo, &on, &ld)) != 0)
        return errf(err, errlen, rc, "%s", ld.message);
    if (!on)
        return 0;
    orpc_trace_opts to = {.start_client_traces = 1};
    if ((rc = orpc_trace_interceptor_new(&env->ics[0], &to)) != 0)
        return rc;
    env->n_ics = 1;
    if ((rc = orpc_call_log_interceptor_new(&env->ics[1], &lo)) != 0)
        return rc;
    env->n_ics = 2;
    return 0;
}

static int load_routes(orpc_env *env, const orpc_env_opts *opts, char *err,
                       size_t errlen)
{
    const char *file;
    int rc = env_get("ORPC_ROUTES_FILE", FILE_MAX, 1, &file, err, errlen);
    if (rc != 0)
        return rc;
    orpc_error_detail detail = {0};
    rc = orpc_routes_load(&env->routes, file, &detail);
    if (rc == ORPC_ECONFIG) {
        /* the router's message names the file and line, or the variable */
        return errf(err, errlen, rc, "%s", detail.message);
    }
    if (rc != 0)
        return errf(err, errlen, rc, "routing table: %s", orpc_strerror(rc));
    if (opts->no_watch)
        return 0;
    rc = orpc_routes_watch(env->routes, SIGHUP, env->log, env->log_ud);
    if (rc != 0)
        return errf(err, errlen, rc,
                    "routing table: the SIGHUP watcher did not start: %s",
                    orpc_strerror(rc));
    return 0;
}

/* orpc_env_new() with its message in |err|. */
static int env_new(orpc_env **out, const orpc_env_opts *opts, char *err,
                   size_t errlen)
{
    const orpc_env_opts none = {0};
    if (err == NULL)
        errlen = 0;
    if (errlen > 0)
        err[0] = '\0';
    if (out == NULL)
        return errf(err, errlen, ORPC_EINVAL, "orpc_env_new: |out| is NULL");
    *out = NULL;
    if (opts == NULL)
        opts = &none;
    orpc_env *env = calloc(1, sizeof(*env));
    if (env == NULL)
        return errf(err, errlen, ORPC_ENOMEM, "out of memory");
    if (pthread_mutex_init(&env->lock, NULL) != 0) {
        free(env);
        return errf(err, errlen, ORPC_ESYS, "pthread_mutex_init failed");
    }
    env->log = opts->log;
    env->log_ud = opts->log_user_data;
    int rc = read_settings(env, opts, err, errlen);
    if (rc == 0)
        rc = load_routes(env, opts, err, errlen);
    if (rc != 0) {
        if (rc == ORPC_ENOMEM)
            errf(err, errlen, rc, "out of memory");
        orpc_env_free(env);
        return rc;
    }
    *out = env;
    return 0;
}

void orpc_env_free(orpc_env *env)
{
    if (env == NULL)
        return;
    while (env->channels != NULL) {
        env_channel *c = env->channels;
        env->channels = c->next;
        orpc_channel_unref(c->ch);
        free(c->key);
        free(c);
    }
    orpc_routes_unref(env->routes);
    for (size_t i = 0; i < env->n_ics; i++)
        orpc_interceptor_unref(env->ics[i]);
    free(env->identity);
    free(env->tls_ca);
    free(env->tls_cert);
    free(env->tls_key);
    free(env->legacy_ca);
    pthread_mutex_destroy(&env->lock);
    free(env);
}

orpc_routes *orpc_env_routes(orpc_env *env)
{
    return env != NULL ? env->routes : NULL;
}

/* ---- per service ---- */

/* The service's variable prefix: its legacy URL variable without "_URL"
 * (JOBS_SERVICE_URL -> JOBS_SERVICE), else its name in upper snake case
 * (JobsService -> JOBS_SERVICE).  -1 when it does not fit or is not a
 * variable name. */
static int service_prefix(const orpc_service_desc *svc, char *out, size_t len)
{
    const char *e = svc->legacy_url_env;
    size_t j = 0;
    if (e != NULL && *e != '\0') {
        size_t n = strnlen(e, len);
        if (n > 4 && strcmp(e + n - 4, "_URL") == 0)
            n -= 4;
        if (n >= len)
            return -1;
        memcpy(out, e, n);
        j = n;
    } else {
        const char *s = svc->name != NULL ? svc->name : "";
        for (size_t i = 0; s[i] != '\0'; i++) {
            unsigned char c = (unsigned char)s[i];
            int word = i > 0 && isupper(c) &&
                       (islower((unsigned char)s[i - 1]) ||
                        isdigit((unsigned char)s[i - 1]));
            if (j + 1 + (size_t)word >= len)
                return -1;
            if (word)
                out[j++] = '_';
            out[j++] = (char)toupper(c);
        }
    }
    out[j] = '\0';
    if (j == 0)
        return -1;
    for (size_t i = 0; i < j; i++)
        if (!isalnum((unsigned char)out[i]) && out[i] != '_')
            return -1;
    return 0;
}

/* A DNS name or an IP address: [A-Za-z0-9.:-]. */
static int check_server_name(const char *name, const char *v, char *err,
                             size_t errlen)
{
    for (const char *p = v; *p != '\0'; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != ':')
            return errf(err, errlen, ORPC_ECONFIG,
                        "%s: expected a DNS name or an IP address", name);
    return 0;
}

/* The service config file |path| (from variable |var|) in |*out|,
 * NUL-terminated (free() it).  Never blocks on a FIFO. */
static int read_service_config(const char *var, const char *path, char **out,
                               char *err, size_t errlen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errf(err, errlen, ORPC_ECONFIG, "%s=%.*s: %s", var, SHOW_MAX,
                    path, errno == ENOENT ? "no such file" : "cannot be read");
    struct stat st;
    const char *why = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (st.st_size > SERVICE_CONFIG_MAX)
        why = "larger than 1 MiB";
    char *buf = why ? NULL : malloc((size_t)st.st_size + 1);
    size_t n = 0;
    if (why == NULL && buf == NULL) {
        close(fd);
        return errf(err, errlen, ORPC_ENOMEM, "out of memory");
    }
    while (why == NULL && n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            why = "cannot be read";
        else if (r == 0)
            break; /* shrank meanwhile: what is there */
        else
            n += (size_t)r;
    }
    close(fd);
    if (why != NULL) {
        free(buf);
        return errf(err, errlen, ORPC_ECONFIG, "%s=%.*s: %s", var, SHOW_MAX,
                    path, why);
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

/* A service's service config file, if any, and the variable naming it. */
typedef struct svc_config_file {
    const char *var;  /* <PREFIX>_GRPC_SERVICE_CONFIG */
    const char *path; /* NULL: none */
} svc_config_file;

/* Finds or makes the channel of |target| with these server-identity
 * settings and service config file (read when the channel is made).  The
 * pointer is the env's (borrowed): the routed client takes its own
 * reference. */
static int get_channel(orpc_env *env, const char *var, const char *target,
                       const char *spiffe, const char *server_name,
                       const svc_config_file *cfg, orpc_channel **out,
                       char *err, size_t errlen)
{
    size_t klen = strlen(target) + strlen(spiffe ? spiffe : "") +
                  strlen(server_name ? server_name : "") +
                  strlen(cfg->path ? cfg->path : "") + 4;
    char *key = malloc(klen);
    if (key == NULL)
        return errf(err, errlen, ORPC_ENOMEM, "out of memory");
    snprintf(key, klen, "%s\n%s\n%s\n%s", target, spiffe ? spiffe : "",
             server_name ? server_name : "", cfg->path ? cfg->path : "");
    int rc = 0;
    pthread_mutex_lock(&env->lock);
    env_channel *c = env->channels;
    while (c != NULL && strcmp(c->key, key) != 0)
        c = c->next;
    if (c != NULL) {
        free(key);
        *out = c->ch;
        pthread_mutex_unlock(&env->lock);
        return 0;
    }
    orpc_tls_opts tls = {.ca_file = env->tls_ca,
                         .cert_file = env->tls_cert,
                         .key_file = env->tls_key,
                         .server_name = server_name,
                         .expected_spiffe_id = spiffe};
    orpc_channel_opts co = {.tls = env->tls_ca != NULL ? &tls : NULL,
                            .plaintext = env->tls_ca == NULL && env->plaintext,
                            .log = env->log,
                            .log_user_data = env->log_ud,
                            .interceptors = env->ics,
                            .n_interceptors = env->n_ics};
    orpc_channel *ch = NULL;
    char *config = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        rc = ORPC_ENOMEM;
        errf(err, errlen, rc, "out of memory");
    } else if (cfg->path != NULL &&
               (rc = read_service_config(cfg->var, cfg->path, &config, err,
                                         errlen)) != 0) {
        /* (the message says which file and why) */
    } else {
        orpc_error_detail cd;
        static const char sc[] = "service_config: ";
        co.service_config = config;
        rc = orpc_channel_new(&ch, target, &co, NULL, &cd);
        if (rc == ORPC_ECONFIG && cfg->path != NULL &&
            strncmp(cd.message, sc, sizeof sc - 1) == 0)
            rc = errf(err, errlen, ORPC_ECONFIG, "%s=%.*s: %s", cfg->var,
                      SHOW_MAX, cfg->path, cd.message + sizeof sc - 1);
        else if (rc == ORPC_EADDR)
            rc = errf(err, errlen, ORPC_ECONFIG,
                      "%s=%.*s: not a gRPC target (host:port, "
                      "dns:///host:port or unix:/path)",
                      var, SHOW_MAX, target);
        else if (rc == ORPC_ECONFIG)
            rc = errf(err, errlen, ORPC_ECONFIG,
                      "%s: the channel's TLS settings do not load (from "
                      "ORPC_TLS_CA, ORPC_TLS_CERT, ORPC_TLS_KEY): %s",
                      var, cd.message);
        else if (rc != 0)
            rc = errf(err, errlen, rc, "%s: channel: %s", var, cd.message);
    }
    free(config);
    if (rc == 0 && c != NULL) {
        c->key = key;
        c->ch = ch;
        c->next = env->channels;
        env->channels = c;
        *out = ch;
    } else {
        free(c);
        free(key);
    }
    pthread_mutex_unlock(&env->lock);
    return rc;
}

/* The gRPC side of |svc|: its channel, or NULL when no target is set. */
static int grpc_side(orpc_env *env, const char *prefix, orpc_channel **out,
                     char *err, size_t errlen)
{
    char tvar[PREFIX_MAX + 32], svar[PREFIX_MAX + 32], nvar[PREFIX_MAX + 32];
    char cvar[PREFIX_MAX + 32];
    const char *target, *spiffe, *name, *config;
    snprintf(tvar, sizeof(tvar), "%s_GRPC_TARGET", prefix);
    snprintf(svar, sizeof(svar), "%s_GRPC_SPIFFE_ID", prefix);
    snprintf(nvar, sizeof(nvar), "%s_GRPC_SERVER_NAME", prefix);
    snprintf(cvar, sizeof(cvar), "%s_GRPC_SERVICE_CONFIG", prefix);
    int rc;
    *out = NULL;
    if ((rc = env_get(tvar, TARGET_MAX, 0, &target, err, errlen)) != 0 ||
        (rc = env_get(svar, ORPC_SPIFFE_ID_MAX, 0, &spiffe, err, errlen)) !=
            0 ||
        (rc = env_get(nvar, SERVER_NAME_MAX, 0, &name, err, errlen)) != 0 ||
        (rc = env_get(cvar, FILE_MAX, 1, &config, err, errlen)) != 0)
        return rc;
    if (target == NULL) {
        if (spiffe != NULL || name != NULL || config != NULL)
            return errf(err, errlen, ORPC_ECONFIG,
                        "%s is set but %s is not: set the gRPC target too",
                        spiffe != NULL ? svar
                        : name != NULL ? nvar
                                       : cvar,
                        tvar);
        return 0; /* legacy only; gRPC-routed calls get UNAVAILABLE */
    }
    if (env->tls_ca == NULL) {
        if (!env->plaintext)
            return errf(err, errlen, ORPC_ECONFIG,
                        "%s is set but no TLS is configured: set ORPC_TLS_CA "
                        "(and ORPC_TLS_CERT and ORPC_TLS_KEY for mutual "
                        "TLS), or ORPC_PLAINTEXT=1 for gRPC without TLS in "
                        "tests and local development",
                        tvar);
        if (spiffe != NULL || name != NULL)
            return errf(err, errlen, ORPC_ECONFIG,
                        "%s needs TLS, but only ORPC_PLAINTEXT=1 is set: set "
                        "ORPC_TLS_CA",
                        spiffe != NULL ? svar : nvar);
    }
    if (spiffe != NULL) {
        orpc_spiffe_id id;
        if (orpc_spiffe_id_parse(&id, spiffe) != 0)
            return errf(err, errlen, ORPC_ECONFIG,
                        "%s: not a SPIFFE ID (spiffe://trust-domain/path)",
                        svar);
    }
    if (name != NULL && (rc = check_server_name(nvar, name, err, errlen)) != 0)
        return rc;
    svc_config_file cfg = {cvar, config};
    return get_channel(env, tvar, target, spiffe, name, &cfg, out, err, errlen);
}

/* The legacy transport's numeric settings (LEGACY_API.md, "Client settings
 * in use today"), with the ranges orpc_routed_client_new() accepts: it
 * quietly uses its default for a value outside them, which here is an
 * error instead. */
typedef struct number_var {
    const char *name;
    double lo, hi;
    int fraction; /* a decimal fraction is allowed */
    const char *unit;
} number_var;

static const number_var legacy_numbers[] = {
    {"SERVICE_HTTP_TIMEOUT", 1, 86399, 0, "whole seconds"},
    {"SERVICE_HTTP_CONNECT_TIMEOUT", 1, 600, 0, "whole seconds"},
    {"SERVICE_HTTP_MAX_RETRIES", 0, 10, 0, "a count"},
    {"SERVICE_HTTP_RETRY_DELAY", 0, 60, 1, "seconds"},
    {"SERVICE_HTTP_MAX_CONNECTIONS", 1, 10000, 0, "a count"},
    {"SERVICE_HTTP_MAX_KEEPALIVE_CONNECTIONS", 1, 10000, 0, "a count"},
};

static int check_number(const number_var *nv, char *err, size_t errlen)
{
    const char *v;
    int rc = env_get(nv->name, 16, 0, &v, err, errlen);
    if (rc != 0 || v == NULL)
        return rc;
    /* digits, and for fractions one '.' followed by digits */
    const char *p = v;
    while (isdigit((unsigned char)*p))
        p++;
    int ok = p > v;
    if (ok && nv->fraction && *p == '.') {
        const char *q = ++p;
        while (isdigit((unsigned char)*p))
            p++;
        ok = p > q;
    }
    double x = ok && *p == '\0' ? strtod(v, NULL) : -1;
    if (!ok || *p != '\0' || x < nv->lo || x > nv->hi)
        return errf(err, errlen, ORPC_ECONFIG, "%s: expected %s, %g to %g",
                    nv->name, nv->unit, nv->lo, nv->hi);
    return 0;
}

/* The variables the routed client reads itself, checked here so that a
 * bad value gets a message. */
static int check_legacy_vars(orpc_env *env, const orpc_service_desc *svc,
                             char *err, size_t errlen)
{
    const char *urls[2] = {svc->legacy_url_env, "AUTH_SERVICE_URL"};
    const char *v;
    int rc;
    for (size_t i = 0; i < 2; i++) {
        if (urls[i] == NULL || *urls[i] == '\0')
            continue;
        if ((rc = env_get(urls[i], URL_MAX, 0, &v, err, errlen)) != 0)
            return rc;
        if (v != NULL && strncasecmp(v, "http://", 7) != 0 &&
            strncasecmp(v, "https://", 8) != 0)
            return errf(err, errlen, ORPC_ECONFIG,
                        "%s: expected an http:// or https:// URL", urls[i]);
    }
    for (size_t i = 0; i < sizeof(legacy_numbers) / sizeof(legacy_numbers[0]);
         i++)
        if ((rc = check_number(&legacy_numbers[i], err, errlen)) != 0)
            return rc;
    if (env->identity != NULL) {
        char uvar[IDENTITY_MAX + 16], pvar[IDENTITY_MAX + 16];
        credential_var(env->identity, "USERNAME", uvar, sizeof(uvar));
        credential_var(env->identity, "PASSWORD", pvar, sizeof(pvar));
        if ((rc = env_get(uvar, SECRET_MAX, 1, &v, err, errlen)) != 0 ||
            (rc = env_get(pvar, SECRET_MAX, 1, &v, err, errlen)) != 0)
            return rc;
    }
    return 0;
}

/* The routed client said ORPC_ECONFIG: no credentials, as it only checks
 * those (the rest was checked above).  Names what to set. */
static int credentials_message(orpc_env *env, const orpc_service_desc *svc,
                               char *err, size_t errlen)
{
    if (env->identity == NULL)
        return errf(err, errlen, ORPC_ECONFIG,
                    "%s reaches legacy endpoints that need a service token, "
                    "and no calling identity is set: set ORPC_IDENTITY (e.g. "
                    "scheduler-service) and that identity's credentials, "
                    "<IDENTITY>_USERNAME and <IDENTITY>_PASSWORD (e.g. "
                    "SCHEDULER_SERVICE_USERNAME)",
                    svc->full_name);
    char uvar[IDENTITY_MAX + 16], pvar[IDENTITY_MAX + 16];
    credential_var(env->identity, "USERNAME", uvar, sizeof(uvar));
    credential_var(env->identity, "PASSWORD", pvar, sizeof(pvar));
    const char *u = getenv(uvar), *p = getenv(pvar);
    int nu = u == NULL || *u == '\0', np = p == NULL || *p == '\0';
    if (nu || np)
        return errf(err, errlen, ORPC_ECONFIG,
                    "%s reaches legacy endpoints that need a service token: "
                    "set %s and %s, the credentials of identity %s (%s)",
                    svc->full_name, uvar, pvar, env->identity,
                    nu && np ? "neither is set"
                    : nu     ? "the username is not set"
                             : "the password is not set");
    return errf(err, errlen, ORPC_ECONFIG,
                "%s: the routed client refused its configuration",
                svc->full_name);
}

/* orpc_env_client_new() with its message in |err|. */
static int env_client_new(orpc_client **out, orpc_env *env,
                          const orpc_service_desc *svc, char *err,
                          size_t errlen)
{
    if (err == NULL)
        errlen = 0;
    if (errlen > 0)
        err[0] = '\0';
    if (out != NULL)
        *out = NULL;
    if (env == NULL || out == NULL || svc == NULL ||
        svc->magic != ORPC_SERVICE_DESC_MAGIC)
        return errf(err, errlen, ORPC_EINVAL,
                    "orpc_env_client_new: NULL argument or not a service "
                    "descriptor");
    char prefix[PREFIX_MAX];
    if (service_prefix(svc, prefix, sizeof(prefix)) != 0)
        return errf(err, errlen, ORPC_EINVAL,
                    "%s: no usable variable prefix (legacy_url_env or name)",
                    svc->full_name != NULL ? svc->full_name : "service");
    orpc_channel *ch = NULL;
    int rc = grpc_side(env, prefix, &ch, err, errlen);
    if (rc == 0)
        rc = check_legacy_vars(env, svc, err, errlen);
    if (rc != 0)
        return rc;
    orpc_routed_opts ro = {.routes = env->routes,
                           .channel = ch,
                           .identity = env->identity,
                           .ca_file = env->legacy_ca,
                           .log = env->log,
                           .log_user_data = env->log_ud,
                           .interceptors = env->ics,
                           .n_interceptors = env->n_ics};
    orpc_error_detail detail = {0};
    rc = orpc_routed_client_new(out, svc, &ro, &detail);
    if (rc == ORPC_ECONFIG)
        return credentials_message(env, svc, err, errlen);
    if (rc != 0)
        return errf(err, errlen, rc, "%s", detail.message);
    return 0;
}

/* The one place a failure of this file's constructors goes: the caller's
 * |detail|, else the env's logger, else stderr. */
static int report(int rc, const char *msg, orpc_log_fn log, void *log_ud,
                  orpc_error_detail *detail)
{
    if (rc == 0)
        return 0;
    return orpc__fail(detail, log, log_ud, "env", rc, "%s",
                      msg[0] != '\0' ? msg : orpc_strerror(rc));
}

int orpc_env_new(orpc_env **out, const orpc_env_opts *opts,
                 orpc_error_detail *detail)
{
    char msg[ORPC_ERROR_DETAIL_SIZE] = "";
    int rc = env_new(out, opts, msg, sizeof msg);
    return report(rc, msg, opts ? opts->log : NULL,
                  opts ? opts->log_user_data : NULL, detail);
}

int orpc_env_client_new(orpc_client **out, orpc_env *env,
                        const orpc_service_desc *svc, orpc_error_detail *detail)
{
    char msg[ORPC_ERROR_DETAIL_SIZE] = "";
    int rc = env_client_new(out, env, svc, msg, sizeof msg);
    return report(rc, msg, env ? env->log : NULL, env ? env->log_ud : NULL,
                  detail);
}

int orpc_client_new_from_env(orpc_client **out, const orpc_service_desc *svc,
                             orpc_error_detail *detail)
{
    char msg[ORPC_ERROR_DETAIL_SIZE] = "";
    if (out == NULL || svc == NULL)
        return report(ORPC_EINVAL, "orpc_client_new_from_env: NULL argument",
                      NULL, NULL, detail);
    orpc_env *env = NULL;
    int rc = env_new(&env, NULL, msg, sizeof msg);
    if (rc == 0) {
        rc = env_client_new(out, env, svc, msg, sizeof msg);
        orpc_env_free(env); /* the client holds what it uses */
    } else {
        *out = NULL;
    }
    return report(rc, msg, NULL, NULL, detail);
}
