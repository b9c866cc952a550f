#!/usr/bin/env bash
# `make deploy-check`: deploys template.yaml (or JOBHOOK_TEMPLATE) into the
# fresh moto that with-moto.sh started, IAM enforced, and sends a short run
# through every function:
#   1. the resources the emulator could not create are the known ones;
#   2. a thin OpenAI delivery whose job the provider does not know yet: the
#      processor reports it failed, SQS redelivers it, and after the queue's
#      maxReceiveCount the redrive policy moves it to the DLQ (partial batch
#      failures, visibility timeout and redrive, as the template declares them);
#   3. short chaos runs in two providers' formats (OpenAI's thin events read
#      from its API, Replicate's Standard Webhooks), with lost webhooks the
#      reconciler repairs and notifications consumed from the bus;
#   4. `jobhook console --stack` finds the stack's resources by its name;
#   5. no function was denied an action, failed to start or logged an error.
# Exits 0 only if all of it holds; otherwise names what broke (the resource,
# the action, the variable) and exits 1.
set -euo pipefail
: "${AWS_ENDPOINT_URL:?run through make deploy-check, which starts a moto server}"
venv=${VENV:-.venv}
python="$venv/bin/python"
read -r dev_port sim_port < <("$python" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
export JOBHOOK_DEV_PORT=$dev_port JOBHOOK_SIM_PORT=$sim_port
export JOBHOOK_DEV_DIR=${JOBHOOK_DEV_DIR:-target/deploy-check} JOBHOOK_STACK=${JOBHOOK_STACK:-jobhook-check}
export JOBHOOK_STALE_AFTER_SECS=3 JOBHOOK_POLL_INTERVAL_SECS=2 JOBHOOK_MAX_POLL_INTERVAL_SECS=6
export JOBHOOK_DEV_SCHEDULE_SECS=2 JOBHOOK_DEV_VISIBILITY_SECS=${JOBHOOK_DEV_VISIBILITY_SECS:-4} JOBHOOK_NO_RELOAD=1
with_simulator=1
. scripts/stack.sh
run_dir=$JOBHOOK_DEV_DIR
mkdir -p "$run_dir"
rm -f "$run_dir"/*.log

diagnose() {
  local logs=() fn
  for fn in "${functions[@]}"; do [ -f "$run_dir/$fn.log" ] && logs+=(--log "$fn=$run_dir/$fn.log"); done
  [ -f "$run_dir/bridge.log" ] && logs+=(--log "bridge=$run_dir/bridge.log")
  [ -f "$run_dir/stack/stack.json" ] && [ ${#logs[@]} -gt 0 ] || return 0
  "$dev" diagnose --stack "$run_dir/stack/stack.json" "${logs[@]}"
}
fail() {
  echo "deploy-check: FAIL: $*"
  diagnose | sed -e 's/^/deploy-check: cause: /' || true
  exit 1
}
trap stop_stack EXIT

set +e
start_stack >"$run_dir/start.log" 2>&1
started=$?
set -e
# What was deployed, and what the emulator could not create.
grep -E '^(deployed|skipped|not created|  |IAM|deploy:)' "$run_dir/start.log" || true
if [ $started -ne 0 ]; then
  grep -E 'deploy:|did not start|cannot start|Error' "$run_dir/start.log" | sed -e 's/^/deploy-check: /' | head -n 5
  fail "the stack did not start (log: $run_dir/start.log)"
fi

# 1. The exceptions (jobhook_dev::stack::EMULATOR_EXCEPTIONS).
exceptions=$("$dev" exceptions --stack "$run_dir/stack/stack.json") || fail "$exceptions"
echo "deploy-check: $exceptions"

# 2. Partial failure, redelivery and redrive: a thin event whose job the
# provider answers 404 for (a job it has not announced yet), so the processor
# retries it through the queue until the redrive policy dead-letters it.
"$python" - "$run_dir" "$sim_port" "$dev_port" "${CARGO_TARGET_DIR:-target}" <<'PY' || fail "a thin delivery was not accepted, failed, redelivered and dead-lettered as the template declares"
import json, os, subprocess, sys, threading, time
from http.server import BaseHTTPRequestHandler, HTTPServer
import boto3
run_dir, sim_port, dev_port, target = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
gets = []
class NotYet(BaseHTTPRequestHandler):
    def do_GET(self):
        gets.append(self.path)
        self.send_response(404); self.end_headers()
    def log_message(self, *args): pass
server = HTTPServer(("127.0.0.1", sim_port), NotYet)
threading.Thread(target=server.serve_forever, daemon=True).start()
# The provider's documented thin event (events/providers/openai/README.md).
body = "events/providers/openai/webhook-batch-completed.json"
batch_id = json.load(open(body))["data"]["id"]
curl = subprocess.run([f"{target}/debug/jobhook", "sign", "openai", "--body", body,
                       "--url", f"http://127.0.0.1:{dev_port}/lambda-url/receiver/webhooks/"],
                      check=True, capture_output=True, text=True).stdout
answer = subprocess.run(["bash", "-c", curl.strip() + " -s -o /dev/null -w '%{http_code}'"], capture_output=True, text=True).stdout
if answer != "202":
    print(f"deploy-check: the receiver answered {answer} to a signed OpenAI delivery"); sys.exit(1)
stack = json.load(open(f"{run_dir}/stack/stack.json"))
sqs = boto3.client("sqs")
queue, dlq = stack["outputs"]["EventsQueueUrl"], stack["outputs"]["EventsDlqUrl"]
visibility = int(stack["parameters"].get("EventsVisibilityTimeoutSecs", 180))

def depth(url):
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

deadline, gone_since = time.time() + 120, None
while time.time() < deadline:
    for m in sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                 AttributeNames=["ApproximateReceiveCount"]).get("Messages", []):
        if batch_id in m["Body"]:
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])
            asked = sum(1 for p in gets if batch_id in p)
            # The last receive is this check's own, from the DLQ.
            received = int(m["Attributes"]["ApproximateReceiveCount"]) - 1
            print(f"deploy-check: the processor received the thin event {received} times, "
                  f"its job read {asked} times from the provider (404), then dead-lettered by the redrive policy")
            sys.exit(0 if asked >= 2 else 1)
    if gets and not any(batch_id in p for p in gets):
        print(f"deploy-check: the provider was asked for {gets[-1]}, not the batch"); sys.exit(1)
    # Read and failed, yet neither on the queue nor on the DLQ: deleted.
    if gets and depth(queue) == 0 and depth(dlq) == 0:
        gone_since = gone_since or time.time()
        if time.time() - gone_since > 2 * visibility + 2:
            print(f"deploy-check: the processor failed the thin event ({len(gets)} reads, 404), "
                  "and the message was deleted instead of redelivered")
            sys.exit(1)
    else:
        gone_since = None
print(f"deploy-check: after 120 s the thin event is not on the DLQ; the provider was asked {len(gets)} times")
sys.exit(1)
PY

# 3. Two providers, with lost webhooks and the bus.
for provider in openai replicate; do
  set +e
  AWS_ENDPOINT_URL=$JOBHOOK_MOTO_URL "$dev" simulate --provider "$provider" --jobs 8 --seed 5 \
    --drop-rate 0.4 --silent-rate 0 --duplicate-rate 0.2 --reorder-ms 500 --outage-secs 0 --spread-secs 3 \
    --converge-timeout-secs 60 --receiver-url "http://127.0.0.1:$dev_port/lambda-url/receiver/webhooks/$provider" \
    --listen "127.0.0.1:$sim_port" --summary-out "$run_dir/$provider.json" >"$run_dir/simulate-$provider.log" 2>&1
  ran=$?
  set -e
  grep -E '^(correct final|lost events|deliveries archived|outputs kept|left on queue|notifications|webhook coverage)' "$run_dir/simulate-$provider.log" \
    | sed -e "s/^/deploy-check: $provider: /"
  [ $ran -eq 0 ] || fail "the $provider run did not hold (log: $run_dir/simulate-$provider.log)"
done
"$python" - "$run_dir/openai.json" "$run_dir/replicate.json" <<'PY' || fail "the runs did not exercise every function"
import json, sys
runs = [json.load(open(p)) for p in sys.argv[1:]]
repaired = sum(r["recovered_by_polling"] for r in runs)
heard = sum((r.get("notifications") or {}).get("received", 0) for r in runs)
in_bucket = sum(r["archived_in_bucket"] for r in runs)
kept = sum(r["outputs_kept"] for r in runs)
print(f"deploy-check: {repaired} lost webhooks repaired by the reconciler, {heard} notifications consumed from the bus, "
      f"{in_bucket} deliveries archived in the bucket, {kept} outputs kept")
sys.exit(0 if repaired > 0 and heard > 0 and in_bucket > 0 and kept > 0 else 1)
PY

# 4. The console, pointed at the stack by name alone: the table, queues and
# sources secret come from the stack's outputs, and its overview shows the
# runs above.
console_port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cargo build -q --bin jobhook
env -u JOBHOOK_TABLE_NAME -u JOBHOOK_QUEUE_URL -u JOBHOOK_DLQ_URL -u JOBHOOK_OUTPUTS_DLQ_URL -u JOBHOOK_SOURCES_SECRET \
  -u JOBHOOK_SOURCES_FILE "${CARGO_TARGET_DIR:-target}/debug/jobhook" console --stack "$JOBHOOK_STACK" --port "$console_port" \
  >"$run_dir/console.log" 2>&1 &
console_pid=$!
"$python" - "$console_port" "$run_dir/replicate.json" <<'PY' || { kill $console_pid 2>/dev/null; fail "the console on --stack $JOBHOOK_STACK (log: $run_dir/console.log)"; }
import json, re, sys, time, urllib.request
port, summary = sys.argv[1], json.load(open(sys.argv[2]))
for _ in range(100):
    try:
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/").read().decode()
        break
    except OSError:
        time.sleep(0.1)
else:
    print("deploy-check: the console did not answer"); sys.exit(1)
row = re.search(r'<tr data-source="replicate">(.*?)</tr>', page, re.S)
counts = dict(re.findall(r'data-status="(\w+)"><a [^>]*>(\d+)</a>', row.group(1))) if row else {}
ended = sum(int(counts.get(s, 0)) for s in ("completed", "failed", "canceled"))
print(f"deploy-check: console --stack: the overview shows replicate's {ended} ended jobs of {summary['jobs']}")
sys.exit(0 if ended == summary["jobs"] else 1)
PY
kill $console_pid 2>/dev/null || true

# 5. Nothing denied, nothing refused to start, no error logged.
if findings=$(diagnose); then
  echo "deploy-check: no function was denied an action, failed to start or logged an error"
else
  fail "the functions' logs name a problem"
fi
echo "deploy-check: PASS"
