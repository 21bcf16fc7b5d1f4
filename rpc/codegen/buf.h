/*
 * buf.h — growable text buffer for the code generator (internal).
 */
#ifndef ORPC_CG_BUF_H
#define ORPC_CG_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct cg_buf {
    char *data;
    size_t len;
    size_t cap;
    int oom; /* set once an allocation failed; further writes are dropped */
} cg_buf;

void cg_buf_init(cg_buf *b);
void cg_buf_free(cg_buf *b);
void cg_buf_put(cg_buf *b, const char *s, size_t n);
void cg_buf_puts(cg_buf *b, const char *s);
void cg_buf_printf(cg_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Takes the contents (NUL-terminated) and resets |b|; NULL after OOM. */
char *cg_buf_take(cg_buf *b);

/* Appends |s| as the body of a C string literal (no quotes). */
void cg_buf_c_escaped(cg_buf *b, const char *s);

/*
 * Appends |comment| (a proto comment, lines separated by '\n') as a doc
 * comment indented by |indent| spaces, opening with "/" "**"; nothing when
 * |comment| is NULL or blank.  |extra| (may be NULL) is appended as a further
 * paragraph.  Comment terminators inside the text are defused.
 */
void cg_buf_doc(cg_buf *b, int indent, const char *comment, const char *extra);

/* malloc'd printf; aborts the generator on OOM (a plugin has no better
 * recourse, and protoc reports the crash as a plugin failure). */
char *cg_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *cg_strdup(const char *s);
void *cg_xcalloc(size_t n, size_t size);

#endif
