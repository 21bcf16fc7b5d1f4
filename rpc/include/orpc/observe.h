/*
 * orpc/observe.h — call logs and W3C trace context, built as interceptors
 * (orpc/interceptor.h).
 *
 * Call logs: one line per call, at its end, in logfmt or JSON lines:
 *
 *     ts=2026-12-06T23:40:01.123Z level=info side=client
 *     method=/ops.jobs.v1.Jobs/RunJob peer=dns:///jobs:50051 served_by=grpc
 *     code=OK duration_ms=1.234 msgs_in=1 msgs_out=1 bytes_in=12
 *     bytes_out=34 trace_id=4bf92f3577b34da6a3ce929d0e0e4736
 *
 * (one line; README.md, "Call logs", lists the fields).  A call that ended
 * OK is logged at INFO, any other at WARN, with `error="<message>"`.
 *
 * Trace context: the trace interceptor, in every channel's and server's
 * default chain, carries the W3C trace context
 * (https://www.w3.org/TR/trace-context/).  A server call that arrives
 * without a `traceparent` (or with a malformed one) starts a new trace:
 * its handler sees the new `traceparent` in orpc_ctx_metadata().  A client
 * call made while a handler runs (on the handler's thread, or with
 * orpc_call_opts.parent) continues the handler's trace with a new span id
 * and the same `tracestate`.  A client call with no parent goes without
 * one (its server starts the trace), unless the interceptor was made with
 * orpc_trace_opts.start_client_traces (the service clients do so while
 * they log calls, so both sides' log lines share the trace id).  A
 * `traceparent` the application put in the call's metadata is left as it
 * is.
 */
#ifndef ORPC_OBSERVE_H
#define ORPC_OBSERVE_H

#include <stddef.h>

#include <orpc/common.h>
#include <orpc/error.h>
#include <orpc/interceptor.h>
#include <orpc/metadata.h>

#ifdef __cplusplus
extern "C" {
#endif

/** How call log lines are written. */
typedef enum orpc_call_log_format {
    ORPC_CALL_LOG_LOGFMT = 0, /**< key=value pairs (the default) */
    ORPC_CALL_LOG_JSON = 1    /**< one JSON object per line */
} orpc_call_log_format;

/**
 * Where call log lines go: |line| (|len| bytes, no newline, borrowed for
 * the call) at |level|.  Called on the thread that ended the call; must be
 * thread-safe and must not block.
 */
typedef void (*orpc_call_log_sink)(orpc_log_level level, const char *line,
                                   size_t len, void *user_data);

/** Call log options (NULL options: logfmt, every call, to stderr). */
typedef struct orpc_call_log_opts {
    /** Line format. */
    orpc_call_log_format format;
    /** The least severe level written (ORPC_LOG_INFO: every call;
     *  ORPC_LOG_WARN: failed calls only; ORPC_LOG_ERROR, which is 0: none,
     *  as a call line is never an error).  Set it (or use
     *  orpc_call_log_opts_from_env()). */
    orpc_log_level level;
    /** The sink, or NULL for stderr (one write per line). */
    orpc_call_log_sink sink;
    /** Passed to |sink|. */
    void *user_data;
} orpc_call_log_opts;

/**
 * @function
 * Makes a call-log interceptor.
 *
 * Returns 0, ORPC_EINVAL (NULL |out|, an unknown format) or ORPC_ENOMEM.
 *
 * Ownership: copies |opts| (NULL: logfmt at INFO to stderr); the caller
 * owns the interceptor.
 * Threads: any thread.
 */
ORPC_EXTERN int orpc_call_log_interceptor_new(orpc_interceptor **out,
                                              const orpc_call_log_opts *opts);

/**
 * @function
 * Reads the call-log settings today's service clients read:
 * SERVICE_COMM_LOG_ENABLED (true/false, 1/0, yes/no; default true) into
 * |*enabled|, LOG_LEVEL (DEBUG, INFO, WARNING or WARN, ERROR, CRITICAL;
 * any case; default INFO) into opts->level, and ORPC_CALL_LOG_FORMAT
 * (logfmt or json; default logfmt) into opts->format.  Other fields of
 * |opts| are left as they are.
 *
 * Returns 0, or ORPC_ECONFIG naming the variable and its bad value in
 * |detail| when given (else on stderr).
 *
 * Ownership: nothing changes hands.
 * Threads: any thread (reads the environment: not alongside setenv()).
 */
ORPC_EXTERN int orpc_call_log_opts_from_env(orpc_call_log_opts *opts,
                                            int *enabled,
                                            orpc_error_detail *detail);

/** Trace interceptor options (NULL: those of the default chains). */
typedef struct orpc_trace_opts {
    /** Nonzero: a client call with no parent and no `traceparent` of its
     *  own starts a trace (a `traceparent` on the wire for every call);
     *  zero: it goes without, and its server starts one. */
    int start_client_traces;
} orpc_trace_opts;

/**
 * @function
 * Makes a trace-context interceptor (default chains hold one made with
 * NULL options).
 *
 * Returns 0, ORPC_EINVAL or ORPC_ENOMEM.
 *
 * Ownership: copies |opts|; the caller owns the interceptor.
 * Threads: any thread.
 */
ORPC_EXTERN int orpc_trace_interceptor_new(orpc_interceptor **out,
                                           const orpc_trace_opts *opts);

/**
 * @function
 * The trace id of the first `traceparent` in |md|, as 32 lowercase hex
 * digits and a NUL in |out|.
 *
 * Returns 0, ORPC_ENOTFOUND (none), or ORPC_EINVAL (malformed, or NULL).
 *
 * Ownership: nothing changes hands.
 * Threads: any thread, alongside other readers of |md|.
 */
ORPC_EXTERN int orpc_trace_id(const orpc_metadata *md, char out[33]);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_OBSERVE_H */
