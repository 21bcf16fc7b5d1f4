/*
 * metrics_test.c — the metrics registry (rpc/src/metrics.c) on its own:
 * the metrics interceptor driven through a chain with made-up call infos
 * (counts, codes, served_by, histogram buckets and sum, in_flight, bytes),
 * the Prometheus page's format (label and help escaping, one # HELP and
 * # TYPE per family, cumulative buckets), named counters and their
 * checks, collectors (a channel's counters), exact totals from several
 * threads recording while another scrapes, a failing allocator, and
 * promtool accepting a page (and rejecting a broken one).
 *
 * metrics.c, channel_metrics.c and interceptor.c are compiled in: their
 * internal functions (chains, call infos, collectors) are hidden in
 * liborpc.  Calls through real channels and servers are in
 * rpc_metrics_test.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include <orpc/metrics.h>

#include "intercept.h"
#include "metrics_internal.h"
#include "tests/metrics_page.h"
#include "tests/test_alloc.h"

static const orpc_method_desc m_get = {.name = "Get", .path = "/pkg.Svc/Get"};
static const orpc_method_desc m_put = {.name = "Put", .path = "/pkg.Svc/Put"};

typedef struct fixture {
    orpc_metrics *m;
    orpc_interceptor *ic;
    orpc__chain chain;
} fixture;

static void fx_init(fixture *f)
{
    assert_int_equal(orpc_metrics_new(&f->m, NULL, NULL), 0);
    assert_int_equal(orpc_metrics_interceptor_new(&f->ic, f->m), 0);
    const char *why = NULL;
    assert_int_equal(orpc__chain_init(&f->chain, &f->ic, 1, NULL, 0, &why), 0);
}

static void fx_free(fixture *f)
{
    orpc__chain_destroy(&f->chain);
    orpc_interceptor_unref(f->ic);
    orpc_metrics_unref(f->m);
}

/* One call of |m| at |side| that took |ns| and ended with |code|, with
 * |in| messages of |in_bytes| each received and |out| of |out_bytes| sent. */
static void call(fixture *f, const orpc_method_desc *m, orpc_call_side side,
                 orpc_served_by sb, uint64_t ns, orpc_code code, int in,
                 size_t in_bytes, int out, size_t out_bytes)
{
    orpc_call_info ci = {0};
    orpc__call_info_init(&ci, &f->chain, m, side, NULL, NULL, NULL);
    ci.served_by = sb;
    ci.start_ns = uv_hrtime() - ns;
    const char *why = NULL;
    assert_int_equal(orpc__chain_start(&ci, &why), ORPC_OK);
    for (int i = 0; i < in; i++)
        orpc__chain_message(&ci, 0, in_bytes);
    for (int i = 0; i < out; i++)
        orpc__chain_message(&ci, 1, out_bytes);
    orpc_status st = {.code = code};
    orpc__chain_end(&ci, &st);
}

static char *page(orpc_metrics *m)
{
    char *p = NULL;
    size_t len = 0;
    assert_int_equal(orpc_metrics_prometheus(m, &p, &len), 0);
    assert_non_null(p);
    assert_int_equal(strlen(p), len);
    return p;
}

/* The value of the sample |key|; fails the test when there is none. */
static double value(const char *p, const char *key)
{
    if (page_find(p, key, 1) == NULL)
        fail_msg("no sample %s in:\n%s", key, p);
    return page_value(p, key);
}

/* Where |s| first is in |p|, or -1. */
static long offset_of(const char *p, const char *s)
{
    size_t n = strlen(s);
    for (long i = 0; p[i] != '\0'; i++)
        if (strncmp(p + i, s, n) == 0)
            return i;
    return -1;
}

static int has_line(const char *p, const char *prefix)
{
    return page_find(p, prefix, 0) != NULL;
}

#define MS 1000000ull

