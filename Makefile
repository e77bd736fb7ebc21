# make test   install what is missing, build (Release), run every test
# make demo   install what is missing, build, train on Fashion-MNIST into runs/demo
# make bench  build and run the benchmarks
# make test-asan  build (clang++) and run every test under AddressSanitizer,
#                 UndefinedBehaviorSanitizer and LeakSanitizer
# make test-tsan  build (clang++) and run tests/test_memory.cpp under ThreadSanitizer
# make test-fallback  build and run every test with float GEMM on OpenBLAS and
#                     without -march=native (no oneDNN, no AVX-512 kernels)
# make fuzz       build the libFuzzer targets and run each for FUZZ_SECONDS

MAKEFLAGS += --no-print-directory
BUILD ?= build
JOBS  ?= $(shell nproc)
PACKAGES := cmake g++ make libxtensor-dev libxtensor-blas-dev xtl-dev libopenblas-dev libdnnl-dev doctest-dev libbenchmark-dev \
            nlohmann-json3-dev zlib1g-dev python3 libstb-dev libcli11-dev dataset-fashion-mnist libopenmpi-dev openmpi-bin
# What the sanitizer builds and the fuzzers need in addition.
CLANG_PACKAGES := clang libclang-rt-14-dev

# The sanitizer and fuzzing builds: clang++, optimised (the suite would be too
# slow at -O0) with line tables for the reports, no benchmarks.
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FALLBACK_BUILD ?= build-fallback
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
CLANG_CMAKE := -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
               -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -gline-tables-only -DNDEBUG" -DTAPEGRAD_BUILD_BENCH=OFF
# Every report is fatal; leaks are reported at exit.
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: all deps deps-clang configure build test demo bench test-asan test-tsan test-fallback fuzz clean

all: build

# Installs the Debian packages that are missing (as root, non-interactively);
# otherwise prints the apt-get line to run and stops.
deps:
	@missing=$$(for p in $(PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "missing packages; run:"; echo "  sudo apt-get install -y $$missing"; exit 1; \
	  fi; \
	fi

deps-clang:
	@$(MAKE) deps PACKAGES="$(PACKAGES) $(CLANG_PACKAGES)"

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release > /dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Trains the Fashion-MNIST CNN with the default options (3 epochs, about two
# minutes on two cores) into runs/demo on every core, then evaluates the saved
# model. Waiting OpenMP threads sleep instead of spinning (OMP_WAIT_POLICY is
# read only from the environment): on a busy machine a spinning thread keeps
# the core its partner needs (docs/PERF.md, "Threads").
DEMO_THREADS ?= $(JOBS)
demo: build
	@OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} $(BUILD)/apps/tapegrad-train --out runs/demo --threads $(DEMO_THREADS)
	@$(BUILD)/apps/tapegrad-eval --model runs/demo/model.safetensors

bench: build
	@OPENBLAS_NUM_THREADS=1 $(BUILD)/bench/bench_ops
	@OPENBLAS_NUM_THREADS=1 $(BUILD)/bench/bench_conv

# The whole suite built with clang++ under ASan + UBSan, run with LeakSanitizer on.
test-asan: deps-clang
	@cmake -S . -B $(ASAN_BUILD) $(CLANG_CMAKE) -DCMAKE_CXX_FLAGS="$(SANITIZE)" > /dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && $(SAN_ENV) ctest --output-on-failure -j $(JOBS)

# The memory test (two threads each training a model) under ThreadSanitizer.
# OpenBLAS is not instrumented: it runs single-threaded here.
test-tsan: deps-clang
	@cmake -S . -B $(TSAN_BUILD) $(CLANG_CMAKE) -DTAPEGRAD_BUILD_EXAMPLES=OFF -DTAPEGRAD_BUILD_APPS=OFF \
	  -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" > /dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS) --target test_memory
	@OPENBLAS_NUM_THREADS=1 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 $(TSAN_BUILD)/tests/test_memory

# The suite on the configuration a machine without oneDNN or AVX-512 gets:
# float GEMM on OpenBLAS, and the portable loops instead of the AVX-512
# register kernels. Rounding differs from the default build (no FMA
# contraction), which the tests must allow for.
test-fallback: deps
	@cmake -S . -B $(FALLBACK_BUILD) -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_GEMM=openblas -DTAPEGRAD_NATIVE=OFF \
	  -DTAPEGRAD_BUILD_BENCH=OFF > /dev/null
	@cmake --build $(FALLBACK_BUILD) -j $(JOBS)
	@cd $(FALLBACK_BUILD) && ctest --output-on-failure -j $(JOBS)

# The libFuzzer targets of tests/fuzz/, each run for FUZZ_SECONDS from the seed
# corpus that tests/fuzz/make_corpus.py writes. What a run finds (crash-*,
# timeout-*, oom-*) is left in $(FUZZ_BUILD)/artifacts and fails the target.
FUZZ_TARGETS := idx idx_gzip safetensors optim_state
fuzz: deps-clang
	@cmake -S tests/fuzz -B $(FUZZ_BUILD) $(CLANG_CMAKE) \
	  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" > /dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS)) make_optim_seeds
	@python3 tests/fuzz/make_corpus.py $(FUZZ_BUILD)/seeds
	@mkdir -p $(FUZZ_BUILD)/seeds/optim_state && $(FUZZ_BUILD)/make_optim_seeds $(FUZZ_BUILD)/seeds/optim_state
	@mkdir -p $(FUZZ_BUILD)/artifacts
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	  echo "fuzz_$$t: $(FUZZ_SECONDS) s"; \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(FUZZ_BUILD)/fuzz_$$t $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/seeds/$$t -max_total_time=$(FUZZ_SECONDS) \
	    -timeout=10 -rss_limit_mb=4096 -max_len=4096 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/artifacts/fuzz_$$t- 2> $(FUZZ_BUILD)/fuzz_$$t.log \
	  || { tail -n 60 $(FUZZ_BUILD)/fuzz_$$t.log; exit 1; }; \
	  grep -E '^#[0-9]+ *DONE|stat::number_of_executed_units|stat::peak_rss_mb' $(FUZZ_BUILD)/fuzz_$$t.log; \
	done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FALLBACK_BUILD) $(FUZZ_BUILD)
