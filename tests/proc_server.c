/*
 * proc_server.c — a grpc.testing.TestService server run as a separate
 * process by rpc_process_test.c, which kills it (SIGKILL), restarts it on
 * the same address and drains it (SIGTERM) to test the client's call policy
 * (retries, throttling, pushback, load balancing, health) against real
 * processes.  Built only for the tests.
 *
 * Usage:
 *   proc_server --listen HOST:PORT [--name NAME] [--delay-ms N]
 *               [--fail CODE (--fail-first N | --fail-every)]
 *               [--pushback-ms VALUE] [--grace-ms N]
 *
 *   --listen       an IPv4 address and port; port 0 picks a free one.  Once
 *                  serving, the server prints "PORT <n>" on stdout as its
 *                  first and only line, and flushes it.
 *   --name         who answers: sent as the response header "x-proc-name"
 *                  and, in UnaryCall's response, as server_id.
 *   --delay-ms     UnaryCall and EmptyCall wait this long before answering
 *                  (on a worker thread, in 5 ms steps, ending early if the
 *                  call is cancelled).
 *   --fail         UnaryCall and EmptyCall fail with CODE (a name or a
 *                  number, orpc_code_parse()): the first N calls with
 *                  --fail-first N, every call with --fail-every.
 *   --pushback-ms  a failed call carries the trailer grpc-retry-pushback-ms
 *                  with VALUE, sent verbatim ("300", "-1").
 *   --grace-ms     on SIGTERM or SIGINT: orpc_server_shutdown() with this
 *                  grace period (default 5000), then exit 0.
 *
 * CacheableUnaryCall is the test's window into the server and is never
 * delayed or failed: its response has server_id = NAME and a payload of
 * text "calls=C gap_us=G", C the UnaryCall and EmptyCall calls begun so
 * far, G the microseconds between the last two of them (-1 before two).
 *
 * Signals: SIGTERM and SIGINT are blocked before any thread starts (the
 * server's threads inherit the mask), and the main thread takes them with
 * sigwait(): no signal handler runs, so nothing async-signal-unsafe can.
 * On Linux the server also asks for SIGKILL when its parent dies, so a test
 * that crashes leaves no server behind.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"

typedef Grpc__Testing__SimpleRequest SimpleRequest;
typedef Grpc__Testing__SimpleResponse SimpleResponse;

/* What the flags asked for; written before the server starts, read-only
 * after. */
static struct {
    const char *name;
    int64_t delay_ms;
    orpc_code fail_code;
    int64_t fail_first; /* -1: every call */
    const char *pushback;
} cfg = {.name = "proc", .fail_first = 0};

/* Locking theory: |lock| guards the counters below, which the handlers
 * (on the server's worker threads) update and the stats call reads.  It is
 * held only for those few assignments, never across a call into orpc. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t calls;       /* UnaryCall and EmptyCall calls begun */
static int64_t last_us;     /* when the last one began (monotonic) */
static int64_t gap_us = -1; /* between the last two */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Counts the call; returns its number (1 for the first). */
static int64_t count_call(void)
{
    int64_t t = now_us();
    pthread_mutex_lock(&lock);
    int64_t n = ++calls;
    if (n > 1)
        gap_us = t - last_us;
    last_us = t;
    pthread_mutex_unlock(&lock);
    return n;
}

/* The behaviour UnaryCall and EmptyCall share: counts the call, waits
 * --delay-ms, names the server; returns nonzero with |*st| set when the
 * call is to fail. */
static int behave(orpc_ctx *ctx, orpc_status *st)
{
    int64_t n = count_call();
    for (int64_t waited = 0;
         waited < cfg.delay_ms && !orpc_ctx_is_cancelled(ctx); waited += 5) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    if (cfg.fail_first < 0 || n <= cfg.fail_first) {
        if (cfg.pushback != NULL)
            (void)orpc_ctx_add_trailer(ctx, "grpc-retry-pushback-ms",
                                       cfg.pushback, strlen(cfg.pushback));
        *st = orpc_status_errorf(cfg.fail_code,
                                 "%s: planned failure of call %lld", cfg.name,
                                 (long long)n);
        return 1;
    }
    (void)orpc_ctx_add_header(ctx, "x-proc-name", cfg.name, strlen(cfg.name));
    return 0;
}

static orpc_status empty_call(orpc_ctx *ctx, const Grpc__Testing__Empty *req,
                              Grpc__Testing__Empty *resp, void *ud)
{
    (void)req;
    (void)resp;
    (void)ud;
    orpc_status st;
    return behave(ctx, &st) ? st : ORPC_STATUS_OK;
}

