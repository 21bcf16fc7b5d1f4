/*
 * auth.c — opsconductor.auth.v1.AuthService: Login issues opaque bearer
 * tokens for the accounts of an accounts file; Verify checks them and
 * answers the user as the legacy auth service does
 * (`{"username": ..., "service": true}`).
 *
 * Accounts: `name:password` lines (the password is everything after the
 * first ':'), `#` comments; there is no default account, and the service
 * does not start without the file.  Passwords and tokens are secrets:
 * nothing here logs or echoes one.  A password is compared in constant
 * time (SHA-256 of both sides, CRYPTO_memcmp).
 *
 * Identities: the identities file maps accounts to the SPIFFE IDs of the
 * services they belong to (`scheduler-service spiffe://.../scheduler`).
 * On a mutually authenticated connection the caller's certificate says who
 * it is, and Login holds it to that: an account mapped to a SPIFFE ID can
 * only be logged into by that identity, and a caller whose identity is
 * mapped can only log into its own account (PERMISSION_DENIED otherwise).
 * Accounts not in the map (people, tools) log in from anywhere, and so
 * does a caller without a certificate (the legacy JSON path).
 *
 * Design notes.  Tokens: 32 random bytes (RAND_bytes), base64url without
 * padding.  The store keeps SHA-256(token), never the token, in a chained
 * hash table, with the tokens also on a list from oldest to newest.  Every
 * token lives --token-ttl seconds, so the oldest also expires first: when
 * the store is full (--max-tokens) the expired ones are dropped from the
 * old end, then, if still full, the oldest live one.  Expiry is on the
 * monotonic clock; tokens do not survive a restart (callers log in again
 * on the 401/UNAUTHENTICATED, as the legacy token flow does).
 *
 * Legacy routes (POST /login, GET /verify): orpc's gateway answers them
 * from the same handlers; the bearer token of GET /verify is judged here,
 * in process (legacy_verify(): a table lookup, so it runs on the IO thread
 * and no verdict is cached: a token dropped from the table is refused at
 * once).  See the LEGACY SEAM at the end.
 *
 * Locking theory: |lock| guards the token table and list; it is held for
 * table operations only, never across a call into orpc or OpenSSL's RNG.
 * The accounts and identities are read-only once the server starts.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "opsconductor/auth/v1/auth.orpc.h"
#include "svc.h"

enum { NBUCKETS = 4096, MAX_ACCOUNTS = 1024, MAX_FIELD = 1024 };

typedef struct token {
    unsigned char hash[SHA256_DIGEST_LENGTH];
    char *username;
    int64_t expires_ns; /* monotonic */
    struct token *chain;
    struct token *older, *newer;
} token;

typedef struct auth {
    pthread_mutex_t lock;
    token *buckets[NBUCKETS];
    token *oldest, *newest;
    size_t n_tokens;
    size_t n_accounts;
    char **names;
    unsigned char (*pw_hash)[SHA256_DIGEST_LENGTH];
    svc_identities ids;
    int64_t ttl_s;
    size_t max_tokens;
    orpc_metrics *metrics;
    orpc_legacy_serve *gw; /* the legacy routes' gateway */
} auth;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sha256(const void *p, size_t n,
                   unsigned char out[SHA256_DIGEST_LENGTH])
{
    SHA256(p, n, out);
}

static size_t bucket_of(const unsigned char *h)
{
    return ((size_t)h[0] << 8 | h[1]) % NBUCKETS;
}

/* Unlinks |t| from its bucket and the age list and frees it.  Locked. */
static void token_drop(auth *a, token *t)
{
    token **pp = &a->buckets[bucket_of(t->hash)];
    while (*pp != t)
        pp = &(*pp)->chain;
    *pp = t->chain;
    if (t->older)
        t->older->newer = t->newer;
    else
        a->oldest = t->newer;
    if (t->newer)
        t->newer->older = t->older;
    else
        a->newest = t->older;
    a->n_tokens--;
    free(t->username);
    free(t);
}

