/*
 * orpc/metrics.h — call metrics in Prometheus's text format.
 *
 * An orpc_metrics registry counts calls per method and status code (started,
 * finished, in flight, latency histogram, messages and bytes each way), per
 * channel (connectivity state changes, reconnects, retries, hedges,
 * throttled retries) and per routed client (the side that served calls,
 * fallbacks, shadow matches and mismatches).  Servers and channels record
 * into one through the metrics interceptor, which is in their default
 * chain; orpc_metrics_prometheus() renders the page an admin listener
 * serves at /metrics (orpc_server_opts.admin_address).  docs/metrics.md
 * lists every metric.
 *
 * A registry is shared and reference-counted: give the same one to every
 * server and channel of a process for one page.  There is no process-wide
 * registry: each server or channel that is given none makes its own.
 */
#ifndef ORPC_METRICS_H
#define ORPC_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <orpc/common.h>
#include <orpc/error.h>
#include <orpc/interceptor.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A metrics registry. */
typedef struct orpc_metrics orpc_metrics;

/**
 * @function
 * Makes an empty registry.
 *
 * Returns 0, ORPC_EINVAL or ORPC_ENOMEM, the reason in |detail| when given
 * (else on stderr).
 *
 * Ownership: the caller owns one reference; copies |mem| (NULL: libc).
 * Threads: any thread.
 * Allocation: |mem| allocates the registry and its series.
 */
ORPC_EXTERN int orpc_metrics_new(orpc_metrics **out, const orpc_mem *mem,
                                 orpc_error_detail *detail);

/**
 * @function
 * Takes one more reference to |m| and returns it.
 *
 * Ownership: the caller owns the new reference.
 * Threads: any thread.
 */
ORPC_EXTERN orpc_metrics *orpc_metrics_ref(orpc_metrics *m);

/**
 * @function
 * Drops one reference; the last frees the registry.  NULL is a no-op.
 *
 * Ownership: ends the caller's reference.
 * Threads: any thread.
 */
ORPC_EXTERN void orpc_metrics_unref(orpc_metrics *m);

/**
 * @function
 * Renders every series in the Prometheus text exposition format (0.0.4),
 * into a NUL-terminated string of |*len| bytes.
 *
 * Returns 0, ORPC_EINVAL or ORPC_ENOMEM.
 *
 * Ownership: the caller owns |*out| and frees it with free().
 * Threads: any thread (counters are read while calls update them).
 */
ORPC_EXTERN int orpc_metrics_prometheus(orpc_metrics *m, char **out,
                                        size_t *len);

/**
 * @function
 * Makes an interceptor that records the calls it sees into |m|, under
 * orpc_client_* or orpc_server_* names by the call's side.
 *
 * Returns 0, ORPC_EINVAL or ORPC_ENOMEM.
 *
 * Ownership: takes a reference to |m|; the caller owns the interceptor.
 * Threads: any thread.
 */
ORPC_EXTERN int orpc_metrics_interceptor_new(orpc_interceptor **out,
                                             orpc_metrics *m);

/**
 * @function
 * Adds |delta| to the counter |name| with |labels|, made on first use:
 * for an application's or a library's own counts (routed clients record
 * orpc_router_* through it).  |name| must be a Prometheus metric name
 * ([a-zA-Z_:][a-zA-Z0-9_:]*), conventionally ending in _total, and not
 * under orpc_client_ or orpc_server_ (the registry's own families).
 * |labels| is NULL or a NULL-terminated array of name, value pairs
 * ({"method", "/pkg.Svc/M", NULL}); label names as Prometheus's
 * ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__"), values any UTF-8
 * (escaped on the page).  The family's first |help| is kept (NULL: none).
 * At most 4096 series are made this way per registry.
 *
 * Returns 0, ORPC_EINVAL (NULL |m| or |name|, a bad name, an odd label
 * array), ORPC_ELIMIT (a new series past the bound) or ORPC_ENOMEM.
 *
 * Ownership: copies |name|, |help| and |labels|.
 * Threads: any thread (a series is found under the registry's lock: not
 * meant for a call's hot path).
 */
ORPC_EXTERN int orpc_metrics_counter_add(orpc_metrics *m, const char *name,
                                         const char *help,
                                         const char *const *labels,
                                         uint64_t delta);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_METRICS_H */
