/*
 * legacy_proxy_server.c — an orpc server for the five OpsConductor services
 * whose handlers are test doubles that forward each call to the legacy
 * fixture (tests/legacy/legacy_server.py) through routed clients in legacy
 * mode, with orpc's gateway (orpc/compat/serve.h) answering legacy JSON on
 * the same port.  Run by tests/legacy/serve_check.py, which sends every
 * legacy request both to the fixture and to this server and compares the
 * answers: what a Python caller gets from an orpc service must be what it
 * got from the FastAPI one, after the whole round trip (JSON → message →
 * handler → message → JSON) on both sides of orpc.  Built only for the
 * tests.
 *
 * Usage:
 *   legacy_proxy_server --fixture URL [--listen HOST:PORT] [--policy FILE]
 *
 *   --fixture  the fixture's base URL, e.g. http://127.0.0.1:40123.
 *   --listen   an IPv4 address and port (default 127.0.0.1:0).  Once
 *              serving, the server prints "PORT <n>" as its only line.
 *   --policy   a gRPC authorization policy (JSON) for both paths.
 *
 * Bearer tokens of legacy requests are checked by the gateway's default
 * verifier: AuthService.Verify over orpc, on a channel to this very server,
 * whose Verify handler forwards to the fixture's GET /verify.  The
 * forwarding clients log in as scheduler-service.
 *
 * Signals: SIGTERM and SIGINT are blocked before any thread starts and
 * taken by the main thread with sigwait(); the server then shuts down and
 * the process exits 0.  On Linux it also dies with its parent.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <orpc/compat/router.h>
#include <orpc/compat/serve.h>
#include <orpc/gateway.h>
#include <orpc/orpc.h>

#include "opsconductor/auth/v1/auth.orpc.h"
#include "opsconductor/credentials/v1/credentials.orpc.h"
#include "opsconductor/jobs/v1/jobs.orpc.h"
#include "opsconductor/notification/v1/notification.orpc.h"
#include "opsconductor/user/v1/user.orpc.h"

#define MAX_METHODS 8

static const orpc_service_desc *const services[] = {
    &opsconductor__auth__v1__auth_service__orpc_desc,
    &opsconductor__jobs__v1__jobs_service__orpc_desc,
    &opsconductor__notification__v1__notification_service__orpc_desc,
    &opsconductor__credentials__v1__credentials_service__orpc_desc,
    &opsconductor__user__v1__user_service__orpc_desc,
};
#define N_SERVICES (sizeof(services) / sizeof(services[0]))

/*
 * Every unary method: the same request to the fixture, its answer copied
 * into the call's response (packed, unpacked into the call's arena, and the
 * top-level struct copied over the one the runtime initialised).
 */
static orpc_status forward(orpc_ctx *ctx, const void *impl, void *user_data)
{
    (void)impl;
    orpc_client *client = user_data;
    const orpc_method_desc *m = orpc_ctx_method(ctx);
    ProtobufCMessage *resp = NULL;
    orpc_status st =
        orpc_client_invoke(client, m, orpc_ctx_request(ctx), &resp, NULL);
    if (st.code != ORPC_OK)
        return st;
    size_t len = protobuf_c_message_get_packed_size(resp);
    uint8_t *buf = orpc_arena_alloc(orpc_ctx_arena(ctx), len ? len : 1);
    ProtobufCMessage *copy = NULL;
    if (buf != NULL) {
        protobuf_c_message_pack(resp, buf);
        copy = protobuf_c_message_unpack(
            resp->descriptor, orpc_arena_allocator(orpc_ctx_arena(ctx)), len,
            buf);
    }
    const ProtobufCMessageDescriptor *d = resp->descriptor;
    protobuf_c_message_free_unpacked(resp, NULL);
    if (copy == NULL)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
    memcpy(orpc_ctx_response(ctx), copy, d->sizeof_message);
    return ORPC_STATUS_OK;
}

/*
 * WatchJob (no legacy endpoint to forward to): the job's status from the
 * fixture (GetJobStatus, whose errors it returns), then three events:
 * "queued", "running", and that status.
 */
