/*
 * consumer — uses what orpc_generate() made of greeter.proto, against the
 * installed liborpc: the service and method tables, the messages' JSON names,
 * a protobuf-c round trip, and a call over loopback with the runtime's API.
 * Exits 0 when every check passes; otherwise prints each failed check and
 * exits 1.
 */
#include <stdio.h>
#include <string.h>

#include <orpc/orpc.h>

#include "greeter.orpc.h"

static int failures;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "consumer: %s:%d: check failed: %s\n", __FILE__,   \
                    __LINE__, #cond);                                          \
            failures++;                                                        \
        }                                                                      \
    } while (0)

/* NULL-safe string equality. */
static int str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static void check_service(void)
{
    const orpc_service_desc *svc = &acme__greeter__v1__greeter__orpc_desc;

    CHECK(svc->magic == ORPC_SERVICE_DESC_MAGIC);
    CHECK(str_eq(svc->name, "Greeter"));
    CHECK(str_eq(svc->full_name, "acme.greeter.v1.Greeter"));
    CHECK(str_eq(svc->package, "acme.greeter.v1"));
    CHECK(svc->n_methods == 2);

    /* The unary method, by full path and by bare name. */
    const orpc_method_desc *m =
        orpc_service_find_method(svc, "/acme.greeter.v1.Greeter/Greet");
    CHECK(m != NULL);
    if (m != NULL) {
        CHECK(m == acme__greeter__v1__greeter__method__greet);
        CHECK(m == orpc_service_find_method(svc, "Greet"));
        CHECK(str_eq(m->name, "Greet"));
        CHECK(str_eq(m->path, "/acme.greeter.v1.Greeter/Greet"));
        CHECK(m->kind == ORPC_CALL_UNARY);
        CHECK(str_eq(orpc_call_kind_name(m->kind), "unary"));
        CHECK(m->service == svc);
        CHECK(m->input == &acme__greeter__v1__greet_request__orpc_info);
        CHECK(m->output == &acme__greeter__v1__greet_reply__orpc_info);
        CHECK(m->http != NULL);
        if (m->http != NULL) {
            CHECK(str_eq(m->http->verb, "GET"));
            CHECK(!m->http->custom);
            CHECK(str_eq(m->http->path, "/greet/{name}"));
            CHECK(m->http->body == NULL);
            CHECK(m->http->response_body == NULL);
            CHECK(m->http->n_additional_bindings == 0);
        }
    }

    /* The server-streaming method. */
    const orpc_method_desc *s =
        orpc_service_find_method(svc, "/acme.greeter.v1.Greeter/GreetMany");
    CHECK(s != NULL);
    if (s != NULL) {
        CHECK(s == acme__greeter__v1__greeter__method__greet_many);
        CHECK(s->kind == ORPC_CALL_SERVER_STREAMING);
        CHECK(str_eq(orpc_call_kind_name(s->kind), "server_streaming"));
        CHECK(s->http == NULL);
        CHECK(s->service == svc);
    }

    CHECK(orpc_service_find_method(svc, "/acme.greeter.v1.Greeter/Nope") ==
          NULL);
    CHECK(orpc_service_find_method(svc, "/other.Service/Greet") == NULL);
}

static void check_messages(void)
{
    const orpc_message_info *in = &acme__greeter__v1__greet_request__orpc_info;

    CHECK(in->descriptor == &acme__greeter__v1__greet_request__descriptor);
    CHECK(str_eq(in->full_name, "acme.greeter.v1.GreetRequest"));
    CHECK(in->n_fields == in->descriptor->n_fields);
    CHECK(in->n_fields == 4);

    /* Default JSON name, found by it and by the proto name. */
    int name = orpc_message_info_find(in, "name");
    CHECK(name >= 0);
    if (name >= 0) {
        CHECK(in->fields[name].number == 1);
        CHECK(str_eq(in->fields[name].json_name, "name"));
        CHECK(in->fields[name].message == NULL);
    }

    /* lowerCamelCase JSON name of a Timestamp field: its info is the one
     * liborpc carries. */
    int sent = orpc_message_info_find(in, "sentAt");
    CHECK(sent >= 0);
    CHECK(sent == orpc_message_info_find(in, "sent_at"));
    if (sent >= 0) {
        CHECK(in->fields[sent].number == 2);
        CHECK(str_eq(in->fields[sent].json_name, "sentAt"));
        CHECK(in->fields[sent].message ==
              &google__protobuf__timestamp__orpc_info);
        CHECK(str_eq(in->descriptor->fields[sent].name, "sent_at"));
    }
    const orpc_field_info *f2 = orpc_message_info_field(in, 2);
    CHECK(f2 != NULL && f2->message == &google__protobuf__timestamp__orpc_info);
    CHECK(google__protobuf__timestamp__orpc_info.descriptor ==
          &google__protobuf__timestamp__descriptor);
    CHECK(str_eq(google__protobuf__timestamp__orpc_info.full_name,
                 "google.protobuf.Timestamp"));

    /* Explicit json_name replaces the default one. */
    int lang = orpc_message_info_find(in, "lang");
    CHECK(lang >= 0);
    CHECK(lang == orpc_message_info_find(in, "locale_tag"));
    CHECK(orpc_message_info_find(in, "localeTag") == -1);
    if (lang >= 0) {
        CHECK(in->fields[lang].number == 3);
        CHECK(str_eq(in->fields[lang].json_name, "lang"));
    }

    CHECK(orpc_message_info_find(in, "nope") == -1);
    CHECK(orpc_message_info_field(in, 99) == NULL);

    /* The file's table lists the service and both messages. */
    const orpc_file_desc *file = &greeter_proto__orpc_file;
    CHECK(str_eq(file->name, "greeter.proto"));
    CHECK(str_eq(file->package, "acme.greeter.v1"));
    CHECK(file->n_services == 1);
    CHECK(file->n_services == 1 &&
          file->services[0] == &acme__greeter__v1__greeter__orpc_desc);
    CHECK(file->n_messages == 2);
}

