/*
 * retry.c — retries and hedging of calls of every kind (gRFC A6), as
 * the channel's service config asks for them: attempts,
 * their backoff, the server's pushback, the channel's retry throttling,
 * the buffer budget, and the replay of what a call sent (also for
 * channel_h2.c's transparent retry).
 *
 * Design notes.
 *
 * - One call, several attempts.  An attempt is one HTTP/2 stream of the
 *   same orpc_call: when an attempt ends and the call may be retried,
 *   orpc__retry_check() refills the send queue with what the call sent
 *   (orpc__retry_replay()), lets go of the stream (its nghttp2 user data
 *   is cleared, so nothing more of it reaches the call; reset if our side
 *   is still open), clears what the attempt received, and parks the call
 *   on the channel's backoff list (listed == 3) with its one timer
 *   (call.c) armed for the backoff.  orpc__retry_fire() then enqueues the
 *   call as new.  The caller never sees a failed attempt: not its status,
 *   not its headers (an attempt that may be retried can only have had
 *   Trailers-Only, which channel_h2.c holds back until this file has
 *   decided; on_headers and messages come only after response headers,
 *   which commit the call).
 * - What is replayed.  A unary or server-streaming call has one request
 *   message, given at its start: it keeps a copy (c->req_copy) for its
 *   whole life.  A client- or bidi-streaming call with a retry policy
 *   keeps a copy of every message it sends (c->retry.kept, appended by
 *   orpc_call_send() under the call's lock, in the order of the send
 *   queue) until it commits; so does one without a retry policy, for
 *   the transparent retry alone (channel_h2.c; it lets go of them once that
 *   one retry is used, or at its end), and a hedged one (for the attempts
 *   that start later).  A replay puts copies of them in a fresh
 *   send queue; the half-close follows once the queue is drained, as for
 *   the first attempt (send_closed is the call's, not the attempt's).
 *   Messages sent while the call waits out a backoff go to the refilled
 *   queue and are kept like any other.
 * - Where an attempt ends.  Every status a call can end with goes through
 *   orpc__call_complete(), which asks orpc__retry_check() first: a server's
 *   status, a reset stream, a lost connection, a fail-fast UNAVAILABLE
 *   while the channel cannot connect.  Never retried: a call whose
 *   deadline fired (the deadline covers all attempts), one the application
 *   cancelled, one whose channel is closing.
 * - The rules, in gRPC C-core's order: OK is a success for throttling; a
 *   code not in retryableStatusCodes ends the call; otherwise the failure
 *   is counted (throttling), then the call ends if retries are throttled
 *   (tokens not above half of maxTokens), if it is committed (response
 *   headers came, or what it sent went over the buffer budget), if
 *   maxAttempts attempts have been made, or if the server's pushback says
 *   so (negative or not a number).  A valid pushback sets the delay (and
 *   resets the backoff to initialBackoff); otherwise the delay is random in
 *   [0, backoff] and the backoff grows by the multiplier up to maxBackoff.
 *   A retry that could not start before the deadline is not waited for:
 *   the call ends with the attempt's status at once.
 * - Budget.  With a retry (or hedging) policy, and for a client- or
 *   bidi-streaming call without (the transparent retry), the bytes a call
 *   keeps for replays are counted, per call and per channel: a unary
 *   call's request
 *   up front (one that does not fit makes the call committed from the
 *   start: never retried, never hedged), a streaming call's messages as
 *   they are sent (the first that does not fit commits the call and frees
 *   what it kept).  The bytes go back when the call commits or ends.
 * - Hedging (calls of every kind with a hedgingPolicy).  A hedged call may
 *   have several streams at once, so its attempts are not the call itself
 *   but internal calls of their own (orpc__call_attempt_new(): same
 *   method, request copy or what was sent so far, metadata, deadline),
 *   each with its stream id, receive
 *   state, headers and status, driven by the same code as any call
 *   (channel_h2.c, the balancer, the transparent retry).  The hedged call
 *   (the parent) has no stream: it lists its attempts in flight
 *   (retry.kids), each attempt points back (retry.parent), and its one
 *   timer runs for the next hedge (hedge_due) or its deadline.  What the
 *   caller sees is the union: the parent's status, headers, trailers and
 *   message are the winning attempt's, moved over in hedge_finish(); the
 *   parent's reach is the furthest any attempt went.
 *   + Start: the first attempt at once, the next every hedgingDelay while
 *     fewer than maxAttempts have started, none is committed, pushback has
 *     not said stop and throttling allows (tokens above half of
 *     maxTokens).
 *   + Commit: the first attempt with response headers wins
 *     (orpc__retry_commit() -> hedge_commit()): the others are cancelled
 *     (RST_STREAM CANCEL through orpc__call_fail()) and let go (their
 *     completions no longer reach the parent), no more start.
 *   + An attempt ends (orpc__call_complete() -> orpc__retry_check() ->
 *     hedge_attempt_done(), before the attempt's own completion): the
 *     winner's outcome, OK, or a fatal code (not in nonFatalStatusCodes)
 *     is the call's: the rest are cancelled and the parent completes.  A
 *     non-fatal code counts as a throttling failure and starts the next
 *     attempt at once (after the server's pushback if it gave one;
 *     negative: no more); with none to start, it is dropped while others
 *     are in flight, and is the call's outcome when it was the last.
 *   + The parent ends otherwise (its deadline, a cancel, a channel
 *     closing): hedge_over() cancels the attempts in flight.
 *   + Streams.  What the winner receives reaches the parent as it comes
 *     (orpc__retry_hedge_forward(): its response headers at the commit,
 *     then each message), each message still holding its flow-control
 *     credit on the winner's stream: the parent's task gives it back there
 *     as the application reads (orpc__retry_hedge_give()), so a hedged
 *     stream is flow-controlled as any other.  What a client- or
 *     bidi-streaming application sends goes to the parent's send queue
 *     and is kept (the budget, as for retries); the parent's task
 *     (orpc__retry_hedge_pump()) moves it to every attempt in flight while
 *     their queues have room (an attempt that sends some kicks the task
 *     again), then the half-close; a new attempt starts with copies of
 *     what was kept and has not yet been moved (orpc__retry_hedge_fill()).
 *     A message over the budget commits the call to its oldest attempt
 *     in flight before it is moved (the others are cancelled, no more
 *     start: gRFC A6), as response headers would.  Attempts of a
 *     streaming call keep nothing of their own: a refused one is not
 *     retried transparently but counts as that attempt's failure.
 *   + Lifetimes: attempts hold no reference to the parent; the parent lets
 *     go of each (retry.parent = NULL) before it can end, and holds itself
 *     while it starts one (which may end, and end the call, at once).
 * - Counters (orpc__retry_counts()): retries (attempts beyond a call's
 *   first), hedges (hedged attempts beyond the first), retries and hedges
 *   refused by throttling, transparent retries; atomic, for metrics.
 *
 * Locking theory: |buffered| of orpc__retry_chan is shared (callers'
 * threads reserve, the IO thread or the last reference releases), under
 * its own mutex, never held while calling anything else; it is taken
 * inside a call's lock, never the other way round.  A streaming call's
 * kept messages, |keep| and |budget| are shared between its sender and
 * the IO thread, under the call's lock.  A hedged call's lock and its
 * attempts' are never held together (what moves between them is taken
 * under one and handed over under the other).  The counters are atomic.
 * The rest runs on the channel's IO thread.
 */
