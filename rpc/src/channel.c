/*
 * channel.c — the client's channel object: target parsing, options and
 * TLS, the IO thread it owns, its connectivity state, and a lifetime that
 * lets calls outlive the application's last reference.
 *
 * The rest of the client, by job (each file says more at its top):
 *   subchannel.c   resolve, connect, backoff, keepalive; one connection
 *                  per subchannel for new calls
 *   channel_h2.c   the client's HTTP/2 callbacks: response headers,
 *                  messages (through stream.c), trailers, stream close
 *   call.c         the call object of all four kinds and its API
 *   service_config.c, retry.c
 *                  the service config (opts.service_config) and the
 *                  retries it asks for
 *
 * Design notes:
 * - A channel owns one IO thread.  Calls are created on the caller's thread
 *   and handed to the IO thread through their embedded task; the IO thread
 *   alone touches connections, nghttp2 and timers.  A subchannel stands for
 *   one resolved address and keeps at most one usable connection; the shape
 *   (channel -> subchannels) is where resolution to several addresses and
 *   load balancing go.
 * - orpc_channel_unref() closes connections (their calls end UNAVAILABLE), a
 *   connect in progress and a pending resolution, then stops the thread.
 *   Calls the application still holds keep the memory until finished.
 *
 * Locking theory: ch->lock guards the reference counts, the state and the
 * last peer identity; it is never held while calling nghttp2 or a user
 * callback.
 */
#include "channel_internal.h"
#include "common/detail.h"
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/mem.h"

void orpc__ch_set_state(orpc_channel *ch, orpc_channel_state st)
{
    uv_mutex_lock(&ch->lock);
    if (ch->state != ORPC_CHANNEL_SHUTDOWN)
        ch->state = st;
    uv_mutex_unlock(&ch->lock);
}

void orpc__ch_log(orpc_channel *ch, orpc_log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    orpc__logv(ch->opts.log, ch->opts.log_user_data, "channel", lvl, fmt, ap);
    va_end(ap);
}

/* ====================================================================== */
/* channel                                                                 */
/* ====================================================================== */

/* 0, ORPC_EADDR (not a target) or ORPC_ENOMEM. */
static int parse_target(orpc_channel *ch, const char *target)
{
    const orpc_mem *mem = &ch->mem;
    if (strncmp(target, "unix:", 5) == 0) {
        const char *p = target + 5;
        if (strncmp(p, "//", 2) == 0)
            p += 2;
        if (*p == '\0')
            return ORPC_EADDR;
        ch->unix_path = orpc__mem_strdup(mem, p);
        ch->authority = orpc__mem_strdup(mem, "localhost");
        return ch->unix_path && ch->authority ? 0 : ORPC_ENOMEM;
    }
    if (strncmp(target, "dns:///", 7) == 0)
        target += 7;
    else if (strncmp(target, "dns:", 4) == 0)
        target += 4;
    const char *colon, *host;
    size_t host_len;
    if (target[0] == '[') {
        const char *end = strchr(target, ']');
        if (end == NULL || end[1] != ':')
            return ORPC_EADDR;
        host = target + 1;
        host_len = (size_t)(end - target - 1);
        colon = end + 1;
    } else {
        colon = strrchr(target, ':');
        if (colon == NULL || colon == target)
            return ORPC_EADDR;
        host = target;
        host_len = (size_t)(colon - target);
    }
    char *endp;
    long port = strtol(colon + 1, &endp, 10);
    if (colon[1] == '\0' || *endp != '\0' || port <= 0 || port > 65535)
        return ORPC_EADDR;
    ch->host = orpc__mem_strndup(mem, host, host_len);
    ch->port = orpc__mem_strdup(mem, colon + 1);
    ch->authority = orpc__mem_strdup(mem, target);
    return ch->host && ch->port && ch->authority ? 0 : ORPC_ENOMEM;
}

