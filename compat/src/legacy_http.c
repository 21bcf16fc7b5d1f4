/*
 * legacy_http.c — the HTTP/1.1 client the compat layer calls the legacy
 * JSON/HTTP services with: a keep-alive pool per base URL on libcurl's multi
 * interface, and the HTTP status → gRPC status table.
 *
 * Why a worker thread: callers of the compat layer block (a unary call
 * through the router), and one libcurl multi handle shared by all of them
 * keeps one connection pool per service with libcurl's limits
 * (CURLMOPT_MAX_TOTAL_CONNECTIONS, CURLMOPT_MAXCONNECTS) doing the queueing.
 * A multi handle must only be used by one thread at a time
 * (libcurl-thread(3)), so one worker thread owns it and the callers hand
 * their requests over.
 *
 * Design notes.
 *
 * A call (orpc__legacy_http_do) builds its easy handle on its own thread
 * (options, header list, URL: nothing shared), puts a http_req that lives on
 * its stack on |h->queue| and wakes the worker with curl_multi_wakeup(),
 * which libcurl allows from any thread.  It then sleeps on the request's own
 * condition variable until the worker marks it done.  The worker loops:
 * take the queue, curl_multi_add_handle() each, curl_multi_perform(), and
 * for each finished transfer curl_multi_remove_handle() and mark it done;
 * then curl_multi_poll() for at most 1 s (less when a deadline is near).
 * Once a request is done the worker never touches it again, and the caller
 * reads the result (curl_easy_getinfo) and cleans the easy handle up.
 *
 * Deadlines: CURLOPT_TIMEOUT_MS bounds a transfer, but libcurl does not
 * check it while a transfer waits for a free connection (the pool is full),
 * so the worker also keeps a backstop: an active request still running
 * BACKSTOP_GRACE_MS after its deadline is removed and fails with
 * DEADLINE_EXCEEDED.  Every wait of a caller is therefore bounded by its
 * timeout plus the grace (when it gave one); with timeout 0 it waits as long
 * as the transfer lasts, by request.
 *
 * Keep-alive: finished transfers leave their connection in the multi
 * handle's cache (up to max_keepalive idle ones) for the next request.  When
 * a reused connection turns out to have been closed by the server before any
 * byte of the reply came back (the keep-alive race), libcurl sends the
 * request once more on a new connection, a POST too, as HTTP/1.1 pools do.
 *
 * Reply size: the write callback refuses to store more than
 * max_reply_bytes (returning 0 makes libcurl stop with CURLE_WRITE_ERROR),
 * and CURLOPT_MAXFILESIZE_LARGE makes libcurl refuse a larger
 * Content-Length before reading any of the body.  A request's body buffer
 * never exceeds max_reply_bytes + 1 bytes.
 *
 * Locking theory.  |h->mu| protects |h->queue_head/tail|, |h->stopping| and
 * each request's |done| flag (and so the hand-over of the request's result
 * fields, which the worker writes before setting |done| under the mutex and
 * the caller reads after seeing it set under the mutex).  Each request has a
 * condition variable used with |h->mu|.  Everything else of the worker —
 * the multi handle, the list of active requests, their easy handles and
 * buffers while in flight — is touched by the worker thread only, without a
 * lock (callers only call curl_multi_wakeup(), which is meant for that, and
 * _free() cleans the multi handle up after joining the worker).  Nothing is
 * called back into the caller, and no lock is held across libcurl calls, so
 * there is no lock order to respect.
 *
 * libcurl's global initialisation: curl_global_init() is called once per
 * process through pthread_once() (libcurl 7.88 built with threads makes it
 * thread-safe too, but once is enough), and never cleaned up: other users of
 * libcurl in the process may rely on it.  That once-flag and its result are
 * the only global state here.
 *
 * Secrets: status messages name the method, the base URL and the path
 * (never the query, a header or a body); libcurl's error buffer holds
 * connection-level reasons only.
 */
#include "legacy_http.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include <orpc/error.h>

/* How long after its deadline the worker aborts a transfer libcurl has not
 * ended itself. */
