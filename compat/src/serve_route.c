/*
 * serve_route.c — legacy routes on the server side: the route table built
 * from the methods' google.api.http rules, the route a request names, and
 * its request message from the path variables, the query, the headers and
 * the body.  The exact inverse of http_rule.c's request building.
 *
 * Design notes: the path is split into segments and each is percent-decoded
 * strictly (a bad escape, an encoded slash, a "." or ".." segment, a
 * control character: 400) before any template sees it, so no route can be
 * reached through a spelling the client side would never produce.  The
 * request is assembled as one jansson object — the body ("*": the object;
 * "f": {"f": body}), then query parameters, then path variables (which win)
 * and orpc.legacy_header fields — and decoded once by the JSON mapping, so
 * nested fields, repeated fields, enums by legacy name, well-known types and
 * the error texts ("$.job_id: ...") are the mapping's own.  Text from the
 * path or query becomes a JSON value by the field's type (bools as true /
 * false, enums given as digits as numbers, the rest as strings, which the
 * proto3 JSON reader takes for numbers too).
 */
#include "serve_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <orpc/error.h>

#include "json_internal.h"

static void set_err(orpc__serve_err *e, int status, const char *fmt, ...)
    ORPC_PRINTF(3, 4);

static void set_err(orpc__serve_err *e, int status, const char *fmt, ...)
{
    va_list ap;
    memset(e, 0, sizeof(*e));
    e->status = status;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
    va_end(ap);
}

/* ---- the table -------------------------------------------------------- */

void orpc__lroutes_free(orpc__lroutes *rt)
{
    for (size_t i = 0; i < rt->n; i++)
        orpc__path_template_free(rt->v[i].t);
    free(rt->v);
    memset(rt, 0, sizeof(*rt));
}

static int add_rule(orpc__lroutes *rt, const orpc_method_desc *m,
                    const orpc_http_rule *rule, char *err, size_t errlen)
{
    orpc_path_template *t = NULL;
    char why[128];
    int rc = orpc__path_template_parse(rule->path, &t, why, sizeof(why), NULL);
    if (rc == -2)
        return ORPC_ENOMEM;
    if (rc != 0) {
        snprintf(err, errlen, "%s: bad path template \"%s\": %s", m->path,
                 rule->path, why);
        return ORPC_ECONFIG;
    }
    char shape[ORPC_TMPL_MAX_LEN + 64];
    if (orpc__path_template_shape(t, shape, sizeof(shape)) < 0)
        shape[0] = '\0';
    for (size_t i = 0; i < rt->n; i++) {
        char other[ORPC_TMPL_MAX_LEN + 64];
        if (strcmp(rt->v[i].rule->verb, rule->verb) == 0 &&
            orpc__path_template_shape(rt->v[i].t, other, sizeof(other)) >= 0 &&
            strcmp(other, shape) == 0 &&
            ((t->verb == NULL && rt->v[i].t->verb == NULL) ||
             (t->verb && rt->v[i].t->verb &&
              strcmp(t->verb, rt->v[i].t->verb) == 0))) {
            if (rt->v[i].m == m)
                break; /* the same method registered twice: harmless */
            snprintf(err, errlen, "%s and %s both claim %s %s",
                     rt->v[i].m->path, m->path, rule->verb, rule->path);
            orpc__path_template_free(t);
            return ORPC_ECONFIG;
        }
    }
    if (rt->n == rt->cap) {
        size_t cap = rt->cap ? rt->cap * 2 : 16;
        orpc__lroute *v = realloc(rt->v, cap * sizeof(*v));
        if (v == NULL) {
            orpc__path_template_free(t);
            return ORPC_ENOMEM;
        }
        rt->v = v;
        rt->cap = cap;
    }
    orpc__lroute *r = &rt->v[rt->n++];
    r->m = m;
    r->rule = rule;
    r->t = t;
    r->literals = t->verb ? 1 : 0; /* a custom verb is one literal more */
    for (size_t i = 0; i < t->n_segments; i++)
        if (t->segments[i].kind == ORPC_TMPL_LITERAL && t->segments[i].var < 0)
            r->literals++;
    return 0;
}