#include "channel_internal.h"

#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/mem.h"

int orpc__retry_chan_init(orpc__retry_chan *rc, const orpc_channel_opts *o,
                          const orpc__svc_config *sc)
{
    memset(rc, 0, sizeof(*rc));
    if (uv_mutex_init(&rc->lock) != 0)
        return ORPC_ESYS;
    rc->limit = o->retry_buffer_size ? o->retry_buffer_size
                                     : ORPC__RETRY_CHANNEL_BUFFER;
    rc->per_call = o->per_call_retry_buffer_size ? o->per_call_retry_buffer_size
                                                 : ORPC__RETRY_CALL_BUFFER;
    rc->throttling = orpc__svc_config_throttling(sc, &rc->max_milli_tokens,
                                                 &rc->milli_token_ratio);
    rc->milli_tokens = rc->max_milli_tokens;
    rc->rng = (uv_hrtime() ^ (uint64_t)(uintptr_t)rc) | 1;
    return 0;
}

void orpc__retry_chan_destroy(orpc__retry_chan *rc)
{
    uv_mutex_destroy(&rc->lock);
}

/* A call whose request is one message, given at its start (unary and
 * server-streaming): it keeps a copy (c->req_copy); the others keep what
 * they send (c->retry.kept). */
static int single_request(const orpc_call *c)
{
    return c->method->kind == ORPC_CALL_UNARY ||
           c->method->kind == ORPC_CALL_SERVER_STREAMING;
}

void orpc__retry_call_init(orpc_call *c, const orpc__method_config *mc)
{
    if (mc != NULL && mc->hedging != NULL) {
        c->retry.hedging = mc->hedging;
        c->retry.keep = !single_request(c); /* for the next attempts */
        return;
    }
    if (mc == NULL || mc->retry == NULL) {
        /* the transparent retry alone: kept until the call commits */
        c->retry.keep = !single_request(c);
        return;
    }
    c->retry.policy = mc->retry;
    c->retry.backoff_ns = mc->retry->initial_backoff_ns;
    c->retry.keep = !single_request(c);
}

void orpc__retry_count(orpc_channel *ch, int which)
{
    atomic_fetch_add_explicit(&ch->retry.counts[which], 1,
                              memory_order_relaxed);
}

void orpc__retry_counts(orpc_channel *ch, uint64_t out[4])
{
    for (int i = 0; i < ORPC__RETRY_N_COUNTS; i++)
        out[i] =
            atomic_load_explicit(&ch->retry.counts[i], memory_order_relaxed);
}

