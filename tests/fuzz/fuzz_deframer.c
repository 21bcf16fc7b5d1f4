/*
 * fuzz_deframer.c — libFuzzer target for the length-prefixed message
 * deframer (orpc__deframer_feed), checked against a trivial reference
 * decoder that reads the same stream in one piece.
 *
 * Input layout:
 *   byte 0-1   max message length (little-endian, 0-65535)
 *   byte 2     k = number of piece-size bytes (mod 32)
 *   k bytes    piece sizes (0-255), used in a cycle; 0 feeds an empty piece
 *   rest       the stream
 *
 * Checked: every message the reference finds comes out, in order, with its
 * flag and bytes; a body that lies within one piece is returned in place,
 * otherwise from the deframer's buffer, whose capacity never exceeds max;
 * the error (ORPC_EPROTO for a bad flag, ORPC_ETOOBIG over max) arrives
 * exactly when the reference says and is sticky; consumed counts are sane;
 * orpc__deframer_partial() agrees at the end.
 *
 * Built with -DORPC_FUZZ_STANDALONE it has a main() (standalone.h) that
 * runs the target over the files named on the command line, or over a fixed
 * set of generated inputs (fixed seed) when there are none: a regression
 * test.
 * "-write-seeds DIR" also saves those inputs in DIR, a seed corpus for
 * libFuzzer (which rarely finds, say, a valid gzip CRC on its own).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "fuzz.h"
#include "wire.h"

/* What the reference decoder expects. */
typedef struct ref_msg {
    size_t off; /* of the body in the stream */
    size_t len;
    int flag;
} ref_msg;

typedef struct ref {
    ref_msg *msgs;
    size_t n;
    int err;        /* 0, ORPC_EPROTO or ORPC_ETOOBIG */
    size_t err_end; /* stream offset just after the offending prefix */
    int partial;    /* bytes left over at the end (no error) */
} ref;

static void ref_decode(const uint8_t *s, size_t len, size_t max, ref *r)
{
    size_t pos = 0;
    memset(r, 0, sizeof(*r));
    r->msgs = malloc((len / ORPC__MSG_HEADER + 1) * sizeof(ref_msg));
    CHECK(r->msgs != NULL);
    while (len - pos >= ORPC__MSG_HEADER) {
        const uint8_t *h = s + pos;
        uint32_t n = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 |
                     (uint32_t)h[3] << 8 | h[4];
        if (h[0] > 1 || n > max) {
            r->err = h[0] > 1 ? ORPC_EPROTO : ORPC_ETOOBIG;
            r->err_end = pos + ORPC__MSG_HEADER;
            return;
        }
        if (len - pos - ORPC__MSG_HEADER < n) {
            break;
        }
        r->msgs[r->n].off = pos + ORPC__MSG_HEADER;
        r->msgs[r->n].len = n;
        r->msgs[r->n].flag = h[0];
        r->n++;
        pos += ORPC__MSG_HEADER + n;
    }
    r->partial = pos < len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) {
        return 0;
    }
    size_t max = (size_t)data[0] | (size_t)data[1] << 8;
    size_t k = data[2] % 32;
    if (size - 3 < k) {
        return 0;
    }
    const uint8_t *cuts = data + 3;
    const uint8_t *s = data + 3 + k;
    size_t len = size - 3 - k;
    size_t cut_sum = 0;
    for (size_t i = 0; i < k; i++) {
        cut_sum += cuts[i];
    }
    if (cut_sum == 0) {
        k = 0; /* no progress possible: one piece */
    }

    ref r;
    ref_decode(s, len, max, &r);

    /* Copy each piece into its own allocation so ASan sees any read
     * outside it, and so "in place" can be told from "buffered". */
    orpc__deframer d;
    orpc__deframer_init(&d, max, NULL);
    size_t got = 0, start = 0, ci = 0;
    int failed = 0;
    while (start < len || (len == 0 && ci == 0)) {
        size_t plen = k == 0 ? len - start : cuts[ci % k];
        ci++;
        if (plen > len - start) {
            plen = len - start;
        }
        uint8_t *piece = malloc(plen ? plen : 1);
        CHECK(piece != NULL);
        if (plen > 0) {
            memcpy(piece, s + start, plen);
        }
        size_t off = 0;
        for (;;) {
            size_t used = 99;
            const uint8_t *msg = (const uint8_t *)"x";
            size_t mlen = 99;
            int flag = 99;
            int rc = orpc__deframer_feed(&d, piece + off, plen - off, &used,
                                         &msg, &mlen, &flag);
            CHECK(used <= plen - off);
            off += used;
            if (rc < 0) {
                CHECK(r.err == rc);
                CHECK(got == r.n);
                CHECK(start + off == r.err_end);
                CHECK(msg == NULL && mlen == 0);
                /* Sticky. */
                rc = orpc__deframer_feed(&d, piece, plen, &used, &msg, &mlen,
                                         &flag);
                CHECK(rc == r.err && used == 0);
                failed = 1;
                break;
            }
            if (rc == 0) {
                CHECK(off == plen);
                CHECK(msg == NULL && mlen == 0);
                break;
            }
            CHECK(rc == 1);
            CHECK(got < r.n);
            const ref_msg *m = &r.msgs[got];
            CHECK(mlen == m->len);
            CHECK(flag == m->flag);
            CHECK(mlen <= max);
            CHECK(msg != NULL);
            if (mlen > 0) {
                CHECK(memcmp(msg, s + m->off, mlen) == 0);
            }
            if (m->off >= start && m->off + m->len <= start + plen) {
                CHECK(msg == piece + (m->off - start)); /* zero-copy */
            } else {
                CHECK(msg == d.buf.data);
                CHECK(d.buf.cap <= max);
            }
            /* The message ends where the piece was consumed up to. */
            CHECK(m->off + m->len == start + off);
            got++;
        }
        free(piece);
        start += plen;
        if (failed) {
            break;
        }
    }
    if (!failed) {
        CHECK(r.err == 0);
        CHECK(got == r.n);
        CHECK((orpc__deframer_partial(&d) != 0) == r.partial);
    } else {
        CHECK(!orpc__deframer_partial(&d));
    }
    orpc__deframer_free(&d);
    free(r.msgs);
    return 0;
}

