#!/usr/bin/python3
"""grpc.testing.TestService interop server on real gRPC (python3-grpcio).

The reference peer orpc's interop client is tested against.  Implements the
server features of gRPC's doc/interop-test-descriptions.md:

  EmptyCall, UnaryCall, CacheableUnaryCall, StreamingOutputCall,
  StreamingInputCall, FullDuplexCall, HalfDuplexCall; CompressedRequest
  (expect_compressed), CompressedResponse (response_compressed /
  ResponseParameters.compressed), Echo Status, Echo Metadata,
  ResponseParameters.interval_us, Echo Authenticated Username (from the
  client certificate when --tls_ca makes the server require one).
  UnimplementedCall is deliberately left out, and UnimplementedService not
  registered, so gRPC answers both with UNIMPLEMENTED.

Usage (run with /usr/bin/python3):
  interop_server.py --port=N [--use_tls=true --tls_cert=F --tls_key=F
                    [--tls_ca=F]] [--bind_host=H] [--pb_dir=D]

--port=0 picks a free port.  Once serving, prints "listening on <port>" on
stdout; runs until SIGTERM or SIGINT.

What python grpcio cannot do, and how it is handled here:
  * Per-message compressed flag of requests: not exposed by the API.  The
    server runs with grpc.per_message_decompression=0 so it receives the
    bytes as sent and can see (and undo) compression itself -- see
    interop_common.inflate().  expect_compressed is therefore checked
    exactly, per message.
  * Response compression: set_compression() chooses the call's algorithm,
    which must happen before the response headers go out;
    disable_next_message_compression() clears it per message.  A streaming
    call is compressed if the request that starts it asks for any
    compressed response; FullDuplexCall decides on its first request, so a
    later request asking for compression after an uncompressed start gets
    uncompressed responses (logged).  The interop client never does that.
  * Echo Status codes outside 0..16 cannot be sent (grpc.StatusCode has no
    member for them); they are answered with UNKNOWN (logged).
"""

import argparse
import os
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop_common as common  # noqa: E402  pylint: disable=wrong-import-position


def log(text):
    sys.stderr.write("interop_server: %s\n" % text)
    sys.stderr.flush()


class Call(object):
    """Per-call helper: echo metadata, compression, status."""

    def __init__(self, context):
        self.context = context
        self.started = False
        self.compressed = False
        metadata = context.invocation_metadata() or ()
        self.echo_initial = [(k, v) for k, v in metadata
                             if k == common.ECHO_INITIAL_KEY]
        echo_trailing = [(k, v) for k, v in metadata
                         if k == common.ECHO_TRAILING_KEY]
        if echo_trailing:
            context.set_trailing_metadata(echo_trailing)

    def start(self, compress=False):
        """Fix the call's compression and send the echoed initial metadata.

        Idempotent; must run before the first response message.  Without
        anything to echo the headers go out with the first message (or the
        status), as grpcio does by default.
        """
        if self.started:
            return
        self.started = True
        if compress:
            self.context.set_compression(grpc.Compression.Gzip)
            self.compressed = True
        if self.echo_initial:
            self.context.send_initial_metadata(self.echo_initial)

    def before_message(self, want_compressed):
        """Set the compressed flag of the next response message."""
        self.start(want_compressed)
        if self.compressed and not want_compressed:
            self.context.disable_next_message_compression()
        elif want_compressed and not self.compressed:
            log("cannot compress a response: the call started uncompressed")

    def fail(self, code, message):
        """End the call with a non-OK status (raises)."""
        self.start(False)
        self.context.abort(code, message)

    def check_compression(self, request, received):
        """CompressedRequest: INVALID_ARGUMENT if expect_compressed is set
        and does not match how the request actually arrived."""
        if not request.HasField("expect_compressed"):
            return
        expected = request.expect_compressed.value
        if expected != received.compressed:
            message = ("expected %s request, got a%s one" %
                       ("a compressed" if expected else "an uncompressed",
                        " compressed" if received.compressed
                        else "n uncompressed"))
            log("INVALID_ARGUMENT: " + message)
            self.fail(grpc.StatusCode.INVALID_ARGUMENT, message)

    def echo_status(self, request):
        """Echo Status: end with request.response_status when set.

        Returns True if the call must end OK right away (code 0); raises
        for any other code; returns False when no status was asked for.
        """
        if not request.HasField("response_status"):
            return False
        code = request.response_status.code
        message = request.response_status.message
        if code == 0:
            self.start(False)
            return True
        status = common.status_code_from_int(code)
        if status is None:
            log("cannot send status code %d with grpcio; sending UNKNOWN"
                % code)
            status = grpc.StatusCode.UNKNOWN
        self.fail(status, message)
        return True  # not reached


