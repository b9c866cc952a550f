#!/usr/bin/env bash
# The local demo: the receiver binary under cargo-lambda's runtime emulator,
# a signed webhook sent to it over HTTP, and the envelope read back from the
# local SQS queue. Run it through `make demo` (which starts moto first).
set -euo pipefail
: "${AWS_ENDPOINT_URL:?run through make demo, which starts a moto server}"

venv=${VENV:-.venv}
python="$venv/bin/python"
export PATH="$PWD/$venv/bin:$PATH"
port=${JOBHOOK_DEV_PORT:-9000}
mkdir -p target/demo
sources_file=${JOBHOOK_SOURCES_FILE:-events/sources.dev.json}

echo "==> building the receiver"
cargo build --quiet --bin receiver

queue_url=$("$python" - <<'PY'
import boto3
print(boto3.client("sqs").create_queue(QueueName="jobhook-demo-events")["QueueUrl"])
PY
)
cat > target/demo/receiver.env <<ENV
AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
AWS_REGION=us-east-1
JOBHOOK_QUEUE_URL=$queue_url
JOBHOOK_SOURCES_FILE=$PWD/$sources_file
ENV

echo "==> starting cargo lambda watch on 127.0.0.1:$port"
cargo lambda watch -A 127.0.0.1 -P "$port" --env-file target/demo/receiver.env >target/demo/watch.log 2>&1 &
watch_pid=$!
trap 'kill "$watch_pid" 2>/dev/null || true; wait "$watch_pid" 2>/dev/null || true' EXIT

"$python" - "$port" "$sources_file" "$queue_url" <<'PY'
import base64, hashlib, hmac, json, sys, time, urllib.error, urllib.request
import boto3

port, sources_file, queue_url = sys.argv[1], sys.argv[2], sys.argv[3]
url = f"http://127.0.0.1:{port}/lambda-url/receiver/webhooks/dev"
secret = json.load(open(sources_file))["sources"]["dev"]["secrets"][0]
key = base64.b64decode(secret.removeprefix("whsec_"))

def deliver(body, msg_id, signature=None):
    ts = str(int(time.time()))
    sig = signature or "v1," + base64.b64encode(
        hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "content-type": "application/json", "webhook-id": msg_id,
        "webhook-timestamp": ts, "webhook-signature": sig})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()

# The emulator compiles and starts the function on the first request.
deadline = time.time() + 600
while True:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
        break
    except urllib.error.HTTPError:
        break
    except Exception:
        if time.time() > deadline:
            sys.exit("cargo lambda watch did not start; see target/demo/watch.log")
        time.sleep(0.5)

body = json.dumps({"id": "evt_demo_1", "type": "job.completed", "created_at": "2026-05-13T12:00:05Z",
                   "data": {"job_id": "job_demo", "status": "completed", "progress": 100,
                            "output_url": "https://cdn.example.com/job_demo.mp4", "error": None}}).encode()
status, text = deliver(body, "msg_demo_1")
print(f"signed delivery    -> {status} {text}")
forged, text = deliver(body, "msg_demo_2", signature="v1,")
print(f"forged delivery    -> {forged} {text}")

sqs = boto3.client("sqs")
messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=2, MaxNumberOfMessages=10).get("Messages", [])
print(f"messages on queue  -> {len(messages)}")
for m in messages:
    print(json.dumps(json.loads(m["Body"]), indent=2))
ok = status == 202 and forged == 401 and len(messages) == 1 and json.loads(messages[0]["Body"])["event_id"] == "msg_demo_1"
print("demo:", "PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
