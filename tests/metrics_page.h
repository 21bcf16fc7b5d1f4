/*
 * metrics_page.h — reading a Prometheus text page in the metrics tests
 * (metrics_test.c, rpc_metrics_test.c, router_metrics_test.c): the line a
 * sample or a prefix starts, a sample's value, how many lines start with a
 * prefix.
 */
#ifndef ORPC_TESTS_METRICS_PAGE_H
#define ORPC_TESTS_METRICS_PAGE_H

#include <stdlib.h>
#include <string.h>

/* The first line from |l| on that starts with |prefix| (followed by a
 * space when |key|: the whole name and labels of a sample), or NULL. */
static inline const char *page_find(const char *l, const char *prefix, int key)
{
    size_t k = strlen(prefix);
    while (l && *l) {
        if (strncmp(l, prefix, k) == 0 && (!key || l[k] == ' '))
            return l;
        l = strchr(l, '\n');
        l = l ? l + 1 : NULL;
    }
    return NULL;
}

/* The value of the sample |key| ("name{labels}"), or -1 without one. */
static inline double page_value(const char *p, const char *key)
{
    const char *l = page_find(p, key, 1);
    return l ? strtod(l + strlen(key) + 1, NULL) : -1;
}

/* How many lines start with |prefix|. */
static inline int page_count(const char *p, const char *prefix)
{
    int n = 0;
    for (const char *l = page_find(p, prefix, 0); l;
         l = page_find(strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL, prefix, 0))
        n++;
    return n;
}

#endif /* ORPC_TESTS_METRICS_PAGE_H */
