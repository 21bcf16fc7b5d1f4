#!/usr/bin/python3
"""grpc.testing.TestService interop client on real gRPC (python3-grpcio).

The reference peer orpc's interop server is tested against.  Runs exactly
one test case of gRPC's doc/interop-test-descriptions.md per invocation and
exits 0 only if it passed; on failure prints one line "FAIL <case>: <reason>"
on stderr and exits 1 (2 for bad usage).

Usage (run with /usr/bin/python3):
  interop_client.py --server_host=H --server_port=N --test_case=NAME
                    [--use_tls=true [--ca=F] [--server_host_override=NAME]
                     [--cert=F --key=F]] [--pb_dir=D]

Every RPC carries a deadline (--rpc_timeout_s) and the whole run is bounded
by --overall_timeout_s, so a misbehaving server fails the case instead of
hanging it.

Where python grpcio cannot do what the descriptions ask, and what is done:
  * Reading the compressed flag of a response message (server_compressed_*):
    not exposed by the API.  The channel is opened with
    grpc.per_message_decompression=0, so gRPC core hands over each message
    as received and interop_common.inflate() decompresses it, which reveals
    the flag; the flag is then asserted exactly as the descriptions say.
  * Sending one stream's requests with different compressed flags
    (client_compressed_streaming): grpcio only chooses compression per call
    (there is no per-message "no compress" write option on the client).
    The call is made with gzip; the first request (zeros) is compressed,
    and for the second, which must go out uncompressed, the payload body is
    45904 incompressible (random) bytes instead of zeros: gRPC core sends a
    message uncompressed, with the flag clear, when compression would not
    make it smaller.  The server only looks at the payload size, so the
    test is otherwise as described.
  * The "uncompressed" requests (probes, expect_compressed=false) are sent
    on calls with compression=NoCompression; the "compressed" ones on
    compression=Gzip calls.
"""

import argparse
import os
import queue
import signal
import sys

# gRPC core's own error log would add lines to the one-line verdict; set
# GRPC_VERBOSITY=ERROR (or DEBUG) in the environment to see it.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc  # noqa: E402  pylint: disable=wrong-import-position

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop_common as common  # noqa: E402  pylint: disable=wrong-import-position

# Default client certificate identity minted by scripts/gen-test-certs.sh.
DEFAULT_CLIENT_ID = "spiffe://test.orpc/service/interop-client"

SPECIAL_STATUS_MESSAGE = (
    u"\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP "
    u"\U0001f608\t\n")


class TestFailure(Exception):
    pass


def check(condition, message, *args):
    if not condition:
        raise TestFailure(message % args if args else message)


def expect_rpc_error(fn, code, what, details=None):
    """Run fn, which must fail with status `code` (and `details`)."""
    try:
        fn()
    except grpc.RpcError as err:
        check(err.code() == code, "%s: expected %s, got %s (%r)", what,
              code.name, err.code().name, err.details())
        if details is not None:
            check(err.details() == details,
                  "%s: status message %r, expected %r", what, err.details(),
                  details)
        return err
    raise TestFailure("%s: succeeded, expected %s" % (what, code.name))


