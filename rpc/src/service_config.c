/*
 * service_config.c — owns reading gRPC's service config (JSON) into the
 * immutable orpc__svc_config a channel consults for every call.  See
 * service_config.h for the contract.
 *
 * Design notes.
 *
 * Leniency and strictness, as gRPC's own parsers: a field orpc does not
 * know is ignored (a config written for a newer gRPC still loads), and
 * JSON null is "not set" (proto3 JSON); a known field with the wrong type
 * or a value out of range is an error, because quietly dropping a
 * misspelt value (maxAttempts: "three") would leave the operator with
 * a config that does not do what it says.  Duplicate object keys are
 * refused too (jansson's JSON_REJECT_DUPLICATES; gRPC C-core refuses them
 * as well), and so is a method named twice, in one entry or two.
 *
 * Every message starts with the JSON path of the field at fault, built
 * while descending ("methodConfig[2].retryPolicy.retryableStatusCodes[1]"),
 * so an operator can fix the file from the log line alone.  Strings from
 * the file that appear in messages are truncated.
 *
 * Layout.  Entries live in one array, their policies in two parallel
 * arrays; names are sorted by (service, method) so that a call's lookup is
 * a binary search (three at most: method, service, default), and so that
 * duplicates are neighbours.  Everything comes from the channel's
 * orpc_mem; jansson allocates with its process-wide hooks and its tree is
 * dropped before returning.
 */
#include "service_config.h"

#include <math.h> /* isfinite (a macro: no libm) */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <orpc/status.h>

#include "common/detail.h"
#include "common/mem.h"

typedef struct name_entry {
    char *service;          /* "" for the default entry */
    char *method;           /* "" for every method of |service| */
    size_t config;          /* index into configs */
    size_t at_cfg, at_name; /* where it was written, for messages */
} name_entry;

struct orpc__svc_config {
    orpc_mem mem;
    orpc__method_config *configs;
    orpc__retry_policy *retries;
    orpc__hedging_policy *hedges;
    size_t n_configs;
    name_entry *names; /* sorted by (service, method) */
    size_t n_names;
    int has_throttling;
    int max_milli_tokens;
    int milli_token_ratio;
    orpc__sc_lb_policy lb;
};

typedef struct parse {
    orpc__svc_config *sc;
    orpc_error_detail *detail;
} parse;

/* Paths are built in buffers of this size; a longer one is cut short. */
#define PATH_MAX_LEN 160
/* Bytes of a string from the file quoted in a message. */
#define QUOTE_MAX 48

/* |at|.|field| into |out|, cut to fit: a long path still names its end's
 * parents, and the message still says what is wrong. */
static void path_join(char out[PATH_MAX_LEN], const char *at, const char *field)
{
    int n = snprintf(out, PATH_MAX_LEN, "%s.%s", at, field);
    if (n < 0)
        out[0] = '\0';
}

static int fail(parse *p, const char *fmt, ...) ORPC_PRINTF(2, 3);

static int fail(parse *p, const char *fmt, ...)
{
    char msg[ORPC_ERROR_DETAIL_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return orpc__detail_set(p->detail, ORPC_ECONFIG, "%s", msg);
}

static int no_memory(parse *p)
{
    return orpc__detail_set(p->detail, ORPC_ENOMEM,
                            "out of memory reading the service config");
}

/* |obj|'s member |key|, NULL when absent or null. */
static json_t *member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v == NULL || json_is_null(v) ? NULL : v;
}

/* ---------------------------------------------------------------------- */
/* Values                                                                  */

/*
 * A proto3 JSON Duration: "-"? digits ("." 1-9 digits)? "s".  0 with the
 * value in |*ns| (saturated at INT64_MAX; a negative value is returned as
 * such), -1 when it does not parse, -2 beyond the protobuf range
 * (315576000000 s).
 */
static int parse_duration(const char *s, int64_t *ns)
{
    const char *p = s;
    int neg = *p == '-';
    if (neg)
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    uint64_t secs = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (++digits > 12)
            return -2;
        secs = secs * 10 + (uint64_t)(*p++ - '0');
    }
    if (secs > 315576000000ull)
        return -2;
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        while (*p >= '0' && *p <= '9' && n < 9) {
            frac = frac * 10 + (*p++ - '0');
            n++;
        }
        if (n == 0 || (*p >= '0' && *p <= '9'))
            return -1;
        for (; n < 9; n++)
            frac *= 10;
    }
    if (p[0] != 's' || p[1] != '\0')
        return -1;
    int64_t v;
    if (secs > (uint64_t)(INT64_MAX / 1000000000) - 1)
        v = INT64_MAX;
    else
        v = (int64_t)secs * 1000000000 + frac;
    *ns = neg ? -v : v;
    return 0;
}

