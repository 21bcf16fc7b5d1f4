/*
 * rpc_hostile_test.c — peers that try to exhaust orpc, on loopback: each
 * case is an attack on a bound (memory, threads, streams, connections) and
 * asserts the bound held and that everyone else was still served.
 *
 * The hostile side is h2peer.h's hand-rolled HTTP/2 peer (a client against
 * an orpc server, or a server an orpc channel calls), which respects the
 * flow-control windows orpc grants, so "bytes accepted" is exactly what orpc
 * let in.  Waits are bounded: a peer that stops getting credit for a second
 * has been stopped by flow control; a gate a handler waits on opens after at
 * most 30 s.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include <orpc/orpc.h>

#include "grpc/testing/test.orpc.h"
#include "h2peer.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

static const char *FULL_DUPLEX = "/grpc.testing.TestService/FullDuplexCall";

/* ---- handlers: a gate they wait on, counters, a deferred call ---- */

static uv_mutex_t g_lock;
static uv_cond_t g_cond;
static int g_open;           /* the gate */
static int g_entered;        /* handlers that started */
static int g_defer;          /* unary_call defers instead of answering */
static orpc_ctx *g_deferred; /* the call it deferred */

static void reset(void)
{
    uv_mutex_lock(&g_lock);
    g_open = g_entered = g_defer = 0;
    g_deferred = NULL;
    uv_mutex_unlock(&g_lock);
}

static void open_gate(void)
{
    uv_mutex_lock(&g_lock);
    g_open = 1;
    uv_cond_broadcast(&g_cond);
    uv_mutex_unlock(&g_lock);
}

static void entered(void)
{
    uv_mutex_lock(&g_lock);
    g_entered++;
    uv_cond_broadcast(&g_cond);
    uv_mutex_unlock(&g_lock);
}

/* Waits (at most 30 s) for the gate, or for the call to be cancelled. */
static void wait_gate(orpc_ctx *ctx)
{
    uv_mutex_lock(&g_lock);
    for (int i = 0; i < 600 && !g_open && !orpc_ctx_is_cancelled(ctx); i++)
        uv_cond_timedwait(&g_cond, &g_lock, 50 * 1000 * 1000);
    uv_mutex_unlock(&g_lock);
}

/* Waits (at most 30 s) until |n| handlers have started; returns how many. */
static int wait_entered(int n)
{
    uv_mutex_lock(&g_lock);
    for (int i = 0; i < 600 && g_entered < n; i++)
        uv_cond_timedwait(&g_cond, &g_lock, 50 * 1000 * 1000);
    int e = g_entered;
    uv_mutex_unlock(&g_lock);
    return e;
}

static orpc_status unary_call(orpc_ctx *ctx,
                              const Grpc__Testing__SimpleRequest *req,
                              Grpc__Testing__SimpleResponse *resp, void *ud)
{
    (void)req;
    (void)resp;
    (void)ud;
    uv_mutex_lock(&g_lock);
    int defer = g_defer;
    if (defer)
        g_deferred = ctx;
    uv_mutex_unlock(&g_lock);
    if (defer) {
        assert_int_equal(orpc_ctx_defer(ctx), 0);
        entered();
        return ORPC_STATUS_OK; /* ignored: the test finishes it */
    }
    entered();
    wait_gate(ctx);
    return ORPC_STATUS_OK;
}

/* Never reads: holds its worker until the gate opens or the call ends. */
static orpc_status
full_duplex(orpc_ctx *ctx,
            Grpc__Testing__TestService_FullDuplexCall_ServerStream *call,
            void *ud)
{
    (void)call;
    (void)ud;
    entered();
    wait_gate(ctx);
    return ORPC_STATUS_OK;
}

/* Adds up the payloads it is sent. */
static orpc_status
streaming_input(orpc_ctx *ctx,
                Grpc__Testing__TestService_StreamingInputCall_ServerReader *r,
                Grpc__Testing__StreamingInputCallResponse *resp, void *ud)
{
    (void)ctx;
    (void)ud;
    const Grpc__Testing__StreamingInputCallRequest *m;
    int rc;
    while (
        (rc = grpc__testing__test_service__server__streaming_input_call__recv(
             r, &m)) == 1)
        resp->aggregated_payload_size +=
            m->payload ? (int32_t)m->payload->body.len : 0;
    return rc == 0 ? ORPC_STATUS_OK
                   : orpc_status_new(ORPC_CANCELLED, "reading failed");
}

static const Grpc__Testing__TestService_Handlers handlers = {
    .unary_call = unary_call,
    .full_duplex_call = full_duplex,
    .streaming_input_call = streaming_input,
};

static orpc_server *serve(orpc_server_opts o, int *port)
{
    orpc_server *srv;
    o.plaintext = 1;
    if (o.io_threads == 0)
        o.io_threads = 1;
    assert_int_equal(orpc_server_new(&srv, &o, NULL, NULL), 0);
    assert_int_equal(
        grpc__testing__test_service__server__register(srv, &handlers, NULL), 0);
    assert_int_equal(orpc_server_listen(srv, "127.0.0.1:0", port, NULL), 0);
    assert_int_equal(orpc_server_start(srv), 0);
    return srv;
}