#define BACKSTOP_GRACE_MS 50
/* Longest sleep of the worker in curl_multi_poll(). */
#define WORKER_MAX_WAIT_MS 1000
/* Longest status message built from a reply's "detail". */
#define DETAIL_MAX 1024
/* Most validation items rendered in a message. */
#define DETAIL_MAX_ITEMS 8
/* Initial reply buffer. */
#define REPLY_INITIAL_CAP 16384

/* ---------------------------------------------------------------------- */
/* libcurl's global state                                                  */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---------------------------------------------------------------------- */
/* Types                                                                   */

typedef struct http_req {
    struct http_req *next;                /* in h->queue (under h->mu) */
    struct http_req *act_prev, *act_next; /* worker's active list */
    CURL *easy;
    pthread_cond_t cv;
    int done;            /* under h->mu */
    CURLcode result;     /* worker, before done */
    int backstop;        /* worker: aborted at the deadline */
    int64_t deadline_ms; /* monotonic; 0: none */
    /* The reply body; the worker's while in flight. */
    char *buf;
    size_t len, cap, limit;
    int over_limit, oom;
    char errbuf[CURL_ERROR_SIZE];
} http_req;

struct orpc__legacy_http {
    char *base_url; /* without a trailing '/' */
    long max_connections;
    long max_keepalive;
    int64_t connect_timeout_ms;
    size_t max_reply_bytes;
    char *ca_file;
    char *ua_header; /* "User-Agent: ..." */

    CURLM *multi;
    pthread_t worker;

    pthread_mutex_t mu;
    http_req *queue_head, *queue_tail; /* mu */
    int stopping;                      /* mu */

    /* The worker's own. */
    http_req *active;
    int64_t next_check_ms; /* earliest backstop among |active|; INT64_MAX */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------- */
/* The worker                                                              */

static void finish(orpc__legacy_http *h, http_req *r, CURLcode result)
{
    pthread_mutex_lock(&h->mu);
    r->result = result;
    r->done = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&h->mu);
    /* |r| may be gone from here on. */
}

static void active_unlink(orpc__legacy_http *h, http_req *r)
{
    if (r->act_prev != NULL) {
        r->act_prev->act_next = r->act_next;
    } else {
        h->active = r->act_next;
    }
    if (r->act_next != NULL) {
        r->act_next->act_prev = r->act_prev;
    }
    r->act_prev = r->act_next = NULL;
}

static void retire(orpc__legacy_http *h, http_req *r, CURLcode result)
{
    curl_multi_remove_handle(h->multi, r->easy);
    active_unlink(h, r);
    finish(h, r, result);
}

static void worker_add(orpc__legacy_http *h, http_req *r)
{
    if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
        finish(h, r, CURLE_OUT_OF_MEMORY);
        return;
    }
    r->act_prev = NULL;
    r->act_next = h->active;
    if (h->active != NULL) {
        h->active->act_prev = r;
    }
    h->active = r;
    if (r->deadline_ms > 0 &&
        r->deadline_ms + BACKSTOP_GRACE_MS < h->next_check_ms) {
        h->next_check_ms = r->deadline_ms + BACKSTOP_GRACE_MS;
    }
}

/* Ends the transfers past their deadline plus the grace and recomputes the
 * next time to look. */
static void backstop(orpc__legacy_http *h, int64_t now)
{
    int64_t next = INT64_MAX;
    http_req *r = h->active;
    while (r != NULL) {
        http_req *nx = r->act_next;
        if (r->deadline_ms > 0) {
            int64_t due = r->deadline_ms + BACKSTOP_GRACE_MS;
            if (now >= due) {
                r->backstop = 1;
                retire(h, r, CURLE_OPERATION_TIMEDOUT);
            } else if (due < next) {
                next = due;
            }
        }
        r = nx;
    }
    h->next_check_ms = next;
}

