/*
 * executor.c — opsconductor-executor: the platform's executor under steady
 * load.  Each unit of work is one task step on a target, for a user:
 *
 *   1. ListTargetCredentials(target), then GetCredential of one of them
 *      (the executor fetches the secret it logs in with);
 *   2. now and then GetUser(user), and GetUserPreferences(user) (whom to
 *      notify, and how);
 *   3. the notifications the preferences ask for — e-mail when
 *      email_enabled, Slack when slack_enabled: two or more go as one
 *      SendBatch (client streaming, gRPC only) when the notification
 *      service's SendNotification is routed to the gRPC side (grpc,
 *      shadow-grpc), else one SendNotification each.  A SendBatch the
 *      client cannot start (no gRPC side) sends them one by one instead.
 *
 * Targets 1..--targets and users 1..--users in turn (or at random with
 * --seed).  A failed call is counted and never repeated; the task goes on
 * with what it has (no preferences: no notification).  The legacy token
 * flow (POST /login) is the client library's, not counted here.
 *
 * Counters beyond the calls: tasks (units started), notifications_sent
 * (SendNotification OK, plus SendBatch's accepted) and
 * notifications_rejected (SendBatch's rejected).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"

enum { M_LIST, M_CRED, M_USER, M_PREFS, M_SEND, M_BATCH, N_METHODS };
enum { S_CRED, S_USER, S_NOTIFY, N_SERVICES };

typedef struct exec {
    int64_t targets, users;
    int user_every;
    uint64_t seq;
    uint64_t tasks, sent, rejected; /* under the stats lock */
    const orpc_method_desc *methods[N_METHODS];
} exec;

static const orpc_service_desc *const services[N_SERVICES] = {
    &opsconductor__credentials__v1__credentials_service__orpc_desc,
    &opsconductor__user__v1__user_service__orpc_desc,
    &opsconductor__notification__v1__notification_service__orpc_desc};

typedef struct bump {
    exec *e;
    uint64_t sent, rejected;
    int start;
    uint64_t seq;
} bump;

static void bump_fn(void *arg)
{
    bump *b = arg;
    if (b->start) {
        b->seq = b->e->seq++;
        b->e->tasks++;
    }
    b->e->sent += b->sent;
    b->e->rejected += b->rejected;
}

static void extra_json(FILE *f, void *state)
{
    exec *e = state;
    fprintf(f,
            ",\"tasks\":%" PRIu64 ",\"notifications_sent\":%" PRIu64
            ",\"notifications_rejected\":%" PRIu64,
            e->tasks, e->sent, e->rejected);
}

static void extra_reset(void *state)
{
    exec *e = state;
    e->tasks = e->sent = e->rejected = 0;
}

/* --- the calls -------------------------------------------------------- */

static void credentials(plat *p, exec *e, int64_t target, uint64_t seq)
{
    plat_call c;
    if (plat_call_begin(p, &c, e->methods[M_LIST], 0, 0) != 0)
        return;
    Opsconductor__Credentials__V1__ListTargetCredentialsRequest lr =
        OPSCONDUCTOR__CREDENTIALS__V1__LIST_TARGET_CREDENTIALS_REQUEST__INIT;
    lr.target_id = target;
    Opsconductor__Credentials__V1__ListTargetCredentialsResponse *list = NULL;
    orpc_status st =
        opsconductor__credentials__v1__credentials_service__client__list_target_credentials(
            plat_client(p, S_CRED), &lr, &list, &c.opts);
    plat_call_end(p, &c, &st);
    int64_t cred = 0;
    if (st.code == ORPC_OK) {
        if (list->n_credentials > 0)
            cred =
                plat_int(list->credentials[seq % list->n_credentials], "id", 0);
        opsconductor__credentials__v1__list_target_credentials_response__free_unpacked(
            list, NULL);
    }
    orpc_status_clear(&st);
    if (cred <= 0 || plat_call_begin(p, &c, e->methods[M_CRED], 0, 0) != 0)
        return;
    Opsconductor__Credentials__V1__GetCredentialRequest gr =
        OPSCONDUCTOR__CREDENTIALS__V1__GET_CREDENTIAL_REQUEST__INIT;
    gr.credential_id = cred;
    Opsconductor__Credentials__V1__GetCredentialResponse *one = NULL;
    st =
        opsconductor__credentials__v1__credentials_service__client__get_credential(
            plat_client(p, S_CRED), &gr, &one, &c.opts);
    plat_call_end(p, &c, &st);
    if (st.code == ORPC_OK)
        opsconductor__credentials__v1__get_credential_response__free_unpacked(
            one, NULL);
    orpc_status_clear(&st);
}

