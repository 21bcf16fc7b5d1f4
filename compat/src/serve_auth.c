/*
 * serve_auth.c — bearer tokens on the legacy routes: the Authorization
 * header judged with FastAPI's answers, a verifier's verdict cached, and
 * the default verifier (opsconductor.auth.v1.AuthService/Verify over an
 * orpc channel) with the identity rule.
 *
 * Design notes: liborpc-clients (the generated OpsConductor stubs) links
 * liborpc-compat, so compat cannot link the generated auth client; the
 * two messages Verify needs (VerifyRequest{string token = 1},
 * VerifyResponse{google.protobuf.Struct user = 1}) are described here by
 * hand, wire-compatible with proto/opsconductor/auth/v1/auth.proto, and
 * called through orpc_channel_invoke().
 *
 * The cache is direct-mapped: a token's slot is picked by its SHA-256, so
 * a lookup is one comparison, the table is bounded (1024 slots) and a
 * collision simply evicts.  Only the hash is kept, never the token.
 *
 * Locking theory: one mutex per cache guards the slots and counters; it is
 * held only to copy an identity in or out (no call, no allocation beyond
 * that copy, is made under it).
 */
#include "serve_internal.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <orpc/channel.h>
#include <orpc/error.h>

#include "common/base64.h"
#include "google/protobuf/struct.orpc.h"
#include "google/protobuf/struct.pb-c.h"
#include "json_internal.h"

/* ---- the cache -------------------------------------------------------- */

void orpc__token_cache_init(orpc__token_cache *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
}

void orpc__token_cache_destroy(orpc__token_cache *c)
{
    for (size_t i = 0; i < ORPC__SERVE_CACHE_SLOTS; i++)
        free(c->slots[i].identity);
    pthread_mutex_destroy(&c->mu);
}

/* SHA-256 of the token.  OpenSSL 3's one-shot SHA256() fetches the
 * algorithm on every call (half its cost for a short token): it is
 * fetched once. */
static EVP_MD *g_sha256;
static pthread_once_t g_sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
    g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static void token_hash(const char *token, unsigned char h[32])
{
    unsigned int n = 0;
    pthread_once(&g_sha256_once, fetch_sha256);
    if (g_sha256 == NULL ||
        EVP_Digest(token, strlen(token), h, &n, g_sha256, NULL) != 1 || n != 32)
        SHA256((const unsigned char *)token, strlen(token), h);
}

static size_t slot_of(const unsigned char *h)
{
    return ((size_t)h[0] << 8 | h[1]) % ORPC__SERVE_CACHE_SLOTS;
}

char *orpc__token_cache_get(orpc__token_cache *c, const char *token,
                            int64_t now_ms)
{
    unsigned char h[32];
    char *id = NULL;
    token_hash(token, h);
    pthread_mutex_lock(&c->mu);
    orpc__token_slot *s = &c->slots[slot_of(h)];
    if (s->identity != NULL && memcmp(s->hash, h, 32) == 0) {
        if (s->expires_ms > now_ms) {
            id = strdup(s->identity);
        } else {
            free(s->identity);
            memset(s, 0, sizeof(*s));
        }
    }
    if (id != NULL)
        c->hits++;
    else
        c->misses++;
    pthread_mutex_unlock(&c->mu);
    return id;
}

void orpc__token_cache_put(orpc__token_cache *c, const char *token,
                           const char *identity, int64_t expires_ms)
{
    unsigned char h[32];
    char *copy = strdup(identity);
    if (copy == NULL)
        return;
    token_hash(token, h);
    pthread_mutex_lock(&c->mu);
    orpc__token_slot *s = &c->slots[slot_of(h)];
    char *old = s->identity;
    memcpy(s->hash, h, 32);
    s->identity = copy;
    s->expires_ms = expires_ms;
    pthread_mutex_unlock(&c->mu);
    free(old);
}