class TestService(object):
    def __init__(self, pb, server_id):
        self.pb = pb
        self.server_id = server_id

    # -- helpers

    def payload(self, call, payload_type, size):
        msgs = self.pb.messages
        if payload_type != msgs.COMPRESSABLE:
            call.fail(grpc.StatusCode.INVALID_ARGUMENT,
                      "unsupported response_type %d" % payload_type)
        if size < 0:
            call.fail(grpc.StatusCode.INVALID_ARGUMENT,
                      "negative response size %d" % size)
        return msgs.Payload(type=payload_type, body=bytes(size))

    @staticmethod
    def username(context):
        """Authenticated peer name: the client certificate's URI SAN (e.g. a
        SPIFFE id) if it has one, else its peer identity (other SANs or the
        common name); empty without a verified client certificate."""
        auth = context.auth_context() or {}
        for key in ("x509_uri",):
            values = auth.get(key)
            if values:
                return values[0].decode("utf-8", "replace")
        identities = context.peer_identities()
        if identities:
            return identities[0].decode("utf-8", "replace")
        return ""

    def responses(self, call, request):
        """Responses for one StreamingOutputCallRequest, interval_us-paced."""
        for params in request.response_parameters:
            if params.interval_us > 0:
                time.sleep(params.interval_us / 1e6)
            payload = self.payload(call, request.response_type, params.size)
            call.before_message(params.HasField("compressed")
                                and params.compressed.value)
            yield self.pb.messages.StreamingOutputCallResponse(payload=payload)

    @staticmethod
    def wants_compression(request):
        return any(p.HasField("compressed") and p.compressed.value
                   for p in request.response_parameters)

    # -- methods

    def EmptyCall(self, received, context):
        Call(context).start()
        return self.pb.empty.Empty()

    def UnaryCall(self, received, context):
        request = received.msg
        call = Call(context)
        call.check_compression(request, received)
        compress = (request.HasField("response_compressed")
                    and request.response_compressed.value)
        call.start(compress)
        call.echo_status(request)  # raises unless the status asked is OK
        response = self.pb.messages.SimpleResponse(
            payload=self.payload(call, request.response_type,
                                 request.response_size))
        if request.fill_username:
            response.username = self.username(context)
        if request.fill_server_id:
            response.server_id = self.server_id
        return response

    def CacheableUnaryCall(self, received, context):
        call = Call(context)
        call.echo_initial.append(("cache-control", "max-age=60, public"))
        call.start()
        body = str(time.time_ns()).encode()
        return self.pb.messages.SimpleResponse(
            payload=self.pb.messages.Payload(body=body))

    def StreamingOutputCall(self, received, context):
        request = received.msg
        call = Call(context)
        call.start(self.wants_compression(request))
        for response in self.responses(call, request):
            yield response
        call.echo_status(request)

    def StreamingInputCall(self, request_iterator, context):
        call = Call(context)
        total = 0
        for received in request_iterator:
            call.check_compression(received.msg, received)
            total += len(received.msg.payload.body)
        call.start()
        return self.pb.messages.StreamingInputCallResponse(
            aggregated_payload_size=total)

    def FullDuplexCall(self, request_iterator, context):
        call = Call(context)
        for received in request_iterator:
            request = received.msg
            if not call.started:
                call.start(self.wants_compression(request))
            if call.echo_status(request):
                return
            for response in self.responses(call, request):
                yield response
        call.start()

    def HalfDuplexCall(self, request_iterator, context):
        call = Call(context)
        requests = [received.msg for received in request_iterator]
        call.start(any(self.wants_compression(r) for r in requests))
        for request in requests:
            if call.echo_status(request):
                return
            for response in self.responses(call, request):
                yield response

    def implementations(self, verbose=False):
        # UnimplementedCall is left out on purpose (see module docstring).
        methods = {name: getattr(self, name) for name in (
            "EmptyCall", "UnaryCall", "CacheableUnaryCall",
            "StreamingOutputCall", "StreamingInputCall", "FullDuplexCall",
            "HalfDuplexCall")}
        if verbose:
            methods = {name: traced(name, fn) for name, fn in methods.items()}
        return methods


