/*
 * authz_test.c — the gRFC A43 authorization policy engine (rpc/src/authz.c):
 * every pattern form, the deny/allow/default order, A43's principal
 * evaluation (no TLS, TLS without a certificate, URI then DNS SANs then the
 * subject), header matching (values OR'd, headers AND'd, repeated headers
 * joined with ","), and every way a policy is refused, each checked for a
 * message that names the rule and the problem.  Also the file loader on
 * missing files, directories, FIFOs and files over the 1 MiB limit.
 *
 * A policy sees the request metadata orpc__md_from_header() (grpc.c, built
 * into this test) makes from the received headers, so the engine is also
 * checked against it: a header key loads exactly when that function keeps
 * headers of that key, and a value sent as one header with commas or as
 * several headers decides alike.
 *
 * Policies are written with ' for " (jq()) to keep them readable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <orpc/error.h>
#include <orpc/metadata.h>

#include "authz.h"
#include "grpc.h"

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

/* |s| with every ' turned into ", in a new buffer. */
static char *jq(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    assert_non_null(d);
    for (size_t i = 0; i <= n; i++) {
        d[i] = s[i] == '\'' ? '"' : s[i];
    }
    return d;
}

static orpc__authz *must_parse(const char *policy)
{
    char err[1024];
    orpc__authz *a = NULL;
    char *j = jq(policy);
    int rc = orpc__authz_parse(j, strlen(j), &a, err, sizeof(err));
    if (rc != 0) {
        fail_msg("policy should parse, got %d \"%s\":\n%s", rc, err, j);
    }
    assert_non_null(a);
    free(j);
    return a;
}

/* Parses |len| raw bytes, expects ORPC_ECONFIG and returns the message. */
static const char *raw_err(const char *json, size_t len)
{
    static char err[1024];
    orpc__authz *a = (orpc__authz *)(uintptr_t)1;
    memset(err, 'x', sizeof(err));
    int rc = orpc__authz_parse(json, len, &a, err, sizeof(err));
    if (rc != ORPC_ECONFIG) {
        fail_msg("expected ORPC_ECONFIG, got %d for:\n%.*s", rc,
                 (int)(len > 300 ? 300 : len), json);
    }
    assert_null(a);
    assert_non_null(memchr(err, '\0', sizeof(err)));
    return err;
}

#define RAW_ERR(lit) raw_err((lit), sizeof(lit) - 1)

/* Expects |policy| (with ' for ") to be refused with exactly |want|. */
static void expect_err(const char *policy, const char *want)
{
    char *j = jq(policy);
    const char *got = raw_err(j, strlen(j));
    if (strcmp(got, want) != 0) {
        fail_msg("policy:\n  %s\nwant: %s\ngot:  %s", j, want, got);
    }
    free(j);
}

/*
 * Decides |path| with headers |kv| ("k", "v", ..., NULL; NULL for none)
 * from |peer|; |want_rule| is the deciding rule's name or NULL.
 */
static int decide(const orpc__authz *a, const orpc__authz_peer *peer,
                  const char *path, const char *const *kv,
                  const char **rule)
{
    orpc_metadata *md = NULL;
    int r;
    if (kv) {
        assert_int_equal(orpc_metadata_new(&md, NULL), 0);
        for (size_t i = 0; kv[i]; i += 2) {
            assert_int_equal(orpc_metadata_add_str(md, kv[i], kv[i + 1]), 0);
        }
    }
    r = orpc__authz_check(a, peer, path, md, rule);
    orpc_metadata_free(md);
    return r;
}

static void expect_decision(const orpc__authz *a, const orpc__authz_peer *peer,
                            const char *path, const char *const *kv,
                            int want, const char *want_rule)
{
    const char *rule = "unset";
    int got = decide(a, peer, path, kv, &rule);
    path = path ? path : "(null)";
    if (got != want) {
        fail_msg("%s: want %s, got %s (rule %s)", path,
                 want ? "allow" : "deny", got ? "allow" : "deny",
                 rule ? rule : "(default)");
    }
    if (want_rule == NULL) {
        if (rule != NULL) {
            fail_msg("%s: want the default deny, got rule %s", path, rule);
        }
    } else if (rule == NULL || strcmp(rule, want_rule) != 0) {
        fail_msg("%s: want rule %s, got %s", path, want_rule,
                 rule ? rule : "(default)");
    }
}

static const orpc__authz_peer no_tls = {0, 0, NULL, 0, NULL, 0, NULL};
static const orpc__authz_peer tls_no_cert = {1, 0, NULL, 0, NULL, 0, NULL};

static const char *const admin_uris[] = {"spiffe://foo.com/ns/x/sa/admin",
                                         "https://foo.com/admin"};
static const char *const admin_dns[] = {"admin.foo.com", "alt.foo.com"};
static const orpc__authz_peer admin = {
    1, 1, admin_uris, 2, admin_dns, 2, "CN=admin,O=Foo Inc,C=US"};

/* A certificate with only a subject. */
static const orpc__authz_peer subject_only = {1, 1,    NULL, 0,
                                              NULL, 0, "CN=bob,O=Foo"};

/* ---------------------------------------------------------------------- */
/* Pattern forms                                                           */

static void test_path_exact(void **state)
{
    (void)state;
    orpc__authz *a = must_parse(
        "{'name':'p','allow_rules':[{'name':'r',"
        "'request':{'paths':['/pkg.Svc/Get']}}]}");
    expect_decision(a, &no_tls, "/pkg.Svc/Get", NULL, 1, "r");
    expect_decision(a, &no_tls, "/pkg.Svc/Gets", NULL, 0, NULL);
    expect_decision(a, &no_tls, "/pkg.Svc/Ge", NULL, 0, NULL);
    expect_decision(a, &no_tls, "/pkg.svc/get", NULL, 0, NULL);
    expect_decision(a, &no_tls, "", NULL, 0, NULL);
    expect_decision(a, &no_tls, NULL, NULL, 0, NULL);
    orpc__authz_free(a);
}

static void test_path_prefix(void **state)
{
    (void)state;
    orpc__authz *a = must_parse(
        "{'name':'p','allow_rules':[{'name':'r',"
        "'request':{'paths':['/pkg.Svc/*']}}]}");
    expect_decision(a, &no_tls, "/pkg.Svc/Get", NULL, 1, "r");
    expect_decision(a, &no_tls, "/pkg.Svc/", NULL, 1, "r"); /* "abc*" ~ abc */
    expect_decision(a, &no_tls, "/pkg.Svc", NULL, 0, NULL);
    expect_decision(a, &no_tls, "/pkg.Other/Get", NULL, 0, NULL);
    orpc__authz_free(a);
}

static void test_path_suffix(void **state)
{
    (void)state;
    orpc__authz *a = must_parse(
        "{'name':'p','allow_rules':[{'name':'r',"
        "'request':{'paths':['*/Secret']}}]}");
    expect_decision(a, &no_tls, "/a.B/Secret", NULL, 1, "r");
    expect_decision(a, &no_tls, "/Secret", NULL, 1, "r"); /* "*abc" ~ abc */
    expect_decision(a, &no_tls, "/a.B/Secrets", NULL, 0, NULL);
    expect_decision(a, &no_tls, "Secret", NULL, 0, NULL);
    orpc__authz_free(a);
}

static void test_path_presence(void **state)
{
    (void)state;
    orpc__authz *a = must_parse(
        "{'name':'p','allow_rules':[{'name':'r','request':{'paths':['*']}}]}");
    expect_decision(a, &no_tls, "/a.B/C", NULL, 1, "r");
    expect_decision(a, &no_tls, "x", NULL, 1, "r");
    /* A43: "*" matches when the value is not empty. */
    expect_decision(a, &no_tls, "", NULL, 0, NULL);
    expect_decision(a, &no_tls, NULL, NULL, 0, NULL);
    orpc__authz_free(a);
}

