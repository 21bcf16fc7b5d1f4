/*
 * fuzz_routes.c — libFuzzer target for the routing-table file parser
 * (orpc_routes_load, orpc/compat/router.h), reachable only through a file:
 * each input is written to one temporary file and loaded, and the table is
 * checked against a reference reading of the file format documented in
 * router.h.
 *
 * The input is the file (at most MAX_FILE bytes; longer inputs are
 * skipped).  The ORPC_ROUTE_* and ORPC_ROUTES_STATS_FILE environment
 * variables are removed first, so only the file decides.
 *
 * Checked beyond "no crash, no leak, no UB":
 *   - the result is 0 or ORPC_ECONFIG, as the reference says; a refusal
 *     leaves |*out| unset, fills the orpc_error_detail with its code and a
 *     message naming the file and the first bad line ("<file>:<line>:
 *     ..."), the same message on a second load; an acceptance leaves the
 *     detail untouched;
 *   - for every method of the OpsConductor services and grpc.testing's
 *     TestService, orpc_routes_mode() is the reference's: a method without
 *     a google.api.http rule goes over gRPC; otherwise the last
 *     `pkg.Service/Method` line, else the last `pkg.Service` line, else
 *     the last `*` line, else legacy;
 *   - the stats file and its glob are the last stats_file line with
 *     `{pid}` expanded (or made `*`);
 *   - orpc_routes_reload() of the same file succeeds and changes nothing.
 * Lines the reference does not decide (a NUL, or 1022 bytes or more: the
 * loader reads lines with fgets into 1 KiB) are only checked for the
 * result codes.
 *
 * Built with -DORPC_FUZZ_STANDALONE it has a main() (standalone.h) that
 * runs the target over the files named on the command line, or over a fixed
 * set of generated inputs (fixed seed) when there are none: a regression
 * test.
 * "-write-seeds DIR" also saves those inputs in DIR, a seed corpus for
 * libFuzzer.
 */
#include <ctype.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <orpc/compat/router.h>
#include <orpc/error.h>

#include "fuzz.h"
#include "grpc/testing/test.orpc.h"
#include "opsconductor/auth/v1/auth.orpc.h"
#include "opsconductor/credentials/v1/credentials.orpc.h"
#include "opsconductor/jobs/v1/jobs.orpc.h"
#include "opsconductor/notification/v1/notification.orpc.h"
#include "opsconductor/user/v1/user.orpc.h"

#define MAX_FILE (64 * 1024)

extern char **environ;

static const orpc_service_desc *const SERVICES[] = {
    &opsconductor__auth__v1__auth_service__orpc_desc,
    &opsconductor__credentials__v1__credentials_service__orpc_desc,
    &opsconductor__jobs__v1__jobs_service__orpc_desc,
    &opsconductor__notification__v1__notification_service__orpc_desc,
    &opsconductor__user__v1__user_service__orpc_desc,
    &grpc__testing__test_service__orpc_desc,
};

#define N_SERVICES (sizeof(SERVICES) / sizeof(SERVICES[0]))
#define MAX_METHODS 64

/* ---- the temporary file and the environment ----------------------------- */

static char tmp_path[64];

static void remove_tmp(void)
{
    if (tmp_path[0] != '\0') {
        unlink(tmp_path);
    }
}

/* Once: a private file to write inputs to, and no ORPC_ROUTE* variables. */
static void setup(void)
{
    if (tmp_path[0] != '\0') {
        return;
    }
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/orpc-fuzz-routes-XXXXXX");
    int fd = mkstemp(tmp_path);
    CHECK(fd >= 0);
    close(fd);
    atexit(remove_tmp);
    for (;;) {
        char name[256] = "";
        for (char **e = environ; e != NULL && *e != NULL; e++) {
            const char *eq = strchr(*e, '=');
            if (strncmp(*e, "ORPC_ROUTE", 10) == 0 && eq != NULL &&
                (size_t)(eq - *e) < sizeof(name)) {
                memcpy(name, *e, (size_t)(eq - *e));
                name[eq - *e] = '\0';
                break;
            }
        }
        if (name[0] == '\0') {
            break;
        }
        CHECK(unsetenv(name) == 0);
    }
}

/* ---- the reference ------------------------------------------------------ */

typedef struct ref_route {
    const char *key; /* into the input copy */
    size_t key_len;
    orpc_route_mode mode;
} ref_route;

typedef struct ref_table {
    ref_route *r;
    size_t n;
    const char *stats; /* the last stats_file value, or NULL */
    size_t stats_len;
    int error_line; /* the first bad line (1-based), or 0 */
    int undecided;  /* a line the reference does not decide */
} ref_table;

