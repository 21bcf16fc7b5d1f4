/*
 * wkt.c — the special proto3 JSON forms of the well-known types for the
 * `orpc` command's dynamic codec (dynmsg.c): Timestamp and Duration as
 * strings, the nine wrappers as their bare value, Struct / Value /
 * ListValue as plain JSON, FieldMask as one string.  (Any needs the
 * descriptor of the type it packs: the codec handles it, dynmsg.c.)
 *
 * Design notes:
 * - Each function converts one level between the special form and the
 *   plain form the generic codec reads and writes ({"seconds": "1",
 *   "nanos": 5}, {"value": 3}, {"fields": {...}}), and leaves what is
 *   nested to the codec, which calls it again for each nested message.
 *   So a Struct in a Value in a ListValue is converted level by level,
 *   within the codec's depth bound, and nothing is converted twice.
 * - Dates are converted with the civil-from-days arithmetic (proleptic
 *   Gregorian, UTC), within proto3's range 0001-01-01 to 9999-12-31.
 */
#include "wkt.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WKT_MIN_SECONDS (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define WKT_MAX_SECONDS 253402300799LL   /* 9999-12-31T23:59:59Z */
#define WKT_MAX_DURATION 315576000000LL  /* 10000 years */

typedef enum wkt {
    WKT_NONE,
    WKT_TIMESTAMP,
    WKT_DURATION,
    WKT_WRAPPER,
    WKT_STRUCT,
    WKT_VALUE,
    WKT_LIST,
    WKT_FIELD_MASK
} wkt;

static wkt kind_of(const char *type)
{
    static const struct {
        const char *name;
        wkt kind;
    } table[] = {{"Timestamp", WKT_TIMESTAMP}, {"Duration", WKT_DURATION},
                 {"DoubleValue", WKT_WRAPPER}, {"FloatValue", WKT_WRAPPER},
                 {"Int64Value", WKT_WRAPPER},  {"UInt64Value", WKT_WRAPPER},
                 {"Int32Value", WKT_WRAPPER},  {"UInt32Value", WKT_WRAPPER},
                 {"BoolValue", WKT_WRAPPER},   {"StringValue", WKT_WRAPPER},
                 {"BytesValue", WKT_WRAPPER},  {"Struct", WKT_STRUCT},
                 {"Value", WKT_VALUE},         {"ListValue", WKT_LIST},
                 {"FieldMask", WKT_FIELD_MASK}};
    if (type[0] == '.')
        type++;
    if (strncmp(type, "google.protobuf.", 16) != 0)
        return WKT_NONE;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(type + 16, table[i].name) == 0)
            return table[i].kind;
    return WKT_NONE;
}

int orpc__wkt_is_special(const char *type)
{
    return kind_of(type) != WKT_NONE;
}

int orpc__wkt_is_value(const char *type)
{
    return kind_of(type) == WKT_VALUE;
}

/* ---- dates ---- */

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Reads ".ddddddddd" (1 to 9 digits) at *s into nanoseconds. */
static int fraction(const char **s, int32_t *nanos)
{
    *nanos = 0;
    if (**s != '.')
        return 0;
    (*s)++;
    int n = 0;
    int32_t v = 0;
    while (isdigit((unsigned char)**s) && n < 9) {
        v = v * 10 + (**s - '0');
        (*s)++;
        n++;
    }
    if (n == 0 || isdigit((unsigned char)**s))
        return -1;
    for (; n < 9; n++)
        v *= 10;
    *nanos = v;
    return 0;
}

/* ".021", ".000021" or ".000000021": 0, 3, 6 or 9 digits. */
static void format_fraction(char *out, size_t cap, int32_t nanos)
{
    if (nanos == 0)
        out[0] = '\0';
    else if (nanos % 1000000 == 0)
        snprintf(out, cap, ".%03d", (int)(nanos / 1000000));
    else if (nanos % 1000 == 0)
        snprintf(out, cap, ".%06d", (int)(nanos / 1000));
    else
        snprintf(out, cap, ".%09d", (int)nanos);
}