/* The channel's strings, allocated with its hooks. */
static void free_strings(orpc_channel *ch)
{
    const orpc_mem *mem = &ch->mem;
    orpc__mem_free(mem, ch->host);
    orpc__mem_free(mem, ch->port);
    orpc__mem_free(mem, ch->unix_path);
    orpc__mem_free(mem, ch->authority);
    orpc__mem_free(mem, ch->server_name);
    orpc__mem_free(mem, ch->expected_spiffe);
    orpc__mem_free(mem, ch->user_agent);
    orpc__mem_free(mem, ch->peer_identity);
}

void orpc__ch_io_stop(orpc__io *io, void *ud)
{
    orpc_channel *ch = ud;
    subchannel *sub = &ch->sub;
    (void)io;
    ch->stopping = 1;
    orpc__ch_set_state(ch, ORPC_CHANNEL_SHUTDOWN);
    orpc__sub_fail_waiting(sub, "channel closed");
    orpc__retry_chan_stop(ch);
    if (sub->conn)
        orpc__conn_close(sub->conn, "channel closed");
    /* An attempt under way ends now, not when the kernel gives up on a
     * SYN nobody answers (minutes): closing the socket completes the
     * connect with ECANCELED (orpc__sub_on_connected frees it); a resolution
     * not yet started is cancelled, one running in the thread pool is waited
     * for. */
    if (sub->dialing != NULL) {
        sub->dialing->h.handle.data = sub->dialing;
        uv_close(&sub->dialing->h.handle, orpc__sub_pending_conn_closed);
    }
    if (sub->resolving)
        uv_cancel((uv_req_t *)&sub->gai);
    /* Close every connection still draining too: walk the loop. */
    uv_timer_stop(&sub->connect_timer);
    uv_close((uv_handle_t *)&sub->connect_timer, NULL);
    uv_timer_stop(&sub->backoff_timer);
    uv_close((uv_handle_t *)&sub->backoff_timer, NULL);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    if (h->type == UV_TCP || h->type == UV_NAMED_PIPE) {
        orpc__conn *c = h->data;
        if (c != NULL && &c->h.handle == h && c->session != NULL) {
            orpc__conn_close(c, "channel closed");
            return;
        }
    }
}

static void channel_stop_task(orpc__task *t, void *arg)
{
    orpc_channel *ch = arg;
    (void)t;
    uv_walk(&ch->io.loop, close_walk, NULL);
}

