/*
 * channel.c — the client's channel object: target parsing, options and
 * TLS, the IO thread it owns, its connectivity state, and a lifetime that
 * lets calls outlive the application's last reference.
 *
 * The rest of the client, by job (each file says more at its top):
 *   resolver.c     target forms, DNS resolution and re-resolution
 *   lb.c           the balancer: pick_first, round_robin, waiting calls,
 *                  the channel's state from its subchannels'
 *   subchannel.c   one address: connect, backoff, keepalive; one
 *                  connection per subchannel for new calls
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
 *   alone touches connections, nghttp2 and timers.  The resolver turns the
 *   target into addresses, the balancer keeps a subchannel per address and
 *   picks one for each call (docs/runtime.md, "resolver → balancer →
 *   subchannel").
 * - orpc_channel_unref() closes connections (their calls end UNAVAILABLE),
 *   connects in progress and a pending resolution, then stops the thread.
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
    int changed = ch->state != ORPC_CHANNEL_SHUTDOWN && ch->state != st;
    int reconnect = changed && st == ORPC_CHANNEL_READY && ch->was_ready;
    if (changed)
        ch->state = st;
    if (st == ORPC_CHANNEL_READY)
        ch->was_ready = 1;
    uv_mutex_unlock(&ch->lock);
    if (changed && ch->counters_attached) {
        orpc__chan_counters_state(&ch->counters, st);
        if (reconnect)
            orpc__chan_counters_reconnect(&ch->counters);
    }
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

int orpc__ch_set_lb_policy(orpc_channel *ch, const char *name, char *why,
                           size_t whylen)
{
    orpc__lb_kind kind;
    if (name == NULL || name[0] == '\0' || strcmp(name, "pick_first") == 0) {
        kind = ORPC__LB_PICK_FIRST;
    } else if (strcmp(name, "round_robin") == 0) {
        kind = ORPC__LB_ROUND_ROBIN;
    } else {
        snprintf(why, whylen,
                 "lb_policy \"%.60s\": not pick_first or round_robin", name);
        return ORPC_ECONFIG;
    }
    if (kind == ch->lb_kind)
        return 0;
    ch->lb_kind = kind;
    ch->pf_selected = NULL; /* pick_first takes the first connected */
    if (orpc__io_on_thread(&ch->io))
        orpc__lb_update(ch);
    return 0;
}

/* The channel's strings, allocated with its hooks. */
static void free_strings(orpc_channel *ch)
{
    const orpc_mem *mem = &ch->mem;
    orpc__res_free(ch);
    orpc__mem_free(mem, ch->authority);
    orpc__mem_free(mem, ch->server_name);
    orpc__mem_free(mem, ch->expected_spiffe);
    orpc__mem_free(mem, ch->user_agent);
    orpc__mem_free(mem, ch->peer_identity);
}

