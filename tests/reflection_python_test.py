"""reflection_python_test.py ORPC ECHO_SERVER PROTOC GRPC_PROTO_DIR WORK

Server reflection between orpc and python3-grpcio, both ways:

1. grpcio's reflection client protocol against an orpc server
   (cli_echo_server): the v1alpha and v1 messages generated here with
   `protoc --python_out` (grpc_reflection is not installed), sent over
   channel.stream_stream exactly as grpcio's reflection client does; the
   service list, a file fetched by symbol that parses as a
   FileDescriptorProto and names the method, its imports by file name.
2. A grpcio server (pyecho.Greeter, built at run time from a hand-made
   FileDescriptorProto) with a hand-written reflection servicer that serves
   v1alpha only, reached by `orpc list` and `orpc call --plaintext
   --target 127.0.0.1:PORT`: the command must fall back from v1 to v1alpha
   and print the right JSON.

Loopback only; every process it starts is stopped before it exits.  Run
with /usr/bin/python3 (Debian's, which has grpcio and protobuf).
"""
import json
import os
import select
import subprocess
import sys
import time
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

ORPC, ECHO, PROTOC, GRPC_PROTO_DIR, WORK = sys.argv[1:6]
failures = []


def check(name, cond, detail=""):
    if cond:
        print("ok    " + name)
    else:
        print("FAIL  %s: %s" % (name, detail))
        failures.append(name)


