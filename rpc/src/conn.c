/*
 * conn.c — the transport under every HTTP/2 connection: libuv socket, TLS
 * over memory BIOs, an nghttp2 session fed with mem_recv and drained with
 * mem_send.
 *
 * Design notes:
 * - TLS is a filter between socket and session (an orpc__transport, as is
 *   plaintext).  OpenSSL never sees the socket: ciphertext goes in through
 *   rbio and comes out of wbio, so one code path serves h2c and TLS, and
 *   the handshake is just more bytes.  tls_handshake() is the one place a
 *   handshake ends, for servers and clients alike: ALPN, the peer's
 *   identity and names, the owner's check.
 * - Output: at most one uv_write in flight.  While it is, new frames wait in
 *   nghttp2 (we do not pull them; orpc__conn_pull(), before a server's
 *   GOAWAY, is the exception) and |out| collects only TLS records.  When
 *   |out| passes max_out we stop pulling from nghttp2 altogether: a peer that
 *   does not read makes our data providers stall instead of our memory grow.
 * - Closing: the owner's on_close runs in the uv_close callback, after the
 *   handle is gone, and the connection is freed right after it.
 */
#include "conn.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

#include <openssl/err.h>

#include <orpc/error.h>

#include "common/mem.h"
#include "tls_internal.h"

/* Stop pulling frames from nghttp2 while this much waits to be written. */
#define CONN_MAX_OUT (1024u * 1024u)

static const orpc__transport plain_transport, tls_transport;

/*
 * nghttp2's allocations for a session go through the owner's orpc_mem
 * (nghttp2_session_*_new3 with an nghttp2_mem that forwards to it).  With
 * custom hooks, all of them: the application asked for every allocation,
 * and the page trick below is not for its allocator to second-guess.
 * Without hooks (libc), most go to libc and two do not: the frame buffer a
 * session allocates when it is made (16 KiB: the largest frame plus its
 * header) and its stream table (4 KiB, zeroed), which get pages of their
 * own (ORPC__CONN_PAGES slots).  Fresh anonymous pages cost no memory until
 * written, so the stream table of a connection that never opens a stream
 * costs nothing; and the frame buffer's contents are dead whenever the
 * session has nothing left to send, so an idle connection hands its pages
 * back (orpc__conn_trim()), and so does a stream table whose contents are
 * all zero (some kernels back a read of an untouched page with a real
 * one).  On the heap both stayed resident for ever: about 7 KB of the
 * 14.6 KB an idle connection cost.
 */
#define PAGED_MIN 4096u

static void *paged_alloc(orpc__conn *c, size_t size, int scratch)
{
    for (int i = 0; i < ORPC__CONN_PAGES; i++) {
        if (c->paged[i].ptr != NULL)
            continue;
        size_t len = (size + 4095u) & ~(size_t)4095u;
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        c->paged[i].ptr = p;
        c->paged[i].len = len;
        c->paged[i].scratch = scratch;
        return p;
    }
    return NULL; /* no slot: the caller uses libc */
}

/* The slot holding |ptr|, or -1. */
static int paged_slot(const orpc__conn *c, const void *ptr)
{
    for (int i = 0; ptr != NULL && i < ORPC__CONN_PAGES; i++)
        if (c->paged[i].ptr == ptr)
            return i;
    return -1;
}

static void *h2_malloc(size_t size, void *mem_user_data)
{
    /* only the frame buffer is this large: scratch between frames */
    void *p =
        size >= 4 * PAGED_MIN ? paged_alloc(mem_user_data, size, 1) : NULL;
    return p != NULL ? p : malloc(size);
}

static void h2_free(void *ptr, void *mem_user_data)
{
    orpc__conn *c = mem_user_data;
    int i = paged_slot(c, ptr);
    if (i < 0) {
        free(ptr);
        return;
    }
    munmap(ptr, c->paged[i].len);
    c->paged[i].ptr = NULL;
}

static void *h2_calloc(size_t n, size_t size, void *mem_user_data)
{
    if (size != 0 && n <= SIZE_MAX / size && n * size >= PAGED_MIN) {
        void *p = paged_alloc(mem_user_data, n * size, 0); /* zero already */
        if (p != NULL)
            return p;
    }
    return calloc(n, size);
}

