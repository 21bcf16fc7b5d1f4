/*
 * emit_server.c — server skeletons.
 *
 * Per service: a struct of typed handler pointers (<Svc>_Handlers), the
 * typed stream handles handlers use (over the call's orpc_ctx), one static
 * dispatch trampoline per method converting the runtime's untyped call into
 * the typed handler call, and <svc>__server__register().  A NULL handler
 * answers UNIMPLEMENTED, so a service can be brought up method by method.
 */
#include <stdlib.h>

#include "emit.h"

static const char *server_handle_suffix(cg_kind k)
{
    switch (k) {
    case CG_SERVER_STREAMING:
        return "ServerWriter";
    case CG_CLIENT_STREAMING:
        return "ServerReader";
    case CG_BIDI_STREAMING:
        return "ServerStream";
    default:
        return "";
    }
}

static char *handle_name(const cg_service_plan *sp, const cg_method_plan *mp)
{
    return cg_strdupf("%s_%s_%s", sp->c_type, mp->m->name,
                      server_handle_suffix(mp->kind));
}

static void decl_handles(const cg_service_plan *sp, const cg_method_plan *mp,
                         cg_buf *h)
{
    char *hn = handle_name(sp, mp);
    char *fn = cg_strdupf("%s__server__%s", sp->c_lower, mp->lower);
    cg_buf_printf(h, "\n/** The server side of a call of %s. */\n", mp->path);
    cg_buf_printf(h, "typedef struct %s %s;\n", hn, hn);
    if (mp->kind == CG_SERVER_STREAMING || mp->kind == CG_BIDI_STREAMING) {
        cg_buf_puts(h, "/** Sends one response; see orpc_ctx_send(). */\n");
        cg_buf_printf(h, "int %s__send(%s *call, const %s *response);\n", fn,
                      hn, mp->out->c_type);
    }
    if (mp->kind == CG_CLIENT_STREAMING || mp->kind == CG_BIDI_STREAMING) {
        cg_buf_puts(h, "/**\n * Next request: 1 with |*request| set (owned "
                       "by the call, valid\n * until the next __recv or the "
                       "handler's return), 0 at the end of\n * the stream, or "
                       "a negative ORPC_E* code; see orpc_ctx_recv().\n */\n");
        cg_buf_printf(h, "int %s__recv(%s *call, const %s **request);\n", fn,
                      hn, mp->in->c_type);
    }
    free(hn);
    free(fn);
}

void cg_emit_server_decl(const cg_plan *plan, const cg_service_plan *sp,
                         cg_buf *h)
{
    cg_buf_printf(h, "\n/* ---- server of %s ---- */\n", sp->full_name);
    for (size_t i = 0; i < sp->n_methods; i++)
        if (sp->methods[i].kind != CG_UNARY)
            decl_handles(sp, &sp->methods[i], h);

    cg_buf_printf(h,
                  "\n/**\n * Handlers of %s, one per method; NULL answers\n"
                  " * UNIMPLEMENTED.  Each gets the call's context, its typed "
                  "request and\n * response or stream, and the |user_data| "
                  "given at registration, and\n * returns the call's status "
                  "(orpc takes ownership of it).  A response\n * is "
                  "initialised by orpc and lives in the call's arena "
                  "(orpc_ctx_arena()).\n */\n",
                  sp->full_name);
    cg_buf_printf(h, "typedef struct %s_Handlers {\n", sp->c_type);
    for (size_t i = 0; i < sp->n_methods; i++) {
        const cg_method_plan *mp = &sp->methods[i];
        char *hn = handle_name(sp, mp);
        if (i > 0)
            cg_buf_puts(h, "\n");
        cg_buf_doc(h, 4, cg_comment(plan->file, mp->loc, 4), mp->path);
        switch (mp->kind) {
        case CG_UNARY:
            cg_buf_printf(h,
                          "    orpc_status (*%s)(orpc_ctx *ctx,\n"
                          "        const %s *request, %s *response,\n"
                          "        void *user_data);\n",
                          mp->member, mp->in->c_type, mp->out->c_type);
            break;
        case CG_SERVER_STREAMING:
            cg_buf_printf(h,
                          "    orpc_status (*%s)(orpc_ctx *ctx,\n"
                          "        const %s *request, %s *call,\n"
                          "        void *user_data);\n",
                          mp->member, mp->in->c_type, hn);
            break;
        case CG_CLIENT_STREAMING:
            cg_buf_printf(h,
                          "    orpc_status (*%s)(orpc_ctx *ctx, %s *call,\n"
                          "        %s *response, void *user_data);\n",
                          mp->member, hn, mp->out->c_type);
            break;
        case CG_BIDI_STREAMING:
            cg_buf_printf(h,
                          "    orpc_status (*%s)(orpc_ctx *ctx, %s *call,\n"
                          "        void *user_data);\n",
                          mp->member, hn);
            break;
        }
        free(hn);
    }
    if (sp->n_methods == 0)
        cg_buf_puts(h, "    int unused_; /* the service has no methods */\n");
    cg_buf_printf(h, "} %s_Handlers;\n\n", sp->c_type);

    cg_buf_printf(h,
                  "/**\n * Registers %s on |server| with |handlers|.\n"
                  " * Returns 0 or a negative ORPC_E* code; see "
                  "orpc_server_add_service().\n"
                  " * Ownership: borrows |handlers| and |user_data| for the "
                  "server's life.\n */\n",
                  sp->full_name);
    cg_buf_printf(h,
                  "int %s__server__register(orpc_server *server,\n"
                  "    const %s_Handlers *handlers, void *user_data);\n\n",
                  sp->c_lower, sp->c_type);
    cg_buf_puts(h, "/** As __register, with per-service options (e.g. "
                   "non-blocking handlers). */\n");
    cg_buf_printf(h,
                  "int %s__server__register_with_opts(orpc_server *server,\n"
                  "    const %s_Handlers *handlers, void *user_data,\n"
                  "    const orpc_service_opts *opts);\n",
                  sp->c_lower, sp->c_type);
}

