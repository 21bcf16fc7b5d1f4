#!/usr/bin/python3
"""check_legacy.py LEGACY_SERVER_PY ANSWERS — holds the orpc services'
answers to the legacy fixture's, byte for byte.

ANSWERS has one line per answer: `<route> <id> <json>`, the JSON being the
orpc response encoded by orpc_json_encode() in the legacy profile.  Each is
compared with what tests/legacy/legacy_server.py's own route handler
answers for the same id, rendered as that fixture renders JSON (FastAPI's
compact UTF-8).  Exits 0 when every line matches, 1 (naming the first few
differences) otherwise, 2 on bad input.
"""
import importlib.util
import sys

sys.dont_write_bytecode = True


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    spec = importlib.util.spec_from_file_location("legacy_server", argv[1])
    legacy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(legacy)
    routes = {
        "job": (legacy.h_get_job, "job_id"),
        "job_status": (legacy.h_job_status, "job_id"),
        "credential": (legacy.h_credential, "credential_id"),
        "target_credentials": (legacy.h_target_credentials, "target_id"),
        "user": (legacy.h_user, "user_id"),
        "preferences": (legacy.h_preferences, "user_id"),
    }
    checked, bad = 0, 0
    with open(argv[2], "r", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            route, ident, text = line.rstrip("\n").split(" ", 2)
            handler, param = routes[route]
            status, obj = handler({"params": {param: int(ident)}})
            want = legacy.dumps(obj).decode("utf-8")
            checked += 1
            if status != 200 or text != want:
                bad += 1
                if bad <= 5:
                    sys.stderr.write("line %d: %s %s differs:\n  orpc:   %s\n"
                                     "  legacy: %s\n" % (n, route, ident,
                                                         text, want))
    print("check_legacy: %d answers, %d differ" % (checked, bad))
    return 1 if bad or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
