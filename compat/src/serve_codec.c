/*
 * serve_codec.c — what the gateway writes and the Connect requests it
 * reads: legacy-profile responses (the inverse of http_rule.c's
 * orpc__http_decode_response), FastAPI-style error bodies, the NDJSON
 * error line of a failed stream, and the Connect protocol's unary form
 * (https://connectrpc.com/docs/protocol: POST with application/json or
 * application/proto, GET with ?encoding=&message= for NO_SIDE_EFFECTS
 * methods, Connect-Timeout-Ms, headers as metadata, JSON errors).
 */
#include "serve_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <orpc/error.h>

#include "common/base64.h"
#include "json_internal.h"

int64_t orpc__serve_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- legacy ----------------------------------------------------------- */

void orpc__serve_legacy_opts(orpc_json_opts *jo)
{
    memset(jo, 0, sizeof(*jo));
    jo->legacy = 1;
    /* FastAPI's response models write every field, defaults included */
    jo->emit_defaults = 1;
    jo->max_depth = ORPC__SERVE_MAX_DEPTH * 2;
}

static char *dump(json_t *v, size_t *len)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s != NULL && len != NULL)
        *len = strlen(s);
    return s;
}

int orpc__serve_encode_legacy(const orpc_method_desc *m,
                              const orpc_http_rule *rule,
                              const ProtobufCMessage *msg, char **body,
                              size_t *len)
{
    orpc_json_opts jo;
    orpc__serve_legacy_opts(&jo);
    json_t *v = NULL;
    *body = NULL;
    *len = 0;
    if (rule == NULL)
        rule = m->http;
    int rc = orpc__json_encode_value(&v, m->output, msg, &jo, NULL);
    if (rc != 0)
        return rc;
    json_t *out = v;
    if (rule != NULL && rule->response_body != NULL) {
        out = json_object_get(v, rule->response_body);
        if (out == NULL)
            out = json_null();
    }
    /* orpc's own writer, not json_dumps(): a third of the cost, and
     * reals in their shortest exact form, as Python writes them */
    orpc__buf b = {0};
    orpc__json_dump(&b, out);
    json_decref(v);
    *body = orpc__buf_take(&b, len);
    return *body ? 0 : ORPC_ENOMEM;
}

int orpc__serve_http_status(orpc_code code)
{
    /* grpc-gateway's table (orpc_code_to_http); the compat client reads
     * each back to the same code except where HTTP has one status for
     * several codes (400: INVALID_ARGUMENT, FAILED_PRECONDITION,
     * OUT_OF_RANGE; 409: ABORTED, ALREADY_EXISTS; 500: INTERNAL, UNKNOWN,
     * DATA_LOSS), which read back as the first of each. */
    return orpc_code_to_http(code);
}

/* A copy of |s| with bytes that are not UTF-8 replaced by '?'. */
static char *utf8_clean(const char *s)
{
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (c == NULL)
        return NULL;
    memcpy(c, s, n + 1);
    for (size_t i = 0; i < n;) {
        size_t k = 1;
        while (i + k <= n && !orpc__json_utf8_valid(c + i, k) && k < 4)
            k++;
        if (i + k <= n && orpc__json_utf8_valid(c + i, k)) {
            i += k;
        } else {
            c[i] = '?';
            i++;
        }
    }
    return c;
}

static json_t *text_json(const char *s)
{
    json_t *v = json_string(s ? s : "");
    if (v == NULL && s != NULL) {
        char *c = utf8_clean(s);
        v = c ? json_string(c) : NULL;
        free(c);
    }
    return v;
}

char *orpc__serve_detail_json(const char *detail, size_t *len)
{
    json_t *o = json_object();
    json_t *d = text_json(detail);
    if (o == NULL || d == NULL || json_object_set_new(o, "detail", d) != 0) {
        json_decref(o);
        return NULL;
    }
    char *s = dump(o, len);
    json_decref(o);
    return s;
}

char *orpc__serve_stream_error(const orpc_status *st, size_t *len)
{
    json_t *o = json_pack(
        "{s:{s:i,s:s,s:o}}", "error", "code", orpc__serve_http_status(st->code),
        "status", orpc_code_name(st->code), "detail",
        text_json(st->message ? st->message : orpc_code_name(st->code)));
    if (o == NULL)
        return NULL;
    size_t n = 0;
    char *s = dump(o, &n);
    json_decref(o);
    if (s == NULL)
        return NULL;
    char *l = realloc(s, n + 2);
    if (l == NULL) {
        free(s);
        return NULL;
    }
    l[n] = '\n';
    l[n + 1] = '\0';
    *len = n + 1;
    return l;
}

