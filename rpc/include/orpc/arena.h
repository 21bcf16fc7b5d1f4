/*
 * orpc/arena.h — a bump allocator that is freed in one go.
 *
 * Every call owns an arena: the decoded request, the response a handler
 * fills and the call's metadata live in it, and all of it goes when the call
 * ends.  Allocation is a pointer bump inside a block; a request that does not
 * fit opens a new block (doubling, up to a cap, and large requests get a block
 * of their own).  Individual frees do nothing.
 *
 * Thread-safety: an arena belongs to one thread at a time.
 */
#ifndef ORPC_ARENA_H
#define ORPC_ARENA_H

#include <protobuf-c/protobuf-c.h>

#include <orpc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A bump allocator. */
typedef struct orpc_arena orpc_arena;

/**
 * @function
 * Creates an arena whose first block holds |first_block| bytes (0 picks a
 * default of 4 KiB).  The first block is allocated on first use.
 *
 * Returns 0, ORPC_EINVAL (|out| NULL) or ORPC_ENOMEM.
 *
 * Ownership: copies |mem| (which may be NULL); the caller owns the arena and
 * frees it with orpc_arena_free().
 * Threads: any thread; the arena then belongs to one thread at a time.
 */
ORPC_EXTERN int orpc_arena_new(orpc_arena **out, size_t first_block,
                               const orpc_mem *mem);

/**
 * @function
 * Frees the arena and everything allocated from it.  NULL is a no-op.
 *
 * Ownership: ends the caller's ownership of |arena|; every pointer it gave
 * out (and its orpc_arena_allocator()) becomes invalid.
 * Threads: the thread that owns the arena.
 */
ORPC_EXTERN void orpc_arena_free(orpc_arena *arena);

/**
 * @function
 * Releases everything allocated from |arena| but keeps its first block for
 * reuse, so a recycled arena allocates nothing for small calls.
 *
 * Ownership: every pointer the arena gave out becomes invalid; the arena
 * stays the caller's.
 * Threads: the thread that owns the arena.
 */
ORPC_EXTERN void orpc_arena_reset(orpc_arena *arena);

/**
 * @function
 * |size| bytes aligned for any type (16 bytes), uninitialised; NULL when
 * memory runs out or |size| would overflow.  A |size| of 0 returns a valid
 * unique pointer.  The memory lives until the arena is reset or freed.
 *
 * Ownership: the arena owns the memory: never free it on its own.
 * Threads: the thread that owns the arena.
 */
ORPC_EXTERN void *orpc_arena_alloc(orpc_arena *arena, size_t size);

/**
 * @function
 * As orpc_arena_alloc() for |nmemb| * |size| bytes, zeroed; NULL on overflow.
 *
 * Ownership: as orpc_arena_alloc().
 * Threads: the thread that owns the arena.
 */
ORPC_EXTERN void *orpc_arena_calloc(orpc_arena *arena, size_t nmemb,
                                    size_t size);

/**
 * @function
 * A copy of the NUL-terminated |s| in the arena; NULL when |s| is NULL or
 * memory runs out.
 *
 * Ownership: copies |s|; the arena owns the copy (as orpc_arena_alloc()).
 * Threads: the thread that owns the arena.
 */
ORPC_EXTERN char *orpc_arena_strdup(orpc_arena *arena, const char *s);

/**
 * @function
 * A copy of |len| bytes at |p| in the arena, or NULL.
 *
 * Ownership: copies |p|; the arena owns the copy (as orpc_arena_alloc()).
 * Threads: the thread that owns the arena.
 */
ORPC_EXTERN void *orpc_arena_memdup(orpc_arena *arena, const void *p,
                                    size_t len);

/**
 * @function
 * Total bytes the arena holds from its allocator (blocks, not the sum of
 * allocations): what a memory limit should count.
 *
 * Ownership: nothing changes hands.
 * Threads: the thread that owns the arena.
 */
ORPC_EXTERN size_t orpc_arena_footprint(const orpc_arena *arena);

/**
 * @function
 * A protobuf-c allocator view of |arena|, so that
 * `foo__unpack(orpc_arena_allocator(a), len, data)` decodes into the arena.
 * Its free is a no-op.  The pointer is valid as long as the arena.
 *
 * Ownership: borrowed from the arena until orpc_arena_free(); what is
 * allocated through it belongs to the arena.
 * Threads: the thread that owns the arena (allocating through it uses the
 * arena).
 */
ORPC_EXTERN ProtobufCAllocator *orpc_arena_allocator(orpc_arena *arena);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_ARENA_H */
