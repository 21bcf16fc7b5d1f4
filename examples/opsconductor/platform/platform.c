/*
 * platform.c — the runner of opsconductor-scheduler and
 * opsconductor-executor: flags, the env and its clients, the worker
 * threads, the pacer, the call counters and their JSON stats file, the
 * signals and the drain.  The programs (scheduler.c, executor.c) only say
 * what one unit of their work calls.
 *
 * Design notes
 *
 * Signals.  SIGTERM, SIGINT and SIGUSR1 are blocked before any thread
 * starts and taken by the main thread with sigtimedwait(), so no handler
 * runs and no flag is shared.  SIGHUP is not ours: orpc_env_new() starts
 * the routing table's watcher, which takes it through libuv and reloads
 * the routes (ORPC_ROUTES_FILE, ORPC_ROUTE_*) for calls that start after.
 *
 * States.  RUNNING: units start.  DRAINING (SIGTERM, SIGINT or the end of
 * --duration-ms): no unit and no new call starts; calls that follow a unit
 * already under way (the polls of a job that ran) still may, until every
 * worker is idle or --drain-ms passed.  STOPPED: no call starts at all and
 * the streams still open (WatchJob) are cancelled; the workers return once
 * their calls in flight end (each bounded by --call-timeout-ms, a stream
 * by its job's timeout).  A second SIGTERM moves DRAINING to STOPPED.
 *
 * The pacer.  One schedule for all workers: each call takes the next slot,
 * 1/rate apart, and waits for it; a slot never lies in the past, so an
 * idle spell is not made up with a burst.  With workers busy in long
 * calls (a WatchJob lasts as long as its job) fewer calls than --rate go
 * out: the rate is a ceiling, --concurrency the other bound.
 *
 * Counters.  One cell per (method, side, status): a count and a latency
 * histogram of fixed log buckets (8 per octave of microseconds, so a
 * percentile is off by at most 1/16), allocated at its first call.  The
 * main thread writes the snapshot, every --stats-interval-ms and at exit,
 * to a temporary file renamed over --stats.
 *
 * Locking theory.  |run_lock| guards the state, the pacer's next slot, the
 * worker count and the registered streams; |run_cv| wakes pacer waits
 * when the state changes.  |stats_lock| guards every counter (the cells,
 * |failed|, the failure-line limiter and the programs' own counters via
 * plat_locked()).  The two are never held together.  A stream is
 * cancelled under |run_lock|, which its worker takes to unregister it
 * before finishing it, so a cancel never meets a freed call.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>
#include <unistd.h>

#include <orpc/compat/json.h>

#include "platform.h"

enum { ST_RUNNING = 0, ST_DRAINING = 1, ST_STOPPED = 2 };

#define MAX_SERVICES 8
#define MAX_WORKERS 256
#define MAX_RUN_MS (7LL * 24 * 3600 * 1000) /* the longest run */
#define NB 304                              /* histogram buckets */

typedef struct cell {
    uint64_t count;
    int64_t min_us, max_us;
    uint32_t *hist; /* NB buckets; NULL until the first call */
} cell;

typedef struct stream_slot {
    void *stream;
    void (*cancel)(void *);
} stream_slot;

struct plat {
    const plat_program *prog;
    plat_flags f;
    orpc_routes *routes;
    orpc_client *clients[MAX_SERVICES];
    int64_t start_ms;

    pthread_mutex_t run_lock;
    pthread_cond_t run_cv;
    int state;
    int64_t next_slot_ns;
    int64_t interval_ns;
    int workers_done;
    stream_slot streams[MAX_WORKERS];

    pthread_mutex_t stats_lock;
    /* [..][0]: calls; [..][1]: streams the program resumed (not failed) */
    cell cells[PLAT_MAX_METHODS][PLAT_N_SIDES][PLAT_N_CODES][2];
    uint64_t failed;
    uint64_t failed_total; /* never reset: the whole run */
    uint64_t resets;
    int64_t reset_ms;         /* monotonic */
    int64_t reset_unix_ms;    /* wall clock */
    int64_t fail_line_ms;     /* when the last failure line was printed */
    uint64_t fail_suppressed; /* failures since, not printed */
    int stats_write_failed;   /* said once */
};

static const char *const side_names[PLAT_N_SIDES] = {"grpc", "legacy",
                                                     "fallback", "none"};

/* --- time ------------------------------------------------------------- */

