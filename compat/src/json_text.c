/*
 * json_text.c — the text side of the proto3 JSON mapping: strict UTF-8,
 * JSON string escaping, protoc's JSON names, numbers as text in both
 * directions (reals in their shortest exact form, integers exactly from any
 * JSON number spelling), and the JSON paths that error details start with
 * ("$.items[2].when", "$.labels[\"k\"]", cut in front when too long).
 *
 * Numbers ignore the locale's decimal point without changing it (setlocale
 * is process-wide): the point is found by formatting 0.5 and swapped on the
 * way in and out.  No libm: liborpc-compat does not link it, so fabs/floor
 * are done by hand (isnan/isinf/isfinite are macros).  No state outside the
 * arguments.
 */
#include "json_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/detail.h"

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
int orpc__json_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        uint32_t min;
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
            min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
            min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < len) {
            return 0;
        }
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return 0;
        }
        i += len;
    }
    return 1;
}

/* Appends |s| as the inside of a JSON string literal. */
void orpc__json_escape(orpc__buf *b, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char tmp[8];
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            if (c < 0x20) {
                snprintf(tmp, sizeof tmp, "\\u%04x", c);
                esc = tmp;
            }
            break;
        }
        if (esc != NULL) {
            orpc__buf_append(b, s + run, i - run);
            orpc__buf_puts(b, esc);
            run = i + 1;
        }
    }
    orpc__buf_append(b, s + run, n - run);
}

/* |s| quoted for an error message: JSON-escaped, cut (at a character
 * boundary) after |max| bytes. */
void orpc__json_quote(orpc__buf *b, const char *s, size_t max)
{
    size_t n = strlen(s);
    int cut = 0;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
            n--;
        }
        cut = 1;
    }
    orpc__buf_putc(b, '"');
    orpc__json_escape(b, s, n);
    orpc__buf_puts(b, cut ? "...\"" : "\"");
}

/* protoc's ToJsonName: "foo_bar" -> "fooBar", compared with |key|. */
int orpc__json_name_eq(const char *name, const char *key)
{
    int up = 0;
    for (; *name != '\0'; name++) {
        char c = *name;
        if (c == '_') {
            up = 1;
            continue;
        }
        if (up && orpc__json_islower(c)) {
            c = (char)(c - 'a' + 'A');
        }
        up = 0;
        if (*key++ != c) {
            return 0;
        }
    }
    return *key == '\0';
}

/* protoc's ToJsonName into a malloc'd string. */
char *orpc__json_name_dup(const char *name)
{
    size_t n = strlen(name);
    char *r = malloc(n + 1);
    if (r == NULL) {
        return NULL;
    }
    size_t j = 0;
    int up = 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '_') {
            up = 1;
            continue;
        }
        if (up && orpc__json_islower(c)) {
            c = (char)(c - 'a' + 'A');
        }
        up = 0;
        r[j++] = c;
    }
    r[j] = '\0';
    return r;
}

/* ------------------------------------------------------------------ */
/* Numbers as text, independent of the locale's decimal point          */

/* The current locale's decimal point ("." in the C locale). */
static void locale_point(char pt[8])
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.1f", 0.5);
    const char *five = strchr(buf + 1, '5');
    size_t n = five != NULL ? (size_t)(five - (buf + 1)) : 0;
    if (n == 0 || n > 7) {
        strcpy(pt, ".");
        return;
    }
    memcpy(pt, buf + 1, n);
    pt[n] = '\0';
}

/* Copies |in| to |out| (|cap| bytes) replacing the string |from| by |to|. */
static void replace_point(const char *in, char *out, size_t cap,
                          const char *from, const char *to)
{
    size_t fl = strlen(from);
    size_t tl = strlen(to);
    size_t j = 0;
    while (*in != '\0' && j + 1 < cap) {
        if (strncmp(in, from, fl) == 0 && j + tl < cap) {
            memcpy(out + j, to, tl);
            j += tl;
            in += fl;
        } else {
            out[j++] = *in++;
        }
    }
    out[j] = '\0';
}

/* |v| (finite) in the shortest %g form that reads back as |v|, with '.'. */
void orpc__json_fmt_double(double v, char *out, size_t cap)
{
    char tmp[64];
    if (v == 0 && signbit(v)) {
        snprintf(out, cap, "-0.0"); /* "-0" would read back as integer 0 */
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*g", p, v);
        if (p == 17 || strtod(tmp, NULL) == v) {
            break;
        }
    }
    char pt[8];
    locale_point(pt);
    replace_point(tmp, out, cap, pt, ".");
}

