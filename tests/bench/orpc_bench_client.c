/*
 * orpc_bench_client.c — orpc's closed-loop load generator for
 * grpc.testing.BenchmarkService, the peer of tests/bench/grpcpp/
 * bench_client.cc.
 *
 *   orpc-bench-client --target=host:port --channels=C --outstanding=M
 *                     --seconds=T --req_size=B --resp_size=B
 *                     [--rpc=unary|streaming] [--warmup=S] [--tls_ca=FILE]
 *                     [--stream_api=async|blocking] [--stream_threads=N]
 *                     [--interceptors=default|none|trace|metrics]
 *
 * C channels, each a separate orpc_channel (its own IO thread and HTTP/2
 * connection), each with M RPCs in flight at all times:
 *
 *   unary      M asynchronous UnaryCalls per channel through the typed async
 *              stub; each completion (on the channel's IO thread) checks the
 *              response, records it and starts the next call at once.
 *   streaming  M long-lived StreamingCalls per channel used ping-pong (send
 *              one request, receive one response); an "RPC" is one round
 *              trip.  By default (--stream_api=async) each is an
 *              asynchronous call whose response callback, on the channel's
 *              IO thread, records it and sends the next request.  With
 *              --stream_api=blocking, threads drive blocking streams
 *              (orpc/call.h): by default one per channel, which goes
 *              round its M streams: receive stream i's response, send its
 *              next request, on to stream i + 1 (each stream always has one
 *              request in flight).  --stream_threads=N spreads the C x M
 *              streams over N threads instead; N = C x M is a thread per
 *              stream, which costs two thread wake-ups per round trip and
 *              measures the scheduler more than orpc.
 *
 * Every response is checked (status OK, payload of exactly resp_size
 * bytes).  RPCs that end inside the measurement window — the --seconds after
 * the first --warmup seconds (default 1) — are counted, and their latency
 * (start to end) goes into a log-linear histogram (a fixed bucket array per
 * channel or stream thread, merged at the end; about 1% resolution).
 * Percentiles are nearest-rank.  Output, on stdout, exactly one line:
 *
 *   qps=<n> p50_us=<n> p90_us=<n> p99_us=<n> p999_us=<n> ok=<n> errors=<n>
 *
 * At the end of the window no new RPC starts; the ones in flight finish (a
 * stream half-closes and collects its OK status), lingering ones are
 * cancelled after 5 s, and everything is freed.  Before the run, one blocking
 * call per channel connects it (waiting up to 10 s for the server).
 * Exit status 0 when ok > 0 and errors == 0, 1 otherwise, 2 on bad usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <orpc/orpc.h>

#include "bench_chain.h"
#include "grpc/testing/benchmark_service.orpc.h"

typedef Grpc__Testing__SimpleRequest SimpleRequest;
typedef Grpc__Testing__SimpleResponse SimpleResponse;
typedef Grpc__Testing__BenchmarkService_StreamingCall_Stream PingPong;

/* ---- latency histogram ----------------------------------------------------
 *
 * Log-linear over nanoseconds: values below 2 * SUB are their own bucket;
 * above, every power of two is split into SUB equal buckets (relative width
 * 1/SUB, under 1.6%).  Values past the last bucket (2^MAX_BITS ns, about 18
 * minutes) land in it. */
#define SUB_BITS 6
#define SUB (1u << SUB_BITS)
#define MAX_BITS 40
#define N_BUCKETS (2 * SUB + (MAX_BITS - SUB_BITS - 1) * SUB)

typedef struct hist {
    uint64_t n[N_BUCKETS];
    uint64_t count;
} hist;

