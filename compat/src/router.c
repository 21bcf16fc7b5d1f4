/*
 * router.c — routing tables and routed clients: each method's calls go over
 * gRPC, to the legacy JSON/HTTP endpoint, or gRPC first with the legacy
 * endpoint as fallback.
 *
 * Design notes: a routed client is an orpc_client with an invoker (see
 * orpc/client.h), so generated stubs do not know which side serves them.
 * The table is a snapshot: the file and the ORPC_ROUTE_* environment are
 * read when it is loaded (start-up, or a reload), never while calls run.
 * Legacy calls use the HttpRule mapping (http_rule.c), the libcurl pool of
 * the service's base URL (legacy_http.c) and the calling identity's token
 * cache (tokens.c).  Asynchronous legacy calls and shadow mirrors run on a
 * bounded pool of at most 16 threads per routed client: the legacy
 * transport is blocking, and the legacy side is the old, slow path being
 * migrated away from.
 *
 * Why one file of ~1,450 lines: the table (parse, reload, watcher, stats)
 * and the routed client (modes, fallback, shadow comparison) share the
 * per-method state and its lock; splitting them is on issue 10's list
 * (the worker pool here duplicates rpc/src/pool.c).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include <orpc/compat/json.h>
#include <orpc/compat/router.h>
#include <orpc/error.h>

#include "http_rule.h"
#include "legacy_http.h"
#include "tokens.h"

extern char **environ;

/* ---- modes and tables ---- */

const char *orpc_route_mode_name(int mode)
{
    switch (mode) {
    case ORPC_ROUTE_LEGACY:
        return "legacy";
    case ORPC_ROUTE_GRPC:
        return "grpc";
    case ORPC_ROUTE_FALLBACK:
        return "fallback";
    case ORPC_ROUTE_SHADOW:
        return "shadow";
    case ORPC_ROUTE_SHADOW_GRPC:
        return "shadow-grpc";
    default:
        return "?";
    }
}

static int parse_mode(const char *s, size_t n, orpc_route_mode *out)
{
    static const struct {
        const char *name;
        orpc_route_mode mode;
    } modes[] = {{"legacy", ORPC_ROUTE_LEGACY},
                 {"grpc", ORPC_ROUTE_GRPC},
                 {"fallback", ORPC_ROUTE_FALLBACK},
                 {"shadow", ORPC_ROUTE_SHADOW},
                 {"shadow-grpc", ORPC_ROUTE_SHADOW_GRPC},
                 {"shadow_grpc", ORPC_ROUTE_SHADOW_GRPC}};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        if (strlen(modes[i].name) == n &&
            strncasecmp(modes[i].name, s, n) == 0) {
            *out = modes[i].mode;
            return 0;
        }
    return -1;
}

#define MODES_HINT "(modes: legacy, grpc, fallback, shadow, shadow-grpc)"

typedef struct route {
    char *key; /* "*", "pkg.Svc", "pkg.Svc/Method", "ENV:<NAME>", or
                  "IGNORE:pkg.Svc/Method" (then |ignore| is set) */
    orpc_route_mode mode;
    char *ignore; /* comma-separated dotted field names */
} route;

/* What one load produces; a reload builds a new one and swaps it in. */
typedef struct route_set {
    route *r;
    size_t n;
    char *stats_file; /* `{pid}` expanded, or NULL */
    char *stats_glob; /* `{pid}` as `*` */
} route_set;

typedef struct method_stat {
    const orpc_method_desc *method;
    orpc_route_stats s;
} method_stat;

/* The routes are swapped under |rw| by a reload; the counters live under
 * |lock| and survive reloads.  |refs| counts the owner and routed clients. */
struct orpc_routes {
    uv_rwlock_t rw;
    route_set set;
    char *file; /* what orpc_routes_load() read, for reloads */
    int loaded; /* made by orpc_routes_load() (reloadable) */
    uv_mutex_t lock;
    int refs;
    method_stat *stats;
    size_t n_stats;
    int dirty; /* counters changed since the last write */
    /* the watcher thread (orpc_routes_watch) */
    int watching;
    uv_thread_t watcher;
    uv_loop_t loop;
    uv_async_t stop;
    uv_signal_t sig;
    uv_timer_t tick;
    int signum;
    orpc_log_fn log;
    void *log_ud;
};

static void set_clear(route_set *set)
{
    for (size_t i = 0; i < set->n; i++) {
        free(set->r[i].key);
        free(set->r[i].ignore);
    }
    free(set->r);
    free(set->stats_file);
    free(set->stats_glob);
    memset(set, 0, sizeof(*set));
}

static int add_route(route_set *t, const char *key, size_t klen,
                     orpc_route_mode mode)
{
    route *n = realloc(t->r, (t->n + 1) * sizeof(*n));
    if (n == NULL)
        return ORPC_ENOMEM;
    t->r = n;
    n[t->n].key = strndup(key, klen);
    if (n[t->n].key == NULL)
        return ORPC_ENOMEM;
    n[t->n].mode = mode;
    n[t->n].ignore = NULL;
    t->n++;
    return 0;
}

/* |path| with every `{pid}` replaced by |pid|; NULL on ENOMEM. */
static char *expand_pid(const char *path, size_t n, const char *pid)
{
    size_t cap = n + 1, len = 0;
    for (size_t i = 0; i + 5 <= n; i++)
        if (memcmp(path + i, "{pid}", 5) == 0)
            cap += strlen(pid);
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n;) {
        if (i + 5 <= n && memcmp(path + i, "{pid}", 5) == 0) {
            memcpy(out + len, pid, strlen(pid));
            len += strlen(pid);
            i += 5;
        } else {
            out[len++] = path[i++];
        }
    }
    out[len] = '\0';
    return out;
}

/* |s| without leading and trailing white space: [*b, *e). */
static void trim(char **b, char **e)
{
    while (*b < *e && isspace((unsigned char)**b))
        (*b)++;
    while (*e > *b && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

/* Whether [k, k + n) is a key: `*`, `pkg.Service` or `pkg.Service/Method`
 * (proto identifiers).  The table's internal keys ("ENV:…", "IGNORE:…")
 * are not, so no file line can pose as one. */
static int valid_key(const char *k, size_t n)
{
    if (n == 1 && k[0] == '*')
        return 1;
    int slash = 0, start = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)k[i];
        if (ch == '/' && !slash && !start) {
            slash = start = 1;
        } else if (ch == '.' && !slash && !start) {
            start = 1;
        } else if (isalpha(ch) || ch == '_' || (isdigit(ch) && !start)) {
            start = 0;
        } else {
            return 0;
        }
    }
    return n > 0 && !start;
}