/* The double nearest to the shortest decimal that reads back as |f|. */
double orpc__json_float_as_double(float f)
{
    char tmp[64];
    for (int p = 1; p <= 9; p++) {
        snprintf(tmp, sizeof tmp, "%.*g", p, (double)f);
        if (strtof(tmp, NULL) == f) {
            return strtod(tmp, NULL);
        }
    }
    return (double)f;
}

/* Whether s[0..n) is a JSON number:
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int json_number_syntax(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-') {
        i++;
    }
    if (i >= n || !orpc__json_isdigit(s[i])) {
        return 0;
    }
    if (s[i] == '0') {
        i++;
    } else {
        while (i < n && orpc__json_isdigit(s[i])) {
            i++;
        }
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !orpc__json_isdigit(s[i])) {
            return 0;
        }
        while (i < n && orpc__json_isdigit(s[i])) {
            i++;
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) {
            i++;
        }
        if (i >= n || !orpc__json_isdigit(s[i])) {
            return 0;
        }
        while (i < n && orpc__json_isdigit(s[i])) {
            i++;
        }
    }
    return i == n;
}

/* A JSON number in text as a double; ORPC__JSON_NUM_RANGE when it overflows. */
int orpc__json_parse_double(const char *s, size_t n, double *out)
{
    if (!json_number_syntax(s, n)) {
        return ORPC__JSON_NUM_SYNTAX;
    }
    char pt[8];
    locale_point(pt);
    size_t pl = strlen(pt);
    if (n > (SIZE_MAX - 1) / (pl + 1)) {
        return ORPC__JSON_NUM_RANGE;
    }
    size_t cap = n * pl + 1;
    char small[128];
    char *buf = cap <= sizeof small ? small : malloc(cap);
    if (buf == NULL) {
        return ORPC__JSON_NUM_NOMEM;
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            memcpy(buf + j, pt, pl);
            j += pl;
        } else {
            buf[j++] = s[i];
        }
    }
    buf[j] = '\0';
    char *end = NULL;
    double v = strtod(buf, &end);
    int ok = end == buf + j;
    if (buf != small) {
        free(buf);
    }
    if (!ok) {
        return ORPC__JSON_NUM_SYNTAX;
    }
    if (isinf(v)) {
        return ORPC__JSON_NUM_RANGE;
    }
    *out = v;
    return ORPC__JSON_NUM_OK;
}

/* The exact integer that JSON number text s[0..n) denotes, as a sign and a
 * magnitude: ORPC__JSON_NUM_FRACTION when it is not integral,
 * ORPC__JSON_NUM_RANGE when the magnitude exceeds 64 bits. */
int orpc__json_parse_int(const char *s, size_t n, int *neg, uint64_t *mag)
{
    if (!json_number_syntax(s, n)) {
        return ORPC__JSON_NUM_SYNTAX;
    }
    size_t i = 0;
    *neg = 0;
    *mag = 0;
    if (s[0] == '-') {
        *neg = 1;
        i = 1;
    }
    size_t int0 = i;
    while (i < n && orpc__json_isdigit(s[i])) {
        i++;
    }
    size_t int1 = i;
    size_t frac0 = i;
    size_t frac1 = i;
    if (i < n && s[i] == '.') {
        frac0 = ++i;
        while (i < n && orpc__json_isdigit(s[i])) {
            i++;
        }
        frac1 = i;
    }
    int64_t exp = 0;
    if (i < n) { /* [eE][+-]?digits */
        i++;
        int eneg = 0;
        if (s[i] == '+' || s[i] == '-') {
            eneg = s[i] == '-';
            i++;
        }
        for (; i < n; i++) {
            if (exp < 1000000) {
                exp = exp * 10 + (s[i] - '0');
            }
        }
        if (eneg) {
            exp = -exp;
        }
    }
    int64_t nint = (int64_t)(int1 - int0);
    int64_t nd = nint + (int64_t)(frac1 - frac0);
#define DIGIT(k)                                                               \
    ((k) < nint ? s[int0 + (size_t)(k)] : s[frac0 + (size_t)((k)-nint)])
    int64_t first = 0;
    while (first < nd && DIGIT(first) == '0') {
        first++;
    }
    if (first == nd) {
        return ORPC__JSON_NUM_OK; /* zero, whatever the exponent */
    }
    int64_t e10 = exp - (int64_t)(frac1 - frac0);
    int64_t last = nd;
    if (e10 < 0) {
        if (nd + e10 <= first) {
            return ORPC__JSON_NUM_FRACTION;
        }
        last = nd + e10;
        for (int64_t k = last; k < nd; k++) {
            if (DIGIT(k) != '0') {
                return ORPC__JSON_NUM_FRACTION;
            }
        }
        e10 = 0;
    }
    if ((last - first) + e10 > 20) {
        return ORPC__JSON_NUM_RANGE;
    }
    uint64_t v = 0;
    for (int64_t k = first; k < last; k++) {
        unsigned d = (unsigned)(DIGIT(k) - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return ORPC__JSON_NUM_RANGE;
        }
        v = v * 10 + d;
    }
#undef DIGIT
    for (int64_t k = 0; k < e10; k++) {
        if (v > UINT64_MAX / 10) {
            return ORPC__JSON_NUM_RANGE;
        }
        v *= 10;
    }
    *mag = v;
    return ORPC__JSON_NUM_OK;
}

