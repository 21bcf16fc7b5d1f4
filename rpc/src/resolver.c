/*
 * resolver.c — a channel's target and the addresses it stands for: the
 * target forms, DNS resolution off the loop (uv_getaddrinfo, on libuv's
 * thread pool), re-resolution when connections are lost, and the test seam
 * that answers in DNS's place (resolver_seam.h).
 *
 *   host:port, [v6]:port      DNS, as dns:///host:port
 *   dns:///host:port          every A and AAAA address getaddrinfo gives,
 *   dns:host:port             in its order, duplicates dropped
 *   ipv4:a:p[,b:p...]         fixed IPv4 addresses
 *   ipv6:[a]:p[,[b]:p...]     fixed IPv6 addresses
 *   unix:/path, unix:///path  one unix socket
 *
 * Design notes:
 * - The answer goes to the balancer (orpc__lb_set_addrs), which keeps one
 *   subchannel per address.  The first resolution runs when the first call
 *   (or orpc_channel_get_state(try_to_connect)) needs an address; fixed
 *   targets "resolve" at once.
 * - DNS targets resolve again when a connection in use is lost (a GOAWAY, a
 *   close) or an attempt fails, since the server may have moved: at most
 *   once per 30 s (gRPC's minimum time between resolutions), so a fleet of
 *   failing connections cannot flood the name servers; a request sooner
 *   than that is kept for when the 30 s are over.  Nothing polls: an
 *   answer that changes while every connection stays up is seen at the
 *   next loss.
 * - A resolution that fails, or finds no address, before the channel has
 *   any backs off as a connection attempt does (the channel's
 *   initial_backoff_ms and max_backoff_ms); calls fail fast meanwhile.  One
 *   that fails later keeps the addresses the channel has.
 * - One timer serves the backoff, a re-resolution that is due later and
 *   an override's answer (delivered from the loop, not from inside the
 *   caller, as DNS's is): they never overlap.
 *
 * Threads: the IO thread, but the override (and the count of resolutions)
 * lives under ch->lock, since tests set it from their own thread.
 */
#include "channel_internal.h"
#include "resolver_seam.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/mem.h"

enum { RT_NONE, RT_BACKOFF, RT_REFRESH, RT_ANSWER };

#define MIN_INTERVAL_MS 30000

/* ====================================================================== */
/* addresses                                                               */
/* ====================================================================== */

int orpc__addr_equal(const orpc__addr *a, const orpc__addr *b)
{
    if (a->sa.ss_family != b->sa.ss_family)
        return 0;
    if (a->sa.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)&a->sa;
        const struct sockaddr_in *y = (const struct sockaddr_in *)&b->sa;
        return x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->sa;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&b->sa;
        return x->sin6_port == y->sin6_port &&
               x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return 1; /* AF_UNIX: a channel has one path */
}

void orpc__addr_name(const orpc__addr *a, char *buf, size_t len)
{
    char ip[64] = "";
    if (a->sa.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)&a->sa;
        uv_ip4_name(x, ip, sizeof(ip));
        snprintf(buf, len, "%s:%u", ip, (unsigned)ntohs(x->sin_port));
    } else if (a->sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->sa;
        uv_ip6_name(x, ip, sizeof(ip));
        snprintf(buf, len, "[%s]:%u", ip, (unsigned)ntohs(x->sin6_port));
    } else {
        snprintf(buf, len, "unix:");
    }
}

/* An IP literal (|len| bytes of |s|, IPv6 with or without brackets) and a
 * port into |out|: 0 or -1. */
static int ip_addr(orpc__addr *out, const char *s, size_t len, int port,
                   int family)
{
    char buf[64];
    if (len > 0 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(out, 0, sizeof(*out));
    if (family != AF_INET6 &&
        uv_ip4_addr(buf, port, (struct sockaddr_in *)&out->sa) == 0)
        return 0;
    if (family != AF_INET && strchr(buf, ':') != NULL &&
        uv_ip6_addr(buf, port, (struct sockaddr_in6 *)&out->sa) == 0)
        return 0;
    return -1;
}

/* A port, all digits, 1..65535: the port, or -1. */
static int parse_port(const char *s, size_t len)
{
    if (len == 0 || len > 5)
        return -1;
    int port = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        port = port * 10 + (s[i] - '0');
    }
    return port >= 1 && port <= 65535 ? port : -1;
}

