/*
 * fuzz_http_reply.c — libFuzzer target for the reading of legacy HTTP
 * replies into gRPC statuses (orpc__legacy_status, compat/src/legacy_http.h):
 * the status code table and FastAPI's "detail" (a string, a pydantic
 * validation list, anything else) in a body the legacy service sends.
 *
 * Input layout:
 *   byte 0-1   HTTP status (little-endian, mod 1000)
 *   rest       the body (at most MAX_BODY bytes; longer inputs are skipped)
 *
 * Checked beyond "no crash, no leak, no UB":
 *   - the code is the one legacy_http.h's table gives for the status (404
 *     NOT_FOUND only when the body is a JSON object with "detail");
 *   - 2xx: OK without a message; otherwise a non-empty message of valid
 *     UTF-8, at most 1 KiB (+ "..."), never the body as it is unless the
 *     body's detail is a string; without a usable detail, exactly
 *     "HTTP <status>" (with the 404 and 3xx wordings); a string detail is
 *     the message (cut at a character boundary when over 1 KiB).
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

#include <jansson.h>

#include <orpc/status.h>

#include "fuzz.h"
#include "legacy_http.h"

#define MAX_BODY (64 * 1024)
#define DETAIL_MAX 1024 /* legacy_http.h: "at most ... 1 KiB" */

/* legacy_http.h's table, written out again. */
static orpc_code ref_code(long s, int service_json)
{
    static const struct {
        long status;
        orpc_code code;
    } table[] = {
        {400, ORPC_INVALID_ARGUMENT},
        {422, ORPC_INVALID_ARGUMENT},
        {401, ORPC_UNAUTHENTICATED},
        {403, ORPC_PERMISSION_DENIED},
        {405, ORPC_UNIMPLEMENTED},
        {408, ORPC_DEADLINE_EXCEEDED},
        {409, ORPC_ABORTED},
        {413, ORPC_RESOURCE_EXHAUSTED},
        {429, ORPC_RESOURCE_EXHAUSTED},
        {499, ORPC_CANCELLED},
        {500, ORPC_INTERNAL},
        {501, ORPC_UNIMPLEMENTED},
        {502, ORPC_UNAVAILABLE},
        {503, ORPC_UNAVAILABLE},
        {504, ORPC_DEADLINE_EXCEEDED},
    };
    if (s >= 200 && s <= 299) {
        return ORPC_OK;
    }
    if (s == 404) {
        return service_json ? ORPC_NOT_FOUND : ORPC_UNIMPLEMENTED;
    }
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i].status == s) {
            return table[i].code;
        }
    }
    return s >= 400 && s <= 499 ? ORPC_FAILED_PRECONDITION : ORPC_UNKNOWN;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size - 2 > MAX_BODY) {
        return 0;
    }
    orpc__http_reply r;
    memset(&r, 0, sizeof(r));
    r.status = (long)((data[0] | (unsigned)data[1] << 8) % 1000);
    r.len = size - 2;
    /* As the transport leaves it: owned, NUL-terminated, exactly sized. */
    r.body = malloc(r.len + 1);
    CHECK(r.body != NULL);
    memcpy(r.body, data + 2, r.len);
    r.body[r.len] = '\0';

    orpc_status st = orpc__legacy_status(&r);

    /* What the body says, read here the same way a service means it. */
    json_error_t jerr;
    json_t *doc =
        r.len > 0 ? json_loadb(r.body, r.len, JSON_DECODE_ANY, &jerr) : NULL;
    const json_t *detail =
        json_is_object(doc) ? json_object_get(doc, "detail") : NULL;

    CHECK(st.code == ref_code(r.status, detail != NULL));
    if (st.code == ORPC_OK) {
        CHECK(st.message == NULL);
    } else {
        CHECK(st.message != NULL);
        size_t n = strlen(st.message);
        CHECK(n > 0 && n <= DETAIL_MAX + 3);
        CHECK(utf8_ok((const uint8_t *)st.message, n));
        char want[64];
        if (r.status == 404 && detail == NULL) {
            snprintf(want, sizeof(want), "HTTP 404: no such route");
        } else if (r.status >= 300 && r.status <= 399) {
            snprintf(want, sizeof(want),
                     "HTTP %ld (redirects are not followed)", r.status);
        } else {
            snprintf(want, sizeof(want), "HTTP %ld", r.status);
        }
        if (detail == NULL || json_is_null(detail) ||
            (json_is_string(detail) && json_string_length(detail) == 0)) {
            CHECK(strcmp(st.message, want) == 0);
        } else if (json_is_string(detail)) {
            const char *d = json_string_value(detail);
            size_t dn = json_string_length(detail);
            if (dn <= DETAIL_MAX) {
                CHECK(n == dn && memcmp(st.message, d, dn) == 0);
            } else {
                /* Cut at a character boundary, then "...". */
                CHECK(n > 3 && n - 3 <= DETAIL_MAX && n - 3 > DETAIL_MAX - 4);
                CHECK(memcmp(st.message, d, n - 3) == 0);
                CHECK(memcmp(st.message + n - 3, "...", 3) == 0);
            }
        }
    }
    json_decref(doc);
    orpc_status_clear(&st);
    free(r.body);
    return 0;
}

