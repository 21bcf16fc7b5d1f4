/*
 * fuzz_authz.c — libFuzzer target for the gRFC A43 authorization policy
 * parser (orpc__authz_parse, rpc/src/authz.h), and for the decisions of the
 * policies it accepts (orpc__authz_check), checked against a reference
 * evaluator written here over jansson's tree of the same text.
 *
 * The input is the policy text (at most MAX_INPUT bytes; longer inputs are
 * skipped).
 *
 * Checked beyond "no crash, no leak, no UB":
 *   - the result is 0 or ORPC_ECONFIG; a refusal leaves |*out| NULL and
 *     gives a non-empty message of printable ASCII only (names and keys
 *     from the file are escaped), the same message truncated when |errlen|
 *     is small, and the same result without a message buffer;
 *   - an accepted policy has the policy's name, and for peers without TLS,
 *     with TLS but no certificate, and with certificates whose SANs and
 *     subject are fixed or taken from the policy's own patterns; for fixed
 *     paths and paths taken from the patterns; and for no headers, fixed
 *     headers and headers built from the policy's header rules (a key sent
 *     twice too), every decision and deciding rule is the reference's: deny
 *     rules first, then allow rules, then deny; "abc" exact, "abc*" prefix,
 *     "*abc" suffix, "*" any non-empty value; repeated headers joined with
 *     ","; principals never match without TLS, only "" without a
 *     certificate, else URI SANs, DNS SANs or the subject;
 *   - an accepted policy names only header keys the server presents to
 *     policies (ref_key_presented(): valid metadata keys, not reserved, not
 *     hop-by-hop, not content-length or accept-encoding), and with its
 *     first header key swapped for a key the server never presents it is
 *     refused with a message saying the key cannot be matched, while with
 *     a plain key it still loads.
 *
 * Built with -DORPC_FUZZ_STANDALONE it has a main() (standalone.h) that
 * runs the target over the files named on the command line, or over a fixed
 * set of generated inputs (fixed seed) when there are none: a regression
 * test.
 * "-write-seeds DIR" also saves those inputs in DIR, a seed corpus for
 * libFuzzer (which rarely finds a policy that passes validation on its
 * own).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <orpc/error.h>
#include <orpc/metadata.h>

#include "authz.h"
#include "fuzz.h"

#define MAX_INPUT (64 * 1024)
#define N_DERIVED 4 /* strings taken from the policy's patterns */

/* Accepted policies (the standalone runner reports how many). */
static unsigned long n_accepted;

/* ---- the reference evaluator -------------------------------------------- */

/* A43 pattern |p| against the value |s| (|n| bytes). */
static int ref_match(const json_t *p, const char *s, size_t n)
{
    const char *ps = json_string_value(p);
    size_t pn = json_string_length(p);
    if (pn == 1 && ps[0] == '*') {
        return n > 0;
    }
    if (pn >= 1 && ps[pn - 1] == '*') {
        return n >= pn - 1 && memcmp(s, ps, pn - 1) == 0;
    }
    if (pn >= 1 && ps[0] == '*') {
        return n >= pn - 1 && memcmp(s + n - (pn - 1), ps + 1, pn - 1) == 0;
    }
    return n == pn && memcmp(s, ps, n) == 0;
}

static int ref_match_cstr(const json_t *p, const char *s)
{
    return s != NULL && ref_match(p, s, strlen(s));
}

static int ref_principal(const json_t *p, const orpc__authz_peer *peer)
{
    if (peer == NULL || !peer->tls) {
        return 0;
    }
    if (!peer->has_cert) {
        return json_string_length(p) == 0;
    }
    for (size_t i = 0; i < peer->n_uri_sans; i++) {
        if (ref_match_cstr(p, peer->uri_sans[i])) {
            return 1;
        }
    }
    for (size_t i = 0; i < peer->n_dns_sans; i++) {
        if (ref_match_cstr(p, peer->dns_sans[i])) {
            return 1;
        }
    }
    return ref_match_cstr(p, peer->subject);
}

static int ascii_ieq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn) {
        return 0;
    }
    for (size_t i = 0; i < an; i++) {
        int x = a[i] >= 'A' && a[i] <= 'Z' ? a[i] + 32 : a[i];
        int y = b[i] >= 'A' && b[i] <= 'Z' ? b[i] + 32 : b[i];
        if (x != y) {
            return 0;
        }
    }
    return 1;
}

/* Header rule |h| ({"key", "values"}) against the request's headers: the
 * values of the key joined with ",", matched by any of the patterns. */