static void stop(orpc_server *srv)
{
    open_gate();
    assert_int_equal(orpc_server_shutdown(srv, 1000), 0);
    assert_int_equal(orpc_server_wait(srv), 0);
    orpc_server_free(srv);
}

typedef struct client {
    orpc_channel *ch;
    orpc_client *cl;
} client;

static void client_open(client *c, int port)
{
    char target[64];
    orpc_channel_opts co = {.plaintext = 1};
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    assert_int_equal(orpc_channel_new(&c->ch, target, &co, NULL, NULL), 0);
    assert_int_equal(orpc_client_new(&c->cl,
                                     &grpc__testing__test_service__orpc_desc,
                                     c->ch, NULL, NULL),
                     0);
}

static void client_close(client *c)
{
    orpc_client_free(c->cl);
    orpc_channel_unref(c->ch);
}

static orpc_code unary(client *c, int64_t timeout_ms, char *msg, size_t len)
{
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__SimpleResponse *resp = NULL;
    orpc_call_opts o = {.timeout_ms = timeout_ms};
    orpc_status st =
        grpc__testing__test_service__client__unary_call(c->cl, &req, &resp, &o);
    orpc_code code = st.code;
    if (msg != NULL)
        snprintf(msg, len, "%s", st.message ? st.message : "");
    orpc_status_clear(&st);
    if (resp)
        grpc__testing__simple_response__free_unpacked(resp, NULL);
    return code;
}

/* An asynchronous unary call whose outcome the test collects later. */
typedef struct pending {
    uv_mutex_t lock;
    int done;
    orpc_code code;
} pending;

static void pending_done(const orpc_status *st,
                         Grpc__Testing__SimpleResponse *resp, void *ud)
{
    pending *p = ud;
    if (resp)
        grpc__testing__simple_response__free_unpacked(resp, NULL);
    uv_mutex_lock(&p->lock);
    p->done = 1;
    p->code = st->code;
    uv_mutex_unlock(&p->lock);
}

static void pending_start(pending *p, client *c)
{
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    orpc_call_opts o = {.timeout_ms = 30000};
    memset(p, 0, sizeof(*p));
    uv_mutex_init(&p->lock);
    assert_int_equal(grpc__testing__test_service__client__unary_call__async(
                         c->cl, &req, &o, pending_done, p),
                     0);
}

/* Waits (at most 30 s) for the call's outcome; -1 if none came. */
static int pending_wait(pending *p)
{
    int code = -1;
    for (int i = 0; i < 3000; i++) {
        uv_mutex_lock(&p->lock);
        int done = p->done;
        code = done ? (int)p->code : -1;
        uv_mutex_unlock(&p->lock);
        if (done)
            break;
        usleep(10000);
    }
    uv_mutex_destroy(&p->lock);
    return code;
}

/* Reads frames until stream |id| ends; returns its grpc-status, or the
 * RST_STREAM code + 1000, or -1 (connection closed / 10 s of silence). */
static int stream_outcome(h2p *p, uint32_t id)
{
    h2p_frame f;
    for (int i = 0; i < 100000; i++) {
        int t = h2p_read_frame(p, 10000, &f);
        if (t < 0)
            return -1;
        if (f.stream != id)
            continue;
        if (t == H2P_RST && f.len == 4)
            return 1000 + (int)((uint32_t)f.payload[0] << 24 |
                                (uint32_t)f.payload[1] << 16 |
                                (uint32_t)f.payload[2] << 8 | f.payload[3]);
        if (t == H2P_HEADERS && (f.flags & 1)) {
            h2p_head h;
            if (h2p_decode(p, f.payload, f.len, &h) != 0)
                return -1;
            return h.grpc_status;
        }
        if (t == H2P_HEADERS) {
            h2p_head h;
            h2p_decode(p, f.payload, f.len, &h);
        }
    }
    return -1;
}

/* A packed StreamingOutputCallRequest whose payload has |n| bytes. */
static uint8_t *packed_request(size_t n, size_t *len)
{
    Grpc__Testing__StreamingOutputCallRequest req =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__Payload pl = GRPC__TESTING__PAYLOAD__INIT;
    uint8_t *body = calloc(1, n);
    pl.body.data = body;
    pl.body.len = n;
    req.payload = &pl;
    *len = grpc__testing__streaming_output_call_request__get_packed_size(&req);
    uint8_t *out = malloc(5 + *len);
    h2p_prefix(out, (uint32_t)*len);
    grpc__testing__streaming_output_call_request__pack(&req, out + 5);
    *len += 5;
    free(body);
    return out;
}

/* ====================================================================== */
/* server: flow control                                                    */
/* ====================================================================== */

/*
 * A bidi call whose handler never reads, fed 60 KiB messages cut so that
 * each one's last DATA frame carries a single byte.  Every byte of a
 * message is charged until the handler takes it, so the peer runs out of
 * credit at one stream window (1 MiB): before the stream engine only the
 * last byte of each message was held back and the server took all 32 MiB.
 */