/* Takes |len| more bytes of the budget for the call (whose |budget| the
 * caller guards): 1, or 0 when they do not fit, per call or in total. */
static int budget_take(orpc_call *c, size_t len)
{
    orpc__retry_chan *rc = &c->ch->retry;
    size_t mine = c->retry.budget;
    if (len > rc->per_call || mine > rc->per_call - len)
        return 0;
    uv_mutex_lock(&rc->lock);
    int ok = len <= rc->limit - rc->buffered && rc->buffered <= rc->limit;
    if (ok)
        rc->buffered += len;
    uv_mutex_unlock(&rc->lock);
    if (ok)
        c->retry.budget = mine + len;
    return ok;
}

void orpc__retry_reserve(orpc_call *c, size_t len)
{
    if (c->retry.policy == NULL && c->retry.hedging == NULL)
        return;
    if (!budget_take(c, len))
        c->retry.committed = 1; /* over the budget: never replayed */
}

/* Gives the budget back and frees the kept messages (call lock held). */
static void release_locked(orpc_call *c)
{
    c->retry.keep = 0;
    while (c->retry.kept != NULL) {
        orpc__chunk *k = c->retry.kept;
        c->retry.kept = k->next;
        orpc__mem_free(&c->ch->mem, k);
    }
    c->retry.kept_tail = NULL;
    size_t n = c->retry.budget;
    if (n == 0)
        return;
    c->retry.budget = 0;
    orpc__retry_chan *rc = &c->ch->retry;
    uv_mutex_lock(&rc->lock);
    rc->buffered -= n;
    uv_mutex_unlock(&rc->lock);
}

void orpc__retry_release(orpc_call *c)
{
    uv_mutex_lock(&c->lock);
    release_locked(c);
    uv_mutex_unlock(&c->lock);
}

/* A copy of |k| for a send queue, or NULL. */
static orpc__chunk *chunk_copy(orpc_call *c, const orpc__chunk *k)
{
    orpc__chunk *copy = orpc__mem_malloc(&c->ch->mem, sizeof(*k) + k->len);
    if (copy != NULL) {
        memcpy(copy, k, sizeof(*k) + k->len);
        copy->off = 0;
        copy->next = NULL;
    }
    return copy;
}

void orpc__retry_keep_locked(orpc_call *c, const orpc__chunk *msg)
{
    if (!c->retry.keep)
        return;
    orpc__chunk *copy = NULL;
    if (!budget_take(c, msg->len) || (copy = chunk_copy(c, msg)) == NULL) {
        release_locked(c); /* over the budget: committed (gRFC A6) */
        return;
    }
    if (c->retry.kept_tail != NULL)
        c->retry.kept_tail->next = copy;
    else
        c->retry.kept = copy;
    c->retry.kept_tail = copy;
}

static void hedge_commit(orpc_call *k);

void orpc__retry_commit(orpc_call *c)
{
    c->retry.committed = 1;
    orpc__retry_release(c);
    if (c->retry.parent != NULL)
        hedge_commit(c); /* a hedged attempt: the first to commit wins */
}

int orpc__retry_can_replay(orpc_call *c)
{
    if (single_request(c))
        return c->req_copy != NULL;
    uv_mutex_lock(&c->lock);
    int keep = c->retry.keep;
    uv_mutex_unlock(&c->lock);
    return keep;
}

int orpc__retry_replay(orpc_call *c)
{
    orpc__sendq q = {.mem = &c->ch->mem};
    /* (under the lock: a sender adds to |kept| and to the queue at once) */
    uv_mutex_lock(&c->lock);
    const orpc__chunk *from = single_request(c) ? c->req_copy : c->retry.kept;
    for (; from != NULL; from = from->next) {
        orpc__chunk *copy = chunk_copy(c, from);
        if (copy == NULL) {
            uv_mutex_unlock(&c->lock);
            orpc__sendq_clear(&q);
            return ORPC_ENOMEM;
        }
        orpc__sendq_push(&q, copy);
        if (single_request(c))
            break; /* (one message: its |next| means nothing) */
    }
    orpc__sendq_clear(&c->sendq);
    c->sendq.head = q.head;
    c->sendq.tail = q.tail;
    c->sendq.bytes = q.bytes;
    uv_mutex_unlock(&c->lock);
    return 0;
}

void orpc__retry_pushback(orpc_call *c, const uint8_t *v, size_t len)
{
    /* gRFC A6: an int32 of milliseconds; negative or anything else that
     * is not a number means "do not retry". */
    int64_t ms = 0;
    size_t i = 0;
    int ok = len > 0 && len <= 10;
    for (; ok && i < len; i++) {
        ok = v[i] >= '0' && v[i] <= '9';
        ms = ms * 10 + (v[i] - '0');
    }
    if (ok && ms <= INT32_MAX) {
        c->retry.pushback = 1;
        c->retry.pushback_ms = ms;
    } else {
        c->retry.pushback = -1;
    }
}

/* Throttling (gRFC A6): a success adds tokenRatio, a failure takes one;
 * retries go on while more than half of maxTokens is left. */
