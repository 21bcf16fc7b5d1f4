/*
 * io.c — IO threads: a libuv loop per thread, a task queue for the other
 * threads, and the end-of-turn flush that coalesces writes.
 *
 * Design notes: other threads never touch a loop's handles.  They post an
 * orpc__task (embedded in the object concerned, so posting never allocates)
 * and wake the loop with uv_async_send, which libuv coalesces.  The wake
 * callback drains the whole queue.  A uv_check handle runs after each poll
 * phase, i.e. after all the reads and tasks of a turn, and runs every
 * orpc__flush queued during the turn, once each: for a connection, one
 * mem_send and one write per turn however many streams produced output.
 * Output made before the poll phase (in a timer callback: a deadline's
 * RST_STREAM, a keepalive PING) would otherwise wait for the next wake-up,
 * which may be seconds away; so queueing the first flush of a turn starts
 * an idle handle, which makes that turn's poll return at once, and the
 * flush stops it.
 *
 * Locking theory: io->lock guards head/tail, each queued task's |queued|
 * and |next|, and io->stopping.  It is never held while a task runs.
 */
#include "io.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

#include <orpc/error.h>

void orpc__task_init(orpc__task *t, void (*fn)(orpc__task *, void *), void *arg)
{
    memset(t, 0, sizeof(*t));
    t->fn = fn;
    t->arg = arg;
}

static void run_tasks(uv_async_t *h)
{
    orpc__io *io = h->data;
    for (;;) {
        uv_mutex_lock(&io->lock);
        orpc__task *list = io->head;
        io->head = io->tail = NULL;
        uv_mutex_unlock(&io->lock);
        if (list == NULL)
            break;
        while (list != NULL) {
            orpc__task *t = list;
            /* Until it runs, a task stays "queued": posting it again is a
             * no-op (it will see the new work) and cannot relink it. */
            uv_mutex_lock(&io->lock);
            list = t->next;
            t->next = NULL;
            t->queued = 0;
            uv_mutex_unlock(&io->lock);
            t->fn(t, t->arg);
        }
    }
}

static void flush_dirty(uv_check_t *h)
{
    orpc__io *io = h->data;
    /* Flushing may complete writes synchronously and queue others: loop
     * until nothing is left. */
    while (io->dirty != NULL) {
        orpc__flush *list = io->dirty;
        io->dirty = NULL;
        while (list != NULL) {
            orpc__flush *f = list;
            list = f->next;
            f->next = NULL;
            f->queued = 0;
            f->fn(f);
        }
    }
    uv_idle_stop(&io->nudge);
}

static void nudge(uv_idle_t *h)
{
    (void)h; /* being active is its whole job: the poll does not block */
}

static void stop_task(orpc__task *t, void *arg)
{
    orpc__io *io = arg;
    (void)t;
    if (io->on_stop != NULL)
        io->on_stop(io, io->user_data);
    uv_close((uv_handle_t *)&io->wake, NULL);
    uv_close((uv_handle_t *)&io->flush, NULL);
    uv_close((uv_handle_t *)&io->nudge, NULL);
}

int orpc__io_init(orpc__io *io, unsigned index,
                  void (*on_stop)(orpc__io *, void *), void *user_data)
{
    memset(io, 0, sizeof(*io));
    io->index = index;
    io->on_stop = on_stop;
    io->user_data = user_data;
    if (uv_loop_init(&io->loop) != 0)
        return ORPC_ESYS;
    if (uv_mutex_init(&io->lock) != 0) {
        uv_loop_close(&io->loop);
        return ORPC_ESYS;
    }
    uv_async_init(&io->loop, &io->wake, run_tasks);
    io->wake.data = io;
    uv_check_init(&io->loop, &io->flush);
    io->flush.data = io;
    uv_check_start(&io->flush, flush_dirty);
    /* The check handle alone must not keep the loop alive. */
    uv_unref((uv_handle_t *)&io->flush);
    uv_idle_init(&io->loop, &io->nudge);
    io->nudge.data = io;
    uv_unref((uv_handle_t *)&io->nudge);
    return 0;
}