static void test_counts_and_codes(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    for (int i = 0; i < 3; i++)
        call(&f, &m_get, ORPC_SIDE_SERVER, ORPC_SERVED_GRPC, MS, ORPC_OK, 1, 10,
             1, 20);
    for (int i = 0; i < 2; i++)
        call(&f, &m_get, ORPC_SIDE_SERVER, ORPC_SERVED_GRPC, MS, ORPC_NOT_FOUND,
             1, 10, 0, 0);
    call(&f, &m_get, ORPC_SIDE_SERVER, ORPC_SERVED_GRPC, MS, (orpc_code)99, 0,
         0, 0, 0);
    /* client calls of the same method are another series */
    call(&f, &m_get, ORPC_SIDE_CLIENT, ORPC_SERVED_GRPC, MS, ORPC_OK, 2, 7, 1,
         3);
    call(&f, &m_get, ORPC_SIDE_CLIENT, ORPC_SERVED_LEGACY, MS, ORPC_OK, 1, 7, 1,
         3);
    call(&f, &m_get, ORPC_SIDE_CLIENT, ORPC_SERVED_LEGACY, MS, ORPC_UNAVAILABLE,
         0, 0, 1, 3);
    char *p = page(f.m);
    const char *S = "{method=\"/pkg.Svc/Get\"}";
    char key[256];
#define K(fmt, ...) (snprintf(key, sizeof(key), fmt, __VA_ARGS__), key)
    assert_int_equal(value(p, K("orpc_server_started_total%s", S)), 6);
    assert_int_equal(value(p,
                           "orpc_server_handled_total{method=\"/pkg.Svc/Get\","
                           "code=\"OK\"}"),
                     3);
    assert_int_equal(value(p,
                           "orpc_server_handled_total{method=\"/pkg.Svc/Get\","
                           "code=\"NOT_FOUND\"}"),
                     2);
    /* an out-of-range code counts as UNKNOWN */
    assert_int_equal(value(p,
                           "orpc_server_handled_total{method=\"/pkg.Svc/Get\","
                           "code=\"UNKNOWN\"}"),
                     1);
    assert_false(has_line(p, "orpc_server_handled_total{method=\"/pkg.Svc/"
                             "Get\",code=\"INTERNAL\"}"));
    assert_int_equal(value(p, K("orpc_server_in_flight%s", S)), 0);
    assert_int_equal(value(p, K("orpc_server_msg_received_total%s", S)), 5);
    assert_int_equal(value(p, K("orpc_server_msg_sent_total%s", S)), 3);
    assert_int_equal(value(p, K("orpc_server_received_bytes_total%s", S)), 50);
    assert_int_equal(value(p, K("orpc_server_sent_bytes_total%s", S)), 60);
    /* the client's side, with served_by */
    assert_int_equal(value(p, K("orpc_client_started_total%s", S)), 3);
    assert_int_equal(value(p,
                           "orpc_client_handled_total{method=\"/pkg.Svc/Get\","
                           "code=\"OK\",served_by=\"grpc\"}"),
                     1);
    assert_int_equal(value(p,
                           "orpc_client_handled_total{method=\"/pkg.Svc/Get\","
                           "code=\"OK\",served_by=\"legacy\"}"),
                     1);
    assert_int_equal(value(p,
                           "orpc_client_handled_total{method=\"/pkg.Svc/Get\","
                           "code=\"UNAVAILABLE\",served_by=\"legacy\"}"),
                     1);
    assert_int_equal(value(p, K("orpc_client_msg_received_total%s", S)), 3);
    assert_int_equal(value(p, K("orpc_client_sent_bytes_total%s", S)), 9);
    assert_false(has_line(p, "orpc_server_started_total{method=\"/pkg.Svc/"
                             "Put\"}"));
#undef K
    free(p);
    fx_free(&f);
}

static void test_in_flight(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    orpc_call_info a = {0}, b = {0};
    const char *why = NULL;
    orpc__call_info_init(&a, &f.chain, &m_put, ORPC_SIDE_SERVER, NULL, NULL,
                         NULL);
    orpc__call_info_init(&b, &f.chain, &m_put, ORPC_SIDE_SERVER, NULL, NULL,
                         NULL);
    assert_int_equal(orpc__chain_start(&a, &why), ORPC_OK);
    assert_int_equal(orpc__chain_start(&b, &why), ORPC_OK);
    char *p = page(f.m);
    assert_int_equal(value(p, "orpc_server_in_flight{method=\"/pkg.Svc/Put\"}"),
                     2);
    assert_int_equal(
        value(p, "orpc_server_handling_seconds_count{method=\"/pkg.Svc/Put\"}"),
        0);
    free(p);
    orpc_status st = {.code = ORPC_CANCELLED};
    orpc__chain_end(&a, &st);
    orpc__chain_end(&b, &st);
    orpc__chain_end(&b, &st); /* once only */
    p = page(f.m);
    assert_int_equal(value(p, "orpc_server_in_flight{method=\"/pkg.Svc/Put\"}"),
                     0);
    assert_int_equal(value(p, "orpc_server_handled_total{method=\"/pkg.Svc/"
                              "Put\",code=\"CANCELLED\"}"),
                     2);
    free(p);
    fx_free(&f);
}

