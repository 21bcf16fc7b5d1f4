/*
 * rpc_reflection_test.c — the built-in server reflection
 * (grpc.reflection.v1 and v1alpha ServerReflection) on loopback, driven
 * with the generated client stubs: list_services; file_containing_symbol
 * for a service, a method, a message, a field and an enum value;
 * file_by_filename; each file sent once per stream with its imports;
 * NOT_FOUND for unknown names and extension queries with the stream going
 * on; over-long names; v1alpha answering the same; disable_reflection.
 *
 * Every wait is bounded: calls carry deadlines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <orpc/orpc.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.orpc.h"
#include "grpc/reflection/v1alpha/reflection.orpc.h"
#include "grpc/testing/test.orpc.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest Req;
typedef Grpc__Reflection__V1__ServerReflectionResponse Resp;
typedef Grpc__Reflection__V1__ServerReflection_ServerReflectionInfo_Stream
    Stream;

#define CALL_MS 10000 /* a call's deadline: only a hang reaches it */

static orpc_status empty_call(orpc_ctx *ctx, const Grpc__Testing__Empty *req,
                              Grpc__Testing__Empty *resp, void *ud)
{
    (void)ctx;
    (void)req;
    (void)resp;
    (void)ud;
    return ORPC_STATUS_OK;
}

static const Grpc__Testing__TestService_Handlers test_handlers = {
    .empty_call = empty_call,
};

typedef struct fx {
    orpc_server *srv;
    int port;
    orpc_channel *ch;
    orpc_client *cl;       /* v1 */
    orpc_client *cl_alpha; /* v1alpha */
} fx;

static void fx_open(fx *f, orpc_server_opts o)
{
    memset(f, 0, sizeof(*f));
    o.plaintext = 1;
    assert_int_equal(orpc_server_new(&f->srv, &o, NULL, NULL), 0);
    assert_int_equal(grpc__testing__test_service__server__register(
                         f->srv, &test_handlers, NULL),
                     0);
    assert_int_equal(orpc_server_listen(f->srv, "127.0.0.1:0", &f->port, NULL),
                     0);
    assert_int_equal(orpc_server_start(f->srv), 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", f->port);
    orpc_channel_opts co = {.plaintext = 1};
    assert_int_equal(orpc_channel_new(&f->ch, target, &co, NULL, NULL), 0);
    assert_int_equal(
        orpc_client_new(&f->cl,
                        &grpc__reflection__v1__server_reflection__orpc_desc,
                        f->ch, NULL, NULL),
        0);
    assert_int_equal(
        orpc_client_new(
            &f->cl_alpha,
            &grpc__reflection__v1alpha__server_reflection__orpc_desc, f->ch,
            NULL, NULL),
        0);
}

static void fx_close(fx *f)
{
    orpc_client_free(f->cl);
    orpc_client_free(f->cl_alpha);
    orpc_channel_unref(f->ch);
    orpc_server_shutdown(f->srv, 2000);
    orpc_server_wait(f->srv);
    orpc_server_free(f->srv);
}

static Stream *open_stream(fx *f)
{
    Stream *s = NULL;
    orpc_call_opts o = {.timeout_ms = CALL_MS};
    assert_int_equal(
        grpc__reflection__v1__server_reflection__client__server_reflection_info(
            f->cl, &o, &s),
        0);
    return s;
}

/* Ends |s| (close_send, drain, finish): the call's code. */
static orpc_code close_stream(Stream *s)
{
    assert_int_equal(
        grpc__reflection__v1__server_reflection__client__server_reflection_info__close_send(
            s),
        0);
    Resp *r = NULL;
    int rc;
    while (
        (rc =
             grpc__reflection__v1__server_reflection__client__server_reflection_info__recv(
                 s, &r)) == 1)
        grpc__reflection__v1__server_reflection_response__free_unpacked(r,
                                                                        NULL);
    orpc_status st =
        grpc__reflection__v1__server_reflection__client__server_reflection_info__finish(
            s);
    orpc_code code = st.code;
    orpc_status_clear(&st);
    return code;
}

/* Sends |q| and returns the answer (free it), asserting one came. */
static Resp *ask(Stream *s, Req *q)
{
    assert_int_equal(
        grpc__reflection__v1__server_reflection__client__server_reflection_info__send(
            s, q),
        0);
    Resp *r = NULL;
    assert_int_equal(
        grpc__reflection__v1__server_reflection__client__server_reflection_info__recv(
            s, &r),
        1);
    return r;
}

static Resp *ask_symbol(Stream *s, const char *sym)
{
    Req q = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    q.host = "localhost";
    q.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
    q.file_containing_symbol = (char *)sym;
    Resp *r = ask(s, &q);
    assert_string_equal(r->valid_host, "localhost");
    assert_non_null(r->original_request);
    assert_string_equal(r->original_request->file_containing_symbol, sym);
    return r;
}

static Resp *ask_file(Stream *s, const char *name)
{
    Req q = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    q.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
    q.file_by_filename = (char *)name;
    return ask(s, &q);
}

static void free_resp(Resp *r)
{
    grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);
}