static orpc_status unary_call(orpc_ctx *ctx, const SimpleRequest *req,
                              SimpleResponse *resp, void *ud)
{
    (void)req;
    (void)ud;
    orpc_status st;
    if (behave(ctx, &st))
        return st;
    resp->server_id = (char *)cfg.name;
    return ORPC_STATUS_OK;
}

/* The stats call (see the file's top). */
static orpc_status cacheable_unary_call(orpc_ctx *ctx, const SimpleRequest *req,
                                        SimpleResponse *resp, void *ud)
{
    (void)req;
    (void)ud;
    pthread_mutex_lock(&lock);
    long long c = (long long)calls, g = (long long)gap_us;
    pthread_mutex_unlock(&lock);
    orpc_arena *a = orpc_ctx_arena(ctx);
    Grpc__Testing__Payload *p = orpc_arena_alloc(a, sizeof(*p));
    char *text = orpc_arena_alloc(a, 64);
    if (p == NULL || text == NULL)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
    grpc__testing__payload__init(p);
    int len = snprintf(text, 64, "calls=%lld gap_us=%lld", c, g);
    p->body.data = (uint8_t *)text;
    p->body.len = (size_t)len;
    resp->payload = p;
    resp->server_id = (char *)cfg.name;
    return ORPC_STATUS_OK;
}

static const Grpc__Testing__TestService_Handlers handlers = {
    .empty_call = empty_call,
    .unary_call = unary_call,
    .cacheable_unary_call = cacheable_unary_call,
};

static _Noreturn void usage(const char *why)
{
    fprintf(stderr,
            "proc_server: %s\n"
            "usage: proc_server --listen HOST:PORT [--name NAME] "
            "[--delay-ms N]\n"
            "       [--fail CODE (--fail-first N | --fail-every)] "
            "[--pushback-ms VALUE]\n"
            "       [--grace-ms N]\n",
            why);
    exit(2);
}

/* A whole non-negative decimal number, or usage(). */
static int64_t number(const char *flag, const char *v)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || *end || end == v || n < 0 || n > INT32_MAX) {
        char why[128];
        snprintf(why, sizeof(why), "bad %s %s", flag, v);
        usage(why);
    }
    return n;
}

int main(int argc, char **argv)
{
    const char *address = NULL;
    int64_t grace_ms = 5000;
    int have_fail = 0, have_count = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--fail-every") == 0) {
            cfg.fail_first = -1;
            have_count = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage("a flag without its value");
        const char *v = argv[++i];
        if (strcmp(f, "--listen") == 0) {
            address = v;
        } else if (strcmp(f, "--name") == 0) {
            cfg.name = v;
        } else if (strcmp(f, "--delay-ms") == 0) {
            cfg.delay_ms = number(f, v);
        } else if (strcmp(f, "--fail") == 0) {
            if (orpc_code_parse(&cfg.fail_code, v) != 0 ||
                cfg.fail_code == ORPC_OK)
                usage("bad --fail: a status code other than OK");
            have_fail = 1;
        } else if (strcmp(f, "--fail-first") == 0) {
            cfg.fail_first = number(f, v);
            have_count = 1;
        } else if (strcmp(f, "--pushback-ms") == 0) {
            cfg.pushback = v;
        } else if (strcmp(f, "--grace-ms") == 0) {
            grace_ms = number(f, v);
        } else {
            usage("unknown flag");
        }
    }
    if (address == NULL)
        usage("--listen is required");
    if (have_fail != have_count)
        usage("--fail goes with --fail-first or --fail-every");
#ifdef __linux__
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        return 1; /* the parent is already gone */
#endif

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0) {
        fprintf(stderr, "proc_server: cannot block SIGTERM\n");
        return 1;
    }

    orpc_server_opts o = {.plaintext = 1, .io_threads = 1};
    orpc_server *srv;
    orpc_error_detail d = {0};
    int port = 0;
    if (orpc_server_new(&srv, &o, NULL, &d) != 0) {
        fprintf(stderr, "proc_server %s: %s\n", cfg.name, d.message);
        return 1;
    }
    if (grpc__testing__test_service__server__register(srv, &handlers, NULL) !=
            0 ||
        orpc_server_listen(srv, address, &port, &d) != 0 ||
        orpc_server_start(srv) != 0) {
        fprintf(stderr, "proc_server %s: cannot serve on %s: %s\n", cfg.name,
                address, d.message);
        orpc_server_free(srv);
        return 1;
    }
    printf("PORT %d\n", port);
    fflush(stdout);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    int rc = orpc_server_shutdown(srv, grace_ms);
    if (rc == 0)
        rc = orpc_server_wait(srv);
    orpc_server_free(srv);
    if (rc != 0) {
        fprintf(stderr, "proc_server %s: shutdown: %s\n", cfg.name,
                orpc_strerror(rc));
        return 1;
    }
    return 0;
}