static int ref_header(const json_t *h, const orpc_metadata *md)
{
    const json_t *key = json_object_get(h, "key");
    const json_t *values = json_object_get(h, "values");
    size_t n = orpc_metadata_count(md), total = 0, count = 0;
    for (size_t i = 0; i < n; i++) {
        const char *k;
        size_t len;
        CHECK(orpc_metadata_at(md, i, &k, NULL, &len) == 0);
        if (ascii_ieq(k, strlen(k), json_string_value(key),
                      json_string_length(key))) {
            total += len + (count > 0);
            count++;
        }
    }
    if (count == 0) {
        return 0;
    }
    char *joined = malloc(total + 1);
    CHECK(joined != NULL);
    size_t pos = 0;
    count = 0;
    for (size_t i = 0; i < n; i++) {
        const char *k;
        const uint8_t *v;
        size_t len;
        CHECK(orpc_metadata_at(md, i, &k, &v, &len) == 0);
        if (ascii_ieq(k, strlen(k), json_string_value(key),
                      json_string_length(key))) {
            if (count++ > 0) {
                joined[pos++] = ',';
            }
            memcpy(joined + pos, v, len);
            pos += len;
        }
    }
    CHECK(pos == total);
    int ok = 0;
    for (size_t i = 0; i < json_array_size(values) && !ok; i++) {
        ok = ref_match(json_array_get(values, i), joined, total);
    }
    free(joined);
    return ok;
}

static int ref_rule(const json_t *r, const orpc__authz_peer *peer,
                    const char *path, const orpc_metadata *md)
{
    const json_t *src = json_object_get(r, "source");
    const json_t *req = json_object_get(r, "request");
    const json_t *princ = src ? json_object_get(src, "principals") : NULL;
    const json_t *paths = req ? json_object_get(req, "paths") : NULL;
    const json_t *hdrs = req ? json_object_get(req, "headers") : NULL;
    if (json_array_size(princ) > 0) {
        int any = 0;
        for (size_t i = 0; i < json_array_size(princ) && !any; i++) {
            any = ref_principal(json_array_get(princ, i), peer);
        }
        if (!any) {
            return 0;
        }
    }
    if (json_array_size(paths) > 0) {
        int any = 0;
        for (size_t i = 0; i < json_array_size(paths) && !any; i++) {
            any = ref_match_cstr(json_array_get(paths, i), path);
        }
        if (!any) {
            return 0;
        }
    }
    for (size_t i = 0; i < json_array_size(hdrs); i++) {
        if (!ref_header(json_array_get(hdrs, i), md)) {
            return 0;
        }
    }
    return 1;
}

/* The decision (1 allow, 0 deny) and the deciding rule's name, or NULL. */
static int ref_check(const json_t *policy, const orpc__authz_peer *peer,
                     const char *path, const orpc_metadata *md,
                     const char **rule)
{
    const json_t *deny = json_object_get(policy, "deny_rules");
    const json_t *allow = json_object_get(policy, "allow_rules");
    for (size_t i = 0; i < json_array_size(deny); i++) {
        const json_t *r = json_array_get(deny, i);
        if (ref_rule(r, peer, path, md)) {
            *rule = json_string_value(json_object_get(r, "name"));
            return 0;
        }
    }
    for (size_t i = 0; i < json_array_size(allow); i++) {
        const json_t *r = json_array_get(allow, i);
        if (ref_rule(r, peer, path, md)) {
            *rule = json_string_value(json_object_get(r, "name"));
            return 1;
        }
    }
    *rule = NULL;
    return 0;
}

/*
 * Whether the server presents headers of the lower-cased |key| to the
 * policy: what orpc__md_from_header() (rpc/src/grpc.c) keeps, less what
 * A43 forbids.  Written out here, apart from the library's lists.
 */
static int ref_key_presented(const char *key, size_t n)
{
    static const char *const never[] = {
        /* the runtime's own and HTTP's, skipped by the server */
        "te", "content-type", "user-agent", "host", "connection",
        "content-length", "accept-encoding", "keep-alive", "proxy-connection",
        "transfer-encoding", "upgrade",
        /* hop-by-hop, which A43 forbids even though the handler sees them */
        "trailer", "proxy-authenticate", "proxy-authorization"};
    if (n == 0 || n > 1024 || (n >= 5 && memcmp(key, "grpc-", 5) == 0)) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' ||
              c == '.' || c == '-')) {
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        if (strlen(never[i]) == n && memcmp(key, never[i], n) == 0) {
            return 0;
        }
    }
    return 1;
}

