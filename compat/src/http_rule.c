/*
 * http_rule.c — google.api.http rules applied to messages: the legacy
 * request of a call, and the message of a legacy reply.
 *
 * Design notes: the template is parsed with the same parser that validated
 * it at generation time (path_template.c), so a rule that reached the
 * runtime is known good.  Field values become text through the JSON
 * mapping's scalar rules (json_url.c), so a path segment, a query value and a
 * JSON body spell a value the same way.  Bodies are built as jansson values
 * from the whole message, then the fields bound elsewhere are taken out.
 */
#include "http_rule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/buf.h"
#include "common/path_template.h"
#include "common/pct.h"
#include "json_internal.h"

/* ---- text: common/buf.h, common/pct.h ---- */

/* Appends |s| percent-encoded; |keep_slash| for multi-segment variables. */
static void buf_escaped(orpc__buf *b, const char *s, int keep_slash)
{
    orpc__pct_set set =
        keep_slash ? ORPC__PCT_UNRESERVED_SLASH : ORPC__PCT_UNRESERVED;
    size_t n = strlen(s);
    size_t len = orpc__pct_encoded_len(s, n, set);
    if (len == SIZE_MAX) {
        b->failed = 1;
        return;
    }
    if (orpc__buf_reserve(b, len) == 0)
        b->len += orpc__pct_encode((char *)b->data + b->len, s, n, set);
}

/* Would |text| as a path variable's value make a segment that is empty,
 * "." or ".."?  ('.' is unreserved, so it is sent as it is, and libcurl
 * and every server would collapse such segments: /jobs/../users/1.)  With
 * |multi| (a '**' or pattern variable) each '/'-separated part counts. */
static int dot_or_empty_segment(const char *text, int multi)
{
    for (const char *p = text;;) {
        size_t n = multi ? strcspn(p, "/") : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') ||
            (n == 2 && p[0] == '.' && p[1] == '.'))
            return 1;
        if (p[n] == '\0')
            return 0;
        p += n + 1;
    }
}

/* ---- fields ---- */

static const orpc_field_info *info_of(const orpc_message_info *mi,
                                      const ProtobufCFieldDescriptor *f)
{
    size_t i = (size_t)(f - mi->descriptor->fields);
    return i < mi->n_fields ? &mi->fields[i] : NULL;
}

/* Is singular field |f| of |msg| set (proto3: non-default)? */
static int field_set(const ProtobufCMessage *msg,
                     const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)msg;
    const void *member = base + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)(base + f->quantifier_offset) > 0;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
        f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING)
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
    switch (f->type) {
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(void *const *)member != NULL;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)member;
        return s != NULL && s[0] != '\0';
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)member)->len > 0;
    case PROTOBUF_C_TYPE_BOOL:
        return *(const protobuf_c_boolean *)member != 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return *(const uint64_t *)member != 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)member != 0.0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)member != 0.0f;
    default: /* 32-bit integers and enums */
        return *(const uint32_t *)member != 0;
    }
}

/* The name a field has in a query string or body: the proto name for the
 * legacy profile (snake_case, as the Python services spell it), else the
 * JSON name. */
static const char *wire_name(const ProtobufCFieldDescriptor *f,
                             const orpc_field_info *fi,
                             const orpc_json_opts *jo)
{
    if (jo && (jo->legacy || jo->proto_names))
        return f->name;
    return fi && fi->json_name ? fi->json_name : f->name;
}

/* Resolves "a.b.c" from |msg|: the last field, its message and info. */
static int resolve(const orpc_message_info *mi, const ProtobufCMessage *msg,
                   const char *path, const ProtobufCFieldDescriptor **fout,
                   const orpc_message_info **miout,
                   const ProtobufCMessage **mout)
{
    char name[256];
    const char *p = path;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0 || n >= sizeof(name) || mi == NULL || msg == NULL)
            return -1;
        memcpy(name, p, n);
        name[n] = '\0';
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(mi->descriptor,
                                                            name);
        if (f == NULL)
            return -1;
        if (dot == NULL) {
            *fout = f;
            *miout = mi;
            *mout = msg;
            return 0;
        }
        const orpc_field_info *fi = info_of(mi, f);
        if (f->type != PROTOBUF_C_TYPE_MESSAGE || fi == NULL)
            return -1;
        msg = *(const ProtobufCMessage *const *)((const char *)msg + f->offset);
        mi = fi->message;
        p = dot + 1;
    }
}

/* ---- bound-field bookkeeping ---- */

