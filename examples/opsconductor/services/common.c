/*
 * common.c — helpers the five services share (svc.h): logging, JSON objects
 * into google.protobuf.Struct, the legacy services' time formats, the
 * identities file, the caller's account name, and the legacy gateway of
 * the services whose tokens the auth service judges.
 *
 * Why JSON objects: every response of the OpsConductor protos is a
 * free-form google.protobuf.Struct that must equal, byte for byte once
 * encoded in the legacy JSON profile, what the FastAPI services answer.
 * Building the objects with jansson in the legacy services' key order and
 * decoding them with compat's proto3 JSON mapping (orpc_json_decode) into
 * the call's arena keeps each service's data in one readable place and the
 * key order exactly as written (Struct fields keep their order on the
 * wire and in orpc_json_encode).
 */
#include "svc.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <orpc/compat/json.h>

static const char *log_name = "service";

void svc_log_set_name(const char *name)
{
    log_name = name;
}

void svc_log(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): va_start above
     * (the analyzer's false positive on x86-64's array-typed va_list) */
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    /* one write per line, so that lines of threads do not interleave */
    fprintf(stderr, "opsconductor-%s: %s\n", log_name, line);
}

int svc_struct(orpc_ctx *ctx, const json_t *obj, Google__Protobuf__Struct **out)
{
    *out = NULL;
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL)
        return ORPC_ENOMEM;
    ProtobufCMessage *m = NULL;
    int rc = orpc_json_decode(&m, &google__protobuf__struct__orpc_info, text,
                              strlen(text), NULL,
                              orpc_arena_allocator(orpc_ctx_arena(ctx)), NULL);
    free(text);
    if (rc == 0)
        *out = (Google__Protobuf__Struct *)m;
    return rc;
}

orpc_status svc_struct_failed(int rc)
{
    if (rc == ORPC_ENOMEM)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
    return orpc_status_errorf(ORPC_INTERNAL, "cannot build the response: %s",
                              orpc_strerror(rc));
}

void svc_now_iso(char out[40])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%06dZ", (int)(ts.tv_nsec / 1000));
}

void svc_iso_hours(int64_t hours, char out[40])
{
    time_t t = (time_t)(1704067200 + hours * 3600); /* 2024-01-01 UTC */
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int svc_parse_iso(const char *s, int64_t *sec, int32_t *nanos)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL)
        return -1;
    int32_t ns = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p) && digits < 9; p++, digits++)
            ns = ns * 10 + (*p - '0');
        if (digits == 0)
            return -1;
        for (; digits < 9; digits++)
            ns *= 10;
    }
    if (strcmp(p, "Z") != 0)
        return -1;
    *sec = (int64_t)timegm(&tm);
    *nanos = ns;
    return 0;
}

int64_t svc_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- identities ---------------------------------------------------------- */

enum { IDS_MAX = 1024, LINE_MAX_ = 4096 };

void svc_identities_free(svc_identities *ids)
{
    for (size_t i = 0; ids->account && ids->spiffe && i < ids->n; i++) {
        free(ids->account[i]);
        free(ids->spiffe[i]);
    }
    free(ids->account);
    free(ids->spiffe);
    memset(ids, 0, sizeof(*ids));
}

