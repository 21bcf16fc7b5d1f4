#!/usr/bin/python3
"""json_python_check.py — cross-checks orpc's proto3 JSON mapping
(compat/src/json_*.c, through tests/json_cross_driver.c) against Debian's
python3-protobuf json_format.

Usage: json_python_check.py DRIVER GENDIR
  DRIVER  the json_cross_driver executable
  GENDIR  where `protoc --python_out` wrote the *_pb2 modules

For every populated message below, both ways:
  1. JSON written by json_format (JSON names and original names) decodes in
     orpc to the same message: orpc's serialized bytes, parsed in Python,
     serialize (deterministically: maps sorted) to the original's bytes;
  2. orpc's JSON (default, proto_names, emit_defaults, legacy where
     json_format can read it) parses in json_format to a message with the
     original's bytes, and is the same JSON value as json_format's own
     output.
Messages are compared by bytes, not ==, because NaN != NaN.
Run by json_cross_test.sh; exits non-zero on the first difference.
"""
import importlib.util
import json
import math
import os
import struct
import subprocess
import sys

DRIVER = sys.argv[1]
sys.path.insert(0, sys.argv[2])

# pylint: disable=wrong-import-position,import-error
from google.protobuf import json_format  # noqa: E402
from google.protobuf import struct_pb2  # noqa: E402
from google.protobuf import timestamp_pb2  # noqa: E402
from google.protobuf import duration_pb2  # noqa: E402
from google.protobuf import wrappers_pb2  # noqa: E402
import json_types_pb2 as jt  # noqa: E402
# grpc.testing by path: python3-grpcio's own "grpc" package shadows it.
_SPEC = importlib.util.spec_from_file_location(
    'grpc_testing_messages_pb2',
    os.path.join(sys.argv[2], 'grpc', 'testing', 'messages_pb2.py'))
messages_pb2 = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(messages_pb2)
from opsconductor.notification.v1 import notification_pb2  # noqa: E402
from opsconductor.jobs.v1 import jobs_pb2  # noqa: E402

FAILURES = []
CHECKS = 0


