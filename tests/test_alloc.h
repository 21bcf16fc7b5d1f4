/*
 * test_alloc.h — the counting, failing allocator of the unit tests: an
 * orpc_mem whose hooks refuse every allocation once a budget of successful
 * ones is spent, and count what they hand out and take back.
 *
 * Why: the tests of objects that take an orpc_mem (arena_test.c,
 * metadata_test.c, wire_test.c) sweep the budget 0, 1, 2, ... to reach
 * every allocation failure, check that each ends in NULL or ORPC_ENOMEM
 * with nothing leaked (live == 0), and check how much was allocated (calls,
 * live_bytes, peak_bytes, max_size).  One allocator serves them all, so the
 * counts mean the same thing in each.
 *
 * Each block is prefixed with a header carrying a magic number and the
 * size, so a block freed through the hooks that did not come from them is
 * caught (a cmocka assertion in the free hook; the reverse, a hook block
 * freed with free(3), ASan reports), and live blocks and bytes can be
 * counted.  calloc refuses n * size overflow without spending the budget;
 * realloc always moves the block.
 *
 * The hooks may be called from several threads at once (a server's or a
 * channel's IO and worker threads): one mutex guards every test_alloc.
 * Read the counters of an allocator other threads still use with
 * ta_snapshot().  |fail_at| refuses exactly one allocation, the one with
 * that index among all attempts (0-based), and no other: the sweeps of
 * rpc_mem_test.c fail each allocation of a scenario in turn.
 */
#ifndef ORPC_TESTS_TEST_ALLOC_H
#define ORPC_TESTS_TEST_ALLOC_H

#include <stddef.h>

#include <orpc/common.h>

typedef struct test_alloc {
    long budget;       /* allocations still allowed; -1 = unlimited */
    size_t calls;      /* successful allocations */
    size_t failures;   /* refused allocations */
    size_t live;       /* blocks not yet freed */
    size_t live_bytes; /* bytes in those blocks */
    size_t peak_bytes; /* highest live_bytes seen */
    size_t max_size;   /* largest block asked for */
    size_t attempts;   /* allocations asked for (refused ones included) */
    long fail_at;      /* refuse the attempt of this index; -1 = none */
} test_alloc;

/* Zeroes |ta|, gives it |budget| (-1 = unlimited) and returns the hooks
 * (malloc, free, calloc, realloc) that allocate through it; |ta| is their
 * user_data and must outlive every block they hand out. */
orpc_mem ta_mem(test_alloc *ta, long budget);

/* A copy of |ta|'s counters, read under the allocators' lock. */
test_alloc ta_snapshot(const test_alloc *ta);

#endif /* ORPC_TESTS_TEST_ALLOC_H */
