/*
 * lb.c — the balancer: which subchannel (address) a call goes to, which
 * subchannels connect, the calls waiting for one, and the channel's state
 * aggregated from its subchannels'.
 *
 *   resolver (resolver.c) ──addresses──▶ balancer ──one per address──▶
 *   subchannel (subchannel.c) ──▶ connection
 *
 * Policies (orpc_channel_opts.lb_policy, or the service config through
 * orpc__ch_set_lb_policy()):
 *   pick_first   connect to the addresses in order, one at a time, until
 *                one connects; every call goes there until it fails (then
 *                the next call starts again from the first address).
 *                Calls are sent as soon as the connection is made, before
 *                the server's SETTINGS (as a single address always was).
 *   round_robin  connect to every address and keep connecting them (each
 *                with its own backoff); calls go to the READY ones in
 *                turn, skipping the others.
 *
 * Design notes:
 * - A call that finds no subchannel to go to waits on ch->waiting (and
 *   the first one resolves the target) unless every address is backing off
 *   (or the resolution itself is), where it fails fast: UNAVAILABLE, or it
 *   waits when it is wait_for_ready.  orpc__lb_update() runs after every
 *   event that may change that, sends the waiting calls where they can now
 *   go and fails them when nothing is left to try.
 * - orpc__lb_update() is reentrant: an event it causes (an attempt failing
 *   at once, a call completing into an application callback that starts
 *   another) only asks for another round, run by the outer call.
 * - Channel state: READY if any subchannel is READY; else CONNECTING if any
 *   is (or the first resolution runs); else TRANSIENT_FAILURE if any is
 *   backing off (or the resolution); else IDLE.
 *
 * All of it runs on the channel's IO thread.
 */
#include "channel_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/mem.h"

/* The subchannel a call goes to now, and its connection; NULL when none
 * takes calls.  round_robin moves on by one per pick. */
static subchannel *pick(orpc_channel *ch, orpc__conn **conn)
{
    if (ch->lb_kind == ORPC__LB_PICK_FIRST) {
        subchannel *s = ch->pf_selected;
        if (s != NULL && (*conn = orpc__sub_usable(s, 0)) != NULL)
            return s;
        return NULL;
    }
    for (size_t i = 0; i < ch->n_subs; i++) {
        size_t k = (ch->rr_next + i) % ch->n_subs;
        subchannel *s = ch->subs[k];
        if ((*conn = orpc__sub_usable(s, 1)) != NULL) {
            ch->rr_next = (k + 1) % ch->n_subs;
            return s;
        }
    }
    return NULL;
}

/* pick_first: keeps its subchannel while its connection lasts; else takes
 * the first (in address order) that has one. */
static void pf_select(orpc_channel *ch)
{
    if (ch->pf_selected != NULL && orpc__sub_usable(ch->pf_selected, 0))
        return;
    ch->pf_selected = NULL;
    for (size_t i = 0; i < ch->n_subs; i++) {
        if (orpc__sub_usable(ch->subs[i], 0) != NULL) {
            ch->pf_selected = ch->subs[i];
            ch->lb_active = 0; /* what get_state(try_to_connect) asked */
            return;
        }
    }
}

/* Connects what the policy wants connected: the first resolution, the next
 * address for pick_first, every idle address for round_robin. */
static void exit_idle(orpc_channel *ch)
{
    if (ch->n_subs == 0) {
        orpc__res_start(ch); /* a no-op while it runs or backs off */
        return;
    }
    if (ch->lb_kind == ORPC__LB_ROUND_ROBIN) {
        ch->lb_active = 1; /* and it stays so */
        for (size_t i = 0; i < ch->n_subs; i++)
            if (orpc__sub_state(ch->subs[i]) == ORPC_CHANNEL_IDLE)
                orpc__sub_connect(ch->subs[i]);
        return;
    }
    if (ch->pf_selected != NULL)
        return;
    for (size_t i = 0; i < ch->n_subs; i++)
        if (orpc__sub_state(ch->subs[i]) == ORPC_CHANNEL_CONNECTING)
            return; /* one attempt at a time */
    for (size_t i = 0; i < ch->n_subs; i++) {
        if (orpc__sub_state(ch->subs[i]) == ORPC_CHANNEL_IDLE) {
            orpc__sub_connect(ch->subs[i]);
            return;
        }
    }
    ch->lb_active = 0; /* every address failed: this pass is over */
}

