# Top-level driver: the README's two commands are `make bench` and `make test`.
# CMake does the real work in build/ (Release) and build-asan/ build-tsan/ for sanitizer runs.
BUILD    ?= build
JOBS     ?= 2
CMAKE    ?= cmake
CTEST    ?= ctest
BUILD_TYPE ?= Release

.PHONY: all build test bench sanitize asan tsan fuzz format clean stress

all: build

$(BUILD)/CMakeCache.txt:
	$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_EXTRA)

build: $(BUILD)/CMakeCache.txt
	$(CMAKE) --build $(BUILD) -j$(JOBS)

# Builds everything and runs every test program under ctest.
test:
	./scripts/deps.sh test
	$(MAKE) build
	$(CTEST) --test-dir $(BUILD) --output-on-failure -j$(JOBS)

# Builds the tool and runs the full benchmark; writes bench.png and bench.json here.
bench:
	./scripts/deps.sh bench
	$(MAKE) build
	$(BUILD)/tools/ferry/ferry bench --plot bench.png --json-out bench.json

# Sanitizer runs: LABELS selects ctest labels (a regex), e.g. LABELS='ring|wire'.
LABELS ?= .
# EXCLUDE: a ctest -E regex of tests to leave out of a sanitizer run (must be documented where used).
EXCLUDE ?= ^$$
asan:
	./scripts/deps.sh test
	$(MAKE) build BUILD=build-asan BUILD_TYPE=Debug CMAKE_EXTRA="-DFERRY_SANITIZE=address,undefined"
	$(CTEST) --test-dir build-asan --output-on-failure -j$(JOBS) -L '$(LABELS)' -LE install

tsan:
	./scripts/deps.sh test
	$(MAKE) build BUILD=build-tsan BUILD_TYPE=Debug CMAKE_EXTRA="-DFERRY_SANITIZE=thread"
	$(CTEST) --test-dir build-tsan --output-on-failure -j$(JOBS) -L '$(LABELS)' -LE install -E '$(EXCLUDE)'

# libFuzzer targets (clang); FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 30
fuzz:
	./scripts/deps.sh test
	$(MAKE) build BUILD=build-fuzz BUILD_TYPE=Debug CMAKE="CC=clang $(CMAKE)" \
	  CMAKE_EXTRA="-DFERRY_FUZZ=ON -DFERRY_TESTS=OFF"
	./scripts/run-fuzz.sh build-fuzz $(FUZZ_SECONDS)

# Long hardening runs (docs/hardening.md): hours at the default figures; each can be overridden
# from the environment (FERRY_SOAK_MESSAGES, FERRY_CHAOS_ROUNDS, ...).
stress:
	./scripts/deps.sh test
	$(MAKE) build
	./scripts/stress.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-tsan build-fuzz
