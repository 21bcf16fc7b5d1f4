/*
 * json.c — the proto3 JSON mapping (orpc/compat/json.h, json_internal.h) on
 * jansson, generic over protobuf-c's descriptors and the tables
 * protoc-gen-orpc generates (orpc/method.h).
 *
 * Messages are walked through their protobuf-c descriptors; the orpc tables
 * add JSON names, enum legacy spellings and the tables of field types.  A
 * type compiled without protoc-gen-orpc still works: its JSON names are
 * derived from the field names the way protoc derives them.  Well-known
 * types are recognised by their full name ("google.protobuf.Timestamp")
 * together with their generated struct size, and map fields by their entry
 * type (repeated message, fields key = 1 / value = 2, named after the field
 * + "Entry", nested in the message): protobuf-c 1.4 keeps no map flag.
 *
 * Decoding choices, all stricter than "the last key wins":
 *   - duplicate JSON keys are refused (jansson's JSON_REJECT_DUPLICATES), and
 *     so is one field given by both its JSON and its proto name; so are two
 *     members of one oneof (null members do not count);
 *   - nesting deeper than max_depth objects/arrays is refused before the
 *     decoder recurses (jansson itself stops at 2048);
 *   - integers are range-checked exactly: strings are parsed as exact
 *     decimals (exponent and fraction allowed when the value is integral),
 *     numbers must be integral; an integer literal beyond 64 bits makes
 *     jansson fail, and the document is then read again with every number
 *     as a double, where 64-bit fields accept only |v| <= 2^53;
 *   - bytes: standard or URL-safe base64, padded or not, but one alphabet
 *     per string, correct padding and zero trailing bits;
 *   - "\u0000" in strings and invalid UTF-8 are refused (jansson);
 *   - null means "unset" except for google.protobuf.Value (null_value) and
 *     NullValue fields; null inside a list or as a map value is refused;
 *   - unknown fields are refused unless ignore_unknown, which also skips
 *     unknown enum names;
 *   - required (proto2) strings and messages must be present; required
 *     scalars cannot be checked (protobuf-c keeps no presence for them);
 *   - an Any's "@type" resolves like on output (below);
 *   - the size of the text is the caller's to bound (|len|).
 * Every decode error is INVALID_ARGUMENT "<path>: <reason>", with
 * "(line L, column C)" for syntax errors (jansson's position); running out
 * of memory is RESOURCE_EXHAUSTED.  A message under construction is always
 * consistent for protobuf_c_message_free_unpacked(), which frees it on
 * error: values are stored only once complete, a oneof's case is set after
 * its member, a repeated count counts complete elements only.
 *
 * Encoding choices: compact output; fields in number order; reals in the
 * shortest form that reads back to the same double (float fields: to the
 * same float); Value numbers that are integers within ±2^53 as integers;
 * google.protobuf.Any only when its type resolves to a protobuf-c
 * descriptor reachable from the message being encoded or among liborpc's
 * well-known types and google.rpc.Status (there is no global type
 * registry), otherwise ORPC_EINVAL; nesting deeper than max_depth is
 * ORPC_EINVAL too, so that what orpc writes it can read.
 *
 * URL text (orpc__json_scalar_*): bytes as URL-safe base64 with padding;
 * bool only "true"/"false".  orpc__json_scalar_text() also takes one
 * element of a repeated field (query parameters repeat).
 * orpc__json_scalar_parse() (singular fields only) treats |member| as
 * a field inside its message (member - f->offset): it sets the oneof case
 * or proto2 has_ flag, and frees the value it replaces (which must then
 * have been allocated with |alloc|, or be the field's default).
 *
 * No libm: liborpc-compat does not link it, so fabs/floor are done by hand
 * (isnan/isinf/isfinite are macros).  Thread-safety: no state outside the
 * arguments; the locale's decimal point is handled without changing it.
 *
 * Why one file of ~3,500 lines: the encoder and the decoder walk the same
 * descriptor and well-known-type tables in step, and most of its length is
 * the per-type cases of both; issue 10 plans to split it along the
 * ProtobufCType switch it repeats (scalars, well-known types, maps).
 */
#include "json_internal.h"

#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/error.h>

#include "common/base64.h"
#include "common/buf.h"
#include "google/protobuf/any.orpc.h"
#include "google/protobuf/duration.orpc.h"
#include "google/protobuf/empty.orpc.h"
#include "google/protobuf/field_mask.orpc.h"
#include "google/protobuf/struct.orpc.h"
#include "google/protobuf/timestamp.orpc.h"
#include "google/protobuf/wrappers.orpc.h"
#include "google/rpc/status.orpc.h"

#define DEFAULT_MAX_DEPTH 64u
#define TS_MIN_SECONDS (-62135596800LL)     /* 0001-01-01T00:00:00Z */
#define TS_MAX_SECONDS 253402300799LL       /* 9999-12-31T23:59:59Z */
#define DUR_MAX_SECONDS 315576000000LL      /* 10000 years */
#define EXACT_DOUBLE_MAX 9007199254740992.0 /* 2^53 */

/* ------------------------------------------------------------------ */
/* Memory                                                              */

static void *pb_alloc(ProtobufCAllocator *a, size_t n)
{
    if (n == 0) {
        n = 1;
    }
    return a != NULL ? a->alloc(a->allocator_data, n) : malloc(n);
}

static void pb_free(ProtobufCAllocator *a, void *p)
{
    if (p == NULL) {
        return;
    }
    if (a != NULL) {
        a->free(a->allocator_data, p);
    } else {
        free(p);
    }
}

static char *pb_strndup(ProtobufCAllocator *a, const char *s, size_t n)
{
    if (n == SIZE_MAX) {
        return NULL;
    }
    char *r = pb_alloc(a, n + 1);
    if (r != NULL) {
        memcpy(r, s, n);
        r[n] = '\0';
    }
    return r;
}

/* A new message of type |d|, initialised; NULL when memory runs out. */
static ProtobufCMessage *pb_new(ProtobufCAllocator *a,
                                const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = pb_alloc(a, d->sizeof_message);
    if (m == NULL) {
        return NULL;
    }
    if (d->message_init != NULL) {
        d->message_init(m);
    } else {
        memset(m, 0, d->sizeof_message);
        m->descriptor = d;
    }
    return m;
}

static void pb_msg_free(ProtobufCAllocator *a, ProtobufCMessage *m)
{
    if (m != NULL) {
        protobuf_c_message_free_unpacked(m, a);
    }
}

/* ------------------------------------------------------------------ */
/* Text helpers                                                        */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

static int is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static int utf8_valid(const char *s, size_t n)
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
static void sb_escape(orpc__buf *b, const char *s, size_t n)
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
static void sb_quote(orpc__buf *b, const char *s, size_t max)
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
    sb_escape(b, s, n);
    orpc__buf_puts(b, cut ? "...\"" : "\"");
}

/* protoc's ToJsonName: "foo_bar" -> "fooBar", compared with |key|. */
static int json_name_eq(const char *name, const char *key)
{
    int up = 0;
    for (; *name != '\0'; name++) {
        char c = *name;
        if (c == '_') {
            up = 1;
            continue;
        }
        if (up && is_lower(c)) {
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
static char *json_name_dup(const char *name)
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
        if (up && is_lower(c)) {
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
static void fmt_double(double v, char *out, size_t cap)
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
static double float_as_double(float f)
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
    if (i >= n || !is_digit(s[i])) {
        return 0;
    }
    if (s[i] == '0') {
        i++;
    } else {
        while (i < n && is_digit(s[i])) {
            i++;
        }
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !is_digit(s[i])) {
            return 0;
        }
        while (i < n && is_digit(s[i])) {
            i++;
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) {
            i++;
        }
        if (i >= n || !is_digit(s[i])) {
            return 0;
        }
        while (i < n && is_digit(s[i])) {
            i++;
        }
    }
    return i == n;
}

enum {
    NUM_OK = 0,
    NUM_SYNTAX = -1,
    NUM_FRACTION = -2,
    NUM_RANGE = -3,
    NUM_NOMEM = -4
};

/* A JSON number in text as a double; NUM_RANGE when it overflows. */
static int parse_double_text(const char *s, size_t n, double *out)
{
    if (!json_number_syntax(s, n)) {
        return NUM_SYNTAX;
    }
    char pt[8];
    locale_point(pt);
    size_t pl = strlen(pt);
    if (n > (SIZE_MAX - 1) / (pl + 1)) {
        return NUM_RANGE;
    }
    size_t cap = n * pl + 1;
    char small[128];
    char *buf = cap <= sizeof small ? small : malloc(cap);
    if (buf == NULL) {
        return NUM_NOMEM;
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
        return NUM_SYNTAX;
    }
    if (isinf(v)) {
        return NUM_RANGE;
    }
    *out = v;
    return NUM_OK;
}

/* The exact integer that JSON number text s[0..n) denotes, as a sign and a
 * magnitude: NUM_FRACTION when it is not integral, NUM_RANGE when the
 * magnitude exceeds 64 bits. */
static int parse_int_text(const char *s, size_t n, int *neg, uint64_t *mag)
{
    if (!json_number_syntax(s, n)) {
        return NUM_SYNTAX;
    }
    size_t i = 0;
    *neg = 0;
    *mag = 0;
    if (s[0] == '-') {
        *neg = 1;
        i = 1;
    }
    size_t int0 = i;
    while (i < n && is_digit(s[i])) {
        i++;
    }
    size_t int1 = i;
    size_t frac0 = i;
    size_t frac1 = i;
    if (i < n && s[i] == '.') {
        frac0 = ++i;
        while (i < n && is_digit(s[i])) {
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
        return NUM_OK; /* zero, whatever the exponent */
    }
    int64_t e10 = exp - (int64_t)(frac1 - frac0);
    int64_t last = nd;
    if (e10 < 0) {
        if (nd + e10 <= first) {
            return NUM_FRACTION;
        }
        last = nd + e10;
        for (int64_t k = last; k < nd; k++) {
            if (DIGIT(k) != '0') {
                return NUM_FRACTION;
            }
        }
        e10 = 0;
    }
    if ((last - first) + e10 > 20) {
        return NUM_RANGE;
    }
    uint64_t v = 0;
    for (int64_t k = first; k < last; k++) {
        unsigned d = (unsigned)(DIGIT(k) - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return NUM_RANGE;
        }
        v = v * 10 + d;
    }
#undef DIGIT
    for (int64_t k = 0; k < e10; k++) {
        if (v > UINT64_MAX / 10) {
            return NUM_RANGE;
        }
        v *= 10;
    }
    *mag = v;
    return NUM_OK;
}

/* |v| without libm (liborpc-compat does not link it). */
static double dabs(double v)
{
    return v < 0 ? -v : v;
}

/* Whether finite |v| is an integer; every double from 2^52 up is. */
static int is_integral(double v)
{
    if (dabs(v) >= 4503599627370496.0) {
        return 1;
    }
    return v == (double)(int64_t)v;
}

/* An integral double as sign and magnitude. */
static int double_to_int(double v, int *neg, uint64_t *mag)
{
    if (!isfinite(v)) {
        return NUM_RANGE;
    }
    if (!is_integral(v)) {
        return NUM_FRACTION;
    }
    double a = dabs(v);
    if (a >= 18446744073709551616.0) {
        return NUM_RANGE;
    }
    *neg = v < 0;
    *mag = (uint64_t)a;
    return NUM_OK;
}

static int is_int_type(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 1;
    default:
        return 0;
    }
}

static int is_64bit_type(ProtobufCType t)
{
    return t == PROTOBUF_C_TYPE_INT64 || t == PROTOBUF_C_TYPE_SINT64 ||
           t == PROTOBUF_C_TYPE_SFIXED64 || t == PROTOBUF_C_TYPE_UINT64 ||
           t == PROTOBUF_C_TYPE_FIXED64;
}

static const char *type_name(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
        return "int32";
    case PROTOBUF_C_TYPE_SINT32:
        return "sint32";
    case PROTOBUF_C_TYPE_SFIXED32:
        return "sfixed32";
    case PROTOBUF_C_TYPE_INT64:
        return "int64";
    case PROTOBUF_C_TYPE_SINT64:
        return "sint64";
    case PROTOBUF_C_TYPE_SFIXED64:
        return "sfixed64";
    case PROTOBUF_C_TYPE_UINT32:
        return "uint32";
    case PROTOBUF_C_TYPE_FIXED32:
        return "fixed32";
    case PROTOBUF_C_TYPE_UINT64:
        return "uint64";
    case PROTOBUF_C_TYPE_FIXED64:
        return "fixed64";
    case PROTOBUF_C_TYPE_FLOAT:
        return "float";
    case PROTOBUF_C_TYPE_DOUBLE:
        return "double";
    case PROTOBUF_C_TYPE_BOOL:
        return "bool";
    case PROTOBUF_C_TYPE_ENUM:
        return "enum";
    case PROTOBUF_C_TYPE_STRING:
        return "string";
    case PROTOBUF_C_TYPE_BYTES:
        return "bytes";
    case PROTOBUF_C_TYPE_MESSAGE:
        return "message";
    }
    return "?";
}

/* Stores sign/magnitude into an integer (or enum) member of type |t|;
 * 0, or -1 when out of range for |t|. */
static int store_int(ProtobufCType t, int neg, uint64_t mag, void *member)
{
    if (mag == 0) {
        neg = 0;
    }
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        if (mag > (neg ? 2147483648u : 2147483647u)) {
            return -1;
        }
        *(int32_t *)member = neg ? (int32_t)(-(int64_t)mag) : (int32_t)mag;
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (neg || mag > UINT32_MAX) {
            return -1;
        }
        *(uint32_t *)member = (uint32_t)mag;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (mag > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX)) {
            return -1;
        }
        if (!neg) {
            *(int64_t *)member = (int64_t)mag;
        } else if (mag == (uint64_t)INT64_MAX + 1) {
            *(int64_t *)member = INT64_MIN;
        } else {
            *(int64_t *)member = -(int64_t)mag;
        }
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (neg) {
            return -1;
        }
        *(uint64_t *)member = mag;
        return 0;
    default:
        return -1;
    }
}

