/*
 * router_metrics_test.c — a routed client given orpc_routed_opts.metrics
 * counts its routing into that registry (compat/src/routed_client.c,
 * shadow.c): orpc_router_calls_total by served_by, fallbacks_total, and
 * shadow_total; and the metrics interceptor on the channel and on the
 * routed client's legacy side counts each side's calls under its
 * served_by.  The gRPC side is a JobsService on loopback that answers
 * GetJob only; the legacy side is a closed loopback port, so legacy calls
 * fail fast (UNAVAILABLE) and the counts are what the routing decided.
 *
 * Every wait is bounded (calls carry deadlines; the mirror is polled).
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

#include <orpc/compat/router.h>
#include <orpc/orpc.h>

#include "opsconductor/jobs/v1/jobs.orpc.h"
#include "tests/metrics_page.h"

static orpc_status get_job(orpc_ctx *ctx,
                           const Opsconductor__Jobs__V1__GetJobRequest *req,
                           Opsconductor__Jobs__V1__GetJobResponse *resp,
                           void *ud)
{
    (void)ctx, (void)req, (void)resp, (void)ud;
    return ORPC_STATUS_OK;
}

static const Opsconductor__Jobs__V1__JobsService_Handlers jobs = {.get_job =
                                                                      get_job};

static orpc_code call_get_job(orpc_client *c)
{
    Opsconductor__Jobs__V1__GetJobRequest g =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
    g.job_id = 7;
    Opsconductor__Jobs__V1__GetJobResponse *r = NULL;
    orpc_call_opts o = {.timeout_ms = 5000};
    orpc_status st =
        opsconductor__jobs__v1__jobs_service__client__get_job(c, &g, &r, &o);
    orpc_code code = st.code;
    orpc_status_clear(&st);
    opsconductor__jobs__v1__get_job_response__free_unpacked(r, NULL);
    return code;
}

static orpc_code call_get_job_status(orpc_client *c)
{
    Opsconductor__Jobs__V1__GetJobStatusRequest g =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_STATUS_REQUEST__INIT;
    g.job_id = 7;
    Opsconductor__Jobs__V1__GetJobStatusResponse *r = NULL;
    orpc_call_opts o = {.timeout_ms = 5000};
    orpc_status st =
        opsconductor__jobs__v1__jobs_service__client__get_job_status(c, &g, &r,
                                                                     &o);
    orpc_code code = st.code;
    orpc_status_clear(&st);
    opsconductor__jobs__v1__get_job_status_response__free_unpacked(r, NULL);
    return code;
}

/* A routed client of |routes_text| over |ch|, counting into |m| (may be
 * NULL), with |ic| (may be NULL) around its legacy calls. */
static orpc_client *routed(const char *routes_text, orpc_channel *ch,
                           orpc_metrics *m, orpc_interceptor *ic,
                           orpc_routes **routes)
{
    char file[] = "/tmp/orpc_router_metrics_XXXXXX";
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, routes_text, strlen(routes_text)),
                     (ssize_t)strlen(routes_text));
    close(fd);
    orpc_error_detail d;
    if (orpc_routes_load(routes, file, &d) != 0)
        fail_msg("routes: %s", d.message);
    unlink(file);
    orpc_routed_opts o = {.routes = *routes,
                          .channel = ch,
                          .legacy_url = "http://127.0.0.1:1",
                          .auth_url = "http://127.0.0.1:1",
                          .username = "u",
                          .password = "p",
                          .legacy_timeout_ms = 2000,
                          .legacy_max_retries = -1,
                          .interceptors = ic ? &ic : NULL,
                          .n_interceptors = ic ? 1 : 0,
                          .metrics = m};
    orpc_client *c = NULL;
    if (orpc_routed_client_new(
            &c, &opsconductor__jobs__v1__jobs_service__orpc_desc, &o, &d) != 0)
        fail_msg("routed client: %s", d.message);
    return c;
}

#define GET_JOB "method=\"/opsconductor.jobs.v1.JobsService/GetJob\""
#define GET_STATUS "method=\"/opsconductor.jobs.v1.JobsService/GetJobStatus\""