def describe(received):
    """One-line summary of a request; payload bodies shown by size only."""
    msg = type(received.msg)()
    msg.CopyFrom(received.msg)
    body = None
    if "payload" in msg.DESCRIPTOR.fields_by_name and msg.HasField("payload"):
        body = len(msg.payload.body)
        msg.payload.ClearField("body")
    return "%s%s {%s}%s" % (
        type(msg).__name__, " (compressed)" if received.compressed else "",
        " ".join(str(msg).split())[:300],
        "" if body is None else " with a %d-byte payload body" % body)


def traced(name, behaviour):
    """Log each call of a method, its requests and how it ended."""
    def wrapper(request, context):
        log("%s from %s, metadata %s" % (
            name, context.peer(),
            [(k, v) for k, v in context.invocation_metadata() or ()]))
        if isinstance(request, common.Received):
            log("  request: " + describe(request))
        else:
            request = logged_requests(request)
        result = behaviour(request, context)
        if hasattr(result, "__next__"):  # a response stream
            result = logged_responses(result)
        return result

    def logged_requests(iterator):
        for received in iterator:
            log("  request: " + describe(received))
            yield received
        log("  half-closed")

    def logged_responses(iterator):
        count = 0
        for response in iterator:
            count += 1
            yield response
        log("  %s: sent %d responses" % (name, count))

    return wrapper


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True,
                        help="port to listen on; 0 picks a free one")
    parser.add_argument("--bind_host", default="localhost",
                        help="address to bind (default localhost: loopback "
                             "only; use [::] for every interface)")
    common.add_bool_flag(parser, "--use_tls", False, "serve over TLS")
    parser.add_argument("--tls_cert", help="server certificate chain (PEM)")
    parser.add_argument("--tls_key", help="server private key (PEM)")
    parser.add_argument("--tls_ca",
                        help="CA bundle (PEM); when given, client "
                             "certificates are required and verified")
    parser.add_argument("--server_id", default="orpc-python-interop-server",
                        help="value for SimpleResponse.server_id")
    parser.add_argument("--max_workers", type=int, default=64)
    common.add_bool_flag(parser, "--verbose", False,
                         "log every call and request on stderr")
    common.add_pb_flag(parser)
    args = parser.parse_args(argv)

    if args.use_tls and not (args.tls_cert and args.tls_key):
        parser.error("--use_tls=true needs --tls_cert and --tls_key")
    if args.tls_ca and not args.use_tls:
        parser.error("--tls_ca needs --use_tls=true")

    pb = common.load_pb(args.pb_dir, args.proto_dir)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.max_workers),
        options=[common.NO_CORE_DECOMPRESSION])
    server.add_generic_rpc_handlers([common.generic_handler(
        pb, TestService(pb, args.server_id).implementations(args.verbose))])

    address = "%s:%d" % (args.bind_host, args.port)
    if args.use_tls:
        creds = grpc.ssl_server_credentials(
            [(common.read_file(args.tls_key), common.read_file(args.tls_cert))],
            root_certificates=(common.read_file(args.tls_ca)
                               if args.tls_ca else None),
            require_client_auth=bool(args.tls_ca))
        port = server.add_secure_port(address, creds)
    else:
        port = server.add_insecure_port(address)
    if not port:
        log("cannot listen on %s" % address)
        return 1

    stop = threading.Event()

    def on_signal(signum, _frame):
        del signum
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    server.start()
    sys.stdout.write("listening on %d\n" % port)
    sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    server.stop(grace=1).wait(5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