static json_t *plain_time(int64_t seconds, int32_t nanos)
{
    char t[24];
    snprintf(t, sizeof t, "%" PRId64, seconds);
    return json_pack("{s:s, s:i}", "seconds", t, "nanos", (int)nanos);
}

static int parse_timestamp(const char *s, int64_t *secs, int32_t *nanos)
{
    int y, mo, d, h, mi, se, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &n) !=
            6 ||
        n != 19 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        se > 59)
        return -1;
    s += n;
    if (fraction(&s, nanos) != 0)
        return -1;
    int64_t offset = 0;
    if (*s == 'Z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        int oh, om, k = 0;
        if (sscanf(s + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5 ||
            oh > 23 || om > 59)
            return -1;
        offset = (oh * 3600 + om * 60) * (*s == '-' ? -1 : 1);
        s += 6;
    } else {
        return -1;
    }
    if (*s != '\0')
        return -1;
    *secs =
        days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
    return *secs < WKT_MIN_SECONDS || *secs > WKT_MAX_SECONDS ? -1 : 0;
}

static int parse_duration(const char *s, int64_t *secs, int32_t *nanos)
{
    int neg = *s == '-';
    s += neg;
    if (!isdigit((unsigned char)*s))
        return -1;
    char *end;
    long long v = strtoll(s, &end, 10);
    s = end;
    if (v > WKT_MAX_DURATION || fraction(&s, nanos) != 0 || strcmp(s, "s"))
        return -1;
    *secs = neg ? -v : v;
    *nanos = neg ? -*nanos : *nanos;
    return 0;
}

/* snake_case <-> lowerCamelCase for FieldMask paths. */
static void camel(const char *in, size_t n, char *out, size_t cap, int to)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 2 < cap; i++) {
        char ch = in[i];
        if (to && ch == '_' && i + 1 < n && islower((unsigned char)in[i + 1]))
            out[k++] = (char)toupper((unsigned char)in[++i]);
        else if (!to && isupper((unsigned char)ch)) {
            out[k++] = '_';
            out[k++] = (char)tolower((unsigned char)ch);
        } else
            out[k++] = ch;
    }
    out[k] = '\0';
}

/* ---- special -> plain ---- */

json_t *orpc__wkt_to_plain(const char *type, const json_t *in, char *err,
                           size_t errlen)
{
    int64_t secs;
    int32_t nanos;
    switch (kind_of(type)) {
    case WKT_NONE:
        return json_incref((json_t *)in);
    case WKT_TIMESTAMP:
    case WKT_DURATION: {
        int ts = kind_of(type) == WKT_TIMESTAMP;
        if (json_is_object(in)) /* the plain form is read too */
            return json_incref((json_t *)in);
        if (!json_is_string(in) ||
            (ts ? parse_timestamp(json_string_value(in), &secs, &nanos)
                : parse_duration(json_string_value(in), &secs, &nanos))) {
            snprintf(err, errlen, "not a %s",
                     ts ? "timestamp (RFC 3339, e.g. "
                          "\"2024-01-31T12:00:00.5Z\")"
                        : "duration (e.g. \"1.5s\")");
            return NULL;
        }
        return plain_time(secs, nanos);
    }
    case WKT_WRAPPER:
        return json_pack("{s:O}", "value", (json_t *)in);
    case WKT_STRUCT:
        if (!json_is_object(in)) {
            snprintf(err, errlen, "not an object (a Struct)");
            return NULL;
        }
        return json_pack("{s:O}", "fields", (json_t *)in);
    case WKT_LIST:
        if (!json_is_array(in)) {
            snprintf(err, errlen, "not an array (a ListValue)");
            return NULL;
        }
        return json_pack("{s:O}", "values", (json_t *)in);
    case WKT_VALUE:
        if (json_is_null(in))
            return json_pack("{s:s}", "nullValue", "NULL_VALUE");
        if (json_is_number(in))
            return json_pack("{s:O}", "numberValue", (json_t *)in);
        if (json_is_string(in))
            return json_pack("{s:O}", "stringValue", (json_t *)in);
        if (json_is_boolean(in))
            return json_pack("{s:O}", "boolValue", (json_t *)in);
        return json_pack("{s:O}",
                         json_is_object(in) ? "structValue" : "listValue",
                         (json_t *)in);
    case WKT_FIELD_MASK: {
        if (!json_is_string(in)) {
            snprintf(err, errlen, "not a field mask string");
            return NULL;
        }
        json_t *paths = json_array();
        const char *s = json_string_value(in);
        while (*s) {
            const char *comma = strchr(s, ',');
            size_t n = comma ? (size_t)(comma - s) : strlen(s);
            char path[512];
            camel(s, n, path, sizeof path, 0);
            json_array_append_new(paths, json_string(path));
            s += n + (comma != NULL);
        }
        return json_pack("{s:o}", "paths", paths);
    }
    }
    return NULL;
}

