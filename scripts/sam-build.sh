#!/usr/bin/env bash
# `make sam-build`: `sam build` as `make deploy` runs it, non-interactive.
# Each function's own binary (Metadata.BuildProperties.Binary), arm64
# release, in the workspace's target dir; then each artifact's size, and
# whether it is byte for byte the bootstrap `make build` made.
set -euo pipefail
venv=${VENV:-.venv}
export PATH="$PWD/$venv/bin:$PATH" SAM_CLI_TELEMETRY=0
sam build
target_dir=${CARGO_TARGET_DIR:-target}
echo "sam build artifacts:"
for pair in ReceiverFunction:receiver ProcessorFunction:processor ReconcilerFunction:reconciler NotifierFunction:notifier; do
  artifact=.aws-sam/build/${pair%%:*}/bootstrap
  made=$target_dir/lambda/${pair#*:}/bootstrap
  same="(no make build bootstrap to compare)"
  if [ -f "$made" ]; then
    if cmp -s "$artifact" "$made"; then same="(the same bytes as make build's)"; else same="(differs from make build's)"; fi
  fi
  printf '  %-19s %s bytes %s\n' "${pair%%:*}" "$(stat -c %s "$artifact")" "$same"
done
