/*
 * reflect.c — the `orpc` command's server reflection client (reflect.h):
 * what `orpc list --target` and `orpc call --target` use to learn the
 * methods of a server whose tables are not compiled into the command.
 *
 * Design notes:
 * - One bidirectional ServerReflectionInfo stream per client, opened on the
 *   first question; each question is one request and one answer, in turn.
 * - v1 first.  When the stream ends UNIMPLEMENTED before the first answer,
 *   the same question goes again under v1alpha.  The two versions are one
 *   protocol under two package names, with the same messages field for
 *   field, so the v1alpha method here is v1's descriptor with v1alpha's
 *   path: the v1 C types serve both.
 * - Fetching a symbol asks for the file that declares it, then by name for
 *   every import the pool does not hold yet, until the pool is closed under
 *   imports or a bound is hit (the pool's own, and REFL_MAX_QUESTIONS).  An
 *   import the server does not have (NOT_FOUND) is skipped: a type from it
 *   is reported missing only if a message needs it.
 */
#include "reflect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/reflection/v1/reflection.orpc.h"

#define REFL_MAX_QUESTIONS 4096

typedef Grpc__Reflection__V1__ServerReflectionRequest Req;
typedef Grpc__Reflection__V1__ServerReflectionResponse Resp;
#define RQ(x)                                                                  \
    GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##x
#define RS(x)                                                                  \
    GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_##x

struct orpc__refl {
    orpc_channel *ch;
    long timeout_ms;
    orpc_method_desc alpha; /* v1's method under v1alpha's path */
    const orpc_method_desc *method;
    orpc_call *call;
    int answered; /* the current version answered once: no fallback */
    int questions;
    char err[512];
};

int orpc__refl_new(orpc__refl **out, orpc_channel *ch, long timeout_ms)
{
    orpc__refl *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -1;
    r->ch = ch;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    r->method =
        grpc__reflection__v1__server_reflection__method__server_reflection_info;
    r->alpha = *r->method;
    r->alpha.path =
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
    *out = r;
    return 0;
}

static orpc_status end_stream(orpc__refl *r)
{
    orpc_call_close_send(r->call);
    ProtobufCMessage *m;
    while (orpc_call_recv(r->call, &m) == 1)
        protobuf_c_message_free_unpacked(m, NULL);
    orpc_status st = orpc_call_finish(r->call);
    r->call = NULL;
    return st;
}

void orpc__refl_free(orpc__refl *r)
{
    if (r == NULL)
        return;
    if (r->call) {
        orpc_status st = end_stream(r);
        orpc_status_clear(&st);
    }
    free(r);
}

const char *orpc__refl_error(const orpc__refl *r)
{
    return r->err;
}

/* Sends |q| and waits for the answer (|*out|, freed by the caller).  A
 * server error_response is returned as its code. */
static int ask(orpc__refl *r, Req *q, Resp **out)
{
    *out = NULL;
    if (++r->questions > REFL_MAX_QUESTIONS) {
        snprintf(r->err, sizeof r->err,
                 "server reflection: more than %d questions",
                 REFL_MAX_QUESTIONS);
        return ORPC_RESOURCE_EXHAUSTED;
    }
    for (;;) {
        int rc = 0;
        if (r->call == NULL) {
            orpc_call_opts o = {.timeout_ms = r->timeout_ms};
            rc = orpc_channel_call_start(&r->call, r->ch, r->method, NULL, &o);
            if (rc != 0) {
                snprintf(r->err, sizeof r->err,
                         "server reflection: cannot start the stream: %s",
                         orpc_strerror(rc));
                return ORPC_UNAVAILABLE;
            }
        }
        ProtobufCMessage *m = NULL;
        rc = orpc_call_send(r->call, &q->base);
        if (rc == 0)
            rc = orpc_call_recv(r->call, &m);
        if (rc == 1) {
            r->answered = 1;
            Resp *a = (Resp *)m;
            if (a->message_response_case == RS(ERROR_RESPONSE)) {
                int code = a->error_response ? a->error_response->error_code
                                             : ORPC_UNKNOWN;
                snprintf(r->err, sizeof r->err, "server reflection: %s",
                         a->error_response && a->error_response->error_message
                             ? a->error_response->error_message
                             : "");
                protobuf_c_message_free_unpacked(m, NULL);
                return code ? code : ORPC_UNKNOWN;
            }
            *out = a;
            return 0;
        }
        orpc_status st = end_stream(r);
        int code = st.code != ORPC_OK ? (int)st.code : ORPC_INTERNAL;
        snprintf(r->err, sizeof r->err, "server reflection: %s",
                 st.message ? st.message : "the stream ended unanswered");
        orpc_status_clear(&st);
        if (code == ORPC_UNIMPLEMENTED && !r->answered &&
            r->method != &r->alpha) {
            r->method = &r->alpha; /* v1 is not there: try v1alpha */
            continue;
        }
        return code;
    }
}

