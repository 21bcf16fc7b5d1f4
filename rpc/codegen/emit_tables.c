/*
 * emit_tables.c — the data orpc's runtime and compat layer read: per
 * message its fields' JSON names, types and options; per enum its values'
 * legacy spellings; per service its methods with call kind, HTTP rules,
 * idempotency and options; per file a list of all of them.
 *
 * Everything is `const` data with designated initializers, so a reader sees
 * what each number means, and the tables land in read-only storage.
 */
#include <stdlib.h>
#include <string.h>

#include "emit.h"

/* ---- helpers ---- */

static void str_or_null(cg_buf *b, const char *s)
{
    if (s == NULL) {
        cg_buf_puts(b, "NULL");
        return;
    }
    cg_buf_puts(b, "\"");
    cg_buf_c_escaped(b, s);
    cg_buf_puts(b, "\"");
}

static const char *kind_name(cg_kind k)
{
    switch (k) {
    case CG_SERVER_STREAMING:
        return "ORPC_CALL_SERVER_STREAMING";
    case CG_CLIENT_STREAMING:
        return "ORPC_CALL_CLIENT_STREAMING";
    case CG_BIDI_STREAMING:
        return "ORPC_CALL_BIDI_STREAMING";
    default:
        return "ORPC_CALL_UNARY";
    }
}

static const char *idempotency_name(int level)
{
    switch (level) {
    case 1:
        return "ORPC_NO_SIDE_EFFECTS";
    case 2:
        return "ORPC_IDEMPOTENT";
    default:
        return "ORPC_IDEMPOTENCY_UNKNOWN";
    }
}

/* lowerCamelCase of a field name, as protoc computes json_name. */
static char *default_json_name(const char *name)
{
    char *r = cg_xcalloc(strlen(name) + 1, 1);
    size_t j = 0;
    int up = 0;
    for (const char *p = name; *p; p++) {
        if (*p == '_') {
            up = 1;
        } else if (up) {
            r[j++] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
            up = 0;
        } else {
            r[j++] = *p;
        }
    }
    return r;
}

static int cmp_field_number(const void *a, const void *b)
{
    int32_t x = (*(const cg_field *const *)a)->number;
    int32_t y = (*(const cg_field *const *)b)->number;
    return (x > y) - (x < y);
}

/* ---- declarations ---- */

void cg_emit_tables_decl(const cg_plan *plan, cg_buf *h)
{
    if (plan->n_types > 0) {
        cg_buf_puts(h, "\n/*\n * JSON names and orpc options of this file's "
                       "messages and enums\n * (orpc/method.h).\n */\n");
        for (size_t i = 0; i < plan->n_types; i++) {
            const cg_type *t = plan->types[i];
            cg_buf_printf(h, "extern const %s %s__orpc_info;\n",
                          t->msg ? "orpc_message_info" : "orpc_enum_info",
                          t->c_lower);
        }
    }
    for (size_t i = 0; i < plan->n_services; i++) {
        const cg_service_plan *sp = &plan->services[i];
        cg_buf_printf(h, "\n/** Methods, HTTP routes and options of %s. */\n",
                      sp->full_name);
        cg_buf_printf(h, "extern const orpc_service_desc %s__orpc_desc;\n",
                      sp->c_lower);
        for (size_t j = 0; j < sp->n_methods; j++)
            cg_buf_printf(
                h,
                "/** %s */\n"
                "extern const orpc_method_desc *const %s__method__%s;\n",
                sp->methods[j].path, sp->c_lower, sp->methods[j].lower);
    }
    cg_buf_printf(h, "\n/** Everything orpc generated for %s. */\n",
                  plan->file->name);
    cg_buf_printf(h, "extern const orpc_file_desc %s__orpc_file;\n",
                  plan->ident);
}

/* ---- messages ---- */

