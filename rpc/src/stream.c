/*
 * stream.c — inbound message assembly and flow-control accounting for one
 * gRPC stream, the same for the server's requests and the channel's
 * responses.  stream.h says where each byte is charged and why; this file
 * is the only place that calls nghttp2_session_consume*() for messages.
 *
 * Before this engine each side had its own deframe loop that held back only
 * the bytes of the DATA frame that completed a message: a peer that cut
 * every message so that its last frame carried one byte got the rest of
 * the window back at once, and could queue unbounded messages behind a
 * handler that did not read.
 */
#include "stream.h"

#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/mem.h"

void orpc__in_init(orpc__instream *in, uv_mutex_t *lock, uv_cond_t *cond,
                   const orpc_mem *mem, ProtobufCAllocator *pb,
                   size_t max_message, int32_t window, size_t *conn_partial,
                   size_t conn_budget)
{
    memset(in, 0, sizeof(*in));
    in->lock = lock;
    in->cond = cond;
    in->mem = mem;
    in->pb = pb;
    orpc__deframer_init(&in->deframer, max_message, mem);
    in->window = window;
    in->conn_partial = conn_partial;
    in->conn_budget = conn_budget;
}

void orpc__in_discard(nghttp2_session *s, int32_t id, size_t len)
{
    if (s != NULL && len > 0)
        nghttp2_session_consume(s, id, len);
}

/* Raises the stream window to fit the message in progress when nothing is
 * queued: the application is waiting for exactly this message. */
static void grow_window(orpc__instream *in, nghttp2_session *s, int32_t id,
                        size_t queued)
{
    size_t need = orpc__deframer_body_len(&in->deframer);
    if (queued > 0 || need <= (size_t)in->window || need > INT32_MAX)
        return;
    if (nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, id,
                                              (int32_t)need) == 0)
        in->window = (int32_t)need;
}

/* The partial message's bytes leave the connection's partial count. */
static void drop_partial(orpc__instream *in)
{
    if (in->conn_partial != NULL)
        *in->conn_partial -= in->partial;
    in->partial = 0;
}

/* The call ends inside this chunk: everything not yet accounted goes back
 * (|rest| bytes of the chunk, from the failing step on, and the stream
 * credit of the message in progress). */
static int die(orpc__instream *in, nghttp2_session *s, int32_t id, size_t rest,
               int rc)
{
    orpc__in_discard(s, id, rest);
    if (in->partial > 0)
        nghttp2_session_consume_stream(s, id, in->partial);
    drop_partial(in);
    uv_mutex_lock(in->lock);
    in->dead = 1; /* under the lock: takers read it */
    uv_mutex_unlock(in->lock);
    return rc;
}

