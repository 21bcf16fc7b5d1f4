/*
 * log.h — where a server's or channel's warnings and errors go when the
 * application installed no logger (internal).
 */
#ifndef ORPC_LOG_H
#define ORPC_LOG_H

#include <orpc/common.h>

/* Writes "orpc: <level>: <component>: <msg>\n" to stderr in one write, so
 * lines from several threads do not interleave.  Any thread. */
void orpc__log_stderr(const char *component, orpc_log_level level,
                      const char *msg);

#endif /* ORPC_LOG_H */