static void throttle_success(orpc__retry_chan *rc)
{
    if (!rc->throttling)
        return;
    rc->milli_tokens += rc->milli_token_ratio;
    if (rc->milli_tokens > rc->max_milli_tokens)
        rc->milli_tokens = rc->max_milli_tokens;
}

/* Nonzero while retries and hedges may go on. */
static int throttle_allows(const orpc__retry_chan *rc)
{
    return !rc->throttling || rc->milli_tokens > rc->max_milli_tokens / 2;
}

/* Counts a failure; nonzero when retries may still go on. */
static int throttle_failure(orpc__retry_chan *rc)
{
    if (rc->throttling) {
        rc->milli_tokens -= 1000;
        if (rc->milli_tokens < 0)
            rc->milli_tokens = 0;
    }
    return throttle_allows(rc);
}

/* The application cancelled the call. */
static int cancelled(orpc_call *c)
{
    uv_mutex_lock(&c->lock);
    int r = c->cancel_requested;
    uv_mutex_unlock(&c->lock);
    return r;
}

static uint64_t next_random(orpc__retry_chan *rc)
{
    rc->rng ^= rc->rng << 13;
    rc->rng ^= rc->rng >> 7;
    rc->rng ^= rc->rng << 17;
    return rc->rng;
}

/* Lets go of the attempt's stream and forgets what it received: the call
 * is as it was before its first submit (orpc__retry_replay() has queued
 * its request again). */
static void attempt_clear(orpc_call *c)
{
    orpc__conn *conn = c->conn;
    if (c->stream_open && conn != NULL && conn->session != NULL) {
        orpc__call_unlist(c); /* (a reset that closes the connection
                                 must not find the call on its list) */
        if (!c->reset_sent && !nghttp2_session_get_stream_local_close(
                                  conn->session, c->stream_id))
            orpc__call_reset(c);
        nghttp2_session_set_stream_user_data(conn->session, c->stream_id, NULL);
    }
    orpc__call_unlist(c);
    c->conn = NULL;
    c->cc = NULL;
    c->stream_id = 0;
    c->submitted = 0;
    c->stream_open = 0;
    c->reset_sent = 0;
    c->resp_gzip = 0;
    c->header_bytes = 0;
    c->headers_too_big = 0;
    c->http_status = 0;
    c->in_trailers = 0;
    c->got_status = 0;
    c->status_code = 0;
    c->response_bytes = 0;
    /* no message came (nothing does before the response headers); the
     * connection's partial-bytes counter may go with the connection */
    c->in.conn_partial = NULL;
    orpc__buf_free(&c->status_msg);
    orpc__buf_free(&c->status_details);
    c->retry.pushback = 0;
    c->retry.final = 0;
    uv_mutex_lock(&c->lock);
    orpc_metadata_free(c->headers);
    orpc_metadata_free(c->trailers);
    c->headers = c->trailers = NULL;
    c->headers_ready = 0;
    uv_mutex_unlock(&c->lock);
}

/* Why the call ends with this attempt; NULL when it may be retried. */
static const char *no_retry(orpc_call *c, const orpc_status *st)
{
    orpc__retry_call *r = &c->retry;
    orpc__retry_chan *rc = &c->ch->retry;
    if (cancelled(c))
        return "cancelled"; /* (not an outcome the server chose) */
    if (c->ch->stopping)
        return "channel closing";
    if (st->code == ORPC_OK) {
        throttle_success(rc);
        return "OK";
    }
    if ((unsigned)st->code >= ORPC_CODE_COUNT ||
        !(r->policy->codes & (1u << st->code)))
        return "not a retryable code";
    if (!throttle_failure(rc)) {
        orpc__retry_count(c->ch, ORPC__RETRY_N_THROTTLED);
        return "throttled";
    }
    if (r->committed)
        return "committed";
    if (r->attempts >= r->policy->max_attempts)
        return "maxAttempts reached";
    if (r->pushback < 0)
        return "server pushback";
    if (!orpc__retry_can_replay(c))
        return single_request(c) ? "no request copy"
                                 : "committed (over the buffer budget)";
    return NULL;
}

static int hedge_attempt_done(orpc_call *k, orpc_status *st);
static void hedge_over(orpc_call *p);

