# tests/opsconductor.cmake — examples/opsconductor/: the platform the demo
# migrates.  Included from tests/CMakeLists.txt.
#
# The legacy side (examples/opsconductor/legacy/, Debian's FastAPI, uvicorn
# and httpx under /usr/bin/python3): each test starts what it needs on
# 127.0.0.1 ephemeral ports and stops it with SIGTERM (tests/opsconductor/
# legacy_apps.py).
#   opsconductor_legacy_fastapi  the five FastAPI apps pass the legacy
#                                fixture's own checks (client_check.py
#                                --urls; only /_fixture/... checks skipped)
#   opsconductor_legacy_parity   the fixture and the apps answer ~500 requests
#                                alike
#   opsconductor_legacy_caller   caller.py: tokens, errors by status,
#                                retries, the --loop summary

# opsconductor_legacy_<name> runs tests/opsconductor/legacy_<name>_<kind>.py.
foreach(t fastapi_check parity_check caller_test)
  string(REGEX REPLACE "_(check|test)$" "" _name ${t})
  add_test(NAME opsconductor_legacy_${_name}
           COMMAND /usr/bin/python3
                   ${CMAKE_CURRENT_SOURCE_DIR}/opsconductor/legacy_${t}.py)
  set_tests_properties(opsconductor_legacy_${_name} PROPERTIES TIMEOUT 240)
endforeach()