/* An identifier: a letter or '_', then letters, digits, '_'. */
static int ref_ident(const char *b, const char *e)
{
    if (b == e || !(isalpha((unsigned char)*b) || *b == '_')) {
        return 0;
    }
    for (const char *p = b; p < e; p++) {
        if (!(isalnum((unsigned char)*p) || *p == '_')) {
            return 0;
        }
    }
    return 1;
}

/* router.h's keys: "*", or dot-separated identifiers, optionally followed
 * by "/" and one identifier. */
static int ref_key(const char *k, const char *kend)
{
    if (kend - k == 1 && *k == '*') {
        return 1;
    }
    const char *slash = memchr(k, '/', (size_t)(kend - k));
    const char *svc_end = slash != NULL ? slash : kend;
    if (slash != NULL && !ref_ident(slash + 1, kend)) {
        return 0;
    }
    const char *p = k;
    for (;;) {
        const char *dot = memchr(p, '.', (size_t)(svc_end - p));
        const char *e = dot != NULL ? dot : svc_end;
        if (!ref_ident(p, e)) {
            return 0;
        }
        if (dot == NULL) {
            return 1;
        }
        p = dot + 1;
    }
}

static void ref_trim(const char **b, const char **e)
{
    while (*b < *e && isspace((unsigned char)**b)) {
        (*b)++;
    }
    while (*e > *b && isspace((unsigned char)(*e)[-1])) {
        (*e)--;
    }
}

static int ref_mode(const char *s, size_t n, orpc_route_mode *out)
{
    /* router.h's modes; "shadow_grpc" is accepted as "shadow-grpc" too. */
    static const char *const names[] = {"legacy", "grpc", "fallback", "shadow",
                                        "shadow-grpc"};
    for (int i = 0; i < 5; i++) {
        if (strlen(names[i]) == n && strncasecmp(names[i], s, n) == 0) {
            *out = (orpc_route_mode)i;
            return 1;
        }
    }
    if (n == 11 && strncasecmp(s, "shadow_grpc", n) == 0) {
        *out = ORPC_ROUTE_SHADOW_GRPC;
        return 1;
    }
    return 0;
}

/* One line, without its '\n'; 0 when it is bad. */
static int ref_line(ref_table *t, const char *p, const char *end)
{
    const char *hash = memchr(p, '#', (size_t)(end - p));
    if (hash != NULL) {
        end = hash;
    }
    ref_trim(&p, &end);
    if (p == end) {
        return 1;
    }
    const char *eq = memchr(p, '=', (size_t)(end - p));
    if (eq == NULL) {
        return 0;
    }
    const char *k = p, *kend = eq, *v = eq + 1, *vend = end;
    ref_trim(&k, &kend);
    ref_trim(&v, &vend);
    if (kend - k > 6 && memcmp(k, "ignore", 6) == 0 &&
        isspace((unsigned char)k[6])) {
        k += 6;
        ref_trim(&k, &kend);
        return kend - k <= 500 && ref_key(k, kend); /* for shadows */
    }
    if (kend - k == 10 && memcmp(k, "stats_file", 10) == 0) {
        t->stats = v;
        t->stats_len = (size_t)(vend - v);
        return vend > v;
    }
    orpc_route_mode mode;
    if (!ref_key(k, kend) || !ref_mode(v, (size_t)(vend - v), &mode)) {
        return 0;
    }
    t->r[t->n].key = k;
    t->r[t->n].key_len = (size_t)(kend - k);
    t->r[t->n].mode = mode;
    t->n++;
    return 1;
}

static void ref_load(ref_table *t, const char *s, size_t len)
{
    memset(t, 0, sizeof(*t));
    t->r = malloc((len / 2 + 1) * sizeof(*t->r)); /* a route takes >= 3 */
    CHECK(t->r != NULL);
    int lineno = 0;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(s + at, '\n', len - at);
        size_t end = nl != NULL ? (size_t)(nl - s) : len;
        lineno++;
        if (memchr(s + at, '\0', end - at) != NULL || end - at >= 1022) {
            t->undecided = 1;
            return;
        }
        if (!ref_line(t, s + at, s + end)) {
            t->error_line = lineno;
            return;
        }
        at = end + 1;
    }
}

/* The last mode set for |key|, if any. */
static int ref_find(const ref_table *t, const char *key, orpc_route_mode *mode)
{
    size_t n = strlen(key);
    for (size_t i = t->n; i-- > 0;) {
        if (t->r[i].key_len == n && memcmp(t->r[i].key, key, n) == 0) {
            *mode = t->r[i].mode;
            return 1;
        }
    }
    return 0;
}