/* Keys a policy may never name, and a plain one. */
static const char *const UNPRESENTED[] = {
    "user-agent", "Content-Type", "content-length", "accept-encoding", "x!y",
    "X~Y",        "grpc-x",       "host",           "trailer",         ":path",
};

#define N_UNPRESENTED (sizeof(UNPRESENTED) / sizeof(UNPRESENTED[0]))

/*
 * Every header key of the accepted |policy| is presented; with the first
 * one swapped for a key the server never presents the policy is refused,
 * and with a plain key it loads.  |pick| chooses the bad key.
 */
static void check_keys(const json_t *policy, unsigned long pick)
{
    static const char *const lists[] = {"deny_rules", "allow_rules"};
    json_t *copy = json_deep_copy(policy);
    json_t *first = NULL;
    CHECK(copy != NULL);
    for (size_t l = 0; l < 2; l++) {
        const json_t *rules = json_object_get(copy, lists[l]);
        for (size_t i = 0; i < json_array_size(rules); i++) {
            const json_t *req =
                json_object_get(json_array_get(rules, i), "request");
            const json_t *hs = json_object_get(req, "headers");
            for (size_t k = 0; k < json_array_size(hs); k++) {
                json_t *h = json_array_get(hs, k);
                const json_t *key = json_object_get(h, "key");
                size_t n = json_string_length(key);
                char *lower = malloc(n + 1);
                CHECK(lower != NULL);
                for (size_t c = 0; c < n; c++) {
                    char ch = json_string_value(key)[c];
                    lower[c] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
                }
                lower[n] = '\0';
                if (!ref_key_presented(lower, n)) {
                    fprintf(stderr, "accepted a rule on header \"%s\"\n",
                            lower);
                }
                CHECK(ref_key_presented(lower, n));
                free(lower);
                if (first == NULL) {
                    first = h;
                }
            }
        }
    }
    if (first != NULL) {
        char err[1024];
        orpc__authz *b = NULL;
        CHECK(json_object_set_new(
                  first, "key",
                  json_string(UNPRESENTED[pick % N_UNPRESENTED])) == 0);
        char *text = json_dumps(copy, JSON_COMPACT);
        CHECK(text != NULL);
        CHECK(orpc__authz_parse(text, strlen(text), &b, err, sizeof(err)) ==
                  ORPC_ECONFIG &&
              b == NULL);
        CHECK(strstr(err, "cannot be matched") != NULL);
        free(text);
        CHECK(json_object_set_new(first, "key", json_string("x-plain")) == 0);
        text = json_dumps(copy, JSON_COMPACT);
        CHECK(text != NULL);
        CHECK(orpc__authz_parse(text, strlen(text), &b, err, sizeof(err)) ==
                  0 &&
              b != NULL);
        orpc__authz_free(b);
        free(text);
    }
    json_decref(copy);
}

/* ---- test vectors taken from the policy --------------------------------- */

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    CHECK(d != NULL);
    memcpy(d, s, n + 1);
    return d;
}

typedef struct derived {
    char *str[N_DERIVED]; /* pattern strings without their '*' */
    size_t n;
    char *keys[N_DERIVED]; /* header keys, lower-cased */
    size_t n_keys;
} derived;

static void derive_patterns(derived *d, const json_t *arr)
{
    for (size_t i = 0; i < json_array_size(arr) && d->n < N_DERIVED; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        size_t n = strlen(s);
        size_t from = n > 0 && s[0] == '*', to = n;
        if (to > from && s[to - 1] == '*') {
            to--;
        }
        d->str[d->n] = malloc(to - from + 1);
        CHECK(d->str[d->n] != NULL);
        memcpy(d->str[d->n], s + from, to - from);
        d->str[d->n][to - from] = '\0';
        d->n++;
    }
}

static void derive(derived *d, const json_t *policy)
{
    static const char *const lists[] = {"deny_rules", "allow_rules"};
    memset(d, 0, sizeof(*d));
    for (size_t l = 0; l < 2; l++) {
        const json_t *rules = json_object_get(policy, lists[l]);
        for (size_t i = 0; i < json_array_size(rules); i++) {
            const json_t *r = json_array_get(rules, i);
            const json_t *src = json_object_get(r, "source");
            const json_t *req = json_object_get(r, "request");
            derive_patterns(d, json_object_get(src, "principals"));
            derive_patterns(d, json_object_get(req, "paths"));
            const json_t *hs = json_object_get(req, "headers");
            for (size_t k = 0; k < json_array_size(hs); k++) {
                const json_t *h = json_array_get(hs, k);
                derive_patterns(d, json_object_get(h, "values"));
                if (d->n_keys < N_DERIVED) {
                    const char *key =
                        json_string_value(json_object_get(h, "key"));
                    char *lower = dup_str(key);
                    for (char *c = lower; *c; c++) {
                        *c = *c >= 'A' && *c <= 'Z' ? (char)(*c + 32) : *c;
                    }
                    d->keys[d->n_keys++] = lower;
                }
            }
        }
    }
}