/* Whether a double fits a float field (values that round to ±FLT_MAX do). */
static int fits_float(double v)
{
    return !isfinite(v) || dabs(v) < 0x1.ffffffp+127;
}

enum { CV_OK = 0, CV_BAD = -1, CV_NOMEM = -2, CV_UNKNOWN_ENUM = 1 };

/* ------------------------------------------------------------------ */
/* Timestamp, Duration, FieldMask text                                 */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* ".123", ".123456", ".123456789" or "" for 0 <= nanos < 10^9. */
static void fmt_nanos(char *out, size_t cap, int32_t nanos)
{
    if (nanos == 0) {
        out[0] = '\0';
    } else if (nanos % 1000000 == 0) {
        snprintf(out, cap, ".%03" PRId32, nanos / 1000000);
    } else if (nanos % 1000 == 0) {
        snprintf(out, cap, ".%06" PRId32, nanos / 1000);
    } else {
        snprintf(out, cap, ".%09" PRId32, nanos);
    }
}

static int fmt_timestamp(int64_t sec, int32_t nanos, char *out, size_t cap)
{
    if (sec < TS_MIN_SECONDS || sec > TS_MAX_SECONDS || nanos < 0 ||
        nanos > 999999999) {
        return -1;
    }
    int64_t days = sec / 86400;
    int64_t rem = sec % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    int64_t y;
    unsigned mo;
    unsigned d;
    civil_from_days(days, &y, &mo, &d);
    char frac[16];
    fmt_nanos(frac, sizeof frac, nanos);
    snprintf(out, cap, "%04" PRId64 "-%02u-%02uT%02u:%02u:%02u%sZ", y, mo, d,
             (unsigned)(rem / 3600), (unsigned)(rem / 60 % 60),
             (unsigned)(rem % 60), frac);
    return 0;
}

/* Exactly |n| decimal digits at s as a number, or -1. */
static int fixed_digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* 1 to 9 digits of a fraction at s[*i] as nanoseconds. */
static int parse_fraction(const char *s, size_t n, size_t *i, int32_t *nanos)
{
    size_t k = 0;
    int32_t v = 0;
    while (*i < n && is_digit(s[*i])) {
        if (k == 9) {
            return -1;
        }
        v = v * 10 + (s[*i] - '0');
        (*i)++;
        k++;
    }
    if (k == 0) {
        return -1;
    }
    for (; k < 9; k++) {
        v *= 10;
    }
    *nanos = v;
    return 0;
}

/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM). */
static int parse_timestamp(const char *s, size_t n, int64_t *sec,
                           int32_t *nanos)
{
    if (n < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':') {
        return -1;
    }
    int y = fixed_digits(s, 4);
    int mo = fixed_digits(s + 5, 2);
    int d = fixed_digits(s + 8, 2);
    int h = fixed_digits(s + 11, 2);
    int mi = fixed_digits(s + 14, 2);
    int se = fixed_digits(s + 17, 2);
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || se < 0 || se > 59) {
        return -1;
    }
    static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30,
                                          31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > dim[mo - 1] + (mo == 2 && leap)) {
        return -1;
    }
    size_t i = 19;
    int32_t ns = 0;
    if (i < n && s[i] == '.') {
        i++;
        if (parse_fraction(s, n, &i, &ns) < 0) {
            return -1;
        }
    }
    int64_t off = 0;
    if (i + 1 == n && s[i] == 'Z') {
        off = 0;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh = fixed_digits(s + i + 1, 2);
        int om = fixed_digits(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59) {
            return -1;
        }
        off = (int64_t)oh * 3600 + om * 60;
        if (s[i] == '-') {
            off = -off;
        }
    } else {
        return -1;
    }
    int64_t v = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
                h * 3600 + mi * 60 + se - off;
    if (v < TS_MIN_SECONDS || v > TS_MAX_SECONDS) {
        return -1;
    }
    *sec = v;
    *nanos = ns;
    return 0;
}

static int fmt_duration(int64_t sec, int32_t nanos, char *out, size_t cap)
{
    if (sec < -DUR_MAX_SECONDS || sec > DUR_MAX_SECONDS ||
        nanos <= -1000000000 || nanos >= 1000000000 || (sec > 0 && nanos < 0) ||
        (sec < 0 && nanos > 0)) {
        return -1;
    }
    int neg = sec < 0 || nanos < 0;
    uint64_t as = sec < 0 ? (uint64_t)(-sec) : (uint64_t)sec;
    char frac[16];
    fmt_nanos(frac, sizeof frac, nanos < 0 ? -nanos : nanos);
    snprintf(out, cap, "%s%" PRIu64 "%ss", neg ? "-" : "", as, frac);
    return 0;
}

/* -?[0-9]+(\.[0-9]{1,9})?s within ±315576000000 s. */
static int parse_duration(const char *s, size_t n, int64_t *sec, int32_t *nanos)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && s[i] == '-') {
        neg = 1;
        i++;
    }
    size_t start = i;
    int64_t v = 0;
    while (i < n && is_digit(s[i])) {
        if (v > DUR_MAX_SECONDS) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
        i++;
    }
    if (i == start) {
        return -1;
    }
    int32_t ns = 0;
    if (i < n && s[i] == '.') {
        i++;
        if (parse_fraction(s, n, &i, &ns) < 0) {
            return -1;
        }
    }
    if (i + 1 != n || s[i] != 's' || v > DUR_MAX_SECONDS) {
        return -1;
    }
    *sec = neg ? -v : v;
    *nanos = neg ? -ns : ns;
    return 0;
}

/* FieldMask path "foo_bar.baz" -> "fooBar.baz"; -1 when the path would not
 * read back the same (upper case, '_' not before a lower-case letter). */
static int fieldmask_path_to_json(orpc__buf *b, const char *p)
{
    int after = 0;
    for (; *p != '\0'; p++) {
        char c = *p;
        if (is_upper(c)) {
            return -1;
        }
        if (after) {
            if (!is_lower(c)) {
                return -1;
            }
            orpc__buf_putc(b, (char)(c - 'a' + 'A'));
            after = 0;
        } else if (c == '_') {
            after = 1;
        } else {
            orpc__buf_putc(b, c);
        }
    }
    return after ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Types                                                               */

/* A message type: its descriptor and, when generated, its orpc table. */
typedef struct mtype {
    const ProtobufCMessageDescriptor *d;
    const orpc_message_info *info;
} mtype;

static mtype mt(const ProtobufCMessageDescriptor *d,
                const orpc_message_info *info)
{
    mtype t;
    t.d = d;
    t.info = info;
    if (info != NULL &&
        (info->descriptor != d || d == NULL || info->n_fields != d->n_fields ||
         (d->n_fields > 0 && info->fields == NULL))) {
        t.info = NULL; /* not the table of this type: do without */
    }
    return t;
}

/* The type of message field |i| of |t|. */
static mtype mt_field(mtype t, unsigned i)
{
    return mt(t.d->fields[i].descriptor,
              t.info != NULL ? t.info->fields[i].message : NULL);
}

/* The orpc table of enum field |i| of |t|, or NULL. */
static const orpc_enum_info *enum_of(mtype t, unsigned i)
{
    const orpc_enum_info *e =
        t.info != NULL ? t.info->fields[i].enum_info : NULL;
    if (e != NULL && e->descriptor != t.d->fields[i].descriptor) {
        e = NULL;
    }
    return e;
}

static const orpc_enum_info *enum_of_fi(const ProtobufCFieldDescriptor *f,
                                        const orpc_field_info *fi)
{
    const orpc_enum_info *e = fi != NULL ? fi->enum_info : NULL;
    if (e != NULL && e->descriptor != f->descriptor) {
        e = NULL;
    }
    return e;
}

static int is_null_enum(const ProtobufCFieldDescriptor *f)
{
    const ProtobufCEnumDescriptor *e = f->descriptor;
    return f->type == PROTOBUF_C_TYPE_ENUM && e != NULL && e->name != NULL &&
           strcmp(e->name, "google.protobuf.NullValue") == 0;
}

enum wkt {
    WKT_NONE,
    WKT_ANY,
    WKT_TIMESTAMP,
    WKT_DURATION,
    WKT_WRAPPER,
    WKT_STRUCT,
    WKT_VALUE,
    WKT_LIST,
    WKT_FIELDMASK
};

/* The well-known type |d| is, by full name and generated struct size. */
static enum wkt wkt_of(const ProtobufCMessageDescriptor *d)
{
    static const struct {
        const char *name;
        enum wkt kind;
        size_t size;
        unsigned n_fields;
    } tab[] = {
        {"Any", WKT_ANY, sizeof(Google__Protobuf__Any), 2},
        {"Timestamp", WKT_TIMESTAMP, sizeof(Google__Protobuf__Timestamp), 2},
        {"Duration", WKT_DURATION, sizeof(Google__Protobuf__Duration), 2},
        {"DoubleValue", WKT_WRAPPER, sizeof(Google__Protobuf__DoubleValue), 1},
        {"FloatValue", WKT_WRAPPER, sizeof(Google__Protobuf__FloatValue), 1},
        {"Int64Value", WKT_WRAPPER, sizeof(Google__Protobuf__Int64Value), 1},
        {"UInt64Value", WKT_WRAPPER, sizeof(Google__Protobuf__UInt64Value), 1},
        {"Int32Value", WKT_WRAPPER, sizeof(Google__Protobuf__Int32Value), 1},
        {"UInt32Value", WKT_WRAPPER, sizeof(Google__Protobuf__UInt32Value), 1},
        {"BoolValue", WKT_WRAPPER, sizeof(Google__Protobuf__BoolValue), 1},
        {"StringValue", WKT_WRAPPER, sizeof(Google__Protobuf__StringValue), 1},
        {"BytesValue", WKT_WRAPPER, sizeof(Google__Protobuf__BytesValue), 1},
        {"Struct", WKT_STRUCT, sizeof(Google__Protobuf__Struct), 1},
        {"Value", WKT_VALUE, sizeof(Google__Protobuf__Value), 6},
        {"ListValue", WKT_LIST, sizeof(Google__Protobuf__ListValue), 1},
        {"FieldMask", WKT_FIELDMASK, sizeof(Google__Protobuf__FieldMask), 1},
    };
    if (d == NULL || d->name == NULL ||
        strncmp(d->name, "google.protobuf.", 16) != 0) {
        return WKT_NONE;
    }
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        if (strcmp(d->name + 16, tab[i].name) == 0) {
            return d->sizeof_message == tab[i].size &&
                           d->n_fields == tab[i].n_fields
                       ? tab[i].kind
                       : WKT_NONE;
        }
    }
    return WKT_NONE;
}