int orpc__lroutes_add_service(orpc__lroutes *rt, const orpc_service_desc *s,
                              char *err, size_t errlen)
{
    for (size_t i = 0;; i++) {
        const orpc_method_desc *m = orpc_service_method(s, i);
        if (m == NULL)
            return 0;
        if (m->http == NULL)
            continue;
        int rc = add_rule(rt, m, m->http, err, errlen);
        for (size_t k = 0; rc == 0 && k < m->http->n_additional_bindings; k++)
            rc = add_rule(rt, m, &m->http->additional_bindings[k], err, errlen);
        if (rc != 0)
            return rc;
    }
}

/* ---- the path --------------------------------------------------------- */

typedef struct segs {
    char *buf; /* the decoded segments, NUL-separated */
    char *v[ORPC__SERVE_MAX_SEGMENTS];
    size_t n;
} segs;

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Strict percent-decoding of s[0..n) into |dst| (n + 1 bytes); |plus|: '+'
 * is a space (query strings).  -1 on a bad escape. */
static long pct_strict(char *dst, const char *s, size_t n, int plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int a = i + 1 < n ? hexval(s[i + 1]) : -1;
            int b = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (a < 0 || b < 0)
                return -1;
            dst[o++] = (char)(a * 16 + b);
            i += 2;
        } else if (plus && s[i] == '+') {
            dst[o++] = ' ';
        } else {
            dst[o++] = s[i];
        }
    }
    dst[o] = '\0';
    return (long)o;
}

static void segs_free(segs *s)
{
    free(s->buf);
    s->buf = NULL;
    s->n = 0;
}

