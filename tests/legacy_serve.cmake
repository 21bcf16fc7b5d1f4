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

# The glue (serve.c with ORPC_HAVE_GATEWAY) against a stand-in for the
# runtime's side of orpc/gateway.h, defined in the test itself.
orpc_test(legacy_serve_glue
          SOURCES ${PROJECT_SOURCE_DIR}/compat/src/serve.c
                  ${PROJECT_SOURCE_DIR}/compat/src/serve_route.c
                  ${PROJECT_SOURCE_DIR}/compat/src/serve_codec.c
                  ${PROJECT_SOURCE_DIR}/compat/src/serve_auth.c
                  ${ORPC_JSON_SRCS}
          LIBS orpc_protos orpc_common PkgConfig::JANSSON OpenSSL::Crypto
               Threads::Threads)
target_compile_definitions(legacy_serve_glue_test PRIVATE ORPC_HAVE_GATEWAY=1)

# The gateway on a real server over loopback HTTP/1.1 (needs the runtime's
# side of orpc/gateway.h).
if(ORPC_HAVE_GATEWAY)
  orpc_test(legacy_serve_e2e LIBS orpc_compat orpc_protos TIMEOUT 120)
  set_tests_properties(legacy_serve_e2e PROPERTIES LABELS threaded)
endif()