static void test_split_messages_held_to_window(void **state)
{
    (void)state;
    reset();
    int port;
    orpc_server_opts o = {0};
    orpc_server *srv = serve(o, &port);
    h2p p;
    assert_int_equal(h2p_dial(&p, port), 0);
    assert_int_equal(h2p_request(&p, 1, FULL_DUPLEX, 0), 0);
    assert_int_equal(wait_entered(1), 1);
    size_t mlen;
    uint8_t *msg = packed_request(60 * KiB, &mlen);
    size_t rss0 = h2p_rss();
    size_t sent = 0, target = 32 * MiB;
    int stalled = 0;
    while (sent < target && !stalled) {
        /* the message in frames of at most 16 KiB, the last one 1 byte */
        size_t off = 0;
        while (off < mlen && !stalled) {
            size_t chunk =
                mlen - 1 - off > 16 * KiB ? 16 * KiB : mlen - 1 - off;
            if (off == mlen - 1)
                chunk = 1;
            h2p_frame f;
            while (h2p_window(&p, 1) < (int64_t)chunk) {
                int t = h2p_read_frame(&p, 1000, &f);
                if (t == -2) { /* a second without credit: held back */
                    stalled = 1;
                    break;
                }
                assert_true(t >= 0);
            }
            if (stalled)
                break;
            assert_int_equal(h2p_data(&p, 1, msg + off, chunk, 0), 0);
            off += chunk;
            sent += chunk;
        }
    }
    size_t rss1 = h2p_rss();
    print_message("accepted %zu bytes of %zu; RSS +%zu KiB\n", sent, target,
                  rss1 > rss0 ? (rss1 - rss0) / KiB : 0);
    assert_true(stalled);
    assert_true(sent <= 1 * MiB); /* one stream window, not a byte more */
    assert_true(sent >= 512 * KiB);
    assert_true(rss1 < rss0 + 16 * MiB);
    open_gate();
    assert_int_equal(h2p_data(&p, 1, NULL, 0, 1), 0);
    assert_int_equal(stream_outcome(&p, 1), 0);
    h2p_close(&p);
    free(msg);
    client c;
    client_open(&c, port);
    assert_int_equal(unary(&c, 5000, NULL, 0), ORPC_OK);
    client_close(&c);
    stop(srv);
}

/* Messages larger than the 1 MiB window still arrive, two at a time on one
 * connection (the window grows for the message the handler waits for; the
 * connection's credit is not held by messages in progress). */
typedef struct big_call {
    client *c;
    int rc;
    int32_t total;
    orpc_code code;
} big_call;

static void send_big(void *arg)
{
    big_call *b = arg;
    Grpc__Testing__TestService_StreamingInputCall_Writer *w;
    orpc_call_opts o = {.timeout_ms = 30000};
    b->rc = grpc__testing__test_service__client__streaming_input_call(b->c->cl,
                                                                      &o, &w);
    if (b->rc != 0)
        return;
    Grpc__Testing__StreamingInputCallRequest req =
        GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
    Grpc__Testing__Payload pl = GRPC__TESTING__PAYLOAD__INIT;
    pl.body.len = 3 * MiB;
    pl.body.data = calloc(1, pl.body.len);
    req.payload = &pl;
    for (int i = 0; i < 2 && b->rc == 0; i++)
        b->rc = grpc__testing__test_service__client__streaming_input_call__send(
            w, &req);
    Grpc__Testing__StreamingInputCallResponse *resp = NULL;
    orpc_status st =
        grpc__testing__test_service__client__streaming_input_call__finish(
            w, &resp);
    b->code = st.code;
    b->total = resp ? resp->aggregated_payload_size : -1;
    orpc_status_clear(&st);
    if (resp)
        grpc__testing__streaming_input_call_response__free_unpacked(resp, NULL);
    free(pl.body.data);
}

static void test_messages_larger_than_the_window(void **state)
{
    (void)state;
    reset();
    int port;
    orpc_server_opts o = {0};
    orpc_server *srv = serve(o, &port);
    client c;
    client_open(&c, port);
    big_call a = {.c = &c}, b = {.c = &c};
    uv_thread_t ta, tb;
    uv_thread_create(&ta, send_big, &a);
    uv_thread_create(&tb, send_big, &b);
    uv_thread_join(&ta);
    uv_thread_join(&tb);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_int_equal(a.code, ORPC_OK);
    assert_int_equal(b.code, ORPC_OK);
    assert_int_equal(a.total, 6 * MiB);
    assert_int_equal(b.total, 6 * MiB);
    client_close(&c);
    stop(srv);
}

/* ====================================================================== */
/* client: hostile servers                                                 */
/* ====================================================================== */

typedef struct rogue {
    int lfd;
    int mode;        /* what it does: see rogue_run() */
    int msgs_sent;   /* messages sent on the first stream */
    int rst_seen;    /* the client reset the stream */
    int streams;     /* request HEADERS seen */
    int second_ok;   /* (header flood) the second call was answered */
    size_t accepted; /* (split) bytes the client let in */
    int stalled;     /* (split) the client stopped granting credit */
    int flood_done;  /* (split) under g_lock: the rogue stopped sending */
} rogue;

