/*
 * json_internal.h — the JSON mapping at the jansson level, for the rest of
 * the compat layer (HTTP rules build bodies and query strings from it), and
 * below that the declarations the json_*.c files share among themselves.
 *
 * The mapping is split by concern: json_text.c (strings, numbers as text),
 * json_time.c (Timestamp and Duration text), json_types.c (field and message
 * types, scalar conversions), json_encode.c and json_decode.c (messages,
 * lists, maps, oneofs, and the public entry points), json_wkt.c (the
 * well-known types' own JSON forms) and json_url.c (scalars as URL text).
 * Everything here is private to liborpc-compat (hidden); names carry the
 * orpc__json_ / ORPC__ prefix because http_rule.c includes this header too.
 */
#ifndef ORPC_COMPAT_JSON_INTERNAL_H
#define ORPC_COMPAT_JSON_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include <orpc/compat/json.h>
#include <orpc/error.h>

#include "common/buf.h"

/* |msg| as a jansson value (a new reference in |*out|).  Returns and
 * fills |detail| as orpc_json_encode() does. */
/* Appends the compact JSON text of |v| to |b| (reals in their shortest
 * exact form; |b|->failed on ENOMEM). */
void orpc__json_dump(orpc__buf *b, json_t *v);
int orpc__json_encode_value(json_t **out, const orpc_message_info *info,
                            const ProtobufCMessage *msg,
                            const orpc_json_opts *opts,
                            orpc_error_detail *detail);

/* |v| into a new message, as orpc_json_decode() does with text; the paths
 * in |detail| start with |path| (NULL: "$"), e.g. "$.body". */
int orpc__json_decode_value(ProtobufCMessage **out,
                            const orpc_message_info *info, json_t *v,
                            const char *path, const orpc_json_opts *opts,
                            ProtobufCAllocator *alloc,
                            orpc_error_detail *detail);

/* One singular scalar or enum field's value (or one element of a repeated
 * one) as the text that goes into a
 * URL path segment, a query parameter or a header (the JSON text of the
 * value without quotes: 42, true, "x" → x, enums by name or legacy name,
 * bytes as URL-safe base64).  |member| points at the field's storage in the
 * message.  0 with a malloc'd |*out|, or ORPC_EINVAL / ORPC_ENOMEM. */
int orpc__json_scalar_text(const ProtobufCFieldDescriptor *f,
                           const orpc_field_info *fi, const void *member,
                           const orpc_json_opts *opts, char **out);

/* Sets a singular scalar or enum field from |text| (a URL segment or query
 * value, already percent-decoded), setting its oneof case or has_ flag too
 * and freeing the value it replaces (which must have come from |alloc| or
 * be the field's default).  0 or ORPC_EINVAL (|text| does not parse as the
 * field's type) / ORPC_ENOMEM; strings and bytes are allocated with
 * |alloc|. */
int orpc__json_scalar_parse(const ProtobufCFieldDescriptor *f,
                            const orpc_field_info *fi, void *member,
                            const char *text, ProtobufCAllocator *alloc);

/* ==================================================================== */
/* Shared by the json_*.c files only                                     */

#define ORPC__JSON_DEFAULT_MAX_DEPTH 64u
#define ORPC__JSON_EXACT_DOUBLE_MAX 9007199254740992.0 /* 2^53 */

/* ---- json_text.c: strings, names and numbers as text ---------------- */

static inline int orpc__json_isdigit(char c)
{
    return c >= '0' && c <= '9';
}

static inline int orpc__json_islower(char c)
{
    return c >= 'a' && c <= 'z';
}

static inline int orpc__json_isupper(char c)
{
    return c >= 'A' && c <= 'Z';
}

