/*
 * metadata_internal.h — internal: what the runtime may do with a metadata
 * list that an application may not (metadata.c).
 */
#ifndef ORPC_METADATA_INTERNAL_H
#define ORPC_METADATA_INTERNAL_H

#include <stddef.h>

#include <orpc/metadata.h>

/* Appends |key| (|key_len| bytes, a valid application key) and |value|
 * without checking either: for the runtime's own entries, whose key is a
 * constant and whose value it made or validated (a traceparent).  0 or
 * ORPC_ENOMEM. */
int orpc__md_add_trusted(orpc_metadata *md, const char *key, size_t key_len,
                         const void *value, size_t len);

#endif /* ORPC_METADATA_INTERNAL_H */
