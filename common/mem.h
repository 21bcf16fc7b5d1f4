/*
 * common/mem.h — private: the allocator hooks of orpc/common.h applied with
 * their defaults.  Every object that takes an `const orpc_mem *` copies it
 * with orpc__mem_copy() and allocates through these helpers, so the rule
 * "NULL means the C library" lives in one place.  In common/ rather than
 * beside the runtime so that the helpers there (common/buf.h) allocate
 * through the same hooks, whichever library they are linked into.
 *
 * Thread-safety: the helpers hold no state; they are as thread-safe as the
 * hooks they call.
 */
#ifndef ORPC_COMMON_MEM_H
#define ORPC_COMMON_MEM_H

#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <protobuf-c/protobuf-c.h>

#include <orpc/common.h>
#include <orpc/status.h>

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
static inline void *orpc__mem_malloc(const orpc_mem *mem, size_t size);
void *orpc__mem_calloc(const orpc_mem *mem, size_t nmemb, size_t size);
void *orpc__mem_realloc(const orpc_mem *mem, void *ptr, size_t size);
static inline void orpc__mem_free(const orpc_mem *mem, void *ptr);

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

/* Nonzero when |mem| (may be NULL) leaves every hook to the C library: its
 * blocks and libc's are then interchangeable. */
int orpc__mem_is_libc(const orpc_mem *mem);

/* Copies of the NUL-terminated |s| (NULL gives NULL), and of at most |n|
 * bytes of it, NUL-terminated; NULL when memory runs out. */
char *orpc__mem_strdup(const orpc_mem *mem, const char *s);
char *orpc__mem_strndup(const orpc_mem *mem, const char *s, size_t n);

/*
 * A ProtobufCAllocator that unpacks through |mem|, which must outlive it
 * and every message unpacked with it.  Free those messages with
 * protobuf_c_message_free_unpacked(msg, allocator).
 */
void orpc__mem_pb_allocator(ProtobufCAllocator *out, const orpc_mem *mem);

/*
 * The reverse: hooks that allocate and free through |a| (NULL: the C
 * library, as protobuf-c's own default is), which must outlive them, so
 * that code written against orpc_mem (common/buf.h) can build blocks that
 * end up in a message freed with |a|.  They have no calloc and no realloc
 * (a ProtobufCAllocator has neither): growing a block allocates, copies and
 * frees (orpc__mem_grow()).
 */
void orpc__mem_from_pb(orpc_mem *out, ProtobufCAllocator *a);

/*
 * Statuses built with an object's hooks: the same as orpc_status_new(),
 * orpc_status_errorf(), orpc_status_set_details(), orpc_status_copy() and
 * orpc_status_clear(), with |mem| instead of the C library (those are
 * these with NULL; they live here, not in status.c, because tests that
 * compile runtime files alone with the code they check find them in
 * orpc_common).  A status made with one set of hooks is cleared with the
 * same set.  The
 * public functions use libc, because the application frees what it is
 * handed with orpc_status_clear(): statuses an object keeps for itself are
 * made with its hooks and copied (orpc__status_copy_mem(NULL, ...)) when
 * they cross to the application.  Building one cannot fail: out of memory,
 * the code survives without its message or details.
 */
orpc_status orpc__status_new_mem(const orpc_mem *mem, orpc_code code,
                                 const char *message);
orpc_status orpc__status_errorf_mem(const orpc_mem *mem, orpc_code code,
                                    const char *fmt, ...) ORPC_PRINTF(3, 4);
orpc_status orpc__status_verrorf_mem(const orpc_mem *mem, orpc_code code,
                                     const char *fmt, va_list ap)
    ORPC_PRINTF(3, 0);
int orpc__status_set_details_mem(const orpc_mem *mem, orpc_status *st,
                                 const void *data, size_t len);
orpc_status orpc__status_copy_mem(const orpc_mem *mem, const orpc_status *st);
void orpc__status_clear_mem(const orpc_mem *mem, orpc_status *st);

/*
 * Takes |st|, made with libc hooks (the application's), and returns it
 * made with |mem|'s: message and details are copied and the originals
 * freed.  Nothing is copied when |mem| is libc's too.
 */
orpc_status orpc__status_adopt_mem(const orpc_mem *mem, orpc_status st);

/* malloc and free are inline: some files are also compiled into tests
 * alone (rpc_mtls_test.c includes tls.c), without common/mem.c.  The hooks are
 * called as (mem->free)(...): such a test may define free() as a macro. */
static inline void *orpc__mem_malloc(const orpc_mem *mem, size_t size)
{
    if (mem != NULL && mem->malloc != NULL) {
        return (mem->malloc)(size, mem->user_data);
    }
    return malloc(size);
}

static inline void orpc__mem_free(const orpc_mem *mem, void *ptr)
{
    if (mem != NULL && mem->free != NULL) {
        (mem->free)(ptr, mem->user_data);
        return;
    }
    free(ptr);
}

#endif /* ORPC_COMMON_MEM_H */
