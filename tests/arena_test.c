/*
 * arena_test.c — orpc_arena: alignment, unique zero-size pointers, overflow
 * refusal, block growth and its cap, large allocations on their own block,
 * reset keeping the first block, footprint accounting, the protobuf-c view,
 * and a failing-allocator sweep (every allocation count from 0 up) that must
 * end in NULLs or ORPC_ENOMEM and never in a leak.
 *
 * The test allocator (test_alloc.h) counts calls, failures, live blocks and
 * bytes and the largest block, and catches a block freed through its hooks
 * that did not come from them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <orpc/arena.h>
#include <orpc/error.h>

#include "test_alloc.h"

/* ---- tests --------------------------------------------------------------- */

static void test_null_arguments(void **state)
{
    (void)state;
    assert_int_equal(orpc_arena_new(NULL, 0, NULL), ORPC_EINVAL);
    orpc_arena_free(NULL);
    orpc_arena_reset(NULL);
    assert_null(orpc_arena_alloc(NULL, 1));
    assert_null(orpc_arena_calloc(NULL, 1, 1));
    assert_null(orpc_arena_strdup(NULL, "x"));
    assert_null(orpc_arena_memdup(NULL, "x", 1));
    assert_int_equal(orpc_arena_footprint(NULL), 0);
    assert_null(orpc_arena_allocator(NULL));
}

static void test_default_allocator_and_lazy_first_block(void **state)
{
    (void)state;
    orpc_arena *a = NULL;
    assert_int_equal(orpc_arena_new(&a, 0, NULL), 0);
    assert_non_null(a);
    assert_int_equal(orpc_arena_footprint(a), 0);
    char *p = orpc_arena_alloc(a, 10);
    assert_non_null(p);
    memcpy(p, "123456789", 10);
    /* Default first block: 4 KiB plus a small header. */
    assert_true(orpc_arena_footprint(a) >= 4096);
    assert_true(orpc_arena_footprint(a) < 4096 + 256);
    orpc_arena_free(a);
}

static void test_alignment_and_no_overlap(void **state)
{
    (void)state;
    orpc_arena *a;
    assert_int_equal(orpc_arena_new(&a, 100, NULL), 0);
    enum { N = 500 };
    unsigned char *ptrs[N];
    size_t sizes[N];
    for (size_t i = 0; i < N; i++) {
        sizes[i] = (i * 37) % 301; /* includes 0 and odd sizes */
        ptrs[i] = orpc_arena_alloc(a, sizes[i]);
        assert_non_null(ptrs[i]);
        assert_int_equal((uintptr_t)ptrs[i] % 16, 0);
        memset(ptrs[i], (int)(i & 0xff), sizes[i]);
    }
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < sizes[i]; j++) {
            assert_int_equal(ptrs[i][j], (unsigned char)(i & 0xff));
        }
    }
    orpc_arena_free(a);
}

static void test_zero_size_is_unique(void **state)
{
    (void)state;
    orpc_arena *a;
    assert_int_equal(orpc_arena_new(&a, 0, NULL), 0);
    void *p = orpc_arena_alloc(a, 0);
    void *q = orpc_arena_alloc(a, 0);
    void *r = orpc_arena_calloc(a, 0, 8);
    void *s = orpc_arena_memdup(a, NULL, 0);
    assert_non_null(p);
    assert_non_null(q);
    assert_non_null(r);
    assert_non_null(s);
    assert_ptr_not_equal(p, q);
    assert_ptr_not_equal(q, r);
    assert_ptr_not_equal(r, s);
    orpc_arena_free(a);
}

static void test_overflow_refused(void **state)
{
    (void)state;
    test_alloc ta;
    orpc_mem m = ta_mem(&ta, -1);
    orpc_arena *a;
    assert_int_equal(orpc_arena_new(&a, 0, &m), 0);
    assert_null(orpc_arena_alloc(a, SIZE_MAX));
    assert_null(orpc_arena_alloc(a, SIZE_MAX - 1));
    assert_null(orpc_arena_alloc(a, SIZE_MAX - 15));
    assert_null(orpc_arena_alloc(a, SIZE_MAX - 64));
    assert_null(orpc_arena_alloc(a, SIZE_MAX / 2 + 1));
    assert_null(orpc_arena_calloc(a, SIZE_MAX / 2 + 1, 2));
    assert_null(orpc_arena_calloc(a, SIZE_MAX, SIZE_MAX));
    assert_null(orpc_arena_calloc(a, 2, SIZE_MAX / 2 + 1));
    assert_null(orpc_arena_memdup(a, "x", SIZE_MAX));
    /* No huge request reached the allocator. */
    assert_true(ta.max_size < 64 * 1024);
    /* Still usable afterwards. */
    char *s = orpc_arena_strdup(a, "still fine");
    assert_non_null(s);
    assert_string_equal(s, "still fine");
    orpc_arena_free(a);
    assert_int_equal(ta.live, 0);
}

