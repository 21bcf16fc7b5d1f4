/*
 * common/log.h — where warnings and errors go when the application
 * installed no logger, and the one rule for reporting a failure to
 * construct or load something (private).
 */
#ifndef ORPC_LOG_H
#define ORPC_LOG_H

#include <stdarg.h>

#include <orpc/common.h>
#include <orpc/error.h>

/* Writes "orpc: <level>: <component>: <msg>\n" to stderr in one write, so
 * lines from several threads do not interleave.  Any thread. */
void orpc__log_stderr(const char *component, orpc_log_level level,
                      const char *msg);

/* One line at |level|: to |log| when there is one, else (warnings and
 * errors only) to stderr under |component|.  Any thread. */
void orpc__logv(orpc_log_fn log, void *log_user_data, const char *component,
                orpc_log_level level, const char *fmt, va_list ap)
    ORPC_PRINTF(5, 0);

/* Reports a failure in one place only: fills |detail| when the caller gave
 * one; otherwise sends "<message>" to |log| at ERROR level, or to stderr
 * (orpc__log_stderr, under |component|) when |log| is NULL.  Returns |code|,
 * so that a failure reads `return orpc__fail(detail, ..., ORPC_ECONFIG,
 * "tls.cert_file: %s: %s", path, why);`.  Any thread. */
int orpc__fail(orpc_error_detail *detail, orpc_log_fn log, void *log_user_data,
               const char *component, int code, const char *fmt, ...)
    ORPC_PRINTF(6, 7);

#endif /* ORPC_LOG_H */