def run(mode, type_name, data, *opts):
    """Runs the driver; returns its stdout (bytes) or raises."""
    proc = subprocess.run([DRIVER, mode, type_name, *opts], input=data,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError('driver %s %s %s: %s' % (
            mode, type_name, ' '.join(opts),
            proc.stderr.decode('utf-8', 'replace').strip()))
    return proc.stdout


def check(cond, what):
    global CHECKS  # pylint: disable=global-statement
    CHECKS += 1
    if not cond:
        FAILURES.append(what)
        print('FAIL: ' + what)


def same_json(a, b):
    """JSON values equal, NaN-safe and int/float-insensitive (5 == 5.0).

    Numbers that differ only as decimals of the same 32-bit float are equal:
    json_format writes float fields with at least 6 digits (1.4013e-45),
    orpc with as few as read back exactly (1e-45); that both read back to
    the same value is what the byte checks prove."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or struct.pack('<f', a) == struct.pack('<f', b)
    return a == b


def cross(name, msg, legacy_ok=False):
    """All the checks for one message."""
    type_name = msg.DESCRIPTOR.full_name
    wire = msg.SerializeToString(deterministic=True)

    # 1. json_format's JSON -> orpc -> protobuf -> Python.
    for label, text in (
            ('json names', json_format.MessageToJson(msg)),
            ('proto names', json_format.MessageToJson(
                msg, preserving_proto_field_name=True)),
            ('defaults', json_format.MessageToJson(
                msg, including_default_value_fields=True))):
        try:
            out = run('decode', type_name, text.encode('utf-8'))
        except RuntimeError as err:
            check(False, '%s: python JSON (%s) -> orpc: %s' % (name, label,
                                                                err))
            continue
        back = type(msg)()
        back.ParseFromString(out)
        check(back.SerializeToString(deterministic=True) == wire,
              '%s: python JSON (%s) -> orpc -> protobuf differs:\n%s\n%s' %
              (name, label, text, back))

    # 2. protobuf -> orpc JSON -> json_format.
    variants = [((), {}),
                (('proto_names',), {'preserving_proto_field_name': True}),
                (('emit_defaults',), {'including_default_value_fields': True})]
    if legacy_ok:
        variants.append((('legacy',), None))
    for opts, py_kw in variants:
        label = ' '.join(opts) or 'default'
        try:
            text = run('encode', type_name, wire, *opts).decode('utf-8')
        except RuntimeError as err:
            check(False, '%s: orpc (%s) encode: %s' % (name, label, err))
            continue
        back = type(msg)()
        try:
            json_format.Parse(text, back)
        except json_format.ParseError as err:
            check(False, '%s: orpc JSON (%s) does not parse in json_format: '
                  '%s\n%s' % (name, label, err, text))
            continue
        check(back.SerializeToString(deterministic=True) == wire,
              '%s: orpc JSON (%s) -> json_format differs:\n%s\n%s' %
              (name, label, text, back))
        if py_kw is not None:
            ours = json.loads(text)
            theirs = json.loads(json_format.MessageToJson(msg, **py_kw))
            check(same_json(ours, theirs),
                  '%s: orpc JSON (%s) is not json_format\'s:\n%s\n%s' %
                  (name, label, json.dumps(ours, sort_keys=True),
                   json.dumps(theirs, sort_keys=True)))


def all_types():
    m = jt.AllTypes()
    m.f_int32 = -2147483648
    m.f_int64 = -9223372036854775808
    m.f_uint32 = 4294967295
    m.f_uint64 = 18446744073709551615
    m.f_sint32 = -7
    m.f_sint64 = 9007199254740993
    m.f_fixed32 = 123456789
    m.f_fixed64 = 2 ** 60
    m.f_sfixed32 = -1
    m.f_sfixed64 = -2 ** 62
    m.f_float = 0.1
    m.f_double = 1.0 / 3
    m.f_bool = True
    m.f_string = 'h\u00e9llo \u2603 \U0001f600 "quoted" \\ \n\t\x01'
    m.f_bytes = bytes(range(256))
    m.f_enum = jt.COLOR_RED
    m.f_nested.a = 1
    m.f_nested.b = 'nested'
    m.f_nested.child.child.a = 3
    m.r_int32.extend([0, -1, 2147483647])
    m.r_int64.extend([0, 9223372036854775807, -5])
    m.r_uint32.extend([0, 1])
    m.r_uint64.extend([18446744073709551615, 0])
    m.r_sint32.extend([-2147483648])
    m.r_sint64.extend([-1, 1])
    m.r_fixed32.extend([7])
    m.r_fixed64.extend([8])
    m.r_sfixed32.extend([-9])
    m.r_sfixed64.extend([-10])
    # Not FLT_MAX: json_format cannot read back its own "3.4028235e+38".
    m.r_float.extend([1.5, float("inf"), float("-inf"), 3.4e38,
                      1e-45])
    m.r_double.extend([float('nan'), 1e300, -2.5e-308, 123456789.125])
    m.r_bool.extend([True, False])
    m.r_string.extend(['', 'a', '\u00fc'])
    m.r_bytes.extend([b'', b'\xff\xfe', b'abc'])
    m.r_enum.extend([jt.COLOR_BLUE, jt.COLOR_UNSPECIFIED, jt.COLOR_GREEN])
    m.r_nested.add(a=1)
    m.r_nested.add()
    m.r_nested.add(b='x', child=jt.Nested(a=2))
    m.m_string_int32['a'] = 1
    m.m_string_int32[''] = 0
    m.m_string_int32['\u00e9 key'] = -3
    m.m_int32_string[-1] = 'minus one'
    m.m_int32_string[0] = ''
    m.m_int64_nested[-9223372036854775808].a = 1
    m.m_int64_nested[5].CopyFrom(jt.Nested())
    m.m_uint32_double[4294967295] = 0.5
    m.m_uint64_enum[18446744073709551615] = jt.COLOR_GREEN
    m.m_sint32_bytes[-2] = b'\x00\x01'
    m.m_sint64_bool[-3] = True
    m.m_fixed32_int64[4] = -4
    m.m_fixed64_uint64[5] = 18446744073709551615
    m.m_sfixed32_float[-6] = -1.25
    m.m_sfixed64_string[-7] = 'seven'
    m.m_bool_string[True] = 't'
    m.m_bool_string[False] = 'f'
    m.m_string_value['n'].null_value = struct_pb2.NULL_VALUE
    m.m_string_value['s'].string_value = 'str'
    m.m_string_value['l'].list_value.values.add().number_value = 1.5
    m.m_string_value['o'].struct_value.fields['k'].bool_value = False
    m.o_string = 'one of them'
    m.opt_int32 = 0
    m.renamed = 42
    return m


def oneof_variants():
    out = []
    for setter in (lambda m: setattr(m, 'o_int64', -1),
                   lambda m: m.o_nested.SetInParent(),
                   lambda m: setattr(m, 'o_enum', jt.COLOR_UNSPECIFIED),
                   lambda m: setattr(m, 'o_bytes', b''),
                   lambda m: setattr(m.o_value, 'null_value', 0),
                   lambda m: setattr(m.o_value, 'number_value', 2.5),
                   lambda m: setattr(m, 'opt_int32', -8)):
        m = jt.AllTypes()
        setter(m)
        out.append(m)
    return out


def well_known():
    m = jt.WellKnown()
    m.ts.seconds = 1700000000
    m.ts.nanos = 123000000
    m.dur.seconds = -3
    m.dur.nanos = -500
    m.w_double.value = 0
    m.w_float.value = 2.5
    m.w_int64.value = -9223372036854775808
    m.w_uint64.value = 18446744073709551615
    m.w_int32.value = 0
    m.w_uint32.value = 4294967295
    m.w_bool.value = False
    m.w_string.value = 'w'
    m.w_bytes.value = b'\x01\x02\x03\x04'
    m.st.update({'a': 1, 'b': [True, None, 'x', {'c': -2.5}], 'd': {}})
    m.val.list_value.values.add().string_value = 'in a list'
    m.lv.values.add().struct_value.SetInParent()
    m.lv.values.add().null_value = 0
    m.fm.paths.extend(['f_int32', 'f_nested.child.a', 'r_string'])
    m.empty.SetInParent()
    m.any.Pack(jt.Nested(a=7, b='packed'))
    m.r_ts.add(seconds=-62135596800)
    m.r_ts.add(seconds=253402300799, nanos=999999999)
    m.r_ts.add(seconds=0, nanos=1000)
    m.r_w_int32.add(value=5)
    m.r_w_int32.add()
    m.r_val.add().bool_value = True
    m.r_val.add().null_value = 0
    m.r_val.add().number_value = -0.125
    a = m.r_any.add()
    a.Pack(timestamp_pb2.Timestamp(seconds=86400))
    a = m.r_any.add()
    a.Pack(duration_pb2.Duration(seconds=1, nanos=500000000))
    a = m.r_any.add()
    a.Pack(wrappers_pb2.StringValue(value='wrapped'))
    a = m.r_any.add()
    a.Pack(struct_pb2.Value(string_value='v'))
    a = m.r_any.add()
    inner = jt.AllTypes(f_int64=5, o_string='x')
    inner.m_bool_string[True] = 'y'
    a.Pack(inner)
    m.m_dur['zero'].SetInParent()
    m.m_dur['long'].seconds = 315576000000
    m.m_w_string['k'].value = 'v'
    m.all.f_int32 = 1
    return m


def notification():
    m = notification_pb2.SendNotificationRequest()
    m.type = notification_pb2.NOTIFICATION_TYPE_EMAIL
    m.destination = 'ops@example.com'
    m.payload.update({'subject': 'Disk full', 'body': 'on host a'})
    m.template_id = 42
    return m


def main():
    cross('AllTypes', all_types())
    cross('AllTypes (empty)', jt.AllTypes())
    for i, m in enumerate(oneof_variants()):
        cross('AllTypes oneof %d' % i, m)
    cross('WellKnown', well_known())
    cross('SendNotificationRequest', notification())
    cross('SendNotificationRequest (no template)',
          notification_pb2.SendNotificationRequest(destination='#ops'))
    job = jobs_pb2.JobEvent(job_id=12, status='running')
    job.changed_at.FromJsonString('2024-02-29T23:59:59.5+02:00')
    job.detail.update({'progress': 0.5})
    cross('JobEvent', job, legacy_ok=True)
    req = messages_pb2.SimpleRequest(response_size=314159, fill_username=True)
    req.payload.body = b'\x00' * 16
    req.response_compressed.value = True
    req.response_status.code = 3
    req.response_status.message = 'bad'
    cross('grpc.testing.SimpleRequest', req, legacy_ok=True)

    # The legacy profile of the notification request is plain JSON that
    # json_format reads once the enum is spelled by name again.
    text = run('encode', 'opsconductor.notification.v1.SendNotificationRequest',
               notification().SerializeToString(), 'legacy').decode('utf-8')
    check(json.loads(text) == {'type': 'email',
                               'destination': 'ops@example.com',
                               'payload': {'subject': 'Disk full',
                                           'body': 'on host a'},
                               'template_id': 42},
          'legacy notification JSON: ' + text)

    print('%d checks, %d failures' % (CHECKS, len(FAILURES)))
    return 1 if FAILURES else 0


if __name__ == '__main__':
    sys.exit(main())