static void test_star_inside_is_literal(void **state)
{
    (void)state;
    orpc__authz *a = must_parse(
        "{'name':'p','allow_rules':[{'name':'r',"
        "'request':{'paths':['/a.B/x*y']}}]}");
    expect_decision(a, &no_tls, "/a.B/x*y", NULL, 1, "r");
    expect_decision(a, &no_tls, "/a.B/xzy", NULL, 0, NULL);
    expect_decision(a, &no_tls, "/a.B/x", NULL, 0, NULL);
    orpc__authz_free(a);
}

static void test_paths_ored(void **state)
{
    (void)state;
    orpc__authz *a = must_parse(
        "{'name':'p','allow_rules':[{'name':'r','request':{'paths':"
        "['/a.B/One','/a.B/Two','/c.D/*']}}]}");
    expect_decision(a, &no_tls, "/a.B/One", NULL, 1, "r");
    expect_decision(a, &no_tls, "/a.B/Two", NULL, 1, "r");
    expect_decision(a, &no_tls, "/c.D/Any", NULL, 1, "r");
    expect_decision(a, &no_tls, "/a.B/Three", NULL, 0, NULL);
    orpc__authz_free(a);
}

/* ---------------------------------------------------------------------- */
/* Decision order                                                          */

static void test_deny_beats_allow(void **state)
{
    (void)state;
    orpc__authz *a = must_parse(
        "{'name':'p',"
        "'deny_rules':[{'name':'no-secret','request':{'paths':['*/Secret']}}],"
        "'allow_rules':[{'name':'all'}]}");
    expect_decision(a, &admin, "/a.B/Secret", NULL, 0, "no-secret");
    expect_decision(a, &admin, "/a.B/Open", NULL, 1, "all");
    expect_decision(a, &no_tls, "/a.B/Open", NULL, 1, "all");
    orpc__authz_free(a);
}

static void test_first_matching_rule_named(void **state)
{
    (void)state;
    orpc__authz *a = must_parse(
        "{'name':'p','deny_rules':["
        "  {'name':'d1','request':{'paths':['/x.Y/A']}},"
        "  {'name':'d2','request':{'paths':['/x.Y/*']}}],"
        "'allow_rules':["
        "  {'name':'a1','request':{'paths':['/z.W/A']}},"
        "  {'name':'a2','request':{'paths':['/z.W/*']}}]}");
    expect_decision(a, &no_tls, "/x.Y/A", NULL, 0, "d1");
    expect_decision(a, &no_tls, "/x.Y/B", NULL, 0, "d2");
    expect_decision(a, &no_tls, "/z.W/A", NULL, 1, "a1");
    expect_decision(a, &no_tls, "/z.W/B", NULL, 1, "a2");
    expect_decision(a, &no_tls, "/q.Q/Q", NULL, 0, NULL);
    /* |rule| may be NULL */
    assert_int_equal(orpc__authz_check(a, &no_tls, "/z.W/B", NULL, NULL), 1);
    orpc__authz_free(a);
}

static void test_default_deny(void **state)
{
    (void)state;
    orpc__authz *a = must_parse(
        "{'name':'p','allow_rules':[{'name':'r',"
        "'request':{'paths':['/a.B/C']}}]}");
    expect_decision(a, &admin, "/a.B/D", NULL, 0, NULL);
    orpc__authz_free(a);
}

static void test_empty_allow_rules_deny_all(void **state)
{
    (void)state;
    /* A43's schema requires allow_rules but sets no minimum length; an empty
     * list is a valid policy that denies every RPC. */
    orpc__authz *a = must_parse("{'name':'lockdown','allow_rules':[]}");
    expect_decision(a, &admin, "/a.B/C", NULL, 0, NULL);
    expect_decision(a, &no_tls, "/a.B/C", NULL, 0, NULL);
    assert_string_equal(orpc__authz_name(a), "lockdown");
    orpc__authz_free(a);

    a = must_parse("{'name':'p','deny_rules':[],'allow_rules':[{'name':'r'}]}");
    expect_decision(a, &no_tls, "/a.B/C", NULL, 1, "r");
    orpc__authz_free(a);
}

static void test_empty_rule_matches_all(void **state)
{
    (void)state;
    orpc__authz *a = must_parse(
        "{'name':'p','deny_rules':[{'name':'everything'}],"
        "'allow_rules':[{'name':'r'}]}");
    expect_decision(a, &no_tls, "/a.B/C", NULL, 0, "everything");
    expect_decision(a, &admin, "", NULL, 0, "everything");
    orpc__authz_free(a);

    /* Empty source, empty request and empty lists constrain nothing. */
    a = must_parse(
        "{'name':'p','allow_rules':[{'name':'r','source':{},"
        "'request':{'paths':[],'headers':[]}},"
        "{'name':'s','source':{'principals':[]},'request':{}}]}");
    expect_decision(a, &no_tls, "/a.B/C", NULL, 1, "r");
    expect_decision(a, NULL, NULL, NULL, 1, "r");
    orpc__authz_free(a);
}

static void test_null_arguments(void **state)
{
    (void)state;
    const char *rule = "unset";
    assert_int_equal(orpc__authz_check(NULL, &admin, "/a/b", NULL, &rule), 0);
    assert_null(rule);
    orpc__authz_free(NULL);
    assert_null(orpc__authz_name(NULL));

    orpc__authz *a = NULL;
    char err[64];
    assert_int_equal(orpc__authz_parse("{}", 2, NULL, err, sizeof(err)),
                     ORPC_EINVAL);
    assert_int_equal(orpc__authz_parse(NULL, 5, &a, err, sizeof(err)),
                     ORPC_EINVAL);
    assert_int_equal(orpc__authz_load_file(NULL, &a, err, sizeof(err)),
                     ORPC_EINVAL);
    assert_int_equal(orpc__authz_load_file("/x", NULL, err, sizeof(err)),
                     ORPC_EINVAL);
    /* NULL |json| with length 0 is empty input: a syntax error. */
    assert_int_equal(orpc__authz_parse(NULL, 0, &a, err, sizeof(err)),
                     ORPC_ECONFIG);
    assert_null(a);
    /* No room for a message is fine. */
    assert_int_equal(orpc__authz_parse("[", 1, &a, NULL, 0), ORPC_ECONFIG);
    assert_int_equal(orpc__authz_parse("[", 1, &a, err, 0), ORPC_ECONFIG);
    /* A short buffer gets a truncated, terminated message. */
    char tiny[8];
    assert_int_equal(orpc__authz_parse("[", 1, &a, tiny, sizeof(tiny)),
                     ORPC_ECONFIG);
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
}

/* ---------------------------------------------------------------------- */
/* Principals                                                              */

static orpc__authz *principals(const char *list)
{
    char buf[1024];
    snprintf(buf, sizeof(buf),
             "{'name':'p','allow_rules':[{'name':'r','source':"
             "{'principals':[%s]}}]}",
             list);
    return must_parse(buf);
}

static void test_principals_without_tls(void **state)
{
    (void)state;
    /* A43: "If TLS is not used, matching fails" — for every pattern. */
    const char *lists[] = {"'*'", "''", "'spiffe://foo.com/ns/x/sa/admin'",
                           "'*admin'", "'spiffe*'"};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        orpc__authz *a = principals(lists[i]);
        expect_decision(a, &no_tls, "/a.B/C", NULL, 0, NULL);
        expect_decision(a, NULL, "/a.B/C", NULL, 0, NULL);
        orpc__authz_free(a);
    }
}