static void check_round_trip(void)
{
    Acme__Greeter__V1__GreetRequest req =
        ACME__GREETER__V1__GREET_REQUEST__INIT;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = 1700000000;
    ts.nanos = 123456789;
    req.name = "world";
    req.sent_at = &ts;
    req.locale_tag = "en-GB";
    req.times = 3;

    size_t len = acme__greeter__v1__greet_request__get_packed_size(&req);
    CHECK(len > 0);
    uint8_t buf[256];
    CHECK(len <= sizeof buf);
    if (len == 0 || len > sizeof buf)
        return;
    CHECK(acme__greeter__v1__greet_request__pack(&req, buf) == len);

    Acme__Greeter__V1__GreetRequest *out =
        acme__greeter__v1__greet_request__unpack(NULL, len, buf);
    CHECK(out != NULL);
    if (out == NULL)
        return;
    CHECK(str_eq(out->name, "world"));
    CHECK(str_eq(out->locale_tag, "en-GB"));
    CHECK(out->times == 3);
    CHECK(out->sent_at != NULL);
    if (out->sent_at != NULL) {
        CHECK(out->sent_at->seconds == 1700000000);
        CHECK(out->sent_at->nanos == 123456789);
    }
    acme__greeter__v1__greet_request__free_unpacked(out, NULL);

    /* Garbage does not unpack. */
    static const uint8_t bad[] = {0x0a, 0x7f, 'x'};
    CHECK(acme__greeter__v1__greet_request__unpack(NULL, sizeof bad, bad) ==
          NULL);
}

static orpc_status greet(orpc_ctx *ctx,
                         const Acme__Greeter__V1__GreetRequest *req,
                         Acme__Greeter__V1__GreetReply *reply, void *user_data)
{
    (void)user_data;
    char buf[128];
    snprintf(buf, sizeof buf, "hello, %s", req->name);
    reply->message = orpc_arena_strdup(orpc_ctx_arena(ctx), buf);
    return ORPC_STATUS_OK;
}

static const Acme__Greeter__V1__Greeter_Handlers handlers = {.greet = greet};

/* A call over loopback with the installed API: constructors say why in an
 * orpc_error_detail, the client keeps the channel's reference, the
 * generated stub calls through orpc_client_invoke(). */
static void check_call(void)
{
    orpc_error_detail why = {0};
    orpc_server *srv = NULL;
    int port = 0;
    CHECK(orpc_server_new(&srv, &(orpc_server_opts){.plaintext = 1}, NULL,
                          &why) == 0);
    if (srv == NULL) {
        fprintf(stderr, "consumer: %s\n", why.message);
        return;
    }
    CHECK(acme__greeter__v1__greeter__server__register(srv, &handlers, NULL) ==
          0);
    CHECK(orpc_server_listen(srv, "127.0.0.1:0", &port, &why) == 0);
    /* a malformed address is refused, and the detail says which */
    CHECK(orpc_server_listen(srv, "127.0.0.1:99999", NULL, &why) == ORPC_EADDR);
    CHECK(strstr(why.message, "127.0.0.1:99999") != NULL);
    CHECK(orpc_server_start(srv) == 0);

    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    orpc_channel *ch = NULL;
    orpc_client *cl = NULL;
    CHECK(orpc_channel_new(&ch, target, &(orpc_channel_opts){.plaintext = 1},
                           NULL, &why) == 0);
    CHECK(orpc_client_new(&cl, &acme__greeter__v1__greeter__orpc_desc, ch, NULL,
                          &why) == 0);
    orpc_channel_unref(ch);
    if (cl != NULL) {
        Acme__Greeter__V1__GreetRequest req =
            ACME__GREETER__V1__GREET_REQUEST__INIT;
        req.name = "consumer";
        Acme__Greeter__V1__GreetReply *reply = NULL;
        orpc_status st = acme__greeter__v1__greeter__client__greet(
            cl, &req, &reply, &(orpc_call_opts){.timeout_ms = 5000});
        CHECK(st.code == ORPC_OK);
        CHECK(reply != NULL && str_eq(reply->message, "hello, consumer"));
        if (reply != NULL)
            acme__greeter__v1__greet_reply__free_unpacked(reply, NULL);
        orpc_status_clear(&st);
        orpc_client_free(cl);
    }
    CHECK(orpc_server_shutdown(srv, 0) == 0);
    orpc_server_free(srv);
}

int main(void)
{
    CHECK(str_eq(orpc_version(), ORPC_VERSION_STRING));
    check_service();
    check_messages();
    check_round_trip();
    check_call();
    if (failures != 0) {
        fprintf(stderr, "consumer: %d check(s) failed\n", failures);
        return 1;
    }
    printf("consumer: all checks passed\n");
    return 0;
}