int64_t plat_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t plat_now_ms(void)
{
    return plat_now_ns() / 1000000;
}

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timespec abs_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000,
                          .tv_nsec = ns % 1000000000};
    return ts;
}

/* --- accessors -------------------------------------------------------- */

void *plat_state(plat *p)
{
    return p->prog->state;
}

orpc_client *plat_client(plat *p, int i)
{
    return i >= 0 && i < p->prog->n_services ? p->clients[i] : NULL;
}

const plat_flags *plat_get_flags(const plat *p)
{
    return &p->f;
}

orpc_route_mode plat_mode(plat *p, const orpc_method_desc *m)
{
    return orpc_routes_mode(p->routes, m);
}

uint64_t plat_random(plat_worker *w, uint64_t n)
{
    /* xorshift64*: enough for picking ids */
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return n == 0 ? 0 : (x * 0x2545F4914F6CDD1DULL) % n;
}

void plat_locked(plat *p, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&p->stats_lock);
    fn(arg);
    pthread_mutex_unlock(&p->stats_lock);
}

/* --- state and pacer -------------------------------------------------- */

static int blocked(const plat *p, int follow)
{
    return p->state == ST_STOPPED || (p->state == ST_DRAINING && !follow);
}

int plat_may_start(plat *p)
{
    pthread_mutex_lock(&p->run_lock);
    int ok = p->state == ST_RUNNING;
    pthread_mutex_unlock(&p->run_lock);
    return ok;
}

/* Waits on run_cv until |until_ns| or until blocked; run_lock held.
 * Bounded: each wait ends by |until_ns| at the latest, and the loop by
 * its count. */
static int wait_until(plat *p, int64_t until_ns, int follow)
{
    for (int i = 0; i < 100000; i++) {
        if (blocked(p, follow))
            return -1;
        if (plat_now_ns() >= until_ns)
            return 0;
        struct timespec ts = abs_ns(until_ns);
        pthread_cond_timedwait(&p->run_cv, &p->run_lock, &ts);
    }
    return blocked(p, follow) ? -1 : 0;
}

int plat_pace(plat *p, int follow)
{
    pthread_mutex_lock(&p->run_lock);
    int rc = -1;
    if (!blocked(p, follow)) {
        int64_t now = plat_now_ns();
        int64_t t = p->next_slot_ns > now ? p->next_slot_ns : now;
        p->next_slot_ns = t + p->interval_ns;
        rc = wait_until(p, t, follow);
    }
    pthread_mutex_unlock(&p->run_lock);
    return rc;
}

int plat_sleep(plat *p, int64_t ms, int follow)
{
    pthread_mutex_lock(&p->run_lock);
    int rc = wait_until(p, plat_now_ns() + ms * 1000000, follow);
    pthread_mutex_unlock(&p->run_lock);
    return rc;
}

static void set_state(plat *p, int state)
{
    pthread_mutex_lock(&p->run_lock);
    if (state > p->state) {
        p->state = state;
        if (state == ST_STOPPED) {
            for (int i = 0; i < p->f.concurrency; i++)
                if (p->streams[i].stream != NULL)
                    p->streams[i].cancel(p->streams[i].stream);
        }
        pthread_cond_broadcast(&p->run_cv);
    }
    pthread_mutex_unlock(&p->run_lock);
}

int plat_stream_set(plat_worker *w, void *stream, void (*cancel)(void *))
{
    plat *p = w->p;
    pthread_mutex_lock(&p->run_lock);
    int rc = 0;
    if (p->state == ST_STOPPED) {
        rc = -1;
    } else {
        p->streams[w->index].stream = stream;
        p->streams[w->index].cancel = cancel;
    }
    pthread_mutex_unlock(&p->run_lock);
    return rc;
}

void plat_stream_clear(plat_worker *w)
{
    pthread_mutex_lock(&w->p->run_lock);
    w->p->streams[w->index].stream = NULL;
    pthread_mutex_unlock(&w->p->run_lock);
}

/* --- counters --------------------------------------------------------- */

static int bucket_of(int64_t us)
{
    if (us < 16)
        return us < 0 ? 0 : (int)us;
    int msb = 63 - __builtin_clzll((unsigned long long)us);
    int b = 16 + (msb - 4) * 8 + (int)((us >> (msb - 3)) & 7);
    return b < NB ? b : NB - 1;
}