/* A Duration field: 0 with |*ns| set; > 0 when absent. */
static int get_duration(parse *p, json_t *obj, const char *at, const char *key,
                        int positive, int64_t *ns)
{
    json_t *v = member(obj, key);
    if (v == NULL)
        return 1;
    int rc = json_is_string(v) ? parse_duration(json_string_value(v), ns) : -1;
    if (rc == -1)
        return fail(p,
                    "%s.%s: must be a duration string in seconds, such as "
                    "\"1.5s\"",
                    at, key);
    if (rc == -2)
        return fail(p, "%s.%s: out of range", at, key);
    if (*ns < 0 || (positive && *ns == 0))
        return fail(p, "%s.%s: must be %s", at, key,
                    positive ? "greater than 0" : "0 or more");
    return 0;
}

/* A uint32 field (a JSON integer, or a string of digits as proto3 JSON
 * allows): 0 with |*out| set; > 0 when absent. */
static int get_uint32(parse *p, json_t *obj, const char *at, const char *key,
                      uint32_t *out)
{
    json_t *v = member(obj, key);
    if (v == NULL)
        return 1;
    int ok = 0;
    uint64_t x = 0;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        ok = i >= 0 && (uint64_t)i <= UINT32_MAX;
        x = ok ? (uint64_t)i : 0;
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        ok = d >= 0 && d <= UINT32_MAX && (double)(uint64_t)d == d;
        x = ok ? (uint64_t)d : 0;
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        ok = *s != '\0' && strlen(s) <= 10;
        for (const char *c = s; ok && *c; c++) {
            ok = *c >= '0' && *c <= '9';
            x = x * 10 + (uint64_t)(*c - '0');
        }
        ok = ok && x <= UINT32_MAX;
    }
    if (!ok)
        return fail(p, "%s.%s: must be an integer from 0 to 4294967295", at,
                    key);
    *out = (uint32_t)x;
    return 0;
}

/* A float field (a JSON number, or a numeric string): 0 with |*out| set;
 * > 0 when absent.  NaN and infinities are refused. */
