/*
 * path_template.c — parser for google.api.http path templates.
 *
 * A hand-written recursive-descent parser over the grammar in
 * path_template.h.  It is strict because its input decides URLs: anything
 * the grammar does not allow is refused with the byte offset of the problem,
 * so protoc-gen-orpc can point at it and the compat layer never guesses.
 *
 * Design notes: the parser fills fixed-size arrays bounded by
 * ORPC_TMPL_MAX_SEGMENTS while it runs and copies them into the result only
 * on success; literals are checked against RFC 3986's pchar set (with
 * percent-escapes validated), never including '/', '{', '}', '*' or ':'
 * (the last introduces the verb).
 */
#include "common/path_template.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const char *s;
    size_t pos;
    size_t len;
    char *err;
    size_t errlen;
    size_t err_pos;
    int oom;
    size_t n_segs;
    orpc_tmpl_segment segs[ORPC_TMPL_MAX_SEGMENTS];
    size_t seg_pos[ORPC_TMPL_MAX_SEGMENTS]; /* where each segment starts */
    size_t n_vars;
    orpc_tmpl_var vars[ORPC_TMPL_MAX_SEGMENTS];
} parser;

static int fail(parser *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(parser *p, size_t at, const char *fmt, ...)
{
    va_list ap;
    if (p->errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(p->err, p->errlen, fmt, ap);
        va_end(ap);
    }
    p->err_pos = at;
    return -1;
}

static char *dup_range(parser *p, size_t from, size_t to)
{
    char *r = malloc(to - from + 1);
    if (r == NULL) {
        p->oom = 1;
        return NULL;
    }
    memcpy(r, p->s + from, to - from);
    r[to - from] = '\0';
    return r;
}

static int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 pchar minus ':' (verb separator); '%' is checked by the caller. */
static int is_literal_char(int c)
{
    if (is_alpha(c) || is_digit(c))
        return 1;
    return c != '\0' && strchr("-._~!$&'()+,;=@", c) != NULL;
}

static int peek(const parser *p)
{
    return p->pos < p->len ? p->s[p->pos] : 0;
}

/* LITERAL: one or more pchars (percent-escapes allowed). */
static int parse_literal(parser *p, char **out)
{
    size_t start = p->pos;
    while (p->pos < p->len) {
        int c = p->s[p->pos];
        if (c == '%') {
            if (p->pos + 2 >= p->len || !is_hex(p->s[p->pos + 1]) ||
                !is_hex(p->s[p->pos + 2]))
                return fail(p, p->pos, "bad percent-escape in literal");
            p->pos += 3;
        } else if (is_literal_char(c)) {
            p->pos++;
        } else {
            break;
        }
    }
    if (p->pos == start) {
        int c = peek(p);
        if (c == 0)
            return fail(p, p->pos, "expected a segment at end of template");
        if (c == '/')
            return fail(p, p->pos, "empty segment");
        if (c >= 0x21 && c < 0x7f)
            return fail(p, p->pos, "unexpected '%c'", c);
        return fail(p, p->pos, "unexpected byte 0x%02x", (unsigned char)c);
    }
    *out = dup_range(p, start, p->pos);
    return *out ? 0 : -2;
}

static int add_segment(parser *p, orpc_tmpl_seg_kind kind, char *literal,
                       int var, size_t at)
{
    if (p->n_segs == ORPC_TMPL_MAX_SEGMENTS) {
        free(literal);
        return fail(p, p->pos, "more than %d segments", ORPC_TMPL_MAX_SEGMENTS);
    }
    p->segs[p->n_segs].kind = kind;
    p->segs[p->n_segs].literal = literal;
    p->segs[p->n_segs].var = var;
    p->seg_pos[p->n_segs] = at;
    p->n_segs++;
    return 0;
}

/* Segment without variables: "*", "**" or LITERAL. */
static int parse_plain_segment(parser *p, int var)
{
    size_t at = p->pos;
    if (peek(p) == '*') {
        p->pos++;
        if (peek(p) == '*') {
            p->pos++;
            return add_segment(p, ORPC_TMPL_DSTAR, NULL, var, at);
        }
        return add_segment(p, ORPC_TMPL_STAR, NULL, var, at);
    }
    char *lit = NULL;
    int rc = parse_literal(p, &lit);
    if (rc != 0)
        return rc;
    return add_segment(p, ORPC_TMPL_LITERAL, lit, var, at);
}

static int parse_field_path(parser *p, size_t *start, size_t *end)
{
    *start = p->pos;
    for (;;) {
        int c = peek(p);
        if (!(is_alpha(c) || c == '_'))
            return fail(p, p->pos,
                        c == '}' || c == '=' || c == '.' || c == 0
                            ? "expected a field name"
                            : "bad character in field name");
        while (is_alpha(peek(p)) || is_digit(peek(p)) || peek(p) == '_')
            p->pos++;
        if (peek(p) != '.')
            break;
        p->pos++;
    }
    *end = p->pos;
    return 0;
}

static int parse_variable(parser *p)
{
    size_t open = p->pos, fstart = 0, fend = 0;
    int rc, var = (int)p->n_vars;
    p->pos++; /* '{' */
    if ((rc = parse_field_path(p, &fstart, &fend)) != 0)
        return rc;
    size_t first = p->n_segs;
    if (peek(p) == '=') {
        p->pos++;
        for (;;) {
            if (peek(p) == '{')
                return fail(p, p->pos, "variables cannot nest");
            if ((rc = parse_plain_segment(p, var)) != 0)
                return rc;
            if (peek(p) != '/')
                break;
            p->pos++;
        }
    } else {
        if ((rc = add_segment(p, ORPC_TMPL_STAR, NULL, var, open)) != 0)
            return rc;
    }
    if (peek(p) != '}')
        return fail(p, p->pos,
                    peek(p) == 0 ? "unterminated variable"
                                 : "expected '}' to close variable");
    p->pos++;
    char *name = dup_range(p, fstart, fend);
    if (name == NULL)
        return -2;
    for (size_t i = 0; i < p->n_vars; i++) {
        if (strcmp(p->vars[i].field_path, name) == 0) {
            free(name);
            return fail(p, open, "variable '%.*s' appears twice",
                        (int)(fend - fstart), p->s + fstart);
        }
    }
    p->vars[p->n_vars].field_path = name;
    p->vars[p->n_vars].first = first;
    p->vars[p->n_vars].count = p->n_segs - first;
    p->n_vars++;
    return 0;
}

static void free_parts(parser *p)
{
    for (size_t i = 0; i < p->n_segs; i++)
        free(p->segs[i].literal);
    for (size_t i = 0; i < p->n_vars; i++)
        free(p->vars[i].field_path);
}

static int parse(parser *p, char **verb)
{
    int rc;
    if (p->len == 0)
        return fail(p, 0, "empty template");
    if (p->len > ORPC_TMPL_MAX_LEN)
        return fail(p, ORPC_TMPL_MAX_LEN, "template longer than %d bytes",
                    ORPC_TMPL_MAX_LEN);
    if (p->s[0] != '/')
        return fail(p, 0, "template must start with '/'");
    p->pos = 1;
    for (;;) {
        if (peek(p) == '{')
            rc = parse_variable(p);
        else
            rc = parse_plain_segment(p, -1);
        if (rc != 0)
            return rc;
        if (peek(p) != '/')
            break;
        p->pos++;
    }
    if (peek(p) == ':') {
        size_t at = ++p->pos;
        if ((rc = parse_literal(p, verb)) != 0) {
            if (rc == -1 && at == p->len)
                return fail(p, at, "empty verb after ':'");
            return rc;
        }
    }
    if (p->pos != p->len) {
        int c = (unsigned char)p->s[p->pos];
        if (c >= 0x21 && c < 0x7f)
            return fail(p, p->pos, "unexpected '%c'", c);
        return fail(p, p->pos, "unexpected byte 0x%02x", c);
    }
    /* "**" must be the last segment. */
    for (size_t i = 0; i + 1 < p->n_segs; i++)
        if (p->segs[i].kind == ORPC_TMPL_DSTAR)
            return fail(p, p->seg_pos[i], "'**' must be the last segment");
    return 0;
}

int orpc__path_template_parse(const char *text, orpc_path_template **out,
                              char *err, size_t errlen, size_t *err_pos)
{
    parser *p = calloc(1, sizeof(*p));
    char *verb = NULL;
    orpc_path_template *t = NULL;
    int rc;

    if (p == NULL)
        return -2;
    p->s = text ? text : "";
    p->len = strlen(p->s);
    p->err = err;
    p->errlen = errlen;
    if (errlen > 0)
        err[0] = '\0';
    rc = parse(p, &verb);
    if (rc == 0) {
        t = calloc(1, sizeof(*t));
        if (t != NULL && p->n_segs > 0)
            t->segments = calloc(p->n_segs, sizeof(*t->segments));
        if (t != NULL && p->n_vars > 0)
            t->vars = calloc(p->n_vars, sizeof(*t->vars));
        if (t == NULL || (p->n_segs > 0 && t->segments == NULL) ||
            (p->n_vars > 0 && t->vars == NULL)) {
            if (t != NULL) {
                free(t->segments);
                free(t->vars);
                free(t);
            }
            rc = -2;
        } else {
            if (p->n_segs > 0)
                memcpy(t->segments, p->segs, p->n_segs * sizeof(*t->segments));
            if (p->n_vars > 0)
                memcpy(t->vars, p->vars, p->n_vars * sizeof(*t->vars));
            t->n_segments = p->n_segs;
            t->n_vars = p->n_vars;
            t->verb = verb;
            *out = t;
            free(p);
            return 0;
        }
    }
    if (p->oom)
        rc = -2;
    if (err_pos != NULL)
        *err_pos = p->err_pos;
    free_parts(p);
    free(verb);
    free(p);
    return rc;
}

void orpc__path_template_free(orpc_path_template *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_segments; i++)
        free(t->segments[i].literal);
    for (size_t i = 0; i < t->n_vars; i++)
        free(t->vars[i].field_path);
    free(t->segments);
    free(t->vars);
    free(t->verb);
    free(t);
}

int orpc__path_template_shape(const orpc_path_template *t, char *buf,
                              size_t len)
{
    size_t n = 0;
    int w;
    for (size_t i = 0; i < t->n_segments; i++) {
        const orpc_tmpl_segment *s = &t->segments[i];
        const char *text = s->kind == ORPC_TMPL_LITERAL ? s->literal
                           : s->kind == ORPC_TMPL_STAR  ? "*"
                                                        : "**";
        w = snprintf(buf + n, len - n, "/%s", text);
        if (w < 0 || (size_t)w >= len - n)
            return -1;
        n += (size_t)w;
    }
    if (t->verb != NULL) {
        w = snprintf(buf + n, len - n, ":%s", t->verb);
        if (w < 0 || (size_t)w >= len - n)
            return -1;
        n += (size_t)w;
    }
    return (int)n;
}