/* Adds a token of |user| (the hash of its text).  Returns 0 or -1. */
static int token_add(auth *a, const unsigned char *hash, const char *user)
{
    token *t = calloc(1, sizeof(*t));
    char *u = strdup(user);
    if (t == NULL || u == NULL) {
        free(t);
        free(u);
        return -1;
    }
    memcpy(t->hash, hash, sizeof(t->hash));
    t->username = u;
    int64_t now = mono_ns();
    t->expires_ns = now + a->ttl_s * 1000000000;
    pthread_mutex_lock(&a->lock);
    /* the oldest expire first: drop expired ones, then the oldest */
    while (a->oldest != NULL && a->oldest->expires_ns <= now)
        token_drop(a, a->oldest);
    while (a->n_tokens >= a->max_tokens && a->oldest != NULL)
        token_drop(a, a->oldest);
    size_t b = bucket_of(hash);
    t->chain = a->buckets[b];
    a->buckets[b] = t;
    t->older = a->newest;
    if (a->newest)
        a->newest->newer = t;
    else
        a->oldest = t;
    a->newest = t;
    a->n_tokens++;
    pthread_mutex_unlock(&a->lock);
    return 0;
}

/* The account of the token with hash |hash| into |out|, or 0 when none is
 * live. */
static int token_user(auth *a, const unsigned char *hash, char *out, size_t cap)
{
    int found = 0;
    int64_t now = mono_ns();
    pthread_mutex_lock(&a->lock);
    for (token *t = a->buckets[bucket_of(hash)]; t != NULL; t = t->chain) {
        if (CRYPTO_memcmp(t->hash, hash, sizeof(t->hash)) != 0)
            continue;
        if (t->expires_ns <= now) {
            token_drop(a, t);
        } else {
            snprintf(out, cap, "%s", t->username);
            found = 1;
        }
        break;
    }
    pthread_mutex_unlock(&a->lock);
    return found;
}

/* --- handlers ------------------------------------------------------------ */

static orpc_status login(orpc_ctx *ctx,
                         const Opsconductor__Auth__V1__LoginRequest *req,
                         Opsconductor__Auth__V1__LoginResponse *resp,
                         void *user_data)
{
    auth *a = user_data;
    if (req->username[0] == '\0' || req->password[0] == '\0')
        return orpc_status_new(ORPC_INVALID_ARGUMENT,
                               "username and password are required");
    if (strlen(req->username) > MAX_FIELD || strlen(req->password) > MAX_FIELD)
        return orpc_status_new(ORPC_INVALID_ARGUMENT,
                               "username or password too long");
    unsigned char given[SHA256_DIGEST_LENGTH];
    sha256(req->password, strlen(req->password), given);
    const char *account = NULL;
    for (size_t i = 0; i < a->n_accounts; i++) {
        /* every account's hash is compared: the time does not tell which
         * name exists */
        int same_pw = CRYPTO_memcmp(a->pw_hash[i], given, sizeof(given)) == 0;
        if (strcmp(a->names[i], req->username) == 0 && same_pw)
            account = a->names[i];
    }
    OPENSSL_cleanse(given, sizeof(given));
    if (account == NULL) {
        svc_count(a->metrics, "opsconductor_auth_logins_total",
                  "Login calls by outcome", "outcome", "rejected");
        return orpc_status_new(ORPC_UNAUTHENTICATED, "Invalid credentials");
    }
    const char *caller = orpc_ctx_peer_identity(ctx);
    if (caller != NULL) {
        const char *bound = svc_identities_spiffe(&a->ids, account);
        if (bound != NULL && strcmp(bound, caller) != 0) {
            svc_count(a->metrics, "opsconductor_auth_logins_total",
                      "Login calls by outcome", "outcome", "wrong_identity");
            return orpc_status_errorf(ORPC_PERMISSION_DENIED,
                                      "account %s belongs to %s, not to %s",
                                      account, bound, caller);
        }
        for (size_t i = 0; i < a->ids.n; i++) {
            if (strcmp(a->ids.spiffe[i], caller) == 0 &&
                strcmp(a->ids.account[i], account) != 0) {
                svc_count(a->metrics, "opsconductor_auth_logins_total",
                          "Login calls by outcome", "outcome",
                          "wrong_identity");
                return orpc_status_errorf(
                    ORPC_PERMISSION_DENIED,
                    "%s may only log in as its own account %s", caller,
                    a->ids.account[i]);
            }
        }
    }

    unsigned char raw[32], hash[SHA256_DIGEST_LENGTH];
    unsigned char b64[48]; /* 4 * ceil(32 / 3) + NUL = 45 */
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return orpc_status_new(ORPC_INTERNAL, "no random bytes for a token");
    int n = EVP_EncodeBlock(b64, raw, sizeof(raw));
    OPENSSL_cleanse(raw, sizeof(raw));
    /* base64url, unpadded: the token is opaque, and safe in any header */
    while (n > 0 && b64[n - 1] == '=')
        b64[--n] = '\0';
    for (int i = 0; i < n; i++)
        b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    sha256(b64, (size_t)n, hash);
    char *text = orpc_arena_strdup(orpc_ctx_arena(ctx), (const char *)b64);
    OPENSSL_cleanse(b64, sizeof(b64));
    if (text == NULL || token_add(a, hash, account) != 0)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
    svc_count(a->metrics, "opsconductor_auth_logins_total",
              "Login calls by outcome", "outcome", "issued");
    resp->access_token = text;
    resp->_expires_in_case =
        OPSCONDUCTOR__AUTH__V1__LOGIN_RESPONSE___EXPIRES_IN_EXPIRES_IN;
    resp->expires_in = a->ttl_s;
    resp->token_type = "bearer";
    return ORPC_STATUS_OK;
}

