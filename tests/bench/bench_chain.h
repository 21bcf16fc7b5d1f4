/*
 * bench_chain.h — the interceptor chain a benchmark program runs, from its
 * --interceptors flag: `default` (the runtime's default chain: trace
 * context and metrics), `none`, or one of the two alone (`trace`,
 * `metrics`), so tests/bench/interceptors.sh can say what each costs.
 */
#ifndef ORPC_BENCH_CHAIN_H
#define ORPC_BENCH_CHAIN_H

#include <string.h>

#include <orpc/metrics.h>
#include <orpc/observe.h>

typedef struct bench_chain {
    int no_defaults;       /* for the options' no_default_interceptors */
    orpc_interceptor *ic;  /* the one interceptor alone, or NULL */
    orpc_metrics *metrics; /* its registry (metrics alone) */
} bench_chain;

/* Sets |c| up from the flag's value; 0, or -1 for an unknown one. */
static inline int bench_chain_parse(bench_chain *c, const char *v)
{
    memset(c, 0, sizeof(*c));
    if (strcmp(v, "default") == 0)
        return 0;
    c->no_defaults = 1;
    if (strcmp(v, "none") == 0)
        return 0;
    if (strcmp(v, "trace") == 0)
        return orpc_trace_interceptor_new(&c->ic, NULL) == 0 ? 0 : -1;
    if (strcmp(v, "metrics") == 0)
        return orpc_metrics_new(&c->metrics, NULL, NULL) == 0 &&
                       orpc_metrics_interceptor_new(&c->ic, c->metrics) == 0
                   ? 0
                   : -1;
    return -1;
}

#endif /* ORPC_BENCH_CHAIN_H */
