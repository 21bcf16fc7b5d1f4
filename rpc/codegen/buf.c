/*
 * buf.c — growable text buffer and string helpers for protoc-gen-orpc.
 *
 * The generator builds each output file in memory and hands it to protoc in
 * one piece, so everything it writes goes through cg_buf.  The buffer grows
 * geometrically; after a failed allocation it drops further writes and
 * remembers the failure, which the caller turns into one error.
 */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cg_buf_init(cg_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void cg_buf_free(cg_buf *b)
{
    free(b->data);
    cg_buf_init(b);
}

static int grow(cg_buf *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) {
        b->oom = 1;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

void cg_buf_put(cg_buf *b, const char *s, size_t n)
{
    if (grow(b, n) != 0)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void cg_buf_puts(cg_buf *b, const char *s)
{
    cg_buf_put(b, s, strlen(s));
}

void cg_buf_printf(cg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || grow(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *cg_buf_take(cg_buf *b)
{
    char *d;
    if (b->oom) {
        cg_buf_free(b);
        return NULL;
    }
    if (b->data == NULL)
        return cg_strdup("");
    d = b->data;
    cg_buf_init(b);
    return d;
}

void cg_buf_c_escaped(cg_buf *b, const char *s)
{
    char tmp[8];
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)*p;
            cg_buf_put(b, tmp, 2);
        } else if (*p == '?' && p[1] == '?') {
            cg_buf_puts(b, "?\\"); /* no trigraphs */
        } else if (*p < 0x20 || *p >= 0x7f) {
            snprintf(tmp, sizeof(tmp), "\\%03o", *p);
            cg_buf_puts(b, tmp);
        } else {
            cg_buf_put(b, (const char *)p, 1);
        }
    }
}

static int is_blank(const char *s)
{
    for (; s && *s; s++)
        if (*s != ' ' && *s != '\n' && *s != '\t' && *s != '\r')
            return 0;
    return 1;
}

/* One comment line, defusing comment delimiters and trailing spaces. */
static void doc_line(cg_buf *b, int indent, const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\r' || s[n - 1] == '\t'))
        n--;
    cg_buf_printf(b, "%*s *", indent, "");
    if (n > 0)
        cg_buf_puts(b, " ");
    /* protoc keeps the space after "//"; drop one leading space. */
    if (n > 0 && s[0] == ' ') {
        s++;
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '*' && i + 1 < n && s[i + 1] == '/')
            cg_buf_puts(b, "* "); /* "*" "/" would end the comment */
        else if (s[i] == '/' && i + 1 < n && s[i + 1] == '*')
            cg_buf_puts(b, "/ ");
        else if (s[i] == '?' && i + 1 < n && s[i + 1] == '?')
            cg_buf_puts(b, "? "); /* no trigraphs, even in comments */
        else if ((unsigned char)s[i] < 0x20 && s[i] != '\t')
            cg_buf_puts(b, " ");
        else
            cg_buf_put(b, s + i, 1);
    }
    cg_buf_puts(b, "\n");
}

static void doc_text(cg_buf *b, int indent, const char *text)
{
    const char *p = text;
    /* Skip leading blank lines; collapse trailing ones. */
    while (*p == '\n')
        p++;
    size_t end = strlen(p);
    while (end > 0 && (p[end - 1] == '\n' || p[end - 1] == ' '))
        end--;
    size_t i = 0;
    while (i < end) {
        const char *nl = memchr(p + i, '\n', end - i);
        size_t n = nl ? (size_t)(nl - (p + i)) : end - i;
        doc_line(b, indent, p + i, n);
        i += n + 1;
    }
}

void cg_buf_doc(cg_buf *b, int indent, const char *comment, const char *extra)
{
    int has_c = !is_blank(comment), has_e = !is_blank(extra);
    if (!has_c && !has_e)
        return;
    cg_buf_printf(b, "%*s/**\n", indent, "");
    if (has_c)
        doc_text(b, indent, comment);
    if (has_c && has_e)
        cg_buf_printf(b, "%*s *\n", indent, "");
    if (has_e)
        doc_text(b, indent, extra);
    cg_buf_printf(b, "%*s */\n", indent, "");
}

char *cg_strdupf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    char *s = malloc((size_t)n + 1);
    if (s == NULL)
        abort();
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

char *cg_strdup(const char *s)
{
    return cg_strdupf("%s", s ? s : "");
}

void *cg_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        abort();
    return p;
}
