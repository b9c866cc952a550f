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
export JOBHOOK_NO_RELOAD=1
. scripts/stack.sh
trap stop_stack EXIT
start_stack

# PROVIDER=opusclip|replicate|openai|mux|assemblyai|runpod|fal|cloudflare-stream|luma|deepgram|elevenlabs speaks that provider,
# through the source of that name in events/sources.dev.json. PROVIDERS="a b"
# runs one after another on the same stack (the e2e test): the first writes
# DEMO_SUMMARY, each other one its own file beside it, with DEMO_MORE_JOBS jobs.
summary=${DEMO_SUMMARY:-target/demo/summary.json}
status=0
first=1
for provider in ${PROVIDERS:-${PROVIDER:-generic}}; do
  source=$provider
  [ "$source" = generic ] && source=dev
  jobs=${DEMO_JOBS:-200} out=$summary
  if [ $first = 0 ]; then
    jobs=${DEMO_MORE_JOBS:-$jobs} out=${summary%.json}-$provider.json
  fi
  first=0
  echo "==> provider simulator: $jobs jobs, source $source ($provider)"
  set +e
  # The simulator is the provider and the referee: it talks to moto directly.
  AWS_ENDPOINT_URL=$JOBHOOK_MOTO_URL "$dev" simulate \
    --jobs "$jobs" \
    --source "$source" \
    --receiver-url "http://127.0.0.1:$port/lambda-url/receiver/webhooks/$source" \
    --listen "127.0.0.1:$sim_port" \
    --summary-out "$out" \
    "$@"
  run=$?
  set -e
  [ $run = 0 ] || status=$run
done
# DEMO_HOLD=1 keeps the stack up after the run, with what it holds, for a
# look with the CLI or `jobhook console` (source $run_dir/env first).
if [ -n "${DEMO_HOLD:-}" ]; then
  echo "==> the stack stays up (DEMO_HOLD): source $run_dir/env && cargo run -q --bin jobhook -- console"
  echo "==> Ctrl-C stops everything"
  while true; do sleep 3600; done
fi
exit $status
