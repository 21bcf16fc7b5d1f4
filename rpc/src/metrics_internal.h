/*
 * metrics_internal.h — internal: what the runtime's objects give a metrics
 * registry at scrape time (collectors and the sink they emit samples
 * into), and the counters a channel keeps for it (orpc__chan_counters,
 * read by channel_metrics.c).  The public side is orpc/metrics.h.
 *
 * A collector is a function the registry calls while it renders its page;
 * it emits counter and gauge samples (name, help, labels, value) into the
 * sink, which groups them by name so that each family gets one # HELP and
 * one # TYPE however many objects emit it.  Collectors run with the
 * registry's collector lock held: orpc__metrics_collector_remove() waits
 * for a scrape in progress, so after it returns the collector's |arg| is
 * never touched again.  A collector must therefore not block, take locks
 * that a thread calling _remove may hold, or call back into the registry
 * other than through the sink.
 *
 * Threads: any thread, for all of these.
 */
#ifndef ORPC_METRICS_INTERNAL_H
#define ORPC_METRICS_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include <orpc/channel.h>
#include <orpc/metrics.h>

/* Where a collector's samples go during one scrape. */
typedef struct orpc__metrics_sink orpc__metrics_sink;

/* A collector: emits its samples into |s|; |arg| is what it was added
 * with. */
typedef void (*orpc__metrics_collect_fn)(orpc__metrics_sink *s, void *arg);

/*
 * Adds a collector; |arg| identifies it for _remove (one collector per
 * |arg|).  0, ORPC_EINVAL (NULL |m| or |fn|, |arg| already added) or
 * ORPC_ENOMEM.  Borrows |arg| until _remove returns.
 */
int orpc__metrics_collector_add(orpc_metrics *m, orpc__metrics_collect_fn fn,
                                void *arg);

/* Removes the collector added with |arg| (no-op when there is none, or
 * |m| is NULL); waits for a scrape that is running it. */
void orpc__metrics_collector_remove(orpc_metrics *m, void *arg);

/*
 * Emits one sample of the counter / gauge family |name| (help text |help|,
 * static or outliving the scrape; the family's first sample's help is
 * used).  |labels| is NULL or a NULL-terminated array of name, value
 * pairs; values are escaped on output.  A sample that does not fit in
 * memory is dropped (the page then lacks it, and says nothing else).
 * Copies the strings.
 */
void orpc__metrics_sink_counter(orpc__metrics_sink *s, const char *name,
                                const char *help, const char *const *labels,
                                uint64_t value);
void orpc__metrics_sink_gauge(orpc__metrics_sink *s, const char *name,
                              const char *help, const char *const *labels,
                              double value);

/* ---- a channel's counters (channel_metrics.c) ---- */

/* Connectivity states, as orpc_channel_state numbers them. */
#define ORPC__CHAN_STATES 5

/*
 * Embedded in a channel.  The channel increments |state_changes[s]| when
 * it enters state |s| and |reconnects| when it connects again after having
 * been connected (relaxed atomics); channel_metrics.c reads them.
 */
typedef struct orpc__chan_counters {
    _Atomic uint64_t state_changes[ORPC__CHAN_STATES];
    _Atomic uint64_t reconnects;
    const char *target;      /* the label value; borrowed from the channel */
    struct orpc_channel *ch; /* its retry counts (orpc__retry_counts());
                                NULL: the series are left out */
} orpc__chan_counters;

/* Zeroes |c| and sets its target and channel (borrowed for as long as
 * |c| is registered). */
void orpc__chan_counters_init(orpc__chan_counters *c, const char *target,
                              struct orpc_channel *ch);

/* Counts one entry into |state| (a no-op for one out of range). */
void orpc__chan_counters_state(orpc__chan_counters *c,
                               orpc_channel_state state);

/* Counts one reconnect. */
void orpc__chan_counters_reconnect(orpc__chan_counters *c);

/*
 * What a channel calls when it is made and freed: init |c| (target and
 * channel borrowed until detach) and register its collector with |m|;
 * and the reverse.  0, ORPC_EINVAL or ORPC_ENOMEM; a NULL |m| attaches
 * nothing (0) and detaches nothing.
 */
int orpc__chan_metrics_attach(orpc_metrics *m, orpc__chan_counters *c,
                              const char *target, struct orpc_channel *ch);
void orpc__chan_metrics_detach(orpc_metrics *m, orpc__chan_counters *c);

/*
 * The collector for a channel: orpc__metrics_collector_add(m,
 * orpc__chan_metrics_collect, &counters).  Emits the
 * orpc_client_channel_* families for |arg| (an orpc__chan_counters *):
 * state changes and reconnects, and the retry counts of its channel when
 * it has one.
 */
void orpc__chan_metrics_collect(orpc__metrics_sink *s, void *arg);

#endif /* ORPC_METRICS_INTERNAL_H */