/* The names of the files in |r|, a file_descriptor_response, each
 * unpacked as a FileDescriptorProto; "a.proto,b.proto". */
static void file_names(const Resp *r, char *out, size_t cap)
{
    assert_int_equal(
        r->message_response_case,
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
    const Grpc__Reflection__V1__FileDescriptorResponse *fd =
        r->file_descriptor_response;
    out[0] = '\0';
    for (size_t i = 0; i < fd->n_file_descriptor_proto; i++) {
        Google__Protobuf__FileDescriptorProto *p =
            google__protobuf__file_descriptor_proto__unpack(
                NULL, fd->file_descriptor_proto[i].len,
                fd->file_descriptor_proto[i].data);
        assert_non_null(p);
        assert_null(p->source_code_info); /* stripped by the generator */
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s", n ? "," : "", p->name);
        google__protobuf__file_descriptor_proto__free_unpacked(p, NULL);
    }
}

static int has_name(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

static void assert_error(const Resp *r, int code)
{
    assert_int_equal(
        r->message_response_case,
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE);
    assert_int_equal(r->error_response->error_code, code);
}

/* list_services: the application's service, both reflections, health. */
static void test_list_services(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, (orpc_server_opts){0});
    Stream *s = open_stream(&f);
    Req q = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    q.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    q.list_services = "*";
    Resp *r = ask(s, &q);
    assert_int_equal(
        r->message_response_case,
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE);
    const char *want[] = {
        "grpc.testing.TestService", "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection", "grpc.health.v1.Health"};
    const Grpc__Reflection__V1__ListServiceResponse *ls =
        r->list_services_response;
    assert_int_equal(ls->n_service, 4);
    for (size_t i = 0; i < 4; i++) {
        int found = 0;
        for (size_t j = 0; j < ls->n_service; j++)
            found |= strcmp(ls->service[j]->name, want[i]) == 0;
        assert_true(found);
    }
    free_resp(r);
    assert_int_equal(close_stream(s), ORPC_OK);
    fx_close(&f);
}

/* file_containing_symbol for a service, then (same stream) a method, a
 * message, a field and an enum value: the first answer carries the file
 * and its imports; later ones only the file (the imports went already). */
static void test_symbols(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, (orpc_server_opts){0});
    Stream *s = open_stream(&f);
    char names[1024];

    Resp *r = ask_symbol(s, "grpc.testing.TestService");
    file_names(r, names, sizeof(names));
    free_resp(r);
    assert_true(strncmp(names, "grpc/testing/test.proto,", 24) == 0);
    assert_true(has_name(names, "grpc/testing/empty.proto"));
    assert_true(has_name(names, "grpc/testing/messages.proto"));

    r = ask_symbol(s, "grpc.testing.TestService.UnaryCall");
    file_names(r, names, sizeof(names));
    free_resp(r);
    assert_string_equal(names, "grpc/testing/test.proto");

    r = ask_symbol(s, "grpc.testing.SimpleRequest");
    file_names(r, names, sizeof(names));
    free_resp(r);
    assert_string_equal(names, "grpc/testing/messages.proto");

    r = ask_symbol(s, "grpc.testing.SimpleRequest.response_size");
    file_names(r, names, sizeof(names));
    free_resp(r);
    assert_string_equal(names, "grpc/testing/messages.proto");

    r = ask_symbol(s, "grpc.testing.COMPRESSABLE"); /* PayloadType's value */
    file_names(r, names, sizeof(names));
    free_resp(r);
    assert_string_equal(names, "grpc/testing/messages.proto");

    r = ask_symbol(s, "grpc.health.v1.HealthCheckResponse.ServingStatus");
    file_names(r, names, sizeof(names));
    free_resp(r);
    assert_string_equal(names, "grpc/health/v1/health.proto");

    assert_int_equal(close_stream(s), ORPC_OK);
    fx_close(&f);
}