static int get_number(parse *p, json_t *obj, const char *at, const char *key,
                      double *out)
{
    json_t *v = member(obj, key);
    if (v == NULL)
        return 1;
    int ok = 0;
    double d = 0;
    if (json_is_number(v)) {
        d = json_number_value(v);
        ok = 1;
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        d = strtod(s, &end);
        ok = *s != '\0' && *end == '\0' && isfinite(d);
        if (ok) {
            /* digits, sign, '.', exponent only: no "inf", "nan", hex */
            for (const char *c = s; *c && ok; c++)
                ok = (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' ||
                     *c == '+' || *c == 'e' || *c == 'E';
        }
    }
    if (!ok || !isfinite(d))
        return fail(p, "%s.%s: must be a number", at, key);
    *out = d;
    return 0;
}

/* A list of status codes (names such as "UNAVAILABLE", or numbers 0-16)
 * as a bit set; an empty list is an error when |required|. */
static int get_codes(parse *p, json_t *obj, const char *at, const char *key,
                     int required, uint32_t *out)
{
    json_t *v = member(obj, key);
    *out = 0;
    if (v == NULL) {
        if (required)
            return fail(p, "%s.%s: required", at, key);
        return 0;
    }
    if (!json_is_array(v))
        return fail(p, "%s.%s: must be a list of status codes", at, key);
    if (required && json_array_size(v) == 0)
        return fail(p, "%s.%s: must not be empty", at, key);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        orpc_code code;
        if (json_is_integer(e)) {
            json_int_t n = json_integer_value(e);
            if (n < 0 || n >= ORPC_CODE_COUNT)
                return fail(p, "%s.%s[%zu]: no status code %lld", at, key, i,
                            (long long)n);
            code = (orpc_code)n;
        } else if (json_is_string(e)) {
            if (orpc_code_parse(&code, json_string_value(e)) != 0)
                return fail(p, "%s.%s[%zu]: unknown status code \"%.*s\"", at,
                            key, i, QUOTE_MAX, json_string_value(e));
        } else {
            return fail(p,
                        "%s.%s[%zu]: must be a status code name (\"UNAVAILABLE"
                        "\") or number",
                        at, key, i);
        }
        *out |= 1u << code;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* methodConfig                                                            */

/* A policy's maxAttempts: required, at least 2, capped at 5 as gRPC does. */
static int get_max_attempts(parse *p, json_t *v, const char *here, int *out)
{
    uint32_t n;
    int rc = get_uint32(p, v, here, "maxAttempts", &n);
    if (rc < 0)
        return rc;
    if (rc > 0)
        return fail(p, "%s.maxAttempts: required", here);
    if (n < 2)
        return fail(p, "%s.maxAttempts: must be at least 2", here);
    *out = n > ORPC__RETRY_MAX_ATTEMPTS ? ORPC__RETRY_MAX_ATTEMPTS : (int)n;
    return 0;
}

static int parse_retry(parse *p, json_t *v, const char *at,
                       orpc__retry_policy *r)
{
    char here[PATH_MAX_LEN];
    path_join(here, at, "retryPolicy");
    if (!json_is_object(v))
        return fail(p, "%s: must be an object", here);
    int rc = get_max_attempts(p, v, here, &r->max_attempts);
    if (rc != 0)
        return rc;
    static const char *const backoffs[] = {"initialBackoff", "maxBackoff"};
    int64_t *dst[] = {&r->initial_backoff_ns, &r->max_backoff_ns};
    for (int i = 0; i < 2; i++) {
        rc = get_duration(p, v, here, backoffs[i], 1, dst[i]);
        if (rc < 0)
            return rc;
        if (rc > 0)
            return fail(p, "%s.%s: required", here, backoffs[i]);
    }
    rc = get_number(p, v, here, "backoffMultiplier", &r->backoff_multiplier);
    if (rc < 0)
        return rc;
    if (rc > 0)
        return fail(p, "%s.backoffMultiplier: required", here);
    if (!(r->backoff_multiplier > 0))
        return fail(p, "%s.backoffMultiplier: must be greater than 0", here);
    return get_codes(p, v, here, "retryableStatusCodes", 1, &r->codes);
}

static int parse_hedging(parse *p, json_t *v, const char *at,
                         orpc__hedging_policy *h)
{
    char here[PATH_MAX_LEN];
    path_join(here, at, "hedgingPolicy");
    if (!json_is_object(v))
        return fail(p, "%s: must be an object", here);
    int rc = get_max_attempts(p, v, here, &h->max_attempts);
    if (rc != 0)
        return rc;
    rc = get_duration(p, v, here, "hedgingDelay", 0, &h->delay_ns);
    if (rc < 0)
        return rc;
    return get_codes(p, v, here, "nonFatalStatusCodes", 0, &h->codes);
}

/* The names of entry |ci|, appended to sc->names (pass 2) or counted in
 * |*count| (pass 1: sc->names is NULL). */
static int parse_names(parse *p, json_t *v, const char *at, size_t ci,
                       size_t *count)
{
    orpc__svc_config *sc = p->sc;
    if (!json_is_array(v))
        return fail(p, "%s.name: must be a list", at);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_object(e))
            return fail(p, "%s.name[%zu]: must be an object", at, i);
        const char *part[2] = {"", ""};
        static const char *const keys[2] = {"service", "method"};
        for (int k = 0; k < 2; k++) {
            json_t *s = member(e, keys[k]);
            if (s == NULL)
                continue;
            if (!json_is_string(s))
                return fail(p, "%s.name[%zu].%s: must be a string", at, i,
                            keys[k]);
            part[k] = json_string_value(s);
        }
        if (part[0][0] == '\0' && part[1][0] != '\0')
            return fail(p, "%s.name[%zu]: method \"%.*s\" without a service",
                        at, i, QUOTE_MAX, part[1]);
        if (sc->names != NULL) {
            name_entry *n = &sc->names[sc->n_names];
            n->service = orpc__mem_strdup(&sc->mem, part[0]);
            n->method = orpc__mem_strdup(&sc->mem, part[1]);
            n->config = ci;
            n->at_cfg = ci;
            n->at_name = i;
            sc->n_names++; /* counted now: freed with the rest on failure */
            if (n->service == NULL || n->method == NULL)
                return no_memory(p);
        }
        (*count)++;
    }
    return 0;
}

