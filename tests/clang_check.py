#!/usr/bin/python3
"""clang_check.py BUILD_DIR SOURCE_DIR — orpc's own C code compiles with
clang too, warnings as errors.

make test builds with gcc; this reruns every compile command of the
project's own sources (rpc/, compat/, clients/, common/, tests/,
examples/, tools/; not generated code or protoc-c output) from BUILD_DIR/compile_commands.json with clang and
-fsyntax-only, so a construct only gcc accepts fails the test suite.
Prints "N passed, M failed" and exits 1 on any failure.
"""
import json
import os
import shlex
import subprocess
import sys


def main():
    build, src = sys.argv[1], os.path.realpath(sys.argv[2])
    with open(os.path.join(build, "compile_commands.json")) as f:
        entries = json.load(f)
    ours = ("rpc/", "compat/", "clients/", "common/", "tests/", "examples/",
            "tools/")
    passed = failed = 0
    seen = set()
    for e in entries:
        path = os.path.realpath(e["file"])
        rel = os.path.relpath(path, src)
        if not rel.startswith(ours) or not rel.endswith(".c") or rel in seen:
            continue
        seen.add(rel)
        args = shlex.split(e["command"])
        # compiler -> clang; drop the output and sanitizer-only flags
        cmd = ["clang"]
        skip = False
        for a in args[1:]:
            if skip:
                skip = False
                continue
            if a == "-o":
                skip = True
                continue
            if a.startswith("--param") or a == "-c":
                continue
            cmd.append(a)
        cmd.append("-fsyntax-only")
        r = subprocess.run(cmd, cwd=e["directory"], capture_output=True,
                           text=True, timeout=120)
        if r.returncode == 0:
            passed += 1
        else:
            failed += 1
            print("FAIL %s\n%s" % (rel, r.stderr[:2000]))
    if passed == 0:
        print("no project sources found in compile_commands.json")
        failed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