/* Trims leading and trailing blanks in place. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' ||
                     s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

int svc_identities_load(svc_identities *ids, const char *path, char *err,
                        size_t errlen)
{
    memset(ids, 0, sizeof(*ids));
    if (path == NULL)
        return 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "identities file %s: %s", path, strerror(errno));
        return -1;
    }
    ids->account = calloc(IDS_MAX, sizeof(char *));
    ids->spiffe = calloc(IDS_MAX, sizeof(char *));
    if (ids->account == NULL || ids->spiffe == NULL) {
        fclose(f);
        svc_identities_free(ids);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char line[LINE_MAX_];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *sp = strpbrk(s, " \t");
        orpc_spiffe_id id;
        if (sp == NULL) {
            snprintf(err, errlen, "%s:%d: want `account spiffe://...`", path,
                     lineno);
            rc = -1;
            break;
        }
        *sp = '\0';
        char *uri = trim(sp + 1);
        if (orpc_spiffe_id_parse(&id, uri) != 0) {
            snprintf(err, errlen, "%s:%d: not a SPIFFE ID", path, lineno);
            rc = -1;
        } else if (ids->n == IDS_MAX) {
            snprintf(err, errlen, "%s:%d: more than %d identities", path,
                     lineno, IDS_MAX);
            rc = -1;
        } else if (svc_identities_spiffe(ids, s) != NULL) {
            snprintf(err, errlen, "%s:%d: account %s listed twice", path,
                     lineno, s);
            rc = -1;
        } else {
            ids->account[ids->n] = strdup(s);
            ids->spiffe[ids->n] = strdup(uri);
            if (ids->account[ids->n] == NULL || ids->spiffe[ids->n] == NULL) {
                free(ids->account[ids->n]);
                free(ids->spiffe[ids->n]);
                snprintf(err, errlen, "out of memory");
                rc = -1;
            } else {
                ids->n++;
            }
        }
    }
    fclose(f);
    if (rc != 0)
        svc_identities_free(ids);
    return rc;
}

const char *svc_identities_spiffe(const svc_identities *ids,
                                  const char *account)
{
    for (size_t i = 0; ids->account != NULL && i < ids->n; i++)
        if (ids->account[i] != NULL && strcmp(ids->account[i], account) == 0)
            return ids->spiffe[i];
    return NULL;
}

const char *svc_caller_name(orpc_ctx *ctx, const svc_identities *ids, char *buf,
                            size_t cap)
{
    const char *id = orpc_ctx_peer_identity(ctx);
    if (id == NULL)
        return NULL;
    /* a legacy caller's token names its account (orpc/compat/serve.h) */
    static const char *const legacy[] = {"legacy-service:", "legacy-user:"};
    for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++) {
        size_t n = strlen(legacy[i]);
        if (strncmp(id, legacy[i], n) == 0) {
            snprintf(buf, cap, "%s", id + n);
            return buf;
        }
    }
    for (size_t i = 0; ids != NULL && i < ids->n; i++) {
        if (strcmp(ids->spiffe[i], id) == 0) {
            snprintf(buf, cap, "%s", ids->account[i]);
            return buf;
        }
    }
    orpc_spiffe_id p;
    if (orpc_spiffe_id_parse(&p, id) == 0 &&
        strncmp(p.id + p.path_offset, "/service/", 9) == 0 &&
        strchr(p.id + p.path_offset + 9, '/') == NULL) {
        snprintf(buf, cap, "%s-service", p.id + p.path_offset + 9);
        return buf;
    }
    snprintf(buf, cap, "%s", id);
    return buf;
}

/* The verifier of a service started without --auth-target: no token can be
 * judged, so the gateway answers 503 "Auth service unavailable". */
static int verify_unavailable(const char *token, char **identity, void *ud)
{
    (void)token;
    (void)ud;
    *identity = NULL;
    return ORPC_EAGAIN;
}

int svc_legacy_new(orpc_legacy_serve **out, const svc_config *cfg, char *err,
                   size_t errlen)
{
    *out = NULL;
    orpc_legacy_serve_opts o = {0};
    orpc_channel *ch = NULL;
    if (cfg->auth_target == NULL) {
        o.verify = verify_unavailable;
        o.verify_nonblocking = 1;
        if (cfg->legacy_listen != NULL)
            svc_log("warning: no --auth-target: legacy routes that need a "
                    "token answer 503 \"Auth service unavailable\"");
    } else {
        orpc_tls_opts tls = {
            .ca_file = cfg->tls_ca,
            .cert_file = cfg->tls_cert,
            .key_file = cfg->tls_key,
        };
        orpc_channel_opts co = {
            .tls = cfg->plaintext ? NULL : &tls,
            .plaintext = cfg->plaintext,
            .connect_timeout_ms = 5000,
            .initial_backoff_ms = 200,
            .max_backoff_ms = 2000,
        };
        orpc_error_detail why = {0};
        if (orpc_channel_new(&ch, cfg->auth_target, &co, NULL, &why) != 0) {
            snprintf(err, errlen, "--auth-target %s: %s", cfg->auth_target,
                     why.message);
            return -1;
        }
        o.auth_channel = ch;
    }
    int rc = orpc_legacy_serve_new(out, &o);
    orpc_channel_unref(ch); /* the gateway holds its own reference */
    if (rc != 0) {
        snprintf(err, errlen, "legacy gateway: %s", orpc_strerror(rc));
        return -1;
    }
    return 0;
}

void svc_count(orpc_metrics *m, const char *name, const char *help,
               const char *label, const char *value)
{
    if (m == NULL)
        return;
    const char *labels[] = {label, value, NULL};
    (void)orpc_metrics_counter_add(m, name, help, label ? labels : NULL, 1);
}
