/*
 * fuzz_legacy_serve.c — libFuzzer target for what the gateway reads from
 * HTTP callers (compat/src/serve_route.c, serve_codec.c): legacy route
 * matching and request decoding over the five OpsConductor services, and
 * Connect unary requests.
 *
 * Input layout:
 *   byte 0     the verb (GET, POST, PUT, DELETE, PATCH, REPORT, by value % 6)
 *   then       the request target, up to the first '\n' (no '\0' inside)
 *   rest       the body
 *
 * Checked beyond "no crash, no leak, no UB":
 *   - an accepted legacy request names a method with that verb, and its
 *     message is of the method's input type;
 *   - a target whose path has a "." or ".." segment (plainly or
 *     percent-encoded), an encoded slash, or a bad escape is never
 *     accepted;
 *   - a refusal has an HTTP status in 400..599 and a non-empty detail that
 *     makes valid JSON ({"detail": ...});
 *   - a Connect request is either not Connect (1), accepted with a message
 *     of the method's input type, or refused with a non-OK status whose
 *     error body is JSON.
 *
 * Built with -DORPC_FUZZ_STANDALONE it has a main() (standalone.h) that
 * runs the target over the files named on the command line, or over a fixed
 * set of generated inputs (fixed seed) when there are none: a regression
 * test.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "fuzz.h"
#include "opsconductor/auth/v1/auth.orpc.h"
#include "opsconductor/credentials/v1/credentials.orpc.h"
#include "opsconductor/jobs/v1/jobs.orpc.h"
#include "opsconductor/notification/v1/notification.orpc.h"
#include "opsconductor/user/v1/user.orpc.h"
#include "serve_internal.h"

#define FUZZ_MAX_INPUT (64 * 1024)

static const char *const VERBS[] = {"GET",    "POST",  "PUT",
                                    "DELETE", "PATCH", "REPORT"};

static const orpc_service_desc *const *services(void)
{
    static const orpc_service_desc *s[6];
    s[0] = &opsconductor__auth__v1__auth_service__orpc_desc;
    s[1] = &opsconductor__jobs__v1__jobs_service__orpc_desc;
    s[2] = &opsconductor__notification__v1__notification_service__orpc_desc;
    s[3] = &opsconductor__credentials__v1__credentials_service__orpc_desc;
    s[4] = &opsconductor__user__v1__user_service__orpc_desc;
    s[5] = NULL;
    return s;
}

static const orpc_method_desc *find(void *ud, const char *path)
{
    (void)ud;
    const orpc_service_desc *const *s = services();
    for (size_t i = 0; s[i]; i++) {
        const orpc_method_desc *m = orpc_service_find_method(s[i], path);
        if (m != NULL && strcmp(m->path, path) == 0)
            return m;
    }
    return NULL;
}

static const char *hdr(void *ud, const char *name)
{
    const char *ct = ud;
    return strcasecmp(name, "content-type") == 0 ? ct : NULL;
}

/* Does the path of |t| hold a segment that must never be accepted? */
static int hostile_path(const char *t)
{
    size_t n = strcspn(t, "?");
    for (size_t i = 0; i < n; i++)
        if (t[i] == '%') {
            if (i + 2 >= n)
                return 1;
            char h[3] = {t[i + 1], t[i + 2], 0};
            char *end;
            long v = strtol(h, &end, 16);
            if (*end != '\0' || h[0] == '+' || h[0] == '-' || h[0] == ' ')
                return 1;
            if (v == '/' || v < 0x20)
                return 1;
        }
    /* dot segments after decoding %2e */
    char seg[16];
    size_t sl = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || t[i] == '/') {
            if ((sl == 1 && seg[0] == '.') ||
                (sl == 2 && seg[0] == '.' && seg[1] == '.'))
                return 1;
            sl = 0;
            continue;
        }
        char c = t[i];
        if (c == '%' && i + 2 < n && t[i + 1] == '2' &&
            (t[i + 2] == 'e' || t[i + 2] == 'E')) {
            c = '.';
            i += 2;
        }
        if (sl < sizeof(seg))
            seg[sl++] = c;
        else
            sl = sizeof(seg); /* too long to be a dot segment */
        if (c != '.')
            sl = sizeof(seg);
    }
    return 0;
}

