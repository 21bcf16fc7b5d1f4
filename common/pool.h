/*
 * common/pool.h — the worker pool that runs blocking work off the IO threads
 * (server handlers; the router's shadow and fallback calls).  Private.
 *
 * Locking theory: pool->lock guards the queue, the counts and |stopping|;
 * jobs run without it.
 */
#ifndef ORPC_POOL_H
#define ORPC_POOL_H

#include <uv.h>

typedef struct orpc__job {
    void (*fn)(struct orpc__job *job);
    struct orpc__job *next;
} orpc__job;

typedef struct orpc__pool {
    uv_mutex_t lock;
    uv_cond_t cond;
    orpc__job *head, *tail;
    unsigned queued; /* jobs in the queue */
    unsigned min_threads, max_threads, max_queued;
    unsigned threads; /* alive */
    unsigned idle;    /* waiting for a job */
    unsigned peak;    /* most threads alive at once (tests, metrics) */
    int stopping;
    uv_cond_t exited;
} orpc__pool;

/* |min| threads start now.  Every job that finds no idle thread to take it
 * gets a new thread, up to |max|, so handlers that block for a long time
 * (streams) never leave other jobs queued behind them while the pool may
 * still grow.  Threads above |min| leave after 30 s idle.  Past |max|
 * threads, at most |max_queued| jobs wait. */
int orpc__pool_init(orpc__pool *p, unsigned min, unsigned max,
                    unsigned max_queued);
/* Queues |job|.  0; ORPC_ELIMIT when |max| threads are busy and
 * |max_queued| jobs already wait; ORPC_ECLOSED when stopping. */
int orpc__pool_submit(orpc__pool *p, orpc__job *job);
/* Lets queued jobs finish, then ends every thread. */
void orpc__pool_destroy(orpc__pool *p);

#endif
