/*
 * reflection.c — gRPC server reflection (grpc.reflection.v1 and v1alpha
 * ServerReflection), built into every server unless
 * orpc_server_opts.disable_reflection: clients such as grpcurl list the
 * services and fetch their .proto descriptors from the server itself.
 *
 * Design notes:
 * - The descriptors are those protoc-gen-orpc embeds in every generated
 *   file (orpc_file_desc.descriptor, serialized FileDescriptorProtos) and
 *   each service's table points at its file (orpc_service_desc.file).  At
 *   orpc_server_start() the files of every registered service and,
 *   transitively, their imports are gathered once into a flat list; the
 *   services cannot change after the start, so the list is read without a
 *   lock.  A table generated before orpc 0.2 has no file or no descriptor:
 *   its service is listed, its file cannot be fetched.
 * - Both versions are registered non-blocking (handlers inline on the IO
 *   thread, no worker pool needed, as health.c).  A stream's state lives in
 *   its call's arena, allocated once: which files it has already sent
 *   (each file goes once per stream, as gRPC's servers do; the one asked
 *   for always goes) and the one answer that is waiting for room to send.
 *   The handler answers requests as long as they are there and it can
 *   send; otherwise it defers until the runtime runs it again.
 * - v1 and v1alpha are the same protocol under two package names; their
 *   messages are distinct C types, so the code that reads a request and
 *   fills a response is stamped out for each by a macro, and everything
 *   else works on the neutral rq/answer below.
 * - Bounds: a symbol or file name is at most REFL_MAX_NAME bytes
 *   (INVALID_ARGUMENT otherwise); a response carries at most REFL_MAX_FILES
 *   files (the rest of the dependencies, not marked sent, come with later
 *   answers, or by name).  Extensions are not indexed: both extension
 *   queries answer NOT_FOUND.
 */
#include "server_internal.h"

#include <string.h>

#include <orpc/error.h>

#include "common/mem.h"
#include "grpc/reflection/v1/reflection.orpc.h"
#include "grpc/reflection/v1alpha/reflection.orpc.h"

#define REFL_MAX_NAME 1024
#define REFL_MAX_HOST 255
#define REFL_MAX_FILES 128

/* gRPC status codes carried in error_response. */
enum { REFL_NOT_FOUND = 5, REFL_INVALID_ARGUMENT = 3 };

struct orpc__reflection {
    const orpc_file_desc **files; /* every service's file, transitively */
    size_t n_files;
    int registered;
};
typedef struct orpc__reflection orpc__reflection;

/* What a request asked, whichever version it came in. */
enum { RQ_NONE, RQ_FILENAME, RQ_SYMBOL, RQ_EXTENSION, RQ_EXT_NUMBERS, RQ_LIST };

enum { ANS_LIST, ANS_FILES, ANS_EXT_NUMBERS, ANS_ERROR };

/* One stream's state (its call's arena). */
typedef struct rstream {
    orpc_server *srv;
    unsigned char *sent;       /* [n_files]: already sent on this stream */
    unsigned char *queued;     /* [n_files]: scratch of one answer */
    size_t *queue;             /* [n_files] */
    ProtobufCBinaryData *bins; /* [REFL_MAX_FILES] */
    size_t n_bins;
    void *svc_items; /* ServiceResponse[n_svcs] of the stream's version */
    void **svc_ptrs;
    /* the request being answered (copied: it is the call's until recv) */
    int pending; /* an answer waits for room to send */
    int rq;
    char host[REFL_MAX_HOST + 1];
    char name[REFL_MAX_NAME + 1];
    int32_t ext_number;
    /* the answer */
    int ans;
    int32_t err_code;
    char err_msg[REFL_MAX_NAME + 64];
} rstream;

/* ---- the file list (orpc_server_start()) ------------------------------- */

static ssize_t file_index(const orpc__reflection *r, const orpc_file_desc *f)
{
    for (size_t i = 0; i < r->n_files; i++)
        if (r->files[i] == f)
            return (ssize_t)i;
    return -1;
}

static int add_file(orpc_server *srv, orpc__reflection *r, size_t *cap,
                    const orpc_file_desc *f)
{
    if (f == NULL || file_index(r, f) >= 0)
        return 0;
    if (r->n_files == *cap) {
        size_t n = *cap ? 2 * *cap : 16;
        const orpc_file_desc **nf = orpc__mem_grow(
            &srv->mem, r->files, *cap * sizeof(*nf), n * sizeof(*nf));
        if (nf == NULL)
            return ORPC_ENOMEM;
        r->files = nf;
        *cap = n;
    }
    r->files[r->n_files++] = f;
    /* imports: the list itself is the work list, so no recursion */
    return 0;
}

