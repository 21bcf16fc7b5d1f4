/*
 * arena.c — owns orpc_arena, the per-call bump allocator.
 *
 * Design notes:
 *   - Blocks form a singly linked list whose head is the block being bumped
 *     ("current").  The first block (|first_size| bytes) is remembered apart,
 *     so orpc_arena_reset() frees every other block and keeps it.
 *   - A request that does not fit in the current block opens a new one of
 *     twice the previous size, capped at ARENA_BLOCK_CAP (or at the first
 *     block's size when that is larger), and the new block becomes current;
 *     the tail of the old one is abandoned.  A request larger than half of
 *     that next size gets a block of its own, linked *behind* the current
 *     block, so a large message neither wastes the current block nor drives
 *     the growth of later ones.
 *   - Alignment is computed on addresses, not assumed from the allocator: a
 *     block carries ARENA_ALIGN - 1 bytes of slack so that its data start can
 *     be rounded up even when a custom malloc hook returns 8-aligned memory.
 *     Every allocation's size is rounded up to ARENA_ALIGN, which keeps the
 *     bump pointer aligned and makes a 0-byte allocation a unique pointer.
 *   - No single allocation may exceed ARENA_MAX_ALLOC (PTRDIFF_MAX less a
 *     margin), and every size computation is checked before it is made, so
 *     an absurd size is refused here instead of reaching the allocator.
 *   - The first block is allocated on first use, so an arena that is created
 *     and never used costs only its header.
 */
#include <orpc/arena.h>
#include <orpc/error.h>

#include <assert.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/mem.h"

/* Alignment of every allocation: enough for any type on the platforms orpc
 * supports (max_align_t is 16 bytes on x86-64 and AArch64). */
#define ARENA_ALIGN ((size_t)16)
/* Default first block. */
#define ARENA_DEFAULT_FIRST ((size_t)4096)
/* Largest block the doubling reaches (unless the first block is larger). */
#define ARENA_BLOCK_CAP ((size_t)64 * 1024)
/* Largest single allocation: C objects may not exceed PTRDIFF_MAX (pointer
 * differences inside them must be representable), and the margin leaves room
 * for a block header, so no size arithmetic below can wrap. */
#define ARENA_MAX_ALLOC ((size_t)PTRDIFF_MAX - 4096)

typedef struct arena_block {
    struct arena_block *next;
    /* Aligned start of the usable bytes, inside this allocation. */
    unsigned char *data;
    /* Usable bytes from |data|, and how many are taken. */
    size_t size;
    size_t used;
    /* Bytes obtained from the allocator for this block, header included. */
    size_t alloc_size;
} arena_block;

struct orpc_arena {
    orpc_mem mem;
    /* Head of the list: the block being bumped, or NULL before first use. */
    arena_block *cur;
    /* The first block, kept by reset; the list's tail. */
    arena_block *first;
    size_t first_size;
    /* Usable size of the next regular block. */
    size_t next_size;
    /* Sum of alloc_size over all blocks. */
    size_t footprint;
    /* The protobuf-c view; allocator_data is the arena. */
    ProtobufCAllocator pb;
};

static_assert((ARENA_ALIGN & (ARENA_ALIGN - 1)) == 0,
              "ARENA_ALIGN must be a power of two");
static_assert(ARENA_ALIGN >= alignof(max_align_t),
              "ARENA_ALIGN must suit any type");

static size_t arena_cap(const orpc_arena *a)
{
    return a->first_size > ARENA_BLOCK_CAP ? a->first_size : ARENA_BLOCK_CAP;
}

/* A block with |size| usable bytes, not yet linked; NULL on overflow or when
 * the allocator fails. */
static arena_block *arena_block_new(orpc_arena *a, size_t size)
{
    size_t overhead = sizeof(arena_block) + ARENA_ALIGN - 1;
    if (size > (size_t)PTRDIFF_MAX - overhead) {
        return NULL;
    }
    size_t total = overhead + size;
    arena_block *b = orpc__mem_malloc(&a->mem, total);
    if (b == NULL) {
        return NULL;
    }
    uintptr_t start = (uintptr_t)(b + 1);
    uintptr_t aligned =
        (start + (ARENA_ALIGN - 1)) & ~(uintptr_t)(ARENA_ALIGN - 1);
    b->next = NULL;
    b->data = (unsigned char *)(b + 1) + (aligned - start);
    b->size = size;
    b->used = 0;
    b->alloc_size = total;
    a->footprint += total;
    return b;
}

static void arena_block_free(orpc_arena *a, arena_block *b)
{
    a->footprint -= b->alloc_size;
    orpc__mem_free(&a->mem, b);
}

static void *arena_alloc_pb(void *allocator_data, size_t size)
{
    return orpc_arena_alloc(allocator_data, size);
}