/* Nothing can take a call until a backoff ends: every address is backing
 * off, or the resolution is. */
static int hopeless(orpc_channel *ch)
{
    if (ch->n_subs == 0)
        return ch->res.backing_off;
    for (size_t i = 0; i < ch->n_subs; i++)
        if (orpc__sub_state(ch->subs[i]) != ORPC_CHANNEL_TRANSIENT_FAILURE)
            return 0;
    return 1;
}

static orpc_channel_state aggregate(orpc_channel *ch)
{
    if (ch->n_subs == 0)
        return ch->res.resolving     ? ORPC_CHANNEL_CONNECTING
               : ch->res.backing_off ? ORPC_CHANNEL_TRANSIENT_FAILURE
                                     : ORPC_CHANNEL_IDLE;
    int connecting = 0, failing = 0;
    for (size_t i = 0; i < ch->n_subs; i++) {
        switch (orpc__sub_state(ch->subs[i])) {
        case ORPC_CHANNEL_READY:
            return ORPC_CHANNEL_READY;
        case ORPC_CHANNEL_CONNECTING:
            connecting = 1;
            break;
        case ORPC_CHANNEL_TRANSIENT_FAILURE:
            failing = 1;
            break;
        default:
            break;
        }
    }
    return connecting ? ORPC_CHANNEL_CONNECTING
           : failing  ? ORPC_CHANNEL_TRANSIENT_FAILURE
                      : ORPC_CHANNEL_IDLE;
}

static void push_waiting(orpc_channel *ch, orpc_call *c)
{
    c->listed = 1;
    c->prev_io = NULL;
    c->next_io = ch->waiting;
    if (ch->waiting)
        ch->waiting->prev_io = c;
    ch->waiting = c;
}

/* The waiting calls, oldest first, to wherever the policy picks. */
static void dispatch(orpc_channel *ch)
{
    orpc__conn *conn;
    if (ch->waiting == NULL || ch->n_subs == 0)
        return;
    orpc_call *w = ch->waiting, *rev = NULL;
    ch->waiting = NULL;
    while (w) { /* the list is newest first */
        orpc_call *n = w->next_io;
        w->next_io = rev;
        rev = w;
        w = n;
    }
    while (rev) {
        orpc_call *n = rev->next_io;
        rev->listed = 0;
        rev->next_io = rev->prev_io = NULL;
        if (pick(ch, &conn) != NULL)
            orpc__call_submit(rev, conn);
        else
            push_waiting(ch, rev);
        rev = n;
    }
}

void orpc__lb_update(orpc_channel *ch)
{
    if (ch->lb_busy) {
        ch->lb_again = 1;
        return;
    }
    ch->lb_busy = 1;
    do {
        ch->lb_again = 0;
        if (ch->stopping)
            break;
        if (ch->lb_kind == ORPC__LB_PICK_FIRST)
            pf_select(ch);
        if (ch->waiting != NULL || ch->lb_active)
            exit_idle(ch);
        dispatch(ch);
        /* (the state first: a call that fails here finds it updated) */
        orpc__ch_set_state(ch, aggregate(ch));
        if (ch->waiting != NULL && hopeless(ch))
            orpc__lb_fail_waiting(ch, ch->last_error);
    } while (ch->lb_again);
    ch->lb_busy = 0;
}

void orpc__lb_enqueue(orpc_call *c)
{
    orpc_channel *ch = c->ch;
    orpc__conn *conn;
    if (ch->lb_kind == ORPC__LB_PICK_FIRST)
        pf_select(ch);
    if (pick(ch, &conn) != NULL) {
        orpc__call_submit(c, conn);
        return;
    }
    if (!c->wait_for_ready && hopeless(ch)) {
        /* fail fast: every attempt failed and the next is not due */
        orpc__call_complete(c, orpc__status_errorf_mem(
                                   &ch->mem, ORPC_UNAVAILABLE,
                                   "cannot connect: %s (next attempt after a "
                                   "backoff)",
                                   ch->last_error));
        return;
    }
    push_waiting(ch, c);
    orpc__lb_update(ch);
}

