/*
 * plan.c — decodes and validates a file's options; names what is emitted.
 *
 * protobuf-c 1.4 decodes descriptor options but keeps extensions it does not
 * know (google.api.http, orpc.*) as unknown fields.  They are decoded here
 * from those bytes with the generated protoc-c types.  Every check that can
 * fail happens in this file, each reported at the most precise source
 * location protoc recorded, so the emitters that follow cannot fail.
 */
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int cg_str_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* --- options from unknown fields ---------------------------------------- */

/* protobuf-c keeps a length-delimited unknown field's bytes with their
 * varint length prefix; finds the payload.  -1 when the prefix is bad. */
static int payload_of(const ProtobufCMessageUnknownField *u, const uint8_t **p,
                      size_t *n)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; i < u->len && i < 10; i++) {
        v |= (uint64_t)(u->data[i] & 0x7f) << (7 * i);
        if ((u->data[i] & 0x80) == 0)
            break;
    }
    if (i >= u->len || i == 10 || v != u->len - i - 1)
        return -1;
    *p = u->data + i + 1;
    *n = (size_t)v;
    return 0;
}

/* Concatenation of the payloads of every length-delimited unknown field
 * numbered |tag| (a non-repeated message field given twice merges, which is
 * what concatenation does).  Returns 0 with |*data| NULL when absent, -1 on
 * a wire-type mismatch or a malformed field. */
static int unknown_bytes(const ProtobufCMessage *m, uint32_t tag,
                         uint8_t **data, size_t *len)
{
    size_t total = 0, found = 0;
    const uint8_t *p;
    size_t n;
    *data = NULL;
    *len = 0;
    if (m == NULL)
        return 0;
    for (unsigned i = 0; i < m->n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
        if (u->tag != tag)
            continue;
        if (u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED ||
            payload_of(u, &p, &n) != 0)
            return -1;
        total += n;
        found++;
    }
    if (found == 0)
        return 0;
    uint8_t *d = cg_xcalloc(total + 1, 1);
    size_t off = 0;
    for (unsigned i = 0; i < m->n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
        if (u->tag == tag && payload_of(u, &p, &n) == 0) {
            memcpy(d + off, p, n);
            off += n;
        }
    }
    *data = d;
    *len = total;
    return 0;
}

/* Decodes extension |tag| of |opts| as message |desc| into |*out|. */
static int ext_message(const ProtobufCMessage *opts, uint32_t tag,
                       const ProtobufCMessageDescriptor *desc,
                       ProtobufCMessage **out)
{
    uint8_t *d;
    size_t n;
    *out = NULL;
    if (unknown_bytes(opts, tag, &d, &n) != 0)
        return -1;
    if (d == NULL)
        return 0;
    *out = protobuf_c_message_unpack(desc, NULL, n, d);
    free(d);
    return *out ? 0 : -1;
}

int cg_opt_legacy_header(const Google__Protobuf__FieldOptions *o,
                         Orpc__LegacyHeader **out)
{
    return ext_message(o ? &o->base : NULL, CG_EXT_LEGACY_HEADER,
                       &orpc__legacy_header__descriptor,
                       (ProtobufCMessage **)out);
}