static void arena_free_pb(void *allocator_data, void *ptr)
{
    /* Arena memory goes all at once; individual frees do nothing. */
    (void)allocator_data;
    (void)ptr;
}

int orpc_arena_new(orpc_arena **out, size_t first_block, const orpc_mem *mem)
{
    if (out == NULL) {
        return ORPC_EINVAL;
    }
    *out = NULL;
    orpc_arena *a = orpc__mem_malloc(mem, sizeof(*a));
    if (a == NULL) {
        return ORPC_ENOMEM;
    }
    orpc__mem_copy(&a->mem, mem);
    a->cur = NULL;
    a->first = NULL;
    a->first_size = first_block != 0 ? first_block : ARENA_DEFAULT_FIRST;
    /* Round the first block to the alignment; a huge request is left to fail
     * (NULL from alloc) on first use rather than here. */
    if (a->first_size <= SIZE_MAX - (ARENA_ALIGN - 1)) {
        a->first_size = (a->first_size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    }
    a->next_size = a->first_size;
    a->footprint = 0;
    a->pb.alloc = arena_alloc_pb;
    a->pb.free = arena_free_pb;
    a->pb.allocator_data = a;
    *out = a;
    return 0;
}

void orpc_arena_free(orpc_arena *arena)
{
    if (arena == NULL) {
        return;
    }
    arena_block *b = arena->cur;
    while (b != NULL) {
        arena_block *next = b->next;
        arena_block_free(arena, b);
        b = next;
    }
    orpc_mem mem = arena->mem;
    orpc__mem_free(&mem, arena);
}

void orpc_arena_reset(orpc_arena *arena)
{
    if (arena == NULL || arena->cur == NULL) {
        return;
    }
    /* Own blocks may sit behind the first one (one opened while the first
     * was current), so walk the whole list. */
    arena_block *b = arena->cur;
    while (b != NULL) {
        arena_block *next = b->next;
        if (b != arena->first) {
            arena_block_free(arena, b);
        }
        b = next;
    }
    arena->first->next = NULL;
    arena->first->used = 0;
    arena->cur = arena->first;
    arena->next_size = arena->first_size;
}

/* Opens the first block on first use. */
static int arena_start(orpc_arena *a)
{
    if (a->cur != NULL) {
        return 0;
    }
    arena_block *b = arena_block_new(a, a->first_size);
    if (b == NULL) {
        return ORPC_ENOMEM;
    }
    a->first = b;
    a->cur = b;
    return 0;
}

/* The size of the regular block after |prev|: doubled, capped. */
static size_t arena_grow(const orpc_arena *a, size_t prev)
{
    size_t cap = arena_cap(a);
    return prev >= cap / 2 ? cap : prev * 2;
}

void *orpc_arena_alloc(orpc_arena *arena, size_t size)
{
    if (arena == NULL || size > ARENA_MAX_ALLOC) {
        return NULL;
    }
    size_t need = (size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    if (need == 0) {
        need = ARENA_ALIGN; /* a unique pointer for size 0 */
    }
    if (arena_start(arena) != 0) {
        return NULL;
    }
    arena_block *cur = arena->cur;
    if (cur->size - cur->used >= need) {
        void *p = cur->data + cur->used;
        cur->used += need;
        return p;
    }
    size_t next = arena_grow(arena, arena->next_size);
    if (need > next / 2) {
        /* A block of its own, behind the current one. */
        arena_block *big = arena_block_new(arena, need);
        if (big == NULL) {
            return NULL;
        }
        big->used = need;
        big->next = cur->next;
        cur->next = big;
        return big->data;
    }
    arena_block *b = arena_block_new(arena, next);
    if (b == NULL) {
        return NULL;
    }
    arena->next_size = next;
    b->next = cur;
    arena->cur = b;
    b->used = need;
    return b->data;
}

void *orpc_arena_calloc(orpc_arena *arena, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size) {
        return NULL;
    }
    void *p = orpc_arena_alloc(arena, nmemb * size);
    if (p != NULL) {
        memset(p, 0, nmemb * size);
    }
    return p;
}

void *orpc_arena_memdup(orpc_arena *arena, const void *p, size_t len)
{
    if (p == NULL && len > 0) {
        return NULL;
    }
    void *q = orpc_arena_alloc(arena, len);
    if (q != NULL && len > 0) {
        memcpy(q, p, len);
    }
    return q;
}

char *orpc_arena_strdup(orpc_arena *arena, const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    return orpc_arena_memdup(arena, s, strlen(s) + 1);
}

size_t orpc_arena_footprint(const orpc_arena *arena)
{
    return arena != NULL ? arena->footprint : 0;
}

ProtobufCAllocator *orpc_arena_allocator(orpc_arena *arena)
{
    return arena != NULL ? &arena->pb : NULL;
}
