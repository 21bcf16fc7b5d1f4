/*
 * hello_server.c — the tour's server: implements hello.v1.Greeter over
 * mutual TLS.
 *
 *   hello_server [ADDRESS [CERT_DIR]]   default 127.0.0.1:50051 and certs
 *
 * CERT_DIR holds ca.pem and hello-server.{pem,key}, as scripts/orpc-certs.sh
 * writes them; callers must present a certificate signed by ca.pem.
 * Prints "listening on <port>" when ready; SIGTERM or Ctrl-C stops it.
 */
#include <stdio.h>

#include <orpc/orpc.h>

#include "hello.orpc.h"

/* Unary: fill the response the runtime made; allocate from the call's
 * arena, which is freed with the call. */
static orpc_status say_hello(orpc_ctx *ctx, const Hello__V1__HelloRequest *req,
                             Hello__V1__HelloReply *reply, void *user_data)
{
    (void)user_data;
    if (req->name[0] == '\0')
        return orpc_status_new(ORPC_INVALID_ARGUMENT, "name is empty");
    char buf[256];
    snprintf(buf, sizeof(buf), "Hello, %s!", req->name);
    reply->message = orpc_arena_strdup(orpc_ctx_arena(ctx), buf);
    return ORPC_STATUS_OK;
}

/* Server streaming: send as many messages as asked, then return OK. */
static orpc_status
say_hello_many(orpc_ctx *ctx, const Hello__V1__HelloRequest *req,
               Hello__V1__Greeter_SayHelloMany_ServerWriter *call,
               void *user_data)
{
    (void)ctx;
    (void)user_data;
    if (req->count < 0 || req->count > 100)
        return orpc_status_errorf(ORPC_OUT_OF_RANGE,
                                  "count %d is not within 0..100", req->count);
    for (int i = 0; i < req->count; i++) {
        char buf[256];
        Hello__V1__HelloReply r = HELLO__V1__HELLO_REPLY__INIT;
        snprintf(buf, sizeof(buf), "Hello #%d, %s!", i + 1, req->name);
        r.message = buf;
        if (hello__v1__greeter__server__say_hello_many__send(call, &r) != 0)
            return orpc_status_new(ORPC_CANCELLED, "client went away");
    }
    return ORPC_STATUS_OK;
}

static const Hello__V1__Greeter_Handlers handlers = {
    .say_hello = say_hello,
    .say_hello_many = say_hello_many,
};

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:50051";
    const char *dir = argc > 2 ? argv[2] : "certs";
    char ca[512], cert[512], key[512];
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(cert, sizeof(cert), "%s/hello-server.pem", dir);
    snprintf(key, sizeof(key), "%s/hello-server.key", dir);

    /* mTLS: our certificate, and the CA that signs our callers' */
    orpc_server_opts opts = {
        .tls = {.cert_file = cert, .key_file = key, .ca_file = ca,
                .require_client_cert = 1},
    };
    orpc_server *srv = NULL;
    orpc_error_detail why = {0}; /* says what went wrong, if anything does */
    int port = 0, rc;

    rc = orpc_server_new(&srv, &opts, NULL, &why);
    if (rc == 0)
        rc = hello__v1__greeter__server__register(srv, &handlers, NULL);
    if (rc == 0)
        rc = orpc_server_listen(srv, addr, &port, &why);
    if (rc == 0)
        rc = orpc_server_start(srv);
    if (rc != 0) { /* the detail names the file or address at fault */
        fprintf(stderr, "hello_server: %s\n",
                why.code != 0 ? why.message : orpc_strerror(rc));
        orpc_server_free(srv);
        return 1;
    }
    printf("listening on %d\n", port);
    fflush(stdout);
    rc = orpc_server_run(srv); /* until SIGTERM/SIGINT, then drain */
    orpc_server_free(srv);
    return rc == 0 ? 0 : 1;
}
