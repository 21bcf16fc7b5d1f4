/*
 * tokens.c — the legacy service-token flow: one bearer token per calling
 * identity, fetched with POST /login, cached until 60 s before it expires,
 * refreshed by a single login however many callers want it, and one
 * refresh-and-retry on a 401 (LEGACY_API.md, "Service tokens").
 *
 * Why: today's Python clients let every concurrent caller with an expired
 * token log in again, and fall back to a shared admin account when none is
 * configured.  Here a login in flight is shared (a single flight, as Go's
 * singleflight), and credentials are mandatory.
 *
 * Design notes.  The cache is a small state machine under |t->mu|:
 *   - |token| NULL or due (now >= refresh_at_ms), no login in flight: the
 *     caller becomes the leader, sets |in_flight|, drops the lock, logs in,
 *     takes the lock again, stores the token (or the error in |last_error|),
 *     counts the flight in |flights_done| and broadcasts |cv|;
 *   - a login in flight: the caller waits on |cv| until |flights_done|
 *     moves, then takes the flight's outcome: the token (even when, with an
 *     expires_in <= 60, it is already due: it is as fresh as tokens get), or
 *     a copy of the error.  A DEADLINE_EXCEEDED of the leader is not shared
 *     with a waiter who still has time: that one loops and may lead;
 *   - |force| with |stale|: the cached token is dropped only while it still
 *     is |stale|, so the callers that got a 401 with the same token cause
 *     one login between them.
 * The loop is bounded (MAX_ROUNDS) and every wait has the caller's deadline.
 *
 * Locking theory.  |t->mu| protects |token|, |refresh_at_ms|, |in_flight|,
 * |flights_done| and |last_error|; |cv| (CLOCK_MONOTONIC) goes with it.
 * The login itself (an HTTP call) runs with no lock held; only the leader
 * touches its own reply.  The credentials are immutable after creation and
 * read without the lock.  orpc__legacy_http has its own locking and is never
 * called with |t->mu| held, so there is no lock order between them.
 *
 * Secrets: the password goes only into the login body, which is built here
 * and wiped after use, like the "Authorization" line of an authed call; the
 * credentials and the cached token are wiped when freed.  (Copies inside
 * libcurl and jansson are out of reach: this is hygiene, not a guarantee.)
 */
#include "tokens.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <orpc/error.h>

/* Most times one orpc__tokens_get() goes round its loop: each round waits
 * for or runs one login. */
#define MAX_ROUNDS 4
/* Longest token accepted from the auth service. */
#define MAX_TOKEN_LEN 8192

struct orpc__tokens {
    orpc__legacy_http *auth;
    char *username;
    char *password;