/* Whether repeated field |f| of |parent| is a map: its entry type is the
 * nested "<FieldName>Entry" with key = 1 and value = 2. */
static int is_map(const ProtobufCMessageDescriptor *parent,
                  const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED ||
        f->type != PROTOBUF_C_TYPE_MESSAGE) {
        return 0;
    }
    const ProtobufCMessageDescriptor *e = f->descriptor;
    if (e == NULL || e->n_fields != 2 || e->fields[0].id != 1 ||
        e->fields[1].id != 2 || strcmp(e->fields[0].name, "key") != 0 ||
        strcmp(e->fields[1].name, "value") != 0 ||
        e->fields[0].label == PROTOBUF_C_LABEL_REPEATED ||
        e->fields[1].label == PROTOBUF_C_LABEL_REPEATED) {
        return 0;
    }
    switch (e->fields[0].type) {
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
    case PROTOBUF_C_TYPE_ENUM:
        return 0;
    default:
        break;
    }
    /* protoc's MapEntryName(field name), nested in |parent|. */
    size_t pl = strlen(parent->name);
    const char *n = e->name;
    if (strncmp(n, parent->name, pl) != 0 || n[pl] != '.') {
        return 0;
    }
    n += pl + 1;
    int cap = 1;
    for (const char *p = f->name; *p != '\0'; p++) {
        char c = *p;
        if (c == '_') {
            cap = 1;
            continue;
        }
        if (cap && is_lower(c)) {
            c = (char)(c - 'a' + 'A');
        }
        cap = 0;
        if (*n++ != c) {
            return 0;
        }
    }
    return strcmp(n, "Entry") == 0;
}

/* Size of one element of a repeated field of type |t|. */
static size_t elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
}

/* The index of the field of |t| that JSON key |key| names, or -1. */
static int find_field(mtype t, const char *key)
{
    if (t.info != NULL) {
        return orpc_message_info_find(t.info, key);
    }
    for (unsigned i = 0; i < t.d->n_fields && i < INT_MAX; i++) {
        if (json_name_eq(t.d->fields[i].name, key)) {
            return (int)i;
        }
    }
    for (unsigned i = 0; i < t.d->n_fields && i < INT_MAX; i++) {
        if (strcmp(t.d->fields[i].name, key) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* liborpc's well-known types, where google.protobuf.Any types resolve
 * besides the types reachable from the message being converted. */
static const orpc_message_info *const KNOWN_TYPES[] = {
    &google__protobuf__any__orpc_info,
    &google__protobuf__timestamp__orpc_info,
    &google__protobuf__duration__orpc_info,
    &google__protobuf__double_value__orpc_info,
    &google__protobuf__float_value__orpc_info,
    &google__protobuf__int64_value__orpc_info,
    &google__protobuf__uint64_value__orpc_info,
    &google__protobuf__int32_value__orpc_info,
    &google__protobuf__uint32_value__orpc_info,
    &google__protobuf__bool_value__orpc_info,
    &google__protobuf__string_value__orpc_info,
    &google__protobuf__bytes_value__orpc_info,
    &google__protobuf__struct__orpc_info,
    &google__protobuf__value__orpc_info,
    &google__protobuf__list_value__orpc_info,
    &google__protobuf__field_mask__orpc_info,
    &google__protobuf__empty__orpc_info,
    &google__rpc__status__orpc_info,
};

typedef struct typeset {
    mtype *v;
    size_t n;
    size_t cap;
} typeset;

static int typeset_add(typeset *s, mtype t)
{
    if (t.d == NULL) {
        return 0;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].d == t.d) {
            if (s->v[i].info == NULL) {
                s->v[i].info = t.info;
            }
            return 0;
        }
    }
    if (s->n == s->cap) {
        size_t cap = s->cap != 0 ? s->cap * 2 : 32;
        mtype *v = realloc(s->v, cap * sizeof *v);
        if (v == NULL) {
            return -1;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = t;
    return 0;
}

/* The type named |name| (|len| bytes) among those reachable from |root| and
 * KNOWN_TYPES: 1 found, 0 not, -1 out of memory.  |*cache| remembers the
 * last type found. */
static int find_type(mtype root, mtype *cache, const char *name, size_t len,
                     mtype *out)
{
    if (cache->d != NULL && strlen(cache->d->name) == len &&
        memcmp(cache->d->name, name, len) == 0) {
        *out = *cache;
        return 1;
    }
    typeset s = {NULL, 0, 0};
    int rc = typeset_add(&s, root);
    for (size_t k = 0;
         rc == 0 && k < sizeof KNOWN_TYPES / sizeof KNOWN_TYPES[0]; k++) {
        rc = typeset_add(&s, mt(KNOWN_TYPES[k]->descriptor, KNOWN_TYPES[k]));
    }
    for (size_t i = 0; rc == 0 && i < s.n; i++) {
        mtype t = s.v[i];
        if (t.d->name != NULL && strlen(t.d->name) == len &&
            memcmp(t.d->name, name, len) == 0) {
            *out = t;
            *cache = t;
            rc = 1;
            break;
        }
        for (unsigned f = 0; rc == 0 && f < t.d->n_fields; f++) {
            if (t.d->fields[f].type == PROTOBUF_C_TYPE_MESSAGE) {
                rc = typeset_add(&s, mt_field(t, f));
            }
        }
    }
    free(s.v);
    return rc;
}

/* The type name of a type URL: what follows the last '/'; NULL if none. */
static const char *type_url_name(const char *url)
{
    const char *slash = url != NULL ? strrchr(url, '/') : NULL;
    if (slash == NULL || slash[1] == '\0') {
        return NULL;
    }
    return slash + 1;
}

/* ------------------------------------------------------------------ */
/* Text to scalar (JSON strings, map keys, URL text)                    */

/* Base64 text s[0..n) as the value of a bytes field, allocated with |a|
 * (no data for no bytes): CV_OK, CV_BAD or CV_NOMEM. */
static int bytes_from_base64(const char *s, size_t n, ProtobufCAllocator *a,
                             ProtobufCBinaryData *out, const char **why)
{
    orpc__buf b;
    orpc__buf_init(&b, a);
    int rc = orpc__base64_decode(&b, s, n);
    if (rc != 0) {
        orpc__buf_free(&b);
        if (rc == ORPC_EPARSE) {
            *why = "invalid base64";
            return CV_BAD;
        }
        return CV_NOMEM;
    }
    out->len = b.len;
    if (b.len == 0) {
        orpc__buf_free(&b);
        out->data = NULL;
        return CV_OK;
    }
    out->data = (uint8_t *)orpc__buf_take(&b, NULL);
    return out->data != NULL ? CV_OK : CV_NOMEM;
}

/* Converts text s[0..n) (NUL-terminated at n) for field |f| into |member|.
 * |bool_text|: accept "true"/"false" for bool fields.  CV_OK, CV_BAD (with
 * |*why|), CV_NOMEM or CV_UNKNOWN_ENUM. */
static int text_to_scalar(const ProtobufCFieldDescriptor *f,
                          const orpc_enum_info *ei, const char *s, size_t n,
                          void *member, ProtobufCAllocator *a, int bool_text,
                          const char **why)
{
    int neg;
    uint64_t mag;
    int rc;
    *why = "invalid value";
    if (is_int_type(f->type)) {
        rc = parse_int_text(s, n, &neg, &mag);
        if (rc == NUM_SYNTAX) {
            *why = "not an integer";
            return CV_BAD;
        }
        if (rc == NUM_FRACTION) {
            *why = "not an integer (has a fraction)";
            return CV_BAD;
        }
        if (rc != NUM_OK || store_int(f->type, neg, mag, member) < 0) {
            *why = "integer out of range";
            return CV_BAD;
        }
        return CV_OK;
    }
    switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v;
        if (strcmp(s, "NaN") == 0) {
            v = NAN;
        } else if (strcmp(s, "Infinity") == 0) {
            v = INFINITY;
        } else if (strcmp(s, "-Infinity") == 0) {
            v = -INFINITY;
        } else {
            rc = parse_double_text(s, n, &v);
            if (rc == NUM_NOMEM) {
                return CV_NOMEM;
            }
            if (rc == NUM_SYNTAX) {
                *why = "not a number";
                return CV_BAD;
            }
            if (rc != NUM_OK) {
                *why = "number out of range";
                return CV_BAD;
            }
        }
        if (f->type == PROTOBUF_C_TYPE_FLOAT) {
            if (!fits_float(v)) {
                *why = "number out of range for float";
                return CV_BAD;
            }
            *(float *)member = (float)v;
        } else {
            *(double *)member = v;
        }
        return CV_OK;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (bool_text && strcmp(s, "true") == 0) {
            *(protobuf_c_boolean *)member = 1;
        } else if (bool_text && strcmp(s, "false") == 0) {
            *(protobuf_c_boolean *)member = 0;
        } else {
            *why = "expected true or false";
            return CV_BAD;
        }
        return CV_OK;
    case PROTOBUF_C_TYPE_STRING: {
        if (!utf8_valid(s, n) || memchr(s, '\0', n) != NULL) {
            *why = "invalid UTF-8";
            return CV_BAD;
        }
        char *copy = pb_strndup(a, s, n);
        if (copy == NULL) {
            return CV_NOMEM;
        }
        *(char **)member = copy;
        return CV_OK;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return bytes_from_base64(s, n, a, member, why);
    case PROTOBUF_C_TYPE_ENUM: {
        if (ei != NULL) {
            const orpc_enum_value_info *v = orpc_enum_info_find(ei, s);
            if (v != NULL) {
                *(int32_t *)member = v->number;
                return CV_OK;
            }
        }
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, s);
        if (ev != NULL) {
            *(int32_t *)member = ev->value;
            return CV_OK;
        }
        rc = parse_int_text(s, n, &neg, &mag);
        if (rc == NUM_OK) {
            if (store_int(PROTOBUF_C_TYPE_ENUM, neg, mag, member) < 0) {
                *why = "enum number out of range";
                return CV_BAD;
            }
            return CV_OK;
        }
        *why = "unknown enum value";
        return CV_UNKNOWN_ENUM;
    }
    default:
        *why = "not a scalar field";
        return CV_BAD;
    }
}

/* ------------------------------------------------------------------ */
/* Encoding                                                            */

typedef struct ectx {
    int legacy;
    int emit_defaults;
    int proto_names;
    unsigned max_depth;
    mtype root;
    mtype any_cache;
} ectx;

static int enc_msg(ectx *c, mtype t, const ProtobufCMessage *m, unsigned depth,
                   json_t **out);

static int mk_string(const char *s, size_t n, json_t **out)
{
    if (!utf8_valid(s, n)) {
        return ORPC_EINVAL;
    }
    *out = json_stringn_nocheck(s, n);
    return *out != NULL ? 0 : ORPC_ENOMEM;
}

static int mk(json_t *v, json_t **out)
{
    *out = v;
    return v != NULL ? 0 : ORPC_ENOMEM;
}

static int enc_i64(const ectx *c, int64_t v, json_t **out)
{
    if (c->legacy && v >= -(int64_t)EXACT_DOUBLE_MAX &&
        v <= (int64_t)EXACT_DOUBLE_MAX) {
        return mk(json_integer((json_int_t)v), out);
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return mk(json_string_nocheck(buf), out);
}

static int enc_u64(const ectx *c, uint64_t v, json_t **out)
{
    if (c->legacy && v <= (uint64_t)EXACT_DOUBLE_MAX) {
        return mk(json_integer((json_int_t)v), out);
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return mk(json_string_nocheck(buf), out);
}

static int enc_real(double v, int is_float, json_t **out)
{
    if (isnan(v)) {
        return mk(json_string_nocheck("NaN"), out);
    }
    if (isinf(v)) {
        return mk(json_string_nocheck(v > 0 ? "Infinity" : "-Infinity"), out);
    }
    if (is_float) {
        v = float_as_double((float)v);
    }
    return mk(json_real(v), out);
}

/* The name enum value |n| is written as; NULL when |n| has none. */
static const char *enum_name(const ProtobufCFieldDescriptor *f,
                             const orpc_enum_info *ei, int legacy, int32_t n)
{
    if (ei != NULL) {
        const orpc_enum_value_info *v = orpc_enum_info_value(ei, n);
        if (v != NULL) {
            return legacy && v->legacy_name != NULL ? v->legacy_name : v->name;
        }
    }
    const ProtobufCEnumValue *ev =
        protobuf_c_enum_descriptor_get_value(f->descriptor, n);
    return ev != NULL ? ev->name : NULL;
}

static int enc_scalar(const ectx *c, const ProtobufCFieldDescriptor *f,
                      const orpc_enum_info *ei, const void *member,
                      json_t **out)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return mk(json_integer(*(const int32_t *)member), out);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return mk(json_integer(*(const uint32_t *)member), out);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return enc_i64(c, *(const int64_t *)member, out);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return enc_u64(c, *(const uint64_t *)member, out);
    case PROTOBUF_C_TYPE_FLOAT:
        return enc_real(*(const float *)member, 1, out);
    case PROTOBUF_C_TYPE_DOUBLE:
        return enc_real(*(const double *)member, 0, out);
    case PROTOBUF_C_TYPE_BOOL:
        return mk(json_boolean(*(const protobuf_c_boolean *)member != 0), out);
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)member;
        if (s == NULL) {
            s = "";
        }
        return mk_string(s, strlen(s), out);
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = member;
        orpc__buf t = {0};
        if (orpc__base64_append(&t, b->data, b->data != NULL ? b->len : 0, 0) !=
            0) {
            return ORPC_ENOMEM;
        }
        *out = json_stringn_nocheck(t.data, t.len);
        orpc__buf_free(&t);
        return *out != NULL ? 0 : ORPC_ENOMEM;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        int32_t n = *(const int32_t *)member;
        if (is_null_enum(f)) {
            return mk(json_null(), out);
        }
        const char *name = enum_name(f, ei, c->legacy, n);
        if (name == NULL) {
            return mk(json_integer(n), out);
        }
        return mk(json_string_nocheck(name), out);
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        break;
    }
    return ORPC_EINVAL;
}

/* One value of field |i| of |t| stored at |member| (for messages, the
 * pointer to the message). */
static int enc_elem(ectx *c, mtype t, unsigned i, const void *member,
                    unsigned depth, json_t **out)
{
    const ProtobufCFieldDescriptor *f = &t.d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
        return enc_scalar(c, f, enum_of(t, i), member, out);
    }
    mtype st = mt_field(t, i);
    const ProtobufCMessage *sm = *(const ProtobufCMessage *const *)member;
    if (sm != NULL) {
        return sm->descriptor == st.d ? enc_msg(c, st, sm, depth, out)
                                      : ORPC_EINVAL;
    }
    if (wkt_of(st.d) == WKT_VALUE) {
        return mk(json_null(), out);
    }
    /* A missing message where one is needed (map value, list element):
     * its default instance. */
    ProtobufCMessage *tmp = pb_new(NULL, st.d);
    if (tmp == NULL) {
        return ORPC_ENOMEM;
    }
    int rc = enc_msg(c, st, tmp, depth, out);
    free(tmp); /* a fresh message owns nothing */
    return rc;
}