class Pipe(object):
    """Request iterator fed from the test: messages are added one at a time
    and the stream half-closes only on close()."""

    _END = object()

    def __init__(self):
        self._queue = queue.Queue()

    def add(self, message):
        self._queue.put(message)

    def close(self):
        self._queue.put(self._END)

    def __iter__(self):
        return self

    def __next__(self):
        item = self._queue.get()
        if item is self._END:
            self._queue.put(self._END)  # stay closed
            raise StopIteration()
        return item

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Cases(object):
    def __init__(self, args, pb, channel):
        self.args = args
        self.pb = pb
        self.m = pb.messages
        self.channel = channel
        self.stub = common.Stub(channel, pb)
        self.timeout = args.rpc_timeout_s

    # -- helpers

    def zeros(self, size):
        return self.m.Payload(type=self.m.COMPRESSABLE, body=bytes(size))

    def check_payload(self, payload, size, what):
        check(payload.type == self.m.COMPRESSABLE,
              "%s: payload type %d, expected COMPRESSABLE", what, payload.type)
        check(len(payload.body) == size,
              "%s: payload of %d bytes, expected %d", what,
              len(payload.body), size)
        check(payload.body.count(0) == size,
              "%s: payload bytes are not all zero", what)

    def large_request(self, **fields):
        return self.m.SimpleRequest(response_type=self.m.COMPRESSABLE,
                                    response_size=314159,
                                    payload=self.zeros(271828), **fields)

    def streaming_request(self, sizes, payload_size=None, **fields):
        request = self.m.StreamingOutputCallRequest(
            response_type=self.m.COMPRESSABLE, **fields)
        for size in sizes:
            request.response_parameters.add(size=size)
        if payload_size is not None:
            request.payload.CopyFrom(self.zeros(payload_size))
        return request

    @staticmethod
    def check_status_ok(call, what):
        check(call.code() == grpc.StatusCode.OK, "%s: status %s (%r)", what,
              call.code(), call.details())

    # -- cases

    def empty_unary(self):
        received, call = self.stub.EmptyCall.with_call(
            self.pb.empty.Empty(), timeout=self.timeout)
        check(received is not None and received.msg is not None,
              "no response")
        check(isinstance(received.msg, self.pb.empty.Empty),
              "response is not a grpc.testing.Empty")
        self.check_status_ok(call, "EmptyCall")

    def large_unary(self):
        received = self.stub.UnaryCall(self.large_request(),
                                       timeout=self.timeout)
        self.check_payload(received.msg.payload, 314159, "response")

    def client_compressed_unary(self):
        # 1. Feature probe: uncompressed request claiming to be compressed.
        probe = self.large_request(
            expect_compressed=self.m.BoolValue(value=True))
        expect_rpc_error(
            lambda: self.stub.UnaryCall(
                probe, timeout=self.timeout,
                compression=grpc.Compression.NoCompression),
            grpc.StatusCode.INVALID_ARGUMENT,
            "probe (uncompressed request, expect_compressed=true)")
        # 2. Compressed request, expect_compressed=true.
        received = self.stub.UnaryCall(
            probe, timeout=self.timeout, compression=grpc.Compression.Gzip)
        self.check_payload(received.msg.payload, 314159,
                           "compressed request's response")
        # 3. Uncompressed request, expect_compressed=false.
        received = self.stub.UnaryCall(
            self.large_request(expect_compressed=self.m.BoolValue(value=False)),
            timeout=self.timeout, compression=grpc.Compression.NoCompression)
        self.check_payload(received.msg.payload, 314159,
                           "uncompressed request's response")

    def server_compressed_unary(self):
        for compressed in (True, False):
            what = "response_compressed=%s" % str(compressed).lower()
            received = self.stub.UnaryCall(
                self.large_request(
                    response_compressed=self.m.BoolValue(value=compressed)),
                timeout=self.timeout)
            check(received.compressed == compressed,
                  "%s: response message %s the compressed flag", what,
                  "has" if received.compressed else "lacks")
            self.check_payload(received.msg.payload, 314159, what)

    def client_streaming(self):
        requests = [self.m.StreamingInputCallRequest(payload=self.zeros(n))
                    for n in (27182, 8, 1828, 45904)]
        received = self.stub.StreamingInputCall(iter(requests),
                                                timeout=self.timeout)
        check(received.msg.aggregated_payload_size == 74922,
              "aggregated_payload_size %d, expected 74922",
              received.msg.aggregated_payload_size)

    def client_compressed_streaming(self):
        # 1. Feature probe: one uncompressed message claiming compression.
        probe = self.m.StreamingInputCallRequest(
            expect_compressed=self.m.BoolValue(value=True),
            payload=self.zeros(27182))
        expect_rpc_error(
            lambda: self.stub.StreamingInputCall(
                iter([probe]), timeout=self.timeout,
                compression=grpc.Compression.NoCompression),
            grpc.StatusCode.INVALID_ARGUMENT,
            "probe (uncompressed message, expect_compressed=true)")
        # 2. A gzip call: a compressed message, then an uncompressed one.
        # See the module docstring: the second body is incompressible so
        # that gRPC core sends it with the compressed flag clear.
        uncompressible = self.m.Payload(type=self.m.COMPRESSABLE,
                                        body=os.urandom(45904))
        requests = [
            probe,
            self.m.StreamingInputCallRequest(
                expect_compressed=self.m.BoolValue(value=False),
                payload=uncompressible),
        ]
        received = self.stub.StreamingInputCall(
            iter(requests), timeout=self.timeout,
            compression=grpc.Compression.Gzip)
        check(received.msg.aggregated_payload_size == 73086,
              "aggregated_payload_size %d, expected 73086",
              received.msg.aggregated_payload_size)

    def server_streaming(self):
        sizes = (31415, 9, 2653, 58979)
        responses = list(self.stub.StreamingOutputCall(
            self.streaming_request(sizes), timeout=self.timeout))
        check(len(responses) == len(sizes), "%d responses, expected %d",
              len(responses), len(sizes))
        for i, (received, size) in enumerate(zip(responses, sizes)):
            self.check_payload(received.msg.payload, size, "response %d" % i)

    def server_compressed_streaming(self):
        request = self.m.StreamingOutputCallRequest(
            response_type=self.m.COMPRESSABLE)
        request.response_parameters.add(
            size=31415, compressed=self.m.BoolValue(value=True))
        request.response_parameters.add(
            size=92653, compressed=self.m.BoolValue(value=False))
        responses = list(self.stub.StreamingOutputCall(request,
                                                       timeout=self.timeout))
        check(len(responses) == 2, "%d responses, expected 2", len(responses))
        for i, (received, size, compressed) in enumerate(
                zip(responses, (31415, 92653), (True, False))):
            check(received.compressed == compressed,
                  "response %d (compressed=%s) %s the compressed flag", i,
                  str(compressed).lower(),
                  "has" if received.compressed else "lacks")
            self.check_payload(received.msg.payload, size, "response %d" % i)

    def ping_pong(self):
        steps = ((31415, 27182), (9, 8), (2653, 1828), (58979, 45904))
        with Pipe() as pipe:
            responses = self.stub.FullDuplexCall(pipe, timeout=self.timeout)
            for i, (size, payload_size) in enumerate(steps):
                pipe.add(self.streaming_request([size], payload_size))
                received = next(responses, None)
                check(received is not None,
                      "stream ended after %d responses, expected 4", i)
                self.check_payload(received.msg.payload, size,
                                   "response %d" % i)
            pipe.close()
            extra = next(responses, None)
            check(extra is None, "more than 4 responses")
            self.check_status_ok(responses, "FullDuplexCall")

    def empty_stream(self):
        responses = self.stub.FullDuplexCall(iter([]), timeout=self.timeout)
        got = list(responses)
        check(not got, "%d responses, expected none", len(got))
        self.check_status_ok(responses, "FullDuplexCall")

    def cancel_after_begin(self):
        with Pipe() as pipe:
            future = self.stub.StreamingInputCall.future(
                pipe, timeout=self.timeout)
            future.cancel()
            check(future.cancelled(), "call not cancelled")
            check(future.code() == grpc.StatusCode.CANCELLED,
                  "status %s, expected CANCELLED", future.code())

    def cancel_after_first_response(self):
        with Pipe() as pipe:
            responses = self.stub.FullDuplexCall(pipe, timeout=self.timeout)
            pipe.add(self.streaming_request([31415], 27182))
            received = next(responses, None)
            check(received is not None, "no response before cancelling")
            responses.cancel()
            expect_rpc_error(lambda: next(responses),
                             grpc.StatusCode.CANCELLED, "call after cancel")

    def timeout_on_sleeping_server(self):
        with Pipe() as pipe:
            # Not half-closed: the server keeps waiting for more requests
            # until the 1 ms deadline expires.
            responses = self.stub.FullDuplexCall(pipe, timeout=0.001)
            pipe.add(self.m.StreamingOutputCallRequest(
                payload=self.zeros(27182)))
            expect_rpc_error(lambda: next(responses),
                             grpc.StatusCode.DEADLINE_EXCEEDED,
                             "FullDuplexCall with a 1 ms deadline")

    def custom_metadata(self):
        initial_value = "test_initial_metadata_value"
        trailing_value = b"\xab\xab\xab"
        metadata = ((common.ECHO_INITIAL_KEY, initial_value),
                    (common.ECHO_TRAILING_KEY, trailing_value))

        def check_echo(call, what):
            initial = [v for k, v in (call.initial_metadata() or ())
                       if k == common.ECHO_INITIAL_KEY]
            check(initial == [initial_value],
                  "%s: initial metadata %s=%r, expected [%r]", what,
                  common.ECHO_INITIAL_KEY, initial, initial_value)
            trailing = [v for k, v in (call.trailing_metadata() or ())
                        if k == common.ECHO_TRAILING_KEY]
            check(trailing == [trailing_value],
                  "%s: trailing metadata %s=%r, expected [%r]", what,
                  common.ECHO_TRAILING_KEY, trailing, trailing_value)

        received, call = self.stub.UnaryCall.with_call(
            self.large_request(), metadata=metadata, timeout=self.timeout)
        self.check_payload(received.msg.payload, 314159, "UnaryCall")
        check_echo(call, "UnaryCall")

        responses = self.stub.FullDuplexCall(
            iter([self.streaming_request([314159], 271828)]),
            metadata=metadata, timeout=self.timeout)
        got = list(responses)
        check(len(got) == 1, "FullDuplexCall: %d responses, expected 1",
              len(got))
        self.check_payload(got[0].msg.payload, 314159, "FullDuplexCall")
        self.check_status_ok(responses, "FullDuplexCall")
        check_echo(responses, "FullDuplexCall")

    def _status_cases(self, message, with_duplex):
        status = self.m.EchoStatus(code=2, message=message)
        expect_rpc_error(
            lambda: self.stub.UnaryCall(
                self.m.SimpleRequest(response_status=status),
                timeout=self.timeout),
            grpc.StatusCode.UNKNOWN, "UnaryCall", message)
        if with_duplex:
            expect_rpc_error(
                lambda: list(self.stub.FullDuplexCall(
                    iter([self.m.StreamingOutputCallRequest(
                        response_status=status)]),
                    timeout=self.timeout)),
                grpc.StatusCode.UNKNOWN, "FullDuplexCall", message)

    def status_code_and_message(self):
        self._status_cases("test status message", with_duplex=True)

    def special_status_message(self):
        self._status_cases(SPECIAL_STATUS_MESSAGE, with_duplex=False)

    def unimplemented_method(self):
        expect_rpc_error(
            lambda: self.stub.UnimplementedCall(self.pb.empty.Empty(),
                                                timeout=self.timeout),
            grpc.StatusCode.UNIMPLEMENTED, "TestService/UnimplementedCall")

    def unimplemented_service(self):
        stub = common.Stub(self.channel, self.pb,
                           common.UNIMPLEMENTED_SERVICE)
        expect_rpc_error(
            lambda: stub.UnimplementedCall(self.pb.empty.Empty(),
                                           timeout=self.timeout),
            grpc.StatusCode.UNIMPLEMENTED,
            "UnimplementedService/UnimplementedCall")

    # -- orpc additions (not in the interop descriptions)

    def client_cert_username(self):
        """mTLS: with --cert/--key, UnaryCall(fill_username) must name the
        client certificate's identity (--expected_username)."""
        received = self.stub.UnaryCall(
            self.m.SimpleRequest(response_size=1, fill_username=True),
            timeout=self.timeout)
        check(received.msg.username == self.args.expected_username,
              "username %r, expected %r", received.msg.username,
              self.args.expected_username)


