/*
 * dyncmd.c — `orpc list` and `orpc call` for methods that are not compiled
 * into the command: their descriptors come from the server's reflection
 * service (reflect.c), a --protoset file, or protoc run on --proto files;
 * requests and responses go through the dynamic codec (dynmsg.c) and the
 * raw message type, over an ordinary orpc channel.
 *
 * Design notes:
 * - The method descriptor of a dynamic call is built here, on the stack:
 *   its path from the name asked for, its kind from the
 *   MethodDescriptorProto, and the raw message type (dynmsg.h) as both
 *   input and output.  liborpc needs nothing else of a method.
 * - `--proto` runs protoc (PROTOC in the environment, else `protoc` on the
 *   PATH) with --include_imports into a temporary file, read back and
 *   removed at once.
 * - -d holds one JSON value per request, one after another (whitespace
 *   between them is fine): one for unary and server-streaming methods, any
 *   number for client and bidi streaming, whose requests all go before the
 *   responses are read.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "descpool.h"
#include "dynmsg.h"
#include "reflect.h"

#define MAX_REQUESTS 100000

/* Runs protoc on s->protos into a temporary descriptor set and adds it. */
static int load_protos(const orpc__cli_src *s, orpc__dpool *pool)
{
    const char *tmpdir = getenv("TMPDIR");
    char tmp[4096], out_flag[4200];
    snprintf(tmp, sizeof tmp, "%s/orpc-protoset-XXXXXX",
             tmpdir && tmpdir[0] ? tmpdir : "/tmp");
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "orpc: --proto: cannot make a temporary file\n");
        return EXIT_BAD_USAGE;
    }
    close(fd);
    snprintf(out_flag, sizeof out_flag, "--descriptor_set_out=%s", tmp);
    const char *protoc = getenv("PROTOC");
    if (protoc == NULL || protoc[0] == '\0')
        protoc = "protoc";
    const char *argv[2 * ORPC__CLI_MAX_PROTOS + 8];
    size_t n = 0;
    argv[n++] = protoc;
    argv[n++] = "--include_imports";
    argv[n++] = out_flag;
    char inc[ORPC__CLI_MAX_PROTOS][4200];
    for (size_t i = 0; i < s->n_imports; i++) {
        snprintf(inc[i], sizeof inc[i], "-I%s", s->imports[i]);
        argv[n++] = inc[i];
    }
    if (s->n_imports == 0)
        argv[n++] = "-I.";
    for (size_t i = 0; i < s->n_protos; i++)
        argv[n++] = s->protos[i];
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(2, 1); /* protoc's messages go to our stderr */
        execvp(protoc, (char *const *)argv);
        fprintf(stderr, "orpc: --proto: cannot run %s\n", protoc);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        unlink(tmp);
        fprintf(stderr, "orpc: --proto: protoc failed\n");
        return EXIT_BAD_USAGE;
    }
    size_t len = 0;
    char *data = orpc__cli_read_file(tmp, ORPC__DPOOL_MAX_BYTES, &len);
    unlink(tmp);
    char why[256];
    if (data == NULL ||
        orpc__dpool_add_set(pool, (uint8_t *)data, len, why, sizeof why)) {
        fprintf(stderr, "orpc: --proto: %s\n",
                data ? why : "protoc's output is unreadable or too large");
        free(data);
        return EXIT_BAD_USAGE;
    }
    free(data);
    return 0;
}

/* Fills |pool| from |s|'s files. */
static int load_offline(const orpc__cli_src *s, orpc__dpool *pool)
{
    if (s->protoset) {
        size_t len = 0;
        char why[256];
        char *data =
            orpc__cli_read_file(s->protoset, ORPC__DPOOL_MAX_BYTES, &len);
        if (data == NULL) {
            fprintf(stderr,
                    "orpc: --protoset %s: unreadable, or over %u bytes\n",
                    s->protoset, ORPC__DPOOL_MAX_BYTES);
            return EXIT_BAD_USAGE;
        }
        int rc =
            orpc__dpool_add_set(pool, (uint8_t *)data, len, why, sizeof why);
        free(data);
        if (rc != 0) {
            fprintf(stderr, "orpc: --protoset %s: %s\n", s->protoset, why);
            return EXIT_BAD_USAGE;
        }
    }
    return s->n_protos ? load_protos(s, pool) : 0;
}

static orpc_call_kind kind(const Google__Protobuf__MethodDescriptorProto *m)
{
    return m->client_streaming
               ? (m->server_streaming ? ORPC_CALL_BIDI_STREAMING
                                      : ORPC_CALL_CLIENT_STREAMING)
               : (m->server_streaming ? ORPC_CALL_SERVER_STREAMING
                                      : ORPC_CALL_UNARY);
}