# grpcio is installed as the package "grpc": the generated modules live in
# a "grpc" directory of their own, so import them under another name.
def load_reflection():
    out = os.path.join(WORK, "pb")
    os.makedirs(out, exist_ok=True)
    mods = {}
    for v in ("v1", "v1alpha"):
        subprocess.run([PROTOC, "-I", GRPC_PROTO_DIR, "--python_out=" + out,
                        "grpc/reflection/%s/reflection.proto" % v],
                       check=True, timeout=60)
        import importlib.util
        path = os.path.join(out, "grpc", "reflection", v, "reflection_pb2.py")
        spec = importlib.util.spec_from_file_location("refl_" + v, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mods[v] = mod
    return mods["v1"], mods["v1alpha"]


def start(argv):
    """Starts |argv|, which prints "listening on PORT"; (process, port)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 10
    while time.time() < deadline:
        # bounded: wait for a line at most until the deadline
        ready, _, _ = select.select([p.stdout], [], [],
                                   max(0.0, deadline - time.time()))
        if not ready:
            break
        line = p.stdout.readline()
        if line.startswith("listening on "):
            return p, int(line.split()[2])
        if not line and p.poll() is not None:
            break
    p.kill()
    p.wait(10)
    raise SystemExit("%s did not start" % argv[0])


def reflect(channel, pb, version, requests):
    call = channel.stream_stream(
        "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % version,
        request_serializer=pb.ServerReflectionRequest.SerializeToString,
        response_deserializer=pb.ServerReflectionResponse.FromString)
    return list(call(iter(requests), timeout=10))


def client_against_orpc(v1, v1a):
    echo, port = start([ECHO])
    try:
        with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
            for version, pb in (("v1alpha", v1a), ("v1", v1)):
                rs = reflect(ch, pb, version, [
                    pb.ServerReflectionRequest(list_services=""),
                    pb.ServerReflectionRequest(
                        file_containing_symbol="orpc.test.cli.Echo"),
                    pb.ServerReflectionRequest(
                        file_by_filename="json_types.proto"),
                    pb.ServerReflectionRequest(
                        file_containing_symbol="no.such.Symbol"),
                ])
                check("%s: four answers" % version, len(rs) == 4, len(rs))
                names = {s.name for s in rs[0].list_services_response.service}
                check("%s: list_services names orpc.test.cli.Echo" % version,
                      {"orpc.test.cli.Echo", "grpc.health.v1.Health"} <= names,
                      names)
                files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                         for b in rs[1].file_descriptor_response
                         .file_descriptor_proto]
                echo_file = [f for f in files if f.name == "cli_echo.proto"]
                ok = bool(echo_file) and echo_file[0].package == "orpc.test.cli"
                methods = {}
                if ok:
                    svc = echo_file[0].service[0]
                    methods = {m.name: m for m in svc.method}
                    ok = (svc.name == "Echo" and "Collect" in methods and
                          methods["Collect"].client_streaming and
                          methods["Collect"].input_type ==
                          ".orpc.test.json.AllTypes")
                check("%s: file by symbol parses and names the methods"
                      % version, ok, [f.name for f in files])
                check("%s: it lists its import" % version,
                      bool(echo_file) and
                      "json_types.proto" in echo_file[0].dependency)
                dep = [descriptor_pb2.FileDescriptorProto.FromString(b)
                       for b in rs[2].file_descriptor_response
                       .file_descriptor_proto]
                check("%s: the import by file name" % version,
                      any(f.name == "json_types.proto" and
                          any(m.name == "AllTypes" for m in f.message_type)
                          for f in dep), [f.name for f in dep])
                check("%s: an unknown symbol is NOT_FOUND" % version,
                      rs[3].error_response.error_code == 5,
                      rs[3])
    finally:
        echo.terminate()
        echo.wait(10)


# ---- a grpcio server that orpc reaches through (v1alpha) reflection ----

def greeter_file():
    f = descriptor_pb2.FileDescriptorProto(
        name="pyecho/greeter.proto", package="pyecho", syntax="proto3")
    T = descriptor_pb2.FieldDescriptorProto
    kind = f.enum_type.add(name="Kind")
    kind.value.add(name="KIND_UNSPECIFIED", number=0)
    kind.value.add(name="LOUD", number=1)
    fields = [("name", T.TYPE_STRING), ("times", T.TYPE_INT64),
              ("tags", T.TYPE_STRING), ("kind", T.TYPE_ENUM)]
    for msg in ("HelloRequest", "HelloReply"):
        m = f.message_type.add(name=msg)
        if msg == "HelloReply":  # "message", "total_count" (a uint64)
            fields[:2] = [("message", T.TYPE_STRING),
                          ("total_count", T.TYPE_UINT64)]
        for number, (name, typ) in enumerate(fields, 1):
            m.field.add(name=name, number=number, type=typ,
                        label=T.LABEL_REPEATED if name == "tags"
                        else T.LABEL_OPTIONAL,
                        type_name=".pyecho.Kind" if name == "kind" else None,
                        json_name="totalCount" if name == "total_count"
                        else name)
    svc = f.service.add(name="Greeter")
    svc.method.add(name="SayHello", input_type=".pyecho.HelloRequest",
                   output_type=".pyecho.HelloReply")
    return f


def message_classes(fdp):
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    get = getattr(message_factory, "GetMessageClass", None)
    if get is None:
        get = message_factory.MessageFactory(pool).GetPrototype
    return (get(pool.FindMessageTypeByName("pyecho.HelloRequest")),
            get(pool.FindMessageTypeByName("pyecho.HelloReply")))


def greeter_server(v1a):
    fdp = greeter_file()
    serialized = fdp.SerializeToString()
    Req, Rep = message_classes(fdp)

    def say_hello(req, ctx):
        return Rep(message="hello " + req.name,
                   total_count=req.times * 1000000000000,
                   tags=list(req.tags) + ["py"], kind=req.kind)

    def reflection_info(requests, ctx):
        for r in requests:
            a = v1a.ServerReflectionResponse(valid_host=r.host,
                                             original_request=r)
            which = r.WhichOneof("message_request")
            if which == "list_services":
                for name in ("pyecho.Greeter",
                             "grpc.reflection.v1alpha.ServerReflection"):
                    a.list_services_response.service.add(name=name)
            elif (which == "file_containing_symbol" and
                  r.file_containing_symbol.startswith("pyecho.")) or \
                    (which == "file_by_filename" and
                     r.file_by_filename == fdp.name):
                a.file_descriptor_response.file_descriptor_proto.append(
                    serialized)
            else:
                a.error_response.error_code = grpc.StatusCode.NOT_FOUND \
                    .value[0]
                a.error_response.error_message = "not found"
            yield a

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("pyecho.Greeter", {
            "SayHello": grpc.unary_unary_rpc_method_handler(
                say_hello, request_deserializer=Req.FromString,
                response_serializer=Rep.SerializeToString)}),
        grpc.method_handlers_generic_handler(
            "grpc.reflection.v1alpha.ServerReflection", {
                "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                    reflection_info,
                    request_deserializer=v1a.ServerReflectionRequest.FromString,
                    response_serializer=v1a.ServerReflectionResponse
                    .SerializeToString)}),
    ))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def orpc(*args):
    p = subprocess.run([ORPC] + list(args), capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout, p.stderr


def orpc_against_grpcio(v1a):
    server, port = greeter_server(v1a)
    target = "127.0.0.1:%d" % port
    try:
        rc, out, err = orpc("list", "--plaintext", "--target", target)
        check("orpc list --target a grpcio server (v1alpha only)",
              rc == 0 and "pyecho.Greeter/SayHello\tunary\n" in out,
              (rc, out, err))
        rc, out, err = orpc(
            "call", "--plaintext", "--target", target, "-d",
            '{"name": "orpc", "times": 3, "tags": ["a", "b"], '
            '"kind": "LOUD"}', "pyecho.Greeter/SayHello")
        want = {"message": "hello orpc", "totalCount": "3000000000000",
                "tags": ["a", "b", "py"], "kind": "LOUD"}
        got = None
        try:
            got = json.loads(out)
        except ValueError:
            pass
        check("orpc call --target a grpcio server through v1alpha "
              "reflection", rc == 0 and got == want, (rc, out, err))
        rc, out, err = orpc("call", "--plaintext", "--target", target,
                            "other.Nope/X")
        check("orpc call of a symbol the grpcio server does not know: "
              "NOT_FOUND exit 5", rc == 5 and "not found" in err,
              (rc, out, err))
        rc, out, err = orpc("call", "--plaintext", "--target", target,
                            "pyecho.Greeter/Nope")
        check("orpc call of a method the service lacks: exit 12", rc == 12,
              (rc, out, err))
    finally:
        server.stop(None)


def main():
    v1, v1a = load_reflection()
    client_against_orpc(v1, v1a)
    orpc_against_grpcio(v1a)
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
