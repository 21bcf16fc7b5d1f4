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
    (void)cfg;
    (void)m;
    (void)err;
    (void)errlen;
    *state = NULL;
    return 0;
}

static int user_register(orpc_server *srv, void *state)
{
    return opsconductor__user__v1__user_service__server__register(
        srv, &handlers, state);
}

/*
 * ==== LEGACY SEAM (user) ====
 * Where the user service will also serve its legacy JSON routes
 * (GET /users/{user_id}, GET /users/{user_id}/preferences) on its gRPC
 * port: the same-port legacy serving part calls orpc_legacy_serve_install()
 * (orpc/compat/serve.h) here with this server and the handlers above.
 * Until then it serves gRPC only.
 */
static int user_install_legacy(orpc_server *srv, void *state)
{
    (void)srv;
    (void)state;
    return 0;
}

static void user_close(void *state)
{
    (void)state;
}

const svc_kind svc_user_kind = {
    .name = "user",
    .open = user_open,
    .register_ = user_register,
    .install_legacy = user_install_legacy,
    .close = user_close,
};