/* Splits and checks the path of |target|. */
static int split_path(const char *target, segs *out, orpc__serve_err *e)
{
    memset(out, 0, sizeof(*out));
    size_t plen = strcspn(target, "?");
    if (target[0] != '/') {
        set_err(e, 400, "Invalid request target");
        return -1;
    }
    if (plen > ORPC__SERVE_MAX_PATH) {
        set_err(e, 414, "URI Too Long");
        return -1;
    }
    if (memchr(target, '#', plen) != NULL) {
        set_err(e, 400, "Invalid request target");
        return -1;
    }
    out->buf = malloc(plen + 1);
    if (out->buf == NULL) {
        set_err(e, 500, "Internal Server Error");
        return -1;
    }
    const char *p = target + 1, *end = target + plen;
    char *w = out->buf;
    for (;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *se = slash ? slash : end;
        if (out->n == ORPC__SERVE_MAX_SEGMENTS) {
            set_err(e, 400, "Too many path segments");
            goto fail;
        }
        long dl = pct_strict(w, p, (size_t)(se - p), 0);
        if (dl < 0) {
            set_err(e, 400, "Invalid percent-encoding in the path");
            goto fail;
        }
        if (memchr(w, '/', (size_t)dl) != NULL) {
            set_err(e, 400, "Encoded slash in the path");
            goto fail;
        }
        if (strcmp(w, ".") == 0 || strcmp(w, "..") == 0) {
            set_err(e, 400, "Dot segment in the path");
            goto fail;
        }
        for (long i = 0; i < dl; i++)
            if ((unsigned char)w[i] < 0x20 || w[i] == 0x7f) {
                set_err(e, 400, "Control character in the path");
                goto fail;
            }
        if ((size_t)dl != strlen(w)) {
            set_err(e, 400, "Control character in the path");
            goto fail;
        }
        out->v[out->n++] = w;
        w += dl + 1;
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    return 0;
fail:
    segs_free(out);
    return -1;
}

/* Does |r| match |s|?  |end| (when not NULL) gets, per template segment
 * index, nothing; the path segment range of variable k is
 * [t->vars[k].first, first + count), extended to n for a trailing '**'. */
static int match(const orpc__lroute *r, const segs *s, size_t *n_used,
                 char *last_buf, size_t last_cap)
{
    const orpc_path_template *t = r->t;
    size_t n = s->n;
    const char *last = n ? s->v[n - 1] : "";
    if (t->verb) {
        size_t vl = strlen(t->verb), ll = strlen(last);
        if (ll < vl + 1 || last[ll - vl - 1] != ':' ||
            strcmp(last + ll - vl, t->verb) != 0 || ll - vl > last_cap)
            return 0;
        memcpy(last_buf, last, ll - vl - 1);
        last_buf[ll - vl - 1] = '\0';
        last = last_buf;
    }
    size_t nt = t->n_segments;
    int dstar = nt > 0 && t->segments[nt - 1].kind == ORPC_TMPL_DSTAR;
    if (dstar ? n < nt - 1 : n != nt)
        return 0;
    for (size_t i = 0; i < nt; i++) {
        const orpc_tmpl_segment *ts = &t->segments[i];
        if (ts->kind == ORPC_TMPL_DSTAR)
            break;
        const char *seg = i == n - 1 ? last : s->v[i];
        if (ts->kind == ORPC_TMPL_LITERAL ? strcmp(seg, ts->literal) != 0
                                          : seg[0] == '\0')
            return 0;
    }
    if (n_used)
        *n_used = n;
    return 1;
}

int orpc__lroute_find(const orpc__lroutes *rt, const char *verb,
                      const char *target, const orpc__lroute **out,
                      orpc__serve_err *e)
{
    segs s;
    *out = NULL;
    if (split_path(target, &s, e) != 0)
        return -1;
    char *last = malloc(ORPC__SERVE_MAX_PATH + 1);
    if (last == NULL) {
        segs_free(&s);
        set_err(e, 500, "Internal Server Error");
        return -1;
    }
    const orpc__lroute *best = NULL;
    char allow[64] = "";
    for (size_t i = 0; i < rt->n; i++) {
        const orpc__lroute *r = &rt->v[i];
        if (!match(r, &s, NULL, last, ORPC__SERVE_MAX_PATH))
            continue;
        if (strcmp(r->rule->verb, verb) == 0) {
            if (best == NULL || r->literals > best->literals)
                best = r;
        } else if (strstr(allow, r->rule->verb) == NULL &&
                   strlen(allow) + strlen(r->rule->verb) + 3 < sizeof(allow)) {
            if (allow[0])
                strcat(allow, ", ");
            strcat(allow, r->rule->verb);
        }
    }
    free(last);
    segs_free(&s);
    if (best != NULL) {
        *out = best;
        return 0;
    }
    if (allow[0]) {
        set_err(e, 405, "Method Not Allowed");
        snprintf(e->allow, sizeof(e->allow), "%s", allow);
    } else {
        set_err(e, 404, "Not Found");
    }
    return -1;
}

/* ---- the request ------------------------------------------------------ */

/* Is |mi| a well-known type spelled as a JSON string (so a path or query
 * value can carry it)? */
static int wkt_from_text(const orpc_message_info *mi)
{
    static const char *const names[] = {
        "google.protobuf.Timestamp",   "google.protobuf.Duration",
        "google.protobuf.FieldMask",   "google.protobuf.StringValue",
        "google.protobuf.BytesValue",  "google.protobuf.Int32Value",
        "google.protobuf.Int64Value",  "google.protobuf.UInt32Value",
        "google.protobuf.UInt64Value", "google.protobuf.DoubleValue",
        "google.protobuf.FloatValue",  "google.protobuf.BoolValue"};
    for (size_t i = 0; mi && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(mi->full_name, names[i]) == 0)
            return 1;
    return 0;
}

/* Resolves the dotted |path| (proto or JSON names) in |mi|: the field, its
 * info, and the canonical dotted proto path into |canon|. */
static int resolve(const orpc_message_info *mi, const char *path,
                   const ProtobufCFieldDescriptor **fout,
                   const orpc_field_info **fiout, char *canon, size_t cap)
{
    char name[128];
    size_t cl = 0;
    canon[0] = '\0';
    for (const char *p = path;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0 || n >= sizeof(name) || mi == NULL)
            return -1;
        memcpy(name, p, n);
        name[n] = '\0';
        int idx = orpc_message_info_find(mi, name);
        if (idx < 0)
            return -1;
        const ProtobufCFieldDescriptor *f = &mi->descriptor->fields[idx];
        const orpc_field_info *fi = &mi->fields[idx];
        int w = snprintf(canon + cl, cap - cl, "%s%s", cl ? "." : "", f->name);
        if (w < 0 || (size_t)w >= cap - cl)
            return -1;
        cl += (size_t)w;
        if (dot == NULL) {
            *fout = f;
            *fiout = fi;
            return 0;
        }
        if (f->type != PROTOBUF_C_TYPE_MESSAGE ||
            f->label == PROTOBUF_C_LABEL_REPEATED || wkt_from_text(fi->message))
            return -1;
        mi = fi->message;
        p = dot + 1;
    }
}

