#!/usr/bin/env bash
# `make demo`: build, start the local pipeline, run the chaos provider against
# it, wait until it converges, compare every job with the provider's truth,
# print a summary (and target/demo/summary.json), stop everything.
set -euo pipefail
: "${AWS_ENDPOINT_URL:?run through make demo, which starts a moto server}"

# Local runs use seconds where AWS uses minutes.
export JOBHOOK_STALE_AFTER_SECS=${JOBHOOK_STALE_AFTER_SECS:-10}
export JOBHOOK_POLL_INTERVAL_SECS=${JOBHOOK_POLL_INTERVAL_SECS:-3}
export JOBHOOK_MAX_POLL_INTERVAL_SECS=${JOBHOOK_MAX_POLL_INTERVAL_SECS:-15}
export JOBHOOK_DEV_SCHEDULE_SECS=${JOBHOOK_DEV_SCHEDULE_SECS:-5}

with_simulator=1
. scripts/stack.sh
trap stop_stack EXIT
start_stack

echo "==> provider simulator: ${DEMO_JOBS:-200} jobs"
set +e
# The simulator is the provider and the referee: it talks to moto directly.
AWS_ENDPOINT_URL=$JOBHOOK_MOTO_URL "$dev" simulate \
  --jobs "${DEMO_JOBS:-200}" \
  --receiver-url "http://127.0.0.1:$port/lambda-url/receiver/webhooks/dev" \
  --listen "127.0.0.1:$sim_port" \
  --summary-out "${DEMO_SUMMARY:-target/demo/summary.json}" \
  "$@"
status=$?
set -e
exit $status