/* ---- plain -> special ---- */

static int64_t int_of(const json_t *v)
{
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return json_integer_value(v);
}

json_t *orpc__wkt_from_plain(const char *type, json_t *in)
{
    json_t *out = NULL;
    char t[64], frac[16];
    switch (kind_of(type)) {
    case WKT_NONE:
        return in;
    case WKT_TIMESTAMP:
    case WKT_DURATION: {
        int64_t secs = int_of(json_object_get(in, "seconds"));
        int32_t nanos = (int32_t)int_of(json_object_get(in, "nanos"));
        if (kind_of(type) == WKT_DURATION) {
            int neg = secs < 0 || nanos < 0;
            format_fraction(frac, sizeof frac, neg ? -nanos : nanos);
            snprintf(t, sizeof t, "%s%" PRId64 "%ss", neg ? "-" : "",
                     neg ? -secs : secs, frac);
        } else {
            int64_t y;
            int m, d;
            int64_t days = (secs >= 0 ? secs : secs - 86399) / 86400;
            int64_t rem = secs - days * 86400;
            civil_from_days(days, &y, &m, &d);
            format_fraction(frac, sizeof frac, nanos);
            snprintf(t, sizeof t, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", (int)y, m,
                     d, (int)(rem / 3600), (int)(rem / 60 % 60),
                     (int)(rem % 60), frac);
        }
        out = json_string(t);
        break;
    }
    case WKT_WRAPPER: {
        json_t *v = json_object_get(in, "value");
        const char *name = strrchr(type, '.') + 1;
        if (v)
            out = json_incref(v);
        else if (strcmp(name, "BoolValue") == 0)
            out = json_false();
        else if (strcmp(name, "StringValue") == 0 ||
                 strcmp(name, "BytesValue") == 0)
            out = json_string("");
        else if (strstr(name, "64"))
            out = json_string("0");
        else
            out = json_integer(0);
        break;
    }
    case WKT_STRUCT:
    case WKT_LIST: {
        int st = kind_of(type) == WKT_STRUCT;
        json_t *v = json_object_get(in, st ? "fields" : "values");
        out = v ? json_incref(v) : st ? json_object() : json_array();
        break;
    }
    case WKT_VALUE: {
        const char *k;
        json_t *v;
        json_object_foreach(in, k, v)
        {
            out = strcmp(k, "nullValue") == 0 ? json_null() : json_incref(v);
            break;
        }
        if (out == NULL)
            out = json_null();
        break;
    }
    case WKT_FIELD_MASK: {
        size_t i;
        json_t *p;
        char buf[4096] = "", path[512];
        size_t at = 0;
        json_array_foreach(json_object_get(in, "paths"), i, p)
        {
            const char *s = json_string_value(p);
            camel(s ? s : "", strlen(s ? s : ""), path, sizeof path, 1);
            int n =
                snprintf(buf + at, sizeof buf - at, "%s%s", i ? "," : "", path);
            if (n < 0 || (size_t)n >= sizeof buf - at)
                break;
            at += (size_t)n;
        }
        out = json_string(buf);
        break;
    }
    }
    json_decref(in);
    return out;
}