static void test_histogram(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    /* each well inside its bucket, so a slow machine still lands there */
    const uint64_t ns[] = {1200000ull, 30 * MS, 300 * MS, 20000 * MS};
    for (size_t i = 0; i < 4; i++)
        call(&f, &m_put, ORPC_SIDE_CLIENT, ORPC_SERVED_GRPC, ns[i], ORPC_OK, 0,
             0, 0, 0);
    char *p = page(f.m);
    const struct {
        const char *le;
        int cum;
    } want[] = {{"0.0005", 0}, {"0.001", 0}, {"0.0025", 1}, {"0.005", 1},
                {"0.01", 1},   {"0.025", 1}, {"0.05", 2},   {"0.1", 2},
                {"0.25", 2},   {"0.5", 3},   {"1", 3},      {"2.5", 3},
                {"5", 3},      {"10", 3},    {"+Inf", 4}};
    char key[256];
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        snprintf(key, sizeof(key),
                 "orpc_client_handling_seconds_bucket{method=\"/pkg.Svc/Put\","
                 "le=\"%s\"}",
                 want[i].le);
        assert_int_equal(value(p, key), want[i].cum);
    }
    assert_int_equal(
        value(p, "orpc_client_handling_seconds_count{method=\"/pkg.Svc/Put\"}"),
        4);
    double sum =
        value(p, "orpc_client_handling_seconds_sum{method=\"/pkg.Svc/Put\"}");
    assert_true(sum >= 20.3312 && sum < 20.3312 + 1.0);
    assert_int_equal(page_count(p, "orpc_client_handling_seconds_bucket"), 15);
    assert_int_equal(page_count(p, "# TYPE orpc_client_handling_seconds "
                                   "histogram"),
                     1);
    free(p);
    fx_free(&f);
}

static void test_escaping_and_families(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    static const orpc_method_desc odd = {.name = "Odd",
                                         .path = "/a\"b\\c\nd/Odd"};
    call(&f, &odd, ORPC_SIDE_SERVER, ORPC_SERVED_GRPC, MS, ORPC_OK, 0, 0, 0, 0);
    call(&f, &m_get, ORPC_SIDE_SERVER, ORPC_SERVED_GRPC, MS, ORPC_OK, 0, 0, 0,
         0);
    const char *l1[] = {"method", "x\"y", "served_by", "grpc", NULL};
    const char *l2[] = {"method", "back\\slash\nline", NULL};
    assert_int_equal(orpc_metrics_counter_add(f.m, "app_things_total",
                                              "Things.\\ With a\nnewline.", l1,
                                              2),
                     0);
    assert_int_equal(
        orpc_metrics_counter_add(f.m, "app_things_total", "ignored", l2, 5), 0);
    assert_int_equal(
        orpc_metrics_counter_add(f.m, "app_things_total", NULL, l1, 1), 0);
    assert_int_equal(
        orpc_metrics_counter_add(f.m, "app_plain_total", NULL, NULL, 7), 0);
    char *p = page(f.m);
    assert_int_equal(
        value(p, "orpc_server_started_total{method=\"/a\\\"b\\\\c\\nd/Odd\"}"),
        1);
    assert_int_equal(value(p, "app_things_total{method=\"x\\\"y\","
                              "served_by=\"grpc\"}"),
                     3);
    assert_int_equal(
        value(p, "app_things_total{method=\"back\\\\slash\\nline\"}"), 5);
    assert_int_equal(value(p, "app_plain_total"), 7);
    assert_true(
        has_line(p, "# HELP app_things_total Things.\\\\ With a\\nnewline.\n"));
    assert_int_equal(page_count(p, "# HELP app_things_total "), 1);
    assert_int_equal(page_count(p, "# TYPE app_things_total counter"), 1);
    assert_int_equal(page_count(p, "# TYPE app_plain_total counter"), 1);
    assert_false(has_line(p, "# HELP app_plain_total"));
    /* two methods, one family header */
    assert_int_equal(page_count(p, "# TYPE orpc_server_started_total counter"),
                     1);
    assert_int_equal(page_count(p, "# HELP orpc_server_started_total "), 1);
    assert_int_equal(page_count(p, "orpc_server_started_total{"), 2);
    /* no client calls: no client families */
    assert_false(has_line(p, "# TYPE orpc_client_"));
    /* no raw newline inside a sample: every line is a comment or a sample
     * whose name starts the line */
    for (const char *l = p; *l; l = strchr(l, '\n') + 1)
        assert_true(*l == '#' || (*l >= 'a' && *l <= 'z'));
    free(p);
    fx_free(&f);
}