/* Whether singular field |f| of the message at |base| is present. */
static int field_present(const ProtobufCFieldDescriptor *f, const char *base)
{
    const void *member = base + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REQUIRED) {
        return 1;
    }
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
        if (f->type == PROTOBUF_C_TYPE_MESSAGE ||
            f->type == PROTOBUF_C_TYPE_STRING) {
            const void *p = *(const void *const *)member;
            return p != NULL && p != f->default_value;
        }
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset) != 0;
    }
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        return *(const uint32_t *)member != 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return *(const uint64_t *)member != 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)member != 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)member != 0;
    case PROTOBUF_C_TYPE_BOOL:
        return *(const protobuf_c_boolean *)member != 0;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)member;
        return s != NULL && s[0] != '\0';
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)member)->len != 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(const void *const *)member != NULL;
    }
    return 0;
}

/* A map key as text: into |buf| for numbers, else the string itself. */
static int map_key_text(const ProtobufCFieldDescriptor *kf, const void *member,
                        char *buf, size_t cap, const char **key)
{
    switch (kf->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        snprintf(buf, cap, "%" PRId32, *(const int32_t *)member);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf(buf, cap, "%" PRIu32, *(const uint32_t *)member);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(buf, cap, "%" PRId64, *(const int64_t *)member);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(buf, cap, "%" PRIu64, *(const uint64_t *)member);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        snprintf(buf, cap, "%s",
                 *(const protobuf_c_boolean *)member ? "true" : "false");
        break;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)member;
        if (s == NULL) {
            s = "";
        }
        if (!utf8_valid(s, strlen(s))) {
            return ORPC_EINVAL;
        }
        *key = s;
        return 0;
    }
    default:
        return ORPC_EINVAL;
    }
    *key = buf;
    return 0;
}

static int enc_map(ectx *c, mtype t, unsigned i, const char *base,
                   unsigned depth, json_t **out)
{
    const ProtobufCFieldDescriptor *f = &t.d->fields[i];
    size_t n = *(const size_t *)(base + f->quantifier_offset);
    ProtobufCMessage *const *arr =
        *(ProtobufCMessage *const *const *)(base + f->offset);
    mtype et = mt_field(t, i);
    if (depth + 1 > c->max_depth) {
        return ORPC_EINVAL;
    }
    json_t *obj = json_object();
    if (obj == NULL) {
        return ORPC_ENOMEM;
    }
    for (size_t k = 0; k < n; k++) {
        const ProtobufCMessage *e = arr != NULL ? arr[k] : NULL;
        if (e == NULL || e->descriptor != et.d) {
            json_decref(obj);
            return ORPC_EINVAL;
        }
        const char *eb = (const char *)e;
        char buf[32];
        const char *key = NULL;
        json_t *v = NULL;
        int rc = map_key_text(&et.d->fields[0], eb + et.d->fields[0].offset,
                              buf, sizeof buf, &key);
        if (rc == 0) {
            rc = enc_elem(c, et, 1, eb + et.d->fields[1].offset, depth + 1, &v);
        }
        if (rc == 0 && json_object_set_new_nocheck(obj, key, v) < 0) {
            rc = ORPC_ENOMEM;
        }
        if (rc != 0) {
            json_decref(obj);
            return rc;
        }
    }
    *out = obj;
    return 0;
}

static int enc_list(ectx *c, mtype t, unsigned i, const char *base,
                    unsigned depth, json_t **out)
{
    const ProtobufCFieldDescriptor *f = &t.d->fields[i];
    size_t n = *(const size_t *)(base + f->quantifier_offset);
    const char *arr = *(const char *const *)(base + f->offset);
    size_t esz = elem_size(f->type);
    if (depth + 1 > c->max_depth) {
        return ORPC_EINVAL;
    }
    if (n > 0 && arr == NULL) {
        return ORPC_EINVAL;
    }
    json_t *a = json_array();
    if (a == NULL) {
        return ORPC_ENOMEM;
    }
    for (size_t k = 0; k < n; k++) {
        json_t *v = NULL;
        int rc = enc_elem(c, t, i, arr + k * esz, depth + 1, &v);
        if (rc == 0 && json_array_append_new(a, v) < 0) {
            rc = ORPC_ENOMEM;
        }
        if (rc != 0) {
            json_decref(a);
            return rc;
        }
    }
    *out = a;
    return 0;
}

static int enc_value(ectx *c, const Google__Protobuf__Value *v, unsigned depth,
                     json_t **out);

static int enc_struct(ectx *c, const Google__Protobuf__Struct *s,
                      unsigned depth, json_t **out)
{
    if (depth + 1 > c->max_depth) {
        return ORPC_EINVAL;
    }
    if (s != NULL && s->n_fields > 0 && s->fields == NULL) {
        return ORPC_EINVAL;
    }
    json_t *obj = json_object();
    if (obj == NULL) {
        return ORPC_ENOMEM;
    }
    for (size_t k = 0; s != NULL && k < s->n_fields; k++) {
        const Google__Protobuf__Struct__FieldsEntry *e = s->fields[k];
        json_t *v = NULL;
        int rc = 0;
        const char *key = e != NULL && e->key != NULL ? e->key : "";
        if (e == NULL || !utf8_valid(key, strlen(key))) {
            rc = ORPC_EINVAL;
        }
        if (rc == 0) {
            rc = enc_value(c, e->value, depth + 1, &v);
        }
        if (rc == 0 && json_object_set_new_nocheck(obj, key, v) < 0) {
            rc = ORPC_ENOMEM;
        }
        if (rc != 0) {
            json_decref(obj);
            return rc;
        }
    }
    *out = obj;
    return 0;
}

static int enc_list_value(ectx *c, const Google__Protobuf__ListValue *l,
                          unsigned depth, json_t **out)
{
    if (depth + 1 > c->max_depth) {
        return ORPC_EINVAL;
    }
    if (l != NULL && l->n_values > 0 && l->values == NULL) {
        return ORPC_EINVAL;
    }
    json_t *a = json_array();
    if (a == NULL) {
        return ORPC_ENOMEM;
    }
    for (size_t k = 0; l != NULL && k < l->n_values; k++) {
        json_t *v = NULL;
        int rc = enc_value(c, l->values[k], depth + 1, &v);
        if (rc == 0 && json_array_append_new(a, v) < 0) {
            rc = ORPC_ENOMEM;
        }
        if (rc != 0) {
            json_decref(a);
            return rc;
        }
    }
    *out = a;
    return 0;
}

static int enc_value(ectx *c, const Google__Protobuf__Value *v, unsigned depth,
                     json_t **out)
{
    if (v == NULL) {
        return mk(json_null(), out);
    }
    switch (v->kind_case) {
    case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE: {
        double d = v->number_value;
        if (!isfinite(d)) {
            return ORPC_EINVAL; /* would read back as a string */
        }
        if (is_integral(d) && dabs(d) <= EXACT_DOUBLE_MAX &&
            !(d == 0 && signbit(d))) { /* -0.0 stays a real */
            return mk(json_integer((json_int_t)d), out);
        }
        return mk(json_real(d), out);
    }
    case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE: {
        const char *s = v->string_value != NULL ? v->string_value : "";
        return mk_string(s, strlen(s), out);
    }
    case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
        return mk(json_boolean(v->bool_value != 0), out);
    case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
        return enc_struct(c, v->struct_value, depth, out);
    case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE:
        return enc_list_value(c, v->list_value, depth, out);
    default: /* null_value, or nothing set */
        return mk(json_null(), out);
    }
}

