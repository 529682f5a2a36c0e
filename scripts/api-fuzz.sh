#!/usr/bin/env bash
# scripts/api-fuzz.sh: schema-based fuzzing of the HTTP API with schemathesis.
#
# Starts the local services (scripts/dev services), builds `logbook`, runs `logbook all` on a
# free loopback port against fresh topics (prefix fuzz<id>) and a fresh database (fuzz_<id>),
# and for every role (customer, support, auditor, analyst, service, admin) mints a token with
# `logbook token` and runs schemathesis (installed from PyPI into .logbook/fuzz-venv) against the
# served /openapi.json with these checks:
#   not_a_server_error, status_code_conformance, content_type_conformance,
#   response_headers_conformance, response_schema_conformance
# The summaries go to bench/fuzz/last-result.txt; the exit status is the first failing run's.
#
#   scripts/api-fuzz.sh                 # default: 40 examples per operation, every role
#   FUZZ_MAX_EXAMPLES=200 FUZZ_ROLES="customer admin" scripts/api-fuzz.sh
#
# The database is dropped at the end; the fuzz<id> topics stay (small, 2 partitions).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${LOGBOOK_WORK_DIR:-$ROOT/.logbook}"
ENV_FILE="$WORK/env"
VENV="$WORK/fuzz-venv"
RESULT="$ROOT/bench/fuzz/last-result.txt"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-40}"
ROLES="${FUZZ_ROLES:-customer support auditor analyst service admin}"
SCHEMATHESIS_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"

# shellcheck source=scripts/lib/services.sh
source "$ROOT/scripts/lib/services.sh"

"$ROOT/scripts/dev" services >/dev/null
set -a
# shellcheck disable=SC1090
source "$ENV_FILE"
set +a

if [ ! -x "$VENV/bin/schemathesis" ]; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

log "building logbook (debug)"
(cd "$ROOT" && cargo build -q -p logbook-cli --bin logbook)
BIN="${LOGBOOK_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/logbook}"

id="$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
db="fuzz_$id"
pg_port="$(cat "$WORK/pg/port")"
psql_admin() {
  PGPASSWORD="$(cat "$LOGBOOK_DATABASE_PASSWORD_FILE")" \
    psql -h 127.0.0.1 -p "$pg_port" -U logbook -d postgres -qtAc "$1"
}
psql_admin "CREATE DATABASE $db"
export LOGBOOK_DATABASE_URL="postgres://logbook@127.0.0.1:$pg_port/$db"
export LOGBOOK_TOPIC_PREFIX="fuzz$id"
export LOGBOOK_TOPIC_PARTITIONS=2
export LOGBOOK_COMMAND_TIMEOUT_MS=10000
export LOGBOOK_RATE_LIMIT_PER_SECOND=0
port="$(free_port 18400)"
export LOGBOOK_HTTP_ADDR="127.0.0.1:$port"
"$BIN" topics
"$BIN" migrate

server_log="$WORK/fuzz-server.log"
"$BIN" all >"$server_log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  psql_admin "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
}
trap cleanup EXIT

base="http://$LOGBOOK_HTTP_ADDR"
for _ in $(seq 1 120); do
  curl -fsS "$base/health/ready" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "$base/health/ready" >/dev/null || { tail -n 40 "$server_log" >&2; die "logbook did not get ready"; }

mkdir -p "$(dirname "$RESULT")"
status=0
{
  echo "# scripts/api-fuzz.sh: schemathesis $SCHEMATHESIS_VERSION, $MAX_EXAMPLES examples per" \
    "operation, seed 4711, roles: $ROLES"
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) against logbook all (fresh topics and database)"
} >"$RESULT"
# run from .logbook/ so schemathesis' own cache folder stays out of the work tree
cd "$WORK"
for role in $ROLES; do
  token="$("$BIN" token --role "$role" --sub "fuzz-$role" --ttl 7200)"
  log "schemathesis as $role against $base/openapi.json ($MAX_EXAMPLES examples per operation)"
  run_status=0
  "$VENV/bin/schemathesis" run "$base/openapi.json" \
    --url "$base" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --workers 1 \
    --seed 4711 \
    --no-color >"$RESULT.tmp" 2>&1 || run_status=$?
  [ "$status" -ne 0 ] || status=$run_status
  {
    echo
    echo "## role $role: exit status $run_status"
    # the token and the random port/ids are not worth keeping; the summary is
    sed -e "s/$token/<token>/g" -e "s/127.0.0.1:$port/127.0.0.1:<port>/g" "$RESULT.tmp" |
      sed -n '/FAILURES\|SUMMARY/,$p'
  } >>"$RESULT"
done
rm -f "$RESULT.tmp"
cat "$RESULT"
exit "$status"
