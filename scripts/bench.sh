#!/usr/bin/env bash
# `make bench`: builds jobhook's functions as they ship (release profile, for
# this machine's architecture), then runs them beside the Python/Powertools
# reference functions of bench/python under one Runtime API emulator against
# a moto server (scripts/with-moto.sh). Prints the figures and
# writes target/bench/report.json.
#
# With two CPUs or more, each function runs alone on CPU 1 and moto and the
# bench on CPU 0: in Lambda a function has its vCPU to itself and the AWS
# services run elsewhere, while here moto's work between two requests would
# otherwise evict the function's caches and count against whichever
# runtime it interrupts.
set -euo pipefail
venv=${VENV:-.venv}
target=${CARGO_TARGET_DIR:-target}
echo "==> release builds of receiver, processor and the do-nothing function"
cargo build --quiet --release -p receiver -p processor -p noop-function
cargo build --quiet -p jobhook-dev
pin=() function_cpu=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  pin=(taskset -c 0) function_cpu=(--function-cpu 1)
fi
echo "==> bench"
"${pin[@]}" scripts/with-moto.sh "$target/debug/jobhook-dev" bench --bin-dir "$target/release" \
  --python "$(cd "$venv/bin" && pwd)/python" --lambda-dir "$target/lambda" "${function_cpu[@]}" "$@"
