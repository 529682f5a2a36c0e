# shellcheck shell=bash
# `scripts/dev bench`: one benchmark run with its baselines, written to bench/results/<stamp>.*
# Sourced by scripts/dev (uses its log, cmd_services, load_env and the service variables).
#
#   scripts/dev bench [--duration S] [--warmup S] [--clients N] [--rate R] [--accounts N]
#                     [--mix deposit=50,withdraw=30,transfer=20] [--produce-events N]
#                     [--backlog-events N] [--backlog-accounts N] [--failover-events N]
#                     [--skip PHASE,...]
#                     [--capacity-rate R] [--capacity-clients N] [--profile | --no-profile]
#                     [--stack-warmup S] [--sweep R,...] [--partition-sweep N,...]
#
# Phases (each on fresh topics and a fresh database): logbook (open-loop HTTP load on
# `logbook all`, release, rate limits off, after an unmeasured load of --stack-warmup seconds,
# default 60, at --rate that warms the broker's JIT compiler; then the same load at each rate of
# --sweep, default 50,200,500,1500,2000 (empty: none), for latency against load; then a second load at
# --capacity-rate, default 4000/s (0 skips it), with --capacity-clients, default 1024; --profile,
# the default, records 10 s of a third, unmeasured load with perf (logbook) and JFR (Kafka)),
# partitions (the load at --rate on a fresh `logbook all` over topics of each partition count of
# --partition-sweep, default 4,6,12, with the broker's requests per second by type, read over JMX),
# plain-pg (the same load on the plain PostgreSQL ledger), cqrs-es (the same load on the
# cqrs-es + postgres-es ledger), kafka (raw produce with and without transactions at the
# processor's batching), copy (raw COPY of the projectors' rows), backlog (1M events: projector
# catch-up, rebuild, processor memory per account with and without the window of remembered
# command ids; failover), failover (for each of --failover-events, comma-separated, default
# 1M and 10M, over --backlog-accounts accounts: failover without, then with snapshots; each
# log's topics are deleted after). At the end the run's databases and topics are deleted; raw
# results and logs stay under .logbook/bench/<stamp>/.

bench_usage() { sed -n '4,27p' "$ROOT/scripts/lib/bench.sh" | sed 's/^# \{0,1\}//'; }

bench_parse() {
  B_DURATION=30 B_WARMUP=5 B_CLIENTS=256 B_RATE=2000 B_ACCOUNTS=1000
  B_MIX="deposit=50,withdraw=30,transfer=20" B_PRODUCE_EVENTS=200000
  B_BACKLOG_EVENTS=1000000 B_BACKLOG_ACCOUNTS=100000 B_SKIP="" B_FAILOVER_EVENTS=1000000,10000000
  B_CAPACITY_RATE=4000 B_CAPACITY_CLIENTS=1024 B_PROFILE=1 B_STACK_WARMUP=60 B_SWEEP=50,200,500,1500,2000
  B_PARTITION_SWEEP=4,6,12
  while [ $# -gt 0 ]; do
    case "$1" in
      --profile) B_PROFILE=1; shift; continue ;;
      --no-profile) B_PROFILE=0; shift; continue ;;
      --duration) B_DURATION="$2" ;;
      --warmup) B_WARMUP="$2" ;;
      --clients) B_CLIENTS="$2" ;;
      --rate) B_RATE="$2" ;;
      --accounts) B_ACCOUNTS="$2" ;;
      --mix) B_MIX="$2" ;;
      --produce-events) B_PRODUCE_EVENTS="$2" ;;
      --backlog-events) B_BACKLOG_EVENTS="$2" ;;
      --backlog-accounts) B_BACKLOG_ACCOUNTS="$2" ;;
      --failover-events) B_FAILOVER_EVENTS="$2" ;;
      --skip) B_SKIP="$2" ;;
      --capacity-rate) B_CAPACITY_RATE="$2" ;;
      --capacity-clients) B_CAPACITY_CLIENTS="$2" ;;
      --stack-warmup) B_STACK_WARMUP="$2" ;;
      --sweep) B_SWEEP="$2" ;;
      --partition-sweep) B_PARTITION_SWEEP="$2" ;;
      -h | --help) bench_usage; exit 0 ;;
      *) bench_usage; die "unknown option $1" ;;
    esac
    shift 2 || die "option $1 needs a value"
  done
}

skipped() { [[ ",$B_SKIP," == *",$1,"* ]]; }

