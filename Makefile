# The two README commands: `make demo` and `make test`. Both install missing Debian packages first.
JOBS ?= $(shell nproc)
BUILD_DIR ?= build

.PHONY: deps configure build demo test bench clean format

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake --preset release >/dev/null

build: configure
	@cmake --build --preset release -j $(JOBS)

demo: build
	./$(BUILD_DIR)/bin/loantwin simulate --institution cu_small --scenario severe_recession \
	  --months 120 --paths 100 --seed 1 --out $(BUILD_DIR)/demo_cu_small.csv --check-invariants

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

bench: build
	bash bench/run_all.sh $(BUILD_DIR)

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf $(BUILD_DIR)