/* The middle of bucket |b|, in microseconds. */
static double bucket_mid_us(int b)
{
    if (b < 16)
        return b;
    int msb = (b - 16) / 8 + 4, sub = (b - 16) % 8;
    double lo = (double)((int64_t)(8 + sub) << (msb - 3));
    double hi = (double)((int64_t)(9 + sub) << (msb - 3));
    return (lo + hi) / 2;
}

static double percentile_ms(const cell *c, double q)
{
    uint64_t rank = (uint64_t)(q * (double)c->count + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    double us = (double)c->max_us;
    for (int b = 0; b < NB; b++) {
        seen += c->hist[b];
        if (seen >= rank) {
            us = bucket_mid_us(b);
            break;
        }
    }
    if (us < (double)c->min_us)
        us = (double)c->min_us;
    if (us > (double)c->max_us)
        us = (double)c->max_us;
    return us / 1000.0;
}

static int method_index(const plat *p, const orpc_method_desc *m)
{
    for (int i = 0; i < p->prog->n_methods; i++)
        if (p->prog->methods[i] == m)
            return i;
    return -1;
}

static void count_cell(plat *p, const orpc_method_desc *m, plat_side side,
                       orpc_code code, int64_t t0_ns, const char *message,
                       int resumed);

void plat_count(plat *p, const orpc_method_desc *m, plat_side side,
                orpc_code code, int64_t t0_ns, const char *message)
{
    count_cell(p, m, side, code, t0_ns, message, 0);
}

void plat_count_resumed(plat *p, const orpc_method_desc *m, plat_side side,
                        orpc_code code, int64_t t0_ns)
{
    count_cell(p, m, side, code, t0_ns, NULL, 1);
}

static void count_cell(plat *p, const orpc_method_desc *m, plat_side side,
                       orpc_code code, int64_t t0_ns, const char *message,
                       int resumed)
{
    int64_t us = (plat_now_ns() - t0_ns) / 1000;
    int mi = method_index(p, m);
    if (mi < 0 || (int)side < 0 || side >= PLAT_N_SIDES)
        return;
    if ((int)code < 0 || (int)code >= PLAT_N_CODES)
        code = ORPC_UNKNOWN;
    char line[512];
    line[0] = '\0';
    pthread_mutex_lock(&p->stats_lock);
    cell *c = &p->cells[mi][side][code][resumed != 0];
    if (c->hist == NULL)
        c->hist = calloc(NB, sizeof(*c->hist));
    if (c->hist != NULL) {
        if (c->count == 0 || us < c->min_us)
            c->min_us = us;
        if (c->count == 0 || us > c->max_us)
            c->max_us = us;
        c->count++;
        c->hist[bucket_of(us)]++;
    }
    if (code != ORPC_OK && !resumed) {
        p->failed++;
        p->failed_total++;
        /* At most one line a second: this failure, and how many were not
         * shown since the last line. */
        int64_t now = plat_now_ms();
        if (p->fail_line_ms == 0 || now - p->fail_line_ms >= 1000) {
            char more[64] = "";
            if (p->fail_suppressed > 0)
                snprintf(more, sizeof(more),
                         " (and %" PRIu64 " failed calls not shown)",
                         p->fail_suppressed);
            snprintf(line, sizeof(line),
                     "opsconductor-%s: failed: %s via %s: %s: %.200s%s\n",
                     p->prog->name, m->path + 1, side_names[side],
                     orpc_code_name(code), message ? message : "", more);
            p->fail_line_ms = now;
            p->fail_suppressed = 0;
        } else {
            p->fail_suppressed++;
        }
    }
    pthread_mutex_unlock(&p->stats_lock);
    if (line[0] != '\0')
        fputs(line, stderr);
}

int plat_call_begin(plat *p, plat_call *c, const orpc_method_desc *m,
                    int follow, int64_t max_ms)
{
    if (plat_pace(p, follow) != 0)
        return -1;
    memset(c, 0, sizeof(*c));
    c->m = m;
    c->mode = orpc_routes_mode(p->routes, m);
    c->by = ORPC_SERVED_NONE;
    c->opts.timeout_ms = p->f.call_timeout_ms;
    if (max_ms > 0 && max_ms < c->opts.timeout_ms)
        c->opts.timeout_ms = max_ms;
    c->opts.served_by = &c->by;
    c->t0_ns = plat_now_ns();
    return 0;
}

plat_side plat_call_end(plat *p, plat_call *c, const orpc_status *st)
{
    plat_side side = PLAT_NONE;
    if (c->by == ORPC_SERVED_GRPC)
        side = PLAT_GRPC;
    else if (c->by == ORPC_SERVED_LEGACY)
        side = c->mode == ORPC_ROUTE_FALLBACK ? PLAT_FALLBACK : PLAT_LEGACY;
    plat_count(p, c->m, side, st->code, c->t0_ns, st->message);
    return side;
}

static void reset_counters(plat *p)
{
    pthread_mutex_lock(&p->stats_lock);
    for (int i = 0; i < PLAT_MAX_METHODS; i++)
        for (int s = 0; s < PLAT_N_SIDES; s++)
            for (int k = 0; k < PLAT_N_CODES; k++)
                for (int r = 0; r < 2; r++) {
                    cell *c = &p->cells[i][s][k][r];
                    c->count = 0;
                    if (c->hist != NULL)
                        memset(c->hist, 0, NB * sizeof(*c->hist));
                }
    p->failed = 0;
    p->resets++;
    p->reset_ms = plat_now_ms();
    p->reset_unix_ms = unix_ms();
    if (p->prog->extra_reset != NULL)
        p->prog->extra_reset(p->prog->state);
    pthread_mutex_unlock(&p->stats_lock);
}

/* The snapshot as JSON on |f| (stats lock held). */
static void write_json(plat *p, FILE *f, int final)
{
    int64_t now = plat_now_ms();
    fprintf(f,
            "{\"program\":\"%s\",\"pid\":%ld,\"uptime_ms\":%" PRId64
            ",\"window_ms\":%" PRId64 ",\"resets\":%" PRIu64
            ",\"written_at_unix_ms\":%" PRId64 ",\"reset_at_unix_ms\":%" PRId64
            ",\"final\":%s,\"calls\":[",
            p->prog->name, (long)getpid(), now - p->start_ms, now - p->reset_ms,
            p->resets, unix_ms(), p->reset_unix_ms, final ? "true" : "false");
    int first = 1;
    for (int i = 0; i < p->prog->n_methods; i++)
        for (int s = 0; s < PLAT_N_SIDES; s++)
            for (int k = 0; k < PLAT_N_CODES; k++)
                for (int r = 0; r < 2; r++) {
                    const cell *c = &p->cells[i][s][k][r];
                    if (c->count == 0)
                        continue;
                    fprintf(f,
                            "%s{\"method\":\"%s\",\"side\":\"%s\","
                            "\"status\":\"%s\",%s\"count\":%" PRIu64
                            ",\"p50_ms\":%.3f,\"p99_ms\":%.3f}",
                            first ? "" : ",", p->prog->methods[i]->path + 1,
                            side_names[s], orpc_code_name((orpc_code)k),
                            r ? "\"resumed\":true," : "", c->count,
                            percentile_ms(c, 0.50), percentile_ms(c, 0.99));
                    first = 0;
                }
    fprintf(f, "],\"failed\":%" PRIu64 ",\"failed_total\":%" PRIu64, p->failed,
            p->failed_total);
    if (p->prog->extra_json != NULL)
        p->prog->extra_json(f, p->prog->state);
    fputs("}\n", f);
}

/* Writes the snapshot to a temporary file renamed over --stats. */
static void write_stats(plat *p, int final)
{
    if (p->f.stats_file == NULL)
        return;
    char *text = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&text, &len);
    if (mf == NULL)
        return;
    pthread_mutex_lock(&p->stats_lock);
    write_json(p, mf, final);
    pthread_mutex_unlock(&p->stats_lock);
    if (fclose(mf) != 0) {
        free(text);
        return;
    }
    char tmp[PATH_MAX];
    int ok = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", p->f.stats_file,
                      (long)getpid()) < (int)sizeof(tmp);
    int fd =
        ok ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    ok = fd >= 0;
    for (size_t off = 0; ok && off < len;) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            ok = 0;
        else
            off += (size_t)n;
    }
    if (fd >= 0 && close(fd) != 0)
        ok = 0;
    if (ok && rename(tmp, p->f.stats_file) != 0)
        ok = 0;
    if (!ok) {
        int e = errno;
        if (fd >= 0)
            unlink(tmp);
        if (!p->stats_write_failed)
            fprintf(stderr, "opsconductor-%s: cannot write %s: %s\n",
                    p->prog->name, p->f.stats_file, strerror(e));
        p->stats_write_failed = 1;
    }
    free(text);
}