static void *worker_main(void *arg)
{
    orpc__legacy_http *h = arg;
    for (;;) {
        pthread_mutex_lock(&h->mu);
        http_req *q = h->queue_head;
        h->queue_head = h->queue_tail = NULL;
        int stop = h->stopping;
        pthread_mutex_unlock(&h->mu);

        while (q != NULL) {
            http_req *nx = q->next;
            q->next = NULL;
            if (stop) {
                finish(h, q, CURLE_ABORTED_BY_CALLBACK);
            } else {
                worker_add(h, q);
            }
            q = nx;
        }
        if (stop) {
            break;
        }

        int running = 0;
        curl_multi_perform(h->multi, &running);
        int left = 0;
        CURLMsg *m;
        while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE) {
                continue;
            }
            char *priv = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
            http_req *r = (http_req *)(void *)priv;
            CURLcode rc = m->data.result; /* |m| dies with the removal */
            if (r != NULL) {
                retire(h, r, rc);
            }
        }

        int64_t now = now_ms();
        if (now >= h->next_check_ms) {
            backstop(h, now);
        }
        int wait = WORKER_MAX_WAIT_MS;
        if (h->next_check_ms != INT64_MAX) {
            int64_t d = h->next_check_ms - now;
            wait = d < 0 ? 0 : d < wait ? (int)d : wait;
        }
        curl_multi_poll(h->multi, NULL, 0, wait, NULL);
    }
    /* Being freed: no caller should be waiting any more, but end whatever
     * is left all the same. */
    while (h->active != NULL) {
        retire(h, h->active, CURLE_ABORTED_BY_CALLBACK);
    }
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Creation                                                                */

/* 0 when |url| is an http(s) URL with a host and no credentials. */
static int check_base_url(const char *url)
{
    if (strncasecmp(url, "http://", 7) != 0 &&
        strncasecmp(url, "https://", 8) != 0) {
        return ORPC_ECONFIG;
    }
    for (const unsigned char *p = (const unsigned char *)url; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '?' || *p == '#') {
            return ORPC_ECONFIG;
        }
    }
    CURLU *u = curl_url();
    if (u == NULL) {
        return ORPC_ENOMEM;
    }
    int rc = 0;
    char *part = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        rc = ORPC_ECONFIG;
    } else if (curl_url_get(u, CURLUPART_HOST, &part, 0) != CURLUE_OK ||
               part == NULL || part[0] == '\0') {
        rc = ORPC_ECONFIG;
    } else {
        curl_free(part);
        part = NULL;
        if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK) {
            rc = ORPC_ECONFIG; /* credentials never travel in a URL */
        }
    }
    curl_free(part);
    curl_url_cleanup(u);
    return rc;
}

static int valid_header_value(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
            return 0;
        }
    }
    return 1;
}

