# Shared by dev.sh and demo.sh (sourced, not run): starts the local pipeline
# on the moto server that with-moto.sh started, and stops it again.
#   start_stack  deploys template.yaml into moto (scripts/deploy_local.py:
#                the SAM transform, CreateStack, IAM enforced from then on),
#                puts the sources into the deployed secrets, runs each
#                function under its own `cargo lambda watch` with its deployed
#                environment and its own role's credentials, and the trigger
#                bridge with the deployed mappings and schedule; writes
#                $JOBHOOK_DEV_DIR/env (default target/dev/env) for the tools.
#   stop_stack   stops everything start_stack started.
# With JOBHOOK_FAULTS set (e.g. `aws`; see `jobhook-dev faults --help`) the
# functions and the bridge reach moto through the fault proxy, which fails as
# DynamoDB and SQS fail on AWS; JOBHOOK_MOTO_URL is then moto itself.
# JOBHOOK_TEMPLATE deploys another template (the deploy check's mutations);
# JOBHOOK_STACK_PARAMETERS adds "Key=Value ..." parameter overrides.

venv=${VENV:-.venv}
export PATH="$PWD/$venv/bin:$PATH"
port=${JOBHOOK_DEV_PORT:-9000}
sim_port=${JOBHOOK_SIM_PORT:-9001}
sources_file=${JOBHOOK_SOURCES_FILE:-events/sources.dev.json}
template=${JOBHOOK_TEMPLATE:-template.yaml}
stack_name=${JOBHOOK_STACK:-jobhook-dev}
target_dir=${CARGO_TARGET_DIR:-target}
dev=$target_dir/debug/jobhook-dev
run_dir=${JOBHOOK_DEV_DIR:-target/dev}
functions=(receiver processor notifier reconciler keeper)
stack_pids=()

stop_stack() {
  for pid in "${stack_pids[@]}"; do
    # Each was started in its own session: stop the whole group.
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for pid in "${stack_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  stack_pids=()
}

# Fails when something already listens on a port the stack needs: talking to
# another run's emulator would send this run's events to another moto.
require_free_port() {
  if ! "$venv/bin/python" -c 'import socket, sys; socket.create_server(("127.0.0.1", int(sys.argv[1]))).close()' "$1" 2>/dev/null; then
    echo "port $1 is in use (another make dev or demo?); free it or set $2" >&2
    return 1
  fi
}