int cg_opt_legacy_name(const Google__Protobuf__EnumValueOptions *o, char **out)
{
    uint8_t *d;
    size_t n;
    *out = NULL;
    if (unknown_bytes(o ? &o->base : NULL, CG_EXT_LEGACY_NAME, &d, &n) != 0)
        return -1;
    if (d == NULL)
        return 0;
    char *s = cg_xcalloc(n + 1, 1);
    memcpy(s, d, n);
    free(d);
    if (strlen(s) != n) { /* embedded NUL */
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

const cg_field *cg_field_named(const cg_message *msg, const char *name)
{
    for (size_t i = 0; msg && i < msg->n_field; i++)
        if (strcmp(msg->field[i]->name, name) == 0)
            return msg->field[i];
    return NULL;
}

const char *cg_rule_verb(const Google__Api__HttpRule *r)
{
    switch (r->pattern_case) {
    case GOOGLE__API__HTTP_RULE__PATTERN_GET:
        return "GET";
    case GOOGLE__API__HTTP_RULE__PATTERN_PUT:
        return "PUT";
    case GOOGLE__API__HTTP_RULE__PATTERN_POST:
        return "POST";
    case GOOGLE__API__HTTP_RULE__PATTERN_DELETE:
        return "DELETE";
    case GOOGLE__API__HTTP_RULE__PATTERN_PATCH:
        return "PATCH";
    case GOOGLE__API__HTTP_RULE__PATTERN_CUSTOM:
        return r->custom && r->custom->kind ? r->custom->kind : "";
    default:
        return "";
    }
}

const char *cg_rule_path(const Google__Api__HttpRule *r)
{
    switch (r->pattern_case) {
    case GOOGLE__API__HTTP_RULE__PATTERN_GET:
        return r->get;
    case GOOGLE__API__HTTP_RULE__PATTERN_PUT:
        return r->put;
    case GOOGLE__API__HTTP_RULE__PATTERN_POST:
        return r->post;
    case GOOGLE__API__HTTP_RULE__PATTERN_DELETE:
        return r->delete_;
    case GOOGLE__API__HTTP_RULE__PATTERN_PATCH:
        return r->patch;
    case GOOGLE__API__HTTP_RULE__PATTERN_CUSTOM:
        return r->custom && r->custom->path ? r->custom->path : "";
    default:
        return "";
    }
}

/* --- validation helpers -------------------------------------------------- */

#include "common/path_template.h"

#define LABEL_REPEATED                                                         \
    GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED
#define TYPE_MESSAGE                                                           \
    GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_MESSAGE
#define TYPE_GROUP GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_GROUP
#define TYPE_STRING GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_STRING

static int is_token_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

static int printable_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

typedef struct rule_ctx {
    cg_plan *plan;
    const cg_method_plan *mp;
    const int32_t *loc;
    size_t loc_len;
} rule_ctx;

static int rerr(rule_ctx *rc, const char *what, const char *fmt_arg1,
                const char *fmt_arg2)
{
    return cg_error(rc->plan->ctx, rc->plan->file, rc->loc, rc->loc_len,
                    "method %s: %s%s%s", rc->mp->m->name, what,
                    fmt_arg1 ? fmt_arg1 : "", fmt_arg2 ? fmt_arg2 : "");
}

/* Resolves "a.b.c" within |msg|; checks every step.  Returns 0 or -1. */
static int check_field_path(rule_ctx *rc, const cg_type *msg, const char *path,
                            const char *role)
{
    char *copy = cg_strdup(path), *save = NULL;
    const cg_type *cur = msg;
    const char *part = strtok_r(copy, ".", &save);
    int rv = 0;
    while (part != NULL) {
        const cg_field *f =
            cur && cur->msg ? cg_field_named(cur->msg, part) : NULL;
        const char *next = strtok_r(NULL, ".", &save);
        if (f == NULL) {
            rv = cg_error(rc->plan->ctx, rc->plan->file, rc->loc, rc->loc_len,
                          "method %s: %s '%s' names no field of %s "
                          "('%s' not found)",
                          rc->mp->m->name, role, path,
                          cur ? cur->full_name : "?", part);
            break;
        }
        if (f->label == LABEL_REPEATED) {
            rv = cg_error(rc->plan->ctx, rc->plan->file, rc->loc, rc->loc_len,
                          "method %s: %s '%s' names a repeated field",
                          rc->mp->m->name, role, path);
            break;
        }
        if (next != NULL) {
            if (f->type != TYPE_MESSAGE) {
                rv = cg_error(rc->plan->ctx, rc->plan->file, rc->loc,
                              rc->loc_len,
                              "method %s: %s '%s': '%s' is not a message",
                              rc->mp->m->name, role, path, part);
                break;
            }
            cur = cg_find_type(rc->plan->ctx, f->type_name);
        } else if (f->type == TYPE_MESSAGE || f->type == TYPE_GROUP) {
            rv = cg_error(rc->plan->ctx, rc->plan->file, rc->loc, rc->loc_len,
                          "method %s: %s '%s' names a message field; "
                          "path variables bind scalar fields",
                          rc->mp->m->name, role, path);
            break;
        }
        part = next;
    }
    free(copy);
    return rv;
}

typedef struct route {
    char *key;               /* verb, space, shape: "GET /jobs/" then a star */
    const char *method_full; /* "pkg.Svc.Method" owner, for the message */
} route;

typedef struct routes {
    route *r;
    size_t n, cap;
    char **owners; /* every owner string, freed when planning ends */
    size_t n_owners, cap_owners;
} routes;

static int check_rule(rule_ctx *rc, const Google__Api__HttpRule *r, int nested,
                      routes *seen, const char *owner)
{
    char err[256], shape[ORPC_TMPL_MAX_LEN * 2];
    size_t pos = 0;
    orpc_path_template *t = NULL;
    const cg_method_plan *mp = rc->mp;

    if (r->pattern_case == GOOGLE__API__HTTP_RULE__PATTERN__NOT_SET)
        return rerr(rc,
                    "google.api.http rule sets no pattern "
                    "(get, put, post, delete, patch or custom)",
                    NULL, NULL);
    if (cg_str_set(r->selector))
        return rerr(rc,
                    "google.api.http 'selector' belongs in service "
                    "configuration, not in a method's rule",
                    NULL, NULL);
    if (r->pattern_case == GOOGLE__API__HTTP_RULE__PATTERN_CUSTOM) {
        const char *k = cg_rule_verb(r);
        if (!cg_str_set(k))
            return rerr(rc, "custom pattern has an empty kind", NULL, NULL);
        for (const char *p = k; *p; p++)
            if (!is_token_char(*p))
                return rerr(rc,
                            "custom pattern kind is not an HTTP method "
                            "token: ",
                            k, NULL);
    }
    if (nested && r->n_additional_bindings > 0)
        return rerr(rc, "additional_bindings may not nest", NULL, NULL);

    const char *path = cg_rule_path(r);
    int prc = orpc__path_template_parse(path, &t, err, sizeof(err), &pos);
    if (prc == -2)
        return rerr(rc, "out of memory", NULL, NULL);
    if (prc != 0) {
        char at[64];
        snprintf(at, sizeof(at), " (at byte %zu)", pos);
        char *what =
            cg_strdupf("path template '%s' does not parse: %s", path, err);
        int rv = rerr(rc, what, at, NULL);
        free(what);
        return rv;
    }
    int rv = 0;
    for (size_t i = 0; i < t->n_vars && rv == 0; i++)
        rv = check_field_path(rc, mp->in, t->vars[i].field_path,
                              "path variable");
    const char *body = r->body;
    if (rv == 0 && cg_str_set(body)) {
        if (strcmp(cg_rule_verb(r), "GET") == 0) {
            rv = rerr(rc, "a GET rule cannot have a body", NULL, NULL);
        } else if (strcmp(body, "*") != 0) {
            const cg_field *f = cg_field_named(mp->in->msg, body);
            if (f == NULL)
                rv = cg_error(rc->plan->ctx, rc->plan->file, rc->loc,
                              rc->loc_len,
                              "method %s: body '%s' names no field of %s",
                              mp->m->name, body, mp->in->full_name);
            else if (f->label == LABEL_REPEATED)
                rv = cg_error(rc->plan->ctx, rc->plan->file, rc->loc,
                              rc->loc_len,
                              "method %s: body '%s' names a repeated field",
                              mp->m->name, body);
            /* A path variable inside the body field is allowed: the
             * update pattern of Google's API design guide,
             *   patch: "/v1/{book.name}" body: "book" (and its
             *   {book.name=shelves/x/books/y} forms),
             * sends the field in both, and on a request the path's value
             * wins (as grpc-gateway and Envoy do).  The variable itself
             * must still be a scalar, checked with the path above. */
        }
    }
    if (rv == 0 && cg_str_set(r->response_body) &&
        cg_field_named(mp->out->msg, r->response_body) == NULL)
        rv = cg_error(rc->plan->ctx, rc->plan->file, rc->loc, rc->loc_len,
                      "method %s: response_body '%s' names no field of %s",
                      mp->m->name, r->response_body, mp->out->full_name);
    if (rv == 0) {
        if (orpc__path_template_shape(t, shape, sizeof(shape)) < 0)
            rv = rerr(rc, "path template too long", NULL, NULL);
    }
    if (rv == 0) {
        char *key = cg_strdupf("%s %s", cg_rule_verb(r), shape);
        for (size_t i = 0; i < seen->n; i++) {
            if (strcmp(seen->r[i].key, key) == 0) {
                char *what =
                    cg_strdupf("%s %s is also the route of %s", cg_rule_verb(r),
                               path, seen->r[i].method_full);
                rv = rerr(rc, what, NULL, NULL);
                free(what);
                break;
            }
        }
        if (rv == 0) {
            if (seen->n == seen->cap) {
                seen->cap = seen->cap ? seen->cap * 2 : 16;
                route *nr = realloc(seen->r, seen->cap * sizeof(*nr));
                if (nr == NULL)
                    abort();
                seen->r = nr;
            }
            seen->r[seen->n].key = key;
            seen->r[seen->n].method_full = owner;
            seen->n++;
        } else {
            free(key);
        }
    }
    orpc__path_template_free(t);
    for (size_t i = 0; rv == 0 && i < r->n_additional_bindings; i++)
        rv = check_rule(rc, r->additional_bindings[i], 1, seen, owner);
    return rv;
}

/* --- orpc options checks ----------------------------------------------- */

static int check_header_name(const char *n)
{
    static const char *const reserved[] = {
        "content-length", "content-type", "host",   "transfer-encoding",
        "connection",     "te",           "upgrade"};
    if (!cg_str_set(n) || strlen(n) > 256)
        return -1;
    for (const char *p = n; *p; p++)
        if (!is_token_char(*p))
            return -1;
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strcasecmp(n, reserved[i]) == 0)
            return -1;
    return 0;
}

static int check_message_options(cg_plan *plan, const cg_type *t)
{
    int32_t path[CG_MAX_PATH + 4];
    memcpy(path, t->path, t->path_len * sizeof(int32_t));
    for (size_t i = 0; i < t->msg->n_field; i++) {
        const cg_field *f = t->msg->field[i];
        Orpc__LegacyHeader *h = NULL;
        size_t pl = t->path_len;
        path[pl] = CG_MSG_FIELD;
        path[pl + 1] = (int32_t)i;
        path[pl + 2] = CG_FIELD_OPTIONS;
        path[pl + 3] = (int32_t)CG_EXT_LEGACY_HEADER;
        if (cg_opt_legacy_header(f->options, &h) != 0)
            return cg_error(plan->ctx, plan->file, path, pl + 4,
                            "field %s: orpc.legacy_header does not decode",
                            f->name);
        if (h == NULL)
            continue;
        int rv = 0;
        if (f->type != TYPE_STRING || f->label == LABEL_REPEATED)
            rv = cg_error(plan->ctx, plan->file, path, pl + 4,
                          "field %s: orpc.legacy_header needs a singular "
                          "string field",
                          f->name);
        else if (check_header_name(h->name) != 0)
            rv = cg_error(plan->ctx, plan->file, path, pl + 4,
                          "field %s: orpc.legacy_header name '%s' is not a "
                          "usable HTTP header name",
                          f->name, h->name ? h->name : "");
        else if (!printable_ascii(h->prefix ? h->prefix : "") ||
                 strlen(h->prefix ? h->prefix : "") > 256)
            rv = cg_error(plan->ctx, plan->file, path, pl + 4,
                          "field %s: orpc.legacy_header prefix must be "
                          "printable ASCII of at most 256 bytes",
                          f->name);
        orpc__legacy_header__free_unpacked(h, NULL);
        if (rv != 0)
            return rv;
    }
    return 0;
}

static int check_enum_options(cg_plan *plan, const cg_type *t)
{
    int32_t path[CG_MAX_PATH + 4];
    char **names = cg_xcalloc(t->enm->n_value, sizeof(char *));
    int rv = 0;
    memcpy(path, t->path, t->path_len * sizeof(int32_t));
    for (size_t i = 0; i < t->enm->n_value && rv == 0; i++) {
        const Google__Protobuf__EnumValueDescriptorProto *v = t->enm->value[i];
        size_t pl = t->path_len;
        path[pl] = CG_ENUM_VALUE;
        path[pl + 1] = (int32_t)i;
        path[pl + 2] = CG_ENUM_VALUE_OPTIONS;
        path[pl + 3] = (int32_t)CG_EXT_LEGACY_NAME;
        if (cg_opt_legacy_name(v->options, &names[i]) != 0) {
            rv = cg_error(plan->ctx, plan->file, path, pl + 4,
                          "enum value %s: orpc.legacy_name does not decode",
                          v->name);
            break;
        }
        if (names[i] == NULL)
            continue;
        if (names[i][0] == '\0' || !printable_ascii(names[i]) ||
            strlen(names[i]) > 256)
            rv = cg_error(plan->ctx, plan->file, path, pl + 4,
                          "enum value %s: orpc.legacy_name must be 1 to 256 "
                          "printable ASCII bytes",
                          v->name);
        for (size_t j = 0; j < i && rv == 0; j++)
            if (names[j] != NULL && strcmp(names[j], names[i]) == 0)
                rv = cg_error(plan->ctx, plan->file, path, pl + 4,
                              "enum value %s: orpc.legacy_name '%s' is "
                              "already the legacy name of %s",
                              v->name, names[i], t->enm->value[j]->name);
    }
    for (size_t i = 0; i < t->enm->n_value; i++)
        free(names[i]);
    free(names);
    return rv;
}

static int check_env_name(const char *s)
{
    if (!cg_str_set(s) || (s[0] >= '0' && s[0] <= '9'))
        return -1;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return -1;
    return 0;
}

static int check_url(const char *s)
{
    const char *rest;
    if (strncmp(s, "http://", 7) == 0)
        rest = s + 7;
    else if (strncmp(s, "https://", 8) == 0)
        rest = s + 8;
    else
        return -1;
    if (*rest == '\0' || *rest == '/')
        return -1;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return -1;
    return strlen(s) > 2048 ? -1 : 0;
}

/* --- planning ----------------------------------------------------------- */

static void collect_types(cg_plan *plan, size_t *cap, const cg_message *m);

static void push_type(cg_plan *plan, size_t *cap, const cg_type *t)
{
    if (t == NULL)
        return;
    if (plan->n_types == *cap) {
        *cap = *cap ? *cap * 2 : 32;
        const cg_type **n = realloc(plan->types, *cap * sizeof(*n));
        if (n == NULL)
            abort();
        plan->types = n;
    }
    plan->types[plan->n_types++] = t;
}

static void collect_types(cg_plan *plan, size_t *cap, const cg_message *m)
{
    push_type(plan, cap, cg_type_of_message(plan->ctx, m));
    for (size_t i = 0; i < m->n_enum_type; i++)
        push_type(plan, cap, cg_type_of_enum(plan->ctx, m->enum_type[i]));
    for (size_t i = 0; i < m->n_nested_type; i++)
        collect_types(plan, cap, m->nested_type[i]);
}

static void add_dep(cg_plan *plan, size_t *cap, const cg_file *f)
{
    if (f == plan->file)
        return;
    for (size_t i = 0; i < plan->n_deps; i++)
        if (plan->deps[i] == f)
            return;
    if (plan->n_deps == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        const cg_file **n = realloc(plan->deps, *cap * sizeof(*n));
        if (n == NULL)
            abort();
        plan->deps = n;
    }
    plan->deps[plan->n_deps++] = f;
}

static int cmp_dep(const void *a, const void *b)
{
    return strcmp((*(const cg_file *const *)a)->name,
                  (*(const cg_file *const *)b)->name);
}

static int plan_method(cg_plan *plan, cg_service_plan *sp, size_t si, size_t mi,
                       routes *seen)
{
    const cg_method *m = sp->s->method[mi];
    cg_method_plan *mp = &sp->methods[mi];
    mp->m = m;
    mp->loc[0] = CG_FILE_SERVICE;
    mp->loc[1] = (int32_t)si;
    mp->loc[2] = CG_SERVICE_METHOD;
    mp->loc[3] = (int32_t)mi;
    mp->in = cg_find_type(plan->ctx, m->input_type);
    mp->out = cg_find_type(plan->ctx, m->output_type);
    if (mp->in == NULL || mp->in->msg == NULL || mp->out == NULL ||
        mp->out->msg == NULL)
        return cg_error(plan->ctx, plan->file, mp->loc, 4,
                        "method %s: input or output type not found", m->name);
    mp->kind = (m->client_streaming ? 2 : 0) + (m->server_streaming ? 1 : 0);
    mp->lower = cg_camel_to_lower(m->name);
    mp->member = cg_is_c_keyword(mp->lower) ? cg_strdupf("%s_", mp->lower)
                                            : cg_strdup(mp->lower);
    mp->path = cg_strdupf("/%s/%s", sp->full_name, m->name);
    if (m->options && m->options->has_idempotency_level)
        mp->idempotency = (int)m->options->idempotency_level;

    int32_t loc[6] = {mp->loc[0], mp->loc[1],        mp->loc[2],
                      mp->loc[3], CG_METHOD_OPTIONS, (int32_t)CG_EXT_METHOD};
    Orpc__MethodOptions *mo = NULL;
    if (ext_message(m->options ? &m->options->base : NULL, CG_EXT_METHOD,
                    &orpc__method_options__descriptor,
                    (ProtobufCMessage **)&mo) != 0)
        return cg_error(plan->ctx, plan->file, loc, 6,
                        "method %s: orpc.method does not decode", m->name);
    if (mo != NULL) {
        mp->no_auth = mo->legacy_no_auth != 0;
        orpc__method_options__free_unpacked(mo, NULL);
    }

    loc[5] = (int32_t)CG_EXT_HTTP;
    if (ext_message(m->options ? &m->options->base : NULL, CG_EXT_HTTP,
                    &google__api__http_rule__descriptor,
                    (ProtobufCMessage **)&mp->http) != 0)
        return cg_error(plan->ctx, plan->file, loc, 6,
                        "method %s: google.api.http does not decode", m->name);
    if (mp->http == NULL)
        return 0;
    rule_ctx rc = {plan, mp, loc, 6};
    if (mp->kind == CG_CLIENT_STREAMING || mp->kind == CG_BIDI_STREAMING)
        return rerr(&rc,
                    "google.api.http is not supported on client- or "
                    "bidi-streaming methods (the legacy path carries "
                    "unary and server-streaming calls only)",
                    NULL, NULL);
    char *owner = cg_strdupf("%s.%s", sp->full_name, m->name);
    if (seen->n_owners == seen->cap_owners) {
        seen->cap_owners = seen->cap_owners ? seen->cap_owners * 2 : 16;
        char **no = realloc(seen->owners, seen->cap_owners * sizeof(*no));
        if (no == NULL)
            abort();
        seen->owners = no;
    }
    seen->owners[seen->n_owners++] = owner;
    return check_rule(&rc, mp->http, 0, seen, owner);
}

static int plan_service(cg_plan *plan, size_t si, routes *seen)
{
    const cg_service *s = plan->file->service[si];
    cg_service_plan *sp = &plan->services[si];
    sp->s = s;
    sp->loc[0] = CG_FILE_SERVICE;
    sp->loc[1] = (int32_t)si;
    sp->full_name = cg_qualify(plan->file->package, s->name);
    sp->c_type = cg_full_to_c(sp->full_name);
    sp->c_lower = cg_full_to_lower(sp->full_name);
    sp->n_methods = s->n_method;
    sp->methods = cg_xcalloc(s->n_method, sizeof(cg_method_plan));

    Orpc__ServiceOptions *so = NULL;
    int32_t loc[4] = {sp->loc[0], sp->loc[1], CG_SERVICE_OPTIONS,
                      (int32_t)CG_EXT_SERVICE};
    if (ext_message(s->options ? &s->options->base : NULL, CG_EXT_SERVICE,
                    &orpc__service_options__descriptor,
                    (ProtobufCMessage **)&so) != 0)
        return cg_error(plan->ctx, plan->file, loc, 4,
                        "service %s: orpc.service does not decode", s->name);
    if (so != NULL) {
        int rv = 0;
        if (cg_str_set(so->legacy_url_env) &&
            check_env_name(so->legacy_url_env) != 0)
            rv = cg_error(plan->ctx, plan->file, loc, 4,
                          "service %s: orpc.service legacy_url_env '%s' is "
                          "not an environment variable name ([A-Z_][A-Z0-9_]*)",
                          s->name, so->legacy_url_env);
        else if (cg_str_set(so->legacy_default_url) &&
                 check_url(so->legacy_default_url) != 0)
            rv = cg_error(plan->ctx, plan->file, loc, 4,
                          "service %s: orpc.service legacy_default_url '%s' "
                          "is not an http:// or https:// URL",
                          s->name, so->legacy_default_url);
        if (cg_str_set(so->legacy_url_env))
            sp->legacy_url_env = cg_strdup(so->legacy_url_env);
        if (cg_str_set(so->legacy_default_url))
            sp->legacy_default_url = cg_strdup(so->legacy_default_url);
        orpc__service_options__free_unpacked(so, NULL);
        if (rv != 0)
            return rv;
    }
    for (size_t mi = 0; mi < s->n_method; mi++)
        if (plan_method(plan, sp, si, mi, seen) != 0)
            return -1;
    return 0;
}

int cg_plan_file(cg_ctx *ctx, const cg_file *file, cg_plan *plan)
{
    size_t tcap = 0, dcap = 0;
    routes seen = {0};
    int rv = 0;

    memset(plan, 0, sizeof(*plan));
    plan->ctx = ctx;
    plan->file = file;
    plan->stem = cg_strip_proto(file->name);
    plan->ident = cg_file_ident(file->name);
    for (size_t i = 0; i < file->n_enum_type; i++)
        push_type(plan, &tcap, cg_type_of_enum(ctx, file->enum_type[i]));
    for (size_t i = 0; i < file->n_message_type; i++)
        collect_types(plan, &tcap, file->message_type[i]);

    for (size_t i = 0; i < plan->n_types && rv == 0; i++) {
        const cg_type *t = plan->types[i];
        if (t->msg != NULL) {
            rv = check_message_options(plan, t);
            for (size_t j = 0; j < t->msg->n_field && rv == 0; j++) {
                const cg_field *f = t->msg->field[j];
                if (cg_str_set(f->type_name)) {
                    const cg_type *ft = cg_find_type(ctx, f->type_name);
                    if (ft == NULL)
                        rv = cg_error(ctx, file, t->path, t->path_len,
                                      "field %s: type %s not found", f->name,
                                      f->type_name);
                    else
                        add_dep(plan, &dcap, ft->file);
                }
            }
        } else {
            rv = check_enum_options(plan, t);
        }
    }
    if (rv == 0 && file->n_service > 0) {
        plan->n_services = file->n_service;
        plan->services = cg_xcalloc(file->n_service, sizeof(cg_service_plan));
        for (size_t si = 0; si < file->n_service && rv == 0; si++)
            rv = plan_service(plan, si, &seen);
        for (size_t si = 0; si < plan->n_services && rv == 0; si++)
            for (size_t mi = 0; mi < plan->services[si].n_methods; mi++) {
                add_dep(plan, &dcap, plan->services[si].methods[mi].in->file);
                add_dep(plan, &dcap, plan->services[si].methods[mi].out->file);
            }
    }
    for (size_t i = 0; i < seen.n; i++)
        free(seen.r[i].key);
    for (size_t i = 0; i < seen.n_owners; i++)
        free(seen.owners[i]);
    free(seen.r);
    free(seen.owners);
    if (plan->n_deps > 1)
        qsort(plan->deps, plan->n_deps, sizeof(*plan->deps), cmp_dep);
    return rv;
}

void cg_plan_free(cg_plan *plan)
{
    for (size_t si = 0; si < plan->n_services; si++) {
        cg_service_plan *sp = &plan->services[si];
        for (size_t mi = 0; mi < sp->n_methods; mi++) {
            cg_method_plan *mp = &sp->methods[mi];
            if (mp->http)
                google__api__http_rule__free_unpacked(mp->http, NULL);
            free(mp->lower);
            free(mp->member);
            free(mp->path);
        }
        free(sp->methods);
        free(sp->full_name);
        free(sp->c_type);
        free(sp->c_lower);
        free(sp->legacy_url_env);
        free(sp->legacy_default_url);
    }
    free(plan->services);
    free(plan->types);
    free(plan->deps);
    free(plan->stem);
    free(plan->ident);
    memset(plan, 0, sizeof(*plan));
}