/* "host:port" or "[v6]:port" (|len| bytes): where the host starts and
 * ends and where the port starts; 0 or -1. */
static int split_host_port(const char *s, size_t len, size_t *host_off,
                           size_t *host_len, size_t *port_off)
{
    if (len > 0 && s[0] == '[') {
        const char *end = memchr(s, ']', len);
        if (end == NULL || (size_t)(end - s) + 1 >= len || end[1] != ':')
            return -1;
        *host_off = 1;
        *host_len = (size_t)(end - s) - 1;
        *port_off = (size_t)(end - s) + 2;
        return 0;
    }
    size_t colon = len;
    while (colon > 0 && s[colon - 1] != ':')
        colon--;
    if (colon <= 1) /* no colon, or no host before it */
        return -1;
    *host_off = 0;
    *host_len = colon - 1;
    *port_off = colon;
    return 0;
}

/* ====================================================================== */
/* target forms                                                            */
/* ====================================================================== */

/* ipv4:/ipv6: lists.  |list| is what follows the scheme. */
static int parse_ip_list(orpc_channel *ch, const char *list, int family,
                         char **authority, char **host, char *why,
                         size_t whylen)
{
    const orpc_mem *mem = &ch->mem;
    const char *scheme = family == AF_INET ? "ipv4" : "ipv6";
    const char *form = family == AF_INET ? "a.b.c.d:port" : "[v6addr]:port";
    if (strncmp(list, "///", 3) == 0) /* ipv4:///a:p, as gRPC accepts */
        list += 3;
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    ch->res.fixed = orpc__mem_calloc(mem, n, sizeof(orpc__addr));
    if (ch->res.fixed == NULL)
        return ORPC_ENOMEM;
    const char *p = list;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        size_t ho, hl, po;
        int port = -1;
        if (split_host_port(p, len, &ho, &hl, &po) == 0 &&
            (family == AF_INET || p[0] == '['))
            port = parse_port(p + po, len - po);
        if (port < 0 ||
            ip_addr(&ch->res.fixed[i], p + ho, hl, port, family) != 0) {
            snprintf(why, whylen, "%s: \"%.*s\" is not %s", scheme,
                     (int)(len > 80 ? 80 : len), p, form);
            return ORPC_EADDR;
        }
        if (i == 0) {
            /* the first address names the server (set opts.authority or
             * tls.server_name for a name) */
            *authority = orpc__mem_strndup(mem, p, len);
            *host = orpc__mem_strndup(mem, p + ho, hl);
            if (*authority == NULL || *host == NULL)
                return ORPC_ENOMEM;
        }
        p += len + 1;
    }
    ch->res.n_fixed = n;
    ch->res.kind = ORPC__TARGET_IP;
    return 0;
}

