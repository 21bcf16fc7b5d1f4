/*
 * h2peer.c — the hand-rolled HTTP/2 peer of h2peer.h: blocking sockets with
 * poll() timeouts, frames built byte by byte, HPACK through nghttp2's
 * deflater and inflater, and the windows the other side grants.
 */
#include "h2peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void init(h2p *p, int fd)
{
    memset(p, 0, sizeof(*p));
    p->fd = fd;
    p->conn_window = 65535;
    p->init_window = 65535;
    nghttp2_hd_deflate_new(&p->def, 4096);
    nghttp2_hd_inflate_new(&p->inf);
}

static int write_all(int fd, const void *b, size_t n)
{
    const uint8_t *q = b;
    while (n > 0) {
        ssize_t w = write(fd, q, n);
        if (w <= 0)
            return -1;
        q += w;
        n -= (size_t)w;
    }
    return 0;
}

int h2p_dial(h2p *p, int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    init(p, fd);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        return -1;
    if (write_all(fd, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN) != 0 ||
        h2p_write_frame(p, H2P_SETTINGS, 0, 0, NULL, 0) != 0)
        return -2;
    return 0;
}

int h2p_listen(int *port)
{
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static int wait_readable(int fd, int timeout_ms)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    int n = poll(&pf, 1, timeout_ms);
    return n > 0 ? 0 : n == 0 ? -2 : -1;
}

int h2p_accept(h2p *p, int lfd, int timeout_ms)
{
    if (wait_readable(lfd, timeout_ms) != 0)
        return -1;
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        return -1;
    init(p, fd);
    uint8_t magic[NGHTTP2_CLIENT_MAGIC_LEN];
    size_t got = 0;
    while (got < sizeof(magic)) {
        if (wait_readable(fd, timeout_ms) != 0)
            return -1;
        ssize_t n = read(fd, magic + got, sizeof(magic) - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    if (memcmp(magic, NGHTTP2_CLIENT_MAGIC, sizeof(magic)) != 0)
        return -1;
    return h2p_write_frame(p, H2P_SETTINGS, 0, 0, NULL, 0);
}

void h2p_close(h2p *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    nghttp2_hd_deflate_del(p->def);
    nghttp2_hd_inflate_del(p->inf);
    p->def = NULL;
    p->inf = NULL;
}

int h2p_write_frame(h2p *p, int type, uint8_t flags, uint32_t stream,
                    const void *payload, size_t len)
{
    uint8_t h[9] = {(uint8_t)(len >> 16),
                    (uint8_t)(len >> 8),
                    (uint8_t)len,
                    (uint8_t)type,
                    flags,
                    (uint8_t)(stream >> 24),
                    (uint8_t)(stream >> 16),
                    (uint8_t)(stream >> 8),
                    (uint8_t)stream};
    if (write_all(p->fd, h, 9) != 0)
        return -1;
    return len > 0 ? write_all(p->fd, payload, len) : 0;
}

static uint32_t be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
           b[3];
}

/* Applies what a frame from the other side means for us. */
static int on_frame(h2p *p, const h2p_frame *f)
{
    if (f->type == H2P_SETTINGS && !(f->flags & 1)) {
        for (size_t i = 0; i + 6 <= f->len; i += 6) {
            unsigned id = (unsigned)f->payload[i] << 8 | f->payload[i + 1];
            if (id == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE)
                p->init_window = be32(f->payload + i + 2);
        }
        return h2p_write_frame(p, H2P_SETTINGS, 1, 0, NULL, 0);
    }
    if (f->type == H2P_PING && !(f->flags & 1) && f->len == 8)
        return h2p_write_frame(p, H2P_PING, 1, 0, f->payload, 8);
    if (f->type == H2P_WINDOW_UPDATE && f->len == 4) {
        int64_t inc = be32(f->payload) & 0x7fffffff;
        if (f->stream == 0)
            p->conn_window += inc;
        else if (f->stream < H2P_MAX_STREAM)
            p->stream_delta[f->stream] += inc;
    }
    return 0;
}

int h2p_read_frame(h2p *p, int timeout_ms, h2p_frame *f)
{
    for (;;) {
        if (p->have >= 9) {
            size_t l =
                (size_t)p->buf[0] << 16 | (size_t)p->buf[1] << 8 | p->buf[2];
            if (l > sizeof(p->frame))
                return -1;
            if (p->have >= 9 + l) {
                f->type = p->buf[3];
                f->flags = p->buf[4];
                f->stream = be32(p->buf + 5) & 0x7fffffff;
                memcpy(p->frame, p->buf + 9, l);
                f->payload = p->frame;
                f->len = l;
                memmove(p->buf, p->buf + 9 + l, p->have - 9 - l);
                p->have -= 9 + l;
                if (on_frame(p, f) != 0)
                    return -1;
                return f->type;
            }
        }
        int w = wait_readable(p->fd, timeout_ms);
        if (w != 0)
            return w;
        ssize_t n = read(p->fd, p->buf + p->have, sizeof(p->buf) - p->have);
        if (n <= 0)
            return -1;
        p->have += (size_t)n;
    }
}

int h2p_headers(h2p *p, uint32_t stream, const nghttp2_nv *nv, size_t n,
                int end_stream)
{
    size_t cap = nghttp2_hd_deflate_bound(p->def, nv, n);
    uint8_t *blk = malloc(cap);
    if (blk == NULL)
        return -1;
    ssize_t len = nghttp2_hd_deflate_hd(p->def, blk, cap, nv, n);
    int rc = len < 0 ? -1 : 0;
    size_t off = 0, max = 16384;
    while (rc == 0 && off < (size_t)len) {
        size_t chunk = (size_t)len - off < max ? (size_t)len - off : max;
        int last = off + chunk == (size_t)len;
        uint8_t fl =
            (uint8_t)((off == 0 && end_stream ? 1 : 0) | (last ? 4 : 0));
        rc = h2p_write_frame(p, off == 0 ? H2P_HEADERS : H2P_CONTINUATION, fl,
                             stream, blk + off, chunk);
        off += chunk;
    }
    free(blk);
    return rc;
}

#define NV(n, v)                                                               \
    {                                                                          \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),              \
            NGHTTP2_NV_FLAG_NONE                                               \
    }

