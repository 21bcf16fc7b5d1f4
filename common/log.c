/*
 * common/log.c — the default destination of warnings and errors (stderr),
 * and orpc__fail(), the one-place rule for failures of constructors and
 * loaders: the caller's orpc_error_detail if it passed one, else its
 * logger, else stderr; never two of them, never none.
 *
 * A newcomer whose server cannot read its certificate must be told so
 * without having installed a logger first, so warnings and errors of an
 * object without a logger go to stderr in one documented format (see
 * orpc_log_fn in orpc/common.h); informational and debug lines need a
 * logger.  Installing a logger replaces this, and a logger that drops
 * everything silences it.  Nothing here is global state: each line is
 * formatted into a local buffer and written with one write(2).
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void orpc__log_stderr(const char *component, orpc_log_level level,
                      const char *msg)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    char line[640];
    const char *name = (unsigned)level < 4 ? names[level] : "log";
    int n = snprintf(line, sizeof(line), "orpc: %s: %s: %s\n", name, component,
                     msg);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    if ((size_t)n >= sizeof(line))
        line[len - 1] = '\n'; /* cut short, still one line */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nowhere left to report a failed write to stderr */
}

void orpc__logv(orpc_log_fn log, void *log_user_data, const char *component,
                orpc_log_level level, const char *fmt, va_list ap)
{
    if (log == NULL && level > ORPC_LOG_WARN)
        return;
    char buf[512];
    (void)vsnprintf(buf, sizeof buf, fmt, ap);
    if (log == NULL)
        orpc__log_stderr(component, level, buf);
    else
        log(level, buf, log_user_data);
}

int orpc__fail(orpc_error_detail *detail, orpc_log_fn log, void *log_user_data,
               const char *component, int code, const char *fmt, ...)
{
    char msg[ORPC_ERROR_DETAIL_SIZE];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (detail != NULL) {
        detail->code = code;
        memcpy(detail->message, msg, sizeof msg);
    } else if (log != NULL) {
        log(ORPC_LOG_ERROR, msg, log_user_data);
    } else {
        orpc__log_stderr(component, ORPC_LOG_ERROR, msg);
    }
    return code;
}
