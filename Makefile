# jobhook: every target sets up what it needs on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= python3
export VENV

.PHONY: browser console-bench layers mutants help venv sam-venv bench-venv build check test lint fmt demo dev figures fuzz bench keeper-bench sam-build deploy deploy-check

help:
	@echo "make demo   the whole pipeline locally against a chaos provider, checked against its truth"
	@echo "            (FAULTS=aws: behind a proxy that fails as DynamoDB and SQS do on AWS)"
	@echo "            (PROVIDER=opusclip|replicate|openai|mux|assemblyai|runpod|fal|cloudflare-stream|luma|deepgram|elevenlabs: in that provider's formats)"
	@echo "make dev    the local stack in the foreground (Ctrl-C stops it)"
	@echo "make test   run all tests against a local moto server (and the console's in headless chromium)"
	@echo "make browser install Debian's chromium and chromium-driver, for the console's browser test"
	@echo "make lint   make layers, cargo fmt --check, clippy -D warnings, sam validate --lint"
	@echo "make layers no module import cycle, and no AWS/runtime/HTTP crate under jobhook-core"
	@echo "make build  release arm64 bootstraps for Lambda, zipped (target/lambda/*/bootstrap.zip)"
	@echo "make deploy-check  deploy template.yaml into a fresh local emulator (IAM enforced) and run every function through it"
	@echo "make sam-build  sam build as make deploy runs it: each function's own arm64 binary"
	@echo "make deploy sam build && sam deploy (the first time: make deploy GUIDED=1, which asks and saves the answers;"
	@echo "            DRY_RUN=1: create the change set and stop)"
	@echo "make fuzz   property-fuzz every parser of outside input, FUZZ_SECS (default 20) per target"
	@echo "make mutants cargo-mutants on jobhook-core: caught/missed counts (slow; not in make test)"
	@echo "make figures print measured figures: write requests per event (any order, and in order), reconciler calls per missed webhook"
	@echo "make bench  jobhook's functions beside Python/Powertools ones under one Runtime API emulator: medians and ratios"
	@echo "make console-bench the release jobhook console against 10,000 jobs in moto (CONSOLE_JOBS): each page's median"
	@echo "make keeper-bench the release keeper keeps one output (KEEP_BYTES, default 1 GiB) into moto: wall time, peak RSS"

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

$(VENV)/.sam-installed: $(VENV)/.installed requirements-sam.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	touch $@

sam-venv: $(VENV)/.sam-installed

$(VENV)/.bench-installed: $(VENV)/.installed requirements-bench.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	touch $@

bench-venv: $(VENV)/.bench-installed

# The SAM CLI's telemetry call hangs where the network is closed; it is off here.
# Deploys take the region from the user's profile or environment; the offline
# validation needs one of some kind.
SAM := SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam
SAM_OFFLINE := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(VENV)/bin/sam

build: venv
	scripts/build.sh

check:
	cargo build --workspace --all-targets

# The console's browser test drives Debian's chromium through chromedriver.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  echo "installing Debian's chromium and chromium-driver for the console's browser test"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q chromium chromium-driver >/dev/null \
	  || { $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -q >/dev/null && \
	       $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q chromium chromium-driver >/dev/null; }; \
	fi

test: venv browser
	@mkdir -p target
	set -o pipefail; scripts/with-moto.sh cargo test --workspace 2>&1 | tee target/test.log
	set -o pipefail; scripts/e2e.sh 2>&1 | tee target/e2e.log
	set -o pipefail; scripts/dev-test.sh 2>&1 | tee target/dev-test.log
	set -o pipefail; JOBHOOK_MOTO_LOG=target/deploy-check-moto.log scripts/with-moto.sh scripts/deploy-check.sh 2>&1 \
	  | tee target/deploy-check.log
	set -o pipefail; scripts/deploy-mutations.sh 2>&1 | tee target/deploy-mutations.log
	@awk '/^test result:/ { passed += $$4; failed += $$6 } /^(e2e|dev-test|deploy-mutations): [0-9]+ passed/ { passed += $$2; failed += $$4 } \
	  /^deploy-check: PASS/ { passed += 1 } \
	  END { printf "%d passed, %d failed\n", passed, failed }' target/test.log target/e2e.log target/dev-test.log \
	  target/deploy-check.log target/deploy-mutations.log

lint: sam-venv layers
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(SAM_OFFLINE) validate --lint --template template.yaml

