/*
 * orpc/error.h — API error codes.
 *
 * Functions that can fail return 0 or one of the negative ORPC_E* codes
 * below.  These are about using the API (bad argument, no memory, wrong
 * state); the outcome of an RPC is an orpc_status (orpc/status.h), not an
 * error code.  A code is never renumbered or reused.
 *
 * Thread-safety: every function here may be called from any thread.
 */
#ifndef ORPC_ERROR_H
#define ORPC_ERROR_H

#include <orpc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The one list from which the enum and the string tables are made:
 * XX(name, value, fatal, text).  "fatal" means the object that returned the
 * code can no longer be used and must be freed.
 */
#define ORPC_ERRNO_MAP(XX)                                                     \
    XX(EINVAL, -1, 0, "invalid argument")                                      \
    XX(ENOMEM, -2, 0, "out of memory")                                         \
    XX(ECALLBACK, -3, 0, "a callback asked to abort")                          \
    XX(ECANCELLED, -4, 0, "operation cancelled")                               \
    XX(ECLOSED, -5, 0, "call or stream already closed")                        \
    XX(EAGAIN, -6, 0, "resource temporarily unavailable; try again")           \
    XX(ETLS, -7, 0, "TLS error")                                               \
    XX(EADDR, -8, 0, "bad or unusable address")                                \
    XX(EIO, -9, 1, "input/output error")                                       \
    XX(EPROTO, -10, 1, "protocol error")                                       \
    XX(ETOOBIG, -11, 0, "value over its size limit")                           \
    XX(ESTATE, -12, 0, "not allowed in the object's current state")            \
    XX(ENOTFOUND, -13, 0, "not found")                                         \
    XX(EEXIST, -14, 0, "already exists")                                       \
    XX(ECONFIG, -15, 0, "invalid configuration")                               \
    XX(ETIMEDOUT, -16, 0, "timed out")                                         \
    XX(ENOTSUP, -17, 0, "not supported")                                       \
    XX(EPARSE, -18, 0, "input does not parse")                                 \
    XX(ESYS, -19, 0, "system call failed")                                     \
    XX(ELIMIT, -20, 0, "a configured resource limit was reached")              \
    XX(EBLOCKING, -21, 0,                                                      \
       "a blocking call on an orpc IO thread (it would wait on itself)")

/** API error codes; see ORPC_ERRNO_MAP for their meaning. */
typedef enum orpc_err {
    ORPC_EOK = 0,
#define ORPC_ERR_ENUM_(name, value, fatal, text) ORPC_##name = (value),
    ORPC_ERRNO_MAP(ORPC_ERR_ENUM_)
#undef ORPC_ERR_ENUM_
} orpc_err;

/** Bytes of an orpc_error_detail's message, its NUL included. */
#define ORPC_ERROR_DETAIL_SIZE 256

/**
 * Why a constructor or loader failed, for the caller to show: every function
 * that takes one (as its last parameter, always optional) fills it when it
 * returns nonzero, and leaves it untouched on success.  |message| names the
 * setting, file or address at fault and what is wrong with it
 * ("tls.cert_file: /etc/orpc/svc.pem: No such file or directory").
 *
 * A function given a detail does not also log the failure; given NULL, it
 * reports through the object's logger, or to stderr when there is none.
 * The exception is the JSON mapping (orpc/compat/json.h): a request that
 * does not decode is the peer's fault, and logging it would let a peer
 * flood the log, so there the code alone says it.
 * Ownership: the caller's (usually on its stack); nothing in it is
 * allocated.
 */
typedef struct orpc_error_detail {
    int code; /**< the ORPC_E* code the function returned */
    /** NUL-terminated, truncated to fit */
    char message[ORPC_ERROR_DETAIL_SIZE];
} orpc_error_detail;

/**
 * @function
 * A human-readable description of |err| ("invalid argument").  0 gives
 * "success"; an unknown code gives "unknown error".
 *
 * Returns a static string.
 *
 * Ownership: the string is static: never free it.
 * Threads: any thread.
 */
ORPC_EXTERN const char *orpc_strerror(int err);

/**
 * @function
 * The symbolic name of |err| ("ORPC_EINVAL"); "ORPC_EOK" for 0 and
 * "ORPC_E?" for an unknown code.
 *
 * Returns a static string.
 *
 * Ownership: the string is static: never free it.
 * Threads: any thread.
 */
ORPC_EXTERN const char *orpc_err_name(int err);

/**
 * @function
 * Nonzero when |err| leaves the object that returned it unusable: the caller
 * should free it and start again.
 *
 * Ownership: nothing changes hands.
 * Threads: any thread.
 */
ORPC_EXTERN int orpc_err_is_fatal(int err);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_ERROR_H */
