/*
 * notification.c — opsconductor.notification.v1.NotificationService:
 * SendNotification validates one notification as the legacy service does
 * (v_notify in tests/legacy/legacy_server.py) and "sends" it: it is
 * recorded, and answered with the legacy result object
 * (`{"notification_id", "status": "sent", "type", "destination",
 * "template_id", "sent_at"}`); SendBatch (client streaming) does the same
 * for every message of a stream and answers the totals.
 *
 * Validation, in the legacy order, all faults in one INVALID_ARGUMENT
 * message: type email or slack; a destination; a payload object with
 * string `subject` and `body` (email) or a string `message` (slack).  A
 * template_id outside the templates 1..10 is NOT_FOUND ("Template N not
 * found"), as the legacy service's 404.
 *
 * Design notes.  Nothing is delivered anywhere: this is the platform in
 * miniature.  What was sent is kept in memory, the last --max-recorded
 * notifications in a ring (id, type, destination, template, time), and
 * counted on /metrics as opsconductor_notifications_sent_total{type} and
 * opsconductor_notifications_rejected_total.  Ids count from 1 per process.
 *
 * Locking theory: |lock| guards the ring and the id counter; held for
 * those assignments only.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "opsconductor/notification/v1/notification.orpc.h"
#include "svc.h"

typedef Opsconductor__Notification__V1__SendNotificationRequest notify_req;

typedef struct sent {
    int64_t id;
    int type;
    char destination[256]; /* truncated copy */
    int64_t template_id;   /* 0: none */
    char sent_at[40];
} sent;

typedef struct notif {
    pthread_mutex_t lock;
    sent *ring;
    size_t cap, n_recorded; /* n_recorded counts every one ever sent */
    int64_t next_id;
    int64_t max_batch;
    orpc_metrics *metrics;
    orpc_legacy_serve *gw; /* the legacy routes' gateway */
} notif;

static const Google__Protobuf__Value *field(const Google__Protobuf__Struct *s,
                                            const char *key)
{
    for (size_t i = 0; s != NULL && i < s->n_fields; i++)
        if (strcmp(s->fields[i]->key, key) == 0)
            return s->fields[i]->value;
    return NULL;
}

/* Appends "; what" to |msg|. */
static void fault(char *msg, size_t cap, const char *what)
{
    size_t n = strlen(msg);
    snprintf(msg + n, cap - n, "%s%s", n ? "; " : "", what);
}