int orpc__retry_check(orpc_call *c, orpc_status *st)
{
    orpc__retry_call *r = &c->retry;
    orpc__retry_chan *rc = &c->ch->retry;
    if (r->parent != NULL && !c->io_finished)
        return hedge_attempt_done(c, st);
    if (r->hedging != NULL && !c->io_finished) {
        hedge_over(c);
        return 0;
    }
    if (r->policy == NULL || r->final || c->io_finished)
        return 0;
    r->final = 1;
    r->attempts++;
    const char *why = no_retry(c, st);
    int64_t delay_ns = 0;
    if (why == NULL) {
        if (r->pushback > 0) {
            delay_ns = r->pushback_ms * 1000000;
            r->backoff_ns = r->policy->initial_backoff_ns;
        } else {
            uint64_t span = (uint64_t)r->backoff_ns;
            delay_ns = (int64_t)(next_random(rc) % (span + 1));
            double next = (double)r->backoff_ns * r->policy->backoff_multiplier;
            r->backoff_ns = next >= (double)r->policy->max_backoff_ns
                                ? r->policy->max_backoff_ns
                                : (int64_t)next;
        }
        if (c->deadline_ns != INT64_MAX &&
            delay_ns >= c->deadline_ns - orpc__now_ns())
            why = "the deadline comes first";
        else if (orpc__retry_replay(c) != 0)
            why = "out of memory";
    }
    if (why != NULL) {
        orpc__retry_release(c); /* the outcome: no replay any more */
        orpc__ch_log(c->ch, ORPC_LOG_DEBUG,
                     "%s: attempt %d ended %s: no retry (%s)", c->method->path,
                     r->attempts, orpc_code_name(st->code), why);
        return 0;
    }
    orpc__ch_log(c->ch, ORPC_LOG_DEBUG,
                 "%s: attempt %d ended %s; retry in %lld ms", c->method->path,
                 r->attempts, orpc_code_name(st->code),
                 (long long)(delay_ns / 1000000));
    orpc__retry_count(c->ch, ORPC__RETRY_N_RETRIES);
    orpc__status_clear_mem(&c->ch->mem, st);
    attempt_clear(c);
    /* wait on the channel's backoff list (closing the channel ends it) */
    r->pending = 1;
    c->listed = 3;
    c->prev_io = NULL;
    c->next_io = rc->pending;
    if (rc->pending)
        rc->pending->prev_io = c;
    rc->pending = c;
    orpc__call_timer_arm(c, ((uint64_t)delay_ns + 999999) / 1000000);
    return 1;
}

static void hedge_fire(orpc_call *p);

void orpc__retry_fire(orpc_call *c)
{
    if (c->retry.hedge_due) {
        hedge_fire(c);
        return;
    }
    c->retry.pending = 0;
    orpc__call_unlist(c);
    if (c->deadline_ns != INT64_MAX) {
        int64_t left = c->deadline_ns - orpc__now_ns();
        orpc__call_timer_arm(c, left > 0 ? (uint64_t)(left + 999999) / 1000000
                                         : 0);
    }
    orpc__call_enqueue(c); /* (its send queue was refilled already) */
}

void orpc__retry_chan_stop(orpc_channel *ch)
{
    while (ch->retry.pending != NULL) {
        orpc_call *c = ch->retry.pending;
        orpc__call_unlist(c);
        c->retry.pending = 0;
        c->retry.final = 1;
        orpc__call_complete(c, orpc__status_new_mem(&ch->mem, ORPC_UNAVAILABLE,
                                                    "channel closed"));
    }
}

/* ====================================================================== */
/* hedging                                                                 */
/* ====================================================================== */

static uint64_t ns_to_ms(int64_t ns)
{
    return ns > 0 ? ((uint64_t)ns + 999999) / 1000000 : 0;
}

/* Lets go of attempt |k| of |p|: off its list, its reach folded into the
 * call's (the furthest any attempt went). */
static void kid_detach(orpc_call *p, orpc_call *k)
{
    orpc__retry_call *r = &p->retry;
    for (int i = 0; i < r->nkids; i++) {
        if (r->kids[i] == k) {
            r->kids[i] = r->kids[--r->nkids];
            break;
        }
    }
    k->retry.parent = NULL;
    orpc_call_reach reach = k->reach > k->reach_max ? k->reach : k->reach_max;
    if (reach > p->reach_max)
        p->reach_max = reach;
}

/* Cancels every attempt of |p| in flight but |keep| (RST_STREAM CANCEL
 * for those with a stream); they end on their own, unheard. */
static void kids_cancel(orpc_call *p, orpc_call *keep)
{
    int i = 0;
    while (i < p->retry.nkids) {
        orpc_call *k = p->retry.kids[i];
        if (k == keep) {
            i++;
            continue;
        }
        kid_detach(p, k);
        orpc__call_fail(k, ORPC_CANCELLED, "another hedged attempt won");
    }
}

/* Arms |p|'s timer: for the next attempt in |delay_ns| when one may still
 * start before the deadline, else for the deadline alone. */
static void hedge_schedule(orpc_call *p, int64_t delay_ns)
{
    orpc__retry_call *r = &p->retry;
    int64_t left = p->deadline_ns == INT64_MAX
                       ? INT64_MAX
                       : p->deadline_ns - orpc__now_ns();
    r->hedge_due = r->started < r->hedging->max_attempts && r->winner == NULL &&
                   !r->hedge_stop && !r->committed && delay_ns < left;
    if (r->hedge_due)
        orpc__call_timer_arm(p, ns_to_ms(delay_ns));
    else if (left != INT64_MAX)
        orpc__call_timer_arm(p, ns_to_ms(left));
    else if (p->timer_started)
        uv_timer_stop(&p->timer);
}