static int set_stats_file(route_set *t, const char *path, size_t n)
{
    char pid[32];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    free(t->stats_file);
    free(t->stats_glob);
    t->stats_file = expand_pid(path, n, pid);
    t->stats_glob = expand_pid(path, n, "*");
    return t->stats_file && t->stats_glob ? 0 : ORPC_ENOMEM;
}

static int load_file(route_set *t, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    int lineno = 0, rc = 0;
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open", path);
        return ORPC_ECONFIG;
    }
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (lineno > 100000 || (strchr(line, '\n') == NULL && !feof(f))) {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            rc = ORPC_ECONFIG;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *p = line, *end = line + strlen(line);
        trim(&p, &end);
        if (p == end)
            continue;
        *end = '\0';
        char *eq = strchr(p, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "%s:%d: expected `key = mode`", path, lineno);
            rc = ORPC_ECONFIG;
            break;
        }
        char *k = p, *kend = eq, *v = eq + 1, *vend = end;
        trim(&k, &kend);
        trim(&v, &vend);
        int is_ignore = kend - k > 6 && strncmp(k, "ignore", 6) == 0 &&
                        isspace((unsigned char)k[6]);
        if (is_ignore) {
            /* ignore pkg.Service/Method = a.b, c */
            k += 6;
            trim(&k, &kend);
            char ikey[600];
            if (kend - k > 500 || !valid_key(k, (size_t)(kend - k))) {
                snprintf(err, errlen, "%s:%d: bad ignore line", path, lineno);
                rc = ORPC_ECONFIG;
                break;
            }
            snprintf(ikey, sizeof(ikey), "IGNORE:%.*s", (int)(kend - k), k);
            rc = add_route(t, ikey, strlen(ikey), ORPC_ROUTE_LEGACY);
            if (rc == 0 && (t->r[t->n - 1].ignore =
                                strndup(v, (size_t)(vend - v))) == NULL)
                rc = ORPC_ENOMEM;
            continue;
        }
        if ((size_t)(kend - k) == 10 && strncmp(k, "stats_file", 10) == 0) {
            if (vend == v) {
                snprintf(err, errlen, "%s:%d: stats_file needs a path", path,
                         lineno);
                rc = ORPC_ECONFIG;
            } else {
                rc = set_stats_file(t, v, (size_t)(vend - v));
            }
            continue;
        }
        orpc_route_mode mode;
        if (!valid_key(k, (size_t)(kend - k))) {
            snprintf(err, errlen,
                     "%s:%d: %s (keys: *, pkg.Service, pkg.Service/Method)",
                     path, lineno, kend == k ? "empty key" : "bad key");
            rc = ORPC_ECONFIG;
            break;
        }
        if (parse_mode(v, (size_t)(vend - v), &mode) != 0) {
            snprintf(err, errlen, "%s:%d: unknown mode " MODES_HINT, path,
                     lineno);
            rc = ORPC_ECONFIG;
            break;
        }
        rc = add_route(t, k, (size_t)(kend - k), mode);
    }
    fclose(f);
    return rc;
}

/* Reads |file| (NULL: none) and the environment into |t|. */
static int load_set(route_set *t, const char *file, char *err, size_t errlen)
{
    int rc = 0;
    if (file != NULL)
        rc = load_file(t, file, err, errlen);
    /* the environment's overrides, as a snapshot */
    for (char **e = environ; rc == 0 && e && *e; e++) {
        if (strncmp(*e, "ORPC_ROUTE_", 11) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        orpc_route_mode mode;
        if (eq == NULL)
            continue;
        if (parse_mode(eq + 1, strlen(eq + 1), &mode) != 0) {
            snprintf(err, errlen, "%.*s: unknown mode " MODES_HINT,
                     (int)(eq - *e), *e);
            rc = ORPC_ECONFIG;
            break;
        }
        char key[300];
        snprintf(key, sizeof(key), "ENV:%.*s", (int)(eq - *e - 11), *e + 11);
        rc = add_route(t, key, strlen(key), mode);
    }
    const char *sf = getenv("ORPC_ROUTES_STATS_FILE");
    if (rc == 0 && sf != NULL && *sf != '\0')
        rc = set_stats_file(t, sf, strlen(sf));
    return rc;
}

int orpc_routes_new(orpc_routes **out)
{
    if (out == NULL)
        return ORPC_EINVAL;
    orpc_routes *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return ORPC_ENOMEM;
    if (uv_rwlock_init(&t->rw) != 0) {
        free(t);
        return ORPC_ENOMEM;
    }
    uv_mutex_init(&t->lock);
    t->refs = 1;
    *out = t;
    return 0;
}

int orpc_routes_load(orpc_routes **out, const char *config_file, char *err,
                     size_t errlen)
{
    if (out == NULL)
        return ORPC_EINVAL;
    if (errlen > 0)
        err[0] = '\0';
    orpc_routes *t;
    int rc = orpc_routes_new(&t);
    if (rc != 0)
        return rc;
    t->loaded = 1;
    if (config_file != NULL && (t->file = strdup(config_file)) == NULL)
        rc = ORPC_ENOMEM;
    if (rc == 0)
        rc = load_set(&t->set, config_file, err, errlen);
    if (rc != 0) {
        orpc_routes_unref(t);
        return rc;
    }
    *out = t;
    return 0;
}

int orpc_routes_reload(orpc_routes *t, char *err, size_t errlen)
{
    if (errlen > 0)
        err[0] = '\0';
    if (t == NULL || !t->loaded)
        return ORPC_EINVAL;
    route_set fresh = {0};
    int rc = load_set(&fresh, t->file, err, errlen);
    if (rc != 0) {
        set_clear(&fresh);
        return rc;
    }
    uv_rwlock_wrlock(&t->rw);
    route_set old = t->set;
    t->set = fresh;
    uv_rwlock_wrunlock(&t->rw);
    set_clear(&old);
    return 0;
}

int orpc_routes_set(orpc_routes *t, const char *key, orpc_route_mode mode)
{
    if (t == NULL || key == NULL || !valid_key(key, strlen(key)) ||
        (unsigned)mode > ORPC_ROUTE_SHADOW_GRPC)
        return ORPC_EINVAL;
    uv_rwlock_wrlock(&t->rw);
    int rc = add_route(&t->set, key, strlen(key), mode);
    uv_rwlock_wrunlock(&t->rw);
    return rc;
}

orpc_routes *orpc_routes_ref(orpc_routes *t)
{
    if (t != NULL) {
        uv_mutex_lock(&t->lock);
        t->refs++;
        uv_mutex_unlock(&t->lock);
    }
    return t;
}

static void watch_stop(orpc_routes *t);

void orpc_routes_unref(orpc_routes *t)
{
    if (t == NULL)
        return;
    uv_mutex_lock(&t->lock);
    int last = --t->refs == 0;
    uv_mutex_unlock(&t->lock);
    if (!last)
        return;
    watch_stop(t);
    set_clear(&t->set);
    free(t->file);
    free(t->stats);
    uv_mutex_destroy(&t->lock);
    uv_rwlock_destroy(&t->rw);
    free(t);
}

/* "GetJob" -> "GET_JOB"; appends to |out|. */
static void upper_snake(char *out, size_t len, const char *s, size_t n)
{
    size_t j = strlen(out);
    for (size_t i = 0; i < n && j + 2 < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i > 0 && isupper(c) &&
            (islower((unsigned char)s[i - 1]) ||
             isdigit((unsigned char)s[i - 1])))
            out[j++] = '_';
        out[j++] = (char)toupper(c);
    }
    out[j] = '\0';
}

