#!/bin/bash
# run.sh — installs orpc into a scratch prefix and builds and runs an
# out-of-tree consumer against it, once through find_package(orpc) and once
# through pkg-config.
#
#   run.sh <orpc source dir> <orpc build dir> <scratch dir>
#
# The scratch dir is emptied first and removed again on success; on failure
# it is kept for inspection.  The consumer is built with the C compiler the
# orpc build used, and with its sanitizers when ORPC_ENABLE_ASAN is on.
set -eu

fail() {
    echo "consumer test: FAIL: $*" >&2
    echo "consumer test: scratch dir kept: ${scratch:-?}" >&2
    exit 1
}

[ $# -eq 3 ] || { echo "usage: $0 <orpc source dir> <orpc build dir> <scratch dir>" >&2; exit 2; }
src=$1
build=$2
scratch=$3
here=$(cd "$(dirname "$0")" && pwd)
cache=$build/CMakeCache.txt

[ -d "$src" ] || fail "no orpc source dir $src"
[ -f "$cache" ] || fail "no $cache: is $build an orpc build dir?"

# A value from the orpc build's cache, or $2 when unset or empty.
cache_get() {
    local v
    v=$(sed -n "s/^$1:[A-Za-z_]*=//p" "$cache" | head -n 1)
    echo "${v:-$2}"
}

cc=$(cache_get CMAKE_C_COMPILER cc)
generator=$(cache_get CMAKE_GENERATOR "Unix Makefiles")
libdir=$(cache_get CMAKE_INSTALL_LIBDIR lib)
asan=$(cache_get ORPC_ENABLE_ASAN OFF)
build_type=$(cache_get CMAKE_BUILD_TYPE Debug)

san_cflags=
san_ldflags=
case $asan in
    ON|on|1|TRUE|true|YES|yes|Y|y)
        san_cflags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
        san_ldflags="-fsanitize=address,undefined"
        ;;
esac

echo "consumer test: compiler $cc, sanitizers ${san_ldflags:-none}"

rm -rf "$scratch"
mkdir -p "$scratch"
prefix=$scratch/prefix

# --- 1. install ------------------------------------------------------------
echo "== cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" > "$scratch/install.log" 2>&1 ||
    { cat "$scratch/install.log" >&2; fail "cmake --install failed"; }

for f in include/orpc/orpc.h \
         "$libdir/liborpc.so" \
         bin/protoc-gen-orpc \
         "$libdir/cmake/orpc/orpcConfig.cmake" \
         "$libdir/pkgconfig/orpc.pc" \
         share/orpc/proto/orpc/options.proto \
         include/orpc/opsconductor.h \
         include/orpc/gen/opsconductor/jobs/v1/jobs.orpc.h \
         "$libdir/liborpc-clients.so" \
         share/orpc/proto/opsconductor/jobs/v1/jobs.proto; do
    [ -e "$prefix/$f" ] || fail "install lacks $f (under $prefix)"
done
[ -x "$prefix/bin/protoc-gen-orpc" ] || fail "installed protoc-gen-orpc is not executable"

# Nothing below sets LD_LIBRARY_PATH: installed programs and libraries find
# each other through their $ORIGIN-relative RUNPATH.
unset LD_LIBRARY_PATH
for f in bin/orpc bin/protoc-gen-orpc "$libdir/liborpc-clients.so" "$libdir/liborpc-compat.so"; do
    readelf -d "$prefix/$f" | grep -q 'R.*PATH.*\$ORIGIN' ||
        fail "$f has no \$ORIGIN-relative RUNPATH: $(readelf -d "$prefix/$f" | grep -i path)"
done
echo "== run the installed orpc (no LD_LIBRARY_PATH)"
"$prefix/bin/orpc" --version || fail "installed orpc --version exited with status $?"
"$prefix/bin/orpc" list > "$scratch/list.txt" || fail "installed orpc list exited with status $?"
grep -q "opsconductor.jobs.v1.JobsService" "$scratch/list.txt" || fail "installed orpc list lacks the jobs service"

# --- 2. find_package(orpc) + orpc_generate() -------------------------------
echo "== configure and build the consumer project"
cmake -S "$here/project" -B "$scratch/build" -G "$generator" \
      -DCMAKE_C_COMPILER="$cc" \
      -DCMAKE_BUILD_TYPE="$build_type" \
      -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_C_FLAGS="$san_cflags" \
      -DCMAKE_EXE_LINKER_FLAGS="$san_ldflags" ||
    fail "configuring the consumer project (find_package(orpc)) failed"