enum { ROGUE_ENDLESS, ROGUE_HEADER_FLOOD, ROGUE_REFUSE, ROGUE_SPLIT };

#define RNV(n, v)                                                              \
    {                                                                          \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1,          \
            NGHTTP2_NV_FLAG_NONE                                               \
    }

static const nghttp2_nv resp_head[] = {RNV(":status", "200"),
                                       RNV("content-type", "application/grpc")};
static const nghttp2_nv resp_ok[] = {RNV("grpc-status", "0")};

/* A packed SimpleResponse with |n| bytes of payload, prefixed. */
static uint8_t *packed_response(size_t n, size_t *len)
{
    Grpc__Testing__SimpleResponse r = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    Grpc__Testing__Payload pl = GRPC__TESTING__PAYLOAD__INIT;
    uint8_t *body = calloc(1, n + 1);
    pl.body.data = body;
    pl.body.len = n;
    r.payload = &pl;
    *len = grpc__testing__simple_response__get_packed_size(&r);
    uint8_t *out = malloc(5 + *len);
    h2p_prefix(out, (uint32_t)*len);
    grpc__testing__simple_response__pack(&r, out + 5);
    *len += 5;
    free(body);
    return out;
}

/* Sends |len| bytes on |id| within the client's windows; 1 when the client
 * reset the stream, -1 when stalled or the connection went, 0 when sent. */
static int send_within_window(h2p *p, uint32_t id, const uint8_t *b, size_t len,
                              rogue *r)
{
    size_t off = 0;
    while (off < len) {
        size_t chunk = len - off > 16 * KiB ? 16 * KiB : len - off;
        h2p_frame f;
        while (h2p_window(p, id) < (int64_t)chunk) {
            int t = h2p_read_frame(p, 2000, &f);
            if (t < 0)
                return -1;
            if (t == H2P_RST && f.stream == id) {
                r->rst_seen = 1;
                return 1;
            }
        }
        if (h2p_data(p, id, b + off, chunk, 0) != 0)
            return -1;
        off += chunk;
    }
    return 0;
}

static void rogue_run(void *arg)
{
    rogue *r = arg;
    h2p p;
    h2p_frame f;
    if (h2p_accept(&p, r->lfd, 10000) != 0)
        return;
    for (int i = 0; i < 100000; i++) {
        int t = h2p_read_frame(&p, 5000, &f);
        if (t < 0)
            break;
        if (t == H2P_RST && f.stream == 1)
            r->rst_seen = 1;
        if (t != H2P_HEADERS)
            continue;
        uint32_t id = f.stream;
        h2p_head h;
        h2p_decode(&p, f.payload, f.len, &h);
        r->streams++;
        if (r->mode == ROGUE_REFUSE) {
            uint8_t code[4] = {0, 0, 0, NGHTTP2_REFUSED_STREAM};
            h2p_write_frame(&p, H2P_RST, 0, id, code, 4);
            continue;
        }
        if (r->mode == ROGUE_SPLIT) {
            /* a server stream of 60 KiB messages, each cut so that its
             * last DATA frame carries one byte, to a client that does not
             * read: sent within the windows the client grants, until it
             * grants no more for a second or 32 MiB went in */
            Grpc__Testing__StreamingOutputCallResponse resp =
                GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
            Grpc__Testing__Payload pl = GRPC__TESTING__PAYLOAD__INIT;
            uint8_t *body = calloc(1, 60 * KiB);
            pl.body.data = body;
            pl.body.len = 60 * KiB;
            resp.payload = &pl;
            size_t n =
                grpc__testing__streaming_output_call_response__get_packed_size(
                    &resp);
            uint8_t *m = malloc(5 + n);
            h2p_prefix(m, (uint32_t)n);
            grpc__testing__streaming_output_call_response__pack(&resp, m + 5);
            free(body);
            h2p_headers(&p, id, resp_head, 2, 0);
            while (!r->stalled && r->accepted < 32 * MiB) {
                for (size_t off = 0; off < 5 + n && !r->stalled;) {
                    size_t chunk =
                        5 + n - 1 - off > 16 * KiB ? 16 * KiB : 5 + n - 1 - off;
                    if (off == 5 + n - 1)
                        chunk = 1;
                    while (!r->stalled && h2p_window(&p, id) < (int64_t)chunk)
                        if (h2p_read_frame(&p, 1000, &f) < 0)
                            r->stalled = 1; /* no credit for a second */
                    if (r->stalled || h2p_data(&p, id, m + off, chunk, 0) != 0)
                        break;
                    off += chunk;
                    r->accepted += chunk;
                }
            }
            free(m);
            uv_mutex_lock(&g_lock);
            r->flood_done = 1;
            uv_mutex_unlock(&g_lock);
            h2p_headers(&p, id, resp_ok, 1, 1);
            continue;
        }
        size_t mlen;
        uint8_t *m = packed_response(32 * KiB, &mlen);
        if (r->mode == ROGUE_ENDLESS) {
            /* a unary call answered with message after message */
            h2p_headers(&p, id, resp_head, 2, 0);
            while (r->msgs_sent < 2000) {
                if (send_within_window(&p, id, m, mlen, r) != 0)
                    break;
                r->msgs_sent++;
                /* a reset already on the wire ends the flood */
                while (!r->rst_seen && h2p_read_frame(&p, 0, &f) >= 0)
                    if (f.type == H2P_RST && f.stream == id)
                        r->rst_seen = 1;
                if (r->rst_seen)
                    break;
            }
            if (!r->rst_seen)
                h2p_headers(&p, id, resp_ok, 1, 1);
        } else if (id == 1) { /* ROGUE_HEADER_FLOOD: 600 × 250 bytes */
            nghttp2_nv *nv = calloc(602, sizeof(*nv));
            char(*names)[16] = calloc(600, 16);
            static char value[201];
            memset(value, 'v', 200);
            nv[0] = resp_head[0];
            nv[1] = resp_head[1];
            for (int k = 0; k < 600; k++) {
                snprintf(names[k], 16, "x-flood-%d", k);
                nv[2 + k].name = (uint8_t *)names[k];
                nv[2 + k].namelen = strlen(names[k]);
                nv[2 + k].value = (uint8_t *)value;
                nv[2 + k].valuelen = 200;
                nv[2 + k].flags = NGHTTP2_NV_FLAG_NO_INDEX;
            }
            h2p_headers(&p, id, nv, 602, 0);
            free(nv);
            free(names);
            send_within_window(&p, id, m, mlen, r);
            h2p_headers(&p, id, resp_ok, 1, 1);
        } else { /* the second call: a proper answer */
            h2p_headers(&p, id, resp_head, 2, 0);
            if (send_within_window(&p, id, m, mlen, r) == 0 &&
                h2p_headers(&p, id, resp_ok, 1, 1) == 0)
                r->second_ok = 1;
        }
        free(m);
    }
    h2p_close(&p);
}

