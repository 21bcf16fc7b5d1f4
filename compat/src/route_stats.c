/*
 * route_stats.c — the per-method counters of a routing table, and the
 * stats file they are written to (`orpc routes` sums those files up).
 *
 * Design notes: counters are kept per method descriptor in a small array
 * under the table's |lock| (one entry per method ever called; a call adds
 * one), outside the route set, so a reload keeps them.  The file is
 * written whole to a fresh "<file>.tmp.XXXXXX" (mkstemp) and renamed over
 * the old one: a reader sees the previous counters or the new ones, never
 * a torn file, and two writers never share a temporary file.
 *
 * Locking theory: see router_internal.h.  The counters are copied into a
 * JSON tree under |lock|; the file is written with no lock held.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include <jansson.h>
#include <uv.h>

#include <orpc/compat/router.h>
#include <orpc/error.h>

#include "router_internal.h"

/* ---- counters ---- */

void orpc__routes_count(const orpc_routes *ct, const orpc_method_desc *m,
                        counter c)
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

/* ---- the stats file ---- */

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
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    int rc = ORPC_ENOMEM;
    if (tmp != NULL) {
        /* a name of its own per write, so two writers (the watcher and a
         * manual orpc_routes_write_stats()) never share a temporary file */
        snprintf(tmp, n, "%s.tmp.XXXXXX", path);
        int fd = mkstemp(tmp);
        rc = ORPC_ESYS;
        if (fd >= 0) {
            int ok =
                fchmod(fd, 0644) == 0 &&
                json_dumpfd(root, fd, JSON_INDENT(1) | JSON_SORT_KEYS) == 0;
            ok = close(fd) == 0 && ok;
            if (ok && rename(tmp, path) == 0)
                rc = 0;
            else
                unlink(tmp);
        }
    }
    free(tmp);
    free(path);
    json_decref(root);
    return rc;
}
