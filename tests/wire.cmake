# tests/wire.cmake — included from tests/CMakeLists.txt: the wire-format unit
# test (wire_test) and the standalone regression runners of the two libFuzzer
# targets in fuzz/ (tests fuzz_deframer and fuzz_wire).
#
# wire.c's functions are internal (orpc__ prefix, hidden in liborpc), so the
# test and the runners compile rpc/src/wire.c themselves.  Its allocator
# helpers, base64 and percent-encoding come from the private helper library
# (common/), linked as orpc_common, or compiled in for the libFuzzer builds.
# OpenSSL::Crypto is only for the test, which checks orpc's base64 encoder
# against EVP_EncodeBlock.
find_package(ZLIB REQUIRED)
find_package(OpenSSL REQUIRED)

set(ORPC_WIRE_SRCS ${PROJECT_SOURCE_DIR}/rpc/src/wire.c)

set(ORPC_WIRE_COMMON_SRCS ${PROJECT_SOURCE_DIR}/common/base64.c
                          ${PROJECT_SOURCE_DIR}/common/buf.c
                          ${PROJECT_SOURCE_DIR}/common/mem.c
                          ${PROJECT_SOURCE_DIR}/common/pct.c)

orpc_test(wire SOURCES ${ORPC_WIRE_SRCS} test_alloc.c
          LIBS orpc_common ZLIB::ZLIB OpenSSL::Crypto)

# Each runner replays its target over ~50 deterministic generated inputs
# (or over the files given as arguments, e.g. a libFuzzer corpus).
foreach(f fuzz_deframer fuzz_wire)
  add_executable(${f} ${CMAKE_CURRENT_LIST_DIR}/fuzz/${f}.c ${ORPC_WIRE_SRCS})
  target_compile_definitions(${f} PRIVATE ORPC_FUZZ_STANDALONE)
  target_compile_options(${f} PRIVATE ${ORPC_WARNINGS})
  target_include_directories(${f} PRIVATE
      ${PROJECT_SOURCE_DIR}/rpc/include ${PROJECT_SOURCE_DIR}/rpc/src)
  target_link_libraries(${f} PRIVATE orpc_common ZLIB::ZLIB)
  add_test(NAME ${f} COMMAND ${f})
  set_tests_properties(${f} PROPERTIES TIMEOUT 60)
endforeach()

# The real fuzzers (clang only): cmake -DCMAKE_C_COMPILER=clang
# -DORPC_BUILD_FUZZERS=ON, then run bin/<name>_libfuzzer (see fuzz/README.md).
option(ORPC_BUILD_FUZZERS "Build the libFuzzer targets (clang)" OFF)
if(ORPC_BUILD_FUZZERS)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "ORPC_BUILD_FUZZERS needs clang (-fsanitize=fuzzer)")
  endif()
  foreach(f fuzz_deframer fuzz_wire)
    add_executable(${f}_libfuzzer ${CMAKE_CURRENT_LIST_DIR}/fuzz/${f}.c
                   ${ORPC_WIRE_SRCS} ${ORPC_WIRE_COMMON_SRCS})
    target_compile_options(${f}_libfuzzer PRIVATE ${ORPC_WARNINGS}
        -g -fsanitize=fuzzer,address,undefined)
    target_link_options(${f}_libfuzzer PRIVATE
        -fsanitize=fuzzer,address,undefined)
    target_include_directories(${f}_libfuzzer PRIVATE ${PROJECT_SOURCE_DIR}
        ${PROJECT_SOURCE_DIR}/rpc/include ${PROJECT_SOURCE_DIR}/rpc/src)
    target_link_libraries(${f}_libfuzzer PRIVATE ZLIB::ZLIB)
  endforeach()
endif()