static void derived_free(derived *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->str[i]);
    }
    for (size_t i = 0; i < d->n_keys; i++) {
        free(d->keys[i]);
    }
}

/* One decision, the library's against the reference's. */
static void check_one(const orpc__authz *a, const json_t *policy,
                      const orpc__authz_peer *peer, const char *path,
                      const orpc_metadata *md)
{
    const char *rule = "unset", *want_rule = NULL;
    int got = orpc__authz_check(a, peer, path, md, &rule);
    int want = ref_check(policy, peer, path ? path : "", md, &want_rule);
    CHECK(got == 0 || got == 1);
    if (got != want || (rule == NULL) != (want_rule == NULL) ||
        (rule != NULL && strcmp(rule, want_rule) != 0)) {
        fprintf(stderr, "path \"%s\", peer %s: got %d (%s), want %d (%s)\n",
                path ? path : "(null)",
                peer == NULL      ? "none"
                : !peer->tls      ? "plaintext"
                : !peer->has_cert ? "tls"
                                  : "cert",
                got, rule ? rule : "default", want,
                want_rule ? want_rule : "default");
    }
    CHECK(got == want);
    CHECK((rule == NULL) == (want_rule == NULL));
    CHECK(rule == NULL || strcmp(rule, want_rule) == 0);
    /* Without |rule|, the same decision. */
    CHECK(orpc__authz_check(a, peer, path, md, NULL) == got);
}

static void check_decisions(const orpc__authz *a, const json_t *policy)
{
    derived d;
    derive(&d, policy);

    /* Peers: none, plaintext, TLS without a certificate, and two with
     * one: fixed names, and names from the policy. */
    static const char *const uris[] = {"spiffe://example.org/ns/ops/sa/admin"};
    static const char *const dns[] = {"svc.example.org", "api.example.org"};
    const char *dstr[N_DERIVED + 1];
    for (size_t i = 0; i < d.n; i++) {
        dstr[i] = d.str[i];
    }
    orpc__authz_peer peers[5];
    memset(peers, 0, sizeof(peers));
    peers[1].tls = 0;
    peers[2].tls = 1;
    peers[3].tls = 1;
    peers[3].has_cert = 1;
    peers[3].uri_sans = uris;
    peers[3].n_uri_sans = 1;
    peers[3].dns_sans = dns;
    peers[3].n_dns_sans = 2;
    peers[3].subject = "CN=client,O=Example";
    peers[4].tls = 1;
    peers[4].has_cert = 1;
    peers[4].uri_sans = d.n > 0 ? dstr : NULL;
    peers[4].n_uri_sans = d.n > 0 ? 1 : 0;
    peers[4].dns_sans = d.n > 1 ? dstr + 1 : NULL;
    peers[4].n_dns_sans = d.n > 1 ? d.n - 1 : 0;
    peers[4].subject = d.n > 2 ? dstr[2] : NULL;

    /* Paths: fixed ones, and the policy's with something around them. */
    char *paths[3 + 2 * N_DERIVED];
    size_t n_paths = 0;
    paths[n_paths++] = dup_str("/opsconductor.jobs.v1.JobsService/GetJob");
    paths[n_paths++] = dup_str("");
    paths[n_paths++] = NULL;
    for (size_t i = 0; i < d.n; i++) {
        size_t n = strlen(d.str[i]);
        paths[n_paths] = malloc(n + 2);
        CHECK(paths[n_paths] != NULL);
        memcpy(paths[n_paths], d.str[i], n + 1);
        n_paths++;
        paths[n_paths] = malloc(n + 2);
        CHECK(paths[n_paths] != NULL);
        paths[n_paths][0] = 'x';
        memcpy(paths[n_paths] + 1, d.str[i], n + 1);
        n_paths++;
    }

    /* Headers: none; fixed ones; the policy's keys with its values (the
     * first key twice); metadata refuses some keys and values, and those
     * are left out. */
    orpc_metadata *mds[3] = {NULL, NULL, NULL};
    CHECK(orpc_metadata_new(&mds[1], NULL) == 0);
    CHECK(orpc_metadata_add_str(mds[1], "x-user", "alice") == 0);
    CHECK(orpc_metadata_add_str(mds[1], "x-role", "admin") == 0);
    CHECK(orpc_metadata_add_str(mds[1], "x-role", "ops") == 0);
    CHECK(orpc_metadata_new(&mds[2], NULL) == 0);
    for (size_t k = 0; k < d.n_keys; k++) {
        for (size_t i = 0; i < d.n; i++) {
            (void)orpc_metadata_add_str(mds[2], d.keys[k], d.str[i]);
        }
        /* A key a policy may name is one metadata takes. */
        CHECK(orpc_metadata_add_str(mds[2], d.keys[k], "v") == 0);
    }
    if (d.n_keys > 0) {
        CHECK(orpc_metadata_add_str(mds[2], d.keys[0], "again") == 0);
    }

    for (size_t p = 0; p < sizeof(peers) / sizeof(peers[0]); p++) {
        for (size_t i = 0; i < n_paths; i++) {
            for (size_t h = 0; h < 3; h++) {
                check_one(a, policy, p == 0 ? NULL : &peers[p], paths[i],
                          mds[h]);
            }
        }
    }
    for (size_t i = 0; i < n_paths; i++) {
        free(paths[i]);
    }
    orpc_metadata_free(mds[1]);
    orpc_metadata_free(mds[2]);
    derived_free(&d);
}