/* ---- Connect ---------------------------------------------------------- */

const char *orpc__connect_code_name(orpc_code code)
{
    static const char *const names[] = {"ok",
                                        "canceled",
                                        "unknown",
                                        "invalid_argument",
                                        "deadline_exceeded",
                                        "not_found",
                                        "already_exists",
                                        "permission_denied",
                                        "resource_exhausted",
                                        "failed_precondition",
                                        "aborted",
                                        "out_of_range",
                                        "unimplemented",
                                        "internal",
                                        "unavailable",
                                        "data_loss",
                                        "unauthenticated"};
    if ((int)code < 0 || (int)code >= (int)(sizeof(names) / sizeof(names[0])))
        return "unknown";
    return names[code];
}

char *orpc__connect_error_json(const orpc_status *st, size_t *len)
{
    json_t *o = json_object();
    orpc_code code = st->code == ORPC_OK ? ORPC_UNKNOWN : st->code;
    if (o == NULL ||
        json_object_set_new(o, "code",
                            json_string(orpc__connect_code_name(code))) != 0) {
        json_decref(o);
        return NULL;
    }
    if (st->message != NULL && st->message[0] != '\0') {
        json_t *m = text_json(st->message);
        if (m == NULL || json_object_set_new(o, "message", m) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    char *s = dump(o, len);
    json_decref(o);
    return s;
}

void orpc__connect_req_clear(orpc__connect_req *r)
{
    if (r->msg != NULL)
        protobuf_c_message_free_unpacked(r->msg, NULL);
    orpc_metadata_free(r->md);
    memset(r, 0, sizeof(*r));
}

int orpc__connect_encode(const orpc_method_desc *m, orpc__connect_codec codec,
                         const ProtobufCMessage *msg, uint8_t **body,
                         size_t *len)
{
    *body = NULL;
    *len = 0;
    if (codec == ORPC__CONNECT_PROTO) {
        size_t n = protobuf_c_message_get_packed_size(msg);
        uint8_t *b = malloc(n ? n : 1);
        if (b == NULL)
            return ORPC_ENOMEM;
        *len = protobuf_c_message_pack(msg, b);
        *body = b;
        return 0;
    }
    char *s = NULL;
    int rc = orpc_json_encode(&s, len, m->output, msg, NULL, NULL);
    *body = (uint8_t *)s;
    return rc;
}

/* Is |name| a header that is not metadata (hop-by-hop, HTTP framing,
 * Connect's own, content negotiation)? */
static int not_metadata(const char *name)
{
    static const char *const skip[] = {"connection",
                                       "keep-alive",
                                       "proxy-connection",
                                       "proxy-authenticate",
                                       "proxy-authorization",
                                       "te",
                                       "trailer",
                                       "transfer-encoding",
                                       "upgrade",
                                       "host",
                                       "expect",
                                       "accept",
                                       "accept-encoding",
                                       "content-length",
                                       "content-type",
                                       "content-encoding",
                                       "user-agent"};
    if (strncasecmp(name, "connect-", 8) == 0 ||
        strncasecmp(name, "content-", 8) == 0 ||
        strncasecmp(name, "grpc-", 5) == 0 || name[0] == ':')
        return 1;
    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        if (strcasecmp(name, skip[i]) == 0)
            return 1;
    return 0;
}

static int headers_to_md(const orpc_metadata *headers, orpc_metadata **out,
                         orpc_status *err)
{
    *out = NULL;
    size_t n = headers ? orpc_metadata_count(headers) : 0;
    if (n == 0)
        return 0;
    orpc_metadata *md = NULL;
    if (orpc_metadata_new(&md, NULL) != 0) {
        *err = orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *k;
        const uint8_t *v;
        size_t vl;
        if (orpc_metadata_at(headers, i, &k, &v, &vl) != 0 || not_metadata(k))
            continue;
        char key[256];
        size_t kl = strlen(k);
        if (kl >= sizeof(key))
            continue;
        for (size_t j = 0; j <= kl; j++)
            key[j] = (char)tolower((unsigned char)k[j]);
        if (!orpc_metadata_key_valid(key))
            continue;
        int rc;
        if (kl > 4 && strcmp(key + kl - 4, "-bin") == 0) {
            orpc__buf b = {0};
            if (orpc__base64_decode(&b, (const char *)v, vl) != 0) {
                orpc__buf_free(&b);
                orpc_metadata_free(md);
                *err = orpc_status_errorf(ORPC_INVALID_ARGUMENT,
                                          "header %s: not base64", key);
                return -1;
            }
            rc = orpc_metadata_add(md, key, b.data ? b.data : (uint8_t *)"",
                                   b.len);
            orpc__buf_free(&b);
        } else {
            rc = orpc_metadata_add(md, key, v, vl);
        }
        if (rc == ORPC_ENOMEM) {
            orpc_metadata_free(md);
            *err = orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
            return -1;
        }
    }
    *out = md;
    return 0;
}

/* The value of query parameter |name| of |q|, decoded into |out|. */
static int query_get(const char *q, const char *name, orpc__buf *out)
{
    size_t nl = strlen(name);
    for (const char *p = q; p && *p;) {
        size_t n = strcspn(p, "&");
        if (n > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            const char *v = p + nl + 1;
            size_t vl = n - nl - 1;
            if (orpc__buf_reserve(out, vl + 1) != 0 || out->data == NULL)
                return ORPC_ENOMEM;
            for (size_t i = 0; i < vl; i++) {
                char c = v[i];
                if (c == '+') {
                    c = ' ';
                } else if (c == '%') {
                    if (i + 2 >= vl)
                        return ORPC_EPARSE;
                    char h[3] = {v[i + 1], v[i + 2], 0};
                    char *end;
                    if (!isxdigit((unsigned char)h[0]) ||
                        !isxdigit((unsigned char)h[1]))
                        return ORPC_EPARSE;
                    c = (char)strtol(h, &end, 16);
                    i += 2;
                }
                out->data[out->len++] = (uint8_t)c;
            }
            out->data[out->len] = 0;
            return 0;
        }
        p += n;
        if (*p == '&')
            p++;
    }
    return ORPC_ENOTFOUND;
}

static int bad(orpc_status *err, orpc_code code, const char *msg)
{
    *err = orpc_status_new(code, msg);
    return -1;
}

int orpc__connect_parse(orpc__serve_method_fn find, void *find_ud,
                        const char *verb, const char *target,
                        const orpc_metadata *headers, orpc__serve_header_fn hdr,
                        void *hdr_ud, const uint8_t *body, size_t len,
                        orpc__connect_req *out, orpc_status *err,
                        int *http_status)
{
    memset(out, 0, sizeof(*out));
    *http_status = 0;
    *err = ORPC_STATUS_OK;
    /* "/pkg.Service/Method": two segments, the first with a dot */
    size_t plen = strcspn(target, "?");
    const char *slash2 = plen > 1 ? memchr(target + 1, '/', plen - 1) : NULL;
    if (target[0] != '/' || slash2 == NULL ||
        memchr(target + 1, '.', (size_t)(slash2 - target - 1)) == NULL ||
        memchr(slash2 + 1, '/', plen - (size_t)(slash2 - target) - 1) != NULL ||
        slash2 + 1 == target + plen || plen > 512)
        return 1;
    char path[513];
    memcpy(path, target, plen);
    path[plen] = '\0';
    const orpc_method_desc *m = find(find_ud, path);
    if (m == NULL) {
        /* Connect's answer to an unknown procedure: 404, unimplemented */
        *err = orpc_status_errorf(ORPC_UNIMPLEMENTED, "no method %s", path);
        *http_status = 404;
        return -1;
    }
    out->m = m;
    if (m->kind != ORPC_CALL_UNARY)
        return bad(err, ORPC_UNIMPLEMENTED,
                   "streaming methods are not served over the Connect "
                   "protocol here: use gRPC");
    int is_get = strcmp(verb, "GET") == 0;
    if (!is_get && strcmp(verb, "POST") != 0) {
        *http_status = 405;
        return bad(err, ORPC_UNIMPLEMENTED, "Connect calls are POST or GET");
    }
    if (is_get && m->idempotency != ORPC_NO_SIDE_EFFECTS) {
        *http_status = 405;
        return bad(err, ORPC_UNIMPLEMENTED,
                   "GET is only for methods without side effects");
    }
    const char *pv = hdr(hdr_ud, "connect-protocol-version");
    if (pv != NULL && strcmp(pv, "1") != 0)
        return bad(err, ORPC_INVALID_ARGUMENT,
                   "connect-protocol-version must be \"1\"");
    const char *tm = hdr(hdr_ud, "connect-timeout-ms");
    if (tm != NULL) {
        size_t tl = strlen(tm);
        if (tl == 0 || tl > 10 || strspn(tm, "0123456789") != tl)
            return bad(err, ORPC_INVALID_ARGUMENT,
                       "connect-timeout-ms must be 1 to 10 digits");
        out->timeout_ms = strtoll(tm, NULL, 10);
        if (out->timeout_ms == 0)
            out->timeout_ms = 1;
    }
    orpc__buf getmsg = {0};
    const uint8_t *data = body;
    size_t dlen = len;
    if (is_get) {
        const char *q = strchr(target, '?');
        orpc__buf enc = {0}, b64 = {0}, comp = {0}, cv = {0};
        q = q ? q + 1 : "";
        if (strlen(q) > ORPC__SERVE_MAX_QUERY) {
            *http_status = 414;
            return bad(err, ORPC_RESOURCE_EXHAUSTED, "query string too long");
        }
        int e1 = query_get(q, "encoding", &enc);
        int e2 = query_get(q, "base64", &b64);
        int e3 = query_get(q, "compression", &comp);
        int e4 = query_get(q, "connect", &cv);
        int e5 = query_get(q, "message", &getmsg);
        int fail = 0;
        const char *why = NULL;
        if (e1 != 0)
            why = "the encoding query parameter is required";
        else if (strcmp((char *)enc.data, "json") == 0)
            out->codec = ORPC__CONNECT_JSON;
        else if (strcmp((char *)enc.data, "proto") == 0)
            out->codec = ORPC__CONNECT_PROTO;
        else
            why = "encoding must be json or proto", fail = 415;
        if (why == NULL && e4 == 0 && strcmp((char *)cv.data, "v1") != 0)
            why = "connect must be v1";
        if (why == NULL && e3 == 0 &&
            strcmp((char *)comp.data, "identity") != 0)
            why = "only identity compression is supported";
        if (why == NULL && (e5 == ORPC_EPARSE || e1 == ORPC_EPARSE))
            why = "bad percent-encoding in the query";
        if (why == NULL && e5 == 0 && e2 == 0 &&
            strcmp((char *)b64.data, "1") == 0) {
            orpc__buf raw = {0};
            if (orpc__base64_decode(&raw, (char *)getmsg.data, getmsg.len) != 0)
                why = "message is not base64";
            orpc__buf_free(&getmsg);
            getmsg = raw;
        }
        orpc__buf_free(&enc);
        orpc__buf_free(&b64);
        orpc__buf_free(&comp);
        orpc__buf_free(&cv);
        if (why != NULL) {
            orpc__buf_free(&getmsg);
            *http_status = fail;
            return bad(err, fail ? ORPC_UNIMPLEMENTED : ORPC_INVALID_ARGUMENT,
                       why);
        }
        data = getmsg.data ? getmsg.data : (const uint8_t *)"";
        dlen = getmsg.len;
    } else {
        const char *ct = hdr(hdr_ud, "content-type");
        size_t n = ct ? strcspn(ct, ";") : 0;
        while (n > 0 && ct[n - 1] == ' ')
            n--;
        if (ct && n == 16 && strncasecmp(ct, "application/json", n) == 0)
            out->codec = ORPC__CONNECT_JSON;
        else if (ct && n == 17 && strncasecmp(ct, "application/proto", n) == 0)
            out->codec = ORPC__CONNECT_PROTO;
        else {
            *http_status = 415;
            return bad(err, ORPC_UNIMPLEMENTED,
                       "content-type must be application/json or "
                       "application/proto");
        }
        const char *ce = hdr(hdr_ud, "content-encoding");
        if (ce != NULL && strcasecmp(ce, "identity") != 0)
            return bad(err, ORPC_UNIMPLEMENTED,
                       "only identity content-encoding is supported");
    }
    int rc;
    if (out->codec == ORPC__CONNECT_JSON) {
        /* connect-go and connect-es discard unknown fields */
        orpc_json_opts jo = {.ignore_unknown = 1,
                             .max_depth = ORPC__SERVE_MAX_DEPTH};
        orpc_error_detail jd = {0};
        /* an empty body is the empty message */
        rc = orpc_json_decode(&out->msg, m->input,
                              dlen ? (const char *)data : "{}", dlen ? dlen : 2,
                              &jo, NULL, &jd);
        if (rc != 0) {
            orpc__buf_free(&getmsg);
            *err =
                rc == ORPC_ENOMEM
                    ? orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory")
                    : orpc_status_errorf(ORPC_INVALID_ARGUMENT,
                                         "cannot decode the request: %s",
                                         jd.message);
            return -1;
        }
    } else {
        out->msg =
            protobuf_c_message_unpack(m->input->descriptor, NULL, dlen, data);
        if (out->msg == NULL) {
            orpc__buf_free(&getmsg);
            return bad(err, ORPC_INVALID_ARGUMENT,
                       "cannot decode the request: not a valid binary "
                       "message");
        }
    }
    orpc__buf_free(&getmsg);
    if (headers_to_md(headers, &out->md, err) != 0) {
        orpc__connect_req_clear(out);
        return -1;
    }
    return 0;
}
