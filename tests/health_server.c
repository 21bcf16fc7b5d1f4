/*
 * health_server.c — a fixture for tests/orpc_cli_test.sh: a plaintext
 * server on 127.0.0.1 (ephemeral port) with nothing but the built-in
 * health service, whose statuses the arguments set before it starts.
 *
 *   health_server [NAME=SERVING|NOT_SERVING|UNKNOWN]...
 *
 * "=NOT_SERVING" sets the server as a whole ("").  Prints "listening on
 * PORT" once it serves, then serves until SIGTERM or SIGINT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/orpc.h>

int main(int argc, char **argv)
{
    orpc_server *srv;
    orpc_error_detail why;
    orpc_server_opts o = {.plaintext = 1, .io_threads = 1};
    int port = 0;
    if (orpc_server_new(&srv, &o, NULL, &why) != 0 ||
        orpc_server_listen(srv, "127.0.0.1:0", &port, &why) != 0) {
        fprintf(stderr, "health_server: %s\n", why.message);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        char name[256];
        const char *eq = strchr(argv[i], '=');
        if (eq == NULL || (size_t)(eq - argv[i]) >= sizeof(name)) {
            fprintf(stderr, "usage: health_server [NAME=STATUS]...\n");
            return 2;
        }
        snprintf(name, sizeof(name), "%.*s", (int)(eq - argv[i]), argv[i]);
        orpc_health_status st =
            strcmp(eq + 1, "SERVING") == 0       ? ORPC_HEALTH_SERVING
            : strcmp(eq + 1, "NOT_SERVING") == 0 ? ORPC_HEALTH_NOT_SERVING
                                                 : ORPC_HEALTH_UNKNOWN;
        if (orpc_server_set_health(srv, name, st) != 0) {
            fprintf(stderr, "health_server: cannot set %s\n", argv[i]);
            return 1;
        }
    }
    if (orpc_server_start(srv) != 0) {
        fprintf(stderr, "health_server: cannot start\n");
        return 1;
    }
    printf("listening on %d\n", port);
    fflush(stdout);
    int rc = orpc_server_run(srv);
    orpc_server_free(srv);
    return rc == 0 ? 0 : 1;
}
