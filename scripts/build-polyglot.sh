#!/usr/bin/env bash
# Builds the JavaScript and Python object classes into WebAssembly components in
# target/polyglot/, installing the pinned tool chains first when needed:
#   npm ci (package-lock.json: componentize-js 0.23.0, jco 1.35.0, esbuild 0.28.2,
#   typescript 5.9.3 for the type checks of the tests) into node_modules/,
#   a venv in .venv/ with componentize-py 0.25.1 (guest-sdk/python/requirements-build.txt).
# Called by `make build`; each component is rebuilt only when a source is newer.
#
# componentize-js runs from the repository root: it maps the current directory
# into its build sandbox, so classes can import ../../../guest-sdk/js/index.js (and
# it the SDK modules beside it).
# `--disable fetch-event`: an object is no wasi:http handler, but keeps
# wasi:http's client for `fetch()` (outbound HTTP behind the output gate).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=target/polyglot
VENV=.venv
mkdir -p "$OUT"

# Tools: reinstall only when the pins change.
if [[ ! -f node_modules/.dohost-installed || package-lock.json -nt node_modules/.dohost-installed ]]; then
  echo "== npm ci (pinned JavaScript tools)"
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules/.dohost-installed
fi
if [[ ! -f $VENV/.dohost-installed || guest-sdk/python/requirements-build.txt -nt $VENV/.dohost-installed ]]; then
  echo "== python venv + componentize-py"
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check -q -r guest-sdk/python/requirements-build.txt
  touch "$VENV/.dohost-installed"
fi

# up_to_date OUT SOURCES…: true if OUT exists and is newer than every source.
up_to_date() {
  local out=$1
  shift
  [[ -f $out ]] || return 1
  local newer
  newer=$(find "$@" -newer "$out" -type f -not -path '*/__pycache__/*' 2>/dev/null | head -n 1)
  [[ -z $newer ]]
}

js() { # OUT SOURCE WIT-DIR WORLD
  up_to_date "$1" "$2" guest-sdk/js wit examples/wit package-lock.json && return
  echo "== componentize-js $2 → $1"
  ./node_modules/.bin/componentize-js --wit "$3" --world-name "$4" --disable fetch-event -o "$1" "$2"
}

# entry OUT WORKER: a Worker module (`export default { fetch }`) as an entry
# component (world dohost:entry/entry), through a generated shim that exports
# the SDK's wasi:http handler for it (guest-sdk/js/entry.js; no FetchEvent:
# its instances serve one request after another).
entry() {
  up_to_date "$1" "$2" guest-sdk/js wit package-lock.json && return
  local shim="${1%.wasm}.shim.js"
  printf "import '../../guest-sdk/js/globals.js';\nimport worker from '../../%s';\nimport { serveWorker } from '../../guest-sdk/js/entry.js';\nconst served = serveWorker(worker);\nexport const incomingHandler = served.incomingHandler;\nexport const reuse = served.reuse;\n" "$2" > "$shim"
  echo "== componentize-js $2 → $1 (entry)"
  ./node_modules/.bin/componentize-js --wit wit/entry --world-name entry --disable fetch-event -o "$1" "$shim"
}

# proxy_entry OUT SOURCE: a plain wasi:http/proxy component with componentize-js's
# defaults (FetchEvent), as other tools build entries: one request per instance.
proxy_entry() {
  up_to_date "$1" "$2" wit package-lock.json && return
  echo "== componentize-js $2 → $1 (wasi:http/proxy)"
  ./node_modules/.bin/componentize-js --wit wit/entry --world-name proxy -o "$1" "$2"
}

# py OUT APP-DIR WIT-DIR WORLD (a class calling dohost.fetch targets a world
# of guest-sdk/wit that imports wasi:http too, e.g. dohost:sdk/object-http).
py() {
  up_to_date "$1" "$2" guest-sdk/python guest-sdk/wit wit examples/wit && return
  echo "== componentize-py $2 → $1"
  # VIRTUAL_ENV keeps componentize-py to this venv's site-packages.
  VIRTUAL_ENV="$ROOT/$VENV" "$VENV/bin/componentize-py" -q -d "$3" -w "$4" componentize \
    -p "$2" -p guest-sdk/python -o "$1" app
}

js "$OUT/js_counter.wasm" examples/js/counter/counter.js examples/wit counter-class-js
js "$OUT/js_chat.wasm" examples/js/chat/chat.js wit js-object
js "$OUT/js_hello_counter.wasm" examples/js/hello/counter.js wit js-object
entry "$OUT/js_hello_entry.wasm" examples/js/hello/worker.js
js "$OUT/js_rate_limiter.wasm" examples/js/chat-app/limiter.js wit js-object
js "$OUT/js_batcher.wasm" examples/js/batcher/batcher.js wit js-object
entry "$OUT/js_chat_app_entry.wasm" examples/js/chat-app/worker.js
entry "$OUT/js_test_entry.wasm" tests/fixtures/entry-js/worker.js
proxy_entry "$OUT/js_proxy_entry.wasm" tests/fixtures/entry-fetch-event/worker.js
js "$OUT/js_sdk_probe.wasm" tests/fixtures/sdk-probe-js/probe.js wit timed-object
py "$OUT/py_counter.wasm" examples/python/counter examples/wit dohost:examples/counter-class-dynamic
py "$OUT/py_chat.wasm" examples/python/chat wit dohost:object/object
py "$OUT/py_sdk_probe.wasm" tests/fixtures/sdk-probe-py guest-sdk/wit dohost:sdk/object-http