static const char *kind_of(const Google__Protobuf__MethodDescriptorProto *m)
{
    return orpc_call_kind_name(kind(m));
}

/* Descriptor strings are optional: "" for an absent one. */
static const char *nz(const char *s)
{
    return s ? s : "";
}

static const char *bare(const char *type)
{
    return type && type[0] == '.' ? type + 1 : type ? type : "";
}

/* Prints (or adds to |rows|) the methods of service |name|; 0, or 1 when
 * the pool does not have it. */
static int list_service(const orpc__dpool *pool, const char *name, int detailed,
                        json_t *rows)
{
    const Google__Protobuf__ServiceDescriptorProto *sd =
        orpc__dpool_service(pool, name);
    if (sd == NULL)
        return 1;
    for (size_t i = 0; i < sd->n_method; i++) {
        const Google__Protobuf__MethodDescriptorProto *m = sd->method[i];
        if (rows)
            json_array_append_new(
                rows, json_pack("{s:s, s:s, s:s, s:s, s:s}", "service", name,
                                "method", nz(m->name), "kind", kind_of(m),
                                "request", bare(m->input_type), "response",
                                bare(m->output_type)));
        else if (detailed)
            printf("%s/%s\t%s\t%s\t%s\n", name, nz(m->name), kind_of(m),
                   bare(m->input_type), bare(m->output_type));
        else
            printf("%s/%s\t%s\n", name, nz(m->name), kind_of(m));
    }
    return 0;
}

/* The names of every service in |pool| (one allocation, as
 * orpc__refl_list()). */
static int pool_services(const orpc__dpool *pool, char ***names, size_t *n)
{
    size_t count = 0, bytes = 0;
    for (size_t f = 0; f < orpc__dpool_n_files(pool); f++) {
        const Google__Protobuf__FileDescriptorProto *fd =
            orpc__dpool_file(pool, f);
        for (size_t s = 0; s < fd->n_service; s++) {
            count++;
            bytes += strlen(fd->package ? fd->package : "") + 1 +
                     strlen(nz(fd->service[s]->name)) + 1;
        }
    }
    char **out = malloc(count * sizeof(char *) + bytes + 1);
    if (out == NULL)
        return -1;
    char *at = (char *)(out + count), *limit = at + bytes + 1;
    size_t k = 0;
    for (size_t f = 0; f < orpc__dpool_n_files(pool); f++) {
        const Google__Protobuf__FileDescriptorProto *fd =
            orpc__dpool_file(pool, f);
        for (size_t s = 0; s < fd->n_service; s++) {
            const char *pkg = fd->package ? fd->package : "";
            out[k++] = at;
            int w = snprintf(at, (size_t)(limit - at), "%s%s%s", pkg,
                             pkg[0] ? "." : "", nz(fd->service[s]->name));
            at += w > 0 ? w + 1 : 1;
        }
    }
    *names = out;
    *n = count;
    return 0;
}

int orpc__cli_dyn_list(const orpc__cli_conn *c, const orpc__cli_src *s,
                       const char *service, int as_json)
{
    orpc__dpool *pool = NULL;
    orpc_channel *ch = NULL;
    orpc__refl *refl = NULL;
    char **names = NULL;
    size_t n = 0;
    int code = 0;
    json_t *rows = as_json ? json_array() : NULL;
    if (orpc__dpool_new(&pool) != 0) {
        code = EXIT_NO_RESOURCES;
        goto out;
    }
    if (orpc__cli_src_given(s)) {
        if ((code = load_offline(s, pool)) != 0)
            goto out;
        if (pool_services(pool, &names, &n) != 0) {
            code = EXIT_NO_RESOURCES;
            goto out;
        }
    } else {
        if ((code = orpc__cli_channel(c, 0, &ch)) != 0)
            goto out;
        if (orpc__refl_new(&refl, ch, c->timeout_ms) != 0) {
            code = EXIT_NO_RESOURCES;
            goto out;
        }
        code = orpc__refl_list(refl, &names, &n);
        if (code != 0) {
            orpc__cli_report(c, (orpc_code)code, orpc__refl_error(refl));
            goto out;
        }
    }
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (service && strcmp(service, names[i]) != 0)
            continue;
        found = 1;
        if (refl && !orpc__dpool_service(pool, names[i])) {
            int rc = orpc__refl_fetch(refl, names[i], pool);
            if (rc != 0 && service) {
                orpc__cli_report(c, (orpc_code)rc, orpc__refl_error(refl));
                code = rc;
                goto out;
            }
        }
        if (list_service(pool, names[i], service != NULL, rows) == 0)
            continue;
        if (rows) /* listed, but its descriptor could not be had */
            json_array_append_new(rows,
                                  json_pack("{s:s, s:s}", "service", names[i],
                                            "error", "no descriptor"));
        else
            printf("%s\t(no descriptor)\n", names[i]);
    }
    if (service && !found) {
        fprintf(stderr, "orpc: no service %s\n", service);
        code = ORPC_NOT_FOUND;
        goto out;
    }
    if (rows) {
        char *text = json_dumps(rows, JSON_INDENT(2));
        puts(text ? text : "[]");
        free(text);
    }
