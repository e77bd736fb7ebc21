# make test   install what is missing, build (Release), run every test
# make demo   install what is missing, build, train on Fashion-MNIST into runs/demo
# make bench  build and run the benchmarks

MAKEFLAGS += --no-print-directory
BUILD ?= build
JOBS  ?= $(shell nproc)
PACKAGES := cmake g++ make libxtensor-dev libxtensor-blas-dev xtl-dev libopenblas-dev doctest-dev libbenchmark-dev \
            nlohmann-json3-dev zlib1g-dev python3 libstb-dev libcli11-dev dataset-fashion-mnist

.PHONY: all deps configure build test demo bench clean

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

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release > /dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Trains the Fashion-MNIST CNN with the default options (3 epochs, a few
# minutes on two cores) into runs/demo, then evaluates the saved model.
demo: build
	@$(BUILD)/examples/tapegrad-train --out runs/demo
	@$(BUILD)/examples/tapegrad-eval --model runs/demo/model.safetensors

bench: build
	@OPENBLAS_NUM_THREADS=1 $(BUILD)/bench/bench_ops
	@OPENBLAS_NUM_THREADS=1 $(BUILD)/bench/bench_conv

clean:
	rm -rf $(BUILD)
