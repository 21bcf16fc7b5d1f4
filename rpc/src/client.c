/*
 * client.c — orpc_client: a service bound to the way its calls travel.
 *
 * Generated stubs call orpc_client_invoke() and friends with a client, never a
 * channel, so that something other than one gRPC channel can carry the call:
 * the compat layer installs an invoker that routes per method to gRPC or to
 * the legacy JSON/HTTP endpoint.  Without an invoker the client forwards to
 * its channel.  A client is immutable after creation, hence thread-safe.
 * Its one allocation, itself, uses the orpc_mem it was given; its calls
 * allocate with their channel's.
 */
#include <stdlib.h>
#include <string.h>

#include <orpc/client.h>
#include <orpc/error.h>

#include "common/log.h"
#include "common/mem.h"
#include "io.h"

struct orpc_client {
    orpc_mem mem; /* the client's own allocation */
    const orpc_service_desc *service;
    orpc_channel *channel; /* or NULL with an invoker */
    orpc_invoker invoker;
    void *invoker_data;
    int has_invoker;
};

/* A client has no logger of its own: without |detail|, stderr hears why. */
#define CLIENT_FAIL(detail, code, ...)                                         \
    orpc__fail((detail), NULL, NULL, "client", (code), __VA_ARGS__)

/* Nonzero when |service| is a descriptor this runtime can read. */
static int service_ok(const orpc_service_desc *service)
{
    return service != NULL && service->magic == ORPC_SERVICE_DESC_MAGIC &&
           (service->n_methods == 0 || orpc_service_method(service, 0) != NULL);
}

int orpc_client_new(orpc_client **out, const orpc_service_desc *service,
                    orpc_channel *channel, const orpc_mem *mem,
                    orpc_error_detail *detail)
{
    if (out == NULL || channel == NULL)
        return CLIENT_FAIL(detail, ORPC_EINVAL,
                           "orpc_client_new: |out| or |channel| is NULL");
    *out = NULL;
    if (!service_ok(service))
        return CLIENT_FAIL(detail, ORPC_EINVAL,
                           "orpc_client_new: not a service descriptor of "
                           "this runtime (regenerate the code?)");
    orpc_client *c = orpc__mem_calloc(mem, 1, sizeof(*c));
    if (c == NULL)
        return CLIENT_FAIL(detail, ORPC_ENOMEM,
                           "out of memory creating a client of %s",
                           service->full_name);
    orpc__mem_copy(&c->mem, mem);
    c->service = service;
    c->channel = orpc_channel_ref(channel);
    *out = c;
    return 0;
}

int orpc_client_new_with_invoker(orpc_client **out,
                                 const orpc_service_desc *service,
                                 const orpc_invoker *invoker, void *user_data,
                                 const orpc_mem *mem, orpc_error_detail *detail)
{
    if (out != NULL)
        *out = NULL;
    if (out == NULL || invoker == NULL || invoker->invoke == NULL ||
        invoker->invoke_async == NULL || !service_ok(service)) {
        if (invoker && invoker->destroy)
            invoker->destroy(user_data);
        return CLIENT_FAIL(detail, ORPC_EINVAL,
                           "orpc_client_new_with_invoker: |out| NULL, an "
                           "invoker without invoke/invoke_async, or not a "
                           "service descriptor of this runtime");
    }
    orpc_client *c = orpc__mem_calloc(mem, 1, sizeof(*c));
    if (c == NULL) {
        if (invoker->destroy)
            invoker->destroy(user_data);
        return CLIENT_FAIL(detail, ORPC_ENOMEM,
                           "out of memory creating a client of %s",
                           service->full_name);
    }
    orpc__mem_copy(&c->mem, mem);
    c->service = service;
    c->invoker = *invoker;
    c->invoker_data = user_data;
    c->has_invoker = 1;
    *out = c;
    return 0;
}