static void test_principals_tls_without_cert(void **state)
{
    (void)state;
    orpc__authz *a = principals("''");
    expect_decision(a, &tls_no_cert, "/a.B/C", NULL, 1, "r");
    expect_decision(a, &no_tls, "/a.B/C", NULL, 0, NULL);
    orpc__authz_free(a);

    /* "*" needs a non-empty identity, which a peer without a certificate
     * does not have; neither do prefix or suffix patterns. */
    const char *lists[] = {"'*'", "'a*'", "'*a'", "'CN=admin,O=Foo Inc,C=US'"};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        a = principals(lists[i]);
        expect_decision(a, &tls_no_cert, "/a.B/C", NULL, 0, NULL);
        orpc__authz_free(a);
    }

    /* A43's example: "*" or "" — any TLS peer, with or without a cert. */
    a = principals("'*',''");
    expect_decision(a, &tls_no_cert, "/a.B/C", NULL, 1, "r");
    expect_decision(a, &admin, "/a.B/C", NULL, 1, "r");
    expect_decision(a, &no_tls, "/a.B/C", NULL, 0, NULL);
    orpc__authz_free(a);
}

static void test_principals_uri_dns_subject(void **state)
{
    (void)state;
    static const struct {
        const char *list;
        int admin, subject_only;
    } cases[] = {
        /* URI SANs, either of them */
        {"'spiffe://foo.com/ns/x/sa/admin'", 1, 0},
        {"'https://foo.com/admin'", 1, 0},
        {"'spiffe://foo.com/*'", 1, 0},
        {"'*/sa/admin'", 1, 0},
        /* DNS SANs, either of them */
        {"'admin.foo.com'", 1, 0},
        {"'alt.foo.com'", 1, 0},
        {"'*.foo.com'", 1, 0},
        /* the subject, checked after the SANs */
        {"'CN=admin,O=Foo Inc,C=US'", 1, 0},
        {"'CN=admin,*'", 1, 0},
        {"'CN=bob,O=Foo'", 0, 1},
        {"'CN=*'", 1, 1},
        {"'*,O=Foo'", 0, 1},
        /* presence: any certificate has some identity */
        {"'*'", 1, 1},
        /* no part of the certificate */
        {"'spiffe://foo.com/ns/x/sa/other'", 0, 0},
        {"'foo.com'", 0, 0},
        {"'CN=admin'", 0, 0},
        {"''", 0, 0},
        /* OR'd */
        {"'nobody','CN=bob,O=Foo','admin.foo.com'", 1, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        orpc__authz *a = principals(cases[i].list);
        const char *rule;
        if (decide(a, &admin, "/a.B/C", NULL, &rule) != cases[i].admin) {
            fail_msg("principals [%s] vs admin: want %d", cases[i].list,
                     cases[i].admin);
        }
        if (decide(a, &subject_only, "/a.B/C", NULL, &rule) !=
            cases[i].subject_only) {
            fail_msg("principals [%s] vs subject-only: want %d",
                     cases[i].list, cases[i].subject_only);
        }
        orpc__authz_free(a);
    }
}

static void test_principals_partial_peer(void **state)
{
    (void)state;
    /* NULL entries and NULL arrays with counts are skipped, not read. */
    static const char *const uris[] = {NULL, "spiffe://a/b"};
    const orpc__authz_peer odd = {1, 1, uris, 2, NULL, 3, NULL};
    orpc__authz *a = principals("'spiffe://a/b'");
    expect_decision(a, &odd, "/a.B/C", NULL, 1, "r");
    orpc__authz_free(a);
    a = principals("'*'");
    const orpc__authz_peer empty_cert = {1, 1, NULL, 0, NULL, 0, NULL};
    expect_decision(a, &empty_cert, "/a.B/C", NULL, 0, NULL);
    orpc__authz_free(a);
}

static void test_source_and_request_anded(void **state)
{
    (void)state;
    orpc__authz *a = must_parse(
        "{'name':'p','allow_rules':[{'name':'admin-access',"
        "'source':{'principals':['spiffe://foo.com/ns/x/sa/admin']},"
        "'request':{'paths':['/pkg.Svc/*']}}]}");
    expect_decision(a, &admin, "/pkg.Svc/Get", NULL, 1, "admin-access");
    expect_decision(a, &admin, "/other.Svc/Get", NULL, 0, NULL);
    expect_decision(a, &subject_only, "/pkg.Svc/Get", NULL, 0, NULL);
    orpc__authz_free(a);
}

/* ---------------------------------------------------------------------- */
/* Headers                                                                 */

static void test_header_values_ored(void **state)
{
    (void)state;
    orpc__authz *a = must_parse(
        "{'name':'p','allow_rules':[{'name':'r','request':{'headers':["
        "{'key':'x-env','values':['prod','stag*','*-canary']}]}}]}");
    const char *prod[] = {"x-env", "prod", NULL};
    const char *staging[] = {"x-env", "staging", NULL};
    const char *canary[] = {"x-env", "eu-canary", NULL};
    const char *dev[] = {"x-env", "dev", NULL};
    const char *other[] = {"x-other", "prod", NULL};
    const char *none[] = {NULL};
    expect_decision(a, &no_tls, "/a.B/C", prod, 1, "r");
    expect_decision(a, &no_tls, "/a.B/C", staging, 1, "r");
    expect_decision(a, &no_tls, "/a.B/C", canary, 1, "r");
    expect_decision(a, &no_tls, "/a.B/C", dev, 0, NULL);
    expect_decision(a, &no_tls, "/a.B/C", other, 0, NULL);
    expect_decision(a, &no_tls, "/a.B/C", none, 0, NULL);
    expect_decision(a, &no_tls, "/a.B/C", NULL, 0, NULL);
    orpc__authz_free(a);
}

static void test_headers_anded(void **state)
{
    (void)state;
    orpc__authz *a = must_parse(
        "{'name':'p','allow_rules':[{'name':'r','request':{"
        "'paths':['/a.B/*'],'headers':["
        "{'key':'x-env','values':['prod']},"
        "{'key':'x-team','values':['ops','sre']}]}}]}");
    const char *both[] = {"x-env", "prod", "x-team", "sre", NULL};
    const char *rev[] = {"x-team", "ops", "x-env", "prod", NULL};
    const char *env_only[] = {"x-env", "prod", NULL};
    const char *team_only[] = {"x-team", "ops", NULL};
    const char *wrong[] = {"x-env", "prod", "x-team", "dev", NULL};
    expect_decision(a, &no_tls, "/a.B/C", both, 1, "r");
    expect_decision(a, &no_tls, "/a.B/C", rev, 1, "r");
    expect_decision(a, &no_tls, "/x.Y/C", both, 0, NULL); /* path AND'd */
    expect_decision(a, &no_tls, "/a.B/C", env_only, 0, NULL);
    expect_decision(a, &no_tls, "/a.B/C", team_only, 0, NULL);
    expect_decision(a, &no_tls, "/a.B/C", wrong, 0, NULL);
    orpc__authz_free(a);
}

static void test_header_key_case(void **state)
{
    (void)state;
    /* Policy keys are compared lower-cased; values are case-sensitive. */
    orpc__authz *a = must_parse(
        "{'name':'p','allow_rules':[{'name':'r','request':{'headers':["
        "{'key':'X-Env','values':['Prod']}]}}]}");
    const char *ok[] = {"x-env", "Prod", NULL};
    const char *lower[] = {"x-env", "prod", NULL};
    expect_decision(a, &no_tls, "/a.B/C", ok, 1, "r");
    expect_decision(a, &no_tls, "/a.B/C", lower, 0, NULL);
    orpc__authz_free(a);
}

static void test_header_repeated_joined(void **state)
{
    (void)state;
    /* A43: "Multi-valued headers are considered a single value with commas
     * added between values." */
    orpc__authz *a = must_parse(
        "{'name':'p','allow_rules':["
        "{'name':'exact','request':{'headers':[{'key':'x-r','values':['a,b']}]}},"
        "{'name':'prefix','request':{'headers':[{'key':'x-p','values':['ab,c*']}]}},"
        "{'name':'suffix','request':{'headers':[{'key':'x-s','values':['*b,cd']}]}},"
        "{'name':'present','request':{'headers':[{'key':'x-q','values':['*']}]}}"
        "]}");
    const char *two[] = {"x-r", "a", "x-other", "zz", "x-r", "b", NULL};
    const char *one[] = {"x-r", "a", NULL};
    const char *three[] = {"x-r", "a", "x-r", "b", "x-r", "c", NULL};
    const char *pre[] = {"x-p", "ab", "x-p", "cd", NULL};
    const char *pre_short[] = {"x-p", "ab", NULL};
    const char *pre_bad[] = {"x-p", "a", "x-p", "bc", NULL};
    const char *suf[] = {"x-s", "xb", "x-s", "cd", NULL};
    const char *suf_long[] = {"x-s", "q", "x-s", "ab", "x-s", "cd", NULL};
    const char *suf_bad[] = {"x-s", "b", "x-s", "c", "x-s", "d", NULL};
    const char *empty_one[] = {"x-q", "", NULL};
    const char *empty_two[] = {"x-q", "", "x-q", "", NULL};
    expect_decision(a, &no_tls, "/a.B/C", two, 1, "exact");
    expect_decision(a, &no_tls, "/a.B/C", one, 0, NULL);
    expect_decision(a, &no_tls, "/a.B/C", three, 0, NULL);
    expect_decision(a, &no_tls, "/a.B/C", pre, 1, "prefix");
    expect_decision(a, &no_tls, "/a.B/C", pre_short, 0, NULL);
    expect_decision(a, &no_tls, "/a.B/C", pre_bad, 0, NULL);
    expect_decision(a, &no_tls, "/a.B/C", suf, 1, "suffix");
    expect_decision(a, &no_tls, "/a.B/C", suf_long, 1, "suffix");
    expect_decision(a, &no_tls, "/a.B/C", suf_bad, 0, NULL);
    /* presence: an empty value is not present; two empties join to "," */
    expect_decision(a, &no_tls, "/a.B/C", empty_one, 0, NULL);
    expect_decision(a, &no_tls, "/a.B/C", empty_two, 1, "present");
    orpc__authz_free(a);
}

static void test_header_binary_value(void **state)
{
    (void)state;
    /* "-bin" values are matched as their decoded bytes. */
    orpc__authz *a = must_parse(
        "{'name':'p','allow_rules':[{'name':'r','request':{'headers':["
        "{'key':'x-tok-bin','values':['ab*']}]}}]}");
    orpc_metadata *md;
    const char *rule;
    assert_int_equal(orpc_metadata_new(&md, NULL), 0);
    assert_int_equal(orpc_metadata_add(md, "x-tok-bin", "ab\0\xff", 4), 0);
    assert_int_equal(orpc__authz_check(a, &no_tls, "/a.B/C", md, &rule), 1);
    assert_string_equal(rule, "r");
    orpc_metadata_free(md);
    assert_int_equal(orpc_metadata_new(&md, NULL), 0);
    assert_int_equal(orpc_metadata_add(md, "x-tok-bin", "a\0b", 3), 0);
    assert_int_equal(orpc__authz_check(a, &no_tls, "/a.B/C", md, &rule), 0);
    orpc_metadata_free(md);
    orpc__authz_free(a);
}

/*
 * A policy may name a key only if orpc__md_from_header() keeps headers of
 * that key for the request metadata: any other key would load and never
 * match.  (The converse has A43's exceptions: trailer, proxy-authorization
 * and the like reach the handler but are hop-by-hop.)  Keys here are as on
 * the wire, lower case.
 */
static void test_keys_are_what_the_server_presents(void **state)
{
    (void)state;
    static const char *const keys[] = {
        "x-user",
        "x-tok-bin",
        "a",
        "-bin",
        "x.y_z-0",
        "grpc",
        "hosts",
        "tea",
        "content-type2",
        "x-user-agent",
        "user-agent",
        "content-type",
        "content-length",
        "accept-encoding",
        "te",
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "trailer",
        "proxy-authenticate",
        "proxy-authorization",
        "grpc-timeout",
        "grpc-x",
        "grpc-status-details-bin",
        ":path",
        ":authority",
        "x!y",
        "x~y",
        "x*y",
        "x'y",
    };
    char policy[512], err[1024];
    size_t n_refused = 0;
    /* The policies are plain JSON here (no jq()), so "x'y" is a key. */
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *k = keys[i];
        /* "YQ" is base64 for a -bin key and printable for the others. */
        orpc_metadata *md = NULL;
        assert_int_equal(orpc_metadata_new(&md, NULL), 0);
        int rc = orpc__md_from_header(md, (const uint8_t *)k, strlen(k),
                                      (const uint8_t *)"YQ", 2);
        int presented = rc == 0 && orpc_metadata_count(md) == 1;
        assert_true(rc == 0 || rc == ORPC_EINVAL);
        orpc_metadata_free(md);

        snprintf(policy, sizeof(policy),
                 "{\"name\":\"p\",\"allow_rules\":[{\"name\":\"r\","
                 "\"request\":{\"headers\":[{\"key\":\"%s\","
                 "\"values\":[\"*\"]}]}}]}",
                 k);
        orpc__authz *a = NULL;
        int prc =
            orpc__authz_parse(policy, strlen(policy), &a, err, sizeof(err));
        if (prc == 0 && !presented) {
            fail_msg("key \"%s\": md_from_header does not keep it, but the "
                     "policy loads",
                     k);
        }
        if (prc != 0 && presented && strstr(err, "does not present")) {
            fail_msg("key \"%s\": md_from_header keeps it, but: %s", k, err);
        }
        if (prc == 0) {
            /* ... and a loaded rule on it matches a request carrying it. */
            const char *rule = NULL;
            assert_int_equal(orpc_metadata_new(&md, NULL), 0);
            assert_int_equal(orpc__md_from_header(md, (const uint8_t *)k,
                                                  strlen(k),
                                                  (const uint8_t *)"YQ", 2),
                             0);
            assert_int_equal(orpc__authz_check(a, &no_tls, "/a.B/C", md, &rule),
                             1);
            assert_string_equal(rule, "r");
            orpc_metadata_free(md);
        } else {
            assert_int_equal(prc, ORPC_ECONFIG);
            assert_non_null(strstr(err, "cannot be matched"));
            n_refused++;
        }
        orpc__authz_free(a);
    }
    /* All but the first ten keys are refused. */
    assert_int_equal(n_refused, sizeof(keys) / sizeof(keys[0]) - 10);
}

