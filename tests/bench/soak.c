/*
 * soak.c — orpc's soak driver (orpc-soak): mixed grpc.testing.TestService
 * traffic over TLS against one orpc server process for a fixed time, while
 * watching that process's memory and descriptors.  It owns the traffic mix,
 * the once-a-second sampling and the pass/fail verdict; soak.sh starts the
 * server (orpc-interop-server) and the certificates around it.
 *
 *   orpc-soak --target=HOST:PORT --ca=FILE --server_pid=PID [--seconds=N]
 *             [--warmup=N] [--server_name=NAME] [--unary_threads=N]
 *             [--stream_threads=N] [--chaos_threads=N] [--slow_threads=N]
 *             [--unary_rate=N] [--stream_rate=N] [--chaos_rate=N]
 *             [--churn_rate=N] [--churn_keep=N] [--rss_tol_pct=N]
 *             [--rss_tol_kib=N] [--fd_tol=N] [--drain_s=N]
 *
 * Why: a leak of a few hundred bytes per call or one descriptor per
 * connection passes every unit test and takes a server down after a week.
 * Only a long run of every kind of call, including the ones that end badly
 * (cancelled, timed out, stalled by a slow reader, a connection closed
 * under it), shows it as a slope.
 *
 * Design notes
 *
 * Threads, each with its own role and its own long-lived TLS channel:
 *   unary   UnaryCall, 256 bytes each way, paced at --unary_rate calls/s
 *           per thread; each call's latency is recorded.
 *   stream  in turn: server streaming (8 x 4 KiB), client streaming
 *           (8 x 4 KiB, checks the aggregated size) and bidi ping-pong (16
 *           round trips of 512 bytes, each round trip's latency recorded),
 *           --stream_rate calls/s per thread.
 *   chaos   in turn, --chaos_rate calls/s per thread: a server stream
 *           cancelled after 2 of its 64 paced messages; a bidi call
 *           cancelled after its first response; a client stream cancelled
 *           after 3 requests (all expect CANCELLED); a server stream and a
 *           bidi call whose handler sleeps 200 ms against a 50 ms deadline
 *           (expect DEADLINE_EXCEEDED).
 *   slow    a slow reader: a server stream of 32 x 64 KiB (2 MiB, twice
 *           the stream window) read one message per 25 ms, so HTTP/2 flow
 *           control holds the server's handler most of the time; expects
 *           every message and OK.  In turn with it, the same stream
 *           cancelled after 4 messages, and the same stream with a 300 ms
 *           deadline: both end while the handler is blocked by flow
 *           control (CANCELLED, DEADLINE_EXCEEDED).  Back to back, at most
 *           2 calls/s.
 *   churn   --churn_rate new channels per second, each a fresh TLS
 *           handshake proven by one UnaryCall; the newest --churn_keep stay
 *           open, older ones are closed.
 * The main thread samples once a second (absolute clock, no drift): the
 * server's VmRSS, Threads and /proc/PID/fd count, this process's VmRSS,
 * calls finished, their statuses and the p99 latency of the second's
 * unary calls and ping-pong round trips.
 *
 * Counting: every finished call adds one to a [kind][status] matrix of
 * atomics.  A status the kind does not expect, a reply of the wrong shape
 * or a call that cannot start counts as unexpected (and the first 20 are
 * printed).  Latencies go into a log-linear histogram of atomics (1 µs
 * steps below 64 µs, then 32 steps per power of two: under 3 % error)
 * that the sampler empties each second into the run's total.
 *
 * Verdict (exit 0 only when all hold): after the warm-up the server is
 * flat — RSS at the end <= RSS at the end of the warm-up x (1 +
 * rss_tol_pct/100) + rss_tol_kib, descriptors at the end <= warm-up
 * descriptors + fd_tol, where "at the end of the warm-up" and "at the
 * end" are each the median of 10 one-second samples (the last 10 of the
 * warm-up, the last 10 of the run), since single samples land anywhere in
 * the allocator's sawtooth; once every channel is closed the server's
 * descriptors fall back to at most what it had before the traffic (within
 * --drain_s); no unexpected outcome; every kind of call ran.  Exit 1 when
 * a check fails (or the server vanished), 2 on bad usage, 3 when the
 * watchdog (seconds + 120 s) fires.  The summary also gives a
 * least-squares slope of RSS and descriptors after the warm-up, for
 * information: over a short run it is mostly the noise of allocations
 * coming and going.
 *
 * Everything is bounded: every call has a deadline, every receive loop a
 * count, every thread stops when the run's time is up.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"

typedef Grpc__Testing__SimpleRequest SimpleRequest;
typedef Grpc__Testing__SimpleResponse SimpleResponse;
typedef Grpc__Testing__StreamingOutputCallRequest OutRequest;
typedef Grpc__Testing__StreamingOutputCallResponse OutResponse;
typedef Grpc__Testing__StreamingInputCallRequest InRequest;
typedef Grpc__Testing__StreamingInputCallResponse InResponse;
typedef Grpc__Testing__ResponseParameters ResponseParameters;
typedef Grpc__Testing__Payload Payload;
typedef Grpc__Testing__TestService_StreamingOutputCall_Reader OutReader;
typedef Grpc__Testing__TestService_StreamingInputCall_Writer InWriter;
typedef Grpc__Testing__TestService_FullDuplexCall_Stream Duplex;

/* ---- settings ------------------------------------------------------------ */

static const char *target, *ca_file, *server_name = "localhost";
static long server_pid = -1;
static long seconds = 600, warmup = -1;
static long unary_threads = 2, stream_threads = 1, chaos_threads = 1,
            slow_threads = 1;
static long unary_rate = 500, stream_rate = 60, chaos_rate = 40, churn_rate = 5,
            churn_keep = 4;
static long rss_tol_pct = 10, rss_tol_kib = 4096, fd_tol = 8, drain_s = 10;

#define CALL_TIMEOUT_MS 10000   /* deadline of calls meant to succeed */
#define SHORT_DEADLINE_MS 50    /* the deadline calls ... */
#define HANDLER_SLEEP_US 200000 /* ... against a handler this slow */
#define SLOW_MESSAGES 32
#define SLOW_SIZE (64 * 1024)
#define SLOW_PAUSE_MS 25
#define SLOW_DEADLINE_MS 300 /* well before the 32 x 25 ms it would take */
#define MAX_PARAMS 64
#define MAX_THREADS 64

