#!/usr/bin/env bash
# Runs a command against a fresh moto server on a free loopback port, with the
# environment the AWS SDK needs to reach it, and stops the server afterwards
# (on failure and Ctrl-C too).
set -euo pipefail

venv=${VENV:-.venv}
python="$venv/bin/python"
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p target
log=${JOBHOOK_MOTO_LOG:-target/moto.log}

# AWS's managed policies exist, as on AWS: the deployed roles attach them.
MOTO_IAM_LOAD_MANAGED_POLICIES=true "$python" scripts/moto_server.py 127.0.0.1 "$port" >"$log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM

url="http://127.0.0.1:$port"
if ! "$python" - "$url" <<'PY'; then
import sys, time, urllib.request
deadline = time.time() + 30
while time.time() < deadline:
    try:
        urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(1)
PY
  echo "moto server did not start on $url; its log:" >&2
  cat "$log" >&2
  exit 1
fi

# Dummy credentials: without them the SDK falls through to the instance
# metadata endpoint and every call stalls.
export AWS_ENDPOINT_URL="$url"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_SESSION_TOKEN=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE
echo "moto server on $url" >&2
"$@"
