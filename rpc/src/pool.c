/*
 * pool.c — a growable worker pool for blocking handlers.
 *
 * A fixed pool would let long-lived streaming handlers (each blocks its
 * thread for the stream's life) starve unary calls, as gRPC's sync server
 * learned; so the pool starts |min| threads and adds one whenever a job
 * arrives with nobody idle, up to |max|.  Threads are detached; destroy
 * waits on a condition until the count reaches zero.
 */
#include "pool.h"

#include <pthread.h>

#include <stdlib.h>

#define IDLE_EXIT_NS (30ull * 1000 * 1000 * 1000)

static void worker(void *arg)
{
    orpc__pool *p = arg;
    uv_mutex_lock(&p->lock);
    for (;;) {
        while (p->head == NULL && !p->stopping) {
            p->idle++;
            int rc = 0;
            if (p->threads > p->min_threads)
                rc = uv_cond_timedwait(&p->cond, &p->lock, IDLE_EXIT_NS);
            else
                uv_cond_wait(&p->cond, &p->lock);
            p->idle--;
            if (rc != 0 && p->head == NULL && p->threads > p->min_threads)
                goto out;
        }
        if (p->head == NULL) /* stopping and drained */
            break;
        orpc__job *j = p->head;
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        uv_mutex_unlock(&p->lock);
        j->fn(j);
        uv_mutex_lock(&p->lock);
    }
out:
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
    /* Threads are never joined: they signal |exited| as they leave. */
    pthread_detach(t);
    return 0;
}

int orpc__pool_init(orpc__pool *p, unsigned min, unsigned max)
{
    p->head = p->tail = NULL;
    p->min_threads = min ? min : 1;
    p->max_threads = max < p->min_threads ? p->min_threads : max;
    p->threads = p->idle = 0;
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
        return -1;
    }
    job->next = NULL;
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    if (p->idle == 0 && p->threads < p->max_threads)
        spawn(p);
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