/* --- flags ------------------------------------------------------------ */

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static void usage(const plat_program *prog, FILE *f)
{
    fprintf(f,
            "usage: opsconductor-%s [flags]\n"
            "  --rate=N              calls per second, all workers (20)\n"
            "  --concurrency=K       worker threads (4)\n"
            "  --duration-ms=N       stop after N ms (0: at SIGTERM/SIGINT)\n"
            "  --call-timeout-ms=N   deadline of each call (5000)\n"
            "  --drain-ms=N          after SIGTERM, how long work under way\n"
            "                        may finish (3000)\n"
            "  --stats=FILE          the JSON stats snapshot (none)\n"
            "  --stats-interval-ms=N how often it is written (500)\n"
            "  --seed=N              pick ids at random with this seed\n"
            "                        (default: round robin)\n"
            "%s"
            "Configuration (targets, URLs, TLS, routes, credentials) comes\n"
            "from the environment: see README.md and docs/clients.md.\n",
            prog->name, prog->flags_help ? prog->flags_help : "");
}

/* Returns 0, or the exit code (2: bad usage). */
static int parse_flags(const plat_program *prog, plat_flags *f, int argc,
                       char **argv, int *help)
{
    *f = (plat_flags){.rate = 20,
                      .concurrency = 4,
                      .call_timeout_ms = 5000,
                      .drain_ms = 3000,
                      .stats_interval_ms = 500};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        const char *v = eq ? eq + 1 : "";
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        int64_t n = 0;
        int bad = 0;
#define IS(name) (nl == strlen(name) && strncmp(a, name, nl) == 0)
        if (IS("--help") || IS("-h")) {
            *help = 1;
            return 0;
        } else if (IS("--rate")) {
            char *end;
            errno = 0;
            f->rate = strtod(v, &end);
            bad = errno != 0 || end == v || *end != '\0' || !(f->rate > 0) ||
                  f->rate > 1e6;
        } else if (IS("--concurrency")) {
            bad = parse_i64(v, 1, MAX_WORKERS, &n);
            f->concurrency = (int)n;
        } else if (IS("--duration-ms")) {
            bad = parse_i64(v, 0, MAX_RUN_MS, &f->duration_ms);
        } else if (IS("--call-timeout-ms")) {
            bad = parse_i64(v, 1, 3600000, &f->call_timeout_ms);
        } else if (IS("--drain-ms")) {
            bad = parse_i64(v, 0, 3600000, &f->drain_ms);
        } else if (IS("--stats")) {
            f->stats_file = v;
            bad = *v == '\0' || strlen(v) > PATH_MAX - 32;
        } else if (IS("--stats-interval-ms")) {
            bad = parse_i64(v, 10, 3600000, &f->stats_interval_ms);
        } else if (IS("--seed")) {
            bad = parse_i64(v, 0, INT64_MAX, &n);
            f->seed = (uint64_t)n;
            f->has_seed = 1;
        } else {
            int r = prog->flag ? prog->flag(a, prog->state) : 0;
            if (r < 0)
                return 2;
            if (r == 0) {
                fprintf(stderr, "opsconductor-%s: unknown flag %.100s\n",
                        prog->name, a);
                usage(prog, stderr);
                return 2;
            }
            continue;
        }
#undef IS
        if (bad || eq == NULL) {
            fprintf(stderr, "opsconductor-%s: bad value in %.100s\n",
                    prog->name, a);
            return 2;
        }
    }
    return 0;
}

