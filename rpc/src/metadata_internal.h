/*
 * metadata_internal.h — internal: what the runtime may do with a metadata
 * list that an application may not (metadata.c).
 */
#ifndef ORPC_METADATA_INTERNAL_H
#define ORPC_METADATA_INTERNAL_H

#include <stddef.h>

#include <orpc/metadata.h>

/* Appends an entry whose strings stay |key|'s and |value|'s (both
 * NUL-terminated, |len| bytes of value): nothing is copied, checked or,
 * later, freed.  They must outlive |md| and every removal from it — the
 * runtime's own entries in storage of the call that owns |md|.  0 or
 * ORPC_ENOMEM. */
int orpc__md_add_borrowed(orpc_metadata *md, char *key, uint8_t *value,
                          size_t len);

#endif /* ORPC_METADATA_INTERNAL_H */
