/*
 * observe.c — the call-log and trace-context interceptors (orpc/observe.h)
 * and the default chain every channel and server starts from.
 *
 * Design notes:
 * - A log line is built in one stack buffer and written with one write(2)
 *   (or handed to the sink whole), so lines from many threads never
 *   interleave.  Everything a peer controls in it (the status message, the
 *   peer's identity) is escaped and cut to a bound: a hostile peer cannot
 *   forge fields, break a line or grow it.  JSON output is valid UTF-8
 *   (bad bytes become U+FFFD).
 * - Trace ids come from a splitmix64 sequence per interceptor: one atomic
 *   add per id, seeded from getrandom(2).  They need to be unique, not
 *   secret.
 * - The handler's trace reaches the calls it makes through the thread it
 *   runs on (context.c keeps the running handler's context per thread, as
 *   errno is kept) or through orpc_call_opts.parent when the call is made
 *   elsewhere (a deferred call finished from another thread).
 */
#include "intercept.h"
#include "metadata_internal.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include <orpc/error.h>
#include <orpc/observe.h>
#include <orpc/status.h>

#include "common/log.h"

/* ---- W3C traceparent ---------------------------------------------------- */

#define TP_LEN 55 /* "00-" 32 hex "-" 16 hex "-" 2 hex */

static int hexdigits(const uint8_t *p, size_t n, int *all_zero)
{
    *all_zero = 1;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
        if (c != '0')
            *all_zero = 0;
    }
    return 1;
}

/* Whether |v| is a traceparent this version of the spec accepts: version
 * 00 exactly, a later version (not ff) with its first 55 characters in
 * the same shape and, if longer, a '-' after them. */
static int tp_valid(const uint8_t *v, size_t len)
{
    int zero;
    if (len < TP_LEN || !hexdigits(v, 2, &zero) || (v[0] == 'f' && v[1] == 'f'))
        return 0;
    if (v[0] == '0' && v[1] == '0' && len != TP_LEN)
        return 0;
    if (len > TP_LEN && v[TP_LEN] != '-')
        return 0;
    if (v[2] != '-' || v[35] != '-' || v[52] != '-')
        return 0;
    if (!hexdigits(v + 3, 32, &zero) || zero)
        return 0;
    if (!hexdigits(v + 36, 16, &zero) || zero)
        return 0;
    return hexdigits(v + 53, 2, &zero);
}

/* The first traceparent of |md| when it is valid, else NULL. */
static const uint8_t *tp_get(const orpc_metadata *md)
{
    const uint8_t *v;
    size_t len;
    if (md == NULL || orpc_metadata_get(md, "traceparent", &v, &len) != 0)
        return NULL;
    return tp_valid(v, len) ? v : NULL;
}

int orpc_trace_id(const orpc_metadata *md, char out[33])
{
    const uint8_t *v;
    size_t len;
    if (md == NULL || out == NULL)
        return ORPC_EINVAL;
    if (orpc_metadata_get(md, "traceparent", &v, &len) != 0)
        return ORPC_ENOTFOUND;
    if (!tp_valid(v, len))
        return ORPC_EINVAL;
    memcpy(out, v + 3, 32);
    out[32] = '\0';
    return 0;
}

typedef struct trace_ic {
    _Atomic uint64_t seq;
    int start_client_traces;
} trace_ic;

/* The calling thread's splitmix64 sequence: seeded once per thread from
 * the interceptor's shared one (one atomic add), then advanced without
 * touching memory another thread writes — IO threads generating ids at
 * once would otherwise bounce one cache line between cores. */
static _Thread_local uint64_t tl_seq;
static _Thread_local int tl_seeded;

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t next_random(trace_ic *t)
{
    if (!tl_seeded) {
        uint64_t z = atomic_fetch_add_explicit(&t->seq, 0x9e3779b97f4a7c15ull,
                                               memory_order_relaxed);
        tl_seq = mix(z) ^ (uint64_t)(uintptr_t)&tl_seq;
        tl_seeded = 1;
    }
    tl_seq += 0x9e3779b97f4a7c15ull;
    return mix(tl_seq);
}

/* Two hex digits per byte from one table, most significant first. */
static void hex64(char *out, uint64_t v)
{
    static const char pairs[] =
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
        "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
        "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
        "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
        "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
    for (int i = 14; i >= 0; i -= 2, v >>= 8)
        memcpy(out + i, pairs + 2 * (v & 0xff), 2);
}

/* Writes a traceparent: |trace| (32 hex) of the parent, or a new one;
 * a new span id; |flags| (2 hex). */
