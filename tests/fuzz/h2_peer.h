/*
 * h2_peer.h — what the two HTTP/2 fuzz targets (fuzz_h2_server.c,
 * fuzz_h2_client.c) share: raw HTTP/2 frames written into a buffer (for
 * their generated inputs), a loopback socket that exchanges bytes under a
 * time bound, and a monotonic clock.  Header-only, like fuzz.h, so that
 * each target stays one translation unit.
 *
 * Include after fuzz.h (CHECK()).
 */
#ifndef ORPC_TESTS_FUZZ_H2_PEER_H
#define ORPC_TESTS_FUZZ_H2_PEER_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

enum {
    H2_DATA = 0,
    H2_HEADERS = 1,
    H2_PRIORITY = 2,
    H2_RST_STREAM = 3,
    H2_SETTINGS = 4,
    H2_PUSH_PROMISE = 5,
    H2_PING = 6,
    H2_GOAWAY = 7,
    H2_WINDOW_UPDATE = 8,
    H2_CONTINUATION = 9
};

enum {
    H2_END_STREAM = 0x1,
    H2_ACK = 0x1,
    H2_END_HEADERS = 0x4,
    H2_PADDED = 0x8,
    H2_PRIORITY_FLAG = 0x20
};

/* Milliseconds on the monotonic clock. */
static inline int64_t h2_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends a frame to |buf| (|*len| of |cap| used); does nothing when it
 * does not fit.  Returns 1 if it was appended. */
static inline int h2_put_frame(uint8_t *buf, size_t cap, size_t *len,
                               uint8_t type, uint8_t flags, uint32_t stream,
                               const void *payload, size_t plen)
{
    if (plen > 0xFFFFFF || cap - *len < 9 + plen) {
        return 0;
    }
    uint8_t *h = buf + *len;
    h[0] = (uint8_t)(plen >> 16);
    h[1] = (uint8_t)(plen >> 8);
    h[2] = (uint8_t)plen;
    h[3] = type;
    h[4] = flags;
    h[5] = (uint8_t)(stream >> 24 & 0x7F);
    h[6] = (uint8_t)(stream >> 16);
    h[7] = (uint8_t)(stream >> 8);
    h[8] = (uint8_t)stream;
    if (plen > 0) {
        memcpy(h + 9, payload, plen);
    }
    *len += 9 + plen;
    return 1;
}

/* A 4-byte big-endian value into |p|. */
static inline void h2_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* HPACK-encodes |n| name/value pairs (NUL-terminated strings, in |kv|:
 * name, value, name, value...) with |def| into |out| (|cap| bytes).
 * Returns the length, or 0 when it does not fit. */
static inline size_t h2_hpack(nghttp2_hd_deflater *def, const char *const *kv,
                              size_t n, uint8_t *out, size_t cap)
{
    nghttp2_nv nv[32];
    CHECK(n <= 32);
    for (size_t i = 0; i < n; i++) {
        nv[i].name = (uint8_t *)(uintptr_t)kv[2 * i];
        nv[i].namelen = strlen(kv[2 * i]);
        nv[i].value = (uint8_t *)(uintptr_t)kv[2 * i + 1];
        nv[i].valuelen = strlen(kv[2 * i + 1]);
        nv[i].flags = NGHTTP2_NV_FLAG_NONE;
    }
    ssize_t r = nghttp2_hd_deflate_hd(def, out, cap, nv, n);
    return r < 0 ? 0 : (size_t)r;
}

/* A gRPC message (5-byte prefix, then |body|) into |out| (|cap| bytes).
 * Returns the length, or 0 when it does not fit. */
static inline size_t h2_grpc_msg(uint8_t *out, size_t cap, int compressed,
                                 const uint8_t *body, size_t blen)
{
    if (cap < 5 + blen) {
        return 0;
    }
    out[0] = (uint8_t)(compressed != 0);
    h2_put32(out + 1, (uint32_t)blen);
    if (blen > 0) {
        memcpy(out + 5, body, blen);
    }
    return 5 + blen;
}

/*
 * Writes |n| bytes of |out| to the non-blocking socket |fd| while reading
 * whatever the peer sends (into |in|, |in_cap| bytes, length in |*in_len|;
 * the rest is read and dropped), so that neither side stalls on a full
 * socket buffer.  Stops at EOF or an error from the peer, once the peer has
 * been quiet for |quiet_ms| after everything was written, or at |limit_ms|
 * in all.  Returns 1 if the peer closed (EOF or reset), else 0.
 */
static inline int h2_exchange(int fd, const uint8_t *out, size_t n, uint8_t *in,
                              size_t in_cap, size_t *in_len, int quiet_ms,
                              int limit_ms)
{
    uint8_t scratch[16384];
    size_t off = 0;
    int64_t end = h2_now_ms() + limit_ms;
    int64_t quiet_end = h2_now_ms() + quiet_ms;
    if (in_len != NULL) {
        *in_len = 0;
    }
    for (;;) {
        int64_t now = h2_now_ms();
        if (now >= end || (off == n && now >= quiet_end)) {
            return 0;
        }
        int64_t wait = (off == n ? quiet_end : end) - now;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (off < n) {
            p.events |= POLLOUT;
        }
        int r = poll(&p, 1, (int)wait);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        CHECK(r >= 0);
        if (r == 0) {
            continue;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            uint8_t *dst = scratch;
            size_t room = sizeof(scratch);
            if (in != NULL && *in_len < in_cap) {
                dst = in + *in_len;
                room = in_cap - *in_len;
            }
            ssize_t got = recv(fd, dst, room, 0);
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
                return 1;
            }
            if (got > 0) {
                if (dst != scratch) {
                    *in_len += (size_t)got;
                }
                quiet_end = h2_now_ms() + quiet_ms;
            }
        }
        if (off < n && (p.revents & POLLOUT)) {
            ssize_t w = send(fd, out + off, n - off, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN && errno != EINTR) {
                off = n; /* the peer is gone: read what is left */
            } else if (w > 0) {
                off += (size_t)w;
            }
            if (off == n) {
                quiet_end = h2_now_ms() + quiet_ms;
            }
        }
    }
}

/* Makes |fd| non-blocking. */
static inline void h2_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    CHECK(fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0);
}

#endif /* ORPC_TESTS_FUZZ_H2_PEER_H */
