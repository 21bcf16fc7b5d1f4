/*
 * orpc.c — the `orpc` command: call any compiled-in method over gRPC or the
 * legacy endpoint, ask a server's health service, list the services, and
 * show what the router would do.
 *
 *   orpc call [--mode M] [--target host:port] [--legacy-url URL]
 *             [--plaintext | --ca F --cert F --key F] [-H 'k: v']
 *             [-d JSON|@file] [--as NAME] [--auth-url URL] [--timeout MS]
 *             [-v] pkg.Service/Method
 *   orpc call --target host:port [--plaintext | --ca F ...]
 *             [--protoset F | --proto F [-I DIR]...] [-d JSON...]
 *             pkg.Service/Method          (a method not compiled in)
 *   orpc call --env [-H 'k: v'] [-d JSON|@file] [--timeout MS] [-v]
 *             pkg.Service/Method
 *   orpc health --target host:port [--service NAME]
 *               [--plaintext | --ca F [--cert F --key F]] [--timeout MS]
 *   orpc list [--json] [--target host:port | --protoset F | --proto F]
 *             [SERVICE]
 *   orpc routes [--config FILE] [--stats FILE]... [--json]
 *
 * `call` prints the response as JSON and exits with the call's gRPC status
 * code (the message on stderr).  Without --mode the routing table decides
 * (ORPC_ROUTES_FILE and ORPC_ROUTE_* variables), as for any routed client.
 * On the legacy path it authenticates as --as NAME (default orpc-cli) with
 * NAME_USERNAME and NAME_PASSWORD from the environment (--mode grpc puts
 * the whole service on gRPC and needs neither).  -v tells on stderr
 * which side served the call; in the shadow modes the command waits for the
 * mirrored call and reports whether the two sides agreed.  --env makes the
 * call exactly as a service configured by its environment would
 * (orpc/clients.h): identity, routes, gRPC targets and TLS from the
 * variables, no flags.
 *
 * A method that is not compiled in (or any method, with --protoset or
 * --proto) is called through its descriptors: dyncmd.c fetches them by
 * server reflection or reads them from the files, and `list` does the same
 * with --target, --protoset or --proto (docs/cli.md).  Every gRPC
 * connection is TLS unless --plaintext (cli_common.c makes them all).
 *
 * `health` asks a server's health service (grpc.health.v1.Health/Check)
 * about NAME, or the server as a whole, and prints the status's name: it
 * exits 0 only for SERVING, and 14 (UNAVAILABLE, what a call to a server
 * that does not serve would get) when the answer is anything else.
 * Without --plaintext it speaks TLS, verifying the server with --ca or
 * the system's trust store; --cert and --key present a client certificate.
 *
 * `routes` prints each method's mode and, when the table names a stats
 * file (or --stats is given), the counters that long-running callers wrote
 * there, summed over every process's file.
 *
 * Exit codes are gRPC status codes, so a script reads one number whatever
 * went wrong (the table is in usage_text and the README): a call's failure
 * exits with its status; a local problem exits with the code the call
 * would have got had it been sent (EXIT_* below).
 */
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include <orpc/clients.h>
#include <orpc/compat/json.h>
#include <orpc/compat/router.h>
#include <orpc/orpc.h>

#include "grpc/health/v1/health.orpc.h"
#include "grpc/testing/benchmark_service.orpc.h"
#include "grpc/testing/test.orpc.h"
#include "opsconductor/auth/v1/auth.orpc.h"
#include "opsconductor/credentials/v1/credentials.orpc.h"
#include "opsconductor/jobs/v1/jobs.orpc.h"
#include "opsconductor/notification/v1/notification.orpc.h"
#include "opsconductor/user/v1/user.orpc.h"

#include "cli.h"