static unsigned bucket_of(uint64_t v)
{
    if (v < 2 * SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    if (msb >= MAX_BITS)
        return N_BUCKETS - 1;
    unsigned shift = msb - SUB_BITS; /* v >> shift is in [SUB, 2 * SUB) */
    return 2 * SUB + (shift - 1) * SUB + (unsigned)((v >> shift) - SUB);
}

/* The middle of bucket |b|, in nanoseconds. */
static uint64_t bucket_mid(unsigned b)
{
    if (b < 2 * SUB)
        return b;
    unsigned shift = (b - 2 * SUB) / SUB + 1;
    uint64_t lo = (uint64_t)(SUB + (b - 2 * SUB) % SUB) << shift;
    return lo + ((1ull << shift) >> 1);
}

static void hist_add(hist *h, uint64_t v)
{
    h->n[bucket_of(v)]++;
    h->count++;
}

static void hist_merge(hist *into, const hist *h)
{
    for (unsigned i = 0; i < N_BUCKETS; i++)
        into->n[i] += h->n[i];
    into->count += h->count;
}

/* Nearest rank: the bucket of the smallest value with at least |p| of the
 * samples at or below it. */
static uint64_t hist_percentile(const hist *h, double p)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)h->count + 0.999999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < N_BUCKETS; i++) {
        seen += h->n[i];
        if (seen >= rank)
            return bucket_mid(i);
    }
    return bucket_mid(N_BUCKETS - 1);
}

/* ---- the run ---------------------------------------------------------------
 */

typedef struct stats {
    hist lat;
    uint64_t ok, errors;
} stats;

static struct {
    _Atomic int64_t win_start, win_end; /* uv_hrtime() */
    atomic_int stop;
    atomic_int active;                   /* unary calls or streams in flight */
    atomic_uint_fast64_t start_failures; /* calls that could not start */
    size_t resp_size;
    SimpleRequest req;
    orpc_client **clients;
} run;

/* Counts one finished RPC if it ended inside the window. */
static void record(stats *s, uint64_t start, uint64_t end, int good)
{
    if ((int64_t)end <
            atomic_load_explicit(&run.win_start, memory_order_relaxed) ||
        (int64_t)end >=
            atomic_load_explicit(&run.win_end, memory_order_relaxed))
        return;
    if (good) {
        s->ok++;
        hist_add(&s->lat, end - start);
    } else {
        s->errors++;
    }
}

static int good_response(const SimpleResponse *r)
{
    size_t n = r && r->payload ? r->payload->body.len : 0;
    return r != NULL && n == run.resp_size;
}

/* ---- unary: asynchronous calls, restarted from their completion -----------
 */

/* One of a channel's M outstanding calls.  Its completion runs on the
 * channel's IO thread, the only thread that touches |st|. */
typedef struct uslot {
    orpc_client *client;
    stats *st;
    uint64_t start;
} uslot;

static void unary_done(const orpc_status *status, SimpleResponse *resp,
                       void *ud);

/* Starts the slot's next call; on failure counts an error and idles it. */
static void unary_issue(uslot *s)
{
    s->start = uv_hrtime();
    int rc = grpc__testing__benchmark_service__client__unary_call__async(
        s->client, &run.req, NULL, unary_done, s);
    if (rc != 0) {
        /* Any thread (main starts the first calls): not |st|. */
        atomic_fetch_add(&run.start_failures, 1);
        atomic_fetch_sub(&run.active, 1);
    }
}

static void unary_done(const orpc_status *status, SimpleResponse *resp,
                       void *ud)
{
    uslot *s = ud;
    uint64_t end = uv_hrtime();
    record(s->st, s->start, end,
           status->code == ORPC_OK && good_response(resp));
    if (resp)
        grpc__testing__simple_response__free_unpacked(resp, NULL);
    if (atomic_load_explicit(&run.stop, memory_order_relaxed)) {
        atomic_fetch_sub(&run.active, 1);
        return;
    }
    unary_issue(s);
}

/* ---- streaming: ping-pong streams on blocking threads ----------------------
 *
 * orpc's client streams are blocking (orpc/call.h): a thread waits in recv.
 * A worker thread drives one or more streams round robin, each with exactly
 * one request in flight: receive stream i's response, record it, send its
 * next request at once, go on to stream i + 1.  A response that arrives
 * while the thread waits on an earlier stream waits its turn (and that wait
 * is in its latency), as a completion does behind others in a busy
 * completion-queue thread; in exchange the thread handles whole batches
 * per wake-up, where a thread per stream pays two context switches per
 * round trip (measured on 2 CPUs, 4 x 64 streams: ~470k round trips/s with
 * 4 threads, ~70k with 256). */

