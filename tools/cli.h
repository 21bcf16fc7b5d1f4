/*
 * cli.h — what the files of the `orpc` command share: the exit codes, the
 * connection flags every subcommand that dials reads (one parser, one
 * channel maker, so TLS is the default everywhere), the descriptor-source
 * flags, and the dynamic `list` and `call` (dyncmd.c) that work from
 * descriptors instead of compiled-in tables.
 *
 * Threads: the command is single-threaded; liborpc's channels run their own.
 */
#ifndef ORPC_TOOLS_CLI_H
#define ORPC_TOOLS_CLI_H

#include <stddef.h>

#include <orpc/orpc.h>

/* Local problems, as the gRPC code the call would have got. */
enum {
    EXIT_BAD_USAGE = ORPC_INVALID_ARGUMENT,      /* 3: flags, JSON, files */
    EXIT_NO_RESOURCES = ORPC_RESOURCE_EXHAUSTED, /* 8: out of memory */
    EXIT_BAD_CONFIG = ORPC_FAILED_PRECONDITION,  /* 9: routes, environment */
    EXIT_NO_METHOD = ORPC_UNIMPLEMENTED,         /* 12: not compiled in */
    EXIT_NO_CREDENTIALS = ORPC_UNAUTHENTICATED,  /* 16: no identity */
    EXIT_NOT_SERVING = ORPC_UNAVAILABLE,         /* 14: health: not SERVING */
    EXIT_BAD_ANSWER = ORPC_INTERNAL /* 13: a response or descriptor that does
                                       not parse */
};

/* How to reach a gRPC server: --target, --plaintext, --ca, --cert, --key,
 * --timeout. */
typedef struct orpc__cli_conn {
    const char *target, *ca, *cert, *key;
    int plaintext;
    long timeout_ms; /* 0: none */
} orpc__cli_conn;

#define ORPC__CLI_MAX_PROTOS 64

/* Where descriptors come from instead of server reflection: --protoset
 * FILE, or --proto FILE... with -I DIR... (protoc compiles them). */
typedef struct orpc__cli_src {
    const char *protoset;
    const char *protos[ORPC__CLI_MAX_PROTOS];
    size_t n_protos;
    const char *imports[ORPC__CLI_MAX_PROTOS];
    size_t n_imports;
} orpc__cli_src;

/* Reads argv[*i] (and its value argv[*i + 1], NULL when there is none)
 * into |c| / |s|: 1 when it was such a flag (|*i| is moved past its
 * value), 0 when not, -1 after printing why a value is bad. */
int orpc__cli_conn_flag(orpc__cli_conn *c, int argc, char **argv, int *i);
int orpc__cli_src_flag(orpc__cli_src *s, int argc, char **argv, int *i);

/* Either of the two above (|s| NULL: connection flags only). */
int orpc__cli_flag(orpc__cli_conn *c, orpc__cli_src *s, int argc, char **argv,
                   int *i);

/* Nonzero when |s| names any descriptor source. */
int orpc__cli_src_given(const orpc__cli_src *s);

/* A channel to c->target: TLS unless c->plaintext, verifying the server
 * with c->ca or the system's trust store.  With |ca_elsewhere| --ca may
 * go with --plaintext (`call` passes it to the legacy path too).  Returns
 * 0, or an exit code after printing why. */
int orpc__cli_channel(const orpc__cli_conn *c, int ca_elsewhere,
                      orpc_channel **out);

/* Prints a call's failure, "CODE: message", on stderr; over TLS, when
 * the handshake is what failed, also says so and names --plaintext. */
void orpc__cli_report(const orpc__cli_conn *c, orpc_code code,
                      const char *message);

/* Reads the file |path| (at most |max| bytes; "-" is stdin) into a
 * NUL-terminated allocation (the caller frees it), its length to |*len|;
 * NULL when it cannot be read or is larger. */
char *orpc__cli_read_file(const char *path, size_t max, size_t *len);

/* `orpc list` from descriptors: every service (or |service|) with its
 * methods, from |s| or else c->target's server reflection.  Returns the
 * exit code. */
int orpc__cli_dyn_list(const orpc__cli_conn *c, const orpc__cli_src *s,
                       const char *service, int as_json);

/* `orpc call` of a method known from descriptors (|s| or server
 * reflection): the requests are the JSON values in |data| (one for unary
 * and server streaming, any number for client and bidi streaming).
 * Returns the exit code: the call's status, or a local problem's. */
int orpc__cli_dyn_call(const orpc__cli_conn *c, const orpc__cli_src *s,
                       const char *name, const char *data, orpc_metadata *md);

#endif
