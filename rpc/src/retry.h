/*
 * retry.h — internal: retries and hedging of calls of every kind (gRFC
 * A6) as a channel's service config asks for them, the replay
 * of what a call sent (also for the transparent retry of a stream the
 * server never processed), and the per-channel state they share (the
 * retry buffer budget, retry throttling, counters).  retry.c says how.
 *
 * Threads: the budget (orpc__retry_chan.buffered) is shared by every
 * thread that starts calls and guarded by its lock; the counters are
 * atomic; a streaming call's kept messages are shared with its sender and
 * guarded by the call's lock; everything else here belongs to the
 * channel's IO thread, except orpc__retry_call_init() and
 * orpc__retry_reserve(), which run on the caller's thread before the call
 * is handed to the IO thread, and orpc__retry_keep_locked().
 */
#ifndef ORPC_RETRY_H
#define ORPC_RETRY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <orpc/channel.h>

#include "grpc.h"
#include "service_config.h"
#include "stream.h"

/* Defaults of orpc_channel_opts.per_call_retry_buffer_size and
 * retry_buffer_size (gRPC's grpc.per_rpc_retry_buffer_size and
 * grpc.retry_buffer_size). */
#define ORPC__RETRY_CALL_BUFFER (256u * 1024u)
#define ORPC__RETRY_CHANNEL_BUFFER (16u * 1024u * 1024u)

/* What orpc__retry_counts() reports, in this order. */
enum {
    ORPC__RETRY_N_RETRIES = 0,     /* attempts beyond a call's first */
    ORPC__RETRY_N_HEDGES = 1,      /* hedged attempts started */
    ORPC__RETRY_N_THROTTLED = 2,   /* retries refused by throttling */
    ORPC__RETRY_N_TRANSPARENT = 3, /* transparent retries (never processed) */
    ORPC__RETRY_N_COUNTS = 4
};

/* A channel's retry state. */
typedef struct orpc__retry_chan {
    uv_mutex_t lock; /* guards |buffered| */
    size_t buffered; /* request bytes calls keep for retries */
    size_t limit;    /* ... at most, all calls together */
    size_t per_call; /* ... at most, one call */
    /* IO thread */
    int throttling;       /* retryThrottling is configured */
    int max_milli_tokens; /* maxTokens * 1000 */
    int milli_token_ratio;
    int milli_tokens;          /* the bucket: starts full */
    uint64_t rng;              /* backoff jitter (xorshift64) */
    struct orpc_call *pending; /* calls waiting out a backoff (listed 3) */
    atomic_uint_fast64_t counts[ORPC__RETRY_N_COUNTS]; /* any thread */
} orpc__retry_chan;

/* A call's retry state.  |policy| and |budget| are set before the call is
 * handed to the IO thread; the rest belongs to the IO thread, but for
 * what a client- or bidi-streaming call keeps (call lock, as its
 * sender adds to it). */
typedef struct orpc__retry_call {
    const orpc__retry_policy *policy; /* NULL: never retried */
    size_t budget; /* bytes held in the channel's budget (streaming
                      calls: call lock) */
    int keep;      /* call lock: messages sent are kept in |kept| */
    orpc__chunk *kept, *kept_tail; /* call lock: copies, in order */
    int attempts;                  /* attempts that have ended */
    int committed;                 /* no more retries (gRFC A6's commit) */
    int final;                     /* this attempt's outcome was judged final */
    int pending;        /* waiting out a backoff before the next attempt */
    int64_t backoff_ns; /* the next backoff's upper bound */
    int pushback;       /* this attempt: 0 none, 1 |pushback_ms|, -1 stop */
    int64_t pushback_ms;
    /* hedging (IO thread; |hedging| is set with |policy|) */
    const orpc__hedging_policy *hedging; /* a hedged call: its policy */
    struct orpc_call *kids[ORPC__RETRY_MAX_ATTEMPTS]; /* ... its attempts
                                                         in flight */
    int nkids;
    int started;              /* ... attempts started */
    int hedge_due;            /* ... its timer runs for the next attempt */
    int hedge_stop;           /* ... no more attempts (pushback, throttle) */
    struct orpc_call *winner; /* ... the attempt that committed */
    struct orpc_call *parent; /* a hedged attempt: its call, until let go */
    int fwd_headers;          /* ... its headers went to its call */
} orpc__retry_call;

struct orpc_call;
struct orpc_channel;

/* Sets up |rc| from the channel's options and config.  0 or ORPC_ESYS. */
int orpc__retry_chan_init(orpc__retry_chan *rc, const orpc_channel_opts *o,
                          const orpc__svc_config *sc);
