/*
 * fuzz_path_template.c — libFuzzer target for the google.api.http path
 * template parser (orpc__path_template_parse, common/path_template.h),
 * checked against a reference recognizer of the same grammar written
 * another way (a table of what may follow what, no recursion).
 *
 * The input is the template text; the parser reads a C string, so it sees
 * the bytes up to the first NUL.  Inputs over twice ORPC_TMPL_MAX_LEN are
 * skipped.
 *
 * Checked beyond "no crash, no leak, no UB":
 *   - accepted exactly when the reference accepts, with as many segments
 *     and variables as it counts;
 *   - a refusal returns -1 with a printable-ASCII reason and an error
 *     offset within the text;
 *   - an accepted template is well formed: 1 to ORPC_TMPL_MAX_SEGMENTS
 *     segments, a literal exactly on literal segments and valid as one,
 *     "**" last only, each variable a valid dotted field path bound to a
 *     run of consecutive segments that name it (and no other segment does),
 *     no two variables alike, a verb that is a valid literal;
 *   - printing the parsed template back (canonically) parses to the same
 *     template, and prints the same again;
 *   - the shape (orpc__path_template_shape) is a template itself, without
 *     variables, with the same segments and verb, its own shape, and the
 *     same for the printed template; a buffer one byte too small gives -1.
 *
 * Built with -DORPC_FUZZ_STANDALONE it has a main() (standalone.h) that
 * runs the target over the files named on the command line, or over a fixed
 * set of generated inputs (fixed seed) when there are none: a regression
 * test.
 * "-write-seeds DIR" also saves those inputs in DIR, a seed corpus for
 * libFuzzer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "common/path_template.h"

#define MAX_INPUT (2 * ORPC_TMPL_MAX_LEN)

/* ---- the reference recognizer ------------------------------------------ */

static int ref_alpha(int c)
{
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static int ref_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int ref_hex(int c)
{
    return ref_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* RFC 3986 pchar without ':' and '%' (escapes are handled apart). */
static int ref_lit_char(int c)
{
    static const char extra[] = "-._~!$&'()+,;=@";
    return ref_alpha(c) || ref_digit(c) ||
           (c != 0 && memchr(extra, c, sizeof(extra) - 1) != NULL);
}

/* The length of the LITERAL at |s| (0: none; -1: a bad escape in it). */
static long ref_literal(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] == '%') {
            if (n - i < 3 || !ref_hex(s[i + 1]) || !ref_hex(s[i + 2])) {
                return -1;
            }
            i += 3;
        } else if (ref_lit_char((unsigned char)s[i])) {
            i++;
        } else {
            break;
        }
    }
    return (long)i;
}

/* Whether |s| (|n| bytes) is a whole LITERAL. */
static int ref_is_literal(const char *s, size_t n)
{
    return n > 0 && ref_literal(s, n) == (long)n;
}

/* Whether |s| is FieldPath: IDENT { "." IDENT }. */
static int ref_field_path(const char *s, size_t n)
{
    size_t i = 0;
    for (;;) {
        if (i >= n || !(ref_alpha(s[i]) || s[i] == '_')) {
            return 0;
        }
        while (i < n && (ref_alpha(s[i]) || ref_digit(s[i]) || s[i] == '_')) {
            i++;
        }
        if (i == n) {
            return 1;
        }
        if (s[i++] != '.') {
            return 0;
        }
    }
}

/*
 * Recognizes |s|: splits it at the '/' outside braces into segments, each
 * a "*", "**", a literal or "{path[=...]}" whose inside is split again;
 * the verb is what follows the first ':' outside braces.  Returns 1 and
 * the counts when the text is a template.
 */