static void test_calloc_strdup_memdup(void **state)
{
    (void)state;
    orpc_arena *a;
    assert_int_equal(orpc_arena_new(&a, 0, NULL), 0);
    unsigned char *p = orpc_arena_alloc(a, 1000);
    assert_non_null(p);
    memset(p, 0xAA, 1000);
    orpc_arena_reset(a);
    /* The first block is reused: the same memory, now zeroed. */
    unsigned char *z = orpc_arena_calloc(a, 250, 4);
    assert_ptr_equal(z, p);
    for (size_t i = 0; i < 1000; i++) {
        assert_int_equal(z[i], 0);
    }

    assert_null(orpc_arena_strdup(a, NULL));
    char src[] = "hello, arena";
    char *d = orpc_arena_strdup(a, src);
    assert_ptr_not_equal(d, src);
    assert_string_equal(d, src);
    assert_string_equal(orpc_arena_strdup(a, ""), "");

    const uint8_t bytes[] = {0, 1, 2, 0, 255};
    uint8_t *m = orpc_arena_memdup(a, bytes, sizeof(bytes));
    assert_non_null(m);
    assert_memory_equal(m, bytes, sizeof(bytes));
    assert_null(orpc_arena_memdup(a, NULL, 5));
    orpc_arena_free(a);
}

static void test_growth_doubles_and_caps(void **state)
{
    (void)state;
    test_alloc ta;
    orpc_mem m = ta_mem(&ta, -1);
    orpc_arena *a;
    assert_int_equal(orpc_arena_new(&a, 0, &m), 0);
    assert_int_equal(ta.calls, 1); /* the arena itself */
    size_t base = ta.live_bytes;
    size_t total = 4 * 1024 * 1024;
    for (size_t done = 0; done < total; done += 1024) {
        assert_non_null(orpc_arena_alloc(a, 1024));
    }
    /* Blocks double from 4 KiB to the 64 KiB cap and stay there. */
    assert_true(ta.max_size >= 64 * 1024);
    assert_true(ta.max_size < 64 * 1024 + 256);
    /* About 4 MiB / 64 KiB blocks, plus the ramp: far fewer than 4096. */
    assert_true(ta.calls < 80);
    /* Footprint is every block the allocator holds, the header aside. */
    assert_int_equal(orpc_arena_footprint(a), ta.live_bytes - base);
    assert_true(orpc_arena_footprint(a) >= total);
    /* Waste is bounded: at most one 1 KiB tail per block plus headers. */
    assert_true(orpc_arena_footprint(a) < total + total / 8);
    orpc_arena_free(a);
    assert_int_equal(ta.live, 0);
    assert_int_equal(ta.live_bytes, 0);
}

static void test_big_allocation_gets_own_block(void **state)
{
    (void)state;
    test_alloc ta;
    orpc_mem m = ta_mem(&ta, -1);
    orpc_arena *a;
    assert_int_equal(orpc_arena_new(&a, 0, &m), 0);
    char *small1 = orpc_arena_alloc(a, 16);
    assert_non_null(small1);
    size_t calls = ta.calls;
    size_t before = orpc_arena_footprint(a);

    size_t big = 1024 * 1024;
    unsigned char *b = orpc_arena_alloc(a, big);
    assert_non_null(b);
    assert_int_equal((uintptr_t)b % 16, 0);
    memset(b, 0x5A, big);
    assert_int_equal(ta.calls, calls + 1);
    assert_true(ta.max_size >= big);
    assert_true(ta.max_size < big + 256); /* sized to the request */
    assert_int_equal(orpc_arena_footprint(a), before + ta.max_size);

    /* Small allocations keep using the current (first) block. */
    char *small2 = orpc_arena_alloc(a, 16);
    assert_ptr_equal(small2, small1 + 16);
    assert_int_equal(ta.calls, calls + 1);

    /* Reset drops the big block (regression: it sat behind the first). */
    orpc_arena_reset(a);
    assert_int_equal(orpc_arena_footprint(a), before);
    assert_int_equal(ta.live, 2);
    orpc_arena_free(a);
    assert_int_equal(ta.live, 0);
}

