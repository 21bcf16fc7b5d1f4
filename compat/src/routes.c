/*
 * routes.c — the routing table: mode names, the file and environment
 * parser, load and reload, references, the mode lookup, and the watcher
 * thread that reloads on a signal and writes the counters once a second;
 * also orpc__router_report(), the one way the router's public calls hand a
 * failure back (the caller's orpc_error_detail, else a logger, else stderr
 * in the runtime's format, so nothing is reported twice).
 *
 * Design notes: the table is a snapshot.  The file and the ORPC_ROUTE_*
 * environment are read when it is loaded (start-up, or a reload), never
 * while calls run: a reload parses into a fresh route_set and swaps it in
 * under the write lock, so a call sees the old routes or the new ones,
 * never half of each, and a file that does not parse changes nothing.
 * Lookups scan the set from its end (the last line for a key wins); a set
 * is a few dozen lines, so a scan beats an index kept in step with
 * reloads.  The watcher is a libuv loop on a thread of its own: the signal
 * arrives through libuv (which shares it with the process's other loops),
 * and the stats timer needs no loop of the caller's.
 *
 * Locking theory: see router_internal.h (|rw| for the routes, |lock| for
 * the references and the counters).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <uv.h>

#include <orpc/compat/router.h>
#include <orpc/error.h>

#include "common/detail.h"
#include "common/log.h"
#include "router_internal.h"

extern char **environ;

/* ---- modes and tables ---- */

const char *orpc_route_mode_name(orpc_route_mode mode)
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

#define MODES_HINT "(grpc, legacy, fallback, shadow, shadow-grpc)"
#define KEYS_HINT "(*, pkg.Service or pkg.Service/Method)"

/* At most |max| bytes of [s, s + n) into |buf| (|max| + 4 bytes) for a
 * message: control and non-ASCII bytes as '?', "..." when cut, so that no
 * raw byte of a file reaches a log. */
static const char *shown(char *buf, size_t max, const char *s, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[j++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
    }
    if (n > max) {
        memcpy(buf + j, "...", 3);
        j += 3;
    }
    buf[j] = '\0';
    return buf;
}

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

/* Each ORPC_ECONFIG names the file and line, the setting and what is wrong
 * with it, in |d|. */
static int load_file(route_set *t, const char *path, orpc_error_detail *d)
{
    FILE *f = fopen(path, "r");
    char line[1024], ks[104], vs[44];
    int lineno = 0, rc = 0;
    if (f == NULL)
        return orpc__detail_set(d, ORPC_ECONFIG, "%s: cannot open: %s", path,
                                uv_strerror(uv_translate_sys_error(errno)));
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (lineno > 100000) {
            rc = orpc__detail_set(
                d, ORPC_ECONFIG, "%s:%d: more than 100000 lines", path, lineno);
            break;
        }
        if (strchr(line, '\n') == NULL && !feof(f)) {
            rc = orpc__detail_set(d, ORPC_ECONFIG,
                                  "%s:%d: line longer than %d bytes", path,
                                  lineno, (int)sizeof(line) - 2);
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
            rc = orpc__detail_set(
                d, ORPC_ECONFIG,
                "%s:%d: \"%s\": expected `key = mode` (or `ignore key = "
                "fields`, `stats_file = path`)",
                path, lineno, shown(vs, 40, p, (size_t)(end - p)));
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
                rc = orpc__detail_set(
                    d, ORPC_ECONFIG,
                    "%s:%d: ignore \"%s\": not a key " KEYS_HINT, path, lineno,
                    shown(ks, 100, k, (size_t)(kend - k)));
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
            if (vend == v)
                rc = orpc__detail_set(d, ORPC_ECONFIG,
                                      "%s:%d: stats_file: no path after '='",
                                      path, lineno);
            else
                rc = set_stats_file(t, v, (size_t)(vend - v));
            continue;
        }
        orpc_route_mode mode;
        if (kend == k) {
            rc = orpc__detail_set(d, ORPC_ECONFIG,
                                  "%s:%d: no key before '=' " KEYS_HINT, path,
                                  lineno);
            break;
        }
        if (!valid_key(k, (size_t)(kend - k))) {
            rc = orpc__detail_set(
                d, ORPC_ECONFIG, "%s:%d: \"%s\": not a key " KEYS_HINT, path,
                lineno, shown(ks, 100, k, (size_t)(kend - k)));
            break;
        }
        if (vend == v) {
            rc = orpc__detail_set(
                d, ORPC_ECONFIG, "%s:%d: %s: no mode after '=' " MODES_HINT,
                path, lineno, shown(ks, 100, k, (size_t)(kend - k)));
            break;
        }
        if (parse_mode(v, (size_t)(vend - v), &mode) != 0) {
            rc = orpc__detail_set(
                d, ORPC_ECONFIG, "%s:%d: %s: unknown mode \"%s\" " MODES_HINT,
                path, lineno, shown(ks, 100, k, (size_t)(kend - k)),
                shown(vs, 40, v, (size_t)(vend - v)));
            break;
        }
        rc = add_route(t, k, (size_t)(kend - k), mode);
    }
    fclose(f);
    return rc;
}

/* Reads |file| (NULL: none) and the environment into |t|; |d| says why
 * not (ORPC_ECONFIG only: the caller words the others). */