static int ref_accepts(const char *s, size_t n, size_t *n_segs, size_t *n_vars)
{
    const char *names[ORPC_TMPL_MAX_SEGMENTS];
    size_t name_lens[ORPC_TMPL_MAX_SEGMENTS];
    size_t segs = 0, vars = 0, end = n;
    int dstar_seen = 0; /* a "**" that must have been the last segment */
    if (n == 0 || n > ORPC_TMPL_MAX_LEN || s[0] != '/') {
        return 0;
    }
    /* The verb: from the first ':' outside braces. */
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        depth += s[i] == '{';
        depth -= s[i] == '}';
        if (s[i] == ':' && depth == 0) {
            if (!ref_is_literal(s + i + 1, n - i - 1)) {
                return 0;
            }
            end = i;
            break;
        }
    }
    size_t i = 1;
    for (;;) {
        /* One top-level segment: [i, j). */
        size_t j = i;
        if (j < end && s[j] == '{') {
            while (j < end && s[j] != '}') {
                j++;
            }
            if (j == end) {
                return 0;
            }
            j++;
        } else {
            while (j < end && s[j] != '/') {
                j++;
            }
        }
        const char *seg = s + i;
        size_t len = j - i;
        if (dstar_seen) {
            return 0;
        }
        if (len > 0 && seg[0] == '{') {
            const char *in = seg + 1;
            size_t in_len = len - 2;
            const char *eq = memchr(in, '=', in_len);
            size_t plen = eq ? (size_t)(eq - in) : in_len;
            if (!ref_field_path(in, plen)) {
                return 0;
            }
            for (size_t v = 0; v < vars; v++) {
                if (name_lens[v] == plen && memcmp(names[v], in, plen) == 0) {
                    return 0;
                }
            }
            if (vars == ORPC_TMPL_MAX_SEGMENTS) {
                return 0; /* more variables than segments allowed */
            }
            names[vars] = in;
            name_lens[vars] = plen;
            vars++;
            if (eq == NULL) {
                segs++;
            } else {
                /* Segments of plain segments, '/'-separated. */
                const char *p = eq + 1, *stop = in + in_len;
                for (;;) {
                    const char *q = p;
                    while (q < stop && *q != '/') {
                        q++;
                    }
                    size_t sl = (size_t)(q - p);
                    if (dstar_seen) {
                        return 0;
                    }
                    if (sl == 2 && p[0] == '*' && p[1] == '*') {
                        dstar_seen = 1;
                    } else if (!(sl == 1 && p[0] == '*') &&
                               !ref_is_literal(p, sl)) {
                        return 0;
                    }
                    segs++;
                    if (q == stop) {
                        break;
                    }
                    p = q + 1;
                }
            }
        } else if (len == 2 && seg[0] == '*' && seg[1] == '*') {
            dstar_seen = 1;
            segs++;
        } else if ((len == 1 && seg[0] == '*') || ref_is_literal(seg, len)) {
            segs++;
        } else {
            return 0;
        }
        if (segs > ORPC_TMPL_MAX_SEGMENTS) {
            return 0;
        }
        if (j == end) {
            break;
        }
        if (s[j] != '/') {
            return 0; /* e.g. "{a}b" */
        }
        i = j + 1;
    }
    *n_segs = segs;
    *n_vars = vars;
    return 1;
}

/* ---- checks of a parsed template ---------------------------------------- */

static void check_shape_of(const orpc_path_template *t)
{
    for (size_t i = 0; i < t->n_segments; i++) {
        const orpc_tmpl_segment *s = &t->segments[i];
        CHECK(s->kind == ORPC_TMPL_LITERAL || s->kind == ORPC_TMPL_STAR ||
              s->kind == ORPC_TMPL_DSTAR);
        CHECK((s->literal != NULL) == (s->kind == ORPC_TMPL_LITERAL));
        if (s->literal != NULL) {
            CHECK(ref_is_literal(s->literal, strlen(s->literal)));
        }
        CHECK(s->kind != ORPC_TMPL_DSTAR || i + 1 == t->n_segments);
        CHECK(s->var >= -1 && s->var < (int)t->n_vars);
    }
    for (size_t v = 0; v < t->n_vars; v++) {
        const orpc_tmpl_var *var = &t->vars[v];
        CHECK(var->field_path != NULL);
        CHECK(ref_field_path(var->field_path, strlen(var->field_path)));
        CHECK(var->count >= 1 && var->first < t->n_segments &&
              var->count <= t->n_segments - var->first);
        for (size_t i = 0; i < t->n_segments; i++) {
            int in = i >= var->first && i < var->first + var->count;
            CHECK((t->segments[i].var == (int)v) == in);
        }
        for (size_t w = 0; w < v; w++) {
            CHECK(strcmp(t->vars[w].field_path, var->field_path) != 0);
            CHECK(t->vars[w].first + t->vars[w].count <= var->first);
        }
    }
    CHECK(t->verb == NULL || ref_is_literal(t->verb, strlen(t->verb)));
}

/* Appends |s| to |buf|. */
static void add(char *buf, size_t *len, size_t cap, const char *s)
{
    size_t n = strlen(s);
    CHECK(n < cap - *len);
    memcpy(buf + *len, s, n + 1);
    *len += n;
}

