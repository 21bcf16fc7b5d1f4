/*
 * scheduler.c — opsconductor-scheduler: the platform's scheduler under
 * steady load.  Each unit of work is one due job: now and then GetJob (the
 * scheduler reads the job it is about to run), RunJob with a payload, then
 * it follows the run to a final status (succeeded, failed, completed,
 * cancelled) within --job-timeout-ms:
 *
 *   - a run the gRPC side answered is watched with WatchJob (a server
 *     stream; streams travel over gRPC only).  When WatchJob is
 *     unavailable — the client has no gRPC side, or the stream ends
 *     UNAVAILABLE or UNIMPLEMENTED before a final status — the job is
 *     polled instead;
 *   - a run the legacy side answered (legacy, fallback) is polled with
 *     GetJobStatus every --poll-ms: the legacy service has no stream, and
 *     the gRPC side never saw that run — unless --follow=watch says that
 *     both generations share the jobs database (the demo: the FastAPI jobs
 *     app on the orpc service's SQLite file), when every run is watched;
 *   - a watch the service cuts (UNAVAILABLE: it is restarting) with time
 *     left is followed up, watched again after 100 ms (--follow=watch) or
 *     polled, and counted as resumed ("resumed": true), not failed.
 *
 * A failed call is counted and never repeated by this program (the
 * client library's own retry policy may retry; that is what is
 * measured); the next poll of a job is the next poll, not a retry.  The
 * legacy token flow (POST /login, once per token lifetime) is the client
 * library's, not a call of this program: it is not counted here.
 *
 * Counters beyond the calls: jobs_run (RunJob OK), jobs_finished (a final
 * status seen), jobs_failed (of those, "failed"), jobs_lost (no final
 * status within --job-timeout-ms), jobs_abandoned (still followed when the
 * drain ended) and jobs_in_flight (now; not reset by SIGUSR1).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"

enum { M_RUN, M_GET, M_STATUS, M_WATCH, N_METHODS };

typedef struct sched {
    /* flags, read-only once the workers run */
    int64_t job_timeout_ms;
    int64_t poll_ms;
    int get_every;
    int follow_watch; /* --follow=watch */
    int64_t *job_ids; /* --job-ids, or 1..--jobs */
    int n_job_ids;
    /* counters, under the stats lock (plat_locked) */
    uint64_t seq; /* units started; picks the job when round robin */
    uint64_t jobs_run, jobs_finished, jobs_failed, jobs_lost, jobs_abandoned;
    uint64_t jobs_lost_total; /* never reset: the whole run */
    int64_t jobs_in_flight;
    const orpc_method_desc *methods[N_METHODS];
} sched;

static const orpc_service_desc *const services[] = {
    &opsconductor__jobs__v1__jobs_service__orpc_desc};

/* --- counters --------------------------------------------------------- */

typedef struct bump {
    sched *s;
    int what; /* 0 start, 1 run, 2 finished, 3 failed, 4 lost, 5 abandoned */
    uint64_t seq;
} bump;

static void bump_fn(void *arg)
{
    bump *b = arg;
    sched *s = b->s;
    switch (b->what) {
    case 0:
        b->seq = s->seq++;
        break;
    case 1:
        s->jobs_run++;
        s->jobs_in_flight++;
        break;
    case 2:
    case 3:
        s->jobs_finished++;
        s->jobs_failed += b->what == 3;
        s->jobs_in_flight--;
        break;
    case 4:
        s->jobs_lost++;
        s->jobs_lost_total++;
        s->jobs_in_flight--;
        break;
    default:
        s->jobs_abandoned++;
        s->jobs_in_flight--;
        break;
    }
}

static uint64_t count(plat *p, sched *s, int what)
{
    bump b = {.s = s, .what = what};
    plat_locked(p, bump_fn, &b);
    return b.seq;
}

static void extra_json(FILE *f, void *state)
{
    sched *s = state;
    fprintf(f,
            ",\"jobs_run\":%" PRIu64 ",\"jobs_finished\":%" PRIu64
            ",\"jobs_failed\":%" PRIu64 ",\"jobs_lost\":%" PRIu64
            ",\"jobs_abandoned\":%" PRIu64 ",\"jobs_in_flight\":%" PRId64
            ",\"jobs_lost_total\":%" PRIu64,
            s->jobs_run, s->jobs_finished, s->jobs_failed, s->jobs_lost,
            s->jobs_abandoned, s->jobs_in_flight, s->jobs_lost_total);
}

static void extra_reset(void *state)
{
    sched *s = state;
    s->jobs_run = s->jobs_finished = s->jobs_failed = s->jobs_lost =
        s->jobs_abandoned = 0;
}

