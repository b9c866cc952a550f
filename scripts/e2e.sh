#!/usr/bin/env bash
# The end-to-end test run by `make test`: a short chaos run (about 30 jobs,
# every knob on, then a dozen in each real provider's format) through the
# real binaries under cargo-lambda and the real trigger bridge, behind the fault proxy with every AWS fault kind at rates
# high enough that each is met, with the demo's invariants. Ports are picked
# free, so it can run beside a `make dev`.
set -euo pipefail
venv=${VENV:-.venv}
read -r dev_port sim_port < <("$venv/bin/python" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

export JOBHOOK_DEV_PORT=$dev_port JOBHOOK_SIM_PORT=$sim_port JOBHOOK_DEV_DIR=target/e2e
export DEMO_JOBS=${E2E_JOBS:-30} DEMO_SUMMARY=target/e2e/summary.json
# Then each provider briefly, on the same stack and faults.
export PROVIDERS=${E2E_PROVIDERS:-generic opusclip replicate openai mux assemblyai runpod fal cloudflare-stream luma deepgram elevenlabs} DEMO_MORE_JOBS=${E2E_MORE_JOBS:-12}
export JOBHOOK_STALE_AFTER_SECS=5 JOBHOOK_POLL_INTERVAL_SECS=2 JOBHOOK_MAX_POLL_INTERVAL_SECS=8 JOBHOOK_DEV_SCHEDULE_SECS=3
# S3 puts are few (a segment per batch with a large delivery, about 15 in the
# first run): their faults are set high enough that each kind meets one.
export JOBHOOK_FAULTS=${E2E_FAULTS:-aws,transaction_conflict=0.1,conflict_exception=0.3,throttling=0.1,internal_error=0.05,ambiguous_write=0.1,send_failure=0.1,ambiguous_send=0.1,ambiguous_delete=0.25,slow_down=0.4,ambiguous_put=0.6}
every_fault_met() {
  "$venv/bin/python" - "$DEMO_SUMMARY" <<'PY'
import json, sys
faults = json.load(open(sys.argv[1])).get("faults") or {}
missing = [kind for kind, n in faults.get("injected", {"(no statistics)": 0}).items() if n == 0]
if missing:
    print("e2e: no fault injected of kind " + ", ".join(missing))
    sys.exit(1)
PY
}
if scripts/with-moto.sh scripts/demo.sh \
    --spread-secs 6 --duplicate-rate 0.3 --reorder-ms 1500 --drop-rate 0.15 --silent-rate 0.1 \
    --failure-rate 0.2 --outage-start-secs 2 --outage-secs 2 --converge-timeout-secs 120 --seed 11 \
    && every_fault_met; then
  echo "e2e: 1 passed, 0 failed"
else
  echo "e2e: 0 passed, 1 failed"
  exit 1
fi