static void test_counter_checks(void **state)
{
    (void)state;
    orpc_metrics *m = NULL;
    assert_int_equal(orpc_metrics_new(&m, NULL, NULL), 0);
    const char *odd[] = {"method", NULL, NULL};
    const char *dunder[] = {"__name", "x", NULL};
    const char *badl[] = {"a-b", "x", NULL};
    const char *digit[] = {"1a", "x", NULL};
    assert_int_equal(orpc_metrics_counter_add(NULL, "a_total", NULL, NULL, 1),
                     ORPC_EINVAL);
    assert_int_equal(orpc_metrics_counter_add(m, NULL, NULL, NULL, 1),
                     ORPC_EINVAL);
    assert_int_equal(orpc_metrics_counter_add(m, "", NULL, NULL, 1),
                     ORPC_EINVAL);
    assert_int_equal(orpc_metrics_counter_add(m, "9lives", NULL, NULL, 1),
                     ORPC_EINVAL);
    assert_int_equal(orpc_metrics_counter_add(m, "a b", NULL, NULL, 1),
                     ORPC_EINVAL);
    assert_int_equal(
        orpc_metrics_counter_add(m, "orpc_server_x_total", NULL, NULL, 1),
        ORPC_EINVAL);
    assert_int_equal(
        orpc_metrics_counter_add(m, "orpc_client_x_total", NULL, NULL, 1),
        ORPC_EINVAL);
    assert_int_equal(orpc_metrics_counter_add(m, "a_total", NULL, odd, 1),
                     ORPC_EINVAL);
    assert_int_equal(orpc_metrics_counter_add(m, "a_total", NULL, dunder, 1),
                     ORPC_EINVAL);
    assert_int_equal(orpc_metrics_counter_add(m, "a_total", NULL, badl, 1),
                     ORPC_EINVAL);
    assert_int_equal(orpc_metrics_counter_add(m, "a_total", NULL, digit, 1),
                     ORPC_EINVAL);
    assert_int_equal(orpc_metrics_counter_add(m, "ns:a_total", NULL, NULL, 1),
                     0);
    /* the bound on named series */
    char v[16];
    const char *l[] = {"i", v, NULL};
    int rc = 0, i;
    for (i = 0; i < 5000 && rc == 0; i++) {
        snprintf(v, sizeof(v), "%d", i);
        rc = orpc_metrics_counter_add(m, "many_total", NULL, l, 1);
    }
    assert_int_equal(rc, ORPC_ELIMIT);
    assert_int_equal(i, 4096); /* "ns:a_total" was the first */
    /* an existing series still counts past the bound */
    snprintf(v, sizeof(v), "%d", 7);
    assert_int_equal(orpc_metrics_counter_add(m, "many_total", NULL, l, 1), 0);
    char *p = page(m);
    assert_int_equal(value(p, "many_total{i=\"7\"}"), 2);
    assert_int_equal(value(p, "ns:a_total"), 1);
    free(p);
    assert_int_equal(orpc_metrics_new(NULL, NULL, NULL), ORPC_EINVAL);
    assert_int_equal(orpc_metrics_interceptor_new(NULL, m), ORPC_EINVAL);
    orpc_interceptor *ic = NULL;
    assert_int_equal(orpc_metrics_interceptor_new(&ic, NULL), ORPC_EINVAL);
    assert_int_equal(orpc_metrics_prometheus(NULL, &p, NULL), ORPC_EINVAL);
    assert_int_equal(orpc_metrics_prometheus(m, NULL, NULL), ORPC_EINVAL);
    /* the interceptor holds the registry */
    assert_int_equal(orpc_metrics_interceptor_new(&ic, m), 0);
    orpc_metrics_unref(m);
    orpc_metrics_unref(NULL);
    orpc_interceptor_unref(ic);
}