typedef struct pstream {
    orpc_client *client;
    PingPong *call; /* NULL while not open; written under the worker lock */
    uint64_t start; /* when the request in flight was sent */
    int in_flight;  /* a request awaits its response */
} pstream;

typedef struct sworker {
    stats st;
    uv_thread_t thread;
    uv_mutex_t lock; /* guards the streams' |call| against cancel_streams() */
    pstream *s;
    size_t n;
} sworker;

/* Opens |p|'s stream: 0, or -1 after counting an error. */
static int stream_open(sworker *w, pstream *p)
{
    PingPong *c;
    if (grpc__testing__benchmark_service__client__streaming_call(
            p->client, NULL, &c) != 0) {
        uint64_t t = uv_hrtime();
        record(&w->st, t, t, 0);
        uv_sleep(10); /* no hot loop against a dead server */
        return -1;
    }
    uv_mutex_lock(&w->lock);
    p->call = c;
    uv_mutex_unlock(&w->lock);
    return 0;
}

/* Ends |p|'s stream.  Unless |broken|, half-closes and expects the server
 * to end with OK and no further response; otherwise (or if it does not)
 * counts one error for the lost round trip. */
static void stream_end(sworker *w, pstream *p, int broken)
{
    PingPong *c = p->call;
    if (!broken) {
        SimpleResponse *r = NULL;
        grpc__testing__benchmark_service__client__streaming_call__close_send(c);
        int rc = grpc__testing__benchmark_service__client__streaming_call__recv(
            c, &r);
        if (rc == 1) {
            grpc__testing__simple_response__free_unpacked(r, NULL);
            broken = 1; /* a response nobody asked for */
        } else if (rc < 0) {
            broken = 1;
        }
    }
    uv_mutex_lock(&w->lock);
    p->call = NULL;
    uv_mutex_unlock(&w->lock);
    orpc_status st =
        grpc__testing__benchmark_service__client__streaming_call__finish(c);
    if (broken || st.code != ORPC_OK) {
        record(&w->st, p->start, uv_hrtime(), 0);
        if (!atomic_load(&run.stop))
            uv_sleep(10);
    }
    orpc_status_clear(&st);
    p->in_flight = 0;
}

/* Sends |p|'s next request; ends the stream as broken when that fails. */
static void stream_send(sworker *w, pstream *p)
{
    p->start = uv_hrtime();
    if (grpc__testing__benchmark_service__client__streaming_call__send(
            p->call, &run.req) != 0) {
        stream_end(w, p, 1);
        return;
    }
    p->in_flight = 1;
}

/* Receives |p|'s response: 0 when it came (and was recorded). */
static int stream_recv(sworker *w, pstream *p)
{
    SimpleResponse *r = NULL;
    if (grpc__testing__benchmark_service__client__streaming_call__recv(
            p->call, &r) != 1) {
        stream_end(w, p, 1);
        return -1;
    }
    p->in_flight = 0;
    record(&w->st, p->start, uv_hrtime(), good_response(r));
    grpc__testing__simple_response__free_unpacked(r, NULL);
    return 0;
}

static void stream_worker(void *arg)
{
    sworker *w = arg;
    while (!atomic_load_explicit(&run.stop, memory_order_relaxed)) {
        for (size_t i = 0; i < w->n; i++) {
            pstream *p = &w->s[i];
            if (p->call == NULL) {
                if (stream_open(w, p) == 0)
                    stream_send(w, p);
                continue;
            }
            if (stream_recv(w, p) != 0)
                continue;
            if (atomic_load_explicit(&run.stop, memory_order_relaxed))
                break;
            stream_send(w, p);
        }
    }
    /* The window is over: collect the responses in flight, then end each
     * stream with a half-close and its OK status. */
    for (size_t i = 0; i < w->n; i++) {
        pstream *p = &w->s[i];
        if (p->call == NULL)
            continue;
        if (p->in_flight && stream_recv(w, p) != 0)
            continue;
        stream_end(w, p, 0);
    }
    atomic_fetch_sub(&run.active, 1);
}