static int enc_any(ectx *c, const Google__Protobuf__Any *a, unsigned depth,
                   json_t **out)
{
    if (depth + 1 > c->max_depth) {
        return ORPC_EINVAL;
    }
    const char *url = a->type_url != NULL ? a->type_url : "";
    if (url[0] == '\0' && a->value.len == 0) {
        return mk(json_object(), out);
    }
    const char *name = type_url_name(url);
    if (name == NULL || !utf8_valid(url, strlen(url)) ||
        (a->value.len > 0 && a->value.data == NULL)) {
        return ORPC_EINVAL;
    }
    mtype it;
    int rc = find_type(c->root, &c->any_cache, name, strlen(name), &it);
    if (rc <= 0) {
        return rc < 0 ? ORPC_ENOMEM : ORPC_EINVAL;
    }
    ProtobufCMessage *im =
        protobuf_c_message_unpack(it.d, NULL, a->value.len, a->value.data);
    if (im == NULL) {
        return ORPC_EINVAL;
    }
    json_t *obj = json_object();
    json_t *inner = NULL;
    rc = obj != NULL ? 0 : ORPC_ENOMEM;
    if (rc == 0 && json_object_set_new_nocheck(obj, "@type",
                                               json_string_nocheck(url)) < 0) {
        rc = ORPC_ENOMEM;
    }
    if (rc == 0 && wkt_of(it.d) != WKT_NONE) {
        rc = enc_msg(c, it, im, depth + 1, &inner);
        if (rc == 0 && json_object_set_new_nocheck(obj, "value", inner) < 0) {
            rc = ORPC_ENOMEM;
        }
    } else if (rc == 0) {
        rc = enc_msg(c, it, im, depth, &inner);
        const char *k;
        json_t *x;
        json_object_foreach(inner, k, x)
        {
            if (rc == 0 && json_object_set_nocheck(obj, k, x) < 0) {
                rc = ORPC_ENOMEM;
            }
        }
        json_decref(inner);
    }
    protobuf_c_message_free_unpacked(im, NULL);
    if (rc != 0) {
        json_decref(obj);
        return rc;
    }
    *out = obj;
    return 0;
}

static int enc_wkt(ectx *c, enum wkt kind, mtype t, const ProtobufCMessage *m,
                   unsigned depth, json_t **out)
{
    char buf[64];
    switch (kind) {
    case WKT_TIMESTAMP: {
        const Google__Protobuf__Timestamp *ts = (const void *)m;
        if (fmt_timestamp(ts->seconds, ts->nanos, buf, sizeof buf) < 0) {
            return ORPC_EINVAL;
        }
        return mk(json_string_nocheck(buf), out);
    }
    case WKT_DURATION: {
        const Google__Protobuf__Duration *d = (const void *)m;
        if (fmt_duration(d->seconds, d->nanos, buf, sizeof buf) < 0) {
            return ORPC_EINVAL;
        }
        return mk(json_string_nocheck(buf), out);
    }
    case WKT_WRAPPER:
        return enc_scalar(c, &t.d->fields[0], NULL,
                          (const char *)m + t.d->fields[0].offset, out);
    case WKT_STRUCT:
        return enc_struct(c, (const void *)m, depth, out);
    case WKT_VALUE:
        return enc_value(c, (const void *)m, depth, out);
    case WKT_LIST:
        return enc_list_value(c, (const void *)m, depth, out);
    case WKT_FIELDMASK: {
        const Google__Protobuf__FieldMask *fm = (const void *)m;
        orpc__buf b = {0};
        if (fm->n_paths > 0 && fm->paths == NULL) {
            return ORPC_EINVAL;
        }
        for (size_t k = 0; k < fm->n_paths; k++) {
            if (k > 0) {
                orpc__buf_putc(&b, ',');
            }
            if (fm->paths[k] == NULL ||
                fieldmask_path_to_json(&b, fm->paths[k]) < 0) {
                orpc__buf_free(&b);
                return ORPC_EINVAL;
            }
        }
        if (b.failed) {
            orpc__buf_free(&b);
            return ORPC_ENOMEM;
        }
        int rc = mk_string(orpc__buf_str(&b), b.len, out);
        orpc__buf_free(&b);
        return rc;
    }
    case WKT_ANY:
        return enc_any(c, (const void *)m, depth, out);
    case WKT_NONE:
        break;
    }
    return ORPC_EINVAL;
}

static int enc_msg(ectx *c, mtype t, const ProtobufCMessage *m, unsigned depth,
                   json_t **out)
{
    enum wkt kind = wkt_of(t.d);
    if (kind != WKT_NONE) {
        return enc_wkt(c, kind, t, m, depth, out);
    }
    if (depth + 1 > c->max_depth) {
        return ORPC_EINVAL;
    }
    json_t *obj = json_object();
    if (obj == NULL) {
        return ORPC_ENOMEM;
    }
    const char *base = (const char *)m;
    for (unsigned i = 0; i < t.d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &t.d->fields[i];
        const void *member = base + f->offset;
        json_t *v = NULL;
        int rc;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id) {
                continue;
            }
            rc = enc_elem(c, t, i, member, depth + 1, &v);
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (*(const size_t *)(base + f->quantifier_offset) == 0 &&
                !c->emit_defaults) {
                continue;
            }
            rc = is_map(t.d, f) ? enc_map(c, t, i, base, depth + 1, &v)
                                : enc_list(c, t, i, base, depth + 1, &v);
        } else {
            if (!field_present(f, base) &&
                !(c->emit_defaults && f->label == PROTOBUF_C_LABEL_NONE &&
                  f->type != PROTOBUF_C_TYPE_MESSAGE)) {
                continue;
            }
            rc = enc_elem(c, t, i, member, depth + 1, &v);
        }
        if (rc == 0) {
            const char *name = f->name;
            char *derived = NULL;
            if (!c->proto_names) {
                if (t.info != NULL && t.info->fields[i].json_name != NULL) {
                    name = t.info->fields[i].json_name;
                } else {
                    name = derived = json_name_dup(f->name);
                }
            }
            /* json_object_set_new*() takes |v| even when it fails. */
            if (name == NULL) {
                json_decref(v);
                rc = ORPC_ENOMEM;
            } else if (json_object_set_new_nocheck(obj, name, v) < 0) {
                rc = ORPC_ENOMEM;
            }
            free(derived);
        }
        if (rc != 0) {
            json_decref(obj);
            return rc;
        }
    }
    *out = obj;
    return 0;
}

static void ectx_init(ectx *c, const orpc_json_opts *opts, mtype root)
{
    memset(c, 0, sizeof *c);
    if (opts != NULL) {
        c->legacy = opts->legacy != 0;
        c->emit_defaults = opts->emit_defaults != 0;
        c->proto_names = opts->proto_names != 0 || c->legacy;
        c->max_depth = opts->max_depth;
    }
    if (c->max_depth == 0) {
        c->max_depth = DEFAULT_MAX_DEPTH;
    }
    c->root = root;
}

/* Compact JSON text of |v|, reals in their shortest exact form. */
static void dump(orpc__buf *b, json_t *v)
{
    char buf[64];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        int first = 1;
        orpc__buf_putc(b, '{');
        json_object_foreach(v, k, x)
        {
            if (!first) {
                orpc__buf_putc(b, ',');
            }
            first = 0;
            orpc__buf_putc(b, '"');
            sb_escape(b, k, strlen(k));
            orpc__buf_puts(b, "\":");
            dump(b, x);
        }
        orpc__buf_putc(b, '}');
        break;
    }
    case JSON_ARRAY:
        orpc__buf_putc(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0) {
                orpc__buf_putc(b, ',');
            }
            dump(b, json_array_get(v, i));
        }
        orpc__buf_putc(b, ']');
        break;
    case JSON_STRING:
        orpc__buf_putc(b, '"');
        sb_escape(b, json_string_value(v), json_string_length(v));
        orpc__buf_putc(b, '"');
        break;
    case JSON_INTEGER:
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        orpc__buf_puts(b, buf);
        break;
    case JSON_REAL:
        fmt_double(json_real_value(v), buf, sizeof buf);
        orpc__buf_puts(b, buf);
        break;
    case JSON_TRUE:
        orpc__buf_puts(b, "true");
        break;
    case JSON_FALSE:
        orpc__buf_puts(b, "false");
        break;
    case JSON_NULL:
        orpc__buf_puts(b, "null");
        break;
    }
}

int orpc__json_encode_value(const orpc_message_info *info,
                            const ProtobufCMessage *msg,
                            const orpc_json_opts *opts, json_t **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (info == NULL || info->descriptor == NULL || msg == NULL ||
        out == NULL || msg->descriptor != info->descriptor ||
        info->descriptor->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC) {
        return ORPC_EINVAL;
    }
    mtype root = mt(info->descriptor, info);
    ectx c;
    ectx_init(&c, opts, root);
    return enc_msg(&c, root, msg, 0, out);
}

int orpc_json_encode(const orpc_message_info *info, const ProtobufCMessage *msg,
                     const orpc_json_opts *opts, char **out, size_t *len)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (len != NULL) {
        *len = 0;
    }
    if (out == NULL) {
        return ORPC_EINVAL;
    }
    json_t *v = NULL;
    int rc = orpc__json_encode_value(info, msg, opts, &v);
    if (rc != 0) {
        return rc;
    }
    orpc__buf b = {0};
    dump(&b, v);
    json_decref(v);
    *out = orpc__buf_take(&b, len);
    return *out != NULL ? 0 : ORPC_ENOMEM;
}

/* ------------------------------------------------------------------ */
/* Decoding                                                            */

typedef struct dctx {
    int ignore_unknown;
    int real_ints; /* the document was read with JSON_DECODE_INT_AS_REAL */
    unsigned max_depth;
    ProtobufCAllocator *alloc;
    mtype root;
    mtype any_cache;
    orpc__buf path;
    orpc_status st;
} dctx;

static int fail(dctx *c, const char *fmt, ...) ORPC_PRINTF(2, 3);

static int nomem(dctx *c)
{
    if (c->st.code == ORPC_OK) {
        c->st = orpc_status_new(ORPC_RESOURCE_EXHAUSTED,
                                "out of memory decoding JSON");
    }
    return -1;
}

/* Records "<path>: <reason>" as the error (the first one wins); -1. */
static int fail(dctx *c, const char *fmt, ...)
{
    if (c->st.code != ORPC_OK) {
        return -1;
    }
    if (c->path.failed) {
        return nomem(c);
    }
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    c->st = orpc_status_errorf(ORPC_INVALID_ARGUMENT, "%s: %s",
                               orpc__buf_str(&c->path), reason);
    return -1;
}

/* "unknown value "x"" style quoting of input text for reasons. */
static const char *quoted(orpc__buf *tmp, const char *s)
{
    orpc__buf_truncate(tmp, 0);
    sb_quote(tmp, s, 64);
    return tmp->failed ? "\"?\"" : orpc__buf_str(tmp);
}

static int is_ident(const char *k)
{
    size_t n = 0;
    if (!(is_lower(k[0]) || is_upper(k[0]) || k[0] == '_')) {
        return 0;
    }
    for (; k[n] != '\0'; n++) {
        if (!(is_lower(k[n]) || is_upper(k[n]) || is_digit(k[n]) ||
              k[n] == '_') ||
            n >= 64) {
            return 0;
        }
    }
    return 1;
}

/* Path steps; each returns the mark to restore with path_pop(). */
static size_t path_key(dctx *c, const char *key)
{
    size_t mark = c->path.len;
    if (is_ident(key)) {
        orpc__buf_putc(&c->path, '.');
        orpc__buf_puts(&c->path, key);
    } else {
        orpc__buf_putc(&c->path, '[');
        sb_quote(&c->path, key, 64);
        orpc__buf_putc(&c->path, ']');
    }
    return mark;
}

static size_t path_mapkey(dctx *c, const char *key)
{
    size_t mark = c->path.len;
    orpc__buf_putc(&c->path, '[');
    sb_quote(&c->path, key, 64);
    orpc__buf_putc(&c->path, ']');
    return mark;
}

static size_t path_index(dctx *c, size_t i)
{
    size_t mark = c->path.len;
    char buf[32];
    snprintf(buf, sizeof buf, "[%zu]", i);
    orpc__buf_puts(&c->path, buf);
    return mark;
}

