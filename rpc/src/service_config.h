/*
 * service_config.h — internal: gRPC's service config (the JSON of
 * grpc/service_config/service_config.proto) as a channel reads it.
 *
 * Owns parsing and validating the text into an immutable form, and the
 * per-call lookup of the method config that applies to a :path.  What the
 * settings do to a call lives in call.c and retry.c; the load-balancing
 * choice is only recorded here, for the channel's LB code to read.
 *
 * Parsing follows gRPC: unknown fields are ignored at every level, JSON
 * null is "not set" (proto3 JSON), but a known field of the wrong type or
 * out of range, a duplicate method name, or a duplicate object key is an
 * error naming the JSON path of the field
 * ("methodConfig[0].retryPolicy.maxAttempts: must be at least 2").
 *
 * Thread-safety: a parsed config is never written after
 * orpc__svc_config_parse() returns, so any thread may read it;
 * orpc__svc_config_free() must not race with readers.
 */
#ifndef ORPC_SERVICE_CONFIG_H
#define ORPC_SERVICE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <orpc/common.h>
#include <orpc/error.h>

/* Largest service config text accepted, in bytes. */
#define ORPC__SVC_CONFIG_MAX_BYTES (1024 * 1024)
/* Attempts above this are treated as this many (gRFC A6's client cap). */
#define ORPC__RETRY_MAX_ATTEMPTS 5

/* A retryPolicy (gRFC A6).  Durations in nanoseconds. */
typedef struct orpc__retry_policy {
    int max_attempts; /* 2..ORPC__RETRY_MAX_ATTEMPTS */
    int64_t initial_backoff_ns;
    int64_t max_backoff_ns;
    double backoff_multiplier;
    uint32_t codes; /* bit (1u << code) per retryable status code */
} orpc__retry_policy;

/* A hedgingPolicy (unary calls hedge: retry.c). */
typedef struct orpc__hedging_policy {
    int max_attempts; /* 2..ORPC__RETRY_MAX_ATTEMPTS */
    int64_t delay_ns; /* hedgingDelay; 0 when not set */
    uint32_t codes;   /* nonFatalStatusCodes */
} orpc__hedging_policy;

/* One methodConfig entry.  Zero means "not set" throughout. */
typedef struct orpc__method_config {
    int64_t timeout_ns; /* > 0 when set */
    int wait_for_ready; /* -1 not set, else 0 or 1 */
    size_t max_request_bytes;
    size_t max_response_bytes;
    int has_max_request, has_max_response; /* (0 bytes is a valid limit) */
    const orpc__retry_policy *retry;       /* NULL: none */
    const orpc__hedging_policy *hedging;   /* NULL: none */
} orpc__method_config;

/* The load-balancing policy the config chose (loadBalancingConfig: the
 * first one orpc knows; or the older loadBalancingPolicy string). */
typedef enum orpc__sc_lb_policy {
    ORPC__SC_LB_UNSET = 0, /* the channel's default */
    ORPC__SC_LB_PICK_FIRST = 1,
    ORPC__SC_LB_ROUND_ROBIN = 2
} orpc__sc_lb_policy;

typedef struct orpc__svc_config orpc__svc_config;

/*
 * Parses and validates the |len| bytes at |json| (need not be
 * NUL-terminated).  Returns 0 with |*out| set; ORPC_ECONFIG with the
 * message in |detail| (the JSON path of the fault and what is wrong, or
 * "line L column C: ..." when the text is not JSON); ORPC_EINVAL (NULL
 * |out| or |json|); ORPC_ENOMEM.
 * Ownership: copies what it keeps; the config and its parts are allocated
 * with |mem| (NULL: libc), which must outlive it; free with
 * orpc__svc_config_free().  jansson's own allocations are not among them.
 */
int orpc__svc_config_parse(orpc__svc_config **out, const char *json, size_t len,
                           const orpc_mem *mem, orpc_error_detail *detail);

/* Frees |sc|; NULL is a no-op. */
void orpc__svc_config_free(orpc__svc_config *sc);

/*
 * The method config for |path| ("/pkg.Service/Method"): the entry naming
 * the service and method, else the one naming the service alone, else the
 * default (an empty name), else NULL.  Borrowed from |sc|.
 */
const orpc__method_config *orpc__svc_config_method(const orpc__svc_config *sc,
                                                   const char *path);

/* The retryThrottling settings: 1 with them in milli-tokens when set. */
int orpc__svc_config_throttling(const orpc__svc_config *sc,
                                int *max_milli_tokens, int *milli_token_ratio);

/* The load-balancing policy chosen (ORPC__SC_LB_UNSET for NULL). */
orpc__sc_lb_policy orpc__svc_config_lb(const orpc__svc_config *sc);

#endif /* ORPC_SERVICE_CONFIG_H */