static void *h2_realloc(void *ptr, size_t size, void *mem_user_data)
{
    orpc__conn *c = mem_user_data;
    int i = paged_slot(c, ptr);
    if (i < 0)
        return ptr == NULL ? h2_malloc(size, c) : realloc(ptr, size);
    void *q = malloc(size); /* nghttp2 grows neither; be correct anyway */
    if (q == NULL)
        return NULL;
    memcpy(q, ptr, size < c->paged[i].len ? size : c->paged[i].len);
    h2_free(ptr, c);
    return q;
}

/* The owner's hooks, for an application that gave some. */
static void *h2_hook_malloc(size_t size, void *mem_user_data)
{
    return orpc__mem_malloc(((orpc__conn *)mem_user_data)->mem, size);
}

static void h2_hook_free(void *ptr, void *mem_user_data)
{
    orpc__mem_free(((orpc__conn *)mem_user_data)->mem, ptr);
}

static void *h2_hook_calloc(size_t n, size_t size, void *mem_user_data)
{
    return orpc__mem_calloc(((orpc__conn *)mem_user_data)->mem, n, size);
}

static void *h2_hook_realloc(void *ptr, size_t size, void *mem_user_data)
{
    return orpc__mem_realloc(((orpc__conn *)mem_user_data)->mem, ptr, size);
}

/*
 * Hooks without realloc cannot move a block whose size they do not know
 * (common/mem.h), and nghttp2 does grow some (its priority queue,
 * buffers): each block then carries its size in front.
 */
typedef union h2_sized {
    size_t size;
    max_align_t align_;
} h2_sized;

static void *h2_sized_malloc(size_t size, void *mem_user_data)
{
    orpc__conn *c = mem_user_data;
    if (size > SIZE_MAX - sizeof(h2_sized))
        return NULL;
    h2_sized *h = orpc__mem_malloc(c->mem, sizeof(*h) + size);
    if (h == NULL)
        return NULL;
    h->size = size;
    return h + 1;
}

static void h2_sized_free(void *ptr, void *mem_user_data)
{
    orpc__conn *c = mem_user_data;
    if (ptr != NULL)
        orpc__mem_free(c->mem, (h2_sized *)ptr - 1);
}

static void *h2_sized_calloc(size_t n, size_t size, void *mem_user_data)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = h2_sized_malloc(n * size, mem_user_data);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

static void *h2_sized_realloc(void *ptr, size_t size, void *mem_user_data)
{
    if (ptr == NULL)
        return h2_sized_malloc(size, mem_user_data);
    if (size == 0) {
        h2_sized_free(ptr, mem_user_data);
        return NULL;
    }
    void *q = h2_sized_malloc(size, mem_user_data);
    if (q == NULL)
        return NULL;
    size_t old = ((h2_sized *)ptr - 1)->size;
    memcpy(q, ptr, old < size ? old : size);
    h2_sized_free(ptr, mem_user_data);
    return q;
}

/* Nonzero when |len| bytes at |p| are all zero: such pages can go back to
 * the kernel without changing what the session reads (a private anonymous
 * page comes back zero-filled). */
static int all_zero(const void *p, size_t len)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < len; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

void orpc__conn_trim(orpc__conn *c)
{
    if (c->trimmed || c->writing || c->closing || c->session == NULL ||
        nghttp2_session_want_write(c->session))
        return;
    for (int i = 0; i < ORPC__CONN_PAGES; i++)
        if (c->paged[i].ptr != NULL &&
            (c->paged[i].scratch || all_zero(c->paged[i].ptr, c->paged[i].len)))
            madvise(c->paged[i].ptr, c->paged[i].len, MADV_DONTNEED);
    c->trimmed = 1;
}

static void flush_cb(orpc__flush *f)
{
    orpc__conn_flush((orpc__conn *)((char *)f - offsetof(orpc__conn, flush)));
}

