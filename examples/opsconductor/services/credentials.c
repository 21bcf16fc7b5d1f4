/*
 * credentials.c — opsconductor.credentials.v1.CredentialsService:
 * GetCredential and ListTargetCredentials over the deterministic
 * credentials 1..20 of targets 1..5 (data.c, the legacy fixture's
 * credential_obj()).  Credentials belong to targets: credential c is
 * target ((c - 1) % 5) + 1's.  Stateless.  Responses carry secrets: this
 * file never logs them.
 */
#include <stdio.h>

#include "data.h"
#include "opsconductor/credentials/v1/credentials.orpc.h"
#include "svc.h"

static orpc_status
get_credential(orpc_ctx *ctx,
               const Opsconductor__Credentials__V1__GetCredentialRequest *req,
               Opsconductor__Credentials__V1__GetCredentialResponse *resp,
               void *user_data)
{
    (void)user_data;
    if (req->credential_id < 1 || req->credential_id > DATA_N_CREDENTIALS)
        return orpc_status_errorf(ORPC_NOT_FOUND, "Credential %lld not found",
                                  (long long)req->credential_id);
    json_t *obj = data_credential(req->credential_id);
    if (obj == NULL)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
    int rc = svc_struct(ctx, obj, &resp->credential);
    json_decref(obj);
    return rc == 0 ? ORPC_STATUS_OK : svc_struct_failed(rc);
}

static orpc_status list_target_credentials(
    orpc_ctx *ctx,
    const Opsconductor__Credentials__V1__ListTargetCredentialsRequest *req,
    Opsconductor__Credentials__V1__ListTargetCredentialsResponse *resp,
    void *user_data)
{
    (void)user_data;
    if (req->target_id < 1 || req->target_id > DATA_N_TARGETS)
        return orpc_status_errorf(ORPC_NOT_FOUND, "Target %lld not found",
                                  (long long)req->target_id);
    json_t *obj = data_target_credentials(req->target_id);
    if (obj == NULL)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
    json_t *list = json_object_get(obj, "credentials");
    size_t n = json_array_size(list);
    orpc_arena *a = orpc_ctx_arena(ctx);
    resp->credentials = orpc_arena_calloc(a, n ? n : 1, sizeof(void *));
    int rc = resp->credentials == NULL ? ORPC_ENOMEM : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = svc_struct(ctx, json_array_get(list, i), &resp->credentials[i]);
        if (rc == 0)
            resp->n_credentials = i + 1;
    }
    json_decref(obj);
    return rc == 0 ? ORPC_STATUS_OK : svc_struct_failed(rc);
}

static const Opsconductor__Credentials__V1__CredentialsService_Handlers
    handlers = {
        .get_credential = get_credential,
        .list_target_credentials = list_target_credentials,
};

static int credentials_open(void **state, const svc_config *cfg,
                            orpc_metrics *m, char *err, size_t errlen)
{
    (void)m;
    *state = NULL;
    orpc_legacy_serve *gw = NULL;
    if (svc_legacy_new(&gw, cfg, err, errlen) != 0)
        return -1;
    *state = gw; /* the handlers keep no state: the gateway is it */
    return 0;
}

static int credentials_register(orpc_server *srv, void *state)
{
    return opsconductor__credentials__v1__credentials_service__server__register(
        srv, &handlers, state);
}

/*
 * ==== LEGACY SEAM (credentials) ====
 * The legacy JSON routes (GET /credentials/{credential_id},
 * GET /targets/{target_id}/credentials)
 * answered from the handlers above by orpc's gateway, on the gRPC port
 * (HTTP/1.1 by ALPN) and on --legacy-listen.  Bearer tokens are judged by
 * the auth service (svc_legacy_new(): Verify over mutual TLS on
 * --auth-target); the caller's identity is then
 * legacy-service:<account>, which the policy matches.
 */
static int credentials_install_legacy(orpc_server *srv, void *state)
{
    return orpc_legacy_serve_install(state, srv);
}

/* After the server is freed (main.c): the gateway goes with the state. */
static void credentials_close(void *state)
{
    orpc_legacy_serve_free(state);
}

const svc_kind svc_credentials_kind = {
    .name = "credentials",
    .open = credentials_open,
    .register_ = credentials_register,
    .install_legacy = credentials_install_legacy,
    .close = credentials_close,
};