static void test_empty_page(void **state)
{
    (void)state;
    orpc_metrics *m = NULL;
    assert_int_equal(orpc_metrics_new(&m, NULL, NULL), 0);
    char *p = page(m);
    assert_string_equal(p, "");
    free(p);
    assert_ptr_equal(orpc_metrics_ref(m), m);
    orpc_metrics_unref(m);
    orpc_metrics_unref(m);
}

/* The channel's retry counts, as retry.c keeps them (not compiled in):
 * a made-up channel whose "address" holds its counts. */
typedef struct fake_channel {
    uint64_t counts[4];
} fake_channel;

void orpc__retry_counts(struct orpc_channel *ch, uint64_t out[4]);
void orpc__retry_counts(struct orpc_channel *ch, uint64_t out[4])
{
    const fake_channel *f = (const fake_channel *)(void *)ch;
    memcpy(out, f->counts, sizeof(f->counts));
}

typedef struct coll_state {
    int runs;
    const char *name;
} coll_state;

static void collect(orpc__metrics_sink *s, void *arg)
{
    coll_state *c = arg;
    c->runs++;
    const char *labels[] = {"who", c->name, NULL};
    orpc__metrics_sink_gauge(s, "test_level", "A level.", labels, 1.5);
    orpc__metrics_sink_counter(s, "test_events_total", "Events.", labels, 4);
}

static void test_collectors(void **state)
{
    (void)state;
    orpc_metrics *m = NULL;
    assert_int_equal(orpc_metrics_new(&m, NULL, NULL), 0);
    coll_state a = {0, "a"}, b = {0, "b"};
    orpc__chan_counters cc;
    fake_channel fc = {{11, 12, 13, 14}};
    orpc__chan_counters_init(&cc, "dns:///svc\"1\":443",
                             (struct orpc_channel *)(void *)&fc);
    orpc__chan_counters_state(&cc, ORPC_CHANNEL_CONNECTING);
    orpc__chan_counters_state(&cc, ORPC_CHANNEL_READY);
    orpc__chan_counters_state(&cc, ORPC_CHANNEL_READY);
    orpc__chan_counters_state(&cc, (orpc_channel_state)42);
    orpc__chan_counters_reconnect(&cc);
    assert_int_equal(orpc__metrics_collector_add(m, collect, &a), 0);
    assert_int_equal(orpc__metrics_collector_add(m, collect, &b), 0);
    assert_int_equal(orpc__metrics_collector_add(m, collect, &b), ORPC_EINVAL);
    assert_int_equal(orpc__metrics_collector_add(NULL, collect, &b),
                     ORPC_EINVAL);
    assert_int_equal(orpc__metrics_collector_add(m, NULL, &cc), ORPC_EINVAL);
    assert_int_equal(
        orpc__metrics_collector_add(m, orpc__chan_metrics_collect, &cc), 0);
    assert_int_equal(orpc_metrics_counter_add(m, "test_b_total", NULL, NULL, 1),
                     0);
    char *p = page(m);
    assert_int_equal(a.runs, 1);
    assert_int_equal(b.runs, 1);
    assert_int_equal(value(p, "test_level{who=\"a\"}"), 1.5);
    assert_int_equal(value(p, "test_events_total{who=\"b\"}"), 4);
    assert_int_equal(page_count(p, "# HELP test_level A level."), 1);
    assert_int_equal(page_count(p, "# TYPE test_level gauge"), 1);
    assert_int_equal(page_count(p, "# TYPE test_events_total counter"), 1);
    /* a family's samples are together, in the order they were emitted */
    long ea = offset_of(p, "test_events_total{who=\"a\"}");
    long eb = offset_of(p, "test_events_total{who=\"b\"}");
    long la = offset_of(p, "test_level{who=\"a\"}");
    assert_true(ea >= 0 && ea < eb && eb < la);
    assert_int_equal(value(p, "orpc_client_channel_state_changes_total{target="
                              "\"dns:///svc\\\"1\\\":443\",state=\"READY\"}"),
                     2);
    assert_int_equal(value(p, "orpc_client_channel_state_changes_total{target="
                              "\"dns:///svc\\\"1\\\":443\",state=\"IDLE\"}"),
                     0);
    assert_int_equal(value(p, "orpc_client_channel_state_changes_total{target="
                              "\"dns:///svc\\\"1\\\":443\",state="
                              "\"CONNECTING\"}"),
                     1);
    assert_int_equal(value(p, "orpc_client_channel_reconnects_total{target="
                              "\"dns:///svc\\\"1\\\":443\"}"),
                     1);
    const char *rnames[4] = {"retries", "hedges", "throttled_retries",
                             "transparent_retries"};
    for (int i = 0; i < 4; i++) {
        char key[160];
        snprintf(key, sizeof(key),
                 "orpc_client_channel_%s_total{target=\"dns:///svc\\\"1"
                 "\\\":443\"}",
                 rnames[i]);
        assert_int_equal(value(p, key), 11 + i);
    }
    free(p);
    orpc__metrics_collector_remove(m, &a);
    orpc__metrics_collector_remove(m, &a); /* twice: no-op */
    orpc__metrics_collector_remove(NULL, &a);
    p = page(m);
    assert_int_equal(a.runs, 1);
    assert_int_equal(b.runs, 2);
    assert_false(has_line(p, "test_level{who=\"a\"}"));
    assert_true(has_line(p, "test_level{who=\"b\"}"));
    free(p);
    orpc__metrics_collector_remove(m, &b);
    orpc__metrics_collector_remove(m, &cc);
    p = page(m);
    assert_false(has_line(p, "test_level"));
    assert_false(has_line(p, "orpc_client_channel_"));
    assert_true(has_line(p, "test_b_total 1"));
    free(p);
    orpc_metrics_unref(m);
}