static void tp_make(trace_ic *t, char out[TP_LEN + 1], const uint8_t *trace,
                    const uint8_t *flags)
{
    memcpy(out, "00-", 3);
    if (trace) {
        memcpy(out + 3, trace, 32);
    } else {
        uint64_t hi = next_random(t), lo = next_random(t);
        if ((hi | lo) == 0)
            lo = 1;
        hex64(out + 3, hi);
        hex64(out + 19, lo);
    }
    out[35] = '-';
    uint64_t span = next_random(t);
    hex64(out + 36, span ? span : 1);
    out[52] = '-';
    memcpy(out + 53, flags ? (const char *)flags : "01", 2);
    out[TP_LEN] = '\0';
}

/* Adds or replaces the call's traceparent (and copies |state|). */
static orpc_code tp_set(orpc_call_info *ci, const char *tp,
                        const uint8_t *state, size_t state_len)
{
    if (ci->md != NULL && *ci->md != NULL) {
        orpc_metadata_remove(*ci->md, "traceparent");
        if (state != NULL)
            orpc_metadata_remove(*ci->md, "tracestate");
    }
    if (ci->md == NULL ||
        (*ci->md == NULL && orpc_metadata_new(ci->md, ci->mem) != 0))
        return ORPC_OK; /* out of memory: the call goes on, untraced */
    /* kept in the call's own storage: the entry costs no allocation (and
     * a valid key and a value made here need no checks) */
    memcpy(ci->trace_entry, "traceparent", 12);
    memcpy(ci->trace_entry + 12, tp, TP_LEN + 1);
    if (orpc__md_add_borrowed(*ci->md, ci->trace_entry,
                              (uint8_t *)ci->trace_entry + 12, TP_LEN) != 0)
        return ORPC_OK;
    if (state != NULL && state_len > 0)
        (void)orpc_call_info_add_metadata(ci, "tracestate", state, state_len);
    return ORPC_OK;
}

static orpc_code trace_start(orpc_call_info *ci, void **slot, const char **why,
                             void *ud)
{
    trace_ic *t = ud;
    char tp[TP_LEN + 1];
    (void)slot;
    (void)why;
    if (tp_get(orpc_call_info_metadata(ci)) != NULL)
        return ORPC_OK; /* arrived with one, or the application set one */
    if (ci->side == ORPC_SIDE_SERVER) {
        tp_make(t, tp, NULL, NULL);
        return tp_set(ci, tp, NULL, 0);
    }
    const uint8_t *parent = tp_get(ci->parent_md);
    if (parent == NULL && !t->start_client_traces)
        return ORPC_OK; /* its server starts the trace */
    const uint8_t *state = NULL;
    size_t state_len = 0;
    if (parent != NULL &&
        orpc_metadata_get(ci->parent_md, "tracestate", &state, &state_len) != 0)
        state = NULL;
    if (state_len > 512) /* W3C: at least 512 bytes must be carried on */
        state = NULL;
    tp_make(t, tp, parent ? parent + 3 : NULL, parent ? parent + 53 : NULL);
    return tp_set(ci, tp, state, state_len);
}

int orpc_trace_interceptor_new(orpc_interceptor **out,
                               const orpc_trace_opts *opts)
{
    if (out == NULL)
        return ORPC_EINVAL;
    trace_ic *t = malloc(sizeof(*t));
    if (t == NULL)
        return ORPC_ENOMEM;
    t->start_client_traces = opts != NULL && opts->start_client_traces;
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)t;
    atomic_init(&t->seq, seed);
    static const orpc_interceptor_ops ops = {.on_start = trace_start,
                                             .destroy = free};
    return orpc_interceptor_new(out, &ops, t);
}

/* ---- call logs ---------------------------------------------------------- */

#define LINE_MAX_BYTES 2048
#define FIELD_MAX 256 /* bytes of one peer-controlled value */

typedef struct line {
    char buf[LINE_MAX_BYTES];
    size_t len;
    int json;
    int first;
} line;