static void rogue_start(rogue *r, int mode, uv_thread_t *t, client *c)
{
    int port;
    memset(r, 0, sizeof(*r));
    r->mode = mode;
    r->lfd = h2p_listen(&port);
    assert_true(r->lfd >= 0);
    uv_thread_create(t, rogue_run, r);
    client_open(c, port);
}

static void rogue_end(rogue *r, uv_thread_t *t, client *c)
{
    client_close(c); /* closes the connection: the rogue's read ends */
    uv_thread_join(t);
    close(r->lfd);
}

/* A unary call answered with messages and no trailers: the second message
 * ends the call INTERNAL at once (the client resets the stream), instead
 * of being credited and queued until the server stops. */
static void test_unary_endless_replies(void **state)
{
    (void)state;
    rogue r;
    uv_thread_t t;
    client c;
    rogue_start(&r, ROGUE_ENDLESS, &t, &c);
    char msg[256];
    assert_int_equal(unary(&c, 20000, msg, sizeof(msg)), ORPC_INTERNAL);
    assert_non_null(strstr(msg, "more than one response"));
    rogue_end(&r, &t, &c);
    print_message("the rogue sent %d messages before the reset\n", r.msgs_sent);
    assert_true(r.rst_seen);
    assert_true(r.msgs_sent >= 2);
    assert_true(r.msgs_sent < 100); /* of 2000 */
}

/* Response headers far past max_header_list_size (16 KiB): the call ends
 * RESOURCE_EXHAUSTED without keeping them, and the connection serves the
 * next call. */
static void test_response_header_flood(void **state)
{
    (void)state;
    rogue r;
    uv_thread_t t;
    client c;
    rogue_start(&r, ROGUE_HEADER_FLOOD, &t, &c);
    char msg[256];
    assert_int_equal(unary(&c, 20000, msg, sizeof(msg)),
                     ORPC_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(msg, "header list"));
    assert_int_equal(unary(&c, 20000, NULL, 0), ORPC_OK);
    rogue_end(&r, &t, &c);
    assert_int_equal(r.streams, 2); /* one connection, both calls */
    assert_int_equal(r.second_ok, 1);
}

/* The client side of the split-message attack: a server stream cut so each
 * message's last frame has 1 byte, read by nobody.  The channel holds every
 * byte of an unread message against the stream window, so the server runs
 * out of credit at one window (it used to get all but 1 byte per message
 * back at once). */