int orpc__legacy_http_new(orpc__legacy_http **out, const char *base_url,
                          const orpc__http_opts *o)
{
    if (out == NULL) {
        return ORPC_EINVAL;
    }
    *out = NULL;
    if (base_url == NULL) {
        return ORPC_EINVAL;
    }
    orpc__http_opts zero;
    memset(&zero, 0, sizeof(zero));
    if (o == NULL) {
        o = &zero;
    }
    if (o->max_connections < 0 || o->max_keepalive < 0 ||
        o->connect_timeout_ms < 0 ||
        (o->user_agent != NULL &&
         (o->user_agent[0] == '\0' || !valid_header_value(o->user_agent)))) {
        return ORPC_ECONFIG;
    }
    if (o->ca_file != NULL && access(o->ca_file, R_OK) != 0) {
        return ORPC_ECONFIG;
    }
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        return ORPC_ESYS;
    }
    int rc = check_base_url(base_url);
    if (rc != 0) {
        return rc;
    }

    orpc__legacy_http *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return ORPC_ENOMEM;
    }
    h->max_connections = o->max_connections > 0
                             ? o->max_connections
                             : ORPC__HTTP_DEFAULT_MAX_CONNECTIONS;
    h->max_keepalive = o->max_keepalive > 0 ? o->max_keepalive
                                            : ORPC__HTTP_DEFAULT_MAX_KEEPALIVE;
    h->connect_timeout_ms = o->connect_timeout_ms > 0
                                ? o->connect_timeout_ms
                                : ORPC__HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
    h->max_reply_bytes = o->max_reply_bytes > 0
                             ? o->max_reply_bytes
                             : ORPC__HTTP_DEFAULT_MAX_REPLY_BYTES;
    if (h->max_reply_bytes > SIZE_MAX / 4) { /* room for buf growth math */
        h->max_reply_bytes = SIZE_MAX / 4;
    }
    h->next_check_ms = INT64_MAX;

    const char *ua =
        o->user_agent != NULL ? o->user_agent : ORPC__HTTP_DEFAULT_USER_AGENT;
    size_t ualen = strlen("User-Agent: ") + strlen(ua) + 1;
    h->ua_header = malloc(ualen);
    h->base_url = strdup(base_url);
    h->ca_file = o->ca_file != NULL ? strdup(o->ca_file) : NULL;
    if (h->ua_header == NULL || h->base_url == NULL ||
        (o->ca_file != NULL && h->ca_file == NULL)) {
        rc = ORPC_ENOMEM;
        goto fail;
    }
    snprintf(h->ua_header, ualen, "User-Agent: %s", ua);
    size_t bl = strlen(h->base_url);
    while (bl > 0 && h->base_url[bl - 1] == '/') {
        h->base_url[--bl] = '\0';
    }

    h->multi = curl_multi_init();
    if (h->multi == NULL) {
        rc = ORPC_ENOMEM;
        goto fail;
    }
    if (curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                          h->max_connections) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, h->max_keepalive) !=
            CURLM_OK) {
        rc = ORPC_ESYS;
        goto fail;
    }
    if (pthread_mutex_init(&h->mu, NULL) != 0) {
        rc = ORPC_ESYS;
        goto fail;
    }
    /* The worker runs with every signal blocked: signals belong to the
     * application's threads, and a stray SIGPIPE cannot kill the process
     * from here. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int prc = pthread_create(&h->worker, NULL, worker_main, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc != 0) {
        pthread_mutex_destroy(&h->mu);
        rc = ORPC_ESYS;
        goto fail;
    }
    *out = h;
    return 0;

fail:
    if (h->multi != NULL) {
        curl_multi_cleanup(h->multi);
    }
    free(h->ua_header);
    free(h->base_url);
    free(h->ca_file);
    free(h);
    return rc;
}

void orpc__legacy_http_free(orpc__legacy_http *h)
{
    if (h == NULL) {
        return;
    }
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    pthread_mutex_unlock(&h->mu);
    curl_multi_wakeup(h->multi);
    pthread_join(h->worker, NULL);
    curl_multi_cleanup(h->multi);
    pthread_mutex_destroy(&h->mu);
    free(h->ua_header);
    free(h->base_url);
    free(h->ca_file);
    free(h);
}

void orpc__http_reply_clear(orpc__http_reply *r)
{
    if (r == NULL) {
        return;
    }
    free(r->body);
    free(r->content_type);
    memset(r, 0, sizeof(*r));
}

/* ---------------------------------------------------------------------- */
/* One request                                                             */

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    http_req *r = ud;
    size_t n = size * nmemb; /* |size| is always 1 */
    if (n > r->limit - r->len) {
        r->over_limit = 1;
        return 0; /* CURLE_WRITE_ERROR: stop reading */
    }
    size_t need = r->len + n + 1; /* <= limit + 1 */
    if (need > r->cap) {
        size_t want = r->cap > 0 ? r->cap * 2 : REPLY_INITIAL_CAP;
        if (want < need) {
            want = need;
        }
        if (want > r->limit + 1) {
            want = r->limit + 1;
        }
        char *nb = realloc(r->buf, want);
        if (nb == NULL) {
            r->oom = 1;
            return 0;
        }
        r->buf = nb;
        r->cap = want;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    return n;
}

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

static int valid_method(const char *m)
{
    size_t n = 0;
    for (; m[n]; n++) {
        if (!is_tchar((unsigned char)m[n]) || n >= 32) {
            return 0;
        }
    }
    return n > 0;
}

static int valid_path(const char *p)
{
    if (p[0] != '/') {
        return 0;
    }
    for (const unsigned char *q = (const unsigned char *)p; *q; q++) {
        if (*q <= 0x20 || *q >= 0x7f || *q == '#') {
            return 0;
        }
    }
    return 1;
}

/* Length of the name of header line |s| ("Name: value"), or 0 when |s| is
 * not a header line. */