out:
    json_decref(rows);
    free(names);
    orpc__refl_free(refl);
    orpc_channel_unref(ch);
    orpc__dpool_free(pool);
    return code;
}

/* Decodes and prints one response; 0 or an exit code. */
static int print_response(const orpc__dpool *pool, const char *type,
                          ProtobufCMessage *msg)
{
    orpc__buf b = {0};
    char why[512];
    json_t *v = NULL;
    if (orpc__raw_bytes(msg, &b) == 0)
        v = orpc__dyn_decode(pool, type, b.data, b.len, why, sizeof why);
    else
        snprintf(why, sizeof why, "out of memory");
    orpc__buf_free(&b);
    protobuf_c_message_free_unpacked(msg, NULL);
    char *text = v ? orpc__dyn_dumps(v) : NULL;
    json_decref(v);
    if (text == NULL) {
        fprintf(stderr, "orpc: response: %s\n", v ? "out of memory" : why);
        return EXIT_BAD_ANSWER;
    }
    puts(text);
    fflush(stdout);
    free(text);
    return 0;
}

/* The requests of -d: every JSON value in |data|, encoded as |type|. */
static int encode_requests(const orpc__dpool *pool, const char *type,
                           const char *data, ProtobufCMessage ***out, size_t *n)
{
    size_t len = strlen(data), at = 0, cap = 0;
    *out = NULL;
    *n = 0;
    for (;;) {
        while (at < len && strchr(" \t\r\n", data[at]))
            at++;
        if (at == len)
            break;
        json_error_t je;
        json_t *v = json_loadb(data + at, len - at,
                               JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY |
                                   JSON_REJECT_DUPLICATES,
                               &je);
        if (v == NULL) {
            fprintf(stderr, "orpc: request: %s\n", je.text);
            return EXIT_BAD_USAGE;
        }
        at += (size_t)je.position;
        orpc__buf b = {0};
        char why[512];
        int rc = orpc__dyn_encode(pool, type, v, &b, why, sizeof why);
        json_decref(v);
        ProtobufCMessage *m = rc == 0 ? orpc__raw_wrap(b.data, b.len) : NULL;
        orpc__buf_free(&b);
        if (rc != 0) {
            fprintf(stderr, "orpc: request: %s\n", why);
            return EXIT_BAD_USAGE;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 4;
            void *nb =
                cap > MAX_REQUESTS ? NULL : realloc(*out, cap * sizeof(**out));
            if (nb == NULL) {
                protobuf_c_message_free_unpacked(m, NULL);
                fprintf(stderr, "orpc: request: too many\n");
                return EXIT_NO_RESOURCES;
            }
            *out = nb;
        }
        if (m == NULL) {
            fprintf(stderr, "orpc: request: out of memory\n");
            return EXIT_NO_RESOURCES;
        }
        (*out)[(*n)++] = m;
    }
    return 0;
}

/* Makes the call and prints the responses; the exit code. */
static int run_call(const orpc__cli_conn *c, orpc_channel *ch,
                    const orpc_method_desc *md, const orpc__dpool *pool,
                    const char *out_type, ProtobufCMessage **reqs,
                    size_t n_reqs, const orpc_call_opts *o)
{
    orpc_status st;
    int printed = 0;
    if (md->kind == ORPC_CALL_UNARY) {
        ProtobufCMessage *resp = NULL;
        st = orpc_channel_invoke(ch, md, reqs[0], &resp, o);
        if (st.code == ORPC_OK)
            printed = print_response(pool, out_type, resp);
    } else {
        orpc_call *call = NULL;
        int streaming_in = md->kind == ORPC_CALL_CLIENT_STREAMING ||
                           md->kind == ORPC_CALL_BIDI_STREAMING;
        int rc = orpc_channel_call_start(&call, ch, md,
                                         streaming_in ? NULL : reqs[0], o);
        if (rc != 0) {
            fprintf(stderr, "orpc: cannot start the call: %s\n",
                    orpc_strerror(rc));
            return EXIT_NO_METHOD;
        }
        for (size_t i = 0; streaming_in && i < n_reqs; i++)
            if (orpc_call_send(call, reqs[i]) != 0)
                break; /* the call ended: finish says why */
        if (streaming_in)
            orpc_call_close_send(call);
        ProtobufCMessage *msg;
        while (orpc_call_recv(call, &msg) == 1)
            if (printed == 0)
                printed = print_response(pool, out_type, msg);
            else
                protobuf_c_message_free_unpacked(msg, NULL);
        st = orpc_call_finish(call);
    }
    int code = st.code;
    if (st.code != ORPC_OK)
        orpc__cli_report(c, st.code, st.message);
    orpc_status_clear(&st);
    return code ? code : printed;
}