static int find(const route_set *t, const char *key, orpc_route_mode *mode)
{
    for (size_t i = t->n; i-- > 0;) /* the last entry for a key wins */
        if (strcmp(t->r[i].key, key) == 0) {
            *mode = t->r[i].mode;
            return 1;
        }
    return 0;
}

orpc_route_mode orpc_routes_mode(const orpc_routes *ct,
                                 const orpc_method_desc *m)
{
    orpc_routes *t = (orpc_routes *)ct; /* the lock is the mutable part */
    orpc_route_mode mode = ORPC_ROUTE_LEGACY;
    if (m != NULL && m->http == NULL)
        return ORPC_ROUTE_GRPC; /* no legacy endpoint to go to */
    if (t == NULL || m == NULL || m->service == NULL)
        return mode;
    const orpc_service_desc *s = m->service;
    char svc[128] = "ENV:", meth[256], key[512];
    size_t sn = strlen(s->name);
    if (sn > 7 && strcmp(s->name + sn - 7, "Service") == 0)
        sn -= 7;
    upper_snake(svc, sizeof(svc), s->name, sn);
    snprintf(meth, sizeof(meth), "%s_", svc);
    upper_snake(meth, sizeof(meth), m->name, strlen(m->name));
    snprintf(key, sizeof(key), "%s/%s", s->full_name, m->name);
    uv_rwlock_rdlock(&t->rw);
    if (!(find(&t->set, meth, &mode) || find(&t->set, svc, &mode) ||
          find(&t->set, key, &mode) || find(&t->set, s->full_name, &mode) ||
          find(&t->set, "*", &mode)))
        mode = ORPC_ROUTE_LEGACY;
    uv_rwlock_rdunlock(&t->rw);
    return mode;
}

const char *orpc_routes_stats_file(const orpc_routes *t)
{
    return t ? t->set.stats_file : NULL;
}

const char *orpc_routes_stats_glob(const orpc_routes *t)
{
    return t ? t->set.stats_glob : NULL;
}

/* ---- counters ---- */

typedef enum counter {
    C_GRPC,
    C_LEGACY,
    C_FALLBACK,
    C_MATCH,
    C_MISMATCH,
    C_DROPPED,
    C_UNMIRRORED
} counter;

static void count(const orpc_routes *ct, const orpc_method_desc *m, counter c)
{
    orpc_routes *t = (orpc_routes *)ct; /* the counters are the mutable part */
    if (t == NULL)
        return;
    uv_mutex_lock(&t->lock);
    method_stat *st = NULL;
    for (size_t i = 0; i < t->n_stats && st == NULL; i++)
        if (t->stats[i].method == m)
            st = &t->stats[i];
    if (st == NULL) {
        method_stat *n = realloc(t->stats, (t->n_stats + 1) * sizeof(*n));
        if (n != NULL) {
            t->stats = n;
            st = &n[t->n_stats++];
            memset(st, 0, sizeof(*st));
            st->method = m;
        }
    }
    if (st != NULL) {
        uint64_t *f[] = {&st->s.grpc,      &st->s.legacy,     &st->s.fallbacks,
                         &st->s.matches,   &st->s.mismatches, &st->s.dropped,
                         &st->s.unmirrored};
        (*f[c])++;
        if (c == C_FALLBACK)
            st->s.legacy++;
        t->dirty = 1;
    }
    uv_mutex_unlock(&t->lock);
}

int orpc_routes_stats(const orpc_routes *ct, const orpc_method_desc *m,
                      orpc_route_stats *out)
{
    orpc_routes *t = (orpc_routes *)ct;
    if (t == NULL || m == NULL || out == NULL)
        return ORPC_EINVAL;
    memset(out, 0, sizeof(*out));
    uv_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->n_stats; i++)
        if (t->stats[i].method == m)
            *out = t->stats[i].s;
    uv_mutex_unlock(&t->lock);
    return 0;
}

/* Copies the ignore list of |m| into |buf| (empty: none). */
static void ignored_fields(const orpc_routes *ct, const orpc_method_desc *m,
                           char *buf, size_t len)
{
    orpc_routes *t = (orpc_routes *)ct;
    char key[600];
    buf[0] = '\0';
    if (t == NULL)
        return;
    snprintf(key, sizeof(key), "IGNORE:%s", m->path + 1);
    uv_rwlock_rdlock(&t->rw);
    for (size_t i = t->set.n; i-- > 0;)
        if (strcmp(t->set.r[i].key, key) == 0) {
            snprintf(buf, len, "%s", t->set.r[i].ignore);
            break;
        }
    uv_rwlock_rdunlock(&t->rw);
}

/* ---- the stats file and the watcher ---- */