/* The io whose loop the calling thread runs, if any.  Each IO thread sets
 * it for itself, so "am I on this io's thread?" reads nothing another
 * thread writes (comparing with io->thread raced: uv_thread_create() writes
 * it while the new thread may already be asking). */
static _Thread_local orpc__io *current_io;

static void thread_main(void *arg)
{
    orpc__io *io = arg;
    /* A write to a peer that has gone raises SIGPIPE in the writing thread,
     * which kills the process unless the application ignores it; libuv
     * cannot pass MSG_NOSIGNAL.  Blocked here, it stays pending on this
     * thread and the write fails with EPIPE, whatever the application's
     * disposition. */
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    current_io = io;
    uv_run(&io->loop, UV_RUN_DEFAULT);
    current_io = NULL;
}

int orpc__io_start(orpc__io *io)
{
    if (uv_thread_create(&io->thread, thread_main, io) != 0)
        return ORPC_ESYS;
    return 0;
}

int orpc__io_post(orpc__io *io, orpc__task *t)
{
    uv_mutex_lock(&io->lock);
    if (io->stopping) {
        uv_mutex_unlock(&io->lock);
        return ORPC_ECLOSED;
    }
    if (!t->queued) {
        t->queued = 1;
        t->next = NULL;
        if (io->tail)
            io->tail->next = t;
        else
            io->head = t;
        io->tail = t;
    }
    uv_mutex_unlock(&io->lock);
    uv_async_send(&io->wake);
    return 0;
}

static void post_stop(orpc__io *io, orpc__task *stop)
{
    orpc__task_init(stop, stop_task, io);
    uv_mutex_lock(&io->lock);
    stop->queued = 1;
    if (io->tail)
        io->tail->next = stop;
    else
        io->head = stop;
    io->tail = stop;
    io->stopping = 1;
    uv_mutex_unlock(&io->lock);
    uv_async_send(&io->wake);
}

void orpc__io_stop(orpc__io *io)
{
    orpc__task stop;
    post_stop(io, &stop);
    uv_thread_join(&io->thread);
    uv_loop_close(&io->loop);
}

void orpc__io_destroy(orpc__io *io)
{
    uv_mutex_destroy(&io->lock);
}

void orpc__io_close_unstarted(orpc__io *io)
{
    orpc__task stop;
    post_stop(io, &stop);
    uv_run(&io->loop, UV_RUN_DEFAULT);
    uv_loop_close(&io->loop);
}

int orpc__io_on_thread(orpc__io *io)
{
    return current_io == io;
}

int orpc__io_on_any_thread(void)
{
    return current_io != NULL;
}

orpc_status orpc__io_blocking_refused(const char *fn)
{
    return orpc_status_errorf(
        ORPC_FAILED_PRECONDITION,
        "%s: blocking call on an orpc IO thread (a callback or an inline "
        "handler) would wait on itself; use the asynchronous API there",
        fn);
}

int orpc__task_take_ref(uv_mutex_t *lock, int *task_ref, int *refs)
{
    uv_mutex_lock(lock);
    int take = !*task_ref;
    if (take) {
        *task_ref = 1;
        (*refs)++;
    }
    uv_mutex_unlock(lock);
    return take;
}

void orpc__task_clear_ref(uv_mutex_t *lock, int *task_ref)
{
    uv_mutex_lock(lock);
    *task_ref = 0;
    uv_mutex_unlock(lock);
}

void orpc__io_defer_flush(orpc__io *io, orpc__flush *f)
{
    if (f->queued)
        return;
    if (io->dirty == NULL)
        uv_idle_start(&io->nudge, nudge);
    f->queued = 1;
    f->next = io->dirty;
    io->dirty = f;
}

void orpc__io_cancel_flush(orpc__io *io, orpc__flush *f)
{
    if (!f->queued)
        return;
    orpc__flush **pp = &io->dirty;
    while (*pp && *pp != f)
        pp = &(*pp)->next;
    if (*pp)
        *pp = f->next;
    f->next = NULL;
    f->queued = 0;
}
