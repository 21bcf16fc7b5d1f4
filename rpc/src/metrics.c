/*
 * metrics.c — the metrics registry (orpc/metrics.h): per-method call
 * series fed by the metrics interceptor, counters the application (and the
 * routed clients) add to by name, collectors that the runtime's objects
 * register (metrics_internal.h), and the Prometheus text page (0.0.4) that
 * renders them all.
 *
 * Design notes:
 * - The hot path is the interceptor's: on_start finds the call's
 *   (method, side) series and keeps it in the call's slot, so on_message
 *   and on_end touch nothing but that series' counters, which are relaxed
 *   atomics (a fixed array of 17 codes, twice on the client for the
 *   served_by label; the histogram's buckets).  Nothing is allocated per
 *   call.
 * - Each series keeps NSHARDS copies of its counters (shards), each owned
 *   by one thread, which claims a free one (compare-and-swap of |owner|)
 *   the first time it counts a call of that series, and from then on
 *   updates it with plain relaxed loads and stores: one writer, so no
 *   locked read-modify-write, and no cache line shared with the other
 *   threads.  A thread that finds every shard taken counts into |shared|
 *   with atomic adds.  A page adds all of them up.  A dead thread's shard
 *   stays its own (with its counts); a new thread that gets the same id
 *   carries on with it, still one writer at a time.
 * - in_flight is no counter of its own: a page computes it as started
 *   minus finished, which saves two atomics per call.
 * - Finding the series takes no lock: a fixed table of buckets, each an
 *   append-only list of aliases (method descriptor pointer + side ->
 *   series), read with acquire loads.  Only a miss takes |lock|, looks the
 *   series up by its path (so descriptors made at run time for one path
 *   share one series), makes it if needed and publishes an alias with a
 *   release store.  Series and aliases are freed with the registry only,
 *   so a reader never sees one go.  Bounds: MAX_SERIES method series (a
 *   call past it is not counted), MAX_ALIASES aliases (past it, a miss
 *   finds its series under the lock each time).
 * - The histogram keeps per-bucket (not cumulative) counts and the sum in
 *   nanoseconds; the page accumulates them and takes _count from the same
 *   reads, so a page is consistent with itself while calls go on.
 * - Everything else (named counters, collectors' samples) goes through one
 *   sink at scrape time: samples are gathered, sorted by family name, and
 *   each family gets its # HELP and # TYPE once.
 *
 * Locking theory: |lock| guards the slow path of the series table (making
 * series and aliases; readers take none) and the named counters' families
 * (a counter's value itself is an atomic).  |coll_lock| guards the
 * collector list and is held while collectors run, so that
 * orpc__metrics_collector_remove() waits for a scrape using the collector.
 * A scrape takes |lock| and |coll_lock| one after the other, never both;
 * nothing else is taken under either.
 */
#include "metrics_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <orpc/status.h>

#include "common/buf.h"
#include "common/detail.h"
#include "common/mem.h"

#define NBUCKETS 14
#define NHASH 256
#define MAX_SERIES 1024
#define MAX_ALIASES 4096
#define MAX_NAMED 4096
#define NSHARDS 8 /* a power of two */

/* Upper bounds of the latency buckets, in ns and as the page writes them. */
static const uint64_t bucket_ns[NBUCKETS] = {
    500000,     1000000,    2500000,    5000000,    10000000,
    25000000,   50000000,   100000000,  250000000,  500000000,
    1000000000, 2500000000, 5000000000, 10000000000};
