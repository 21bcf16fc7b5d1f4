/*
 * main.c — protoc-gen-orpc: protoc's plugin protocol.
 *
 * protoc writes a serialized CodeGeneratorRequest to our stdin and reads a
 * CodeGeneratorResponse from our stdout.  For every file to generate we plan
 * (decode and validate options; plan.c) and then emit <name>.orpc.h and
 * <name>.orpc.c (emit_*.c).  Problems in the input go back to protoc as the
 * response's error, "file:line:column: reason", which protoc prints; the
 * plugin exits 0 then, as the protocol asks.  Only a request that does not
 * decode, or output that cannot be written, exits non-zero.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "plan.h"

/* Largest request read from protoc (descriptors of all files, with source
 * info): far beyond any real project, small enough to refuse garbage. */
#define MAX_REQUEST (256u * 1024u * 1024u)

static uint8_t *read_all(FILE *in, size_t *len)
{
    size_t cap = 64 * 1024, n = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_REQUEST) {
                free(buf);
                return NULL;
            }
            cap *= 2;
            uint8_t *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, in);
        n += r;
        if (r == 0) {
            if (ferror(in)) {
                free(buf);
                return NULL;
            }
            break;
        }
    }
    *len = n;
    return buf;
}

typedef struct outputs {
    Google__Protobuf__Compiler__CodeGeneratorResponse__File **files;
    size_t n, cap;
} outputs;

static void add_output(outputs *o, char *name, char *content)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 8;
        void *nf = realloc(o->files, o->cap * sizeof(*o->files));
        if (nf == NULL)
            abort();
        o->files = nf;
    }
    Google__Protobuf__Compiler__CodeGeneratorResponse__File *f =
        cg_xcalloc(1, sizeof(*f));
    google__protobuf__compiler__code_generator_response__file__init(f);
    f->name = name;
    f->content = content;
    o->files[o->n++] = f;
}

/* Generates one file; 0, or -1 with ctx->error set. */
static int generate(cg_ctx *ctx, const char *name, outputs *out)
{
    const cg_file *file = cg_find_file(ctx, name);
    cg_plan plan;
    cg_buf h, c;
    if (file == NULL) {
        ctx->error = cg_strdupf("%s: not among the files protoc sent", name);
        return -1;
    }
    if (cg_plan_file(ctx, file, &plan) != 0) {
        cg_plan_free(&plan);
        return -1;
    }
    cg_buf_init(&h);
    cg_buf_init(&c);
    cg_emit_header(&plan, &h);
    cg_emit_source(&plan, &c);
    char *hs = cg_buf_take(&h), *cs = cg_buf_take(&c);
    if (hs == NULL || cs == NULL) {
        free(hs);
        free(cs);
        ctx->error = cg_strdupf("%s: out of memory", name);
        cg_plan_free(&plan);
        return -1;
    }
    add_output(out, cg_strdupf("%s.orpc.h", plan.stem), hs);
    add_output(out, cg_strdupf("%s.orpc.c", plan.stem), cs);
    cg_plan_free(&plan);
    return 0;
}

int main(void)
{
    size_t len = 0;
    uint8_t *in = read_all(stdin, &len);
    if (in == NULL) {
        fprintf(stderr, "protoc-gen-orpc: cannot read the request from stdin "
                        "(run me through protoc --orpc_out=DIR)\n");
        return 1;
    }
    Google__Protobuf__Compiler__CodeGeneratorRequest *req =
        google__protobuf__compiler__code_generator_request__unpack(NULL, len,
                                                                   in);
    free(in);
    if (req == NULL) {
        fprintf(stderr, "protoc-gen-orpc: the request on stdin is not a "
                        "CodeGeneratorRequest (run me through protoc)\n");
        return 1;
    }

    cg_ctx ctx;
    outputs out = {0};
    Google__Protobuf__Compiler__CodeGeneratorResponse resp =
        GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
    resp.has_supported_features = 1;
    resp.supported_features = 1; /* FEATURE_PROTO3_OPTIONAL */

    if (cg_ctx_init(&ctx, req) == 0) {
        for (size_t i = 0; i < req->n_file_to_generate; i++)
            if (generate(&ctx, req->file_to_generate[i], &out) != 0)
                break;
    }
    if (ctx.error != NULL) {
        resp.error = ctx.error;
    } else {
        resp.n_file = out.n;
        resp.file = out.files;
    }

    size_t size =
        google__protobuf__compiler__code_generator_response__get_packed_size(
            &resp);
    uint8_t *buf = malloc(size ? size : 1);
    int rc = 0;
    if (buf == NULL) {
        rc = 1;
    } else {
        google__protobuf__compiler__code_generator_response__pack(&resp, buf);
        if (fwrite(buf, 1, size, stdout) != size || fflush(stdout) != 0)
            rc = 1;
    }
    if (rc != 0)
        fprintf(stderr, "protoc-gen-orpc: cannot write the response\n");
    free(buf);
    for (size_t i = 0; i < out.n; i++) {
        free(out.files[i]->name);
        free(out.files[i]->content);
        free(out.files[i]);
    }
    free(out.files);
    cg_ctx_free(&ctx);
    google__protobuf__compiler__code_generator_request__free_unpacked(req,
                                                                      NULL);
    return rc;
}
