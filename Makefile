# orpc's two commands.  This file only wraps CMake (the build) and scripts/.
#
#   make demo    install missing packages, build, and run the end-to-end
#                demo: OpsConductor's services moving from JSON/HTTP to
#                mTLS gRPC under load, on loopback (scripts/demo.sh,
#                examples/opsconductor/demo/README.md)
#   make test    install missing packages, build, run every test, build the
#                optimised release (-O2 brings warnings of its own, errors
#                here, and `make bench` uses it), then build
#                and run them again under AddressSanitizer + UBSan, the
#                threaded ones under ThreadSanitizer, then build the
#                libFuzzer targets with clang and fuzz each briefly
#
# Also: make tsan (the threaded tests under ThreadSanitizer), make fuzz,
# make bench (benchmarks vs gRPC C++), make build, make asan,
# make install PREFIX=/usr/local

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX ?= /usr/local

.PHONY: demo test deps build check asan tsan fuzz bench install clean

# The tests labelled `threaded` (every rpc_* test, router, clients, interop)
# under ThreadSanitizer; a report fails the test (the tsan test preset's
# TSAN_OPTIONS, suppressions for third-party code in tests/tsan.supp).
define run-tsan
cmake --preset tsan
cmake --build --preset tsan -j $(JOBS)
ctest --preset tsan -j $(JOBS)
endef

# The libFuzzer builds (clang, which deps installs) of every target in
# tests/fuzz/, each fuzzed for a few seconds from its seeds and regression
# inputs (tests labelled `libfuzzer`), so that they keep building.
define run-fuzz
cmake --preset fuzz
cmake --build --preset fuzz -j $(JOBS)
ctest --preset fuzz -j $(JOBS)
endef

demo: deps
	cmake --preset dev
	cmake --build --preset dev -j $(JOBS)
	sh scripts/demo.sh build

test: deps
	cmake --preset dev
	cmake --build --preset dev -j $(JOBS)
	ctest --preset dev -j $(JOBS)
	cmake --preset release
	cmake --build --preset release -j $(JOBS)
	cmake --preset asan
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j $(JOBS)
	$(run-tsan)
	$(run-fuzz)

deps:
	sh scripts/install-deps.sh

build: deps
	cmake --preset dev
	cmake --build --preset dev -j $(JOBS)

check: build
	ctest --preset dev -j $(JOBS)

asan: deps
	cmake --preset asan
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j $(JOBS)

tsan: deps
	$(run-tsan)

fuzz: deps
	$(run-fuzz)

# Benchmarks against gRPC C++ and h2load (tests/bench/), release build,
# the cost of the default interceptor chain, and legacy JSON on the same
# port next to gRPC and FastAPI; writes tests/bench/RESULTS.md.
bench:
	sh scripts/install-deps.sh --bench
	cmake --preset release
	cmake --build --preset release -j $(JOBS)
	BENCH_BUILD=build/release bash tests/bench/run.sh --write-results
	BENCH_BUILD=build/release bash tests/bench/interceptors.sh --write-results
	BENCH_BUILD=build/release bash tests/bench/legacy.sh --write-results

# Soak (tests/bench/soak.sh, docs/soak.md): one TLS server under mixed
# traffic for SOAK_SECONDS (default 600; SOAK_SECONDS=60 make soak for a
# short run); fails unless its memory and descriptors stay flat and every
# call ends as expected.  Not part of make test.
.PHONY: soak
soak:
	sh scripts/install-deps.sh
	cmake --preset release
	cmake --build --preset release -j $(JOBS)
	bash tests/bench/soak.sh build/release

install: build
	cmake --install build --prefix $(PREFIX)

clean:
	rm -rf build
