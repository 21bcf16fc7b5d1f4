/*
 * io.h — an IO thread: one libuv loop, a queue of tasks posted from other
 * threads, and a list of things to flush at the end of the loop's turn
 * (internal).  The loop layer knows nothing of connections: whatever wants
 * its output coalesced embeds an orpc__flush and queues it.
 *
 * Locking theory: |lock| guards the task queue and |stopping| only.
 * Everything else in an orpc__io, and every handle on its loop, belongs to
 * the IO thread.  Other threads talk to it solely through orpc__io_post().
 */
#ifndef ORPC_IO_H
#define ORPC_IO_H

#include <uv.h>

#include <orpc/common.h>
#include <orpc/status.h>

typedef struct orpc__io orpc__io;

/* Something to flush once at the end of this loop turn (IO thread).
 * Embedded in its owner; |fn| gets it back. */
typedef struct orpc__flush {
    void (*fn)(struct orpc__flush *f);
    struct orpc__flush *next;
    int queued;
} orpc__flush;

/* A unit of work run on an IO thread.  Embedded in the object it works on,
 * so posting allocates nothing; posting a task that is already queued is a
 * no-op (the task runs once and sees all the work). */
typedef struct orpc__task {
    void (*fn)(struct orpc__task *task, void *arg);
    void *arg;
    struct orpc__task *next;
    int queued; /* guarded by the io's lock */
} orpc__task;

struct orpc__io {
    uv_loop_t loop;
    uv_async_t wake;
    uv_check_t flush;
    uv_idle_t nudge; /* active while connections are dirty: see io.c */
    uv_thread_t thread;
    uv_mutex_t lock;
    orpc__task *head, *tail;
    int stopping;
    orpc__flush *dirty; /* to flush at the end of this turn */
    unsigned index;     /* which IO thread of its owner */
    /* Called on the IO thread when a stop is requested: close every handle
     * the owner put on this loop.  The loop ends when none is left. */
    void (*on_stop)(orpc__io *io, void *user_data);
    void *user_data;
    char readbuf[64 * 1024];
    int reading; /* readbuf handed to libuv and not yet returned */
};

void orpc__task_init(orpc__task *t, void (*fn)(orpc__task *, void *),
                     void *arg);

/* Initialises the loop and its handles (on the calling thread). */
int orpc__io_init(orpc__io *io, unsigned index,
                  void (*on_stop)(orpc__io *, void *), void *user_data);
/* Starts the thread running the loop. */
int orpc__io_start(orpc__io *io);
/* Queues |t| to run on the IO thread.  Any thread.  Returns ORPC_ECLOSED
 * once the thread is stopping (the task will not run). */
int orpc__io_post(orpc__io *io, orpc__task *t);
/* Asks the IO thread to stop and waits for it; then closes the loop.  Not
 * from the IO thread itself.  orpc__io_post() keeps working (answering
 * ORPC_ECLOSED) until orpc__io_destroy(). */
void orpc__io_stop(orpc__io *io);
/* Releases what orpc__io_init() made that outlives the loop. */
void orpc__io_destroy(orpc__io *io);
/* Runs the loop on the calling thread until it is empty (for an io never
 * started), then frees it. */
void orpc__io_close_unstarted(orpc__io *io);
/* Nonzero on the IO thread of |io|. */
int orpc__io_on_thread(orpc__io *io);

/* Nonzero on any orpc IO thread (a server's or a channel's): where a
 * blocking call would wait for work only its own thread can do. */
int orpc__io_on_any_thread(void);

/* The FAILED_PRECONDITION status of blocking function |fn| called on an
 * orpc IO thread, which would wait for work only that thread can do. */
orpc_status orpc__io_blocking_refused(const char *fn);

/*
 * Tasks that keep their object alive while queued.  |task_ref| and |refs|
 * are the object's own fields, guarded by |lock|: a queued task holds one
 * reference, and |task_ref| says it does.
 *
 * orpc__task_take_ref() takes that reference unless the task already holds
 * it and returns 1 when it did (the caller then runs or posts the task);
 * orpc__task_clear_ref() is called first thing when the task runs, so work
 * posted during the run queues it again (the run still owns the reference
 * and drops it at its end).
 */
int orpc__task_take_ref(uv_mutex_t *lock, int *task_ref, int *refs);
void orpc__task_clear_ref(uv_mutex_t *lock, int *task_ref);

/* Queues |f| to be flushed at the end of this loop turn, once however
 * often it is queued (IO thread). */
void orpc__io_defer_flush(orpc__io *io, orpc__flush *f);
/* Takes |f| off the list if queued (its owner is going away). */
void orpc__io_cancel_flush(orpc__io *io, orpc__flush *f);

/* Monotonic now in nanoseconds. */
static inline int64_t orpc__now_ns(void)
{
    return (int64_t)uv_hrtime();
}

#endif /* ORPC_IO_H */