/* Every compiled-in file: the OpsConductor services and grpc.testing. */
static const orpc_file_desc *const files[] = {
    &opsconductor_auth_v1_auth_proto__orpc_file,
    &opsconductor_credentials_v1_credentials_proto__orpc_file,
    &opsconductor_jobs_v1_jobs_proto__orpc_file,
    &opsconductor_notification_v1_notification_proto__orpc_file,
    &opsconductor_user_v1_user_proto__orpc_file,
    &grpc_testing_test_proto__orpc_file,
    &grpc_testing_benchmark_service_proto__orpc_file,
};
#define N_FILES (sizeof(files) / sizeof(files[0]))

static const char usage_text[] =
    "usage: orpc call [--mode grpc|legacy|fallback|shadow|shadow-grpc]\n"
    "                 [--target host:port] [--legacy-url URL]\n"
    "                 [--plaintext | --ca F [--cert F --key F]] [-H 'k: v']\n"
    "                 [-d JSON|@file] [--as NAME] [--auth-url URL]\n"
    "                 [--timeout MS] [-v] pkg.Service/Method\n"
    "       orpc call --target host:port [--plaintext | --ca F ...]\n"
    "                 [--protoset F | --proto F [-I DIR]...] [-H 'k: v']\n"
    "                 [-d JSON...|@file] [--timeout MS] pkg.Service/Method\n"
    "                 (a method not compiled in: its descriptors from server\n"
    "                 reflection, or the files; -d holds one JSON object per\n"
    "                 request for client and bidi streaming)\n"
    "       orpc call --env [-H 'k: v'] [-d JSON|@file] [--timeout MS]\n"
    "                 [-v] pkg.Service/Method\n"
    "       orpc health --target host:port [--service NAME]\n"
    "                   [--plaintext | --ca F [--cert F --key F]]\n"
    "                   [--timeout MS (default 5000)]\n"
    "       orpc list [--json]\n"
    "       orpc list [--json] (--target host:port [--plaintext | --ca F ...]\n"
    "                 | --protoset F | --proto F [-I DIR]...) [SERVICE]\n"
    "       orpc routes [--config FILE] [--stats FILE]... [--json]\n"
    "       orpc --help | --version\n"
    "\n"
    "exit status (gRPC status codes):\n"
    "   0  OK: the call succeeded (list, routes: done; health: SERVING)\n"
    "   1-16  the call's own gRPC status, e.g. 5 NOT_FOUND, 14 UNAVAILABLE\n"
    "         (no server reachable), 4 DEADLINE_EXCEEDED (--timeout)\n"
    "   3  INVALID_ARGUMENT also for bad flags, a bad -d JSON request or an\n"
    "      unreadable file, a bad --target\n"
    "   8  RESOURCE_EXHAUSTED also when orpc runs out of memory\n"
    "   9  FAILED_PRECONDITION also for a bad routing table or environment\n"
    "      (ORPC_ROUTES_FILE, --config, --env settings, --stats files)\n"
    "  12  UNIMPLEMENTED also for a method neither compiled into orpc nor\n"
    "      in the descriptors, and for client and bidi streaming of a\n"
    "      compiled-in method, which `orpc call` does not send\n"
    "  13  INTERNAL also for a response or a descriptor that does not parse\n"
    "  14  UNAVAILABLE also when `orpc health` gets an answer other than\n"
    "      SERVING (NOT_SERVING, UNKNOWN); it prints the status either way\n"
    "      (an unknown --service is 5 NOT_FOUND)\n"
    "  16  UNAUTHENTICATED also when the legacy path has no credentials\n"
    "      (NAME_USERNAME / NAME_PASSWORD for --as NAME)\n"
    "\n"
    "Without --plaintext every gRPC connection is TLS, verified with --ca or\n"
    "the system's trust store.\n";

/* Prints the usage to stderr and returns EXIT_BAD_USAGE. */
static int usage(void)
{
    fputs(usage_text, stderr);
    return EXIT_BAD_USAGE;
}