/* file_by_filename, and the reflection's own file. */
static void test_file_by_filename(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, (orpc_server_opts){0});
    Stream *s = open_stream(&f);
    char names[1024];
    Resp *r = ask_file(s, "grpc/testing/messages.proto");
    file_names(r, names, sizeof(names));
    free_resp(r);
    assert_string_equal(names, "grpc/testing/messages.proto");
    r = ask_file(s, "grpc/testing/test.proto"); /* messages.proto went */
    file_names(r, names, sizeof(names));
    free_resp(r);
    assert_string_equal(names,
                        "grpc/testing/test.proto,grpc/testing/empty.proto");
    r = ask_file(s, "grpc/reflection/v1/reflection.proto");
    file_names(r, names, sizeof(names));
    free_resp(r);
    assert_string_equal(names, "grpc/reflection/v1/reflection.proto");
    assert_int_equal(close_stream(s), ORPC_OK);
    fx_close(&f);
}

/* Unknown names, extension queries and over-long names are error answers
 * (the extension numbers of a known type are an empty list); the stream
 * goes on. */
static void test_not_found(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, (orpc_server_opts){0});
    Stream *s = open_stream(&f);
    Resp *r = ask_symbol(s, "no.such.Symbol");
    assert_error(r, ORPC_NOT_FOUND);
    free_resp(r);
    r = ask_symbol(s, "grpc.testing.TestService.NoSuchMethod");
    assert_error(r, ORPC_NOT_FOUND);
    free_resp(r);
    r = ask_file(s, "no/such.proto");
    assert_error(r, ORPC_NOT_FOUND);
    free_resp(r);

    Req q = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    Grpc__Reflection__V1__ExtensionRequest ext =
        GRPC__REFLECTION__V1__EXTENSION_REQUEST__INIT;
    ext.containing_type = "grpc.testing.SimpleRequest";
    ext.extension_number = 100;
    q.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION;
    q.file_containing_extension = &ext;
    r = ask(s, &q);
    assert_error(r, ORPC_NOT_FOUND);
    assert_int_equal(
        r->original_request->file_containing_extension->extension_number, 100);
    free_resp(r);
    Req q2 = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    q2.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE;
    q2.all_extension_numbers_of_type = "grpc.testing.SimpleRequest";
    r = ask(s, &q2);
    /* a known type: its extension numbers (none), as gRPC's servers say */
    assert_int_equal(
        r->message_response_case,
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE);
    assert_string_equal(r->all_extension_numbers_response->base_type_name,
                        "grpc.testing.SimpleRequest");
    assert_int_equal(r->all_extension_numbers_response->n_extension_number, 0);
    free_resp(r);
    q2.all_extension_numbers_of_type = "grpc.testing.NoSuchType";
    r = ask(s, &q2);
    assert_error(r, ORPC_NOT_FOUND);
    free_resp(r);

    char *big = malloc(2000);
    assert_non_null(big);
    memset(big, 'a', 1999);
    big[1999] = '\0';
    Req q3 = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    q3.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
    q3.file_containing_symbol = big;
    r = ask(s, &q3);
    assert_error(r, ORPC_INVALID_ARGUMENT);
    assert_string_equal(r->original_request->file_containing_symbol, "");
    free_resp(r);
    free(big);

    /* and still answering */
    char names[256];
    r = ask_symbol(s, "grpc.testing.Empty");
    file_names(r, names, sizeof(names));
    free_resp(r);
    assert_string_equal(names, "grpc/testing/empty.proto");
    assert_int_equal(close_stream(s), ORPC_OK);
    fx_close(&f);
}

/* Many requests written before any answer is read: every one answered,
 * in order (the handler defers when the send buffer is full). */
static void test_pipelined(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, (orpc_server_opts){0});
    Stream *s = open_stream(&f);
    enum { N = 500 };
    for (int i = 0; i < N; i++) {
        Req q = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
        q.message_request_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
        q.file_by_filename = "grpc/testing/messages.proto";
        assert_int_equal(
            grpc__reflection__v1__server_reflection__client__server_reflection_info__send(
                s, &q),
            0);
    }
    for (int i = 0; i < N; i++) {
        Resp *r = NULL;
        assert_int_equal(
            grpc__reflection__v1__server_reflection__client__server_reflection_info__recv(
                s, &r),
            1);
        char names[256];
        file_names(r, names, sizeof(names));
        assert_string_equal(names, "grpc/testing/messages.proto");
        free_resp(r);
    }
    assert_int_equal(close_stream(s), ORPC_OK);
    fx_close(&f);
}