static void path_pop(dctx *c, size_t mark)
{
    orpc__buf_truncate(&c->path, mark);
}

static int too_deep(dctx *c)
{
    return fail(c, "nesting deeper than %u levels", c->max_depth);
}

static const char *expected(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        return "expected a number";
    case PROTOBUF_C_TYPE_BOOL:
        return "expected true or false";
    case PROTOBUF_C_TYPE_STRING:
        return "expected a string";
    case PROTOBUF_C_TYPE_BYTES:
        return "expected a base64 string";
    case PROTOBUF_C_TYPE_ENUM:
        return "expected an enum name or number";
    case PROTOBUF_C_TYPE_MESSAGE:
        return "expected an object";
    default:
        return "expected an integer";
    }
}

static const char *enum_type_name(const ProtobufCFieldDescriptor *f)
{
    const ProtobufCEnumDescriptor *e = f->descriptor;
    return e != NULL && e->name != NULL ? e->name : "enum";
}

/* A scalar or enum JSON value into |member|: 0, -1, or 1 when an unknown
 * enum name is skipped (ignore_unknown). */
static int dec_scalar(dctx *c, const ProtobufCFieldDescriptor *f,
                      const orpc_enum_info *ei, json_t *v, void *member)
{
    int neg = 0;
    uint64_t mag = 0;
    int rc;
    switch (json_typeof(v)) {
    case JSON_STRING: {
        if (f->type == PROTOBUF_C_TYPE_BOOL) {
            return fail(c, "expected true or false");
        }
        const char *why = NULL;
        rc = text_to_scalar(f, ei, json_string_value(v), json_string_length(v),
                            member, c->alloc, 0, &why);
        if (rc == CV_NOMEM) {
            return nomem(c);
        }
        if (rc == CV_UNKNOWN_ENUM) {
            if (c->ignore_unknown) {
                return 1;
            }
            orpc__buf q = {0};
            fail(c, "unknown value %s of %s", quoted(&q, json_string_value(v)),
                 enum_type_name(f));
            orpc__buf_free(&q);
            return -1;
        }
        if (rc != CV_OK) {
            return is_int_type(f->type)
                       ? fail(c, "%s for %s", why, type_name(f->type))
                       : fail(c, "%s", why);
        }
        return 0;
    }
    case JSON_INTEGER:
    case JSON_REAL: {
        double d = json_number_value(v);
        if (f->type == PROTOBUF_C_TYPE_FLOAT) {
            if (!fits_float(d)) {
                return fail(c, "number out of range for float");
            }
            *(float *)member = (float)d;
            return 0;
        }
        if (f->type == PROTOBUF_C_TYPE_DOUBLE) {
            *(double *)member = d;
            return 0;
        }
        if (!is_int_type(f->type) && f->type != PROTOBUF_C_TYPE_ENUM) {
            return fail(c, "%s", expected(f->type));
        }
        if (json_is_integer(v)) {
            json_int_t iv = json_integer_value(v);
            neg = iv < 0;
            mag = neg ? (uint64_t)(-(iv + 1)) + 1 : (uint64_t)iv;
            rc = NUM_OK;
        } else {
            rc = double_to_int(d, &neg, &mag);
            /* read as a double, 2^53 itself may be 2^53 + 1 rounded */
            if (rc != NUM_FRACTION && c->real_ints && is_64bit_type(f->type) &&
                dabs(d) >= EXACT_DOUBLE_MAX) {
                return fail(c, "integer too large to be exact as a JSON "
                               "number; send it as a string");
            }
        }
        if (rc == NUM_FRACTION) {
            return fail(c, "not an integer (has a fraction) for %s",
                        type_name(f->type));
        }
        if (rc != NUM_OK || store_int(f->type, neg, mag, member) < 0) {
            return fail(c, "integer out of range for %s", type_name(f->type));
        }
        return 0;
    }
    case JSON_TRUE:
    case JSON_FALSE:
        if (f->type != PROTOBUF_C_TYPE_BOOL) {
            return fail(c, "%s", expected(f->type));
        }
        *(protobuf_c_boolean *)member = json_is_true(v);
        return 0;
    case JSON_NULL:
        if (is_null_enum(f)) {
            *(int32_t *)member = 0;
            return 0;
        }
        return fail(c, "null is not allowed here");
    default:
        return fail(c, "%s", expected(f->type));
    }
}

static int dec_msg(dctx *c, mtype t, json_t *v, unsigned depth,
                   ProtobufCMessage **out);

/* One value of field |i| of |t| into |member| (for messages, the pointer):
 * 0, -1, or 1 when skipped. */
static int dec_elem(dctx *c, mtype t, unsigned i, json_t *v, unsigned depth,
                    void *member)
{
    const ProtobufCFieldDescriptor *f = &t.d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
        return dec_scalar(c, f, enum_of(t, i), v, member);
    }
    ProtobufCMessage *sub = NULL;
    if (dec_msg(c, mt_field(t, i), v, depth, &sub) < 0) {
        return -1;
    }
    *(ProtobufCMessage **)member = sub;
    return 0;
}

/* Whether JSON null is a value (not "unset") for field |f|. */
static int null_is_value(const ProtobufCFieldDescriptor *f)
{
    return (f->type == PROTOBUF_C_TYPE_MESSAGE &&
            wkt_of(f->descriptor) == WKT_VALUE) ||
           is_null_enum(f);
}

static int dec_list(dctx *c, mtype t, unsigned i, ProtobufCMessage *m,
                    json_t *v, unsigned depth)
{
    const ProtobufCFieldDescriptor *f = &t.d->fields[i];
    char *base = (char *)m;
    if (json_is_null(v)) {
        return 0;
    }
    if (!json_is_array(v)) {
        return fail(c, "expected an array");
    }
    if (depth + 1 > c->max_depth) {
        return too_deep(c);
    }
    size_t n = json_array_size(v);
    if (n == 0) {
        return 0;
    }
    size_t esz = elem_size(f->type);
    if (n > SIZE_MAX / esz) {
        return nomem(c);
    }
    char *arr = pb_alloc(c->alloc, n * esz);
    if (arr == NULL) {
        return nomem(c);
    }
    memset(arr, 0, n * esz);
    size_t *count = (size_t *)(base + f->quantifier_offset);
    *(char **)(base + f->offset) = arr;
    *count = 0;
    for (size_t k = 0; k < n; k++) {
        json_t *el = json_array_get(v, k);
        size_t mark = path_index(c, k);
        int rc;
        if (json_is_null(el) && !null_is_value(f)) {
            rc = fail(c, "null is not allowed in a list");
        } else {
            rc = dec_elem(c, t, i, el, depth + 1, arr + *count * esz);
        }
        path_pop(c, mark);
        if (rc < 0) {
            return -1;
        }
        if (rc == 0) {
            (*count)++;
        }
    }
    return 0;
}

/* A map key into the key member of an entry. */
static int dec_map_key(dctx *c, const ProtobufCFieldDescriptor *kf,
                       const char *key, void *member)
{
    const char *why = NULL;
    int rc =
        text_to_scalar(kf, NULL, key, strlen(key), member, c->alloc, 1, &why);
    if (rc == CV_NOMEM) {
        return nomem(c);
    }
    if (rc != CV_OK) {
        return fail(c, "invalid %s map key: %s", type_name(kf->type), why);
    }
    /* One spelling per key ("1", not "1.0" or "01"): the JSON object
     * cannot then hold one key twice, which duplicate-key refusal relies
     * on (python's json_format takes only these spellings as well). */
    char canon[32];
    const char *spelt = key;
    if (kf->type != PROTOBUF_C_TYPE_STRING &&
        map_key_text(kf, member, canon, sizeof canon, &spelt) == 0 &&
        strcmp(spelt, key) != 0) {
        return fail(c, "%s map key not in canonical form (write \"%s\")",
                    type_name(kf->type), canon);
    }
    return 0;
}

static int dec_map(dctx *c, mtype t, unsigned i, ProtobufCMessage *m, json_t *v,
                   unsigned depth)
{
    const ProtobufCFieldDescriptor *f = &t.d->fields[i];
    char *base = (char *)m;
    if (json_is_null(v)) {
        return 0;
    }
    if (!json_is_object(v)) {
        return fail(c, "expected an object (a map)");
    }
    if (depth + 1 > c->max_depth) {
        return too_deep(c);
    }
    size_t n = json_object_size(v);
    if (n == 0) {
        return 0;
    }
    if (n > SIZE_MAX / sizeof(ProtobufCMessage *)) {
        return nomem(c);
    }
    ProtobufCMessage **arr = pb_alloc(c->alloc, n * sizeof *arr);
    if (arr == NULL) {
        return nomem(c);
    }
    size_t *count = (size_t *)(base + f->quantifier_offset);
    *(ProtobufCMessage ***)(base + f->offset) = arr;
    *count = 0;
    mtype et = mt_field(t, i);
    const ProtobufCFieldDescriptor *kf = &et.d->fields[0];
    const ProtobufCFieldDescriptor *vf = &et.d->fields[1];
    const char *key;
    json_t *el;
    json_object_foreach(v, key, el)
    {
        size_t mark = path_mapkey(c, key);
        ProtobufCMessage *e = pb_new(c->alloc, et.d);
        if (e == NULL) {
            return nomem(c);
        }
        arr[(*count)++] = e;
        int rc = dec_map_key(c, kf, key, (char *)e + kf->offset);
        if (rc == 0) {
            if (json_is_null(el) && !null_is_value(vf)) {
                rc = fail(c, "null is not allowed as a map value");
            } else {
                rc = dec_elem(c, et, 1, el, depth + 1, (char *)e + vf->offset);
            }
        }
        path_pop(c, mark);
        if (rc < 0) {
            return -1;
        }
        if (rc == 1) { /* unknown enum value skipped: drop the entry */
            (*count)--;
            pb_msg_free(c->alloc, e);
        }
    }
    return 0;
}

/* Field |i| of |t| from JSON value |v| into message |m|. */
static int dec_field(dctx *c, mtype t, unsigned i, ProtobufCMessage *m,
                     json_t *v, unsigned depth)
{
    const ProtobufCFieldDescriptor *f = &t.d->fields[i];
    char *base = (char *)m;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        return is_map(t.d, f) ? dec_map(c, t, i, m, v, depth)
                              : dec_list(c, t, i, m, v, depth);
    }
    if (json_is_null(v) && !null_is_value(f)) {
        return 0; /* null: unset */
    }
    uint32_t *oneof_case = NULL;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        oneof_case = (uint32_t *)(base + f->quantifier_offset);
        if (*oneof_case != 0) {
            const char *other = "another field";
            for (unsigned k = 0; k < t.d->n_fields; k++) {
                if (t.d->fields[k].id == *oneof_case) {
                    other = t.d->fields[k].name;
                }
            }
            return fail(c,
                        "oneof field set together with \"%s\" of the same "
                        "oneof",
                        other);
        }
    }
    int rc = dec_elem(c, t, i, v, depth, base + f->offset);
    if (rc != 0) {
        return rc < 0 ? -1 : 0;
    }
    if (oneof_case != NULL) {
        *oneof_case = f->id;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
               f->type != PROTOBUF_C_TYPE_STRING &&
               f->type != PROTOBUF_C_TYPE_MESSAGE) {
        *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
    }
    return 0;
}

/* The members of JSON object |v| into message |m| of type |t|; |depth|
 * counts the containers around the members.  |any_inner|: skip "@type". */