STANDARD_CASES = (
    "empty_unary", "large_unary", "client_streaming", "server_streaming",
    "ping_pong", "empty_stream", "cancel_after_begin",
    "cancel_after_first_response", "timeout_on_sleeping_server",
    "custom_metadata", "status_code_and_message", "special_status_message",
    "unimplemented_method", "unimplemented_service",
    "client_compressed_unary", "server_compressed_unary",
    "client_compressed_streaming", "server_compressed_streaming",
)
EXTRA_CASES = ("client_cert_username",)


def make_channel(args):
    host = args.server_host
    if ":" in host and not host.startswith("["):
        host = "[%s]" % host
    target = "%s:%d" % (host, args.server_port)
    options = [
        common.NO_CORE_DECOMPRESSION,
        # Each request goes out once, as the test wrote it.
        ("grpc.enable_retries", 0),
    ]
    if args.server_host_override:
        options.append(("grpc.default_authority", args.server_host_override))
    if not args.use_tls:
        return grpc.insecure_channel(target, options=options)
    if args.server_host_override:
        options.append(("grpc.ssl_target_name_override",
                        args.server_host_override))
    creds = grpc.ssl_channel_credentials(
        root_certificates=common.read_file(args.ca) if args.ca else None,
        private_key=common.read_file(args.key) if args.key else None,
        certificate_chain=common.read_file(args.cert) if args.cert else None)
    return grpc.secure_channel(target, creds, options=options)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server_host", default="localhost")
    parser.add_argument("--server_port", type=int, required=True)
    parser.add_argument("--server_host_override", default=None,
                        help="name to claim for TLS (SNI and certificate "
                             "check) and :authority")
    parser.add_argument("--test_case", required=True,
                        choices=STANDARD_CASES + EXTRA_CASES)
    common.add_bool_flag(parser, "--use_tls", False, "connect over TLS")
    parser.add_argument("--ca", help="CA bundle (PEM) to verify the server "
                                     "with (default: the system roots)")
    common.add_bool_flag(parser, "--use_test_ca", False,
                         "accepted for compatibility; give the CA with --ca")
    parser.add_argument("--cert", help="client certificate chain (PEM)")
    parser.add_argument("--key", help="client private key (PEM)")
    parser.add_argument("--expected_username", default=DEFAULT_CLIENT_ID,
                        help="client_cert_username: identity the server "
                             "must report (default: %(default)s)")
    parser.add_argument("--rpc_timeout_s", type=float, default=20.0,
                        help="deadline of each RPC")
    parser.add_argument("--overall_timeout_s", type=int, default=60,
                        help="hard limit for the whole run")
    common.add_pb_flag(parser)
    args = parser.parse_args(argv)
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")
    if (args.cert or args.ca) and not args.use_tls:
        parser.error("--ca/--cert/--key need --use_tls=true")
    if args.use_test_ca and not args.ca:
        parser.error("--use_test_ca=true: give the test CA with --ca=FILE")
    return args


