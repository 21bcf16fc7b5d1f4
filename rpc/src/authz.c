/*
 * authz.c — owns the gRPC authorization policy engine (gRFC A43): reading
 * and validating a policy, compiling it, and deciding each RPC.  See authz.h
 * for the contract.
 *
 * Design notes.
 *
 * Strictness.  A policy is a security boundary, so anything the engine does
 * not fully understand is refused rather than ignored (A43: "Using policy
 * with new fields, with an older version of gRPC, will result in policy
 * being marked invalid"): unknown fields at any level, wrong types (null
 * included), duplicate object keys (which JSON parsers resolve differently),
 * duplicate rule names within one list (a second rule of the same name
 * would be lost by gRPC's own map-based engines), strings with NUL (C
 * strings would silently shorten them), and patterns with '*' at both ends
 * (gRPC-Go reads "*abc*" as a prefix, C-core as a suffix; A43 defines
 * neither).  Error messages name the rule and the field so an operator can
 * fix the file from the log line alone; names and keys quoted in them are
 * escaped and truncated, because they come from the file.  For the same
 * reason a header key the server never presents to the policy (see
 * key_problem()) is refused: a rule on it would never match.
 *
 * Two passes, one block.  compile() walks the jansson tree twice with the
 * same code: the first pass validates and counts rules, headers, patterns
 * and string bytes; the second, given one block of exactly that size,
 * fills it in.  The compiled policy is therefore a single allocation that
 * holds no pointers outside itself and is never written after parsing,
 * which makes concurrent checks trivially safe and free() a single call.
 * It and the scratch buffers come from the caller's orpc_mem (a server's);
 * jansson allocates on its own (its hooks, json_set_alloc_funcs(), are
 * process-wide) and its tree is dropped before returning.
 *
 * Matching.  Patterns are stored with their '*' removed and a kind.  "*"
 * (presence) matches any non-empty value, as A43 says (gRPC C-core's
 * "prefix of empty" would also match an empty one).  A header sent several
 * times is matched as its values joined with ",", as A43 says; the join is
 * done virtually (hv_*), so a check never allocates.
 */
#include "authz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include <orpc/error.h>

#include "common/mem.h"

typedef enum mkind { M_EXACT, M_PREFIX, M_SUFFIX, M_PRESENT } mkind;

typedef struct matcher {
    mkind kind;
    const char *s; /* the pattern without its '*'; never NULL */
    size_t len;
} matcher;

typedef struct hdr {
    const char *key; /* lower case */
    size_t key_len;
    const matcher *values; /* OR'd; at least one */
    size_t n_values;
} hdr;

typedef struct rule {
    const char *name;
    const matcher *principals; /* OR'd; none: any peer */
    size_t n_principals;
    const matcher *paths; /* OR'd; none: any path */
    size_t n_paths;
    const hdr *headers; /* AND'd */
    size_t n_headers;
} rule;

struct orpc__authz {
    const char *name;
    const rule *deny;
    size_t n_deny;
    const rule *allow;
    size_t n_allow;
    /* followed, in the same block, by the rules, headers, matchers and
     * string bytes they point to */
};

/* The block's arrays follow each other without padding (see parse). */
_Static_assert(sizeof(struct orpc__authz) % _Alignof(rule) == 0,
               "rules follow the header aligned");
_Static_assert(sizeof(rule) % _Alignof(hdr) == 0, "headers follow rules");
_Static_assert(sizeof(hdr) % _Alignof(matcher) == 0, "matchers follow");

/* ---------------------------------------------------------------------- */
/* The two passes' state, and error messages                               */

typedef struct build {
    /* Pass 1: the arrays are NULL and the counts grow.  Pass 2: the arrays
     * point into the block and the counts are cursors into them. */
    rule *rules;
    hdr *hdrs;
    matcher *matchers;
    char *chars;
    size_t n_rules, n_hdrs, n_matchers, n_chars;
    char *err;
    size_t errlen;
    const orpc_mem *mem; /* the policy's allocator (NULL: libc) */
} build;

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    ORPC_PRINTF(3, 4);

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int fail(build *b, const char *fmt, ...) ORPC_PRINTF(2, 3);

static int fail(build *b, const char *fmt, ...)
{
    va_list ap;
    if (b->err && b->errlen) {
        va_start(ap, fmt);
        vsnprintf(b->err, b->errlen, fmt, ap);
        va_end(ap);
    }
    return ORPC_ECONFIG;
}

