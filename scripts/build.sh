#!/usr/bin/env bash
# Release bootstraps for Lambda, zipped, in one workspace build:
# target/lambda/<function>/bootstrap.zip. arm64 (Graviton) when the Rust
# target can be installed; otherwise it says so and builds x86_64, which
# proves the same code builds for Lambda but is not what template.yaml deploys.
set -euo pipefail
venv=${VENV:-.venv}
export PATH="$PWD/$venv/bin:$PATH"
functions=(--bin receiver --bin processor --bin reconciler --bin notifier --bin keeper)

arch=--arm64
if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  if ! rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then
    echo "make build: the Rust target aarch64-unknown-linux-gnu is not installed and cannot be" >&2
    echo "  installed here (rustup target add failed). Building x86_64 instead; template.yaml" >&2
    echo "  deploys arm64, so build on a machine with the target before deploying." >&2
    arch=--x86-64
  fi
fi
cargo lambda build --release "$arch" "${functions[@]}" --output-format zip
target_dir=${CARGO_TARGET_DIR:-target}
echo "zipped bootstraps ($arch):"
for f in receiver processor reconciler notifier keeper; do
  printf '  %-11s %s bytes\n' "$f" "$(stat -c %s "$target_dir/lambda/$f/bootstrap.zip")"
done