/* |v| without libm (liborpc-compat does not link it). */
static inline double orpc__json_dabs(double v)
{
    return v < 0 ? -v : v;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
int orpc__json_utf8_valid(const char *s, size_t n);

/* Appends |s| as the inside of a JSON string literal. */
void orpc__json_escape(orpc__buf *b, const char *s, size_t n);

/* Appends |s| quoted for an error message: JSON-escaped, cut (at a
 * character boundary) after |max| bytes. */
void orpc__json_quote(orpc__buf *b, const char *s, size_t max);

/* protoc's ToJsonName ("foo_bar" -> "fooBar") of |name|, compared with
 * |key| / in a malloc'd string. */
int orpc__json_name_eq(const char *name, const char *key);
char *orpc__json_name_dup(const char *name);

/* |v| (finite) in the shortest form that reads back as |v|, with '.'
 * whatever the locale; |cap| >= 32. */
void orpc__json_fmt_double(double v, char *out, size_t cap);

/* The double nearest to the shortest decimal that reads back as |f|. */
double orpc__json_float_as_double(float f);

/* Results of the number parsers. */
enum {
    ORPC__JSON_NUM_OK = 0,
    ORPC__JSON_NUM_SYNTAX = -1,   /* not a JSON number */
    ORPC__JSON_NUM_FRACTION = -2, /* not integral */
    ORPC__JSON_NUM_RANGE = -3,    /* beyond a double / 64 bits */
    ORPC__JSON_NUM_NOMEM = -4
};

/* JSON number text s[0..n) as a double. */
int orpc__json_parse_double(const char *s, size_t n, double *out);

/* The exact integer that JSON number text s[0..n) denotes, as a sign and a
 * magnitude (exponents and zero fractions allowed). */
int orpc__json_parse_int(const char *s, size_t n, int *neg, uint64_t *mag);

/* Whether finite |v| is an integer. */
int orpc__json_is_integral(double v);

/* An integral double as sign and magnitude. */
int orpc__json_double_to_int(double v, int *neg, uint64_t *mag);

/* Whether a double fits a float field (values that round to ±FLT_MAX do). */
int orpc__json_fits_float(double v);

/* Path steps of an error message ("$.a", "$[\"a b\"]", "$.m[\"k\"]",
 * "$.l[2]"), appended to |path|; each returns the mark to restore with
 * orpc__json_path_pop(). */
size_t orpc__json_path_key(orpc__buf *path, const char *key);
size_t orpc__json_path_mapkey(orpc__buf *path, const char *key);
size_t orpc__json_path_index(orpc__buf *path, size_t i);
void orpc__json_path_pop(orpc__buf *path, size_t mark);

/* Input text |s| quoted (and cut) for a reason, in |tmp|. */
const char *orpc__json_quoted(orpc__buf *tmp, const char *s);

/* Fills |d| with |code| and "<path>: <reason>", shortening the path from
 * the front when it would not fit. */
void orpc__json_set_error(orpc_error_detail *d, int code, const orpc__buf *path,
                          const char *reason);

/* ---- json_time.c: Timestamp and Duration text ----------------------- */

/* RFC 3339 text of a Timestamp into |out| (|cap| >= 40); -1 when out of
 * range (years 1 to 9999, 0 <= nanos < 10^9). */
int orpc__json_fmt_timestamp(int64_t sec, int32_t nanos, char *out, size_t cap);
int orpc__json_parse_timestamp(const char *s, size_t n, int64_t *sec,
                               int32_t *nanos);

/* "-1.5s"-style text of a Duration into |out| (|cap| >= 32); -1 when out
 * of range (±10000 years, nanos of the seconds' sign). */
int orpc__json_fmt_duration(int64_t sec, int32_t nanos, char *out, size_t cap);
int orpc__json_parse_duration(const char *s, size_t n, int64_t *sec,
                              int32_t *nanos);

/* ---- json_types.c: field types (the traits), memory, message types -- */

/* Allocation through a ProtobufCAllocator (NULL: malloc). */
void *orpc__json_alloc(ProtobufCAllocator *a, size_t n);
void orpc__json_free(ProtobufCAllocator *a, void *p);
char *orpc__json_strndup(ProtobufCAllocator *a, const char *s, size_t n);

/* A new message of type |d|, initialised; NULL when memory runs out. */
ProtobufCMessage *orpc__json_msg_new(ProtobufCAllocator *a,
                                     const ProtobufCMessageDescriptor *d);
void orpc__json_msg_free(ProtobufCAllocator *a, ProtobufCMessage *m);

/* How a field type's values are written and read: the JSON kind. */
typedef enum orpc__json_kind {
    ORPC__JSON_NONE,   /* not a type protobuf-c has: every conversion fails */
    ORPC__JSON_INT,    /* 32-bit integers: a number */
    ORPC__JSON_INT64,  /* 64-bit integers: a decimal string; numbers read */
    ORPC__JSON_REAL,   /* float, double: a number, "NaN", "±Infinity" */
    ORPC__JSON_BOOL,   /* true / false */
    ORPC__JSON_STRING, /* a string */
    ORPC__JSON_BYTES,  /* a base64 string */
    ORPC__JSON_ENUM,   /* a value name, or number */
    ORPC__JSON_MESSAGE /* an object, or a well-known type's own form */
} orpc__json_kind;

/* Results of orpc__json_ops.parse. */
enum {
    ORPC__JSON_CV_OK = 0,
    ORPC__JSON_CV_BAD = -1,
    ORPC__JSON_CV_NOMEM = -2,
    ORPC__JSON_CV_UNKNOWN_ENUM = 1 /* an enum name not known: skippable */
};

/* What the values of one JSON kind do.  |f| is the field (its type selects
 * the traits; enums and NullValue need its descriptor), |ei| its enum's
 * orpc table or NULL, |member| the value's storage. */
typedef struct orpc__json_ops {
    /* the reason given for a JSON value of the wrong type */
    const char *expected;
    /* may be a map key */
    unsigned map_key : 1;
    /* held by pointer (strings, messages): presence is "not NULL", and an
     * optional field has no has_ flag */
    unsigned by_pointer : 1;
    /* the value as a JSON value: 0, ORPC_EINVAL or ORPC_ENOMEM */
    int (*encode)(const ProtobufCFieldDescriptor *f, const orpc_enum_info *ei,
                  int legacy, const void *member, json_t **out);
    /* text s[0..n) (NUL-terminated at n: a JSON string, a map key, URL
     * text) into |member|, allocating with |a|; |bool_text|: "true" and
     * "false" are bools.  A CV result, |*why| set for ORPC__JSON_CV_BAD */
    int (*parse)(const ProtobufCFieldDescriptor *f, const orpc_enum_info *ei,
                 const char *s, size_t n, void *member, ProtobufCAllocator *a,
                 int bool_text, const char **why);
    /* the value as map-key or URL text, appended to |out|: 0 or ORPC_EINVAL
     * (running out of memory sets out->failed) */
    int (*text)(const ProtobufCFieldDescriptor *f, const orpc_enum_info *ei,
                int legacy, const void *member, orpc__buf *out);
    /* whether the value is its type's default (proto3 presence) */
    int (*is_default)(const ProtobufCFieldDescriptor *f, const void *member);
    /* frees what the value owns unless it is |f|'s static default, and
     * clears it; NULL when values own nothing */
    void (*release)(const ProtobufCFieldDescriptor *f, void *member,
                    ProtobufCAllocator *a);
} orpc__json_ops;

/* The traits of one ProtobufCType (json_types.c has the table). */
typedef struct orpc__json_traits {
    const char *name;     /* "sfixed32", for error messages */
    orpc__json_kind kind; /* how values are written and read */
    size_t size;          /* of the C value: a member, an array element */
    int is_signed;        /* integers and enums */
    uint64_t max;         /* integers and enums: the largest value; the
                             smallest is -(max + 1) when signed, else 0 */
    const orpc__json_ops *ops;
} orpc__json_traits;

/* The traits of |t|; a value protobuf-c does not have gets kind NONE. */
const orpc__json_traits *orpc__json_traits_of(ProtobufCType t);

/* Whether values of |tr|'s type are integers (enums are not). */
static inline int orpc__json_is_integer(const orpc__json_traits *tr)
{
    return tr->kind == ORPC__JSON_INT || tr->kind == ORPC__JSON_INT64;
}

/* Stores sign/magnitude into an integer or enum member of |tr|'s type; 0,
 * or -1 when out of its range. */
int orpc__json_store_int(const orpc__json_traits *tr, int neg, uint64_t mag,
                         void *member);

/* Stores |v| into a float or double member; -1 when it does not fit a
 * float. */
int orpc__json_store_real(const orpc__json_traits *tr, double v, void *member);

/* A message type: its descriptor and, when generated, its orpc table. */
typedef struct orpc__json_mtype {
    const ProtobufCMessageDescriptor *d;
    const orpc_message_info *info;
} orpc__json_mtype;

/* The type of |d|; |info| is dropped when it is not |d|'s table. */
orpc__json_mtype orpc__json_mt(const ProtobufCMessageDescriptor *d,
                               const orpc_message_info *info);

/* The type of message field |i| of |t|. */
orpc__json_mtype orpc__json_mt_field(orpc__json_mtype t, unsigned i);

/* The orpc table of enum field |i| of |t| / of |f| given its field info;
 * NULL when there is none. */
const orpc_enum_info *orpc__json_enum_of(orpc__json_mtype t, unsigned i);
const orpc_enum_info *orpc__json_enum_of_fi(const ProtobufCFieldDescriptor *f,
                                            const orpc_field_info *fi);

/* Whether |f| is a google.protobuf.NullValue field. */
int orpc__json_is_null_enum(const ProtobufCFieldDescriptor *f);

/* Whether repeated field |f| of |parent| is a map. */
int orpc__json_is_map(const ProtobufCMessageDescriptor *parent,
                      const ProtobufCFieldDescriptor *f);

/* The index of the field of |t| that JSON key |key| names, or -1. */
int orpc__json_find_field(orpc__json_mtype t, const char *key);

/* The name enum value |n| is written as; NULL when |n| has none. */
const char *orpc__json_enum_name(const ProtobufCFieldDescriptor *f,
                                 const orpc_enum_info *ei, int legacy,
                                 int32_t n);

/* ---- json_encode.c -------------------------------------------------- */

typedef struct orpc__json_enc {
    int legacy;
    int emit_defaults;
    int proto_names;
    unsigned max_depth;
    orpc__json_mtype root;
    orpc__json_mtype any_cache;
    orpc__buf path;        /* "$.a[2]": where the encoder is */
    orpc_error_detail err; /* the first fault, with its path */
} orpc__json_enc;

/* Records |code| with "<path>: <reason>" as the error (the first one
 * wins); returns |code|. */
int orpc__json_enc_fail(orpc__json_enc *c, int code, const char *fmt, ...)
    ORPC_PRINTF(3, 4);

/* Records nesting beyond max_depth; ORPC_ETOOBIG. */
int orpc__json_enc_too_deep(orpc__json_enc *c);

/* |m| of type |t| as a JSON value; |depth| counts the containers around
 * it.  0, ORPC_EINVAL or ORPC_ENOMEM. */
int orpc__json_enc_msg(orpc__json_enc *c, orpc__json_mtype t,
                       const ProtobufCMessage *m, unsigned depth, json_t **out);

/* A scalar or enum value at |member| as a JSON value. */
int orpc__json_enc_scalar(orpc__json_enc *c, const ProtobufCFieldDescriptor *f,
                          const orpc_enum_info *ei, const void *member,
                          json_t **out);

/* |*out| = |v|: 0, or ORPC_ENOMEM when |v| is NULL. */
int orpc__json_mk(json_t *v, json_t **out);

/* s[0..n) as a JSON string; ORPC_EINVAL when it is not UTF-8. */
int orpc__json_mk_string(const char *s, size_t n, json_t **out);

/* ---- json_decode.c -------------------------------------------------- */

typedef struct orpc__json_dec {
    int ignore_unknown;
    int real_ints; /* the document was read with JSON_DECODE_INT_AS_REAL */
    unsigned max_depth;
    ProtobufCAllocator *alloc;
    orpc__json_mtype root;
    orpc__json_mtype any_cache;
    orpc__buf path;        /* "$.a[2]": where the decoder is */
    orpc__buf scratch;     /* short-lived text (canonical map keys) */
    orpc_error_detail err; /* the first fault, with its path */
} orpc__json_dec;

/* Record the error (the first one wins) and return -1: ORPC_EPARSE with
 * "<path>: <reason>" / |code| with the same / ORPC_ENOMEM / ORPC_ETOOBIG
 * for nesting beyond max_depth. */
int orpc__json_fail(orpc__json_dec *c, const char *fmt, ...) ORPC_PRINTF(2, 3);
int orpc__json_fail_code(orpc__json_dec *c, int code, const char *fmt, ...)
    ORPC_PRINTF(3, 4);
int orpc__json_nomem(orpc__json_dec *c);
int orpc__json_too_deep(orpc__json_dec *c);

/* A scalar or enum JSON value into |member|: 0, -1, or 1 when an unknown
 * enum name is skipped (ignore_unknown). */
int orpc__json_dec_scalar(orpc__json_dec *c, const ProtobufCFieldDescriptor *f,
                          const orpc_enum_info *ei, json_t *v, void *member);

/* A message of type |t| from |v|; |depth| counts the containers around
 * |v|.  0 or -1. */
int orpc__json_dec_msg(orpc__json_dec *c, orpc__json_mtype t, json_t *v,
                       unsigned depth, ProtobufCMessage **out);

/* The members of JSON object |v| into message |m| of type |t|; |depth|
 * counts the containers around the members.  |any_inner|: skip "@type". */
int orpc__json_dec_fields(orpc__json_dec *c, orpc__json_mtype t, json_t *v,
                          unsigned depth, ProtobufCMessage *m, int any_inner);

/* ---- json_wkt.c: the well-known types' JSON forms ------------------- */

enum orpc__json_wkt {
    ORPC__WKT_NONE,
    ORPC__WKT_ANY,
    ORPC__WKT_TIMESTAMP,
    ORPC__WKT_DURATION,
    ORPC__WKT_WRAPPER,
    ORPC__WKT_STRUCT,
    ORPC__WKT_VALUE,
    ORPC__WKT_LIST,
    ORPC__WKT_FIELDMASK
};

/* The well-known type |d| is, by full name and generated struct size. */
enum orpc__json_wkt orpc__json_wkt_of(const ProtobufCMessageDescriptor *d);

/* |m|, of well-known type |kind| (not NONE), as its JSON form. */
int orpc__json_enc_wkt(orpc__json_enc *c, enum orpc__json_wkt kind,
                       orpc__json_mtype t, const ProtobufCMessage *m,
                       unsigned depth, json_t **out);

/* A message of well-known type |kind| (not NONE) from its JSON form. */
int orpc__json_dec_wkt(orpc__json_dec *c, enum orpc__json_wkt kind,
                       orpc__json_mtype t, json_t *v, unsigned depth,
                       ProtobufCMessage **out);

#endif