static size_t header_name_len(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0' && is_tchar((unsigned char)s[n])) {
        n++;
    }
    if (n == 0 || s[n] != ':' || !valid_header_value(s + n + 1)) {
        return 0;
    }
    return n;
}

static int has_header(const char *const *headers, size_t n, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < n; i++) {
        if (strncasecmp(headers[i], name, nl) == 0 && headers[i][nl] == ':') {
            return 1;
        }
    }
    return 0;
}

/* "GET http://host:port/path" (the query left out), for messages. */
static void describe(char *out, size_t outlen, const orpc__legacy_http *h,
                     const char *method, const char *path)
{
    size_t pl = strcspn(path, "?");
    if (pl > 200) {
        pl = 200;
    }
    snprintf(out, outlen, "%s %s%.*s", method, h->base_url, (int)pl, path);
}

static orpc_status transport_status(const orpc__legacy_http *h,
                                    const http_req *r, const char *what,
                                    int64_t elapsed_ms, int64_t timeout_ms)
{
    CURLcode c = r->result;
    const char *why = r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror(c);
    switch (c) {
    case CURLE_OK:
        return ORPC_STATUS_OK;
    case CURLE_OPERATION_TIMEDOUT:
        /* libcurl says "timed out" for the connect timeout as well: before
         * the call's own deadline it was the connect, a reachability
         * problem. */
        if (r->backstop ||
            (timeout_ms > 0 && elapsed_ms + BACKSTOP_GRACE_MS >= timeout_ms)) {
            return orpc_status_errorf(ORPC_DEADLINE_EXCEEDED,
                                      "legacy %s: deadline of %lld ms exceeded",
                                      what, (long long)timeout_ms);
        }
        return orpc_status_errorf(ORPC_UNAVAILABLE, "legacy %s: %s", what, why);
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
        if (r->oom) {
            return orpc_status_errorf(ORPC_RESOURCE_EXHAUSTED,
                                      "legacy %s: out of memory for the reply",
                                      what);
        }
        if (r->over_limit || c == CURLE_FILESIZE_EXCEEDED) {
            return orpc_status_errorf(
                ORPC_RESOURCE_EXHAUSTED,
                "legacy %s: reply larger than the limit of %zu bytes", what,
                h->max_reply_bytes);
        }
        return orpc_status_errorf(ORPC_INTERNAL, "legacy %s: %s", what, why);
    case CURLE_OUT_OF_MEMORY:
        return orpc_status_errorf(ORPC_RESOURCE_EXHAUSTED, "legacy %s: %s",
                                  what, why);
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_AGAIN:
        return orpc_status_errorf(ORPC_UNAVAILABLE, "legacy %s: %s", what, why);
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
        return orpc_status_errorf(ORPC_UNAVAILABLE, "legacy %s: TLS: %s", what,
                                  why);
    case CURLE_ABORTED_BY_CALLBACK:
        return orpc_status_errorf(
            ORPC_CANCELLED, "legacy %s: the client is shutting down", what);
    case CURLE_URL_MALFORMAT:
        return orpc_status_errorf(ORPC_INVALID_ARGUMENT, "legacy %s: %s", what,
                                  why);
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_BAD_CONTENT_ENCODING:
        return orpc_status_errorf(ORPC_INTERNAL, "legacy %s: %s", what, why);
    default:
        return orpc_status_errorf(ORPC_UNKNOWN, "legacy %s: %s (curl %d)", what,
                                  why, (int)c);
    }
}