int orpc__cli_dyn_call(const orpc__cli_conn *c, const orpc__cli_src *s,
                       const char *name, const char *data, orpc_metadata *md)
{
    orpc__dpool *pool = NULL;
    orpc_channel *ch = NULL;
    ProtobufCMessage **reqs = NULL;
    size_t n_reqs = 0;
    int code;
    char svc[1024], path[2048];
    const char *p = name[0] == '/' ? name + 1 : name;
    const char *slash = strrchr(p, '/');
    if (slash == NULL || slash == p || slash[1] == '\0' ||
        (size_t)(slash - p) >= sizeof svc) {
        fprintf(stderr, "orpc: %s: not pkg.Service/Method\n", name);
        return EXIT_BAD_USAGE;
    }
    snprintf(svc, sizeof svc, "%.*s", (int)(slash - p), p);
    snprintf(path, sizeof path, "/%s", p);
    if (orpc__dpool_new(&pool) != 0)
        return EXIT_NO_RESOURCES;
    if ((code = orpc__cli_channel(c, 0, &ch)) != 0)
        goto out;
    if (orpc__cli_src_given(s)) {
        if ((code = load_offline(s, pool)) != 0)
            goto out;
    } else {
        orpc__refl *refl = NULL;
        if (orpc__refl_new(&refl, ch, c->timeout_ms) != 0) {
            code = EXIT_NO_RESOURCES;
            goto out;
        }
        code = orpc__refl_fetch(refl, svc, pool);
        if (code != 0)
            orpc__cli_report(c, (orpc_code)code, orpc__refl_error(refl));
        orpc__refl_free(refl);
        if (code != 0)
            goto out;
    }
    const Google__Protobuf__ServiceDescriptorProto *sd =
        orpc__dpool_service(pool, svc);
    const Google__Protobuf__MethodDescriptorProto *m = NULL;
    for (size_t i = 0; sd && i < sd->n_method; i++)
        if (sd->method[i]->name && strcmp(sd->method[i]->name, slash + 1) == 0)
            m = sd->method[i];
    if (m == NULL) {
        fprintf(stderr, "orpc: no method %s in the descriptors\n", p);
        code = EXIT_NO_METHOD;
        goto out;
    }
    orpc_method_desc dm = {.name = slash + 1,
                           .path = path,
                           .kind = kind(m),
                           .input = &orpc__raw_info,
                           .output = &orpc__raw_info};
    if ((code = encode_requests(pool, bare(m->input_type), data, &reqs,
                                &n_reqs)) != 0)
        goto out;
    int one =
        dm.kind == ORPC_CALL_UNARY || dm.kind == ORPC_CALL_SERVER_STREAMING;
    if (n_reqs == 0) { /* no -d: one empty request */
        reqs = malloc(sizeof(*reqs));
        if (reqs == NULL || (reqs[0] = orpc__raw_wrap(NULL, 0)) == NULL) {
            code = EXIT_NO_RESOURCES;
            goto out;
        }
        n_reqs = 1;
    } else if (one && n_reqs > 1) {
        fprintf(stderr, "orpc: %s takes one request, -d has %zu\n",
                orpc_call_kind_name(dm.kind), n_reqs);
        code = EXIT_BAD_USAGE;
        goto out;
    }
    orpc_call_opts o = {.timeout_ms = c->timeout_ms, .metadata = md};
    code = run_call(c, ch, &dm, pool, bare(m->output_type), reqs, n_reqs, &o);
out:
    for (size_t i = 0; i < n_reqs; i++)
        protobuf_c_message_free_unpacked(reqs[i], NULL);
    free(reqs);
    orpc_channel_unref(ch);
    orpc__dpool_free(pool);
    return code;
}