int orpc__conn_init(orpc__conn *c, const orpc_mem *mem, orpc__io *io,
                    int is_pipe, const orpc__conn_hooks *hooks, void *user_data)
{
    int rc;
    memset(c, 0, sizeof(*c));
    c->io = io;
    c->mem = mem;
    c->is_pipe = is_pipe;
    c->hooks = hooks;
    c->user_data = user_data;
    c->max_out = CONN_MAX_OUT;
    c->tp = &plain_transport;
    c->flush.fn = flush_cb;
    orpc__buf_init(&c->out, mem);
    orpc__buf_init(&c->inflight, mem);
    rc = is_pipe ? uv_pipe_init(&io->loop, &c->h.pipe, 0)
                 : uv_tcp_init(&io->loop, &c->h.tcp);
    if (rc != 0)
        return ORPC_ESYS;
    c->h.handle.data = c;
    snprintf(c->peer, sizeof(c->peer), "%s", is_pipe ? "unix:" : "?");
    return 0;
}

void orpc__conn_set_peer_name(orpc__conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[64];
    if (c->is_pipe ||
        uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof(ip));
        snprintf(c->peer, sizeof(c->peer), "[%s]:%u", ip,
                 (unsigned)ntohs(a->sin6_port));
    } else if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof(ip));
        snprintf(c->peer, sizeof(c->peer), "%s:%u", ip,
                 (unsigned)ntohs(a->sin_port));
    }
}

void orpc__conn_kick(orpc__conn *c)
{
    if (!c->closing)
        orpc__io_defer_flush(c->io, &c->flush);
}

static void on_closed(uv_handle_t *h)
{
    orpc__conn *c = h->data;
    if (c->hooks && c->hooks->on_close)
        c->hooks->on_close(c, c->close_reason ? c->close_reason : "closed",
                           c->user_data);
    nghttp2_session_del(c->session);
    if (c->ssl)
        SSL_free(c->ssl);
    orpc__buf_free(&c->out);
    orpc__buf_free(&c->inflight);
    orpc__mem_free(c->mem, c->peer_identity);
    orpc__peer_names_free(c->mem, &c->names);
    orpc__mem_free(c->mem, c);
}

void orpc__conn_close(orpc__conn *c, const char *reason)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->close_reason == NULL)
        c->close_reason = reason;
    orpc__io_cancel_flush(c->io, &c->flush);
    uv_close(&c->h.handle, on_closed);
}

void orpc__conn_goaway_close(orpc__conn *c, const char *reason)
{
    if (!c->close_after_flush)
        c->goaway_pull = 1;
    orpc__conn_close_after_flush(c, reason);
}

void orpc__conn_close_after_flush(orpc__conn *c, const char *reason)
{
    if (c->close_reason == NULL)
        c->close_reason = reason;
    c->close_after_flush = 1;
    orpc__conn_kick(c);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    orpc__conn *c = req->data;
    if (status < 0 && status != UV_ECANCELED)
        orpc__conn_close(c, c->close_reason);
}

void orpc__conn_close_lingering(orpc__conn *c, const char *reason)
{
    c->linger = 1;
    orpc__conn_close_after_flush(c, reason);
}

/* The answer is out: half-close, and keep reading (read_cb drops what
 * arrives) until the peer's FIN or the owner's deadline. */
static void start_lingering(orpc__conn *c)
{
    c->lingering = 1;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, &c->h.stream, shutdown_cb) != 0) {
        orpc__conn_close(c, c->close_reason);
        return;
    }
    orpc__conn_pause_read(c, 0);
}

/* ---- input ------------------------------------------------------------- */

static int feed_session(orpc__conn *c, const uint8_t *p, size_t n)
{
    ssize_t rv = nghttp2_session_mem_recv(c->session, p, n);
    if (rv < 0) {
        /* nghttp2 has queued a GOAWAY where the protocol wants one. */
        orpc__conn_goaway_close(c, nghttp2_strerror((int)rv));
        return -1;
    }
    return 0;
}

/* ---- transports -------------------------------------------------------- */

/* Plaintext to the session, or to the owner's hook while there is none. */
static int feed(orpc__conn *c, const uint8_t *p, size_t n)
{
    if (c->in_hook != NULL)
        return c->in_hook(c, p, n);
    if (c->session == NULL)
        return 0;
    return feed_session(c, p, n);
}