static const char *const bucket_le[NBUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",  "0.5",    "1",     "2.5",  "5",     "10"};

/* A series' counters: one shard per group of threads (see the design
 * notes), 448 bytes, so a shard fills whole cache lines. */
typedef struct shard {
    _Atomic uintptr_t owner; /* the one thread writing it; 0: free */
    _Atomic uint64_t started;
    _Atomic uint64_t handled[2][ORPC_CODE_COUNT]; /* [legacy][code] */
    _Atomic uint64_t buckets[NBUCKETS + 1];       /* last: over 10 s */
    _Atomic uint64_t sum_ns;
    _Atomic uint64_t msgs[2];  /* [0] received, [1] sent */
    _Atomic uint64_t bytes[2]; /* ... their payload bytes */
    uint64_t spare[8];         /* to 512 bytes: 8 cache lines */
} shard;

_Static_assert(sizeof(shard) % 64 == 0, "a shard fills whole cache lines");

/* The sum of a series' shards, read for a page. */
typedef struct totals {
    uint64_t started;
    uint64_t ended;
    uint64_t handled[2][ORPC_CODE_COUNT];
    uint64_t buckets[NBUCKETS + 1];
    uint64_t sum_ns;
    uint64_t msgs[2];
    uint64_t bytes[2];
} totals;

/* One method at one side. */
typedef struct mseries {
    char *path; /* the method label */
    orpc_call_side side;
    _Atomic(struct mseries *) next; /* creation order */
    shard sh[NSHARDS];
    shard shared; /* the threads that found no free shard; never owned */
} mseries;

/* A descriptor pointer (and side) that leads to a series. */
typedef struct alias {
    const orpc_method_desc *desc;
    orpc_call_side side;
    mseries *s;
    struct alias *next; /* set before the alias is published */
} alias;

/* A named counter (orpc_metrics_counter_add()). */
typedef struct nseries {
    char *labels; /* rendered: a="x",b="y" */
    _Atomic uint64_t value;
    struct nseries *next;
} nseries;

typedef struct nfamily {
    char *name;
    char *help; /* or NULL */
    nseries *series;
    struct nfamily *next;
} nfamily;

typedef struct collector {
    orpc__metrics_collect_fn fn;
    void *arg;
} collector;

struct orpc_metrics {
    atomic_int refs;
    orpc_mem mem;
    uv_mutex_t lock;
    _Atomic(alias *) table[NHASH];
    _Atomic(mseries *) first; /* the series in creation order */
    mseries *last;            /* |lock| */
    size_t n_series, n_aliases;
    nfamily *families; /* |lock| */
    size_t n_named;    /* |lock| */
    uv_mutex_t coll_lock;
    collector *colls; /* |coll_lock| */
    size_t n_colls, cap_colls;
};

/* ---- the registry ------------------------------------------------------- */

int orpc_metrics_new(orpc_metrics **out, const orpc_mem *mem,
                     orpc_error_detail *detail)
{
    if (out == NULL)
        return orpc__detail_set(detail, ORPC_EINVAL,
                                "orpc_metrics_new: |out| is NULL");
    *out = NULL;
    orpc_metrics *m = orpc__mem_calloc(mem, 1, sizeof(*m));
    if (m == NULL)
        return orpc__detail_set(detail, ORPC_ENOMEM,
                                "out of memory creating a metrics registry");
    orpc__mem_copy(&m->mem, mem);
    atomic_init(&m->refs, 1);
    if (uv_mutex_init(&m->lock) != 0) {
        orpc__mem_free(&m->mem, m);
        return orpc__detail_set(detail, ORPC_ENOMEM,
                                "metrics registry: no mutex");
    }
    if (uv_mutex_init(&m->coll_lock) != 0) {
        uv_mutex_destroy(&m->lock);
        orpc__mem_free(&m->mem, m);
        return orpc__detail_set(detail, ORPC_ENOMEM,
                                "metrics registry: no mutex");
    }
    *out = m;
    return 0;
}

orpc_metrics *orpc_metrics_ref(orpc_metrics *m)
{
    if (m != NULL)
        atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void orpc_metrics_unref(orpc_metrics *m)
{
    if (m == NULL ||
        atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    const orpc_mem *mem = &m->mem;
    for (size_t i = 0; i < NHASH; i++) {
        alias *a = atomic_load_explicit(&m->table[i], memory_order_relaxed);
        while (a) {
            alias *next = a->next;
            orpc__mem_free(mem, a);
            a = next;
        }
    }
    mseries *s = atomic_load_explicit(&m->first, memory_order_relaxed);
    while (s) {
        mseries *next = atomic_load_explicit(&s->next, memory_order_relaxed);
        orpc__mem_free(mem, s->path);
        orpc__mem_free(mem, s);
        s = next;
    }
    for (nfamily *f = m->families, *fn; f; f = fn) {
        fn = f->next;
        for (nseries *ns = f->series, *nn; ns; ns = nn) {
            nn = ns->next;
            orpc__mem_free(mem, ns->labels);
            orpc__mem_free(mem, ns);
        }
        orpc__mem_free(mem, f->name);
        orpc__mem_free(mem, f->help);
        orpc__mem_free(mem, f);
    }
    orpc__mem_free(mem, m->colls);
    uv_mutex_destroy(&m->lock);
    uv_mutex_destroy(&m->coll_lock);
    orpc_mem copy = m->mem;
    orpc__mem_free(&copy, m);
}

/* ---- finding a call's series -------------------------------------------- */

static size_t slot_of(const orpc_method_desc *d, orpc_call_side side)
{
    uint64_t h = ((uint64_t)(uintptr_t)d >> 4) * 0x9E3779B97F4A7C15ull;
    return (size_t)((h >> 56) ^ (uint64_t)side) % NHASH;
}

static mseries *find_alias(orpc_metrics *m, size_t slot,
                           const orpc_method_desc *d, orpc_call_side side)
{
    for (alias *a = atomic_load_explicit(&m->table[slot], memory_order_acquire);
         a; a = a->next)
        if (a->desc == d && a->side == side)
            return a->s;
    return NULL;
}

/* The slow path, under |lock|: the series of |path| at |side|, made when
 * missing (NULL past MAX_SERIES or out of memory). */
static mseries *series_locked(orpc_metrics *m, const char *path,
                              orpc_call_side side)
{
    for (mseries *s = atomic_load_explicit(&m->first, memory_order_relaxed); s;
         s = atomic_load_explicit(&s->next, memory_order_relaxed))
        if (s->side == side && strcmp(s->path, path) == 0)
            return s;
    if (m->n_series >= MAX_SERIES)
        return NULL;
    mseries *s = orpc__mem_calloc(&m->mem, 1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->path = orpc__mem_strdup(&m->mem, path);
    if (s->path == NULL) {
        orpc__mem_free(&m->mem, s);
        return NULL;
    }
    s->side = side;
    if (m->last)
        atomic_store_explicit(&m->last->next, s, memory_order_release);
    else
        atomic_store_explicit(&m->first, s, memory_order_release);
    m->last = s;
    m->n_series++;
    return s;
}

static mseries *series_for(orpc_metrics *m, const orpc_method_desc *d,
                           orpc_call_side side)
{
    size_t slot = slot_of(d, side);
    mseries *s = find_alias(m, slot, d, side);
    if (s != NULL)
        return s;
    uv_mutex_lock(&m->lock);
    s = find_alias(m, slot, d, side);
    if (s == NULL) {
        s = series_locked(m, d && d->path ? d->path : "unknown", side);
        alias *a = NULL;
        if (s != NULL && m->n_aliases < MAX_ALIASES)
            a = orpc__mem_malloc(&m->mem, sizeof(*a));
        if (a != NULL) {
            a->desc = d;
            a->side = side;
            a->s = s;
            a->next =
                atomic_load_explicit(&m->table[slot], memory_order_relaxed);
            atomic_store_explicit(&m->table[slot], a, memory_order_release);
            m->n_aliases++;
        }
    }
    uv_mutex_unlock(&m->lock);
    return s;
}

/* ---- the interceptor ----------------------------------------------------- */

/* The calling thread's shard of |s|, claimed if it has none; |*own| set
 * when the thread owns it (else it is |shared|). */
static shard *my_shard(mseries *s, int *own)
{
    uintptr_t self = (uintptr_t)uv_thread_self();
    uint64_t h = (uint64_t)self * 0x9E3779B97F4A7C15ull;
    for (unsigned k = 0; k < NSHARDS; k++) {
        shard *sh = &s->sh[((h >> 60) + k) & (NSHARDS - 1)];
        uintptr_t o = atomic_load_explicit(&sh->owner, memory_order_relaxed);
        if (o == 0 && atomic_compare_exchange_strong_explicit(
                          &sh->owner, &o, self, memory_order_relaxed,
                          memory_order_relaxed))
            o = self;
        if (o == self) {
            *own = 1;
            return sh;
        }
    }
    *own = 0;
    return &s->shared;
}

/* Adds |n| to |c| of a shard: a plain update by its owner, an atomic add
 * on the shared one. */
static inline void add(_Atomic uint64_t *c, uint64_t n, int own)
{
    if (own)
        atomic_store_explicit(c,
                              atomic_load_explicit(c, memory_order_relaxed) + n,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static orpc_code mi_start(orpc_call_info *info, void **slot, const char **why,
                          void *user_data)
{
    (void)why;
    mseries *s = series_for(user_data, orpc_call_info_method(info),
                            orpc_call_info_side(info));
    if (s != NULL) {
        int own;
        shard *sh = my_shard(s, &own);
        add(&sh->started, 1, own);
    }
    *slot = s;
    return ORPC_OK;
}

static void mi_message(orpc_call_info *info, void *slot, int outbound,
                       size_t bytes, void *user_data)
{
    (void)info, (void)user_data;
    mseries *s = slot;
    if (s == NULL)
        return;
    int d = outbound != 0;
    int own;
    shard *sh = my_shard(s, &own);
    add(&sh->msgs[d], 1, own);
    add(&sh->bytes[d], bytes, own);
}

static void mi_end(orpc_call_info *info, void *slot, const orpc_status *status,
                   void *user_data)
{
    (void)user_data;
    mseries *s = slot;
    if (s == NULL)
        return;
    int own;
    shard *sh = my_shard(s, &own);
    unsigned code = status ? (unsigned)status->code : (unsigned)ORPC_UNKNOWN;
    if (code >= ORPC_CODE_COUNT)
        code = ORPC_UNKNOWN;
    int legacy = s->side == ORPC_SIDE_CLIENT &&
                 orpc_call_info_served_by(info) == ORPC_SERVED_LEGACY;
    add(&sh->handled[legacy][code], 1, own);
    uint64_t now = uv_hrtime(), start = orpc_call_info_start_ns(info);
    uint64_t ns = now > start ? now - start : 0;
    size_t b = 0;
    while (b < NBUCKETS && ns > bucket_ns[b])
        b++;
    add(&sh->buckets[b], 1, own);
    add(&sh->sum_ns, ns, own);
}

static void mi_destroy(void *user_data)
{
    orpc_metrics_unref(user_data);
}

int orpc_metrics_interceptor_new(orpc_interceptor **out, orpc_metrics *m)
{
    if (out == NULL || m == NULL)
        return ORPC_EINVAL;
    static const orpc_interceptor_ops ops = {.on_start = mi_start,
                                             .on_message = mi_message,
                                             .on_end = mi_end,
                                             .destroy = mi_destroy};
    return orpc_interceptor_new(out, &ops, orpc_metrics_ref(m));
}

/* ---- names and labels ---------------------------------------------------- */

static int name_ok(const char *s, int metric)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    c == '_' || (metric && c == ':');
        if (!alpha && !(p != s && c >= '0' && c <= '9'))
            return 0;
    }
    return metric || strncmp(s, "__", 2) != 0;
}

/* Appends |v| as a label value (\, " and newline escaped). */
static void put_escaped(orpc__buf *b, const char *v, int quotes)
{
    for (const char *p = v; *p; p++) {
        if (*p == '\\')
            orpc__buf_puts(b, "\\\\");
        else if (*p == '\n')
            orpc__buf_puts(b, "\\n");
        else if (*p == '"' && quotes)
            orpc__buf_puts(b, "\\\"");
        else
            orpc__buf_putc(b, *p);
    }
}

/* Appends |labels| rendered (a="x",b="y"); ORPC_EINVAL for a bad name or
 * an odd array. */
static int put_labels(orpc__buf *b, const char *const *labels)
{
    for (size_t i = 0; labels && labels[i]; i += 2) {
        if (!name_ok(labels[i], 0) || labels[i + 1] == NULL)
            return ORPC_EINVAL;
        if (i > 0)
            orpc__buf_putc(b, ',');
        orpc__buf_printf(b, "%s=\"", labels[i]);
        put_escaped(b, labels[i + 1], 1);
        orpc__buf_putc(b, '"');
    }
    return b->failed ? ORPC_ENOMEM : 0;
}

/* ---- named counters ------------------------------------------------------ */

static nfamily *family_locked(orpc_metrics *m, const char *name,
                              const char *help)
{
    for (nfamily *f = m->families; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    nfamily *f = orpc__mem_calloc(&m->mem, 1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->name = orpc__mem_strdup(&m->mem, name);
    f->help = help ? orpc__mem_strdup(&m->mem, help) : NULL;
    if (f->name == NULL || (help && f->help == NULL)) {
        orpc__mem_free(&m->mem, f->name);
        orpc__mem_free(&m->mem, f->help);
        orpc__mem_free(&m->mem, f);
        return NULL;
    }
    nfamily **tail = &m->families;
    while (*tail)
        tail = &(*tail)->next;
    *tail = f;
    return f;
}

int orpc_metrics_counter_add(orpc_metrics *m, const char *name,
                             const char *help, const char *const *labels,
                             uint64_t delta)
{
    if (m == NULL || !name_ok(name, 1) ||
        strncmp(name, "orpc_client_", 12) == 0 ||
        strncmp(name, "orpc_server_", 12) == 0)
        return ORPC_EINVAL;
    orpc__buf lb;
    orpc__buf_init(&lb, NULL);
    int rc = put_labels(&lb, labels);
    if (rc != 0) {
        orpc__buf_free(&lb);
        return rc;
    }
    const char *rendered = orpc__buf_str(&lb);
    uv_mutex_lock(&m->lock);
    nfamily *f = family_locked(m, name, help);
    nseries *s = NULL;
    rc = f ? 0 : ORPC_ENOMEM;
    for (s = f ? f->series : NULL; s; s = s->next)
        if (strcmp(s->labels, rendered) == 0)
            break;
    if (f != NULL && s == NULL) {
        if (m->n_named >= MAX_NAMED) {
            rc = ORPC_ELIMIT;
        } else if ((s = orpc__mem_calloc(&m->mem, 1, sizeof(*s))) == NULL ||
                   (s->labels = orpc__mem_strdup(&m->mem, rendered)) == NULL) {
            orpc__mem_free(&m->mem, s);
            s = NULL;
            rc = ORPC_ENOMEM;
        } else {
            nseries **tail = &f->series;
            while (*tail)
                tail = &(*tail)->next;
            *tail = s;
            m->n_named++;
        }
    }
    uv_mutex_unlock(&m->lock);
    if (s != NULL)
        atomic_fetch_add_explicit(&s->value, delta, memory_order_relaxed);
    orpc__buf_free(&lb);
    return rc;
}

/* ---- collectors and the sink --------------------------------------------- */

int orpc__metrics_collector_add(orpc_metrics *m, orpc__metrics_collect_fn fn,
                                void *arg)
{
    if (m == NULL || fn == NULL)
        return ORPC_EINVAL;
    int rc = 0;
    uv_mutex_lock(&m->coll_lock);
    for (size_t i = 0; i < m->n_colls; i++)
        if (m->colls[i].arg == arg)
            rc = ORPC_EINVAL;
    if (rc == 0 && m->n_colls == m->cap_colls) {
        size_t cap = m->cap_colls ? 2 * m->cap_colls : 4;
        collector *n = orpc__mem_grow(
            &m->mem, m->colls, m->cap_colls * sizeof(*n), cap * sizeof(*n));
        if (n == NULL) {
            rc = ORPC_ENOMEM;
        } else {
            m->colls = n;
            m->cap_colls = cap;
        }
    }
    if (rc == 0)
        m->colls[m->n_colls++] = (collector){fn, arg};
    uv_mutex_unlock(&m->coll_lock);
    return rc;
}

void orpc__metrics_collector_remove(orpc_metrics *m, void *arg)
{
    if (m == NULL)
        return;
    uv_mutex_lock(&m->coll_lock);
    for (size_t i = 0; i < m->n_colls; i++)
        if (m->colls[i].arg == arg) {
            m->colls[i] = m->colls[--m->n_colls];
            break;
        }
    uv_mutex_unlock(&m->coll_lock);
}

typedef struct sample {
    size_t name, labels; /* offsets into the sink's |text| */
    const char *np, *lp; /* the same, once |text| stops growing */
    const char *help;
    size_t seq;
    int gauge;
    uint64_t u;
    double d;
} sample;

struct orpc__metrics_sink {
    orpc__buf text; /* NUL-separated names and rendered labels */
    sample *v;
    size_t n, cap;
};

static void sink_add(orpc__metrics_sink *s, const char *name, const char *help,
                     const char *rendered, const char *const *labels, int gauge,
                     uint64_t u, double d)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        sample *n = realloc(s->v, cap * sizeof(*n));
        if (n == NULL)
            return;
        s->v = n;
        s->cap = cap;
    }
    size_t at = s->text.len;
    sample *x = &s->v[s->n];
    x->name = at;
    orpc__buf_puts(&s->text, name);
    orpc__buf_putc(&s->text, '\0');
    x->labels = s->text.len;
    int rc = rendered ? orpc__buf_puts(&s->text, rendered)
                      : put_labels(&s->text, labels);
    orpc__buf_putc(&s->text, '\0');
    if (rc != 0 || s->text.failed) {
        orpc__buf_truncate(&s->text, at);
        s->text.failed = 0;
        return;
    }
    x->help = help;
    x->seq = s->n;
    x->gauge = gauge;
    x->u = u;
    x->d = d;
    s->n++;
}

void orpc__metrics_sink_counter(orpc__metrics_sink *s, const char *name,
                                const char *help, const char *const *labels,
                                uint64_t value)
{
    sink_add(s, name, help, NULL, labels, 0, value, 0);
}

void orpc__metrics_sink_gauge(orpc__metrics_sink *s, const char *name,
                              const char *help, const char *const *labels,
                              double value)
{
    sink_add(s, name, help, NULL, labels, 1, 0, value);
}

static int by_family(const void *a, const void *b)
{
    const sample *x = a, *y = b;
    int c = strcmp(x->np, y->np);
    if (c != 0)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* ---- the page ------------------------------------------------------------ */

static void put_header(orpc__buf *b, const char *name, const char *help,
                       const char *type)
{
    if (help != NULL) {
        orpc__buf_printf(b, "# HELP %s ", name);
        put_escaped(b, help, 0);
        orpc__buf_putc(b, '\n');
    }
    orpc__buf_printf(b, "# TYPE %s %s\n", name, type);
}

static void put_double(orpc__buf *b, double d)
{
    if (isnan(d))
        orpc__buf_puts(b, "NaN");
    else if (isinf(d))
        orpc__buf_puts(b, d > 0 ? "+Inf" : "-Inf");
    else
        orpc__buf_printf(b, "%.17g", d);
}

/* The method series' families, in page order. */
enum {
    F_STARTED,
    F_HANDLED,
    F_IN_FLIGHT,
    F_SECONDS,
    F_MSG_RECV,
    F_MSG_SENT,
    F_BYTES_RECV,
    F_BYTES_SENT,
    F_COUNT
};
static const struct {
    const char *suffix, *type, *help[2]; /* [side] */
} families[F_COUNT] = {
    {"started_total",
     "counter",
     {"Calls the client started.", "Calls the server started."}},
    {"handled_total",
     "counter",
     {"Client calls finished, by status code and the side that served them.",
      "Server calls finished, by status code."}},
    {"in_flight",
     "gauge",
     {"Client calls started and not yet finished.",
      "Server calls started and not yet finished."}},
    {"handling_seconds",
     "histogram",
     {"Client call latency, from start to status.",
      "Server call latency, from start to status."}},
    {"msg_received_total",
     "counter",
     {"Response messages the client received.",
      "Request messages the server received."}},
    {"msg_sent_total",
     "counter",
     {"Request messages the client sent.",
      "Response messages the server sent."}},
    {"received_bytes_total",
     "counter",
     {"Payload bytes of the messages the client received.",
      "Payload bytes of the messages the server received."}},
    {"sent_bytes_total",
     "counter",
     {"Payload bytes of the messages the client sent.",
      "Payload bytes of the messages the server sent."}},
};

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* Adds up |s|'s shards. */
static void sum_shards(const mseries *s, totals *t)
{
    memset(t, 0, sizeof(*t));
    for (int i = 0; i <= NSHARDS; i++) { /* |shared| too */
        const shard *h = i < NSHARDS ? &s->sh[i] : &s->shared;
        for (int sb = 0; sb < 2; sb++)
            for (int c = 0; c < ORPC_CODE_COUNT; c++)
                t->handled[sb][c] += LOAD(h->handled[sb][c]);
        for (int k = 0; k <= NBUCKETS; k++)
            t->buckets[k] += LOAD(h->buckets[k]);
        t->sum_ns += LOAD(h->sum_ns);
        for (int d = 0; d < 2; d++) {
            t->msgs[d] += LOAD(h->msgs[d]);
            t->bytes[d] += LOAD(h->bytes[d]);
        }
    }
    /* started after ended: a call counted as ended was counted as started
     * before, so in_flight = started - ended stays >= 0 (clamped, for
     * what relaxed reads of different shards may show) */
    for (int sb = 0; sb < 2; sb++)
        for (int c = 0; c < ORPC_CODE_COUNT; c++)
            t->ended += t->handled[sb][c];
    for (int i = 0; i < NSHARDS; i++)
        t->started += LOAD(s->sh[i].started);
    t->started += LOAD(s->shared.started);
}

static void put_method_sample(orpc__buf *b, const char *prefix, int f,
                              const mseries *s)
{
    totals tt, *t = &tt;
    sum_shards(s, t);
    const char *name = families[f].suffix;
    if (f == F_HANDLED) {
        for (int sb = 0; sb < (s->side == ORPC_SIDE_CLIENT ? 2 : 1); sb++)
            for (int c = 0; c < ORPC_CODE_COUNT; c++) {
                uint64_t v = t->handled[sb][c];
                if (v == 0)
                    continue;
                orpc__buf_printf(b, "%s%s{method=\"", prefix, name);
                put_escaped(b, s->path, 1);
                orpc__buf_printf(b, "\",code=\"%s\"", orpc_code_name(c));
                if (s->side == ORPC_SIDE_CLIENT)
                    orpc__buf_puts(b, sb ? ",served_by=\"legacy\""
                                         : ",served_by=\"grpc\"");
                orpc__buf_printf(b, "} %" PRIu64 "\n", v);
            }
        return;
    }
    if (f == F_SECONDS) {
        uint64_t cum = 0;
        for (int i = 0; i <= NBUCKETS; i++) {
            cum += t->buckets[i];
            orpc__buf_printf(b, "%shandling_seconds_bucket{method=\"", prefix);
            put_escaped(b, s->path, 1);
            orpc__buf_printf(b, "\",le=\"%s\"} %" PRIu64 "\n",
                             i < NBUCKETS ? bucket_le[i] : "+Inf", cum);
        }
        const char *tail[2] = {"sum", "count"};
        for (int i = 0; i < 2; i++) {
            orpc__buf_printf(b, "%shandling_seconds_%s{method=\"", prefix,
                             tail[i]);
            put_escaped(b, s->path, 1);
            orpc__buf_puts(b, "\"} ");
            uint64_t ns = t->sum_ns;
            if (i == 0) /* seconds, exactly */
                orpc__buf_printf(b, "%" PRIu64 ".%09" PRIu64, ns / 1000000000u,
                                 ns % 1000000000u);
            else
                orpc__buf_printf(b, "%" PRIu64, cum);
            orpc__buf_putc(b, '\n');
        }
        return;
    }
    orpc__buf_printf(b, "%s%s{method=\"", prefix, name);
    put_escaped(b, s->path, 1);
    orpc__buf_puts(b, "\"} ");
    switch (f) {
    case F_STARTED:
        orpc__buf_printf(b, "%" PRIu64, t->started);
        break;
    case F_IN_FLIGHT:
        orpc__buf_printf(b, "%" PRIu64,
                         t->started > t->ended ? t->started - t->ended : 0);
        break;
    default: /* the four message counters, in families' order */
        orpc__buf_printf(b, "%" PRIu64,
                         f == F_MSG_RECV     ? t->msgs[0]
                         : f == F_MSG_SENT   ? t->msgs[1]
                         : f == F_BYTES_RECV ? t->bytes[0]
                                             : t->bytes[1]);
    }
    orpc__buf_putc(b, '\n');
}

static void put_methods(orpc__buf *b, orpc_metrics *m)
{
    static const char *const prefix[2] = {"orpc_client_", "orpc_server_"};
    mseries *first = atomic_load_explicit(&m->first, memory_order_acquire);
    for (int side = 0; side < 2; side++) {
        int any = 0;
        for (mseries *s = first; s && !any;
             s = atomic_load_explicit(&s->next, memory_order_acquire))
            any = (int)s->side == side;
        if (!any)
            continue;
        for (int f = 0; f < F_COUNT; f++) {
            char name[64];
            snprintf(name, sizeof(name), "%s%s", prefix[side],
                     families[f].suffix);
            put_header(b, name, families[f].help[side], families[f].type);
            for (mseries *s = first; s;
                 s = atomic_load_explicit(&s->next, memory_order_acquire))
                if ((int)s->side == side)
                    put_method_sample(b, prefix[side], f, s);
        }
    }
}

/* Gathers the named counters and the collectors' samples into |sk|. */
static void gather(orpc__metrics_sink *sk, orpc_metrics *m)
{
    uv_mutex_lock(&m->lock);
    for (nfamily *f = m->families; f; f = f->next)
        for (nseries *s = f->series; s; s = s->next)
            sink_add(sk, f->name, f->help, s->labels, NULL, 0, LOAD(s->value),
                     0);
    uv_mutex_unlock(&m->lock);
    uv_mutex_lock(&m->coll_lock);
    for (size_t i = 0; i < m->n_colls; i++)
        m->colls[i].fn(sk, m->colls[i].arg);
    uv_mutex_unlock(&m->coll_lock);
}

static void put_samples(orpc__buf *b, orpc__metrics_sink *sk)
{
    for (size_t i = 0; i < sk->n; i++) {
        sk->v[i].np = (const char *)sk->text.data + sk->v[i].name;
        sk->v[i].lp = (const char *)sk->text.data + sk->v[i].labels;
    }
    if (sk->n > 1)
        qsort(sk->v, sk->n, sizeof(*sk->v), by_family);
    for (size_t i = 0; i < sk->n; i++) {
        const sample *x = &sk->v[i];
        if (i == 0 || strcmp(x->np, sk->v[i - 1].np) != 0)
            put_header(b, x->np, x->help, x->gauge ? "gauge" : "counter");
        orpc__buf_puts(b, x->np);
        if (*x->lp)
            orpc__buf_printf(b, "{%s}", x->lp);
        orpc__buf_putc(b, ' ');
        if (x->gauge)
            put_double(b, x->d);
        else
            orpc__buf_printf(b, "%" PRIu64, x->u);
        orpc__buf_putc(b, '\n');
    }
}

int orpc_metrics_prometheus(orpc_metrics *m, char **out, size_t *len)
{
    if (m == NULL || out == NULL)
        return ORPC_EINVAL;
    *out = NULL;
    orpc__buf b;
    orpc__buf_init(&b, NULL); /* the caller frees the page with free() */
    put_methods(&b, m);
    orpc__metrics_sink sk = {0};
    orpc__buf_init(&sk.text, NULL);
    gather(&sk, m);
    put_samples(&b, &sk);
    free(sk.v);
    orpc__buf_free(&sk.text);
    if (b.len == 0)
        orpc__buf_reserve(&b, 1); /* an empty page is "" */
    size_t n = 0;
    char *page = orpc__buf_take(&b, &n);
    if (page == NULL)
        return ORPC_ENOMEM;
    *out = page;
    if (len)
        *len = n;
    return 0;
}
