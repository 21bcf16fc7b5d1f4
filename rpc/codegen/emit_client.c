/*
 * emit_client.c — typed client stubs.
 *
 * Per method, by call kind (all names under <svc>__client__<method>):
 *   unary             blocking call, and __async with a typed callback
 *   server streaming  start with the request, then __recv, __finish
 *   client streaming  start, __send, then __finish for the one response
 *   bidi streaming    start, __send, __close_send, __recv, __finish
 * plus __cancel for the streaming kinds.  Streams are typed handles over an
 * orpc_call (an incomplete struct type per method, so a reader of one method
 * cannot be passed to another).  The stubs only convert types and call
 * orpc/client.h; names sit under "__client__" because protoc-c already uses
 * <svc>__<method> for its own ProtobufCService stubs.
 */
#include <stdlib.h>

#include "emit.h"

typedef struct names {
    const char *fn;     /* pkg__svc__client__method */
    const char *in;     /* Pkg__Req */
    const char *out;    /* Pkg__Resp */
    const char *handle; /* Pkg__Svc_Method_Reader/_Writer/_Stream */
    const char *path;
    const char *out_lower;
} names;

static void decl_method(const cg_plan *plan, const cg_service_plan *sp,
                        const cg_method_plan *mp, const names *n, cg_buf *h)
{
    const char *comment = cg_comment(plan->file, mp->loc, 4);
    char *extra;
    cg_buf_puts(h, "\n");
    switch (mp->kind) {
    case CG_UNARY:
        extra = cg_strdupf(
            "Blocking call of %s.  On ORPC_OK |*response| is set; free it\n"
            "with %s__free_unpacked(*response, NULL).  |opts| may be NULL.\n"
            "Returns the call's status; clear it with orpc_status_clear().",
            n->path, n->out_lower);
        cg_buf_doc(h, 0, comment, extra);
        free(extra);
        cg_buf_printf(h,
                      "orpc_status %s(orpc_client *client,\n"
                      "    const %s *request, %s **response,\n"
                      "    const orpc_call_opts *opts);\n\n",
                      n->fn, n->in, n->out);
        cg_buf_printf(
            h,
            "/**\n * Completion of %s__async(): |status| is borrowed "
            "for the\n * callback; |response| (NULL unless OK) is the "
            "callback's to free.\n */\n",
            n->fn);
        cg_buf_printf(h,
                      "typedef void (*%s_%s_Done)(const orpc_status *status,\n"
                      "    %s *response, void *user_data);\n\n",
                      sp->c_type, mp->m->name, n->out);
        cg_buf_printf(
            h,
            "/**\n * Asynchronous call of %s: |done| runs once, on an "
            "orpc\n * thread, when it ends.  Returns 0, or a negative "
            "ORPC_E* code\n * and |done| never runs.\n */\n",
            n->path);
        cg_buf_printf(h,
                      "int %s__async(orpc_client *client,\n"
                      "    const %s *request, const orpc_call_opts *opts,\n"
                      "    %s_%s_Done done, void *user_data);\n",
                      n->fn, n->in, sp->c_type, mp->m->name);
        return;
    case CG_SERVER_STREAMING:
        cg_buf_printf(h, "/** A running call of %s. */\n", n->path);
        cg_buf_printf(h, "typedef struct %s %s;\n\n", n->handle, n->handle);
        extra = cg_strdupf(
            "Starts %s with |request| (server streaming): read responses\n"
            "with %s__recv(), then end with %s__finish().\n"
            "Returns 0 with |*reader| set, or a negative ORPC_E* code.",
            n->path, n->fn, n->fn);
        cg_buf_doc(h, 0, comment, extra);
        free(extra);
        cg_buf_printf(h,
                      "int %s(orpc_client *client,\n"
                      "    const %s *request, const orpc_call_opts *opts,\n"
                      "    %s **reader);\n\n",
                      n->fn, n->in, n->handle);
        cg_buf_printf(h,
                      "/**\n * Next response: 1 with |*response| set (free it "
                      "with\n * %s__free_unpacked()), 0 at the end of the "
                      "stream, or a\n * negative ORPC_E* code.\n */\n",
                      n->out_lower);
        cg_buf_printf(h, "int %s__recv(%s *reader, %s **response);\n\n", n->fn,
                      n->handle, n->out);
        break;
    case CG_CLIENT_STREAMING:
        cg_buf_printf(h, "/** A running call of %s. */\n", n->path);
        cg_buf_printf(h, "typedef struct %s %s;\n\n", n->handle, n->handle);
        extra = cg_strdupf(
            "Starts %s (client streaming): send requests with\n"
            "%s__send(), then %s__finish() for the response.\n"
            "Returns 0 with |*writer| set, or a negative ORPC_E* code.",
            n->path, n->fn, n->fn);
        cg_buf_doc(h, 0, comment, extra);
        free(extra);
        cg_buf_printf(h,
                      "int %s(orpc_client *client,\n"
                      "    const orpc_call_opts *opts, %s **writer);\n\n",
                      n->fn, n->handle);
        cg_buf_puts(h, "/** Sends one request; see orpc_call_send(). */\n");
        cg_buf_printf(h, "int %s__send(%s *writer, const %s *request);\n\n",
                      n->fn, n->handle, n->in);
        cg_buf_printf(h,
                      "/**\n * Closes the request stream, waits for the "
                      "response and frees\n * |writer|.  On ORPC_OK "
                      "|*response| is set (free it with\n * "
                      "%s__free_unpacked()).\n */\n",
                      n->out_lower);
        cg_buf_printf(h,
                      "orpc_status %s__finish(%s *writer,\n"
                      "    %s **response);\n\n",
                      n->fn, n->handle, n->out);
        cg_buf_printf(h, "/** Cancels the call; see orpc_call_cancel(). */\n");
        cg_buf_printf(h, "void %s__cancel(%s *writer);\n", n->fn, n->handle);
        return;
    case CG_BIDI_STREAMING:
        cg_buf_printf(h, "/** A running call of %s. */\n", n->path);
        cg_buf_printf(h, "typedef struct %s %s;\n\n", n->handle, n->handle);
        extra = cg_strdupf(
            "Starts %s (bidirectional streaming): %s__send(),\n"
            "%s__close_send() and %s__recv() in any order\n"
            "the protocol allows, then %s__finish().\n"
            "Returns 0 with |*stream| set, or a negative ORPC_E* code.",
            n->path, n->fn, n->fn, n->fn, n->fn);
        cg_buf_doc(h, 0, comment, extra);
        free(extra);
        cg_buf_printf(h,
                      "int %s(orpc_client *client,\n"
                      "    const orpc_call_opts *opts, %s **stream);\n\n",
                      n->fn, n->handle);
        cg_buf_puts(h, "/** Sends one request; see orpc_call_send(). */\n");
        cg_buf_printf(h, "int %s__send(%s *stream, const %s *request);\n\n",
                      n->fn, n->handle, n->in);
        cg_buf_puts(
            h, "/** Ends the request stream; see orpc_call_close_send(). */\n");
        cg_buf_printf(h, "int %s__close_send(%s *stream);\n\n", n->fn,
                      n->handle);
        cg_buf_printf(h,
                      "/**\n * Next response: 1 with |*response| set (free it "
                      "with\n * %s__free_unpacked()), 0 at the end of the "
                      "stream, or a\n * negative ORPC_E* code.\n */\n",
                      n->out_lower);
        cg_buf_printf(h, "int %s__recv(%s *stream, %s **response);\n\n", n->fn,
                      n->handle, n->out);
        break;
    }
    /* server and bidi streaming share finish and cancel */
    cg_buf_puts(h, "/** Waits for the status and frees the call; see "
                   "orpc_call_finish(). */\n");
    cg_buf_printf(h, "orpc_status %s__finish(%s *call);\n\n", n->fn, n->handle);
    cg_buf_puts(h, "/** Cancels the call; see orpc_call_cancel(). */\n");
    cg_buf_printf(h, "void %s__cancel(%s *call);\n", n->fn, n->handle);
}