/* The JSON value |text| stands for in field |f|, or NULL (not valid). */
static json_t *text_value(const ProtobufCFieldDescriptor *f,
                          const orpc_field_info *fi, const char *text)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_BOOL:
        if (strcmp(text, "true") == 0)
            return json_true();
        if (strcmp(text, "false") == 0)
            return json_false();
        return NULL;
    case PROTOBUF_C_TYPE_ENUM: {
        const char *p = text + (text[0] == '-');
        if (*p && strspn(p, "0123456789") == strlen(p) && strlen(p) < 11)
            return json_integer(strtoll(text, NULL, 10));
        return json_string(text);
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        if (!wkt_from_text(fi->message))
            return NULL;
        return json_string(text);
    default:
        return json_string(text); /* NULL when not UTF-8 */
    }
}

/* Sets |v| (a new reference, taken) at the dotted proto path |canon| of
 * |doc|, appending for a repeated field.  -1 on a conflict. */
static int doc_set(json_t *doc, const char *canon, json_t *v, int repeated)
{
    char name[128];
    json_t *o = doc;
    for (const char *p = canon;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof(name))
            break;
        memcpy(name, p, n);
        name[n] = '\0';
        if (dot == NULL) {
            if (!repeated)
                return json_object_set_new(o, name, v) == 0 ? 0 : -1;
            json_t *a = json_object_get(o, name);
            if (a == NULL) {
                a = json_array();
                if (a == NULL || json_object_set_new(o, name, a) != 0)
                    break;
            }
            if (!json_is_array(a))
                break;
            return json_array_append_new(a, v) == 0 ? 0 : -1;
        }
        json_t *sub = json_object_get(o, name);
        if (sub == NULL) {
            sub = json_object();
            if (sub == NULL || json_object_set_new(o, name, sub) != 0)
                break;
        }
        if (!json_is_object(sub))
            break;
        o = sub;
        p = dot + 1;
    }
    json_decref(v);
    return -1;
}

/* Is |canon| the body field, inside it, or a header field? */
static int bound_elsewhere(const orpc__lroute *r, const char *canon,
                           const orpc_field_info *top_fi)
{
    const char *body = r->rule->body;
    if (body != NULL && strcmp(body, "*") != 0) {
        size_t n = strlen(body);
        if (strncmp(canon, body, n) == 0 &&
            (canon[n] == '\0' || canon[n] == '.'))
            return 1;
    }
    return top_fi != NULL && top_fi->legacy_header != NULL;
}

static int is_path_var(const orpc__lroute *r, const char *canon)
{
    for (size_t k = 0; k < r->t->n_vars; k++)
        if (strcmp(r->t->vars[k].field_path, canon) == 0)
            return 1;
    return 0;
}

static int add_query(const orpc__lroute *r, const char *q, json_t *doc,
                     orpc__serve_err *e)
{
    size_t ql = strlen(q);
    if (ql > ORPC__SERVE_MAX_QUERY) {
        set_err(e, 414, "URI Too Long");
        return -1;
    }
    char *key = malloc(ql + 1), *val = malloc(ql + 1);
    int rc = -1;
    size_t count = 0;
    if (key == NULL || val == NULL) {
        set_err(e, 500, "Internal Server Error");
        goto out;
    }
    for (const char *p = q; *p;) {
        size_t n = strcspn(p, "&");
        if (n > 0) {
            if (++count > ORPC__SERVE_MAX_PARAMS) {
                set_err(e, 400, "Too many query parameters (at most %d)",
                        ORPC__SERVE_MAX_PARAMS);
                goto out;
            }
            const char *eq = memchr(p, '=', n);
            size_t kl = eq ? (size_t)(eq - p) : n;
            if (pct_strict(key, p, kl, 1) < 0 ||
                (eq && pct_strict(val, eq + 1, n - kl - 1, 1) < 0)) {
                set_err(e, 400, "Invalid percent-encoding in the query");
                goto out;
            }
            if (!eq)
                val[0] = '\0';
            const ProtobufCFieldDescriptor *f;
            const orpc_field_info *fi;
            char canon[512];
            /* FastAPI ignores query parameters it does not know: so do we */
            if (resolve(r->m->input, key, &f, &fi, canon, sizeof(canon)) == 0 &&
                !is_path_var(r, canon)) {
                const char *dot = strchr(canon, '.');
                const orpc_field_info *top = NULL;
                char topname[128];
                size_t tl = dot ? (size_t)(dot - canon) : strlen(canon);
                if (tl < sizeof(topname)) {
                    memcpy(topname, canon, tl);
                    topname[tl] = '\0';
                    int ti = orpc_message_info_find(r->m->input, topname);
                    top = ti >= 0 ? &r->m->input->fields[ti] : NULL;
                }
                if (!bound_elsewhere(r, canon, top)) {
                    if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
                        !wkt_from_text(fi->message)) {
                        set_err(e, 400,
                                "Query parameter '%.100s' names a message, "
                                "not a value",
                                key);
                        goto out;
                    }
                    json_t *v = text_value(f, fi, val);
                    if (v == NULL) {
                        set_err(e, 400,
                                "Query parameter '%.100s': invalid value", key);
                        goto out;
                    }
                    if (doc_set(doc, canon, v,
                                f->label == PROTOBUF_C_LABEL_REPEATED) != 0) {
                        set_err(e, 400,
                                "Query parameter '%.100s' conflicts "
                                "with another",
                                key);
                        goto out;
                    }
                }
            }
        }
        p += n;
        if (*p == '&')
            p++;
    }
    rc = 0;