void orpc__lb_fail_waiting(orpc_channel *ch, const char *why)
{
    orpc_call *w = ch->waiting;
    orpc_call *keep = NULL;
    ch->waiting = NULL;
    while (w) {
        orpc_call *next = w->next_io;
        w->listed = 0;
        w->next_io = w->prev_io = NULL;
        if (w->wait_for_ready && !ch->stopping) {
            w->listed = 1;
            w->next_io = keep;
            if (keep)
                keep->prev_io = w;
            keep = w;
        } else {
            orpc__call_complete(
                w, orpc__status_errorf_mem(&ch->mem, ORPC_UNAVAILABLE,
                                           "cannot connect: %s", why));
        }
        w = next;
    }
    /* (calls started meanwhile, from the completions' callbacks, are on
     * ch->waiting now: they stay first, being the newest) */
    if (keep != NULL) {
        orpc_call *tail = keep;
        while (tail->next_io)
            tail = tail->next_io;
        tail->next_io = ch->waiting;
        if (ch->waiting)
            ch->waiting->prev_io = tail;
        ch->waiting = keep;
    }
}

void orpc__lb_resolve_failed(orpc_channel *ch, const char *why)
{
    if (ch->stopping)
        return;
    /* keep what we have (calls hear of their own failures, not this
     * one); with nothing, calls fail until the retry (the resolver says
     * when) */
    if (ch->n_subs > 0)
        orpc__ch_log(ch, ORPC_LOG_INFO, "resolving %s; keeping %zu address%s",
                     why, ch->n_subs, ch->n_subs == 1 ? "" : "es");
    else
        snprintf(ch->last_error, sizeof(ch->last_error), "%s", why);
    orpc__lb_update(ch);
}

int orpc__lb_set_addrs(orpc_channel *ch, const orpc__addr *addrs, size_t n)
{
    if (ch->stopping)
        return 0;
    subchannel **subs = orpc__mem_calloc(&ch->mem, n, sizeof(*subs));
    size_t k = 0;
    for (size_t i = 0; i < n && subs != NULL; i++) {
        size_t j = 0;
        while (j < k && !orpc__addr_equal(&subs[j]->addr, &addrs[i]))
            j++;
        if (j < k)
            continue; /* a duplicate */
        subchannel *s = NULL;
        for (j = 0; j < ch->n_subs && s == NULL; j++) {
            if (ch->subs[j] != NULL &&
                orpc__addr_equal(&ch->subs[j]->addr, &addrs[i])) {
                s = ch->subs[j]; /* kept, with its connection and state */
                ch->subs[j] = NULL;
            }
        }
        if (s == NULL && (s = orpc__sub_new(ch, &addrs[i])) == NULL)
            continue; /* out of memory: that address is left out */
        subs[k++] = s;
    }
    if (k == 0) { /* out of memory for all of them: nothing changes */
        orpc__mem_free(&ch->mem, subs);
        orpc__ch_log(ch, ORPC_LOG_WARN,
                     "out of memory for %zu addresses; %zu kept", n,
                     ch->n_subs);
        return ch->n_subs > 0 ? 0 : ORPC_ENOMEM;
    }
    for (size_t j = 0; j < ch->n_subs; j++) {
        subchannel *s = ch->subs[j];
        if (s == NULL)
            continue;
        if (ch->pf_selected == s)
            ch->pf_selected = NULL;
        orpc__ch_log(ch, ORPC_LOG_INFO,
                     "%s is no longer an address of the target", s->name);
        orpc__sub_shutdown(s, "address removed", 0);
    }
    if (ch->subs == NULL) /* round_robin starts anywhere: channels started
                             together do not all begin with the first */
        ch->rr_next = (size_t)(ch->rng % k);
    else
        ch->rr_next %= k;
    orpc__mem_free(&ch->mem, ch->subs);
    ch->subs = subs;
    ch->n_subs = k;
    orpc__ch_log(ch, ORPC_LOG_DEBUG, "target resolved to %zu address%s", k,
                 k == 1 ? "" : "es");
    orpc__lb_update(ch);
    return 0;
}

void orpc__lb_stop(orpc_channel *ch)
{
    for (size_t i = 0; i < ch->n_subs; i++)
        orpc__sub_shutdown(ch->subs[i], "channel closed", 1);
    orpc__mem_free(&ch->mem, ch->subs);
    ch->subs = NULL;
    ch->n_subs = 0;
    ch->pf_selected = NULL;
}