static void need_string(const Google__Protobuf__Struct *payload,
                        const char *key, char *msg, size_t cap)
{
    char what[128];
    const Google__Protobuf__Value *v = field(payload, key);
    if (v == NULL)
        snprintf(what, sizeof(what), "payload.%s: Field required", key);
    else if (v->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
        snprintf(what, sizeof(what),
                 "payload.%s: Input should be a valid string", key);
    else
        return;
    fault(msg, cap, what);
}

/* The legacy checks (v_notify, then the template's need()): OK, or the
 * status to answer. */
static orpc_status validate(const notify_req *r)
{
    char msg[512] = "";
    int type = r->type;
    int email =
        type ==
        OPSCONDUCTOR__NOTIFICATION__V1__NOTIFICATION_TYPE__NOTIFICATION_TYPE_EMAIL;
    int slack =
        type ==
        OPSCONDUCTOR__NOTIFICATION__V1__NOTIFICATION_TYPE__NOTIFICATION_TYPE_SLACK;
    if (!email && !slack)
        fault(msg, sizeof(msg), "type: Input should be 'email' or 'slack'");
    if (r->destination == NULL || r->destination[0] == '\0') {
        fault(msg, sizeof(msg), "destination: Field required");
    } else {
        json_t *t = json_string(r->destination); /* NULL: not UTF-8 */
        if (t == NULL)
            fault(msg, sizeof(msg), "destination: not valid UTF-8");
        json_decref(t);
    }
    if (r->payload == NULL)
        fault(msg, sizeof(msg), "payload: Field required");
    else if (email) {
        need_string(r->payload, "subject", msg, sizeof(msg));
        need_string(r->payload, "body", msg, sizeof(msg));
    } else if (slack) {
        need_string(r->payload, "message", msg, sizeof(msg));
    }
    if (msg[0] != '\0')
        return orpc_status_new(ORPC_INVALID_ARGUMENT, msg);
    if (r->_template_id_case ==
            OPSCONDUCTOR__NOTIFICATION__V1__SEND_NOTIFICATION_REQUEST___TEMPLATE_ID_TEMPLATE_ID &&
        (r->template_id < 1 || r->template_id > DATA_N_TEMPLATES))
        return orpc_status_errorf(ORPC_NOT_FOUND, "Template %lld not found",
                                  (long long)r->template_id);
    return ORPC_STATUS_OK;
}

/* Records |r| as sent; its id goes to |*id|, its time to |at|. */
static void record(notif *n, const notify_req *r, int64_t *id, char at[40])
{
    svc_now_iso(at);
    pthread_mutex_lock(&n->lock);
    *id = ++n->next_id;
    sent *s = &n->ring[n->n_recorded % n->cap];
    n->n_recorded++;
    s->id = *id;
    s->type = r->type;
    snprintf(s->destination, sizeof(s->destination), "%s", r->destination);
    s->template_id = r->_template_id_case ? r->template_id : 0;
    memcpy(s->sent_at, at, 40);
    pthread_mutex_unlock(&n->lock);
    svc_count(
        n->metrics, "opsconductor_notifications_sent_total",
        "Notifications sent, by type", "type",
        r->type ==
                OPSCONDUCTOR__NOTIFICATION__V1__NOTIFICATION_TYPE__NOTIFICATION_TYPE_EMAIL
            ? "email"
            : "slack");
}

static orpc_status send_notification(
    orpc_ctx *ctx, const notify_req *req,
    Opsconductor__Notification__V1__SendNotificationResponse *resp,
    void *user_data)
{
    notif *n = user_data;
    orpc_status st = validate(req);
    if (st.code != ORPC_OK) {
        svc_count(n->metrics, "opsconductor_notifications_rejected_total",
                  "Notifications refused as invalid", NULL, NULL);
        return st;
    }
    int64_t id;
    char at[40];
    record(n, req, &id, at);
    int has_template =
        req->_template_id_case ==
        OPSCONDUCTOR__NOTIFICATION__V1__SEND_NOTIFICATION_REQUEST___TEMPLATE_ID_TEMPLATE_ID;
    json_t *o = json_pack(
        "{s:I, s:s, s:s, s:s, s:o, s:s}", "notification_id", (json_int_t)id,
        "status", "sent", "type",
        req->type ==
                OPSCONDUCTOR__NOTIFICATION__V1__NOTIFICATION_TYPE__NOTIFICATION_TYPE_EMAIL
            ? "email"
            : "slack",
        "destination", req->destination, "template_id",
        has_template ? json_integer(req->template_id) : json_null(), "sent_at",
        at);
    if (o == NULL)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
    int rc = svc_struct(ctx, o, &resp->result);
    json_decref(o);
    return rc == 0 ? ORPC_STATUS_OK : svc_struct_failed(rc);
}

static orpc_status send_batch(
    orpc_ctx *ctx,
    Opsconductor__Notification__V1__NotificationService_SendBatch_ServerReader
        *call,
    Opsconductor__Notification__V1__SendBatchResponse *resp, void *user_data)
{
    (void)ctx;
    notif *n = user_data;
    /* bounded: at most max_batch messages, then the call is refused */
    for (int64_t i = 0; i <= n->max_batch; i++) {
        const notify_req *r = NULL;
        int rc =
            opsconductor__notification__v1__notification_service__server__send_batch__recv(
                call, &r);
        if (rc == 0)
            return ORPC_STATUS_OK;
        if (rc < 0)
            return orpc_status_errorf(ORPC_CANCELLED, "batch ended: %s",
                                      orpc_strerror(rc));
        if (i == n->max_batch)
            break;
        orpc_status st = validate(r);
        if (st.code != ORPC_OK) {
            orpc_status_clear(&st);
            resp->rejected++;
            svc_count(n->metrics, "opsconductor_notifications_rejected_total",
                      "Notifications refused as invalid", NULL, NULL);
            continue;
        }
        int64_t id;
        char at[40];
        record(n, r, &id, at);
        resp->accepted++;
    }
    return orpc_status_errorf(ORPC_RESOURCE_EXHAUSTED,
                              "a batch holds at most %lld notifications",
                              (long long)n->max_batch);
}

static const Opsconductor__Notification__V1__NotificationService_Handlers
    handlers = {
        .send_notification = send_notification,
        .send_batch = send_batch,
};

static void notification_close(void *state)
{
    notif *n = state;
    if (n == NULL)
        return;
    orpc_legacy_serve_free(n->gw);
    free(n->ring);
    pthread_mutex_destroy(&n->lock);
    free(n);
}

static int notification_open(void **state, const svc_config *cfg,
                             orpc_metrics *m, char *err, size_t errlen)
{
    notif *n = calloc(1, sizeof(*n));
    if (n != NULL)
        n->ring = calloc((size_t)cfg->max_recorded, sizeof(sent));
    if (n == NULL || n->ring == NULL) {
        free(n);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&n->lock, NULL);
    n->cap = (size_t)cfg->max_recorded;
    n->max_batch = cfg->max_batch;
    n->metrics = m;
    if (svc_legacy_new(&n->gw, cfg, err, errlen) != 0) {
        notification_close(n);
        return -1;
    }
    *state = n;
    return 0;
}

static int notification_register(orpc_server *srv, void *state)
{
    return opsconductor__notification__v1__notification_service__server__register(
        srv, &handlers, state);
}

/*
 * ==== LEGACY SEAM (notification) ====
 * The legacy JSON route (POST /notifications) answered from
 * send_notification() by orpc's gateway, on the gRPC port (HTTP/1.1 by
 * ALPN) and on --legacy-listen.  Bearer tokens are judged by the auth
 * service (svc_legacy_new(): Verify over mutual TLS on --auth-target); the
 * caller's identity is then legacy-service:<account>, which the policy
 * matches.  SendBatch (client streaming) has no legacy route.
 */
static int notification_install_legacy(orpc_server *srv, void *state)
{
    notif *n = state;
    return orpc_legacy_serve_install(n->gw, srv);
}

const svc_kind svc_notification_kind = {
    .name = "notification",
    .open = notification_open,
    .register_ = notification_register,
    .install_legacy = notification_install_legacy,
    .close = notification_close,
};
