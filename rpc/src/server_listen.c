/*
 * server_listen.c — orpc_server_listen(): addresses (host:port literals,
 * localhost, [v6]:port, unix:path), one listening socket per IO thread on a
 * shared port, and the check that a port is free unless sharing was asked
 * for (reuse_port).  The sockets are handed to the IO threads' loops by
 * orpc_server_start().
 */
#include "server_internal.h"

#include "common/detail.h"
#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <netdb.h>
#include <netinet/in.h>

#include <orpc/error.h>

int orpc__parse_hostport(const char *addr, struct sockaddr_storage *ss)
{
    char host[256];
    const char *colon;
    int port;
    memset(ss, 0, sizeof(*ss));
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (end == NULL || end[1] != ':' ||
            (size_t)(end - addr - 1) >= sizeof(host))
            return -1;
        memcpy(host, addr + 1, (size_t)(end - addr - 1));
        host[end - addr - 1] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
            return -1;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
    }
    char *endp;
    long p = strtol(colon + 1, &endp, 10);
    if (*endp != '\0' || p < 0 || p > 65535 || colon[1] == '\0')
        return -1;
    port = (int)p;
    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 ||
        strcmp(host, "*") == 0)
        return uv_ip4_addr("0.0.0.0", port, (struct sockaddr_in *)ss) == 0 ? 0
                                                                           : -1;
    if (strcmp(host, "localhost") == 0)
        return uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)ss) == 0
                   ? 0
                   : -1;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    /* A name: its first address (listen is called on the application's
     * thread, where a blocking lookup is fine). */
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL)
        return -1;
    int rc = -1;
    if (res->ai_addrlen <= sizeof(*ss) &&
        (res->ai_family == AF_INET || res->ai_family == AF_INET6)) {
        memcpy(ss, res->ai_addr, res->ai_addrlen);
        if (res->ai_family == AF_INET)
            ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
        else
            ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
        rc = 0;
    }
    freeaddrinfo(res);
    return rc;
}

/*
 * The IO threads' listeners share their port through SO_REUSEPORT, which
 * would also let a second server (or process) bind the same port and
 * silently take a share of the connections.  Unless the application asked
 * for that (reuse_port), a socket without SO_REUSEPORT is bound first: the
 * kernel refuses it when anything holds the port.  It is closed again
 * before the real listeners bind (a process that binds in between wins the
 * race; orpc's servers do not, they probe too).
 */
static int port_in_use(const struct sockaddr_storage *ss)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        return 0; /* the real bind will say what is wrong */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    socklen_t len = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                             : sizeof(struct sockaddr_in6);
    int busy =
        bind(fd, (const struct sockaddr *)ss, len) != 0 && errno == EADDRINUSE;
    close(fd);
    return busy;
}

static int tcp_socket(const struct sockaddr_storage *ss, int *port_io)
{
    int fam = ss->ss_family;
    int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (fam == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    struct sockaddr_storage a = *ss;
    if (*port_io > 0) {
        if (fam == AF_INET)
            ((struct sockaddr_in *)&a)->sin_port = htons((uint16_t)*port_io);
        else
            ((struct sockaddr_in6 *)&a)->sin6_port = htons((uint16_t)*port_io);
    }
    socklen_t len = fam == AF_INET ? sizeof(struct sockaddr_in)
                                   : sizeof(struct sockaddr_in6);
    if (bind(fd, (struct sockaddr *)&a, len) != 0 || listen(fd, 1024) != 0) {
        close(fd);
        return -1;
    }
    if (*port_io <= 0) {
        struct sockaddr_storage got;
        socklen_t gl = sizeof(got);
        getsockname(fd, (struct sockaddr *)&got, &gl);
        *port_io =
            ntohs(fam == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                 : ((struct sockaddr_in6 *)&got)->sin6_port);
    }
    return fd;
}

/* Says why a listen failed: the caller's |detail|, or the server's log. */
#define LISTEN_FAIL(code, ...)                                                 \
    orpc__fail(detail, srv->opts.log, srv->opts.log_user_data, "server",       \
               (code), __VA_ARGS__)

int orpc_server_listen(orpc_server *srv, const char *address, int *bound_port,
                       orpc_error_detail *detail)
{
    if (srv == NULL || address == NULL)
        return orpc__detail_set(detail, ORPC_EINVAL,
                                "orpc_server_listen: |srv| or |address| is "
                                "NULL");
    if (srv->state != SRV_NEW)
        return LISTEN_FAIL(ORPC_ESTATE, "listen %s: the server has started",
                           address);
    if (srv->n_listeners == ORPC__MAX_LISTENERS)
        return LISTEN_FAIL(ORPC_ELIMIT, "listen %s: at most %d listeners",
                           address, ORPC__MAX_LISTENERS);
    listener *l = &srv->listeners[srv->n_listeners];
    memset(l, 0, sizeof(*l));
    if (strncmp(address, "unix:", 5) == 0) {
        const char *path = address + 5;
        struct sockaddr_un un;
        if (*path == '\0' || strlen(path) >= sizeof(un.sun_path))
            return LISTEN_FAIL(ORPC_EADDR,
                               "listen %s: a unix socket path of 1 to %zu "
                               "bytes",
                               address, sizeof(un.sun_path) - 1);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        memset(&un, 0, sizeof(un));
        un.sun_family = AF_UNIX;
        strcpy(un.sun_path, path);
        unlink(path);
        if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof(un)) != 0 ||
            listen(fd, 1024) != 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            return LISTEN_FAIL(ORPC_EADDR, "listen %s: %s", address,
                               strerror(e));
        }
        l->is_pipe = 1;
        l->fds[0] = fd;
        l->n_fds = 1;
        snprintf(l->path, sizeof(l->path), "%s", path);
        srv->n_listeners++;
        if (bound_port)
            *bound_port = 0;
        return 0;
    }
    struct sockaddr_storage ss;
    if (orpc__parse_hostport(address, &ss) != 0)
        return LISTEN_FAIL(ORPC_EADDR,
                           "listen %s: not host:port, [v6]:port or "
                           "unix:/path with a known host and a port of 0 to "
                           "65535",
                           address);
    int port = ss.ss_family == AF_INET
                   ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                   : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    if (port > 0 && !srv->opts.reuse_port && port_in_use(&ss))
        return LISTEN_FAIL(ORPC_EADDR, "listen %s: address in use", address);
    for (unsigned i = 0; i < srv->n_io; i++) {
        int fd = tcp_socket(&ss, &port);
        if (fd < 0) {
            int e = errno;
            for (int j = 0; j < l->n_fds; j++)
                close(l->fds[j]);
            return LISTEN_FAIL(ORPC_EADDR, "listen %s: %s", address,
                               strerror(e));
        }
        l->fds[l->n_fds++] = fd;
    }
    srv->n_listeners++;
    if (bound_port)
        *bound_port = port;
    return 0;
}

int orpc_server_listen_legacy(orpc_server *srv, const char *address,
                              int *bound_port, orpc_error_detail *detail)
{
    if (address != NULL && strncmp(address, "unix:", 5) == 0)
        return orpc__detail_set(detail, ORPC_EADDR,
                                "orpc_server_listen_legacy: TCP addresses "
                                "only");
    int rc = orpc_server_listen(srv, address, bound_port, detail);
    if (rc == 0)
        srv->listeners[srv->n_listeners - 1].legacy = 1;
    return rc;
}
