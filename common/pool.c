/*
 * pool.c — a growable worker pool for blocking handlers.
 *
 * A fixed pool would let long-lived streaming handlers (each blocks its
 * thread for the stream's life) starve unary calls, as gRPC's sync server
 * learned; so the pool starts |min| threads and gives every queued job
 * that no idle thread will take a thread of its own, up to |max|.  The
 * test is "more jobs queued than threads idle", not "no thread idle": an
 * idle thread counts as idle until it wakes, so a burst of J jobs arriving
 * with k < J idle threads would otherwise leave J - k jobs queued behind
 * handlers that may block for good.  Past |max| the queue is bounded too:
 * the caller sheds the call instead of queueing without limit.  Threads
 * are detached; destroy waits on a condition until the count reaches zero.
 */
#include "common/pool.h"

#include <pthread.h>

#include <stdlib.h>

#include <orpc/error.h>

#define IDLE_EXIT_NS (30ull * 1000 * 1000 * 1000)

/* A thread counts as idle whenever it is not running a job, from the
 * moment it is spawned: the job it was spawned for counts on it. */
static void worker(void *arg)
{
    orpc__pool *p = arg;
    uv_mutex_lock(&p->lock);
    for (;;) {
        while (p->head == NULL && !p->stopping) {
            int rc = 0;
            if (p->threads > p->min_threads)
                rc = uv_cond_timedwait(&p->cond, &p->lock, IDLE_EXIT_NS);
            else
                uv_cond_wait(&p->cond, &p->lock);
            if (rc != 0 && p->head == NULL && p->threads > p->min_threads)
                goto out;
        }
        if (p->head == NULL) /* stopping and drained */
            break;
        orpc__job *j = p->head;
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        p->queued--;
        p->idle--;
        uv_mutex_unlock(&p->lock);
        j->fn(j);
        uv_mutex_lock(&p->lock);
        p->idle++;
    }
out:
    p->idle--;
    p->threads--;
    uv_cond_broadcast(&p->exited);
    uv_mutex_unlock(&p->lock);
}

static int spawn(orpc__pool *p)
{
    uv_thread_t t;
    if (uv_thread_create(&t, worker, p) != 0)
        return -1;
    p->threads++;
    p->idle++;
    if (p->threads > p->peak)
        p->peak = p->threads;
    /* Threads are never joined: they signal |exited| as they leave. */
    pthread_detach(t);
    return 0;
}

int orpc__pool_init(orpc__pool *p, unsigned min, unsigned max,
                    unsigned max_queued)
{
    p->head = p->tail = NULL;
    p->queued = 0;
    p->min_threads = min ? min : 1;
    p->max_threads = max < p->min_threads ? p->min_threads : max;
    p->max_queued = max_queued;
    p->threads = p->idle = p->peak = 0;
    p->stopping = 0;
    if (uv_mutex_init(&p->lock) != 0)
        return -1;
    uv_cond_init(&p->cond);
    uv_cond_init(&p->exited);
    uv_mutex_lock(&p->lock);
    for (unsigned i = 0; i < p->min_threads; i++)
        spawn(p);
    uv_mutex_unlock(&p->lock);
    return p->threads > 0 ? 0 : -1;
}

int orpc__pool_submit(orpc__pool *p, orpc__job *job)
{
    uv_mutex_lock(&p->lock);
    if (p->stopping) {
        uv_mutex_unlock(&p->lock);
        return ORPC_ECLOSED;
    }
    /* Every job beyond the idle threads gets a thread of its own; once
     * none can be added, at most |max_queued| jobs wait for a busy one. */
    if (p->queued + 1 > p->idle && p->threads < p->max_threads)
        spawn(p);
    if (p->queued + 1 > p->idle + p->max_queued) {
        uv_mutex_unlock(&p->lock);
        return ORPC_ELIMIT;
    }
    job->next = NULL;
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    p->queued++;
    uv_cond_signal(&p->cond);
    uv_mutex_unlock(&p->lock);
    return 0;
}

void orpc__pool_destroy(orpc__pool *p)
{
    uv_mutex_lock(&p->lock);
    p->stopping = 1;
    uv_cond_broadcast(&p->cond);
    while (p->threads > 0)
        uv_cond_wait(&p->exited, &p->lock);
    uv_mutex_unlock(&p->lock);
    uv_cond_destroy(&p->cond);
    uv_cond_destroy(&p->exited);
    uv_mutex_destroy(&p->lock);
}