static const orpc_method_desc *find_method(const char *name)
{
    const char *p = name[0] == '/' ? name + 1 : name;
    const char *slash = strchr(p, '/');
    if (slash == NULL)
        return NULL;
    for (size_t f = 0; f < N_FILES; f++)
        for (size_t s = 0; s < files[f]->n_services; s++) {
            const orpc_service_desc *sd = files[f]->services[s];
            if (strlen(sd->full_name) == (size_t)(slash - p) &&
                strncmp(sd->full_name, p, (size_t)(slash - p)) == 0)
                return orpc_service_find_method(sd, slash + 1);
        }
    return NULL;
}

/* ---- list ---- */

static json_t *rule_json(const orpc_http_rule *r)
{
    return json_pack("{s:s, s:s, s:s?, s:s?}", "verb", r->verb, "path", r->path,
                     "body", r->body, "response_body", r->response_body);
}

static int cmd_list(int argc, char **argv)
{
    int as_json = 0;
    const char *service = NULL;
    orpc__cli_conn conn = {0};
    orpc__cli_src src = {0};
    for (int i = 0; i < argc; i++) {
        int rc = orpc__cli_flag(&conn, &src, argc, argv, &i);
        if (rc < 0)
            return EXIT_BAD_USAGE;
        if (rc > 0)
            continue;
        if (strcmp(argv[i], "--json") == 0)
            as_json = 1;
        else if (argv[i][0] != '-' && service == NULL)
            service = argv[i];
        else
            return usage();
    }
    if (conn.target || orpc__cli_src_given(&src))
        return orpc__cli_dyn_list(&conn, &src, service, as_json);
    if (service || conn.ca || conn.cert || conn.key || conn.plaintext) {
        fprintf(stderr, "orpc: list: SERVICE, --plaintext, --ca, --cert and "
                        "--key go with --target, --protoset or --proto\n");
        return EXIT_BAD_USAGE;
    }
    json_t *all = json_array();
    for (size_t f = 0; f < N_FILES; f++)
        for (size_t s = 0; s < files[f]->n_services; s++) {
            const orpc_service_desc *sd = files[f]->services[s];
            for (size_t m = 0; m < sd->n_methods; m++) {
                const orpc_method_desc *md = orpc_service_method(sd, m);
                const char *kind = orpc_call_kind_name(md->kind);
                json_t *http = json_array();
                if (md->http) {
                    json_array_append_new(http, rule_json(md->http));
                    for (size_t b = 0; b < md->http->n_additional_bindings; b++)
                        json_array_append_new(
                            http, rule_json(&md->http->additional_bindings[b]));
                }
                if (as_json) {
                    json_array_append_new(
                        all, json_pack("{s:s, s:s, s:s, s:o}", "service",
                                       sd->full_name, "method", md->name,
                                       "kind", kind, "http", http));
                } else {
                    printf("%s/%s\t%s", sd->full_name, md->name, kind);
                    if (md->http)
                        printf("\t%s %s", md->http->verb, md->http->path);
                    printf("\n");
                    json_decref(http);
                }
            }
        }
    if (as_json) {
        char *out = json_dumps(all, JSON_INDENT(2));
        puts(out ? out : "[]");
        free(out);
    }
    json_decref(all);
    return 0;
}

/* ---- routes ---- */

static const char *const stat_keys[] = {"grpc",      "legacy",     "fallbacks",
                                        "matches",   "mismatches", "dropped",
                                        "unmirrored"};
#define N_STAT_KEYS (sizeof(stat_keys) / sizeof(stat_keys[0]))

/* Adds the counters of the stats file |path| into |sum| (method -> key ->
 * integer).  Returns 0, or -1 when the file is not a stats file. */
