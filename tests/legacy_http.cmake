# tests/legacy_http.cmake — the compat layer's legacy HTTP transport and
# service tokens (compat/src/legacy_http.c, compat/src/tokens.c) against the
# legacy fixture server (tests/legacy/legacy_server.py, started by the test
# itself on an ephemeral port).  Included from tests/CMakeLists.txt.

# compat/CMakeLists.txt finds libcurl, but pkg-config's imported targets are
# visible only in the directory that made them.
if(NOT TARGET PkgConfig::LIBCURL)
  pkg_check_modules(LIBCURL REQUIRED IMPORTED_TARGET libcurl>=7.88)
endif()
if(NOT TARGET PkgConfig::JANSSON)
  pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson>=2.13)
endif()
find_package(Threads REQUIRED)

# The two sources are compiled into the test (instead of linking
# liborpc-compat) because their orpc__ functions are hidden in the library.
orpc_test(legacy_http
          SOURCES ${PROJECT_SOURCE_DIR}/compat/src/legacy_http.c
                  ${PROJECT_SOURCE_DIR}/compat/src/tokens.c
          LIBS PkgConfig::LIBCURL PkgConfig::JANSSON Threads::Threads
          TIMEOUT 180)
target_include_directories(legacy_http_test PRIVATE
    ${PROJECT_SOURCE_DIR}/compat/include)
target_compile_definitions(legacy_http_test PRIVATE
    LEGACY_SERVER="${PROJECT_SOURCE_DIR}/tests/legacy/legacy_server.py")