int orpc__res_parse(orpc_channel *ch, const char *target, char **authority,
                    char **host, char *why, size_t whylen)
{
    const orpc_mem *mem = &ch->mem;
    orpc__resolver *res = &ch->res;
    *authority = *host = NULL;
    snprintf(why, whylen,
             "not host:port, [v6]:port, dns:///host:port, "
             "ipv4:addr:port[,...], ipv6:[addr]:port[,...] or unix:/path");
    if (strncmp(target, "unix:", 5) == 0) {
        const char *p = target + 5;
        if (strncmp(p, "//", 2) == 0)
            p += 2;
        if (*p == '\0')
            return ORPC_EADDR;
        res->kind = ORPC__TARGET_UNIX;
        res->unix_path = orpc__mem_strdup(mem, p);
        *authority = orpc__mem_strdup(mem, "localhost");
        return res->unix_path && *authority ? 0 : ORPC_ENOMEM;
    }
    if (strncmp(target, "ipv4:", 5) == 0)
        return parse_ip_list(ch, target + 5, AF_INET, authority, host, why,
                             whylen);
    if (strncmp(target, "ipv6:", 5) == 0)
        return parse_ip_list(ch, target + 5, AF_INET6, authority, host, why,
                             whylen);
    if (strncmp(target, "dns:///", 7) == 0) {
        target += 7;
    } else if (strncmp(target, "dns://", 6) == 0) {
        snprintf(why, whylen,
                 "a DNS server (dns://server/host:port) cannot be chosen: "
                 "use dns:///host:port");
        return ORPC_EADDR;
    } else if (strncmp(target, "dns:", 4) == 0) {
        target += 4;
    }
    size_t len = strlen(target), ho, hl, po;
    if (split_host_port(target, len, &ho, &hl, &po) != 0 || hl == 0 ||
        parse_port(target + po, len - po) < 0)
        return ORPC_EADDR;
    res->kind = ORPC__TARGET_DNS;
    res->host = orpc__mem_strndup(mem, target + ho, hl);
    res->port = orpc__mem_strdup(mem, target + po);
    *authority = orpc__mem_strdup(mem, target);
    *host = orpc__mem_strndup(mem, target + ho, hl);
    return res->host && res->port && *authority && *host ? 0 : ORPC_ENOMEM;
}

void orpc__res_free(orpc_channel *ch)
{
    orpc__resolver *res = &ch->res;
    orpc__mem_free(&ch->mem, res->host);
    orpc__mem_free(&ch->mem, res->port);
    orpc__mem_free(&ch->mem, res->unix_path);
    orpc__mem_free(&ch->mem, res->fixed);
    orpc__mem_free(&ch->mem, res->override);
    memset(res, 0, sizeof(*res));
}

/* ====================================================================== */
/* resolving                                                               */
/* ====================================================================== */

static void timer_fired(uv_timer_t *t);

/* An answer (|n| addresses; none: the resolution failed with |why|). */
static void finish(orpc_channel *ch, const orpc__addr *addrs, size_t n,
                   const char *why)
{
    orpc__resolver *res = &ch->res;
    res->resolving = 0;
    res->resolved = 1;
    uv_mutex_lock(&ch->lock);
    res->resolutions++;
    uv_mutex_unlock(&ch->lock);
    if (n > 0 && orpc__lb_set_addrs(ch, addrs, n) == 0) {
        res->backoff_ms = 0;
    } else {
        snprintf(res->last_error, sizeof(res->last_error), "%s",
                 n > 0 ? "out of memory"
                 : why ? why
                       : "no address");
        char msg[200];
        if (res->kind == ORPC__TARGET_DNS)
            snprintf(msg, sizeof(msg), "%s:%s: %s", res->host, res->port,
                     res->last_error);
        else
            snprintf(msg, sizeof(msg), "%s", res->last_error);
        if (ch->n_subs == 0 && !ch->stopping) {
            /* nothing to use meanwhile: back off as an attempt does */
            int64_t delay = orpc__backoff_next(ch, &res->backoff_ms);
            uint64_t due = res->attempt_ms + (uint64_t)delay;
            uint64_t now = uv_now(&ch->io.loop);
            res->backing_off = 1;
            res->timer_for = RT_BACKOFF;
            uv_timer_start(&res->timer, timer_fired, due > now ? due - now : 0,
                           0);
            orpc__ch_log(ch, ORPC_LOG_INFO,
                         "resolving %s failed; next attempt in %lld ms", msg,
                         (long long)(due > now ? due - now : 0));
        }
        orpc__lb_resolve_failed(ch, msg);
    }
    if (res->again && !ch->stopping) {
        res->again = 0;
        orpc__res_refresh(ch);
    }
}