static orpc__lroutes *table(void)
{
    static orpc__lroutes rt;
    static int built;
    if (!built) {
        char err[256];
        const orpc_service_desc *const *s = services();
        for (size_t i = 0; s[i]; i++)
            CHECK(orpc__lroutes_add_service(&rt, s[i], err, sizeof(err)) == 0);
        built = 1;
    }
    return &rt;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > FUZZ_MAX_INPUT)
        return 0;
    const char *verb = VERBS[data[0] % 6];
    const uint8_t *nl = memchr(data + 1, '\n', size - 1);
    size_t tl = nl ? (size_t)(nl - data - 1) : size - 1;
    if (memchr(data + 1, '\0', tl) != NULL)
        return 0;
    char *target = malloc(tl + 1);
    CHECK(target != NULL);
    memcpy(target, data + 1, tl);
    target[tl] = '\0';
    const uint8_t *body = nl ? nl + 1 : data + size;
    size_t blen = (size_t)(data + size - body);

    const orpc__lroute *r = NULL;
    orpc__serve_err e;
    int rc = orpc__lroute_find(table(), verb, target, &r, &e);
    ProtobufCMessage *msg = NULL;
    if (rc == 0) {
        CHECK(strcmp(r->rule->verb, verb) == 0);
        CHECK(!hostile_path(target));
        rc = orpc__lroute_decode(r, target, hdr, (void *)"application/json",
                                 body, blen, &msg, &e);
        if (rc == 0) {
            CHECK(msg != NULL);
            CHECK(msg->descriptor == r->m->input->descriptor);
            protobuf_c_message_free_unpacked(msg, NULL);
        }
    }
    if (rc != 0) {
        CHECK(e.status >= 400 && e.status <= 599);
        CHECK(e.detail[0] != '\0');
        size_t len = 0;
        char *j = orpc__serve_detail_json(e.detail, &len);
        CHECK(j != NULL);
        json_error_t je;
        json_t *v = json_loadb(j, len, 0, &je);
        CHECK(v != NULL);
        json_decref(v);
        free(j);
    }

    orpc__connect_req cr;
    orpc_status st;
    int hs = 0;
    rc = orpc__connect_parse(
        find, NULL, verb, target, NULL, hdr,
        (void *)(data[0] & 0x80 ? "application/proto" : "application/json"),
        body, blen, &cr, &st, &hs);
    if (rc == 0) {
        CHECK(cr.msg != NULL);
        CHECK(cr.msg->descriptor == cr.m->input->descriptor);
        orpc__connect_req_clear(&cr);
    } else if (rc < 0) {
        CHECK(st.code != ORPC_OK);
        size_t len = 0;
        char *j = orpc__connect_error_json(&st, &len);
        CHECK(j != NULL);
        json_error_t je;
        json_t *v = json_loadb(j, len, 0, &je);
        CHECK(v != NULL);
        json_decref(v);
        free(j);
        orpc_status_clear(&st);
    }
    free(target);
    return 0;
}

#ifdef ORPC_FUZZ_STANDALONE

#include "standalone.h"

static const char *const TARGETS[] = {
    "/login",
    "/verify",
    "/jobs/42/run",
    "/jobs/7",
    "/jobs/7/status",
    "/jobs/7/events",
    "/notifications",
    "/credentials/5",
    "/targets/3/credentials",
    "/users/9",
    "/users/9/preferences",
    "/jobs/%2e%2E/users/1",
    "/jobs/7%2Fstatus",
    "/jobs/./7",
    "/jobs/7?job_id=1&x=%zz",
    "/opsconductor.jobs.v1.JobsService/GetJob?encoding=json&message=%7B%7D",
    ("/opsconductor.jobs.v1.JobsService/GetJob?encoding=proto&base64=1"
     "&message=CAc"),
    "/opsconductor.auth.v1.AuthService/Login",
    "/opsconductor.jobs.v1.JobsService/WatchJob",
};
static const char *const BODIES[] = {
    "",
    "{}",
    "{\"username\":\"a\",\"password\":\"b\"}",
    ("{\"type\":\"email\",\"destination\":\"d\",\"payload\":{\"a\":[1]},"
     "\"template_id\":3}"),
    "{\"scheduled\":true}",
    "[[[[[[[[[[]]]]]]]]]]",
    "{\"job_id\":\"9223372036854775808\"}",
    "\x08\x07",
    "null",
};

static size_t gen_input(uint32_t *st, uint8_t *out, size_t cap)
{
    size_t len = 0;
    out[len++] = (uint8_t)rng_next(st);
    const char *t =
        TARGETS[rng_next(st) % (sizeof(TARGETS) / sizeof(*TARGETS))];
    const char *b = BODIES[rng_next(st) % (sizeof(BODIES) / sizeof(*BODIES))];
    size_t tn = strlen(t), bn = strlen(b);
    CHECK(1 + tn + 1 + bn <= cap);
    memcpy(out + len, t, tn);
    len += tn;
    out[len++] = '\n';
    memcpy(out + len, b, bn);
    len += bn;
    /* spoil a byte now and then */
    if (rng_next(st) % 3 == 0 && len > 1)
        out[1 + rng_next(st) % (len - 1)] ^= (uint8_t)(1 + rng_next(st) % 255);
    return len;
}

FUZZ_STANDALONE_MAIN("fuzz_legacy_serve", 0x73727665u /* "srve" */, gen_input)

#endif /* ORPC_FUZZ_STANDALONE */
