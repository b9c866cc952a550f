#!/usr/bin/env bash
# `make bench`: builds jobhook's functions as they ship (release profile, for
# this machine's architecture), then runs them beside the Python/Powertools
# reference functions of bench/python under one Runtime API emulator against
# the moto server that scripts/with-moto.sh started. Prints the figures and
# writes target/bench/report.json.
set -euo pipefail
: "${AWS_ENDPOINT_URL:?run through make bench, which starts a moto server}"
venv=${VENV:-.venv}
target=${CARGO_TARGET_DIR:-target}
echo "==> release builds of receiver, processor and the do-nothing function"
cargo build --quiet --release -p receiver -p processor -p noop-function
cargo build --quiet -p jobhook-dev
echo "==> bench"
"$target/debug/jobhook-dev" bench --bin-dir "$target/release" --python "$(cd "$venv/bin" && pwd)/python" "$@"