/* --- following a run -------------------------------------------------- */

/* 1: final and succeeded-like, 2: final and failed, 0: not final. */
static int final_status(const char *st)
{
    if (st == NULL)
        return 0;
    if (strcmp(st, "failed") == 0)
        return 2;
    return strcmp(st, "succeeded") == 0 || strcmp(st, "completed") == 0 ||
           strcmp(st, "cancelled") == 0;
}

typedef enum {
    F_FINAL_OK,
    F_FINAL_FAILED,
    F_LOST,
    F_ABANDONED,
    F_POLL,
    F_REWATCH
} fate;

static void cancel_watch(void *stream)
{
    opsconductor__jobs__v1__jobs_service__client__watch_job__cancel(stream);
}

/* Watches |job| until a final status or |deadline_ms|; F_POLL when
 * WatchJob is unavailable. */
static fate watch(plat_worker *w, sched *s, int64_t job, int64_t deadline_ms)
{
    plat *p = w->p;
    int64_t left = deadline_ms - plat_now_ms();
    if (left <= 0)
        return F_LOST;
    if (plat_pace(p, 1) != 0)
        return F_ABANDONED;
    Opsconductor__Jobs__V1__WatchJobRequest req =
        OPSCONDUCTOR__JOBS__V1__WATCH_JOB_REQUEST__INIT;
    req.job_id = job;
    orpc_served_by by = ORPC_SERVED_NONE;
    orpc_call_opts o = {.timeout_ms = left, .served_by = &by};
    Opsconductor__Jobs__V1__JobsService_WatchJob_Reader *r = NULL;
    int64_t t0 = plat_now_ns();
    int rc = opsconductor__jobs__v1__jobs_service__client__watch_job(
        plat_client(p, 0), &req, &o, &r);
    if (rc == ORPC_ENOTSUP)
        return F_POLL; /* no gRPC side: nothing was sent */
    if (rc != 0) {
        plat_count(p, s->methods[M_WATCH], PLAT_NONE, ORPC_UNKNOWN, t0,
                   orpc_strerror(rc));
        return F_POLL;
    }
    int registered = plat_stream_set(w, r, cancel_watch) == 0;
    if (!registered)
        opsconductor__jobs__v1__jobs_service__client__watch_job__cancel(r);
    int fin = 0;
    /* Bounded: the stream ends by its deadline (the job's timeout) or
     * when cancelled at the end of the drain; the count bounds it too. */
    for (int i = 0; i < 10000; i++) {
        Opsconductor__Jobs__V1__JobEvent *ev = NULL;
        if (opsconductor__jobs__v1__jobs_service__client__watch_job__recv(
                r, &ev) != 1)
            break;
        if (fin == 0)
            fin = final_status(ev->status);
        opsconductor__jobs__v1__job_event__free_unpacked(ev, NULL);
    }
    if (registered)
        plat_stream_clear(w);
    orpc_status st =
        opsconductor__jobs__v1__jobs_service__client__watch_job__finish(r);
    plat_side side = by == ORPC_SERVED_LEGACY ? PLAT_LEGACY : PLAT_GRPC;
    orpc_code code = st.code;
    /* A stream the service cut (UNAVAILABLE: it is going away) with time
     * left is followed up (watched again, or polled): resumed, not lost. */
    if (!fin && code == ORPC_UNAVAILABLE && plat_now_ms() < deadline_ms &&
        plat_may_start(p))
        plat_count_resumed(p, s->methods[M_WATCH], side, code, t0);
    else
        plat_count(p, s->methods[M_WATCH], side, code, t0, st.message);
    orpc_status_clear(&st);
    if (fin)
        return fin == 2 ? F_FINAL_FAILED : F_FINAL_OK;
    if (code == ORPC_UNAVAILABLE && s->follow_watch)
        return plat_now_ms() < deadline_ms ? F_REWATCH : F_LOST;
    if (code == ORPC_UNAVAILABLE || code == ORPC_UNIMPLEMENTED)
        return plat_now_ms() < deadline_ms ? F_POLL : F_LOST;
    if (code == ORPC_CANCELLED && !plat_may_start(p))
        return F_ABANDONED;
    return F_LOST;
}

