/*
 * common/detail.c — owns orpc__detail_set(): one formatting path for every
 * orpc_error_detail, so messages truncate the same way everywhere.
 */
#include "common/detail.h"

#include <stdarg.h>
#include <stdio.h>

int orpc__detail_set(orpc_error_detail *detail, int code, const char *fmt, ...)
{
    if (!detail)
        return code;
    va_list ap;
    va_start(ap, fmt);
    detail->code = code;
    /* vsnprintf always terminates; a longer message is cut, not lost. */
    (void)vsnprintf(detail->message, sizeof detail->message, fmt, ap);
    va_end(ap);
    return code;
}
