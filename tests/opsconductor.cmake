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
#   opsconductor_legacy_shared_db  the FastAPI jobs app on the orpc jobs
#                                service's database (below)
#
# The orpc services' legacy side (examples/opsconductor/services/
# legacy_serve_check.py: a PKI, the fixture and the five services with
# --legacy-listen, stopped with SIGTERM, each exiting 0):
#   svc_legacy_routes   every legacy route of the five services equal to the
#                       fixture's answer (bytes where nothing is volatile),
#                       auth none/bad/valid, login, 403 by the policy, 503
#                       once auth is gone
#   svc_legacy_caller   caller.py (httpx) against the orpc jobs and auth
#                       services' legacy ports

# opsconductor_legacy_<name> runs tests/opsconductor/legacy_<name>_<kind>.py.
foreach(t fastapi_check parity_check caller_test)
  string(REGEX REPLACE "_(check|test)$" "" _name ${t})
  add_test(NAME opsconductor_legacy_${_name}
           COMMAND /usr/bin/python3
                   ${CMAKE_CURRENT_SOURCE_DIR}/opsconductor/legacy_${t}.py)
  set_tests_properties(opsconductor_legacy_${_name} PROPERTIES TIMEOUT 240)
endforeach()

# opsconductor_legacy_shared_db: the FastAPI jobs app on the orpc jobs
# service's SQLite file (JOBS_DB): the runner of one generation moves the
# runs of the other, and both answer alike at every step.
add_test(NAME opsconductor_legacy_shared_db
         COMMAND /usr/bin/python3
                 ${CMAKE_CURRENT_SOURCE_DIR}/opsconductor/legacy_shared_db_test.py
                 $<TARGET_FILE:opsconductor-service> $<TARGET_FILE:orpc_cli>
                 ${CMAKE_SOURCE_DIR}/scripts/orpc-certs.sh)
set_tests_properties(opsconductor_legacy_shared_db PROPERTIES TIMEOUT 240)

# examples/opsconductor/platform: opsconductor-scheduler and
# opsconductor-executor, run for about two seconds each against the legacy
# fixture (every route legacy) and the orpc services (every route grpc,
# mutual TLS), asserted from their JSON stats files
# (tests/opsconductor/platform_test.py):
#   platform_scheduler_legacy, platform_executor_legacy   legacy side only
#   platform_scheduler_grpc, platform_executor_grpc       gRPC side only
#   platform_reset      SIGUSR1 zeroes the counters mid-run
#   platform_switch     both programs, both sides up; the routes file goes
#                       legacy -> grpc and SIGHUP moves them, no failure
#   platform_resume     the jobs service restarted under the scheduler
#                       (--follow=watch): cut watches resumed, nothing
#                       failed or lost
#   platform_shutdown   SIGTERM with jobs being watched: they finish within
#                       the drain, exit 0
# Labelled `threaded`: the tsan preset runs them (the programs and the
# services are built with it there; a report fails an exit code).
foreach(c scheduler_legacy executor_legacy scheduler_grpc executor_grpc
          reset switch shutdown resume)
  add_test(NAME platform_${c}
           COMMAND /usr/bin/python3
                   ${CMAKE_CURRENT_SOURCE_DIR}/opsconductor/platform_test.py ${c}
                   --bin=$<TARGET_FILE_DIR:opsconductor-scheduler>
                   --svc=$<TARGET_FILE:opsconductor-service>)
  set_tests_properties(platform_${c} PROPERTIES TIMEOUT 180 LABELS threaded)
endforeach()

if(TARGET opsconductor-service)
  foreach(mode routes caller)
    add_test(NAME svc_legacy_${mode}
             COMMAND /usr/bin/python3
                     ${PROJECT_SOURCE_DIR}/examples/opsconductor/services/legacy_serve_check.py
                     --mode=${mode}
                     --svc=$<TARGET_FILE:opsconductor-service>
                     --certs-sh=${PROJECT_SOURCE_DIR}/scripts/orpc-certs.sh
                     --fixture=${CMAKE_CURRENT_SOURCE_DIR}/legacy/legacy_server.py
                     --caller=${PROJECT_SOURCE_DIR}/examples/opsconductor/legacy/caller.py)
    set_tests_properties(svc_legacy_${mode} PROPERTIES TIMEOUT 240
                         LABELS threaded)
  endforeach()
endif()

# opsconductor_demo: `make demo`'s scenario (examples/opsconductor/demo/
# demo.py --quick), held from its structured results: every step's checks,
# every client operation answered on both sides, no failed call across the
# switches, kills and restarts, no job lost, every process exiting 0.
add_test(NAME opsconductor_demo
         COMMAND /usr/bin/python3
                 ${CMAKE_CURRENT_SOURCE_DIR}/opsconductor/demo_e2e_test.py
                 ${CMAKE_BINARY_DIR})
set_tests_properties(opsconductor_demo PROPERTIES TIMEOUT 600 RUN_SERIAL TRUE)
