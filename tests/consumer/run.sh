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

export LD_LIBRARY_PATH="$prefix/$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

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
"$cc" $san_cflags -o "$scratch/pkgconfig_check" "$here/project/pkgconfig_check.c" \
      $pc_flags $san_ldflags ||
    fail "compiling and linking with \$(pkg-config --cflags --libs orpc) failed"
"$scratch/pkgconfig_check" || fail "pkgconfig_check exited with status $?"

rm -rf "$scratch"
echo "consumer test: PASS"