static void test_client_holds_split_messages(void **state)
{
    (void)state;
    rogue r;
    uv_thread_t t;
    client c;
    rogue_start(&r, ROGUE_SPLIT, &t, &c);
    Grpc__Testing__StreamingOutputCallRequest req =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__TestService_StreamingOutputCall_Reader *rd;
    orpc_call_opts o = {.timeout_ms = 60000};
    size_t rss0 = h2p_rss();
    assert_int_equal(grpc__testing__test_service__client__streaming_output_call(
                         c.cl, &req, &o, &rd),
                     0);
    int done = 0; /* read nothing until the rogue stops (at most 60 s) */
    for (int i = 0; i < 1200 && !done; i++) {
        uv_mutex_lock(&g_lock);
        done = r.flood_done;
        uv_mutex_unlock(&g_lock);
        if (!done)
            usleep(50 * 1000);
    }
    size_t rss1 = h2p_rss();
    grpc__testing__test_service__client__streaming_output_call__cancel(rd);
    orpc_status st =
        grpc__testing__test_service__client__streaming_output_call__finish(rd);
    orpc_status_clear(&st);
    rogue_end(&r, &t, &c);
    print_message("client accepted %zu bytes; RSS +%zu KiB\n", r.accepted,
                  rss1 > rss0 ? (rss1 - rss0) / KiB : 0);
    assert_true(done);
    assert_true(r.stalled);
    assert_true(r.accepted <= 1 * MiB);
    assert_true(r.accepted >= 512 * KiB);
}

/* A server that refuses every stream: gRFC A6 allows one transparent retry,
 * then the call ends UNAVAILABLE (it used to retry until its deadline). */
static void test_refused_stream_retried_once(void **state)
{
    (void)state;
    rogue r;
    uv_thread_t t;
    client c;
    rogue_start(&r, ROGUE_REFUSE, &t, &c);
    char msg[256];
    assert_int_equal(unary(&c, 5000, msg, sizeof(msg)), ORPC_UNAVAILABLE);
    assert_non_null(strstr(msg, "refused"));
    rogue_end(&r, &t, &c);
    assert_int_equal(r.streams, 2);
}

/* A -bin header that is not base64 fails the call before any policy or
 * handler sees it: dropping it silently would let a caller dodge a deny
 * rule on that header. */
static void test_malformed_bin_metadata(void **state)
{
    (void)state;
    reset();
    int port;
    orpc_server_opts o = {0};
    orpc_server *srv = serve(o, &port);
    h2p p;
    assert_int_equal(h2p_dial(&p, port), 0);
    nghttp2_nv nv[] = {
        RNV(":method", "POST"),
        RNV(":scheme", "http"),
        RNV(":path", "/grpc.testing.TestService/UnaryCall"),
        RNV(":authority", "localhost"),
        RNV("te", "trailers"),
        RNV("content-type", "application/grpc"),
        RNV("x-token-bin", "!!not base64!!"),
    };
    assert_int_equal(h2p_headers(&p, 1, nv, 7, 0), 0);
    uint8_t empty[5];
    h2p_prefix(empty, 0);
    assert_int_equal(h2p_data(&p, 1, empty, 5, 1), 0);
    assert_int_equal(stream_outcome(&p, 1), ORPC_INTERNAL);
    uv_mutex_lock(&g_lock);
    assert_int_equal(g_entered, 0); /* the handler never ran */
    uv_mutex_unlock(&g_lock);
    h2p_close(&p);
    stop(srv);
}

/* ====================================================================== */
/* scheduling and overload                                                 */
/* ====================================================================== */

/* 3 connections × 80 bidi calls that send HEADERS and nothing else: each
 * holds a worker, yet every unary call of another client is served. */
static void test_idle_streams_do_not_starve(void **state)
{
    (void)state;
    reset();
    int port;
    orpc_server_opts o = {.worker_threads = 2};
    orpc_server *srv = serve(o, &port);
    h2p idle[3];
    for (int k = 0; k < 3; k++) {
        assert_int_equal(h2p_dial(&idle[k], port), 0);
        for (uint32_t s = 1; s < 160; s += 2)
            assert_int_equal(h2p_request(&idle[k], s, FULL_DUPLEX, 0), 0);
    }
    assert_int_equal(wait_entered(240), 240);
    client c;
    client_open(&c, port);
    open_gate(); /* the unary handler must not wait: only the streams idle */
    uv_mutex_lock(&g_lock);
    g_open = 1;
    uv_mutex_unlock(&g_lock);
    for (int i = 0; i < 20; i++)
        assert_int_equal(unary(&c, 5000, NULL, 0), ORPC_OK);
    client_close(&c);
    for (int k = 0; k < 3; k++)
        h2p_close(&idle[k]);
    stop(srv);
}

/* Past max_blocking_streams, new streaming calls are refused (the client
 * learns nothing was processed); unary calls still find workers. */
static void test_blocking_stream_cap(void **state)
{
    (void)state;
    reset();
    int port;
    orpc_server_opts o = {.worker_threads = 2, .max_blocking_streams = 4};
    orpc_server *srv = serve(o, &port);
    h2p p;
    assert_int_equal(h2p_dial(&p, port), 0);
    for (uint32_t s = 1; s <= 7; s += 2)
        assert_int_equal(h2p_request(&p, s, FULL_DUPLEX, 0), 0);
    assert_int_equal(wait_entered(4), 4);
    assert_int_equal(h2p_request(&p, 9, FULL_DUPLEX, 0), 0);
    assert_int_equal(stream_outcome(&p, 9), 1000 + NGHTTP2_REFUSED_STREAM);
    client c;
    client_open(&c, port);
    uv_mutex_lock(&g_lock);
    g_open = 1;
    uv_mutex_unlock(&g_lock);
    assert_int_equal(unary(&c, 5000, NULL, 0), ORPC_OK);
    client_close(&c);
    h2p_close(&p);
    stop(srv);
}