static void test_router_counters(void **state)
{
    (void)state;
    orpc_server *srv = NULL;
    orpc_server_opts so = {.plaintext = 1, .io_threads = 1};
    assert_int_equal(orpc_server_new(&srv, &so, NULL, NULL), 0);
    assert_int_equal(opsconductor__jobs__v1__jobs_service__server__register(
                         srv, &jobs, NULL),
                     0);
    int port = 0;
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", &port, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    orpc_metrics *m = NULL;
    assert_int_equal(orpc_metrics_new(&m, NULL, NULL), 0);
    /* the metrics interceptor on the channel and on the legacy side too:
     * orpc_client_* series with served_by */
    orpc_interceptor *ic = NULL;
    assert_int_equal(orpc_metrics_interceptor_new(&ic, m), 0);
    orpc_channel *ch = NULL;
    orpc_channel_opts co = {
        .plaintext = 1, .interceptors = &ic, .n_interceptors = 1};
    assert_int_equal(orpc_channel_new(&ch, target, &co, NULL, NULL), 0);

    /* GetJob over gRPC; GetJobStatus is UNIMPLEMENTED there: it falls back
     * to the legacy side, which is down */
    orpc_routes *routes = NULL;
    orpc_client *c = routed("opsconductor.jobs.v1.JobsService/GetJob = grpc\n"
                            "* = fallback\n",
                            ch, m, ic, &routes);
    for (int i = 0; i < 3; i++)
        assert_int_equal(call_get_job(c), ORPC_OK);
    orpc_code legacy_code = call_get_job_status(c);
    assert_int_not_equal(legacy_code, ORPC_OK);
    assert_int_equal(call_get_job_status(c), legacy_code);
    orpc_client_free(c);
    orpc_routes_unref(routes);
    char *p = NULL;
    assert_int_equal(orpc_metrics_prometheus(m, &p, NULL), 0);
    /* each side's calls under its served_by: the channel's, and the legacy
     * calls the fallbacks made */
    assert_int_equal(page_value(p, "orpc_client_handled_total{" GET_JOB
                                   ",code=\"OK\",served_by=\"grpc\"}"),
                     3);
    assert_int_equal(page_value(p, "orpc_client_handled_total{" GET_STATUS
                                   ",code=\"UNIMPLEMENTED\",served_by="
                                   "\"grpc\"}"),
                     2);
    char key[256];
    snprintf(key, sizeof(key),
             "orpc_client_handled_total{" GET_STATUS
             ",code=\"%s\",served_by=\"legacy\"}",
             orpc_code_name(legacy_code));
    assert_int_equal(page_value(p, key), 2);
    assert_int_equal(page_value(p, "orpc_client_started_total{" GET_STATUS "}"),
                     4);
    free(p);

    /* shadow-grpc: gRPC answers, the legacy side is asked off the path */
    c = routed("opsconductor.jobs.v1.JobsService = shadow-grpc\n", ch, m, NULL,
               &routes);
    assert_int_equal(call_get_job(c), ORPC_OK);
    p = NULL;
    double mism = -1;
    for (int i = 0; i < 500 && mism < 1; i++) {
        free(p);
        assert_int_equal(orpc_metrics_prometheus(m, &p, NULL), 0);
        mism = page_value(p, "orpc_router_shadow_total{" GET_JOB
                             ",result=\"mismatch\"}");
        if (mism < 1)
            usleep(10000);
    }
    orpc_client_free(c); /* waits for the mirror */
    orpc_routes_unref(routes);
    free(p);
    assert_int_equal(orpc_metrics_prometheus(m, &p, NULL), 0);
    /* the legacy side failed where gRPC answered: a mismatch */
    assert_int_equal(page_value(p, "orpc_router_shadow_total{" GET_JOB
                                   ",result=\"mismatch\"}"),
                     1);
    assert_int_equal(
        page_value(p, "orpc_router_shadow_total{" GET_JOB ",result=\"match\"}"),
        -1);
    assert_int_equal(page_value(p, "orpc_router_calls_total{" GET_JOB
                                   ",served_by=\"grpc\"}"),
                     4);
    assert_int_equal(page_value(p, "orpc_router_calls_total{" GET_JOB
                                   ",served_by=\"legacy\"}"),
                     -1);
    assert_int_equal(page_value(p, "orpc_router_calls_total{" GET_STATUS
                                   ",served_by=\"legacy\"}"),
                     2);
    assert_int_equal(
        page_value(p, "orpc_router_fallbacks_total{" GET_STATUS "}"), 2);
    assert_int_equal(page_value(p, "orpc_router_fallbacks_total{" GET_JOB "}"),
                     -1);
    assert_non_null(strstr(p, "# TYPE orpc_router_calls_total counter\n"));
    free(p);

    /* without a registry the client counts nowhere, and works */
    c = routed("* = grpc\n", ch, NULL, NULL, &routes);
    assert_int_equal(call_get_job(c), ORPC_OK);
    orpc_client_free(c);
    orpc_routes_unref(routes);
    assert_int_equal(orpc_metrics_prometheus(m, &p, NULL), 0);
    assert_int_equal(page_value(p, "orpc_router_calls_total{" GET_JOB
                                   ",served_by=\"grpc\"}"),
                     4);
    free(p);

    orpc_metrics_unref(m);
    orpc_channel_unref(ch);
    orpc_interceptor_unref(ic);
    assert_int_equal(orpc_server_shutdown(srv, 100), 0);
    assert_int_equal(orpc_server_wait(srv), 0);
    orpc_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