/* The user's preferences (free with google__protobuf__struct__free_unpacked)
 * or NULL. */
static Google__Protobuf__Struct *preferences(plat *p, exec *e, int64_t user,
                                             uint64_t seq)
{
    plat_call c;
    if (e->user_every > 0 && seq % (uint64_t)e->user_every == 0) {
        if (plat_call_begin(p, &c, e->methods[M_USER], 0, 0) != 0)
            return NULL;
        Opsconductor__User__V1__GetUserRequest ur =
            OPSCONDUCTOR__USER__V1__GET_USER_REQUEST__INIT;
        ur.user_id = user;
        Opsconductor__User__V1__GetUserResponse *u = NULL;
        orpc_status st = opsconductor__user__v1__user_service__client__get_user(
            plat_client(p, S_USER), &ur, &u, &c.opts);
        plat_call_end(p, &c, &st);
        if (st.code == ORPC_OK)
            opsconductor__user__v1__get_user_response__free_unpacked(u, NULL);
        orpc_status_clear(&st);
    }
    if (plat_call_begin(p, &c, e->methods[M_PREFS], 0, 0) != 0)
        return NULL;
    Opsconductor__User__V1__GetUserPreferencesRequest pr =
        OPSCONDUCTOR__USER__V1__GET_USER_PREFERENCES_REQUEST__INIT;
    pr.user_id = user;
    Opsconductor__User__V1__GetUserPreferencesResponse *resp = NULL;
    orpc_status st =
        opsconductor__user__v1__user_service__client__get_user_preferences(
            plat_client(p, S_USER), &pr, &resp, &c.opts);
    plat_call_end(p, &c, &st);
    Google__Protobuf__Struct *prefs = NULL;
    if (st.code == ORPC_OK) {
        prefs = resp->preferences; /* keep it, free the rest */
        resp->preferences = NULL;
        opsconductor__user__v1__get_user_preferences_response__free_unpacked(
            resp, NULL);
    }
    orpc_status_clear(&st);
    return prefs;
}

/* Escapes |s| for a JSON string (quotes and backslashes; the data's
 * addresses and channels have nothing else to escape). */
static void json_str(char *out, size_t n, const char *s)
{
    size_t j = 0;
    for (size_t i = 0; s[i] != '\0' && j + 3 < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20)
            continue;
        if (ch == '"' || ch == '\\')
            out[j++] = '\\';
        out[j++] = (char)ch;
    }
    out[j] = '\0';
}

typedef struct msgs {
    Opsconductor__Notification__V1__SendNotificationRequest m[2];
    int n;
} msgs;