/* max_connections: the third connection is closed before it costs
 * anything; the first two are served. */
static void test_max_connections(void **state)
{
    (void)state;
    reset();
    int port;
    orpc_server_opts o = {.max_connections = 2};
    orpc_server *srv = serve(o, &port);
    h2p a, b, x;
    h2p_frame f;
    assert_int_equal(h2p_dial(&a, port), 0);
    assert_int_equal(h2p_read_frame(&a, 10000, &f), H2P_SETTINGS);
    assert_int_equal(h2p_dial(&b, port), 0);
    assert_int_equal(h2p_read_frame(&b, 10000, &f), H2P_SETTINGS);
    int rc = h2p_dial(&x, port); /* accepted, then closed at once */
    if (rc == 0)
        rc = h2p_read_frame(&x, 10000, &f) == -1 ? -2 : 0;
    assert_int_equal(rc, -2);
    h2p_close(&x);
    uv_mutex_lock(&g_lock);
    g_open = 1;
    uv_mutex_unlock(&g_lock);
    assert_int_equal(
        h2p_request(&b, 1, "/grpc.testing.TestService/UnaryCall", 0), 0);
    uint8_t empty[5];
    h2p_prefix(empty, 0);
    assert_int_equal(h2p_data(&b, 1, empty, 5, 1), 0);
    assert_int_equal(stream_outcome(&b, 1), 0);
    h2p_close(&a);
    h2p_close(&b);
    stop(srv);
}

/* max_concurrent_calls: with two calls in their handlers a third is
 * refused (UNAVAILABLE, after the one transparent retry); the two finish. */
static void test_max_concurrent_calls(void **state)
{
    (void)state;
    reset();
    int port;
    orpc_server_opts o = {.max_concurrent_calls = 2};
    orpc_server *srv = serve(o, &port);
    client c;
    client_open(&c, port);
    pending p1, p2;
    pending_start(&p1, &c);
    pending_start(&p2, &c);
    assert_int_equal(wait_entered(2), 2);
    char msg[256];
    assert_int_equal(unary(&c, 5000, msg, sizeof(msg)), ORPC_UNAVAILABLE);
    open_gate();
    assert_int_equal(pending_wait(&p1), ORPC_OK);
    assert_int_equal(pending_wait(&p2), ORPC_OK);
    assert_int_equal(unary(&c, 5000, NULL, 0), ORPC_OK);
    client_close(&c);
    stop(srv);
}

/* max_queued_calls: one worker busy, one call queued, the next is shed
 * RESOURCE_EXHAUSTED; the busy and the queued ones are served. */
static void test_max_queued_calls(void **state)
{
    (void)state;
    reset();
    int port;
    orpc_server_opts o = {
        .worker_threads = 1, .max_worker_threads = 1, .max_queued_calls = 1};
    orpc_server *srv = serve(o, &port);
    client c;
    client_open(&c, port);
    pending p1, p2;
    pending_start(&p1, &c);
    assert_int_equal(wait_entered(1), 1);
    pending_start(&p2, &c);
    char msg[256];
    /* p2's HEADERS precede the third call's on the connection */
    assert_int_equal(unary(&c, 5000, msg, sizeof(msg)),
                     ORPC_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(msg, "max_queued_calls"));
    open_gate();
    assert_int_equal(pending_wait(&p1), ORPC_OK);
    assert_int_equal(pending_wait(&p2), ORPC_OK);
    client_close(&c);
    stop(srv);
}

/* max_connection_buffer: two streams each with part of a large message
 * (held until complete) exceed the connection's budget: the second ends
 * RESOURCE_EXHAUSTED, the first goes on. */
static void test_connection_buffer_limit(void **state)
{
    (void)state;
    reset();
    int port;
    orpc_server_opts o = {.max_recv_message_size = 1 * MiB,
                          .max_connection_buffer = 256 * KiB};
    orpc_server *srv = serve(o, &port);
    h2p p;
    assert_int_equal(h2p_dial(&p, port), 0);
    size_t mlen;
    uint8_t *msg = packed_request(900 * KiB, &mlen);
    for (uint32_t s = 1; s <= 3; s += 2) {
        assert_int_equal(h2p_request(&p, s, FULL_DUPLEX, 0), 0);
        for (size_t off = 0; off < 200 * KiB; off += 16 * KiB) {
            h2p_frame f;
            for (int i = 0; i < 100 && h2p_window(&p, s) < 16 * (int64_t)KiB;
                 i++)
                assert_true(h2p_read_frame(&p, 5000, &f) >= 0);
            assert_int_equal(h2p_data(&p, s, msg + off, 16 * KiB, 0), 0);
        }
    }
    assert_int_equal(stream_outcome(&p, 3), ORPC_RESOURCE_EXHAUSTED);
    open_gate();
    /* stream 1 was not shed: its handler ends it when the gate opens */
    assert_int_equal(stream_outcome(&p, 1), ORPC_OK);
    h2p_close(&p);
    free(msg);
    stop(srv);
}