static void put(line *l, const char *s, size_t n)
{
    if (n > sizeof(l->buf) - 1 - l->len)
        n = sizeof(l->buf) - 1 - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at |p| (at most |n| bytes), 0 if
 * none. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t k;
    uint32_t min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        k = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        k = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        k = 4, min = 0x10000;
    else
        return 0;
    if (n < k)
        return 0;
    uint32_t cp = c & (0x7f >> k);
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

/* A quoted, escaped string: JSON's escapes (both formats use them, so a
 * logfmt reader that knows Go's strconv.Unquote reads it back). */
static void put_quoted(line *l, const char *s, size_t n)
{
    char esc[8];
    if (n > FIELD_MAX)
        n = FIELD_MAX;
    put(l, "\"", 1);
    for (size_t i = 0; i < n;) {
        uint8_t c = (uint8_t)s[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(l, esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(l, esc, 6);
            i++;
        } else {
            size_t k = utf8_len((const uint8_t *)s + i, n - i);
            if (k == 0) {
                put(l, "\xef\xbf\xbd", 3); /* U+FFFD */
                i++;
            } else {
                put(l, s + i, k);
                i += k;
            }
        }
    }
    put(l, "\"", 1);
}

/* Whether a logfmt value can go unquoted. */
static int bare(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if ((uint8_t)*s <= ' ' || *s == '"' || *s == '=' || *s == '\\' ||
            (uint8_t)*s >= 0x7f)
            return 0;
    return 1;
}

static void key(line *l, const char *k)
{
    if (l->json) {
        puts_(l, l->first ? "{\"" : ",\"");
        puts_(l, k);
        puts_(l, "\":");
    } else {
        if (!l->first)
            put(l, " ", 1);
        puts_(l, k);
        put(l, "=", 1);
    }
    l->first = 0;
}

static void field_str(line *l, const char *k, const char *v)
{
    if (v == NULL)
        return;
    key(l, k);
    if (!l->json && bare(v) && strlen(v) <= FIELD_MAX)
        puts_(l, v);
    else
        put_quoted(l, v, strlen(v));
}

static void field_num(line *l, const char *k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void field_num(line *l, const char *k, const char *fmt, ...)
{
    char v[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    key(l, k);
    puts_(l, v);
}

typedef struct log_ic {
    orpc_call_log_opts opts;
} log_ic;

static const char *side_name(orpc_call_side s)
{
    return s == ORPC_SIDE_SERVER ? "server" : "client";
}

static const char *served_name(orpc_served_by s)
{
    return s == ORPC_SERVED_LEGACY ? "legacy"
           : s == ORPC_SERVED_GRPC ? "grpc"
                                   : "none";
}

static void log_end(orpc_call_info *ci, void *slot, const orpc_status *st,
                    void *ud)
{
    log_ic *lg = ud;
    (void)slot;
    orpc_log_level lvl = st->code == ORPC_OK ? ORPC_LOG_INFO : ORPC_LOG_WARN;
    if (lvl > lg->opts.level)
        return;
    line l = {.json = lg->opts.format == ORPC_CALL_LOG_JSON, .first = 1};
    uint64_t now = uv_hrtime();
    struct timespec ts;
    struct tm tm;
    char tbuf[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(tbuf + n, sizeof tbuf - n, ".%03ldZ", ts.tv_nsec / 1000000);
    field_str(&l, "ts", tbuf);
    field_str(&l, "level", lvl == ORPC_LOG_INFO ? "info" : "warn");
    field_str(&l, "side", side_name(ci->side));
    field_str(&l, "method", ci->method ? ci->method->path : "?");
    field_str(&l, "peer", ci->peer ? ci->peer : "");
    field_str(&l, "served_by", served_name(ci->served_by));
    field_str(&l, "code", orpc_code_name(st->code));
    field_num(&l, "duration_ms", "%.3f", (double)(now - ci->start_ns) / 1e6);
    uint64_t m[2], b[2];
    orpc_call_info_counts(ci, 0, &m[0], &b[0]);
    orpc_call_info_counts(ci, 1, &m[1], &b[1]);
    field_num(&l, "msgs_in", "%llu", (unsigned long long)m[0]);
    field_num(&l, "msgs_out", "%llu", (unsigned long long)m[1]);
    field_num(&l, "bytes_in", "%llu", (unsigned long long)b[0]);
    field_num(&l, "bytes_out", "%llu", (unsigned long long)b[1]);
    char trace[33];
    if (orpc_trace_id(orpc_call_info_metadata(ci), trace) == 0)
        field_str(&l, "trace_id", trace);
    if (st->code != ORPC_OK && st->message != NULL) {
        key(&l, "error");
        put_quoted(&l, st->message, strlen(st->message));
    }
    if (l.json)
        put(&l, "}", 1);
    l.buf[l.len] = '\0';
    if (lg->opts.sink) {
        lg->opts.sink(lvl, l.buf, l.len, lg->opts.user_data);
        return;
    }
    l.buf[l.len] = '\n'; /* the one byte put() always leaves */
    ssize_t w = write(STDERR_FILENO, l.buf, l.len + 1);
    (void)w; /* a log line that cannot be written is dropped */
}

int orpc_call_log_interceptor_new(orpc_interceptor **out,
                                  const orpc_call_log_opts *opts)
{
    if (out == NULL)
        return ORPC_EINVAL;
    *out = NULL;
    if (opts != NULL && opts->format != ORPC_CALL_LOG_LOGFMT &&
        opts->format != ORPC_CALL_LOG_JSON)
        return ORPC_EINVAL;
    log_ic *lg = calloc(1, sizeof(*lg));
    if (lg == NULL)
        return ORPC_ENOMEM;
    if (opts)
        lg->opts = *opts;
    else
        lg->opts.level = ORPC_LOG_INFO;
    static const orpc_interceptor_ops ops = {.on_end = log_end,
                                             .destroy = free};
    return orpc_interceptor_new(out, &ops, lg);
}

static int env_bool(const char *name, const char *v, int *out,
                    orpc_error_detail *detail)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(v, no[i]) == 0)
            return *out = 0, 0;
    }
    return orpc__fail(detail, NULL, NULL, "call log", ORPC_ECONFIG,
                      "%s=\"%.60s\": expected true or false", name, v);
}

int orpc_call_log_opts_from_env(orpc_call_log_opts *opts, int *enabled,
                                orpc_error_detail *detail)
{
    if (opts == NULL || enabled == NULL)
        return orpc__fail(detail, NULL, NULL, "call log", ORPC_EINVAL,
                          "orpc_call_log_opts_from_env: NULL argument");
    const char *v = getenv("SERVICE_COMM_LOG_ENABLED");
    int on = 1;
    if (v != NULL && *v != '\0' &&
        env_bool("SERVICE_COMM_LOG_ENABLED", v, &on, detail) != 0)
        return ORPC_ECONFIG;
    orpc_log_level lvl = ORPC_LOG_INFO;
    v = getenv("LOG_LEVEL");
    if (v != NULL && *v != '\0') {
        if (strcasecmp(v, "DEBUG") == 0)
            lvl = ORPC_LOG_DEBUG;
        else if (strcasecmp(v, "INFO") == 0)
            lvl = ORPC_LOG_INFO;
        else if (strcasecmp(v, "WARNING") == 0 || strcasecmp(v, "WARN") == 0)
            lvl = ORPC_LOG_WARN;
        else if (strcasecmp(v, "ERROR") == 0 || strcasecmp(v, "CRITICAL") == 0)
            lvl = ORPC_LOG_ERROR;
        else
            return orpc__fail(detail, NULL, NULL, "call log", ORPC_ECONFIG,
                              "LOG_LEVEL=\"%.60s\": expected DEBUG, INFO, "
                              "WARNING, ERROR or CRITICAL",
                              v);
    }
    orpc_call_log_format fmt = ORPC_CALL_LOG_LOGFMT;
    v = getenv("ORPC_CALL_LOG_FORMAT");
    if (v != NULL && *v != '\0') {
        if (strcasecmp(v, "json") == 0)
            fmt = ORPC_CALL_LOG_JSON;
        else if (strcasecmp(v, "logfmt") != 0)
            return orpc__fail(detail, NULL, NULL, "call log", ORPC_ECONFIG,
                              "ORPC_CALL_LOG_FORMAT=\"%.60s\": expected "
                              "logfmt or json",
                              v);
    }
    *enabled = on;
    opts->level = lvl;
    opts->format = fmt;
    return 0;
}

/* ---- default chains ------------------------------------------------------ */

int orpc__chain_build(orpc__chain *out, int no_defaults, orpc_metrics *given,
                      const orpc_mem *mem, orpc_metrics **metrics,
                      orpc_interceptor *const *user, size_t n_user,
                      const char **why)
{
    orpc_interceptor *defaults[2] = {NULL, NULL};
    size_t n = 0;
    /* the defaults' registry: the one given, or one of the object's own */
    if (given != NULL)
        *metrics = orpc_metrics_ref(given);
    else if (!no_defaults && orpc_metrics_new(metrics, mem, NULL) != 0)
        goto oom;
    if (!no_defaults) {
        if (orpc_trace_interceptor_new(&defaults[n], NULL) != 0)
            goto oom;
        n++;
        if (*metrics != NULL) {
            if (orpc_metrics_interceptor_new(&defaults[n], *metrics) != 0)
                goto oom;
            n++;
        }
    }
    int rc = orpc__chain_init(out, defaults, n, user, n_user, why);
    for (size_t i = 0; i < n; i++)
        orpc_interceptor_unref(defaults[i]); /* the chain holds them */
    return rc;
oom:
    for (size_t i = 0; i < n; i++)
        orpc_interceptor_unref(defaults[i]);
    *why = "out of memory creating the default interceptors";
    return ORPC_ENOMEM;
}