void orpc__ch_io_stop(orpc__io *io, void *ud)
{
    orpc_channel *ch = ud;
    (void)io;
    ch->stopping = 1;
    orpc__ch_set_state(ch, ORPC_CHANNEL_SHUTDOWN);
    orpc__lb_fail_waiting(ch, "channel closed");
    orpc__retry_chan_stop(ch);
    /* Connections close (their calls end UNAVAILABLE), attempts under way
     * are cancelled by closing their sockets, a resolution not yet started
     * is cancelled; connections still draining are closed by
     * channel_stop_task's walk. */
    orpc__lb_stop(ch);
    orpc__res_stop(ch);
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
    char *host = NULL;
    int rc =
        orpc__res_parse(ch, target, &ch->authority, &host, err, sizeof(err));
    if (rc == ORPC_EADDR)
        snprintf(why, sizeof why, "target \"%.100s\": %.120s", target, err);
    if (rc == 0)
        rc = orpc__ch_set_lb_policy(ch, o->lb_policy, why, sizeof(why));
    if (rc != 0)
        goto fail;
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
        /* loadBalancingConfig, unless the options chose a policy */
        orpc__sc_lb_policy lb = orpc__svc_config_lb(ch->svc_config);
        if ((o->lb_policy == NULL || o->lb_policy[0] == '\0') &&
            lb != ORPC__SC_LB_UNSET) {
            rc = orpc__ch_set_lb_policy(
                ch,
                lb == ORPC__SC_LB_ROUND_ROBIN ? "round_robin" : "pick_first",
                why, sizeof(why));
            if (rc != 0)
                goto fail;
        }
    }
    o->lb_policy = NULL;
    if (orpc__retry_chan_init(&ch->retry, o, ch->svc_config) != 0) {
        snprintf(why, sizeof why, "cannot create a mutex");
        rc = ORPC_ESYS;
        goto fail;
    }
    ch->retry_ready = 1;
    ch->target = orpc__mem_strdup(&ch->mem, target);
    if (ch->target == NULL) {
        rc = ORPC_ENOMEM;
        goto fail;
    }
    {
        const char *cwhy = NULL;
        rc = orpc__chain_build(&ch->chain, o->no_default_interceptors,
                               o->metrics, &ch->mem, &ch->metrics,
                               o->interceptors, o->n_interceptors, &cwhy);
        o->metrics = NULL;
        o->interceptors = NULL;
        o->n_interceptors = 0;
        if (rc != 0) {
            snprintf(why, sizeof why, "interceptors: %s", cwhy);
            goto fail;
        }
    }
    if (o->tls) {
        ch->is_tls = 1;
        rc = orpc__tls_check_client_target(
            o->tls, ch->res.kind == ORPC__TARGET_UNIX, err, sizeof(err));
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
        const char *name = o->tls->server_name ? o->tls->server_name : host;
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
    if (ch->metrics != NULL) {
        if (orpc__chan_metrics_attach(ch->metrics, &ch->counters, ch->target,
                                      ch) != 0) {
            rc = ORPC_ENOMEM;
            goto fail;
        }
        ch->counters_attached = 1;
    }
    if (orpc__io_init(&ch->io, 0, orpc__ch_io_stop, ch) != 0) {
        snprintf(why, sizeof why, "cannot create the IO loop");
        rc = ORPC_ESYS;
        goto fail;
    }
    orpc__res_init(ch);
    ch->rng = (uv_hrtime() ^ (uint64_t)(uintptr_t)ch) | 1;
    orpc__task_init(&ch->connect_task, orpc__ch_connect_task, ch);
    if (orpc__io_start(&ch->io) != 0) {
        orpc__io_close_unstarted(&ch->io);
        orpc__io_destroy(&ch->io);
        snprintf(why, sizeof why, "cannot start the IO thread");
        rc = ORPC_ESYS;
        goto fail_io;
    }
    orpc__mem_free(&ch->mem, host);
    *out = ch;
    return 0;
fail:
fail_io:
    orpc__mem_free(&ch->mem, host);
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
    if (ch->counters_attached)
        orpc__chan_metrics_detach(ch->metrics, &ch->counters);
    orpc__chain_destroy(&ch->chain);
    orpc_metrics_unref(ch->metrics);
    orpc__mem_free(&ch->mem, ch->target);
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
    (void)t;
    if (ch->stopping)
        return;
    ch->lb_active = 1; /* connect as a call would, without one */
    orpc__lb_update(ch);
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
    free_strings(ch);
    orpc__svc_config_free(ch->svc_config);
    orpc__retry_chan_destroy(&ch->retry);
    if (ch->counters_attached)
        orpc__chan_metrics_detach(ch->metrics, &ch->counters);
    orpc__chain_destroy(&ch->chain);
    orpc_metrics_unref(ch->metrics);
    orpc__mem_free(&ch->mem, ch->target);
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

orpc_metrics *orpc_channel_metrics(orpc_channel *ch)
{
    return ch ? ch->metrics : NULL;
}