/* Whether finite |v| is an integer; every double from 2^52 up is. */
int orpc__json_is_integral(double v)
{
    if (orpc__json_dabs(v) >= 4503599627370496.0) {
        return 1;
    }
    return v == (double)(int64_t)v;
}

/* An integral double as sign and magnitude. */
int orpc__json_double_to_int(double v, int *neg, uint64_t *mag)
{
    if (!isfinite(v)) {
        return ORPC__JSON_NUM_RANGE;
    }
    if (!orpc__json_is_integral(v)) {
        return ORPC__JSON_NUM_FRACTION;
    }
    double a = orpc__json_dabs(v);
    if (a >= 18446744073709551616.0) {
        return ORPC__JSON_NUM_RANGE;
    }
    *neg = v < 0;
    *mag = (uint64_t)a;
    return ORPC__JSON_NUM_OK;
}

/* Whether a double fits a float field (values that round to ±FLT_MAX do). */
int orpc__json_fits_float(double v)
{
    return !isfinite(v) || orpc__json_dabs(v) < 0x1.ffffffp+127;
}

/* ------------------------------------------------------------------ */
/* Paths in error messages                                             */

const char *orpc__json_quoted(orpc__buf *tmp, const char *s)
{
    orpc__buf_truncate(tmp, 0);
    orpc__json_quote(tmp, s, 64);
    return tmp->failed ? "\"?\"" : orpc__buf_str(tmp);
}

/* Whether |k| can follow a '.' in a path: a short identifier. */
static int is_ident(const char *k)
{
    size_t n = 0;
    if (!(orpc__json_islower(k[0]) || orpc__json_isupper(k[0]) ||
          k[0] == '_')) {
        return 0;
    }
    for (; k[n] != '\0'; n++) {
        if (!(orpc__json_islower(k[n]) || orpc__json_isupper(k[n]) ||
              orpc__json_isdigit(k[n]) || k[n] == '_') ||
            n >= 64) {
            return 0;
        }
    }
    return 1;
}

size_t orpc__json_path_key(orpc__buf *path, const char *key)
{
    size_t mark = path->len;
    if (is_ident(key)) {
        orpc__buf_putc(path, '.');
        orpc__buf_puts(path, key);
    } else {
        orpc__buf_putc(path, '[');
        orpc__json_quote(path, key, 64);
        orpc__buf_putc(path, ']');
    }
    return mark;
}

size_t orpc__json_path_mapkey(orpc__buf *path, const char *key)
{
    size_t mark = path->len;
    orpc__buf_putc(path, '[');
    orpc__json_quote(path, key, 64);
    orpc__buf_putc(path, ']');
    return mark;
}

size_t orpc__json_path_index(orpc__buf *path, size_t i)
{
    size_t mark = path->len;
    orpc__buf_printf(path, "[%zu]", i);
    return mark;
}

void orpc__json_path_pop(orpc__buf *path, size_t mark)
{
    orpc__buf_truncate(path, mark);
}

/* The path is cut from the front when the message would not fit, so that
 * the reason and the innermost steps, which say the most, survive:
 * "$...[3].status: unknown enum value ...". */
void orpc__json_set_error(orpc_error_detail *d, int code, const orpc__buf *path,
                          const char *reason)
{
    const char *p = orpc__buf_str(path);
    size_t plen = strlen(p);
    size_t room = sizeof d->message - 1;
    size_t need = strlen(reason) + 2; /* ": " */
    if (plen + need > room && need + 8 < room) {
        size_t keep = room - need - 4; /* "$..." */
        const char *tail = p + plen - keep;
        const char *step = tail;
        while (*step != '\0' && *step != '.' && *step != '[') {
            step++; /* from the start of a step, when there is one */
        }
        if (*step != '\0') {
            tail = step;
        }
        while (*tail != '\0' && ((unsigned char)*tail & 0xC0) == 0x80) {
            tail++; /* not inside a UTF-8 sequence */
        }
        orpc__detail_set(d, code, "$...%s: %s", tail, reason);
        return;
    }
    orpc__detail_set(d, code, "%s: %s", p, reason);
}
