/*
 * user.c — opsconductor.user.v1.UserService: GetUser and
 * GetUserPreferences over the deterministic users 1..50 of data.c (the
 * legacy fixture's user_obj() and preferences_obj()).  Stateless.
 */
#include <stdio.h>

#include "data.h"
#include "opsconductor/user/v1/user.orpc.h"
#include "svc.h"

/* Answers |obj| (taken) as the Struct |*out|, or the status it failed
 * with. */
static orpc_status answer(orpc_ctx *ctx, json_t *obj,
                          Google__Protobuf__Struct **out)
{
    if (obj == NULL)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
    int rc = svc_struct(ctx, obj, out);
    json_decref(obj);
    return rc == 0 ? ORPC_STATUS_OK : svc_struct_failed(rc);
}

static orpc_status get_user(orpc_ctx *ctx,
                            const Opsconductor__User__V1__GetUserRequest *req,
                            Opsconductor__User__V1__GetUserResponse *resp,
                            void *user_data)
{
    (void)user_data;
    if (req->user_id < 1 || req->user_id > DATA_N_USERS)
        return orpc_status_errorf(ORPC_NOT_FOUND, "User %lld not found",
                                  (long long)req->user_id);
    return answer(ctx, data_user(req->user_id), &resp->user);
}

static orpc_status get_user_preferences(
    orpc_ctx *ctx, const Opsconductor__User__V1__GetUserPreferencesRequest *req,
    Opsconductor__User__V1__GetUserPreferencesResponse *resp, void *user_data)
{
    (void)user_data;
    if (req->user_id < 1 || req->user_id > DATA_N_USERS)
        return orpc_status_errorf(ORPC_NOT_FOUND, "User %lld not found",
                                  (long long)req->user_id);
    return answer(ctx, data_preferences(req->user_id), &resp->preferences);
}

static const Opsconductor__User__V1__UserService_Handlers handlers = {
    .get_user = get_user,
    .get_user_preferences = get_user_preferences,
};

static int user_open(void **state, const svc_config *cfg, orpc_metrics *m,
                     char *err, size_t errlen)
{
    (void)m;
    *state = NULL;
    orpc_legacy_serve *gw = NULL;
    if (svc_legacy_new(&gw, cfg, err, errlen) != 0)
        return -1;
    *state = gw; /* the handlers keep no state: the gateway is it */
    return 0;
}

static int user_register(orpc_server *srv, void *state)
{
    return opsconductor__user__v1__user_service__server__register(
        srv, &handlers, state);
}

/*
 * ==== LEGACY SEAM (user) ====
 * The legacy JSON routes (GET /users/{user_id},
 * GET /users/{user_id}/preferences)
 * answered from the handlers above by orpc's gateway, on the gRPC port
 * (HTTP/1.1 by ALPN) and on --legacy-listen.  Bearer tokens are judged by
 * the auth service (svc_legacy_new(): Verify over mutual TLS on
 * --auth-target); the caller's identity is then
 * legacy-service:<account>, which the policy matches.
 */
static int user_install_legacy(orpc_server *srv, void *state)
{
    return orpc_legacy_serve_install(state, srv);
}

/* After the server is freed (main.c): the gateway goes with the state. */
static void user_close(void *state)
{
    orpc_legacy_serve_free(state);
}

const svc_kind svc_user_kind = {
    .name = "user",
    .open = user_open,
    .register_ = user_register,
    .install_legacy = user_install_legacy,
    .close = user_close,
};