static void test_reset_keeps_first_block(void **state)
{
    (void)state;
    test_alloc ta;
    orpc_mem m = ta_mem(&ta, -1);
    orpc_arena *a;
    assert_int_equal(orpc_arena_new(&a, 512, &m), 0);
    orpc_arena_reset(a); /* before first use: nothing to keep */
    assert_int_equal(orpc_arena_footprint(a), 0);

    void *first = orpc_arena_alloc(a, 8);
    assert_non_null(first);
    size_t first_fp = orpc_arena_footprint(a);
    assert_true(first_fp >= 512);
    for (int i = 0; i < 1000; i++) {
        assert_non_null(orpc_arena_alloc(a, (size_t)i));
    }
    assert_non_null(orpc_arena_alloc(a, 200000));
    assert_true(orpc_arena_footprint(a) > first_fp);

    for (int round = 0; round < 3; round++) {
        orpc_arena_reset(a);
        assert_int_equal(orpc_arena_footprint(a), first_fp);
        assert_int_equal(ta.live, 2); /* the arena and its first block */
        size_t calls = ta.calls;
        /* Small calls allocate nothing and start at the same place. */
        void *again = orpc_arena_alloc(a, 8);
        assert_ptr_equal(again, first);
        assert_non_null(orpc_arena_alloc(a, 400));
        assert_int_equal(ta.calls, calls);
        /* Growth after a reset starts over from the first block's size. */
        assert_non_null(orpc_arena_alloc(a, 300));
        assert_int_equal(ta.calls, calls + 1);
        assert_true(ta.max_size >= 1024);
    }
    orpc_arena_free(a);
    assert_int_equal(ta.live, 0);
}

static void test_large_first_block(void **state)
{
    (void)state;
    test_alloc ta;
    orpc_mem m = ta_mem(&ta, -1);
    orpc_arena *a;
    assert_int_equal(orpc_arena_new(&a, 256 * 1024, &m), 0);
    for (int i = 0; i < 300; i++) {
        assert_non_null(orpc_arena_alloc(a, 1000));
    }
    /* 300 KB in a 256 KiB first block, then one more block. */
    assert_int_equal(ta.calls, 3);
    orpc_arena_free(a);
    assert_int_equal(ta.live, 0);

    /* A first block that cannot exist: creation works, use fails. */
    m = ta_mem(&ta, -1);
    assert_int_equal(orpc_arena_new(&a, SIZE_MAX, &m), 0);
    assert_null(orpc_arena_alloc(a, 1));
    assert_int_equal(orpc_arena_footprint(a), 0);
    orpc_arena_reset(a);
    orpc_arena_free(a);
    assert_int_equal(ta.live, 0);
}

/* A hand-written protobuf-c descriptor of
 *   message M { string name = 1; bytes data = 2; repeated int32 nums = 3; }
 * as protoc-c would emit it, to decode into the arena. */
typedef struct test_msg {
    ProtobufCMessage base;
    char *name;
    ProtobufCBinaryData data;
    size_t n_nums;
    int32_t *nums;
} test_msg;

static const ProtobufCFieldDescriptor test_msg_fields[3] = {
    {"name", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_STRING, 0,
     offsetof(test_msg, name), NULL, &protobuf_c_empty_string, 0, 0, NULL,
     NULL},
    {"data", 2, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_BYTES, 0,
     offsetof(test_msg, data), NULL, NULL, 0, 0, NULL, NULL},
    {"nums", 3, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_INT32,
     offsetof(test_msg, n_nums), offsetof(test_msg, nums), NULL, NULL,
     PROTOBUF_C_FIELD_FLAG_PACKED, 0, NULL, NULL},
};
static const unsigned test_msg_by_name[] = {1, 0, 2};
static const ProtobufCIntRange test_msg_ranges[2] = {{1, 0}, {0, 3}};

static void test_msg_init(ProtobufCMessage *m);

static const ProtobufCMessageDescriptor test_msg_desc = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "t.M",
    "M",
    "T__M",
    "t",
    sizeof(test_msg),
    3,
    test_msg_fields,
    test_msg_by_name,
    1,
    test_msg_ranges,
    test_msg_init,
    NULL,
    NULL,
    NULL,
};

static void test_msg_init(ProtobufCMessage *m)
{
    test_msg *t = (test_msg *)m;
    memset(t, 0, sizeof(*t));
    t->base.descriptor = &test_msg_desc;
    t->name = (char *)protobuf_c_empty_string;
}

