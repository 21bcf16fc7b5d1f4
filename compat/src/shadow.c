/*
 * shadow.c — shadow comparison: a call of a shadowed method is mirrored to
 * the other side off the caller's path, and the two answers are compared.
 *
 * Design notes: only calls without side effects are mirrored (a mirrored
 * write would happen twice).  A mirror owns a copy of the request and the
 * answering side's response already encoded as proto3 JSON, so the caller
 * may free both at once.  The answers are compared as JSON with defaults
 * emitted, so that both sides show every field, after dropping the
 * method's ignore list (dotted names from the table: fields that may
 * rightly differ, such as timestamps).  A mismatch is counted, and logged
 * as a sample (the 1st, 2nd, 4th, 8th... of each method) with the first
 * path that differs.  Mirrors wait in a bounded queue (SHADOW_QUEUE) that
 * drops when full: the shadow side must never slow the answering one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <orpc/compat/json.h>
#include <orpc/compat/router.h>
#include <orpc/error.h>

#include "router_internal.h"

typedef struct mirror {
    task t; /* first: a mirror is a task */
    const orpc_method_desc *m;
    ProtobufCMessage *req;
    int to_legacy; /* the mirror goes to the legacy side (shadow-grpc) */
    orpc_code primary_code;
    char *primary_json; /* the answering side's response as JSON, or NULL */
} mirror;

static void mirror_free(mirror *mi)
{
    protobuf_c_message_free_unpacked(mi->req, NULL);
    free(mi->primary_json);
    free(mi);
}

/* Drops dotted |path| ("a.b") from the JSON object |v|. */
static void drop_path(json_t *v, const char *path)
{
    char head[256];
    const char *dot = strchr(path, '.');
    size_t n = dot ? (size_t)(dot - path) : strlen(path);
    if (!json_is_object(v) || n == 0 || n >= sizeof(head))
        return;
    memcpy(head, path, n);
    head[n] = '\0';
    if (dot == NULL)
        json_object_del(v, head);
    else
        drop_path(json_object_get(v, head), dot + 1);
}

static void drop_ignored(json_t *v, const char *list)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", list ? list : "");
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && end[-1] == ' ')
            *--end = '\0';
        drop_path(v, tok);
    }
}

/* First key path where |a| (the answering side, named |an|) and |b| (the
 * mirror, |bn|) differ, into |out| (a sample). */
static void first_diff(json_t *a, json_t *b, const char *at, const char *an,
                       const char *bn, char *out, size_t len)
{
    if (json_is_object(a) && json_is_object(b)) {
        const char *k;
        json_t *va;
        json_object_foreach(a, k, va)
        {
            json_t *vb = json_object_get(b, k);
            if (vb == NULL || !json_equal(va, vb)) {
                char sub[512];
                snprintf(sub, sizeof(sub), "%s.%s", at, k);
                if (vb == NULL)
                    snprintf(out, len, "%s: only on the %s side", sub, an);
                else
                    first_diff(va, vb, sub, an, bn, out, len);
                return;
            }
        }
        json_object_foreach(b, k, va) if (json_object_get(a, k) == NULL)
        {
            snprintf(out, len, "%s.%s: only on the %s side", at, k, bn);
            return;
        }
    }
    snprintf(out, len, "%s differs", at);
}

static void shadow_compare(routed *r, mirror *mi)
{
    ProtobufCMessage *resp = NULL;
    orpc_call_opts o = {.timeout_ms = r->legacy_timeout_ms};
    const char *an = mi->to_legacy ? "gRPC" : "legacy";
    const char *bn = mi->to_legacy ? "legacy" : "gRPC";
    orpc_status st =
        mi->to_legacy
            ? orpc__routed_legacy_invoke(r, mi->m, mi->req, &resp, &o, NULL, NULL)
            : orpc_channel_invoke(r->channel, mi->m, mi->req, &resp, &o);
    int match = st.code == mi->primary_code;
    char why[600] = "";
    if (!match)
        snprintf(why, sizeof(why), "status: %s %s, %s %s", an,
                 orpc_code_name(mi->primary_code), bn, orpc_code_name(st.code));
    if (match && st.code == ORPC_OK) {
        char *mine = NULL, ign[1024];
        json_error_t e;
        json_t *a =
            mi->primary_json ? json_loads(mi->primary_json, 0, &e) : NULL;
        json_t *b = NULL;
        orpc_json_opts jo = {.emit_defaults = 1};
        if (orpc_json_encode(&mine, NULL, mi->m->output, resp, &jo, NULL) == 0)
            b = json_loads(mine, 0, &e);
        orpc__routes_ignored_fields(r->routes, mi->m, ign, sizeof(ign));
        if (a && b) {
            drop_ignored(a, ign);
            drop_ignored(b, ign);
            match = json_equal(a, b);
            if (!match)
                first_diff(a, b, "$", an, bn, why, sizeof(why));
        } else {
            match = 0;
            snprintf(why, sizeof(why), "a response would not encode");
        }
        json_decref(a);
        json_decref(b);
        free(mine);
    }
    orpc__routed_count(r, mi->m, match ? C_MATCH : C_MISMATCH);
    if (!match && r->log) {
        orpc_route_stats s = {0};
        orpc_routes_stats(r->routes, mi->m, &s);
        /* a sample: the 1st, 2nd, 4th, 8th... mismatch of a method */
        if ((s.mismatches & (s.mismatches - 1)) == 0) {
            char line[800];
            snprintf(line, sizeof(line), "shadow mismatch #%llu on %s: %s",
                     (unsigned long long)s.mismatches, mi->m->path, why);
            r->log(ORPC_LOG_WARN, line, r->log_ud);
        }
    }
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    orpc_status_clear(&st);
}

static void mirror_run(routed *r, task *t)
{
    mirror *mi = (mirror *)t;
    shadow_compare(r, mi);
    mirror_free(mi);
}

static void mirror_discard(task *t)
{
    mirror_free((mirror *)t);
}

/* Hands a copy of the call to the client's threads; drops it when
 * SHADOW_QUEUE mirrors wait already, so the caller never waits for the
 * shadow side. */
void orpc__shadow_mirror(routed *r, const orpc_method_desc *m,
                         const ProtobufCMessage *req, int to_legacy,
                         orpc_code code, const ProtobufCMessage *resp)
{
    if (m->idempotency != ORPC_NO_SIDE_EFFECTS &&
        strcmp(m->http->verb, "GET") != 0) {
        /* it would happen twice */
        orpc__routed_count(r, m, C_UNMIRRORED);
        return;
    }
    if (to_legacy ? r->legacy == NULL : r->channel == NULL) {
        orpc__routed_count(r, m, C_DROPPED); /* nowhere to mirror to */
        return;
    }
    mirror *mi = calloc(1, sizeof(*mi));
    if (mi == NULL)
        return;
    mi->req = orpc__copy_message(req);
    orpc_json_opts jo = {.emit_defaults = 1};
    if (resp != NULL && orpc_json_encode(&mi->primary_json, NULL, m->output,
                                         resp, &jo, NULL) != 0)
        mi->primary_json = NULL;
    if (mi->req == NULL) {
        mirror_free(mi);
        return;
    }
    mi->t.run = mirror_run;
    mi->t.discard = mirror_discard;
    mi->t.is_mirror = 1;
    mi->m = m;
    mi->to_legacy = to_legacy;
    mi->primary_code = code;
    if (orpc__routed_submit(r, &mi->t) != 0) {
        orpc__routed_count(r, m, C_DROPPED);
        mirror_free(mi);
    }
}