static void emit_message(const cg_plan *plan, const cg_type *t, cg_buf *c)
{
    const cg_message *m = t->msg;
    size_t n = m->n_field;
    const cg_field **sorted = cg_xcalloc(n, sizeof(*sorted));
    for (size_t i = 0; i < n; i++)
        sorted[i] = m->field[i];
    qsort(sorted, n, sizeof(*sorted), cmp_field_number);

    cg_buf_printf(c, "\n/* %s */\n", t->full_name);
    /* orpc.legacy_header of fields that have one. */
    for (size_t i = 0; i < n; i++) {
        Orpc__LegacyHeader *hd = NULL;
        if (cg_opt_legacy_header(sorted[i]->options, &hd) != 0 || hd == NULL)
            continue;
        cg_buf_printf(c,
                      "static const orpc_legacy_header "
                      "%s__%s__legacy_header = {\n    .name = ",
                      t->c_lower, sorted[i]->name);
        str_or_null(c, hd->name);
        cg_buf_puts(c, ",\n    .prefix = ");
        str_or_null(c, hd->prefix ? hd->prefix : "");
        cg_buf_puts(c, ",\n};\n");
        orpc__legacy_header__free_unpacked(hd, NULL);
    }
    if (n > 0) {
        cg_buf_printf(c,
                      "static const orpc_field_info %s__orpc_fields[%zu] = {\n",
                      t->c_lower, n);
        for (size_t i = 0; i < n; i++) {
            const cg_field *f = sorted[i];
            char *json = cg_str_set(f->json_name) ? cg_strdup(f->json_name)
                                                  : default_json_name(f->name);
            cg_buf_printf(c, "    {.number = %d, .json_name = ", f->number);
            str_or_null(c, json);
            free(json);
            const cg_type *ft = cg_str_set(f->type_name)
                                    ? cg_find_type(plan->ctx, f->type_name)
                                    : NULL;
            if (ft != NULL)
                cg_buf_printf(c, ",\n     .%s = &%s__orpc_info",
                              ft->msg ? "message" : "enum_info", ft->c_lower);
            Orpc__LegacyHeader *hd = NULL;
            if (cg_opt_legacy_header(f->options, &hd) == 0 && hd != NULL) {
                cg_buf_printf(c,
                              ",\n     .legacy_header = &%s__%s__legacy_header",
                              t->c_lower, f->name);
                orpc__legacy_header__free_unpacked(hd, NULL);
            }
            cg_buf_puts(c, "},\n");
        }
        cg_buf_puts(c, "};\n");
    }
    cg_buf_printf(c, "const orpc_message_info %s__orpc_info = {\n", t->c_lower);
    cg_buf_printf(c, "    .descriptor = &%s__descriptor,\n", t->c_lower);
    cg_buf_printf(c, "    .full_name = \"%s\",\n", t->full_name);
    cg_buf_printf(c, "    .n_fields = %zu,\n", n);
    if (n > 0)
        cg_buf_printf(c, "    .fields = %s__orpc_fields,\n", t->c_lower);
    else
        cg_buf_puts(c, "    .fields = NULL,\n");
    cg_buf_puts(c, "};\n");
    free(sorted);
}

/* ---- enums ---- */

static void emit_enum(const cg_type *t, cg_buf *c)
{
    const cg_enum *e = t->enm;
    cg_buf_printf(c, "\n/* %s */\n", t->full_name);
    if (e->n_value > 0) {
        cg_buf_printf(
            c, "static const orpc_enum_value_info %s__orpc_values[%zu] = {\n",
            t->c_lower, e->n_value);
        for (size_t i = 0; i < e->n_value; i++) {
            char *legacy = NULL;
            (void)cg_opt_legacy_name(e->value[i]->options, &legacy);
            cg_buf_printf(c, "    {.number = %d, .name = \"%s\"",
                          e->value[i]->number, e->value[i]->name);
            if (legacy != NULL) {
                cg_buf_puts(c, ", .legacy_name = ");
                str_or_null(c, legacy);
                free(legacy);
            }
            cg_buf_puts(c, "},\n");
        }
        cg_buf_puts(c, "};\n");
    }
    cg_buf_printf(c, "const orpc_enum_info %s__orpc_info = {\n", t->c_lower);
    cg_buf_printf(c, "    .descriptor = &%s__descriptor,\n", t->c_lower);
    cg_buf_printf(c, "    .full_name = \"%s\",\n", t->full_name);
    cg_buf_printf(c, "    .n_values = %zu,\n", e->n_value);
    if (e->n_value > 0)
        cg_buf_printf(c, "    .values = %s__orpc_values,\n", t->c_lower);
    else
        cg_buf_puts(c, "    .values = NULL,\n");
    cg_buf_puts(c, "};\n");
}