/* getaddrinfo's answer: its TCP addresses, in order, without duplicates. */
static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
    orpc_channel *ch = req->data;
    orpc__resolver *res = &ch->res;
    if (ch->stopping) {
        res->resolving = 0;
        if (ai)
            uv_freeaddrinfo(ai);
        return;
    }
    size_t n = 0;
    for (struct addrinfo *a = ai; a; a = a->ai_next)
        n++;
    orpc__addr *addrs =
        n ? orpc__mem_calloc(&ch->mem, n, sizeof(orpc__addr)) : NULL;
    size_t k = 0;
    for (struct addrinfo *a = ai; a && addrs; a = a->ai_next) {
        if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
            a->ai_addrlen > sizeof(addrs[k].sa))
            continue;
        memcpy(&addrs[k].sa, a->ai_addr, a->ai_addrlen);
        size_t j = 0;
        while (j < k && !orpc__addr_equal(&addrs[j], &addrs[k]))
            j++;
        if (j == k)
            k++;
    }
    if (ai)
        uv_freeaddrinfo(ai);
    const char *why = status != 0 ? uv_strerror(status)
                      : n == 0    ? "no address"
                      : !addrs    ? "out of memory"
                      : k == 0    ? "no IPv4 or IPv6 address"
                                  : NULL;
    finish(ch, addrs, why ? 0 : k, why);
    orpc__mem_free(&ch->mem, addrs);
}

/* Asks getaddrinfo, on libuv's thread pool. */
static void resolve_dns(orpc_channel *ch)
{
    orpc__resolver *res = &ch->res;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    res->gai.data = ch;
    if (uv_getaddrinfo(&ch->io.loop, &res->gai, on_resolved, res->host,
                       res->port, &hints) != 0)
        finish(ch, NULL, 0, "cannot resolve");
}

/* The override's answer, from the loop: its addresses with the target's
 * port. */
static void answer_override(orpc_channel *ch)
{
    orpc__resolver *res = &ch->res;
    uv_mutex_lock(&ch->lock);
    char *answer = orpc__mem_strdup(&ch->mem, res->override);
    uv_mutex_unlock(&ch->lock);
    if (answer == NULL) { /* cleared meanwhile, or no memory: ask DNS */
        resolve_dns(ch);
        return;
    }
    size_t n = 1;
    for (const char *p = answer; *p; p++)
        n += *p == ',';
    orpc__addr *addrs = orpc__mem_calloc(&ch->mem, n, sizeof(orpc__addr));
    size_t k = 0;
    int port = atoi(res->port);
    for (char *p = answer; addrs && p;) {
        char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && p[0] == ' ') {
            p++;
            len--;
        }
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (ip_addr(&addrs[k], p, len, port, AF_UNSPEC) == 0)
            k++;
        p = end ? end + 1 : NULL;
    }
    finish(ch, addrs, k, addrs ? "no address" : "out of memory");
    orpc__mem_free(&ch->mem, addrs);
    orpc__mem_free(&ch->mem, answer);
}

/* Starts a resolution now. */
static void begin(orpc_channel *ch)
{
    orpc__resolver *res = &ch->res;
    res->resolving = 1;
    res->last_ms = res->attempt_ms = uv_now(&ch->io.loop);
    if (res->kind == ORPC__TARGET_UNIX) {
        orpc__addr a;
        memset(&a, 0, sizeof(a));
        a.sa.ss_family = AF_UNIX;
        finish(ch, &a, 1, NULL);
        return;
    }
    if (res->kind == ORPC__TARGET_IP) {
        finish(ch, res->fixed, res->n_fixed, NULL);
        return;
    }
    uv_mutex_lock(&ch->lock);
    int overridden = res->override != NULL;
    uv_mutex_unlock(&ch->lock);
    if (overridden) { /* answered from the loop, as DNS would be */
        res->timer_for = RT_ANSWER;
        uv_timer_start(&res->timer, timer_fired, 0, 0);
        return;
    }
    resolve_dns(ch);
}

