/*
 * test_alloc.c — the counting, failing allocator of the unit tests (see
 * test_alloc.h): orpc_mem hooks that refuse allocations once a budget is
 * spent, stamp each block with a header (magic, size) and count calls,
 * failures, live blocks and bytes, their peak and the largest block.
 *
 * It exists so that the failing-allocator sweeps and the leak accounting of
 * arena_test.c, metadata_test.c, wire_test.c and rpc_mem_test.c run on
 * one allocator instead of four copies of it.  A block freed through the
 * hooks that they did not allocate fails the running cmocka test.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_alloc.h"

#define TA_MAGIC 0x7a11c0deu

/* Guards every test_alloc: the hooks run on the runtime's threads too. */
static pthread_mutex_t ta_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct ta_hdr {
    uint32_t magic;
    size_t size;
    max_align_t pad_; /* keeps the user block maximally aligned */
} ta_hdr;

/* Spends one allocation of the budget; 0 (and a failure counted) when it is
 * spent already, or when this is the attempt |fail_at| names.  Called with
 * ta_lock held. */
static int ta_take(test_alloc *ta)
{
    long index = (long)ta->attempts++;
    if (ta->budget == 0 || index == ta->fail_at) {
        ta->failures++;
        return 0;
    }
    if (ta->budget > 0) {
        ta->budget--;
    }
    return 1;
}

static void *ta_raw(test_alloc *ta, size_t size)
{
    if (size > SIZE_MAX - sizeof(ta_hdr)) {
        return NULL;
    }
    ta_hdr *h = malloc(sizeof(ta_hdr) + size);
    if (h == NULL) {
        return NULL;
    }
    h->magic = TA_MAGIC;
    h->size = size;
    ta->calls++;
    ta->live++;
    ta->live_bytes += size;
    if (ta->live_bytes > ta->peak_bytes) {
        ta->peak_bytes = ta->live_bytes;
    }
    if (size > ta->max_size) {
        ta->max_size = size;
    }
    return h + 1;
}

static void *ta_malloc(size_t size, void *ud)
{
    test_alloc *ta = ud;
    pthread_mutex_lock(&ta_lock);
    void *p = ta_take(ta) ? ta_raw(ta, size) : NULL;
    pthread_mutex_unlock(&ta_lock);
    return p;
}

/* Called with ta_lock held (and returns with it held). */
static void ta_release(test_alloc *ta, void *p)
{
    ta_hdr *h = (ta_hdr *)p - 1;
    uint32_t magic = h->magic;
    int had_live = ta->live > 0;
    if (magic == TA_MAGIC && had_live) {
        h->magic = 0;
        ta->live--;
        ta->live_bytes -= h->size;
    }
    pthread_mutex_unlock(&ta_lock);
    /* (outside the lock: a failed assertion leaves through longjmp) */
    assert_int_equal(magic, TA_MAGIC);
    assert_true(had_live);
    free(h);
    pthread_mutex_lock(&ta_lock);
}

static void ta_free(void *p, void *ud)
{
    test_alloc *ta = ud;
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&ta_lock);
    ta_release(ta, p);
    pthread_mutex_unlock(&ta_lock);
}

static void *ta_calloc(size_t n, size_t size, void *ud)
{
    test_alloc *ta = ud;
    if (size != 0 && n > SIZE_MAX / size) {
        return NULL;
    }
    pthread_mutex_lock(&ta_lock);
    void *p = ta_take(ta) ? ta_raw(ta, n * size) : NULL;
    pthread_mutex_unlock(&ta_lock);
    if (p != NULL) {
        memset(p, 0, n * size);
    }
    return p;
}

static void *ta_realloc(void *p, size_t size, void *ud)
{
    test_alloc *ta = ud;
    pthread_mutex_lock(&ta_lock);
    void *q = ta_take(ta) ? ta_raw(ta, size) : NULL;
    if (q != NULL && p != NULL) {
        ta_hdr *h = (ta_hdr *)p - 1;
        memcpy(q, p, h->size < size ? h->size : size);
        ta_release(ta, p);
    }
    pthread_mutex_unlock(&ta_lock);
    return q;
}

orpc_mem ta_mem(test_alloc *ta, long budget)
{
    pthread_mutex_lock(&ta_lock);
    memset(ta, 0, sizeof(*ta));
    ta->budget = budget;
    ta->fail_at = -1;
    pthread_mutex_unlock(&ta_lock);
    orpc_mem m = {ta, ta_malloc, ta_free, ta_calloc, ta_realloc};
    return m;
}

test_alloc ta_snapshot(const test_alloc *ta)
{
    pthread_mutex_lock(&ta_lock);
    test_alloc copy = *ta;
    pthread_mutex_unlock(&ta_lock);
    return copy;
}