static int plain_input(orpc__conn *c, const uint8_t *p, size_t n)
{
    return feed(c, p, n);
}

static int plain_handshake(orpc__conn *c)
{
    (void)c;
    return 1;
}

static int plain_output(orpc__conn *c, const uint8_t *p, size_t n)
{
    if (orpc__buf_append(&c->out, p, n) != 0) {
        orpc__conn_close(c, "out of memory");
        return -1;
    }
    return 0;
}

static int plain_drain(orpc__conn *c)
{
    (void)c;
    return 0;
}

static const orpc__transport plain_transport = {plain_input, plain_handshake,
                                                plain_output, plain_drain};

/* The one place a TLS handshake ends, for either side: ALPN must be h2,
 * the peer's identity and certificate names are recorded, then the owner
 * may refuse the peer (a client checks the server's SPIFFE ID there). */
static int tls_handshake(orpc__conn *c)
{
    if (c->handshake_done)
        return 1;
    int rc = SSL_do_handshake(c->ssl);
    if (rc != 1) {
        int e = SSL_get_error(c->ssl, rc);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0; /* handshake bytes go out on the flush */
        const char *why = orpc__tls_error_reason(c->ssl, rc);
        ERR_clear_error();
        orpc__conn_close_after_flush(c, why); /* the alert goes out */
        return -1;
    }
    /* (an owner sniffing the protocol takes any ALPN and decides) */
    if (c->in_hook == NULL && !orpc__tls_alpn_is_h2(c->ssl)) {
        orpc__conn_close_after_flush(c, "peer did not negotiate ALPN h2");
        return -1;
    }
    c->handshake_done = 1;
    c->peer_identity = orpc__tls_peer_spiffe_id(c->ssl, c->mem);
    if (orpc__tls_peer_names(c->ssl, c->mem, &c->names) != 0) {
        orpc__conn_close(c, "out of memory");
        return -1;
    }
    if (c->hooks && c->hooks->on_handshake &&
        c->hooks->on_handshake(c, c->user_data) != 0) {
        orpc__conn_close_after_flush(c, "peer refused"); /* unless the hook
                                                            said why */
        return -1;
    }
    return 1;
}

static int tls_input(orpc__conn *c, const uint8_t *data, size_t n)
{
    uint8_t plain[16 * 1024];
    if (n > 0 && BIO_write(SSL_get_rbio(c->ssl), data, (int)n) != (int)n) {
        orpc__conn_close(c, "out of memory");
        return -1;
    }
    int hs = tls_handshake(c);
    if (hs <= 0)
        return hs;
    for (;;) {
        int r = SSL_read(c->ssl, plain, (int)sizeof(plain));
        if (r > 0) {
            if (feed(c, plain, (size_t)r) != 0)
                return -1;
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        if (e == SSL_ERROR_ZERO_RETURN) {
            orpc__conn_close_after_flush(c, "TLS close_notify");
            return -1;
        }
        c->close_reason = orpc__tls_error_reason(c->ssl, r);
        ERR_clear_error();
        orpc__conn_close(c, c->close_reason);
        return -1;
    }
}

static int tls_drain(orpc__conn *c)
{
    BIO *w = SSL_get_wbio(c->ssl);
    size_t pending;
    while ((pending = BIO_ctrl_pending(w)) > 0) {
        if (orpc__buf_reserve(&c->out, pending) != 0)
            return -1;
        int r = BIO_read(w, c->out.data + c->out.len, (int)pending);
        if (r <= 0)
            break;
        c->out.len += (size_t)r;
    }
    return 0;
}

static int tls_output(orpc__conn *c, const uint8_t *p, size_t n)
{
    if (SSL_write(c->ssl, p, (int)n) != (int)n) {
        orpc__conn_close(c, "TLS write failed");
        return -1;
    }
    if (tls_drain(c) != 0) {
        orpc__conn_close(c, "out of memory");
        return -1;
    }
    return 0;
}

static const orpc__transport tls_transport = {tls_input, tls_handshake,
                                              tls_output, tls_drain};

/* ---- socket input ------------------------------------------------------ */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    orpc__conn *c = h->data;
    (void)suggested;
    if (c->io->reading) { /* nested: should not happen; be safe */
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    c->io->reading = 1;
    buf->base = c->io->readbuf;
    buf->len = sizeof(c->io->readbuf);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    orpc__conn *c = s->data;
    if (buf->base == c->io->readbuf)
        c->io->reading = 0;
    if (n == 0)
        return;
    if (n < 0) {
        orpc__conn_close(c, n == UV_EOF ? "connection closed by peer"
                                        : "connection reset");
        return;
    }
    if (c->closing || c->close_after_flush)
        return;
    c->last_activity_ns = orpc__now_ns();
    c->trimmed = 0;
    c->tp->input(c, (const uint8_t *)buf->base, (size_t)n);
    orpc__conn_kick(c);
}

/* ---- output ------------------------------------------------------------ */

static void write_cb(uv_write_t *req, int status)
{
    orpc__conn *c = req->data;
    c->writing = 0;
    c->inflight.len = 0;
    /* An idle connection keeps no output buffers: what is cheap to
     * allocate again per burst is expensive times ten thousand idle
     * connections. */
    if (c->out.len == 0) {
        orpc__buf_free(&c->inflight);
        orpc__buf_free(&c->out);
    }
    if (status < 0) {
        orpc__conn_close(c, "write failed");
        return;
    }
    orpc__conn_kick(c);
}

/* Pulls frames from the session into c->out while there is room.  0, or
 * -1 when the connection is closing. */
static int pull_frames(orpc__conn *c)
{
    while (c->out.len < c->max_out) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->session, &data);
        if (n < 0) {
            orpc__conn_close(c, nghttp2_strerror((int)n));
            return -1;
        }
        if (n == 0)
            break;
        if (c->tp->output(c, data, (size_t)n) != 0)
            return -1;
    }
    return 0;
}