    pthread_mutex_t mu;
    pthread_cond_t cv;      /* broadcast when a login ends */
    char *token;            /* mu: the cached token, or NULL */
    int64_t refresh_at_ms;  /* mu: monotonic time to fetch a new one */
    int in_flight;          /* mu: a login is running */
    uint64_t flights_done;  /* mu: logins finished so far */
    orpc_status last_error; /* mu: the last login's failure, or OK */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* ---------------------------------------------------------------------- */
/* Creation                                                                */

int orpc__tokens_new(orpc__tokens **out, orpc__legacy_http *auth,
                     const char *username, const char *password)
{
    if (out == NULL) {
        return ORPC_EINVAL;
    }
    *out = NULL;
    if (auth == NULL) {
        return ORPC_EINVAL;
    }
    if (username == NULL || username[0] == '\0' || password == NULL ||
        password[0] == '\0') {
        return ORPC_ECONFIG;
    }
    for (const unsigned char *p = (const unsigned char *)username; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return ORPC_ECONFIG; /* it appears in messages */
        }
    }
    orpc__tokens *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return ORPC_ENOMEM;
    }
    t->auth = auth;
    t->username = strdup(username);
    t->password = strdup(password);
    if (t->username == NULL || t->password == NULL) {
        wipe_free(t->username);
        wipe_free(t->password);
        free(t);
        return ORPC_ENOMEM;
    }
    pthread_condattr_t ca;
    int ok = pthread_condattr_init(&ca) == 0;
    if (ok) {
        ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
             pthread_cond_init(&t->cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (ok && pthread_mutex_init(&t->mu, NULL) != 0) {
        pthread_cond_destroy(&t->cv);
        ok = 0;
    }
    if (!ok) {
        wipe_free(t->username);
        wipe_free(t->password);
        free(t);
        return ORPC_ESYS;
    }
    *out = t;
    return 0;
}

void orpc__tokens_free(orpc__tokens *t)
{
    if (t == NULL) {
        return;
    }
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    wipe_free(t->token);
    wipe_free(t->username);
    wipe_free(t->password);
    orpc_status_clear(&t->last_error);
    free(t);
}

/* ---------------------------------------------------------------------- */
/* The login                                                               */

/* Appends |s| to |out| as the inside of a JSON string; returns the new
 * length.  |out| has room for 6 bytes per input byte. */
static size_t json_escape(char *out, size_t at, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            out[at++] = '\\';
            out[at++] = (char)*p;
        } else if (*p < 0x20) {
            out[at++] = '\\';
            out[at++] = 'u';
            out[at++] = '0';
            out[at++] = '0';
            out[at++] = hex[*p >> 4];
            out[at++] = hex[*p & 15];
        } else {
            out[at++] = (char)*p;
        }
    }
    return at;
}

static orpc_status prefixed(const orpc__tokens *t, orpc_status st)
{
    orpc_status out = orpc_status_errorf(
        st.code, "login for %s: %s", t->username,
        st.message != NULL ? st.message : orpc_code_name((int)st.code));
    orpc_status_clear(&st);
    return out;
}

static int valid_token(const char *s, size_t n)
{
    if (n == 0 || n > MAX_TOKEN_LEN) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e) {
            return 0; /* it goes into a header line */
        }
    }
    return 1;
}

