# shellcheck shell=bash
# `scripts/dev chaos [--rounds N]`: the chaos test of the fault stage
# (tests/tests/fault_stage/chaos.rs) with N rounds of its nemesis (default 3, about 75 s each)
# on a three-node Kafka cluster of its own, then its report: chaos/results/<stamp>.{json,md,png}
# (the timeline of answers, retries and faults). Sourced by scripts/dev.

cmd_chaos() {
  local rounds=3
  while [ $# -gt 0 ]; do
    case "$1" in
      --rounds)
        rounds="${2:-}"
        [[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds takes a positive number"
        shift
        ;;
      *) die "unknown option $1 (chaos takes --rounds N)" ;;
    esac
    shift
  done
  # the shared services fetch the Kafka jars the test's private cluster runs from
  cmd_services >/dev/null
  load_env
  cd "$ROOT"
  cargo build --locked -p logbook-cli --bin logbook
  export LOGBOOK_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/logbook"
  local stamp out
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  mkdir -p "$ROOT/chaos/results"
  out="$ROOT/chaos/results/$stamp"
  log "chaos: $rounds rounds of the nemesis (report: $out.md)"
  local status
  set +e
  LOGBOOK_CHAOS_ROUNDS="$rounds" LOGBOOK_CHAOS_OUT="$out.json" \
    cargo test --locked -p logbook-tests --test fault_stage -- --ignored --exact --nocapture \
    chaos::a_cluster_under_load_and_a_nemesis_keeps_every_invariant 2>&1 | tee "$WORK/chaos-$stamp.log"
  status="${PIPESTATUS[0]}"
  set -e
  [ -s "$out.json" ] || die "the chaos run wrote no timeline (see $WORK/chaos-$stamp.log)"
  local python
  python="$(bench_venv)"
  "$python" "$ROOT/chaos/report.py" "$out.json" "$status"
  log "report: $out.md"
  return "$status"
}
