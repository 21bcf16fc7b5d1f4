/*
 * model.c — indexes the request's types and locations; protoc-c's naming.
 *
 * Types are collected depth-first from every file protoc sent (not only the
 * ones to generate: a field may name a type from any import) and sorted by
 * full name for binary search.  Each remembers its source path so errors and
 * comments can be located.  Naming mirrors protoc-c 1.4 exactly, since the
 * generated code must name protoc-c's symbols.
 */
#include "model.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- naming ------------------------------------------------------------- */

typedef char *(*piece_fn)(const char *piece, size_t n);

static char *to_camel(const char *s, size_t n)
{
    char *r = cg_xcalloc(n + 1, 1);
    size_t j = 0;
    int up = 1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') {
            up = 1;
        } else if (up) {
            r[j++] = (char)toupper((unsigned char)s[i]);
            up = 0;
        } else {
            r[j++] = s[i];
        }
    }
    return r;
}

static char *camel_to(const char *s, size_t n, int upper)
{
    char *r = cg_xcalloc(2 * n + 1, 1);
    size_t j = 0;
    int was_upper = 1;
    for (size_t i = 0; i < n; i++) {
        int is_upper = isupper((unsigned char)s[i]) != 0;
        if (is_upper && !was_upper)
            r[j++] = '_';
        r[j++] = upper ? (char)toupper((unsigned char)s[i])
                       : (char)tolower((unsigned char)s[i]);
        was_upper = is_upper;
    }
    return r;
}

static char *to_lower_piece(const char *s, size_t n)
{
    return camel_to(s, n, 0);
}
static char *to_upper_piece(const char *s, size_t n)
{
    return camel_to(s, n, 1);
}

static char *join_pieces(const char *full, piece_fn fn)
{
    cg_buf b;
    cg_buf_init(&b);
    const char *p = full;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n > 0) {
            char *piece = fn(p, n);
            if (b.len > 0)
                cg_buf_puts(&b, "__");
            cg_buf_puts(&b, piece);
            free(piece);
        }
        p += n + (dot ? 1 : 0);
    }
    char *r = cg_buf_take(&b);
    if (r == NULL)
        abort();
    return r;
}

char *cg_full_to_c(const char *full)
{
    return join_pieces(full, to_camel);
}
char *cg_full_to_lower(const char *full)
{
    return join_pieces(full, to_lower_piece);
}
char *cg_full_to_upper(const char *full)
{
    return join_pieces(full, to_upper_piece);
}
char *cg_camel_to_lower(const char *name)
{
    return camel_to(name, strlen(name), 0);
}
char *cg_camel_to_upper(const char *name)
{
    return camel_to(name, strlen(name), 1);
}

char *cg_file_ident(const char *filename)
{
    size_t n = strlen(filename);
    char *r = cg_xcalloc(n + 1, 1);
    for (size_t i = 0; i < n; i++)
        r[i] = isalnum((unsigned char)filename[i]) ? filename[i] : '_';
    return r;
}

int cg_is_c_keyword(const char *name)
{
    static const char *const kw[] = {"auto",          "break",
                                     "case",          "char",
                                     "const",         "continue",
                                     "default",       "do",
                                     "double",        "else",
                                     "enum",          "extern",
                                     "float",         "for",
                                     "goto",          "if",
                                     "inline",        "int",
                                     "long",          "register",
                                     "restrict",      "return",
                                     "short",         "signed",
                                     "sizeof",        "static",
                                     "struct",        "switch",
                                     "typedef",       "union",
                                     "unsigned",      "void",
                                     "volatile",      "while",
                                     "_Bool",         "_Complex",
                                     "_Alignas",      "_Alignof",
                                     "_Atomic",       "_Generic",
                                     "_Noreturn",     "_Static_assert",
                                     "_Thread_local", "bool",
                                     "true",          "false"};
    for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
        if (strcmp(kw[i], name) == 0)
            return 1;
    return 0;
}

char *cg_qualify(const char *package, const char *name)
{
    if (package == NULL || package[0] == '\0')
        return cg_strdup(name);
    return cg_strdupf("%s.%s", package, name);
}

char *cg_strip_proto(const char *filename)
{
    size_t n = strlen(filename);
    if (n > 6 && strcmp(filename + n - 6, ".proto") == 0)
        n -= 6;
    return cg_strdupf("%.*s", (int)n, filename);
}

/* --- type index --------------------------------------------------------- */

static void add_type(cg_ctx *ctx, size_t *cap, const cg_file *file,
                     const char *full, const cg_message *msg,
                     const cg_enum *enm, const int32_t *path, size_t len)
{
    if (ctx->n_types == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        cg_type *t = realloc(ctx->types, *cap * sizeof(*t));
        if (t == NULL)
            abort();
        ctx->types = t;
    }
    cg_type *t = &ctx->types[ctx->n_types++];
    memset(t, 0, sizeof(*t));
    t->full_name = cg_strdup(full);
    t->file = file;
    t->msg = msg;
    t->enm = enm;
    t->c_type = cg_full_to_c(full);
    t->c_lower = cg_full_to_lower(full);
    t->path_len = len < CG_MAX_PATH ? len : CG_MAX_PATH;
    memcpy(t->path, path, t->path_len * sizeof(int32_t));
}