/* POST /login; on OK |*token| (malloc'd) and |*ttl_s|. */
static orpc_status do_login(const orpc__tokens *t, int64_t timeout_ms,
                            char **token, int64_t *ttl_s)
{
    *token = NULL;
    size_t cap = 40 + 6 * (strlen(t->username) + strlen(t->password));
    char *body = malloc(cap);
    if (body == NULL) {
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    size_t n = 0;
    memcpy(body + n, "{\"username\":\"", 13);
    n = json_escape(body, n + 13, t->username);
    memcpy(body + n, "\",\"password\":\"", 14);
    n = json_escape(body, n + 14, t->password);
    memcpy(body + n, "\"}", 3);
    n += 2;

    orpc__http_reply rep;
    orpc_status st = orpc__legacy_http_do(t->auth, "POST", "/login", NULL, 0,
                                          body, n, timeout_ms, &rep);
    explicit_bzero(body, cap);
    free(body);
    if (st.code != ORPC_OK) {
        return prefixed(t, st);
    }
    if (rep.status == 401) {
        st = orpc_status_errorf(ORPC_UNAUTHENTICATED, "login refused for %s",
                                t->username);
        goto out;
    }
    if (rep.status < 200 || rep.status > 299) {
        st = prefixed(t, orpc__legacy_status(&rep));
        goto out;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(rep.body, rep.len, 0, &jerr);
    if (!json_is_object(doc)) {
        st = orpc_status_errorf(ORPC_INTERNAL,
                                "login for %s: the reply is not a JSON object",
                                t->username);
        json_decref(doc);
        goto out;
    }
    const json_t *at = json_object_get(doc, "access_token");
    const json_t *ex = json_object_get(doc, "expires_in");
    if (!json_is_string(at) || json_string_length(at) == 0) {
        /* LEGACY_API.md: no access_token means bad credentials. */
        st = orpc_status_errorf(ORPC_UNAUTHENTICATED, "login refused for %s",
                                t->username);
    } else if (!valid_token(json_string_value(at), json_string_length(at))) {
        st = orpc_status_errorf(ORPC_INTERNAL,
                                "login for %s: the token is not fit for an "
                                "Authorization header",
                                t->username);
    } else {
        int64_t ttl = ORPC__TOKEN_DEFAULT_TTL_S;
        if (json_is_integer(ex)) {
            json_int_t v = json_integer_value(ex);
            ttl = v < 0 ? 0 : v > INT32_MAX ? INT32_MAX : (int64_t)v;
        } else if (json_is_real(ex)) {
            double v = json_real_value(ex);
            ttl = !(v > 0) ? 0 : v > INT32_MAX ? INT32_MAX : (int64_t)v;
        }
        *ttl_s = ttl;
        *token = strdup(json_string_value(at));
        if (*token == NULL) {
            st = orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
        }
    }
    json_decref(doc);
out:
    if (rep.body != NULL) {
        explicit_bzero(rep.body, rep.len);
    }
    orpc__http_reply_clear(&rep);
    return st;
}

/* ---------------------------------------------------------------------- */
/* The cache                                                               */

static void drop_token(orpc__tokens *t)
{
    wipe_free(t->token);
    t->token = NULL;
    t->refresh_at_ms = 0;
}

/* A copy of the cached token into |*out|, with the lock held. */
static orpc_status hand_out(const orpc__tokens *t, char **out)
{
    *out = strdup(t->token);
    return *out != NULL
               ? ORPC_STATUS_OK
               : orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
}

static orpc_status deadline_status(const orpc__tokens *t)
{
    return orpc_status_errorf(ORPC_DEADLINE_EXCEEDED,
                              "deadline exceeded waiting for the token of %s",
                              t->username);
}

orpc_status orpc__tokens_get(orpc__tokens *t, int force, const char *stale,
                             int64_t timeout_ms, char **token)
{
    if (token != NULL) {
        *token = NULL;
    }
    if (t == NULL || token == NULL || timeout_ms < 0) {
        return orpc_status_new(ORPC_INVALID_ARGUMENT,
                               "tokens: invalid argument");
    }
    int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    orpc_status st = ORPC_STATUS_OK;

    pthread_mutex_lock(&t->mu);
    if (force && t->token != NULL &&
        (stale == NULL || strcmp(t->token, stale) == 0)) {
        drop_token(t);
    }
    for (int round = 0; round < MAX_ROUNDS; round++) {
        if (t->token != NULL && now_ms() < t->refresh_at_ms) {
            st = hand_out(t, token);
            goto unlock;
        }
        if (t->in_flight) {
            uint64_t seen = t->flights_done;
            while (t->in_flight && t->flights_done == seen) {
                if (deadline == 0) {
                    pthread_cond_wait(&t->cv, &t->mu);
                    continue;
                }
                struct timespec ts;
                ts.tv_sec = (time_t)(deadline / 1000);
                ts.tv_nsec = (long)(deadline % 1000) * 1000000L;
                int rc = pthread_cond_timedwait(&t->cv, &t->mu, &ts);
                if (rc == ETIMEDOUT && now_ms() >= deadline) {
                    st = deadline_status(t);
                    goto unlock;
                }
            }
            if (t->token != NULL) {
                st = hand_out(t, token); /* the flight's token */
                goto unlock;
            }
            if (t->flights_done == seen) {
                continue; /* cannot happen: the flight ended without news */
            }
            if (t->last_error.code == ORPC_DEADLINE_EXCEEDED &&
                (deadline == 0 || now_ms() < deadline)) {
                continue; /* the leader ran out of its time, not ours */
            }
            if (t->last_error.code == ORPC_OK) {
                continue; /* a forced refresh dropped it already */
            }
            st = orpc_status_copy(&t->last_error);
            goto unlock;
        }

        /* Lead a login. */
        int64_t left = 0;
        if (deadline > 0) {
            left = deadline - now_ms();
            if (left < 1) {
                st = deadline_status(t);
                goto unlock;
            }
        }
        drop_token(t);
        t->in_flight = 1;
        pthread_mutex_unlock(&t->mu);

        char *fresh = NULL;
        int64_t ttl_s = 0;
        st = do_login(t, left, &fresh, &ttl_s);

        pthread_mutex_lock(&t->mu);
        t->in_flight = 0;
        t->flights_done++;
        orpc_status_clear(&t->last_error);
        if (st.code == ORPC_OK) {
            t->token = fresh;
            int64_t keep_s = ttl_s - ORPC__TOKEN_REFRESH_MARGIN_S;
            t->refresh_at_ms = now_ms() + (keep_s > 0 ? keep_s * 1000 : 0);
            st = hand_out(t, token);
        } else {
            t->last_error = orpc_status_copy(&st);
        }
        pthread_cond_broadcast(&t->cv);
        goto unlock;
    }
    st = orpc_status_errorf(ORPC_UNAVAILABLE,
                            "the token of %s kept changing; try again",
                            t->username);
unlock:
    pthread_mutex_unlock(&t->mu);
    return st;
}

/* ---------------------------------------------------------------------- */
/* Authenticated calls                                                     */

static char *bearer_line(const char *token)
{
    static const char prefix[] = "Authorization: Bearer ";
    size_t pl = sizeof(prefix) - 1, tl = strlen(token);
    char *s = malloc(pl + tl + 1);
    if (s != NULL) {
        memcpy(s, prefix, pl);
        memcpy(s + pl, token, tl + 1);
    }
    return s;
}

orpc_status orpc__legacy_call_authed(orpc__legacy_http *h, orpc__tokens *t,
                                     const char *method,
                                     const char *path_and_query,
                                     const char *const *headers,
                                     size_t n_headers, const char *body,
                                     size_t body_len, int64_t timeout_ms,
                                     orpc__http_reply *reply)
{
    if (reply != NULL) {
        memset(reply, 0, sizeof(*reply));
    }
    if (h == NULL || t == NULL || method == NULL || path_and_query == NULL ||
        reply == NULL || (headers == NULL && n_headers > 0) || timeout_ms < 0 ||
        n_headers > SIZE_MAX / sizeof(char *) - 1) {
        return orpc_status_new(ORPC_INVALID_ARGUMENT,
                               "legacy http: invalid argument");
    }
    int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    const char **hv = malloc((n_headers + 1) * sizeof(*hv));
    if (hv == NULL) {
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < n_headers; i++) {
        hv[i] = headers[i];
    }

    char *tok = NULL;
    orpc_status st = orpc__tokens_get(t, 0, NULL, timeout_ms, &tok);
    for (int attempt = 0; st.code == ORPC_OK; attempt++) {
        int64_t left = 0;
        if (deadline > 0) {
            left = deadline - now_ms();
            if (left < 1) {
                st = orpc_status_new(ORPC_DEADLINE_EXCEEDED,
                                     "deadline exceeded before the legacy "
                                     "call");
                break;
            }
        }
        char *line = bearer_line(tok);
        if (line == NULL) {
            st = orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
            break;
        }
        hv[n_headers] = line;
        st = orpc__legacy_http_do(h, method, path_and_query, hv, n_headers + 1,
                                  body, body_len, left, reply);
        wipe_free(line);
        if (st.code != ORPC_OK || reply->status != 401 || attempt > 0) {
            break;
        }
        /* 401: one forced refresh (shared with whoever got a 401 with the
         * same token), then one retry. */
        orpc__http_reply_clear(reply);
        if (deadline > 0) {
            left = deadline - now_ms();
            if (left < 1) {
                st = orpc_status_new(ORPC_DEADLINE_EXCEEDED,
                                     "deadline exceeded before the token "
                                     "refresh");
                break;
            }
        }
        char *fresh = NULL;
        st = orpc__tokens_get(t, 1, tok, left, &fresh);
        wipe_free(tok);
        tok = fresh;
    }
    wipe_free(tok);
    free(hv);
    return st;
}
