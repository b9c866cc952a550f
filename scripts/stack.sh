# Shared by dev.sh and demo.sh (sourced, not run): starts the local pipeline
# on the moto server that with-moto.sh started, and stops it again.
#   start_stack  seeds moto, runs the functions under `cargo lambda watch`
#                and the trigger bridge, and writes $JOBHOOK_DEV_DIR/env
#                (default target/dev/env).
#   stop_stack   stops everything start_stack started.
# With JOBHOOK_FAULTS set (e.g. `aws`; see `jobhook-dev faults --help`) the
# functions and the bridge reach moto through the fault proxy, which fails as
# DynamoDB and SQS fail on AWS; JOBHOOK_MOTO_URL is then moto itself.

venv=${VENV:-.venv}
export PATH="$PWD/$venv/bin:$PATH"
port=${JOBHOOK_DEV_PORT:-9000}
sim_port=${JOBHOOK_SIM_PORT:-9001}
sources_file=${JOBHOOK_SOURCES_FILE:-events/sources.dev.json}
target_dir=${CARGO_TARGET_DIR:-target}
dev=$target_dir/debug/jobhook-dev
run_dir=${JOBHOOK_DEV_DIR:-target/dev}
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

start_stack() {
  require_free_port "$port" JOBHOOK_DEV_PORT
  # Only the demo runs the provider simulator on its port.
  if [ "${with_simulator:-0}" = 1 ]; then
    require_free_port "$sim_port" JOBHOOK_SIM_PORT
  fi
  mkdir -p "$run_dir"
  echo "==> building"
  cargo build --quiet --workspace --bins
  export JOBHOOK_MOTO_URL=${JOBHOOK_MOTO_URL:-$AWS_ENDPOINT_URL}
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
    AWS_ENDPOINT_URL=$(cat "$run_dir/faults.url")
    export AWS_ENDPOINT_URL JOBHOOK_FAULTS_URL=$AWS_ENDPOINT_URL
    echo "==> AWS faults ($JOBHOOK_FAULTS) injected by the proxy on $AWS_ENDPOINT_URL (log: $run_dir/faults.log)"
  fi
  "$dev" seed --sources-file "$sources_file" --sim-url "http://127.0.0.1:$sim_port" --env-out "$run_dir/functions.env"
  # shellcheck disable=SC1091
  set -a; . "$run_dir/functions.env"; set +a
  # The functions read the seeded secret and nothing else: a sources file
  # the caller named has been seeded into it.
  unset JOBHOOK_SOURCES_FILE

  echo "==> functions under cargo lambda watch on 127.0.0.1:$port (log: $run_dir/watch.log)"
  # JOBHOOK_NO_RELOAD (the demo and the e2e run): a file saved mid-run must not
  # restart the functions under a run that checks every job.
  setsid cargo lambda watch -A 127.0.0.1 -P "$port" --concurrency "${JOBHOOK_DEV_CONCURRENCY:-4}" \
    ${JOBHOOK_NO_RELOAD:+--ignore-changes} --env-file "$run_dir/functions.env" >"$run_dir/watch.log" 2>&1 &
  stack_pids+=($!)
  if ! "$dev" warm --emulator "http://127.0.0.1:$port" --log "$run_dir/watch.log"; then
    echo "(the emulator's log: $run_dir/watch.log)" >&2
    return 1
  fi

  echo "==> trigger bridge: SQS -> processor, schedule -> reconciler every ${JOBHOOK_DEV_SCHEDULE_SECS:-10} s (log: $run_dir/bridge.log)"
  setsid "$dev" bridge --emulator "http://127.0.0.1:$port" >"$run_dir/bridge.log" 2>&1 &
  stack_pids+=($!)

  sed -e 's/^/export /' "$run_dir/functions.env" >"$run_dir/env"
  echo "==> ready; in another shell: source $run_dir/env"
  "$venv/bin/python" - "$sources_file" "$port" <<'PY'
import json, sys
for name in json.load(open(sys.argv[1]))["sources"]:
    print(f"    source {name}: http://127.0.0.1:{sys.argv[2]}/lambda-url/receiver/webhooks/{name}")
PY
}
