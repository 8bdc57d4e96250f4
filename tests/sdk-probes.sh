#!/usr/bin/env bash
# Builds the SDK probe classes (tests/fixtures/sdk-probe-{js,py}, world
# dohost:object/object) and checks the JS and Python SDKs against a live dohost:
# in-guest self-tests (KV, SQL cursor, transactions, errors, HTTP objects), trap
# rollback, abort, constructor errors, Request/Response round trips, object-to-
# object calls, the typed kinds of host errors (DohostError.kind: the
# storage-error / call-error case), `env` ([vars] and a [secrets] entry; the
# secret's value must never appear in the host's log), and the WebSocket APIs
# with real clients (tests/sdk-probe-ws.mjs, Node >= 20).
#
#   tests/sdk-probes.sh [path/to/dohost]      (after `make build`)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DOHOST=${1:-${DOHOST:-$ROOT/target/release/dohost}}
OUT=target/polyglot   # built by `make build` (scripts/build-polyglot.sh)

WORK=$(mktemp -d)
cat >"$WORK/dohost.toml" <<EOF
data_dir = "$WORK/data"
cache_dir = "$ROOT/target/dohost-test-cache"
[limits]
max_ws_message_bytes = 65536
# Small enough for POST /quota to reach in one event.
max_storage_bytes = 2000000
[alarms]
retry_base = "200ms"
# env of every object: the probes' self-tests check both (and the end of this
# script that the secret's value never reaches the host's log).
[vars]
GREETING = "hello"
[secrets]
PROBE_TOKEN = { env = "DOHOST_PROBE_TOKEN" }
[classes.JsSdkProbe]
component = "$ROOT/$OUT/js_sdk_probe.wasm"
[classes.PySdkProbe]
component = "$ROOT/$OUT/py_sdk_probe.wasm"
[classes.JsCounter]
component = "$ROOT/$OUT/js_counter.wasm"
[classes.PyCounter]
component = "$ROOT/$OUT/py_counter.wasm"
[[migrations]]
tag = "v1"
new_sqlite_classes = ["JsSdkProbe", "PySdkProbe", "JsCounter", "PyCounter"]
EOF
PROBE_SECRET=s3cret-probe-value
DOHOST_PROBE_TOKEN=$PROBE_SECRET "$DOHOST" serve --dev --config "$WORK/dohost.toml" --listen 127.0.0.1:0 >"$WORK/out" 2>"$WORK/err" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 600); do
  grep -qs '^listening on ' "$WORK/out" && break
  kill -0 $PID 2>/dev/null || { cat "$WORK/err"; exit 1; }
  sleep 0.2
done
BASE=$(sed -n 's/^listening on //p' "$WORK/out")