/* Sets the easy handle's options; CURLE_OK or the first failure. */
static CURLcode setup_easy(const orpc__legacy_http *h, http_req *r,
                           const char *url, struct curl_slist *hdrs,
                           const char *method, const char *body,
                           size_t body_len, int64_t timeout_ms)
{
    CURL *e = r->easy;
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                          \
    do {                                                                       \
        if (rc == CURLE_OK) {                                                  \
            rc = curl_easy_setopt(e, opt, val);                                \
        }                                                                      \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)h->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    SET(CURLOPT_HTTPHEADER, hdrs);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, (void *)r);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->max_reply_bytes);
    SET(CURLOPT_ERRORBUFFER, r->errbuf);
    SET(CURLOPT_PRIVATE, (void *)r);
    if (h->ca_file != NULL) {
        SET(CURLOPT_CAINFO, h->ca_file);
    }
    if (strcmp(method, "GET") == 0 && body == NULL) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0 && body == NULL) {
        SET(CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(method, "POST") == 0) {
            SET(CURLOPT_POST, 1L);
        } else {
            SET(CURLOPT_CUSTOMREQUEST, method);
        }
        if (body != NULL || strcmp(method, "POST") == 0) {
            /* POST without a body still says Content-Length: 0. */
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            SET(CURLOPT_POSTFIELDS, body != NULL ? body : "");
        }
    }
#undef SET
    return rc;
}