/* The template as text: every variable as "{path=segments}". */
static size_t print(const orpc_path_template *t, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < t->n_segments; i++) {
        const orpc_tmpl_segment *s = &t->segments[i];
        const orpc_tmpl_var *v = s->var >= 0 ? &t->vars[s->var] : NULL;
        add(buf, &len, cap, "/");
        if (v != NULL && v->first == i) {
            add(buf, &len, cap, "{");
            add(buf, &len, cap, v->field_path);
            add(buf, &len, cap, "=");
        }
        add(buf, &len, cap,
            s->kind == ORPC_TMPL_LITERAL ? s->literal
            : s->kind == ORPC_TMPL_STAR  ? "*"
                                         : "**");
        if (v != NULL && v->first + v->count == i + 1) {
            add(buf, &len, cap, "}");
        }
    }
    if (t->verb != NULL) {
        add(buf, &len, cap, ":");
        add(buf, &len, cap, t->verb);
    }
    return len;
}

static int same_template(const orpc_path_template *a,
                         const orpc_path_template *b)
{
    if (a->n_segments != b->n_segments || a->n_vars != b->n_vars ||
        (a->verb == NULL) != (b->verb == NULL) ||
        (a->verb != NULL && strcmp(a->verb, b->verb) != 0)) {
        return 0;
    }
    for (size_t i = 0; i < a->n_segments; i++) {
        const orpc_tmpl_segment *x = &a->segments[i], *y = &b->segments[i];
        if (x->kind != y->kind || x->var != y->var ||
            (x->literal != NULL && strcmp(x->literal, y->literal) != 0)) {
            return 0;
        }
    }
    for (size_t v = 0; v < a->n_vars; v++) {
        if (strcmp(a->vars[v].field_path, b->vars[v].field_path) != 0 ||
            a->vars[v].first != b->vars[v].first ||
            a->vars[v].count != b->vars[v].count) {
            return 0;
        }
    }
    return 1;
}

static orpc_path_template *must_parse(const char *text)
{
    orpc_path_template *t = NULL;
    char err[256];
    size_t pos = 0;
    int rc = orpc__path_template_parse(text, &t, err, sizeof(err), &pos);
    if (rc != 0) {
        fprintf(stderr, "should parse: \"%s\": %s at %zu\n", text, err, pos);
    }
    CHECK(rc == 0 && t != NULL);
    check_shape_of(t);
    return t;
}

/* The shape: a variable-free template with the same segments. */
static void check_shape(const orpc_path_template *t, char *shape, size_t cap)
{
    int n = orpc__path_template_shape(t, shape, cap);
    CHECK(n > 0 && (size_t)n == strlen(shape));
    CHECK(strchr(shape, '{') == NULL && strchr(shape, '}') == NULL);
    orpc_path_template *s = must_parse(shape);
    CHECK(s->n_vars == 0 && s->n_segments == t->n_segments);
    for (size_t i = 0; i < t->n_segments; i++) {
        CHECK(s->segments[i].kind == t->segments[i].kind);
        CHECK(s->segments[i].var == -1);
        CHECK(s->segments[i].literal == NULL ||
              strcmp(s->segments[i].literal, t->segments[i].literal) == 0);
    }
    CHECK((s->verb == NULL) == (t->verb == NULL));
    CHECK(s->verb == NULL || strcmp(s->verb, t->verb) == 0);
    char *again = malloc((size_t)n + 1);
    CHECK(again != NULL);
    CHECK(orpc__path_template_shape(s, again, (size_t)n + 1) == n);
    CHECK(strcmp(again, shape) == 0);
    /* One byte short: refused, never overrun (ASan sees the exact size). */
    CHECK(orpc__path_template_shape(s, again, (size_t)n) == -1);
    free(again);
    orpc__path_template_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) {
        return 0;
    }
    char *text = malloc(size + 1);
    CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    size_t len = strlen(text);

    orpc_path_template *t = (orpc_path_template *)&len; /* must stay */
    char err[128];
    size_t pos = SIZE_MAX;
    memset(err, 'x', sizeof(err));
    int rc = orpc__path_template_parse(text, &t, err, sizeof(err), &pos);
    size_t ref_segs = 0, ref_vars = 0;
    int ref = ref_accepts(text, len, &ref_segs, &ref_vars);
    if ((rc == 0) != ref) {
        fprintf(stderr, "parser %s, reference %s: \"%s\"%s%s\n",
                rc == 0 ? "accepts" : "refuses", ref ? "accepts" : "refuses",
                text, rc == 0 ? "" : ": ", rc == 0 ? "" : err);
    }
    CHECK((rc == 0) == ref);
    if (rc != 0) {
        CHECK(rc == -1);
        CHECK(t == (orpc_path_template *)&len);
        CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
        for (size_t i = 0; err[i] != '\0'; i++) {
            CHECK(err[i] >= 0x20 && err[i] < 0x7f);
        }
        CHECK(pos <= len);
        /* No room for a reason, nor a position: the same answer. */
        CHECK(orpc__path_template_parse(text, &t, NULL, 0, NULL) == -1);
        free(text);
        return 0;
    }
    CHECK(t != NULL && t != (orpc_path_template *)&len);
    CHECK(t->n_segments == ref_segs && t->n_vars == ref_vars);
    CHECK(t->n_segments >= 1 && t->n_segments <= ORPC_TMPL_MAX_SEGMENTS);
    check_shape_of(t);

    /* Printed back, it is the same template (and a fixed point). */
    size_t cap = 2 * len + 16;
    char *printed = malloc(cap), *printed2 = malloc(cap);
    char *shape = malloc(cap), *shape2 = malloc(cap);
    CHECK(printed && printed2 && shape && shape2);
    print(t, printed, cap);
    orpc_path_template *t2 = must_parse(printed);
    CHECK(same_template(t, t2));
    print(t2, printed2, cap);
    CHECK(strcmp(printed, printed2) == 0);

    check_shape(t, shape, cap);
    check_shape(t2, shape2, cap);
    CHECK(strcmp(shape, shape2) == 0);

    orpc__path_template_free(t2);
    orpc__path_template_free(t);
    free(printed);
    free(printed2);
    free(shape);
    free(shape2);
    free(text);
    return 0;
}