static orpc_status verify(orpc_ctx *ctx,
                          const Opsconductor__Auth__V1__VerifyRequest *req,
                          Opsconductor__Auth__V1__VerifyResponse *resp,
                          void *user_data)
{
    auth *a = user_data;
    if (req->token[0] == '\0')
        return orpc_status_new(ORPC_UNAUTHENTICATED, "Not authenticated");
    unsigned char hash[SHA256_DIGEST_LENGTH];
    sha256(req->token, strlen(req->token), hash);
    char user[MAX_FIELD + 1];
    if (!token_user(a, hash, user, sizeof(user)))
        return orpc_status_new(ORPC_UNAUTHENTICATED,
                               "Invalid or expired token");
    /* exactly the legacy h_verify: {"username": ..., "service": true} */
    json_t *u = json_pack("{s:s, s:b}", "username", user, "service", 1);
    if (u == NULL)
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
    int rc = svc_struct(ctx, u, &resp->user);
    json_decref(u);
    return rc == 0 ? ORPC_STATUS_OK : svc_struct_failed(rc);
}

static const Opsconductor__Auth__V1__AuthService_Handlers handlers = {
    .login = login,
    .verify = verify,
};

/* --- life ---------------------------------------------------------------- */

/*
 * The gateway's verifier (orpc_token_verify_fn): the identity of a live
 * token, "legacy-service:<account>", what the default verifier makes of
 * Verify's answer ({"username": ..., "service": true}, service for every
 * account).  Never blocks: a hash and a table lookup.
 */
static int legacy_verify(const char *bearer, char **identity, void *user_data)
{
    auth *a = user_data;
    unsigned char hash[SHA256_DIGEST_LENGTH];
    char user[MAX_FIELD + 1];
    *identity = NULL;
    if (bearer[0] == '\0' || strlen(bearer) > MAX_FIELD)
        return ORPC_EINVAL;
    sha256(bearer, strlen(bearer), hash);
    if (!token_user(a, hash, user, sizeof(user)))
        return ORPC_EINVAL; /* 401 "Invalid or expired token" */
    size_t n = sizeof("legacy-service:") + strlen(user);
    char *id = malloc(n);
    if (id == NULL)
        return ORPC_EAGAIN; /* cannot judge now: 503 */
    snprintf(id, n, "legacy-service:%s", user);
    *identity = id;
    return 0;
}