static void build(msgs *ms, const Google__Protobuf__Struct *prefs, int64_t user,
                  uint64_t seq)
{
    ms->n = 0;
    char esc[300], json[600];
    const char *addr = plat_str(prefs, "email_address");
    if (plat_bool(prefs, "email_enabled") && addr != NULL) {
        Opsconductor__Notification__V1__SendNotificationRequest *m =
            &ms->m[ms->n];
        opsconductor__notification__v1__send_notification_request__init(m);
        m->type =
            OPSCONDUCTOR__NOTIFICATION__V1__NOTIFICATION_TYPE__NOTIFICATION_TYPE_EMAIL;
        m->destination = (char *)addr;
        snprintf(json, sizeof(json),
                 "{\"subject\": \"Task %" PRIu64 " finished\", \"body\": "
                 "\"The executor finished task %" PRIu64 " for user %" PRId64
                 ".\"}",
                 seq, seq, user);
        m->payload = plat_struct(json);
        m->_template_id_case =
            OPSCONDUCTOR__NOTIFICATION__V1__SEND_NOTIFICATION_REQUEST___TEMPLATE_ID_TEMPLATE_ID;
        m->template_id = (int64_t)(seq % 10) + 1;
        if (m->payload != NULL)
            ms->n++;
    }
    const char *chan = plat_str(prefs, "slack_channel");
    if (plat_bool(prefs, "slack_enabled") && chan != NULL) {
        Opsconductor__Notification__V1__SendNotificationRequest *m =
            &ms->m[ms->n];
        opsconductor__notification__v1__send_notification_request__init(m);
        m->type =
            OPSCONDUCTOR__NOTIFICATION__V1__NOTIFICATION_TYPE__NOTIFICATION_TYPE_SLACK;
        m->destination = (char *)chan;
        json_str(esc, sizeof(esc), chan);
        snprintf(json, sizeof(json),
                 "{\"message\": \"task %" PRIu64 " finished\", \"channel\": "
                 "\"%s\"}",
                 seq, esc);
        m->payload = plat_struct(json);
        if (m->payload != NULL)
            ms->n++;
    }
}

/* SendBatch; returns -1 when it could not start (no gRPC side). */
static int send_batch(plat *p, exec *e, msgs *ms)
{
    plat_call c;
    if (plat_call_begin(p, &c, e->methods[M_BATCH], 0, 0) != 0)
        return 0;
    Opsconductor__Notification__V1__NotificationService_SendBatch_Writer *w =
        NULL;
    int rc =
        opsconductor__notification__v1__notification_service__client__send_batch(
            plat_client(p, S_NOTIFY), &c.opts, &w);
    if (rc == ORPC_ENOTSUP)
        return -1;
    if (rc != 0) {
        plat_count(p, e->methods[M_BATCH], PLAT_NONE, ORPC_UNKNOWN, c.t0_ns,
                   orpc_strerror(rc));
        return 0;
    }
    for (int i = 0; i < ms->n; i++)
        if (opsconductor__notification__v1__notification_service__client__send_batch__send(
                w, &ms->m[i]) != 0)
            break; /* the status says why */
    Opsconductor__Notification__V1__SendBatchResponse *resp = NULL;
    orpc_status st =
        opsconductor__notification__v1__notification_service__client__send_batch__finish(
            w, &resp);
    if (c.by == ORPC_SERVED_NONE)
        c.by = ORPC_SERVED_GRPC; /* a stream that started went over gRPC */
    plat_call_end(p, &c, &st);
    bump b = {.e = e};
    if (st.code == ORPC_OK) {
        b.sent = resp->accepted > 0 ? (uint64_t)resp->accepted : 0;
        b.rejected = resp->rejected > 0 ? (uint64_t)resp->rejected : 0;
        opsconductor__notification__v1__send_batch_response__free_unpacked(
            resp, NULL);
        plat_locked(p, bump_fn, &b);
    }
    orpc_status_clear(&st);
    return 0;
}

static void
send_one(plat *p, exec *e,
         const Opsconductor__Notification__V1__SendNotificationRequest *m)
{
    plat_call c;
    if (plat_call_begin(p, &c, e->methods[M_SEND], 0, 0) != 0)
        return;
    Opsconductor__Notification__V1__SendNotificationResponse *resp = NULL;
    orpc_status st =
        opsconductor__notification__v1__notification_service__client__send_notification(
            plat_client(p, S_NOTIFY), m, &resp, &c.opts);
    plat_call_end(p, &c, &st);
    if (st.code == ORPC_OK) {
        opsconductor__notification__v1__send_notification_response__free_unpacked(
            resp, NULL);
        bump b = {.e = e, .sent = 1};
        plat_locked(p, bump_fn, &b);
    }
    orpc_status_clear(&st);
}

