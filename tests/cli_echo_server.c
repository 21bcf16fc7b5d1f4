/*
 * cli_echo_server.c — a fixture for tests/orpc_cli_test.sh: a plaintext
 * server on 127.0.0.1 (ephemeral port) serving orpc.test.cli.Echo
 * (tests/protos/cli_echo.proto), a service the `orpc` command does not
 * compile in, with orpc's built-in server reflection.  Every method echoes
 * its requests, so a message that goes through the command's dynamic
 * encoder, the server's protobuf-c and the command's dynamic decoder must
 * come back as it went.
 *
 *   cli_echo_server
 *
 * Prints "listening on PORT" once it serves, then serves until SIGTERM or
 * SIGINT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/orpc.h>

#include "cli_echo.orpc.h"

typedef Orpc__Test__Json__AllTypes AllTypes;

/* *out = a copy of |in| (of |out|'s type) in the call's arena. */
static orpc_status copy(orpc_ctx *ctx, const ProtobufCMessage *in,
                        ProtobufCMessage *out)
{
    size_t n = protobuf_c_message_get_packed_size(in);
    uint8_t *buf = orpc_arena_alloc(orpc_ctx_arena(ctx), n + 1);
    if (buf == NULL)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "no memory");
    protobuf_c_message_pack(in, buf);
    ProtobufCMessage *c = protobuf_c_message_unpack(
        in->descriptor, orpc_arena_allocator(orpc_ctx_arena(ctx)), n, buf);
    if (c == NULL)
        return orpc_status_new(ORPC_INTERNAL, "cannot copy the request");
    memcpy(out, c, in->descriptor->sizeof_message);
    return ORPC_STATUS_OK;
}

static orpc_status echo(orpc_ctx *ctx, const AllTypes *req, AllTypes *resp,
                        void *ud)
{
    (void)ud;
    return copy(ctx, &req->base, &resp->base);
}

static orpc_status echo_well_known(orpc_ctx *ctx,
                                   const Orpc__Test__Json__WellKnown *req,
                                   Orpc__Test__Json__WellKnown *resp, void *ud)
{
    (void)ud;
    return copy(ctx, &req->base, &resp->base);
}

static orpc_status expand(orpc_ctx *ctx, const AllTypes *req,
                          Orpc__Test__Cli__Echo_Expand_ServerWriter *call,
                          void *ud)
{
    (void)ctx;
    (void)ud;
    for (int32_t i = 0; i < req->f_int32 && i < 100; i++)
        if (orpc__test__cli__echo__server__expand__send(call, req) != 0)
            return orpc_status_new(ORPC_CANCELLED, "send failed");
    return ORPC_STATUS_OK;
}

static orpc_status collect(orpc_ctx *ctx,
                           Orpc__Test__Cli__Echo_Collect_ServerReader *call,
                           AllTypes *resp, void *ud)
{
    (void)ud;
    const AllTypes *req;
    int32_t n = 0;
    orpc_status st = ORPC_STATUS_OK;
    while (orpc__test__cli__echo__server__collect__recv(call, &req) == 1) {
        n++;
        orpc_status_clear(&st);
        st = copy(ctx, &req->base, &resp->base);
    }
    resp->f_int32 = n;
    return st;
}

static orpc_status chat(orpc_ctx *ctx,
                        Orpc__Test__Cli__Echo_Chat_ServerStream *call, void *ud)
{
    (void)ctx;
    (void)ud;
    const AllTypes *req;
    while (orpc__test__cli__echo__server__chat__recv(call, &req) == 1)
        if (orpc__test__cli__echo__server__chat__send(call, req) != 0)
            return orpc_status_new(ORPC_CANCELLED, "send failed");
    return ORPC_STATUS_OK;
}

static const Orpc__Test__Cli__Echo_Handlers handlers = {.echo = echo,
                                                        .expand = expand,
                                                        .collect = collect,
                                                        .echo_well_known =
                                                            echo_well_known,
                                                        .chat = chat};

int main(void)
{
    orpc_server *srv;
    orpc_error_detail why;
    orpc_server_opts o = {.plaintext = 1, .io_threads = 1};
    int port = 0;
    if (orpc_server_new(&srv, &o, NULL, &why) != 0 ||
        orpc_server_listen(srv, "127.0.0.1:0", &port, &why) != 0) {
        fprintf(stderr, "cli_echo_server: %s\n", why.message);
        return 1;
    }
    if (orpc__test__cli__echo__server__register(srv, &handlers, NULL) != 0 ||
        orpc_server_start(srv) != 0) {
        fprintf(stderr, "cli_echo_server: cannot start\n");
        return 1;
    }
    printf("listening on %d\n", port);
    fflush(stdout);
    int rc = orpc_server_run(srv);
    orpc_server_free(srv);
    return rc == 0 ? 0 : 1;
}