/* ---- services ---- */

static void emit_rule_fields(cg_buf *c, const Google__Api__HttpRule *r,
                             const char *indent)
{
    cg_buf_printf(c, "%s.verb = ", indent);
    str_or_null(c, cg_rule_verb(r));
    cg_buf_printf(c, ",\n%s.custom = %d,\n%s.path = ", indent,
                  r->pattern_case == GOOGLE__API__HTTP_RULE__PATTERN_CUSTOM,
                  indent);
    str_or_null(c, cg_rule_path(r));
    cg_buf_printf(c, ",\n%s.body = ", indent);
    str_or_null(c, cg_str_set(r->body) ? r->body : NULL);
    cg_buf_printf(c, ",\n%s.response_body = ", indent);
    str_or_null(c, cg_str_set(r->response_body) ? r->response_body : NULL);
    cg_buf_puts(c, ",\n");
}

static void emit_http(const cg_service_plan *sp, const cg_method_plan *mp,
                      cg_buf *c)
{
    const Google__Api__HttpRule *r = mp->http;
    if (r->n_additional_bindings > 0) {
        cg_buf_printf(
            c, "static const orpc_http_rule %s__%s__http_more[%zu] = {\n",
            sp->c_lower, mp->lower, r->n_additional_bindings);
        for (size_t i = 0; i < r->n_additional_bindings; i++) {
            cg_buf_puts(c, "    {\n");
            emit_rule_fields(c, r->additional_bindings[i], "        ");
            cg_buf_puts(c, "    },\n");
        }
        cg_buf_puts(c, "};\n");
    }
    cg_buf_printf(c, "static const orpc_http_rule %s__%s__http = {\n",
                  sp->c_lower, mp->lower);
    emit_rule_fields(c, r, "    ");
    cg_buf_printf(c, "    .n_additional_bindings = %zu,\n",
                  r->n_additional_bindings);
    if (r->n_additional_bindings > 0)
        cg_buf_printf(c, "    .additional_bindings = %s__%s__http_more,\n",
                      sp->c_lower, mp->lower);
    else
        cg_buf_puts(c, "    .additional_bindings = NULL,\n");
    cg_buf_puts(c, "};\n");
}