# cargo-mutants on the core crate (the domain, the provider profiles, the
# ports): each mutant is built and the core's tests run against it; the
# caught/missed counts are printed. Slow, so not part of make test.
mutants:
	@command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants@27.1.0
	PROPTEST_CASES=64 cargo mutants -p jobhook-core --no-shuffle --output target/mutants; rc=$$?; \
	  for k in caught missed unviable timeout; do \
	    printf '%s: %s\n' $$k "$$(wc -l < target/mutants/mutants.out/$$k.txt 2>/dev/null || echo 0)"; done; \
	  out=target/mutants/mutants.out; \
	  c=$$(wc -l < $$out/caught.txt 2>/dev/null || echo 0); m=$$(wc -l < $$out/missed.txt 2>/dev/null || echo 0); \
	  t=$$(wc -l < $$out/timeout.txt 2>/dev/null || echo 0); \
	  [ $$((c + m + t)) -gt 0 ] && echo "caught $$((100 * c / (c + m + t)))% of the viable mutants"; \
	  printf 'of which the provider profiles (core/src/domain/provider/): caught %s, missed %s\n' \
	    "$$(grep -c domain/provider/ $$out/caught.txt 2>/dev/null)" "$$(grep -c domain/provider/ $$out/missed.txt 2>/dev/null)"; \
	  echo "missed, by file:"; \
	  cut -d: -f1 $$out/missed.txt 2>/dev/null | sort | uniq -c | sort -rn; \
	  exit $$rc

# The layers hold: no module import cycle (scripts/import_graph.py), and the
# core crate builds on no AWS SDK, async runtime, HTTP stack or metrics crate.
layers:
	python3 scripts/import_graph.py
	@if cargo tree -p jobhook-core -e normal --prefix none | grep -E '^(aws-|tokio|reqwest|hyper|metrics)'; then \
	  echo "layers: jobhook-core depends on the crates above"; exit 1; fi
	@echo "layers: jobhook-core has no aws-*, tokio, reqwest, hyper or metrics dependency"

fmt:
	cargo fmt --all

# make demo FAULTS=aws: the same run with the functions behind a proxy that
# fails as DynamoDB and SQS fail on AWS (see README, Failure model).
# make demo PROVIDER=opusclip (replicate, openai, mux, assemblyai, runpod, fal, cloudflare-stream, luma, deepgram, elevenlabs): the same
# run in that provider's webhooks, signatures and polling API.
demo: venv
	$(if $(FAULTS),JOBHOOK_FAULTS=$(FAULTS)) $(if $(PROVIDER),PROVIDER=$(PROVIDER)) scripts/with-moto.sh scripts/demo.sh

# The release `jobhook console` against CONSOLE_JOBS (default 10,000) jobs in
# moto: each page's median and p90 over HTTP.
console-bench: venv
	cargo build --release --quiet --bin jobhook
	scripts/with-moto.sh cargo run --quiet -p jobhook-dev -- console-bench --jobs $${CONSOLE_JOBS:-10000} \
	  --jobhook $${CARGO_TARGET_DIR:-target}/release/jobhook

# The release keeper under the bench's Runtime API emulator, one output of
# KEEP_BYTES (default 1 GiB) streamed from a local server into moto.
keeper-bench: venv
	cargo build --release --quiet --bin keeper
	scripts/with-moto.sh cargo run --quiet -p jobhook-dev -- keeper-bench --bytes $${KEEP_BYTES:-1073741824} \
	  --bin-dir $${CARGO_TARGET_DIR:-target}/release

# template.yaml deployed into a fresh emulator, IAM enforced, a short run
# through every function; names the resource, action or variable that broke.
deploy-check: venv
	@mkdir -p target
	set -o pipefail; JOBHOOK_MOTO_LOG=target/deploy-check-moto.log scripts/with-moto.sh scripts/deploy-check.sh 2>&1 | tee target/deploy-check.log

dev: venv
	$(if $(FAULTS),JOBHOOK_FAULTS=$(FAULTS)) scripts/with-moto.sh scripts/dev.sh

bench: bench-venv
	scripts/bench.sh

# The store's and the reconciler's budgets from the tests, then the bench's
# workload matrix and both receiver rows (kept-open and new connections).
FIGURES_BENCH = processor_matrix,rust_noop,python_noop,rust_receiver,python_receiver,rust_receiver_reconnect,python_receiver_reconnect
figures: venv bench-venv
	scripts/with-moto.sh cargo test -p jobhook-tests --test integration -- --nocapture \
	  write_budget in_order_events reversed_within_a_batch only_for_jobs_that_lost concurrency_bound unknown_jobs_back_off 2>&1 \
	  | grep -E '^(write budget|in-order write budget|reversed write budget|reconciler efficiency|reconciler fairness|poll concurrency)|test result'
	scripts/bench.sh --only $(FIGURES_BENCH) --invocations 100 --spawns 2

# Each target runs for FUZZ_SECS with fresh seeds and prints its case count.
FUZZ_SECS ?= 20
fuzz:
	set -o pipefail; JOBHOOK_FUZZ_SECS=$(FUZZ_SECS) cargo test -p jobhook-core --lib domain::fuzz -- --nocapture 2>&1 \
	  | grep -E '^fuzz |panicked|test result'

# sam build: each function's own binary (Metadata.BuildProperties.Binary),
# arm64 release, through cargo lambda in the workspace's target dir.
sam-build: sam-venv
	scripts/sam-build.sh

# First time: make deploy GUIDED=1 (asks for the stack's settings and saves
# them). DRY_RUN=1 creates the change set and stops (--no-execute-changeset).
deploy: sam-build
	$(SAM) deploy $(if $(GUIDED),--guided) $(if $(DRY_RUN),--no-execute-changeset)
