# tests/json.cmake — the proto3 JSON mapping (compat/src/json_*.c): the cmocka
# unit tests and the cross-check against Debian's python3-protobuf
# json_format.  Included from tests/CMakeLists.txt.

# Test messages with every field type and well-known type
# (tests/protos/json_types.proto), generated like a user's protos.
add_library(orpc_json_test_protos STATIC)
orpc_generate(orpc_json_test_protos
              PROTO_ROOT ${CMAKE_CURRENT_SOURCE_DIR}/protos
              OUT_DIR ${CMAKE_BINARY_DIR}/gen/tests
              PROTOS json_types.proto)
target_link_libraries(orpc_json_test_protos PUBLIC orpc)
get_target_property(_json_proto_srcs orpc_json_test_protos SOURCES)
foreach(s IN LISTS _json_proto_srcs)
  if(s MATCHES "\\.orpc\\.c$")
    set_source_files_properties(${s} PROPERTIES COMPILE_OPTIONS "${ORPC_WARNINGS}")
  endif()
endforeach()

# The json_*.c files (ORPC_JSON_SRCS, tests/CMakeLists.txt) are compiled
# into the test (instead of linking liborpc-compat) so that the test reaches
# the hidden orpc__json_* functions too.
orpc_test(json SOURCES ${ORPC_JSON_SRCS}
          LIBS orpc_json_test_protos orpc_protos orpc_common PkgConfig::JANSSON)
target_include_directories(json_test PRIVATE
    ${PROJECT_SOURCE_DIR}/compat/include)

# Cross-check with python3-protobuf: JSON written by json_format parses in
# orpc to the same message, and orpc's JSON parses in json_format.
add_executable(json_cross_driver json_cross_driver.c)
target_compile_options(json_cross_driver PRIVATE ${ORPC_WARNINGS})
target_link_libraries(json_cross_driver PRIVATE orpc_compat
                      orpc_json_test_protos orpc_protos)
add_test(NAME json_cross
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/json_cross_test.sh
                 $<TARGET_FILE:json_cross_driver>
                 ${CMAKE_CURRENT_BINARY_DIR}/json_cross
                 ${ORPC_SYSTEM_PROTO_DIRS})
set_tests_properties(json_cross PROPERTIES TIMEOUT 120
                     ENVIRONMENT "PROTOC=${ORPC_PROTOC}")