#ifdef ORPC_FUZZ_STANDALONE

/* ---- regression runner: files, or generated inputs --------------------- */

#include "standalone.h"

static const long STATUSES[] = {200, 204, 301, 400, 401, 403, 404, 405,
                                408, 409, 413, 418, 422, 429, 499, 500,
                                501, 502, 503, 504, 599, 100, 0,   999};

#define N_STATUSES (sizeof(STATUSES) / sizeof(STATUSES[0]))

/* Bodies a FastAPI service (or a proxy before it) sends. */
static const char *const BODIES[] = {
    "",
    "{\"detail\":\"Job not found\"}",
    "{\"detail\":[{\"loc\":[\"body\",\"payload\",\"subject\"],"
    "\"msg\":\"Field required\",\"type\":\"missing\"},"
    "{\"loc\":[\"path\",\"job_id\"],\"msg\":\"Input should be a valid "
    "integer\",\"ctx\":{\"error\":\"bad\"}},{\"loc\":[\"query\",3,null],"
    "\"msg\":\"x\"},\"not an object\",{\"msg\":7},{},{},{},{},{}]}",
    "{\"detail\":{\"code\":\"E42\",\"why\":[1,2.5,null]}}",
    "{\"detail\":null}",
    "{\"detail\":\"\"}",
    "{\"error\":\"no detail here\"}",
    "<html><body>502 Bad Gateway</body></html>",
    "[\"detail\"]",
    "{\"detail\":\"caf\\u00e9 \\ud83d\\ude00\"}",
    "{\"detail\":\"\xff\"}",
    "{\"detail\":\"a\\u0000b\"}",
    "\"detail\"",
};

#define N_BODIES (sizeof(BODIES) / sizeof(BODIES[0]))

static size_t gen_input(uint32_t *st, uint8_t *out, size_t cap)
{
    long s = STATUSES[rng_next(st) % N_STATUSES];
    out[0] = (uint8_t)(s & 0xff);
    out[1] = (uint8_t)(s >> 8);
    size_t len = 2;
    switch (rng_next(st) % 4) {
    case 0: { /* a string detail over the limit, cut in a multi-byte
               * character or not */
        const char *pre = "{\"detail\":\"";
        memcpy(out + len, pre, strlen(pre));
        len += strlen(pre);
        size_t n = 1000 + rng_next(st) % 100;
        for (size_t i = 0; i < n && len + 8 < cap; i++) {
            if (rng_next(st) % 3 == 0) {
                memcpy(out + len, "\xe2\x82\xac", 3); /* the euro sign */
                len += 3;
            } else {
                out[len++] = 'a';
            }
        }
        memcpy(out + len, "\"}", 2);
        len += 2;
        break;
    }
    case 1: { /* a body with a byte flipped */
        const char *b = BODIES[rng_next(st) % N_BODIES];
        size_t n = strlen(b);
        memcpy(out + len, b, n);
        if (n > 0) {
            out[len + rng_next(st) % n] ^= (uint8_t)(1 + rng_next(st) % 255);
        }
        len += n;
        break;
    }
    default: { /* a body as it is */
        const char *b = BODIES[rng_next(st) % N_BODIES];
        size_t n = strlen(b);
        memcpy(out + len, b, n);
        len += n;
        break;
    }
    }
    return len;
}

FUZZ_STANDALONE_MAIN("fuzz_http_reply", 0x68747470u /* "http" */, gen_input)

#endif /* ORPC_FUZZ_STANDALONE */