void orpc__retry_chan_destroy(orpc__retry_chan *rc);

/* The channel is stopping (IO thread): calls waiting out a backoff end
 * UNAVAILABLE. */
void orpc__retry_chan_stop(struct orpc_channel *ch);

/* The call's policy (caller's thread, before it is posted): calls of a
 * method with a retryPolicy or a hedgingPolicy.  A client- or
 * bidi-streaming call without either keeps what it sends until it commits,
 * for the transparent retry alone. */
void orpc__retry_call_init(struct orpc_call *c, const orpc__method_config *mc);

/* Takes |len| request bytes from the channel's budget for replays; when
 * they do not fit (per call or in total) the call is committed from the
 * start and never retried (caller's thread, before the call is posted). */
void orpc__retry_reserve(struct orpc_call *c, size_t len);

/* A client- or bidi-streaming call's sender, call lock held, queues
 * |msg|: while the call is not committed, a copy of it is kept for replays
 * if it fits the budget; when it does not (or no copy can be made), the
 * call is committed and what it kept is freed (gRFC A6).  Copies. */
void orpc__retry_keep_locked(struct orpc_call *c, const orpc__chunk *msg);

/* Gives the call's bytes back to the budget and frees what a streaming
 * call kept (any thread, call lock not held; idempotent). */
void orpc__retry_release(struct orpc_call *c);

/* 1 when the call can send again what it sent (a copy of its request, or
 * a streaming call's kept messages): IO thread. */
int orpc__retry_can_replay(struct orpc_call *c);

/* Refills the call's send queue with what it sent, for a new attempt (IO
 * thread, no stream open).  0, or ORPC_ENOMEM (the queue is untouched). */
int orpc__retry_replay(struct orpc_call *c);

/* Adds one to counter |which| (ORPC__RETRY_N_*) of |ch| (any thread). */
void orpc__retry_count(struct orpc_channel *ch, int which);

/* The channel's counters, ORPC__RETRY_N_* order: retries, hedges,
 * throttled retries, transparent retries (any thread). */
void orpc__retry_counts(struct orpc_channel *ch, uint64_t out[4]);

/* The response headers arrived: the call is committed (IO thread). */
void orpc__retry_commit(struct orpc_call *c);

/* A grpc-retry-pushback-ms value arrived with the attempt's status. */
void orpc__retry_pushback(struct orpc_call *c, const uint8_t *v, size_t len);

/*
 * The attempt ended with |*st| (IO thread).  Records it for throttling and
 * decides: 1 when a new attempt follows (|*st| is taken; the attempt's
 * stream is let go and the call waits out its backoff); 0 when this is the
 * call's outcome (|*st| untouched; later checks of the same attempt return
 * 0 at once).
 */
int orpc__retry_check(struct orpc_call *c, orpc_status *st);

/* The backoff is over, or (a hedged call) the next hedge is due: the next
 * attempt starts (IO thread). */
void orpc__retry_fire(struct orpc_call *c);

/* A hedged call is enqueued: its first attempt starts, and the timer for
 * the next (IO thread). */
void orpc__retry_hedge_start(struct orpc_call *c);

/* A hedged client- or bidi-streaming call's task (IO thread): what the
 * application queued on the call goes to every attempt in flight (as far
 * as their send queues have room), the half-close too once all of it has;
 * over the buffer budget the call commits to its oldest attempt first.
 * Returns 1 when the call's queue has room again for an asynchronous
 * sender that was told ORPC_EAGAIN (on_ready is due). */
int orpc__retry_hedge_pump(struct orpc_call *p);

/* Hedged attempt |k| sent some of its queue (IO thread, inside nghttp2):
 * its call's task runs later to pass on more. */
void orpc__retry_hedge_kick(struct orpc_call *k);

/* Hedged attempt |k| received response headers or messages (IO thread):
 * when it is its call's winner, they are passed on to the call (headers
 * once, with its on_headers when |notify|, then each message as it
 * comes). */
void orpc__retry_hedge_forward(struct orpc_call *k, int notify);

/* Fills the send queue of |k|, a new attempt of hedged client- or
 * bidi-streaming call |p|, with what |p| sent so far (copies), and closes
 * its send side when |p|'s is and all of it is there (IO thread).  0, or
 * ORPC_ENOMEM. */
int orpc__retry_hedge_fill(struct orpc_call *k, struct orpc_call *p);

/* Gives the flow-control credit of messages the application took from
 * hedged call |p| back to the winning attempt's stream, while it has one
 * (IO thread). */
void orpc__retry_hedge_give(struct orpc_call *p, const orpc__in_owed *owed);

#endif /* ORPC_RETRY_H */