/*
 * |s| (|len| bytes) made safe to put in a log line: printable ASCII as is
 * ('"' and '\' escaped too when |quotes|), anything else as \xNN, cut after
 * |max_in| input bytes with "...".  |dst| must hold |max_in| * 4 + 4 bytes.
 */
#define QUOTE_IN 64
#define QUOTE_MAX (QUOTE_IN * 4 + 4)
#define JERR_MAX (JSON_ERROR_TEXT_LENGTH * 4 + 4)

static const char *quote_x(char *dst, const char *s, size_t len, size_t max_in,
                           int quotes)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t n = len > max_in ? max_in : len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (quotes && (c == '"' || c == '\\')) {
            dst[o++] = '\\';
            dst[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    if (n < len) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
    return dst;
}

/* A name or key from the policy, to be shown inside "...". */
static const char *quote(char *dst, const char *s, size_t len)
{
    return quote_x(dst, s, len, QUOTE_IN, 1);
}

/* ---------------------------------------------------------------------- */
/* Pass helpers                                                            */

/* Room for the string |s|, |len| bytes (+ NUL), lower-cased if |lower|. */
static const char *store_str(build *b, const char *s, size_t len, int lower)
{
    char *d;
    if (!b->chars) {
        b->n_chars += len + 1;
        return "";
    }
    d = b->chars + b->n_chars;
    b->n_chars += len + 1;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        d[i] = (lower && c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    d[len] = '\0';
    return d;
}

/* |v| as a string within the limits; |where| names it in errors. */
static int get_string(build *b, const json_t *v, const char *where,
                      const char **s, size_t *len)
{
    if (!json_is_string(v)) {
        return fail(b, "%s: not a string", where);
    }
    *s = json_string_value(v);
    *len = json_string_length(v);
    if (*len > ORPC__AUTHZ_MAX_STRING) {
        return fail(b, "%s: %zu bytes, over the %d-byte limit", where, *len,
                    ORPC__AUTHZ_MAX_STRING);
    }
    if (memchr(*s, '\0', *len)) {
        return fail(b, "%s: contains a NUL character", where);
    }
    return 0;
}

/* Refuses any member of |obj| not named in |allowed| (NULL-terminated). */
static int only_fields(build *b, const json_t *obj, const char *where,
                       const char *const *allowed)
{
    const char *key;
    const json_t *val;
    char q[QUOTE_MAX];
    /* json_object_foreach needs a non-const object; it does not modify it */
    json_t *o = (json_t *)(uintptr_t)obj;
    json_object_foreach(o, key, val)
    {
        size_t i;
        (void)val;
        for (i = 0; allowed[i]; i++) {
            if (strcmp(key, allowed[i]) == 0) {
                break;
            }
        }
        if (!allowed[i]) {
            quote(q, key, strlen(key));
            if (where) {
                return fail(b, "%s: unknown field \"%s\"", where, q);
            }
            return fail(b, "unknown top-level field \"%s\"", q);
        }
    }
    return 0;
}

/* One pattern string into |m|. */
static int pattern(build *b, const json_t *v, const char *where, matcher *m)
{
    const char *s = NULL;
    size_t len = 0;
    int rc = get_string(b, v, where, &s, &len);
    if (rc) {
        return rc;
    }
    if (len == 1 && s[0] == '*') {
        m->kind = M_PRESENT;
        len = 0;
    } else if (len >= 2 && s[0] == '*' && s[len - 1] == '*') {
        return fail(b,
                    "%s: '*' at both ends (a pattern is exact \"abc\", "
                    "prefix \"abc*\", suffix \"*abc\" or \"*\")",
                    where);
    } else if (len >= 1 && s[len - 1] == '*') {
        m->kind = M_PREFIX;
        len--;
    } else if (len >= 1 && s[0] == '*') {
        m->kind = M_SUFFIX;
        s++;
        len--;
    } else {
        m->kind = M_EXACT;
    }
    m->s = store_str(b, s, len, 0);
    m->len = len;
    return 0;
}

/* An array of patterns; |where| is e.g. `allow_rules[0] "x": request.paths`. */
static int pattern_list(build *b, const json_t *arr, const char *where,
                        const matcher **out, size_t *n)
{
    char w[512];
    size_t k;
    matcher *ms;
    matcher scratch;
    if (!json_is_array(arr)) {
        return fail(b, "%s: not an array", where);
    }
    k = json_array_size(arr);
    ms = b->matchers ? b->matchers + b->n_matchers : NULL;
    b->n_matchers += k;
    for (size_t i = 0; i < k; i++) {
        int rc;
        snprintf(w, sizeof(w), "%s[%zu]", where, i);
        rc = pattern(b, json_array_get(arr, i), w, ms ? &ms[i] : &scratch);
        if (rc) {
            return rc;
        }
    }
    *out = ms;
    *n = k;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Header keys                                                             */

static int tchar(unsigned char c)
{
    /* RFC 9110 token characters */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

/*
 * Why the lower-cased, NUL-terminated |key| may not be matched on, or NULL.
 * A43: "the Host header, hop-by-hop headers (e.g. those listed in
 * Connection header), HTTP/2 pseudo headers (':'-prefixed) and headers
 * prefixed with grpc-".  The hop-by-hop list is RFC 9110's plus HTTP/2's
 * connection-specific "proxy-connection" (RFC 9113 §8.2.2), as gRPC-Go
 * does.  Beyond A43, any key the server does not present to the policy is
 * refused too (user-agent, content-type, ...): a rule on it would load and
 * never match, so a deny rule would silently never fire.
 */
static const char *key_problem(const char *key, size_t len)
{
    static const char *const hop[] = {"connection",
                                      "keep-alive",
                                      "proxy-authenticate",
                                      "proxy-authorization",
                                      "proxy-connection",
                                      "te",
                                      "trailer",
                                      "transfer-encoding",
                                      "upgrade",
                                      NULL};
    if (len == 0) {
        return NULL; /* reported as "empty" by the caller */
    }
    if (key[0] == ':') {
        return "pseudo-headers cannot be matched";
    }
    if (len >= 5 && memcmp(key, "grpc-", 5) == 0) {
        return "grpc- headers cannot be matched";
    }
    if (strcmp(key, "host") == 0) {
        return "the Host header cannot be matched";
    }
    for (size_t i = 0; hop[i]; i++) {
        if (strcmp(key, hop[i]) == 0) {
            return "hop-by-hop headers cannot be matched";
        }
    }
    for (size_t i = 0; i < len; i++) {
        if (!tchar((unsigned char)key[i])) {
            return "not a valid header name";
        }
    }
    /* What the server presents: the entries orpc__md_from_header() (grpc.c)
     * keeps, i.e. valid metadata keys less the two HTTP headers it handles
     * itself; orpc_metadata_key_valid() already refuses content-type,
     * user-agent and keys outside [0-9a-z_.-] or over its length limit. */
    if (strcmp(key, "content-length") == 0 ||
        strcmp(key, "accept-encoding") == 0 || !orpc_metadata_key_valid(key)) {
        return "cannot be matched (the server does not present it to "
               "policies)";
    }
    return NULL;
}

static int header_entry(build *b, const json_t *v, const char *rp, size_t idx,
                        hdr *h)
{
    static const char *const fields[] = {"key", "values", NULL};
    char w[512];
    char lower[ORPC__AUTHZ_MAX_STRING + 1];
    char q[QUOTE_MAX];
    const json_t *key, *values;
    const char *s, *why;
    size_t len;
    int rc;

    snprintf(w, sizeof(w), "%s: request.headers[%zu]", rp, idx);
    if (!json_is_object(v)) {
        return fail(b, "%s: not an object", w);
    }
    if ((rc = only_fields(b, v, w, fields))) {
        return rc;
    }
    key = json_object_get(v, "key");
    values = json_object_get(v, "values");
    if (!key) {
        return fail(b, "%s.key: missing", w);
    }
    snprintf(w, sizeof(w), "%s: request.headers[%zu].key", rp, idx);
    if ((rc = get_string(b, key, w, &s, &len))) {
        return rc;
    }
    if (len == 0) {
        return fail(b, "%s: empty", w);
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        lower[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    lower[len] = '\0';
    if ((why = key_problem(lower, len)) != NULL) {
        return fail(b, "%s: \"%s\": %s", w, quote(q, lower, len), why);
    }
    h->key = store_str(b, s, len, 1);
    h->key_len = len;
    snprintf(w, sizeof(w), "%s: request.headers[%zu].values", rp, idx);
    if (!values) {
        return fail(b, "%s: missing", w);
    }
    if ((rc = pattern_list(b, values, w, &h->values, &h->n_values))) {
        return rc;
    }
    if (h->n_values == 0) {
        return fail(b, "%s: empty (a header needs at least one value)", w);
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Rules and the policy                                                    */

static int parse_rule(build *b, const json_t *v, const char *list, size_t idx,
                      rule *r)
{
    static const char *const rule_fields[] = {"name", "source", "request",
                                              NULL};
    static const char *const source_fields[] = {"principals", NULL};
    static const char *const request_fields[] = {"paths", "headers", NULL};
    char rp[320];
    char w[512];
    char q[QUOTE_MAX];
    const json_t *name, *source, *request;
    const char *s = NULL;
    size_t len = 0;
    int rc;

    memset(r, 0, sizeof(*r));
    snprintf(rp, sizeof(rp), "%s[%zu]", list, idx);
    if (!json_is_object(v)) {
        return fail(b, "%s: not an object", rp);
    }
    name = json_object_get(v, "name");
    if (!name) {
        return fail(b, "%s: name: missing", rp);
    }
    snprintf(w, sizeof(w), "%s: name", rp);
    if ((rc = get_string(b, name, w, &s, &len))) {
        return rc;
    }
    if (len == 0) {
        return fail(b, "%s: empty", w);
    }
    r->name = store_str(b, s, len, 0);
    /* From here on the rule is named in every message. */
    snprintf(rp, sizeof(rp), "%s[%zu] \"%s\"", list, idx, quote(q, s, len));

    if ((rc = only_fields(b, v, rp, rule_fields))) {
        return rc;
    }
    source = json_object_get(v, "source");
    if (source) {
        const json_t *p;
        snprintf(w, sizeof(w), "%s: source", rp);
        if (!json_is_object(source)) {
            return fail(b, "%s: not an object", w);
        }
        if ((rc = only_fields(b, source, w, source_fields))) {
            return rc;
        }
        if ((p = json_object_get(source, "principals")) != NULL) {
            snprintf(w, sizeof(w), "%s: source.principals", rp);
            rc = pattern_list(b, p, w, &r->principals, &r->n_principals);
            if (rc) {
                return rc;
            }
        }
    }
    request = json_object_get(v, "request");
    if (request) {
        const json_t *p, *hs;
        snprintf(w, sizeof(w), "%s: request", rp);
        if (!json_is_object(request)) {
            return fail(b, "%s: not an object", w);
        }
        if ((rc = only_fields(b, request, w, request_fields))) {
            return rc;
        }
        if ((p = json_object_get(request, "paths")) != NULL) {
            snprintf(w, sizeof(w), "%s: request.paths", rp);
            rc = pattern_list(b, p, w, &r->paths, &r->n_paths);
            if (rc) {
                return rc;
            }
        }
        if ((hs = json_object_get(request, "headers")) != NULL) {
            size_t k;
            hdr *out;
            hdr scratch;
            if (!json_is_array(hs)) {
                return fail(b, "%s: request.headers: not an array", rp);
            }
            k = json_array_size(hs);
            out = b->hdrs ? b->hdrs + b->n_hdrs : NULL;
            b->n_hdrs += k;
            for (size_t i = 0; i < k; i++) {
                rc = header_entry(b, json_array_get(hs, i), rp, i,
                                  out ? &out[i] : &scratch);
                if (rc) {
                    return rc;
                }
            }
            r->headers = out;
            r->n_headers = k;
        }
    }
    return 0;
}

typedef struct name_ref {
    const char *s;
    size_t len;
    size_t idx;
} name_ref;

static int name_ref_cmp(const void *pa, const void *pb)
{
    const name_ref *a = pa, *b = pb;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->s, b->s, n);
    if (c) {
        return c;
    }
    if (a->len != b->len) {
        return a->len < b->len ? -1 : 1;
    }
    return a->idx < b->idx ? -1 : (a->idx > b->idx);
}

/* Refuses two rules of one name in the (already validated) list |arr|. */
static int no_duplicates(build *b, const json_t *arr, const char *list)
{
    size_t k = json_array_size(arr);
    size_t best = SIZE_MAX, first = 0;
    name_ref *refs;
    char q[QUOTE_MAX];
    if (k < 2) {
        return 0;
    }
    refs = orpc__mem_calloc(b->mem, k, sizeof(*refs));
    if (!refs) {
        fail(b, "out of memory");
        return ORPC_ENOMEM;
    }
    for (size_t i = 0; i < k; i++) {
        const json_t *n = json_object_get(json_array_get(arr, i), "name");
        refs[i].s = json_string_value(n);
        refs[i].len = json_string_length(n);
        refs[i].idx = i;
    }
    qsort(refs, k, sizeof(*refs), name_ref_cmp);
    /* Report the earliest rule that repeats an earlier name. */
    for (size_t i = 1, g = 0; i < k; i++) {
        if (refs[i].len == refs[g].len &&
            memcmp(refs[i].s, refs[g].s, refs[i].len) == 0) {
            if (refs[i].idx < best) {
                best = refs[i].idx;
                first = refs[g].idx;
            }
        } else {
            g = i;
        }
    }
    if (best != SIZE_MAX) {
        const json_t *n = json_object_get(json_array_get(arr, best), "name");
        fail(b, "%s[%zu] \"%s\": name: same as %s[%zu]", list, best,
             quote(q, json_string_value(n), json_string_length(n)), list,
             first);
    }
    orpc__mem_free(b->mem, refs);
    return best != SIZE_MAX ? ORPC_ECONFIG : 0;
}

static int parse_list(build *b, const json_t *arr, const char *list,
                      const rule **out, size_t *n)
{
    size_t k = json_array_size(arr);
    rule *rs = b->rules ? b->rules + b->n_rules : NULL;
    rule scratch;
    b->n_rules += k;
    for (size_t i = 0; i < k; i++) {
        int rc = parse_rule(b, json_array_get(arr, i), list, i,
                            rs ? &rs[i] : &scratch);
        if (rc) {
            return rc;
        }
    }
    *out = rs;
    *n = k;
    return 0;
}

/* One pass over the policy |root| into |a| (a scratch struct in pass 1). */
static int compile(build *b, const json_t *root, struct orpc__authz *a)
{
    static const char *const top_fields[] = {"name", "deny_rules",
                                             "allow_rules", NULL};
    const json_t *name, *deny, *allow;
    const char *s = NULL;
    size_t len = 0, total = 0;
    int rc;

    if (!json_is_object(root)) {
        return fail(b, "the policy is not a JSON object");
    }
    if ((rc = only_fields(b, root, NULL, top_fields))) {
        return rc;
    }
    name = json_object_get(root, "name");
    if (!name) {
        return fail(b, "name: missing");
    }
    if ((rc = get_string(b, name, "name", &s, &len))) {
        return rc;
    }
    if (len == 0) {
        return fail(b, "name: empty");
    }
    a->name = store_str(b, s, len, 0);
    deny = json_object_get(root, "deny_rules");
    if (deny && !json_is_array(deny)) {
        return fail(b, "deny_rules: not an array");
    }
    allow = json_object_get(root, "allow_rules");
    if (!allow) {
        return fail(b, "allow_rules: missing");
    }
    if (!json_is_array(allow)) {
        return fail(b, "allow_rules: not an array");
    }
    total = json_array_size(allow) + (deny ? json_array_size(deny) : 0);
    if (total > ORPC__AUTHZ_MAX_RULES) {
        return fail(b, "%zu rules, over the limit of %d", total,
                    ORPC__AUTHZ_MAX_RULES);
    }
    a->deny = NULL;
    a->n_deny = 0;
    if (deny) {
        if ((rc = parse_list(b, deny, "deny_rules", &a->deny, &a->n_deny))) {
            return rc;
        }
    }
    if ((rc = parse_list(b, allow, "allow_rules", &a->allow, &a->n_allow))) {
        return rc;
    }
    if (!b->rules) { /* pass 1: the lists are known to be well-formed now */
        if (deny && (rc = no_duplicates(b, deny, "deny_rules"))) {
            return rc;
        }
        if ((rc = no_duplicates(b, allow, "allow_rules"))) {
            return rc;
        }
    }
    return 0;
}

/* a * n + c, or SIZE_MAX on overflow. */
static size_t add_mul(size_t c, size_t a, size_t n)
{
    if (n && a > (SIZE_MAX - c) / n) {
        return SIZE_MAX;
    }
    return c + a * n;
}

int orpc__authz_parse(const char *json, size_t len, orpc__authz **out,
                      char *err, size_t errlen)
{
    return orpc__authz_parse_mem(json, len, NULL, out, err, errlen);
}

int orpc__authz_parse_mem(const char *json, size_t len, const orpc_mem *mem,
                          orpc__authz **out, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root;
    build b;
    struct orpc__authz scratch, *a;
    size_t size;
    char *block;
    int rc;

    if (err && errlen) {
        err[0] = '\0';
    }
    if (!out || (!json && len)) {
        set_err(err, errlen, "invalid argument");
        return ORPC_EINVAL;
    }
    *out = NULL;
    if (len > ORPC__AUTHZ_MAX_BYTES) {
        set_err(err, errlen, "policy is %zu bytes, over the %d-byte limit", len,
                ORPC__AUTHZ_MAX_BYTES);
        return ORPC_ECONFIG;
    }
    /* JSON_ALLOW_NUL lets us report a "\u0000" with the field it is in. */
    root = json_loadb(json ? json : "", len,
                      JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        char q[JERR_MAX];
        set_err(err, errlen, "invalid JSON at line %d, column %d: %s",
                jerr.line, jerr.column,
                quote_x(q, jerr.text, strnlen(jerr.text, sizeof(jerr.text)),
                        JSON_ERROR_TEXT_LENGTH, 0));
        return ORPC_ECONFIG;
    }

    memset(&b, 0, sizeof(b));
    b.err = err;
    b.errlen = errlen;
    b.mem = mem;
    rc = compile(&b, root, &scratch);
    if (rc) {
        json_decref(root);
        return rc;
    }

    size = sizeof(struct orpc__authz);
    size = add_mul(size, sizeof(rule), b.n_rules);
    size = add_mul(size, sizeof(hdr), b.n_hdrs);
    size = add_mul(size, sizeof(matcher), b.n_matchers);
    size = add_mul(size, 1, b.n_chars);
    block = size == SIZE_MAX ? NULL : orpc__mem_malloc(mem, size);
    if (!block) {
        json_decref(root);
        set_err(err, errlen, "out of memory");
        return ORPC_ENOMEM;
    }
    /* Header, rules, headers, matchers, then the string bytes; the static
     * asserts above make every array start aligned. */
    a = (struct orpc__authz *)(void *)block;
    {
        build fill;
        memset(&fill, 0, sizeof(fill));
        fill.rules = (rule *)(void *)(block + sizeof(*a));
        fill.hdrs = (hdr *)(void *)(fill.rules + b.n_rules);
        fill.matchers = (matcher *)(void *)(fill.hdrs + b.n_hdrs);
        fill.chars = (char *)(fill.matchers + b.n_matchers);
        /* Pass 2 sees the same tree, so it cannot fail; a failure would be
         * a bug here, and is still reported rather than half-built. */
        fill.err = err;
        fill.errlen = errlen;
        fill.mem = mem;
        rc = compile(&fill, root, a);
        if (!rc &&
            (fill.n_rules != b.n_rules || fill.n_hdrs != b.n_hdrs ||
             fill.n_matchers != b.n_matchers || fill.n_chars != b.n_chars)) {
            set_err(err, errlen, "internal error: policy passes disagree");
            rc = ORPC_ECONFIG;
        }
    }
    json_decref(root);
    if (rc) {
        orpc__mem_free(mem, block);
        return rc;
    }
    *out = a;
    return 0;
}

void orpc__authz_free_mem(const orpc_mem *mem, orpc__authz *a)
{
    orpc__mem_free(mem, a);
}

void orpc__authz_free(orpc__authz *a)
{
    orpc__authz_free_mem(NULL, a);
}

const char *orpc__authz_name(const orpc__authz *a)
{
    return a ? a->name : NULL;
}

/* ---------------------------------------------------------------------- */
/* Loading from a file                                                     */

static const char *errno_text(int e, char *buf, size_t n)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(e, buf, n); /* the GNU variant returns the text */
#else
    if (strerror_r(e, buf, n) != 0) {
        snprintf(buf, n, "error %d", e);
    }
    return buf;
#endif
}

/* Reads the whole regular file |path| (≤ the limit) into a new buffer. */
static int read_policy_file(const char *path, const orpc_mem *mem, char **out,
                            size_t *out_len, char *err, size_t errlen)
{
    char q[QUOTE_MAX], et[128];
    struct stat st;
    char *buf;
    size_t n = 0;
    int fd;

    quote(q, path, strlen(path));
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        set_err(err, errlen, "%s: %s", q, errno_text(errno, et, sizeof(et)));
        return ORPC_ECONFIG;
    }
    if (fstat(fd, &st) != 0) {
        set_err(err, errlen, "%s: %s", q, errno_text(errno, et, sizeof(et)));
        close(fd);
        return ORPC_ECONFIG;
    }
    if (S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "%s: is a directory", q);
        close(fd);
        return ORPC_ECONFIG;
    }
    if (!S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s: not a regular file", q);
        close(fd);
        return ORPC_ECONFIG;
    }
    if (st.st_size > ORPC__AUTHZ_MAX_BYTES) {
        set_err(err, errlen, "%s: %lld bytes, over the %d-byte limit", q,
                (long long)st.st_size, ORPC__AUTHZ_MAX_BYTES);
        close(fd);
        return ORPC_ECONFIG;
    }
    /* One byte more than the limit, to notice a file that grew. */
    buf = orpc__mem_malloc(mem, (size_t)ORPC__AUTHZ_MAX_BYTES + 1);
    if (!buf) {
        set_err(err, errlen, "out of memory");
        close(fd);
        return ORPC_ENOMEM;
    }
    while (n < (size_t)ORPC__AUTHZ_MAX_BYTES + 1) {
        ssize_t r = read(fd, buf + n, (size_t)ORPC__AUTHZ_MAX_BYTES + 1 - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            set_err(err, errlen, "%s: %s", q,
                    errno_text(errno, et, sizeof(et)));
            orpc__mem_free(mem, buf);
            close(fd);
            return ORPC_ECONFIG;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
    }
    close(fd);
    if (n > ORPC__AUTHZ_MAX_BYTES) {
        set_err(err, errlen, "%s: over the %d-byte limit", q,
                ORPC__AUTHZ_MAX_BYTES);
        orpc__mem_free(mem, buf);
        return ORPC_ECONFIG;
    }
    *out = buf;
    *out_len = n;
    return 0;
}

int orpc__authz_load_file(const char *path, orpc__authz **out, char *err,
                          size_t errlen)
{
    return orpc__authz_load_file_mem(path, NULL, out, err, errlen);
}

int orpc__authz_load_file_mem(const char *path, const orpc_mem *mem,
                              orpc__authz **out, char *err, size_t errlen)
{
    char msg[1024], q[QUOTE_MAX];
    char *buf = NULL;
    size_t len = 0;
    int rc;

    if (err && errlen) {
        err[0] = '\0';
    }
    if (!path || !out) {
        set_err(err, errlen, "invalid argument");
        return ORPC_EINVAL;
    }
    *out = NULL;
    rc = read_policy_file(path, mem, &buf, &len, err, errlen);
    if (rc) {
        return rc;
    }
    msg[0] = '\0';
    rc = orpc__authz_parse_mem(buf, len, mem, out, msg, sizeof(msg));
    orpc__mem_free(mem, buf);
    if (rc) {
        set_err(err, errlen, "%s: %s", quote(q, path, strlen(path)), msg);
    }
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Deciding                                                                */

static int match_str(const matcher *m, const char *s, size_t len)
{
    switch (m->kind) {
    case M_EXACT:
        return len == m->len && memcmp(s, m->s, len) == 0;
    case M_PREFIX:
        return len >= m->len && memcmp(s, m->s, m->len) == 0;
    case M_SUFFIX:
        return len >= m->len && memcmp(s + len - m->len, m->s, m->len) == 0;
    case M_PRESENT:
        return len > 0;
    }
    return 0;
}

static int match_any_of(const matcher *m, const char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i] && match_str(m, v[i], strlen(v[i]))) {
            return 1;
        }
    }
    return 0;
}

/* A43 principal evaluation for one pattern. */
static int principal_match(const matcher *m, const orpc__authz_peer *p)
{
    if (!p || !p->tls) {
        return 0; /* 1. without TLS, nothing matches */
    }
    if (!p->has_cert) {
        return m->kind == M_EXACT && m->len == 0; /* 2. only "" */
    }
    /* 3. URI SANs, then DNS SANs, then the subject */
    if (p->uri_sans && match_any_of(m, p->uri_sans, p->n_uri_sans)) {
        return 1;
    }
    if (p->dns_sans && match_any_of(m, p->dns_sans, p->n_dns_sans)) {
        return 1;
    }
    return p->subject && match_str(m, p->subject, strlen(p->subject));
}

static int key_eq(const char *a, const char *lower, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if (c != lower[i]) {
            return 0;
        }
    }
    return a[len] == '\0';
}

/*
 * The request's values of header |h| seen as one string, joined with ","
 * (A43: "Multi-valued headers are considered a single value with commas
 * added between values"), without building it.
 */
static size_t hv_total(const orpc_metadata *md, const hdr *h, size_t *count)
{
    size_t total = 0, n = orpc_metadata_count(md);
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        const char *key;
        size_t len;
        if (orpc_metadata_at(md, i, &key, NULL, &len) == 0 && key &&
            key_eq(key, h->key, h->key_len)) {
            total += (*count ? 1 : 0) + len;
            (*count)++;
        }
    }
    return total;
}

/* Whether the joined value holds |pat| at offset |off| (in range). */
static int hv_has_at(const orpc_metadata *md, const hdr *h, size_t off,
                     const char *pat, size_t plen)
{
    size_t pos = 0, end = off + plen, n = orpc_metadata_count(md);
    int first = 1;
    for (size_t i = 0; i < n && pos < end; i++) {
        const char *key;
        const uint8_t *val;
        size_t len, lo, hi;
        if (orpc_metadata_at(md, i, &key, &val, &len) != 0 || !key ||
            !key_eq(key, h->key, h->key_len)) {
            continue;
        }
        if (!first) {
            if (pos >= off && pos < end && pat[pos - off] != ',') {
                return 0;
            }
            pos++;
        }
        first = 0;
        lo = pos > off ? pos : off;
        hi = pos + len < end ? pos + len : end;
        if (lo < hi && memcmp(val + (lo - pos), pat + (lo - off), hi - lo)) {
            return 0;
        }
        pos += len;
    }
    return 1;
}

static int header_match(const hdr *h, const orpc_metadata *md)
{
    size_t count, total = hv_total(md, h, &count);
    if (count == 0) {
        return 0; /* a header that is not sent matches no pattern */
    }
    for (size_t i = 0; i < h->n_values; i++) {
        const matcher *m = &h->values[i];
        int ok;
        switch (m->kind) {
        case M_EXACT:
            ok = total == m->len && hv_has_at(md, h, 0, m->s, m->len);
            break;
        case M_PREFIX:
            ok = total >= m->len && hv_has_at(md, h, 0, m->s, m->len);
            break;
        case M_SUFFIX:
            ok = total >= m->len &&
                 hv_has_at(md, h, total - m->len, m->s, m->len);
            break;
        default:
            ok = total > 0;
            break;
        }
        if (ok) {
            return 1;
        }
    }
    return 0;
}

static int rule_match(const rule *r, const orpc__authz_peer *peer,
                      const char *path, size_t path_len,
                      const orpc_metadata *md)
{
    size_t i;
    if (r->n_principals) {
        for (i = 0; i < r->n_principals; i++) {
            if (principal_match(&r->principals[i], peer)) {
                break;
            }
        }
        if (i == r->n_principals) {
            return 0;
        }
    }
    if (r->n_paths) {
        for (i = 0; i < r->n_paths; i++) {
            if (match_str(&r->paths[i], path, path_len)) {
                break;
            }
        }
        if (i == r->n_paths) {
            return 0;
        }
    }
    for (i = 0; i < r->n_headers; i++) {
        if (!header_match(&r->headers[i], md)) {
            return 0;
        }
    }
    return 1;
}

int orpc__authz_check(const orpc__authz *a, const orpc__authz_peer *peer,
                      const char *path, const orpc_metadata *headers,
                      const char **rule_name)
{
    size_t path_len;
    if (rule_name) {
        *rule_name = NULL;
    }
    if (!a) {
        return 0;
    }
    if (!path) {
        path = "";
    }
    path_len = strlen(path);
    for (size_t i = 0; i < a->n_deny; i++) {
        if (rule_match(&a->deny[i], peer, path, path_len, headers)) {
            if (rule_name) {
                *rule_name = a->deny[i].name;
            }
            return 0;
        }
    }
    for (size_t i = 0; i < a->n_allow; i++) {
        if (rule_match(&a->allow[i], peer, path, path_len, headers)) {
            if (rule_name) {
                *rule_name = a->allow[i].name;
            }
            return 1;
        }
    }
    return 0;
}