free_port() {
  "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The template's parameters for a local run: seconds where AWS uses minutes,
# from the JOBHOOK_* settings the demo and tests use.
stack_parameters() {
  echo "TableDeletionProtection=false"
  echo "EventsVisibilityTimeoutSecs=${JOBHOOK_DEV_VISIBILITY_SECS:-10}"
  echo "ReconcileSchedule=rate(${JOBHOOK_DEV_SCHEDULE_SECS:-10} seconds)"
  # The user's bucket on AWS; deploy_local.py makes it in the emulator.
  echo "OutputsBucketName=${JOBHOOK_DEV_OUTPUTS_BUCKET:-jobhook-dev-outputs}"
  local setting parameter
  for setting in STALE_AFTER_SECS:StaleAfterSecs POLL_INTERVAL_SECS:PollIntervalSecs \
      MAX_POLL_INTERVAL_SECS:MaxPollIntervalSecs MAX_POLLS_PER_RUN:MaxPollsPerRun \
      ABANDON_AFTER_NOT_FOUND:AbandonAfterNotFound ABANDON_AFTER_DAYS:AbandonAfterDays; do
    parameter=${setting#*:}
    setting=JOBHOOK_${setting%%:*}
    [ -n "${!setting:-}" ] && echo "$parameter=${!setting}"
  done
  for parameter in ${JOBHOOK_STACK_PARAMETERS:-}; do echo "$parameter"; done
}

start_stack() {
  require_free_port "$port" JOBHOOK_DEV_PORT
  # Only the demo runs the provider simulator on its port.
  if [ "${with_simulator:-0}" = 1 ]; then
    require_free_port "$sim_port" JOBHOOK_SIM_PORT
  fi
  mkdir -p "$run_dir"
  echo "==> building"
  cargo build --quiet --workspace --bins || return 1
  export JOBHOOK_MOTO_URL=${JOBHOOK_MOTO_URL:-$AWS_ENDPOINT_URL}
  local function_endpoint=$JOBHOOK_MOTO_URL
  if [ -n "${JOBHOOK_FAULTS:-}" ]; then
    rm -f "$run_dir/faults.url"
    setsid "$dev" faults --upstream "$JOBHOOK_MOTO_URL" --plan "$JOBHOOK_FAULTS" \
      --seed "${JOBHOOK_FAULTS_SEED:-7}" --url-out "$run_dir/faults.url" >"$run_dir/faults.log" 2>&1 &
    stack_pids+=($!)
    for _ in $(seq 100); do [ -s "$run_dir/faults.url" ] && break; sleep 0.1; done
    if [ ! -s "$run_dir/faults.url" ]; then
      cat "$run_dir/faults.log" >&2
      return 1
    fi
    function_endpoint=$(cat "$run_dir/faults.url")
    export JOBHOOK_FAULTS_URL=$function_endpoint
    echo "==> AWS faults ($JOBHOOK_FAULTS) injected by the proxy on $function_endpoint (log: $run_dir/faults.log)"
  fi

  echo "==> deploying $template into the local emulator as stack $stack_name"
  local parameters=() parameter
  while read -r parameter; do parameters+=(--parameter "$parameter"); done < <(stack_parameters)
  rm -rf "$run_dir/stack"
  "$venv/bin/python" scripts/deploy_local.py --endpoint "$JOBHOOK_MOTO_URL" --function-endpoint "$function_endpoint" \
    --template "$template" --stack "$stack_name" --out "$run_dir/stack" "${parameters[@]}" --enforce-iam || return 1
  # From here on every tool signs as the stack's admin user; each function as its own role.
  # shellcheck disable=SC1091
  set -a; . "$run_dir/stack/tools.env"; set +a
  # An IAM user's key signs without a session token (moto refuses one).
  unset AWS_SESSION_TOKEN
  "$dev" seed --sources-file "$sources_file" --sim-url "http://127.0.0.1:$sim_port" || return 1
  # The functions read the seeded secret and nothing else: a sources file
  # the caller named has been seeded into it.
  unset JOBHOOK_SOURCES_FILE

  local emulators=() logs=() fn fn_port
  echo "==> each function under its own cargo lambda watch, with its deployed environment (logs: $run_dir/<function>.log)"
  for fn in "${functions[@]}"; do
    if [ "$fn" = receiver ]; then fn_port=$port; else fn_port=$(free_port); fi
    # JOBHOOK_NO_RELOAD (the demo and the e2e run): a file saved mid-run must not
    # restart the functions under a run that checks every job. `env -i`: a
    # function sees its deployed environment and nothing of this shell's.
    env -i PATH="$PATH" HOME="$HOME" ${CARGO_HOME:+CARGO_HOME="$CARGO_HOME"} ${RUSTUP_HOME:+RUSTUP_HOME="$RUSTUP_HOME"} \
      ${CARGO_TARGET_DIR:+CARGO_TARGET_DIR="$CARGO_TARGET_DIR"} ${RUST_LOG:+RUST_LOG="$RUST_LOG"} \
      setsid cargo lambda watch -A 127.0.0.1 -P "$fn_port" --concurrency "${JOBHOOK_DEV_CONCURRENCY:-4}" \
      ${JOBHOOK_NO_RELOAD:+--ignore-changes} --env-file "$run_dir/stack/$fn.env" >"$run_dir/$fn.log" 2>&1 &
    stack_pids+=($!)
    emulators+=(--emulator "$fn=http://127.0.0.1:$fn_port")
    logs+=(--log "$run_dir/$fn.log")
  done
  if ! "$dev" warm "${emulators[@]}" "${logs[@]}"; then
    echo "(the functions' logs: $run_dir/<function>.log)" >&2
    return 1
  fi

  echo "==> trigger bridge: the deployed event source mappings and schedule (log: $run_dir/bridge.log)"
  # The bridge plays the Lambda service: through the fault proxy too, when there is one.
  AWS_ENDPOINT_URL=$function_endpoint setsid "$dev" bridge --stack "$run_dir/stack/stack.json" "${emulators[@]}" \
    >"$run_dir/bridge.log" 2>&1 &
  stack_pids+=($!)

  { echo "unset AWS_SESSION_TOKEN AWS_PROFILE"; sed -e 's/^/export /' "$run_dir/stack/tools.env"; } >"$run_dir/env"
  echo "==> ready; in another shell: source $run_dir/env"
  "$venv/bin/python" - "$sources_file" "$port" <<'PY'
import json, sys
for name in json.load(open(sys.argv[1]))["sources"]:
    print(f"    source {name}: http://127.0.0.1:{sys.argv[2]}/lambda-url/receiver/webhooks/{name}")
PY
}