psql_admin() {
  PGPASSWORD="$(cat "$WORK/secrets/db-password")" psql -h 127.0.0.1 -p "$PG_PORT" -U logbook \
    -d "${2:-postgres}" -v ON_ERROR_STOP=1 -tAqc "$1"
}

# A fresh database named bench_<stamp>_<suffix>; prints its URL. (It runs in a command
# substitution, so it cannot record the name: drop_bench_dbs finds them by the stamp.)
fresh_db() {
  local name="bench_${STAMP_DB}_$1"
  psql_admin "CREATE DATABASE $name" >/dev/null
  printf 'postgres://logbook@127.0.0.1:%s/%s' "$PG_PORT" "$name"
}

# Drops the databases fresh_db created in this run.
drop_bench_dbs() {
  local db
  for db in $(psql_admin "SELECT datname FROM pg_database WHERE datname LIKE 'bench\_${STAMP_DB}\_%'"); do
    psql_admin "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  done
}

# Deletes the topics whose names match the regular expression $1 (one JVM for all of them), so
# runs do not pile up partitions on the broker. Failures are logged, never fatal.
delete_topics() {
  kafka_java "$(kafka_libs)" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$LOGBOOK_KAFKA_BROKERS" --delete --topic "$1" \
    >>"$RUN/delete-topics.log" 2>&1 || log "could not delete topics $1 (see $RUN/delete-topics.log)"
}

# Runs the logbook binary against topic prefix $1 and database URL $2.
lb() {
  local prefix="$1" url="$2"
  shift 2
  LOGBOOK_TOPIC_PREFIX="$prefix" LOGBOOK_DATABASE_URL="$url" "$LB_BIN" "$@"
}

# The same in the background, output to log $3; $! is then the logbook process itself.
lb_bg() {
  local prefix="$1" url="$2" logfile="$3"
  shift 3
  LOGBOOK_TOPIC_PREFIX="$prefix" LOGBOOK_DATABASE_URL="$url" "$LB_BIN" "$@" >"$logfile" 2>&1 &
}

wait_http() {
  local deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "$1"; do
    [ "$SECONDS" -lt "$deadline" ] || die "$1 did not answer within 60 s"
    sleep 0.2
  done
}

