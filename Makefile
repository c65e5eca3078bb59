# The two README commands: `make demo` and `make test`. Both install missing Debian packages first.
JOBS ?= $(shell nproc)
BUILD_DIR ?= build

.PHONY: deps configure cli build-tests build demo test test-asan fuzz bench clean format

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake --preset release >/dev/null

# The CLI and the libraries it links: all that `make demo` runs.
cli: configure
	@cmake --build --preset release -j $(JOBS) --target loantwin

# The CLI, the libraries, the test suites and the Python module (what `make test` runs).
build-tests: configure
	@cmake --build --preset release -j $(JOBS)

# Everything: the above and the benchmarks.
build: build-tests
	@cmake --build --preset release -j $(JOBS) --target benchmarks

demo: cli
	@rm -rf $(BUILD_DIR)/demo
	./$(BUILD_DIR)/bin/loantwin train configs/quickstart.yaml --out $(BUILD_DIR)/demo/quickstart
	./$(BUILD_DIR)/bin/loantwin evaluate $(BUILD_DIR)/demo/quickstart \
	  --scenarios steady_state,severe_recession,dfast_2025_severely_adverse --paths 200
	./$(BUILD_DIR)/bin/loantwin export $(BUILD_DIR)/demo/quickstart --out $(BUILD_DIR)/demo/quickstart/export
	@echo
	@echo "demo outputs in $(BUILD_DIR)/demo/quickstart:"
	@echo "  config.yaml, train.log, metrics.csv, events.out.tfevents.* (training; tensorboard --logdir $(BUILD_DIR)/demo)"
	@echo "  checkpoints/ (resume: loantwin train configs/quickstart.yaml --resume $(BUILD_DIR)/demo/quickstart)"
	@echo "  report/report.html, report.md, report.json (stress report: trained roles vs baselines on held-out paths)"
	@echo "  export/credit.pt, export/pricing.pt, export/manifest.json (TorchScript policies)"
	@echo "stress simulation: ./$(BUILD_DIR)/bin/loantwin simulate --institution cu_mid --scenario severe_recession"
	@echo "decision engine:   ./$(BUILD_DIR)/bin/loantwin serve --bundle $(BUILD_DIR)/demo/quickstart/export --port 8080 (docs/serving.md)"

test: build-tests
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# The serve, config and checkpoint suites built with AddressSanitizer and UBSan (build-asan/).
ASAN_TESTS ?= Serve|Audit|JsonDepth|JsonNumber|Sha256|Yaml|Config|Institution|Scenario|Checkpoint|Cli\.
test-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOANTWIN_SANITIZE=ON \
	  -DLOANTWIN_BUILD_BENCH=OFF >/dev/null
	@cmake --build build-asan -j $(JOBS) --target serve_test config_test training_test cli_test loantwin
	cd build-asan && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure -j $(JOBS) -R '$(ASAN_TESTS)'

# libFuzzer targets (clang): FUZZ_SECONDS per target over the seed corpus (scripts/fuzz.sh).
FUZZ_SECONDS ?= 300
fuzz: deps
	bash scripts/fuzz.sh $(FUZZ_SECONDS) build-fuzz

bench: build
	bash bench/run_all.sh $(BUILD_DIR)

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf $(BUILD_DIR)