static void auth_close(void *state)
{
    auth *a = state;
    if (a == NULL)
        return;
    for (token *t = a->oldest, *next; t != NULL; t = next) {
        next = t->newer;
        free(t->username);
        free(t);
    }
    for (size_t i = 0; i < a->n_accounts; i++)
        free(a->names[i]);
    free(a->names);
    if (a->pw_hash != NULL)
        OPENSSL_cleanse(a->pw_hash, MAX_ACCOUNTS * sizeof(*a->pw_hash));
    free(a->pw_hash);
    svc_identities_free(&a->ids);
    orpc_legacy_serve_free(a->gw);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static int load_accounts(auth *a, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "accounts file %s: cannot open it", path);
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0)
        svc_log("warning: accounts file %s is readable by others (chmod 600)",
                path);
    a->names = calloc(MAX_ACCOUNTS, sizeof(char *));
    a->pw_hash = calloc(MAX_ACCOUNTS, sizeof(*a->pw_hash));
    if (a->names == NULL || a->pw_hash == NULL) {
        fclose(f);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char line[2 * MAX_FIELD + 8];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] != '\n' && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            rc = -1;
            break;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        char *colon = strchr(line, ':');
        if (colon == NULL || colon == line || colon[1] == '\0') {
            /* never quote the line: it may hold a password */
            snprintf(err, errlen, "%s:%d: want name:password", path, lineno);
            rc = -1;
        } else if (a->n_accounts == MAX_ACCOUNTS) {
            snprintf(err, errlen, "%s:%d: more than %d accounts", path, lineno,
                     MAX_ACCOUNTS);
            rc = -1;
        } else {
            *colon = '\0';
            for (size_t i = 0; i < a->n_accounts; i++)
                if (a->names[i] != NULL && strcmp(a->names[i], line) == 0)
                    rc = -1;
            if (rc != 0) {
                snprintf(err, errlen, "%s:%d: account %s listed twice", path,
                         lineno, line);
            } else if ((a->names[a->n_accounts] = strdup(line)) == NULL) {
                snprintf(err, errlen, "out of memory");
                rc = -1;
            } else {
                sha256(colon + 1, strlen(colon + 1), a->pw_hash[a->n_accounts]);
                a->n_accounts++;
            }
        }
    }
    OPENSSL_cleanse(line, sizeof(line));
    fclose(f);
    if (rc == 0 && a->n_accounts == 0) {
        snprintf(err, errlen, "accounts file %s has no account", path);
        rc = -1;
    }
    return rc;
}

static int auth_open(void **state, const svc_config *cfg, orpc_metrics *m,
                     char *err, size_t errlen)
{
    *state = NULL;
    if (cfg->accounts == NULL) {
        snprintf(err, errlen,
                 "auth needs --accounts=FILE (name:password lines; there is "
                 "no default account)");
        return -1;
    }
    auth *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&a->lock, NULL);
    a->ttl_s = cfg->token_ttl_s;
    a->max_tokens = (size_t)cfg->max_tokens;
    a->metrics = m;
    if (load_accounts(a, cfg->accounts, err, errlen) != 0 ||
        svc_identities_load(&a->ids, cfg->identities, err, errlen) != 0) {
        auth_close(a);
        return -1;
    }
    orpc_legacy_serve_opts lo = {
        .verify = legacy_verify,
        .verify_user_data = a,
        .verify_nonblocking = 1, /* a table lookup under |lock| */
        .verify_cache_ms = -1,   /* the table is the truth */
    };
    if (orpc_legacy_serve_new(&a->gw, &lo) != 0) {
        snprintf(err, errlen, "out of memory");
        auth_close(a);
        return -1;
    }
    svc_log("%zu accounts, %zu identities, tokens live %llds", a->n_accounts,
            a->ids.n, (long long)a->ttl_s);
    *state = a;
    return 0;
}

static int auth_register(orpc_server *srv, void *state)
{
    return opsconductor__auth__v1__auth_service__server__register(
        srv, &handlers, state);
}

/*
 * ==== LEGACY SEAM (auth) ====
 * The legacy JSON routes, POST /login (legacy_no_auth: no token) and
 * GET /verify (`Authorization: Bearer`), answered from login() and
 * verify() by orpc's gateway, on the gRPC port (HTTP/1.1 by ALPN: the
 * caller's certificate is its identity, as for gRPC) and on
 * --legacy-listen.  Tokens are judged in process (legacy_verify()).  A
 * login carries no identity, which the mutual-TLS server refuses
 * (require_client_cert), so auth is legacy_anonymous: main.c serves its
 * --legacy-listen port from a server of its own, without client
 * certificates or policy, whose only routes are exactly the legacy auth
 * API's (a password for Login, a live token for Verify).
 */
static int auth_install_legacy(orpc_server *srv, void *state)
{
    auth *a = state;
    return orpc_legacy_serve_install(a->gw, srv);
}

const svc_kind svc_auth_kind = {
    .name = "auth",
    .open = auth_open,
    .register_ = auth_register,
    .install_legacy = auth_install_legacy,
    .close = auth_close,
    .legacy_anonymous = 1,
};
