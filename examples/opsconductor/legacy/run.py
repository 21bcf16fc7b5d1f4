#!/usr/bin/python3
"""Runs one legacy OpsConductor service under uvicorn and says when it serves.

Usage (run with /usr/bin/python3):
  run.py SERVICE [--port=N (0: ephemeral)] [--host=127.0.0.1]
         [--accounts=FILE] [--token_ttl=S] [--auth_url=URL]
         [--jobs_db=FILE] [--debug_routes] [--access_log]
         [--log_level=warning]

SERVICE is auth, jobs, notification, credentials or user.  The flags are
shorthands for the environment the service reads (AUTH_ACCOUNTS_FILE,
AUTH_TOKEN_TTL, AUTH_SERVICE_URL, JOBS_DB, LEGACY_DEBUG_ROUTES); see
README.md.
Prints "listening on N" on stdout once it accepts connections; runs until
SIGTERM or SIGINT (uvicorn's graceful shutdown), then exits 0.
"""

import argparse
import importlib
import os
import socket
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
SERVICES = ("auth", "jobs", "notification", "credentials", "user")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("service", choices=SERVICES)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--accounts", default=None)
    ap.add_argument("--token_ttl", type=int, default=None)
    ap.add_argument("--auth_url", default=None)
    ap.add_argument("--jobs_db", default=None)
    ap.add_argument("--debug_routes", action="store_true")
    ap.add_argument("--access_log", action="store_true")
    ap.add_argument("--log_level", default="warning")
    args = ap.parse_args(argv)
    if args.accounts:
        os.environ["AUTH_ACCOUNTS_FILE"] = args.accounts
    if args.token_ttl is not None:
        os.environ["AUTH_TOKEN_TTL"] = str(args.token_ttl)
    if args.auth_url:
        os.environ["AUTH_SERVICE_URL"] = args.auth_url
    if args.jobs_db:
        os.environ["JOBS_DB"] = args.jobs_db
    if args.debug_routes:
        os.environ["LEGACY_DEBUG_ROUTES"] = "1"

    sys.path.insert(0, HERE)
    import uvicorn
    module = importlib.import_module("%s_service" % args.service)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        sys.stderr.write("run.py %s: cannot bind %s:%d: %s\n"
                         % (args.service, args.host, args.port, e))
        return 1
    port = sock.getsockname()[1]

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await uvicorn.Server.startup(self, sockets=sockets)
            if not self.should_exit:
                sys.stdout.write("listening on %d\n" % port)
                sys.stdout.flush()

    config = uvicorn.Config(module.app, host=args.host, port=port,
                            log_level=args.log_level,
                            access_log=args.access_log, lifespan="on",
                            timeout_keep_alive=5)
    server = Server(config)
    server.run(sockets=[sock])
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