static void unit(plat_worker *w)
{
    plat *p = w->p;
    exec *e = plat_state(p);
    const plat_flags *f = plat_get_flags(p);
    bump b = {.e = e, .start = 1};
    plat_locked(p, bump_fn, &b);
    uint64_t seq = b.seq;
    int64_t target =
        1 + (int64_t)(f->has_seed ? plat_random(w, (uint64_t)e->targets)
                                  : seq % (uint64_t)e->targets);
    int64_t user =
        1 + (int64_t)(f->has_seed ? plat_random(w, (uint64_t)e->users)
                                  : seq % (uint64_t)e->users);

    credentials(p, e, target, seq);
    Google__Protobuf__Struct *prefs = preferences(p, e, user, seq);
    if (prefs == NULL)
        return;
    msgs ms;
    build(&ms, prefs, user, seq);
    orpc_route_mode mode = plat_mode(p, e->methods[M_SEND]);
    int batched = 0;
    if (ms.n >= 2 &&
        (mode == ORPC_ROUTE_GRPC || mode == ORPC_ROUTE_SHADOW_GRPC))
        batched = send_batch(p, e, &ms) == 0;
    for (int i = 0; !batched && i < ms.n; i++)
        send_one(p, e, &ms.m[i]);
    for (int i = 0; i < ms.n; i++)
        google__protobuf__struct__free_unpacked(ms.m[i].payload, NULL);
    google__protobuf__struct__free_unpacked(prefs, NULL);
}

static int flag(const char *a, void *state)
{
    exec *e = state;
    const char *eq = strchr(a, '=');
    if (eq == NULL)
        return 0;
    size_t nl = (size_t)(eq - a);
    char *end;
    long long n = strtoll(eq + 1, &end, 10);
    int ok = end != eq + 1 && *end == '\0';
#define IS(name) (nl == strlen(name) && strncmp(a, name, nl) == 0)
    if (IS("--targets")) {
        e->targets = n;
        ok = ok && n >= 1 && n <= 1000000;
    } else if (IS("--users")) {
        e->users = n;
        ok = ok && n >= 1 && n <= 1000000;
    } else if (IS("--user-every")) {
        e->user_every = (int)n;
        ok = ok && n >= 0 && n <= 1000000;
    } else {
        return 0;
    }
#undef IS
    if (ok)
        return 1;
    fprintf(stderr, "opsconductor-executor: bad value in %.100s\n", a);
    return -1;
}

int main(int argc, char **argv)
{
    exec e = {.targets = 5, .users = 50, .user_every = 4};
    e.methods[M_LIST] =
        opsconductor__credentials__v1__credentials_service__method__list_target_credentials;
    e.methods[M_CRED] =
        opsconductor__credentials__v1__credentials_service__method__get_credential;
    e.methods[M_USER] = opsconductor__user__v1__user_service__method__get_user;
    e.methods[M_PREFS] =
        opsconductor__user__v1__user_service__method__get_user_preferences;
    e.methods[M_SEND] =
        opsconductor__notification__v1__notification_service__method__send_notification;
    e.methods[M_BATCH] =
        opsconductor__notification__v1__notification_service__method__send_batch;
    plat_program prog = {.name = "executor",
                         .methods = e.methods,
                         .n_methods = N_METHODS,
                         .services = services,
                         .n_services = N_SERVICES,
                         .state = &e,
                         .unit = unit,
                         .extra_json = extra_json,
                         .extra_reset = extra_reset,
                         .flag = flag,
                         .flags_help =
                             "  --targets=N           targets 1..N (5)\n"
                             "  --users=N             users 1..N (50)\n"
                             "  --user-every=N        GetUser in every Nth "
                             "task (4; 0: never)\n"};
    return plat_main(&prog, argc, argv);
}
