#!/usr/bin/env bash
# Run by `make test`: `make dev` as users run it.
#  1. With their own sources file (JOBHOOK_SOURCES_FILE) and their own
#     provider mock on a port of their choosing, the local stack polls the
#     mock: a tracked job ends completed through the reconciler.
#  2. A setting the template refuses makes `make dev` say why and exit
#     non-zero at once. (A function that cannot start is named too: the
#     deploy check's mutations show it.)
# Ports are picked free, so it can run beside a `make dev`.
set -euo pipefail
venv=${VENV:-.venv}
python="$venv/bin/python"
target_dir=${CARGO_TARGET_DIR:-target}
run_dir=target/dev-test
mkdir -p "$run_dir"
read -r dev_port mock_port < <("$python" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
failed() { echo "dev-test: FAIL: $*"; echo "dev-test: 0 passed, 1 failed"; exit 1; }

# The user's provider mock: the generic polling API, bearer auth, one log line per request.
setsid "$python" - "$mock_port" "$run_dir/mock.log" <<'PY' &
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
port, log = int(sys.argv[1]), sys.argv[2]
class Mock(BaseHTTPRequestHandler):
    def do_GET(self):
        with open(log, "a") as f:
            f.write(self.path + "\n")
        if self.headers.get("authorization") != "Bearer mock-token" or not self.path.startswith("/v1/jobs/"):
            self.send_response(401 if self.path.startswith("/v1/jobs/") else 404); self.end_headers(); return
        job = self.path.rsplit("/", 1)[1]
        body = json.dumps({"id": job, "status": "completed", "progress": 100,
                           "output_url": f"https://mock.example.com/{job}.mp4", "error": None}).encode()
        self.send_response(200); self.send_header("content-type", "application/json"); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
HTTPServer(("127.0.0.1", port), Mock).serve_forever()
PY
pids+=($!)
: >"$run_dir/mock.log"

cat >"$run_dir/my-sources.json" <<JSON
{"sources": {"mine": {"scheme": "github", "secrets": ["my-signing-secret"],
  "api": {"base_url": "http://127.0.0.1:$mock_port/v1", "token": "mock-token"}}}}
JSON

# 1. The README's way: JOBHOOK_SOURCES_FILE=… make dev (here on free ports).
JOBHOOK_SOURCES_FILE="$run_dir/my-sources.json" JOBHOOK_DEV_PORT=$dev_port JOBHOOK_DEV_DIR=$run_dir/stack \
  JOBHOOK_STALE_AFTER_SECS=1 JOBHOOK_DEV_SCHEDULE_SECS=2 \
  setsid scripts/with-moto.sh scripts/dev.sh >"$run_dir/dev.log" 2>&1 &
dev_pid=$!
pids+=($dev_pid)
for _ in $(seq 600); do
  grep -q '==> ready' "$run_dir/dev.log" && break
  kill -0 "$dev_pid" 2>/dev/null || { cat "$run_dir/dev.log"; failed "make dev stopped before it was ready"; }
  sleep 0.5
done
grep -q '==> ready' "$run_dir/dev.log" || { tail -n 20 "$run_dir/dev.log"; failed "make dev was not ready in 300 s"; }

# The developer's app, behind `jobhook listen --forward-to`: it verifies each
# delivery with the Standard Webhooks reference library and answers 500 to
# the first delivery of each notification, 200 to the next.
listen_secret="whsec_$("$python" -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')"
read -r app_port < <("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
: >"$run_dir/app.log"
setsid "$python" - "$app_port" "$listen_secret" "$run_dir/app.log" <<'PY' &
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from standardwebhooks import Webhook
port, secret, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
seen = set()
class App(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"])).decode()
        try:
            notification = Webhook(secret).verify(body, dict(self.headers))
        except Exception as e:
            self.send_response(401); self.end_headers()
            with open(log, "a") as f: f.write(f"unverified {e}\n")
            return
        first = notification["transition_id"] not in seen
        seen.add(notification["transition_id"])
        self.send_response(500 if first else 200); self.end_headers()
        with open(log, "a") as f:
            f.write(f"{'500' if first else '200'} {notification['transition_id']} {notification['to']}\n")
    def log_message(self, *args): pass
HTTPServer(("127.0.0.1", port), App).serve_forever()
PY
pids+=($!)
(
  set -a; . "$run_dir/stack/env"; set +a
  exec "$target_dir/debug/jobhook" listen --forward-to "http://127.0.0.1:$app_port/hooks" \
    --secret "$listen_secret" --source mine --count 1
) >"$run_dir/listen.log" 2>&1 &
listen_pid=$!
for _ in $(seq 100); do grep -q 'listening on bus' "$run_dir/listen.log" && break; sleep 0.2; done
grep -q 'listening on bus' "$run_dir/listen.log" || { cat "$run_dir/listen.log"; failed "jobhook listen did not subscribe"; }

(
  set -a; . "$run_dir/stack/env"; set +a
  "$target_dir/debug/jobhook" track mine job-own >/dev/null
  for _ in $(seq 60); do
    if "$target_dir/debug/jobhook" status mine job-own --json | grep -Eq '"status": ?"completed"'; then exit 0; fi
    sleep 0.5
  done
  "$target_dir/debug/jobhook" status mine job-own
  exit 1
) || failed "the tracked job was not completed through the user's mock"
grep -qx '/v1/jobs/job-own' "$run_dir/mock.log" || failed "the mock was never polled for job-own"
# An application tracks jobs from Python (boto3) and, where Node is
# installed, TypeScript (AWS SDK v3), with the README's snippets, signed as an
# IAM user that holds only the stack's TrackJobsPolicy: each job then
# completes through the pipeline (the reconciler polls the mock).
(
  set -a; . "$run_dir/stack/env"; set +a
  read -r app_key app_secret < <("$python" - <<'PY'
import boto3
outputs = {o["OutputKey"]: o["OutputValue"]
           for s in boto3.client("cloudformation").describe_stacks()["Stacks"] for o in s.get("Outputs", [])}
iam = boto3.client("iam")
iam.create_user(UserName="jobhook-test-app")
iam.attach_user_policy(UserName="jobhook-test-app", PolicyArn=outputs["TrackJobsPolicyArn"])
key = iam.create_access_key(UserName="jobhook-test-app")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
PY
  )
  jobs=(job-py)
  AWS_ACCESS_KEY_ID=$app_key AWS_SECRET_ACCESS_KEY=$app_secret "$python" docs/snippets/track.py mine job-py
  if command -v node >/dev/null && command -v npm >/dev/null; then
    ts_dir=target/ts-snippet
    mkdir -p "$ts_dir"
    cp docs/snippets/package.json docs/snippets/track.ts "$ts_dir/"
    [ -d "$ts_dir/node_modules/tsx" ] || npm install --silent --no-audit --no-fund --prefix "$ts_dir" >"$run_dir/npm.log" 2>&1 \
      || { cat "$run_dir/npm.log"; exit 1; }
    (cd "$ts_dir" && AWS_ACCESS_KEY_ID=$app_key AWS_SECRET_ACCESS_KEY=$app_secret npx --no-install tsx track.ts mine job-ts)
    jobs+=(job-ts)
  fi
  for job in "${jobs[@]}"; do
    for _ in $(seq 60); do
      "$target_dir/debug/jobhook" status mine "$job" --json 2>/dev/null | grep -Eq '"status": ?"completed"' && continue 2
      sleep 0.5
    done
    "$target_dir/debug/jobhook" status mine "$job"
    exit 1
  done
  echo "dev-test: jobs tracked through the tracking queue by the snippets, as a user with only TrackJobsPolicy, completed: ${jobs[*]}" >"$run_dir/track.log"
) || failed "a job tracked through the tracking queue did not complete"
# The operator's credential chain: a credential_process profile (handing
# out the stack's admin key: moto enforces IAM), and no credentials in the
# environment.
(
  set -a; . "$run_dir/stack/env"; set +a
  cat >"$run_dir/aws-config" <<INI
[profile jobhook-test]
region = us-east-1
credential_process = printf '{"Version":1,"AccessKeyId":"$AWS_ACCESS_KEY_ID","SecretAccessKey":"$AWS_SECRET_ACCESS_KEY"}'
INI
  env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN \
    AWS_CONFIG_FILE="$run_dir/aws-config" AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PROFILE=jobhook-test \
    "$target_dir/debug/jobhook" status mine job-own >/dev/null
) || failed "the CLI could not use a credential_process profile"
# The transition reached the app through the bus, signed, after a retry.
for _ in $(seq 150); do kill -0 "$listen_pid" 2>/dev/null || break; sleep 0.2; done
kill -0 "$listen_pid" 2>/dev/null && { cat "$run_dir/listen.log"; failed "jobhook listen did not deliver the notification"; }
wait "$listen_pid" || { cat "$run_dir/listen.log"; failed "jobhook listen failed"; }
grep -qx '500 mine:job-own:1 completed' "$run_dir/app.log" || { cat "$run_dir/app.log"; failed "the app never got the notification"; }
grep -qx '200 mine:job-own:1 completed' "$run_dir/app.log" || { cat "$run_dir/app.log" "$run_dir/listen.log"; failed "a 500 was not retried"; }
grep -q unverified "$run_dir/app.log" && failed "a forward failed the reference library's verification"
grep -q 'removed jobhook-listen' "$run_dir/listen.log" || failed "listen did not remove its queue and rule"
kill -TERM -- "-$dev_pid" 2>/dev/null || true
wait "$dev_pid" 2>/dev/null || true
echo "dev-test: the local stack polled the user's own mock on port $mock_port; the CLI used a credential_process profile;"
echo "dev-test: jobhook listen forwarded the transition signed (verified by the standardwebhooks library) and retried a 500"
cat "$run_dir/track.log"

# 2. A setting the template refuses: make dev must say so and stop at once,
# as CloudFormation refuses the deploy.
started=$(date +%s)
set +e
JOBHOOK_SOURCES_FILE="$run_dir/my-sources.json" JOBHOOK_DEV_PORT=$dev_port JOBHOOK_DEV_DIR=$run_dir/stack \
  JOBHOOK_STALE_AFTER_SECS=soon timeout 300 scripts/with-moto.sh scripts/dev.sh >"$run_dir/dev-bad.log" 2>&1
status=$?
set -e
took=$(( $(date +%s) - started ))
[ "$status" -ne 0 ] && [ "$status" -ne 124 ] || failed "make dev with a bad setting exited $status"
grep -q "parameter StaleAfterSecs: 'soon' is not a number" "$run_dir/dev-bad.log" \
  || { tail -n 20 "$run_dir/dev-bad.log"; failed "make dev did not name the refused parameter"; }
echo "dev-test: a setting the template refuses stopped make dev in $took s, naming the parameter"
echo "dev-test: 2 passed, 0 failed"