/* ---- several threads ---------------------------------------------------- */

/* more threads than a series has shards (8): some count into the shared
 * one, with atomic adds, while the others own theirs */
#define THREADS 12
#define CALLS 6000

typedef struct worker {
    fixture *f;
    int id;
} worker;

static void record(void *arg)
{
    worker *w = arg;
    const orpc_method_desc *ms[2] = {&m_get, &m_put};
    for (int i = 0; i < CALLS; i++) {
        orpc_call_info ci = {0};
        orpc__call_info_init(&ci, &w->f->chain, ms[i % 2], ORPC_SIDE_SERVER,
                             NULL, NULL, NULL);
        const char *why = NULL;
        if (orpc__chain_start(&ci, &why) != ORPC_OK)
            return;
        orpc__chain_message(&ci, 0, 3);
        orpc__chain_message(&ci, 1, (size_t)w->id);
        orpc_status st = {.code = (i % 5 == 0) ? ORPC_INTERNAL : ORPC_OK};
        orpc__chain_end(&ci, &st);
    }
}

typedef struct scraper {
    orpc_metrics *m;
    atomic_int stop;
    atomic_int pages;
} scraper;

static void scrape(void *arg)
{
    scraper *s = arg;
    while (!atomic_load(&s->stop)) {
        char *p = NULL;
        if (orpc_metrics_prometheus(s->m, &p, NULL) == 0)
            atomic_fetch_add(&s->pages, 1);
        free(p);
    }
}