static int dec_fields(dctx *c, mtype t, json_t *v, unsigned depth,
                      ProtobufCMessage *m, int any_inner)
{
    unsigned char small[64];
    unsigned char *seen = small;
    size_t nbytes = (t.d->n_fields + 7u) / 8u;
    if (nbytes > sizeof small) {
        seen = calloc(nbytes, 1);
        if (seen == NULL) {
            return nomem(c);
        }
    } else {
        memset(small, 0, sizeof small);
    }
    int rc = 0;
    const char *key;
    json_t *el;
    json_object_foreach(v, key, el)
    {
        if (any_inner && strcmp(key, "@type") == 0) {
            continue;
        }
        int i = find_field(t, key);
        if (i < 0) {
            if (c->ignore_unknown) {
                continue;
            }
            size_t mark = path_key(c, key);
            rc = fail(c, "unknown field");
            path_pop(c, mark);
            break;
        }
        size_t mark = path_key(c, key);
        if (seen[i / 8] & (1u << (i % 8))) {
            rc = fail(c,
                      "field \"%s\" given twice (by its JSON name and its "
                      "proto name)",
                      t.d->fields[i].name);
        } else {
            seen[i / 8] |= (unsigned char)(1u << (i % 8));
            rc = dec_field(c, t, (unsigned)i, m, el, depth);
        }
        path_pop(c, mark);
        if (rc < 0) {
            break;
        }
    }
    if (seen != small) {
        free(seen);
    }
    return rc < 0 ? -1 : 0;
}

static int dec_value(dctx *c, const ProtobufCMessageDescriptor *d, json_t *v,
                     unsigned depth, ProtobufCMessage **out);

static int dec_struct(dctx *c, const ProtobufCMessageDescriptor *d, json_t *v,
                      unsigned depth, ProtobufCMessage **out)
{
    if (!json_is_object(v)) {
        return fail(c, "expected an object");
    }
    if (depth + 1 > c->max_depth) {
        return too_deep(c);
    }
    ProtobufCMessage *m = pb_new(c->alloc, d);
    if (m == NULL) {
        return nomem(c);
    }
    Google__Protobuf__Struct *s = (Google__Protobuf__Struct *)m;
    const ProtobufCMessageDescriptor *ed = d->fields[0].descriptor;
    const ProtobufCMessageDescriptor *vd = ed->fields[1].descriptor;
    size_t n = json_object_size(v);
    int rc = 0;
    if (n > 0) {
        s->fields = pb_alloc(c->alloc, n * sizeof *s->fields);
        if (s->fields == NULL) {
            rc = nomem(c);
        }
    }
    const char *key;
    json_t *el;
    json_object_foreach(v, key, el)
    {
        if (rc < 0) {
            break;
        }
        size_t mark = path_mapkey(c, key);
        ProtobufCMessage *e = pb_new(c->alloc, ed);
        if (e == NULL) {
            rc = nomem(c);
        } else {
            Google__Protobuf__Struct__FieldsEntry *fe = (void *)e;
            s->fields[s->n_fields++] = fe;
            char *k = pb_strndup(c->alloc, key, strlen(key));
            if (k == NULL) {
                rc = nomem(c);
            } else {
                fe->key = k;
                ProtobufCMessage *val = NULL;
                rc = dec_value(c, vd, el, depth + 1, &val);
                fe->value = (Google__Protobuf__Value *)val;
            }
        }
        path_pop(c, mark);
    }
    if (rc < 0) {
        pb_msg_free(c->alloc, m);
        return -1;
    }
    *out = m;
    return 0;
}

static int dec_list_value(dctx *c, const ProtobufCMessageDescriptor *d,
                          json_t *v, unsigned depth, ProtobufCMessage **out)
{
    if (!json_is_array(v)) {
        return fail(c, "expected an array");
    }
    if (depth + 1 > c->max_depth) {
        return too_deep(c);
    }
    ProtobufCMessage *m = pb_new(c->alloc, d);
    if (m == NULL) {
        return nomem(c);
    }
    Google__Protobuf__ListValue *l = (Google__Protobuf__ListValue *)m;
    const ProtobufCMessageDescriptor *vd = d->fields[0].descriptor;
    size_t n = json_array_size(v);
    int rc = 0;
    if (n > 0) {
        l->values = pb_alloc(c->alloc, n * sizeof *l->values);
        if (l->values == NULL) {
            rc = nomem(c);
        }
    }
    for (size_t k = 0; rc == 0 && k < n; k++) {
        size_t mark = path_index(c, k);
        ProtobufCMessage *val = NULL;
        rc = dec_value(c, vd, json_array_get(v, k), depth + 1, &val);
        if (rc == 0) {
            l->values[l->n_values++] = (Google__Protobuf__Value *)val;
        }
        path_pop(c, mark);
    }
    if (rc < 0) {
        pb_msg_free(c->alloc, m);
        return -1;
    }
    *out = m;
    return 0;
}

static int dec_value(dctx *c, const ProtobufCMessageDescriptor *d, json_t *v,
                     unsigned depth, ProtobufCMessage **out)
{
    ProtobufCMessage *m = pb_new(c->alloc, d);
    if (m == NULL) {
        return nomem(c);
    }
    Google__Protobuf__Value *val = (Google__Protobuf__Value *)m;
    ProtobufCMessage *sub = NULL;
    int rc = 0;
    switch (json_typeof(v)) {
    case JSON_NULL:
        val->null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
        val->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        val->bool_value = json_is_true(v);
        val->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        val->number_value = json_number_value(v);
        val->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
        break;
    case JSON_STRING:
        val->string_value =
            pb_strndup(c->alloc, json_string_value(v), json_string_length(v));
        if (val->string_value == NULL) {
            rc = nomem(c);
        } else {
            val->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        }
        break;
    case JSON_OBJECT:
        rc = dec_struct(c, d->fields[4].descriptor, v, depth, &sub);
        if (rc == 0) {
            val->struct_value = (Google__Protobuf__Struct *)sub;
            val->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
        }
        break;
    case JSON_ARRAY:
        rc = dec_list_value(c, d->fields[5].descriptor, v, depth, &sub);
        if (rc == 0) {
            val->list_value = (Google__Protobuf__ListValue *)sub;
            val->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
        }
        break;
    }
    if (rc < 0) {
        pb_msg_free(c->alloc, m);
        return -1;
    }
    *out = m;
    return 0;
}