/* --- the env ---------------------------------------------------------- */

static void env_log(orpc_log_level level, const char *msg, void *ud)
{
    const plat_program *prog = ud;
    if (level > ORPC_LOG_INFO)
        return;
    static const char *const names[] = {"error", "warning", "info"};
    fprintf(stderr, "opsconductor-%s: %s: %s\n", prog->name,
            names[level <= ORPC_LOG_INFO ? level : ORPC_LOG_INFO], msg);
}

static int make_clients(plat *p)
{
    const plat_program *prog = p->prog;
    char identity[80];
    snprintf(identity, sizeof(identity), "%s-service", prog->name);
    const char *env_id = getenv("ORPC_IDENTITY");
    orpc_env_opts o = {.identity =
                           env_id != NULL && *env_id != '\0' ? NULL : identity,
                       .log = env_log,
                       .log_user_data = (void *)prog};
    orpc_error_detail why;
    orpc_env *env = NULL;
    if (orpc_env_new(&env, &o, &why) != 0) {
        fprintf(stderr, "opsconductor-%s: %s\n", prog->name, why.message);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < prog->n_services && rc == 0; i++) {
        if (orpc_env_client_new(&p->clients[i], env, prog->services[i], &why) !=
            0) {
            fprintf(stderr, "opsconductor-%s: %s\n", prog->name, why.message);
            rc = -1;
        }
    }
    p->routes = orpc_routes_ref(orpc_env_routes(env));
    orpc_env_free(env);
    return rc;
}

