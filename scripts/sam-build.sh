#!/usr/bin/env bash
# `make sam-build`: `sam build` as `make deploy` runs it, non-interactive.
# Each function's own binary (Metadata.BuildProperties.Binary), arm64
# release, in the workspace's target dir; then each artifact's size, and
# whether it is byte for byte the bootstrap `make build` made.
set -euo pipefail
venv=${VENV:-.venv}
export PATH="$PWD/$venv/bin:$PATH" SAM_CLI_TELEMETRY=0
# The template deploys arm64: sam build needs the Rust target. Where it cannot
# be installed, CI (SAM_BUILD_OPTIONAL=1) says so and goes on; a user's
# make deploy stops.
if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu \
    && ! rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then
  echo "make sam-build: the template deploys arm64, and the Rust target aarch64-unknown-linux-gnu is not" >&2
  echo "  installed and cannot be installed here (rustup target add failed); sam build cannot run." >&2
  [ "${SAM_BUILD_OPTIONAL:-0}" = 1 ] && exit 0
  exit 1
fi
sam build
target_dir=${CARGO_TARGET_DIR:-target}
echo "sam build artifacts:"
for pair in ReceiverFunction:receiver ProcessorFunction:processor ReconcilerFunction:reconciler NotifierFunction:notifier KeeperFunction:keeper; do
  artifact=.aws-sam/build/${pair%%:*}/bootstrap
  made=$target_dir/lambda/${pair#*:}/bootstrap
  same="(no make build bootstrap to compare)"
  if [ -f "$made" ]; then
    if cmp -s "$artifact" "$made"; then same="(the same bytes as make build's)"; else same="(differs from make build's)"; fi
  fi
  printf '  %-19s %s bytes %s\n' "${pair%%:*}" "$(stat -c %s "$artifact")" "$same"
done
