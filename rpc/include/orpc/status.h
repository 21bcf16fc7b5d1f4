/*
 * orpc/status.h — the outcome of an RPC: a gRPC status code and message.
 *
 * An orpc_status is a small value returned by value.  Its message and details
 * are heap copies that orpc_status_clear() releases; a status with code
 * ORPC_OK and no message owns nothing, so ORPC_STATUS_OK needs no clearing
 * (clearing it is harmless).  If memory runs out while building a status, the
 * code is kept and the message is left NULL: a status is always usable.
 *
 * Thread-safety: all functions here work on the status they are given and
 * may be called from any thread.
 */
#ifndef ORPC_STATUS_H
#define ORPC_STATUS_H

#include <stdarg.h>

#include <orpc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The 17 gRPC status codes, XX(NAME, value, http) where http is the HTTP
 * status grpc-gateway answers with for it (REFERENCE.md §2).
 */
#define ORPC_CODE_MAP(XX)                                                      \
    XX(OK, 0, 200)                                                             \
    XX(CANCELLED, 1, 499)                                                      \
    XX(UNKNOWN, 2, 500)                                                        \
    XX(INVALID_ARGUMENT, 3, 400)                                               \
    XX(DEADLINE_EXCEEDED, 4, 504)                                              \
    XX(NOT_FOUND, 5, 404)                                                      \
    XX(ALREADY_EXISTS, 6, 409)                                                 \
    XX(PERMISSION_DENIED, 7, 403)                                              \
    XX(RESOURCE_EXHAUSTED, 8, 429)                                             \
    XX(FAILED_PRECONDITION, 9, 400)                                            \
    XX(ABORTED, 10, 409)                                                       \
    XX(OUT_OF_RANGE, 11, 400)                                                  \
    XX(UNIMPLEMENTED, 12, 501)                                                 \
    XX(INTERNAL, 13, 500)                                                      \
    XX(UNAVAILABLE, 14, 503)                                                   \
    XX(DATA_LOSS, 15, 500)                                                     \
    XX(UNAUTHENTICATED, 16, 401)

/** gRPC status codes, numbered as on the wire (`grpc-status`). */
typedef enum orpc_code {
#define ORPC_CODE_ENUM_(name, value, http) ORPC_##name = (value),
    ORPC_CODE_MAP(ORPC_CODE_ENUM_)
#undef ORPC_CODE_ENUM_
} orpc_code;

/** Number of defined status codes. */
#define ORPC_CODE_COUNT 17

/** The result of an RPC. */
typedef struct orpc_status {
    /** The status code. */
    orpc_code code;
    /** UTF-8 message, NUL-terminated, or NULL for none.  Owned. */
    char *message;
    /** Serialized google.rpc.Status (`grpc-status-details-bin`), or NULL. */
    uint8_t *details;
    /** Length of |details| in bytes. */
    size_t details_len;
} orpc_status;

/** The OK status; owns nothing. */
#ifdef __cplusplus
#define ORPC_STATUS_OK (orpc_status{ORPC_OK, NULL, NULL, 0})
#else
#define ORPC_STATUS_OK ((orpc_status){ORPC_OK, NULL, NULL, 0})
#endif

/**
 * @function
 * A status with |code| and a copy of |message| (which may be NULL).  A code
 * outside 0–16 becomes ORPC_UNKNOWN.
 *
 * Ownership: copies |message|; the caller clears the result with
 * orpc_status_clear().
 * Threads: any thread.
 */
ORPC_EXTERN orpc_status orpc_status_new(orpc_code code, const char *message);

/**
 * @function
 * A status with |code| and a message formatted like printf(3).
 *
 * Ownership: the message is allocated; the caller clears the result with
 * orpc_status_clear().
 * Threads: any thread.
 */
ORPC_EXTERN orpc_status orpc_status_errorf(orpc_code code, const char *fmt, ...)
    ORPC_PRINTF(2, 3);

/**
 * @function
 * As orpc_status_errorf() with a va_list.
 *
 * Ownership: as orpc_status_errorf(); |ap| is consumed, as by vprintf(3).
 * Threads: any thread.
 */
ORPC_EXTERN orpc_status orpc_status_verrorf(orpc_code code, const char *fmt,
                                            va_list ap) ORPC_PRINTF(2, 0);

/**
 * @function
 * Attaches |len| bytes of serialized google.rpc.Status to |st| as its
 * details, replacing any it had.
 *
 * Returns 0, ORPC_EINVAL (|st| NULL, or |data| NULL with |len| > 0) or
 * ORPC_ENOMEM (|st| unchanged).
 *
 * Ownership: copies |data| (it may point into |st|'s own details); frees
 * the details it replaces.
 * Threads: any thread, one at a time on the same status.
 */
ORPC_EXTERN int orpc_status_set_details(orpc_status *st, const void *data,
                                        size_t len);

/**
 * @function
 * A deep copy of |st|.  On memory exhaustion the copy keeps the code and
 * drops what could not be copied.
 *
 * Ownership: |st| is only read; the caller clears the copy with
 * orpc_status_clear().
 * Threads: any thread, while nobody changes |st|.
 */
ORPC_EXTERN orpc_status orpc_status_copy(const orpc_status *st);

/**
 * @function
 * Frees what |st| owns and resets it to ORPC_STATUS_OK.  NULL is a no-op.
 *
 * Ownership: frees |st|'s message and details (they came from the C
 * library's allocator, whichever function made the status).
 * Threads: any thread, while nobody else uses |st|.
 */
ORPC_EXTERN void orpc_status_clear(orpc_status *st);

/**
 * @function
 * The canonical name of |code| ("NOT_FOUND"), or "UNKNOWN_CODE" when |code|
 * is out of range.  Returns a static string.
 *
 * Ownership: the string is static: never free it.
 * Threads: any thread.
 */
ORPC_EXTERN const char *orpc_code_name(orpc_code code);

/**
 * @function
 * Parses a canonical code name ("NOT_FOUND", case-insensitive) or a decimal
 * number 0–16 into |*out|.
 *
 * Returns 0, or ORPC_EINVAL when |name| is neither (|*out| unchanged).
 *
 * Ownership: borrows |name| for the call; nothing is allocated.
 * Threads: any thread.
 */
ORPC_EXTERN int orpc_code_parse(orpc_code *out, const char *name);

/**
 * @function
 * The gRPC code a client infers from an HTTP status when the response has
 * no `grpc-status` (gRPC's http-grpc-status-mapping: 400 INTERNAL,
 * 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED,
 * 429/502/503/504 UNAVAILABLE, 431 INTERNAL, anything else UNKNOWN).
 *
 * Ownership: nothing changes hands.
 * Threads: any thread.
 */
ORPC_EXTERN orpc_code orpc_code_from_grpc_http(int http_status);

/**
 * @function
 * The HTTP status that stands for |code| on a JSON/HTTP interface (the
 * grpc-gateway table: OK 200, CANCELLED 499, NOT_FOUND 404, …); 500 for an
 * unknown code.
 *
 * Ownership: nothing changes hands.
 * Threads: any thread.
 */
ORPC_EXTERN int orpc_code_to_http(orpc_code code);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_STATUS_H */