static int gather(orpc_server *srv, orpc__reflection *r)
{
    size_t cap = 0;
    for (size_t i = 0; i < srv->n_svcs; i++)
        if (add_file(srv, r, &cap, srv->svcs[i].desc->file) != 0)
            return ORPC_ENOMEM;
    for (size_t i = 0; i < r->n_files; i++) { /* grows as it goes */
        const orpc_file_desc *f = r->files[i];
        for (size_t j = 0; j < f->n_dependencies; j++)
            if (add_file(srv, r, &cap, f->dependencies[j]) != 0)
                return ORPC_ENOMEM;
    }
    return 0;
}

/* ---- lookups ---------------------------------------------------------- */

/* |sym| is |scope| "." |name|. */
static int dotted_eq(const char *sym, const char *scope, size_t scope_len,
                     const char *name)
{
    return strncmp(sym, scope, scope_len) == 0 && sym[scope_len] == '.' &&
           strcmp(sym + scope_len + 1, name) == 0;
}

static int file_has_symbol(const orpc_file_desc *f, const char *sym)
{
    for (size_t i = 0; i < f->n_services; i++) {
        const orpc_service_desc *s = f->services[i];
        if (strcmp(s->full_name, sym) == 0)
            return 1;
        size_t sl = strlen(s->full_name);
        for (size_t j = 0; j < s->n_methods; j++) {
            const orpc_method_desc *m = orpc_service_method(s, j);
            if (m != NULL && dotted_eq(sym, s->full_name, sl, m->name))
                return 1;
        }
    }
    for (size_t i = 0; i < f->n_messages; i++) {
        const orpc_message_info *m = f->messages[i];
        if (strcmp(m->full_name, sym) == 0)
            return 1;
        size_t ml = strlen(m->full_name);
        const ProtobufCMessageDescriptor *d = m->descriptor;
        for (unsigned j = 0; d != NULL && j < d->n_fields; j++)
            if (dotted_eq(sym, m->full_name, ml, d->fields[j].name))
                return 1;
    }
    for (size_t i = 0; i < f->n_enums; i++) {
        const orpc_enum_info *e = f->enums[i];
        if (strcmp(e->full_name, sym) == 0)
            return 1;
        /* values are named in the enum's enclosing scope, as in C++ */
        const char *dot = strrchr(e->full_name, '.');
        for (size_t j = 0; j < e->n_values; j++) {
            if (dot == NULL) {
                if (strcmp(sym, e->values[j].name) == 0)
                    return 1;
            } else if (dotted_eq(sym, e->full_name,
                                 (size_t)(dot - e->full_name),
                                 e->values[j].name)) {
                return 1;
            }
        }
    }
    return 0;
}

static void answer_error(rstream *s, int32_t code, const char *what)
{
    s->ans = ANS_ERROR;
    s->err_code = code;
    snprintf(s->err_msg, sizeof(s->err_msg), "%s", what);
}

/* The file |fi| and its imports, breadth first, each not yet sent. */
static void answer_files(rstream *s, const orpc__reflection *r, size_t fi)
{
    s->ans = ANS_FILES;
    s->n_bins = 0;
    memset(s->queued, 0, r->n_files);
    size_t head = 0, tail = 0;
    s->queue[tail++] = fi;
    s->queued[fi] = 1;
    while (head < tail && s->n_bins < REFL_MAX_FILES) {
        const orpc_file_desc *f = r->files[s->queue[head++]];
        size_t idx = s->queue[head - 1];
        if ((s->n_bins == 0 || !s->sent[idx]) && f->descriptor != NULL) {
            s->bins[s->n_bins].data = (uint8_t *)f->descriptor;
            s->bins[s->n_bins].len = f->descriptor_size;
            s->n_bins++;
            s->sent[idx] = 1;
        }
        for (size_t j = 0; j < f->n_dependencies; j++) {
            ssize_t d = file_index(r, f->dependencies[j]);
            if (d >= 0 && !s->queued[d]) {
                s->queued[d] = 1;
                s->queue[tail++] = (size_t)d;
            }
        }
    }
}