int64_t orpc__jwt_exp(const char *token)
{
    const char *d1 = strchr(token, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (d2 == NULL || d2 - d1 - 1 > 8192)
        return -1;
    orpc__buf b = {0};
    int64_t exp = -1;
    if (orpc__base64_decode(&b, d1 + 1, (size_t)(d2 - d1 - 1)) == 0 && b.data) {
        json_error_t je;
        json_t *v = json_loadb((const char *)b.data, b.len, 0, &je);
        json_t *e = v ? json_object_get(v, "exp") : NULL;
        if (json_is_integer(e) && json_integer_value(e) > 0)
            exp = json_integer_value(e);
        else if (json_is_real(e) && json_real_value(e) > 0 &&
                 json_real_value(e) < 9e15)
            exp = (int64_t)json_real_value(e);
        json_decref(v);
    }
    orpc__buf_free(&b);
    return exp;
}

/* ---- identities ------------------------------------------------------- */

char *orpc__identity_from_user_json(const char *user_json, size_t len)
{
    json_error_t je;
    json_t *u = json_loadb(user_json, len, 0, &je);
    char name[256] = "";
    int service = 0;
    if (json_is_object(u)) {
        json_t *sv = json_object_get(u, "service");
        const char *kinds[] = {"type", "kind", "account_type"};
        service = json_is_true(sv);
        for (size_t i = 0; i < 3; i++) {
            json_t *k = json_object_get(u, kinds[i]);
            if (json_is_string(k) &&
                strcasecmp(json_string_value(k), "service") == 0)
                service = 1;
        }
        const char *keys[] = {"username", "name", "id"};
        for (size_t i = 0; i < 3 && !name[0]; i++) {
            json_t *n = json_object_get(u, keys[i]);
            if (json_is_string(n))
                snprintf(name, sizeof(name), "%s", json_string_value(n));
            else if (json_is_integer(n))
                snprintf(name, sizeof(name), "%lld",
                         (long long)json_integer_value(n));
            else if (json_is_real(n) &&
                     orpc__json_is_integral(json_real_value(n)))
                snprintf(name, sizeof(name), "%.0f", json_real_value(n));
        }
    }
    json_decref(u);
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return NULL;
    if (!name[0])
        return NULL;
    size_t n = strlen(name) + 32;
    char *id = malloc(n);
    if (id != NULL)
        snprintf(id, n, "%s:%s", service ? "legacy-service" : "legacy-user",
                 name);
    return id;
}

/* ---- the request's header --------------------------------------------- */

int orpc__serve_authenticate(const orpc__auth *a, const char *authz,
                             char **identity, orpc__serve_err *e)
{
    *identity = NULL;
    memset(e, 0, sizeof(*e));
    e->status = 401;
    e->www_auth = 1;
    /* the FastAPI services' own reading (examples/opsconductor/legacy/
     * legacy_common.py, bearer()): strip, split at the first space, strip
     * the credential */
    const char *ws = " \t\r\n\v\f";
    if (authz == NULL)
        authz = "";
    authz += strspn(authz, ws);
    size_t al = strlen(authz);
    while (al > 0 && strchr(ws, authz[al - 1]) != NULL)
        al--;
    const char *sp = memchr(authz, ' ', al);
    const char *tok = sp ? sp + 1 : authz + al;
    size_t tl = (size_t)(authz + al - tok);
    while (tl > 0 && strchr(ws, *tok) != NULL)
        tok++, tl--;
    if (al == 0 || tl == 0) {
        snprintf(e->detail, sizeof(e->detail), "Not authenticated");
        return -1;
    }
    if (sp - authz != 6 || strncasecmp(authz, "bearer", 6) != 0) {
        snprintf(e->detail, sizeof(e->detail),
                 "Invalid authentication credentials");
        return -1;
    }
    char *token = strndup(tok, tl);
    if (token == NULL) {
        e->status = 500;
        e->www_auth = 0;
        snprintf(e->detail, sizeof(e->detail), "Internal Server Error");
        return -1;
    }
    int64_t now = orpc__serve_now_ms();
    if (a->cache != NULL && a->cache_ms >= 0) {
        *identity = orpc__token_cache_get(a->cache, token, now);
        if (*identity != NULL) {
            free(token);
            return 0;
        }
    }
    if (a->no_block && a->verify != NULL && !a->verify_nonblocking) {
        /* a cache miss the verifier must judge, perhaps by calling the
         * auth service: not on an IO thread (the caller tries again on a
         * worker) */
        free(token);
        memset(e, 0, sizeof(*e));
        return ORPC_EBLOCKING;
    }
    int rc = a->verify ? a->verify(token, identity, a->verify_ud) : ORPC_EINVAL;
    if (rc == 0 && *identity == NULL)
        rc = ORPC_EINVAL;
    if (rc != 0) {
        free(*identity);
        *identity = NULL;
        free(token);
        if (rc == ORPC_EAGAIN) {
            e->status = 503;
            e->www_auth = 0;
            snprintf(e->detail, sizeof(e->detail), "Auth service unavailable");
        } else {
            snprintf(e->detail, sizeof(e->detail), "Invalid or expired token");
        }
        return -1;
    }
    if (a->cache != NULL && a->cache_ms >= 0) {
        int64_t until = now + (a->cache_ms ? a->cache_ms : 30000);
        int64_t exp = orpc__jwt_exp(token);
        if (exp > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t left =
                exp * 1000 - ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
            if (now + left < until)
                until = now + left;
        }
        if (until > now)
            orpc__token_cache_put(a->cache, token, *identity, until);
    }
    free(token);
    return 0;
}

/* ---- the default verifier --------------------------------------------- */

typedef struct verify_request {
    ProtobufCMessage base;
    char *token;
} verify_request;

typedef struct verify_response {
    ProtobufCMessage base;
    Google__Protobuf__Struct *user;
} verify_response;

static void vreq_init(verify_request *m);
static void vresp_init(verify_response *m);

static const ProtobufCFieldDescriptor vreq_fields[1] = {
    {"token", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_STRING, 0,
     offsetof(verify_request, token), NULL, &protobuf_c_empty_string, 0, 0,
     NULL, NULL},
};
static const ProtobufCFieldDescriptor vresp_fields[1] = {
    {"user", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_MESSAGE, 0,
     offsetof(verify_response, user), &google__protobuf__struct__descriptor,
     NULL, 0, 0, NULL, NULL},
};
static const unsigned one_index[] = {0};
static const ProtobufCIntRange one_range[2] = {{1, 0}, {0, 1}};

static const ProtobufCMessageDescriptor vreq_desc = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "opsconductor.auth.v1.VerifyRequest",
    "VerifyRequest",
    "Opsconductor__Auth__V1__VerifyRequest",
    "opsconductor.auth.v1",
    sizeof(verify_request),
    1,
    vreq_fields,
    one_index,
    1,
    one_range,
    (ProtobufCMessageInit)vreq_init,
    NULL,
    NULL,
    NULL};
