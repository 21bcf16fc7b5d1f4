/*
 * retry.h — internal: retries of unary calls (gRFC A6) as a channel's
 * service config asks for them, and the per-channel state they share
 * (the retry buffer budget, retry throttling).  retry.c says how.
 *
 * Threads: the budget (orpc__retry_chan.buffered) is shared by every
 * thread that starts calls and guarded by its lock; everything else here
 * belongs to the channel's IO thread, except orpc__retry_call_init() and
 * orpc__retry_reserve(), which run on the caller's thread before the call
 * is handed to the IO thread.
 */
#ifndef ORPC_RETRY_H
#define ORPC_RETRY_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <orpc/channel.h>

#include "service_config.h"

/* Defaults of orpc_channel_opts.per_call_retry_buffer_size and
 * retry_buffer_size (gRPC's grpc.per_rpc_retry_buffer_size and
 * grpc.retry_buffer_size). */
#define ORPC__RETRY_CALL_BUFFER (256u * 1024u)
#define ORPC__RETRY_CHANNEL_BUFFER (16u * 1024u * 1024u)

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
} orpc__retry_chan;

/* A call's retry state.  |policy| and |budget| are set before the call is
 * handed to the IO thread; the rest belongs to the IO thread. */
typedef struct orpc__retry_call {
    const orpc__retry_policy *policy; /* NULL: never retried */
    size_t budget;                    /* bytes held in the channel's budget */
    int attempts;                     /* attempts that have ended */
    int committed;                    /* no more retries (gRFC A6's commit) */
    int final;          /* this attempt's outcome was judged final */
    int pending;        /* waiting out a backoff before the next attempt */
    int64_t backoff_ns; /* the next backoff's upper bound */
    int pushback;       /* this attempt: 0 none, 1 |pushback_ms|, -1 stop */
    int64_t pushback_ms;
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

/* The call's policy (caller's thread, before it is posted): unary calls of
 * a method with a retryPolicy. */
void orpc__retry_call_init(struct orpc_call *c, const orpc__method_config *mc);

/* Takes |len| request bytes from the channel's budget for replays; when
 * they do not fit (per call or in total) the call is committed from the
 * start and never retried (caller's thread, before the call is posted). */
void orpc__retry_reserve(struct orpc_call *c, size_t len);

/* Gives the call's bytes back to the budget (any thread; idempotent). */
void orpc__retry_release(struct orpc_call *c);

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

/* The backoff is over: the next attempt starts (IO thread). */
void orpc__retry_fire(struct orpc_call *c);

#endif /* ORPC_RETRY_H */