void orpc__conn_pull(orpc__conn *c)
{
    if (c->closing || c->session == NULL || c->close_after_flush ||
        (c->ssl != NULL && !c->handshake_done))
        return;
    if (pull_frames(c) == 0)
        orpc__conn_kick(c);
}

void orpc__conn_flush(orpc__conn *c)
{
    if (c->closing)
        return;
    /* A client starts (or continues) its handshake here; a server's goes
     * on as the client's bytes arrive (tls_input). */
    int ready = c->tp->handshake(c) == 1;
    if (c->closing)
        return;
    /* A connection closing after the flush pulls no more frames (nothing
     * after a refused handshake or a TLS error), except one batch when it
     * closes for a GOAWAY nghttp2 queued (orpc__conn_goaway_close()): only
     * one, so that a session with more to send cannot keep it open. */
    if (!c->writing && ready && (!c->close_after_flush || c->goaway_pull)) {
        c->goaway_pull = 0;
        if (c->session != NULL && pull_frames(c) != 0)
            return;
        if (c->session == NULL && c->out_hook != NULL) {
            c->out_hook(c);
            if (c->closing)
                return;
        }
    }
    if (c->tp->drain(c) != 0) {
        orpc__conn_close(c, "out of memory");
        return;
    }
    if (c->writing)
        return;
    if (c->out.len > 0) {
        /* Most writes complete at once: try that first, and hand libuv only
         * what the socket would not take (libuv then polls for
         * writability, which costs an epoll_ctl per write). */
        uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
        int n = uv_try_write(&c->h.stream, &b, 1);
        if (n < 0 && n != UV_EAGAIN) {
            orpc__conn_close(c, "write failed");
            return;
        }
        size_t done = n > 0 ? (size_t)n : 0;
        if (done == c->out.len) {
            c->out.len = 0;
            if (c->out.cap > 64 * 1024)
                orpc__buf_free(&c->out); /* a burst is over */
            if (c->session == NULL) {
                if (c->close_after_flush || c->out_hook != NULL)
                    orpc__conn_kick(c);
            } else if (nghttp2_session_want_write(c->session) ||
                       c->close_after_flush)
                orpc__conn_kick(c); /* more to pull, or a close to do */
            else if (!nghttp2_session_want_read(c->session))
                orpc__conn_close(c, "session finished");
            return;
        }
        orpc__buf tmp = c->inflight;
        c->inflight = c->out;
        c->out = tmp;
        c->out.len = 0;
        b = uv_buf_init((char *)c->inflight.data + done,
                        (unsigned)(c->inflight.len - done));
        c->wreq.data = c;
        if (uv_write(&c->wreq, &c->h.stream, &b, 1, write_cb) != 0) {
            orpc__conn_close(c, "write failed");
            return;
        }
        c->writing = 1;
        return;
    }
    if (c->close_after_flush) {
        if (!c->linger)
            orpc__conn_close(c, c->close_reason);
        else if (!c->lingering)
            start_lingering(c);
        return;
    }
    if (c->session != NULL && !nghttp2_session_want_read(c->session) &&
        !nghttp2_session_want_write(c->session))
        orpc__conn_close(c, "session finished");
}