int orpc_routes_write_stats(orpc_routes *t)
{
    if (t == NULL)
        return ORPC_EINVAL;
    uv_rwlock_rdlock(&t->rw);
    char *path = t->set.stats_file ? strdup(t->set.stats_file) : NULL;
    uv_rwlock_rdunlock(&t->rw);
    if (path == NULL)
        return ORPC_EINVAL;
    json_t *root = json_object(), *methods = json_object();
    json_object_set_new(root, "pid", json_integer((json_int_t)getpid()));
    json_object_set_new(root, "written_at_unix",
                        json_integer((json_int_t)time(NULL)));
    uv_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->n_stats; i++) {
        const orpc_route_stats *s = &t->stats[i].s;
        json_t *o = json_pack(
            "{sIsIsIsIsIsIsI}", "grpc", (json_int_t)s->grpc, "legacy",
            (json_int_t)s->legacy, "fallbacks", (json_int_t)s->fallbacks,
            "matches", (json_int_t)s->matches, "mismatches",
            (json_int_t)s->mismatches, "dropped", (json_int_t)s->dropped,
            "unmirrored", (json_int_t)s->unmirrored);
        json_object_set_new(methods, t->stats[i].method->path + 1, o);
    }
    t->dirty = 0;
    uv_mutex_unlock(&t->lock);
    json_object_set_new(root, "methods", methods);
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    int rc = ORPC_ENOMEM;
    if (tmp != NULL) {
        snprintf(tmp, n, "%s.tmp.%d", path, (int)getpid());
        rc = json_dump_file(root, tmp, JSON_INDENT(1) | JSON_SORT_KEYS) == 0 &&
                     rename(tmp, path) == 0
                 ? 0
                 : ORPC_ESYS;
        if (rc != 0)
            unlink(tmp);
    }
    free(tmp);
    free(path);
    json_decref(root);
    return rc;
}

static void watch_log(orpc_routes *t, orpc_log_level lvl, const char *msg)
{
    if (t->log)
        t->log(lvl, msg, t->log_ud);
}

static void on_reload_signal(uv_signal_t *h, int signum)
{
    orpc_routes *t = h->data;
    char err[512], line[600];
    (void)signum;
    int rc = orpc_routes_reload(t, err, sizeof(err));
    if (rc == 0)
        snprintf(line, sizeof(line), "routes reloaded from %s",
                 t->file ? t->file : "the environment");
    else
        snprintf(line, sizeof(line),
                 "routes reload failed, keeping the "
                 "previous table: %s",
                 err[0] ? err : orpc_strerror(rc));
    watch_log(t, rc == 0 ? ORPC_LOG_INFO : ORPC_LOG_ERROR, line);
}

static void on_tick(uv_timer_t *h)
{
    orpc_routes *t = h->data;
    uv_mutex_lock(&t->lock);
    int dirty = t->dirty;
    uv_mutex_unlock(&t->lock);
    /* ORPC_EINVAL: no stats file configured (now) */
    if (dirty && orpc_routes_write_stats(t) == ORPC_ESYS) {
        char line[600];
        uv_rwlock_rdlock(&t->rw); /* a reload from another thread may swap */
        snprintf(line, sizeof(line), "cannot write routing stats to %s",
                 t->set.stats_file ? t->set.stats_file : "?");
        uv_rwlock_rdunlock(&t->rw);
        watch_log(t, ORPC_LOG_WARN, line);
    }
}

static void on_stop(uv_async_t *h)
{
    orpc_routes *t = h->data;
    if (t->signum)
        uv_close((uv_handle_t *)&t->sig, NULL);
    uv_close((uv_handle_t *)&t->tick, NULL);
    uv_close((uv_handle_t *)&t->stop, NULL);
}

static void close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void watcher_main(void *arg)
{
    orpc_routes *t = arg;
    uv_run(&t->loop, UV_RUN_DEFAULT);
}

int orpc_routes_watch(orpc_routes *t, int reload_signal, orpc_log_fn log,
                      void *log_user_data)
{
    if (t == NULL || t->watching || reload_signal < 0 || reload_signal > 64)
        return ORPC_EINVAL;
    t->log = log;
    t->log_ud = log_user_data;
    t->signum = reload_signal;
    if (uv_loop_init(&t->loop) != 0)
        return ORPC_ESYS;
    t->stop.data = t->sig.data = t->tick.data = t;
    int rc = uv_async_init(&t->loop, &t->stop, on_stop);
    if (rc == 0)
        rc = uv_timer_init(&t->loop, &t->tick);
    if (rc == 0)
        rc = uv_timer_start(&t->tick, on_tick, 1000, 1000);
    if (rc == 0 && reload_signal) {
        rc = uv_signal_init(&t->loop, &t->sig);
        if (rc == 0)
            rc = uv_signal_start(&t->sig, on_reload_signal, reload_signal);
    }
    if (rc == 0)
        rc = uv_thread_create(&t->watcher, watcher_main, t);
    if (rc != 0) {
        uv_walk(&t->loop, close_handle, NULL);
        uv_run(&t->loop, UV_RUN_DEFAULT);
        uv_loop_close(&t->loop);
        return ORPC_ESYS;
    }
    t->watching = 1;
    return 0;
}

static void watch_stop(orpc_routes *t)
{
    if (t->watching) {
        uv_async_send(&t->stop);
        uv_thread_join(&t->watcher);
        uv_loop_close(&t->loop);
        t->watching = 0;
    }
    if (t->dirty && t->set.stats_file != NULL)
        orpc_routes_write_stats(t); /* the last word */
}

/* ---- routed clients ---- */

#define SHADOW_QUEUE 64 /* mirrors waiting at most; more are dropped */
#define MAX_WORKERS 16  /* threads per routed client, started on demand */

struct routed;

/* Work for the client's threads: an asynchronous legacy call or a mirror.
 * |run| does it and frees the task; |discard| frees it undone (the client
 * is going away). */
typedef struct task {
    struct task *next;
    void (*run)(struct routed *r, struct task *t);
    void (*discard)(struct task *t);
    int is_mirror;
} task;

typedef struct mirror {
    task t; /* first: a mirror is a task */
    const orpc_method_desc *m;
    ProtobufCMessage *req;
    int to_legacy; /* the mirror goes to the legacy side (shadow-grpc) */
    orpc_code primary_code;
    char *primary_json; /* the answering side's response as JSON, or NULL */
} mirror;

typedef struct routed {
    const orpc_service_desc *svc;
    /* the task queue and its threads (|lock| and |cond| guard all of it) */
    uv_mutex_t lock;
    uv_cond_t cond;
    task *head, *tail;
    size_t mirrors_queued;
    int stop;
    int n_workers, idle;
    uv_thread_t workers[MAX_WORKERS];
    orpc_log_fn log;
    void *log_ud;
    orpc_routes *routes; /* a reference */
    orpc_channel *channel;
    orpc__legacy_http *legacy;
    orpc__legacy_http *auth;
    orpc__tokens *tokens;
    int64_t legacy_timeout_ms;
    int max_retries;        /* legacy retries of repeatable calls */
    int64_t retry_delay_ms; /* between them */
    orpc_json_opts jo;
} routed;

static void mirror_free(mirror *mi)
{
    protobuf_c_message_free_unpacked(mi->req, NULL);
    free(mi->primary_json);
    free(mi);
}