orpc_status orpc__legacy_http_do(orpc__legacy_http *h, const char *method,
                                 const char *path_and_query,
                                 const char *const *headers, size_t n_headers,
                                 const char *body, size_t body_len,
                                 int64_t timeout_ms, orpc__http_reply *reply)
{
    if (reply != NULL) {
        memset(reply, 0, sizeof(*reply));
    }
    if (h == NULL || method == NULL || path_and_query == NULL ||
        reply == NULL || (headers == NULL && n_headers > 0) ||
        (body == NULL && body_len > 0) || timeout_ms < 0) {
        return orpc_status_new(ORPC_INVALID_ARGUMENT,
                               "legacy http: invalid argument");
    }
    if (!valid_method(method)) {
        return orpc_status_new(ORPC_INVALID_ARGUMENT,
                               "legacy http: invalid method");
    }
    if (!valid_path(path_and_query)) {
        return orpc_status_new(ORPC_INVALID_ARGUMENT,
                               "legacy http: the path must start with '/' and "
                               "be percent-encoded printable ASCII");
    }
    for (size_t i = 0; i < n_headers; i++) {
        if (headers[i] == NULL || header_name_len(headers[i]) == 0) {
            /* The line itself is not quoted: it may hold a secret. */
            return orpc_status_errorf(ORPC_INVALID_ARGUMENT,
                                      "legacy http: header %zu is not a "
                                      "\"Name: value\" line",
                                      i);
        }
    }

    char what[512];
    describe(what, sizeof(what), h, method, path_and_query);

    orpc_status st = ORPC_STATUS_OK;
    http_req r;
    memset(&r, 0, sizeof(r));
    r.limit = h->max_reply_bytes;
    struct curl_slist *hdrs = NULL;
    size_t blen = strlen(h->base_url), plen = strlen(path_and_query);
    char *url = malloc(blen + plen + 1);
    if (url == NULL) {
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    memcpy(url, h->base_url, blen);
    memcpy(url + blen, path_and_query, plen + 1);

    int oom = 0;
    for (size_t i = 0; i < n_headers && !oom; i++) {
        struct curl_slist *nh = curl_slist_append(hdrs, headers[i]);
        oom = nh == NULL;
        hdrs = nh != NULL ? nh : hdrs;
    }
    const char *extra[2];
    size_t n_extra = 0;
    if (!has_header(headers, n_headers, "User-Agent")) {
        extra[n_extra++] = h->ua_header;
    }
    if (!has_header(headers, n_headers, "Content-Type")) {
        /* "Content-Type:" with no value stops libcurl's form default on a
         * POST without a body. */
        extra[n_extra++] =
            body != NULL ? "Content-Type: application/json" : "Content-Type:";
    }
    for (size_t i = 0; i < n_extra && !oom; i++) {
        struct curl_slist *nh = curl_slist_append(hdrs, extra[i]);
        oom = nh == NULL;
        hdrs = nh != NULL ? nh : hdrs;
    }
    r.easy = oom ? NULL : curl_easy_init();
    if (r.easy == NULL) {
        curl_slist_free_all(hdrs);
        free(url);
        return orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
    }
    CURLcode src =
        setup_easy(h, &r, url, hdrs, method, body, body_len, timeout_ms);
    if (src != CURLE_OK) {
        st = orpc_status_errorf(ORPC_INTERNAL, "legacy %s: %s", what,
                                curl_easy_strerror(src));
        goto out_easy;
    }
    if (pthread_cond_init(&r.cv, NULL) != 0) {
        st = orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of resources");
        goto out_easy;
    }

    int64_t start = now_ms();
    r.deadline_ms = timeout_ms > 0 ? start + timeout_ms : 0;
    pthread_mutex_lock(&h->mu);
    if (h->stopping) {
        pthread_mutex_unlock(&h->mu);
        st = orpc_status_errorf(ORPC_CANCELLED,
                                "legacy %s: the client is shutting down", what);
        goto out_cv;
    }
    if (h->queue_tail != NULL) {
        h->queue_tail->next = &r;
    } else {
        h->queue_head = &r;
    }
    h->queue_tail = &r;
    pthread_mutex_unlock(&h->mu);
    curl_multi_wakeup(h->multi);

    /* Bounded by the transfer: libcurl's timeout or the worker's backstop
     * ends it by |r.deadline_ms| + BACKSTOP_GRACE_MS. */
    pthread_mutex_lock(&h->mu);
    while (!r.done) {
        pthread_cond_wait(&r.cv, &h->mu);
    }
    pthread_mutex_unlock(&h->mu);

    st = transport_status(h, &r, what, now_ms() - start, timeout_ms);
    if (st.code == ORPC_OK) {
        long code = 0;
        char *ct = NULL;
        curl_easy_getinfo(r.easy, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(r.easy, CURLINFO_CONTENT_TYPE, &ct);
        if (r.buf == NULL) {
            r.buf = malloc(1);
        }
        char *ctc = ct != NULL ? strdup(ct) : NULL;
        if (r.buf == NULL || (ct != NULL && ctc == NULL)) {
            free(ctc);
            st = orpc_status_new(ORPC_RESOURCE_EXHAUSTED, "out of memory");
        } else {
            r.buf[r.len] = '\0'; /* cap >= len + 1 */
            reply->status = code;
            reply->body = r.buf;
            reply->len = r.len;
            reply->content_type = ctc;
            reply->grpc_status = 0;
            struct curl_header *gh = NULL;
            if (curl_easy_header(r.easy, "Grpc-Status", 0, CURLH_HEADER, -1,
                                 &gh) == CURLHE_OK &&
                gh != NULL && gh->value != NULL) {
                char *end = NULL;
                long gs = strtol(gh->value, &end, 10);
                if (end != gh->value && *end == '\0' && gs > 0 && gs <= 16)
                    reply->grpc_status = (int)gs;
            }
            r.buf = NULL;
        }
    }

out_cv:
    pthread_cond_destroy(&r.cv);
out_easy:
    curl_easy_cleanup(r.easy);
    curl_slist_free_all(hdrs);
    free(url);
    free(r.buf);
    return st;
}

/* ---------------------------------------------------------------------- */
/* HTTP status → gRPC status                                               */

typedef struct sbuf {
    char s[DETAIL_MAX + 4];
    size_t len;
    int full;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->full) {
        return;
    }
    size_t room = DETAIL_MAX - b->len;
    if (n > room) {
        n = room;
        /* Do not cut a UTF-8 sequence in two. */
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
            n--;
        }
        b->full = 1;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    if (b->full) {
        memcpy(b->s + b->len, "...", 3);
        b->len += 3;
    }
    b->s[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_json(sbuf *b, const json_t *v)
{
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (t != NULL) {
        sb_str(b, t);
        free(t);
    }
}

/* One pydantic error item: "body.payload.subject: Field required". */
static void sb_item(sbuf *b, const json_t *item)
{
    const json_t *loc = json_object_get(item, "loc");
    const json_t *msg = json_object_get(item, "msg");
    if (!json_is_object(item) || !json_is_string(msg)) {
        sb_json(b, item);
        return;
    }
    if (json_is_array(loc) && json_array_size(loc) > 0) {
        size_t i;
        const json_t *part;
        json_array_foreach(loc, i, part)
        {
            if (i > 0) {
                sb_str(b, ".");
            }
            if (json_is_string(part)) {
                sb_add(b, json_string_value(part), json_string_length(part));
            } else {
                sb_json(b, part);
            }
        }
        sb_str(b, ": ");
    }
    sb_add(b, json_string_value(msg), json_string_length(msg));
    const json_t *err = json_object_get(json_object_get(item, "ctx"), "error");
    if (json_is_string(err)) {
        sb_str(b, " (");
        sb_add(b, json_string_value(err), json_string_length(err));
        sb_str(b, ")");
    }
}

static void sb_detail(sbuf *b, const json_t *detail)
{
    if (json_is_string(detail)) {
        sb_add(b, json_string_value(detail), json_string_length(detail));
    } else if (json_is_array(detail)) {
        size_t n = json_array_size(detail);
        for (size_t i = 0; i < n && i < DETAIL_MAX_ITEMS; i++) {
            if (i > 0) {
                sb_str(b, "; ");
            }
            sb_item(b, json_array_get(detail, i));
        }
        if (n > DETAIL_MAX_ITEMS) {
            char more[48];
            snprintf(more, sizeof(more), "; and %zu more",
                     n - DETAIL_MAX_ITEMS);
            sb_str(b, more);
        }
    } else {
        sb_json(b, detail);
    }
}

static orpc_code code_for(long s, int service_json)
{
    if (s >= 200 && s <= 299) {
        return ORPC_OK;
    }
    switch (s) {
    case 400:
    case 422:
        return ORPC_INVALID_ARGUMENT;
    case 401:
        return ORPC_UNAUTHENTICATED;
    case 403:
        return ORPC_PERMISSION_DENIED;
    case 404:
        return service_json ? ORPC_NOT_FOUND : ORPC_UNIMPLEMENTED;
    case 405:
        return ORPC_UNIMPLEMENTED;
    case 408:
        return ORPC_DEADLINE_EXCEEDED;
    case 409:
        return ORPC_ABORTED;
    case 413:
    case 429:
        return ORPC_RESOURCE_EXHAUSTED;
    case 499:
        return ORPC_CANCELLED;
    case 500:
        return ORPC_INTERNAL;
    case 501:
        return ORPC_UNIMPLEMENTED;
    case 502:
    case 503:
        return ORPC_UNAVAILABLE;
    case 504:
        return ORPC_DEADLINE_EXCEEDED;
    default:
        break;
    }
    if (s >= 400 && s <= 499) {
        return ORPC_FAILED_PRECONDITION;
    }
    return ORPC_UNKNOWN; /* other 5xx; 1xx and 3xx */
}

orpc_status orpc__legacy_status(const orpc__http_reply *r)
{
    if (r == NULL) {
        return orpc_status_new(ORPC_INTERNAL, "no legacy reply");
    }
    if (r->status >= 200 && r->status <= 299) {
        return ORPC_STATUS_OK;
    }
    json_t *doc = NULL;
    const json_t *detail = NULL;
    if (r->body != NULL && r->len > 0) {
        json_error_t jerr;
        doc = json_loadb(r->body, r->len, JSON_DECODE_ANY, &jerr);
        if (json_is_object(doc)) {
            detail = json_object_get(doc, "detail");
        }
    }
    orpc_code code = code_for(r->status, detail != NULL);
    /* an orpc gateway names the exact code (serve_codec.c); only an error
     * status with a JSON detail is read that way */
    if (r->status >= 400 && detail != NULL && r->grpc_status > 0 &&
        r->grpc_status <= 16) {
        code = (orpc_code)r->grpc_status;
    }
    sbuf b;
    b.len = 0;
    b.full = 0;
    b.s[0] = '\0';
    if (detail != NULL && !json_is_null(detail)) {
        sb_detail(&b, detail);
    }
    if (b.len == 0) {
        char t[64];
        if (r->status == 404 && detail == NULL) {
            snprintf(t, sizeof(t), "HTTP 404: no such route");
        } else if (r->status >= 300 && r->status <= 399) {
            snprintf(t, sizeof(t), "HTTP %ld (redirects are not followed)",
                     r->status);
        } else {
            snprintf(t, sizeof(t), "HTTP %ld", r->status);
        }
        sb_str(&b, t);
    }
    json_decref(doc);
    return orpc_status_new(code, b.s);
}