static int add_stats(json_t *sum, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0 || sb.st_size > (16 << 20))
        return -1; /* written by orpc, but still bounded */
    json_t *root = json_load_file(path, 0, NULL);
    json_t *methods = json_object_get(root, "methods");
    if (!json_is_object(methods)) {
        json_decref(root);
        return -1;
    }
    const char *name;
    json_t *m;
    json_object_foreach(methods, name, m)
    {
        json_t *acc = json_object_get(sum, name);
        if (acc == NULL) {
            acc = json_object();
            json_object_set_new(sum, name, acc);
        }
        for (size_t k = 0; k < N_STAT_KEYS; k++) {
            json_int_t v = json_integer_value(json_object_get(m, stat_keys[k]));
            json_int_t had =
                json_integer_value(json_object_get(acc, stat_keys[k]));
            if (v > 0)
                json_object_set_new(acc, stat_keys[k], json_integer(had + v));
            else if (json_object_get(acc, stat_keys[k]) == NULL)
                json_object_set_new(acc, stat_keys[k], json_integer(0));
        }
    }
    json_decref(root);
    return 0;
}

static int cmd_routes(int argc, char **argv)
{
    const char *config = getenv("ORPC_ROUTES_FILE");
    int as_json = 0, n_files = 0, explicit_stats = 0;
    json_t *sum = json_object();
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--stats") == 0 && i + 1 < argc) {
            explicit_stats = 1;
            if (add_stats(sum, argv[++i]) != 0) {
                fprintf(stderr, "orpc: routes: %s: not a stats file\n",
                        argv[i]);
                json_decref(sum);
                return EXIT_BAD_CONFIG;
            }
            n_files++;
        } else if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
        } else {
            json_decref(sum);
            return usage();
        }
    }
    orpc_routes *routes;
    orpc_error_detail detail = {0};
    if (orpc_routes_load(&routes, config, &detail) != 0) {
        fprintf(stderr, "orpc: routes: %s\n", detail.message);
        json_decref(sum);
        return EXIT_BAD_CONFIG;
    }
    char pattern[PATH_MAX];
    glob_t g;
    if (!explicit_stats &&
        orpc_routes_stats_glob(routes, pattern, sizeof pattern) == 0 &&
        glob(pattern, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc && i < 4096; i++)
            if (strstr(g.gl_pathv[i], ".tmp.") == NULL &&
                add_stats(sum, g.gl_pathv[i]) == 0)
                n_files++;
        globfree(&g);
    }
    if (!as_json && n_files > 0)
        printf("# counters summed over %d stats file%s\n", n_files,
               n_files == 1 ? "" : "s");
    json_t *all = json_array();
    for (size_t f = 0; f < N_FILES; f++)
        for (size_t s = 0; s < files[f]->n_services; s++) {
            const orpc_service_desc *sd = files[f]->services[s];
            for (size_t m = 0; m < sd->n_methods; m++) {
                const orpc_method_desc *md = orpc_service_method(sd, m);
                const char *mode =
                    orpc_route_mode_name(orpc_routes_mode(routes, md));
                json_t *st = json_object_get(sum, md->path + 1);
                if (as_json) {
                    json_t *o = json_pack(
                        "{s:s, s:s, s:b}", "method", md->path + 1, "mode", mode,
                        "legacy_endpoint",
                        orpc_routes_mode(NULL, md) != ORPC_ROUTE_GRPC);
                    if (st)
                        json_object_set(o, "stats", st);
                    json_array_append_new(all, o);
                    continue;
                }
                printf("%s\t%s", md->path + 1, mode);
                if (orpc_routes_mode(NULL, md) == ORPC_ROUTE_GRPC)
                    printf("\t(no legacy endpoint)");
                if (st) {
                    printf("\t");
                    for (size_t k = 0; k < N_STAT_KEYS; k++)
                        printf("%s%s=%lld", k ? " " : "", stat_keys[k],
                               (long long)json_integer_value(
                                   json_object_get(st, stat_keys[k])));
                }
                printf("\n");
            }
        }
    if (as_json) {
        char *out = json_dumps(all, JSON_INDENT(2));
        puts(out ? out : "[]");
        free(out);
    }
    json_decref(all);
    json_decref(sum);
    orpc_routes_unref(routes);
    return 0;
}

/* ---- call ---- */

/* -d's text: the argument itself, or the file (or stdin) after '@'. */
static char *read_data(const char *arg)
{
    if (arg[0] != '@')
        return strdup(arg);
    return orpc__cli_read_file(arg + 1, 64u << 20, NULL); /* bounded */
}

