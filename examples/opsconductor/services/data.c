/*
 * data.c — the deterministic OpsConductor objects of data.h, written
 * line for line after tests/legacy/legacy_server.py (the legacy services'
 * fixture) so that both generations answer the same ids identically.  The
 * services' test (services_test.c with check_legacy.py) compares every id's
 * JSON, byte for byte, with what that file's functions produce.
 */
#include "data.h"

#include <stdio.h>

#include "svc.h"

static const char *const job_statuses[] = {"completed", "running", "failed",
                                           "pending", "cancelled"};
static const char *const job_types[] = {"command", "script", "file_transfer",
                                        "inventory"};
static const char *const cred_types[] = {"ssh_key", "password", "api_token",
                                         "winrm"};
static const char *const roles[] = {"admin", "operator", "viewer"};

/* Sets |key| to |v| (taking it); a NULL |v| (out of memory) fails. */
static int put(json_t *o, const char *key, json_t *v)
{
    return v == NULL ? -1 : json_object_set_new(o, key, v);
}

/* A JSON string of the literal format |f| with one %lld, |n|; uses the
 * caller's |sbuf|. */
#define FMT(f, n)                                                              \
    (snprintf(sbuf, sizeof(sbuf), f, (long long)(n)), json_string(sbuf))

static json_t *iso(int64_t hours)
{
    char buf[40];
    svc_iso_hours(hours, buf);
    return json_string(buf);
}

static json_t *done(json_t *o, int rc)
{
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *data_job(int64_t jid)
{
    char sbuf[160];
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int rc = 0;
    rc |= put(o, "id", json_integer(jid));
    rc |= put(o, "name", FMT("job-%lld", jid));
    rc |= put(o, "description",
              jid == 1 ? FMT("Nightly maintenance job #%lld \xe2\x80\x94 "
                             "\"quoted\" \\ path",
                             jid)
                       : FMT("Maintenance job #%lld", jid));
    rc |= put(o, "job_type", json_string(job_types[jid % 4]));
    rc |= put(o, "status", json_string(job_statuses[jid % 5]));
    rc |= put(o, "enabled", json_boolean(jid % 7 != 0));
    rc |= put(o, "schedule",
              jid % 3 ? FMT("0 %lld * * *", jid % 24) : json_null());
    json_t *targets = json_array();
    for (int64_t t = 1; targets != NULL && t <= DATA_N_TARGETS; t++)
        if ((jid + t) % 3 == 0)
            rc |= json_array_append_new(targets, json_integer(t));
    rc |= put(o, "target_ids", targets);
    json_t *params = json_object();
    if (params != NULL) {
        rc |= put(params, "retries", json_integer(jid % 4));
        rc |= put(params, "timeout_s", json_real(30.5));
        json_t *tags = json_array();
        if (tags != NULL) {
            rc |= json_array_append_new(tags, json_string("nightly"));
            rc |= json_array_append_new(tags, FMT("group-%lld", jid % 5));
        }
        rc |= put(params, "tags", tags);
    }
    rc |= put(o, "parameters", params);
    rc |= put(o, "created_by", json_integer(jid % DATA_N_USERS + 1));
    rc |= put(o, "created_at", iso(jid));
    rc |= put(o, "updated_at", iso(jid * 2 + 1));
    return done(o, rc);
}

json_t *data_credential(int64_t cid)
{
    char sbuf[160];
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    const char *ctype = cred_types[cid % 4];
    int rc = 0;
    rc |= put(o, "id", json_integer(cid));
    rc |= put(o, "name", FMT("credential-%lld", cid));
    rc |= put(o, "credential_type", json_string(ctype));
    rc |= put(o, "username", FMT("svc-%lld", cid));
    rc |= put(o, "target_id", json_integer((cid - 1) % DATA_N_TARGETS + 1));
    rc |= put(o, "created_at", iso(100 + cid));
    if (cid % 4 == 0)
        rc |= put(o, "private_key",
                  FMT("-----BEGIN OPENSSH PRIVATE KEY-----\nFAKE%lld\n"
                      "-----END OPENSSH PRIVATE KEY-----\n",
                      cid));
    else if (cid % 4 == 2)
        rc |= put(o, "token", FMT("tok-%lld-not-a-real-secret", cid));
    else
        rc |= put(o, "password", FMT("s3cret-%lld", cid));
    return done(o, rc);
}

json_t *data_target_credentials(int64_t tid)
{
    json_t *o = json_object();
    json_t *list = json_array();
    int rc = (o == NULL || list == NULL) ? -1 : 0;
    for (int64_t c = 1; rc == 0 && c <= DATA_N_CREDENTIALS; c++)
        if ((c - 1) % DATA_N_TARGETS + 1 == tid)
            rc |= json_array_append_new(list, data_credential(c));
    if (o == NULL) {
        json_decref(list);
        return NULL;
    }
    rc |= put(o, "credentials", list);
    return done(o, rc);
}

json_t *data_user(int64_t uid)
{
    char sbuf[160];
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int rc = 0;
    rc |= put(o, "id", json_integer(uid));
    rc |= put(o, "username", FMT("user%lld", uid));
    rc |= put(o, "email", FMT("user%lld@example.com", uid));
    rc |= put(o, "full_name",
              uid == 1 ? FMT("Zo\xc3\xab Example-%lld", uid)
                       : FMT("User %lld", uid));
    rc |= put(o, "role", json_string(roles[uid % 3]));
    rc |= put(o, "is_active", json_boolean(uid % 10 != 0));
    rc |= put(o, "created_at", iso(200 + uid));
    rc |= put(o, "last_login", uid % 2 ? iso(300 + uid) : json_null());
    return done(o, rc);
}

json_t *data_preferences(int64_t uid)
{
    char sbuf[160];
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int rc = 0;
    rc |= put(o, "user_id", json_integer(uid));
    rc |= put(o, "email_enabled", json_true());
    rc |= put(o, "email_address", FMT("user%lld@example.com", uid));
    rc |= put(o, "slack_enabled", json_boolean(uid % 2 == 0));
    rc |= put(o, "slack_channel",
              uid % 2 == 0 ? FMT("#ops-%lld", uid) : json_null());
    json_t *on = json_array();
    if (on != NULL) {
        rc |= json_array_append_new(on, json_string("job_failed"));
        if (uid % 3)
            rc |= json_array_append_new(on, json_string("job_completed"));
    }
    rc |= put(o, "notify_on", on);
    json_t *quiet = json_null();
    if (uid % 4 == 0) {
        quiet = json_object();
        if (quiet != NULL) {
            rc |= put(quiet, "start", json_string("22:00"));
            rc |= put(quiet, "end", json_string("07:00"));
            rc |= put(quiet, "timezone", json_string("UTC"));
        }
    }
    rc |= put(o, "quiet_hours", quiet);
    rc |= put(o, "digest_frequency_hours", json_integer(24));
    return done(o, rc);
}
