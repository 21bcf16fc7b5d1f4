/*
 * intercept.h — internal: interceptor chains and the per-call record their
 * hooks see (orpc/interceptor.h is the public side; interceptor.c runs
 * them).
 *
 * A chain is fixed when its channel or server is made: an array of
 * references, defaults first.  Each call embeds one orpc_call_info (no
 * allocation per call): the chain it runs, what the hooks may read, the
 * message and byte counts, and one slot per interceptor.
 *
 * Threads: a chain is read-only once built.  A call's info is written by
 * the call's threads in the order its events happen (on_start before the
 * call is handed on; on_end once); the counts are atomics because a
 * server call's handler sends while its IO thread receives.
 */
#ifndef ORPC_INTERCEPT_H
#define ORPC_INTERCEPT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <orpc/interceptor.h>
#include <orpc/metrics.h>

/* A chain of interceptors (each a reference). */
typedef struct orpc__chain {
    orpc_interceptor *ic[ORPC_MAX_INTERCEPTORS];
    size_t n;
} orpc__chain;

struct orpc_call_info {
    const orpc__chain *chain; /* NULL or empty: no hooks run */
    const orpc_method_desc *method;
    orpc_call_side side;
    orpc_served_by served_by;
    orpc_metadata **md;  /* the request metadata, made on first add */
    const orpc_mem *mem; /* for that metadata */
    const char *peer;    /* borrowed from the call */
    const orpc_metadata *parent_md; /* client: the handler's request's */
    uint64_t start_ns;
    size_t started; /* interceptors whose on_start said OK */
    int starting;   /* on_start is running: metadata may be added */
    /* "traceparent\0<55 characters>\0": the trace interceptor's entry in
     * |*md| (borrowed, so the call's metadata takes no allocation) */
    char trace_entry[12 + 56];
    int ended;                 /* on_end has run */
    _Atomic uint64_t msgs[2];  /* [0] received, [1] sent */
    _Atomic uint64_t bytes[2]; /* ... their payload bytes */
    void *slots[ORPC_MAX_INTERCEPTORS];
};

/*
 * Builds |out| from |defaults| (n_defaults) then the application's |user|
 * (n_user), taking a reference to each.  ORPC_EINVAL (a NULL entry, too
 * many) with |*why| set; 0 otherwise.
 */
int orpc__chain_init(orpc__chain *out, orpc_interceptor *const *defaults,
                     size_t n_defaults, orpc_interceptor *const *user,
                     size_t n_user, const char **why);

/* Drops the chain's references. */
void orpc__chain_destroy(orpc__chain *c);

/* Sets up |ci|, zeroed with the call it belongs to, for that call (no
 * hook runs). */
void orpc__call_info_init(orpc_call_info *ci, const orpc__chain *chain,
                          const orpc_method_desc *m, orpc_call_side side,
                          orpc_metadata **md, const orpc_mem *mem,
                          const char *peer);

/* Whether the call has hooks to run. */
static inline int orpc__call_info_active(const orpc_call_info *ci)
{
    return ci->chain != NULL && ci->chain->n > 0;
}

/*
 * Runs on_start in order.  ORPC_OK, or the code an interceptor refused the
 * call with (|*why| its message, never NULL), after the ones before it
 * have seen on_end with that status.
 */
orpc_code orpc__chain_start(orpc_call_info *ci, const char **why);

/* Counts one message and runs on_message. */
void orpc__chain_message(orpc_call_info *ci, int outbound, size_t bytes);

/* Runs on_end in reverse order, once. */
void orpc__chain_end(orpc_call_info *ci, const orpc_status *st);

/*
 * Builds a channel's or server's chain (observe.c): the default
 * interceptors unless |no_defaults| (trace context, then metrics), then the
 * application's.  |*metrics| becomes the registry the defaults record
 * into: a reference to |given|, or a new one made with |mem| (NULL with
 * |no_defaults| and nothing given); the caller unrefs it.  0, or
 * ORPC_EINVAL / ORPC_ENOMEM with |*why| set.
 */
int orpc__chain_build(orpc__chain *out, int no_defaults, orpc_metrics *given,
                      const orpc_mem *mem, orpc_metrics **metrics,
                      orpc_interceptor *const *user, size_t n_user,
                      const char **why);

/* The server call whose handler runs on this thread, or NULL (context.c):
 * its trace continues in the calls the handler makes. */
struct orpc_ctx;
struct orpc_ctx *orpc__ctx_current(void);
/* Makes |ctx| the thread's running handler call; returns the previous. */
struct orpc_ctx *orpc__ctx_swap_current(struct orpc_ctx *ctx);

#endif /* ORPC_INTERCEPT_H */
