/*
 * pool.h — the worker pool that runs blocking handlers (internal).
 *
 * Locking theory: pool->lock guards the queue, the thread counts and
 * |stopping|; jobs run without it.
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
    unsigned min_threads, max_threads;
    unsigned threads; /* alive */
    unsigned idle;    /* waiting for a job */
    int stopping;
    uv_cond_t exited;
} orpc__pool;

/* |min| threads start now; more (up to |max|) start when a job arrives and
 * none is idle, so handlers that block for a long time (streams) do not
 * starve the others.  Threads above |min| leave after 30 s idle. */
int orpc__pool_init(orpc__pool *p, unsigned min, unsigned max);
/* Queues |job|.  0, or -1 when stopping. */
int orpc__pool_submit(orpc__pool *p, orpc__job *job);
/* Lets queued jobs finish, then ends every thread. */
void orpc__pool_destroy(orpc__pool *p);

#endif