/* google.protobuf.FieldMask from "fooBar.baz,qux". */
static int dec_fieldmask(dctx *c, const ProtobufCMessageDescriptor *d,
                         json_t *v, ProtobufCMessage **out)
{
    if (!json_is_string(v)) {
        return fail(c, "expected a field mask string");
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    ProtobufCMessage *m = pb_new(c->alloc, d);
    if (m == NULL) {
        return nomem(c);
    }
    Google__Protobuf__FieldMask *fm = (Google__Protobuf__FieldMask *)m;
    size_t count = n > 0 ? 1 : 0;
    for (size_t i = 0; i < n; i++) {
        count += s[i] == ',';
    }
    int rc = 0;
    if (count > 0) {
        fm->paths = pb_alloc(c->alloc, count * sizeof *fm->paths);
        if (fm->paths == NULL) {
            rc = nomem(c);
        }
    }
    size_t start = 0;
    while (rc == 0 && start < n + (n > 0)) {
        const char *comma = memchr(s + start, ',', n - start);
        size_t end = comma != NULL ? (size_t)(comma - s) : n;
        size_t upper = 0;
        for (size_t i = start; i < end; i++) {
            upper += is_upper(s[i]);
            if (s[i] == '_') {
                rc = fail(c, "field mask path must be lowerCamelCase (no '_')");
            }
        }
        if (rc == 0 && end == start) {
            rc = fail(c, "empty field mask path");
        }
        char *p = rc == 0 ? pb_alloc(c->alloc, end - start + upper + 1) : NULL;
        if (rc == 0 && p == NULL) {
            rc = nomem(c);
        }
        if (rc == 0) {
            size_t j = 0;
            for (size_t i = start; i < end; i++) {
                if (is_upper(s[i])) {
                    p[j++] = '_';
                    p[j++] = (char)(s[i] - 'A' + 'a');
                } else {
                    p[j++] = s[i];
                }
            }
            p[j] = '\0';
            fm->paths[fm->n_paths++] = p;
        }
        start = end + 1;
    }
    if (rc < 0) {
        pb_msg_free(c->alloc, m);
        return -1;
    }
    *out = m;
    return 0;
}

static int dec_any(dctx *c, mtype t, json_t *v, unsigned depth,
                   ProtobufCMessage **out)
{
    if (!json_is_object(v)) {
        return fail(c, "expected an object for google.protobuf.Any");
    }
    if (depth + 1 > c->max_depth) {
        return too_deep(c);
    }
    json_t *ty = json_object_get(v, "@type");
    if (ty == NULL) {
        if (json_object_size(v) != 0) {
            return fail(c, "google.protobuf.Any without \"@type\"");
        }
        ProtobufCMessage *m = pb_new(c->alloc, t.d);
        if (m == NULL) {
            return nomem(c);
        }
        *out = m;
        return 0;
    }
    size_t mark = path_key(c, "@type");
    if (!json_is_string(ty)) {
        fail(c, "expected a type URL string");
        path_pop(c, mark);
        return -1;
    }
    const char *url = json_string_value(ty);
    const char *name = type_url_name(url);
    mtype it;
    int found = name != NULL
                    ? find_type(c->root, &c->any_cache, name, strlen(name), &it)
                    : 0;
    if (found <= 0) {
        orpc__buf q = {0};
        if (found < 0) {
            nomem(c);
        } else if (name == NULL) {
            fail(c, "invalid type URL %s", quoted(&q, url));
        } else {
            fail(c, "unknown type %s (no orpc table of it is reachable)",
                 quoted(&q, name));
        }
        orpc__buf_free(&q);
        path_pop(c, mark);
        return -1;
    }
    path_pop(c, mark);

    ProtobufCMessage *im = NULL;
    int rc = 0;
    if (wkt_of(it.d) != WKT_NONE) {
        const char *key;
        json_t *el;
        json_object_foreach(v, key, el)
        {
            if (strcmp(key, "@type") != 0 && strcmp(key, "value") != 0 &&
                !c->ignore_unknown) {
                size_t m2 = path_key(c, key);
                fail(c, "unknown field");
                path_pop(c, m2);
                return -1;
            }
        }
        json_t *val = json_object_get(v, "value");
        if (val == NULL) {
            return fail(c, "google.protobuf.Any of %s without \"value\"",
                        it.d->name);
        }
        size_t m2 = path_key(c, "value");
        rc = dec_msg(c, it, val, depth + 1, &im);
        path_pop(c, m2);
    } else {
        im = pb_new(c->alloc, it.d);
        if (im == NULL) {
            return nomem(c);
        }
        rc = dec_fields(c, it, v, depth + 1, im, 1);
        if (rc < 0) {
            pb_msg_free(c->alloc, im);
            im = NULL;
        }
    }
    if (rc < 0) {
        return -1;
    }
    ProtobufCMessage *m = pb_new(c->alloc, t.d);
    size_t sz = protobuf_c_message_get_packed_size(im);
    uint8_t *buf = m != NULL ? pb_alloc(c->alloc, sz) : NULL;
    char *type_url =
        buf != NULL ? pb_strndup(c->alloc, url, strlen(url)) : NULL;
    if (type_url == NULL) {
        pb_free(c->alloc, buf);
        pb_msg_free(c->alloc, m);
        pb_msg_free(c->alloc, im);
        return nomem(c);
    }
    protobuf_c_message_pack(im, buf);
    pb_msg_free(c->alloc, im);
    Google__Protobuf__Any *a = (Google__Protobuf__Any *)m;
    a->type_url = type_url;
    a->value.data = sz > 0 ? buf : NULL;
    a->value.len = sz;
    if (sz == 0) {
        pb_free(c->alloc, buf);
    }
    *out = m;
    return 0;
}

/* Timestamp, Duration and wrappers. */
static int dec_simple_wkt(dctx *c, enum wkt kind, mtype t, json_t *v,
                          ProtobufCMessage **out)
{
    int64_t sec = 0;
    int32_t nanos = 0;
    if (kind == WKT_TIMESTAMP || kind == WKT_DURATION) {
        if (!json_is_string(v)) {
            return fail(c, kind == WKT_TIMESTAMP
                               ? "expected an RFC 3339 timestamp string"
                               : "expected a duration string like \"1.5s\"");
        }
        int rc = kind == WKT_TIMESTAMP
                     ? parse_timestamp(json_string_value(v),
                                       json_string_length(v), &sec, &nanos)
                     : parse_duration(json_string_value(v),
                                      json_string_length(v), &sec, &nanos);
        if (rc < 0) {
            orpc__buf q = {0};
            fail(c, "invalid %s %s",
                 kind == WKT_TIMESTAMP ? "timestamp" : "duration",
                 quoted(&q, json_string_value(v)));
            orpc__buf_free(&q);
            return -1;
        }
    } else if (json_is_null(v)) {
        return fail(c, "null is not allowed here");
    }
    ProtobufCMessage *m = pb_new(c->alloc, t.d);
    if (m == NULL) {
        return nomem(c);
    }
    if (kind == WKT_TIMESTAMP) {
        Google__Protobuf__Timestamp *ts = (Google__Protobuf__Timestamp *)m;
        ts->seconds = sec;
        ts->nanos = nanos;
    } else if (kind == WKT_DURATION) {
        Google__Protobuf__Duration *d = (Google__Protobuf__Duration *)m;
        d->seconds = sec;
        d->nanos = nanos;
    } else if (dec_scalar(c, &t.d->fields[0], NULL, v,
                          (char *)m + t.d->fields[0].offset) != 0) {
        pb_msg_free(c->alloc, m);
        return -1;
    }
    *out = m;
    return 0;
}

/* A message of type |t| from |v|; |depth| counts the containers around
 * |v|. */
static int dec_msg(dctx *c, mtype t, json_t *v, unsigned depth,
                   ProtobufCMessage **out)
{
    enum wkt kind = wkt_of(t.d);
    switch (kind) {
    case WKT_ANY:
        return dec_any(c, t, v, depth, out);
    case WKT_TIMESTAMP:
    case WKT_DURATION:
    case WKT_WRAPPER:
        return dec_simple_wkt(c, kind, t, v, out);
    case WKT_STRUCT:
        return dec_struct(c, t.d, v, depth, out);
    case WKT_VALUE:
        return dec_value(c, t.d, v, depth, out);
    case WKT_LIST:
        return dec_list_value(c, t.d, v, depth, out);
    case WKT_FIELDMASK:
        return dec_fieldmask(c, t.d, v, out);
    case WKT_NONE:
        break;
    }
    if (!json_is_object(v)) {
        return fail(c, "expected an object for %s", t.d->name);
    }
    if (depth + 1 > c->max_depth) {
        return too_deep(c);
    }
    ProtobufCMessage *m = pb_new(c->alloc, t.d);
    if (m == NULL) {
        return nomem(c);
    }
    if (dec_fields(c, t, v, depth + 1, m, 0) < 0) {
        pb_msg_free(c->alloc, m);
        return -1;
    }
    *out = m;
    return 0;
}

static orpc_status decode_root(const orpc_message_info *info, json_t *v,
                               const orpc_json_opts *opts,
                               ProtobufCAllocator *alloc, const char *path,
                               int real_ints, ProtobufCMessage **out)
{
    dctx c;
    memset(&c, 0, sizeof c);
    c.st = ORPC_STATUS_OK;
    c.ignore_unknown = opts != NULL && opts->ignore_unknown;
    c.max_depth = opts != NULL && opts->max_depth > 0 ? opts->max_depth
                                                      : DEFAULT_MAX_DEPTH;
    c.real_ints = real_ints;
    c.alloc = alloc;
    c.root = mt(info->descriptor, info);
    orpc__buf_puts(&c.path, path != NULL ? path : "$");
    ProtobufCMessage *m = NULL;
    int rc = dec_msg(&c, c.root, v, 0, &m);
    if (rc == 0 && !protobuf_c_message_check(m)) {
        pb_msg_free(alloc, m);
        m = NULL;
        rc = fail(&c, "a required field is missing");
    }
    orpc__buf_free(&c.path);
    if (rc < 0) {
        if (c.st.code == ORPC_OK) { /* cannot happen; never report OK */
            c.st = orpc_status_new(ORPC_INVALID_ARGUMENT, "invalid JSON");
        }
        return c.st;
    }
    *out = m;
    return ORPC_STATUS_OK;
}

static int bad_info(const orpc_message_info *info)
{
    return info == NULL || info->descriptor == NULL ||
           info->descriptor->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC;
}

orpc_status orpc__json_decode_value(const orpc_message_info *info, json_t *v,
                                    const orpc_json_opts *opts,
                                    ProtobufCAllocator *alloc, const char *path,
                                    ProtobufCMessage **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (bad_info(info) || v == NULL || out == NULL) {
        return orpc_status_errorf(ORPC_INVALID_ARGUMENT,
                                  "%s: invalid arguments",
                                  path != NULL ? path : "$");
    }
    return decode_root(info, v, opts, alloc, path, 0, out);
}

orpc_status orpc_json_decode(const orpc_message_info *info, const char *json,
                             size_t len, const orpc_json_opts *opts,
                             ProtobufCAllocator *alloc, ProtobufCMessage **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (bad_info(info) || (json == NULL && len > 0) || out == NULL) {
        return orpc_status_new(ORPC_INVALID_ARGUMENT, "$: invalid arguments");
    }
    const size_t flags = JSON_DECODE_ANY | JSON_REJECT_DUPLICATES;
    json_error_t err;
    json_t *root = json_loadb(json != NULL ? json : "", len, flags, &err);
    int real_ints = 0;
    if (root == NULL && json_error_code(&err) == json_error_numeric_overflow) {
        /* An integer literal beyond 64 bits: read every number as a double
         * (a double field takes it; an integer field refuses it). */
        json_error_t err2;
        root = json_loadb(json, len, flags | JSON_DECODE_INT_AS_REAL, &err2);
        real_ints = root != NULL;
    }
    if (root == NULL) {
        if (json_error_code(&err) == json_error_out_of_memory) {
            return orpc_status_new(ORPC_RESOURCE_EXHAUSTED,
                                   "out of memory decoding JSON");
        }
        /* jansson's text may quote input bytes: keep it printable ASCII. */
        char text[JSON_ERROR_TEXT_LENGTH];
        size_t k = 0;
        for (; k + 1 < sizeof text && err.text[k] != '\0'; k++) {
            unsigned char ch = (unsigned char)err.text[k];
            text[k] = ch < 0x20 || ch >= 0x7f ? '?' : (char)ch;
        }
        text[k] = '\0';
        return orpc_status_errorf(ORPC_INVALID_ARGUMENT,
                                  "$: %s (line %d, column %d)", text, err.line,
                                  err.column);
    }
    orpc_status st = decode_root(info, root, opts, alloc, "$", real_ints, out);
    json_decref(root);
    return st;
}

/* ------------------------------------------------------------------ */
/* Scalars as URL text                                                 */

int orpc__json_scalar_text(const ProtobufCFieldDescriptor *f,
                           const orpc_field_info *fi, const void *member,
                           const orpc_json_opts *opts, char **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    /* A repeated field is accepted too: |member| is then one element (the
     * storage of an element is that of a singular value). */
    if (f == NULL || member == NULL || out == NULL ||
        f->type == PROTOBUF_C_TYPE_MESSAGE) {
        return ORPC_EINVAL;
    }
    char buf[64] = "";
    const char *text = buf;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_BOOL:
        map_key_text(f, member, buf, sizeof buf, &text); /* map keys' form */
        break;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v = f->type == PROTOBUF_C_TYPE_FLOAT
                       ? float_as_double(*(const float *)member)
                       : *(const double *)member;
        if (isnan(v)) {
            text = "NaN";
        } else if (isinf(v)) {
            text = v > 0 ? "Infinity" : "-Infinity";
        } else {
            fmt_double(v, buf, sizeof buf);
        }
        break;
    }
    case PROTOBUF_C_TYPE_STRING:
        text = *(char *const *)member != NULL ? *(char *const *)member : "";
        if (!utf8_valid(text, strlen(text))) {
            return ORPC_EINVAL;
        }
        break;
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = member;
        orpc__buf t = {0};
        orpc__base64_append(&t, b->data, b->data != NULL ? b->len : 0,
                            ORPC__BASE64_URL);
        *out = orpc__buf_take(&t, NULL);
        return *out != NULL ? 0 : ORPC_ENOMEM;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        int32_t n = *(const int32_t *)member;
        text = enum_name(f, enum_of_fi(f, fi), opts != NULL && opts->legacy, n);
        if (text == NULL) {
            snprintf(buf, sizeof buf, "%" PRId32, n);
            text = buf;
        }
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return ORPC_EINVAL;
    }
    size_t n = strlen(text);
    *out = malloc(n + 1);
    if (*out == NULL) {
        return ORPC_ENOMEM;
    }
    memcpy(*out, text, n + 1);
    return 0;
}

/* Frees what the value of field |f| at |member| owns (strings, bytes,
 * messages), unless it is the field's static default. */
static void free_member(const ProtobufCFieldDescriptor *f, void *member,
                        ProtobufCAllocator *alloc)
{
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        char *s = *(char **)member;
        if (s != NULL && s != f->default_value) {
            pb_free(alloc, s);
        }
        *(char **)member = NULL;
    } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
        ProtobufCBinaryData *b = member;
        const ProtobufCBinaryData *def = f->default_value;
        if (b->data != NULL && (def == NULL || def->data != b->data)) {
            pb_free(alloc, b->data);
        }
        b->data = NULL;
        b->len = 0;
    } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        ProtobufCMessage *m = *(ProtobufCMessage **)member;
        if (m != NULL && (const void *)m != f->default_value) {
            protobuf_c_message_free_unpacked(m, alloc);
        }
        *(ProtobufCMessage **)member = NULL;
    }
}

int orpc__json_scalar_parse(const ProtobufCFieldDescriptor *f,
                            const orpc_field_info *fi, void *member,
                            const char *text, ProtobufCAllocator *alloc)
{
    if (f == NULL || member == NULL || text == NULL ||
        f->label == PROTOBUF_C_LABEL_REPEATED ||
        f->type == PROTOBUF_C_TYPE_MESSAGE) {
        return ORPC_EINVAL;
    }
    union {
        int32_t i32;
        uint32_t u32;
        int64_t i64;
        uint64_t u64;
        float f;
        double d;
        protobuf_c_boolean b;
        char *s;
        ProtobufCBinaryData bd;
    } tmp;
    memset(&tmp, 0, sizeof tmp);
    const char *why = NULL;
    int rc = text_to_scalar(f, enum_of_fi(f, fi), text, strlen(text), &tmp,
                            alloc, 1, &why);
    if (rc == CV_NOMEM) {
        return ORPC_ENOMEM;
    }
    if (rc != CV_OK) {
        return ORPC_EINVAL;
    }
    /* The message that holds |member|, for the oneof case or has_ flag. */
    char *base = (char *)member - f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *oneof_case = (uint32_t *)(base + f->quantifier_offset);
        if (*oneof_case == f->id) {
            free_member(f, member, alloc);
        } else if (*oneof_case != 0) {
            /* Another member of the oneof holds the storage: release it. */
            const ProtobufCMessage *m = (const ProtobufCMessage *)base;
            const ProtobufCMessageDescriptor *d = m->descriptor;
            if (d != NULL && d->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC) {
                for (unsigned k = 0; k < d->n_fields; k++) {
                    if (d->fields[k].id == *oneof_case) {
                        free_member(&d->fields[k], base + d->fields[k].offset,
                                    alloc);
                    }
                }
            }
        }
        memcpy(member, &tmp, elem_size(f->type));
        *oneof_case = f->id;
        return 0;
    }
    free_member(f, member, alloc);
    memcpy(member, &tmp, elem_size(f->type));
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
        f->type != PROTOBUF_C_TYPE_STRING) {
        *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
    }
    return 0;
}