int orpc_channel_new(orpc_channel **out, const char *target,
                     const orpc_channel_opts *opts, const orpc_mem *mem,
                     orpc_error_detail *detail)
{
    char err[200];
    char why[ORPC_ERROR_DETAIL_SIZE];
    orpc_log_fn log = opts ? opts->log : NULL;
    void *log_ud = opts ? opts->log_user_data : NULL;
    if (out == NULL || target == NULL)
        return orpc__fail(detail, log, log_ud, "channel", ORPC_EINVAL,
                          "orpc_channel_new: |out| or |target| is NULL");
    *out = NULL;
    orpc_channel *ch = orpc__mem_calloc(mem, 1, sizeof(*ch));
    if (ch == NULL)
        return orpc__fail(detail, log, log_ud, "channel", ORPC_ENOMEM,
                          "out of memory creating a channel");
    snprintf(why, sizeof why, "out of memory creating a channel");
    if (opts)
        ch->opts = *opts;
    orpc__mem_copy(&ch->mem, mem);
    ch->refs = 1;
    uv_mutex_init(&ch->lock);
    orpc_channel_opts *o = &ch->opts;
    if (o->max_recv_message_size == 0)
        o->max_recv_message_size = ORPC_DEFAULT_MAX_RECV_MESSAGE;
    if (o->max_header_list_size == 0)
        o->max_header_list_size = ORPC_DEFAULT_MAX_HEADER_LIST;
    int rc = parse_target(ch, target);
    if (rc != 0) {
        if (rc == ORPC_EADDR)
            snprintf(why, sizeof why,
                     "target \"%.120s\": not host:port, [v6]:port, "
                     "dns:///host:port or unix:/path",
                     target);
        goto fail;
    }
    rc = ORPC_ENOMEM;
    if (o->authority) {
        orpc__mem_free(&ch->mem, ch->authority);
        ch->authority = orpc__mem_strdup(&ch->mem, o->authority);
        if (ch->authority == NULL)
            goto fail;
    }
    if (o->user_agent) {
        size_t n = strlen(o->user_agent) + 32;
        ch->user_agent = orpc__mem_malloc(&ch->mem, n);
        if (ch->user_agent)
            snprintf(ch->user_agent, n, "%s grpc-c-orpc/%s", o->user_agent,
                     ORPC_VERSION_STRING);
    } else {
        ch->user_agent =
            orpc__mem_strdup(&ch->mem, "grpc-c-orpc/" ORPC_VERSION_STRING);
    }
    if (ch->user_agent == NULL)
        goto fail;
    rc = 0;
    o->authority = NULL;
    o->user_agent = NULL;
    if (o->service_config) {
        orpc_error_detail sd;
        rc = orpc__svc_config_parse(&ch->svc_config, o->service_config,
                                    strlen(o->service_config), &ch->mem, &sd);
        o->service_config = NULL;
        if (rc != 0) {
            snprintf(why, sizeof why, "service_config: %.*s",
                     (int)(sizeof why - 17), sd.message);
            goto fail;
        }
    }
    if (orpc__retry_chan_init(&ch->retry, o, ch->svc_config) != 0) {
        snprintf(why, sizeof why, "cannot create a mutex");
        rc = ORPC_ESYS;
        goto fail;
    }
    ch->retry_ready = 1;
    if (o->tls) {
        ch->is_tls = 1;
        rc = orpc__tls_check_client_target(o->tls, ch->unix_path != NULL, err,
                                           sizeof(err));
        if (rc != 0) {
            snprintf(why, sizeof why, "tls: %s", err);
            goto fail;
        }
        ch->ssl_ctx = orpc__tls_client_ctx(o->tls, err, sizeof(err));
        if (ch->ssl_ctx == NULL) {
            snprintf(why, sizeof why, "tls: %s", err);
            rc = ORPC_ECONFIG;
            goto fail;
        }
        const char *name = o->tls->server_name ? o->tls->server_name : ch->host;
        ch->server_name = orpc__mem_strdup(&ch->mem, name);
        ch->expected_spiffe =
            orpc__mem_strdup(&ch->mem, o->tls->expected_spiffe_id);
        if ((name && !ch->server_name) ||
            (o->tls->expected_spiffe_id && !ch->expected_spiffe)) {
            rc = ORPC_ENOMEM;
            goto fail;
        }
        o->tls = NULL;
    } else if (!o->plaintext) {
        snprintf(why, sizeof why,
                 "tls: no TLS settings for \"%.120s\" and plaintext not asked "
                 "for (set opts.tls, or opts.plaintext for cleartext h2c)",
                 target);
        rc = ORPC_ECONFIG;
        goto fail;
    }
    if (orpc__ch_h2_setup(ch) != 0) {
        rc = ORPC_ENOMEM;
        goto fail;
    }
    if (orpc__io_init(&ch->io, 0, orpc__ch_io_stop, ch) != 0) {
        snprintf(why, sizeof why, "cannot create the IO loop");
        rc = ORPC_ESYS;
        goto fail;
    }
    ch->sub.ch = ch;
    uv_timer_init(&ch->io.loop, &ch->sub.connect_timer);
    ch->sub.connect_timer.data = &ch->sub;
    uv_unref((uv_handle_t *)&ch->sub.connect_timer);
    uv_timer_init(&ch->io.loop, &ch->sub.backoff_timer);
    ch->sub.backoff_timer.data = &ch->sub;
    uv_unref((uv_handle_t *)&ch->sub.backoff_timer);
    ch->sub.rng = (uv_hrtime() ^ (uint64_t)(uintptr_t)ch) | 1;
    orpc__task_init(&ch->connect_task, orpc__ch_connect_task, ch);
    if (orpc__io_start(&ch->io) != 0) {
        orpc__io_close_unstarted(&ch->io);
        orpc__io_destroy(&ch->io);
        snprintf(why, sizeof why, "cannot start the IO thread");
        rc = ORPC_ESYS;
        goto fail_io;
    }
    *out = ch;
    return 0;
fail:
fail_io:
    if (ch->cbs) {
        nghttp2_session_callbacks_del(ch->cbs);
        nghttp2_option_del(ch->h2opt);
    }
    if (ch->ssl_ctx)
        SSL_CTX_free(ch->ssl_ctx);
    free_strings(ch);
    orpc__svc_config_free(ch->svc_config);
    if (ch->retry_ready)
        orpc__retry_chan_destroy(&ch->retry);
    uv_mutex_destroy(&ch->lock);
    orpc_mem m = ch->mem;
    orpc__mem_free(&m, ch);
    return orpc__fail(detail, log, log_ud, "channel", rc, "%s", why);
}