static int load_set(route_set *t, const char *file, orpc_error_detail *d)
{
    int rc = 0;
    if (file != NULL)
        rc = load_file(t, file, d);
    /* the environment's overrides, as a snapshot */
    for (char **e = environ; rc == 0 && e && *e; e++) {
        if (strncmp(*e, "ORPC_ROUTE_", 11) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        orpc_route_mode mode;
        if (eq == NULL)
            continue;
        if (parse_mode(eq + 1, strlen(eq + 1), &mode) != 0) {
            char ks[104], vs[44];
            rc = orpc__detail_set(d, ORPC_ECONFIG,
                                  "%s: unknown mode \"%s\" " MODES_HINT,
                                  shown(ks, 100, *e, (size_t)(eq - *e)),
                                  shown(vs, 40, eq + 1, strlen(eq + 1)));
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

int orpc__router_report(orpc_error_detail *d, int code,
                        orpc_error_detail *detail, orpc_log_fn log,
                        void *log_ud)
{
    if (d->code == 0)
        orpc__detail_set(d, code, "%s", orpc_strerror(code));
    return orpc__fail(detail, log, log_ud, "router", code, "%s", d->message);
}

/* orpc__router_report() through the watcher's logger, if any. */
static int report(orpc_routes *t, orpc_error_detail *d, int code,
                  orpc_error_detail *detail)
{
    orpc_log_fn log = NULL;
    void *log_ud = NULL;
    if (t != NULL && detail == NULL) {
        uv_mutex_lock(&t->lock);
        log = t->log;
        log_ud = t->log_ud;
        uv_mutex_unlock(&t->lock);
    }
    return orpc__router_report(d, code, detail, log, log_ud);
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

int orpc_routes_load(orpc_routes **out, const char *config_file,
                     orpc_error_detail *detail)
{
    orpc_error_detail d = {0};
    if (out == NULL) {
        orpc__detail_set(&d, ORPC_EINVAL, "orpc_routes_load: |out| is NULL");
        return report(NULL, &d, ORPC_EINVAL, detail);
    }
    orpc_routes *t;
    int rc = orpc_routes_new(&t);
    if (rc != 0)
        return report(NULL, &d, rc, detail);
    t->loaded = 1;
    if (config_file != NULL && (t->file = strdup(config_file)) == NULL)
        rc = ORPC_ENOMEM;
    if (rc == 0)
        rc = load_set(&t->set, config_file, &d);
    if (rc != 0) {
        orpc_routes_unref(t);
        return report(NULL, &d, rc, detail);
    }
    *out = t;
    return 0;
}

int orpc_routes_reload(orpc_routes *t, orpc_error_detail *detail)
{
    orpc_error_detail d = {0};
    if (t == NULL || !t->loaded) {
        orpc__detail_set(&d, ORPC_EINVAL, "orpc_routes_reload: %s",
                         t == NULL ? "|routes| is NULL"
                                   : "the table was made with "
                                     "orpc_routes_new(), not loaded");
        return report(t, &d, ORPC_EINVAL, detail);
    }
    route_set fresh = {0};
    int rc = load_set(&fresh, t->file, &d);
    if (rc != 0) {
        set_clear(&fresh);
        return report(t, &d, rc, detail);
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
    if (m != NULL && (m->http == NULL || m->kind != ORPC_CALL_UNARY))
        return ORPC_ROUTE_GRPC; /* no legacy endpoint to go to (streams
                                   travel over gRPC only) */
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

/* Copies |s| (read under the table's lock) into |buf|. */
static int copy_name(const orpc_routes *ct, int glob, char *buf, size_t len)
{
    orpc_routes *t = (orpc_routes *)ct;
    if (t == NULL || buf == NULL || len == 0)
        return ORPC_EINVAL;
    buf[0] = '\0';
    uv_rwlock_rdlock(&t->rw);
    const char *s = glob ? t->set.stats_glob : t->set.stats_file;
    int rc = s == NULL ? ORPC_ENOTFOUND : strlen(s) >= len ? ORPC_ETOOBIG : 0;
    if (rc == 0)
        memcpy(buf, s, strlen(s) + 1);
    uv_rwlock_rdunlock(&t->rw);
    return rc;
}

int orpc_routes_stats_file(const orpc_routes *t, char *buf, size_t len)
{
    return copy_name(t, 0, buf, len);
}

int orpc_routes_stats_glob(const orpc_routes *t, char *buf, size_t len)
{
    return copy_name(t, 1, buf, len);
}

/* Copies the ignore list of |m| into |buf| (empty: none). */
void orpc__routes_ignored_fields(const orpc_routes *ct,
                                 const orpc_method_desc *m, char *buf,
                                 size_t len)
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

/* ---- the watcher ---- */

static void watch_log(orpc_routes *t, orpc_log_level lvl, const char *msg)
{
    if (t->log)
        t->log(lvl, msg, t->log_ud);
}

static void on_reload_signal(uv_signal_t *h, int signum)
{
    orpc_routes *t = h->data;
    orpc_error_detail d = {0};
    char line[600];
    (void)signum;
    int rc = orpc_routes_reload(t, &d);
    if (rc == 0)
        snprintf(line, sizeof(line), "routes reloaded from %s",
                 t->file ? t->file : "the environment");
    else
        snprintf(line, sizeof(line),
                 "routes reload failed, keeping the "
                 "previous table: %s",
                 d.message);
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
    uv_mutex_lock(&t->lock); /* orpc_routes_reload() reads them */
    t->log = log;
    t->log_ud = log_user_data;
    uv_mutex_unlock(&t->lock);
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