typedef struct bound {
    char *paths[64]; /* field paths bound to the path template */
    size_t n;
} bound;

static int is_bound(const bound *b, const char *path)
{
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->paths[i], path) == 0)
            return 1;
    return 0;
}

/* Is any bound path inside |prefix| (a message field)? */
static int has_bound_below(const bound *b, const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < b->n; i++)
        if (strncmp(b->paths[i], prefix, n) == 0 && b->paths[i][n] == '.')
            return 1;
    return 0;
}

/* Removes bound paths and header fields from the JSON object |obj| of
 * message |mi|; |prefix| is the dotted proto path of |obj|. */
static void prune(json_t *obj, const orpc_message_info *mi, const bound *b,
                  const char *prefix, const orpc_json_opts *jo)
{
    if (!json_is_object(obj) || mi == NULL)
        return;
    for (size_t i = 0; i < mi->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &mi->descriptor->fields[i];
        const orpc_field_info *fi = &mi->fields[i];
        char path[512];
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "",
                 f->name);
        const char *key = wire_name(f, fi, jo);
        if (is_bound(b, path) || (fi->legacy_header && !*prefix)) {
            json_object_del(obj, key);
            continue;
        }
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && has_bound_below(b, path))
            prune(json_object_get(obj, key), fi->message, b, path, jo);
    }
}

/* Query parameters for the set fields of |msg| not bound elsewhere. */
static int add_query(orpc__buf *q, const orpc_message_info *mi,
                     const ProtobufCMessage *msg, const bound *b,
                     const char *prefix, const char *wprefix,
                     const char *skip_top, const orpc_json_opts *jo, int depth)
{
    if (depth > 8 || mi == NULL || msg == NULL)
        return 0;
    for (size_t i = 0; i < mi->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &mi->descriptor->fields[i];
        const orpc_field_info *fi = &mi->fields[i];
        char path[512], name[512];
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "",
                 f->name);
        /* the parameter's name: each level's wire name, dotted */
        snprintf(name, sizeof(name), "%s%s%s", wprefix, *wprefix ? "." : "",
                 wire_name(f, fi, jo));
        if (is_bound(b, path) || (!*prefix && fi->legacy_header) ||
            (!*prefix && skip_top && strcmp(f->name, skip_top) == 0) ||
            !field_set(msg, f))
            continue;
        const char *base = (const char *)msg + f->offset;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            if (f->label == PROTOBUF_C_LABEL_REPEATED)
                continue; /* not expressible as query parameters */
            int rc = add_query(q, fi->message,
                               *(const ProtobufCMessage *const *)base, b, path,
                               name, NULL, jo, depth + 1);
            if (rc != 0)
                return rc;
            continue;
        }
        size_t count = 1;
        size_t elem = 0;
        const char *items = base;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            count = *(const size_t *)((const char *)msg + f->quantifier_offset);
            items = *(const char *const *)base;
            switch (f->type) {
            case PROTOBUF_C_TYPE_STRING:
                elem = sizeof(char *);
                break;
            case PROTOBUF_C_TYPE_BYTES:
                elem = sizeof(ProtobufCBinaryData);
                break;
            case PROTOBUF_C_TYPE_INT64:
            case PROTOBUF_C_TYPE_SINT64:
            case PROTOBUF_C_TYPE_SFIXED64:
            case PROTOBUF_C_TYPE_UINT64:
            case PROTOBUF_C_TYPE_FIXED64:
            case PROTOBUF_C_TYPE_DOUBLE:
                elem = 8;
                break;
            case PROTOBUF_C_TYPE_BOOL:
                elem = sizeof(protobuf_c_boolean);
                break;
            default:
                elem = 4;
                break;
            }
        }
        for (size_t k = 0; k < count; k++) {
            char *text = NULL;
            int rc = orpc__json_scalar_text(f, fi, items + k * elem, jo, &text);
            if (rc != 0)
                return rc;
            orpc__buf_puts(q, q->len ? "&" : "?");
            buf_escaped(q, name, 0);
            orpc__buf_puts(q, "=");
            buf_escaped(q, text, 0);
            free(text);
        }
    }
    return q->failed ? ORPC_ENOMEM : 0;
}

