# tests/authz.cmake — included from tests/CMakeLists.txt: the unit test of
# the gRFC A43 authorization policy engine (rpc/src/authz.c).
#
# authz.c's functions are internal (orpc__ prefix, hidden in liborpc), so
# the test compiles rpc/src/authz.c and rpc/src/mem.c itself and links
# jansson, the JSON parser the engine uses.  orpc_metadata (the request
# headers) comes from liborpc, which orpc_test() links.
if(NOT TARGET PkgConfig::JANSSON)
  pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
endif()

orpc_test(authz SOURCES ${PROJECT_SOURCE_DIR}/rpc/src/authz.c
                        ${PROJECT_SOURCE_DIR}/rpc/src/mem.c
          LIBS PkgConfig::JANSSON)
