"""Shared pieces of the Python interop peers (interop_server.py, interop_client.py).

Run only with Debian's /usr/bin/python3, which has python3-grpcio (1.51) and
python3-protobuf installed.

* Flag parsing in gRPC's --flag=value style (booleans spelled true/false).
* Loading the protoc-generated message modules (gen_pb.sh), either from a
  directory given with --pb_dir / $ORPC_INTEROP_PB_DIR or generated afresh
  into a temporary directory.
* A message codec that also reports whether each received message was
  compressed.  grpcio does not expose the per-message compressed flag, so
  both peers open their channel/server with grpc.per_message_decompression=0:
  gRPC core then hands the application the message bytes exactly as they
  came off the wire (still compressed when the flag was set) and decode()
  below inflates them itself.  That makes the flag observable, which the
  compression test cases need.
* Hand-written TestService stubs and handler tables built on grpcio's
  generic API (no grpc_tools), with method shapes taken from test.proto's
  descriptor so they cannot drift from the proto.
"""

import argparse
import atexit
import collections
import gzip
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
DEFAULT_PROTO_DIR = os.path.join(REPO_ROOT, "proto")
PB_PACKAGE = "orpc_interop_pb"

SERVICE = "grpc.testing.TestService"
UNIMPLEMENTED_SERVICE = "grpc.testing.UnimplementedService"

# Channel/server option that makes the compressed flag observable (see above).
NO_CORE_DECOMPRESSION = ("grpc.per_message_decompression", 0)

ECHO_INITIAL_KEY = "x-grpc-test-echo-initial"
ECHO_TRAILING_KEY = "x-grpc-test-echo-trailing-bin"


# ---------------------------------------------------------------- flags

def parse_bool(text):
    """gRPC-style boolean flag value."""
    if isinstance(text, bool):
        return text
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError("expected true or false, got %r" % text)


def add_bool_flag(parser, name, default, help_text):
    """--name=true|false; a bare --name means true."""
    parser.add_argument(name, type=parse_bool, nargs="?", const=True,
                        default=default, metavar="true|false", help=help_text)


def add_pb_flag(parser):
    parser.add_argument(
        "--pb_dir", default=os.environ.get("ORPC_INTEROP_PB_DIR"),
        help="directory holding the %s package made by gen_pb.sh (default: "
             "$ORPC_INTEROP_PB_DIR, else generate into a temporary "
             "directory)" % PB_PACKAGE)
    parser.add_argument(
        "--proto_dir", default=DEFAULT_PROTO_DIR,
        help="proto root to generate from when --pb_dir is not given "
             "(default: %(default)s)")


# ---------------------------------------------------------------- protos

PbModules = collections.namedtuple("PbModules", "empty messages test")

_TEMP_DIRS = []


def cleanup():
    """Remove the temporary directories load_pb made (also run at exit;
    call it explicitly before os._exit)."""
    while _TEMP_DIRS:
        shutil.rmtree(_TEMP_DIRS.pop(), ignore_errors=True)


atexit.register(cleanup)