void orpc__http_request_clear(orpc__http_request *r)
{
    free(r->path);
    free(r->body);
    for (size_t i = 0; i < r->n_headers; i++)
        free(r->headers[i]);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

static orpc_status oom(void)
{
    return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
}

orpc_status orpc__http_build(const orpc_method_desc *m,
                             const orpc_http_rule *rule,
                             const ProtobufCMessage *msg,
                             const orpc_json_opts *jo, orpc__http_request *out)
{
    orpc_path_template *t = NULL;
    orpc__buf path = {0}, query = {0};
    bound b = {.n = 0};
    orpc_status st = ORPC_STATUS_OK;
    char err[128];
    memset(out, 0, sizeof(*out));
    if (rule == NULL)
        rule = m->http;
    if (rule == NULL || msg == NULL || msg->descriptor != m->input->descriptor)
        return orpc_status_errorf(ORPC_INVALID_ARGUMENT,
                                  "%s: no HTTP rule, or not its request type",
                                  m->path);
    const orpc_message_info *mi = m->input;
    int prc = orpc__path_template_parse(rule->path, &t, err, sizeof(err), NULL);
    if (prc != 0)
        return prc == -2 ? oom()
                         : orpc_status_errorf(ORPC_INTERNAL,
                                              "%s: bad path template: %s",
                                              m->path, err);
    /* path */
    for (size_t i = 0; i < t->n_segments && st.code == ORPC_OK;) {
        const orpc_tmpl_segment *s = &t->segments[i];
        orpc__buf_puts(&path, "/");
        if (s->var < 0) {
            orpc__buf_puts(
                &path, s->literal ? s->literal
                                  : (s->kind == ORPC_TMPL_STAR ? "*" : "**"));
            i++;
            continue;
        }
        const orpc_tmpl_var *v = &t->vars[s->var];
        const ProtobufCFieldDescriptor *f;
        const orpc_message_info *fmi;
        const ProtobufCMessage *fmsg;
        if (resolve(mi, msg, v->field_path, &f, &fmi, &fmsg) != 0 ||
            !field_set(fmsg, f)) {
            st = orpc_status_errorf(ORPC_INVALID_ARGUMENT,
                                    "%s: path field '%s' is not set", m->path,
                                    v->field_path);
            break;
        }
        char *text = NULL;
        int rc = orpc__json_scalar_text(
            f, info_of(fmi, f), (const char *)fmsg + f->offset, jo, &text);
        if (rc != 0) {
            st =
                rc == ORPC_ENOMEM
                    ? oom()
                    : orpc_status_errorf(ORPC_INVALID_ARGUMENT,
                                         "%s: path field '%s' has no text form",
                                         m->path, v->field_path);
            break;
        }
        int single =
            v->count == 1 && t->segments[v->first].kind == ORPC_TMPL_STAR;
        if (dot_or_empty_segment(text, !single)) {
            free(text);
            st = orpc_status_errorf(ORPC_INVALID_ARGUMENT,
                                    "%s: path field '%s' would make an "
                                    "empty, \".\" or \"..\" path segment",
                                    m->path, v->field_path);
            break;
        }
        buf_escaped(&path, text, !single);
        free(text);
        if (b.n < sizeof(b.paths) / sizeof(b.paths[0]))
            b.paths[b.n++] = v->field_path;
        i = v->first + v->count;
    }
    if (st.code == ORPC_OK && t->verb) {
        orpc__buf_puts(&path, ":");
        orpc__buf_puts(&path, t->verb);
    }
    /* body */
    const char *body_field = NULL;
    if (st.code == ORPC_OK && rule->body != NULL) {
        json_t *v = NULL;
        orpc_error_detail jd = {0};
        int rc = 0;
        if (strcmp(rule->body, "*") == 0) {
            rc = orpc__json_encode_value(&v, mi, msg, jo, &jd);
            if (rc == 0)
                prune(v, mi, &b, "", jo);
        } else {
            body_field = rule->body;
            const ProtobufCFieldDescriptor *f =
                protobuf_c_message_descriptor_get_field_by_name(mi->descriptor,
                                                                rule->body);
            const orpc_field_info *fi = f ? info_of(mi, f) : NULL;
            if (f == NULL || fi == NULL) {
                rc = ORPC_EINVAL;
                snprintf(jd.message, sizeof(jd.message), "no field '%s'",
                         rule->body);
            } else if (field_set(msg, f)) {
                /* encode the one field through a message holding only it */
                json_t *whole = NULL;
                rc = orpc__json_encode_value(&whole, mi, msg, jo, &jd);
                if (rc == 0) {
                    json_t *fv = json_object_get(whole, wire_name(f, fi, jo));
                    v = fv ? json_incref(fv) : NULL;
                    json_decref(whole);
                }
            }
        }
        if (rc != 0) {
            st = rc == ORPC_ENOMEM ? oom()
                                   : orpc_status_errorf(ORPC_INVALID_ARGUMENT,
                                                        "%s: cannot encode the "
                                                        "request body: %s",
                                                        m->path, jd.message);
        } else if (v != NULL) {
            out->body = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            json_decref(v);
            if (out->body == NULL)
                st = oom();
            else
                out->body_len = strlen(out->body);
        }
    }
    /* query: every set field bound nowhere else (none with body "*") */
    if (st.code == ORPC_OK &&
        (rule->body == NULL || strcmp(rule->body, "*") != 0)) {
        int rc = add_query(&query, mi, msg, &b, "", "", body_field, jo, 0);
        if (rc != 0)
            st = rc == ORPC_ENOMEM ? oom()
                                   : orpc_status_errorf(ORPC_INVALID_ARGUMENT,
                                                        "%s: cannot encode a "
                                                        "query parameter",
                                                        m->path);
    }
    /* headers */
    for (size_t i = 0; st.code == ORPC_OK && i < mi->n_fields; i++) {
        const orpc_field_info *fi = &mi->fields[i];
        const ProtobufCFieldDescriptor *f = &mi->descriptor->fields[i];
        if (fi->legacy_header == NULL || f->type != PROTOBUF_C_TYPE_STRING ||
            !field_set(msg, f))
            continue;
        const char *val = *(const char *const *)((const char *)msg + f->offset);
        for (const char *p = val; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                st = orpc_status_errorf(ORPC_INVALID_ARGUMENT,
                                        "%s: field '%s' cannot be a header "
                                        "value (control character)",
                                        m->path, f->name);
                break;
            }
        if (st.code != ORPC_OK)
            break;
        size_t n = strlen(fi->legacy_header->name) +
                   strlen(fi->legacy_header->prefix) + strlen(val) + 3;
        char **nh =
            realloc(out->headers, (out->n_headers + 1) * sizeof(char *));
        char *h = malloc(n);
        if (nh == NULL || h == NULL) {
            if (nh)
                out->headers = nh;
            free(h);
            st = oom();
            break;
        }
        snprintf(h, n, "%s: %s%s", fi->legacy_header->name,
                 fi->legacy_header->prefix, val);
        out->headers = nh;
        out->headers[out->n_headers++] = h;
    }
    if (st.code == ORPC_OK && (path.failed || query.failed))
        st = oom();
    if (st.code == ORPC_OK) {
        orpc__buf_append(&path, orpc__buf_str(&query), query.len);
        out->path = orpc__buf_take(&path, NULL);
        if (out->path == NULL)
            st = oom();
        else
            out->verb = rule->verb;
    }
    orpc__buf_free(&path);
    orpc__buf_free(&query);
    orpc__path_template_free(t);
    if (st.code != ORPC_OK)
        orpc__http_request_clear(out);
    return st;
}

orpc_status orpc__http_decode_response(const orpc_method_desc *m,
                                       const orpc_http_rule *rule,
                                       const char *body, size_t len,
                                       const orpc_json_opts *jo,
                                       ProtobufCMessage **out)
{
    json_error_t e;
    json_t *v;
    *out = NULL;
    if (rule == NULL)
        rule = m->http;
    if (len == 0) {
        v = json_object();
    } else {
        v = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
        if (v == NULL)
            return orpc_status_errorf(ORPC_INTERNAL,
                                      "%s: the legacy reply is not JSON: %s "
                                      "(line %d, column %d)",
                                      m->path, e.text, e.line, e.column);
    }
    if (rule && rule->response_body) {
        /* the body is one field's value: decode {"field": body} */
        json_t *wrap = json_object();
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(
                m->output->descriptor, rule->response_body);
        const orpc_field_info *fi = f ? info_of(m->output, f) : NULL;
        if (wrap == NULL || f == NULL ||
            json_object_set_new(wrap, wire_name(f, fi, jo), v) != 0) {
            json_decref(wrap);
            return orpc_status_errorf(
                ORPC_INTERNAL, "%s: cannot map the legacy reply", m->path);
        }
        v = wrap;
    }
    orpc_error_detail jd = {0};
    int rc = orpc__json_decode_value(out, m->output, v, "$", jo, NULL, &jd);
    json_decref(v);
    if (rc == ORPC_ENOMEM)
        return oom();
    if (rc != 0)
        return orpc_status_errorf(
            ORPC_INTERNAL, "%s: the legacy reply has the wrong shape: %s",
            m->path, jd.message);
    return ORPC_STATUS_OK;
}
