/*
 * hello_client.c — the tour's client: calls hello.v1.Greeter over mutual
 * TLS, once unary and once server-streaming.
 *
 *   hello_client TARGET NAME [CERT_DIR]   e.g. hello_client 127.0.0.1:50051 world
 *
 * CERT_DIR (default certs) holds ca.pem and hello-client.{pem,key}, as
 * scripts/orpc-certs.sh writes them.  Exits with the gRPC status code of
 * the first call that fails (3 for INVALID_ARGUMENT, 14 for UNAVAILABLE).
 */
#include <stdio.h>

#include <orpc/orpc.h>

#include "hello.orpc.h"

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: hello_client TARGET NAME [CERT_DIR]\n");
        return 2;
    }
    const char *dir = argc > 3 ? argv[3] : "certs";
    char ca[512], cert[512], key[512];
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(cert, sizeof(cert), "%s/hello-client.pem", dir);
    snprintf(key, sizeof(key), "%s/hello-client.key", dir);

    /* mTLS: the CA that signs the server's certificate, and our own */
    orpc_tls_opts tls = {.ca_file = ca, .cert_file = cert, .key_file = key};
    orpc_channel *ch;
    orpc_client *greeter;
    orpc_error_detail why = {0};
    int rc = orpc_channel_new(&ch, argv[1], &(orpc_channel_opts){.tls = &tls},
                              NULL, &why);
    if (rc == 0) {
        rc = orpc_client_new(&greeter, &hello__v1__greeter__orpc_desc, ch,
                             NULL, &why);
        orpc_channel_unref(ch); /* the client holds its own reference */
    }
    if (rc != 0) {
        fprintf(stderr, "hello_client: %s\n",
                why.code != 0 ? why.message : orpc_strerror(rc));
        return 2;
    }

    /* Unary: blocking call, response freed the protobuf-c way. */
    Hello__V1__HelloRequest req = HELLO__V1__HELLO_REQUEST__INIT;
    req.name = argv[2];
    req.count = 3;
    Hello__V1__HelloReply *reply;
    orpc_call_opts opts = {.timeout_ms = 5000};
    orpc_status st =
        hello__v1__greeter__client__say_hello(greeter, &req, &reply, &opts);
    if (st.code == ORPC_OK) {
        printf("%s\n", reply->message);
        hello__v1__hello_reply__free_unpacked(reply, NULL);
    }

    /* Server streaming: read until the end, then take the status. */
    Hello__V1__Greeter_SayHelloMany_Reader *many;
    if (st.code == ORPC_OK && hello__v1__greeter__client__say_hello_many(
                                  greeter, &req, &opts, &many) == 0) {
        while (hello__v1__greeter__client__say_hello_many__recv(many, &reply) ==
               1) {
            printf("%s\n", reply->message);
            hello__v1__hello_reply__free_unpacked(reply, NULL);
        }
        st = hello__v1__greeter__client__say_hello_many__finish(many);
    }
    int code = st.code;
    if (code != ORPC_OK)
        fprintf(stderr, "hello_client: %s: %s\n", orpc_code_name(code),
                st.message ? st.message : "");
    orpc_status_clear(&st);
    orpc_client_free(greeter);
    return code;
}