/* 1 when another attempt of |p| may start now.  Throttled (gRFC A6: no
 * hedges while the tokens are not above half of maxTokens), it stops
 * hedging for good. */
static int hedge_may_start(orpc_call *p)
{
    orpc__retry_call *r = &p->retry;
    orpc__retry_chan *rc = &p->ch->retry;
    if (r->winner != NULL || r->hedge_stop || r->committed ||
        r->started >= r->hedging->max_attempts || p->ch->stopping ||
        p->io_finished || cancelled(p))
        return 0;
    if (!single_request(p) && !orpc__retry_can_replay(p))
        return 0; /* what it sent went over the budget: no replay */
    if (!throttle_allows(rc)) {
        orpc__retry_count(p->ch, ORPC__RETRY_N_THROTTLED);
        r->hedge_stop = 1;
        return 0;
    }
    return 1;
}

/* Starts the next attempt of |p| and arms the timer for the one after.
 * The attempt may end at once (a channel that cannot connect), and with
 * it the call: |p| is held meanwhile. */
static void hedge_next(orpc_call *p)
{
    orpc__retry_call *r = &p->retry;
    uv_mutex_lock(&p->lock);
    p->refs++;
    uv_mutex_unlock(&p->lock);
    orpc_call *k = orpc__call_attempt_new(p);
    if (k == NULL) {
        r->hedge_stop = 1;
        if (r->nkids == 0)
            orpc__call_complete(p, orpc__status_new_mem(&p->ch->mem,
                                                        ORPC_RESOURCE_EXHAUSTED,
                                                        "out of memory"));
    } else {
        k->retry.parent = p;
        k->retry.attempts = r->started++; /* grpc-previous-rpc-attempts */
        r->kids[r->nkids++] = k;
        if (k->retry.attempts > 0)
            orpc__retry_count(p->ch, ORPC__RETRY_N_HEDGES);
        orpc__call_enqueue(k);
    }
    if (!p->io_finished)
        hedge_schedule(p, r->hedging->delay_ns);
    orpc_call_unref(p);
}

void orpc__retry_hedge_start(orpc_call *p)
{
    p->submitted = 1; /* (its attempts are: it has no stream of its own) */
    hedge_next(p);
}

static void hedge_fire(orpc_call *p)
{
    p->retry.hedge_due = 0;
    if (hedge_may_start(p))
        hedge_next(p);
    else if (p->retry.nkids == 0 && p->retry.winner == NULL)
        /* (none in flight, none to start: nothing would end the call but
         * its deadline) */
        orpc__call_complete(
            p, orpc__status_new_mem(&p->ch->mem, ORPC_UNAVAILABLE,
                                    "no hedged attempt left to start"));
    else
        hedge_schedule(p, 0); /* the deadline alone */
}

/* Attempt |k| received response headers: it is the call's (gRFC A6's
 * commit), every other attempt is cancelled and no more start. */
static void hedge_commit(orpc_call *k)
{
    orpc_call *p = k->retry.parent;
    if (p->retry.winner != NULL)
        return;
    p->retry.winner = k;
    kids_cancel(p, k);
    orpc__retry_commit(p); /* (its budget goes back) */
    hedge_schedule(p, 0);
}

/* Passes on what winning attempt |k| of |p| received and |p| has not
 * yet: its response headers (once; on_headers too when |notify|) and every
 * message queued, each with the flow-control credit it holds on |k|'s
 * stream (orpc__retry_hedge_give() returns it as the application reads). */
static void forward_to(orpc_call *p, orpc_call *k, int notify)
{
    uv_mutex_lock(&k->lock);
    int hdrs = k->headers_ready && !k->retry.fwd_headers;
    orpc_metadata *h = NULL;
    if (hdrs) {
        k->retry.fwd_headers = 1;
        h = k->headers;
        k->headers = NULL;
    }
    orpc__inmsg *head = k->in.head, *tail = k->in.tail;
    size_t n = k->in.queued;
    k->in.head = k->in.tail = NULL;
    k->in.queued = 0;
    uv_mutex_unlock(&k->lock);
    if (!hdrs && head == NULL)
        return;
    /* (the call's interceptors see the messages it gets) */
    for (orpc__inmsg *m = head; m != NULL; m = m->next)
        orpc__chain_message(&p->ci, 0,
                            protobuf_c_message_get_packed_size(m->msg));
    uv_mutex_lock(&p->lock);
    if (head != NULL) {
        if (p->in.tail != NULL)
            p->in.tail->next = head;
        else
            p->in.head = head;
        p->in.tail = tail;
        p->in.queued += n;
        p->in.received += n;
    }
    if (hdrs) {
        orpc_metadata_free(p->headers);
        p->headers = h;
        p->headers_ready = 1;
        (void)orpc_metadata_add_all(p->headers_out, p->headers);
    }
    uv_cond_broadcast(&p->cond);
    uv_mutex_unlock(&p->lock);
    if (hdrs && notify && p->is_async && p->acbs.on_headers)
        p->acbs.on_headers(p, p->headers, p->cb_user_data);
    if (head != NULL)
        orpc__call_deliver(p); /* asynchronous: to on_message */
}

