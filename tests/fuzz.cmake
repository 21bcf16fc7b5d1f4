# tests/fuzz.cmake — included (last) from tests/CMakeLists.txt: the libFuzzer
# targets in fuzz/ for the parsers of untrusted input outside wire.c (whose
# two targets tests/wire.cmake registers), each built as a standalone
# regression runner that ctest runs (test fuzz_<name>), and, with
# ORPC_BUILD_FUZZERS and clang, as the real fuzzer bin/fuzz_<name>_libfuzzer.
# orpc_fuzz_tests() below adds, for those and for wire.cmake's two, the
# replay of fuzz/regressions/ and a brief libFuzzer run (the fuzz preset,
# which make test runs).
#
#   fuzz_json           orpc_json_decode/encode (liborpc-compat) over the
#                       test messages of json.cmake, the project's protos
#                       and the well-known types
#   fuzz_path_template  google.api.http templates (common/path_template.c)
#   fuzz_authz          gRFC A43 policies and decisions (rpc/src/authz.c)
#   fuzz_http_reply     legacy HTTP replies to statuses (orpc__legacy_status
#                       in compat/src/legacy_http.c)
#   fuzz_routes         routing-table files (orpc_routes_load, liborpc-compat)
#   fuzz_legacy_serve   HTTP callers' requests to orpc's gateway (legacy
#                       routes and Connect, compat/src/serve_*.c)
#
# Exported functions are reached through the libraries; hidden orpc__ ones
# by compiling their .c into the runner, as wire.cmake and the unit tests
# do.  The libFuzzer builds compile the library code they fuzz into the
# executable instead of linking the shared library, so that it carries
# libFuzzer's coverage instrumentation (fuzzing blind otherwise).
if(NOT TARGET PkgConfig::JANSSON)
  pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson>=2.13)
endif()
if(NOT TARGET PkgConfig::LIBCURL)
  pkg_check_modules(LIBCURL REQUIRED IMPORTED_TARGET libcurl>=7.88)
endif()
find_package(Threads REQUIRED)

set(_fuzz_dir ${CMAKE_CURRENT_LIST_DIR}/fuzz)

set(_src ${PROJECT_SOURCE_DIR})

# All the runners and, with ORPC_BUILD_FUZZERS, the libFuzzer builds: what
# the fuzz preset builds (make test), without the rest of the project.
add_custom_target(fuzzers)

# orpc_fuzz_tests(<name>): the tests of a target beyond its plain run.
#
# Inputs on which a target once found a library bug (fuzz/regressions/
# <target>-<n>) are replayed by <target>_regressions, so that the fixes
# stay fixed.  With ORPC_BUILD_FUZZERS, <target>_libfuzzer (label
# libfuzzer) fuzzes for ORPC_FUZZ_SECONDS from the runner's built-in inputs
# and the regression inputs (fuzz/run_libfuzzer.sh), so that the real
# fuzzers cannot rot; make test runs these in the fuzz preset's tree.
set(ORPC_FUZZ_SECONDS 3 CACHE STRING
    "How long each <target>_libfuzzer ctest test fuzzes (seconds)")
function(orpc_fuzz_tests name)
  add_dependencies(fuzzers ${name})
  file(GLOB _regressions ${_fuzz_dir}/regressions/${name}-*)
  if(_regressions)
    list(SORT _regressions)
    add_test(NAME ${name}_regressions COMMAND ${name} ${_regressions})
    set_tests_properties(${name}_regressions PROPERTIES TIMEOUT 60)
  endif()
  if(TARGET ${name}_libfuzzer)
    add_dependencies(fuzzers ${name}_libfuzzer)
    add_test(NAME ${name}_libfuzzer
             COMMAND sh ${_fuzz_dir}/run_libfuzzer.sh
                     $<TARGET_FILE:${name}> $<TARGET_FILE:${name}_libfuzzer>
                     ${CMAKE_CURRENT_BINARY_DIR}/libfuzzer/${name}
                     ${ORPC_FUZZ_SECONDS} ${_regressions})
    set_tests_properties(${name}_libfuzzer PROPERTIES
                         TIMEOUT 120 LABELS libfuzzer)
  endif()
