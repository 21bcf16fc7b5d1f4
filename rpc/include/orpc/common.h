/*
 * orpc/common.h — what every orpc header shares: export macro, version,
 * allocator hooks and the logger.
 *
 * Thread-safety: everything declared here may be used from any thread.
 */
#ifndef ORPC_COMMON_H
#define ORPC_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(ORPC_STATIC)
#define ORPC_EXTERN
#elif defined(__GNUC__)
#define ORPC_EXTERN __attribute__((visibility("default")))
#else
#define ORPC_EXTERN
#endif

#if defined(__GNUC__)
#define ORPC_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define ORPC_WARN_UNUSED __attribute__((warn_unused_result))
#else
#define ORPC_PRINTF(fmt, args)
#define ORPC_WARN_UNUSED
#endif

/** Major version of the API; bumped only on incompatible change. */
#define ORPC_VERSION_MAJOR 0
/** Minor version; bumped when API is added. */
#define ORPC_VERSION_MINOR 2
/** Patch version. */
#define ORPC_VERSION_PATCH 0
/** Version as a string. */
#define ORPC_VERSION_STRING "0.2.0"
/** The version as one number, MAJOR * 1000000 + MINOR * 1000 + PATCH. */
#define ORPC_VERSION_NUMBER                                                    \
    (ORPC_VERSION_MAJOR * 1000000 + ORPC_VERSION_MINOR * 1000 +                \
     ORPC_VERSION_PATCH)
/**
 * The oldest protoc-gen-orpc (as an ORPC_VERSION_NUMBER) whose output these
 * headers still accept.  Generated headers compare both ways and stop the
 * build with #error on a mismatch: code from a newer generator needs at
 * least its own runtime, code from a generator older than this must be
 * generated again.
 */
#define ORPC_MIN_GENERATED_VERSION 1000

/**
 * @function
 * The library's version string, e.g. "0.1.0".  It may differ from
 * ORPC_VERSION_STRING when a program runs against a newer shared library.
 *
 * Returns a static string.
 *
 * Ownership: the string is static: never free it.
 * Threads: any thread.
 */
ORPC_EXTERN const char *orpc_version(void);

/**
 * Custom memory allocator hooks, per object (never global).  Every function
 * receives |user_data| last.  An object created with a NULL `orpc_mem *`, or a
 * hook left NULL, uses the C library's allocator.  orpc copies this struct
 * when an object is created; it does not take ownership of |user_data|.
 * A server's or a channel's hooks also serve what it makes on its own
 * behalf (connections, nghttp2 sessions, calls); each constructor says
 * what does not go through them.  They are called from the object's IO and
 * worker threads and the application's, at the same time: they must be
 * thread-safe.
 */
typedef struct orpc_mem {
    /** Passed to every hook. */
    void *user_data;
    /** Like malloc(3). */
    void *(*malloc)(size_t size, void *user_data);
    /** Like free(3); must accept NULL. */
    void (*free)(void *ptr, void *user_data);
    /** Like calloc(3). */
    void *(*calloc)(size_t nmemb, size_t size, void *user_data);
    /** Like realloc(3). */
    void *(*realloc)(void *ptr, size_t size, void *user_data);
} orpc_mem;

/** Severity of a log line. */
typedef enum orpc_log_level {
    ORPC_LOG_ERROR = 0,
    ORPC_LOG_WARN = 1,
    ORPC_LOG_INFO = 2,
    ORPC_LOG_DEBUG = 3
} orpc_log_level;

/**
 * A logger, installed per server or channel.  Without one, that object's
 * warnings and errors (never info or debug) go to stderr, one line each:
 *
 *     orpc: <error|warning>: <server|channel>: <message>
 *
 * e.g. "orpc: error: server: TLS: cannot load certificate /etc/x.pem: ...".
 * Installing a logger replaces that; one that ignores its lines silences
 * orpc.  |msg| is borrowed for the duration of the call and never contains
 * private keys or tokens.  Called from orpc's IO threads and from the
 * thread that made or configured the object; it must be thread-safe and
 * must not block.
 */
typedef void (*orpc_log_fn)(orpc_log_level level, const char *msg,
                            void *user_data);

/**
 * A function pointer of no particular type: generated code carries a typed
 * callback through the untyped runtime in one of these and converts it back
 * (a conversion C permits between function pointer types).
 */
typedef void (*orpc_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_COMMON_H */