static void test_threads(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    uv_thread_t t[THREADS], st;
    worker w[THREADS];
    scraper sc = {.m = f.m};
    atomic_init(&sc.stop, 0);
    atomic_init(&sc.pages, 0);
    assert_int_equal(uv_thread_create(&st, scrape, &sc), 0);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){&f, i + 1};
        assert_int_equal(uv_thread_create(&t[i], record, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        uv_thread_join(&t[i]);
    /* at least one page rendered while they ran or after (bounded) */
    for (int i = 0; i < 1000 && atomic_load(&sc.pages) == 0; i++)
        uv_sleep(10);
    atomic_store(&sc.stop, 1);
    uv_thread_join(&st);
    assert_true(atomic_load(&sc.pages) > 0);
    char *p = page(f.m);
    const int per = THREADS * CALLS / 2; /* per method */
    const char *paths[2] = {"/pkg.Svc/Get", "/pkg.Svc/Put"};
    char key[256];
    for (int i = 0; i < 2; i++) {
        snprintf(key, sizeof(key), "orpc_server_started_total{method=\"%s\"}",
                 paths[i]);
        assert_int_equal(value(p, key), per);
        snprintf(key, sizeof(key),
                 "orpc_server_handled_total{method=\"%s\",code=\"INTERNAL\"}",
                 paths[i]);
        /* i % 5 == 0 among the even (Get) or odd (Put) i of each thread */
        assert_int_equal(value(p, key), THREADS * (CALLS / 10));
        snprintf(key, sizeof(key),
                 "orpc_server_handled_total{method=\"%s\",code=\"OK\"}",
                 paths[i]);
        assert_int_equal(value(p, key), per - THREADS * (CALLS / 10));
        snprintf(key, sizeof(key), "orpc_server_in_flight{method=\"%s\"}",
                 paths[i]);
        assert_int_equal(value(p, key), 0);
        snprintf(key, sizeof(key),
                 "orpc_server_handling_seconds_count{method=\"%s\"}", paths[i]);
        assert_int_equal(value(p, key), per);
        snprintf(key, sizeof(key),
                 "orpc_server_received_bytes_total{method=\"%s\"}", paths[i]);
        assert_int_equal(value(p, key), 3 * per);
        snprintf(key, sizeof(key),
                 "orpc_server_sent_bytes_total{method=\"%s\"}", paths[i]);
        /* thread k sends k bytes per call: 1 + 2 + ... + THREADS */
        assert_int_equal(value(p, key),
                         THREADS * (THREADS + 1) / 2 * (CALLS / 2));
    }
    free(p);
    fx_free(&f);
}

/* Collectors come and go (channels made and freed) while pages are
 * rendered: a removed collector is never run again, and a page has a
 * channel's series whole or not at all. */
static void test_collectors_come_and_go(void **state)
{
    (void)state;
    orpc_metrics *m = NULL;
    assert_int_equal(orpc_metrics_new(&m, NULL, NULL), 0);
    scraper sc = {.m = m};
    atomic_init(&sc.stop, 0);
    atomic_init(&sc.pages, 0);
    uv_thread_t st;
    assert_int_equal(uv_thread_create(&st, scrape, &sc), 0);
    /* a NULL registry: nothing to attach to */
    orpc__chan_counters none;
    assert_int_equal(orpc__chan_metrics_attach(NULL, &none, "x", NULL), 0);
    orpc__chan_metrics_detach(NULL, &none);
    /* until the scraper rendered 200 pages meanwhile (or 10 s passed) */
    uint64_t deadline = uv_hrtime() + 10000000000ull;
    for (int i = 0;
         i < 2000 || (atomic_load(&sc.pages) < 200 && uv_hrtime() < deadline);
         i++) {
        orpc__chan_counters *cc = malloc(sizeof(*cc));
        assert_non_null(cc);
        assert_int_equal(orpc__chan_metrics_attach(m, cc, "127.0.0.1:9", NULL),
                         0);
        orpc__chan_counters_state(cc, ORPC_CHANNEL_READY);
        orpc__chan_metrics_detach(m, cc);
        free(cc); /* a scrape that ran it is over */
    }
    atomic_store(&sc.stop, 1);
    uv_thread_join(&st);
    assert_true(atomic_load(&sc.pages) >= 200);
    char *p = page(m);
    assert_false(has_line(p, "orpc_client_channel_"));
    free(p);
    orpc_metrics_unref(m);
}

/* ---- a failing allocator ------------------------------------------------ */

static void test_failing_alloc(void **state)
{
    (void)state;
    int done = 0;
    for (long budget = 0; !done && budget < 64; budget++) {
        test_alloc ta;
        orpc_mem mem = ta_mem(&ta, budget);
        orpc_metrics *m = NULL;
        int rc = orpc_metrics_new(&m, &mem, NULL);
        if (rc != 0) {
            assert_int_equal(rc, ORPC_ENOMEM);
            assert_int_equal(ta.live, 0);
            continue;
        }
        const char *l[] = {"k", "v", NULL};
        int crc = orpc_metrics_counter_add(m, "x_total", "X.", l, 1);
        assert_true(crc == 0 || crc == ORPC_ENOMEM);
        orpc_interceptor *ic = NULL;
        assert_int_equal(orpc_metrics_interceptor_new(&ic, m), 0);
        orpc__chain chain;
        const char *why = NULL;
        assert_int_equal(orpc__chain_init(&chain, &ic, 1, NULL, 0, &why), 0);
        orpc_call_info ci = {0};
        orpc__call_info_init(&ci, &chain, &m_get, ORPC_SIDE_SERVER, NULL, NULL,
                             NULL);
        /* out of memory, the call goes on uncounted */
        assert_int_equal(orpc__chain_start(&ci, &why), ORPC_OK);
        orpc_status st = {.code = ORPC_OK};
        orpc__chain_end(&ci, &st);
        char *p = page(m);
        int counted = has_line(p, "orpc_server_started_total{method=\"/pkg."
                                  "Svc/Get\"} 1");
        done = crc == 0 && counted;
        assert_true(crc == 0 || !has_line(p, "x_total"));
        free(p);
        orpc__chain_destroy(&chain);
        orpc_interceptor_unref(ic);
        orpc_metrics_unref(m);
        assert_int_equal(ta_snapshot(&ta).live, 0);
    }
    assert_true(done);
}

/* ---- promtool ------------------------------------------------------------ */

static int promtool_ok(const char *text)
{
    char path[] = "/tmp/orpc_metrics_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s >%s.out 2>&1", path,
             path);
    int rc = system(cmd);
    snprintf(cmd, sizeof(cmd), "%s.out", path);
    if (rc != 0) {
        FILE *o = fopen(cmd, "r");
        char line[512];
        while (o && fgets(line, sizeof(line), o))
            fprintf(stderr, "promtool: %s", line);
        if (o)
            fclose(o);
    }
    unlink(cmd);
    unlink(path);
    return rc == 0;
}

