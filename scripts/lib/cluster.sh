# shellcheck shell=bash
# The local multi-node Kafka cluster of `scripts/dev services --brokers N` (N >= 3): N KRaft
# nodes on loopback, each a broker and a controller, under $WORK/kafka-cluster/node<i>, with
# replication factor 3 and min.insync.replicas 2. The one-node Kafka of `scripts/dev services`
# (and of `up` and `test`) is separate and unchanged. Sourced by scripts/dev after services.sh.

CLUSTER_DIR="$WORK/kafka-cluster"
CLUSTER_PORT_DEFAULT=19200

# Writes node i's configuration; prints nothing. Ports must be recorded already.
write_cluster_node_config() {
  local i="$1" voters="$2" dir="$CLUSTER_DIR/node$1"
  mkdir -p "$dir/data" "$dir/logs"
  sed -e "s|@NODE@|$i|g" -e "s|@PORT@|$(cat "$dir/port")|g" \
    -e "s|@CPORT@|$(cat "$dir/controller-port")|g" -e "s|@DATA@|$dir/data|g" \
    -e "s|@VOTERS@|$voters|g" "$ROOT/scripts/kafka/cluster.properties.in" >"$dir/server.properties"
}

# Records a broker and a controller port per node (reusing recorded ones); prints the voters.
cluster_ports() {
  local n="$1" i dir port cport voters="" next="$CLUSTER_PORT_DEFAULT"
  for i in $(seq 1 "$n"); do
    dir="$CLUSTER_DIR/node$i"
    mkdir -p "$dir"
    if pid_alive "$dir/pid"; then
      # a running node holds its recorded ports
      port="$(cat "$dir/port")" cport="$(cat "$dir/controller-port")"
    else
      port="$(recorded_or_free_port "$dir/port" "$next")" || exit 1
      echo "$port" >"$dir/port"
      cport="$(recorded_or_free_port "$dir/controller-port" $((port + 1)) "$port")" || exit 1
      echo "$cport" >"$dir/controller-port"
    fi
    next=$((cport + 1))
    voters="${voters:+$voters,}$i@127.0.0.1:$cport"
  done
  printf '%s' "$voters"
}

start_kafka_cluster() {
  local n="$1" libs voters cluster_id i dir started=$SECONDS deadline
  [ "$n" -ge 3 ] || die "--brokers takes 3 or more (1 is the default single node)"
  libs="$(kafka_libs)"
  mkdir -p "$CLUSTER_DIR"
  if [ -s "$CLUSTER_DIR/size" ] && [ "$(cat "$CLUSTER_DIR/size")" != "$n" ]; then
    die "the cluster under $CLUSTER_DIR has $(cat "$CLUSTER_DIR/size") nodes: scripts/dev reset first"
  fi
  echo "$n" >"$CLUSTER_DIR/size"
  voters="$(cluster_ports "$n")" || die "the cluster's ports are not free"
  [ -s "$CLUSTER_DIR/cluster-id" ] ||
    kafka_java "$libs" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 >"$CLUSTER_DIR/cluster-id"
  cluster_id="$(cat "$CLUSTER_DIR/cluster-id")"
  for i in $(seq 1 "$n"); do
    dir="$CLUSTER_DIR/node$i"
    if pid_alive "$dir/pid"; then
      continue
    fi
    write_cluster_node_config "$i" "$voters"
    if [ ! -f "$dir/data/meta.properties" ]; then
      kafka_java "$libs" kafka.tools.StorageTool format -t "$cluster_id" \
        -c "$dir/server.properties" >"$dir/logs/format.log" 2>&1 || {
        cat "$dir/logs/format.log" >&2
        die "formatting the storage of Kafka node $i failed"
      }
    fi
    log "starting Kafka node $i on 127.0.0.1:$(cat "$dir/port") (controller $(cat "$dir/controller-port"))"
    : >"$dir/logs/server.out"
    java_cmd "$libs" "$dir"
    nohup "${JAVA_CMD[@]}" kafka.Kafka "$dir/server.properties" >>"$dir/logs/server.out" 2>&1 </dev/null &
    echo $! >"$dir/pid"
  done
  deadline=$((SECONDS + 180))
  for i in $(seq 1 "$n"); do
    dir="$CLUSTER_DIR/node$i"
    until grep -q "Kafka Server started" "$dir/logs/server.out" 2>/dev/null && port_open "$(cat "$dir/port")"; do
      pid_alive "$dir/pid" || { tail -n 40 "$dir/logs/server.out" >&2; die "Kafka node $i exited"; }
      [ "$SECONDS" -lt "$deadline" ] || die "Kafka node $i did not start within 180 s (see $dir/logs)"
      sleep 0.5
    done
  done
  log "Kafka cluster of $n nodes started in $((SECONDS - started)) s"
}

# The bootstrap servers of the cluster, comma separated.
cluster_brokers() {
  local i list=""
  for i in $(seq 1 "$(cat "$CLUSTER_DIR/size")"); do
    list="${list:+$list,}127.0.0.1:$(cat "$CLUSTER_DIR/node$i/port")"
  done
  printf '%s' "$list"
}

stop_kafka_cluster() {
  local pidfile pid deadline
  for pidfile in "$CLUSTER_DIR"/node*/pid; do
    [ -f "$pidfile" ] || continue
    if pid_alive "$pidfile"; then
      pid="$(cat "$pidfile")"
      log "stopping Kafka ${pidfile%/pid}"
      kill -TERM "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 30))
      while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
}

write_cluster_env() {
  cat >"$ENV_FILE" <<EOT
# Written by scripts/dev services --brokers $(cat "$CLUSTER_DIR/size"): the local Kafka cluster and PostgreSQL.
LOGBOOK_KAFKA_BROKERS=$(cluster_brokers)
LOGBOOK_DATABASE_URL=postgres://logbook@127.0.0.1:$PG_PORT/logbook
LOGBOOK_DATABASE_PASSWORD_FILE=$WORK/secrets/db-password
LOGBOOK_JWT_SECRET_FILE=$WORK/secrets/jwt-secret
LOGBOOK_KEK_FILE=$WORK/secrets/kek
LOGBOOK_TOPIC_REPLICATION_FACTOR=3
LOGBOOK_TOPIC_MIN_INSYNC_REPLICAS=2
LOGBOOK_ENVIRONMENT=development
EOT
}