/* The metadata of a request whose headers are |kv| ("k", "v", ..., NULL),
 * as the server makes it; every header must be valid. */
static orpc_metadata *from_wire(const char *const *kv)
{
    orpc_metadata *md = NULL;
    assert_int_equal(orpc_metadata_new(&md, NULL), 0);
    for (size_t i = 0; kv[i]; i += 2) {
        int rc =
            orpc__md_from_header(md, (const uint8_t *)kv[i], strlen(kv[i]),
                                 (const uint8_t *)kv[i + 1], strlen(kv[i + 1]));
        if (rc != 0) {
            fail_msg("%s: %s: %d", kv[i], kv[i + 1], rc);
        }
    }
    return md;
}

static int decide_wire(const orpc__authz *a, const char *const *kv,
                       const char **rule)
{
    orpc_metadata *md = from_wire(kv);
    int r = orpc__authz_check(a, &no_tls, "/a.B/C", md, rule);
    orpc_metadata_free(md);
    return r;
}

/*
 * A value with commas and the same values sent as separate headers decide
 * alike (A43/Envoy: a repeated header is its values joined with ","), for
 * text and for -bin headers (whose pieces are decoded, then joined).
 */
static void test_header_repeated_as_sent(void **state)
{
    (void)state;
    orpc__authz *a = must_parse("{'name':'p','deny_rules':["
                                "{'name':'deny-ab','request':{'headers':[{'key'"
                                ":'x-r','values':['a,b']}]}},"
                                "{'name':'deny-tok','request':{'headers':["
                                "{'key':'x-tok-bin','values':['a,b']}]}},"
                                "{'name':'deny-b-last','request':{'headers':["
                                "{'key':'x-s','values':['*,b']}]}}],"
                                "'allow_rules':[{'name':'all'}]}");
    static const char *const one[] = {"x-r", "a,b", NULL};
    static const char *const two[] = {"x-r", "a", "x-r", "b", NULL};
    static const char *const only_a[] = {"x-r", "a", NULL};
    static const char *const three[] = {"x-r", "a", "x-r", "b",
                                        "x-r", "c", NULL};
    static const char *const bin_one[] = {"x-tok-bin", "YQ,Yg", NULL};
    static const char *const bin_two[] = {"x-tok-bin", "YQ==", "x-tok-bin",
                                          "Yg", NULL};
    static const char *const bin_a[] = {"x-tok-bin", "YQ", NULL};
    static const char *const s_one[] = {"x-s", "q, b", NULL};
    static const char *const s_two[] = {"x-s", "q,", "x-s", "b", NULL};
    static const char *const s_spaced[] = {"x-s", "q", "x-s", " b", NULL};
    const char *rule;
    assert_int_equal(decide_wire(a, one, &rule), 0);
    assert_string_equal(rule, "deny-ab");
    assert_int_equal(decide_wire(a, two, &rule), 0);
    assert_string_equal(rule, "deny-ab");
    assert_int_equal(decide_wire(a, only_a, &rule), 1);
    assert_string_equal(rule, "all");
    /* An exact rule sees the whole joined value. */
    assert_int_equal(decide_wire(a, three, &rule), 1);
    assert_int_equal(decide_wire(a, bin_one, &rule), 0);
    assert_string_equal(rule, "deny-tok");
    assert_int_equal(decide_wire(a, bin_two, &rule), 0);
    assert_string_equal(rule, "deny-tok");
    assert_int_equal(decide_wire(a, bin_a, &rule), 1);
    /* Text values are not trimmed: "q, b" ends in " b", not ",b"... */
    assert_int_equal(decide_wire(a, s_one, &rule), 1);
    assert_int_equal(decide_wire(a, s_spaced, &rule), 1);
    /* ... and "q," then "b" joins to "q,,b", which does end in ",b". */
    assert_int_equal(decide_wire(a, s_two, &rule), 0);
    assert_string_equal(rule, "deny-b-last");
    orpc__authz_free(a);
}

