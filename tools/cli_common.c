/*
 * cli_common.c — the `orpc` command's shared flag parsing and channel
 * making (cli.h): one place decides how a subcommand dials, so `call`,
 * `health` and `list` all speak TLS unless told --plaintext, and read
 * --ca, --cert, --key and --timeout alike.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int orpc__cli_conn_flag(orpc__cli_conn *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    static const char *const names[] = {"--target", "--ca", "--cert", "--key"};
    const char **vars[] = {&c->target, &c->ca, &c->cert, &c->key};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (strcmp(a, names[k]) == 0 && v) {
            *vars[k] = v;
            ++*i;
            return 1;
        }
    if (strcmp(a, "--plaintext") == 0) {
        c->plaintext = 1;
        return 1;
    }
    if (strcmp(a, "--timeout") == 0 && v) {
        char *end = NULL;
        c->timeout_ms = strtol(v, &end, 10);
        if (end == v || *end != '\0' || c->timeout_ms < 0) {
            fprintf(stderr, "orpc: --timeout wants milliseconds\n");
            return -1;
        }
        ++*i;
        return 1;
    }
    return 0;
}

int orpc__cli_src_flag(orpc__cli_src *s, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (v == NULL)
        return 0;
    if (strcmp(a, "--protoset") == 0) {
        s->protoset = v;
    } else if (strcmp(a, "--proto") == 0 || strcmp(a, "-I") == 0) {
        int is_proto = a[1] == '-';
        size_t *n = is_proto ? &s->n_protos : &s->n_imports;
        if (*n == ORPC__CLI_MAX_PROTOS) {
            fprintf(stderr, "orpc: at most %d %s\n", ORPC__CLI_MAX_PROTOS, a);
            return -1;
        }
        (is_proto ? s->protos : s->imports)[(*n)++] = v;
    } else {
        return 0;
    }
    ++*i;
    return 1;
}

int orpc__cli_flag(orpc__cli_conn *c, orpc__cli_src *s, int argc, char **argv,
                   int *i)
{
    int rc = orpc__cli_conn_flag(c, argc, argv, i);
    return rc == 0 && s ? orpc__cli_src_flag(s, argc, argv, i) : rc;
}

int orpc__cli_src_given(const orpc__cli_src *s)
{
    return s->protoset != NULL || s->n_protos > 0;
}

int orpc__cli_channel(const orpc__cli_conn *c, int ca_elsewhere,
                      orpc_channel **out)
{
    *out = NULL;
    if (c->target == NULL) {
        fprintf(stderr, "orpc: --target host:port is required\n");
        return EXIT_BAD_USAGE;
    }
    if (c->plaintext && (c->cert || c->key || (c->ca && !ca_elsewhere))) {
        fprintf(stderr, "orpc: --plaintext goes without --ca, --cert and "
                        "--key\n");
        return EXIT_BAD_USAGE;
    }
    if ((c->cert == NULL) != (c->key == NULL)) {
        fprintf(stderr, "orpc: --cert and --key go together\n");
        return EXIT_BAD_USAGE;
    }
    orpc_tls_opts tls = {
        .ca_file = c->ca, .cert_file = c->cert, .key_file = c->key};
    orpc_channel_opts co = {.tls = c->plaintext ? NULL : &tls,
                            .plaintext = c->plaintext};
    orpc_error_detail why = {0};
    int rc = orpc_channel_new(out, c->target, &co, NULL, &why);
    if (rc != 0) {
        fprintf(stderr, "orpc: --target %s: %s\n", c->target,
                why.message[0] ? why.message : orpc_strerror(rc));
        return rc == ORPC_ENOMEM ? EXIT_NO_RESOURCES : EXIT_BAD_USAGE;
    }
    return 0;
}

void orpc__cli_report(const orpc__cli_conn *c, orpc_code code,
                      const char *message)
{
    message = message ? message : "";
    fprintf(stderr, "%s: %s\n", orpc_code_name(code), message);
    /* OpenSSL's words for a peer that does not speak TLS */
    if (c && c->target && !c->plaintext && code == ORPC_UNAVAILABLE &&
        (strstr(message, "wrong version number") || strstr(message, "TLS") ||
         strstr(message, "SSL") || strstr(message, "handshake")))
        fprintf(stderr,
                "orpc: the TLS handshake with %s failed; if the "
                "server speaks cleartext HTTP/2, pass --plaintext\n",
                c->target);
}

char *orpc__cli_read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0, r;
    char *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 < cap)
            continue;
        char *nb = cap > max ? NULL : realloc(buf, cap * 2);
        if (nb == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    if (f != stdin)
        fclose(f);
    if (buf && n > max) {
        free(buf);
        buf = NULL;
    }
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = n;
    }
    return buf;
}
