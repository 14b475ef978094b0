# Atrium's entry points. The README's quick start uses exactly two: `make run` and `make test`.
#   make run     install packages, build (release), start `atrium serve` on embedded defaults
#   make test    install, build, check formatting, build and smoke-run the fuzzers, run every suite
#   make build   release build; the binary is build/bin/atrium
#   make bench   benchmarks against peers (bench/), prints ratios (scripts/setup-bench installs
#                their extra packages: python3-torch, onnxruntime-node)
#   make stress  long stress and soak runs (not part of make test)
#   make fuzz    build the libFuzzer targets and run each for FUZZ_SECONDS (default 60)
#   make format  clang-format every C++ file in place
SHELL := /bin/bash
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 15
RUN_ARGS ?=

.PHONY: setup build run test test-only format format-check fuzz fuzz-build bench stress asan tsan clean

setup:
	@scripts/setup

build: setup
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)
	@echo "built build/bin/atrium"

run: build
	@build/bin/atrium serve $(RUN_ARGS)

fuzz-build: setup
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz -j $(JOBS)

test: setup format-check fuzz-build
	@cmake --preset release -DATRIUM_FUZZ_BIN_DIR=$(CURDIR)/build/fuzz/bin \
	  -DATRIUM_FUZZ_SMOKE_SECONDS=$(FUZZ_SMOKE_SECONDS) >/dev/null
	@cmake --build --preset release -j $(JOBS)
	@$(MAKE) --no-print-directory test-only

# Runs the suites of an existing build (ctest's summary is the last thing printed).
test-only:
	@ATRIUM_REQUIRE_PG=1 ATRIUM_REQUIRE_REDIS=1 ATRIUM_REQUIRE_NATS=1 ctest --test-dir build --output-on-failure -j $(JOBS)

format:
	@git ls-files '*.cc' '*.h' '*.cu' '*.cuh' | xargs clang-format -i

format-check:
	@scripts/format-check

fuzz: fuzz-build
	@scripts/fuzz-run $(FUZZ_SECONDS)

bench: build
	@bench/http/run
	@bench/bus/run
	@scripts/setup-bench && bench/embed/peers/run all
	@bench/embed/run
	@bench/embed/http
	@bench/relay/run
	@bench/track/run
	@bench/chat/run

stress: build
	@BUS_CRASH_CYCLES=1000 build/bin/bus_crash_test

asan: setup
	@cmake --preset asan >/dev/null && cmake --build --preset asan -j $(JOBS)
	@ctest --test-dir build/asan --output-on-failure -j $(JOBS)

tsan: setup
	@cmake --preset tsan >/dev/null && cmake --build --preset tsan -j $(JOBS)
	@ctest --test-dir build/tsan --output-on-failure -j $(JOBS)

clean:
	@rm -rf build