static int index_message(cg_ctx *ctx, size_t *cap, const cg_file *file,
                         const char *scope, const cg_message *m, int32_t *path,
                         size_t len)
{
    if (len + 2 > CG_MAX_PATH)
        return cg_error(ctx, file, path, len, "messages nest too deeply");
    char *full = cg_qualify(scope, m->name);
    add_type(ctx, cap, file, full, m, NULL, path, len);
    for (size_t i = 0; i < m->n_enum_type; i++) {
        path[len] = CG_MSG_ENUM;
        path[len + 1] = (int32_t)i;
        char *ef = cg_qualify(full, m->enum_type[i]->name);
        add_type(ctx, cap, file, ef, NULL, m->enum_type[i], path, len + 2);
        free(ef);
    }
    for (size_t i = 0; i < m->n_nested_type; i++) {
        path[len] = CG_MSG_NESTED;
        path[len + 1] = (int32_t)i;
        if (index_message(ctx, cap, file, full, m->nested_type[i], path,
                          len + 2) != 0) {
            free(full);
            return -1;
        }
    }
    free(full);
    return 0;
}

static int cmp_type(const void *a, const void *b)
{
    return strcmp(((const cg_type *)a)->full_name,
                  ((const cg_type *)b)->full_name);
}

int cg_ctx_init(cg_ctx *ctx,
                const Google__Protobuf__Compiler__CodeGeneratorRequest *req)
{
    size_t cap = 0;
    int32_t path[CG_MAX_PATH];
    memset(ctx, 0, sizeof(*ctx));
    ctx->req = req;
    for (size_t f = 0; f < req->n_proto_file; f++) {
        const cg_file *file = req->proto_file[f];
        const char *pkg = file->package ? file->package : "";
        for (size_t i = 0; i < file->n_enum_type; i++) {
            path[0] = CG_FILE_ENUM;
            path[1] = (int32_t)i;
            char *full = cg_qualify(pkg, file->enum_type[i]->name);
            add_type(ctx, &cap, file, full, NULL, file->enum_type[i], path, 2);
            free(full);
        }
        for (size_t i = 0; i < file->n_message_type; i++) {
            path[0] = CG_FILE_MESSAGE;
            path[1] = (int32_t)i;
            if (index_message(ctx, &cap, file, pkg, file->message_type[i], path,
                              2) != 0)
                return -1;
        }
    }
    if (ctx->n_types > 0)
        qsort(ctx->types, ctx->n_types, sizeof(cg_type), cmp_type);
    return 0;
}

void cg_ctx_free(cg_ctx *ctx)
{
    for (size_t i = 0; i < ctx->n_types; i++) {
        free(ctx->types[i].full_name);
        free(ctx->types[i].c_type);
        free(ctx->types[i].c_lower);
    }
    free(ctx->types);
    free(ctx->error);
    memset(ctx, 0, sizeof(*ctx));
}

const cg_file *cg_find_file(const cg_ctx *ctx, const char *name)
{
    for (size_t i = 0; i < ctx->req->n_proto_file; i++)
        if (strcmp(ctx->req->proto_file[i]->name, name) == 0)
            return ctx->req->proto_file[i];
    return NULL;
}

const cg_type *cg_find_type(const cg_ctx *ctx, const char *name)
{
    cg_type key = {0};
    if (name == NULL)
        return NULL;
    if (name[0] == '.')
        name++;
    key.full_name = (char *)name;
    return bsearch(&key, ctx->types, ctx->n_types, sizeof(cg_type), cmp_type);
}

const cg_type *cg_type_of_message(const cg_ctx *ctx, const cg_message *msg)
{
    for (size_t i = 0; i < ctx->n_types; i++)
        if (ctx->types[i].msg == msg)
            return &ctx->types[i];
    return NULL;
}

const cg_type *cg_type_of_enum(const cg_ctx *ctx, const cg_enum *enm)
{
    for (size_t i = 0; i < ctx->n_types; i++)
        if (ctx->types[i].enm == enm)
            return &ctx->types[i];
    return NULL;
}

/* --- locations ---------------------------------------------------------- */

static const Google__Protobuf__SourceCodeInfo__Location *
find_location(const cg_file *file, const int32_t *path, size_t len)
{
    const Google__Protobuf__SourceCodeInfo *sci = file->source_code_info;
    if (sci == NULL)
        return NULL;
    for (size_t i = 0; i < sci->n_location; i++) {
        const Google__Protobuf__SourceCodeInfo__Location *l = sci->location[i];
        if (l->n_path == len &&
            (len == 0 || memcmp(l->path, path, len * sizeof(int32_t)) == 0))
            return l;
    }
    return NULL;
}

int cg_error(cg_ctx *ctx, const cg_file *file, const int32_t *path,
             size_t path_len, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    if (ctx->error != NULL)
        return -1;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const Google__Protobuf__SourceCodeInfo__Location *loc = NULL;
    for (size_t n = path_len + 1; n-- > 0 && loc == NULL;)
        loc = find_location(file, path, n);
    if (loc != NULL && loc->n_span >= 2 && loc->n_path > 0)
        ctx->error = cg_strdupf("%s:%d:%d: %s", file->name, loc->span[0] + 1,
                                loc->span[1] + 1, msg);
    else
        ctx->error = cg_strdupf("%s: %s", file->name, msg);
    return -1;
}

const char *cg_comment(const cg_file *file, const int32_t *path,
                       size_t path_len)
{
    const Google__Protobuf__SourceCodeInfo__Location *l =
        find_location(file, path, path_len);
    if (l == NULL)
        return NULL;
    if (l->leading_comments != NULL && l->leading_comments[0] != '\0')
        return l->leading_comments;
    return l->trailing_comments;
}