static void worker_main(void *arg)
{
    routed *r = arg;
    uv_mutex_lock(&r->lock);
    for (;;) {
        r->idle++;
        while (r->head == NULL && !r->stop)
            uv_cond_wait(&r->cond, &r->lock);
        r->idle--;
        if (r->stop)
            break;
        task *t = r->head;
        r->head = t->next;
        if (r->head == NULL)
            r->tail = NULL;
        if (t->is_mirror)
            r->mirrors_queued--;
        uv_mutex_unlock(&r->lock);
        t->run(r, t);
        uv_mutex_lock(&r->lock);
    }
    uv_mutex_unlock(&r->lock);
}

/* Queues |t|, starting a thread when none is idle and fewer than
 * MAX_WORKERS run.  A mirror is refused (1) when SHADOW_QUEUE of them
 * wait.  Returns 0, 1, or ORPC_ESYS when no thread could be started. */
static int submit(routed *r, task *t)
{
    uv_mutex_lock(&r->lock);
    if (t->is_mirror && r->mirrors_queued >= SHADOW_QUEUE) {
        uv_mutex_unlock(&r->lock);
        return 1;
    }
    if (r->idle == 0 && r->n_workers < MAX_WORKERS &&
        uv_thread_create(&r->workers[r->n_workers], worker_main, r) == 0)
        r->n_workers++;
    if (r->n_workers == 0) {
        uv_mutex_unlock(&r->lock);
        return ORPC_ESYS;
    }
    t->next = NULL;
    if (r->tail)
        r->tail->next = t;
    else
        r->head = t;
    r->tail = t;
    if (t->is_mirror)
        r->mirrors_queued++;
    uv_cond_signal(&r->cond);
    uv_mutex_unlock(&r->lock);
    return 0;
}

/* An independent copy of |m| (the caller may reuse its own at once), or
 * NULL. */
static ProtobufCMessage *copy_message(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return NULL;
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *c =
        protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
    free(buf);
    return c;
}

static void routed_free(void *ud)
{
    routed *r = ud;
    if (r == NULL)
        return;
    uv_mutex_lock(&r->lock);
    r->stop = 1;
    uv_cond_broadcast(&r->cond);
    uv_mutex_unlock(&r->lock);
    for (int i = 0; i < r->n_workers; i++)
        uv_thread_join(&r->workers[i]);
    while (r->head) {
        task *t = r->head;
        r->head = t->next;
        t->discard(t);
    }
    uv_mutex_destroy(&r->lock);
    uv_cond_destroy(&r->cond);
    orpc__tokens_free(r->tokens);
    orpc__legacy_http_free(r->legacy);
    orpc__legacy_http_free(r->auth);
    orpc_channel_unref(r->channel);
    orpc_routes_unref(r->routes);
    free(r);
}

static int has_auth_header(const orpc__http_request *hr)
{
    for (size_t i = 0; i < hr->n_headers; i++)
        if (strncasecmp(hr->headers[i], "authorization:", 14) == 0)
            return 1;
    return 0;
}

/* May a failed call of |m| be sent again?  Only when doing it twice is the
 * same as doing it once. */
static int repeatable(const orpc_method_desc *m)
{
    if (m->idempotency != ORPC_IDEMPOTENCY_UNKNOWN)
        return 1;
    const char *v = m->http->verb;
    return strcmp(v, "GET") == 0 || strcmp(v, "PUT") == 0 ||
           strcmp(v, "DELETE") == 0;
}

static orpc_status legacy_invoke(routed *r, const orpc_method_desc *m,
                                 const ProtobufCMessage *req,
                                 ProtobufCMessage **resp,
                                 const orpc_call_opts *opts)
{
    orpc__http_request hr;
    orpc__http_reply reply = {0};
    if (m->http == NULL)
        return orpc_status_errorf(ORPC_UNIMPLEMENTED,
                                  "%s has no legacy endpoint (no "
                                  "google.api.http rule)",
                                  m->path);
    if (r->legacy == NULL)
        return orpc_status_errorf(ORPC_UNAVAILABLE,
                                  "%s: no legacy base URL configured", m->path);
    orpc_status st = orpc__http_build(m, NULL, req, &r->jo, &hr);
    if (st.code != ORPC_OK)
        return st;
    int64_t timeout =
        opts && opts->timeout_ms > 0 ? opts->timeout_ms : r->legacy_timeout_ms;
    if (r->tokens == NULL && !m->legacy_no_auth && !has_auth_header(&hr)) {
        /* routed here by a reload, made without credentials: never send a
         * call the legacy service would take as anonymous */
        orpc__http_request_clear(&hr);
        return orpc_status_errorf(ORPC_UNAUTHENTICATED,
                                  "%s: no credentials for legacy calls (the "
                                  "client was made without a username and "
                                  "password)",
                                  m->path);
    }
    int64_t deadline = (int64_t)(uv_hrtime() / 1000000) + timeout;
    const char *const *hdrs = (const char *const *)hr.headers;
    for (int attempt = 0;; attempt++) {
        if (m->legacy_no_auth || has_auth_header(&hr))
            st = orpc__legacy_http_do(r->legacy, hr.verb, hr.path, hdrs,
                                      hr.n_headers, hr.body, hr.body_len,
                                      timeout, &reply);
        else
            st = orpc__legacy_call_authed(r->legacy, r->tokens, hr.verb,
                                          hr.path, hdrs, hr.n_headers, hr.body,
                                          hr.body_len, timeout, &reply);
        if (st.code == ORPC_OK && (reply.status < 200 || reply.status > 299))
            st = orpc__legacy_status(&reply);
        /* Today's clients retry a failed call SERVICE_HTTP_MAX_RETRIES
         * times; orpc does so only where a repeat is harmless, and never
         * past the call's deadline. */
        int64_t now = (int64_t)(uv_hrtime() / 1000000);
        if (st.code != ORPC_UNAVAILABLE || attempt >= r->max_retries ||
            !repeatable(m) || now + r->retry_delay_ms >= deadline)
            break;
        orpc_status_clear(&st);
        orpc__http_reply_clear(&reply);
        if (r->retry_delay_ms > 0)
            uv_sleep((unsigned)r->retry_delay_ms);
        timeout = deadline - (int64_t)(uv_hrtime() / 1000000);
        if (timeout <= 0)
            timeout = 1;
    }
    orpc__http_request_clear(&hr);
    if (st.code == ORPC_OK)
        st = orpc__http_decode_response(m, NULL, reply.body, reply.len, &r->jo,
                                        resp);
    orpc__http_reply_clear(&reply);
    return st;
}