void orpc__retry_hedge_forward(orpc_call *k, int notify)
{
    orpc_call *p = k->retry.parent;
    if (p != NULL && p->retry.winner == k && !p->io_finished)
        forward_to(p, k, notify);
}

void orpc__retry_hedge_give(orpc_call *p, const orpc__in_owed *owed)
{
    orpc_call *w = p->retry.winner;
    if (w == NULL || (owed->stream == 0 && owed->conn == 0))
        return;
    for (int i = 0; i < p->retry.nkids; i++) {
        if (p->retry.kids[i] != w)
            continue;
        /* (in flight: alive, on the list until it ends) */
        if (w->stream_open && w->conn != NULL && w->conn->session != NULL) {
            orpc__in_give_owed(&w->in, w->conn->session, w->stream_id, owed);
            orpc__conn_kick(w->conn);
        }
        return;
    }
}

/* Attempt |k|'s outcome becomes its call's: what it received and |p| has
 * not yet, its trailers and |*st| move to |p|, which completes; |k| ends
 * with a status of its own. */
static void hedge_finish(orpc_call *p, orpc_call *k, orpc_status *st)
{
    const orpc_mem *mem = &p->ch->mem;
    kids_cancel(p, NULL);
    forward_to(p, k, 0);
    uv_mutex_lock(&k->lock);
    orpc_metadata *trailers = k->trailers;
    k->trailers = NULL;
    uv_mutex_unlock(&k->lock);
    uv_mutex_lock(&p->lock);
    orpc_metadata_free(p->trailers);
    p->trailers = trailers;
    uv_mutex_unlock(&p->lock);
    orpc_status out = *st;
    *st = orpc__status_new_mem(mem, ORPC_CANCELLED,
                               "outcome handed to the hedged call");
    orpc__call_complete(p, out);
}

/* Hedged attempt |k| ended with |*st| (before its own completion, which
 * follows with |*st|).  Decides whether that is the call's outcome. */
static int hedge_attempt_done(orpc_call *k, orpc_status *st)
{
    orpc_call *p = k->retry.parent;
    orpc__retry_call *r = &p->retry;
    orpc__retry_chan *rc = &p->ch->retry;
    int won = r->winner == k;
    kid_detach(p, k);
    if (r->winner != NULL && !won)
        return 0; /* (a loser that ended before its cancel) */
    int fatal = (unsigned)st->code >= ORPC_CODE_COUNT ||
                !(r->hedging->codes & (1u << st->code));
    if (st->code == ORPC_OK) {
        throttle_success(rc);
    } else if (!fatal) {
        (void)throttle_failure(rc);
        if (!won) {
            if (k->retry.pushback < 0)
                r->hedge_stop = 1; /* the server says: no more */
            int64_t delay =
                k->retry.pushback > 0 ? k->retry.pushback_ms * 1000000 : 0;
            int more = hedge_may_start(p);
            if (more && r->nkids == 0 && p->deadline_ns != INT64_MAX &&
                delay >= p->deadline_ns - orpc__now_ns())
                more = 0; /* nothing in flight, and the next is too late */
            orpc__ch_log(p->ch, ORPC_LOG_DEBUG,
                         "%s: hedged attempt %d ended %s (not fatal); %s",
                         p->method->path, k->retry.attempts + 1,
                         orpc_code_name(st->code),
                         more       ? "the next starts"
                         : r->nkids ? "others in flight"
                                    : "no more attempts");
            if (more && delay > 0) {
                hedge_schedule(p, delay); /* the server's pushback */
                return 0;
            }
            if (more) {
                hedge_next(p); /* at once (gRFC A6) */
                return 0;
            }
            if (r->nkids > 0)
                return 0;
        }
    }
    hedge_finish(p, k, st);
    return 0;
}

/* The hedged call completes (its outcome, its deadline, a cancel): the
 * attempts still in flight are cancelled. */
static void hedge_over(orpc_call *p)
{
    p->retry.hedge_due = 0;
    p->retry.hedge_stop = 1;
    kids_cancel(p, NULL);
    orpc__retry_release(p);
}

/* ====================================================================== */
/* hedging of client- and bidi-streaming calls: what the application sends */
/* ====================================================================== */

