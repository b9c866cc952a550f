# jobhook: every target sets up what it needs on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= python3
export VENV

.PHONY: help venv build test lint fmt demo dev figures

help:
	@echo "make demo   the whole pipeline locally against a chaos provider, checked against its truth"
	@echo "make dev    the local stack in the foreground (Ctrl-C stops it)"
	@echo "make test   run all tests against a local moto server"
	@echo "make lint   cargo fmt --check and clippy -D warnings"
	@echo "make build  debug build of the workspace"
	@echo "make figures print measured figures: write requests per event, reconciler calls per missed webhook"

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

build:
	cargo build --workspace --all-targets

test: venv
	@mkdir -p target
	set -o pipefail; scripts/with-moto.sh cargo test --workspace 2>&1 | tee target/test.log
	set -o pipefail; scripts/e2e.sh 2>&1 | tee target/e2e.log
	@awk '/^test result:/ { passed += $$4; failed += $$6 } /^e2e: / { passed += $$2; failed += $$4 } \
	  END { printf "%d passed, %d failed\n", passed, failed }' target/test.log target/e2e.log

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

demo: venv
	scripts/with-moto.sh scripts/demo.sh

dev: venv
	scripts/with-moto.sh scripts/dev.sh

figures: venv
	scripts/with-moto.sh cargo test -p jobhook-tests --test integration -- --nocapture \
	  write_budget only_for_jobs_that_lost concurrency_bound 2>&1 | grep -E '^(write budget|reconciler efficiency|poll concurrency)|test result'