int orpc__refl_list(orpc__refl *r, char ***names, size_t *n)
{
    Req q = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    q.message_request_case = RQ(LIST_SERVICES);
    q.list_services = "*";
    Resp *a;
    int code = ask(r, &q, &a);
    if (code != 0)
        return code;
    if (a->message_response_case != RS(LIST_SERVICES_RESPONSE) ||
        a->list_services_response == NULL) {
        snprintf(r->err, sizeof r->err,
                 "server reflection: the answer to list_services is not a "
                 "service list");
        protobuf_c_message_free_unpacked(&a->base, NULL);
        return ORPC_INTERNAL;
    }
    /* one block: the pointers, then the strings */
    size_t count = a->list_services_response->n_service, bytes = 0;
    for (size_t i = 0; i < count; i++) {
        const char *s = a->list_services_response->service[i]->name;
        bytes += strlen(s ? s : "") + 1;
    }
    char **out = malloc(count * sizeof(char *) + bytes + 1);
    if (out == NULL) {
        protobuf_c_message_free_unpacked(&a->base, NULL);
        snprintf(r->err, sizeof r->err, "out of memory");
        return ORPC_RESOURCE_EXHAUSTED;
    }
    char *at = (char *)(out + count);
    for (size_t i = 0; i < count; i++) {
        const char *s = a->list_services_response->service[i]->name;
        size_t len = strlen(s ? s : "");
        memcpy(at, s ? s : "", len + 1);
        out[i] = at;
        at += len + 1;
    }
    protobuf_c_message_free_unpacked(&a->base, NULL);
    *names = out;
    *n = count;
    return 0;
}

/* Adds the files of an answer to |pool|. */
static int add_files(orpc__refl *r, Resp *a, orpc__dpool *pool)
{
    int code = 0;
    char why[256];
    if (a->message_response_case != RS(FILE_DESCRIPTOR_RESPONSE) ||
        a->file_descriptor_response == NULL) {
        snprintf(r->err, sizeof r->err,
                 "server reflection: the answer is not a file descriptor "
                 "response");
        code = ORPC_INTERNAL;
    }
    for (size_t i = 0;
         code == 0 && i < a->file_descriptor_response->n_file_descriptor_proto;
         i++) {
        ProtobufCBinaryData *b =
            &a->file_descriptor_response->file_descriptor_proto[i];
        if (orpc__dpool_add_file(pool, b->data, b->len, why, sizeof why) != 0) {
            snprintf(r->err, sizeof r->err, "server reflection: %s", why);
            code =
                strstr(why, "limit") ? ORPC_RESOURCE_EXHAUSTED : ORPC_INTERNAL;
        }
    }
    protobuf_c_message_free_unpacked(&a->base, NULL);
    return code;
}

int orpc__refl_fetch(orpc__refl *r, const char *symbol, orpc__dpool *pool)
{
    Req q = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    q.message_request_case = RQ(FILE_CONTAINING_SYMBOL);
    q.file_containing_symbol = (char *)symbol;
    Resp *a;
    int code = ask(r, &q, &a);
    if (code == 0)
        code = add_files(r, a, pool);
    /* imports, transitively: files added while walking are walked too */
    for (size_t i = 0; code == 0 && i < orpc__dpool_n_files(pool); i++) {
        const Google__Protobuf__FileDescriptorProto *f =
            orpc__dpool_file(pool, i);
        for (size_t d = 0; code == 0 && d < f->n_dependency; d++) {
            if (orpc__dpool_has_file(pool, f->dependency[d]))
                continue;
            q.message_request_case = RQ(FILE_BY_FILENAME);
            q.file_by_filename = f->dependency[d];
            code = ask(r, &q, &a);
            if (code == ORPC_NOT_FOUND)
                code = 0; /* missing only matters if a type needs it */
            else if (code == 0)
                code = add_files(r, a, pool);
            f = orpc__dpool_file(pool, i); /* the pool may have grown */
        }
    }
    return code;
}