int orpc__retry_hedge_fill(orpc_call *k, orpc_call *p)
{
    orpc__sendq q = {.mem = &k->ch->mem};
    uv_mutex_lock(&p->lock);
    /* The messages in |p|'s queue are the last of those it kept (each is
     * kept as it is queued, until the call commits): they reach |k|
     * through orpc__retry_hedge_pump() like every attempt's. */
    size_t nk = 0, nq = 0;
    for (const orpc__chunk *m = p->retry.kept; m != NULL; m = m->next)
        nk++;
    for (const orpc__chunk *m = p->sendq.head; m != NULL; m = m->next)
        nq++;
    const orpc__chunk *m = p->retry.kept;
    for (size_t i = 0; i + nq < nk; i++, m = m->next) {
        orpc__chunk *copy = chunk_copy(p, m);
        if (copy == NULL) {
            uv_mutex_unlock(&p->lock);
            orpc__sendq_clear(&q);
            return ORPC_ENOMEM;
        }
        orpc__sendq_push(&q, copy);
    }
    int closed = p->send_closed && nq == 0;
    uv_mutex_unlock(&p->lock);
    uv_mutex_lock(&k->lock);
    orpc__sendq_clear(&k->sendq);
    k->sendq.head = q.head;
    k->sendq.tail = q.tail;
    k->sendq.bytes = q.bytes;
    k->send_closed = closed;
    uv_mutex_unlock(&k->lock);
    return 0;
}

/* The attempt of |p| in flight that started first. */
static orpc_call *oldest_kid(orpc_call *p)
{
    orpc_call *o = NULL;
    for (int i = 0; i < p->retry.nkids; i++)
        if (o == NULL || p->retry.kids[i]->retry.attempts < o->retry.attempts)
            o = p->retry.kids[i];
    return o;
}

/* 1 when every attempt of |p| in flight has room in its send queue. */
static int kids_have_room(orpc_call *p)
{
    for (int i = 0; i < p->retry.nkids; i++) {
        orpc_call *k = p->retry.kids[i];
        uv_mutex_lock(&k->lock);
        int full = k->sendq.bytes >= CALL_SENDQ_LIMIT;
        uv_mutex_unlock(&k->lock);
        if (full)
            return 0;
    }
    return 1;
}

int orpc__retry_hedge_pump(orpc_call *p)
{
    orpc__retry_call *r = &p->retry;
    if (single_request(p) || p->io_finished || !p->submitted)
        return 0;
    if (r->winner == NULL && !orpc__retry_can_replay(p)) {
        /* Over the buffer budget: the call commits to one attempt, the
         * oldest, and the others are cancelled (gRFC A6). */
        orpc_call *k = oldest_kid(p);
        if (k == NULL) {
            orpc__call_complete(
                p, orpc__status_new_mem(&p->ch->mem, ORPC_UNAVAILABLE,
                                        "hedged call over its retry buffer "
                                        "with no attempt in flight"));
            return 0;
        }
        orpc__ch_log(p->ch, ORPC_LOG_DEBUG,
                     "%s: over the retry buffer: committed to hedged "
                     "attempt %d",
                     p->method->path, k->retry.attempts + 1);
        hedge_commit(k);
    }
    int closed = 0;
    while (kids_have_room(p)) {
        uv_mutex_lock(&p->lock);
        orpc__chunk *m = p->sendq.head;
        if (m != NULL) {
            p->sendq.head = m->next;
            if (p->sendq.head == NULL)
                p->sendq.tail = NULL;
            p->sendq.bytes -= m->len - m->off;
            m->next = NULL;
        }
        closed = p->send_closed && p->sendq.head == NULL;
        uv_mutex_unlock(&p->lock);
        if (m == NULL)
            break;
        for (int i = 0; i < r->nkids; i++) {
            orpc_call *k = r->kids[i];
            orpc__chunk *copy = chunk_copy(p, m);
            if (copy == NULL) {
                orpc__mem_free(&p->ch->mem, m);
                orpc__call_complete(p, orpc__status_new_mem(
                                           &p->ch->mem, ORPC_RESOURCE_EXHAUSTED,
                                           "out of memory"));
                return 0;
            }
            uv_mutex_lock(&k->lock);
            orpc__sendq_push(&k->sendq, copy);
            uv_mutex_unlock(&k->lock);
        }
        orpc__mem_free(&p->ch->mem, m); /* (kept, while not committed) */
    }
    for (int i = 0; i < r->nkids; i++) {
        orpc_call *k = r->kids[i];
        if (closed) {
            uv_mutex_lock(&k->lock);
            k->send_closed = 1;
            uv_mutex_unlock(&k->lock);
        }
        if (k->stream_open && k->conn != NULL && k->conn->session != NULL) {
            nghttp2_session_resume_data(k->conn->session, k->stream_id);
            orpc__conn_kick(k->conn);
        }
    }
    uv_mutex_lock(&p->lock);
    if (p->send_waiting > 0 && p->sendq.bytes < CALL_SENDQ_LIMIT)
        uv_cond_broadcast(&p->cond); /* room for a blocked sender */
    int ready = p->want_ready && p->sendq.bytes < CALL_SENDQ_LIMIT;
    if (ready)
        p->want_ready = 0;
    uv_mutex_unlock(&p->lock);
    return ready;
}

void orpc__retry_hedge_kick(orpc_call *k)
{
    orpc_call *p = k->retry.parent;
    if (p == NULL || single_request(p))
        return;
    uv_mutex_lock(&p->lock);
    int more = p->sendq.head != NULL;
    uv_mutex_unlock(&p->lock);
    if (more)
        orpc__call_post(p);
}
