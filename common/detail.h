/*
 * common/detail.h — filling an orpc_error_detail (orpc/error.h), the one
 * way constructors and loaders tell their caller why they failed.  Private.
 */
#ifndef ORPC_COMMON_DETAIL_H
#define ORPC_COMMON_DETAIL_H

#include <orpc/common.h>
#include <orpc/error.h>

/* Fills |detail| (if not NULL) with |code| and the formatted message,
 * truncated to fit.  Returns |code|, so that a failure reads
 * `return orpc__detail_set(detail, ORPC_ECONFIG, "...", ...);`. */
int orpc__detail_set(orpc_error_detail *detail, int code, const char *fmt, ...)
    ORPC_PRINTF(3, 4);

#endif