endfunction()

# orpc_fuzz_target(<name> [SOURCES ...] [LIBS ...] [INCLUDES ...]
#                  [FUZZ_SOURCES ...] [FUZZ_LIBS ...])
# fuzz/<name>.c + SOURCES linked with LIBS into the ctest runner <name>;
# with ORPC_BUILD_FUZZERS, the same + FUZZ_SOURCES linked with FUZZ_LIBS (or
# LIBS) into <name>_libfuzzer.
function(orpc_fuzz_target name)
  cmake_parse_arguments(F "" ""
                        "SOURCES;LIBS;INCLUDES;FUZZ_SOURCES;FUZZ_LIBS" ${ARGN})
  if(NOT F_FUZZ_LIBS)
    set(F_FUZZ_LIBS ${F_LIBS})
  endif()

  add_executable(${name} ${_fuzz_dir}/${name}.c ${F_SOURCES})
  target_compile_definitions(${name} PRIVATE ORPC_FUZZ_STANDALONE)
  target_compile_options(${name} PRIVATE ${ORPC_WARNINGS})
  target_include_directories(${name} PRIVATE ${F_INCLUDES})
  target_link_libraries(${name} PRIVATE ${F_LIBS})
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 60)

  if(ORPC_BUILD_FUZZERS)
    add_executable(${name}_libfuzzer ${_fuzz_dir}/${name}.c ${F_SOURCES}
                   ${F_FUZZ_SOURCES})
    target_compile_options(${name}_libfuzzer PRIVATE ${ORPC_WARNINGS}
        -g -fsanitize=fuzzer,address,undefined)
    target_link_options(${name}_libfuzzer PRIVATE
        -fsanitize=fuzzer,address,undefined)
    target_include_directories(${name}_libfuzzer PRIVATE ${F_INCLUDES})
    target_link_libraries(${name}_libfuzzer PRIVATE ${F_FUZZ_LIBS})
  endif()
  orpc_fuzz_tests(${name})
endfunction()

# wire.c's two targets, which wire.cmake builds and runs plainly: their
# regression inputs and libFuzzer runs too.
foreach(f fuzz_deframer fuzz_wire)
  orpc_fuzz_tests(${f})
endforeach()

# The JSON mapping: exported, so the runner links liborpc-compat.  The
# libFuzzer build compiles in the common/ helpers it reads input with
# (buffers, base64) as well; the rest of common/ comes from orpc_common.
orpc_fuzz_target(fuzz_json
    LIBS orpc_compat orpc_json_test_protos orpc_protos
    FUZZ_SOURCES ${ORPC_JSON_SRCS} ${_src}/common/buf.c
                 ${_src}/common/base64.c
    FUZZ_LIBS orpc_json_test_protos orpc_protos orpc_common PkgConfig::JANSSON
    INCLUDES ${_src}/compat/include ${_src}/compat/src ${_src}/tests)

orpc_fuzz_target(fuzz_path_template
    SOURCES ${_src}/common/path_template.c
    INCLUDES ${_src})

# authz.c's orpc__ functions are hidden: compiled in with its allocator
# helpers (common/mem.c); orpc_metadata comes from liborpc.
orpc_fuzz_target(fuzz_authz
    SOURCES ${_src}/rpc/src/authz.c ${_src}/common/mem.c
    LIBS orpc PkgConfig::JANSSON
    INCLUDES ${_src} ${_src}/rpc/include ${_src}/rpc/src)

# orpc__legacy_status is hidden: legacy_http.c compiled in, as
# legacy_http.cmake does.
orpc_fuzz_target(fuzz_http_reply
    SOURCES ${_src}/compat/src/legacy_http.c
    LIBS orpc PkgConfig::LIBCURL PkgConfig::JANSSON Threads::Threads
    INCLUDES ${_src}/compat/include ${_src}/compat/src)