static int parse_method_config(parse *p, json_t *v, size_t ci)
{
    orpc__svc_config *sc = p->sc;
    orpc__method_config *mc = &sc->configs[ci];
    char at[PATH_MAX_LEN];
    snprintf(at, sizeof at, "methodConfig[%zu]", ci);
    if (!json_is_object(v))
        return fail(p, "%s: must be an object", at);
    mc->wait_for_ready = -1;
    int rc = get_duration(p, v, at, "timeout", 1, &mc->timeout_ns);
    if (rc < 0)
        return rc;
    json_t *w = member(v, "waitForReady");
    if (w != NULL) {
        if (!json_is_boolean(w))
            return fail(p, "%s.waitForReady: must be true or false", at);
        mc->wait_for_ready = json_is_true(w);
    }
    uint32_t n;
    if ((rc = get_uint32(p, v, at, "maxRequestMessageBytes", &n)) < 0)
        return rc;
    if (rc == 0) {
        mc->has_max_request = 1;
        mc->max_request_bytes = n;
    }
    if ((rc = get_uint32(p, v, at, "maxResponseMessageBytes", &n)) < 0)
        return rc;
    if (rc == 0) {
        mc->has_max_response = 1;
        mc->max_response_bytes = n;
    }
    json_t *retry = member(v, "retryPolicy");
    json_t *hedge = member(v, "hedgingPolicy");
    if (retry != NULL && hedge != NULL)
        return fail(p, "%s: retryPolicy and hedgingPolicy cannot both be set",
                    at);
    if (retry != NULL) {
        if ((rc = parse_retry(p, retry, at, &sc->retries[ci])) != 0)
            return rc;
        mc->retry = &sc->retries[ci];
    }
    if (hedge != NULL) {
        if ((rc = parse_hedging(p, hedge, at, &sc->hedges[ci])) != 0)
            return rc;
        mc->hedging = &sc->hedges[ci];
    }
    json_t *names = member(v, "name");
    size_t unused = 0;
    return names == NULL ? 0 : parse_names(p, names, at, ci, &unused);
}

static int name_cmp(const void *a, const void *b)
{
    const name_entry *x = a, *y = b;
    int c = strcmp(x->service, y->service);
    if (c == 0)
        c = strcmp(x->method, y->method);
    if (c != 0)
        return c;
    /* the same name: the one written first sorts first */
    if (x->at_cfg != y->at_cfg)
        return x->at_cfg < y->at_cfg ? -1 : 1;
    return x->at_name < y->at_name ? -1 : x->at_name > y->at_name;
}