pass=0
fail=0
expect() {
  local what=$1 want_status=$2 want_body=$3
  shift 3
  local out status body
  out=$(curl -sS -w '\n%{http_code}' "$@")
  status=${out##*$'\n'}
  body=${out%$'\n'*}
  if [[ $status == "$want_status" && $body =~ $want_body ]]; then
    pass=$((pass + 1))
    printf 'ok    %-34s %s %s\n' "$what" "$status" "${body:0:100}"
  else
    fail=$((fail + 1))
    printf 'FAIL  %-34s %s %s (wanted %s /%s/)\n' "$what" "$status" "${body:0:400}" "$want_status" "$want_body"
  fi
}

for C in JsSdkProbe PySdkProbe; do
  O="$BASE/obj/$C/probe-$$"
  echo "== $C"
  expect "self-test" 200 '"failed": ?\[\]' -X POST "$BASE/obj/$C/selftest/selftest"
  expect "exception in fetch traps" 500 'trapped' -X POST "$O/kv-then-fail"
  expect "ctx.abort" 500 'aborted: abort requested' -X POST "$O/abort"
  expect "writes of both rolled back" 200 '^null$' "$O/doomed"
  expect "Request/Response round trip" 202 '"xfoo": ?"bar".*"body": ?\{"k": ?\[1, ?2\]\}' \
    -X POST -H 'X-Foo: bar' -d '{"k":[1,2]}' "$O/echo?q=1"
  # Not a WebSocket upgrade: the host refuses accept.
  expect "acceptWebSocket -> DohostError" 501 '^DohostError: accept is only possible' "$O/ws"
  expect "Upgrade/Connection/Host headers visible" 200 '^h2c\|Upgrade\|127\.0\.0\.1:' -H 'Upgrade: h2c' -H 'Connection: Upgrade' "$O/headers"
  expect "constructor exception -> err" 500 'constructor failed: .*constructor failed on purpose' "$BASE/obj/$C/ctor-throws/"
done
expect "blockConcurrencyWhile in ctor" 200 '^yes, 42$' "$BASE/obj/JsSdkProbe/bcw-$$/ready"

# Alarms (s64 epoch ms both ways; an exception in alarm() → err → retried).
wait_for() { # URL REGEX
  for _ in $(seq 1 100); do
    [[ $(curl -s "$1") =~ $2 ]] && return 0
    sleep 0.1
  done
}
for C in JsSdkProbe PySdkProbe; do
  expect "$C setAlarm/getAlarm" 200 '^set$' -X POST "$BASE/obj/$C/alarm-$$/alarm"
  wait_for "$BASE/obj/$C/alarm-$$/get?key=alarm_log" '0:false' || true
  expect "$C alarm(info) ran once" 200 '^0:false$' "$BASE/obj/$C/alarm-$$/get?key=alarm_log"
  expect "$C alarm cleared" 200 '^(null|None)$' "$BASE/obj/$C/alarm-$$/alarm"
  expect "$C failing alarm: set" 200 '^set$' -X POST "$BASE/obj/$C/alarm-fail-$$/alarm?fail=1"
  wait_for "$BASE/obj/$C/alarm-fail-$$/get?key=alarm_log" '1:true' || true
  expect "$C exception in alarm → retried" 200 '^0:false,1:true$' "$BASE/obj/$C/alarm-fail-$$/get?key=alarm_log"
done

# Object-to-object calls (namespaces), across languages.
echo "== namespaces (JS -> PyCounter, Python -> JsCounter)"
expect "JS stub.call(PyCounter.get)" 200 '^number 0$' -X POST "$BASE/obj/JsSdkProbe/ns-$$/call" \
  -d '{"class":"PyCounter","name":"ns-get-'$$'","method":"get","args":[]}'
expect "JS stub.call(PyCounter.increment, 5)" 200 '^number 5$' -X POST "$BASE/obj/JsSdkProbe/ns-$$/call" \
  -d '{"class":"PyCounter","name":"ns-'$$'","method":"increment","args":[5]}'
expect "JS stub.call(increment, -2^62 BigInt)" 200 '^bigint -4611686018427387899$' -X POST "$BASE/obj/JsSdkProbe/ns-$$/call" \
  -d '{"class":"PyCounter","name":"ns-'$$'","method":"increment","args":["-4611686018427387904n"]}'
expect "Python stub.call(JsCounter.increment, -3)" 200 '^int -3$' -X POST "$BASE/obj/PySdkProbe/ns-$$/call" \
  -d '{"class":"JsCounter","name":"ns-'$$'","method":"increment","args":[-3]}'
expect "JS stub.fetch(JsCounter POST /increment?by=2)" 200 '^200 -1$' -X POST "$BASE/obj/JsSdkProbe/ns-$$/fetch-other" \
  -d '{"class":"JsCounter","name":"ns-'$$'","method":"POST","path":"/increment?by=2"}'
expect "Python stub.fetch(PyCounter GET /)" 200 '^200 -4611686018427387899$' -X POST "$BASE/obj/PySdkProbe/ns-$$/fetch-other" \
  -d '{"class":"PyCounter","name":"ns-'$$'","method":"GET","path":"/"}'
expect "a call inside transactionSync is refused at the output gate" 200 '^invalid: the call cannot leave before the writes before it: inside a nested transaction' \
  -X POST "$BASE/obj/JsSdkProbe/ns-$$/call-in-transaction"
expect "stub.call of an unknown method -> DohostError" 500 'DohostError|no method|unknown' -X POST "$BASE/obj/JsSdkProbe/ns-$$/call" \
  -d '{"class":"JsCounter","name":"x","method":"nope","args":[]}'

# Typed errors seen from outside: the kind of the DohostError, then its message.
echo "== typed errors (DohostError.kind)"
for C in JsSdkProbe PySdkProbe; do
  expect "$C call of a missing method → not-found" 200 '^not-found: .*nope' -X POST "$BASE/obj/$C/kinds-$$/call-error" \
    -d '{"class":"JsCounter","name":"x","method":"nope","args":[]}'
  expect "$C call to an unknown class → unknown-class" 200 '^unknown-class: .*NoSuchClass' -X POST "$BASE/obj/$C/kinds-$$/call-error" \
    -d '{"class":"NoSuchClass","name":"x","method":"get","args":[]}'
  expect "$C write over the quota → quota" 200 '^quota after [1-9][0-9]* rows: ' -X POST "$BASE/obj/$C/quota-$$/quota"
done

# WebSockets with real clients.
NODE_FLAGS=()
node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' || NODE_FLAGS=(--experimental-websocket)
for C in JsSdkProbe PySdkProbe; do
  out=$(node "${NODE_FLAGS[@]}" --no-warnings tests/sdk-probe-ws.mjs "$BASE" "$C" 2>&1) || true
  echo "$out"
  p=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' <<<"$out" | tail -1)
  f=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' <<<"$out" | tail -1)
  pass=$((pass + ${p:-0}))
  fail=$((fail + ${f:-1}))
done

# The secret's value is in the guests (the self-tests compare it) but never in
# the host's output, whatever the events did.
echo "== secrets stay out of the host's log"
if [[ -s $WORK/out || -s $WORK/err ]] && ! grep -qF -- "$PROBE_SECRET" "$WORK/out" "$WORK/err"; then
  pass=$((pass + 1))
  printf 'ok    %-34s %s\n' "secret not in host stdout/stderr" "$(cat "$WORK/out" "$WORK/err" | wc -l) lines"
else
  fail=$((fail + 1))
  printf 'FAIL  %-34s %s\n' "secret not in host stdout/stderr" "$(grep -cF -- "$PROBE_SECRET" "$WORK/out" "$WORK/err" | tr '\n' ' ')"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
