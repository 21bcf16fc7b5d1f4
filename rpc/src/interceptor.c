/*
 * interceptor.c — interceptor objects, chains, and running a chain's hooks
 * for one call (orpc/interceptor.h, intercept.h).
 *
 * Design notes:
 * - Observers, not wrappers.  A C wrapper chain (each interceptor calling
 *   "next") would put every interceptor's frame on every path of the call
 *   engine, synchronous and asynchronous, and let one hold a call hostage;
 *   hooks at three points (start, message, end) cover what the chains
 *   gRPC users write do in practice — metadata in, refusal, observation —
 *   and cost a loop over an array when there are any, a NULL test when
 *   there are none.
 * - on_start runs in chain order and on_end in reverse, each only for the
 *   interceptors whose on_start accepted the call: an interceptor that
 *   opened something in on_start always gets to close it.
 * - The per-call record lives inside the call (no allocation per call).
 */
#include "intercept.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <orpc/error.h>
#include <orpc/metadata.h>
#include <orpc/status.h>

struct orpc_interceptor {
    atomic_int refs;
    orpc_interceptor_ops ops;
    void *user_data;
};

int orpc_interceptor_new(orpc_interceptor **out,
                         const orpc_interceptor_ops *ops, void *user_data)
{
    if (out == NULL || ops == NULL)
        return ORPC_EINVAL;
    *out = NULL;
    orpc_interceptor *ic = calloc(1, sizeof(*ic));
    if (ic == NULL) {
        if (ops->destroy)
            ops->destroy(user_data);
        return ORPC_ENOMEM;
    }
    atomic_init(&ic->refs, 1);
    ic->ops = *ops;
    ic->user_data = user_data;
    *out = ic;
    return 0;
}

orpc_interceptor *orpc_interceptor_ref(orpc_interceptor *ic)
{
    if (ic != NULL)
        atomic_fetch_add_explicit(&ic->refs, 1, memory_order_relaxed);
    return ic;
}

