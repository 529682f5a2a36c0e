#!/usr/bin/env bash
# scripts/docs-screenshot.sh: proves that /docs (Swagger UI, served from the binary) renders.
#
# Starts `logbook serve` on a free loopback port against the local services (scripts/dev
# services; fresh topic prefix, the HTTP role only needs Kafka to answer), loads /docs/ in
# headless Chromium (Debian's `chromium` package, installed when missing) and writes the
# screenshot to docs/img/api-docs.png. Nothing is fetched from outside: Swagger UI's assets are
# compiled into logbook.
#
#   scripts/docs-screenshot.sh [output.png]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${LOGBOOK_WORK_DIR:-$ROOT/.logbook}"
OUT="${1:-$ROOT/docs/img/api-docs.png}"

# shellcheck source=scripts/lib/services.sh
source "$ROOT/scripts/lib/services.sh"

if ! command -v chromium >/dev/null; then
  log "installing Debian's chromium"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >&2
fi

"$ROOT/scripts/dev" services >/dev/null
set -a
# shellcheck disable=SC1090
source "$WORK/env"
set +a
(cd "$ROOT" && cargo build -q -p logbook-cli --bin logbook)
BIN="${LOGBOOK_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/logbook}"

id="$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export LOGBOOK_TOPIC_PREFIX="docs$id" LOGBOOK_TOPIC_PARTITIONS=1
unset LOGBOOK_DATABASE_URL
port="$(free_port 18500)"
export LOGBOOK_HTTP_ADDR="127.0.0.1:$port"
"$BIN" topics
"$BIN" serve >"$WORK/docs-server.log" 2>&1 &
server=$!
profile="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$profile"' EXIT
for _ in $(seq 1 60); do
  curl -fsS "http://$LOGBOOK_HTTP_ADDR/docs/" >/dev/null 2>&1 && break
  sleep 0.5
done

mkdir -p "$(dirname "$OUT")"
# --virtual-time-budget lets the page's scripts fetch /openapi.json and render before the shot
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --user-data-dir="$profile" --window-size=1280,1600 --virtual-time-budget=10000 \
  --screenshot="$OUT" "http://$LOGBOOK_HTTP_ADDR/docs/" >/dev/null 2>&1
[ -s "$OUT" ] || die "no screenshot written"
log "wrote $OUT ($(wc -c <"$OUT") bytes)"