static orpc_route_mode ref_route_of(const ref_table *t,
                                    const orpc_method_desc *m)
{
    char key[512];
    orpc_route_mode mode;
    if (m->http == NULL || m->kind != ORPC_CALL_UNARY) {
        return ORPC_ROUTE_GRPC; /* no legacy endpoint; streams: gRPC only */
    }
    snprintf(key, sizeof(key), "%s/%s", m->service->full_name, m->name);
    if (ref_find(t, key, &mode) || ref_find(t, m->service->full_name, &mode) ||
        ref_find(t, "*", &mode)) {
        return mode;
    }
    return ORPC_ROUTE_LEGACY;
}

/* |s| (|n| bytes) with every "{pid}" replaced by |pid|, in a new string. */
static char *expand(const char *s, size_t n, const char *pid)
{
    char *out = malloc(n * (strlen(pid) + 1) + 1);
    CHECK(out != NULL);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (n - i >= 5 && memcmp(s + i, "{pid}", 5) == 0) {
            memcpy(out + o, pid, strlen(pid));
            o += strlen(pid);
            i += 5;
        } else {
            out[o++] = s[i++];
        }
    }
    out[o] = '\0';
    return out;
}

/* ---- the target --------------------------------------------------------- */

static void check_modes(const orpc_routes *rt, const ref_table *ref,
                        orpc_route_mode *modes, int fill)
{
    size_t k = 0;
    for (size_t s = 0; s < N_SERVICES; s++) {
        for (size_t i = 0; i < SERVICES[s]->n_methods; i++, k++) {
            const orpc_method_desc *m = orpc_service_method(SERVICES[s], i);
            orpc_route_mode got = orpc_routes_mode(rt, m);
            CHECK((unsigned)got <= ORPC_ROUTE_SHADOW_GRPC);
            CHECK(k < MAX_METHODS);
            if (fill) {
                modes[k] = got;
            } else {
                CHECK(modes[k] == got);
            }
            if (ref->undecided) {
                continue;
            }
            orpc_route_mode want = ref_route_of(ref, m);
            if (got != want) {
                fprintf(stderr, "%s: got %s, want %s\n", m->path,
                        orpc_route_mode_name(got), orpc_route_mode_name(want));
            }
            CHECK(got == want);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_FILE) {
        return 0;
    }
    setup();
    FILE *f = fopen(tmp_path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(data, 1, size, f) == size);
    CHECK(fclose(f) == 0);

    ref_table ref;
    ref_load(&ref, (const char *)data, size);

    orpc_error_detail detail, untouched;
    memset(&detail, 'x', sizeof(detail));
    memset(&untouched, 'x', sizeof(untouched));
    const char *err = detail.message;
    orpc_routes *rt = (orpc_routes *)(uintptr_t)1;
    int rc = orpc_routes_load(&rt, tmp_path, &detail);
    CHECK(rc == 0 || rc == ORPC_ECONFIG);
    if (rc == 0) {
        CHECK(memcmp(&detail, &untouched, sizeof(detail)) == 0);
    } else {
        CHECK(detail.code == rc);
        CHECK(memchr(err, '\0', sizeof(detail.message)) != NULL);
    }
    if (!ref.undecided) {
        if ((rc == 0) != (ref.error_line == 0)) {
            fprintf(stderr, "loader: %s; reference: %s line %d\n",
                    rc == 0 ? "accepted" : err,
                    ref.error_line ? "bad" : "all good", ref.error_line);
        }
        CHECK((rc == 0) == (ref.error_line == 0));
    }
    if (rc != 0) {
        CHECK(rt == (orpc_routes *)(uintptr_t)1);
        char want[128];
        snprintf(want, sizeof(want), "%s:", tmp_path);
        if (!ref.undecided) {
            snprintf(want, sizeof(want), "%s:%d: ", tmp_path, ref.error_line);
        }
        CHECK(strncmp(err, want, strlen(want)) == 0);
        CHECK(strlen(err) > strlen(want));
        orpc_error_detail again = {0};
        CHECK(orpc_routes_load(&rt, tmp_path, &again) == rc);
        CHECK(strcmp(again.message, err) == 0);
        free(ref.r);
        return 0;
    }
    CHECK(rt != NULL && rt != (orpc_routes *)(uintptr_t)1);

    orpc_route_mode modes[MAX_METHODS];
    check_modes(rt, &ref, modes, 1);

    char sfb[PATH_MAX], sgb[PATH_MAX];
    int sfr = orpc_routes_stats_file(rt, sfb, sizeof sfb);
    int sgr = orpc_routes_stats_glob(rt, sgb, sizeof sgb);
    CHECK(sfr == 0 || sfr == ORPC_ENOTFOUND || sfr == ORPC_ETOOBIG);
    const char *sf = sfr == 0 ? sfb : NULL;
    const char *sg = sgr == 0 ? sgb : NULL;
    CHECK((sfr == ORPC_ENOTFOUND) == (sgr == ORPC_ENOTFOUND));
    if (!ref.undecided && sfr != ORPC_ETOOBIG && sgr != ORPC_ETOOBIG) {
        CHECK((sf == NULL) == (ref.stats == NULL));
        if (sf != NULL) {
            char pid[32];
            snprintf(pid, sizeof(pid), "%d", (int)getpid());
            char *want = expand(ref.stats, ref.stats_len, pid);
            char *want_glob = expand(ref.stats, ref.stats_len, "*");
            CHECK(strcmp(sf, want) == 0);
            CHECK(strcmp(sg, want_glob) == 0);
            free(want);
            free(want_glob);
        }
    }

    /* The same file again: no change. */
    CHECK(orpc_routes_reload(rt, &detail) == 0);
    check_modes(rt, &ref, modes, 0);

    orpc_routes_unref(rt);
    free(ref.r);
    return 0;
}

#ifdef ORPC_FUZZ_STANDALONE

/* ---- regression runner: files, or generated inputs --------------------- */

#include "standalone.h"

static const char *const KEYS[] = {
    "*",
    "opsconductor.jobs.v1.JobsService",
    "opsconductor.jobs.v1.JobsService/GetJob",
    "opsconductor.jobs.v1.JobsService/RunJob",
    "opsconductor.auth.v1.AuthService/Login",
    "opsconductor.notification.v1.NotificationService",
    "opsconductor.user.v1.UserService/GetUser",
    "grpc.testing.TestService",
    "opsconductor.jobs.v1.JobsService/getjob",
    "no.such.Service",
    "ENV:JOBS_GET_JOB", /* the table's internal key syntax: refused */
    "",
};

#define N_KEYS (sizeof(KEYS) / sizeof(KEYS[0]))

static const char *const MODES[] = {
    "legacy", "grpc",        "fallback", "shadow", "shadow-grpc",
    "GRPC",   "shadow_grpc", "Shadow",   "bogus",  "",
};

#define N_MODES (sizeof(MODES) / sizeof(MODES[0]))

static size_t add(uint8_t *buf, size_t len, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n > cap - len) {
        n = cap - len;
    }
    memcpy(buf + len, s, n);
    return len + n;
}

