/*
 * clients_check — an out-of-tree program using the installed
 * liborpc-clients through find_package(orpc) and orpc::orpc_clients: the
 * OpsConductor stubs and orpc_client_new_from_env() from <orpc/opsconductor.h>.
 * No network: it checks what configuration alone decides.  Exits 0 when
 * the client of a service needing a token is refused without credentials
 * and made with them, and a stub call routed to gRPC without a target ends
 * UNAVAILABLE without leaving the process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/opsconductor.h>

int main(void)
{
    int failures = 0;
    orpc_client *jobs = NULL;
    setenv("ORPC_IDENTITY", "scheduler-service", 1);
    unsetenv("SCHEDULER_SERVICE_USERNAME");
    orpc_error_detail why = {0};
    if (orpc_client_new_from_env(
            &jobs, &opsconductor__jobs__v1__jobs_service__orpc_desc, &why) !=
            ORPC_ECONFIG ||
        strstr(why.message, "SCHEDULER_SERVICE_USERNAME") == NULL) {
        fprintf(stderr, "clients_check: no credentials was not refused "
                        "with the variables to set (\"%s\")\n",
                why.message);
        failures++;
    }
    orpc_client_free(jobs);
    jobs = NULL;
    setenv("SCHEDULER_SERVICE_USERNAME", "scheduler-service", 1);
    setenv("SCHEDULER_SERVICE_PASSWORD", "secret", 1);
    setenv("ORPC_ROUTE_JOBS", "grpc", 1);
    int rc = orpc_client_new_from_env(
        &jobs, &opsconductor__jobs__v1__jobs_service__orpc_desc, &why);
    if (rc != 0) {
        fprintf(stderr, "clients_check: orpc_client_new_from_env: %s\n",
                why.message);
        return 1;
    }
    Opsconductor__Jobs__V1__GetJobRequest req =
        OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
    req.job_id = 42;
    Opsconductor__Jobs__V1__GetJobResponse *resp = NULL;
    orpc_served_by by = ORPC_SERVED_LEGACY;
    orpc_call_opts opts = {.timeout_ms = 1000, .served_by = &by};
    orpc_status st = opsconductor__jobs__v1__jobs_service__client__get_job(
        jobs, &req, &resp, &opts);
    if (st.code != ORPC_UNAVAILABLE || by != ORPC_SERVED_NONE) {
        fprintf(stderr, "clients_check: GetJob gave %s (%s), served_by %d\n",
                orpc_code_name(st.code), st.message ? st.message : "", (int)by);
        failures++;
    }
    orpc_status_clear(&st);
    orpc_client_free(jobs);
    return failures ? 1 : 0;
}