int h2p_request(h2p *p, uint32_t stream, const char *path, int end_stream)
{
    nghttp2_nv nv[] = {
        NV(":method", "POST"), NV(":scheme", "http"),
        NV(":path", path),     NV(":authority", "localhost"),
        NV("te", "trailers"),  NV("content-type", "application/grpc"),
    };
    return h2p_headers(p, stream, nv, sizeof(nv) / sizeof(nv[0]), end_stream);
}

int h2p_decode(h2p *p, const uint8_t *in, size_t len, h2p_head *h)
{
    memset(h, 0, sizeof(*h));
    h->grpc_status = -1;
    while (len > 0) {
        nghttp2_nv nv;
        int fl = 0;
        ssize_t used = nghttp2_hd_inflate_hd2(p->inf, &nv, &fl, in, len, 1);
        if (used < 0)
            return -1;
        in += used;
        len -= (size_t)used;
        if (fl & NGHTTP2_HD_INFLATE_EMIT) {
            h->fields++;
            if (nv.namelen == 11 && memcmp(nv.name, "grpc-status", 11) == 0)
                h->grpc_status = atoi((const char *)nv.value);
            else if (nv.namelen == 7 && memcmp(nv.name, ":status", 7) == 0)
                h->http_status = atoi((const char *)nv.value);
            else if (nv.namelen == 12 &&
                     memcmp(nv.name, "grpc-message", 12) == 0)
                snprintf(h->message, sizeof(h->message), "%.*s",
                         (int)nv.valuelen, nv.value);
        }
        if (fl & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(p->inf);
            break;
        }
        if (used == 0 && !(fl & NGHTTP2_HD_INFLATE_EMIT))
            break;
    }
    return 0;
}

int h2p_data(h2p *p, uint32_t stream, const void *data, size_t len, int end)
{
    p->conn_window -= (int64_t)len;
    if (stream < H2P_MAX_STREAM)
        p->stream_delta[stream] -= (int64_t)len;
    return h2p_write_frame(p, H2P_DATA, end ? 1 : 0, stream, data, len);
}

int64_t h2p_window(const h2p *p, uint32_t stream)
{
    int64_t s =
        stream < H2P_MAX_STREAM ? p->init_window + p->stream_delta[stream] : 0;
    return s < p->conn_window ? s : p->conn_window;
}

void h2p_prefix(uint8_t out[5], uint32_t len)
{
    out[0] = 0;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}

int h2p_goaway(h2p *p, uint32_t last_stream, uint32_t error)
{
    uint8_t b[8] = {(uint8_t)(last_stream >> 24 & 0x7f),
                    (uint8_t)(last_stream >> 16),
                    (uint8_t)(last_stream >> 8),
                    (uint8_t)last_stream,
                    (uint8_t)(error >> 24),
                    (uint8_t)(error >> 16),
                    (uint8_t)(error >> 8),
                    (uint8_t)error};
    return h2p_write_frame(p, H2P_GOAWAY, 0, 0, b, sizeof b);
}

int h2p_grpc_ok(h2p *p, uint32_t stream, const void *msg, size_t len)
{
    nghttp2_nv head[] = {NV(":status", "200"),
                         NV("content-type", "application/grpc")};
    nghttp2_nv trailers[] = {NV("grpc-status", "0")};
    uint8_t *m = malloc(5 + len);
    if (m == NULL)
        return -1;
    h2p_prefix(m, (uint32_t)len);
    if (len > 0)
        memcpy(m + 5, msg, len);
    int rc = h2p_headers(p, stream, head, 2, 0);
    if (rc == 0)
        rc = h2p_data(p, stream, m, 5 + len, 0);
    if (rc == 0)
        rc = h2p_headers(p, stream, trailers, 1, 1);
    free(m);
    return rc;
}

size_t h2p_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0, rss = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%lu %lu", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}