/* --- workers and the main loop ---------------------------------------- */

static void *worker_main(void *arg)
{
    plat_worker *w = arg;
    plat *p = w->p;
    /* Bounded by time: the program stops within --duration-ms (at most
     * MAX_RUN_MS) or at a signal; the count bounds it as well. */
    for (uint64_t n = 0; n < UINT64_MAX / 2 && plat_may_start(p); n++)
        p->prog->unit(w);
    pthread_mutex_lock(&p->run_lock);
    p->workers_done++;
    pthread_cond_broadcast(&p->run_cv);
    pthread_mutex_unlock(&p->run_lock);
    return NULL;
}

static int all_done(plat *p)
{
    pthread_mutex_lock(&p->run_lock);
    int done = p->workers_done >= p->f.concurrency;
    pthread_mutex_unlock(&p->run_lock);
    return done;
}

int plat_main(const plat_program *prog, int argc, char **argv)
{
    /* Before any thread: SIGTERM, SIGINT and SIGUSR1 wait for
     * sigtimedwait() below (every thread inherits the mask). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    plat *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return 1;
    p->prog = prog;
    int help = 0;
    int rc = parse_flags(prog, &p->f, argc, argv, &help);
    if (rc != 0 || help) {
        if (help)
            usage(prog, stdout);
        free(p);
        return rc;
    }
    if (prog->n_services > MAX_SERVICES || prog->n_methods > PLAT_MAX_METHODS) {
        free(p);
        return 1;
    }
    p->start_ms = p->reset_ms = plat_now_ms();
    p->reset_unix_ms = unix_ms();
    p->interval_ns = (int64_t)(1e9 / p->f.rate);
    pthread_mutex_init(&p->run_lock, NULL);
    pthread_mutex_init(&p->stats_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->run_cv, &ca);
    pthread_condattr_destroy(&ca);

    int exit_code = 0;
    plat_worker *workers = calloc((size_t)p->f.concurrency, sizeof(*workers));
    pthread_t *threads = calloc((size_t)p->f.concurrency, sizeof(*threads));
    int started = 0;
    if (workers == NULL || threads == NULL || make_clients(p) != 0) {
        exit_code = 1;
        goto out;
    }
    for (int i = 0; i < p->f.concurrency; i++) {
        workers[i] = (plat_worker){
            .p = p,
            .index = i,
            .rng = (p->f.has_seed ? p->f.seed : 1) * 0x9E3779B97F4A7C15ULL +
                   (uint64_t)i * 0xBF58476D1CE4E5B9ULL + 1};
        if (pthread_create(&threads[i], NULL, worker_main, &workers[i]) != 0)
            break;
        started++;
    }
    if (started < p->f.concurrency) {
        fprintf(stderr, "opsconductor-%s: cannot start worker threads\n",
                prog->name);
        exit_code = 1;
        set_state(p, ST_STOPPED);
    }
    /* The number of workers that never started counts as done. */
    pthread_mutex_lock(&p->run_lock);
    p->workers_done += p->f.concurrency - started;
    pthread_mutex_unlock(&p->run_lock);

    int64_t now = plat_now_ms();
    int64_t end = now + (p->f.duration_ms > 0 ? p->f.duration_ms : MAX_RUN_MS);
    int64_t next_write = now + p->f.stats_interval_ms;
    int64_t drain_end = 0, stop_end = 0;
    write_stats(p, 0);
    /* Bounded: every pass waits at most 100 ms, and the run ends by |end|
     * (MAX_RUN_MS at most), then the drain and the stop are bounded too;
     * the count is a second bound. */
    for (long it = 0; it < MAX_RUN_MS / 10; it++) {
        now = plat_now_ms();
        int64_t wake = next_write < end ? next_write : end;
        if (drain_end != 0 && drain_end < wake)
            wake = drain_end;
        int64_t wait_ms = wake - now;
        if (wait_ms > 100)
            wait_ms = 100;
        if (wait_ms < 1)
            wait_ms = 1;
        struct timespec ts = {.tv_sec = wait_ms / 1000,
                              .tv_nsec = (wait_ms % 1000) * 1000000};
        int sig = sigtimedwait(&set, NULL, &ts);
        now = plat_now_ms();
        if (sig == SIGUSR1) {
            reset_counters(p);
            write_stats(p, 0);
            next_write = now + p->f.stats_interval_ms;
        } else if (sig == SIGTERM || sig == SIGINT || now >= end) {
            if (drain_end == 0) {
                drain_end = now + p->f.drain_ms;
                end = INT64_MAX;
                set_state(p, ST_DRAINING);
            } else if (stop_end == 0 && (sig == SIGTERM || sig == SIGINT)) {
                drain_end = now; /* a second signal: stop now */
            }
        }
        if (drain_end != 0 && stop_end == 0 && now >= drain_end) {
            set_state(p, ST_STOPPED);
            stop_end = now + p->f.call_timeout_ms + 5000;
        }
        if (drain_end != 0 && all_done(p))
            break;
        if (stop_end != 0 && now >= stop_end) {
            fprintf(stderr,
                    "opsconductor-%s: calls still in flight %" PRId64
                    " ms after the stop; exiting without them\n",
                    prog->name, p->f.call_timeout_ms + 5000);
            write_stats(p, 1);
            fflush(NULL);
            _exit(1);
        }
        if (now >= next_write) {
            write_stats(p, 0);
            next_write = now + p->f.stats_interval_ms;
        }
    }
    set_state(p, ST_STOPPED);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    write_stats(p, 1);
    {
        /* The failures the limiter held back. */
        pthread_mutex_lock(&p->stats_lock);
        uint64_t left = p->fail_suppressed;
        pthread_mutex_unlock(&p->stats_lock);
        if (left > 0)
            fprintf(stderr,
                    "opsconductor-%s: and %" PRIu64 " failed calls not shown\n",
                    prog->name, left);
    }
out:
    for (int i = 0; i < MAX_SERVICES; i++)
        orpc_client_free(p->clients[i]);
    orpc_routes_unref(p->routes);
    for (int i = 0; i < PLAT_MAX_METHODS; i++)
        for (int s = 0; s < PLAT_N_SIDES; s++)
            for (int k = 0; k < PLAT_N_CODES; k++)
                for (int r = 0; r < 2; r++)
                    free(p->cells[i][s][k][r].hist);
    pthread_cond_destroy(&p->run_cv);
    pthread_mutex_destroy(&p->run_lock);
    pthread_mutex_destroy(&p->stats_lock);
    free(workers);
    free(threads);
    free(p);
    return exit_code;
}