static void log_stderr(orpc_log_level level, const char *msg, void *ud)
{
    (void)level;
    (void)ud;
    fprintf(stderr, "orpc: %s\n", msg);
}

/* In the shadow modes: waits (bounded) for the mirrored call's comparison
 * and says how it came out; the differences were logged by the router. */
static void report_shadow(const orpc_routes *routes, const orpc_method_desc *m,
                          long timeout_ms)
{
    orpc_route_mode mode = orpc_routes_mode(routes, m);
    if (mode != ORPC_ROUTE_SHADOW && mode != ORPC_ROUTE_SHADOW_GRPC)
        return;
    orpc_route_stats s = {0};
    long waited = 0, limit = timeout_ms > 0 ? timeout_ms + 1000 : 31000;
    for (; waited < limit; waited += 10) {
        orpc_routes_stats(routes, m, &s);
        if (s.matches + s.mismatches + s.dropped + s.unmirrored > 0)
            break;
        usleep(10000);
    }
    fprintf(stderr, "shadow: %s\n",
            s.matches      ? "match"
            : s.mismatches ? "MISMATCH (see the difference above)"
            : s.unmirrored ? "not mirrored (the method has side effects)"
            : s.dropped    ? "not mirrored (no other side configured)"
                           : "no answer from the mirror in time");
}

/* How `orpc call` reaches the method: flags, or (--env) a service's
 * environment. */
typedef struct call_args {
    const char *mode, *legacy_url, *auth_url;
    const char *as;      /* NULL: orpc-cli */
    orpc__cli_conn conn; /* the gRPC side; conn.ca also for the legacy one */
    int from_env;
} call_args;

/* The client |m|'s call goes through, and the routing table it uses (for
 * report_shadow()).  Prints why not and returns the exit code on failure
 * (0 on success). */