# The gateway's readers of HTTP callers (legacy routes, Connect requests):
# hidden orpc__ functions, their .c compiled in with the JSON mapping, as
# tests/legacy_serve.cmake does.
orpc_fuzz_target(fuzz_legacy_serve
    SOURCES ${_src}/compat/src/serve_route.c ${_src}/compat/src/serve_codec.c
            ${_src}/compat/src/serve_auth.c ${ORPC_JSON_SRCS}
    LIBS orpc_protos orpc_common PkgConfig::JANSSON OpenSSL::Crypto
         Threads::Threads
    FUZZ_LIBS orpc_protos orpc_common PkgConfig::JANSSON OpenSSL::Crypto
              Threads::Threads
    INCLUDES ${_src} ${_src}/compat/include ${_src}/compat/src)

# The routing table: exported, but its parser (routes.c) shares state with
# the rest of liborpc-compat, so the libFuzzer build compiles all of
# compat/src.
get_target_property(_fuzz_compat_srcs orpc_compat SOURCES)
orpc_fuzz_target(fuzz_routes
    LIBS orpc_compat orpc_protos
    FUZZ_SOURCES ${_fuzz_compat_srcs}
    FUZZ_LIBS orpc_protos orpc_common PkgConfig::JANSSON PkgConfig::LIBCURL
              PkgConfig::LIBUV OpenSSL::Crypto Threads::Threads
    INCLUDES ${_src}/compat/include ${_src}/compat/src ${_src}/rpc/src)

# The gRPC server's whole input path, through a real server on loopback.
# The runner links liborpc; the libFuzzer build compiles the runtime
# (rpc/src and the well-known types) and the grpc.testing code in, so that
# all of it carries coverage instrumentation, and links the private
# helpers (common/) as liborpc does.  Generated code is not held to orpc's
# -Werror.
get_target_property(_fuzz_orpc_srcs orpc SOURCES)
get_target_property(_fuzz_testing_srcs orpc_testing_protos SOURCES)
set(_fuzz_gen_srcs ${_fuzz_orpc_srcs} ${_fuzz_testing_srcs})
list(FILTER _fuzz_gen_srcs INCLUDE REGEX "\\.(pb-c|orpc)\\.c$")
set_source_files_properties(${_fuzz_gen_srcs} PROPERTIES
                            COMPILE_OPTIONS "-Wno-error")
set(_fuzz_h2_libs orpc_common PkgConfig::PROTOBUF_C PkgConfig::LIBUV
    PkgConfig::NGHTTP2 PkgConfig::JANSSON OpenSSL::SSL OpenSSL::Crypto
    HttpParser::HttpParser ZLIB::ZLIB Threads::Threads)
orpc_fuzz_target(fuzz_h2_server
    LIBS orpc orpc_protos PkgConfig::NGHTTP2 Threads::Threads
    FUZZ_SOURCES ${_fuzz_orpc_srcs} ${_fuzz_testing_srcs}
    FUZZ_LIBS ${_fuzz_h2_libs}
    INCLUDES ${_src}/rpc/include ${_src}/rpc/src ${ORPC_GEN_DIR}
             ${ORPC_PROJECT_GEN_DIR})

# A channel's response path, against a raw listener; built as the above.
orpc_fuzz_target(fuzz_h2_client
    LIBS orpc orpc_protos PkgConfig::NGHTTP2 Threads::Threads
    FUZZ_SOURCES ${_fuzz_orpc_srcs} ${_fuzz_testing_srcs}
    FUZZ_LIBS ${_fuzz_h2_libs}
    INCLUDES ${_src}/rpc/include ${_src}/rpc/src ${ORPC_GEN_DIR}
             ${ORPC_PROJECT_GEN_DIR})
foreach(f fuzz_h2_server fuzz_h2_client)
  if(TARGET ${f}_libfuzzer)
    add_dependencies(${f}_libfuzzer orpc orpc_testing_protos)
  endif()
  # They run orpc's threads: the tsan preset runs them too.
  set_tests_properties(${f} PROPERTIES LABELS threaded)
endforeach()