static void test_promtool(void **state)
{
    (void)state;
    assert_int_equal(system("promtool --version >/dev/null 2>&1"), 0);
    fixture f;
    fx_init(&f);
    static const orpc_method_desc odd = {.name = "Odd",
                                         .path = "/a\"b\\c\nd/Odd"};
    call(&f, &m_get, ORPC_SIDE_SERVER, ORPC_SERVED_GRPC, 3 * MS, ORPC_OK, 1, 5,
         1, 6);
    call(&f, &odd, ORPC_SIDE_SERVER, ORPC_SERVED_GRPC, MS, ORPC_ABORTED, 1, 5,
         0, 0);
    call(&f, &m_put, ORPC_SIDE_CLIENT, ORPC_SERVED_LEGACY, MS, ORPC_OK, 1, 5, 1,
         6);
    const char *l[] = {"method", "/pkg.Svc/Get", "result", "mis\"match", NULL};
    assert_int_equal(orpc_metrics_counter_add(f.m, "orpc_router_shadow_total",
                                              "Shadow\\ results.\n", l, 3),
                     0);
    orpc__chan_counters cc;
    fake_channel fc = {{1, 2, 3, 4}};
    orpc__chan_counters_init(&cc, "127.0.0.1:1",
                             (struct orpc_channel *)(void *)&fc);
    orpc__chan_counters_state(&cc, ORPC_CHANNEL_READY);
    assert_int_equal(
        orpc__metrics_collector_add(f.m, orpc__chan_metrics_collect, &cc), 0);
    coll_state c = {0, "x"};
    assert_int_equal(orpc__metrics_collector_add(f.m, collect, &c), 0);
    char *p = page(f.m);
    assert_true(strlen(p) > 2000);
    assert_true(promtool_ok(p));
    free(p);
    /* the check can fail: a family typed twice, a bad sample */
    assert_false(promtool_ok("# TYPE a_total counter\na_total 1\n"
                             "# TYPE a_total counter\na_total{x=\"1\"} 2\n"));
    assert_false(promtool_ok("a_total{x=\"unterminated} 1\n"));
    orpc__metrics_collector_remove(f.m, &cc);
    orpc__metrics_collector_remove(f.m, &c);
    fx_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_codes),
        cmocka_unit_test(test_in_flight),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_escaping_and_families),
        cmocka_unit_test(test_counter_checks),
        cmocka_unit_test(test_empty_page),
        cmocka_unit_test(test_collectors),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_collectors_come_and_go),
        cmocka_unit_test(test_failing_alloc),
        cmocka_unit_test(test_promtool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