static orpc_status watch_job(orpc_ctx *ctx, const void *impl, void *user_data)
{
    (void)impl;
    const Opsconductor__Jobs__V1__WatchJobRequest *req =
        (const void *)orpc_ctx_request(ctx);
    Opsconductor__Jobs__V1__GetJobStatusRequest sreq =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_STATUS_REQUEST__INIT;
    sreq.job_id = req->job_id;
    Opsconductor__Jobs__V1__GetJobStatusResponse *sresp = NULL;
    orpc_status st =
        opsconductor__jobs__v1__jobs_service__client__get_job_status(
            user_data, &sreq, &sresp, NULL);
    if (st.code != ORPC_OK)
        return st;
    char final[64] = "unknown";
    const Google__Protobuf__Struct *s = sresp->status;
    for (size_t i = 0; s != NULL && i < s->n_fields; i++)
        if (strcmp(s->fields[i]->key, "status") == 0 &&
            s->fields[i]->value->kind_case ==
                GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
            snprintf(final, sizeof(final), "%s",
                     s->fields[i]->value->string_value);
    protobuf_c_message_free_unpacked(&sresp->base, NULL);
    const char *steps[] = {"queued", "running", final};
    for (int i = 0; i < 3; i++) {
        Opsconductor__Jobs__V1__JobEvent ev =
            OPSCONDUCTOR__JOBS__V1__JOB_EVENT__INIT;
        Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
        at.seconds = 1704067200 + i; /* 2024-01-01T00:00:0iZ */
        ev.job_id = req->job_id;
        ev.status = (char *)steps[i];
        ev.changed_at = &at;
        int rc = orpc_ctx_send(ctx, &ev.base);
        if (rc != 0)
            return orpc_status_new(ORPC_CANCELLED, orpc_strerror(rc));
    }
    return ORPC_STATUS_OK;
}

static int usage(void)
{
    fprintf(stderr, "usage: legacy_proxy_server --fixture URL "
                    "[--listen HOST:PORT] [--policy FILE]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *fixture = NULL, *listen = "127.0.0.1:0", *policy = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--fixture") == 0)
            fixture = argv[++i];
        else if (strcmp(argv[i], "--listen") == 0)
            listen = argv[++i];
        else if (strcmp(argv[i], "--policy") == 0)
            policy = argv[++i];
        else
            return usage();
    }
    if (fixture == NULL)
        return usage();
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    orpc_client *clients[N_SERVICES] = {0};
    orpc_method_handler handlers[N_SERVICES][MAX_METHODS] = {{0}};
    orpc_routed_opts ro = {.legacy_url = fixture,
                           .auth_url = fixture,
                           .identity = "scheduler-service",
                           .username = "scheduler-service",
                           .password = "scheduler-secret",
                           .legacy_max_retries = -1};
    orpc_server_opts so = {.plaintext = 1, .authz_policy_file = policy};
    orpc_server *srv = NULL;
    orpc_channel *self = NULL;
    orpc_legacy_serve *gw = NULL;
    orpc_error_detail why = {0};
    int port = 0, rc = orpc_server_new(&srv, &so, NULL, &why);
    for (size_t i = 0; rc == 0 && i < N_SERVICES; i++) {
        rc = orpc_routed_client_new(&clients[i], services[i], &ro, &why);
        for (size_t j = 0; rc == 0 && j < services[i]->n_methods; j++) {
            if (j >= MAX_METHODS) {
                rc = ORPC_ELIMIT;
                break;
            }
            if (services[i]->methods[j].kind == ORPC_CALL_UNARY)
                handlers[i][j] = forward;
            else if (strcmp(services[i]->methods[j].name, "WatchJob") == 0)
                handlers[i][j] = watch_job;
        }
        if (rc == 0)
            rc = orpc_server_add_service(srv, services[i], handlers[i], NULL,
                                         clients[i], NULL);
    }
    if (rc == 0)
        rc = orpc_server_listen(srv, listen, &port, &why);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    orpc_channel_opts co = {.plaintext = 1};
    if (rc == 0)
        rc = orpc_channel_new(&self, target, &co, NULL, &why);
    orpc_legacy_serve_opts go = {.auth_channel = self};
    if (rc == 0)
        rc = orpc_legacy_serve_new(&gw, &go);
    if (rc == 0)
        rc = orpc_legacy_serve_install(gw, srv);
    if (rc == 0)
        rc = orpc_server_start(srv);
    if (rc != 0) {
        fprintf(stderr, "legacy_proxy_server: %s%s%s\n", orpc_strerror(rc),
                why.message[0] ? ": " : "", why.message);
        return 1;
    }
    printf("PORT %d\n", port);
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    orpc_server_shutdown(srv, 2000);
    orpc_server_wait(srv);
    orpc_server_free(srv);
    orpc_legacy_serve_free(gw);
    orpc_channel_unref(self);
    for (size_t i = 0; i < N_SERVICES; i++)
        orpc_client_free(clients[i]);
    return 0;
}