orpc_channel *orpc_channel_ref(orpc_channel *ch)
{
    if (ch == NULL)
        return NULL;
    uv_mutex_lock(&ch->lock);
    ch->refs++;
    uv_mutex_unlock(&ch->lock);
    return ch;
}

void orpc__ch_connect_task(orpc__task *t, void *arg)
{
    orpc_channel *ch = arg;
    subchannel *sub = &ch->sub;
    (void)t;
    if (!ch->stopping && !sub->connecting && sub->conn == NULL &&
        !sub->backing_off)
        orpc__sub_connect(sub);
}

orpc_channel_state orpc_channel_get_state(orpc_channel *ch, int try_to_connect)
{
    if (ch == NULL)
        return ORPC_CHANNEL_SHUTDOWN;
    uv_mutex_lock(&ch->lock);
    orpc_channel_state st = ch->stopped ? ORPC_CHANNEL_SHUTDOWN : ch->state;
    uv_mutex_unlock(&ch->lock);
    if (st == ORPC_CHANNEL_IDLE && try_to_connect)
        orpc__io_post(&ch->io, &ch->connect_task); /* a no-op if queued */
    return st;
}

void orpc_channel_unref(orpc_channel *ch)
{
    if (ch == NULL)
        return;
    uv_mutex_lock(&ch->lock);
    int left = --ch->refs;
    uv_mutex_unlock(&ch->lock);
    if (left > 0)
        return;
    /* Close connections first (their calls complete as UNAVAILABLE), then
     * stop the thread.  Calls the application still holds keep the memory
     * until they are finished. */
    orpc__task t;
    orpc__task_init(&t, channel_stop_task, ch);
    orpc__io_post(&ch->io, &t);
    orpc__io_stop(&ch->io);
    uv_mutex_lock(&ch->lock);
    ch->stopped = 1;
    int last = ch->call_refs == 0;
    uv_mutex_unlock(&ch->lock);
    if (last)
        orpc__ch_destroy(ch);
}

void orpc__ch_destroy(orpc_channel *ch)
{
    orpc__io_destroy(&ch->io);
    nghttp2_session_callbacks_del(ch->cbs);
    nghttp2_option_del(ch->h2opt);
    if (ch->ssl_ctx)
        SSL_CTX_free(ch->ssl_ctx);
    if (ch->sub.addrs)
        uv_freeaddrinfo(ch->sub.addrs);
    free_strings(ch);
    orpc__svc_config_free(ch->svc_config);
    orpc__retry_chan_destroy(&ch->retry);
    uv_mutex_destroy(&ch->lock);
    orpc_mem m = ch->mem;
    orpc__mem_free(&m, ch);
}

int orpc_channel_peer_identity(orpc_channel *ch, char *buf, size_t len)
{
    if (ch == NULL || buf == NULL)
        return ORPC_EINVAL;
    uv_mutex_lock(&ch->lock);
    int rc = 0;
    if (ch->peer_identity == NULL)
        rc = ORPC_ENOTFOUND;
    else if (strlen(ch->peer_identity) >= len)
        rc = ORPC_ETOOBIG;
    else
        strcpy(buf, ch->peer_identity);
    uv_mutex_unlock(&ch->lock);
    return rc;
}