out:
    free(key);
    free(val);
    return rc;
}

static int add_path_vars(const orpc__lroute *r, const segs *s, json_t *doc,
                         orpc__serve_err *e)
{
    const orpc_path_template *t = r->t;
    if (t->verb && s->n > 0) {
        /* the verb is not part of the last variable's value (find() matched
         * it, so the last segment ends with ":verb") */
        char *l = s->v[s->n - 1];
        size_t ll = strlen(l), vl = strlen(t->verb);
        if (ll > vl)
            l[ll - vl - 1] = '\0';
    }
    for (size_t k = 0; k < t->n_vars; k++) {
        const orpc_tmpl_var *v = &t->vars[k];
        size_t end = v->first + v->count;
        if (end > 0 && t->segments[end - 1].kind == ORPC_TMPL_DSTAR)
            end = s->n;
        orpc__buf val = {0};
        for (size_t i = v->first; i < end && i < s->n; i++) {
            if (i > v->first)
                orpc__buf_putc(&val, '/');
            orpc__buf_puts(&val, s->v[i]);
        }
        if (val.failed) {
            orpc__buf_free(&val);
            set_err(e, 500, "Internal Server Error");
            return -1;
        }
        const ProtobufCFieldDescriptor *f;
        const orpc_field_info *fi;
        char canon[512];
        if (resolve(r->m->input, v->field_path, &f, &fi, canon,
                    sizeof(canon)) != 0 ||
            f->label == PROTOBUF_C_LABEL_REPEATED) {
            orpc__buf_free(&val);
            set_err(e, 500, "Internal Server Error");
            return -1;
        }
        json_t *jv = text_value(f, fi, val.data ? orpc__buf_str(&val) : "");
        if (jv == NULL) {
            set_err(e, 400, "Path parameter '%.100s': invalid value",
                    v->field_path);
            orpc__buf_free(&val);
            return -1;
        }
        orpc__buf_free(&val);
        if (doc_set(doc, canon, jv, 0) != 0) {
            set_err(e, 400, "Path parameter '%.100s' conflicts with the body",
                    v->field_path);
            return -1;
        }
    }
    return 0;
}

static int json_content_type(const char *ct)
{
    if (ct == NULL)
        return 1;
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return 1;
    return n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
           strncasecmp(ct + n - 5, "+json", 5) == 0;
}

