#!/usr/bin/env bash
# Starts workerd serving config.capnp.
#   ./start.sh PORT STORAGE_DIR [extra workerd args...]
# PORT may be 0 (the OS picks one). Listens on 127.0.0.1 (set BIND_HOST to change).
# Prints one line "workerd ready on http://127.0.0.1:<port>" on stdout once the socket listens.
# workerd replaces this shell (exec), so the PID of start.sh is workerd's PID: stop it with
# `kill <pid>` (SIGTERM). Logs go to stderr; add --verbose for request errors and console output.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 PORT STORAGE_DIR [extra workerd args...]" >&2
  exit 2
fi
PORT=$1
STORAGE=$2
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
# The native binary of the platform package (node_modules/.bin/workerd is the same file once the
# package's postinstall has run, otherwise a node shim that spawns it).
BIN="$HERE/node_modules/@cloudflare/workerd-linux-64/bin/workerd"
[ -x "$BIN" ] || BIN="$HERE/node_modules/.bin/workerd"
[ -x "$BIN" ] || { echo "workerd not installed: run 'npm ci' in $HERE" >&2; exit 1; }
mkdir -p "$STORAGE"
STORAGE=$(cd "$STORAGE" && pwd)
HOST=${BIND_HOST:-127.0.0.1}
cd "$HERE"
# --control-fd 3: workerd writes one JSON line per socket once it listens, e.g.
#   {"event":"listen","socket":"http","port":8787}
# The reader below turns it into the ready line; it ends when workerd exits (fd 3 closes).
exec "$BIN" serve "$HERE/config.capnp" \
  --socket-addr "http=$HOST:$PORT" \
  --directory-path "do-storage=$STORAGE" \
  --control-fd 3 "$@" \
  3> >(sed -un 's/.*"event":"listen".*"port":\([0-9]*\).*/workerd ready on http:\/\/'"$HOST"':\1/p')
