/*
 * mem.h — internal: the allocator hooks of orpc/common.h applied with their
 * defaults.  Every object that takes an `const orpc_mem *` copies it with
 * orpc__mem_copy() and allocates through these helpers, so the rule "NULL
 * means the C library" lives in one place.
 *
 * Thread-safety: the helpers hold no state; they are as thread-safe as the
 * hooks they call.
 */
#ifndef ORPC_MEM_H
#define ORPC_MEM_H

#include <stddef.h>

#include <orpc/common.h>

/*
 * |mem| may be NULL, and so may any of its hooks.  A missing hook falls back
 * as follows:
 *   malloc  -> malloc(3)
 *   free    -> free(3)
 *   calloc  -> libc calloc(3) when the malloc hook is NULL too; otherwise the
 *              malloc hook (overflow-checked) followed by memset, so that the
 *              block still comes from the allocator whose free will release it
 *   realloc -> libc realloc(3) when the malloc and free hooks are NULL too;
 *              with a NULL |ptr|, the malloc hook; with a size of 0, the free
 *              hook (returns NULL).  Otherwise (custom malloc/free but no
 *              realloc) NULL: without the old size the block cannot be moved.
 *              Code that knows the old size should use orpc__mem_grow().
 */
void *orpc__mem_malloc(const orpc_mem *mem, size_t size);
void *orpc__mem_calloc(const orpc_mem *mem, size_t nmemb, size_t size);
void *orpc__mem_realloc(const orpc_mem *mem, void *ptr, size_t size);
void orpc__mem_free(const orpc_mem *mem, void *ptr);

/*
 * Resizes |ptr| (holding |old_size| meaningful bytes) to |new_size|: the
 * realloc hook when there is one (or libc's when every hook is the default),
 * otherwise malloc + memcpy + free.  On failure |ptr| is untouched and NULL is
 * returned.
 */
void *orpc__mem_grow(const orpc_mem *mem, void *ptr, size_t old_size,
                     size_t new_size);

/* A copy of |src| (a NULL |src| gives all-NULL hooks, i.e. libc) into |dst|. */
void orpc__mem_copy(orpc_mem *dst, const orpc_mem *src);

#endif /* ORPC_MEM_H */