/*
 * A caller cannot hide a header from a deny rule by sending it malformed:
 * the request's metadata cannot be made (the server fails the call) rather
 * than coming out without it.
 */
static void test_malformed_header_cannot_dodge(void **state)
{
    (void)state;
    orpc__authz *a = must_parse(
        "{'name':'p','deny_rules':[{'name':'no-tok','request':{'headers':["
        "{'key':'x-tok-bin','values':['*']}]}},"
        "{'name':'no-evil','request':{'headers':["
        "{'key':'x-user','values':['evil*']}]}}],"
        "'allow_rules':[{'name':'all'}]}");
    static const struct {
        const char *k, *v;
    } bad[] = {
        {"x-tok-bin", "!!!!"},   {"x-tok-bin", "YWJj,%%"},
        {"x-tok-bin", "YWJj,Y"}, {"x-user", "evil\x80"},
        {"x-user", "evil\tone"}, {"x-user", "evil\x7f"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        orpc_metadata *md = NULL;
        assert_int_equal(orpc_metadata_new(&md, NULL), 0);
        int rc = orpc__md_from_header(
            md, (const uint8_t *)bad[i].k, strlen(bad[i].k),
            (const uint8_t *)bad[i].v, strlen(bad[i].v));
        if (rc != ORPC_EINVAL) {
            fail_msg("%s: want ORPC_EINVAL, got %d", bad[i].k, rc);
        }
        orpc_metadata_free(md);
    }
    /* The well-formed forms are denied. */
    static const char *const tok[] = {"x-tok-bin", "YWJj", NULL};
    static const char *const evil[] = {"x-user", "evil one", NULL};
    const char *rule;
    assert_int_equal(decide_wire(a, tok, &rule), 0);
    assert_string_equal(rule, "no-tok");
    assert_int_equal(decide_wire(a, evil, &rule), 0);
    assert_string_equal(rule, "no-evil");
    orpc__authz_free(a);
}

/* A43's own example policy, end to end. */
static void test_a43_example(void **state)
{
    (void)state;
    orpc__authz *a = must_parse(
        "{'name':'example-policy','allow_rules':["
        " {'name':'admin-access','source':{'principals':"
        "   ['spiffe://foo.com/sa/admin1','spiffe://foo.com/sa/admin2']},"
        "  'request':{'paths':['/pkg.service/*']}},"
        " {'name':'dev-access','source':{'principals':['*','']},"
        "  'request':{'paths':['/pkg.service/foo','/pkg.service/bar'],"
        "   'headers':[{'key':'dev-path','values':['/dev/path/*']}]}}],"
        "'deny_rules':[{'name':'deny-access','request':{'paths':['*/secret']}}]}");
    static const char *const admin1[] = {"spiffe://foo.com/sa/admin1"};
    const orpc__authz_peer adm = {1, 1, admin1, 1, NULL, 0, "CN=a"};
    const char *dev[] = {"dev-path", "/dev/path/x", NULL};
    expect_decision(a, &adm, "/pkg.service/anything", NULL, 1, "admin-access");
    expect_decision(a, &adm, "/pkg.service/secret", NULL, 0, "deny-access");
    expect_decision(a, &tls_no_cert, "/pkg.service/foo", dev, 1, "dev-access");
    expect_decision(a, &subject_only, "/pkg.service/bar", dev, 1,
                    "dev-access");
    expect_decision(a, &tls_no_cert, "/pkg.service/foo", NULL, 0, NULL);
    expect_decision(a, &no_tls, "/pkg.service/foo", dev, 0, NULL);
    expect_decision(a, &tls_no_cert, "/pkg.service/baz", dev, 0, NULL);
    assert_string_equal(orpc__authz_name(a), "example-policy");
    orpc__authz_free(a);
}

/* ---------------------------------------------------------------------- */
/* Validation: the policy object                                           */

static void test_err_top_level(void **state)
{
    (void)state;
    expect_err("[]", "the policy is not a JSON object");
    expect_err("{'allow_rules':[]}", "name: missing");
    expect_err("{'name':7,'allow_rules':[]}", "name: not a string");
    expect_err("{'name':null,'allow_rules':[]}", "name: not a string");
    expect_err("{'name':'','allow_rules':[]}", "name: empty");
    expect_err("{'name':'p'}", "allow_rules: missing");
    expect_err("{'name':'p','allow_rules':{}}", "allow_rules: not an array");
    expect_err("{'name':'p','allow_rules':null}", "allow_rules: not an array");
    expect_err("{'name':'p','allow_rules':'r'}", "allow_rules: not an array");
    expect_err("{'name':'p','deny_rules':{},'allow_rules':[]}",
               "deny_rules: not an array");
    expect_err("{'name':'p','deny_rules':null,'allow_rules':[]}",
               "deny_rules: not an array");
    expect_err("{'name':'p','allow_rules':[],'audit_logging_options':{}}",
               "unknown top-level field \"audit_logging_options\"");
    expect_err("{'name':'p','allow_rules':[],'Allow_Rules':[]}",
               "unknown top-level field \"Allow_Rules\"");
}

static void test_err_json_syntax(void **state)
{
    (void)state;
    const char *m;
    m = RAW_ERR("{\n  \"name\": \"p\",\n  \"allow_rules\": [,]\n}");
    assert_non_null(strstr(m, "invalid JSON at line 3, column "));
    m = RAW_ERR("{\"name\":\"p\",\"allow_rules\":[]} x");
    assert_non_null(strstr(m, "invalid JSON at line 1, column "));
    m = RAW_ERR("");
    assert_non_null(strstr(m, "invalid JSON at line"));
    m = RAW_ERR("{\"name\":\"p\",\"allow_rules\":[]");
    assert_non_null(strstr(m, "invalid JSON"));
    /* duplicate keys are refused: parsers disagree on which one wins */
    m = RAW_ERR("{\"name\":\"p\",\"allow_rules\":[],\"allow_rules\":[]}");
    assert_non_null(strstr(m, "invalid JSON at line 1, column "));
    assert_non_null(strstr(m, "duplicate"));
    /* invalid UTF-8 */
    m = RAW_ERR("{\"name\":\"\xff\",\"allow_rules\":[]}");
    assert_non_null(strstr(m, "invalid JSON"));
    /* a raw NUL byte in the text */
    m = RAW_ERR("{\"name\":\"p\"\0,\"allow_rules\":[]}");
    assert_non_null(strstr(m, "invalid JSON"));
    /* message text from the input is escaped */
    m = RAW_ERR("{\"name\":\"p\",\"allow_rules\":[\x01]}");
    assert_null(strchr(m, '\x01'));
}

static void test_err_nul_in_strings(void **state)
{
    (void)state;
    expect_err("{'name':'p\\u0000x','allow_rules':[]}",
               "name: contains a NUL character");
    expect_err("{'name':'p','allow_rules':[{'name':'a\\u0000b'}]}",
               "allow_rules[0]: name: contains a NUL character");
    expect_err("{'name':'p','allow_rules':[{'name':'r','request':"
               "{'paths':['/a.B/C\\u0000']}}]}",
               "allow_rules[0] \"r\": request.paths[0]: contains a NUL "
               "character");
    expect_err("{'name':'p','allow_rules':[{'name':'r','source':"
               "{'principals':['\\u0000']}}]}",
               "allow_rules[0] \"r\": source.principals[0]: contains a NUL "
               "character");
    expect_err("{'name':'p','allow_rules':[{'name':'r','request':{'headers':"
               "[{'key':'x-a\\u0000','values':['v']}]}}]}",
               "allow_rules[0] \"r\": request.headers[0].key: contains a NUL "
               "character");
    expect_err("{'name':'p','allow_rules':[{'name':'r','request':{'headers':"
               "[{'key':'x-a','values':['v','\\u0000*']}]}}]}",
               "allow_rules[0] \"r\": request.headers[0].values[1]: contains "
               "a NUL character");
    /* a NUL in an object key (jansson refuses those while parsing) */
    const char *m = RAW_ERR("{\"na\\u0000me\":\"p\",\"allow_rules\":[]}");
    assert_non_null(strstr(m, "invalid JSON"));
}

static void test_err_limits(void **state)
{
    (void)state;
    char *buf;
    size_t n;
    const char *m;

    /* input over 1 MiB, refused before parsing */
    n = (size_t)ORPC__AUTHZ_MAX_BYTES + 1;
    buf = malloc(n);
    assert_non_null(buf);
    memset(buf, ' ', n);
    memcpy(buf, "{\"name\":\"p\",\"allow_rules\":[]}", 29);
    m = raw_err(buf, n);
    assert_string_equal(m,
                        "policy is 1048577 bytes, over the 1048576-byte limit");
    /* exactly 1 MiB is fine */
    orpc__authz *a = NULL;
    assert_int_equal(orpc__authz_parse(buf, n - 1, &a, NULL, 0), 0);
    orpc__authz_free(a);
    free(buf);

    /* strings: 4096 bytes is the most */
    buf = malloc(8192);
    assert_non_null(buf);
    memset(buf, 0, 8192);
    strcpy(buf, "{'name':'p','allow_rules':[{'name':'r','request':{'paths':['/");
    n = strlen(buf);
    memset(buf + n, 'a', 4095);
    strcpy(buf + n + 4095, "']}}]}");
    a = must_parse(buf);
    orpc__authz_free(a);
    memset(buf + n, 'a', 4096);
    strcpy(buf + n + 4096, "']}}]}");
    expect_err(buf, "allow_rules[0] \"r\": request.paths[0]: 4097 bytes, over "
                    "the 4096-byte limit");
    free(buf);

    /* a long rule name is escaped and cut short in messages */
    buf = malloc(8192);
    assert_non_null(buf);
    strcpy(buf, "{'name':'p','allow_rules':[{'name':'");
    n = strlen(buf);
    memset(buf + n, 'n', 4000);
    strcpy(buf + n + 4000, "','x':1}]}");
    {
        char want[200];
        strcpy(want, "allow_rules[0] \"");
        memset(want + 16, 'n', 64); /* the first 64 bytes, then "..." */
        strcpy(want + 80, "...\": unknown field \"x\"");
        expect_err(buf, want);
    }
    free(buf);

    /* 10000 rules is the most, deny and allow together */
    size_t cap = 10001 * 20 + 200;
    buf = malloc(cap);
    assert_non_null(buf);
    for (int total = 10000; total <= 10001; total++) {
        size_t o = (size_t)snprintf(buf, cap,
                                    "{\"name\":\"p\",\"deny_rules\":[{\"name\":"
                                    "\"d\"}],\"allow_rules\":[");
        for (size_t i = 0; i + 1 < (size_t)total; i++) {
            o += (size_t)snprintf(buf + o, cap - o, "{\"name\":\"r%05zu\"},", i);
        }
        buf[o - 1] = ']';
        buf[o++] = '}';
        if (total == 10000) {
            a = NULL;
            assert_int_equal(orpc__authz_parse(buf, o, &a, NULL, 0), 0);
            expect_decision(a, &no_tls, "/x", NULL, 0, "d");
            orpc__authz_free(a);
        } else {
            assert_string_equal(raw_err(buf, o),
                                "10001 rules, over the limit of 10000");
        }
    }
    free(buf);

    /* deep nesting: an error, not a crash */
    n = 200000;
    buf = malloc(n);
    assert_non_null(buf);
    memset(buf, '[', n);
    m = raw_err(buf, n);
    assert_non_null(strstr(m, "invalid JSON"));
    free(buf);
}

/* ---------------------------------------------------------------------- */
/* Validation: rules                                                       */

static void test_err_rules(void **state)
{
    (void)state;
    expect_err("{'name':'p','allow_rules':['r']}",
               "allow_rules[0]: not an object");
    expect_err("{'name':'p','allow_rules':[{'name':'a'},{}]}",
               "allow_rules[1]: name: missing");
    expect_err("{'name':'p','deny_rules':[{'source':{}}],'allow_rules':[]}",
               "deny_rules[0]: name: missing");
    expect_err("{'name':'p','allow_rules':[{'name':['x']}]}",
               "allow_rules[0]: name: not a string");
    expect_err("{'name':'p','allow_rules':[{'name':''}]}",
               "allow_rules[0]: name: empty");
    expect_err("{'name':'p','allow_rules':[{'name':'r','principals':['*']}]}",
               "allow_rules[0] \"r\": unknown field \"principals\"");
    expect_err("{'name':'p','deny_rules':[{'name':'d','action':'deny'}],"
               "'allow_rules':[]}",
               "deny_rules[0] \"d\": unknown field \"action\"");
    /* duplicate names within one list; the same name across lists is ok */
    expect_err("{'name':'p','allow_rules':[{'name':'a'},{'name':'b'},"
               "{'name':'c'},{'name':'b'},{'name':'a'}]}",
               "allow_rules[3] \"b\": name: same as allow_rules[1]");
    expect_err("{'name':'p','deny_rules':[{'name':'x'},{'name':'x'}],"
               "'allow_rules':[]}",
               "deny_rules[1] \"x\": name: same as deny_rules[0]");
    orpc__authz_free(
        must_parse("{'name':'p','deny_rules':[{'name':'x'}],"
                   "'allow_rules':[{'name':'x'},{'name':'xx'}]}"));
    /* names from the file are escaped in messages */
    expect_err("{'name':'p','allow_rules':[{'name':'a\\'b\\\\c\\u0001',"
               "'q':1}]}",
               "allow_rules[0] \"a\\\"b\\\\c\\x01\": unknown field \"q\"");
}

static void test_err_source(void **state)
{
    (void)state;
    expect_err("{'name':'p','allow_rules':[{'name':'r','source':[]}]}",
               "allow_rules[0] \"r\": source: not an object");
    expect_err("{'name':'p','allow_rules':[{'name':'r','source':null}]}",
               "allow_rules[0] \"r\": source: not an object");
    expect_err("{'name':'p','allow_rules':[{'name':'r','source':"
               "{'namespaces':['x']}}]}",
               "allow_rules[0] \"r\": source: unknown field \"namespaces\"");
    expect_err("{'name':'p','allow_rules':[{'name':'r','source':"
               "{'principals':'*'}}]}",
               "allow_rules[0] \"r\": source.principals: not an array");
    expect_err("{'name':'p','allow_rules':[{'name':'r','source':"
               "{'principals':['a',3]}}]}",
               "allow_rules[0] \"r\": source.principals[1]: not a string");
    expect_err("{'name':'p','allow_rules':[{'name':'r','source':"
               "{'principals':['*spiffe*']}}]}",
               "allow_rules[0] \"r\": source.principals[0]: '*' at both ends "
               "(a pattern is exact \"abc\", prefix \"abc*\", suffix \"*abc\" "
               "or \"*\")");
}

static void test_err_request(void **state)
{
    (void)state;
    expect_err("{'name':'p','allow_rules':[{'name':'ops'},{'name':'ops2',"
               "'request':'x'}]}",
               "allow_rules[1] \"ops2\": request: not an object");
    expect_err("{'name':'p','allow_rules':[{'name':'r','request':"
               "{'methods':['GET']}}]}",
               "allow_rules[0] \"r\": request: unknown field \"methods\"");
    expect_err("{'name':'p','allow_rules':[{'name':'r','request':"
               "{'paths':'/a.B/C'}}]}",
               "allow_rules[0] \"r\": request.paths: not an array");
    expect_err("{'name':'p','allow_rules':[{'name':'x'},{'name':'ops',"
               "'request':{'paths':[1]}}]}",
               "allow_rules[1] \"ops\": request.paths[0]: not a string");
    expect_err("{'name':'p','allow_rules':[{'name':'r','request':"
               "{'paths':['/a','**']}}]}",
               "allow_rules[0] \"r\": request.paths[1]: '*' at both ends "
               "(a pattern is exact \"abc\", prefix \"abc*\", suffix \"*abc\" "
               "or \"*\")");
    expect_err("{'name':'p','allow_rules':[{'name':'r','request':"
               "{'headers':{'key':'a','values':['b']}}}]}",
               "allow_rules[0] \"r\": request.headers: not an array");
    expect_err("{'name':'p','allow_rules':[{'name':'r','request':"
               "{'headers':['x-a']}}]}",
               "allow_rules[0] \"r\": request.headers[0]: not an object");
}

static void test_err_headers(void **state)
{
    (void)state;
    static const char *pre =
        "{'name':'p','allow_rules':[{'name':'r','request':{'headers':[";
    static const char *post = "]}}]}";
    static const struct {
        const char *header;
        const char *want;
    } cases[] = {
        {"{'values':['v']}", "request.headers[0].key: missing"},
        {"{'key':1,'values':['v']}", "request.headers[0].key: not a string"},
        {"{'key':'','values':['v']}", "request.headers[0].key: empty"},
        {"{'key':'x-a'}", "request.headers[0].values: missing"},
        {"{'key':'x-a','values':'v'}",
         "request.headers[0].values: not an array"},
        {"{'key':'x-a','values':[]}",
         "request.headers[0].values: empty (a header needs at least one "
         "value)"},
        {"{'key':'x-a','values':[null]}",
         "request.headers[0].values[0]: not a string"},
        {"{'key':'x-a','values':['v'],'invert':true}",
         "request.headers[0]: unknown field \"invert\""},
        {"{'key':'x-a','values':['*v*']}",
         "request.headers[0].values[0]: '*' at both ends (a pattern is exact "
         "\"abc\", prefix \"abc*\", suffix \"*abc\" or \"*\")"},
        {"{'key':'a b','values':['v']}",
         "request.headers[0].key: \"a b\": not a valid header name"},
        {"{'key':'x:y','values':['v']}",
         "request.headers[0].key: \"x:y\": not a valid header name"},
        {"{'key':'host','values':['v']}",
         "request.headers[0].key: \"host\": the Host header cannot be "
         "matched"},
        {"{'key':'Host','values':['v']}",
         "request.headers[0].key: \"host\": the Host header cannot be "
         "matched"},
        {"{'key':':authority','values':['v']}",
         "request.headers[0].key: \":authority\": pseudo-headers cannot be "
         "matched"},
        {"{'key':':path','values':['v']}",
         "request.headers[0].key: \":path\": pseudo-headers cannot be "
         "matched"},
        {"{'key':':method','values':['v']}",
         "request.headers[0].key: \":method\": pseudo-headers cannot be "
         "matched"},
        {"{'key':'grpc-timeout','values':['v']}",
         "request.headers[0].key: \"grpc-timeout\": grpc- headers cannot be "
         "matched"},
        {"{'key':'GRPC-Status','values':['v']}",
         "request.headers[0].key: \"grpc-status\": grpc- headers cannot be "
         "matched"},
        /* Keys the server never presents to the policy. */
        {"{'key':'user-agent','values':['curl/*']}",
         "request.headers[0].key: \"user-agent\": cannot be matched (the "
         "server does not present it to policies)"},
        {"{'key':'Content-Type','values':['application/grpc*']}",
         "request.headers[0].key: \"content-type\": cannot be matched (the "
         "server does not present it to policies)"},
        {"{'key':'content-length','values':['*']}",
         "request.headers[0].key: \"content-length\": cannot be matched (the "
         "server does not present it to policies)"},
        {"{'key':'accept-encoding','values':['gzip']}",
         "request.headers[0].key: \"accept-encoding\": cannot be matched "
         "(the server does not present it to policies)"},
        {"{'key':'x!y','values':['v']}",
         "request.headers[0].key: \"x!y\": cannot be matched (the server "
         "does not present it to policies)"},
        {"{'key':'x~y','values':['v']}",
         "request.headers[0].key: \"x~y\": cannot be matched (the server "
         "does not present it to policies)"},
    };
    static const char *const hop[] = {"connection",
                                      "keep-alive",
                                      "proxy-authenticate",
                                      "proxy-authorization",
                                      "proxy-connection",
                                      "te",
                                      "trailer",
                                      "transfer-encoding",
                                      "upgrade",
                                      "Connection",
                                      "TE"};
    char policy[1024], want[512], lower[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(policy, sizeof(policy), "%s%s%s", pre, cases[i].header, post);
        snprintf(want, sizeof(want), "allow_rules[0] \"r\": %s", cases[i].want);
        expect_err(policy, want);
    }
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
        size_t k;
        for (k = 0; hop[i][k]; k++) {
            char c = hop[i][k];
            lower[k] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        lower[k] = '\0';
        snprintf(policy, sizeof(policy),
                 "%s{'key':'x-ok','values':['v']},{'key':'%s','values':['v']}"
                 "%s",
                 pre, hop[i], post);
        snprintf(want, sizeof(want),
                 "allow_rules[0] \"r\": request.headers[1].key: \"%s\": "
                 "hop-by-hop headers cannot be matched",
                 lower);
        expect_err(policy, want);
    }
    /* keys close to the refused ones are fine */
    orpc__authz_free(must_parse(
        "{'name':'p','allow_rules':[{'name':'r','request':{'headers':["
        "{'key':'hosts','values':['v']},{'key':'grpc','values':['v']},"
        "{'key':'x-grpc-a','values':['v']},{'key':'tea','values':['v']},"
        "{'key':'content-type2','values':['application/grpc*']},"
        "{'key':'x-user-agent','values':['*']},"
        "{'key':'X-Content-Length','values':['*']}]}}]}"));
}

/* The case: a deny rule on user-agent would load and never fire. */
static void test_err_deny_rule_on_unpresented_key(void **state)
{
    (void)state;
    expect_err("{'name':'p','deny_rules':[{'name':'ok','request':{'headers':["
               "{'key':'x-client','values':['curl/*']}]}},"
               "{'name':'deny-curl','request':{'headers':["
               "{'key':'user-agent','values':['curl/*']}]}}],"
               "'allow_rules':[{'name':'all'}]}",
               "deny_rules[1] \"deny-curl\": request.headers[0].key: "
               "\"user-agent\": cannot be matched (the server does not "
               "present it to policies)");
}

/* Keys as long as orpc_metadata allows load; longer ones cannot match. */
static void test_err_key_length(void **state)
{
    (void)state;
    static const char pre[] =
        "{'name':'p','allow_rules':[{'name':'r','request':{'headers':[{'key':'";
    static const char post[] = "','values':['v']}]}}]}";
    char policy[sizeof(pre) + 1100 + sizeof(post)];
    char *key = policy + sizeof(pre) - 1;
    memcpy(policy, pre, sizeof(pre) - 1);
    memset(key, 'k', 1024);
    memcpy(key + 1024, post, sizeof(post));
    orpc__authz_free(must_parse(policy));
    memset(key, 'k', 1025);
    memcpy(key + 1025, post, sizeof(post));
    char *j = jq(policy);
    const char *got = raw_err(j, strlen(j));
    if (!strstr(got, "allow_rules[0] \"r\": request.headers[0].key: "
                     "\"kkkk") ||
        !strstr(got, "...\": cannot be matched (the server does not present "
                     "it to policies)")) {
        fail_msg("got: %s", got);
    }
    free(j);
}

/* ---------------------------------------------------------------------- */
/* Files                                                                   */

static char tmpdir[256];

static int setup_dir(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/authz_test.XXXXXX",
             base && *base ? base : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void expect_file_err(const char *path, const char *want_part)
{
    char err[1024];
    orpc__authz *a = (orpc__authz *)(uintptr_t)1;
    int rc = orpc__authz_load_file(path, &a, err, sizeof(err));
    assert_int_equal(rc, ORPC_ECONFIG);
    assert_null(a);
    if (strncmp(err, path, strlen(path)) != 0 || !strstr(err, want_part)) {
        fail_msg("%s: want \"%s\", got \"%s\"", path, want_part, err);
    }
}

static void test_load_file(void **state)
{
    (void)state;
    char path[512], err[1024];
    orpc__authz *a = NULL;
    char *j = jq("{'name':'filed','allow_rules':[{'name':'r'}]}\n");

    snprintf(path, sizeof(path), "%s/policy.json", tmpdir);
    write_file(path, j, strlen(j));
    free(j);
    assert_int_equal(orpc__authz_load_file(path, &a, err, sizeof(err)), 0);
    assert_string_equal(orpc__authz_name(a), "filed");
    expect_decision(a, &no_tls, "/a.B/C", NULL, 1, "r");
    orpc__authz_free(a);

    /* a policy error is prefixed with the path */
    snprintf(path, sizeof(path), "%s/bad.json", tmpdir);
    j = jq("{'name':'p','allow_rules':[{'name':'ops','request':"
           "{'paths':[1]}}]}");
    write_file(path, j, strlen(j));
    free(j);
    expect_file_err(path, ": allow_rules[0] \"ops\": request.paths[0]: not a "
                          "string");
    write_file(path, "{\n\"name\": \n}", 12);
    expect_file_err(path, ": invalid JSON at line 3, column ");
    write_file(path, "", 0);
    expect_file_err(path, ": invalid JSON");

    snprintf(path, sizeof(path), "%s/missing.json", tmpdir);
    expect_file_err(path, ": No such file or directory");

    expect_file_err(tmpdir, ": is a directory");

    /* a FIFO is refused without waiting for a writer */
    snprintf(path, sizeof(path), "%s/fifo", tmpdir);
    assert_int_equal(mkfifo(path, 0600), 0);
    expect_file_err(path, ": not a regular file");

    /* over 1 MiB: refused; exactly 1 MiB: read */
    snprintf(path, sizeof(path), "%s/big.json", tmpdir);
    size_t n = (size_t)ORPC__AUTHZ_MAX_BYTES + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, "{\"name\":\"big\",\"allow_rules\":[]}", 31);
    write_file(path, big, n);
    expect_file_err(path, ": 1048577 bytes, over the 1048576-byte limit");
    write_file(path, big, n - 1);
    assert_int_equal(orpc__authz_load_file(path, &a, err, sizeof(err)), 0);
    assert_string_equal(orpc__authz_name(a), "big");
    orpc__authz_free(a);
    free(big);

    /* an unreadable file (when not running as root) */
    if (geteuid() != 0) {
        snprintf(path, sizeof(path), "%s/secret.json", tmpdir);
        write_file(path, "{}", 2);
        assert_int_equal(chmod(path, 0), 0);
        expect_file_err(path, ": Permission denied");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_exact),
        cmocka_unit_test(test_path_prefix),
        cmocka_unit_test(test_path_suffix),
        cmocka_unit_test(test_path_presence),
        cmocka_unit_test(test_star_inside_is_literal),
        cmocka_unit_test(test_paths_ored),
        cmocka_unit_test(test_deny_beats_allow),
        cmocka_unit_test(test_first_matching_rule_named),
        cmocka_unit_test(test_default_deny),
        cmocka_unit_test(test_empty_allow_rules_deny_all),
        cmocka_unit_test(test_empty_rule_matches_all),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_principals_without_tls),
        cmocka_unit_test(test_principals_tls_without_cert),
        cmocka_unit_test(test_principals_uri_dns_subject),
        cmocka_unit_test(test_principals_partial_peer),
        cmocka_unit_test(test_source_and_request_anded),
        cmocka_unit_test(test_header_values_ored),
        cmocka_unit_test(test_headers_anded),
        cmocka_unit_test(test_header_key_case),
        cmocka_unit_test(test_header_repeated_joined),
        cmocka_unit_test(test_header_binary_value),
        cmocka_unit_test(test_keys_are_what_the_server_presents),
        cmocka_unit_test(test_header_repeated_as_sent),
        cmocka_unit_test(test_malformed_header_cannot_dodge),
        cmocka_unit_test(test_a43_example),
        cmocka_unit_test(test_err_top_level),
        cmocka_unit_test(test_err_json_syntax),
        cmocka_unit_test(test_err_nul_in_strings),
        cmocka_unit_test(test_err_limits),
        cmocka_unit_test(test_err_rules),
        cmocka_unit_test(test_err_source),
        cmocka_unit_test(test_err_request),
        cmocka_unit_test(test_err_headers),
        cmocka_unit_test(test_err_deny_rule_on_unpresented_key),
        cmocka_unit_test(test_err_key_length),
        cmocka_unit_test_setup_teardown(test_load_file, setup_dir,
                                        teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
