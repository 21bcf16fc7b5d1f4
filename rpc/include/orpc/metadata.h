/*
 * orpc/metadata.h — gRPC metadata: an ordered list of key/value pairs.
 *
 * Keys are lower-case `[0-9a-z_.-]+`; keys ending in "-bin" carry arbitrary
 * bytes (base64 on the wire, decoded here), other values are printable
 * ASCII (0x20–0x7E).  Keys starting with "grpc-" are reserved for the
 * protocol and refused by orpc_metadata_add(); the runtime itself reads and
 * writes them.  A key may repeat; order is kept.
 *
 * Thread-safety: a metadata list belongs to one thread at a time; reading
 * one from several threads at once is safe while nobody writes to it.
 */
#ifndef ORPC_METADATA_H
#define ORPC_METADATA_H

#include <orpc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A list of metadata entries. */
typedef struct orpc_metadata orpc_metadata;

/**
 * @function
 * Creates an empty list.
 *
 * Returns 0, ORPC_EINVAL or ORPC_ENOMEM.
 *
 * Ownership: copies |mem|; the caller owns the list and frees it with
 * orpc_metadata_free().
 * Threads: any thread; the list then belongs to one thread at a time.
 */
ORPC_EXTERN int orpc_metadata_new(orpc_metadata **out, const orpc_mem *mem);

/**
 * @function
 * Frees the list and its entries.  NULL is a no-op.
 *
 * Ownership: ends the caller's ownership of |md|; pointers that
 * orpc_metadata_at() and orpc_metadata_get() gave become invalid.
 * Threads: the thread that owns the list, with no reader at the same time.
 */
ORPC_EXTERN void orpc_metadata_free(orpc_metadata *md);

/**
 * @function
 * Appends the entry |key| = |len| bytes at |value|.
 *
 * Returns 0; ORPC_EINVAL when |key| is not a valid key, is reserved
 * ("grpc-…"; connection, keep-alive, proxy-connection, transfer-encoding,
 * upgrade, te, content-type, user-agent, host: the transport's own), is over
 * 1 KiB, |value| is over 1 MiB, or |value| holds bytes other than 0x20–0x7E
 * for a key without "-bin"; ORPC_ENOMEM (the list is unchanged).
 *
 * Ownership: copies |key| and |value|.
 * Threads: the thread that owns the list, with no reader at the same time.
 */
ORPC_EXTERN int orpc_metadata_add(orpc_metadata *md, const char *key,
                                  const void *value, size_t len);

/**
 * @function
 * As orpc_metadata_add() with the NUL-terminated string |value|.
 *
 * Ownership: copies |key| and |value|.
 * Threads: the thread that owns the list, with no reader at the same time.
 */
ORPC_EXTERN int orpc_metadata_add_str(orpc_metadata *md, const char *key,
                                      const char *value);

/**
 * @function
 * Number of entries.  0 for NULL.
 *
 * Ownership: nothing changes hands.
 * Threads: any thread, alongside other readers but no writer.
 */
ORPC_EXTERN size_t orpc_metadata_count(const orpc_metadata *md);

/**
 * @function
 * The entry at |index| (in insertion order).  Any of the out pointers may be
 * NULL.  Values are also NUL-terminated (the terminator is not counted in
 * |*len|) so ASCII values may be used as C strings.
 *
 * Returns 0 or ORPC_EINVAL (|index| out of range).
 *
 * Ownership: the pointers are borrowed from the list and stay valid until
 * it is modified or freed.
 * Threads: any thread, alongside other readers but no writer.
 */
ORPC_EXTERN int orpc_metadata_at(const orpc_metadata *md, size_t index,
                                 const char **key, const uint8_t **value,
                                 size_t *len);

/**
 * @function
 * Appends a copy of every entry of |src| to |dst|, in order.  All or
 * nothing: on failure |dst| is as it was.  |src| NULL adds nothing.
 *
 * Returns 0; ORPC_EINVAL (|dst| NULL or the same as |src|); ORPC_ENOMEM.
 * Ownership: copies keys and values into |dst|'s allocator; |src| is only
 * read.
 * Threads: any thread, not concurrently with another change to |dst|.
 */
ORPC_EXTERN int orpc_metadata_add_all(orpc_metadata *dst,
                                      const orpc_metadata *src);

/**
 * @function
 * The first entry whose key equals |key|.  |value| and |len| may be NULL.
 *
 * Returns 0, ORPC_ENOTFOUND, or ORPC_EINVAL (|md| or |key| NULL).
 *
 * Ownership: as orpc_metadata_at(); |key| is borrowed for the call.
 * Threads: any thread, alongside other readers but no writer.
 */
ORPC_EXTERN int orpc_metadata_get(const orpc_metadata *md, const char *key,
                                  const uint8_t **value, size_t *len);

/**
 * @function
 * Removes every entry whose key equals |key|.  Returns how many went.
 *
 * Ownership: frees the removed entries (pointers to them become invalid);
 * |key| is borrowed for the call.
 * Threads: the thread that owns the list, with no reader at the same time.
 */
ORPC_EXTERN size_t orpc_metadata_remove(orpc_metadata *md, const char *key);

/**
 * @function
 * Nonzero when |key| is a well-formed metadata key that applications may
 * set (see the file comment).
 *
 * Ownership: borrows |key| for the call.
 * Threads: any thread.
 */
ORPC_EXTERN int orpc_metadata_key_valid(const char *key);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_METADATA_H */