static int make_client(const call_args *a, const orpc_method_desc *m,
                       orpc_client **client, orpc_routes **routes)
{
    orpc_error_detail detail = {0};
    int rc;
    *client = NULL;
    *routes = NULL;
    if (a->from_env) {
        /* exactly what a service would do: orpc/clients.h */
        if (a->mode || a->conn.target || a->legacy_url || a->conn.ca ||
            a->conn.cert || a->conn.key || a->conn.plaintext || a->auth_url ||
            a->as) {
            fprintf(stderr, "orpc: --env takes every setting from the "
                            "environment (ORPC_IDENTITY, ORPC_ROUTES_FILE, "
                            "<SERVICE>_GRPC_TARGET, ORPC_TLS_*, ...): drop "
                            "--mode, --target, --legacy-url, --plaintext, "
                            "--ca, --cert, --key, --as and --auth-url\n");
            return EXIT_BAD_USAGE;
        }
        orpc_env *env;
        orpc_env_opts eo = {.log = log_stderr, .no_watch = 1};
        orpc_error_detail why;
        rc = orpc_env_new(&env, &eo, &why);
        if (rc == 0) {
            rc = orpc_env_client_new(client, env, m->service, &why);
            *routes = orpc_routes_ref(orpc_env_routes(env));
            orpc_env_free(env);
        }
        if (rc != 0) {
            fprintf(stderr, "orpc: --env: %s\n", why.message);
            return rc == ORPC_ENOMEM ? EXIT_NO_RESOURCES : EXIT_BAD_CONFIG;
        }
        return 0;
    }
    /* the routing table: --mode for this method, else the configured one */
    if (a->mode != NULL) {
        orpc_route_mode mode = ORPC_ROUTE_LEGACY;
        while (mode <= ORPC_ROUTE_SHADOW_GRPC &&
               strcmp(a->mode, orpc_route_mode_name(mode)) != 0)
            mode++;
        if (mode > ORPC_ROUTE_SHADOW_GRPC) {
            fprintf(stderr,
                    "orpc: --mode grpc|legacy|fallback|shadow|shadow-grpc\n");
            return EXIT_BAD_USAGE;
        }
        /* the whole service: only this method is called, and a service
         * all on gRPC wants no legacy credentials (--mode grpc needs no
         * ORPC_CLI_USERNAME / _PASSWORD) */
        rc = orpc_routes_new(routes);
        if (rc == 0)
            rc = orpc_routes_set(*routes, m->service->full_name, mode);
    } else {
        rc = orpc_routes_load(routes, getenv("ORPC_ROUTES_FILE"), &detail);
        if (rc != 0) {
            fprintf(stderr, "orpc: routes: %s\n", detail.message);
            return EXIT_BAD_CONFIG;
        }
    }
    orpc_channel *ch = NULL;
    if (rc == 0 && a->conn.target != NULL) {
        /* TLS unless --plaintext; --ca may serve the legacy side alone */
        int code = orpc__cli_channel(&a->conn, 1, &ch);
        if (code != 0)
            return code;
    }
    const char *as = a->as ? a->as : "orpc-cli";
    if (rc == 0) {
        orpc_routed_opts ro = {.routes = *routes,
                               .channel = ch,
                               .legacy_url = a->legacy_url,
                               .auth_url = a->auth_url,
                               .identity = as,
                               .ca_file = a->conn.ca,
                               .log = log_stderr};
        rc = orpc_routed_client_new(client, m->service, &ro, &detail);
        orpc_channel_unref(ch); /* the client holds its own reference */
    }
    if (rc == ORPC_ECONFIG) {
        if (strstr(detail.message, "no credentials for") != NULL) {
            /* names what to set: NAME_USERNAME and NAME_PASSWORD of --as */
            fprintf(stderr, "orpc: %s\n", detail.message);
            return EXIT_NO_CREDENTIALS;
        }
        /* a flag's value the routed client refused: say which flag */
        static const char *const flag_of[][2] = {
            {"orpc_routed_opts.legacy_url", "--legacy-url"},
            {"orpc_routed_opts.auth_url", "--auth-url"},
            {"orpc_routed_opts.ca_file", "--ca"}};
        const char *flag = NULL;
        for (size_t i = 0; i < sizeof flag_of / sizeof flag_of[0]; i++)
            if (strstr(detail.message, flag_of[i][0]) != NULL)
                flag = flag_of[i][1];
        fprintf(stderr, "orpc: %s%s%s\n", flag ? flag : "", flag ? ": " : "",
                detail.message);
        return EXIT_BAD_USAGE;
    }
    if (rc != 0) /* the routed client's detail, or the table's code */
        fprintf(stderr, "orpc: %s\n",
                detail.message[0] ? detail.message : orpc_strerror(rc));
    return rc == 0 ? 0 : rc == ORPC_ENOMEM ? EXIT_NO_RESOURCES : EXIT_BAD_USAGE;
}

/* Makes the call and prints its response(s); returns its status. */
static orpc_status do_call(orpc_client *client, const orpc_method_desc *m,
                           const ProtobufCMessage *req, const orpc_call_opts *o)
{
    if (m->kind == ORPC_CALL_UNARY) {
        ProtobufCMessage *resp = NULL;
        orpc_status st = orpc_client_invoke(client, m, req, &resp, o);
        if (st.code == ORPC_OK) {
            char *out = NULL;
            if (orpc_json_encode(&out, NULL, m->output, resp, NULL, NULL) == 0)
                puts(out);
            free(out);
            protobuf_c_message_free_unpacked(resp, NULL);
        }
        return st;
    }
    if (m->kind != ORPC_CALL_SERVER_STREAMING)
        return orpc_status_new(ORPC_UNIMPLEMENTED,
                               "orpc call sends one request: client and bidi "
                               "streaming are not supported");
    orpc_call *call = NULL;
    int rc = orpc_client_call_start(&call, client, m, req, o);
    if (rc != 0)
        return orpc_status_errorf(ORPC_UNIMPLEMENTED,
                                  "cannot start the stream: %s",
                                  orpc_strerror(rc));
    ProtobufCMessage *msg;
    while (orpc_call_recv(call, &msg) == 1) {
        char *out = NULL;
        if (orpc_json_encode(&out, NULL, m->output, msg, NULL, NULL) == 0)
            puts(out);
        free(out);
        protobuf_c_message_free_unpacked(msg, NULL);
    }
    return orpc_call_finish(call);
}