static void emit_service(const cg_plan *plan, const cg_service_plan *sp,
                         cg_buf *c)
{
    cg_buf_printf(c, "\n/* %s */\n", sp->full_name);
    for (size_t i = 0; i < sp->n_methods; i++)
        if (sp->methods[i].http != NULL)
            emit_http(sp, &sp->methods[i], c);
    if (sp->n_methods > 0) {
        cg_buf_printf(
            c, "static const orpc_method_desc %s__orpc_methods[%zu] = {\n",
            sp->c_lower, sp->n_methods);
        for (size_t i = 0; i < sp->n_methods; i++) {
            const cg_method_plan *mp = &sp->methods[i];
            cg_buf_puts(c, "    {\n");
            cg_buf_printf(c, "        .name = \"%s\",\n", mp->m->name);
            cg_buf_printf(c, "        .path = \"%s\",\n", mp->path);
            cg_buf_printf(c, "        .kind = %s,\n", kind_name(mp->kind));
            cg_buf_printf(c, "        .input = &%s__orpc_info,\n",
                          mp->in->c_lower);
            cg_buf_printf(c, "        .output = &%s__orpc_info,\n",
                          mp->out->c_lower);
            if (mp->http != NULL)
                cg_buf_printf(c, "        .http = &%s__%s__http,\n",
                              sp->c_lower, mp->lower);
            else
                cg_buf_puts(c, "        .http = NULL,\n");
            cg_buf_printf(c, "        .idempotency = %s,\n",
                          idempotency_name(mp->idempotency));
            cg_buf_printf(c, "        .legacy_no_auth = %d,\n", mp->no_auth);
            cg_buf_printf(c, "        .service = &%s__orpc_desc,\n",
                          sp->c_lower);
            cg_buf_puts(c, "    },\n");
        }
        cg_buf_puts(c, "};\n");
    }
    cg_buf_printf(c, "const orpc_service_desc %s__orpc_desc = {\n",
                  sp->c_lower);
    cg_buf_puts(c, "    .magic = ORPC_SERVICE_DESC_MAGIC,\n");
    cg_buf_puts(c, "    .method_size = sizeof(orpc_method_desc),\n");
    cg_buf_printf(c, "    .name = \"%s\",\n", sp->s->name);
    cg_buf_printf(c, "    .full_name = \"%s\",\n", sp->full_name);
    cg_buf_printf(c, "    .package = \"%s\",\n",
                  plan->file->package ? plan->file->package : "");
    cg_buf_printf(c, "    .n_methods = %zu,\n", sp->n_methods);
    if (sp->n_methods > 0)
        cg_buf_printf(c, "    .methods = %s__orpc_methods,\n", sp->c_lower);
    else
        cg_buf_puts(c, "    .methods = NULL,\n");
    cg_buf_puts(c, "    .legacy_url_env = ");
    str_or_null(c, sp->legacy_url_env);
    cg_buf_puts(c, ",\n    .legacy_default_url = ");
    str_or_null(c, sp->legacy_default_url);
    cg_buf_printf(c, ",\n    .file = &%s__orpc_file,\n};\n", plan->ident);
    for (size_t i = 0; i < sp->n_methods; i++)
        cg_buf_printf(c,
                      "const orpc_method_desc *const %s__method__%s = "
                      "&%s__orpc_methods[%zu];\n",
                      sp->c_lower, sp->methods[i].lower, sp->c_lower, i);
}

/* The file's FileDescriptorProto, serialized without source_code_info
 * (comments and positions: the bulk of it, and no use to a reflection
 * client), as a byte array, 16 bytes a line; and the orpc_file_desc of
 * every file it imports (each generated by orpc too: liborpc carries the
 * well-known ones). */
static size_t emit_descriptor(const cg_plan *plan, cg_buf *c)
{
    const char *id = plan->ident;
    cg_file stripped = *plan->file;
    stripped.source_code_info = NULL;
    size_t n =
        google__protobuf__file_descriptor_proto__get_packed_size(&stripped);
    uint8_t *bytes = cg_xcalloc(n ? n : 1, 1);
    google__protobuf__file_descriptor_proto__pack(&stripped, bytes);
    cg_buf_printf(c, "static const uint8_t %s__descriptor[%zu] = {\n", id,
                  n ? n : 1);
    if (n == 0)
        cg_buf_puts(c, "    0x00,\n");
    for (size_t i = 0; i < n; i++) {
        cg_buf_printf(c, "%s0x%02x,", i % 16 == 0 ? "    " : " ", bytes[i]);
        if (i % 16 == 15 || i + 1 == n)
            cg_buf_puts(c, "\n");
    }
    cg_buf_puts(c, "};\n");
    free(bytes);
    size_t nd = plan->file->n_dependency;
    if (nd == 0)
        return n;
    for (size_t i = 0; i < nd; i++) {
        char *dep = cg_file_ident(plan->file->dependency[i]);
        cg_buf_printf(c, "extern const orpc_file_desc %s__orpc_file;\n", dep);
        free(dep);
    }
    cg_buf_printf(c,
                  "static const orpc_file_desc *const %s__dependencies[%zu] "
                  "= {\n",
                  id, nd);
    for (size_t i = 0; i < nd; i++) {
        char *dep = cg_file_ident(plan->file->dependency[i]);
        cg_buf_printf(c, "    &%s__orpc_file,\n", dep);
        free(dep);
    }
    cg_buf_puts(c, "};\n");
    return n;
}

