# tests/authz.cmake — included from tests/CMakeLists.txt: the unit test of
# the gRFC A43 authorization policy engine (rpc/src/authz.c), and the unit
# tests of orpc__md_from_header (rpc/src/grpc.c), which makes the request
# metadata that the engine matches headers against.
#
# authz.c's functions are internal (orpc__ prefix, hidden in liborpc), so
# the test compiles rpc/src/authz.c itself and links orpc_common (its
# allocator helpers, common/mem.c) and jansson, the JSON parser the engine
# uses.  It also compiles grpc.c (with
# wire.c, its base64, which needs zlib; grpc.h includes nghttp2.h) to check
# that a policy is refused on exactly the header keys orpc__md_from_header
# never presents.  orpc_metadata (the request headers) comes from liborpc,
# which orpc_test() links.
if(NOT TARGET PkgConfig::JANSSON)
  pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
endif()
find_package(ZLIB REQUIRED)

set(ORPC_MD_FROM_HEADER_SRCS ${PROJECT_SOURCE_DIR}/rpc/src/grpc.c
                             ${PROJECT_SOURCE_DIR}/rpc/src/wire.c)

orpc_test(authz SOURCES ${PROJECT_SOURCE_DIR}/rpc/src/authz.c
                        ${ORPC_MD_FROM_HEADER_SRCS}
          LIBS orpc_common PkgConfig::JANSSON PkgConfig::NGHTTP2 ZLIB::ZLIB)

# metadata_test (registered in tests/CMakeLists.txt) covers
# orpc__md_from_header too: the same sources compiled into it.
target_sources(metadata_test PRIVATE ${ORPC_MD_FROM_HEADER_SRCS})
target_link_libraries(metadata_test PRIVATE orpc_common PkgConfig::NGHTTP2
                                            ZLIB::ZLIB)