stop_pid() {
  kill -TERM "$1" 2>/dev/null || return 0
  local deadline=$((SECONDS + 20))
  while kill -0 "$1" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# One open-loop load at rate $1 with $2 clients: label $3, API URL $4, then extra options
# (LOAD_DURATION and LOAD_WARMUP override --duration and --warmup).
load_at() {
  local rate="$1" clients="$2" label="$3" url="$4"
  shift 4
  "$BENCH_BIN" load --label "$label" --url "$url" --token-file "$RUN/token" \
    --duration "${LOAD_DURATION:-$B_DURATION}" --warmup "${LOAD_WARMUP:-$B_WARMUP}" \
    --clients "$clients" --rate "$rate" \
    --accounts "$B_ACCOUNTS" --mix "$B_MIX" --proc "kafka=$(cat "$KAFKA_DIR/pid")" \
    --proc "postgres=$(head -n 1 "$PG_DIR/data/postmaster.pid")" --out "$RUN/load-$label.json" "$@"
}

# The same at --rate with --clients: label $1, API URL $2, then extra options.
load_run() { load_at "$B_RATE" "$B_CLIENTS" "$@"; }

# --profile: after $1 s, 10 s of JFR on the Kafka broker and of perf on the logbook process $2,
# in the background so the load is not delayed (PROFILER is its pid). A profiler that is
# missing or refused leaves a line in $RUN/profile.log and nothing else: never an error.
profile_start() {
  local delay="$1" pid="$2" kpid
  kpid="$(cat "$KAFKA_DIR/pid" 2>/dev/null || true)"
  echo "profile window: from $delay s into the profiled load" >"$RUN/profile.log"
  (
    sleep "$delay"
    if command -v jcmd >/dev/null && [ -n "$kpid" ]; then
      jcmd "$kpid" JFR.start duration=10s filename="$RUN/kafka.jfr" settings=profile ||
        echo "jcmd JFR.start failed: no Kafka profile"
    else
      echo "jcmd or the Kafka pid missing: no Kafka profile"
    fi
    if command -v perf >/dev/null; then
      perf record -F 499 --call-graph dwarf,16384 -p "$pid" -o "$RUN/perf.data" -- sleep 10 ||
        echo "perf record failed: no logbook profile"
    else
      echo "perf missing: no logbook profile"
      sleep 10
    fi
  ) >>"$RUN/profile.log" 2>&1 &
  PROFILER=$!
}

# Waits for the profiler started by profile_start, and for the JFR file if a recording started.
profile_wait() {
  wait "$PROFILER" 2>/dev/null || true
  if grep -q 'Started recording' "$RUN/profile.log" 2>/dev/null; then
    local deadline=$((SECONDS + 15))
    while [ ! -s "$RUN/kafka.jfr" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
    sleep 1
  fi
}

# Summarises perf.data and kafka.jfr into profile-{logbook,kafka}.json (deletes perf.data).
profile_summarise() {
  log "summarising the profiles"
  python3 "$ROOT/bench/report.py" --summarise-profile "$RUN" >>"$RUN/profile.log" 2>&1 ||
    log "profile summary failed (see $RUN/profile.log)"
}

# Starts `logbook all` (release, rate limits off) on fresh topics with prefix $1 and a fresh
# database named by suffix $2, logging to $3, and waits until it answers: ALL_PID is then its
# pid and ALL_URL its API URL. The topics take LOGBOOK_TOPIC_PARTITIONS from the environment.
start_all() {
  local prefix="$1" url port
  url="$(fresh_db "$2")"
  lb "$prefix" "$url" topics && lb "$prefix" "$url" migrate
  port="$(free_port 18080)"
  log "logbook all on 127.0.0.1:$port (topics $prefix.*)"
  LOGBOOK_RATE_LIMIT_PER_SECOND=0 LOGBOOK_HTTP_ADDR="127.0.0.1:$port" \
    lb_bg "$prefix" "$url" "$3" all
  ALL_PID=$!
  ALL_URL="http://127.0.0.1:$port"
  wait_http "$ALL_URL/health/ready"
}

phase_logbook() {
  local pid url delay
  start_all "bench-$STAMP-lb" lb "$RUN/logbook.log"
  pid="$ALL_PID" url="$ALL_URL"
  if [ "$B_STACK_WARMUP" -gt 0 ]; then
    # a freshly started broker runs interpreted until its JIT compiler has caught up: its first
    # 20 s at 1,000/s answered in about 2 s at p50 here, against about 0.1 s once warm
    log "warming the stack: $B_STACK_WARMUP s at $B_RATE/s, not measured"
    LOAD_DURATION="$B_STACK_WARMUP" LOAD_WARMUP=0 load_run logbook-warmup \
      "$url" --proc "logbook=$pid" || log "warm-up load failed"
  fi
  load_run logbook "$url" --proc "logbook=$pid" --admin-token-file "$RUN/admin-token"
  local rate
  for rate in ${B_SWEEP//,/ }; do
    log "latency against load: $rate/s offered, same instance"
    load_at "$rate" "$B_CLIENTS" "logbook-sweep-$rate" "$url" \
      --proc "logbook=$pid" --admin-token-file "$RUN/admin-token" || log "sweep load at $rate/s failed"
  done
  if awk -v rate="$B_CAPACITY_RATE" 'BEGIN { exit !(rate > 0) }'; then
    log "capacity: $B_CAPACITY_RATE/s offered with $B_CAPACITY_CLIENTS clients, same instance"
    load_at "$B_CAPACITY_RATE" "$B_CAPACITY_CLIENTS" logbook-capacity "$url" \
      --proc "logbook=$pid" --admin-token-file "$RUN/admin-token" ||
      log "capacity run failed: no load-logbook-capacity.json"
  fi
  if [ "$B_PROFILE" = 1 ]; then
    # a load of its own: starting JFR and perf stalls the broker and the process for a moment,
    # so the profiled run's figures are not the measured ones
    delay=$((B_WARMUP + B_DURATION - 10))
    [ "$delay" -le 8 ] || delay=8
    [ "$delay" -ge 1 ] || delay=1
    log "profile: a third load; 10 s of perf (logbook) and JFR (Kafka broker) from $delay s in"
    profile_start "$delay" "$pid"
    load_run logbook-profiled "$url" --proc "logbook=$pid" ||
      log "profiled run failed"
    profile_wait
  fi
  stop_pid "$pid"
  if [ "$B_PROFILE" = 1 ]; then profile_summarise; fi
}

# The broker's request counts by type, as JmxTool prints them (a `time` line, then one line per
# request type and version). The first call starts the broker's JMX agent on a free port of the
# loopback interface, unless it already runs; JMX_PORT_BENCH then holds its port.
broker_requests() {
  local kpid
  kpid="$(cat "$KAFKA_DIR/pid")"
  if [ -z "${JMX_PORT_BENCH:-}" ]; then
    JMX_PORT_BENCH="$(jcmd "$kpid" ManagementAgent.status 2>/dev/null |
      awk '/jmxremote.port =/ { print $3 }')"
    if [ -z "$JMX_PORT_BENCH" ]; then
      JMX_PORT_BENCH="$(free_port 19990)"
      jcmd "$kpid" ManagementAgent.start "jmxremote.port=$JMX_PORT_BENCH" \
        "jmxremote.rmi.port=$JMX_PORT_BENCH" jmxremote.authenticate=false jmxremote.ssl=false \
        jmxremote.host=127.0.0.1 >/dev/null
    fi
  fi
  java -cp "${LOGBOOK_KAFKA_LIBS:-$WORK/kafka-libs}/*" org.apache.kafka.tools.JmxTool \
    --jmx-url "service:jmx:rmi:///jndi/rmi://127.0.0.1:$JMX_PORT_BENCH/jmxrmi" \
    --object-name 'kafka.network:type=RequestMetrics,name=RequestsPerSec,request=*,version=*' \
    --attributes Count --one-time true --report-format tsv 2>/dev/null
}

# The load at --rate on topics of each partition count of --partition-sweep, each on a fresh
# `logbook all` and database (the broker is warm from the logbook phase). Two readings of the
# broker's request counts, both inside the measured window, give its requests per second by type
# (requests-p<N>-{a,b}.tsv; JmxTool stamps each reading). Each reading starts a JVM, so these loads
# are a little slower than the measured one: compare them with each other.
phase_partitions() {
  local n reader
  broker_requests >/dev/null || { log "no JMX reading of the broker: phase partitions skipped"; return 0; }
  for n in ${B_PARTITION_SWEEP//,/ }; do
    log "$B_RATE/s on $n partitions"
    LOGBOOK_TOPIC_PARTITIONS="$n" start_all "bench-$STAMP-p$n" "p$n" "$RUN/logbook-p$n.log"
    # the accounts take a few seconds to open, then the warm-up: read well inside the window
    (
      sleep $((B_WARMUP + 5))
      broker_requests >"$RUN/requests-p$n-a.tsv"
      sleep $((B_DURATION > 8 ? B_DURATION - 6 : 2))
      broker_requests >"$RUN/requests-p$n-b.tsv"
    ) &
    reader=$!
    load_run "partitions-$n" "$ALL_URL" --proc "logbook=$ALL_PID" ||
      log "load on $n partitions failed"
    wait "$reader" || true
    stop_pid "$ALL_PID"
  done
}

# A peer ledger served by logbook-bench: subcommand $1 (also the load label), database suffix
# $2, first port to try $3, what to call it in the log $4.
phase_peer() {
  local kind="$1" url port pid
  url="$(fresh_db "$2")"
  port="$(free_port "$3")"
  log "$4 on 127.0.0.1:$port"
  LOGBOOK_DATABASE_URL="$url" "$BENCH_BIN" "$kind" --addr "127.0.0.1:$port" \
    --connections 32 >"$RUN/$kind.log" 2>&1 &
  pid=$!
  wait_http "http://127.0.0.1:$port/health/ready"
  load_run "$kind" "http://127.0.0.1:$port" --proc "$kind=$pid"
  stop_pid "$pid"
}

phase_plain_pg() { phase_peer plain-pg plain 18090 "plain PostgreSQL ledger"; }

phase_cqrs_es() { phase_peer cqrs-es cqrses 18095 "cqrs-es + postgres-es ledger"; }

# Events per processor transaction seen in the logbook phase (the batching to copy).
observed_batch() {
  python3 - "$RUN/load-logbook.json" <<'PY'
import json, sys
try:
    s = json.load(open(sys.argv[1]))["server"]
    print(max(1, round(s["events"] / s["transactions_committed"])))
except Exception:
    print(50)
PY
}

phase_kafka() {
  local batch
  batch="$(observed_batch)"
  log "raw produce, $B_PRODUCE_EVENTS events, $batch per transaction (the processor's batching)"
  local p
  for p in txn idem txn1k; do lb "bench-$STAMP-$p" "$LOGBOOK_DATABASE_URL" topics; done
  "$BENCH_BIN" produce --topic "bench-$STAMP-txn.events" --events "$B_PRODUCE_EVENTS" \
    --batch "$batch" --out "$RUN/produce-txn.json"
  "$BENCH_BIN" produce --topic "bench-$STAMP-idem.events" --events "$B_PRODUCE_EVENTS" \
    --batch "$batch" --no-transactions --out "$RUN/produce-idempotent.json"
  "$BENCH_BIN" produce --topic "bench-$STAMP-txn1k.events" --events "$B_PRODUCE_EVENTS" \
    --batch 1000 --out "$RUN/produce-txn-1000.json"
}

phase_copy() {
  local url
  url="$(fresh_db copy)"
  lb "bench-$STAMP-copy" "$url" migrate
  log "raw COPY of $B_PRODUCE_EVENTS events' rows"
  LOGBOOK_DATABASE_URL="$url" "$BENCH_BIN" copy --events "$B_PRODUCE_EVENTS" --batch 5000 \
    --out "$RUN/copy.json"
}

# Seconds (float) since the epoch.
now_s() { date +%s.%N; }

# Waits until projection $1 has stored offsets adding up to $2 in the database at URL $3 (one
# connection, polled every 20 ms: a psql process per poll took a fifth of the CPU); prints the
# time.
wait_projected() {
  LOGBOOK_DATABASE_URL="$3" "$BENCH_BIN" wait-projected --projection "$1" --events "$2" \
    --timeout-s 600 || die "projection $1 did not catch up"
  now_s
}

cpu_seconds() { awk '{ print ($14 + $15) / 100 }' "/proc/$1/stat"; }

# "RSS-KiB heap-bytes" of a `logbook process` on prefix $1 (log $2) once every partition is
# restored (the heap in use as glibc counts it, from the process's last "partition restored"
# line); the
# processor restores a partition on its first command, so a `logbook serve` beside it opens 64
# accounts (all 12 partitions get one with probability 0.995), each answered after the restore.
processor_rss() {
  local pid serve port rss heap
  # one malloc arena: with glibc's default (one per thread) the same restore measured anywhere
  # from 76 to 156 MiB run to run; with one, within a few MiB
  MALLOC_ARENA_MAX=1 lb_bg "$1" "$3" "$2" process
  pid=$!
  port="$(free_port 18100)"
  LOGBOOK_RATE_LIMIT_PER_SECOND=0 LOGBOOK_HTTP_ADDR="127.0.0.1:$port" lb_bg "$1" "$3" "$2.serve" serve
  serve=$!
  wait_http "http://127.0.0.1:$port/health/ready"
  seq 64 | xargs -P 8 -I{} curl -fsS -o /dev/null -m 300 -H "Authorization: Bearer $(cat "$RUN/token")" \
    -H 'content-type: application/json' -d '{"owner_id":"bench","currency":"EUR"}' \
    "http://127.0.0.1:$port/v1/accounts" || die "opening accounts on $1 failed (see $2)"
  sleep 2
  rss="$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")"
  heap="$(sed 's/\x1b\[[0-9;]*m//g' "$2" | grep -o 'heap_in_use_bytes=[0-9]*' | tail -1 | cut -d= -f2)"
  stop_pid "$serve"
  stop_pid "$pid"
  printf '%s %s' "$rss" "${heap:-0}"
}

# The partitions of the commands topic the processor logging to $1 owns now (its assignments
# are incremental: cooperative-sticky), comma-separated.
owned_partitions() {
  python3 - "$1" <<'PY'
import re, sys
owned = set()
for line in re.sub(r"\x1b\[[0-9;]*m", "", open(sys.argv[1]).read()).splitlines():
    found = {int(p) for p in re.findall(r'commands", (\d+)', line)}
    if "partitions assigned" in line:
        owned |= found
    elif "partitions revoked" in line:
        owned -= found
print(",".join(str(p) for p in sorted(owned)))
PY
}

# Failover on the log of prefix $1 (database $2), written to $RUN/failover-$3.json, with
# snapshots every $4 events (default 10000; 0: none written or read, every restore reads the
# whole log): two
# processors and a gateway; 64 accounts opened (every partition restored by its owner); then
# SIGKILL of one processor and the same 64 opens at once: how long after the kill the last one
# is decided (by the survivor, after the group's session timeout, the broker's abort of the
# dead producer's open transaction and the restore). The survivor's restore lines give the
# restore time per partition it took over.
failover() {
  local prefix="$1" url="$2" label="$3" every="${4:-10000}" a b serve port killed
  LOGBOOK_SNAPSHOT_EVERY_EVENTS="$every" lb_bg "$prefix" "$url" "$RUN/failover-$label-a.log" process
  a=$!
  LOGBOOK_SNAPSHOT_EVERY_EVENTS="$every" lb_bg "$prefix" "$url" "$RUN/failover-$label-b.log" process
  b=$!
  port="$(free_port 18110)"
  LOGBOOK_RATE_LIMIT_PER_SECOND=0 LOGBOOK_COMMAND_TIMEOUT_MS=180000 \
    LOGBOOK_HTTP_ADDR="127.0.0.1:$port" lb_bg "$prefix" "$url" "$RUN/failover-$label-serve.log" serve
  serve=$!
  wait_http "http://127.0.0.1:$port/health/ready"
  # both processors own partitions before the kill (the group settles over a few rebalances)
  local deadline=$((SECONDS + 600))
  until [ -n "$(owned_partitions "$RUN/failover-$label-a.log")" ] &&
    [ -n "$(owned_partitions "$RUN/failover-$label-b.log")" ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "the two processors never shared the partitions"
    sleep 0.5
  done
  python3 -c 'import uuid; print("\n".join(str(uuid.uuid4()) for _ in range(64)))' >"$RUN/failover-$label-ids"
  python3 "$ROOT/bench/failover_probe.py" warm --url "http://127.0.0.1:$port" \
    --token-file "$RUN/token" --ids "$RUN/failover-$label-ids" || die "failover warm-up failed"
  sleep 1
  local owned
  # settled: the owner of every partition has decided a command of it
  owned="$(owned_partitions "$RUN/failover-$label-a.log")"
  killed="$(now_s)"
  kill -KILL "$a"
  python3 "$ROOT/bench/failover_probe.py" after-kill --url "http://127.0.0.1:$port" \
    --token-file "$RUN/token" --ids "$RUN/failover-$label-ids" --killed-at "$killed" \
    --out "$RUN/failover-$label-probe.json" || die "failover probe failed"
  wait "$a" 2>/dev/null || true
  stop_pid "$serve"
  stop_pid "$b"
  python3 - "$RUN/failover-$label-probe.json" "$RUN/failover-$label-b.log" "$owned" \
    "$RUN/failover-$label.json" "$every" <<'PY'
import json, re, sys
probe = json.load(open(sys.argv[1]))
log = re.sub(r"\x1b\[[0-9;]*m", "", open(sys.argv[2]).read())
killed = [int(p) for p in sys.argv[3].split(",") if p]
restores = []
for line in log.splitlines():
    if "partition restored" in line:
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        restore = {k: int(fields[k]) for k in ("partition", "events", "folded", "ms") if k in fields}
        restore["source"] = fields.get("source", "log").strip('"')
        restores.append(restore)
taken_over = [r for r in restores if r.get("partition") in killed]
probe.update({
    "killed_partitions": killed,
    "takeover_restores": taken_over[-len(killed):] if killed else [],
    "session_timeout_s": 6, "transaction_timeout_s": 10,
    "snapshot_every_events": int(sys.argv[5]),
})
json.dump(probe, open(sys.argv[4], "w"), indent=2)
PY
}

# Failover on logs of each length of --failover-events, without then with snapshots, written
# to $RUN/failover-log-<events>-{nosnap,snap}.json; each log's topics are deleted afterwards
# (10M events take GBs).
phase_failover() {
  local events prefix url
  for events in ${B_FAILOVER_EVENTS//,/ }; do
    prefix="bench-$STAMP-f$events"
    url="$(fresh_db "f$events")"
    lb "$prefix" "$url" topics && lb "$prefix" "$url" migrate
    log "failover: $events events over $B_BACKLOG_ACCOUNTS accounts, without then with snapshots"
    "$BENCH_BIN" produce --topic "$prefix.events" --events "$events" \
      --accounts "$B_BACKLOG_ACCOUNTS" --batch 5000 --out "$RUN/produce-f$events.json"
    failover "$prefix" "$url" "log-$events-nosnap" 0
    failover "$prefix" "$url" "log-$events-snap"
    log "deleting the topics of $prefix"
    delete_topics "$prefix\\..*"
  done
}

phase_backlog() {
  local prefix="bench-$STAMP-backlog" url pid t0 ledger archive r0 r1 a1 b1 cpu empty full state
  local empty_heap full_heap state_heap
  url="$(fresh_db backlog)"
  lb "$prefix" "$url" topics && lb "$prefix" "$url" migrate
  log "backlog: $B_BACKLOG_EVENTS events over $B_BACKLOG_ACCOUNTS accounts (transactions of 5000)"
  "$BENCH_BIN" produce --topic "$prefix.events" --events "$B_BACKLOG_EVENTS" \
    --accounts "$B_BACKLOG_ACCOUNTS" --batch 5000 --out "$RUN/produce-backlog.json"
  log "projector catch-up on the backlog"
  t0="$(now_s)"
  lb_bg "$prefix" "$url" "$RUN/project.log" project
  pid=$!
  ledger="$(wait_projected ledger "$B_BACKLOG_EVENTS" "$url")"
  archive="$(wait_projected archive "$B_BACKLOG_EVENTS" "$url")"
  cpu="$(cpu_seconds "$pid")"
  stop_pid "$pid"
  log "rebuild ledger, then archive"
  r0="$(now_s)"
  lb "$prefix" "$url" rebuild ledger >"$RUN/rebuild-ledger.log" 2>&1
  r1="$(now_s)"
  lb "$prefix" "$url" rebuild archive >"$RUN/rebuild-archive.log" 2>&1
  a1="$(now_s)"
  log "rebuild all (both projections side by side)"
  lb "$prefix" "$url" rebuild all >"$RUN/rebuild-all.log" 2>&1
  b1="$(now_s)"
  log "processor memory: restore an empty log, then the backlog, then it remembering 100 command ids per partition"
  lb "bench-$STAMP-empty" "$url" topics
  read -r empty empty_heap <<<"$(processor_rss "bench-$STAMP-empty" "$RUN/process-empty.log" "$url")"
  read -r full full_heap <<<"$(processor_rss "$prefix" "$RUN/process-backlog.log" "$url")"
  # the account state alone: a window of 100 applied command ids per partition (default
  # 1,000,000), 1,200 ids in all, a few tens of KB beside 100,000 accounts. Not fewer: the ids
  # restored from the log count as first sent up to a minute after their events (clock skew),
  # so with a window of 1 the opens of the run before would make every new command expired
  export LOGBOOK_PROCESSOR_DEDUPE_CAPACITY=100
  read -r state state_heap <<<"$(processor_rss "$prefix" "$RUN/process-backlog-state.log" "$url")"
  unset LOGBOOK_PROCESSOR_DEDUPE_CAPACITY
  log "failover: SIGKILL of one of two processors, on the empty log and on the backlog"
  failover "bench-$STAMP-empty" "$url" empty
  failover "$prefix" "$url" backlog
  python3 - "$RUN/backlog.json" <<PY
import json, sys
events, accounts = $B_BACKLOG_EVENTS, $B_BACKLOG_ACCOUNTS
t0, ledger, archive, r0, r1, a1, b1 = $t0, $ledger, $archive, $r0, $r1, $a1, $b1
json.dump({
  "events": events, "accounts": accounts,
  "catchup_ledger_seconds": ledger - t0, "catchup_archive_seconds": archive - t0,
  "catchup_events_per_s": events / (max(ledger, archive) - t0),
  "projector_cpu_seconds": $cpu,
  "rebuild_ledger_seconds": r1 - r0, "rebuild_archive_seconds": a1 - r1,
  "rebuild_all_seconds": b1 - a1,
  "processor_rss_empty_kib": $empty, "processor_rss_restored_kib": $full,
  "processor_bytes_per_account": ($full - $empty) * 1024 / accounts,
  "processor_rss_state_only_kib": $state,
  "processor_bytes_per_account_state": ($state - $empty) * 1024 / accounts,
  "processor_bytes_per_remembered_command": ($full - $state) * 1024 / events,
  "processor_heap_empty_bytes": $empty_heap, "processor_heap_restored_bytes": $full_heap,
  "processor_heap_state_only_bytes": $state_heap,
  "processor_heap_bytes_per_account_state": ($state_heap - $empty_heap) / accounts,
  "processor_heap_bytes_per_remembered_command": ($full_heap - $state_heap) / events,
}, open(sys.argv[1], "w"), indent=2)
PY
}

bench_environment() {
  python3 - "$RUN/environment.json" <<PY
import json, os, platform, subprocess, sys
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception as error:
        return f"unavailable: {error}"
json.dump({
  "stamp": "$STAMP",
  "command": "scripts/dev bench $*",
  "machine": {"cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"), "cores": os.cpu_count(),
              "memory": sh("free -h | awk '/Mem:/ {print \$2}'"), "kernel": platform.release(),
              "load_before": sh("cat /proc/loadavg"),
              "busiest_processes_before": sh("ps -eo pcpu,comm --sort=-pcpu | head -n 8")},
  "versions": {"logbook": sh("'$LB_BIN' --version"), "rustc": sh("rustc --version"),
               "kafka": sh("ls '$WORK/kafka-libs' | grep -m1 '^kafka_2'"),
               "postgres": sh("PGPASSWORD=\$(cat '$WORK/secrets/db-password') psql -h 127.0.0.1 -p $PG_PORT -U logbook -d postgres -tAc 'SHOW server_version'"),
               "git": sh("git -C '$ROOT' rev-parse --short HEAD") + (" (+ uncommitted changes)" if sh("git -C '$ROOT' status --porcelain") else "")},
  "settings": {
    "kafka": "single broker (KRaft), replication 1, no log.flush.* (page cache, the Kafka default), acks=all, heap " + "${LOGBOOK_KAFKA_HEAP:-512m}",
    "postgres": sh("PGPASSWORD=\$(cat '$WORK/secrets/db-password') psql -h 127.0.0.1 -p $PG_PORT -U logbook -d postgres -tAc \"SELECT string_agg(name || '=' || setting, ', ') FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', 'shared_buffers', 'max_connections')\""),
    "topic_partitions": $PARTITIONS,
    "processor": "batch max ${LOGBOOK_PROCESSOR_BATCH_MAX:-1000}, linger ${LOGBOOK_PROCESSOR_LINGER_MS:-2} ms, linger.ms=1, dedupe window ${LOGBOOK_PROCESSOR_DEDUPE_CAPACITY:-100000} command ids per partition",
    "saga": "batch max ${LOGBOOK_SAGA_BATCH_MAX:-500}, linger ${LOGBOOK_SAGA_LINGER_MS:-20} ms",
    "projector": "batch max 5000, linger 2 ms",
    "rate_limits": "off (LOGBOOK_RATE_LIMIT_PER_SECOND=0)",
    "load": {"duration_s": $B_DURATION, "warmup_s": $B_WARMUP, "rate": $B_RATE, "clients": $B_CLIENTS,
             "accounts": $B_ACCOUNTS, "mix": "$B_MIX"},
    "capacity_load": {"rate": $B_CAPACITY_RATE, "clients": $B_CAPACITY_CLIENTS},
    "stack_warmup_s": $B_STACK_WARMUP, "sweep_rates": "$B_SWEEP",
    "profile": bool($B_PROFILE),
    "produce_events": $B_PRODUCE_EVENTS, "backlog_events": $B_BACKLOG_EVENTS, "backlog_accounts": $B_BACKLOG_ACCOUNTS}
}, open(sys.argv[1], "w"), indent=2)
PY
}

bench_venv() {
  local venv="$WORK/bench-venv"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    log "creating $venv with matplotlib"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q matplotlib >&2
  fi
  printf '%s/bin/python' "$venv"
}

cmd_bench() {
  bench_parse "$@"
  cmd_services
  load_env
  local target="${CARGO_TARGET_DIR:-$ROOT/target}"
  log "building logbook and logbook-bench (release)"
  # two builds: the logbook binary keeps exactly the features `scripts/dev up` builds it with
  (cd "$ROOT" && cargo build --release --locked -p logbook-cli --bin logbook &&
    cargo build --release --locked -p logbook-bench --bin logbook-bench)
  LB_BIN="$target/release/logbook" BENCH_BIN="$target/release/logbook-bench"
  STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
  STAMP_DB="$(printf '%s' "$STAMP" | tr 'A-Z' 'a-z')"
  RUN="$WORK/bench/$STAMP" PARTITIONS="${LOGBOOK_TOPIC_PARTITIONS:-12}"
  mkdir -p "$RUN"
  export LOGBOOK_LOG_FORMAT=human
  bench_environment "$@"
  (umask 077 && "$LB_BIN" token --role service --sub bench --ttl 86400 >"$RUN/token" &&
    "$LB_BIN" token --role admin --sub bench-admin --ttl 86400 >"$RUN/admin-token")
  local phase
  for phase in logbook partitions plain_pg cqrs_es kafka copy backlog failover; do
    if skipped "${phase//_/-}"; then
      log "phase ${phase//_/-} skipped"
      continue
    fi
    log "phase ${phase//_/-}"
    "phase_$phase"
  done
  local python out="$ROOT/bench/results"
  python="$(bench_venv)"
  mkdir -p "$out"
  "$python" "$ROOT/bench/report.py" --run "$RUN" --out "$out/$STAMP"
  drop_bench_dbs
  log "deleting this run's topics (bench-$STAMP-*)"
  delete_topics "bench-$STAMP-.*"
  log "report: $out/$STAMP.md (raw results and logs: $RUN)"
}
