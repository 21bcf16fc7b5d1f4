/*
 * jobs.c — opsconductor.jobs.v1.JobsService: RunJob, GetJob, GetJobStatus
 * and WatchJob, with every job and execution kept in SQLite so that a
 * restarted (or killed) jobs service loses nothing.
 *
 * Jobs: the table is seeded with the legacy fixture's jobs 1..100
 * (data_job(), tests/legacy/legacy_server.py's job_obj()), so that GetJob
 * and GetJobStatus answer exactly as the legacy service does until a job
 * is run.  A seed never overwrites a row: a restarted service keeps the
 * statuses its runs left.
 *
 * Executions: RunJob records one, `queued`, and answers the legacy
 * execution result (h_run_job: execution_id, job_id, status, payload,
 * triggered_by = the caller's account name, queued_at).  The service
 * itself then moves it on: `queued -> running` after --run-delay-ms,
 * `running -> succeeded | failed` after --finish-delay-ms more; it fails
 * when its payload says `"fail": true`, and succeeds otherwise.  A job's
 * status (GetJob's "status", GetJobStatus) is the status of its most
 * recent execution change, its "updated_at" the time of that change.
 *
 * Schema (PRAGMA user_version = 1):
 *
 *   CREATE TABLE jobs (              -- one row per job, seeded 1..100
 *     id          INTEGER PRIMARY KEY,
 *     name        TEXT NOT NULL,
 *     description TEXT NOT NULL,
 *     job_type    TEXT NOT NULL,
 *     status      TEXT NOT NULL,     -- seed status, then the last change
 *     enabled     INTEGER NOT NULL,  -- 0 or 1
 *     schedule    TEXT,              -- cron text, or NULL
 *     target_ids  TEXT NOT NULL,     -- JSON array of target ids
 *     parameters  TEXT NOT NULL,     -- JSON object
 *     created_by  INTEGER NOT NULL,
 *     created_at  TEXT NOT NULL,     -- ISO 8601 UTC, as the legacy service
 *     updated_at  TEXT NOT NULL);
 *   CREATE TABLE executions (        -- one row per RunJob
 *     id           INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused
 *     job_id       INTEGER NOT NULL REFERENCES jobs(id),
 *     status       TEXT NOT NULL CHECK (status IN
 *                    ('queued', 'running', 'succeeded', 'failed')),
 *     payload      TEXT,             -- the run's JSON object, or NULL
 *     triggered_by TEXT,             -- the caller's account name
 *     queued_at    TEXT NOT NULL,
 *     started_at   TEXT,
 *     finished_at  TEXT,
 *     next_at_ms   INTEGER);         -- wall-clock ms of the next step;
 *                                    -- NULL once final
 *   CREATE INDEX executions_due ON executions(next_at_ms)
 *     WHERE next_at_ms IS NOT NULL;
 *   CREATE INDEX executions_job ON executions(job_id, id);
 *
 * Durability: WAL journal, synchronous=NORMAL (a commit survives the
 * process being killed; the last commits before a power loss may not —
 * --db-sync=full closes that too, at a cost per commit), busy timeout 5 s.
 * Every change is committed before it is announced: the RunJob answer and
 * the WatchJob events follow the COMMIT.  The next step's time is stored
 * in wall-clock ms, so a restarted service finishes what was under way
 * (a step already due runs at once).
 *
 * Design notes.  One SQLite connection, used under |lock|, which also
 * guards the event ring and the watcher count; |cond| (monotonic clock)
 * wakes the runner thread and the watchers.  The runner sleeps until the
 * earliest next_at_ms (at most 1 s), advances at most 64 due executions
 * per pass, each in its own transaction, then announces each change.
 * Announcing appends to a ring of the last 4096 changes (sequence
 * numbered) and broadcasts; a watcher remembers the next sequence number
 * it wants and sends, in order, every change of its job from there.  A
 * watcher that falls more than 4096 changes behind skips to the job's
 * current status (a slow reader gets the latest state, never unbounded
 * memory).  WatchJob calls are bounded (--max-watchers, then
 * RESOURCE_EXHAUSTED) and last at most --max-watch-ms (then
 * DEADLINE_EXCEEDED); they wait in steps of at most 200 ms, end CANCELLED
 * when the client goes, UNAVAILABLE when the service is stopping, and OK
 * after sending a final status (succeeded, failed, and the seeds'
 * completed and cancelled).
 *
 * Locking theory: |lock| is held for SQLite statements and ring updates,
 * never across orpc_ctx_send() or any other call into orpc.  The cancel
 * callback (an IO thread) only broadcasts |cond|, without the lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include <orpc/compat/json.h>

#include "data.h"
#include "opsconductor/jobs/v1/jobs.orpc.h"
#include "svc.h"

enum { RING = 4096, ADVANCE_BATCH = 64, WATCH_STEP_MS = 200, EV_BATCH = 16 };

typedef struct jev {
    uint64_t seq;
    int64_t job_id;
    int64_t exec_id;
    char status[16];
    char at[40];
} jev;

typedef struct jobs {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    sqlite3 *db;
    jev ring[RING];
    uint64_t next_seq; /* the ring holds [next_seq - RING, next_seq) */
    int stopping;
    int64_t watchers;
    const svc_config *cfg;
    svc_identities ids;
    pthread_t runner;
    int runner_started;
    orpc_metrics *metrics;
    orpc_legacy_serve *gw; /* the legacy routes' gateway */
} jobs;

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS jobs ("
    " id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    " description TEXT NOT NULL, job_type TEXT NOT NULL,"
    " status TEXT NOT NULL, enabled INTEGER NOT NULL, schedule TEXT,"
    " target_ids TEXT NOT NULL, parameters TEXT NOT NULL,"
    " created_by INTEGER NOT NULL, created_at TEXT NOT NULL,"
    " updated_at TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS executions ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " job_id INTEGER NOT NULL REFERENCES jobs(id),"
    " status TEXT NOT NULL CHECK (status IN"
    "  ('queued', 'running', 'succeeded', 'failed')),"
    " payload TEXT, triggered_by TEXT, queued_at TEXT NOT NULL,"
    " started_at TEXT, finished_at TEXT, next_at_ms INTEGER);"
    "CREATE INDEX IF NOT EXISTS executions_due ON executions(next_at_ms)"
    " WHERE next_at_ms IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS executions_job ON executions(job_id, id);"
    "PRAGMA user_version = 1;";

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits on |cond| for at most |ms| (locked). */
static void wait_ms(jobs *j, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    (void)pthread_cond_timedwait(&j->cond, &j->lock, &ts);
}

static int is_final(const char *status)
{
    return strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 ||
           strcmp(status, "completed") == 0 || strcmp(status, "cancelled") == 0;
}

/* Runs |sql| (no rows); returns an SQLite code.  Locked. */
static int exec_sql(jobs *j, const char *sql)
{
    int rc = sqlite3_exec(j->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        svc_log("sqlite: %s: %s", sql, sqlite3_errmsg(j->db));
    return rc;
}

/* Appends a change to the ring and wakes the watchers.  Locked; after the
 * change is committed. */
static void announce(jobs *j, int64_t job_id, int64_t exec_id,
                     const char *status, const char *at)
{
    jev *e = &j->ring[j->next_seq % RING];
    e->seq = j->next_seq++;
    e->job_id = job_id;
    e->exec_id = exec_id;
    snprintf(e->status, sizeof(e->status), "%s", status);
    snprintf(e->at, sizeof(e->at), "%s", at);
    pthread_cond_broadcast(&j->cond);
}

/* --- reading jobs -------------------------------------------------------- */

static json_t *col_json(sqlite3_stmt *st, int col)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    return t ? json_loads(t, JSON_DECODE_ANY, NULL) : NULL;
}

static json_t *col_str(sqlite3_stmt *st, int col)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    return t ? json_string(t) : json_null();
}

