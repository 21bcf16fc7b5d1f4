# orpc's two commands.  This file only wraps CMake (the build) and scripts/.
#
#   make test    install missing packages, build, run every test, then build
#                and run them again under AddressSanitizer + UBSan
#
# Also: make bench (benchmarks vs gRPC C++), make build, make asan,
# make install PREFIX=/usr/local

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX ?= /usr/local

.PHONY: test deps build check asan bench install clean

test: deps
	cmake --preset dev
	cmake --build --preset dev -j $(JOBS)
	ctest --preset dev -j $(JOBS)
	cmake --preset asan
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j $(JOBS)

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

# Benchmarks against gRPC C++ and h2load (tests/bench/), release build;
# writes tests/bench/RESULTS.md.
bench:
	sh scripts/install-deps.sh --bench
	cmake --preset release
	cmake --build --preset release -j $(JOBS)
	BENCH_BUILD=build/release bash tests/bench/run.sh --write-results

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
