/*
 * channel_metrics.c — what a channel shows on a metrics page: its
 * connectivity state changes and reconnects (orpc__chan_counters, which
 * the channel embeds and increments), emitted at scrape time by the
 * collector the channel registers with its registry (metrics_internal.h).
 *
 * The counters live in the channel rather than in the registry so that
 * counting costs the channel one relaxed atomic and no lookup; the
 * registry only reads them while it renders a page.
 */
#include "metrics_internal.h"

#include <string.h>

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
}