static const char *handle_suffix(cg_kind k)
{
    switch (k) {
    case CG_SERVER_STREAMING:
        return "Reader";
    case CG_CLIENT_STREAMING:
        return "Writer";
    case CG_BIDI_STREAMING:
        return "Stream";
    default:
        return "";
    }
}

static void with_names(const cg_service_plan *sp, const cg_method_plan *mp,
                       void (*fn)(const cg_service_plan *, size_t,
                                  const cg_method_plan *, const names *,
                                  void *),
                       size_t mi, void *arg)
{
    char *f = cg_strdupf("%s__client__%s", sp->c_lower, mp->lower);
    char *handle = cg_strdupf("%s_%s_%s", sp->c_type, mp->m->name,
                              handle_suffix(mp->kind));
    names n = {f,      mp->in->c_type, mp->out->c_type,
               handle, mp->path,       mp->out->c_lower};
    fn(sp, mi, mp, &n, arg);
    free(f);
    free(handle);
}

typedef struct decl_arg {
    const cg_plan *plan;
    cg_buf *h;
} decl_arg;

static void decl_cb(const cg_service_plan *sp, size_t mi,
                    const cg_method_plan *mp, const names *n, void *arg)
{
    decl_arg *a = arg;
    (void)mi;
    decl_method(a->plan, sp, mp, n, a->h);
}

