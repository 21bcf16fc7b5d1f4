/*
 * hello_client.c — the tour's client: calls hello.v1.Greeter.
 *
 *   hello_client TARGET NAME     e.g. hello_client 127.0.0.1:50051 world
 *
 * Exits with the gRPC status code of the first call that fails.
 */
#include <stdio.h>

#include <orpc/orpc.h>

#include "hello.orpc.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: hello_client TARGET NAME\n");
        return 2;
    }
    orpc_channel *ch;
    orpc_client *greeter;
    orpc_error_detail why;
    int rc = orpc_channel_new(&ch, argv[1],
                              &(orpc_channel_opts){.plaintext = 1}, NULL, &why);
    if (rc == 0)
        rc = orpc_client_new(&greeter, &hello__v1__greeter__orpc_desc, ch,
                             NULL, &why);
    orpc_channel_unref(ch); /* the client holds its own reference */
    if (rc != 0) {
        fprintf(stderr, "hello_client: %s\n", why.message);
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