static const ProtobufCMessageDescriptor vresp_desc = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "opsconductor.auth.v1.VerifyResponse",
    "VerifyResponse",
    "Opsconductor__Auth__V1__VerifyResponse",
    "opsconductor.auth.v1",
    sizeof(verify_response),
    1,
    vresp_fields,
    one_index,
    1,
    one_range,
    (ProtobufCMessageInit)vresp_init,
    NULL,
    NULL,
    NULL};

static void vreq_init(verify_request *m)
{
    memset(m, 0, sizeof(*m));
    m->base.descriptor = &vreq_desc;
    m->token = (char *)protobuf_c_empty_string;
}

static void vresp_init(verify_response *m)
{
    memset(m, 0, sizeof(*m));
    m->base.descriptor = &vresp_desc;
}

static const orpc_field_info vreq_finfo[1] = {{1, "token", NULL, NULL, NULL}};
static const orpc_field_info vresp_finfo[1] = {
    {1, "user", &google__protobuf__struct__orpc_info, NULL, NULL}};
static const orpc_message_info vreq_info = {
    &vreq_desc, "opsconductor.auth.v1.VerifyRequest", 1, vreq_finfo};
static const orpc_message_info vresp_info = {
    &vresp_desc, "opsconductor.auth.v1.VerifyResponse", 1, vresp_finfo};
static const orpc_method_desc verify_method = {
    .name = "Verify",
    .path = "/opsconductor.auth.v1.AuthService/Verify",
    .kind = ORPC_CALL_UNARY,
    .input = &vreq_info,
    .output = &vresp_info,
    .idempotency = ORPC_NO_SIDE_EFFECTS,
};

int orpc__verify_over_channel(const char *token, char **identity, void *ud)
{
    const orpc__verify_ctx *vc = ud;
    verify_request req;
    ProtobufCMessage *resp = NULL;
    *identity = NULL;
    vreq_init(&req);
    req.token = (char *)token;
    orpc_call_opts co = {.timeout_ms =
                             vc->timeout_ms > 0 ? vc->timeout_ms : 5000};
    orpc_status st =
        orpc_channel_invoke(vc->channel, &verify_method, &req.base, &resp, &co);
    int rc = 0;
    if (st.code == ORPC_UNAUTHENTICATED || st.code == ORPC_PERMISSION_DENIED ||
        st.code == ORPC_NOT_FOUND || st.code == ORPC_INVALID_ARGUMENT) {
        rc = ORPC_EINVAL; /* the auth service judged the token bad */
    } else if (st.code != ORPC_OK) {
        rc = ORPC_EAGAIN; /* it could not judge */
    } else {
        const verify_response *vr = (const verify_response *)resp;
        char *text = NULL;
        size_t tl = 0;
        if (vr->user != NULL &&
            orpc_json_encode(&text, &tl, &google__protobuf__struct__orpc_info,
                             &vr->user->base, NULL, NULL) == 0)
            *identity = orpc__identity_from_user_json(text, tl);
        free(text);
        /* a user without a name: the auth service answered nonsense, as
         * the FastAPI services judge it (503, not the token's fault) */
        rc = *identity ? 0 : ORPC_EAGAIN;
    }
    orpc_status_clear(&st);
    if (resp != NULL)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}
