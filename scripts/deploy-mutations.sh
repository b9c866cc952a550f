#!/usr/bin/env bash
# Run by `make test`: proves `make deploy-check` by breaking the template it
# checks. Each mutation (scripts/mutate_template.py) is deployed on a fresh
# moto; the check must fail and name the cause this table expects (the
# action, the variable, the resource). The
# unchanged template passing is `make deploy-check` itself, run just before.
set -uo pipefail
venv=${VENV:-.venv}
out=target/mutations
mkdir -p "$out"

declare -A expected=(
  [processor-without-getitem]="denied dynamodb:GetItem"
  [processor-without-putobject]="s3:PutObject failed: AccessDenied"
  [keeper-without-putobject]="(keeper): error: keep request needs a fix"
  [receiver-without-sendmessage]="denied sqs:SendMessage"
  [open-jobs-index-key-renamed]="missed key schema element"
  [table-stream-removed]="StreamArn"
  [processor-mapping-without-report-batch-item-failures]="has no ReportBatchItemFailures"
  [processor-table-variable-renamed]="JOBHOOK_TABLE_NAME"
)
passed=0 failed=0
for mutation in $("$venv/bin/python" scripts/mutate_template.py --list); do
  if [ -z "${expected[$mutation]:-}" ]; then
    echo "deploy-mutations: $mutation: no expected cause in scripts/deploy-mutations.sh"
    failed=$((failed + 1))
    continue
  fi
  "$venv/bin/python" scripts/mutate_template.py "$mutation" "$out/$mutation.json" || exit 1
  JOBHOOK_TEMPLATE="$out/$mutation.json" JOBHOOK_DEV_DIR="$out/$mutation" JOBHOOK_MOTO_LOG="$out/$mutation-moto.log" \
    scripts/with-moto.sh scripts/deploy-check.sh >"$out/$mutation.log" 2>&1
  status=$?
  verdict=$(grep -m1 'deploy-check: FAIL' "$out/$mutation.log")
  cause=$(grep -F -m1 -- "${expected[$mutation]}" "$out/$mutation.log")
  if [ $status -ne 0 ] && [ -n "$verdict" ] && [ -n "$cause" ]; then
    echo "deploy-mutations: $mutation: ${verdict#deploy-check: }"
    echo "deploy-mutations: $mutation:   named: ${cause#deploy-check: }"
    passed=$((passed + 1))
  else
    echo "deploy-mutations: $mutation: the check exited $status without naming \"${expected[$mutation]}\" (log: $out/$mutation.log)"
    tail -n 5 "$out/$mutation.log"
    failed=$((failed + 1))
  fi
done
echo "deploy-mutations: $passed passed, $failed failed"
[ $failed -eq 0 ]
