/*
 * json_time.c — google.protobuf.Timestamp and Duration as proto3 JSON text,
 * both ways: RFC 3339 normalised to UTC ("Z") and "-1.5s", each with 0, 3,
 * 6 or 9 fractional digits on output and 1 to 9 accepted on input.
 *
 * Civil dates are computed with Howard Hinnant's days-from-civil algorithms
 * instead of gmtime/timegm, so the whole range (years 1 to 9999) works
 * whatever time_t is, and nothing depends on the process's time zone.
 */
#include "json_internal.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#define TS_MIN_SECONDS (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define TS_MAX_SECONDS 253402300799LL   /* 9999-12-31T23:59:59Z */
#define DUR_MAX_SECONDS 315576000000LL  /* 10000 years */

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

int orpc__json_fmt_timestamp(int64_t sec, int32_t nanos, char *out, size_t cap)
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
        if (!orpc__json_isdigit(s[i])) {
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
    while (*i < n && orpc__json_isdigit(s[*i])) {
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
int orpc__json_parse_timestamp(const char *s, size_t n, int64_t *sec,
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

int orpc__json_fmt_duration(int64_t sec, int32_t nanos, char *out, size_t cap)
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
int orpc__json_parse_duration(const char *s, size_t n, int64_t *sec,
                              int32_t *nanos)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && s[i] == '-') {
        neg = 1;
        i++;
    }
    size_t start = i;
    int64_t v = 0;
    while (i < n && orpc__json_isdigit(s[i])) {
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