void cg_emit_client_decl(const cg_plan *plan, const cg_service_plan *sp,
                         cg_buf *h)
{
    decl_arg a = {plan, h};
    cg_buf_printf(h, "\n/* ---- client of %s ---- */\n", sp->full_name);
    cg_buf_doc(h, 0, cg_comment(plan->file, sp->loc, 2), NULL);
    for (size_t i = 0; i < sp->n_methods; i++)
        with_names(sp, &sp->methods[i], decl_cb, i, &a);
}

/* ---- definitions ---- */

static void def_cb(const cg_service_plan *sp, size_t mi,
                   const cg_method_plan *mp, const names *n, void *arg)
{
    cg_buf *c = arg;
    const char *h = n->handle;
    cg_buf_puts(c, "\n");
    switch (mp->kind) {
    case CG_UNARY:
        cg_buf_printf(c,
                      "orpc_status %s(orpc_client *client,\n"
                      "    const %s *request, %s **response,\n"
                      "    const orpc_call_opts *opts)\n{\n"
                      "    ProtobufCMessage *out = NULL;\n"
                      "    orpc_status st = orpc_client_invoke(client, ",
                      n->fn, n->in, n->out);
        cg_emit_method_ref(c, sp, mi);
        cg_buf_printf(c,
                      ",\n        (const ProtobufCMessage *)request, "
                      "response ? &out : NULL, opts);\n"
                      "    if (response != NULL)\n"
                      "        *response = (%s *)out;\n"
                      "    return st;\n}\n\n",
                      n->out);
        cg_buf_printf(c,
                      "static void %s__done(const orpc_status *status,\n"
                      "    ProtobufCMessage *response, orpc_fn typed_cb, "
                      "void *user_data)\n{\n"
                      "    ((%s_%s_Done)typed_cb)(status, (%s *)response, "
                      "user_data);\n}\n\n",
                      n->fn, sp->c_type, mp->m->name, n->out);
        cg_buf_printf(c,
                      "int %s__async(orpc_client *client,\n"
                      "    const %s *request, const orpc_call_opts *opts,\n"
                      "    %s_%s_Done done, void *user_data)\n{\n"
                      "    if (done == NULL)\n"
                      "        return ORPC_EINVAL;\n"
                      "    return orpc_client_invoke_async_typed(client, ",
                      n->fn, n->in, sp->c_type, mp->m->name);
        cg_emit_method_ref(c, sp, mi);
        cg_buf_printf(c,
                      ",\n        (const ProtobufCMessage *)request, opts, "
                      "%s__done,\n        (orpc_fn)done, user_data);\n}\n",
                      n->fn);
        return;
    case CG_SERVER_STREAMING:
        cg_buf_printf(c,
                      "int %s(orpc_client *client,\n"
                      "    const %s *request, const orpc_call_opts *opts,\n"
                      "    %s **reader)\n{\n"
                      "    orpc_call *call = NULL;\n"
                      "    if (reader == NULL || request == NULL)\n"
                      "        return ORPC_EINVAL;\n"
                      "    int rc = orpc_client_call_start(&call, client, ",
                      n->fn, n->in, h);
        cg_emit_method_ref(c, sp, mi);
        cg_buf_printf(c,
                      ",\n        (const ProtobufCMessage *)request, opts);\n"
                      "    *reader = (%s *)call;\n"
                      "    return rc;\n}\n\n",
                      h);
        break;
    case CG_CLIENT_STREAMING:
    case CG_BIDI_STREAMING: {
        const char *var = mp->kind == CG_CLIENT_STREAMING ? "writer" : "stream";
        cg_buf_printf(c,
                      "int %s(orpc_client *client,\n"
                      "    const orpc_call_opts *opts, %s **%s)\n{\n"
                      "    orpc_call *call = NULL;\n"
                      "    if (%s == NULL)\n"
                      "        return ORPC_EINVAL;\n"
                      "    int rc = orpc_client_call_start(&call, client, ",
                      n->fn, h, var, var);
        cg_emit_method_ref(c, sp, mi);
        cg_buf_printf(c,
                      ", NULL, opts);\n"
                      "    *%s = (%s *)call;\n"
                      "    return rc;\n}\n\n",
                      var, h);
        cg_buf_printf(c,
                      "int %s__send(%s *%s, const %s *request)\n{\n"
                      "    return orpc_call_send((orpc_call *)%s,\n"
                      "        (const ProtobufCMessage *)request);\n}\n\n",
                      n->fn, h, var, n->in, var);
        if (mp->kind == CG_CLIENT_STREAMING) {
            cg_buf_printf(c,
                          "orpc_status %s__finish(%s *writer,\n"
                          "    %s **response)\n{\n"
                          "    ProtobufCMessage *out = NULL;\n"
                          "    orpc_status st = orpc_call_finish_response("
                          "(orpc_call *)writer,\n"
                          "        response ? &out : NULL);\n"
                          "    if (response != NULL)\n"
                          "        *response = (%s *)out;\n"
                          "    return st;\n}\n\n",
                          n->fn, h, n->out, n->out);
            cg_buf_printf(c,
                          "void %s__cancel(%s *writer)\n{\n"
                          "    orpc_call_cancel((orpc_call *)writer);\n}\n",
                          n->fn, h);
            return;
        }
        cg_buf_printf(c,
                      "int %s__close_send(%s *stream)\n{\n"
                      "    return orpc_call_close_send((orpc_call *)stream);\n"
                      "}\n\n",
                      n->fn, h);
        break;
    }
    }
    /* server and bidi streaming: recv, finish, cancel */
    cg_buf_printf(c,
                  "int %s__recv(%s *%s, %s **response)\n{\n"
                  "    ProtobufCMessage *msg = NULL;\n"
                  "    if (response == NULL)\n"
                  "        return ORPC_EINVAL;\n"
                  "    int rc = orpc_call_recv((orpc_call *)%s, &msg);\n"
                  "    *response = (%s *)msg;\n"
                  "    return rc;\n}\n\n",
                  n->fn, h, mp->kind == CG_BIDI_STREAMING ? "stream" : "reader",
                  n->out, mp->kind == CG_BIDI_STREAMING ? "stream" : "reader",
                  n->out);
    cg_buf_printf(c,
                  "orpc_status %s__finish(%s *call)\n{\n"
                  "    return orpc_call_finish((orpc_call *)call);\n}\n\n",
                  n->fn, h);
    cg_buf_printf(c,
                  "void %s__cancel(%s *call)\n{\n"
                  "    orpc_call_cancel((orpc_call *)call);\n}\n",
                  n->fn, h);
}

void cg_emit_client_def(const cg_plan *plan, const cg_service_plan *sp,
                        cg_buf *c)
{
    (void)plan;
    cg_buf_printf(c, "\n/* ---- client of %s ---- */\n", sp->full_name);
    for (size_t i = 0; i < sp->n_methods; i++)
        with_names(sp, &sp->methods[i], def_cb, i, c);
}
