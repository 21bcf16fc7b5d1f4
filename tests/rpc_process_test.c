/*
 * rpc_process_test.c — the client's call policy against servers that are
 * real processes on loopback (tests/proc_server.c), killed with SIGKILL,
 * restarted on their address and drained with SIGTERM:
 *
 * - a server killed mid-call: the call ends UNAVAILABLE; retried on a
 *   second address when the retry policy has UNAVAILABLE, not retried (the
 *   other server sees no call) when it has not;
 * - a server restarted on the same port: the channel reconnects;
 * - a server drained (SIGTERM: GOAWAY, grace) while three threads call in
 *   a loop through an ipv4: target of two servers: no call fails; a call
 *   that outlives the grace ends UNAVAILABLE, retried elsewhere if the
 *   policy says so;
 * - retry throttling under sustained failure, and server pushback (a
 *   delay honoured, a negative one stopping the retries), counted by the
 *   server;
 * - round_robin over 127.0.0.1, .2 and .3: every server takes calls; one
 *   killed, the others take them all; restarted, it takes calls again;
 * - the health service says NOT_SERVING during the drain, while the
 *   connection still carries a call;
 * - orpc-interop-client's --service_config (inline, @file, refused with the
 *   bad field named).
 *
 * The paths of proc_server and orpc-interop-client come from CMake
 * (PROC_SERVER, INTEROP_CLIENT).  A server prints "PORT <n>" once it
 * serves; the test learns from it the ephemeral port, and from its stats
 * call (CacheableUnaryCall) the calls it has begun and the time between
 * the last two.  Every wait is bounded (a deadline of a few seconds,
 * polled); every server started is recorded and, whatever an assertion
 * does, killed and reaped by the teardown (and by an atexit() handler;
 * the servers also die with this process, PR_SET_PDEATHSIG).  The only
 * duration asserted is a lower bound (the pushback's); the waits' bounds
 * are generous (seconds), for loaded machines and sanitizers.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/types.h>
#include <sys/wait.h>

#include <cmocka.h>

#include <orpc/orpc.h>

#include "grpc/health/v1/health.orpc.h"
#include "grpc/testing/test.orpc.h"

extern char **environ;

typedef Grpc__Testing__SimpleRequest SimpleReq;
typedef Grpc__Testing__SimpleResponse SimpleResp;

/* ---- time ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- child processes ---- */

/* A server process: where it listens and who it says it is. */
typedef struct proc {
    pid_t pid; /* 0: not running (reaped) */
    char ip[16];
    int port;
    char name[16];
    char target[40]; /* "ip:port" */
} proc;

/* Every server a test starts lives in one of these slots, so the
 * teardown (and atexit) can kill what is left. */
#define NPROC 6
static proc P[NPROC];

static void kill_all(void)
{
    for (int i = 0; i < NPROC; i++)
        if (P[i].pid > 0) {
            kill(P[i].pid, SIGKILL);
            while (waitpid(P[i].pid, NULL, 0) < 0 && errno == EINTR)
                ;
            P[i].pid = 0;
        }
}

/* Starts |argv| (argv[0] a path) with its descriptor |fd| (1 or 2) on a
 * pipe whose read end goes to |*rd|; its signals at their defaults and
 * unblocked.  Returns the pid. */
static pid_t spawn_piped(char *const argv[], int fd, int *rd)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGTERM);
    sigaddset(&dfl, SIGINT);
    sigaddset(&dfl, SIGPIPE);
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_adddup2(&fa, p[1], fd), 0);
    assert_int_equal(posix_spawnattr_init(&at), 0);
    assert_int_equal(posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
                                                       POSIX_SPAWN_SETSIGDEF),
                     0);
    assert_int_equal(posix_spawnattr_setsigmask(&at, &none), 0);
    assert_int_equal(posix_spawnattr_setsigdefault(&at, &dfl), 0);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        fail_msg("cannot start %s: %s", argv[0], strerror(rc));
    }
    *rd = p[0];
    return pid;
}

/* Reads from |fd| into |buf| until EOF, or (with |line|) a newline, for
 * |ms| at most.  Returns the bytes read (NUL-terminated). */