int orpc__conn_start(orpc__conn *c, SSL_CTX *ssl_ctx, int server_side,
                     const char *sni, nghttp2_session_callbacks *cbs,
                     nghttp2_option *opt)
{
    if (ssl_ctx != NULL) {
        c->ssl = SSL_new(ssl_ctx);
        BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
        if (c->ssl == NULL || r == NULL || w == NULL) {
            BIO_free(r);
            BIO_free(w);
            return ORPC_ENOMEM;
        }
        BIO_set_mem_eof_return(r, -1);
        BIO_set_mem_eof_return(w, -1);
        SSL_set_bio(c->ssl, r, w);
        c->tp = &tls_transport;
        if (server_side) {
            SSL_set_accept_state(c->ssl);
        } else {
            SSL_set_connect_state(c->ssl);
            if (sni != NULL && orpc__tls_is_dns_name(sni))
                SSL_set_tlsext_host_name(c->ssl, sni);
            if (orpc__tls_client_verify_setup(c->ssl, sni) != 0)
                return ORPC_ETLS;
        }
    }
    if (cbs != NULL && orpc__conn_start_session(c, server_side, cbs, opt) != 0)
        return ORPC_ENOMEM;
    if (uv_read_start(&c->h.stream, alloc_cb, read_cb) != 0)
        return ORPC_ESYS;
    c->last_activity_ns = orpc__now_ns();
    orpc__conn_kick(c);
    return 0;
}

int orpc__conn_start_session(orpc__conn *c, int server_side,
                             nghttp2_session_callbacks *cbs,
                             nghttp2_option *opt)
{
    int rc;
    c->h2mem.mem_user_data = c;
    if (orpc__mem_is_libc(c->mem)) {
        c->h2mem.malloc = h2_malloc;
        c->h2mem.free = h2_free;
        c->h2mem.calloc = h2_calloc;
        c->h2mem.realloc = h2_realloc;
    } else if (c->mem->realloc == NULL) {
        c->h2mem.malloc = h2_sized_malloc;
        c->h2mem.free = h2_sized_free;
        c->h2mem.calloc = h2_sized_calloc;
        c->h2mem.realloc = h2_sized_realloc;
    } else {
        c->h2mem.malloc = h2_hook_malloc;
        c->h2mem.free = h2_hook_free;
        c->h2mem.calloc = h2_hook_calloc;
        c->h2mem.realloc = h2_hook_realloc;
    }
    rc = server_side
             ? nghttp2_session_server_new3(&c->session, cbs, c, opt, &c->h2mem)
             : nghttp2_session_client_new3(&c->session, cbs, c, opt, &c->h2mem);
    if (rc != 0)
        return ORPC_ENOMEM;
    c->in_hook = NULL;
    c->out_hook = NULL;
    return 0;
}

int orpc__conn_write_raw(orpc__conn *c, const void *p, size_t n)
{
    if (c->closing)
        return -1;
    if (n == 0)
        return 0;
    return c->tp->output(c, p, n);
}

size_t orpc__conn_pending_out(const orpc__conn *c)
{
    return c->out.len + (c->writing ? c->inflight.len : 0);
}

void orpc__conn_pause_read(orpc__conn *c, int pause)
{
    if (c->closing || c->read_paused == pause)
        return;
    c->read_paused = pause;
    if (pause)
        uv_read_stop(&c->h.stream);
    else
        uv_read_start(&c->h.stream, alloc_cb, read_cb);
}