static int cmd_call(int argc, char **argv)
{
    call_args ca = {0};
    orpc__cli_src src = {0};
    const char *data = "{}", *name = NULL;
    int verbose = 0, code = EXIT_BAD_USAGE;
    orpc_metadata *md = NULL;
    ProtobufCMessage *req = NULL;
    orpc_client *client = NULL;
    orpc_routes *routes = NULL;
    if (orpc_metadata_new(&md, NULL) != 0)
        return EXIT_NO_RESOURCES;
    for (int i = 0; i < argc; i++) {
        int rc = orpc__cli_flag(&ca.conn, &src, argc, argv, &i);
        if (rc < 0)
            goto out;
        if (rc > 0)
            continue;
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(flag, var)                                                         \
    if (strcmp(a, flag) == 0 && v) {                                           \
        var = v;                                                               \
        i++;                                                                   \
        continue;                                                              \
    }
        OPT("--mode", ca.mode)
        OPT("--legacy-url", ca.legacy_url)
        OPT("-d", data)
        OPT("--as", ca.as)
        OPT("--auth-url", ca.auth_url)
#undef OPT
        if (strcmp(a, "-v") == 0 || strcmp(a, "--env") == 0) {
            *(a[1] == 'v' ? &verbose : &ca.from_env) = 1;
            continue;
        }
        if (strcmp(a, "-H") == 0 && v) {
            const char *colon = strchr(v, ':');
            char k[256];
            if (colon == NULL || (size_t)(colon - v) >= sizeof(k)) {
                fprintf(stderr, "orpc: -H wants 'key: value'\n");
                goto out;
            }
            snprintf(k, sizeof(k), "%.*s", (int)(colon - v), v);
            const char *val = colon + 1;
            while (*val == ' ')
                val++;
            if (orpc_metadata_add_str(md, k, val) != 0) {
                fprintf(stderr, "orpc: -H %s: not valid metadata\n", v);
                goto out;
            }
            i++;
            continue;
        }
        if (a[0] == '-' || name != NULL) {
            code = usage();
            goto out;
        }
        name = a;
    }
    if (name == NULL) {
        code = usage();
        goto out;
    }
    /* descriptors given, or a method not compiled in: the dynamic call */
    const orpc_method_desc *m =
        orpc__cli_src_given(&src) ? NULL : find_method(name);
    if (m == NULL && !ca.from_env &&
        (ca.conn.target || orpc__cli_src_given(&src))) {
        if (ca.mode || ca.legacy_url || ca.as || ca.auth_url || verbose) {
            fprintf(stderr,
                    "orpc: %s is called through its descriptors, "
                    "over gRPC only: drop --mode, --legacy-url, "
                    "--as, --auth-url and -v\n",
                    name);
            goto out;
        }
        char *text = read_data(data);
        if (text == NULL) {
            fprintf(stderr, "orpc: cannot read %s\n", data);
            goto out;
        }
        code = orpc__cli_dyn_call(&ca.conn, &src, name, text, md);
        free(text);
        goto out;
    }
    if (m == NULL) {
        fprintf(stderr,
                "orpc: no method %s (see `orpc list`; a method not "
                "compiled in needs --target, --protoset or "
                "--proto)\n",
                name);
        code = EXIT_NO_METHOD;
        goto out;
    }
    char *json = read_data(data);
    if (json == NULL) {
        fprintf(stderr, "orpc: cannot read %s\n", data);
        goto out;
    }
    orpc_error_detail jd;
    int jrc =
        orpc_json_decode(&req, m->input, json, strlen(json), NULL, NULL, &jd);
    free(json);
    if (jrc != 0) {
        /* exits as the call would end: the request is INVALID_ARGUMENT */
        fprintf(stderr, "orpc: request: %s\n", jd.message);
        code = jrc == ORPC_ENOMEM ? ORPC_RESOURCE_EXHAUSTED
                                  : ORPC_INVALID_ARGUMENT;
        goto out;
    }
    if ((code = make_client(&ca, m, &client, &routes)) != 0)
        goto out;
    orpc_served_by by = ORPC_SERVED_NONE;
    orpc_call_opts o = {
        .timeout_ms = ca.conn.timeout_ms, .metadata = md, .served_by = &by};
    orpc_status st = do_call(client, m, req, &o);
    code = st.code;
    if (st.code != ORPC_OK)
        orpc__cli_report(&ca.conn, st.code, st.message);
    orpc_status_clear(&st);
    if (verbose)
        fprintf(stderr, "served-by: %s\n",
                by == ORPC_SERVED_GRPC     ? "grpc"
                : by == ORPC_SERVED_LEGACY ? "legacy"
                                           : "none");
    report_shadow(routes, m, ca.conn.timeout_ms);
out:
    orpc_client_free(client);
    orpc_routes_unref(routes);
    if (req)
        protobuf_c_message_free_unpacked(req, NULL);
    orpc_metadata_free(md);
    return code;
}