/* --- google.protobuf.Struct ------------------------------------------- */

const Google__Protobuf__Value *plat_field(const Google__Protobuf__Struct *s,
                                          const char *key)
{
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < s->n_fields; i++)
        if (s->fields[i] != NULL && s->fields[i]->key != NULL &&
            strcmp(s->fields[i]->key, key) == 0)
            return s->fields[i]->value;
    return NULL;
}

const char *plat_str(const Google__Protobuf__Struct *s, const char *key)
{
    const Google__Protobuf__Value *v = plat_field(s, key);
    return v != NULL &&
                   v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE
               ? v->string_value
               : NULL;
}

int64_t plat_int(const Google__Protobuf__Struct *s, const char *key,
                 int64_t dflt)
{
    const Google__Protobuf__Value *v = plat_field(s, key);
    if (v == NULL || v->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE)
        return dflt;
    double d = v->number_value;
    return d >= -9e15 && d <= 9e15 ? (int64_t)d : dflt;
}

int plat_bool(const Google__Protobuf__Struct *s, const char *key)
{
    const Google__Protobuf__Value *v = plat_field(s, key);
    return v != NULL &&
           v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE &&
           v->bool_value;
}

Google__Protobuf__Struct *plat_struct(const char *json)
{
    ProtobufCMessage *m = NULL;
    if (orpc_json_decode(&m, &google__protobuf__struct__orpc_info, json,
                         strlen(json), NULL, NULL, NULL) != 0)
        return NULL;
    return (Google__Protobuf__Struct *)m;
}