static void answer(rstream *s)
{
    const orpc__reflection *r = s->srv->reflection;
    switch (s->rq) {
    case RQ_LIST:
        s->ans = ANS_LIST;
        return;
    case RQ_FILENAME:
    case RQ_SYMBOL:
        for (size_t i = 0; i < r->n_files; i++) {
            const orpc_file_desc *f = r->files[i];
            if (f->descriptor == NULL)
                continue;
            if (s->rq == RQ_FILENAME ? strcmp(f->name, s->name) == 0
                                     : file_has_symbol(f, s->name)) {
                answer_files(s, r, i);
                return;
            }
        }
        answer_error(s, REFL_NOT_FOUND,
                     s->rq == RQ_FILENAME ? "file not found"
                                          : "symbol not found");
        return;
    case RQ_EXT_NUMBERS:
        /* A known message: its extension numbers, none (orpc indexes no
         * extensions), as gRPC's servers answer for a type without any. */
        for (size_t i = 0; i < r->n_files; i++)
            for (size_t j = 0; j < r->files[i]->n_messages; j++)
                if (strcmp(r->files[i]->messages[j]->full_name, s->name) == 0) {
                    s->ans = ANS_EXT_NUMBERS;
                    return;
                }
        answer_error(s, REFL_NOT_FOUND, "type not found");
        return;
    case RQ_EXTENSION:
        answer_error(s, REFL_NOT_FOUND, "extensions are not supported");
        return;
    default:
        answer_error(s, REFL_INVALID_ARGUMENT, "no request in the message");
        return;
    }
}

/* Copies |str| into the request; 0 or -1 (too long: answered already). */
static int take_name(rstream *s, const char *str)
{
    size_t n = str ? strlen(str) : 0;
    if (n > REFL_MAX_NAME) {
        s->name[0] = '\0'; /* echoed empty, not the previous request's */
        answer_error(s, REFL_INVALID_ARGUMENT, "name longer than 1024 bytes");
        return -1;
    }
    memcpy(s->name, str ? str : "", n + 1);
    return 0;
}

static void take_host(rstream *s, const char *host)
{
    size_t n = host ? strnlen(host, REFL_MAX_HOST) : 0;
    memcpy(s->host, host ? host : "", n);
    s->host[n] = '\0';
}

static rstream *stream_state(orpc_ctx *ctx, orpc_server *srv, size_t item)
{
    rstream *s = ctx->rt_state;
    if (s != NULL)
        return s;
    const orpc__reflection *r = srv->reflection;
    orpc_arena *a = orpc_ctx_arena(ctx);
    size_t nf = r->n_files ? r->n_files : 1, ns = srv->n_svcs ? srv->n_svcs : 1;
    s = orpc_arena_alloc(a, sizeof(*s));
    if (s == NULL)
        return NULL;
    memset(s, 0, sizeof(*s));
    s->srv = srv;
    s->sent = orpc_arena_alloc(a, nf);
    s->queued = orpc_arena_alloc(a, nf);
    s->queue = orpc_arena_alloc(a, nf * sizeof(*s->queue));
    s->bins = orpc_arena_alloc(a, REFL_MAX_FILES * sizeof(*s->bins));
    s->svc_items = orpc_arena_alloc(a, ns * item);
    s->svc_ptrs = orpc_arena_alloc(a, ns * sizeof(*s->svc_ptrs));
    if (!s->sent || !s->queued || !s->queue || !s->bins || !s->svc_items ||
        !s->svc_ptrs)
        return NULL;
    memset(s->sent, 0, nf);
    ctx->rt_state = s;
    return s;
}

static orpc_status io_status(int rc, const char *what)
{
    return orpc_status_errorf(
        rc == ORPC_ECANCELLED ? ORPC_CANCELLED : ORPC_INTERNAL,
        "server reflection: %s: %s", what, orpc_strerror(rc));
}

/*
 * The handler of one version: V is the C type prefix (Grpc__Reflection__V1),
 * L the function prefix (grpc__reflection__v1), U the macro prefix
 * (GRPC__REFLECTION__V1).
 */