/* A port already in use is an error unless both servers ask to share it. */
static void test_port_sharing_is_explicit(void **state)
{
    (void)state;
    int port, port2;
    char addr[64];
    orpc_server_opts o = {0};
    orpc_server *a = serve(o, &port);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    orpc_server *b;
    orpc_server_opts ob = {.plaintext = 1, .io_threads = 2};
    assert_int_equal(orpc_server_new(&b, &ob, NULL, NULL), 0);
    assert_int_equal(orpc_server_listen(b, addr, &port2, NULL), ORPC_EADDR);
    orpc_server_free(b);
    stop(a);

    o.reuse_port = 1;
    a = serve(o, &port);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    ob.reuse_port = 1;
    assert_int_equal(orpc_server_new(&b, &ob, NULL, NULL), 0);
    assert_int_equal(orpc_server_listen(b, addr, &port2, NULL), 0);
    assert_int_equal(port2, port);
    orpc_server_free(b);
    stop(a);
}

/* ====================================================================== */
/* lifetimes                                                               */
/* ====================================================================== */

/* A handler defers its call; the server is freed; the call is finished
 * afterwards from the test's thread.  It was cancelled and finishing it
 * touches only live memory (ASan checks). */
static void test_deferred_finished_after_free(void **state)
{
    (void)state;
    reset();
    uv_mutex_lock(&g_lock);
    g_defer = 1;
    uv_mutex_unlock(&g_lock);
    int port;
    orpc_server_opts o = {0};
    orpc_server *srv = serve(o, &port);
    client c;
    client_open(&c, port);
    pending p;
    pending_start(&p, &c);
    assert_int_equal(wait_entered(1), 1);
    uv_mutex_lock(&g_lock);
    orpc_ctx *ctx = g_deferred;
    uv_mutex_unlock(&g_lock);
    assert_non_null(ctx);
    orpc_server_free(srv); /* shutdown without grace: connections close */
    assert_true(orpc_ctx_is_cancelled(ctx));
    assert_int_equal(orpc_ctx_finish(ctx, ORPC_STATUS_OK), 0);
    assert_int_equal(pending_wait(&p), ORPC_UNAVAILABLE);
    client_close(&c);
}

/* orpc_channel_unref() during a connect that nobody answers (the listener's
 * accept queue is full, so its SYNs are dropped) returns at once instead of
 * waiting for the kernel to give up. */
static orpc_channel *g_freeing;

static void free_channel(void *arg)
{
    (void)arg;
    orpc_channel_unref(g_freeing);
    entered(); /* counts as the event the test waits for */
}

static void test_channel_free_during_connect(void **state)
{
    (void)state;
    int port;
    int lfd = h2p_listen(&port);
    assert_true(lfd >= 0);
    assert_int_equal(listen(lfd, 0), 0);
    /* fill the accept queue (never accepted) */
    int fill[4];
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)!connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    usleep(100 * 1000); /* let the handshakes of the fillers complete */
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    orpc_channel *ch;
    orpc_channel_opts co = {.plaintext = 1, .connect_timeout_ms = 120000};
    assert_int_equal(orpc_channel_new(&ch, target, &co, NULL, NULL), 0);
    orpc_channel_get_state(ch, 1);
    int st = ORPC_CHANNEL_IDLE;
    for (int i = 0; i < 500 && st != ORPC_CHANNEL_CONNECTING; i++) {
        usleep(10000);
        st = orpc_channel_get_state(ch, 0);
    }
    assert_int_equal(st, ORPC_CHANNEL_CONNECTING);
    uv_thread_t t;
    /* free on a thread; it must be back within wait_entered()'s 30 s (the
     * kernel retries an unanswered SYN for about two minutes) */
    reset();
    g_freeing = ch;
    uv_thread_create(&t, free_channel, NULL);
    assert_int_equal(wait_entered(1), 1); /* not "after the SYN retries" */
    uv_thread_join(&t);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* peers write to sockets orpc has closed */
    uv_mutex_init(&g_lock);
    uv_cond_init(&g_cond);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_messages_held_to_window),
        cmocka_unit_test(test_messages_larger_than_the_window),
        cmocka_unit_test(test_unary_endless_replies),
        cmocka_unit_test(test_response_header_flood),
        cmocka_unit_test(test_refused_stream_retried_once),
        cmocka_unit_test(test_client_holds_split_messages),
        cmocka_unit_test(test_malformed_bin_metadata),
        cmocka_unit_test(test_idle_streams_do_not_starve),
        cmocka_unit_test(test_blocking_stream_cap),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_max_concurrent_calls),
        cmocka_unit_test(test_max_queued_calls),
        cmocka_unit_test(test_connection_buffer_limit),
        cmocka_unit_test(test_port_sharing_is_explicit),
        cmocka_unit_test(test_deferred_finished_after_free),
        cmocka_unit_test(test_channel_free_during_connect),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    uv_cond_destroy(&g_cond);
    uv_mutex_destroy(&g_lock);
    return rc;
}