/* Cancels every open stream (any thread): for streams that linger. */
static void cancel_streams(sworker *ws, size_t n)
{
    for (size_t t = 0; t < n; t++) {
        uv_mutex_lock(&ws[t].lock);
        for (size_t i = 0; i < ws[t].n; i++)
            if (ws[t].s[i].call)
                grpc__testing__benchmark_service__client__streaming_call__cancel(
                    ws[t].s[i].call);
        uv_mutex_unlock(&ws[t].lock);
    }
}

/* ---- streaming, asynchronous (the default): callbacks on the IO thread ----
 *
 * Each stream is an asynchronous call (orpc_client_call_start_async()): its
 * response arrives in on_message on the channel's IO thread, which records
 * it and sends the next request from there, so a round trip wakes no other
 * thread.  Only the channel's IO thread touches |st| and the fields below
 * |call| once the first request is out. */

typedef struct astream {
    orpc_client *client;
    stats *st;       /* the channel's */
    orpc_call *call; /* the application's reference, dropped at the end */
    uint64_t start;  /* when the request in flight was sent */
    int in_flight;   /* a request awaits its response */
} astream;

/* Sends |a|'s next request; cancels the stream when that fails (on_done
 * then counts the lost round trip). */
static void astream_send(astream *a)
{
    a->start = uv_hrtime();
    a->in_flight = 1;
    if (orpc_call_send(a->call, &run.req.base) != 0)
        orpc_call_cancel(a->call);
}

static void astream_message(orpc_call *call, ProtobufCMessage *msg, void *ud)
{
    astream *a = ud;
    record(a->st, a->start, uv_hrtime(),
           a->in_flight && good_response((SimpleResponse *)msg));
    a->in_flight = 0;
    protobuf_c_message_free_unpacked(msg, NULL);
    if (atomic_load_explicit(&run.stop, memory_order_relaxed))
        orpc_call_close_send(call); /* the server ends the stream OK */
    else
        astream_send(a);
}

static void astream_done(orpc_call *call, const orpc_status *status, void *ud)
{
    astream *a = ud;
    (void)call;
    if (status->code != ORPC_OK || a->in_flight)
        record(a->st, a->start, uv_hrtime(), 0);
    atomic_fetch_sub(&run.active, 1);
}

static const orpc_call_callbacks astream_cbs = {.on_message = astream_message,
                                                .on_done = astream_done};

/* Opens |a|'s stream and sends its first request (main thread). */
static void astream_open(astream *a)
{
    atomic_fetch_add(&run.active, 1);
    if (orpc_client_call_start_async(
            &a->call, a->client,
            grpc__testing__benchmark_service__method__streaming_call, NULL,
            NULL, &astream_cbs, a) != 0) {
        a->call = NULL;
        atomic_fetch_add(&run.start_failures, 1);
        atomic_fetch_sub(&run.active, 1);
        return;
    }
    astream_send(a);
}

/* ---- command line ----------------------------------------------------------
 */

static void usage(const char *msg)
{
    fprintf(stderr,
            "orpc-bench-client: %s\n"
            "usage: orpc-bench-client --target=host:port --channels=C "
            "--outstanding=M --seconds=T --req_size=B --resp_size=B "
            "[--rpc=unary|streaming] [--warmup=S] [--tls_ca=FILE] "
            "[--stream_api=async|blocking] [--stream_threads=N] "
            "[--interceptors=default|none|trace|metrics]\n",
            msg);
    exit(2);
}

