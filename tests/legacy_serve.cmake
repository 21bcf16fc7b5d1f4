# tests/legacy_serve.cmake — orpc's gateway core (compat/src/serve_*.c):
# legacy routes, responses, statuses, tokens and Connect, without HTTP.
# The sources are compiled in (with the JSON mapping, http_rule.c and
# legacy_http.c, whose client-side readers the tests check the answers
# against) to reach their hidden orpc__ functions.  Included from
# tests/CMakeLists.txt.
orpc_test(legacy_serve
          SOURCES ${PROJECT_SOURCE_DIR}/compat/src/serve_route.c
                  ${PROJECT_SOURCE_DIR}/compat/src/serve_codec.c
                  ${PROJECT_SOURCE_DIR}/compat/src/serve_auth.c
                  ${PROJECT_SOURCE_DIR}/compat/src/http_rule.c
                  ${PROJECT_SOURCE_DIR}/compat/src/legacy_http.c
                  ${PROJECT_SOURCE_DIR}/compat/src/tokens.c
                  ${ORPC_JSON_SRCS}
          LIBS orpc_protos orpc_json_test_protos orpc_common
               PkgConfig::JANSSON PkgConfig::LIBCURL OpenSSL::Crypto
               Threads::Threads)
target_include_directories(legacy_serve_test PRIVATE
    ${CMAKE_BINARY_DIR}/gen/tests)
# test_default_verifier runs an AuthService on loopback (threads).
set_tests_properties(legacy_serve PROPERTIES LABELS threaded)

# The glue (serve.c) against a stand-in for the
# runtime's side of orpc/gateway.h, defined in the test itself.
orpc_test(legacy_serve_glue
          SOURCES ${PROJECT_SOURCE_DIR}/compat/src/serve.c
                  ${PROJECT_SOURCE_DIR}/compat/src/serve_route.c
                  ${PROJECT_SOURCE_DIR}/compat/src/serve_codec.c
                  ${PROJECT_SOURCE_DIR}/compat/src/serve_auth.c
                  ${ORPC_JSON_SRCS}
          LIBS orpc_protos orpc_common PkgConfig::JANSSON OpenSSL::Crypto
               Threads::Threads)

# The gateway on a real server over loopback HTTP/1.1.
orpc_test(legacy_serve_e2e LIBS orpc_compat orpc_protos TIMEOUT 120)
set_tests_properties(legacy_serve_e2e PROPERTIES LABELS threaded)

# An orpc server whose handlers forward to the legacy fixture, with the
# gateway on its port (tests/legacy_proxy_server.c), driven by a Python
# caller using only the standard library (tests/legacy/serve_check.py):
# every legacy route answered as the fixture answers it, errors, auth,
# keep-alive and pipelining, hostile input, NDJSON, Connect, gRPC and
# legacy callers on one port, and orpc's CLI calling it in legacy mode.
add_executable(legacy_proxy_server legacy_proxy_server.c)
target_compile_options(legacy_proxy_server PRIVATE ${ORPC_WARNINGS})
target_link_libraries(legacy_proxy_server PRIVATE orpc_compat orpc_protos)
add_test(NAME legacy_serve_python
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/legacy/serve_check.py
                 --proxy=$<TARGET_FILE:legacy_proxy_server>
                 --orpc=$<TARGET_FILE:orpc_cli>
                 --interop=$<TARGET_FILE:orpc_interop_server>)
set_tests_properties(legacy_serve_python PROPERTIES TIMEOUT 180)