def load_pb(pb_dir=None, proto_dir=DEFAULT_PROTO_DIR):
    """Import empty_pb2, messages_pb2 and test_pb2.

    With pb_dir, import them from pb_dir/orpc_interop_pb; otherwise run
    gen_pb.sh into a temporary directory that is removed at exit.
    """
    if not pb_dir:
        pb_dir = tempfile.mkdtemp(prefix="orpc-interop-pb-")
        _TEMP_DIRS.append(pb_dir)
        cmd = ["sh", os.path.join(HERE, "gen_pb.sh"), proto_dir, pb_dir]
        result = subprocess.run(cmd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0:
            raise RuntimeError("gen_pb.sh failed: %s" %
                               result.stdout.decode(errors="replace").strip())
    if not os.path.isfile(os.path.join(pb_dir, PB_PACKAGE, "messages_pb2.py")):
        raise RuntimeError("%s has no %s package; run gen_pb.sh %s" %
                           (pb_dir, PB_PACKAGE, pb_dir))
    sys.path.insert(0, os.path.abspath(pb_dir))
    # Do not leave __pycache__ behind in a shared pb_dir.
    sys.dont_write_bytecode = True
    return PbModules(
        importlib.import_module(PB_PACKAGE + ".empty_pb2"),
        importlib.import_module(PB_PACKAGE + ".messages_pb2"),
        importlib.import_module(PB_PACKAGE + ".test_pb2"))


# ---------------------------------------------------------------- codec

# A received message plus whether it arrived with the compressed flag set.
Received = collections.namedtuple("Received", "msg compressed")


def inflate(data):
    """Return (plain bytes, was_compressed) for one message as received.

    With per-message decompression disabled, gRPC core delivers a compressed
    message still compressed.  The gzip and deflate codecs are recognised
    by their headers: gzip starts 1f 8b, which can never start a protobuf
    message (0x1f would be field 3 with the invalid wire type 7); deflate is
    zlib-wrapped (RFC 1950, as gRPC core and grpc-go/java produce it) and
    starts 0x78 with a header checksum, which as a protobuf tag would be
    field 15 -- a field none of the interop messages has.  Anything else is
    taken as an uncompressed message.
    """
    if len(data) >= 2 and data[0] == 0x1F and data[1] == 0x8B:
        return gzip.decompress(data), True
    if (len(data) >= 2 and data[0] == 0x78
            and ((data[0] << 8) | data[1]) % 31 == 0):
        try:
            return zlib.decompress(data), True
        except zlib.error:
            pass
    return data, False


def decoder(message_class):
    """A deserializer that yields Received(msg, compressed)."""
    def decode(data):
        plain, compressed = inflate(data)
        return Received(message_class.FromString(plain), compressed)
    return decode


def encode(message):
    return message.SerializeToString()


# ---------------------------------------------------------------- stubs

MethodInfo = collections.namedtuple(
    "MethodInfo", "name path kind request_class response_class")


def _message_class(pb, full_name):
    for module in (pb.messages, pb.empty):
        for name, cls in vars(module).items():
            desc = getattr(cls, "DESCRIPTOR", None)
            if (isinstance(cls, type) and desc is not None
                    and getattr(desc, "full_name", None) == full_name):
                return cls
    raise KeyError("no message class for %s" % full_name)


def service_methods(pb, service_name=SERVICE):
    """MethodInfo for each method of a service in test.proto."""
    short = service_name.rsplit(".", 1)[-1]
    service = pb.test.DESCRIPTOR.services_by_name[short]
    methods = []
    for m in service.methods:
        kind = {(False, False): "unary_unary",
                (False, True): "unary_stream",
                (True, False): "stream_unary",
                (True, True): "stream_stream"}[
                    (m.client_streaming, m.server_streaming)]
        methods.append(MethodInfo(
            m.name, "/%s/%s" % (service_name, m.name), kind,
            _message_class(pb, m.input_type.full_name),
            _message_class(pb, m.output_type.full_name)))
    return methods


class Stub(object):
    """Client stub: one multi-callable attribute per method of the service.

    Responses come back as Received(msg, compressed).
    """

    def __init__(self, channel, pb, service_name=SERVICE):
        for info in service_methods(pb, service_name):
            factory = getattr(channel, info.kind)
            setattr(self, info.name, factory(
                info.path, request_serializer=encode,
                response_deserializer=decoder(info.response_class)))


def generic_handler(pb, implementations, service_name=SERVICE):
    """A grpc.GenericRpcHandler for the methods that have an implementation.

    implementations maps method name -> behaviour; the behaviour receives
    Received(msg, compressed) (unary requests) or an iterator of them
    (streaming requests).  Methods without an implementation are not
    registered, so grpc answers them with UNIMPLEMENTED.
    """
    import grpc  # pylint: disable=import-outside-toplevel
    handlers = {}
    for info in service_methods(pb, service_name):
        behaviour = implementations.get(info.name)
        if behaviour is None:
            continue
        factory = getattr(grpc, info.kind + "_rpc_method_handler")
        handlers[info.name] = factory(
            behaviour, request_deserializer=decoder(info.request_class),
            response_serializer=encode)
    return grpc.method_handlers_generic_handler(service_name, handlers)


def status_code_from_int(code):
    """grpc.StatusCode for a numeric code, or None when grpcio has none."""
    import grpc  # pylint: disable=import-outside-toplevel
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status
    return None


def read_file(path):
    with open(path, "rb") as f:
        return f.read()
