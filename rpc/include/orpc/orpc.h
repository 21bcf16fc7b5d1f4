/*
 * orpc/orpc.h — the whole public API of liborpc in one include.
 */
#ifndef ORPC_ORPC_H
#define ORPC_ORPC_H

#include <orpc/arena.h>
#include <orpc/call.h>
#include <orpc/channel.h>
#include <orpc/client.h>
#include <orpc/common.h>
#include <orpc/context.h>
#include <orpc/error.h>
#include <orpc/interceptor.h>
#include <orpc/metadata.h>
#include <orpc/method.h>
#include <orpc/metrics.h>
#include <orpc/server.h>
#include <orpc/status.h>
#include <orpc/tls.h>

#endif /* ORPC_ORPC_H */