/* Drops dotted |path| ("a.b") from the JSON object |v|. */
static void drop_path(json_t *v, const char *path)
{
    char head[256];
    const char *dot = strchr(path, '.');
    size_t n = dot ? (size_t)(dot - path) : strlen(path);
    if (!json_is_object(v) || n == 0 || n >= sizeof(head))
        return;
    memcpy(head, path, n);
    head[n] = '\0';
    if (dot == NULL)
        json_object_del(v, head);
    else
        drop_path(json_object_get(v, head), dot + 1);
}

static void drop_ignored(json_t *v, const char *list)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", list ? list : "");
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && end[-1] == ' ')
            *--end = '\0';
        drop_path(v, tok);
    }
}

/* First key path where |a| (the answering side, named |an|) and |b| (the
 * mirror, |bn|) differ, into |out| (a sample). */
static void first_diff(json_t *a, json_t *b, const char *at, const char *an,
                       const char *bn, char *out, size_t len)
{
    if (json_is_object(a) && json_is_object(b)) {
        const char *k;
        json_t *va;
        json_object_foreach(a, k, va)
        {
            json_t *vb = json_object_get(b, k);
            if (vb == NULL || !json_equal(va, vb)) {
                char sub[512];
                snprintf(sub, sizeof(sub), "%s.%s", at, k);
                if (vb == NULL)
                    snprintf(out, len, "%s: only on the %s side", sub, an);
                else
                    first_diff(va, vb, sub, an, bn, out, len);
                return;
            }
        }
        json_object_foreach(b, k, va) if (json_object_get(a, k) == NULL)
        {
            snprintf(out, len, "%s.%s: only on the %s side", at, k, bn);
            return;
        }
    }
    snprintf(out, len, "%s differs", at);
}

static void shadow_compare(routed *r, mirror *mi)
{
    ProtobufCMessage *resp = NULL;
    orpc_call_opts o = {.timeout_ms = r->legacy_timeout_ms};
    const char *an = mi->to_legacy ? "gRPC" : "legacy";
    const char *bn = mi->to_legacy ? "legacy" : "gRPC";
    orpc_status st = mi->to_legacy ? legacy_invoke(r, mi->m, mi->req, &resp, &o)
                                   : orpc_channel_invoke(r->channel, mi->m,
                                                         mi->req, &resp, &o);
    int match = st.code == mi->primary_code;
    char why[600] = "";
    if (!match)
        snprintf(why, sizeof(why), "status: %s %s, %s %s", an,
                 orpc_code_name(mi->primary_code), bn, orpc_code_name(st.code));
    if (match && st.code == ORPC_OK) {
        char *mine = NULL, ign[1024];
        json_error_t e;
        json_t *a =
            mi->primary_json ? json_loads(mi->primary_json, 0, &e) : NULL;
        json_t *b = NULL;
        orpc_json_opts jo = {.emit_defaults = 1};
        if (orpc_json_encode(&mine, NULL, mi->m->output, resp, &jo, NULL) == 0)
            b = json_loads(mine, 0, &e);
        ignored_fields(r->routes, mi->m, ign, sizeof(ign));
        if (a && b) {
            drop_ignored(a, ign);
            drop_ignored(b, ign);
            match = json_equal(a, b);
            if (!match)
                first_diff(a, b, "$", an, bn, why, sizeof(why));
        } else {
            match = 0;
            snprintf(why, sizeof(why), "a response would not encode");
        }
        json_decref(a);
        json_decref(b);
        free(mine);
    }
    count(r->routes, mi->m, match ? C_MATCH : C_MISMATCH);
    if (!match && r->log) {
        orpc_route_stats s = {0};
        orpc_routes_stats(r->routes, mi->m, &s);
        /* a sample: the 1st, 2nd, 4th, 8th... mismatch of a method */
        if ((s.mismatches & (s.mismatches - 1)) == 0) {
            char line[800];
            snprintf(line, sizeof(line), "shadow mismatch #%llu on %s: %s",
                     (unsigned long long)s.mismatches, mi->m->path, why);
            r->log(ORPC_LOG_WARN, line, r->log_ud);
        }
    }
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    orpc_status_clear(&st);
}

static void mirror_run(routed *r, task *t)
{
    mirror *mi = (mirror *)t;
    shadow_compare(r, mi);
    mirror_free(mi);
}

static void mirror_discard(task *t)
{
    mirror_free((mirror *)t);
}

/* Hands a copy of the call to the client's threads; drops it when
 * SHADOW_QUEUE mirrors wait already, so the caller never waits for the
 * shadow side. */
static void mirror_call(routed *r, const orpc_method_desc *m,
                        const ProtobufCMessage *req, int to_legacy,
                        orpc_code code, const ProtobufCMessage *resp)
{
    if (m->idempotency != ORPC_NO_SIDE_EFFECTS &&
        strcmp(m->http->verb, "GET") != 0) {
        count(r->routes, m, C_UNMIRRORED); /* it would happen twice */
        return;
    }
    if (to_legacy ? r->legacy == NULL : r->channel == NULL) {
        count(r->routes, m, C_DROPPED); /* nowhere to mirror to */
        return;
    }
    mirror *mi = calloc(1, sizeof(*mi));
    if (mi == NULL)
        return;
    mi->req = copy_message(req);
    orpc_json_opts jo = {.emit_defaults = 1};
    if (resp != NULL && orpc_json_encode(&mi->primary_json, NULL, m->output,
                                         resp, &jo, NULL) != 0)
        mi->primary_json = NULL;
    if (mi->req == NULL) {
        mirror_free(mi);
        return;
    }
    mi->t.run = mirror_run;
    mi->t.discard = mirror_discard;
    mi->t.is_mirror = 1;
    mi->m = m;
    mi->to_legacy = to_legacy;
    mi->primary_code = code;
    if (submit(r, &mi->t) != 0) {
        count(r->routes, m, C_DROPPED);
        mirror_free(mi);
    }
}

static void served(routed *r, const orpc_method_desc *m,
                   const orpc_call_opts *opts, orpc_served_by by, counter c)
{
    if (opts && opts->served_by)
        *opts->served_by = by;
    count(r->routes, m, c);
}

static orpc_status via_legacy(routed *r, const orpc_method_desc *m,
                              const ProtobufCMessage *req,
                              ProtobufCMessage **resp,
                              const orpc_call_opts *opts, counter c)
{
    orpc_status st = legacy_invoke(r, m, req, resp, opts);
    served(r, m, opts, ORPC_SERVED_LEGACY, c);
    return st;
}