/* ---- health ---- */

static int cmd_health(int argc, char **argv)
{
    const char *service = "";
    orpc__cli_conn conn = {.timeout_ms = 5000};
    for (int i = 0; i < argc; i++) {
        int rc = orpc__cli_conn_flag(&conn, argc, argv, &i);
        if (rc < 0)
            return EXIT_BAD_USAGE;
        if (rc > 0)
            continue;
        if (strcmp(argv[i], "--service") == 0 && i + 1 < argc) {
            service = argv[++i];
            continue;
        }
        return usage();
    }
    orpc_channel *ch = NULL;
    orpc_client *client = NULL;
    orpc_error_detail why = {0};
    int rc = orpc__cli_channel(&conn, 0, &ch);
    if (rc != 0)
        return rc;
    rc = orpc_client_new(&client, &grpc__health__v1__health__orpc_desc, ch,
                         NULL, &why);
    orpc_channel_unref(ch); /* the client holds its own reference */
    if (rc != 0) {
        fprintf(stderr, "orpc: --target %s: %s\n", conn.target,
                why.message[0] ? why.message : orpc_strerror(rc));
        return rc == ORPC_ENOMEM ? EXIT_NO_RESOURCES : EXIT_BAD_USAGE;
    }
    Grpc__Health__V1__HealthCheckRequest req =
        GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    Grpc__Health__V1__HealthCheckResponse *resp = NULL;
    orpc_call_opts o = {.timeout_ms = conn.timeout_ms};
    orpc_status st =
        grpc__health__v1__health__client__check(client, &req, &resp, &o);
    int code = st.code;
    if (st.code == ORPC_OK) {
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
            &grpc__health__v1__health_check_response__serving_status__descriptor,
            (int)resp->status);
        if (ev != NULL)
            puts(ev->name);
        else
            printf("%d\n", (int)resp->status);
        code =
            resp->status ==
                    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                ? 0
                : EXIT_NOT_SERVING;
        grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
    } else {
        orpc__cli_report(&conn, st.code, st.message);
    }
    orpc_status_clear(&st);
    orpc_client_free(client);
    return code;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("orpc %s\n", orpc_version());
        return 0;
    }
    if (strcmp(argv[1], "call") == 0)
        return cmd_call(argc - 2, argv + 2);
    if (strcmp(argv[1], "health") == 0)
        return cmd_health(argc - 2, argv + 2);
    if (strcmp(argv[1], "list") == 0)
        return cmd_list(argc - 2, argv + 2);
    if (strcmp(argv[1], "routes") == 0)
        return cmd_routes(argc - 2, argv + 2);
    return usage();
}
