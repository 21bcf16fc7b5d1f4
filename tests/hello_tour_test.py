#!/usr/bin/env python3
"""hello_tour_test.py — follows README.md's five-minute tour as written.

    hello_tour_test.py SOURCE_DIR BUILD_DIR SCRATCH_DIR

The tour marks its code blocks with HTML comments (invisible on the page):

    <!-- tour-file: examples/hello/hello.proto -->   the next block is that
                                                     file, byte for byte
    <!-- tour-run -->                                the next block is shell
                                                     a reader types in
    <!-- tour-output -->                             the next block is what
                                                     the run block before it
                                                     prints (stdout + stderr)

The test checks every tour-file block against its file, then runs the
tour-run blocks, in order, in one bash session started in SOURCE_DIR (a
clone of orpc), the way a newcomer would, except for what it cannot do as
a reader does:

  - `make install` (the step before the first run block) becomes
    `cmake --install BUILD_DIR --prefix SCRATCH/prefix`, which is what
    `make install` runs, and the blocks see that prefix through
    CMAKE_PREFIX_PATH and PATH instead of /usr/local;
  - HOME is SCRATCH/home, so `~/hello` lands in the scratch dir;
  - the port 50051 becomes a free one, in commands and expected output alike;
  - when the orpc build uses AddressSanitizer, CFLAGS and LDFLAGS carry it
    into the example's build (an instrumented liborpc needs it).

After each run block that has a tour-output block, its output must become
exactly that text within 30 s (a server's "listening on" line arrives a
moment after the command returns).  Everything is bounded: each wait, and
the whole session (150 s).  Every process the session started is killed at
the end.  If the server could not bind the port picked for it (another
process took it in between), the session runs once more on another.  The scratch dir is removed on success and kept on failure.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

TOUR_START = "## Five-minute tour"
MARK = re.compile(r"^<!-- tour-(file|run|output)(?::\s*(\S+))?\s*-->\s*$")
FENCE = re.compile(r"^(```+)(\S*)\s*$")
SESSION_TIMEOUT = 150
OUTPUT_WAIT = 30


def fail(msg):
    print("hello_tour: FAIL: " + msg, file=sys.stderr)
    print("hello_tour: scratch dir kept: " + scratch, file=sys.stderr)
    sys.exit(1)


def tour_blocks(readme):
    """The marked blocks of the tour section: [(kind, arg, text, line)]."""
    lines = open(readme, encoding="utf-8").read().split("\n")
    try:
        start = lines.index(TOUR_START)
    except ValueError:
        fail("README.md has no '%s' section" % TOUR_START)
    blocks = []
    i = start + 1
    while i < len(lines) and not lines[i].startswith("## "):
        m = MARK.match(lines[i])
        if not m:
            i += 1
            continue
        kind, arg, at = m.group(1), m.group(2), i + 1
        f = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if not f:
            fail("README.md:%d: tour-%s is not followed by a code block" % (at, kind))
        j = i + 2
        while j < len(lines) and lines[j] != f.group(1):
            j += 1
        if j == len(lines):
            fail("README.md:%d: code block never closed" % (at + 1))
        blocks.append((kind, arg, "\n".join(lines[i + 2:j]) + "\n", at))
        i = j + 1
    return blocks


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cache_get(build, key, default):
    try:
        for line in open(os.path.join(build, "CMakeCache.txt"), encoding="utf-8"):
            if line.startswith(key + ":"):
                return line.split("=", 1)[1].strip() or default
    except OSError:
        pass
    return default


if len(sys.argv) != 4:
    print("usage: hello_tour_test.py SOURCE_DIR BUILD_DIR SCRATCH_DIR", file=sys.stderr)
    sys.exit(2)
src, build, scratch = (os.path.abspath(a) for a in sys.argv[1:])
shutil.rmtree(scratch, ignore_errors=True)
os.makedirs(scratch)

blocks = tour_blocks(os.path.join(src, "README.md"))
files = [b for b in blocks if b[0] == "file"]
runs = [b for b in blocks if b[0] == "run"]
if len(files) < 4 or len(runs) < 3:
    fail("the tour has %d file blocks and %d run blocks; expected the example's "
         "four files and its steps" % (len(files), len(runs)))

# 1. the code on the page is the example's code
for _, path, text, at in files:
    try:
        actual = open(os.path.join(src, path), encoding="utf-8").read()
    except OSError as e:
        fail("README.md:%d names %s: %s" % (at, path, e))
    if actual != text:
        a, b = actual.split("\n"), text.split("\n")
        n = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
        fail("README.md:%d: the block differs from %s at its line %d:\n  file:   %r\n  README: %r"
             % (at, path, n + 1, a[n] if n < len(a) else "<end>", b[n] if n < len(b) else "<end>"))
print("hello_tour: %d code blocks are the example's files" % len(files))

# 2. install, as `make install` does
prefix = os.path.join(scratch, "prefix")
r = subprocess.run(["cmake", "--install", build, "--prefix", prefix],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
if r.returncode != 0:
    fail("cmake --install failed:\n" + r.stdout.decode(errors="replace"))

# 3. the run blocks, in one bash session
def run_session(port):
    """Runs the tour on |port|: (exit code or None on timeout, log, out dir)."""
    out = os.path.join(scratch, "out-%s" % port)
    os.makedirs(out)
    script = ["set -e",
              "expect_output() {  # N: block N's output becomes its expected text",
              "    for _ in $(seq 1 %d); do" % (OUTPUT_WAIT * 10),
              '        cmp -s "$OUT/$1.out" "$OUT/$1.want" && return 0',
              "        sleep 0.1",
              "    done",
              '    echo "block $1: output differs from README.md (- README, + actual):"',
              '    diff -u "$OUT/$1.want" "$OUT/$1.out" || true',
              "    exit 1",
              "}"]
    for n, (kind, _, text, at) in enumerate(blocks):
        if kind != "run":
            continue
        body = text.replace("50051", port)
        script += ['echo "== block %d (README.md:%d)" >> "$OUT/session.log"' % (n, at),
                   "{", body.rstrip("\n"), '} > "$OUT/%d.out" 2>&1' % n]
        nxt = blocks[n + 1] if n + 1 < len(blocks) else None
        if nxt and nxt[0] == "output":
            with open(os.path.join(out, "%d.want" % n), "w", encoding="utf-8") as f:
                f.write(nxt[2].replace("50051", port))
            script.append("expect_output %d" % n)
    script.append('echo "tour ran" >> "$OUT/session.log"')
    with open(os.path.join(out, "tour.sh"), "w", encoding="utf-8") as f:
        f.write("\n".join(script) + "\n")

    env = dict(os.environ)
    env.update(HOME=os.path.join(scratch, "home"), OUT=out,
               PATH=os.path.join(prefix, "bin") + os.pathsep + env.get("PATH", ""),
               CMAKE_PREFIX_PATH=prefix, CMAKE_BUILD_PARALLEL_LEVEL="2",
               CC=cache_get(build, "CMAKE_C_COMPILER", "cc"))
    if cache_get(build, "ORPC_ENABLE_ASAN", "OFF").upper() in ("ON", "1", "TRUE", "YES", "Y"):
        env["CFLAGS"] = "-fsanitize=address,undefined -fno-omit-frame-pointer"
        env["LDFLAGS"] = "-fsanitize=address,undefined"
    # a fresh home: the tour copies the example into ~/hello
    shutil.rmtree(env["HOME"], ignore_errors=True)
    os.makedirs(env["HOME"])
    proc = subprocess.Popen(["bash", os.path.join(out, "tour.sh")], cwd=src, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=SESSION_TIMEOUT)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        rc, log = None, b""
    finally:
        # the session and whatever it left running (the server it put in
        # the background) share one process group: ours, made for this
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    return rc, log.decode(errors="replace"), out


def lost_port_race(out):
    """True when the server could not bind the port picked for it (another
    process took it between free_port() and the server's listen)."""
    for name in os.listdir(out):
        if name.endswith(".out"):
            with open(os.path.join(out, name), errors="replace") as f:
                if "address in use" in f.read():
                    return True
    return False


port = str(free_port())
rc, log, out = run_session(port)
if rc != 0 and lost_port_race(out):
    print("hello_tour: port %s was taken meanwhile; once more on another" % port)
    port = str(free_port())
    rc, log, out = run_session(port)
if rc != 0:
    detail = log
    for name in sorted(os.listdir(out)):
        if name.endswith(".out") or name == "session.log":
            detail += "\n--- %s\n" % name + open(os.path.join(out, name), errors="replace").read()
    fail(("the tour timed out after %d s" % SESSION_TIMEOUT if rc is None
          else "the tour's commands exited %d" % rc) + "\n" + detail)
# the example was built against the install, not against anything else
found = cache_get(os.path.join(scratch, "home", "hello", "build"), "orpc_DIR", "")
if not os.path.realpath(found).startswith(os.path.realpath(prefix) + os.sep):
    fail("the example found orpc in %r, not under the install %s" % (found, prefix))
print("hello_tour: %d run blocks ran as written (port %s), outputs as shown" % (len(runs), port))
shutil.rmtree(scratch)
print("hello_tour: PASS")