static orpc_status via_grpc(routed *r, const orpc_method_desc *m,
                            const ProtobufCMessage *req,
                            ProtobufCMessage **resp, const orpc_call_opts *opts)
{
    if (r->channel == NULL)
        return orpc_status_errorf(ORPC_UNAVAILABLE,
                                  "%s is routed to gRPC but the client has no "
                                  "channel (no gRPC target configured)",
                                  m->path);
    orpc_status st = orpc_channel_invoke(r->channel, m, req, resp, opts);
    served(r, m, opts, ORPC_SERVED_GRPC, C_GRPC);
    return st;
}

static orpc_status routed_invoke(const orpc_method_desc *m,
                                 const ProtobufCMessage *req,
                                 ProtobufCMessage **resp,
                                 const orpc_call_opts *opts, void *ud)
{
    routed *r = ud;
    orpc_status st;
    if (opts && opts->served_by)
        *opts->served_by = ORPC_SERVED_NONE;
    switch (orpc_routes_mode(r->routes, m)) {
    case ORPC_ROUTE_GRPC:
        return via_grpc(r, m, req, resp, opts);
    case ORPC_ROUTE_SHADOW:
        /* the legacy side answers; gRPC is asked off the caller's path */
        st = via_legacy(r, m, req, resp, opts, C_LEGACY);
        mirror_call(r, m, req, 0, st.code, st.code == ORPC_OK ? *resp : NULL);
        return st;
    case ORPC_ROUTE_SHADOW_GRPC:
        st = via_grpc(r, m, req, resp, opts);
        mirror_call(r, m, req, 1, st.code, st.code == ORPC_OK ? *resp : NULL);
        return st;
    case ORPC_ROUTE_FALLBACK:
        if (r->channel == NULL)
            return via_legacy(r, m, req, resp, opts, C_FALLBACK);
        st = orpc_channel_invoke(r->channel, m, req, resp, opts);
        if (st.code == ORPC_UNAVAILABLE || st.code == ORPC_UNIMPLEMENTED) {
            /* nothing came back from the gRPC side: the legacy one answers */
            orpc_status_clear(&st);
            return via_legacy(r, m, req, resp, opts, C_FALLBACK);
        }
        served(r, m, opts, ORPC_SERVED_GRPC, C_GRPC);
        return st;
    case ORPC_ROUTE_LEGACY:
    default:
        return via_legacy(r, m, req, resp, opts, C_LEGACY);
    }
}

typedef struct async_job {
    task t; /* first: a job is a task */
    const orpc_method_desc *m;
    ProtobufCMessage *req; /* a copy */
    orpc_metadata *md;     /* a copy, or NULL */
    orpc_call_opts opts;
    int has_opts;
    orpc_unary_trampoline done;
    orpc_fn typed_cb;
    void *cb_ud;
} async_job;

static void async_job_free(async_job *j)
{
    protobuf_c_message_free_unpacked(j->req, NULL);
    orpc_metadata_free(j->md);
    free(j);
}

static void async_run(routed *r, task *t)
{
    async_job *j = (async_job *)t;
    ProtobufCMessage *resp = NULL;
    orpc_status st =
        routed_invoke(j->m, j->req, &resp, j->has_opts ? &j->opts : NULL, r);
    j->done(&st, resp, j->typed_cb, j->cb_ud);
    orpc_status_clear(&st);
    async_job_free(j);
}

/* The client was freed with the call still queued (a caller's bug: calls
 * must finish first); it still gets its one callback. */
static void async_discard(task *t)
{
    async_job *j = (async_job *)t;
    orpc_status st = orpc_status_new(ORPC_CANCELLED, "the client was freed");
    j->done(&st, NULL, j->typed_cb, j->cb_ud);
    orpc_status_clear(&st);
    async_job_free(j);
}

/* Copies |md| into |*out| (NULL when empty).  Returns 0 or ORPC_ENOMEM. */
static int copy_metadata(const orpc_metadata *md, orpc_metadata **out)
{
    *out = NULL;
    if (md == NULL || orpc_metadata_count(md) == 0)
        return 0;
    if (orpc_metadata_new(out, NULL) != 0)
        return ORPC_ENOMEM;
    for (size_t i = 0; i < orpc_metadata_count(md); i++) {
        const char *k;
        const uint8_t *v;
        size_t len;
        if (orpc_metadata_at(md, i, &k, &v, &len) != 0 ||
            orpc_metadata_add(*out, k, v, len) != 0) {
            orpc_metadata_free(*out);
            *out = NULL;
            return ORPC_ENOMEM;
        }
    }
    return 0;
}

static int routed_invoke_async(const orpc_method_desc *m,
                               const ProtobufCMessage *req,
                               const orpc_call_opts *opts,
                               orpc_unary_trampoline done, orpc_fn typed_cb,
                               void *cb_ud, void *ud)
{
    routed *r = ud;
    if (orpc_routes_mode(r->routes, m) == ORPC_ROUTE_GRPC && r->channel) {
        int rc = orpc_channel_invoke_async_typed(r->channel, m, req, opts, done,
                                                 typed_cb, cb_ud);
        if (rc == 0)
            count(r->routes, m, C_GRPC);
        return rc;
    }
    /* The legacy transport blocks: the call runs on one of the client's
     * threads, with copies of what the caller may reuse at once. */
    async_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return ORPC_ENOMEM;
    j->req = copy_message(req);
    if (j->req == NULL ||
        (opts && copy_metadata(opts->metadata, &j->md) != 0)) {
        async_job_free(j);
        return ORPC_ENOMEM;
    }
    j->t.run = async_run;
    j->t.discard = async_discard;
    j->m = m;
    if (opts) {
        j->opts = *opts;
        j->opts.metadata = j->md;
        j->has_opts = 1;
    }
    j->done = done;
    j->typed_cb = typed_cb;
    j->cb_ud = cb_ud;
    int rc = submit(r, &j->t);
    if (rc != 0) {
        async_job_free(j);
        return rc;
    }
    return 0;
}

static int routed_call_start(orpc_call **out, const orpc_method_desc *m,
                             const ProtobufCMessage *req,
                             const orpc_call_opts *opts, void *ud)
{
    routed *r = ud;
    orpc_route_mode mode = orpc_routes_mode(r->routes, m);
    /* Streams travel over gRPC only: no legacy endpoint streams, and a
     * streaming method has no HTTP rule (so its mode is always grpc). */
    if (mode == ORPC_ROUTE_LEGACY || r->channel == NULL)
        return ORPC_ENOTSUP;
    int rc = orpc_channel_call_start(out, r->channel, m, req, opts);
    if (rc == 0)
        count(r->routes, m, C_GRPC);
    return rc;
}