cmake --build "$scratch/build" ||
    fail "building the consumer project failed"

echo "== run consumer"
"$scratch/build/consumer" || fail "consumer exited with status $?"
echo "== run clients_check"
"$scratch/build/clients_check" || fail "clients_check exited with status $?"

# --- 3. pkg-config ---------------------------------------------------------
echo "== pkg-config"
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pkg-config --exists --print-errors orpc || fail "pkg-config does not find orpc"
# The prefix orpc.pc states (literally, or relative to ${pcfiledir}) must be
# where it was installed, whatever CMAKE_INSTALL_PREFIX was at configure time.
pc_prefix=$(pkg-config --variable=prefix orpc)
if [ ! -d "$pc_prefix" ] ||
   [ "$(cd "$pc_prefix" && pwd -P)" != "$(cd "$prefix" && pwd -P)" ]; then
    fail "orpc.pc says prefix=$pc_prefix but it was installed with --prefix $prefix:" \
         "orpc.pc must take its prefix from where it is installed, not from" \
         "CMAKE_INSTALL_PREFIX at configure time"
fi
pc_flags=$(pkg-config --cflags --libs orpc) || fail "pkg-config --cflags --libs orpc failed"
echo "pkg-config --cflags --libs orpc: $pc_flags"
# shellcheck disable=SC2086 # the flags are words
pc_libdir=$(pkg-config --variable=libdir orpc)
"$cc" $san_cflags -o "$scratch/pkgconfig_check" "$here/project/pkgconfig_check.c" \
      $pc_flags -Wl,-rpath,"$pc_libdir" $san_ldflags ||
    fail "compiling and linking with \$(pkg-config --cflags --libs orpc) failed"
"$scratch/pkgconfig_check" || fail "pkgconfig_check exited with status $?"

# the compat and clients libraries through their own .pc files; a program
# built by hand carries the prefix's libdir as its RUNPATH
for pc in orpc-compat orpc-clients; do
    pkg-config --exists --print-errors "$pc" || fail "pkg-config does not find $pc"
done
cl_flags=$(pkg-config --cflags --libs orpc-clients) || fail "pkg-config orpc-clients failed"
echo "pkg-config --cflags --libs orpc-clients: $cl_flags"
# shellcheck disable=SC2086 # the flags are words
"$cc" $san_cflags -o "$scratch/clients_pc" "$here/project/clients_check.c" \
      $cl_flags -Wl,-rpath,"$pc_libdir" $san_ldflags ||
    fail "compiling and linking with \$(pkg-config --cflags --libs orpc-clients) failed"
"$scratch/clients_pc" || fail "clients_check (pkg-config orpc-clients) exited with status $?"

# --- 4. the plain protoc command line (docs/codegen.md), no CMake ---------
echo "== protoc with the installed plugin"
mkdir -p "$scratch/plain"
protoc --plugin=protoc-gen-orpc="$prefix/bin/protoc-gen-orpc" \
       -I "$here/project" -I "$(pkg-config --variable=protodir orpc)" -I /usr/include \
       -I /usr/share/gocode/src/github.com/gogo/googleapis \
       --c_out="$scratch/plain" --orpc_out="$scratch/plain" greeter.proto ||
    fail "protoc --orpc_out with the installed plugin failed"
for f in greeter.pb-c.c greeter.pb-c.h greeter.orpc.c greeter.orpc.h; do
    [ -s "$scratch/plain/$f" ] || fail "protoc wrote no $f"
done
# shellcheck disable=SC2086 # the flags are words
"$cc" $san_cflags -I "$scratch/plain" -o "$scratch/plain/consumer" \
      "$here/project/main.c" "$scratch/plain/greeter.pb-c.c" "$scratch/plain/greeter.orpc.c" \
      $pc_flags -Wl,-rpath,"$pc_libdir" $san_ldflags ||
    fail "compiling protoc's output with pkg-config's flags failed"
"$scratch/plain/consumer" || fail "consumer (plain protoc) exited with status $?"

rm -rf "$scratch"
echo "consumer test: PASS"
