/*
 * mem.c — owns the defaults of the per-object allocator hooks (orpc_mem).
 *
 * Shaped as four thin wrappers rather than a filled-in copy of the struct so
 * that an orpc_mem copied from the user keeps its NULLs: a NULL hook means
 * "the C library" at the moment of the call, and the fallbacks below keep a
 * block and its free on the same allocator (see mem.h for the exact rules).
 * No global state: the hooks travel with each object.
 */
#include "mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void *orpc__mem_malloc(const orpc_mem *mem, size_t size)
{
    if (mem != NULL && mem->malloc != NULL) {
        return mem->malloc(size, mem->user_data);
    }
    return malloc(size);
}

void *orpc__mem_calloc(const orpc_mem *mem, size_t nmemb, size_t size)
{
    if (mem != NULL && mem->calloc != NULL) {
        return mem->calloc(nmemb, size, mem->user_data);
    }
    if (mem == NULL || mem->malloc == NULL) {
        return calloc(nmemb, size);
    }
    if (size != 0 && nmemb > SIZE_MAX / size) {
        return NULL;
    }
    void *p = mem->malloc(nmemb * size, mem->user_data);
    if (p != NULL) {
        memset(p, 0, nmemb * size);
    }
    return p;
}

void orpc__mem_free(const orpc_mem *mem, void *ptr)
{
    if (mem != NULL && mem->free != NULL) {
        mem->free(ptr, mem->user_data);
        return;
    }
    free(ptr);
}

void *orpc__mem_realloc(const orpc_mem *mem, void *ptr, size_t size)
{
    if (mem != NULL && mem->realloc != NULL) {
        return mem->realloc(ptr, size, mem->user_data);
    }
    if (mem == NULL || (mem->malloc == NULL && mem->free == NULL)) {
        return realloc(ptr, size);
    }
    if (ptr == NULL) {
        return orpc__mem_malloc(mem, size);
    }
    if (size == 0) {
        orpc__mem_free(mem, ptr);
        return NULL;
    }
    return NULL;
}

void *orpc__mem_grow(const orpc_mem *mem, void *ptr, size_t old_size,
                     size_t new_size)
{
    if (ptr == NULL) {
        return orpc__mem_malloc(mem, new_size);
    }
    if (mem == NULL || mem->realloc != NULL ||
        (mem->malloc == NULL && mem->free == NULL)) {
        if (new_size == 0) {
            /* realloc(p, 0) is implementation-defined; keep a live block. */
            new_size = 1;
        }
        return orpc__mem_realloc(mem, ptr, new_size);
    }
    void *p = orpc__mem_malloc(mem, new_size);
    if (p == NULL) {
        return NULL;
    }
    memcpy(p, ptr, old_size < new_size ? old_size : new_size);
    orpc__mem_free(mem, ptr);
    return p;
}

void orpc__mem_copy(orpc_mem *dst, const orpc_mem *src)
{
    if (src != NULL) {
        *dst = *src;
    } else {
        *dst = (orpc_mem){NULL, NULL, NULL, NULL, NULL};
    }
}

int orpc__mem_is_libc(const orpc_mem *mem)
{
    return mem == NULL || (mem->malloc == NULL && mem->free == NULL &&
                           mem->calloc == NULL && mem->realloc == NULL);
}

char *orpc__mem_strndup(const orpc_mem *mem, const char *s, size_t n)
{
    if (s == NULL) {
        return NULL;
    }
    size_t len = strnlen(s, n);
    char *p = orpc__mem_malloc(mem, len + 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

char *orpc__mem_strdup(const orpc_mem *mem, const char *s)
{
    return orpc__mem_strndup(mem, s, SIZE_MAX);
}

static void *pb_alloc(void *data, size_t size)
{
    return orpc__mem_malloc(data, size);
}

static void pb_free(void *data, void *ptr)
{
    orpc__mem_free(data, ptr);
}

void orpc__mem_pb_allocator(ProtobufCAllocator *out, const orpc_mem *mem)
{
    out->alloc = pb_alloc;
    out->free = pb_free;
    /* The hooks only read it. */
    out->allocator_data = (void *)(uintptr_t)mem;
}