int orpc__lroute_decode(const orpc__lroute *r, const char *target,
                        orpc__serve_header_fn hdr, void *hdr_ud,
                        const uint8_t *body, size_t len, ProtobufCMessage **out,
                        orpc__serve_err *e)
{
    const orpc_method_desc *m = r->m;
    const char *bname = r->rule->body;
    json_t *doc = NULL;
    segs s = {0};
    *out = NULL;
    if (bname != NULL && len > 0) {
        if (!json_content_type(hdr ? hdr(hdr_ud, "content-type") : NULL)) {
            set_err(e, 415, "Unsupported Media Type");
            return -1;
        }
        json_error_t je;
        json_t *v = json_loadb((const char *)body, len, JSON_DECODE_ANY, &je);
        if (v == NULL) {
            set_err(e, 400, "JSON decode error: %s (line %d, column %d)",
                    je.text, je.line, je.column);
            return -1;
        }
        if (strcmp(bname, "*") == 0) {
            if (!json_is_object(v)) {
                json_decref(v);
                set_err(e, 400, "The request body must be a JSON object");
                return -1;
            }
            doc = v;
        } else {
            doc = json_object();
            if (doc == NULL || json_object_set_new(doc, bname, v) != 0) {
                json_decref(doc);
                set_err(e, 500, "Internal Server Error");
                return -1;
            }
        }
    } else {
        doc = json_object();
        if (doc == NULL) {
            set_err(e, 500, "Internal Server Error");
            return -1;
        }
    }
    const char *q = strchr(target, '?');
    if (q != NULL && (bname == NULL || strcmp(bname, "*") != 0) &&
        add_query(r, q + 1, doc, e) != 0)
        goto fail;
    if (split_path(target, &s, e) != 0)
        goto fail;
    if (add_path_vars(r, &s, doc, e) != 0)
        goto fail;
    for (size_t i = 0; hdr && i < m->input->n_fields; i++) {
        const orpc_legacy_header *lh = m->input->fields[i].legacy_header;
        const ProtobufCFieldDescriptor *f = &m->input->descriptor->fields[i];
        if (lh == NULL || f->type != PROTOBUF_C_TYPE_STRING)
            continue;
        const char *h = hdr(hdr_ud, lh->name);
        size_t pl = strlen(lh->prefix);
        if (h == NULL || strncasecmp(h, lh->prefix, pl) != 0)
            continue;
        h += pl;
        while (*h == ' ')
            h++;
        json_t *jv = json_string(h);
        if (jv == NULL || json_object_set_new(doc, f->name, jv) != 0) {
            set_err(e, 400, "Header '%s' is not valid text", lh->name);
            goto fail;
        }
    }
    orpc_json_opts jo = {.max_depth = ORPC__SERVE_MAX_DEPTH};
    orpc_error_detail jd = {0};
    int rc = orpc__json_decode_value(out, m->input, doc, "$", &jo, NULL, &jd);
    if (rc != 0) {
        if (rc == ORPC_ENOMEM)
            set_err(e, 500, "Internal Server Error");
        else
            set_err(e, 400, "%s", jd.message[0] ? jd.message : "Bad Request");
        goto fail;
    }
    segs_free(&s);
    json_decref(doc);
    return 0;
fail:
    segs_free(&s);
    json_decref(doc);
    return -1;
}

/* ---- a legacy request, whole ------------------------------------------ */

void orpc__legacy_call_clear(orpc__legacy_call *c)
{
    if (c->msg != NULL)
        protobuf_c_message_free_unpacked(c->msg, NULL);
    free(c->identity);
    memset(c, 0, sizeof(*c));
}

int orpc__serve_legacy_request(const orpc__lroutes *rt, const orpc__auth *auth,
                               const char *verb, const char *target,
                               orpc__serve_header_fn hdr, void *hdr_ud,
                               const uint8_t *body, size_t len,
                               orpc__legacy_call *out, orpc__serve_err *e)
{
    memset(out, 0, sizeof(*out));
    if (orpc__lroute_find(rt, verb, target, &out->route, e) != 0)
        return -1;
    const orpc_method_desc *m = out->route->m;
    if (!m->legacy_no_auth) {
        int rc = orpc__serve_authenticate(
            auth, hdr ? hdr(hdr_ud, "authorization") : NULL, &out->identity, e);
        if (rc != 0) {
            orpc__legacy_call_clear(out);
            return rc == ORPC_EBLOCKING ? rc : -1;
        }
    }
    if (m->kind == ORPC_CALL_CLIENT_STREAMING ||
        m->kind == ORPC_CALL_BIDI_STREAMING) {
        set_err(e, 501,
                "%.120s is a %s method: streaming requests are not available "
                "over HTTP/1.1; use gRPC",
                m->path, orpc_call_kind_name(m->kind));
        orpc__legacy_call_clear(out);
        return -1;
    }
    if (orpc__lroute_decode(out->route, target, hdr, hdr_ud, body, len,
                            &out->msg, e) != 0) {
        orpc__legacy_call_clear(out);
        return -1;
    }
    return 0;
}