static void test_protobuf_allocator(void **state)
{
    (void)state;
    test_alloc ta;
    orpc_mem m = ta_mem(&ta, -1);
    orpc_arena *a;
    assert_int_equal(orpc_arena_new(&a, 0, &m), 0);
    ProtobufCAllocator *pa = orpc_arena_allocator(a);
    assert_non_null(pa);
    assert_ptr_equal(pa, orpc_arena_allocator(a));
    assert_non_null(pa->alloc);
    assert_non_null(pa->free);

    /* name = "jobs", data = 00 01 02, nums = [1, 150, -1] (packed). */
    const uint8_t wire[] = {
        0x0a, 4,    'j',  'o',  'b',  's',  0x12, 3,    0x00,
        0x01, 0x02, 0x1a, 13,   0x01, 0x96, 0x01, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    };
    size_t calls = ta.calls;
    test_msg *msg = (test_msg *)protobuf_c_message_unpack(&test_msg_desc, pa,
                                                          sizeof(wire), wire);
    assert_non_null(msg);
    assert_string_equal(msg->name, "jobs");
    assert_int_equal(msg->data.len, 3);
    assert_int_equal(msg->data.data[2], 2);
    assert_int_equal(msg->n_nums, 3);
    assert_int_equal(msg->nums[0], 1);
    assert_int_equal(msg->nums[1], 150);
    assert_int_equal(msg->nums[2], -1);
    /* Everything came from the arena: only its first block was allocated. */
    assert_int_equal(ta.calls, calls + 1);
    assert_true(orpc_arena_footprint(a) > 0);

    /* protobuf-c's free goes through the view and does nothing. */
    protobuf_c_message_free_unpacked(&msg->base, pa);
    pa->free(pa->allocator_data, NULL);
    assert_string_equal(msg->name, "jobs"); /* still arena memory */

    /* A truncated message fails cleanly; the arena remains usable. */
    assert_null(protobuf_c_message_unpack(&test_msg_desc, pa, 5, wire));
    assert_non_null(orpc_arena_alloc(a, 1));
    orpc_arena_free(a);
    assert_int_equal(ta.live, 0);
}

/* A scenario that exercises every allocating path; returns nonzero when it
 * ran to the end without meeting ORPC_ENOMEM / NULL. */
static int arena_scenario(const orpc_mem *m, test_alloc *ta)
{
    orpc_arena *a = (orpc_arena *)&a; /* must be overwritten */
    int rc = orpc_arena_new(&a, 256, m);
    if (rc != 0) {
        assert_int_equal(rc, ORPC_ENOMEM);
        assert_null(a);
        return 0;
    }
    size_t base = ta->live_bytes; /* the arena's own header */
    int clean = 1;
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < 40; i++) {
            size_t sz = (i % 5 == 4) ? 5000 : i * 13; /* some big ones */
            unsigned char *p = orpc_arena_alloc(a, sz);
            if (p == NULL) {
                clean = 0;
                continue;
            }
            memset(p, 1, sz);
        }
        if (orpc_arena_strdup(a, "a string") == NULL) {
            clean = 0;
        }
        if (orpc_arena_calloc(a, 10, 10) == NULL) {
            clean = 0;
        }
        if (orpc_arena_memdup(a, "abc", 3) == NULL) {
            clean = 0;
        }
        /* Footprint tracks the blocks held, failures or not. */
        assert_int_equal(orpc_arena_footprint(a), ta->live_bytes - base);
        orpc_arena_reset(a);
    }
    orpc_arena_free(a);
    return clean;
}

static void test_failing_allocator(void **state)
{
    (void)state;
    long budget;
    for (budget = 0; budget < 1000; budget++) {
        test_alloc ta;
        orpc_mem m = ta_mem(&ta, budget);
        int clean = arena_scenario(&m, &ta);
        assert_int_equal(ta.live, 0);
        assert_int_equal(ta.live_bytes, 0);
        if (clean) {
            assert_int_equal(ta.failures, 0);
            break;
        }
        assert_true(ta.failures > 0);
    }
    assert_true(budget > 3);
    assert_true(budget < 1000);
}

static void test_hooks_without_calloc_realloc(void **state)
{
    (void)state;
    test_alloc ta;
    orpc_mem m = ta_mem(&ta, -1);
    m.calloc = NULL;
    m.realloc = NULL;
    orpc_arena *a;
    assert_int_equal(orpc_arena_new(&a, 64, &m), 0);
    for (int i = 0; i < 100; i++) {
        assert_non_null(orpc_arena_calloc(a, 7, (size_t)i));
    }
    assert_true(ta.live > 1);
    orpc_arena_free(a);
    assert_int_equal(ta.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_default_allocator_and_lazy_first_block),
        cmocka_unit_test(test_alignment_and_no_overlap),
        cmocka_unit_test(test_zero_size_is_unique),
        cmocka_unit_test(test_overflow_refused),
        cmocka_unit_test(test_calloc_strdup_memdup),
        cmocka_unit_test(test_growth_doubles_and_caps),
        cmocka_unit_test(test_big_allocation_gets_own_block),
        cmocka_unit_test(test_reset_keeps_first_block),
        cmocka_unit_test(test_large_first_block),
        cmocka_unit_test(test_protobuf_allocator),
        cmocka_unit_test(test_failing_allocator),
        cmocka_unit_test(test_hooks_without_calloc_realloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