#define REFL_VERSION(V, L, U)                                                                     \
    static void L##_take(rstream *s, const V##__ServerReflectionRequest *q)                       \
    {                                                                                             \
        take_host(s, q->host);                                                                    \
        switch (q->message_request_case) {                                                        \
        case U##__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:                    \
            s->rq = RQ_FILENAME;                                                                  \
            if (take_name(s, q->file_by_filename) != 0)                                           \
                return;                                                                           \
            break;                                                                                \
        case U##__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:              \
            s->rq = RQ_SYMBOL;                                                                    \
            if (take_name(s, q->file_containing_symbol) != 0)                                     \
                return;                                                                           \
            break;                                                                                \
        case U##__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:           \
            s->rq = RQ_EXTENSION;                                                                 \
            s->ext_number =                                                                       \
                q->file_containing_extension                                                      \
                    ? q->file_containing_extension->extension_number                              \
                    : 0;                                                                          \
            if (take_name(s,                                                                      \
                          q->file_containing_extension                                            \
                              ? q->file_containing_extension->containing_type                     \
                              : "") != 0)                                                         \
                return;                                                                           \
            break;                                                                                \
        case U##__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:       \
            s->rq = RQ_EXT_NUMBERS;                                                               \
            if (take_name(s, q->all_extension_numbers_of_type) != 0)                              \
                return;                                                                           \
            break;                                                                                \
        case U##__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:                       \
            s->rq = RQ_LIST;                                                                      \
            if (take_name(s, q->list_services) != 0)                                              \
                return;                                                                           \
            break;                                                                                \
        default:                                                                                  \
            s->rq = RQ_NONE;                                                                      \
            s->name[0] = '\0';                                                                    \
            break;                                                                                \
        }                                                                                         \
        answer(s);                                                                                \
    }                                                                                             \
                                                                                                  \
    static int L##_send(                                                                          \
        rstream *s,                                                                               \
        V##__ServerReflection_ServerReflectionInfo_ServerStream *call)                            \
    {                                                                                             \
        V##__ServerReflectionRequest q = U##__SERVER_REFLECTION_REQUEST__INIT;                    \
        V##__ExtensionRequest ext = U##__EXTENSION_REQUEST__INIT;                                 \
        V##__ServerReflectionResponse p =                                                         \
            U##__SERVER_REFLECTION_RESPONSE__INIT;                                                \
        V##__FileDescriptorResponse fd = U##__FILE_DESCRIPTOR_RESPONSE__INIT;                     \
        V##__ListServiceResponse ls = U##__LIST_SERVICE_RESPONSE__INIT;                           \
        V##__ErrorResponse er = U##__ERROR_RESPONSE__INIT;                                        \
        V##__ExtensionNumberResponse en =                                                         \
            U##__EXTENSION_NUMBER_RESPONSE__INIT;                                                 \
        q.host = s->host;                                                                         \
        switch (s->rq) {                                                                          \
        case RQ_FILENAME:                                                                         \
            q.message_request_case =                                                              \
                U##__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;                 \
            q.file_by_filename = s->name;                                                         \
            break;                                                                                \
        case RQ_SYMBOL:                                                                           \
            q.message_request_case =                                                              \
                U##__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;           \
            q.file_containing_symbol = s->name;                                                   \
            break;                                                                                \
        case RQ_EXTENSION:                                                                        \
            q.message_request_case =                                                              \
                U##__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION;        \
            ext.containing_type = s->name;                                                        \
            ext.extension_number = s->ext_number;                                                 \
            q.file_containing_extension = &ext;                                                   \
            break;                                                                                \
        case RQ_EXT_NUMBERS:                                                                      \
            q.message_request_case =                                                              \
                U##__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE;    \
            q.all_extension_numbers_of_type = s->name;                                            \
            break;                                                                                \
        case RQ_LIST:                                                                             \
            q.message_request_case =                                                              \
                U##__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;                    \
            q.list_services = s->name;                                                            \
            break;                                                                                \
        default:                                                                                  \
            break;                                                                                \
        }                                                                                         \
        p.valid_host = s->host;                                                                   \
        p.original_request = &q;                                                                  \
        if (s->ans == ANS_LIST) {                                                                 \
            V##__ServiceResponse *items = s->svc_items;                                           \
            orpc_server *srv = s->srv;                                                            \
            for (size_t i = 0; i < srv->n_svcs; i++) {                                            \
                V##__ServiceResponse it = U##__SERVICE_RESPONSE__INIT;                            \
                it.name = (char *)srv->svcs[i].desc->full_name;                                   \
                items[i] = it;                                                                    \
                s->svc_ptrs[i] = &items[i];                                                       \
            }                                                                                     \
            ls.n_service = srv->n_svcs;                                                           \
            ls.service = (V##__ServiceResponse **)s->svc_ptrs;                                    \
            p.message_response_case =                                                             \
                U##__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;         \
            p.list_services_response = &ls;                                                       \
        } else if (s->ans == ANS_FILES) {                                                         \
            fd.n_file_descriptor_proto = s->n_bins;                                               \
            fd.file_descriptor_proto = s->bins;                                                   \
            p.message_response_case =                                                             \
                U##__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;       \
            p.file_descriptor_response = &fd;                                                     \
        } else if (s->ans == ANS_EXT_NUMBERS) {                                                   \
            en.base_type_name = s->name;                                                          \
            p.message_response_case =                                                             \
                U##__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE; \
            p.all_extension_numbers_response = &en;                                               \
        } else {                                                                                  \
            er.error_code = s->err_code;                                                          \
            er.error_message = s->err_msg;                                                        \
            p.message_response_case =                                                             \
                U##__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;                 \
            p.error_response = &er;                                                               \
        }                                                                                         \
        return L##__server_reflection__server__server_reflection_info__send(                      \
            call, &p);                                                                            \
    }                                                                                             \
                                                                                                  \
    static orpc_status L##_info(                                                                  \
        orpc_ctx *ctx,                                                                            \
        V##__ServerReflection_ServerReflectionInfo_ServerStream *call,                            \
        void *user_data)                                                                          \
    {                                                                                             \
        rstream *s =                                                                              \
            stream_state(ctx, user_data, sizeof(V##__ServiceResponse));                           \
        if (s == NULL)                                                                            \
            return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");                     \
        for (;;) {                                                                                \
            if (orpc_ctx_is_cancelled(ctx))                                                       \
                return orpc_status_new(ORPC_CANCELLED, "cancelled");                              \
            if (s->pending) {                                                                     \
                int rc = L##_send(s, call);                                                       \
                if (rc == ORPC_EAGAIN) {                                                          \
                    orpc_ctx_defer(ctx);                                                          \
                    return ORPC_STATUS_OK;                                                        \
                }                                                                                 \
                if (rc != 0)                                                                      \
                    return io_status(rc, "send");                                                 \
                s->pending = 0;                                                                   \
            }                                                                                     \
            const V##__ServerReflectionRequest *q = NULL;                                         \
            int rc =                                                                              \
                L##__server_reflection__server__server_reflection_info__recv(                     \
                    call, &q);                                                                    \
            if (rc == ORPC_EAGAIN) {                                                              \
                orpc_ctx_defer(ctx);                                                              \
                return ORPC_STATUS_OK;                                                            \
            }                                                                                     \
            if (rc == 0)                                                                          \
                return ORPC_STATUS_OK;                                                            \
            if (rc < 0)                                                                           \
                return io_status(rc, "receive");                                                  \
            L##_take(s, q);                                                                       \
            s->pending = 1;                                                                       \
        }                                                                                         \
    }                                                                                             \
                                                                                                  \
    static const V##__ServerReflection_Handlers L##_handlers = {                                  \
        .server_reflection_info = L##_info,                                                       \
    };

/* clang-format off */
REFL_VERSION(Grpc__Reflection__V1, grpc__reflection__v1, GRPC__REFLECTION__V1)
REFL_VERSION(Grpc__Reflection__V1alpha, grpc__reflection__v1alpha,
             GRPC__REFLECTION__V1ALPHA)
/* clang-format on */

/* ---- the server's side ------------------------------------------------ */

static int registered(const orpc_server *srv, const char *full_name)
{
    for (size_t i = 0; i < srv->n_svcs; i++)
        if (strcmp(srv->svcs[i].desc->full_name, full_name) == 0)
            return 1;
    return 0;
}

int orpc__reflection_start(orpc_server *srv)
{
    if (srv->opts.disable_reflection)
        return 0;
    orpc__reflection *r = srv->reflection;
    if (r == NULL) {
        r = orpc__mem_calloc(&srv->mem, 1, sizeof(*r));
        if (r == NULL)
            return ORPC_ENOMEM;
        srv->reflection = r;
    }
    if (r->registered)
        return 0;
    orpc_service_opts so = {.nonblocking = 1};
    int rc = 0;
    /* a version the application registered itself stays its own */
    if (!registered(
            srv, grpc__reflection__v1__server_reflection__orpc_desc.full_name))
        rc =
            grpc__reflection__v1__server_reflection__server__register_with_opts(
                srv, &grpc__reflection__v1_handlers, srv, &so);
    if (rc == 0 &&
        !registered(
            srv,
            grpc__reflection__v1alpha__server_reflection__orpc_desc.full_name))
        rc =
            grpc__reflection__v1alpha__server_reflection__server__register_with_opts(
                srv, &grpc__reflection__v1alpha_handlers, srv, &so);
    if (rc != 0)
        return rc;
    /* after registering: the reflection services' own files are listed */
    r->n_files = 0;
    rc = gather(srv, r);
    if (rc != 0)
        return rc;
    r->registered = 1;
    return 0;
}

void orpc__reflection_free(orpc_server *srv)
{
    orpc__reflection *r = srv->reflection;
    if (r == NULL)
        return;
    orpc__mem_free(&srv->mem, r->files);
    orpc__mem_free(&srv->mem, r);
    srv->reflection = NULL;
}