/* A file of a few lines: routes (mostly good), comments, blank lines,
 * ignore and stats_file lines, now and then a bad or an overlong line. */
static size_t gen_input(uint32_t *st, uint8_t *out, size_t cap)
{
    size_t len = 0;
    int lines = 1 + (int)(rng_next(st) % 10);
    int bad = rng_next(st) % 3 == 0; /* this file may hold bad lines */
    for (int i = 0; i < lines; i++) {
        char line[1200];
        uint32_t kind = rng_next(st) % 10;
        const char *mode = MODES[rng_next(st) % (bad ? N_MODES : 5)];
        const char *key = KEYS[rng_next(st) % (bad ? N_KEYS : N_KEYS - 1)];
        switch (kind) {
        case 0:
            snprintf(line, sizeof(line), "# comment = grpc\n");
            break;
        case 1:
            snprintf(line, sizeof(line), " \t\r\n");
            break;
        case 2:
            snprintf(line, sizeof(line), "ignore %s = created_at, a.b\n",
                     bad && rng_next(st) % 2 ? "" : KEYS[2]);
            break;
        case 3:
            snprintf(line, sizeof(line), "stats_file = %s\n",
                     bad && rng_next(st) % 2 ? ""
                                             : "/tmp/orpc-stats-{pid}.json");
            break;
        case 4:
            if (bad) {
                snprintf(line, sizeof(line), "%s %s\n", key, mode);
                break;
            }
            /* fall through */
        default:
            snprintf(line, sizeof(line), "%s%s=%s %s\n",
                     rng_next(st) % 2 ? "  " : "", key, mode,
                     rng_next(st) % 4 == 0 ? "# trailing" : "");
            break;
        }
        len = add(out, len, cap, line);
    }
    if (bad && rng_next(st) % 3 == 0) { /* a very long line */
        for (int i = 0; i < 1100 && len < cap; i++) {
            out[len++] = 'k';
        }
        len = add(out, len, cap, " = grpc\n");
    }
    return len;
}

FUZZ_STANDALONE_MAIN("fuzz_routes", 0x726f7574u /* "rout" */, gen_input)

#endif /* ORPC_FUZZ_STANDALONE */
