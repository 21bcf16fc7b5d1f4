/*
 * platform.h — what opsconductor-scheduler and opsconductor-executor share:
 * the flags of the load shape and the stats file, the pacer that holds the
 * calls of all worker threads to --rate, the call counters (per method,
 * side and status, with a latency histogram each), the JSON stats
 * snapshot, and the runner (signals, worker threads, drain).
 *
 * Internal to examples/opsconductor/platform/.  Threads: every function
 * may be called from any worker thread unless it says otherwise; the
 * runner's own loop runs on the main thread.
 */
#ifndef OPSC_PLATFORM_H
#define OPSC_PLATFORM_H

#include <stdint.h>
#include <stdio.h>

#include <orpc/opsconductor.h>

/* Which side answered a call: from orpc_call_opts.served_by, with
 * "fallback" for a legacy answer of a method in fallback mode (the gRPC
 * side was tried first) and "none" for a call refused before any side
 * carried it. */
typedef enum plat_side {
    PLAT_GRPC = 0,
    PLAT_LEGACY = 1,
    PLAT_FALLBACK = 2,
    PLAT_NONE = 3,
    PLAT_N_SIDES = 4
} plat_side;

/* How many gRPC status codes there are (OK .. UNAUTHENTICATED). */
#define PLAT_N_CODES 17
/* Most methods one program counts. */
#define PLAT_MAX_METHODS 8

typedef struct plat plat;

/* A worker thread's view: its index and its private random state. */
typedef struct plat_worker {
    plat *p;
    int index;
    uint64_t rng;
} plat_worker;

/* A program: its name, the services it calls and one unit of its work. */
typedef struct plat_program {
    const char *name; /* "scheduler": stats "program", identity hint */
    /* The methods it counts, in the order the stats file lists them. */
    const orpc_method_desc *const *methods;
    int n_methods;
    /* The services it makes clients of (the runner makes one client each
     * with orpc_env_client_new() and frees them; see plat_client()). */
    const orpc_service_desc *const *services;
    int n_services;
    /* The program's own state (its counters, its flags), owned by its
     * main(); passed to the hooks below and given by plat_state(). */
    void *state;
    /* One unit of work (a job, a task) on a worker thread; returns when it
     * is done or plat_may_start() says stop. */
    void (*unit)(plat_worker *w);
    /* Writes the program's own counters as `,"name":N` pairs.  Called
     * under the stats lock. */
    void (*extra_json)(FILE *f, void *state);
    /* Zeroes the counters extra_json() writes (SIGUSR1), under the lock. */
    void (*extra_reset)(void *state);
    /* Extra flags: returns 1 if |arg| was one of them, 0 if not, -1 on a
     * bad value (after printing why). */
    int (*flag)(const char *arg, void *state);
    const char *flags_help;
} plat_program;

/* The load-shape flags every program has. */
typedef struct plat_flags {
    double rate;         /* calls per second, all workers together */
    int concurrency;     /* worker threads */
    int64_t duration_ms; /* 0: until a signal */
    int64_t call_timeout_ms;
    int64_t drain_ms; /* after SIGTERM: how long units may finish */
    int64_t stats_interval_ms;
    const char *stats_file; /* NULL: no file */
    uint64_t seed;          /* 0: round robin */
    int has_seed;
} plat_flags;

/* Runs |prog|: parses argv, makes the env and the clients, starts the
 * workers, writes stats until a signal or --duration-ms, drains, writes
 * the final stats.  Returns the process exit code.  Main thread only,
 * before any other thread exists. */
int plat_main(const plat_program *prog, int argc, char **argv);

/* The program's state (plat_program.state). */
void *plat_state(plat *p);

/* The client of the program's |i|th service. */
orpc_client *plat_client(plat *p, int i);

/* The parsed flags (read-only after start). */
const plat_flags *plat_get_flags(const plat *p);

/* Milliseconds on the monotonic clock. */
int64_t plat_now_ms(void);

/* Whether a new unit (a job, a task) may start: 0 once the program stops. */
int plat_may_start(plat *p);

/* Waits for the pacer's next slot.  |follow| nonzero: a call that follows
 * a unit already under way (a poll of a running job), allowed while the
 * program drains; zero: a new call, refused once it stops.  Returns 0 when
 * the call may go, -1 when it must not. */
int plat_pace(plat *p, int follow);

/* Sleeps up to |ms| unless the program reaches |follow|'s stop point (as
 * plat_pace()); returns -1 then, else 0. */
int plat_sleep(plat *p, int64_t ms, int follow);

/* A uniformly drawn number in [0, n) from |w|'s generator. */
uint64_t plat_random(plat_worker *w, uint64_t n);

/* The routing table's mode for |m| now. */
orpc_route_mode plat_mode(plat *p, const orpc_method_desc *m);

/* One call being measured: plat_call_begin() before, plat_call_end()
 * after. */
typedef struct plat_call {
    const orpc_method_desc *m;
    orpc_route_mode mode;
    orpc_served_by by;
    int64_t t0_ns;
    orpc_call_opts opts; /* timeout and served_by set; pass to the stub */
} plat_call;

/* Paces (as plat_pace()) and starts measuring a call of |m| with a
 * deadline of min(--call-timeout-ms, |max_ms|) (|max_ms| 0: no limit
 * but the flag's).  Returns -1 when the call must not be made. */
int plat_call_begin(plat *p, plat_call *c, const orpc_method_desc *m,
                    int follow, int64_t max_ms);

/* Counts the call with its status (the side from served_by and the mode
 * read at begin) and returns the side. */
plat_side plat_call_end(plat *p, plat_call *c, const orpc_status *st);

/* Counts a call whose status and side the caller knows (streams). */
void plat_count(plat *p, const orpc_method_desc *m, plat_side side,
                orpc_code code, int64_t t0_ns, const char *message);

/* Counts a stream that ended with |code| before it was done and that the
 * program then resumed (opened again, or followed another way): shown as
 * its own row ("resumed": true), not a failed call. */
void plat_count_resumed(plat *p, const orpc_method_desc *m, plat_side side,
                        orpc_code code, int64_t t0_ns);

/* Monotonic nanoseconds, for plat_count()'s |t0_ns|. */
int64_t plat_now_ns(void);

/* Registers a stream the runner cancels at the end of the drain (cancel
 * is called with |stream| from the main thread while registered).
 * Returns -1, cancelling nothing, when the program has already stopped.
 * plat_stream_clear() must come before the stream is finished. */
int plat_stream_set(plat_worker *w, void *stream, void (*cancel)(void *));
void plat_stream_clear(plat_worker *w);

/* Runs |fn| under the stats lock (for the programs' own counters, so a
 * snapshot and a SIGUSR1 reset see them consistent with the calls). */
void plat_locked(plat *p, void (*fn)(void *), void *arg);

/* The value of field |key| of a Struct, or NULL. */
const Google__Protobuf__Value *plat_field(const Google__Protobuf__Struct *s,
                                          const char *key);
/* A string field, or NULL. */
const char *plat_str(const Google__Protobuf__Struct *s, const char *key);
/* A number field as int64, or |dflt|. */
int64_t plat_int(const Google__Protobuf__Struct *s, const char *key,
                 int64_t dflt);
/* A bool field (0 when absent or not a bool). */
int plat_bool(const Google__Protobuf__Struct *s, const char *key);
/* A Struct decoded from JSON text (free with
 * google__protobuf__struct__free_unpacked(s, NULL)), or NULL. */
Google__Protobuf__Struct *plat_struct(const char *json);

#endif /* OPSC_PLATFORM_H */