static void check_refusal(const char *json, size_t len, int rc,
                          const orpc__authz *a, const char *err)
{
    CHECK(rc == ORPC_ECONFIG);
    CHECK(a == NULL);
    size_t n = strlen(err);
    CHECK(n > 0);
    for (size_t i = 0; i < n; i++) {
        CHECK(err[i] >= 0x20 && err[i] < 0x7f);
    }
    /* A small buffer: the message cut short, still NUL-terminated. */
    char small[9];
    memset(small, 'x', sizeof(small));
    orpc__authz *b = (orpc__authz *)(uintptr_t)1;
    CHECK(orpc__authz_parse(json, len, &b, small, 8) == rc && b == NULL);
    CHECK(small[8] == 'x');
    CHECK(strlen(small) == (n < 7 ? n : 7));
    CHECK(memcmp(small, err, strlen(small)) == 0);
    /* No buffer at all. */
    CHECK(orpc__authz_parse(json, len, &b, NULL, 0) == rc && b == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) {
        return 0;
    }
    /* A copy of exactly the text, so ASan sees any read past it. */
    char *json = malloc(size ? size : 1);
    CHECK(json != NULL);
    memcpy(json, data, size);

    char err[1024];
    memset(err, 'x', sizeof(err));
    orpc__authz *a = (orpc__authz *)(uintptr_t)1;
    int rc = orpc__authz_parse(json, size, &a, err, sizeof(err));
    CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    if (rc != 0) {
        check_refusal(json, size, rc, a, err);
        free(json);
        return 0;
    }
    n_accepted++;
    CHECK(a != NULL && a != (orpc__authz *)(uintptr_t)1);
    json_error_t jerr;
    json_t *policy =
        json_loadb(json, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    CHECK(json_is_object(policy));
    CHECK(strcmp(orpc__authz_name(a),
                 json_string_value(json_object_get(policy, "name"))) == 0);
    check_decisions(a, policy);
    check_keys(policy, n_accepted);
    json_decref(policy);
    orpc__authz_free(a);
    free(json);
    return 0;
}

#ifdef ORPC_FUZZ_STANDALONE

/* ---- regression runner: files, or generated inputs --------------------- */

#include "standalone.h"

/* Policies that parse, or nearly (most from tests/authz_test.c's kinds). */
static const char *const POLICIES[] = {
    "{\"name\":\"p\",\"allow_rules\":[{\"name\":\"all\"}]}",
    "{\"name\":\"ops\",\"deny_rules\":[{\"name\":\"no-admin\",\"request\":"
    "{\"paths\":[\"/admin.*\",\"*Delete\"]}}],\"allow_rules\":[{\"name\":"
    "\"jobs\",\"source\":{\"principals\":[\"spiffe://example.org/*\","
    "\"svc.example.org\",\"\"]},\"request\":{\"paths\":["
    "\"/opsconductor.jobs.v1.JobsService/*\"],\"headers\":[{\"key\":"
    "\"X-Role\",\"values\":[\"admin,ops\",\"ad*\"]},{\"key\":\"x-user\","
    "\"values\":[\"*\"]}]}}]}",
    "{\"name\":\"h\",\"allow_rules\":[{\"name\":\"a\",\"request\":{"
    "\"headers\":[{\"key\":\"x-a\",\"values\":[\"*v\"]}]}},{\"name\":\"b\","
    "\"source\":{\"principals\":[\"CN=client,O=Example\"]}}]}",
    "{\"name\":\"e\",\"deny_rules\":[],\"allow_rules\":[]}",
    "{\"name\":\"dup\",\"allow_rules\":[{\"name\":\"a\"},{\"name\":\"a\"}]}",
    "{\"name\":\"bad\",\"allow_rules\":[{\"name\":\"a\",\"request\":{"
    "\"headers\":[{\"key\":\"grpc-x\",\"values\":[\"v\"]}]}}]}",
    "{\"name\":\"both\",\"allow_rules\":[{\"name\":\"a\",\"request\":{"
    "\"paths\":[\"*x*\"]}}]}",
    "{\"name\":\"nul\",\"allow_rules\":[{\"name\":\"a\\u0000b\"}]}",
    "{\"name\":\"n\",\"name\":\"m\",\"allow_rules\":[]}",
    "{\"name\":\"u\",\"allow_rules\":[],\"extra\":1}",
    "{\"name\":\"q\",\"allow_rules\":[{\"name\":\"\\\"\\u001b[31m\","
    "\"source\":{\"principals\":[1]}}]}",
    "{\"name\":\"ua\",\"deny_rules\":[{\"name\":\"deny-curl\",\"request\":"
    "{\"headers\":[{\"key\":\"user-agent\",\"values\":[\"curl/*\"]}]}}],"
    "\"allow_rules\":[{\"name\":\"all\"}]}",
    "{\"name\":\"xua\",\"deny_rules\":[{\"name\":\"deny-curl\",\"request\":"
    "{\"headers\":[{\"key\":\"x-user-agent\",\"values\":[\"curl/*\"]},"
    "{\"key\":\"x.tok-bin\",\"values\":[\"*\"]}]}}],"
    "\"allow_rules\":[{\"name\":\"all\"}]}",
};

#define N_POLICIES (sizeof(POLICIES) / sizeof(POLICIES[0]))

/* Bytes to put in: JSON structure, '*', case, control and non-ASCII. */
static const char *const BITS[] = {
    "*",        "\"",      "{",       "}",       "[",         "]",
    ",",        ":",       "null",    "\\u0000", "\xff",      "X-",
    "Host",     ":path",   "te",      "\\n",     "\"\":\"\"", "user-",
    "content-", "accept-", "-length", "!",
};

#define N_BITS (sizeof(BITS) / sizeof(BITS[0]))

static size_t gen_input(uint32_t *st, int i, uint8_t *out, size_t cap)
{
    const char *p = POLICIES[(size_t)i % N_POLICIES];
    size_t len = strlen(p);
    memcpy(out, p, len);
    if (i < (int)N_POLICIES) {
        return len;
    }
    switch (rng_next(st) % 3) {
    case 0: { /* something inserted */
        const char *b = BITS[rng_next(st) % N_BITS];
        size_t n = strlen(b), at = rng_next(st) % (len + 1);
        if (len + n <= cap) {
            memmove(out + at + n, out + at, len - at);
            memcpy(out + at, b, n);
            len += n;
        }
        break;
    }
    case 1: /* cut short */
        len = rng_next(st) % (len + 1);
        break;
    default: { /* a byte changed inside a string: a new name or pattern */
        size_t at = rng_next(st) % len;
        if (out[at] != '"' && out[at] != '\\') {
            out[at] = (uint8_t) "*abcXY-/ ."[rng_next(st) % 10];
        }
        break;
    }
    }
    return len;
}

static size_t next_input(uint32_t *st, int i, uint8_t *buf, size_t len,
                         size_t cap)
{
    (void)len;
    return gen_input(st, i, buf, cap);
}

int main(int argc, char **argv)
{
    int rc = fuzz_standalone_main(argc, argv, "fuzz_authz",
                                  0x617a747au /* "aztz" */, 50, next_input);
    printf("fuzz_authz: %lu polic(ies) accepted and checked\n", n_accepted);
    if (argc == 1) {
        CHECK(n_accepted >= 4); /* the valid seeds at least */
    }
    return rc;
}

#endif /* ORPC_FUZZ_STANDALONE */