def one_line(text):
    return " ".join(str(text).split())


def run(args):
    pb = common.load_pb(args.pb_dir, args.proto_dir)
    channel = make_channel(args)
    try:
        getattr(Cases(args, pb, channel), args.test_case)()
    finally:
        channel.close()


def main(argv):
    args = parse_args(argv)
    case = args.test_case

    def on_alarm(_signum, _frame):
        sys.stderr.write("FAIL %s: no result after %d s\n" %
                         (case, args.overall_timeout_s))
        sys.stderr.flush()
        common.cleanup()
        os._exit(1)  # pylint: disable=protected-access

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.overall_timeout_s)
    try:
        run(args)
    except TestFailure as err:
        reason = str(err)
    except grpc.RpcError as err:
        reason = "unexpected RPC failure: %s: %s" % (
            err.code().name if err.code() else "?", err.details())
    except Exception as err:  # pylint: disable=broad-except
        reason = "%s: %s" % (type(err).__name__, err)
    else:
        reason = None
    signal.alarm(0)
    if reason is None:
        print("PASS %s" % case)
        return 0
    sys.stderr.write("FAIL %s: %s\n" % (case, one_line(reason)))
    return 1


if __name__ == "__main__":
    rc = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without waiting for grpcio's background threads (a request
    # iterator of a cancelled call may still be parked in one).
    common.cleanup()
    os._exit(rc)  # pylint: disable=protected-access