/* Polls GetJobStatus until a final status or |deadline_ms|. */
static fate poll_status(plat_worker *w, sched *s, int64_t job,
                        int64_t deadline_ms)
{
    plat *p = w->p;
    /* Bounded by the deadline (each pass waits --poll-ms at least) and
     * by the count. */
    for (int i = 0; i < 1000000; i++) {
        int64_t left = deadline_ms - plat_now_ms();
        if (left <= 0)
            return F_LOST;
        plat_call c;
        if (plat_call_begin(p, &c, s->methods[M_STATUS], 1, left) != 0)
            return F_ABANDONED;
        Opsconductor__Jobs__V1__GetJobStatusRequest req =
            OPSCONDUCTOR__JOBS__V1__GET_JOB_STATUS_REQUEST__INIT;
        req.job_id = job;
        Opsconductor__Jobs__V1__GetJobStatusResponse *resp = NULL;
        orpc_status st =
            opsconductor__jobs__v1__jobs_service__client__get_job_status(
                plat_client(p, 0), &req, &resp, &c.opts);
        plat_call_end(p, &c, &st);
        int fin = 0;
        if (st.code == ORPC_OK) {
            fin = final_status(plat_str(resp->status, "status"));
            opsconductor__jobs__v1__get_job_status_response__free_unpacked(
                resp, NULL);
        }
        orpc_status_clear(&st);
        if (fin)
            return fin == 2 ? F_FINAL_FAILED : F_FINAL_OK;
        int64_t wait = s->poll_ms;
        left = deadline_ms - plat_now_ms();
        if (left <= 0)
            return F_LOST;
        if (plat_sleep(p, wait < left ? wait : left, 1) != 0)
            return F_ABANDONED;
    }
    return F_LOST;
}

/* --- the unit: one due job -------------------------------------------- */

static void unit(plat_worker *w)
{
    plat *p = w->p;
    sched *s = plat_state(p);
    const plat_flags *f = plat_get_flags(p);
    uint64_t seq = count(p, s, 0);
    int64_t job =
        s->job_ids[f->has_seed ? plat_random(w, (uint64_t)s->n_job_ids)
                               : seq % (uint64_t)s->n_job_ids];
    plat_call c;
    if (s->get_every > 0 && seq % (uint64_t)s->get_every == 0) {
        if (plat_call_begin(p, &c, s->methods[M_GET], 0, 0) != 0)
            return;
        Opsconductor__Jobs__V1__GetJobRequest req =
            OPSCONDUCTOR__JOBS__V1__GET_JOB_REQUEST__INIT;
        req.job_id = job;
        Opsconductor__Jobs__V1__GetJobResponse *resp = NULL;
        orpc_status st = opsconductor__jobs__v1__jobs_service__client__get_job(
            plat_client(p, 0), &req, &resp, &c.opts);
        plat_call_end(p, &c, &st);
        if (st.code == ORPC_OK)
            opsconductor__jobs__v1__get_job_response__free_unpacked(resp, NULL);
        orpc_status_clear(&st);
    }

    char payload[160];
    snprintf(payload, sizeof(payload),
             "{\"scheduled\": true, \"scheduler_run\": %" PRIu64 "}", seq);
    Opsconductor__Jobs__V1__RunJobRequest req =
        OPSCONDUCTOR__JOBS__V1__RUN_JOB_REQUEST__INIT;
    req.job_id = job;
    req.payload = plat_struct(payload);
    if (req.payload == NULL ||
        plat_call_begin(p, &c, s->methods[M_RUN], 0, 0)) {
        if (req.payload != NULL)
            google__protobuf__struct__free_unpacked(req.payload, NULL);
        return;
    }
    Opsconductor__Jobs__V1__RunJobResponse *resp = NULL;
    orpc_status st = opsconductor__jobs__v1__jobs_service__client__run_job(
        plat_client(p, 0), &req, &resp, &c.opts);
    plat_side side = plat_call_end(p, &c, &st);
    google__protobuf__struct__free_unpacked(req.payload, NULL);
    if (st.code == ORPC_OK)
        opsconductor__jobs__v1__run_job_response__free_unpacked(resp, NULL);
    orpc_code code = st.code;
    orpc_status_clear(&st);
    if (code != ORPC_OK)
        return;
    count(p, s, 1);

    int64_t deadline = plat_now_ms() + s->job_timeout_ms;
    fate fa = F_POLL;
    if (side == PLAT_GRPC || s->follow_watch)
        fa = watch(w, s, job, deadline);
    /* --follow=watch: a cut stream is opened again after a pause (bounded
     * by the job's deadline and the count) */
    for (int i = 0; fa == F_REWATCH && i < 1000; i++)
        fa = plat_sleep(p, 100, 1) != 0 ? F_ABANDONED
                                        : watch(w, s, job, deadline);
    if (fa == F_REWATCH)
        fa = F_LOST;
    if (fa == F_POLL)
        fa = poll_status(w, s, job, deadline);
    count(p, s,
          fa == F_FINAL_OK       ? 2
          : fa == F_FINAL_FAILED ? 3
          : fa == F_LOST         ? 4
                                 : 5);
}