static int routed_call_start_async(orpc_call **out, const orpc_method_desc *m,
                                   const ProtobufCMessage *req,
                                   const orpc_call_opts *opts,
                                   const orpc_call_callbacks *cbs, void *cb_ud,
                                   void *ud)
{
    routed *r = ud;
    /* As routed_call_start(): streams travel over gRPC only. */
    if (orpc_routes_mode(r->routes, m) == ORPC_ROUTE_LEGACY ||
        r->channel == NULL)
        return ORPC_ENOTSUP;
    int rc = orpc_channel_call_start_async(out, r->channel, m, req, opts, cbs,
                                           cb_ud);
    if (rc == 0)
        count(r->routes, m, C_GRPC);
    return rc;
}

static const orpc_invoker routed_invoker = {routed_invoke, routed_invoke_async,
                                            routed_call_start, routed_free,
                                            routed_call_start_async};

/* Does any method of |s| reach a legacy endpoint that wants a token? */
static int needs_token(const orpc_routes *t, const orpc_service_desc *s)
{
    for (size_t i = 0; i < s->n_methods; i++) {
        const orpc_method_desc *m = orpc_service_method(s, i);
        if (m == NULL || m->http == NULL || m->legacy_no_auth ||
            orpc_routes_mode(t, m) == ORPC_ROUTE_GRPC)
            continue;
        int header_auth = 0;
        for (size_t f = 0; f < m->input->n_fields; f++) {
            const orpc_legacy_header *h = m->input->fields[f].legacy_header;
            if (h && strcasecmp(h->name, "Authorization") == 0)
                header_auth = 1;
        }
        if (!header_auth)
            return 1;
    }
    return 0;
}

/* |name| as an integer in [lo, hi]; 0 (the transport's default) when unset
 * or out of range. */
static long env_long(const char *name, long lo, long hi)
{
    const char *v = getenv(name);
    char *end;
    long n = v && *v ? strtol(v, &end, 10) : 0;
    return v && *v && *end == '\0' && n >= lo && n <= hi ? n : 0;
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = name ? getenv(name) : NULL;
    return v && *v ? v : dflt;
}

int orpc_routed_client_new(orpc_client **out, const orpc_service_desc *s,
                           const orpc_routed_opts *o)
{
    orpc_routed_opts none = {0};
    if (out == NULL || s == NULL || s->magic != ORPC_SERVICE_DESC_MAGIC)
        return ORPC_EINVAL;
    if (o == NULL)
        o = &none;
    routed *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return ORPC_ENOMEM;
    r->svc = s;
    r->routes = orpc_routes_ref((orpc_routes *)o->routes);
    uv_mutex_init(&r->lock);
    uv_cond_init(&r->cond);
    r->log = o->log;
    r->log_ud = o->log_user_data;
    r->jo.legacy = 1;
    r->jo.ignore_unknown = 1; /* legacy replies carry more than the proto */
    r->legacy_timeout_ms = o->legacy_timeout_ms;
    if (r->legacy_timeout_ms <= 0) {
        const char *t = getenv("SERVICE_HTTP_TIMEOUT");
        long secs = t ? strtol(t, NULL, 10) : 0;
        r->legacy_timeout_ms = (secs > 0 && secs < 86400 ? secs : 30) * 1000;
    }
    r->max_retries = o->legacy_max_retries;
    if (r->max_retries == 0) {
        const char *t = getenv("SERVICE_HTTP_MAX_RETRIES");
        long n = t && *t ? strtol(t, NULL, 10) : 3;
        r->max_retries = n >= 0 && n <= 10 ? (int)n : 3;
    } else if (r->max_retries < 0 || r->max_retries > 10) {
        r->max_retries = r->max_retries < 0 ? 0 : 10;
    }
    r->retry_delay_ms = o->legacy_retry_delay_ms;
    if (r->retry_delay_ms <= 0) {
        const char *t = getenv("SERVICE_HTTP_RETRY_DELAY");
        double secs = t && *t ? strtod(t, NULL) : 1.0;
        r->retry_delay_ms =
            secs >= 0 && secs <= 60 ? (int64_t)(secs * 1000) : 1000;
    }
    if (o->channel)
        r->channel = orpc_channel_ref(o->channel);
    char ua[160];
    snprintf(ua, sizeof(ua), "OpsConductor-%s/1.0.0",
             o->identity ? o->identity : "orpc");
    /* the pool settings of today's clients (LEGACY_API.md), bounded */
    orpc__http_opts ho = {
        .ca_file = o->ca_file,
        .user_agent = ua,
        .max_connections = env_long("SERVICE_HTTP_MAX_CONNECTIONS", 1, 10000),
        .max_keepalive =
            env_long("SERVICE_HTTP_MAX_KEEPALIVE_CONNECTIONS", 1, 10000),
        .connect_timeout_ms =
            env_long("SERVICE_HTTP_CONNECT_TIMEOUT", 1, 600) * 1000};
    const char *base = o->legacy_url
                           ? o->legacy_url
                           : env_or(s->legacy_url_env, s->legacy_default_url);
    int rc = 0;
    if (base != NULL)
        rc = orpc__legacy_http_new(&r->legacy, base, &ho);
    /* Credentials are taken whenever they are configured, not only when
     * the table routes a method to a legacy endpoint now: a reload may. */
    char uname[160] = "", pname[160] = "";
    if (o->identity) {
        char id[128] = "";
        for (size_t i = 0; o->identity[i] && i + 1 < sizeof(id); i++)
            id[i] = o->identity[i] == '-'
                        ? '_'
                        : (char)toupper((unsigned char)o->identity[i]);
        snprintf(uname, sizeof(uname), "%s_USERNAME", id);
        snprintf(pname, sizeof(pname), "%s_PASSWORD", id);
    }
    const char *user = o->username ? o->username : env_or(uname, NULL);
    const char *pass = o->password ? o->password : env_or(pname, NULL);
    if (rc == 0 && (user == NULL || pass == NULL)) {
        if (needs_token(o->routes, s))
            rc = ORPC_ECONFIG; /* no default account, ever */
    } else if (rc == 0) {
        const char *auth_url = o->auth_url ? o->auth_url
                                           : env_or("AUTH_SERVICE_URL",
                                                    "http://auth-service:3001");
        rc = orpc__legacy_http_new(&r->auth, auth_url, &ho);
        if (rc == 0)
            rc = orpc__tokens_new(&r->tokens, r->auth, user, pass);
    }
    if (rc != 0) {
        routed_free(r);
        return rc;
    }
    return orpc_client_new_with_invoker(out, s, &routed_invoker, r, NULL);
}