void orpc_client_free(orpc_client *c)
{
    if (c == NULL)
        return;
    if (c->has_invoker && c->invoker.destroy)
        c->invoker.destroy(c->invoker_data);
    orpc_channel_unref(c->channel);
    orpc_mem mem = c->mem;
    orpc__mem_free(&mem, c);
}

const orpc_service_desc *orpc_client_service(const orpc_client *c)
{
    return c ? c->service : NULL;
}

static int owns(const orpc_client *c, const orpc_method_desc *m)
{
    return c != NULL && m != NULL && m->service == c->service;
}

orpc_status orpc_client_invoke(orpc_client *c, const orpc_method_desc *m,
                               const ProtobufCMessage *request,
                               ProtobufCMessage **response,
                               const orpc_call_opts *opts)
{
    if (!owns(c, m))
        return orpc_status_new(ORPC_INVALID_ARGUMENT,
                               "method does not belong to the client's "
                               "service");
    /* Whatever carries the call (a channel, or an invoker such as the
     * router's legacy side), waiting for it here would block the loop. */
    if (orpc__io_on_any_thread())
        return orpc__io_blocking_refused("orpc_client_invoke");
    if (c->has_invoker)
        return c->invoker.invoke(m, request, response, opts, c->invoker_data);
    return orpc_channel_invoke(c->channel, m, request, response, opts);
}

int orpc_client_invoke_async_typed(orpc_client *c, const orpc_method_desc *m,
                                   const ProtobufCMessage *request,
                                   const orpc_call_opts *opts,
                                   orpc_unary_trampoline done, orpc_fn typed_cb,
                                   void *user_data)
{
    if (!owns(c, m) || done == NULL)
        return ORPC_EINVAL;
    if (c->has_invoker)
        return c->invoker.invoke_async(m, request, opts, done, typed_cb,
                                       user_data, c->invoker_data);
    return orpc_channel_invoke_async_typed(c->channel, m, request, opts, done,
                                           typed_cb, user_data);
}

/* Adapts a plain callback to the trampoline shape. */
static void plain_trampoline(const orpc_status *st, ProtobufCMessage *resp,
                             orpc_fn typed_cb, void *user_data)
{
    ((orpc_unary_cb)typed_cb)(st, resp, user_data);
}

int orpc_client_invoke_async(orpc_client *c, const orpc_method_desc *m,
                             const ProtobufCMessage *request,
                             const orpc_call_opts *opts, orpc_unary_cb cb,
                             void *user_data)
{
    if (cb == NULL)
        return ORPC_EINVAL;
    return orpc_client_invoke_async_typed(c, m, request, opts, plain_trampoline,
                                          (orpc_fn)cb, user_data);
}

int orpc_client_call_start(orpc_call **out, orpc_client *c,
                           const orpc_method_desc *m,
                           const ProtobufCMessage *request,
                           const orpc_call_opts *opts)
{
    if (out == NULL || !owns(c, m))
        return ORPC_EINVAL;
    if (c->has_invoker) {
        if (c->invoker.call_start == NULL)
            return ORPC_ENOTSUP;
        return c->invoker.call_start(out, m, request, opts, c->invoker_data);
    }
    return orpc_channel_call_start(out, c->channel, m, request, opts);
}

int orpc_client_call_start_async(orpc_call **out, orpc_client *c,
                                 const orpc_method_desc *m,
                                 const ProtobufCMessage *request,
                                 const orpc_call_opts *opts,
                                 const orpc_call_callbacks *callbacks,
                                 void *user_data)
{
    if (out == NULL || !owns(c, m))
        return ORPC_EINVAL;
    if (c->has_invoker) {
        if (c->invoker.call_start_async == NULL)
            return ORPC_ENOTSUP;
        return c->invoker.call_start_async(out, m, request, opts, callbacks,
                                           user_data, c->invoker_data);
    }
    return orpc_channel_call_start_async(out, c->channel, m, request, opts,
                                         callbacks, user_data);
}