/* --- flags and main --------------------------------------------------- */

/* "1,4,7-9": ids into s->job_ids (at most 100000). */
static int parse_ids(sched *s, const char *v)
{
    int64_t *ids = NULL;
    int n = 0, cap = 0;
    const char *q = v;
    for (int part = 0; part < 100000 && *q != '\0'; part++) {
        char *end;
        long long a = strtoll(q, &end, 10), b = a;
        if (end == q)
            goto bad;
        q = end;
        if (*q == '-') {
            b = strtoll(q + 1, &end, 10);
            if (end == q + 1)
                goto bad;
            q = end;
        }
        if (a < 1 || b < a || b - a >= 100000 || n + (b - a + 1) > 100000)
            goto bad;
        for (long long id = a; id <= b; id++) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                int64_t *g = realloc(ids, (size_t)cap * sizeof(*ids));
                if (g == NULL)
                    goto bad;
                ids = g;
            }
            ids[n++] = id;
        }
        if (*q == ',')
            q++;
        else if (*q != '\0')
            goto bad;
    }
    if (n == 0 || *q != '\0')
        goto bad;
    free(s->job_ids);
    s->job_ids = ids;
    s->n_job_ids = n;
    return 0;
bad:
    free(ids);
    return -1;
}

static int flag(const char *a, void *state)
{
    sched *s = state;
    const char *eq = strchr(a, '=');
    if (eq == NULL)
        return 0;
    size_t nl = (size_t)(eq - a);
    const char *v = eq + 1;
    char *end;
    long long n = strtoll(v, &end, 10);
    int num_ok = end != v && *end == '\0';
#define IS(name) (nl == strlen(name) && strncmp(a, name, nl) == 0)
    if (IS("--jobs")) {
        char ids[64];
        snprintf(ids, sizeof(ids), "1-%lld", n);
        if (num_ok && n >= 1 && n <= 100000 && parse_ids(s, ids) == 0)
            return 1;
    } else if (IS("--job-ids")) {
        if (parse_ids(s, v) == 0)
            return 1;
    } else if (IS("--follow")) {
        s->follow_watch = strcmp(v, "watch") == 0;
        if (s->follow_watch || strcmp(v, "auto") == 0)
            return 1;
    } else if (IS("--job-timeout-ms")) {
        s->job_timeout_ms = n;
        if (num_ok && n >= 1 && n <= 3600000)
            return 1;
    } else if (IS("--poll-ms")) {
        s->poll_ms = n;
        if (num_ok && n >= 1 && n <= 600000)
            return 1;
    } else if (IS("--get-every")) {
        s->get_every = (int)n;
        if (num_ok && n >= 0 && n <= 1000000)
            return 1;
    } else {
        return 0;
    }
#undef IS
    fprintf(stderr, "opsconductor-scheduler: bad value in %.100s\n", a);
    return -1;
}

int main(int argc, char **argv)
{
    sched s = {.job_timeout_ms = 10000, .poll_ms = 200, .get_every = 4};
    s.methods[M_RUN] = opsconductor__jobs__v1__jobs_service__method__run_job;
    s.methods[M_GET] = opsconductor__jobs__v1__jobs_service__method__get_job;
    s.methods[M_STATUS] =
        opsconductor__jobs__v1__jobs_service__method__get_job_status;
    s.methods[M_WATCH] =
        opsconductor__jobs__v1__jobs_service__method__watch_job;
    if (parse_ids(&s, "1-100") != 0)
        return 1;
    plat_program prog = {
        .name = "scheduler",
        .methods = s.methods,
        .n_methods = N_METHODS,
        .services = services,
        .n_services = 1,
        .state = &s,
        .unit = unit,
        .extra_json = extra_json,
        .extra_reset = extra_reset,
        .flag = flag,
        .flags_help =
            "  --jobs=N              run jobs 1..N (100)\n"
            "  --job-ids=LIST        run these jobs instead: 1,4,7-9\n"
            "  --job-timeout-ms=N    a run not final by then is lost (10000)\n"
            "  --follow=auto|watch   auto: WatchJob for runs gRPC answered,\n"
            "                        GetJobStatus polls for the others;\n"
            "                        watch: WatchJob for every run (both\n"
            "                        generations share the jobs database)\n"
            "  --poll-ms=N           GetJobStatus poll interval (200)\n"
            "  --get-every=N         GetJob before every Nth run (4; 0: "
            "never)\n"};
    int rc = plat_main(&prog, argc, argv);
    free(s.job_ids);
    return rc;
}