static void timer_fired(uv_timer_t *t)
{
    orpc_channel *ch = t->data;
    orpc__resolver *res = &ch->res;
    int what = res->timer_for;
    res->timer_for = RT_NONE;
    if (ch->stopping)
        return;
    switch (what) {
    case RT_BACKOFF:
        res->backing_off = 0;
        orpc__lb_update(ch); /* calls waiting for ready resolve again */
        break;
    case RT_REFRESH:
        if (!res->resolving)
            begin(ch);
        break;
    case RT_ANSWER:
        answer_override(ch);
        break;
    default:
        break;
    }
}

void orpc__res_init(orpc_channel *ch)
{
    uv_timer_init(&ch->io.loop, &ch->res.timer);
    ch->res.timer.data = ch;
    uv_unref((uv_handle_t *)&ch->res.timer);
}

void orpc__res_start(orpc_channel *ch)
{
    orpc__resolver *res = &ch->res;
    if (res->resolving || res->backing_off || ch->stopping)
        return;
    if (res->timer_for == RT_REFRESH) {
        uv_timer_stop(&res->timer);
        res->timer_for = RT_NONE;
    }
    begin(ch);
}

void orpc__res_refresh(orpc_channel *ch)
{
    orpc__resolver *res = &ch->res;
    if (res->kind != ORPC__TARGET_DNS || ch->stopping || !res->resolved ||
        res->backing_off || res->timer_for == RT_REFRESH)
        return;
    if (res->resolving) {
        res->again = 1; /* the answer under way may predate the loss */
        return;
    }
    uv_mutex_lock(&ch->lock);
    int64_t interval =
        res->min_interval_ms > 0 ? res->min_interval_ms : MIN_INTERVAL_MS;
    uv_mutex_unlock(&ch->lock);
    uint64_t now = uv_now(&ch->io.loop);
    uint64_t due = res->last_ms + (uint64_t)interval;
    if (due <= now) {
        begin(ch);
        return;
    }
    res->timer_for = RT_REFRESH;
    uv_timer_start(&res->timer, timer_fired, due - now, 0);
}

void orpc__res_stop(orpc_channel *ch)
{
    orpc__resolver *res = &ch->res;
    /* a resolution not yet started is cancelled; one running in the
     * thread pool is waited for (on_resolved sees the channel stopping) */
    if (res->resolving && res->timer_for != RT_ANSWER)
        uv_cancel((uv_req_t *)&res->gai);
    else
        res->resolving = 0;
    res->timer_for = RT_NONE;
    uv_timer_stop(&res->timer);
    uv_close((uv_handle_t *)&res->timer, NULL);
}

/* ====================================================================== */
/* the test seam (resolver_seam.h)                                         */
/* ====================================================================== */

int orpc__resolver_override(orpc_channel *ch, const char *answer,
                            int64_t min_interval_ms)
{
    if (ch == NULL || ch->res.kind != ORPC__TARGET_DNS)
        return ORPC_EINVAL;
    if (answer != NULL) { /* every entry an address */
        for (const char *p = answer;;) {
            const char *end = strchr(p, ',');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            orpc__addr a;
            while (len > 0 && p[0] == ' ') {
                p++;
                len--;
            }
            while (len > 0 && p[len - 1] == ' ')
                len--;
            if (len > 0 && ip_addr(&a, p, len, 1, AF_UNSPEC) != 0)
                return ORPC_EINVAL;
            if (end == NULL)
                break;
            p = end + 1;
        }
    }
    char *copy = NULL;
    if (answer != NULL && (copy = orpc__mem_strdup(&ch->mem, answer)) == NULL)
        return ORPC_ENOMEM;
    uv_mutex_lock(&ch->lock);
    char *old = ch->res.override;
    ch->res.override = copy;
    ch->res.min_interval_ms = min_interval_ms;
    uv_mutex_unlock(&ch->lock);
    orpc__mem_free(&ch->mem, old);
    return 0;
}

unsigned orpc__resolver_resolutions(orpc_channel *ch)
{
    uv_mutex_lock(&ch->lock);
    unsigned n = ch->res.resolutions;
    uv_mutex_unlock(&ch->lock);
    return n;
}