int orpc__in_data(orpc__instream *in, nghttp2_session *s, int32_t id,
                  const uint8_t *data, size_t len, orpc__in_decode_fn decode,
                  void *owner)
{
    int queued = 0;
    size_t off = 0;
    if (in->dead) {
        orpc__in_discard(s, id, len);
        return 0;
    }
    while (off < len) {
        size_t used = 0, mlen = 0;
        const uint8_t *msg;
        int compressed;
        size_t start = off;
        int rc = orpc__deframer_feed(&in->deframer, data + off, len - off,
                                     &used, &msg, &mlen, &compressed);
        off += used;
        if (rc < 0)
            return die(in, s, id, len - start, rc);
        if (rc == 0) {
            /* The rest of the chunk is part of a message in progress: its
             * stream credit stays held, its connection credit goes back now
             * and is counted against the connection's budget instead. */
            in->partial += used;
            nghttp2_session_consume_connection(s, used);
            if (in->conn_partial != NULL) {
                *in->conn_partial += used;
                if (in->conn_budget > 0 && *in->conn_partial > in->conn_budget)
                    return die(in, s, id, 0, ORPC_ELIMIT);
            }
            uv_mutex_lock(in->lock);
            size_t q = in->queued;
            uv_mutex_unlock(in->lock);
            grow_window(in, s, id, q);
            break;
        }
        /* A whole message: the bytes that arrived before this chunk (already
         * back at connection level) and |used| bytes of this one. */
        size_t wire = in->partial + used;
        drop_partial(in);
        ProtobufCMessage *m = NULL;
        int d = decode(owner, msg, mlen, compressed, &m);
        if (d < 0) {
            nghttp2_session_consume_stream(s, id, wire - used);
            return die(in, s, id, len - start, d);
        }
        if (d == 1) { /* kept by the owner: the credit goes back now */
            nghttp2_session_consume_stream(s, id, wire);
            nghttp2_session_consume_connection(s, used);
            uv_mutex_lock(in->lock);
            in->received++;
            uv_mutex_unlock(in->lock);
            continue;
        }
        orpc__inmsg *r = orpc__mem_malloc(in->mem, sizeof(*r));
        if (r == NULL) {
            protobuf_c_message_free_unpacked(m, in->pb);
            nghttp2_session_consume_stream(s, id, wire - used);
            return die(in, s, id, len - start, ORPC_ENOMEM);
        }
        r->next = NULL;
        r->msg = m;
        r->stream_credit = wire;
        r->conn_credit = used;
        r->compressed = compressed;
        uv_mutex_lock(in->lock);
        /* a reader is waiting for exactly this message: hand it off (read
         * |handoff|, not |r|, after the unlock: the reader frees |r|) */
        int handoff = in->waiting > (int)in->queued;
        r->credited = handoff;
        if (in->tail)
            in->tail->next = r;
        else
            in->head = r;
        in->tail = r;
        in->queued++;
        in->received++;
        if (in->waiting > 0)
            uv_cond_broadcast(in->cond);
        uv_mutex_unlock(in->lock);
        if (handoff) {
            nghttp2_session_consume_stream(s, id, wire);
            nghttp2_session_consume_connection(s, used);
        } else {
            in->conn_held += used;
        }
        queued++;
    }
    return queued;
}

orpc__inmsg *orpc__in_take_locked(orpc__instream *in)
{
    orpc__inmsg *r = in->head;
    if (r == NULL)
        return NULL;
    in->head = r->next;
    if (in->head == NULL)
        in->tail = NULL;
    r->next = NULL;
    in->queued--;
    if (!in->dead && !r->credited) { /* else the credit is already back */
        in->ret_stream += r->stream_credit;
        in->ret_conn += r->conn_credit;
    }
    return r;
}

int orpc__in_owed_locked(const orpc__instream *in)
{
    return in->ret_stream > 0 || in->ret_conn > 0;
}

void orpc__in_take_owed_locked(orpc__instream *in, orpc__in_owed *o)
{
    o->stream = in->ret_stream;
    o->conn = in->ret_conn;
    o->queued = in->queued;
    in->ret_stream = in->ret_conn = 0;
}

void orpc__in_give_owed(orpc__instream *in, nghttp2_session *s, int32_t id,
                        const orpc__in_owed *o)
{
    if (s == NULL || in->dead)
        return;
    if (o->stream > 0)
        nghttp2_session_consume_stream(s, id, o->stream);
    if (o->conn > 0) {
        nghttp2_session_consume_connection(s, o->conn);
        in->conn_held -= o->conn;
    }
    grow_window(in, s, id, o->queued);
}

void orpc__in_give_back(orpc__instream *in, nghttp2_session *s, int32_t id)
{
    orpc__in_owed o;
    uv_mutex_lock(in->lock);
    orpc__in_take_owed_locked(in, &o);
    uv_mutex_unlock(in->lock);
    orpc__in_give_owed(in, s, id, &o);
}

void orpc__in_release(orpc__instream *in, nghttp2_session *s)
{
    if (in->lock == NULL)
        return; /* never initialised */
    uv_mutex_lock(in->lock);
    in->dead = 1; /* under the lock: takers read it */
    in->ret_stream = in->ret_conn = 0;
    uv_mutex_unlock(in->lock);
    if (s != NULL && in->conn_held > 0)
        nghttp2_session_consume_connection(s, in->conn_held);
    in->conn_held = 0;
    drop_partial(in);
    in->conn_partial = NULL;
}

int orpc__in_partial(const orpc__instream *in)
{
    return orpc__deframer_partial(&in->deframer);
}

void orpc__in_free(orpc__instream *in)
{
    while (in->head) {
        orpc__inmsg *r = in->head;
        in->head = r->next;
        protobuf_c_message_free_unpacked(r->msg, in->pb);
        orpc__mem_free(in->mem, r);
    }
    in->tail = NULL;
    orpc__deframer_free(&in->deframer);
}