/* The job object of |id| (job_obj's keys, in its order) into |*out|.
 * Returns 1, 0 when there is no such job, -1 on an error.  Locked. */
static int read_job(jobs *j, int64_t id, json_t **out)
{
    *out = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        j->db,
        "SELECT id, name, description, job_type, status, enabled, schedule,"
        " target_ids, parameters, created_by, created_at, updated_at"
        " FROM jobs WHERE id = ?",
        -1, &st, NULL);
    if (rc != SQLITE_OK) {
        svc_log("sqlite: %s", sqlite3_errmsg(j->db));
        return -1;
    }
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    int found = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    if (found == 1) {
        json_t *o = json_object();
        int bad = o == NULL;
        static const char *const keys[] = {
            "id",         "name",       "description", "job_type",
            "status",     "enabled",    "schedule",    "target_ids",
            "parameters", "created_by", "created_at",  "updated_at"};
        for (int c = 0; !bad && c < 12; c++) {
            json_t *v;
            if (c == 0 || c == 9)
                v = json_integer(sqlite3_column_int64(st, c));
            else if (c == 5)
                v = json_boolean(sqlite3_column_int(st, c) != 0);
            else if (c == 7 || c == 8)
                v = col_json(st, c);
            else
                v = col_str(st, c);
            bad = v == NULL || json_object_set_new(o, keys[c], v) != 0;
        }
        if (bad) {
            json_decref(o);
            found = -1;
        } else {
            *out = o;
        }
    } else if (found < 0) {
        svc_log("sqlite: reading job %lld: %s", (long long)id,
                sqlite3_errmsg(j->db));
    }
    sqlite3_finalize(st);
    return found;
}

