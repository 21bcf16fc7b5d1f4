/*
 * common/path_template.h — google.api.http path templates (private; shared
 * by protoc-gen-orpc, which checks them, and the compat layer, which fills
 * them in).
 *
 * Shared by protoc-gen-orpc, which validates every template at generation
 * time, and the compat layer, which expands them into URLs.  Grammar
 * (google/api/http.proto):
 *
 *     Template = "/" Segments [ Verb ] ;
 *     Segments = Segment { "/" Segment } ;
 *     Segment  = "*" | "**" | LITERAL | Variable ;
 *     Variable = "{" FieldPath [ "=" Segments ] "}" ;
 *     FieldPath = IDENT { "." IDENT } ;
 *     Verb     = ":" LITERAL ;
 */
#ifndef ORPC_PATH_TEMPLATE_H
#define ORPC_PATH_TEMPLATE_H

#include <stddef.h>

/** Longest template accepted, in bytes. */
#define ORPC_TMPL_MAX_LEN 4096
/** Most segments (and so most variables) in one template. */
#define ORPC_TMPL_MAX_SEGMENTS 64

typedef enum orpc_tmpl_seg_kind {
    ORPC_TMPL_LITERAL = 0, /* matches itself */
    ORPC_TMPL_STAR = 1,    /* "*": one segment */
    ORPC_TMPL_DSTAR = 2    /* "**": zero or more segments; last only */
} orpc_tmpl_seg_kind;

typedef struct orpc_tmpl_segment {
    orpc_tmpl_seg_kind kind;
    char *literal; /* ORPC_TMPL_LITERAL: the text, NUL-terminated */
    int var;       /* index of the variable this segment belongs to, or -1 */
} orpc_tmpl_segment;

typedef struct orpc_tmpl_var {
    char *field_path; /* "a.b.c" */
    size_t first;     /* first segment bound to the variable */
    size_t count;     /* number of segments bound (1 for "{f}") */
} orpc_tmpl_var;

typedef struct orpc_path_template {
    size_t n_segments;
    orpc_tmpl_segment *segments;
    size_t n_vars;
    orpc_tmpl_var *vars;
    char *verb; /* after ':', or NULL */
} orpc_path_template;

/*
 * Parses |text|.  On success returns 0 and sets |*out| (free with
 * orpc__path_template_free()).  On failure returns -1, writes a reason into
 * |err| (|errlen| bytes, may be 0) and the 0-based byte offset in |text|
 * where the problem is into |*err_pos| (when not NULL); returns -2 when
 * memory runs out.
 */
int orpc__path_template_parse(const char *text, orpc_path_template **out,
                              char *err, size_t errlen, size_t *err_pos);

/* Frees a parsed template; NULL is a no-op. */
void orpc__path_template_free(orpc_path_template *t);

/*
 * Writes the template's shape, with variable names erased ("{id}" becomes
 * a star, "{name=shelves/STAR}" becomes "shelves/STAR"), into |buf|: two
 * templates that match the same URLs have the same shape.  Returns the length,
 * or -1 when |buf| is too small.
 */
int orpc__path_template_shape(const orpc_path_template *t, char *buf,
                              size_t len);

#endif /* ORPC_PATH_TEMPLATE_H */