static int parse_method_configs(parse *p, json_t *list)
{
    orpc__svc_config *sc = p->sc;
    if (!json_is_array(list))
        return fail(p, "methodConfig: must be a list");
    size_t n = json_array_size(list);
    if (n == 0)
        return 0;
    /* Pass 1 sizes the name array (and checks the names' shapes). */
    size_t names = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(list, i);
        json_t *nm = json_is_object(e) ? member(e, "name") : NULL;
        char at[PATH_MAX_LEN];
        snprintf(at, sizeof at, "methodConfig[%zu]", i);
        int rc = nm == NULL ? 0 : parse_names(p, nm, at, i, &names);
        if (rc != 0)
            return rc;
    }
    sc->configs = orpc__mem_calloc(&sc->mem, n, sizeof(*sc->configs));
    sc->retries = orpc__mem_calloc(&sc->mem, n, sizeof(*sc->retries));
    sc->hedges = orpc__mem_calloc(&sc->mem, n, sizeof(*sc->hedges));
    sc->names =
        orpc__mem_calloc(&sc->mem, names ? names : 1, sizeof(*sc->names));
    if (!sc->configs || !sc->retries || !sc->hedges || !sc->names)
        return no_memory(p);
    sc->n_configs = n;
    for (size_t i = 0; i < n; i++) {
        int rc = parse_method_config(p, json_array_get(list, i), i);
        if (rc != 0)
            return rc;
    }
    qsort(sc->names, sc->n_names, sizeof(*sc->names), name_cmp);
    for (size_t i = 1; i < sc->n_names; i++) {
        const name_entry *a = &sc->names[i - 1], *b = &sc->names[i];
        if (strcmp(a->service, b->service) != 0 ||
            strcmp(a->method, b->method) != 0)
            continue;
        const char *what = a->method[0] == '\0' ? "service" : "method";
        if (a->service[0] == '\0')
            return fail(p,
                        "methodConfig[%zu].name[%zu]: duplicate default "
                        "(empty) name (also methodConfig[%zu].name[%zu])",
                        b->at_cfg, b->at_name, a->at_cfg, a->at_name);
        return fail(p,
                    "methodConfig[%zu].name[%zu]: duplicate %s \"%.*s%s%.*s\" "
                    "(also methodConfig[%zu].name[%zu])",
                    b->at_cfg, b->at_name, what, QUOTE_MAX, b->service,
                    b->method[0] ? "/" : "", QUOTE_MAX, b->method, a->at_cfg,
                    a->at_name);
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* retryThrottling, load balancing                                         */

static int parse_throttling(parse *p, json_t *v)
{
    orpc__svc_config *sc = p->sc;
    if (!json_is_object(v))
        return fail(p, "retryThrottling: must be an object");
    uint32_t max;
    int rc = get_uint32(p, v, "retryThrottling", "maxTokens", &max);
    if (rc < 0)
        return rc;
    if (rc > 0)
        return fail(p, "retryThrottling.maxTokens: required");
    if (max < 1 || max > 1000)
        return fail(p, "retryThrottling.maxTokens: must be from 1 to 1000");
    double ratio;
    rc = get_number(p, v, "retryThrottling", "tokenRatio", &ratio);
    if (rc < 0)
        return rc;
    if (rc > 0)
        return fail(p, "retryThrottling.tokenRatio: required");
    if (!(ratio > 0))
        return fail(p, "retryThrottling.tokenRatio: must be greater than 0");
    /* Three decimals are kept (gRFC A6), as milli-tokens. */
    double milli =
        ratio > 1000 ? 1000000 : (double)(int64_t)(ratio * 1000 + 1e-6);
    if (milli < 1)
        return fail(p, "retryThrottling.tokenRatio: must be at least 0.001 "
                       "(three decimals are kept)");
    sc->has_throttling = 1;
    sc->max_milli_tokens = (int)max * 1000;
    sc->milli_token_ratio = milli > 1000000 ? 1000000 : (int)milli;
    return 0;
}

static orpc__sc_lb_policy lb_known(const char *name)
{
    if (strcmp(name, "pick_first") == 0)
        return ORPC__SC_LB_PICK_FIRST;
    if (strcmp(name, "round_robin") == 0)
        return ORPC__SC_LB_ROUND_ROBIN;
    return ORPC__SC_LB_UNSET;
}

static int parse_lb_config(parse *p, json_t *v)
{
    if (!json_is_array(v))
        return fail(p, "loadBalancingConfig: must be a list");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_object(e) || json_object_size(e) != 1)
            return fail(p,
                        "loadBalancingConfig[%zu]: must be an object with "
                        "one policy name, such as {\"round_robin\": {}}",
                        i);
        const char *name = json_object_iter_key(json_object_iter(e));
        json_t *cfg = json_object_iter_value(json_object_iter(e));
        if (!json_is_object(cfg))
            return fail(p, "loadBalancingConfig[%zu].%.*s: must be an object",
                        i, QUOTE_MAX, name);
        orpc__sc_lb_policy lb = lb_known(name);
        if (lb == ORPC__SC_LB_UNSET)
            continue; /* gRPC: the first policy the client knows wins */
        json_t *shuffle = member(cfg, "shuffleAddressList");
        if (lb == ORPC__SC_LB_PICK_FIRST && shuffle != NULL &&
            !json_is_boolean(shuffle))
            return fail(p,
                        "loadBalancingConfig[%zu].pick_first."
                        "shuffleAddressList: must be true or false",
                        i);
        p->sc->lb = lb;
        return 0;
    }
    return fail(p, "loadBalancingConfig: no policy orpc supports (pick_first, "
                   "round_robin)");
}