/* ---- time ---------------------------------------------------------------- */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us)
{
    if (us <= 0)
        return;
    struct timespec ts = {.tv_sec = us / 1000000,
                          .tv_nsec = (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int64_t run_start_us;
static atomic_int stopping;

static double run_t(void)
{
    return (double)(now_us() - run_start_us) / 1e6;
}

/* Paces a loop at |rate| iterations per second (0: unpaced).  Returns 0 to
 * go on, -1 once the run is stopping.  A loop that falls more than a second
 * behind starts afresh rather than bursting to catch up. */
typedef struct pacer {
    int64_t next_us;
    int64_t period_us;
} pacer;

static void pacer_init(pacer *p, long rate)
{
    p->period_us = rate > 0 ? 1000000 / rate : 0;
    p->next_us = now_us();
}

static int pace(pacer *p)
{
    if (atomic_load(&stopping))
        return -1;
    if (p->period_us == 0)
        return 0;
    int64_t now = now_us();
    if (now - p->next_us > 1000000)
        p->next_us = now;
    /* Sleep in slices so a stop is noticed within 100 ms. */
    while (now < p->next_us) {
        int64_t d = p->next_us - now;
        sleep_us(d < 100000 ? d : 100000);
        if (atomic_load(&stopping))
            return -1;
        now = now_us();
    }
    p->next_us += p->period_us;
    return 0;
}

/* ---- counters ------------------------------------------------------------ */

enum kind {
    K_UNARY,
    K_SERVER_STREAM,
    K_CLIENT_STREAM,
    K_BIDI,
    K_SLOW_READER,
    K_CANCEL_SERVER_STREAM,
    K_CANCEL_BIDI,
    K_CANCEL_CLIENT_STREAM,
    K_DEADLINE_SERVER_STREAM,
    K_DEADLINE_BIDI,
    K_CANCEL_SLOW_READER,
    K_DEADLINE_SLOW_READER,
    K_CHURN,
    K_COUNT
};

static const char *const kind_names[K_COUNT] = {
    [K_UNARY] = "unary",
    [K_SERVER_STREAM] = "server_stream",
    [K_CLIENT_STREAM] = "client_stream",
    [K_BIDI] = "bidi_pingpong",
    [K_SLOW_READER] = "slow_reader",
    [K_CANCEL_SERVER_STREAM] = "cancel_server_stream",
    [K_CANCEL_BIDI] = "cancel_bidi",
    [K_CANCEL_CLIENT_STREAM] = "cancel_client_stream",
    [K_DEADLINE_SERVER_STREAM] = "deadline_server_stream",
    [K_DEADLINE_BIDI] = "deadline_bidi",
    [K_CANCEL_SLOW_READER] = "cancel_slow_reader",
    [K_DEADLINE_SLOW_READER] = "deadline_slow_reader",
    [K_CHURN] = "churn_tls_handshake",
};

/* Finished calls by kind and status; unexpected outcomes by kind. */
static atomic_uint_fast64_t n_status[K_COUNT][ORPC_CODE_COUNT];
static atomic_uint_fast64_t n_unexpected[K_COUNT];
static atomic_uint_fast64_t n_channel_logs;
static atomic_uint n_printed;

static void report(enum kind k, const char *fmt, ...) ORPC_PRINTF(2, 3);

/* Counts an unexpected outcome of a |k| call; prints the first 20. */
static void report(enum kind k, const char *fmt, ...)
{
    atomic_fetch_add(&n_unexpected[k], 1);
    if (atomic_fetch_add(&n_printed, 1) >= 20)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    fprintf(stderr, "orpc-soak: t=%.1f unexpected: %s: %s\n", run_t(),
            kind_names[k], buf);
}

/* Records the end of a |k| call with |st| (then cleared), which should be
 * |want|.  Returns 0 when it was. */
static int finished(enum kind k, orpc_status *st, orpc_code want)
{
    int code = (int)st->code;
    if (code < 0 || code >= ORPC_CODE_COUNT)
        code = ORPC_UNKNOWN;
    atomic_fetch_add(&n_status[k][code], 1);
    int rc = 0;
    if (st->code != want) {
        report(k, "status %s (%s), expected %s", orpc_code_name(code),
               st->message ? st->message : "no message",
               orpc_code_name((int)want));
        rc = -1;
    }
    orpc_status_clear(st);
    return rc;
}

/* ---- latency histogram --------------------------------------------------- */

#define HIST_LINEAR 64
#define HIST_SUB 32 /* steps per power of two above HIST_LINEAR */
#define HIST_N (HIST_LINEAR + 40 * HIST_SUB)

static atomic_uint_fast64_t hist_now[HIST_N]; /* this second's */
static uint64_t hist_all[HIST_N];             /* the run's (sampler only) */

static int hist_index(uint64_t us)
{
    if (us < HIST_LINEAR)
        return (int)us;
    int e = 63 - __builtin_clzll(us); /* >= 6 */
    int i = HIST_LINEAR + (e - 6) * HIST_SUB +
            (int)((us >> (e - 5)) & (HIST_SUB - 1));
    return i < HIST_N ? i : HIST_N - 1;
}

/* The smallest value of bucket |i|. */
static uint64_t hist_value(int i)
{
    if (i < HIST_LINEAR)
        return (uint64_t)i;
    int e = (i - HIST_LINEAR) / HIST_SUB + 6;
    uint64_t sub = (uint64_t)((i - HIST_LINEAR) % HIST_SUB);
    return ((uint64_t)HIST_SUB + sub) << (e - 5);
}

static void latency(int64_t us)
{
    atomic_fetch_add(&hist_now[hist_index(us < 0 ? 0 : (uint64_t)us)], 1);
}

/* The |q| quantile of |h|, or -1 when it is empty. */
static int64_t quantile(const uint64_t *h, double q)
{
    uint64_t total = 0;
    for (int i = 0; i < HIST_N; i++)
        total += h[i];
    if (total == 0)
        return -1;
    uint64_t rank = (uint64_t)(q * (double)total);
    if (rank >= total)
        rank = total - 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_N; i++) {
        seen += h[i];
        if (seen > rank)
            return (int64_t)hist_value(i);
    }
    return (int64_t)hist_value(HIST_N - 1);
}

/* ---- channels ------------------------------------------------------------ */

static void on_channel_log(orpc_log_level level, const char *msg, void *ud)
{
    (void)ud;
    if (level > ORPC_LOG_WARN)
        return;
    if (atomic_fetch_add(&n_channel_logs, 1) < 20)
        fprintf(stderr, "orpc-soak: t=%.1f [orpc %s] %s\n", run_t(),
                level == ORPC_LOG_ERROR ? "error" : "warn", msg);
}

/* A TLS channel to the target and a TestService client on it.  Returns 0,
 * or an ORPC_E* code. */
static int open_client(orpc_client **out)
{
    orpc_tls_opts tls = {0};
    tls.ca_file = ca_file;
    tls.server_name = server_name;
    orpc_channel_opts co = {0};
    co.tls = &tls;
    co.connect_timeout_ms = 5000;
    co.log = on_channel_log;
    orpc_channel *ch;
    int rc = orpc_channel_new(&ch, target, &co, NULL, NULL);
    if (rc != 0)
        return rc;
    rc =
        orpc_client_new(out, &grpc__testing__test_service__orpc_desc, ch, NULL, NULL);
    orpc_channel_unref(ch); /* the client holds its own reference */
    return rc;
}

/* ---- requests ------------------------------------------------------------ */

/* Payload bodies point here; only ever read. */
static uint8_t zero_buf[SLOW_SIZE];

static void payload_init(Payload *p, size_t len)
{
    grpc__testing__payload__init(p);
    p->type = GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE;
    p->body.data = zero_buf;
    p->body.len = len;
}

/* A StreamingOutputCallRequest on the caller's stack. */
typedef struct out_req {
    OutRequest req;
    ResponseParameters params[MAX_PARAMS];
    ResponseParameters *pp[MAX_PARAMS];
    Payload payload;
} out_req;

/* Asks for |n| responses of |size| bytes, each |interval_us| after the
 * previous, with a request payload of |payload_len| bytes. */
static void out_req_init(out_req *o, size_t n, int32_t size,
                         int32_t interval_us, size_t payload_len)
{
    grpc__testing__streaming_output_call_request__init(&o->req);
    o->req.response_type = GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE;
    for (size_t i = 0; i < n; i++) {
        grpc__testing__response_parameters__init(&o->params[i]);
        o->params[i].size = size;
        o->params[i].interval_us = interval_us;
        o->pp[i] = &o->params[i];
    }
    o->req.n_response_parameters = n;
    o->req.response_parameters = o->pp;
    if (payload_len) {
        payload_init(&o->payload, payload_len);
        o->req.payload = &o->payload;
    }
}

static orpc_call_opts call_opts(int64_t timeout_ms)
{
    orpc_call_opts o = {0};
    o.timeout_ms = timeout_ms;
    return o;
}

static size_t body_len(const Payload *p)
{
    return p ? p->body.len : 0;
}

/* ---- the calls ----------------------------------------------------------- */

/* One UnaryCall of 256 bytes each way; |k| is K_UNARY or K_CHURN.  Records
 * its latency when |timed|. */
static void do_unary(orpc_client *c, enum kind k, int timed)
{
    SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Payload p;
    payload_init(&p, 256);
    req.response_type = GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE;
    req.response_size = 256;
    req.payload = &p;
    SimpleResponse *resp = NULL;
    orpc_call_opts o = call_opts(CALL_TIMEOUT_MS);
    int64_t t0 = now_us();
    orpc_status st =
        grpc__testing__test_service__client__unary_call(c, &req, &resp, &o);
    if (st.code == ORPC_OK && timed)
        latency(now_us() - t0);
    if (finished(k, &st, ORPC_OK) == 0 && body_len(resp->payload) != 256)
        report(k, "response payload of %zu bytes, expected 256",
               body_len(resp->payload));
    if (resp)
        grpc__testing__simple_response__free_unpacked(resp, NULL);
}

/* Reads at most |n| + 1 responses of |r|, each expected of |size| bytes,
 * pausing |pause_ms| after each; then finishes with OK expected. */
static void read_output(enum kind k, OutReader *r, size_t n, size_t size,
                        int pause_ms)
{
    OutResponse *m;
    size_t got = 0;
    int rc;
    while (
        got <= n &&
        (rc = grpc__testing__test_service__client__streaming_output_call__recv(
             r, &m)) == 1) {
        if (body_len(m->payload) != size)
            report(k, "response %zu of %zu bytes, expected %zu", got,
                   body_len(m->payload), size);
        grpc__testing__streaming_output_call_response__free_unpacked(m, NULL);
        got++;
        if (pause_ms)
            sleep_us((int64_t)pause_ms * 1000);
    }
    orpc_status st =
        grpc__testing__test_service__client__streaming_output_call__finish(r);
    if (finished(k, &st, ORPC_OK) == 0 && got != n)
        report(k, "%zu responses, expected %zu", got, n);
}

static void do_server_stream(orpc_client *c, enum kind k, size_t n,
                             int32_t size, int pause_ms, int64_t timeout_ms)
{
    out_req o;
    out_req_init(&o, n, size, 0, 0);
    orpc_call_opts co = call_opts(timeout_ms);
    OutReader *r;
    int rc = grpc__testing__test_service__client__streaming_output_call(
        c, &o.req, &co, &r);
    if (rc != 0) {
        report(k, "cannot start: %s", orpc_strerror(rc));
        return;
    }
    read_output(k, r, n, (size_t)size, pause_ms);
}

static void do_client_stream(orpc_client *c)
{
    enum kind k = K_CLIENT_STREAM;
    orpc_call_opts co = call_opts(CALL_TIMEOUT_MS);
    InWriter *w;
    int rc =
        grpc__testing__test_service__client__streaming_input_call(c, &co, &w);
    if (rc != 0) {
        report(k, "cannot start: %s", orpc_strerror(rc));
        return;
    }
    InRequest m = GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
    Payload p;
    payload_init(&p, 4096);
    m.payload = &p;
    for (int i = 0; i < 8; i++)
        if (grpc__testing__test_service__client__streaming_input_call__send(
                w, &m) != 0)
            break; /* the call ended early: finish says why */
    InResponse *resp = NULL;
    orpc_status st =
        grpc__testing__test_service__client__streaming_input_call__finish(
            w, &resp);
    if (finished(k, &st, ORPC_OK) == 0 &&
        resp->aggregated_payload_size != 8 * 4096)
        report(k, "aggregated size %d, expected %d",
               (int)resp->aggregated_payload_size, 8 * 4096);
    if (resp)
        grpc__testing__streaming_input_call_response__free_unpacked(resp, NULL);
}

/* Ends a bidi call that should have ended with |want|. */
static void finish_duplex(enum kind k, Duplex *s, orpc_code want)
{
    orpc_status st =
        grpc__testing__test_service__client__full_duplex_call__finish(s);
    finished(k, &st, want);
}

static void do_pingpong(orpc_client *c)
{
    enum kind k = K_BIDI;
    orpc_call_opts co = call_opts(CALL_TIMEOUT_MS);
    Duplex *s;
    int rc = grpc__testing__test_service__client__full_duplex_call(c, &co, &s);
    if (rc != 0) {
        report(k, "cannot start: %s", orpc_strerror(rc));
        return;
    }
    out_req o;
    out_req_init(&o, 1, 512, 0, 512);
    OutResponse *m;
    for (int i = 0; i < 16; i++) {
        int64_t t0 = now_us();
        if (grpc__testing__test_service__client__full_duplex_call__send(
                s, &o.req) != 0 ||
            grpc__testing__test_service__client__full_duplex_call__recv(
                s, &m) != 1) {
            orpc_status st =
                grpc__testing__test_service__client__full_duplex_call__finish(
                    s);
            if (finished(k, &st, ORPC_OK) == 0)
                report(k, "stream ended after %d round trips of 16", i);
            return;
        }
        latency(now_us() - t0);
        if (body_len(m->payload) != 512)
            report(k, "response of %zu bytes, expected 512",
                   body_len(m->payload));
        grpc__testing__streaming_output_call_response__free_unpacked(m, NULL);
    }
    rc = grpc__testing__test_service__client__full_duplex_call__close_send(s);
    if (rc == 0 &&
        (rc = grpc__testing__test_service__client__full_duplex_call__recv(
             s, &m)) == 1) {
        grpc__testing__streaming_output_call_response__free_unpacked(m, NULL);
        report(k, "a response after the 16th");
    }
    finish_duplex(k, s, ORPC_OK);
}

/* A server stream of 64 messages 2 ms apart, cancelled after 2. */
static void do_cancel_server_stream(orpc_client *c)
{
    enum kind k = K_CANCEL_SERVER_STREAM;
    out_req o;
    out_req_init(&o, 64, 1024, 2000, 0);
    orpc_call_opts co = call_opts(CALL_TIMEOUT_MS);
    OutReader *r;
    int rc = grpc__testing__test_service__client__streaming_output_call(
        c, &o.req, &co, &r);
    if (rc != 0) {
        report(k, "cannot start: %s", orpc_strerror(rc));
        return;
    }
    OutResponse *m;
    for (int i = 0; i < 2; i++) {
        rc = grpc__testing__test_service__client__streaming_output_call__recv(
            r, &m);
        if (rc != 1) {
            report(k, "recv %d of 2 before cancelling: %d", i, rc);
            break;
        }
        grpc__testing__streaming_output_call_response__free_unpacked(m, NULL);
    }
    grpc__testing__test_service__client__streaming_output_call__cancel(r);
    orpc_status st =
        grpc__testing__test_service__client__streaming_output_call__finish(r);
    finished(k, &st, ORPC_CANCELLED);
}

/* A bidi call cancelled after its first response. */
static void do_cancel_bidi(orpc_client *c)
{
    enum kind k = K_CANCEL_BIDI;
    orpc_call_opts co = call_opts(CALL_TIMEOUT_MS);
    Duplex *s;
    int rc = grpc__testing__test_service__client__full_duplex_call(c, &co, &s);
    if (rc != 0) {
        report(k, "cannot start: %s", orpc_strerror(rc));
        return;
    }
    out_req o;
    out_req_init(&o, 1, 1024, 0, 1024);
    OutResponse *m;
    if (grpc__testing__test_service__client__full_duplex_call__send(
            s, &o.req) == 0 &&
        grpc__testing__test_service__client__full_duplex_call__recv(s, &m) == 1)
        grpc__testing__streaming_output_call_response__free_unpacked(m, NULL);
    else
        report(k, "no first response before cancelling");
    grpc__testing__test_service__client__full_duplex_call__cancel(s);
    finish_duplex(k, s, ORPC_CANCELLED);
}

/* A client stream cancelled after 3 requests. */
static void do_cancel_client_stream(orpc_client *c)
{
    enum kind k = K_CANCEL_CLIENT_STREAM;
    orpc_call_opts co = call_opts(CALL_TIMEOUT_MS);
    InWriter *w;
    int rc =
        grpc__testing__test_service__client__streaming_input_call(c, &co, &w);
    if (rc != 0) {
        report(k, "cannot start: %s", orpc_strerror(rc));
        return;
    }
    InRequest m = GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
    Payload p;
    payload_init(&p, 1024);
    m.payload = &p;
    for (int i = 0; i < 3; i++)
        if (grpc__testing__test_service__client__streaming_input_call__send(
                w, &m) != 0)
            break;
    grpc__testing__test_service__client__streaming_input_call__cancel(w);
    InResponse *resp = NULL;
    orpc_status st =
        grpc__testing__test_service__client__streaming_input_call__finish(
            w, &resp);
    if (finished(k, &st, ORPC_CANCELLED) != 0 && resp)
        report(k, "a response from a cancelled call");
    if (resp)
        grpc__testing__streaming_input_call_response__free_unpacked(resp, NULL);
}

/* A server stream whose handler sleeps past the call's deadline. */
static void do_deadline_server_stream(orpc_client *c)
{
    enum kind k = K_DEADLINE_SERVER_STREAM;
    out_req o;
    out_req_init(&o, 1, 1024, HANDLER_SLEEP_US, 0);
    orpc_call_opts co = call_opts(SHORT_DEADLINE_MS);
    OutReader *r;
    int rc = grpc__testing__test_service__client__streaming_output_call(
        c, &o.req, &co, &r);
    if (rc != 0) {
        report(k, "cannot start: %s", orpc_strerror(rc));
        return;
    }
    OutResponse *m;
    rc =
        grpc__testing__test_service__client__streaming_output_call__recv(r, &m);
    if (rc == 1) {
        grpc__testing__streaming_output_call_response__free_unpacked(m, NULL);
        report(k, "a response before the deadline");
    }
    orpc_status st =
        grpc__testing__test_service__client__streaming_output_call__finish(r);
    finished(k, &st, ORPC_DEADLINE_EXCEEDED);
}

/* A bidi call whose handler sleeps past the call's deadline. */
static void do_deadline_bidi(orpc_client *c)
{
    enum kind k = K_DEADLINE_BIDI;
    orpc_call_opts co = call_opts(SHORT_DEADLINE_MS);
    Duplex *s;
    int rc = grpc__testing__test_service__client__full_duplex_call(c, &co, &s);
    if (rc != 0) {
        report(k, "cannot start: %s", orpc_strerror(rc));
        return;
    }
    out_req o;
    out_req_init(&o, 1, 1024, HANDLER_SLEEP_US, 64);
    OutResponse *m;
    /* A failed send is fine: the deadline may have passed already. */
    (void)grpc__testing__test_service__client__full_duplex_call__send(s,
                                                                      &o.req);
    if (grpc__testing__test_service__client__full_duplex_call__recv(s, &m) ==
        1) {
        grpc__testing__streaming_output_call_response__free_unpacked(m, NULL);
        report(k, "a response before the deadline");
    }
    finish_duplex(k, s, ORPC_DEADLINE_EXCEEDED);
}

/* A slow reader that stops early, while the server's handler is held by
 * flow control: reads at most |reads| messages SLOW_PAUSE_MS apart, then
 * cancels (|want| CANCELLED), or meets its |timeout_ms| deadline first
 * (|want| DEADLINE_EXCEEDED). */
static void do_slow_abort(orpc_client *c, enum kind k, int reads,
                          int64_t timeout_ms, orpc_code want)
{
    out_req o;
    out_req_init(&o, SLOW_MESSAGES, SLOW_SIZE, 0, 0);
    orpc_call_opts co = call_opts(timeout_ms);
    OutReader *r;
    int rc = grpc__testing__test_service__client__streaming_output_call(
        c, &o.req, &co, &r);
    if (rc != 0) {
        report(k, "cannot start: %s", orpc_strerror(rc));
        return;
    }
    OutResponse *m;
    for (int i = 0; i < reads && i < SLOW_MESSAGES; i++) {
        rc = grpc__testing__test_service__client__streaming_output_call__recv(
            r, &m);
        if (rc != 1)
            break;
        grpc__testing__streaming_output_call_response__free_unpacked(m, NULL);
        sleep_us((int64_t)SLOW_PAUSE_MS * 1000);
    }
    if (want == ORPC_CANCELLED)
        grpc__testing__test_service__client__streaming_output_call__cancel(r);
    orpc_status st =
        grpc__testing__test_service__client__streaming_output_call__finish(r);
    finished(k, &st, want);
}

/* ---- the threads --------------------------------------------------------- */

typedef enum role { R_UNARY, R_STREAM, R_CHAOS, R_SLOW, R_CHURN } role;

typedef struct worker {
    pthread_t tid;
    role role;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    orpc_client *c = NULL;
    if (w->role != R_CHURN) {
        static const enum kind first[] = {K_UNARY, K_BIDI, K_CANCEL_BIDI,
                                          K_SLOW_READER};
        int rc = open_client(&c);
        if (rc != 0) {
            report(first[w->role], "cannot open a channel: %s",
                   orpc_strerror(rc));
            return NULL;
        }
    }
    pacer p;
    /* The ring of churned clients, oldest first. */
    orpc_client *ring[MAX_THREADS];
    long nring = 0;
    switch (w->role) {
    case R_UNARY:
        pacer_init(&p, unary_rate);
        while (pace(&p) == 0)
            do_unary(c, K_UNARY, 1);
        break;
    case R_STREAM:
        pacer_init(&p, stream_rate);
        for (unsigned i = 0; pace(&p) == 0; i++) {
            switch (i % 3) {
            case 0:
                do_server_stream(c, K_SERVER_STREAM, 8, 4096, 0,
                                 CALL_TIMEOUT_MS);
                break;
            case 1:
                do_client_stream(c);
                break;
            default:
                do_pingpong(c);
            }
        }
        break;
    case R_CHAOS:
        pacer_init(&p, chaos_rate);
        for (unsigned i = 0; pace(&p) == 0; i++) {
            switch (i % 5) {
            case 0:
                do_cancel_server_stream(c);
                break;
            case 1:
                do_cancel_bidi(c);
                break;
            case 2:
                do_cancel_client_stream(c);
                break;
            case 3:
                do_deadline_server_stream(c);
                break;
            default:
                do_deadline_bidi(c);
            }
        }
        break;
    case R_SLOW:
        /* Back to back while calls take their ~0.8 s; the pace only
         * bounds a loop of calls that fail at once. */
        pacer_init(&p, 2);
        for (unsigned i = 0; pace(&p) == 0; i++) {
            switch (i % 3) {
            case 0:
                do_server_stream(c, K_SLOW_READER, SLOW_MESSAGES, SLOW_SIZE,
                                 SLOW_PAUSE_MS, 4 * CALL_TIMEOUT_MS);
                break;
            case 1:
                do_slow_abort(c, K_CANCEL_SLOW_READER, 4, CALL_TIMEOUT_MS,
                              ORPC_CANCELLED);
                break;
            default:
                do_slow_abort(c, K_DEADLINE_SLOW_READER, SLOW_MESSAGES,
                              SLOW_DEADLINE_MS, ORPC_DEADLINE_EXCEEDED);
            }
        }
        break;
    case R_CHURN:
        pacer_init(&p, churn_rate);
        while (pace(&p) == 0) {
            orpc_client *nc;
            int rc = open_client(&nc);
            if (rc != 0) {
                report(K_CHURN, "cannot open a channel: %s", orpc_strerror(rc));
                continue;
            }
            do_unary(nc, K_CHURN, 0);
            if (nring == churn_keep) {
                orpc_client_free(ring[0]);
                memmove(ring, ring + 1, (size_t)(nring - 1) * sizeof(*ring));
                nring--;
            }
            ring[nring++] = nc;
        }
        break;
    }
    for (long i = 0; i < nring; i++)
        orpc_client_free(ring[i]);
    orpc_client_free(c);
    return NULL;
}

/* ---- sampling ------------------------------------------------------------ */

typedef struct sample {
    long t;
    long rss_kib; /* server VmRSS */
    long fds;     /* server descriptors */
    long threads; /* server threads */
    long cli_kib; /* this process's VmRSS */
} sample;

/* Reads VmRSS and Threads of /proc/|pid|/status ("self" when |pid| < 0).
 * Returns 0, or -1 when the process is gone. */
static int read_status(long pid, long *rss_kib, long *threads)
{
    char path[64];
    if (pid < 0)
        snprintf(path, sizeof(path), "/proc/self/status");
    else
        snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[256];
    *rss_kib = -1;
    if (threads)
        *threads = -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            *rss_kib = strtol(line + 6, NULL, 10);
        else if (threads && strncmp(line, "Threads:", 8) == 0)
            *threads = strtol(line + 8, NULL, 10);
    }
    fclose(f);
    return *rss_kib < 0 ? -1 : 0;
}

static long count_fds(long pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 1000000)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int take_sample(long t, sample *s)
{
    s->t = t;
    if (read_status(server_pid, &s->rss_kib, &s->threads) != 0)
        return -1;
    s->fds = count_fds(server_pid);
    if (s->fds < 0)
        return -1;
    if (read_status(-1, &s->cli_kib, NULL) != 0)
        s->cli_kib = -1;
    return 0;
}

/* Sums n_status over kinds into |by_code|; returns calls finished. */
static uint64_t status_totals(uint64_t by_code[ORPC_CODE_COUNT],
                              uint64_t *unexpected)
{
    uint64_t calls = 0;
    *unexpected = 0;
    for (int c = 0; c < ORPC_CODE_COUNT; c++)
        by_code[c] = 0;
    for (int k = 0; k < K_COUNT; k++) {
        for (int c = 0; c < ORPC_CODE_COUNT; c++) {
            uint64_t v = atomic_load(&n_status[k][c]);
            by_code[c] += v;
            calls += v;
        }
        *unexpected += atomic_load(&n_unexpected[k]);
    }
    return calls;
}

static void print_header(void)
{
    printf("#    t  rss_kib   fds  thr  cli_kib  calls/s  p99_us      ok "
           "cancelled  deadline  unexpected  other\n");
}

/* Prints the line of second |s| given the totals then and a second ago. */
static void print_line(const sample *s, const uint64_t now[ORPC_CODE_COUNT],
                       const uint64_t prev[ORPC_CODE_COUNT], uint64_t calls,
                       uint64_t unexpected, int64_t p99)
{
    char other[256] = "-";
    size_t off = 0;
    for (int c = 0; c < ORPC_CODE_COUNT; c++) {
        if (c == ORPC_OK || c == ORPC_CANCELLED || c == ORPC_DEADLINE_EXCEEDED)
            continue;
        uint64_t d = now[c] - prev[c];
        if (d && off < sizeof(other) - 1) {
            int w = snprintf(other + off, sizeof(other) - off, "%s%s=%" PRIu64,
                             off ? "," : "", orpc_code_name(c), d);
            if (w > 0)
                off += (size_t)w;
        }
    }
    char p99s[24];
    if (p99 < 0)
        snprintf(p99s, sizeof(p99s), "-");
    else
        snprintf(p99s, sizeof(p99s), "%" PRId64, p99);
    printf("%6ld %8ld %5ld %4ld %8ld %8" PRIu64 " %7s %7" PRIu64 " %9" PRIu64
           " %9" PRIu64 " %11" PRIu64 "  %s\n",
           s->t, s->rss_kib, s->fds, s->threads, s->cli_kib, calls, p99s,
           now[ORPC_OK] - prev[ORPC_OK],
           now[ORPC_CANCELLED] - prev[ORPC_CANCELLED],
           now[ORPC_DEADLINE_EXCEEDED] - prev[ORPC_DEADLINE_EXCEEDED],
           unexpected, other);
    fflush(stdout);
}

/* A least-squares line through the samples after the warm-up: its slope
 * tells a steady leak from noise, which the end-vs-warm-up check cannot. */
typedef struct fit {
    double n, sx, sy, sxx, sxy;
} fit;

static void fit_add(fit *f, double x, double y)
{
    f->n += 1;
    f->sx += x;
    f->sy += y;
    f->sxx += x * x;
    f->sxy += x * y;
}

/* The slope per minute, or 0 with fewer than two samples. */
static double fit_per_minute(const fit *f)
{
    double d = f->n * f->sxx - f->sx * f->sx;
    if (f->n < 2 || d == 0)
        return 0;
    return 60.0 * (f->n * f->sxy - f->sx * f->sy) / d;
}

/* The samples of the run, by second (index t), for the windows below. */
static sample *hist_samples;

#define WINDOW 10 /* seconds whose median stands for a point of the run */

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* The median, field by field, of the samples of seconds |from|..|to|
 * (clamped to 1..|to|): one sample catches the allocator anywhere in its
 * sawtooth (a slow reader's 2 MiB come and go), a window's median does
 * not. */
static sample window_median(long from, long to)
{
    sample m = {0};
    if (from < 1)
        from = 1;
    if (to < from)
        return m;
    long n = to - from + 1;
    long v[4][WINDOW];
    if (n > WINDOW) {
        from = to - WINDOW + 1;
        n = WINDOW;
    }
    for (long i = 0; i < n; i++) {
        const sample *x = &hist_samples[from + i];
        v[0][i] = x->rss_kib;
        v[1][i] = x->fds;
        v[2][i] = x->threads;
        v[3][i] = x->cli_kib;
    }
    for (int f = 0; f < 4; f++)
        qsort(v[f], (size_t)n, sizeof(long), cmp_long);
    m.t = to;
    m.rss_kib = v[0][(n - 1) / 2];
    m.fds = v[1][(n - 1) / 2];
    m.threads = v[2][(n - 1) / 2];
    m.cli_kib = v[3][(n - 1) / 2];
    return m;
}

/* ---- flags --------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: orpc-soak --target=HOST:PORT --ca=FILE --server_pid=PID\n"
            "       [--seconds=N (600)] [--warmup=N (max(seconds/10, "
            "min(seconds/3, 60)))]\n"
            "       [--server_name=NAME (localhost)]\n"
            "       [--unary_threads=N (2)] [--stream_threads=N (1)]\n"
            "       [--chaos_threads=N (1)] [--slow_threads=N (1)]\n"
            "       [--unary_rate=N (500)] [--stream_rate=N (60)]\n"
            "       [--chaos_rate=N (40)] [--churn_rate=N (5)] "
            "[--churn_keep=N (4)]\n"
            "       [--rss_tol_pct=N (10)] [--rss_tol_kib=N (4096)]\n"
            "       [--fd_tol=N (8)] [--drain_s=N (10)]\n"
            "rates are per thread per second; 0 = unpaced (churn: off)\n");
}

/* Matches "--name=value". */
static int flag(const char *arg, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (strncmp(arg, "--", 2) != 0 || strncmp(arg + 2, name, n) != 0 ||
        arg[2 + n] != '=')
        return 0;
    *value = arg + 3 + n;
    return 1;
}

static int parse_long(const char *name, const char *v, long lo, long hi,
                      long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "orpc-soak: bad --%s=%s (%ld..%ld)\n", name, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static const struct {
    const char *name;
    long *var;
    long lo, hi;
} long_flags[] = {
    {"server_pid", &server_pid, 1, 1L << 30},
    {"seconds", &seconds, 1, 7 * 24 * 3600},
    {"warmup", &warmup, 0, 7 * 24 * 3600},
    {"unary_threads", &unary_threads, 0, 16},
    {"stream_threads", &stream_threads, 0, 16},
    {"chaos_threads", &chaos_threads, 0, 8},
    {"slow_threads", &slow_threads, 0, 8},
    {"unary_rate", &unary_rate, 0, 1000000},
    {"stream_rate", &stream_rate, 0, 1000000},
    {"chaos_rate", &chaos_rate, 0, 1000000},
    {"churn_rate", &churn_rate, 0, 100},
    {"churn_keep", &churn_keep, 1, MAX_THREADS - 1},
    {"rss_tol_pct", &rss_tol_pct, 0, 1000},
    {"rss_tol_kib", &rss_tol_kib, 0, 1L << 30},
    {"fd_tol", &fd_tol, 0, 100000},
    {"drain_s", &drain_s, 0, 600},
};

static int parse_flags(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *v;
        int done = 0;
        if (flag(argv[i], "target", &v)) {
            target = v;
            continue;
        }
        if (flag(argv[i], "ca", &v)) {
            ca_file = v;
            continue;
        }
        if (flag(argv[i], "server_name", &v)) {
            server_name = v;
            continue;
        }
        for (size_t j = 0; j < sizeof(long_flags) / sizeof(long_flags[0]);
             j++) {
            if (flag(argv[i], long_flags[j].name, &v)) {
                if (parse_long(long_flags[j].name, v, long_flags[j].lo,
                               long_flags[j].hi, long_flags[j].var) != 0)
                    return -1;
                done = 1;
                break;
            }
        }
        if (!done) {
            fprintf(stderr, "orpc-soak: unknown flag %s\n", argv[i]);
            return -1;
        }
    }
    if (target == NULL || ca_file == NULL || server_pid < 0) {
        fprintf(stderr, "orpc-soak: --target, --ca and --server_pid are "
                        "required\n");
        return -1;
    }
    if (warmup < 0) {
        /* A tenth of the run, but at least a third of it up to 60 s: a
         * short development run needs the time for the server's
         * allocator to reach its working size. */
        long third = seconds / 3 < 60 ? seconds / 3 : 60;
        warmup = seconds / 10 > third ? seconds / 10 : third;
    }
    if (warmup >= seconds) {
        fprintf(stderr, "orpc-soak: --warmup must be below --seconds\n");
        return -1;
    }
    if (unary_threads + stream_threads + chaos_threads + slow_threads + 1 >
        MAX_THREADS) {
        fprintf(stderr, "orpc-soak: too many threads\n");
        return -1;
    }
    return 0;
}

static _Noreturn void on_alarm(int sig)
{
    (void)sig;
    static const char m[] = "orpc-soak: watchdog: the run did not end in "
                            "time (seconds + 120 s)\n";
    if (write(2, m, sizeof(m) - 1) < 0) {
        /* nothing more to do */
    }
    _exit(3);
}

/* ---- the run ------------------------------------------------------------- */

static const char *verdict(int ok)
{
    return ok ? "PASS" : "FAIL";
}

int main(int argc, char **argv)
{
    if (parse_flags(argc, argv) != 0) {
        usage();
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    alarm((unsigned)(seconds + 120));

    hist_samples = calloc((size_t)seconds + 1, sizeof(*hist_samples));
    if (hist_samples == NULL) {
        fprintf(stderr, "orpc-soak: out of memory\n");
        return 1;
    }
    run_start_us = now_us();
    sample before, warm = {0}, maxs = {0}, last = {0}, s;
    if (take_sample(0, &before) != 0) {
        fprintf(stderr, "orpc-soak: no process %ld to watch\n", server_pid);
        return 1;
    }
    printf("# orpc-soak: %ld s against %s (server pid %ld), warm-up %ld s; "
           "threads: %ld unary @%ld/s, %ld stream @%ld/s, %ld chaos @%ld/s, "
           "%ld slow reader, churn %ld channels/s keeping %ld\n",
           seconds, target, server_pid, warmup, unary_threads, unary_rate,
           stream_threads, stream_rate, chaos_threads, chaos_rate, slow_threads,
           churn_rate, churn_keep);
    printf("# before traffic: rss_kib=%ld fds=%ld threads=%ld\n",
           before.rss_kib, before.fds, before.threads);
    print_header();

    worker workers[MAX_THREADS];
    int nw = 0;
    const struct {
        role r;
        long n;
    } plan[] = {{R_UNARY, unary_threads},
                {R_STREAM, stream_threads},
                {R_CHAOS, chaos_threads},
                {R_SLOW, slow_threads},
                {R_CHURN, churn_rate > 0 ? 1 : 0}};
    for (size_t i = 0; i < sizeof(plan) / sizeof(plan[0]); i++)
        for (long j = 0; j < plan[i].n; j++) {
            workers[nw].role = plan[i].r;
            if (pthread_create(&workers[nw].tid, NULL, worker_main,
                               &workers[nw]) != 0) {
                fprintf(stderr, "orpc-soak: cannot start a thread\n");
                atomic_store(&stopping, 1);
                break;
            }
            nw++;
        }

    uint64_t prev[ORPC_CODE_COUNT], cur[ORPC_CODE_COUNT];
    uint64_t prev_calls = 0, prev_unexp = 0, unexp = 0;
    prev_calls = status_totals(prev, &prev_unexp);
    int server_gone = 0;
    fit rss_fit = {0}, fd_fit = {0};
    long t;
    for (t = 1; t <= seconds && !atomic_load(&stopping); t++) {
        int64_t wake = run_start_us + (int64_t)t * 1000000;
        int64_t d;
        while ((d = wake - now_us()) > 0)
            sleep_us(d);
        uint64_t h[HIST_N];
        for (int i = 0; i < HIST_N; i++) {
            h[i] = atomic_exchange(&hist_now[i], 0);
            hist_all[i] += h[i];
        }
        uint64_t calls = status_totals(cur, &unexp);
        if (take_sample(t, &s) != 0) {
            fprintf(stderr, "orpc-soak: t=%ld: the server (pid %ld) is gone\n",
                    t, server_pid);
            server_gone = 1;
            break;
        }
        print_line(&s, cur, prev, calls - prev_calls, unexp - prev_unexp,
                   quantile(h, 0.99));
        memcpy(prev, cur, sizeof(prev));
        prev_calls = calls;
        prev_unexp = unexp;
        if (t > warmup) {
            fit_add(&rss_fit, (double)t, (double)s.rss_kib);
            fit_add(&fd_fit, (double)t, (double)s.fds);
            if (s.rss_kib > maxs.rss_kib)
                maxs.rss_kib = s.rss_kib;
            if (s.fds > maxs.fds)
                maxs.fds = s.fds;
            if (s.threads > maxs.threads)
                maxs.threads = s.threads;
            if (s.cli_kib > maxs.cli_kib)
                maxs.cli_kib = s.cli_kib;
        }
        last = s;
        hist_samples[t] = s;
    }
    atomic_store(&stopping, 1);
    for (int i = 0; i < nw; i++)
        pthread_join(workers[i].tid, NULL);
    int64_t stopped_us = now_us();

    /* Every channel is closed: the server's descriptors should come back to
     * what it had before the traffic. */
    sample drained = last;
    long drain_wait_ms = 0;
    if (!server_gone) {
        int64_t limit = stopped_us + (int64_t)drain_s * 1000000;
        for (;;) {
            if (take_sample(seconds, &drained) != 0) {
                server_gone = 1;
                break;
            }
            if (drained.fds <= before.fds || now_us() >= limit)
                break;
            sleep_us(100000);
        }
        drain_wait_ms = (long)((now_us() - stopped_us) / 1000);
    }

    /* ---- the summary ---- */
    long warm_to = warmup > 0 ? warmup : 1;
    warm = window_median(warm_to - WINDOW + 1, warm_to);
    sample end = window_median(last.t - WINDOW + 1, last.t);
    uint64_t total_calls = status_totals(cur, &unexp);
    double elapsed = (double)(stopped_us - run_start_us) / 1e6;
    printf("\n== summary: %ld s run (%.1f s of traffic), warm-up %ld s\n",
           seconds, elapsed, warmup);
    printf("| point | server RSS KiB | server fds | server threads | driver "
           "RSS KiB |\n|---|--:|--:|--:|--:|\n");
    printf("| before traffic | %ld | %ld | %ld | %ld |\n", before.rss_kib,
           before.fds, before.threads, before.cli_kib);
    printf("| end of warm-up (median of t=%ld..%ld) | %ld | %ld | %ld | %ld "
           "|\n",
           warm.t - WINDOW + 1 > 1 ? warm.t - WINDOW + 1 : 1, warm.t,
           warm.rss_kib, warm.fds, warm.threads, warm.cli_kib);
    printf("| max after warm-up (one sample) | %ld | %ld | %ld | %ld |\n",
           maxs.rss_kib, maxs.fds, maxs.threads, maxs.cli_kib);
    printf("| end (median of t=%ld..%ld) | %ld | %ld | %ld | %ld |\n",
           end.t - WINDOW + 1 > 1 ? end.t - WINDOW + 1 : 1, end.t, end.rss_kib,
           end.fds, end.threads, end.cli_kib);
    printf("| last sample (t=%ld) | %ld | %ld | %ld | %ld |\n", last.t,
           last.rss_kib, last.fds, last.threads, last.cli_kib);
    printf("| channels closed (+%ld ms) | %ld | %ld | %ld | - |\n",
           drain_wait_ms, drained.rss_kib, drained.fds, drained.threads);

    printf("\n| call kind | calls | OK | CANCELLED | DEADLINE_EXCEEDED | "
           "other | unexpected |\n|---|--:|--:|--:|--:|--:|--:|\n");
    int every_kind_ran = 1;
    for (int k = 0; k < K_COUNT; k++) {
        uint64_t n = 0, other = 0;
        for (int c = 0; c < ORPC_CODE_COUNT; c++) {
            uint64_t v = atomic_load(&n_status[k][c]);
            n += v;
            if (c != ORPC_OK && c != ORPC_CANCELLED &&
                c != ORPC_DEADLINE_EXCEEDED)
                other += v;
        }
        int wanted =
            (k == K_UNARY && unary_threads) ||
            ((k == K_SERVER_STREAM || k == K_CLIENT_STREAM || k == K_BIDI) &&
             stream_threads) ||
            (k >= K_CANCEL_SERVER_STREAM && k <= K_DEADLINE_BIDI &&
             chaos_threads) ||
            ((k == K_SLOW_READER || k == K_CANCEL_SLOW_READER ||
              k == K_DEADLINE_SLOW_READER) &&
             slow_threads) ||
            (k == K_CHURN && churn_rate);
        if (wanted && n == 0)
            every_kind_ran = 0;
        printf("| %s | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " | %" PRIu64
               " | %" PRIu64 " | %" PRIu64 " |\n",
               kind_names[k], n, (uint64_t)atomic_load(&n_status[k][ORPC_OK]),
               (uint64_t)atomic_load(&n_status[k][ORPC_CANCELLED]),
               (uint64_t)atomic_load(&n_status[k][ORPC_DEADLINE_EXCEEDED]),
               other, (uint64_t)atomic_load(&n_unexpected[k]));
    }
    char lat[160] = "none recorded";
    if (quantile(hist_all, 0.5) >= 0)
        snprintf(lat, sizeof(lat),
                 "p50 %" PRId64 " us, p99 %" PRId64 " us, p99.9 %" PRId64 " us",
                 quantile(hist_all, 0.50), quantile(hist_all, 0.99),
                 quantile(hist_all, 0.999));
    printf("\ncalls: %" PRIu64 " (%.0f/s); latency of unary calls and "
           "ping-pong round trips over the run: %s; channel log "
           "warnings/errors: %" PRIu64 "\n",
           total_calls, elapsed > 0 ? (double)total_calls / elapsed : 0.0, lat,
           (uint64_t)atomic_load(&n_channel_logs));
    printf("trend after warm-up (least squares, for information): server "
           "RSS %+.1f KiB/min, server fds %+.2f/min\n",
           fit_per_minute(&rss_fit), fit_per_minute(&fd_fit));

    long rss_limit =
        warm.rss_kib + warm.rss_kib * rss_tol_pct / 100 + rss_tol_kib;
    long fd_limit = warm.fds + fd_tol;
    int rss_ok = !server_gone && end.rss_kib <= rss_limit;
    int fds_ok = !server_gone && end.fds <= fd_limit;
    int drain_ok = !server_gone && drained.fds <= before.fds;
    int clean = unexp == 0;
    printf("\nchecks:\n");
    printf("  %s  server alive throughout\n", verdict(!server_gone));
    printf("  %s  RSS flat: end %ld KiB <= warm-up %ld KiB + %ld %% + %ld KiB "
           "= %ld KiB\n",
           verdict(rss_ok), end.rss_kib, warm.rss_kib, rss_tol_pct, rss_tol_kib,
           rss_limit);
    printf("  %s  fds flat: end %ld <= warm-up %ld + %ld = %ld\n",
           verdict(fds_ok), end.fds, warm.fds, fd_tol, fd_limit);
    printf("  %s  fds released: %ld with every channel closed <= %ld before "
           "traffic (waited %ld ms, at most %ld s)\n",
           verdict(drain_ok), drained.fds, before.fds, drain_wait_ms, drain_s);
    printf("  %s  statuses: %" PRIu64 " unexpected outcome(s) (expected: OK; "
           "CANCELLED for cancelled calls; DEADLINE_EXCEEDED for deadline "
           "calls)\n",
           verdict(clean), unexp);
    printf("  %s  every kind of call ran\n", verdict(every_kind_ran));
    int pass =
        !server_gone && rss_ok && fds_ok && drain_ok && clean && every_kind_ran;
    printf("RESULT: %s\n", verdict(pass));
    fflush(stdout);
    free(hist_samples);
    return pass ? 0 : 1;
}
