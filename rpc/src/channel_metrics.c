/*
 * channel_metrics.c — what a channel shows on a metrics page: its
 * connectivity state changes and reconnects (orpc__chan_counters, which
 * the channel embeds and increments) and its retry counts (retries,
 * hedges, throttled and transparent retries: orpc__retry_counts(),
 * retry.c), emitted at scrape time by the collector the channel registers
 * with its registry (metrics_internal.h).
 *
 * The counters live in the channel rather than in the registry so that
 * counting costs the channel one relaxed atomic and no lookup; the
 * registry only reads them while it renders a page.
 */
#include "metrics_internal.h"

#include <string.h>

#include "retry.h"

static const char *const state_names[ORPC__CHAN_STATES] = {
    "IDLE", "CONNECTING", "READY", "TRANSIENT_FAILURE", "SHUTDOWN"};

void orpc__chan_counters_init(orpc__chan_counters *c, const char *target,
                              struct orpc_channel *ch)
{
    for (int i = 0; i < ORPC__CHAN_STATES; i++)
        atomic_init(&c->state_changes[i], 0);
    atomic_init(&c->reconnects, 0);
    c->target = target;
    c->ch = ch;
}

void orpc__chan_counters_state(orpc__chan_counters *c, orpc_channel_state state)
{
    if ((unsigned)state < ORPC__CHAN_STATES)
        atomic_fetch_add_explicit(&c->state_changes[state], 1,
                                  memory_order_relaxed);
}

void orpc__chan_counters_reconnect(orpc__chan_counters *c)
{
    atomic_fetch_add_explicit(&c->reconnects, 1, memory_order_relaxed);
}

int orpc__chan_metrics_attach(orpc_metrics *m, orpc__chan_counters *c,
                              const char *target, struct orpc_channel *ch)
{
    orpc__chan_counters_init(c, target, ch);
    return m ? orpc__metrics_collector_add(m, orpc__chan_metrics_collect, c)
             : 0;
}

void orpc__chan_metrics_detach(orpc_metrics *m, orpc__chan_counters *c)
{
    orpc__metrics_collector_remove(m, c);
}

void orpc__chan_metrics_collect(orpc__metrics_sink *s, void *arg)
{
    orpc__chan_counters *c = arg;
    const char *target = c->target ? c->target : "";
    for (int i = 0; i < ORPC__CHAN_STATES; i++) {
        const char *labels[] = {"target", target, "state", state_names[i],
                                NULL};
        orpc__metrics_sink_counter(
            s, "orpc_client_channel_state_changes_total",
            "Times the channel entered each connectivity state.", labels,
            atomic_load_explicit(&c->state_changes[i], memory_order_relaxed));
    }
    const char *labels[] = {"target", target, NULL};
    orpc__metrics_sink_counter(
        s, "orpc_client_channel_reconnects_total",
        "Times the channel connected again after losing a connection.", labels,
        atomic_load_explicit(&c->reconnects, memory_order_relaxed));
    if (c->ch == NULL)
        return;
    static const struct {
        const char *name, *help;
    } retry[ORPC__RETRY_N_COUNTS] = {
        [ORPC__RETRY_N_RETRIES] = {"orpc_client_channel_retries_total",
                                   "Attempts beyond a call's first, by its "
                                   "retry policy."},
        [ORPC__RETRY_N_HEDGES] = {"orpc_client_channel_hedges_total",
                                  "Hedged attempts beyond a call's first."},
        [ORPC__RETRY_N_THROTTLED] = {"orpc_client_channel_throttled_retries_"
                                     "total",
                                     "Retries and hedges refused by retry "
                                     "throttling."},
        [ORPC__RETRY_N_TRANSPARENT] = {"orpc_client_channel_transparent_"
                                       "retries_total",
                                       "Attempts retried because the server "
                                       "never processed them."}};
    uint64_t n[ORPC__RETRY_N_COUNTS];
    orpc__retry_counts(c->ch, n);
    for (int i = 0; i < ORPC__RETRY_N_COUNTS; i++)
        orpc__metrics_sink_counter(s, retry[i].name, retry[i].help, labels,
                                   n[i]);
}