#ifdef ORPC_FUZZ_STANDALONE

/* ---- regression runner: files, or generated inputs --------------------- */

#include "standalone.h"

/* A well-formed stream (max, cuts, messages), optionally spoilt at the end
 * by a bad flag, an over-limit length or a truncation. */
static size_t gen_input(uint32_t *st, uint8_t *out, size_t cap)
{
    size_t max = rng_next(st) % 400;
    size_t k = rng_next(st) % 8;
    size_t len = 0;
    out[len++] = (uint8_t)max;
    out[len++] = (uint8_t)(max >> 8);
    out[len++] = (uint8_t)k;
    for (size_t i = 0; i < k; i++) {
        out[len++] = (uint8_t)(rng_next(st) % 12);
    }
    size_t nmsg = rng_next(st) % 20;
    for (size_t i = 0; i < nmsg; i++) {
        size_t mlen = max == 0 ? 0 : rng_next(st) % (max + 1);
        if (rng_next(st) % 3 == 0) {
            mlen = rng_next(st) % 6; /* many tiny ones */
            if (mlen > max) {
                mlen = max;
            }
        }
        if (len + ORPC__MSG_HEADER + mlen > cap) {
            break;
        }
        orpc__msg_header(out + len, (int)(rng_next(st) & 1), (uint32_t)mlen);
        len += ORPC__MSG_HEADER;
        for (size_t j = 0; j < mlen; j++) {
            out[len++] = (uint8_t)rng_next(st);
        }
    }
    switch (rng_next(st) % 4) {
    case 0: /* bad flag */
        if (len + ORPC__MSG_HEADER <= cap) {
            orpc__msg_header(out + len, 0, 1);
            out[len] = (uint8_t)(2 + rng_next(st) % 254);
            len += ORPC__MSG_HEADER;
        }
        break;
    case 1: /* over the limit */
        if (len + ORPC__MSG_HEADER <= cap) {
            orpc__msg_header(out + len, 1,
                             (uint32_t)max + 1 + rng_next(st) % 1000);
            len += ORPC__MSG_HEADER;
        }
        break;
    case 2: /* truncated */
        if (len > 3 + k) {
            len -= 1 + rng_next(st) % (len - 3 - k);
        }
        break;
    default:
        break;
    }
    return len;
}

/* Input |i| of the run: even ones new from gen_input(), each odd one the
 * input before it with random bytes flipped. */
static size_t next_input(uint32_t *st, int i, uint8_t *buf, size_t len,
                         size_t cap)
{
    if (i % 2 == 0) {
        return gen_input(st, buf, cap);
    }
    for (int j = 0; j < 4 && len > 3; j++) {
        buf[3 + rng_next(st) % (len - 3)] ^= (uint8_t)rng_next(st);
    }
    return len;
}

int main(int argc, char **argv)
{
    /* 50 inputs, each also run flipped. */
    return fuzz_standalone_main(argc, argv, "fuzz_deframer",
                                0x6f727063u /* "orpc" */, 2 * 50, next_input);
}

#endif /* ORPC_FUZZ_STANDALONE */
