/*
 * orpc_legacy_bench_server.c — the server of tests/bench/legacy.sh: one
 * handler, opsconductor.jobs.v1.JobsService/GetJob, answering a fixed job
 * of about 100 bytes of JSON, reached both as gRPC and as the legacy route
 * GET /jobs/{job_id} (orpc's gateway, orpc/compat/serve.h) on the same
 * port, so the two paths are measured on exactly the same handler.
 *
 *   orpc-legacy-bench-server --port=N [--threads=N] [--blocking]
 *
 * The bearer token "bench-token" is the only one accepted (a verifier
 * function of this file: the benchmark measures serving, not the auth
 * service).  --blocking registers the service as blocking (handlers on the
 * worker pool); by default it is non-blocking, as in orpc-bench-server.
 * Prints "listening on <port>" once serving; runs until SIGTERM or SIGINT.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/compat/serve.h>
#include <orpc/orpc.h>

#include "opsconductor/jobs/v1/jobs.orpc.h"

typedef Google__Protobuf__Value Value;
typedef Google__Protobuf__Struct__FieldsEntry Entry;

/* The job every call answers: {"id":…,"name":"nightly-backup",
 * "status":"succeeded","owner":"ops","schedule":"0 2 * * *"} */
static orpc_status get_job(orpc_ctx *ctx,
                           const Opsconductor__Jobs__V1__GetJobRequest *req,
                           Opsconductor__Jobs__V1__GetJobResponse *resp,
                           void *ud)
{
    (void)ud;
    static const char *const keys[] = {"id", "name", "status", "owner",
                                       "schedule"};
    static const char *const strs[] = {NULL, "nightly-backup", "succeeded",
                                       "ops", "0 2 * * *"};
    enum { N = 5 };
    orpc_arena *a = orpc_ctx_arena(ctx);
    Google__Protobuf__Struct *job = orpc_arena_alloc(a, sizeof(*job));
    Entry *entries = orpc_arena_alloc(a, N * sizeof(*entries));
    Entry **ptrs = orpc_arena_alloc(a, N * sizeof(*ptrs));
    Value *values = orpc_arena_alloc(a, N * sizeof(*values));
    if (!job || !entries || !ptrs || !values)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
    google__protobuf__struct__init(job);
    for (int i = 0; i < N; i++) {
        google__protobuf__struct__fields_entry__init(&entries[i]);
        google__protobuf__value__init(&values[i]);
        entries[i].key = (char *)keys[i];
        entries[i].value = &values[i];
        if (strs[i] == NULL) {
            values[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
            values[i].number_value = (double)req->job_id;
        } else {
            values[i].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
            values[i].string_value = (char *)strs[i];
        }
        ptrs[i] = &entries[i];
    }
    job->n_fields = N;
    job->fields = ptrs;
    resp->job = job;
    return ORPC_STATUS_OK;
}

static const Opsconductor__Jobs__V1__JobsService_Handlers handlers = {
    .get_job = get_job,
};

static int verify(const char *token, char **identity, void *ud)
{
    (void)ud;
    if (strcmp(token, "bench-token") != 0)
        return ORPC_ENOTFOUND;
    *identity = strdup("legacy-service:bench");
    return *identity ? 0 : ORPC_ENOMEM;
}

static long parse(const char *s, long lo, long hi)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "orpc-legacy-bench-server: bad value %s\n", s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    long port = -1, threads = 0;
    int blocking = 0;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--port=", 7) == 0)
            port = parse(argv[i] + 7, 0, 65535);
        else if (strncmp(argv[i], "--threads=", 10) == 0)
            threads = parse(argv[i] + 10, 1, 1024);
        else if (strcmp(argv[i], "--blocking") == 0)
            blocking = 1;
        else {
            fprintf(stderr, "usage: orpc-legacy-bench-server --port=N "
                            "[--threads=N] [--blocking]\n");
            return 2;
        }
    }
    if (port < 0) {
        fprintf(stderr, "orpc-legacy-bench-server: --port is required\n");
        return 2;
    }
    orpc_server_opts o = {.plaintext = 1, .io_threads = (unsigned)threads};
    orpc_server *srv = NULL;
    orpc_legacy_serve *gw = NULL;
    orpc_legacy_serve_opts go = {.verify = verify, .verify_nonblocking = 1};
    orpc_service_opts so = {.nonblocking = !blocking};
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%ld", port);
    int bound = 0;
    int rc = orpc_server_new(&srv, &o, NULL, NULL);
    if (rc == 0)
        rc = opsconductor__jobs__v1__jobs_service__server__register_with_opts(
            srv, &handlers, NULL, &so);
    if (rc == 0)
        rc = orpc_legacy_serve_new(&gw, &go);
    if (rc == 0)
        rc = orpc_legacy_serve_install(gw, srv);
    if (rc == 0)
        rc = orpc_server_listen(srv, addr, &bound, NULL);
    if (rc == 0)
        rc = orpc_server_start(srv);
    if (rc != 0) {
        fprintf(stderr, "orpc-legacy-bench-server: %s\n", orpc_strerror(rc));
        return 1;
    }
    printf("listening on %d\n", bound);
    fflush(stdout);
    rc = orpc_server_run(srv);
    orpc_server_free(srv);
    orpc_legacy_serve_free(gw);
    return rc == 0 ? 0 : 1;
}