void orpc_interceptor_unref(orpc_interceptor *ic)
{
    if (ic == NULL ||
        atomic_fetch_sub_explicit(&ic->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (ic->ops.destroy)
        ic->ops.destroy(ic->user_data);
    free(ic);
}

/* ---- chains ------------------------------------------------------------ */

int orpc__chain_init(orpc__chain *out, orpc_interceptor *const *defaults,
                     size_t n_defaults, orpc_interceptor *const *user,
                     size_t n_user, const char **why)
{
    memset(out, 0, sizeof(*out));
    if (n_defaults + n_user > ORPC_MAX_INTERCEPTORS ||
        n_user > ORPC_MAX_INTERCEPTORS) {
        *why = "more interceptors than ORPC_MAX_INTERCEPTORS";
        return ORPC_EINVAL;
    }
    if (n_user > 0 && user == NULL) {
        *why = "n_interceptors is set but interceptors is NULL";
        return ORPC_EINVAL;
    }
    for (size_t i = 0; i < n_user; i++)
        if (user[i] == NULL) {
            *why = "a NULL entry in interceptors";
            return ORPC_EINVAL;
        }
    for (size_t i = 0; i < n_defaults; i++)
        out->ic[out->n++] = orpc_interceptor_ref(defaults[i]);
    for (size_t i = 0; i < n_user; i++)
        out->ic[out->n++] = orpc_interceptor_ref(user[i]);
    return 0;
}

void orpc__chain_destroy(orpc__chain *c)
{
    for (size_t i = 0; i < c->n; i++)
        orpc_interceptor_unref(c->ic[i]);
    c->n = 0;
}

/* ---- one call ----------------------------------------------------------- */

void orpc__call_info_init(orpc_call_info *ci, const orpc__chain *chain,
                          const orpc_method_desc *m, orpc_call_side side,
                          orpc_metadata **md, const orpc_mem *mem,
                          const char *peer)
{
    /* |ci| is zeroed already: it is part of a call made with calloc */
    ci->chain = chain;
    ci->method = m;
    ci->side = side;
    ci->served_by = ORPC_SERVED_GRPC;
    ci->md = md;
    ci->mem = mem;
    ci->peer = peer;
    if (orpc__call_info_active(ci))
        ci->start_ns = uv_hrtime();
}

static void end_started(orpc_call_info *ci, const orpc_status *st)
{
    if (ci->ended)
        return;
    ci->ended = 1;
    for (size_t i = ci->started; i-- > 0;) {
        orpc_interceptor *ic = ci->chain->ic[i];
        if (ic->ops.on_end == NULL)
            continue;
        ic->ops.on_end(ci, ci->slots[i], st, ic->user_data);
    }
}

orpc_code orpc__chain_start(orpc_call_info *ci, const char **why)
{
    if (!orpc__call_info_active(ci))
        return ORPC_OK;
    ci->starting = 1;
    for (size_t i = 0; i < ci->chain->n; i++) {
        orpc_interceptor *ic = ci->chain->ic[i];
        orpc_code code = ORPC_OK;
        const char *msg = NULL;
        if (ic->ops.on_start)
            code = ic->ops.on_start(ci, &ci->slots[i], &msg, ic->user_data);
        if (code != ORPC_OK) {
            ci->starting = 0;
            *why = msg ? msg : "refused by an interceptor";
            orpc_status st = {.code = code, .message = (char *)*why};
            end_started(ci, &st);
            return code;
        }
        ci->started = i + 1;
    }
    ci->starting = 0;
    return ORPC_OK;
}

void orpc__chain_message(orpc_call_info *ci, int outbound, size_t bytes)
{
    if (!orpc__call_info_active(ci))
        return;
    int d = outbound != 0;
    /* One writer per direction (the IO thread receives; one thread sends
     * at a time): plain relaxed stores, no locked read-modify-write on
     * every message.  The atomics keep a reader on another thread (a
     * server call's two directions) race-free. */
    atomic_store_explicit(
        &ci->msgs[d],
        atomic_load_explicit(&ci->msgs[d], memory_order_relaxed) + 1,
        memory_order_relaxed);
    atomic_store_explicit(
        &ci->bytes[d],
        atomic_load_explicit(&ci->bytes[d], memory_order_relaxed) + bytes,
        memory_order_relaxed);
    for (size_t i = 0; i < ci->started; i++) {
        orpc_interceptor *ic = ci->chain->ic[i];
        if (ic->ops.on_message)
            ic->ops.on_message(ci, ci->slots[i], d, bytes, ic->user_data);
    }
}

void orpc__chain_end(orpc_call_info *ci, const orpc_status *st)
{
    if (!orpc__call_info_active(ci))
        return;
    end_started(ci, st);
}

/* ---- chains run by other transports ------------------------------------ */

/* A call info with a chain of its own (the references it holds). */
typedef struct ext_info {
    orpc_call_info ci; /* first: the public pointer */
    orpc__chain chain;
} ext_info;

orpc_code orpc_call_info_begin(orpc_call_info **out,
                               const orpc_call_info_params *p, const char **why)
{
    static const char *dummy;
    if (why == NULL)
        why = &dummy;
    if (out == NULL || p == NULL || p->method == NULL) {
        *why = "orpc_call_info_begin: NULL argument";
        return ORPC_INVALID_ARGUMENT;
    }
    *out = NULL;
    ext_info *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        *why = "out of memory";
        return ORPC_RESOURCE_EXHAUSTED;
    }
    if (orpc__chain_init(&x->chain, NULL, 0, p->interceptors, p->n_interceptors,
                         why) != 0) {
        free(x);
        return ORPC_INVALID_ARGUMENT;
    }
    orpc__call_info_init(&x->ci, &x->chain, p->method, p->side, p->metadata,
                         p->mem, p->peer);
    x->ci.served_by = p->served_by;
    x->ci.parent_md = p->parent_metadata;
    orpc_code code = orpc__chain_start(&x->ci, why);
    if (code != ORPC_OK) {
        orpc__chain_destroy(&x->chain);
        free(x);
        return code;
    }
    *out = &x->ci;
    return ORPC_OK;
}

void orpc_call_info_message(orpc_call_info *info, int outbound, size_t bytes)
{
    if (info != NULL)
        orpc__chain_message(info, outbound, bytes);
}

void orpc_call_info_end(orpc_call_info *info, const orpc_status *status)
{
    if (info == NULL)
        return;
    ext_info *x = (ext_info *)info;
    orpc_status ok = ORPC_STATUS_OK;
    orpc__chain_end(info, status ? status : &ok);
    orpc__chain_destroy(&x->chain);
    free(x);
}

/* ---- what a hook sees ---------------------------------------------------- */

const orpc_method_desc *orpc_call_info_method(const orpc_call_info *info)
{
    return info->method;
}

orpc_call_side orpc_call_info_side(const orpc_call_info *info)
{
    return info->side;
}

const orpc_metadata *orpc_call_info_metadata(const orpc_call_info *info)
{
    return info->md ? *info->md : NULL;
}

int orpc_call_info_add_metadata(orpc_call_info *info, const char *key,
                                const void *value, size_t len)
{
    if (info == NULL || key == NULL || (value == NULL && len > 0))
        return ORPC_EINVAL;
    if (!info->starting || info->md == NULL)
        return ORPC_ESTATE;
    if (*info->md == NULL) {
        int rc = orpc_metadata_new(info->md, info->mem);
        if (rc != 0)
            return rc;
    }
    return orpc_metadata_add(*info->md, key, value, len);
}

const char *orpc_call_info_peer(const orpc_call_info *info)
{
    return info->peer;
}

orpc_served_by orpc_call_info_served_by(const orpc_call_info *info)
{
    return info->served_by;
}

uint64_t orpc_call_info_start_ns(const orpc_call_info *info)
{
    return info->start_ns;
}

void orpc_call_info_counts(const orpc_call_info *info, int out,
                           uint64_t *messages, uint64_t *bytes)
{
    int d = out != 0;
    if (messages)
        *messages = atomic_load_explicit(&info->msgs[d], memory_order_relaxed);
    if (bytes)
        *bytes = atomic_load_explicit(&info->bytes[d], memory_order_relaxed);
}