void cg_emit_server_def(const cg_plan *plan, const cg_service_plan *sp,
                        cg_buf *c)
{
    (void)plan;
    cg_buf_printf(c, "\n/* ---- server of %s ---- */\n", sp->full_name);
    for (size_t i = 0; i < sp->n_methods; i++) {
        const cg_method_plan *mp = &sp->methods[i];
        char *hn = handle_name(sp, mp);
        char *fn = cg_strdupf("%s__server__%s", sp->c_lower, mp->lower);
        if (mp->kind == CG_SERVER_STREAMING || mp->kind == CG_BIDI_STREAMING)
            cg_buf_printf(c,
                          "\nint %s__send(%s *call, const %s *response)\n{\n"
                          "    return orpc_ctx_send((orpc_ctx *)call,\n"
                          "        (const ProtobufCMessage *)response);\n}\n",
                          fn, hn, mp->out->c_type);
        if (mp->kind == CG_CLIENT_STREAMING || mp->kind == CG_BIDI_STREAMING)
            cg_buf_printf(
                c,
                "\nint %s__recv(%s *call, const %s **request)\n{\n"
                "    ProtobufCMessage *msg = NULL;\n"
                "    if (request == NULL)\n"
                "        return ORPC_EINVAL;\n"
                "    int rc = orpc_ctx_recv((orpc_ctx *)call, &msg);\n"
                "    *request = (const %s *)msg;\n"
                "    return rc;\n}\n",
                fn, hn, mp->in->c_type, mp->in->c_type);

        cg_buf_printf(c,
                      "\nstatic orpc_status %s__dispatch(orpc_ctx *ctx, "
                      "const void *impl,\n    void *user_data)\n{\n"
                      "    const %s_Handlers *h = impl;\n"
                      "    if (h->%s == NULL)\n"
                      "        return orpc_status_new(ORPC_UNIMPLEMENTED,\n"
                      "            \"%s is not implemented\");\n",
                      fn, sp->c_type, mp->member, mp->path);
        switch (mp->kind) {
        case CG_UNARY:
            cg_buf_printf(
                c,
                "    return h->%s(ctx, (const %s *)orpc_ctx_request(ctx),\n"
                "        (%s *)orpc_ctx_response(ctx), user_data);\n",
                mp->member, mp->in->c_type, mp->out->c_type);
            break;
        case CG_SERVER_STREAMING:
            cg_buf_printf(
                c,
                "    return h->%s(ctx, (const %s *)orpc_ctx_request(ctx),\n"
                "        (%s *)ctx, user_data);\n",
                mp->member, mp->in->c_type, hn);
            break;
        case CG_CLIENT_STREAMING:
            cg_buf_printf(c,
                          "    return h->%s(ctx, (%s *)ctx,\n"
                          "        (%s *)orpc_ctx_response(ctx), user_data);\n",
                          mp->member, hn, mp->out->c_type);
            break;
        case CG_BIDI_STREAMING:
            cg_buf_printf(c, "    return h->%s(ctx, (%s *)ctx, user_data);\n",
                          mp->member, hn);
            break;
        }
        cg_buf_puts(c, "}\n");
        free(hn);
        free(fn);
    }
    if (sp->n_methods > 0) {
        cg_buf_printf(c,
                      "\nstatic const orpc_method_handler "
                      "%s__server__dispatch[%zu] = {\n",
                      sp->c_lower, sp->n_methods);
        for (size_t i = 0; i < sp->n_methods; i++)
            cg_buf_printf(c, "    %s__server__%s__dispatch,\n", sp->c_lower,
                          sp->methods[i].lower);
        cg_buf_puts(c, "};\n");
    }
    char *table = sp->n_methods > 0
                      ? cg_strdupf("%s__server__dispatch", sp->c_lower)
                      : cg_strdup("NULL");
    cg_buf_printf(c,
                  "\nint %s__server__register_with_opts(orpc_server *server,\n"
                  "    const %s_Handlers *handlers, void *user_data,\n"
                  "    const orpc_service_opts *opts)\n{\n"
                  "    return orpc_server_add_service(server, &%s__orpc_desc,\n"
                  "        %s, handlers, user_data, opts);\n}\n",
                  sp->c_lower, sp->c_type, sp->c_lower, table);
    free(table);
    cg_buf_printf(c,
                  "\nint %s__server__register(orpc_server *server,\n"
                  "    const %s_Handlers *handlers, void *user_data)\n{\n"
                  "    return %s__server__register_with_opts(server, handlers, "
                  "user_data,\n        NULL);\n}\n",
                  sp->c_lower, sp->c_type, sp->c_lower);
}