static int parse_lb_policy(parse *p, json_t *v)
{
    if (!json_is_string(v))
        return fail(p, "loadBalancingPolicy: must be a string");
    char low[32];
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    if (n < sizeof low) {
        for (size_t i = 0; i <= n; i++)
            low[i] =
                (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
        p->sc->lb = lb_known(low);
    }
    if (p->sc->lb == ORPC__SC_LB_UNSET)
        return fail(p,
                    "loadBalancingPolicy: unknown policy \"%.*s\" (orpc "
                    "supports pick_first and round_robin)",
                    QUOTE_MAX, s);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* API                                                                     */

static int parse_root(parse *p, json_t *root)
{
    if (!json_is_object(root))
        return fail(p, "the service config must be a JSON object");
    json_t *v;
    int rc;
    if ((v = member(root, "methodConfig")) != NULL &&
        (rc = parse_method_configs(p, v)) != 0)
        return rc;
    if ((v = member(root, "retryThrottling")) != NULL &&
        (rc = parse_throttling(p, v)) != 0)
        return rc;
    if ((v = member(root, "loadBalancingConfig")) != NULL)
        return parse_lb_config(p, v);
    if ((v = member(root, "loadBalancingPolicy")) != NULL)
        return parse_lb_policy(p, v);
    return 0;
}

int orpc__svc_config_parse(orpc__svc_config **out, const char *json, size_t len,
                           const orpc_mem *mem, orpc_error_detail *detail)
{
    if (out == NULL || json == NULL)
        return orpc__detail_set(detail, ORPC_EINVAL,
                                "orpc__svc_config_parse: NULL argument");
    *out = NULL;
    if (len > ORPC__SVC_CONFIG_MAX_BYTES)
        return orpc__detail_set(detail, ORPC_ECONFIG, "larger than %d bytes",
                                ORPC__SVC_CONFIG_MAX_BYTES);
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return orpc__detail_set(detail, ORPC_ECONFIG, "line %d column %d: %s",
                                jerr.line, jerr.column, jerr.text);
    orpc__svc_config *sc = orpc__mem_calloc(mem, 1, sizeof(*sc));
    if (sc == NULL) {
        json_decref(root);
        return orpc__detail_set(detail, ORPC_ENOMEM,
                                "out of memory reading the service config");
    }
    orpc__mem_copy(&sc->mem, mem);
    parse p = {sc, detail};
    int rc = parse_root(&p, root);
    json_decref(root);
    if (rc != 0) {
        orpc__svc_config_free(sc);
        return rc;
    }
    *out = sc;
    return 0;
}

void orpc__svc_config_free(orpc__svc_config *sc)
{
    if (sc == NULL)
        return;
    orpc_mem mem = sc->mem;
    for (size_t i = 0; i < sc->n_names; i++) {
        orpc__mem_free(&mem, sc->names[i].service);
        orpc__mem_free(&mem, sc->names[i].method);
    }
    orpc__mem_free(&mem, sc->names);
    orpc__mem_free(&mem, sc->configs);
    orpc__mem_free(&mem, sc->retries);
    orpc__mem_free(&mem, sc->hedges);
    orpc__mem_free(&mem, sc);
}

/* The entry named (|svc| of |svc_len| bytes, |method|), or NULL. */
static const name_entry *find(const orpc__svc_config *sc, const char *svc,
                              size_t svc_len, const char *method)
{
    size_t lo = 0, hi = sc->n_names;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const name_entry *n = &sc->names[mid];
        int c = strncmp(n->service, svc, svc_len);
        if (c == 0 && n->service[svc_len] != '\0')
            c = 1; /* n->service is longer */
        if (c == 0)
            c = strcmp(n->method, method);
        if (c == 0)
            return n;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const orpc__method_config *orpc__svc_config_method(const orpc__svc_config *sc,
                                                   const char *path)
{
    if (sc == NULL || sc->n_names == 0 || path == NULL)
        return NULL;
    const char *svc = path[0] == '/' ? path + 1 : path;
    const char *slash = strrchr(svc, '/');
    const name_entry *n = NULL;
    if (slash != NULL && slash > svc) {
        size_t svc_len = (size_t)(slash - svc);
        n = find(sc, svc, svc_len, slash + 1);
        if (n == NULL)
            n = find(sc, svc, svc_len, "");
    }
    if (n == NULL)
        n = find(sc, "", 0, "");
    return n ? &sc->configs[n->config] : NULL;
}

int orpc__svc_config_throttling(const orpc__svc_config *sc,
                                int *max_milli_tokens, int *milli_token_ratio)
{
    if (sc == NULL || !sc->has_throttling)
        return 0;
    *max_milli_tokens = sc->max_milli_tokens;
    *milli_token_ratio = sc->milli_token_ratio;
    return 1;
}

orpc__sc_lb_policy orpc__svc_config_lb(const orpc__svc_config *sc)
{
    return sc ? sc->lb : ORPC__SC_LB_UNSET;
}