static double parse_num(const char *s, const char *flag, double lo, double hi)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        char m[96];
        snprintf(m, sizeof(m), "bad value for %s", flag);
        usage(m);
    }
    return v;
}

static const char *flag(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && arg[n] == '=' ? arg + n + 1 : NULL;
}

static void log_stderr(orpc_log_level level, const char *msg, void *ud)
{
    (void)ud;
    if (level <= ORPC_LOG_WARN)
        fprintf(stderr, "orpc-bench-client: %s\n", msg);
}

/* Waits up to |limit_s| for the RPCs in flight to end; nonzero when they
 * did. */
static int drain(double limit_s)
{
    uint64_t until = uv_hrtime() + (uint64_t)(limit_s * 1e9);
    while (atomic_load(&run.active) > 0 && uv_hrtime() < until)
        uv_sleep(5);
    return atomic_load(&run.active) == 0;
}

int main(int argc, char **argv)
{
    const char *target = NULL, *ca = NULL, *v;
    long channels = -1, outstanding = -1, req_size = -1, resp_size = -1;
    double seconds = -1, warmup = 1;
    int streaming = 0, start_failed = 0;
    long stream_threads = 0;
    int blocking_streams = 0;
    bench_chain chain = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((v = flag(a, "--target")))
            target = v;
        else if ((v = flag(a, "--channels")))
            channels = (long)parse_num(v, "--channels", 1, 10000);
        else if ((v = flag(a, "--outstanding")))
            outstanding = (long)parse_num(v, "--outstanding", 1, 100000);
        else if ((v = flag(a, "--seconds")))
            seconds = parse_num(v, "--seconds", 0.001, 86400);
        else if ((v = flag(a, "--warmup")))
            warmup = parse_num(v, "--warmup", 0, 86400);
        else if ((v = flag(a, "--req_size")))
            req_size = (long)parse_num(v, "--req_size", 0, 4 << 20);
        else if ((v = flag(a, "--resp_size")))
            resp_size = (long)parse_num(v, "--resp_size", 0, 4 << 20);
        else if ((v = flag(a, "--tls_ca")))
            ca = v;
        else if ((v = flag(a, "--stream_threads")))
            stream_threads = (long)parse_num(v, "--stream_threads", 1, 4096);
        else if ((v = flag(a, "--stream_api"))) {
            if (strcmp(v, "async") == 0)
                blocking_streams = 0;
            else if (strcmp(v, "blocking") == 0)
                blocking_streams = 1;
            else
                usage("--stream_api must be async or blocking");
        } else if ((v = flag(a, "--interceptors"))) {
            if (bench_chain_parse(&chain, v) != 0)
                usage("--interceptors must be default, none, trace or "
                      "metrics");
        } else if ((v = flag(a, "--rpc"))) {
            if (strcmp(v, "unary") == 0)
                streaming = 0;
            else if (strcmp(v, "streaming") == 0)
                streaming = 1;
            else
                usage("--rpc must be unary or streaming");
        } else {
            char m[256];
            snprintf(m, sizeof(m), "unknown argument %s", a);
            usage(m);
        }
    }
    if (target == NULL || channels < 0 || outstanding < 0 || seconds < 0 ||
        req_size < 0 || resp_size < 0)
        usage("--target, --channels, --outstanding, --seconds, --req_size "
              "and --resp_size are required");
    if (streaming && !blocking_streams && stream_threads != 0)
        usage("--stream_threads needs --stream_api=blocking");
    if (streaming && stream_threads == 0 && channels > 4096)
        usage("--rpc=streaming runs a thread per channel by default: at most "
              "4096 (or set --stream_threads)");

    /* The request every RPC sends; read-only from here on. */
    uint8_t *body = calloc(1, (size_t)req_size + 1);
    Grpc__Testing__Payload payload = GRPC__TESTING__PAYLOAD__INIT;
    payload.body.data = body;
    payload.body.len = (size_t)req_size;
    grpc__testing__simple_request__init(&run.req);
    run.req.response_size = (int32_t)resp_size;
    run.req.payload = &payload;
    run.resp_size = (size_t)resp_size;

    /* Channels, each connected up front with one blocking call. */
    orpc_tls_opts tls = {0};
    tls.ca_file = ca;
    orpc_channel_opts co = {0};
    co.tls = ca ? &tls : NULL;
    co.plaintext = ca == NULL;
    co.log = log_stderr;
    co.no_default_interceptors = chain.no_defaults;
    co.interceptors = &chain.ic;
    co.n_interceptors = chain.ic != NULL;
    size_t nch = (size_t)channels;
    orpc_client **clients = calloc(nch, sizeof(*clients));
    run.clients = clients;
    int rc = 1;
    for (size_t i = 0; i < nch; i++) {
        orpc_channel *ch;
        int err = orpc_channel_new(&ch, target, &co, NULL, NULL);
        if (err == 0) {
            err = orpc_client_new(&clients[i],
                                  &grpc__testing__benchmark_service__orpc_desc,
                                  ch, NULL, NULL);
            orpc_channel_unref(ch); /* the client holds it */
        }
        if (err != 0) {
            fprintf(stderr,
                    "orpc-bench-client: cannot make a channel to %s: %s\n",
                    target, orpc_strerror(err));
            goto out;
        }
        orpc_call_opts first = {.timeout_ms = 10000, .wait_for_ready = 1};
        SimpleResponse *r = NULL;
        orpc_status st = grpc__testing__benchmark_service__client__unary_call(
            clients[i], &run.req, &r, &first);
        int good = st.code == ORPC_OK && good_response(r);
        if (!good)
            fprintf(
                stderr, "orpc-bench-client: first call to %s: %s%s%s\n", target,
                orpc_code_name(st.code), st.message ? ": " : "",
                st.message
                    ? st.message
                    : (st.code == ORPC_OK ? " with a wrong payload size" : ""));
        if (r)
            grpc__testing__simple_response__free_unpacked(r, NULL);
        orpc_status_clear(&st);
        if (!good)
            goto out;
    }

    size_t nslots = nch * (size_t)outstanding;
    if (stream_threads == 0)
        stream_threads = channels; /* one per channel */
    if ((size_t)stream_threads > nslots)
        stream_threads = (long)nslots;
    int threaded = streaming && blocking_streams;
    size_t nworkers = threaded ? (size_t)stream_threads : 0;
    stats *chstats = calloc(nch, sizeof(*chstats));
    uslot *uslots = streaming ? NULL : calloc(nslots, sizeof(*uslots));
    pstream *pstreams = threaded ? calloc(nslots, sizeof(*pstreams)) : NULL;
    sworker *workers = threaded ? calloc(nworkers, sizeof(*workers)) : NULL;
    astream *astreams =
        streaming && !threaded ? calloc(nslots, sizeof(*astreams)) : NULL;
    if (chstats == NULL || (threaded    ? pstreams == NULL || workers == NULL
                            : streaming ? astreams == NULL
                                        : uslots == NULL)) {
        fprintf(stderr, "orpc-bench-client: out of memory\n");
        free(chstats);
        free(uslots);
        free(pstreams);
        free(workers);
        free(astreams);
        goto out;
    }

    uint64_t t0 = uv_hrtime();
    int64_t ws = (int64_t)t0 + (int64_t)(warmup * 1e9);
    int64_t we = ws + (int64_t)(seconds * 1e9);
    atomic_store(&run.win_start, ws);
    atomic_store(&run.win_end, we);
    atomic_store(&run.stop, 0);
    size_t started = 0;
    if (streaming && !threaded) {
        for (size_t i = 0; i < nslots; i++) {
            size_t c = i / (size_t)outstanding;
            astreams[i].client = clients[c];
            astreams[i].st = &chstats[c];
            astream_open(&astreams[i]);
        }
    } else if (streaming) {
        /* Stream i is on channel i / M; worker t drives a contiguous run of
         * streams, so with one worker per channel it has that channel's. */
        for (size_t i = 0; i < nslots; i++)
            pstreams[i].client = clients[i / (size_t)outstanding];
        for (size_t t = 0; t < nworkers; t++) {
            sworker *w = &workers[t];
            size_t lo = nslots * t / nworkers, hi = nslots * (t + 1) / nworkers;
            w->s = &pstreams[lo];
            w->n = hi - lo;
            uv_mutex_init(&w->lock);
            uv_thread_options_t to = {.flags = UV_THREAD_HAS_STACK_SIZE,
                                      .stack_size = 256 * 1024};
            atomic_fetch_add(&run.active, 1);
            if (uv_thread_create_ex(&w->thread, &to, stream_worker, w) != 0) {
                fprintf(stderr, "orpc-bench-client: cannot start a thread\n");
                atomic_fetch_sub(&run.active, 1);
                uv_mutex_destroy(&w->lock);
                atomic_store(&run.stop, 1);
                start_failed = 1;
                break;
            }
            started++;
        }
    } else {
        for (size_t i = 0; i < nslots; i++) {
            size_t c = i / (size_t)outstanding;
            uslots[i].client = clients[c];
            uslots[i].st = &chstats[c];
            atomic_fetch_add(&run.active, 1);
            unary_issue(&uslots[i]);
        }
    }

    uint64_t now = uv_hrtime();
    if (!atomic_load(&run.stop) && (uint64_t)we > now)
        uv_sleep((unsigned)(((uint64_t)we - now + 999999) / 1000000));
    atomic_store(&run.stop, 1);

    /* Let the RPCs in flight end by themselves; cancel streams that linger
     * (unary calls have no cancel: a stuck one is waited out below). */
    int drained = drain(5);
    if (!drained && threaded) {
        cancel_streams(workers, started);
        drained = drain(2);
    } else if (!drained && astreams) {
        for (size_t i = 0; i < nslots; i++)
            if (astreams[i].call)
                orpc_call_cancel(astreams[i].call);
        drained = drain(2);
    }

    stats all;
    memset(&all, 0, sizeof(all));
    for (size_t i = 0; i < nch; i++) {
        hist_merge(&all.lat, &chstats[i].lat);
        all.ok += chstats[i].ok;
        all.errors += chstats[i].errors;
    }
    for (size_t t = 0; t < started; t++) {
        hist_merge(&all.lat, &workers[t].st.lat);
        all.ok += workers[t].st.ok;
        all.errors += workers[t].st.errors;
    }
    all.errors += atomic_load(&run.start_failures) + (uint64_t)start_failed;
    printf("qps=%.0f p50_us=%" PRIu64 " p90_us=%" PRIu64 " p99_us=%" PRIu64
           " p999_us=%" PRIu64 " ok=%" PRIu64 " errors=%" PRIu64 "\n",
           (double)all.ok / seconds, hist_percentile(&all.lat, 0.50) / 1000,
           hist_percentile(&all.lat, 0.90) / 1000,
           hist_percentile(&all.lat, 0.99) / 1000,
           hist_percentile(&all.lat, 0.999) / 1000, all.ok, all.errors);
    fflush(stdout);
    rc = all.ok > 0 && all.errors == 0 ? 0 : 1;

    if (!drained) {
        /* Something is stuck in orpc: do not wait on it forever. */
        fprintf(stderr,
                "orpc-bench-client: %d RPC(s) still in flight at exit\n",
                atomic_load(&run.active));
        fflush(stderr);
        _Exit(rc);
    }
    for (size_t t = 0; t < started; t++) {
        uv_thread_join(&workers[t].thread);
        uv_mutex_destroy(&workers[t].lock);
    }
    for (size_t i = 0; astreams && i < nslots; i++)
        orpc_call_unref(astreams[i].call);
    free(chstats);
    free(uslots);
    free(pstreams);
    free(workers);
    free(astreams);
out:
    for (size_t i = 0; i < nch; i++)
        orpc_client_free(clients[i]);
    free(clients);
    free(body);
    return rc;
}