#ifdef ORPC_FUZZ_STANDALONE

/* ---- regression runner: files, or generated inputs --------------------- */

#include "standalone.h"

/* Pieces of templates, good and bad, glued by gen_input(). */
static const char *const PIECES[] = {
    "/",       "v1",    "shelves",  "*",       "**",   "{name}",
    "{a.b_c}", "{x=*}", "{y=**}",   "{z=a/*}", ":get", ":",
    "%2F",     "%zz",   "%4",       "{",       "}",    "=",
    "{a=",     "{1x}",  "{a..b}",   "{a}",     "~.-_", "!$&'()+,;=@",
    " ",       "\x01",  "\xc3\xa9", "{b={c}}", "***",  "{n=shelves/*/books/**}",
};

#define N_PIECES (sizeof(PIECES) / sizeof(PIECES[0]))

/* Templates that must parse (from google/api/http.proto and the OpsConductor
 * rules), to be mutated. */
static const char *const GOOD[] = {
    "/v1/{name=shelves/*/books/*}",
    "/v1/messages/{message_id}:cancel",
    "/v1/users/{user_id}/messages/{message.message_id}",
    "/v1/{parent=projects/*}/topics/**:publish",
    "/jobs/{job_id}/status",
    "/notifications",
    "/a/%41b/~c.d-e_f/*/**",
    "/{a}/{b}/{c}/{d}",
};

#define N_GOOD (sizeof(GOOD) / sizeof(GOOD[0]))

static size_t gen_input(uint32_t *st, uint8_t *out, size_t cap)
{
    size_t len = 0;
    switch (rng_next(st) % 4) {
    case 0: { /* a good one, with a few bytes changed */
        const char *g = GOOD[rng_next(st) % N_GOOD];
        len = strlen(g);
        memcpy(out, g, len);
        int k = (int)(rng_next(st) % 3);
        for (int i = 0; i < k; i++) {
            out[rng_next(st) % len] = (uint8_t) "/{}=*:%.a_"[rng_next(st) % 10];
        }
        break;
    }
    case 1: /* pieces */
        out[len++] = '/';
        for (int i = (int)(rng_next(st) % 12); i >= 0; i--) {
            const char *p = PIECES[rng_next(st) % N_PIECES];
            size_t n = strlen(p);
            if (len + n >= cap) {
                break;
            }
            memcpy(out + len, p, n);
            len += n;
            if (rng_next(st) % 2 == 0 && len + 1 < cap) {
                out[len++] = '/';
            }
        }
        break;
    case 2: { /* near the limits: many segments, or a long text */
        size_t segs = 60 + rng_next(st) % 8;
        size_t seglen = rng_next(st) % 2 ? 1 : 70;
        for (size_t i = 0; i < segs && len + seglen + 1 < cap; i++) {
            out[len++] = '/';
            memset(out + len, 'a' + (int)(i % 26), seglen);
            len += seglen;
        }
        break;
    }
    default: { /* a good one as it is */
        const char *g = GOOD[rng_next(st) % N_GOOD];
        len = strlen(g);
        memcpy(out, g, len);
        break;
    }
    }
    return len;
}

FUZZ_STANDALONE_MAIN("fuzz_path_template", 0x746d706cu /* "tmpl" */, gen_input)

#endif /* ORPC_FUZZ_STANDALONE */