/* The status, updated_at and latest execution id (0: none) of job |id|.
 * Returns 1, 0 (no such job) or -1.  Locked. */
static int read_status(jobs *j, int64_t id, char status[16], char at[40],
                       int64_t *exec_id)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(j->db,
                           "SELECT status, updated_at, (SELECT MAX(id) FROM"
                           " executions WHERE job_id = jobs.id) FROM jobs"
                           " WHERE id = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        svc_log("sqlite: %s", sqlite3_errmsg(j->db));
        return -1;
    }
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    int found = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    if (found == 1) {
        snprintf(status, 16, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(at, 40, "%s", (const char *)sqlite3_column_text(st, 1));
        *exec_id = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    return found;
}

static orpc_status store_failed(void)
{
    return orpc_status_new(ORPC_UNAVAILABLE, "the jobs database failed");
}

/* --- the lifecycle ------------------------------------------------------- */

/* Whether an execution's payload asks it to fail. */
static int wants_failure(const char *payload)
{
    if (payload == NULL)
        return 0;
    json_t *p = json_loads(payload, 0, NULL);
    int fail = json_is_true(json_object_get(p, "fail"));
    json_decref(p);
    return fail;
}

/* Moves execution |eid| of job |job| one step on from |from|, committed,
 * then announced.  Returns 0 or -1 (rolled back).  Locked. */
static int advance(jobs *j, int64_t eid, int64_t job, const char *from,
                   const char *payload)
{
    char at[40];
    svc_now_iso(at);
    const char *to;
    sqlite3_stmt *st = NULL;
    int rc;
    if (strcmp(from, "queued") == 0) {
        to = "running";
        rc = sqlite3_prepare_v2(j->db,
                                "UPDATE executions SET status = ?1,"
                                " started_at = ?2, next_at_ms = ?3"
                                " WHERE id = ?4",
                                -1, &st, NULL);
        if (rc == SQLITE_OK)
            sqlite3_bind_int64(st, 3, svc_wall_ms() + j->cfg->finish_delay_ms);
    } else {
        to = wants_failure(payload) ? "failed" : "succeeded";
        rc = sqlite3_prepare_v2(j->db,
                                "UPDATE executions SET status = ?1,"
                                " finished_at = ?2, next_at_ms = NULL"
                                " WHERE id = ?4",
                                -1, &st, NULL);
    }
    if (rc != SQLITE_OK) {
        svc_log("sqlite: %s", sqlite3_errmsg(j->db));
        return -1;
    }
    sqlite3_bind_text(st, 1, to, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, at, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, eid);
    sqlite3_stmt *up = NULL;
    rc = exec_sql(j, "BEGIN IMMEDIATE");
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(j->db,
                                "UPDATE jobs SET status = ?, updated_at = ?"
                                " WHERE id = ?",
                                -1, &up, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(up, 1, to, -1, SQLITE_STATIC);
        sqlite3_bind_text(up, 2, at, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(up, 3, job);
        rc = sqlite3_step(up) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    sqlite3_finalize(up);
    if (rc == SQLITE_OK)
        rc = exec_sql(j, "COMMIT");
    if (rc != SQLITE_OK) {
        svc_log("sqlite: execution %lld: %s", (long long)eid,
                sqlite3_errmsg(j->db));
        (void)sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    announce(j, job, eid, to, at);
    svc_count(j->metrics, "opsconductor_job_executions_total",
              "Execution status changes, by new status", "status", to);
    return 0;
}

/* One pass: advances what is due.  Returns how long to sleep (ms).
 * Locked. */
static int64_t advance_due(jobs *j)
{
    sqlite3_stmt *st = NULL;
    int64_t now = svc_wall_ms();
    if (sqlite3_prepare_v2(j->db,
                           "SELECT id, job_id, status, payload FROM executions"
                           " WHERE next_at_ms IS NOT NULL AND next_at_ms <= ?"
                           " ORDER BY next_at_ms, id LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK) {
        svc_log("sqlite: %s", sqlite3_errmsg(j->db));
        return 1000;
    }
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int(st, 2, ADVANCE_BATCH);
    struct {
        int64_t id, job;
        char from[16];
        char *payload;
    } due[ADVANCE_BATCH];
    int n = 0;
    while (n < ADVANCE_BATCH && sqlite3_step(st) == SQLITE_ROW) {
        due[n].id = sqlite3_column_int64(st, 0);
        due[n].job = sqlite3_column_int64(st, 1);
        snprintf(due[n].from, sizeof(due[n].from), "%s",
                 (const char *)sqlite3_column_text(st, 2));
        const char *p = (const char *)sqlite3_column_text(st, 3);
        due[n].payload = p ? strdup(p) : NULL;
        n++;
    }
    sqlite3_finalize(st);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        failed |=
            advance(j, due[i].id, due[i].job, due[i].from, due[i].payload) != 0;
        free(due[i].payload);
    }
    if (failed)
        return 1000; /* try again in a second */
    if (n == ADVANCE_BATCH)
        return 0;
    int64_t sleep = 1000;
    if (sqlite3_prepare_v2(j->db,
                           "SELECT MIN(next_at_ms) FROM executions"
                           " WHERE next_at_ms IS NOT NULL",
                           -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW &&
            sqlite3_column_type(st, 0) != SQLITE_NULL) {
            int64_t next = sqlite3_column_int64(st, 0) - svc_wall_ms();
            sleep = next < 0 ? 0 : next < 1000 ? next : 1000;
        }
        sqlite3_finalize(st);
    }
    return sleep;
}

static void *runner_main(void *arg)
{
    jobs *j = arg;
    pthread_mutex_lock(&j->lock);
    while (!j->stopping) {
        int64_t ms = advance_due(j);
        if (ms > 0 && !j->stopping)
            wait_ms(j, ms);
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

/* --- handlers ------------------------------------------------------------ */

static orpc_status not_found(int64_t id)
{
    return orpc_status_errorf(ORPC_NOT_FOUND, "Job %lld not found",
                              (long long)id);
}

static orpc_status run_job(orpc_ctx *ctx,
                           const Opsconductor__Jobs__V1__RunJobRequest *req,
                           Opsconductor__Jobs__V1__RunJobResponse *resp,
                           void *user_data)
{
    jobs *j = user_data;
    char *payload = NULL;
    if (req->payload != NULL) {
        orpc_json_opts jo = {.legacy = 1};
        orpc_error_detail d;
        if (orpc_json_encode(&payload, NULL,
                             &google__protobuf__struct__orpc_info,
                             &req->payload->base, &jo, &d) != 0)
            return orpc_status_errorf(ORPC_INVALID_ARGUMENT, "payload: %s",
                                      d.message);
    }
    char who_buf[ORPC_SPIFFE_ID_MAX + 16];
    const char *who = svc_caller_name(ctx, &j->ids, who_buf, sizeof(who_buf));
    char at[40];
    svc_now_iso(at);

    pthread_mutex_lock(&j->lock);
    int64_t eid = 0;
    int found = 0;
    sqlite3_stmt *chk = NULL, *ins = NULL, *up = NULL;
    int rc = exec_sql(j, "BEGIN IMMEDIATE");
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(j->db, "SELECT 1 FROM jobs WHERE id = ?", -1,
                                &chk, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(chk, 1, req->job_id);
        int s = sqlite3_step(chk);
        found = s == SQLITE_ROW;
        rc = s == SQLITE_ROW || s == SQLITE_DONE ? SQLITE_OK : s;
    }
    if (rc == SQLITE_OK && found)
        rc = sqlite3_prepare_v2(
            j->db,
            "INSERT INTO executions (job_id, status, payload, triggered_by,"
            " queued_at, next_at_ms) VALUES (?, 'queued', ?, ?, ?, ?)",
            -1, &ins, NULL);
    if (rc == SQLITE_OK && found) {
        sqlite3_bind_int64(ins, 1, req->job_id);
        if (payload)
            sqlite3_bind_text(ins, 2, payload, -1, SQLITE_STATIC);
        if (who)
            sqlite3_bind_text(ins, 3, who, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 4, at, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 5, svc_wall_ms() + j->cfg->run_delay_ms);
        rc = sqlite3_step(ins) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        eid = sqlite3_last_insert_rowid(j->db);
    }
    if (rc == SQLITE_OK && found)
        rc = sqlite3_prepare_v2(j->db,
                                "UPDATE jobs SET status = 'queued',"
                                " updated_at = ? WHERE id = ?",
                                -1, &up, NULL);
    if (rc == SQLITE_OK && found) {
        sqlite3_bind_text(up, 1, at, -1, SQLITE_STATIC);
        sqlite3_bind_int64(up, 2, req->job_id);
        rc = sqlite3_step(up) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(chk);
    sqlite3_finalize(ins);
    sqlite3_finalize(up);
    if (rc == SQLITE_OK)
        rc = exec_sql(j, found ? "COMMIT" : "ROLLBACK");
    if (rc != SQLITE_OK) {
        svc_log("sqlite: RunJob %lld: %s", (long long)req->job_id,
                sqlite3_errmsg(j->db));
        (void)sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    } else if (found) {
        announce(j, req->job_id, eid, "queued", at);
    }
    pthread_mutex_unlock(&j->lock);

    if (rc != SQLITE_OK || !found) {
        free(payload);
        return rc != SQLITE_OK ? store_failed() : not_found(req->job_id);
    }
    svc_count(j->metrics, "opsconductor_job_executions_total",
              "Execution status changes, by new status", "status", "queued");
    json_t *p = payload ? json_loads(payload, 0, NULL) : json_null();
    free(payload);
    json_t *o = json_pack(
        "{s:I, s:I, s:s, s:o, s:o, s:s}", "execution_id", (json_int_t)eid,
        "job_id", (json_int_t)req->job_id, "status", "queued", "payload", p,
        "triggered_by", who ? json_string(who) : json_null(), "queued_at", at);
    if (o == NULL)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
    int src = svc_struct(ctx, o, &resp->result);
    json_decref(o);
    return src == 0 ? ORPC_STATUS_OK : svc_struct_failed(src);
}

static orpc_status get_job(orpc_ctx *ctx,
                           const Opsconductor__Jobs__V1__GetJobRequest *req,
                           Opsconductor__Jobs__V1__GetJobResponse *resp,
                           void *user_data)
{
    jobs *j = user_data;
    json_t *o;
    pthread_mutex_lock(&j->lock);
    int found = read_job(j, req->job_id, &o);
    pthread_mutex_unlock(&j->lock);
    if (found <= 0)
        return found == 0 ? not_found(req->job_id) : store_failed();
    int rc = svc_struct(ctx, o, &resp->job);
    json_decref(o);
    return rc == 0 ? ORPC_STATUS_OK : svc_struct_failed(rc);
}

static orpc_status get_job_status(
    orpc_ctx *ctx, const Opsconductor__Jobs__V1__GetJobStatusRequest *req,
    Opsconductor__Jobs__V1__GetJobStatusResponse *resp, void *user_data)
{
    jobs *j = user_data;
    char status[16], at[40];
    int64_t eid;
    pthread_mutex_lock(&j->lock);
    int found = read_status(j, req->job_id, status, at, &eid);
    pthread_mutex_unlock(&j->lock);
    if (found <= 0)
        return found == 0 ? not_found(req->job_id) : store_failed();
    /* the legacy job_status_obj(): job_id, status, updated_at */
    json_t *o = json_pack("{s:I, s:s, s:s}", "job_id", (json_int_t)req->job_id,
                          "status", status, "updated_at", at);
    if (o == NULL)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
    int rc = svc_struct(ctx, o, &resp->status);
    json_decref(o);
    return rc == 0 ? ORPC_STATUS_OK : svc_struct_failed(rc);
}

static void wake_watchers(orpc_ctx *ctx, void *user_data)
{
    (void)ctx;
    jobs *j = user_data;
    pthread_cond_broadcast(&j->cond);
}

/* Sends one JobEvent; returns orpc_ctx_send()'s code. */
static int
send_event(Opsconductor__Jobs__V1__JobsService_WatchJob_ServerWriter *call,
           int64_t job_id, int64_t exec_id, const char *status, const char *at)
{
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    int64_t sec = 0;
    int32_t nanos = 0;
    if (svc_parse_iso(at, &sec, &nanos) == 0) {
        ts.seconds = sec;
        ts.nanos = nanos;
    }
    Google__Protobuf__Value v = GOOGLE__PROTOBUF__VALUE__INIT;
    if (exec_id > 0) {
        v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
        v.number_value = (double)exec_id;
    } else {
        v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
        v.null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
    }
    Google__Protobuf__Struct__FieldsEntry fe =
        GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    fe.key = "execution_id";
    fe.value = &v;
    Google__Protobuf__Struct__FieldsEntry *fields[1] = {&fe};
    Google__Protobuf__Struct detail = GOOGLE__PROTOBUF__STRUCT__INIT;
    detail.n_fields = 1;
    detail.fields = fields;
    Opsconductor__Jobs__V1__JobEvent ev =
        OPSCONDUCTOR__JOBS__V1__JOB_EVENT__INIT;
    ev.job_id = job_id;
    ev.status = (char *)status;
    ev.changed_at = &ts;
    ev.detail = &detail;
    return opsconductor__jobs__v1__jobs_service__server__watch_job__send(call,
                                                                         &ev);
}

static orpc_status
watch_job(orpc_ctx *ctx, const Opsconductor__Jobs__V1__WatchJobRequest *req,
          Opsconductor__Jobs__V1__JobsService_WatchJob_ServerWriter *call,
          void *user_data)
{
    jobs *j = user_data;
    int64_t id = req->job_id;
    jev first = {.job_id = id};
    pthread_mutex_lock(&j->lock);
    if (j->stopping) {
        pthread_mutex_unlock(&j->lock);
        return orpc_status_new(ORPC_UNAVAILABLE,
                               "the jobs service is stopping");
    }
    int found = read_status(j, id, first.status, first.at, &first.exec_id);
    if (found == 1 && j->watchers >= j->cfg->max_watchers) {
        long long open = (long long)j->watchers; /* read under the lock */
        pthread_mutex_unlock(&j->lock);
        return orpc_status_errorf(ORPC_RESOURCE_EXHAUSTED,
                                  "%lld WatchJob calls are open already", open);
    }
    if (found == 1)
        j->watchers++;
    uint64_t want = j->next_seq; /* changes from here on are new */
    pthread_mutex_unlock(&j->lock);
    if (found <= 0)
        return found == 0 ? not_found(id) : store_failed();

    (void)orpc_ctx_on_cancel(ctx, wake_watchers, j);
    orpc_status result = ORPC_STATUS_OK;
    int64_t deadline = mono_ms() + j->cfg->max_watch_ms;
    jev batch[EV_BATCH];
    int n = 1;
    batch[0] = first;
    for (;;) {
        int final = 0;
        for (int i = 0; i < n && !final; i++) {
            if (send_event(call, id, batch[i].exec_id, batch[i].status,
                           batch[i].at) != 0) {
                result = orpc_status_new(ORPC_CANCELLED, "watcher went away");
                goto out;
            }
            final = is_final(batch[i].status);
        }
        if (final)
            goto out; /* OK: the job reached a final state */
        n = 0;
        pthread_mutex_lock(&j->lock);
        /* every wait is at most WATCH_STEP_MS; the loop ends by the
         * deadline, a cancellation or the service stopping */
        while (!j->stopping && !orpc_ctx_is_cancelled(ctx) &&
               mono_ms() < deadline) {
            uint64_t oldest = j->next_seq > RING ? j->next_seq - RING : 0;
            if (want < oldest) { /* fell behind: resync to the current */
                jev *e = &batch[0];
                e->job_id = id;
                if (read_status(j, id, e->status, e->at, &e->exec_id) == 1)
                    n = 1;
                want = j->next_seq;
                break;
            }
            for (; want < j->next_seq && n < EV_BATCH; want++) {
                const jev *e = &j->ring[want % RING];
                if (e->job_id == id)
                    batch[n++] = *e;
            }
            if (n > 0)
                break;
            wait_ms(j, WATCH_STEP_MS);
        }
        int stopping = j->stopping;
        pthread_mutex_unlock(&j->lock);
        if (n > 0)
            continue;
        if (orpc_ctx_is_cancelled(ctx))
            result = orpc_status_new(ORPC_CANCELLED, "watch cancelled");
        else if (stopping)
            result = orpc_status_new(ORPC_UNAVAILABLE,
                                     "the jobs service is stopping");
        else
            result = orpc_status_errorf(ORPC_DEADLINE_EXCEEDED,
                                        "watched for %lld ms, the longest "
                                        "a watch may last",
                                        (long long)j->cfg->max_watch_ms);
        break;
    }
out:
    pthread_mutex_lock(&j->lock);
    j->watchers--;
    pthread_mutex_unlock(&j->lock);
    return result;
}

static const Opsconductor__Jobs__V1__JobsService_Handlers handlers = {
    .run_job = run_job,
    .get_job = get_job,
    .get_job_status = get_job_status,
    .watch_job = watch_job,
};

/* --- life ---------------------------------------------------------------- */

/* Seeds jobs 1..100 where missing.  Returns an SQLite code. */
static int seed(jobs *j)
{
    sqlite3_stmt *st = NULL;
    int rc = exec_sql(j, "BEGIN IMMEDIATE");
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(
            j->db,
            "INSERT OR IGNORE INTO jobs (id, name, description, job_type,"
            " status, enabled, schedule, target_ids, parameters, created_by,"
            " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            -1, &st, NULL);
    for (int64_t id = 1; rc == SQLITE_OK && id <= DATA_N_JOBS; id++) {
        json_t *o = data_job(id);
        char *targets =
            json_dumps(json_object_get(o, "target_ids"), JSON_COMPACT);
        char *params = json_dumps(json_object_get(o, "parameters"),
                                  JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (o == NULL || targets == NULL || params == NULL) {
            rc = SQLITE_NOMEM;
        } else {
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, id);
            static const char *const text_keys[] = {
                NULL,     "name", "description", "job_type",
                "status", NULL,   "schedule"};
            for (int c = 1; c <= 6; c++)
                if (text_keys[c] != NULL) {
                    const char *s =
                        json_string_value(json_object_get(o, text_keys[c]));
                    if (s)
                        sqlite3_bind_text(st, c + 1, s, -1, SQLITE_TRANSIENT);
                    else
                        sqlite3_bind_null(st, c + 1);
                }
            sqlite3_bind_int(st, 6,
                             json_is_true(json_object_get(o, "enabled")));
            sqlite3_bind_text(st, 8, targets, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 9, params, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(
                st, 10, json_integer_value(json_object_get(o, "created_by")));
            sqlite3_bind_text(
                st, 11, json_string_value(json_object_get(o, "created_at")), -1,
                SQLITE_TRANSIENT);
            sqlite3_bind_text(
                st, 12, json_string_value(json_object_get(o, "updated_at")), -1,
                SQLITE_TRANSIENT);
            rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        }
        free(targets);
        free(params);
        json_decref(o);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = exec_sql(j, "COMMIT");
    else
        (void)sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static void jobs_stopping(void *state)
{
    jobs *j = state;
    pthread_mutex_lock(&j->lock);
    j->stopping = 1;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
}

static void jobs_close(void *state)
{
    jobs *j = state;
    if (j == NULL)
        return;
    if (j->runner_started) {
        jobs_stopping(j);
        pthread_join(j->runner, NULL);
    }
    orpc_legacy_serve_free(j->gw);
    sqlite3_close(j->db);
    svc_identities_free(&j->ids);
    pthread_cond_destroy(&j->cond);
    pthread_mutex_destroy(&j->lock);
    free(j);
}

static int jobs_open(void **state, const svc_config *cfg, orpc_metrics *m,
                     char *err, size_t errlen)
{
    *state = NULL;
    if (cfg->db == NULL) {
        snprintf(err, errlen, "jobs needs --db=PATH (its SQLite database)");
        return -1;
    }
    jobs *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&j->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cond, &ca);
    pthread_condattr_destroy(&ca);
    j->cfg = cfg;
    j->metrics = m;
    j->next_seq = 1;
    if (svc_identities_load(&j->ids, cfg->identities, err, errlen) != 0 ||
        svc_legacy_new(&j->gw, cfg, err, errlen) != 0) {
        jobs_close(j);
        return -1;
    }
    int rc = sqlite3_open_v2(cfg->db, &j->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                 SQLITE_OPEN_FULLMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "database %s: %s", cfg->db,
                 j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc));
        jobs_close(j);
        return -1;
    }
    sqlite3_busy_timeout(j->db, 5000);
    /* WAL: readers never block the writer, and a commit is one append */
    sqlite3_stmt *st = NULL;
    const char *mode = "";
    if (sqlite3_prepare_v2(j->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        mode = (const char *)sqlite3_column_text(st, 0);
    int wal = mode != NULL && strcmp(mode, "wal") == 0;
    sqlite3_finalize(st);
    if (!wal) {
        snprintf(err, errlen, "database %s: cannot use WAL mode: %s", cfg->db,
                 sqlite3_errmsg(j->db));
        jobs_close(j);
        return -1;
    }
    char pragmas[128];
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA synchronous = %s; PRAGMA foreign_keys = ON;",
             cfg->db_sync_full ? "FULL" : "NORMAL");
    if (exec_sql(j, pragmas) != SQLITE_OK || exec_sql(j, SCHEMA) != SQLITE_OK ||
        seed(j) != SQLITE_OK) {
        snprintf(err, errlen, "database %s: %s", cfg->db,
                 sqlite3_errmsg(j->db));
        jobs_close(j);
        return -1;
    }
    if (pthread_create(&j->runner, NULL, runner_main, j) != 0) {
        snprintf(err, errlen, "cannot start the runner thread");
        jobs_close(j);
        return -1;
    }
    j->runner_started = 1;
    svc_log("database %s (WAL), runs start after %lld ms and end %lld ms "
            "later",
            cfg->db, (long long)cfg->run_delay_ms,
            (long long)cfg->finish_delay_ms);
    *state = j;
    return 0;
}

static int jobs_register(orpc_server *srv, void *state)
{
    return opsconductor__jobs__v1__jobs_service__server__register(
        srv, &handlers, state);
}

/*
 * ==== LEGACY SEAM (jobs) ====
 * The legacy JSON routes (POST /jobs/{job_id}/run, GET /jobs/{job_id},
 * GET /jobs/{job_id}/status, and WatchJob as GET /jobs/{job_id}/events,
 * NDJSON) answered from the handlers above by orpc's gateway, on the gRPC
 * port (HTTP/1.1 by ALPN) and on --legacy-listen.  Bearer tokens are
 * judged by the auth service (svc_legacy_new(): Verify over mutual TLS on
 * --auth-target); the caller's identity is then legacy-service:<account>,
 * which the policy matches and RunJob's triggered_by names
 * (svc_caller_name()).  The gateway is made in jobs_open() and freed in
 * jobs_close(), after the server.
 */
static int jobs_install_legacy(orpc_server *srv, void *state)
{
    jobs *j = state;
    return orpc_legacy_serve_install(j->gw, srv);
}

const svc_kind svc_jobs_kind = {
    .name = "jobs",
    .open = jobs_open,
    .register_ = jobs_register,
    .install_legacy = jobs_install_legacy,
    .stopping = jobs_stopping,
    .close = jobs_close,
};