/* v1alpha answers as v1 does. */
static void test_v1alpha(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, (orpc_server_opts){0});
    Grpc__Reflection__V1alpha__ServerReflection_ServerReflectionInfo_Stream *s =
        NULL;
    orpc_call_opts o = {.timeout_ms = CALL_MS};
    assert_int_equal(
        grpc__reflection__v1alpha__server_reflection__client__server_reflection_info(
            f.cl_alpha, &o, &s),
        0);
    Grpc__Reflection__V1alpha__ServerReflectionRequest q =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
    q.message_request_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    q.list_services = "";
    Grpc__Reflection__V1alpha__ServerReflectionResponse *r = NULL;
    assert_int_equal(
        grpc__reflection__v1alpha__server_reflection__client__server_reflection_info__send(
            s, &q),
        0);
    assert_int_equal(
        grpc__reflection__v1alpha__server_reflection__client__server_reflection_info__recv(
            s, &r),
        1);
    assert_int_equal(
        r->message_response_case,
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE);
    assert_int_equal(r->list_services_response->n_service, 4);
    grpc__reflection__v1alpha__server_reflection_response__free_unpacked(r,
                                                                         NULL);

    q.message_request_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
    q.file_containing_symbol = "grpc.testing.TestService.EmptyCall";
    assert_int_equal(
        grpc__reflection__v1alpha__server_reflection__client__server_reflection_info__send(
            s, &q),
        0);
    assert_int_equal(
        grpc__reflection__v1alpha__server_reflection__client__server_reflection_info__recv(
            s, &r),
        1);
    assert_int_equal(
        r->message_response_case,
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
    assert_int_equal(r->file_descriptor_response->n_file_descriptor_proto, 3);
    Google__Protobuf__FileDescriptorProto *p =
        google__protobuf__file_descriptor_proto__unpack(
            NULL, r->file_descriptor_response->file_descriptor_proto[0].len,
            r->file_descriptor_response->file_descriptor_proto[0].data);
    assert_non_null(p);
    assert_string_equal(p->name, "grpc/testing/test.proto");
    assert_string_equal(p->package, "grpc.testing");
    google__protobuf__file_descriptor_proto__free_unpacked(p, NULL);
    grpc__reflection__v1alpha__server_reflection_response__free_unpacked(r,
                                                                         NULL);

    q.file_containing_symbol = "nope";
    assert_int_equal(
        grpc__reflection__v1alpha__server_reflection__client__server_reflection_info__send(
            s, &q),
        0);
    assert_int_equal(
        grpc__reflection__v1alpha__server_reflection__client__server_reflection_info__recv(
            s, &r),
        1);
    assert_int_equal(r->error_response->error_code, ORPC_NOT_FOUND);
    grpc__reflection__v1alpha__server_reflection_response__free_unpacked(r,
                                                                         NULL);

    assert_int_equal(
        grpc__reflection__v1alpha__server_reflection__client__server_reflection_info__close_send(
            s),
        0);
    assert_int_equal(
        grpc__reflection__v1alpha__server_reflection__client__server_reflection_info__recv(
            s, &r),
        0);
    orpc_status st =
        grpc__reflection__v1alpha__server_reflection__client__server_reflection_info__finish(
            s);
    assert_int_equal(st.code, ORPC_OK);
    orpc_status_clear(&st);
    fx_close(&f);
}

/* disable_reflection: both versions UNIMPLEMENTED. */
static void test_disabled(void **state)
{
    (void)state;
    fx f;
    fx_open(&f, (orpc_server_opts){.disable_reflection = 1});
    Stream *s = open_stream(&f);
    Req q = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    q.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    q.list_services = "";
    (void)
        grpc__reflection__v1__server_reflection__client__server_reflection_info__send(
            s, &q);
    (void)
        grpc__reflection__v1__server_reflection__client__server_reflection_info__close_send(
            s);
    Resp *r = NULL;
    assert_int_not_equal(
        grpc__reflection__v1__server_reflection__client__server_reflection_info__recv(
            s, &r),
        1);
    orpc_status st =
        grpc__reflection__v1__server_reflection__client__server_reflection_info__finish(
            s);
    assert_int_equal(st.code, ORPC_UNIMPLEMENTED);
    orpc_status_clear(&st);
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_services),
        cmocka_unit_test(test_symbols),
        cmocka_unit_test(test_file_by_filename),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_v1alpha),
        cmocka_unit_test(test_disabled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