void cg_emit_tables_def(const cg_plan *plan, cg_buf *c)
{
    for (size_t i = 0; i < plan->n_types; i++) {
        if (plan->types[i]->msg)
            emit_message(plan, plan->types[i], c);
        else
            emit_enum(plan->types[i], c);
    }
    for (size_t i = 0; i < plan->n_services; i++)
        emit_service(plan, &plan->services[i], c);

    /* The file's index. */
    const char *id = plan->ident;
    cg_buf_printf(c, "\n/* %s */\n", plan->file->name);
    if (plan->n_services > 0) {
        cg_buf_printf(
            c, "static const orpc_service_desc *const %s__services[%zu] = {\n",
            id, plan->n_services);
        for (size_t i = 0; i < plan->n_services; i++)
            cg_buf_printf(c, "    &%s__orpc_desc,\n",
                          plan->services[i].c_lower);
        cg_buf_puts(c, "};\n");
    }
    size_t n_msg = 0, n_enum = 0;
    for (size_t i = 0; i < plan->n_types; i++)
        plan->types[i]->msg ? n_msg++ : n_enum++;
    for (int pass = 0; pass < 2; pass++) {
        size_t count = pass == 0 ? n_msg : n_enum;
        if (count == 0)
            continue;
        cg_buf_printf(c, "static const %s *const %s__%s[%zu] = {\n",
                      pass == 0 ? "orpc_message_info" : "orpc_enum_info", id,
                      pass == 0 ? "messages" : "enums", count);
        for (size_t i = 0; i < plan->n_types; i++)
            if ((plan->types[i]->msg != NULL) == (pass == 0))
                cg_buf_printf(c, "    &%s__orpc_info,\n",
                              plan->types[i]->c_lower);
        cg_buf_puts(c, "};\n");
    }
    size_t descriptor_size = emit_descriptor(plan, c);
    cg_buf_printf(c, "const orpc_file_desc %s__orpc_file = {\n", id);
    cg_buf_printf(c, "    .name = \"%s\",\n", plan->file->name);
    cg_buf_printf(c, "    .package = \"%s\",\n",
                  plan->file->package ? plan->file->package : "");
    cg_buf_printf(c, "    .n_services = %zu,\n", plan->n_services);
    if (plan->n_services > 0)
        cg_buf_printf(c, "    .services = %s__services,\n", id);
    else
        cg_buf_puts(c, "    .services = NULL,\n");
    cg_buf_printf(c, "    .n_messages = %zu,\n", n_msg);
    if (n_msg > 0)
        cg_buf_printf(c, "    .messages = %s__messages,\n", id);
    else
        cg_buf_puts(c, "    .messages = NULL,\n");
    cg_buf_printf(c, "    .n_enums = %zu,\n", n_enum);
    if (n_enum > 0)
        cg_buf_printf(c, "    .enums = %s__enums,\n", id);
    else
        cg_buf_puts(c, "    .enums = NULL,\n");
    cg_buf_printf(c, "    .descriptor = %s__descriptor,\n", id);
    cg_buf_printf(c, "    .descriptor_size = %zu,\n", descriptor_size);
    cg_buf_printf(c, "    .n_dependencies = %zu,\n", plan->file->n_dependency);
    if (plan->file->n_dependency > 0)
        cg_buf_printf(c, "    .dependencies = %s__dependencies,\n", id);
    else
        cg_buf_puts(c, "    .dependencies = NULL,\n");
    cg_buf_puts(c, "};\n");
}
