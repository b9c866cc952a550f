#!/usr/bin/env bash
# `make dev`: the whole pipeline on this machine, in the foreground, until Ctrl-C.
set -euo pipefail
: "${AWS_ENDPOINT_URL:?run through make dev, which starts a moto server}"
. scripts/stack.sh
trap stop_stack EXIT
start_stack
echo "==> the web console: source $run_dir/env && cargo run -q --bin jobhook -- console"
echo "    (or: jobhook console --stack $stack_name), then open http://127.0.0.1:8642/"
echo "==> Ctrl-C stops everything"
while true; do sleep 3600; done