static size_t read_until(int fd, char *buf, size_t len, int line, int ms)
{
    size_t n = 0;
    int64_t end = now_ms() + ms;
    while (n + 1 < len && (!line || memchr(buf, '\n', n) == NULL)) {
        int64_t left = end - now_ms();
        if (left <= 0)
            break;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int r = poll(&pf, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ssize_t got = read(fd, buf + n, len - 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
        buf[n] = '\0';
    }
    buf[n] = '\0';
    return n;
}

/* Waits up to |ms| for |pid| to end.  Returns its wait status, or -1 when
 * it still runs. */
static int reap(pid_t pid, int ms)
{
    int64_t end = now_ms() + ms;
    for (;;) {
        int ws;
        pid_t r = waitpid(pid, &ws, WNOHANG);
        if (r == pid)
            return ws;
        if (r < 0 && errno != EINTR)
            fail_msg("waitpid(%d): %s", (int)pid, strerror(errno));
        if (now_ms() >= end)
            return -1;
        sleep_ms(5);
    }
}

/* Starts proc_server in |p| on |ip|:|port| (0: a free one) as |name|, with
 * the flags in |extra| (NULL-terminated, or NULL), and waits (10 s at
 * most) for its "PORT <n>" line. */
static void proc_start(proc *p, const char *ip, int port, const char *name,
                       const char *const *extra)
{
    assert_int_equal(p->pid, 0);
    char listen_at[40];
    snprintf(listen_at, sizeof(listen_at), "%s:%d", ip, port);
    const char *argv[24] = {PROC_SERVER, "--listen", listen_at, "--name", name};
    int argc = 5;
    for (int i = 0; extra && extra[i]; i++) {
        assert_true(argc < 23);
        argv[argc++] = extra[i];
    }
    argv[argc] = NULL;
    int rd;
    p->pid = spawn_piped((char *const *)argv, 1, &rd);
    char line[64];
    read_until(rd, line, sizeof(line), 1, 10000);
    close(rd);
    int got = 0;
    if (sscanf(line, "PORT %d", &got) != 1 || got <= 0 ||
        (port != 0 && got != port))
        fail_msg("%s on %s: no PORT line (got \"%s\")", name, listen_at, line);
    snprintf(p->ip, sizeof(p->ip), "%s", ip);
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->port = got;
    snprintf(p->target, sizeof(p->target), "%s:%d", ip, got);
}

/* SIGKILL, reaped; it must not have ended before (a crash, a
 * sanitizer's report). */
static void proc_kill(proc *p)
{
    assert_true(p->pid > 0);
    kill(p->pid, SIGKILL);
    int ws = reap(p->pid, 5000);
    if (ws == -1)
        fail_msg("%s still runs 5 s after SIGKILL", p->name);
    p->pid = 0;
    if (!WIFSIGNALED(ws) || WTERMSIG(ws) != SIGKILL)
        fail_msg("%s had ended by itself (wait status 0x%x)", p->name, ws);
}

/* Waits (|ms| at most) for a server sent SIGTERM to exit; it must exit 0
 * (a sanitizer's report makes it exit otherwise). */
static void proc_wait_exit(proc *p, int ms)
{
    int ws = reap(p->pid, ms);
    if (ws == -1)
        fail_msg("%s still runs %d ms after SIGTERM", p->name, ms);
    p->pid = 0;
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        fail_msg("%s ended with wait status 0x%x after SIGTERM", p->name, ws);
}

/* ---- channels and calls ---- */

/* A channel to |target| (plaintext) with |lb| (NULL: pick_first) and the
 * service config |config| (NULL: none), reconnecting after a short
 * backoff. */
static orpc_channel *channel(const char *target, const char *lb,
                             const char *config)
{
    orpc_channel_opts co = {.plaintext = 1,
                            .lb_policy = lb,
                            .service_config = config,
                            .initial_backoff_ms = 100,
                            .max_backoff_ms = 500,
                            .connect_timeout_ms = 2000};
    orpc_channel *ch = NULL;
    orpc_error_detail d = {0};
    if (orpc_channel_new(&ch, target, &co, NULL, &d) != 0)
        fail_msg("channel to %s refused: %s", target, d.message);
    return ch;
}

/* Starts "A" in |a| with the flags |fa| and, unless |b| is NULL, "B" in
 * |b| with |fb| (both on 127.0.0.1, as proc_start()); returns a channel
 * to "ipv4:a,b" (or "ipv4:a") with |lb| and |config| (as channel()). */
static orpc_channel *start_pair(proc *a, const char *const *fa, proc *b,
                                const char *const *fb, const char *lb,
                                const char *config)
{
    proc_start(a, "127.0.0.1", 0, "A", fa);
    if (b != NULL)
        proc_start(b, "127.0.0.1", 0, "B", fb);
    char target[96];
    snprintf(target, sizeof(target), "ipv4:%s%s%s", a->target, b ? "," : "",
             b ? b->target : "");
    return channel(target, lb, config);
}

/* A service config retrying the test service's calls on the codes in
 * |codes| (the inside of a JSON list), |extra| appended to the top
 * object. */
static const char *retry_policy(char *buf, size_t len, int attempts,
                                const char *codes, const char *extra)
{
    snprintf(buf, len,
             "{\"methodConfig\": [{\"name\": [{\"service\": "
             "\"grpc.testing.TestService\"}], \"retryPolicy\": "
             "{\"maxAttempts\": %d, \"initialBackoff\": \"0.01s\", "
             "\"maxBackoff\": \"0.05s\", \"backoffMultiplier\": 2, "
             "\"retryableStatusCodes\": [%s]}}]%s}",
             attempts, codes, extra ? extra : "");
    return buf;
}

/* The outcome of one UnaryCall: its code, and who answered when OK. */
typedef struct outcome {
    orpc_code code;
    char who[16];
    char msg[128];
} outcome;

static void outcome_set(outcome *o, const orpc_status *st,
                        ProtobufCMessage *resp)
{
    o->code = st->code;
    snprintf(o->msg, sizeof(o->msg), "%s", st->message ? st->message : "");
    o->who[0] = '\0';
    if (resp != NULL) {
        const char *id = ((SimpleResp *)resp)->server_id;
        snprintf(o->who, sizeof(o->who), "%s", id ? id : "");
        protobuf_c_message_free_unpacked(resp, NULL);
    }
}

/* A blocking UnaryCall, with |wfr| as wait_for_ready. */
static outcome unary(orpc_channel *ch, int wfr, int64_t timeout_ms)
{
    SimpleReq req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    orpc_call_opts o = {.timeout_ms = timeout_ms, .wait_for_ready = wfr};
    orpc_status st =
        orpc_channel_invoke(ch, grpc__testing__test_service__method__unary_call,
                            &req.base, &resp, &o);
    outcome r;
    outcome_set(&r, &st, resp);
    orpc_status_clear(&st);
    return r;
}

/* An asynchronous UnaryCall's outcome (under |lock|).  The tests keep
 * theirs in static storage: a call that a failed assertion leaves behind
 * may still complete into it. */
typedef struct pending {
    pthread_mutex_t lock;
    int done;
    outcome out;
} pending;

static void pending_done(const orpc_status *st, ProtobufCMessage *resp,
                         void *ud)
{
    pending *p = ud;
    pthread_mutex_lock(&p->lock);
    outcome_set(&p->out, st, resp);
    p->done = 1;
    pthread_mutex_unlock(&p->lock);
}

/* Starts an asynchronous UnaryCall (20 s deadline), with |wfr| as
 * wait_for_ready. */
static void pending_start(pending *p, orpc_channel *ch, int wfr)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    SimpleReq req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    orpc_call_opts o = {.timeout_ms = 20000, .wait_for_ready = wfr};
    assert_int_equal(orpc_channel_invoke_async(
                         ch, grpc__testing__test_service__method__unary_call,
                         &req.base, &o, pending_done, p),
                     0);
}

static int pending_is_done(pending *p)
{
    pthread_mutex_lock(&p->lock);
    int d = p->done;
    pthread_mutex_unlock(&p->lock);
    return d;
}

/* Waits (|ms| at most) for the call to end; returns its outcome. */
static outcome pending_wait(pending *p, int ms)
{
    int64_t end = now_ms() + ms;
    while (!pending_is_done(p) && now_ms() < end)
        sleep_ms(5);
    if (!pending_is_done(p))
        fail_msg("the call has not ended after %d ms", ms);
    pthread_mutex_destroy(&p->lock);
    return p->out;
}

/* ---- what a server saw (its stats call) ---- */

typedef struct stats {
    long long calls;  /* UnaryCall and EmptyCall calls begun */
    long long gap_us; /* between the last two; -1 before two */
} stats;

static stats stats_of(const proc *p)
{
    orpc_channel *ch = channel(p->target, NULL, NULL);
    SimpleReq req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    orpc_call_opts o = {.timeout_ms = 5000};
    orpc_status st = orpc_channel_invoke(
        ch, grpc__testing__test_service__method__cacheable_unary_call,
        &req.base, &resp, &o);
    stats s = {-1, -1};
    char text[64] = "";
    if (st.code == ORPC_OK) {
        const Grpc__Testing__Payload *pl = ((SimpleResp *)resp)->payload;
        if (pl && pl->body.len < sizeof(text))
            memcpy(text, pl->body.data, pl->body.len);
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    orpc_code code = st.code;
    orpc_status_clear(&st);
    orpc_channel_unref(ch);
    if (code != ORPC_OK ||
        sscanf(text, "calls=%lld gap_us=%lld", &s.calls, &s.gap_us) != 2)
        fail_msg("no stats from %s (%s)", p->name, orpc_code_name(code));
    return s;
}

/* Waits (5 s at most) for |p| to have begun |n| calls. */
static void wait_calls(const proc *p, long long n)
{
    int64_t end = now_ms() + 5000;
    long long have;
    while ((have = stats_of(p).calls) < n && now_ms() < end)
        sleep_ms(10);
    if (have < n)
        fail_msg("%s began %lld calls in 5 s, want %lld", p->name, have, n);
}

/* ---- fixture ---- */

static int setup(void **state)
{
    (void)state;
    memset(P, 0, sizeof(P));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kill_all();
    return 0;
}

static const char *const DELAYED[] = {"--delay-ms", "10000", NULL};

/* ====================================================================== */
/* a. a server killed mid-call                                            */
/* ====================================================================== */

#define IN_FLIGHT 3

/* A slow A in |a| and, unless |b| is NULL, B in |b|, behind "ipv4:a,b"
 * (pick_first: A takes the calls) with the service config |config|:
 * IN_FLIGHT calls, and A killed once they have all reached it.  Each
 * call's outcome goes to |out|. */
static void kill_during_calls(proc *a, proc *b, const char *config,
                              outcome out[IN_FLIGHT])
{
    orpc_channel *ch = start_pair(a, DELAYED, b, NULL, NULL, config);
    static pending calls[IN_FLIGHT];
    for (int i = 0; i < IN_FLIGHT; i++)
        pending_start(&calls[i], ch, 0);
    wait_calls(a, IN_FLIGHT);
    proc_kill(a);
    for (int i = 0; i < IN_FLIGHT; i++)
        out[i] = pending_wait(&calls[i], 5000);
    orpc_channel_unref(ch);
}

/* Every outcome in |out| must be |code| (and OK ones answered by |who|). */
static void expect_all(const outcome out[IN_FLIGHT], orpc_code code,
                       const char *who, const char *what)
{
    for (int i = 0; i < IN_FLIGHT; i++)
        if (out[i].code != code ||
            (code == ORPC_OK && strcmp(out[i].who, who) != 0))
            fail_msg("%s: call %d got %s (%s%s%s), want %s", what, i,
                     orpc_code_name(out[i].code), out[i].msg,
                     out[i].code == ORPC_OK ? "from " : "", out[i].who,
                     orpc_code_name(code));
}

static void test_kill_mid_call(void **state)
{
    (void)state;
    outcome out[IN_FLIGHT];
    /* alone: the calls end UNAVAILABLE */
    kill_during_calls(&P[0], NULL, NULL, out);
    expect_all(out, ORPC_UNAVAILABLE, NULL, "killed mid-call");

    /* UNAVAILABLE is retryable: the retries go to the second address */
    char cfg[512];
    retry_policy(cfg, sizeof(cfg), 3, "\"UNAVAILABLE\"", NULL);
    kill_during_calls(&P[0], &P[1], cfg, out);
    expect_all(out, ORPC_OK, "B", "retried");
    assert_int_equal(stats_of(&P[1]).calls, IN_FLIGHT);

    /* a policy without UNAVAILABLE: no retry, B sees nothing */
    retry_policy(cfg, sizeof(cfg), 3, "\"ABORTED\", \"INTERNAL\"", NULL);
    kill_during_calls(&P[2], &P[3], cfg, out);
    expect_all(out, ORPC_UNAVAILABLE, NULL, "not retryable");
    assert_int_equal(stats_of(&P[3]).calls, 0);
}

/* ====================================================================== */
/* b. a server restarted on its port                                      */
/* ====================================================================== */

/* Killed, the server is gone (calls fail fast, wait_for_ready ones wait);
 * restarted on the same port, the channel reconnects to it within a few
 * seconds and the waiting call goes through. */
static void test_restart_same_port(void **state)
{
    (void)state;
    proc_start(&P[0], "127.0.0.1", 0, "A1", NULL);
    orpc_channel *ch = channel(P[0].target, NULL, NULL);
    outcome r = unary(ch, 0, 5000);
    assert_int_equal(r.code, ORPC_OK);
    assert_string_equal(r.who, "A1");
    int port = P[0].port;
    proc_kill(&P[0]);
    r = unary(ch, 0, 5000);
    if (r.code != ORPC_UNAVAILABLE)
        fail_msg("server gone: %s (%s), want UNAVAILABLE",
                 orpc_code_name(r.code), r.msg);
    static pending waiting;
    pending_start(&waiting, ch, 1);
    sleep_ms(300);
    assert_false(pending_is_done(&waiting));

    proc_start(&P[0], "127.0.0.1", port, "A2", NULL);
    r = pending_wait(&waiting, 5000);
    if (r.code != ORPC_OK)
        fail_msg("the call waiting for the restart: %s (%s)",
                 orpc_code_name(r.code), r.msg);
    assert_string_equal(r.who, "A2");
    assert_int_equal(orpc_channel_get_state(ch, 0), ORPC_CHANNEL_READY);
    r = unary(ch, 0, 5000); /* and calls fail fast no more */
    if (r.code != ORPC_OK)
        fail_msg("after the restart: %s (%s)", orpc_code_name(r.code), r.msg);
    assert_string_equal(r.who, "A2");
    assert_int_equal(stats_of(&P[0]).calls, 2);
    orpc_channel_unref(ch);
}

/* ====================================================================== */
/* c. a server drained (SIGTERM) under load                               */
/* ====================================================================== */

#define LOAD_THREADS 3

/* One calling thread's loop and what it got (read after the join). */
typedef struct load {
    orpc_channel *ch;
    int wfr; /* the calls' wait_for_ready */
    int64_t until;
    int ok, failed;
    int by_a, by_b; /* answered by "A", by "B" */
    char first_failure[160];
} load;

static void *load_loop(void *arg)
{
    load *l = arg;
    while (now_ms() < l->until) {
        outcome r = unary(l->ch, l->wfr, 5000);
        if (r.code == ORPC_OK) {
            l->ok++;
            l->by_a += strcmp(r.who, "A") == 0;
            l->by_b += strcmp(r.who, "B") == 0;
        } else if (l->failed++ == 0) {
            snprintf(l->first_failure, sizeof(l->first_failure), "%s (%s)",
                     orpc_code_name(r.code), r.msg);
        }
    }
    return NULL;
}

/* |a| and |b| behind "ipv4:a,b" with |lb|; LOAD_THREADS threads call for
 * 1 s (wait_for_ready as |wfr| says; with |retry|, with a retry policy for
 * UNAVAILABLE), and a gets SIGTERM 300 ms in: it must exit 0 within its
 * grace, and no call fail. */
static void drain_under_load(proc *a, proc *b, const char *lb, int wfr,
                             int retry)
{
    static const char *const slow[] = {"--delay-ms", "20", "--grace-ms", "3000",
                                       NULL};
    char cfg[512];
    orpc_channel *ch = start_pair(
        a, slow, b, slow, lb,
        retry ? retry_policy(cfg, sizeof(cfg), 3, "\"UNAVAILABLE\"", NULL)
              : NULL);
    outcome r = unary(ch, 1, 5000); /* connected */
    assert_int_equal(r.code, ORPC_OK);

    load l[LOAD_THREADS];
    pthread_t t[LOAD_THREADS];
    int64_t until = now_ms() + 1000;
    for (int i = 0; i < LOAD_THREADS; i++) {
        memset(&l[i], 0, sizeof(l[i]));
        l[i].ch = ch;
        l[i].wfr = wfr;
        l[i].until = until;
        assert_int_equal(pthread_create(&t[i], NULL, load_loop, &l[i]), 0);
    }
    sleep_ms(300);
    kill(a->pid, SIGTERM);
    int ok = 0, failed = 0, by_a = 0, by_b = 0;
    const char *why = NULL;
    for (int i = 0; i < LOAD_THREADS; i++) {
        pthread_join(t[i], NULL);
        ok += l[i].ok;
        failed += l[i].failed;
        by_a += l[i].by_a;
        by_b += l[i].by_b;
        if (l[i].failed && why == NULL)
            why = l[i].first_failure;
    }
    /* (asserting only now that the threads are done with |l|) */
    orpc_channel_unref(ch);
    proc_wait_exit(a, 10000);
    proc_kill(b);
    if (failed != 0)
        fail_msg("%s (wait_for_ready %d, retries %d): %d of %d calls failed "
                 "across the drain, the first: %s",
                 lb, wfr, retry, failed, ok + failed, why);
    print_message("%s (wait_for_ready %d, retries %d): %d calls, %d by A "
                  "(drained), %d by B\n",
                  lb, wfr, retry, ok, by_a, by_b);
    assert_int_equal(by_a + by_b, ok);
    assert_true(by_a > 0);
    assert_true(by_b > 0);
}

static void test_drain_under_load(void **state)
{
    (void)state;
    drain_under_load(&P[0], &P[1], "round_robin", 1, 0);
    drain_under_load(&P[2], &P[3], "pick_first", 1, 1);
    /* a graceful drain asks nothing of the client: without
     * wait_for_ready or retries no call fails either */
    drain_under_load(&P[4], &P[0], "pick_first", 0, 0);
}

/* A call that outlives the drain's grace period (300 ms, the handler
 * takes 10 s): the server ends it with the connection and exits 0; the
 * call ends UNAVAILABLE, and with a retry policy for UNAVAILABLE it is
 * retried on the second address. */
static void test_drain_grace_expires(void **state)
{
    (void)state;
    static const char *const slow[] = {"--delay-ms", "10000", "--grace-ms",
                                       "300", NULL};
    for (int retry = 0; retry <= 1; retry++) {
        proc *a = &P[2 * retry], *b = &P[2 * retry + 1];
        char cfg[512];
        orpc_channel *ch = start_pair(
            a, slow, b, NULL, NULL,
            retry ? retry_policy(cfg, sizeof(cfg), 3, "\"UNAVAILABLE\"", NULL)
                  : NULL);
        static pending call;
        pending_start(&call, ch, 0);
        wait_calls(a, 1);
        kill(a->pid, SIGTERM);
        outcome r = pending_wait(&call, 10000);
        orpc_channel_unref(ch);
        proc_wait_exit(a, 10000);
        if (r.code != (retry ? ORPC_OK : ORPC_UNAVAILABLE))
            fail_msg("past the grace%s: %s (%s)", retry ? ", retried" : "",
                     orpc_code_name(r.code), r.msg);
        assert_int_equal(stats_of(b).calls, retry);
        proc_kill(b);
    }
}

/* ====================================================================== */
/* d. retry throttling, e. pushback                                       */
/* ====================================================================== */

static const char *const FAIL_EVERY[] = {"--fail", "UNAVAILABLE",
                                         "--fail-every", NULL};

/* Under sustained failure (every call UNAVAILABLE, 3 attempts allowed),
 * the token bucket (maxTokens 10, tokenRatio 0.1: a failed attempt takes
 * a token, retries only while more than 5 are left) lets the first call
 * make 3 attempts (10 -> 7), the second 2 (7 -> 5), and from then on every
 * call makes 1: the server counts them. */
static void test_throttling(void **state)
{
    (void)state;
    proc_start(&P[0], "127.0.0.1", 0, "F", FAIL_EVERY);
    char cfg[512];
    orpc_channel *ch =
        channel(P[0].target, NULL,
                retry_policy(cfg, sizeof(cfg), 3, "\"UNAVAILABLE\"",
                             ", \"retryThrottling\": {\"maxTokens\": 10, "
                             "\"tokenRatio\": 0.1}"));
    static const long long want[] = {3, 2, 1, 1, 1, 1, 1, 1, 1, 1};
    long long before = 0;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        outcome r = unary(ch, 0, 5000);
        assert_int_equal(r.code, ORPC_UNAVAILABLE);
        long long calls = stats_of(&P[0]).calls;
        if (calls - before != want[i])
            fail_msg("call %zu: %lld attempts, want %lld", i + 1,
                     calls - before, want[i]);
        before = calls;
    }
    orpc_channel_unref(ch);
}

/* A pushback of 300 ms: the retry reaches the server no sooner (it
 * measures the gap between the two attempts), although the policy's own
 * backoff is 10 ms; a negative pushback: no retry, where the same policy
 * without it makes all 3 attempts. */
static void test_pushback(void **state)
{
    (void)state;
    static const char *const once[] = {
        "--fail", "UNAVAILABLE", "--fail-first", "1", "--pushback-ms",
        "300",    NULL};
    static const char *const never[] = {
        "--fail", "UNAVAILABLE", "--fail-every", "--pushback-ms", "-1", NULL};
    char cfg[512];
    retry_policy(cfg, sizeof(cfg), 3, "\"UNAVAILABLE\"", NULL);
    proc_start(&P[0], "127.0.0.1", 0, "P300", once);
    proc_start(&P[1], "127.0.0.1", 0, "PNEG", never);
    proc_start(&P[2], "127.0.0.1", 0, "F", FAIL_EVERY);

    orpc_channel *ch = channel(P[0].target, NULL, cfg);
    int64_t t0 = now_ms();
    outcome r = unary(ch, 0, 5000);
    int64_t took = now_ms() - t0;
    orpc_channel_unref(ch);
    if (r.code != ORPC_OK)
        fail_msg("pushback 300: %s (%s)", orpc_code_name(r.code), r.msg);
    stats s = stats_of(&P[0]);
    assert_int_equal(s.calls, 2);
    /* (the server's clock is in microseconds; the client's timers in
     * whole milliseconds, rounded down: 1 ms of slack) */
    if (s.gap_us < 299000 || took < 299)
        fail_msg("the retry came %lld us after the first attempt (the call "
                 "took %lld ms), want 300 ms at least",
                 s.gap_us, (long long)took);
    print_message("pushback 300 ms: the retry came %lld us after the first "
                  "attempt\n",
                  s.gap_us);

    ch = channel(P[1].target, NULL, cfg);
    r = unary(ch, 0, 5000);
    orpc_channel_unref(ch);
    assert_int_equal(r.code, ORPC_UNAVAILABLE);
    assert_int_equal(stats_of(&P[1]).calls, 1);

    ch = channel(P[2].target, NULL, cfg);
    r = unary(ch, 0, 5000);
    orpc_channel_unref(ch);
    assert_int_equal(r.code, ORPC_UNAVAILABLE);
    assert_int_equal(stats_of(&P[2]).calls, 3);
}

/* ====================================================================== */
/* f. round_robin over three processes                                    */
/* ====================================================================== */

/* Calls (wait_for_ready, 500 ms each) until one is answered by |name|, for
 * |ms| at most; every call meanwhile must succeed unless |may_fail|.
 * Returns the calls made. */
static int call_until(orpc_channel *ch, const char *name, int ms, int may_fail)
{
    int64_t end = now_ms() + ms;
    int n = 0;
    for (;;) {
        outcome r = unary(ch, 1, 500);
        n++;
        if (r.code == ORPC_OK && strcmp(r.who, name) == 0)
            return n;
        if (r.code != ORPC_OK && !may_fail)
            fail_msg("call %d waiting for %s: %s (%s)", n, name,
                     orpc_code_name(r.code), r.msg);
        if (now_ms() >= end)
            fail_msg("%s took no call in %d ms (%d calls)", name, ms, n);
        sleep_ms(5);
    }
}

/* |n| calls (wait_for_ready) through |ch|; the successes counted by who
 * answered in |by| (per name in |names|), the first failure in |why|.
 * Returns the failures. */
static int spread(orpc_channel *ch, int n, const char *const names[3],
                  int by[3], char *why, size_t len)
{
    int failed = 0;
    memset(by, 0, 3 * sizeof(int));
    for (int i = 0; i < n; i++) {
        outcome r = unary(ch, 1, 5000);
        if (r.code != ORPC_OK) {
            if (failed++ == 0)
                snprintf(why, len, "%s (%s)", orpc_code_name(r.code), r.msg);
            continue;
        }
        for (int k = 0; k < 3; k++)
            by[k] += strcmp(r.who, names[k]) == 0;
    }
    return failed;
}

/* Three servers on 127.0.0.1, .2 and .3 behind one ipv4: target with
 * round_robin: each takes some of 30 calls; one killed, the other two
 * take every call once the channel has seen the connection go (at most
 * the first call after the kill may fail: none is in flight); restarted
 * on its address and port, it takes calls again within a few seconds. */
static void test_round_robin_processes(void **state)
{
    (void)state;
    static const char *const ip[3] = {"127.0.0.1", "127.0.0.2", "127.0.0.3"};
    static const char *const names[3] = {"S1", "S2", "S3"};
    for (int k = 0; k < 3; k++)
        proc_start(&P[k], ip[k], 0, names[k], NULL);
    char target[160], why[160] = "";
    snprintf(target, sizeof(target), "ipv4:%s,%s,%s", P[0].target, P[1].target,
             P[2].target);
    orpc_channel *ch = channel(target, "round_robin", NULL);
    for (int k = 0; k < 3; k++) /* each connected */
        call_until(ch, names[k], 5000, 0);
    int by[3];
    assert_int_equal(spread(ch, 30, names, by, why, sizeof(why)), 0);
    print_message("30 calls over three: %d, %d, %d\n", by[0], by[1], by[2]);
    for (int k = 0; k < 3; k++)
        assert_true(by[k] > 0);

    int port = P[1].port;
    proc_kill(&P[1]);
    int failed = spread(ch, 30, names, by, why, sizeof(why));
    print_message("S2 killed: %d of the next 30 calls failed%s%s\n", failed,
                  failed ? ", the first: " : "", failed ? why : "");
    assert_in_range(failed, 0, 1);
    assert_int_equal(by[1], 0);
    assert_int_equal(spread(ch, 30, names, by, why, sizeof(why)), 0);
    assert_int_equal(by[1], 0);
    assert_true(by[0] > 0 && by[2] > 0);
    assert_int_equal(by[0] + by[2], 30);

    proc_start(&P[1], ip[1], port, "S2", NULL);
    int n = call_until(ch, "S2", 5000, 0);
    print_message("S2 restarted: it answered call %d after that\n", n);
    assert_int_equal(spread(ch, 30, names, by, why, sizeof(why)), 0);
    for (int k = 0; k < 3; k++)
        assert_true(by[k] > 0);
    orpc_channel_unref(ch);
}

/* ====================================================================== */
/* g. health during the drain                                             */
/* ====================================================================== */

typedef Grpc__Health__V1__HealthCheckRequest HealthReq;
typedef Grpc__Health__V1__HealthCheckResponse HealthResp;

/* The next status a Watch receives, or -1 when its stream ended. */
static int watch_next(Grpc__Health__V1__Health_Watch_Reader *w)
{
    HealthResp *resp = NULL;
    if (grpc__health__v1__health__client__watch__recv(w, &resp) != 1)
        return -1;
    int st = (int)resp->status;
    grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
    return st;
}

/* A server with a slow call in flight gets SIGTERM: a Watch on the same
 * connection receives NOT_SERVING while that call is still running (the
 * connection is up), then ends UNAVAILABLE; the call completes within the
 * grace period and the server exits 0. */
static void test_health_during_drain(void **state)
{
    (void)state;
    static const char *const slow[] = {"--delay-ms", "1500", "--grace-ms",
                                       "5000", NULL};
    proc_start(&P[0], "127.0.0.1", 0, "H", slow);
    orpc_channel *ch = channel(P[0].target, NULL, NULL);
    orpc_client *hc;
    assert_int_equal(orpc_client_new(&hc, &grpc__health__v1__health__orpc_desc,
                                     ch, NULL, NULL),
                     0);
    HealthReq req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = "";
    Grpc__Health__V1__Health_Watch_Reader *w = NULL;
    orpc_call_opts o = {.timeout_ms = 10000};
    assert_int_equal(grpc__health__v1__health__client__watch(hc, &req, &o, &w),
                     0);
    assert_int_equal(watch_next(w), ORPC_HEALTH_SERVING);

    static pending call;
    pending_start(&call, ch, 0);
    wait_calls(&P[0], 1);
    kill(P[0].pid, SIGTERM);
    int st = watch_next(w);
    int call_done = pending_is_done(&call);
    int after = watch_next(w); /* -1: the watch is over */
    orpc_status end = grpc__health__v1__health__client__watch__finish(w);
    orpc_code end_code = end.code;
    orpc_status_clear(&end);
    outcome r = pending_wait(&call, 10000);
    proc_wait_exit(&P[0], 10000);
    orpc_client_free(hc);
    orpc_channel_unref(ch);

    if (st != ORPC_HEALTH_NOT_SERVING)
        fail_msg("the watch got %d after SIGTERM, want NOT_SERVING", st);
    assert_false(call_done); /* the connection was still carrying it */
    assert_int_equal(after, -1);
    assert_int_equal(end_code, ORPC_UNAVAILABLE);
    if (r.code != ORPC_OK)
        fail_msg("the call in flight: %s (%s), want OK (drained)",
                 orpc_code_name(r.code), r.msg);
    assert_string_equal(r.who, "H");
}

/* ====================================================================== */
/* h. orpc-interop-client --service_config                                */
/* ====================================================================== */

/* Runs orpc-interop-client (in slot |p|, so the teardown can kill it) with
 * |args|, 30 s at most; its stderr goes to |err|.  Returns its exit code. */
static int interop_client(proc *p, const char *const *args, char *err,
                          size_t len)
{
    const char *argv[16] = {INTEROP_CLIENT};
    int argc = 1;
    for (int i = 0; args[i]; i++) {
        assert_true(argc < 15);
        argv[argc++] = args[i];
    }
    argv[argc] = NULL;
    int rd;
    p->pid = spawn_piped((char *const *)argv, 2, &rd);
    snprintf(p->name, sizeof(p->name), "client");
    read_until(rd, err, len, 0, 30000);
    close(rd);
    int ws = reap(p->pid, 30000);
    if (ws == -1)
        fail_msg("orpc-interop-client still runs after 30 s");
    p->pid = 0;
    if (!WIFEXITED(ws))
        fail_msg("orpc-interop-client: wait status 0x%x; stderr: %s", ws, err);
    return WEXITSTATUS(ws);
}

/* The flag's config reaches the channel: a server that fails the first
 * call UNAVAILABLE passes empty_unary with a retry policy given inline or
 * in a file (two attempts), and fails it without one (one attempt).  A
 * config the channel refuses, or a file that is not there: exit 2, the
 * fault named. */
static void test_interop_client_service_config(void **state)
{
    (void)state;
    proc *client = &P[NPROC - 1];
    char err[2048], port[32], cfg[512], file_flag[64];
    const char *bad[] = {
        "--server_port=1", "--test_case=empty_unary",
        "--service_config={\"methodConfig\": [{\"name\": [{}], "
        "\"retryPolicy\": {\"maxAttempts\": 1, \"initialBackoff\": \"1s\", "
        "\"maxBackoff\": \"1s\", \"backoffMultiplier\": 2, "
        "\"retryableStatusCodes\": [\"UNAVAILABLE\"]}}]}",
        NULL};
    assert_int_equal(interop_client(client, bad, err, sizeof(err)), 2);
    if (strstr(err, "methodConfig[0].retryPolicy.maxAttempts") == NULL)
        fail_msg("the refusal does not name the field: %s", err);
    bad[2] = "--service_config=@/nonexistent/orpc-config.json";
    assert_int_equal(interop_client(client, bad, err, sizeof(err)), 2);
    assert_non_null(strstr(err, "/nonexistent/orpc-config.json"));

    static const char *const fail_once[] = {"--fail", "UNAVAILABLE",
                                            "--fail-first", "1", NULL};
    retry_policy(cfg, sizeof(cfg), 3, "\"UNAVAILABLE\"", NULL);
    char path[] = "/tmp/orpc-process-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    ssize_t wrote = write(fd, cfg, strlen(cfg));
    close(fd);
    assert_int_equal(wrote, (ssize_t)strlen(cfg));
    snprintf(file_flag, sizeof(file_flag), "--service_config=@%s", path);
    char inline_flag[600];
    snprintf(inline_flag, sizeof(inline_flag), "--service_config=%s", cfg);
    const char *flags[] = {inline_flag, file_flag, NULL};
    for (int k = 0; k < 3; k++) {
        proc_start(&P[k], "127.0.0.1", 0, "S", fail_once);
        snprintf(port, sizeof(port), "--server_port=%d", P[k].port);
        const char *args[] = {"--server_host=127.0.0.1", port,
                              "--test_case=empty_unary", flags[k], NULL};
        int rc = interop_client(client, args, err, sizeof(err));
        long long calls = stats_of(&P[k]).calls;
        if (flags[k] != NULL && (rc != 0 || calls != 2)) {
            unlink(path);
            fail_msg("%s: exit %d, %lld attempts (want 0, 2); stderr: %s",
                     flags[k], rc, calls, err);
        }
        if (flags[k] == NULL &&
            (rc != 1 || calls != 1 || strstr(err, "UNAVAILABLE") == NULL)) {
            unlink(path);
            fail_msg("without the flag: exit %d, %lld attempts (want 1, 1); "
                     "stderr: %s",
                     rc, calls, err);
        }
    }
    unlink(path);
}

int main(void)
{
    atexit(kill_all);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill_mid_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_same_port, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_drain_under_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_grace_expires, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_throttling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pushback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_robin_processes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_health_during_drain, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_interop_client_service_config,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
