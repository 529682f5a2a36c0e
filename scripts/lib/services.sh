# shellcheck shell=bash
# Local services for scripts/dev: a real Apache Kafka broker (KRaft, from Maven Central jars) and a
# throwaway PostgreSQL cluster (initdb), both on loopback, both under $WORK. Sourced, not run.

KAFKA_PORT_DEFAULT=19092
PG_PORT_DEFAULT=15432
KAFKA_HEAP="${LOGBOOK_KAFKA_HEAP:-512m}"
SERVICES_LIB="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=scripts/lib/secure.sh
source "$SERVICES_LIB/secure.sh"

log() { printf '[dev] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A port that nothing listens on, starting from the preferred one ($1), never $2. The check
# binds with SO_REUSEADDR, as the servers do: sockets of a killed server left in TIME_WAIT do not
# make its port look taken.
free_port() {
  python3 - "$1" "${2:-0}" <<'PY'
import socket, sys
port, taken = int(sys.argv[1]), int(sys.argv[2])
def free(candidate):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", candidate))
            return True
        except OSError:
            return False
for candidate in range(port, port + 50):
    if candidate != taken and free(candidate):
        print(candidate)
        break
else:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
PY
}

# The port recorded in file $1 if there is one (a restart keeps its port, so running clients
# reconnect; it fails when something else holds it), else a free one from $2, never $3.
recorded_or_free_port() {
  local file="$1" preferred="$2" taken="${3:-0}" port
  if [ -s "$file" ]; then
    port="$(cat "$file")"
    [ "$(free_port "$port" "$taken")" = "$port" ] ||
      die "port $port (recorded in $file) is held by another process: stop it, or run scripts/dev reset"
    printf '%s' "$port"
  else
    free_port "$preferred" "$taken"
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

random_secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# Secrets for local use only: generated once, kept under $WORK/secrets (mode 600), never in git.
ensure_secrets() {
  mkdir -p "$WORK/secrets"
  chmod 700 "$WORK/secrets"
  [ -s "$WORK/secrets/jwt-secret" ] || random_secret >"$WORK/secrets/jwt-secret"
  [ -s "$WORK/secrets/db-password" ] || random_secret >"$WORK/secrets/db-password"
  # the key-encryption key of the holders' personal data: 32 random bytes, base64
  [ -s "$WORK/secrets/kek" ] || head -c 32 /dev/urandom | base64 >"$WORK/secrets/kek"
  chmod 600 "$WORK/secrets/"*
}

# ---------------------------------------------------------------- PostgreSQL

pg_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
    log "PostgreSQL server not found: installing Debian's postgresql package"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
    dir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  fi
  printf '%s' "$dir"
}

# initdb and postgres refuse to run as root: run them as the postgres system user then.
as_pg_user() {
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start_postgres() {
  local bin data="$PG_DIR/data"
  bin="$(pg_bin)"
  mkdir -p "$PG_DIR"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$PG_DIR"
    # the service user must be able to reach its folder: let it traverse every parent
    local dir="$PG_DIR"
    while ! runuser -u postgres -- test -x "$PG_DIR" && [ "$dir" != "/" ]; do
      dir="$(dirname "$dir")"
      chmod o+x "$dir" 2>/dev/null || true
    done
  fi
  if [ ! -s "$data/PG_VERSION" ]; then
    log "creating a PostgreSQL cluster in $data"
    local pwfile="$PG_DIR/pwfile"
    cp "$WORK/secrets/db-password" "$pwfile"
    [ "$(id -u)" -ne 0 ] || chown postgres "$pwfile"
    as_pg_user "$bin/initdb" -D "$data" -U logbook --pwfile="$pwfile" --auth=scram-sha-256 \
      --encoding=UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 || {
      cat "$PG_DIR/initdb.log" >&2
      die "initdb failed"
    }
    rm -f "$pwfile"
    ! secure_mode || write_pg_secure_config
  fi
  if as_pg_user "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    PG_PORT="$(cat "$PG_DIR/port")"
    log "PostgreSQL already running on 127.0.0.1:$PG_PORT"
  else
    PG_PORT="$(recorded_or_free_port "$PG_DIR/port" "$PG_PORT_DEFAULT")"
    echo "$PG_PORT" >"$PG_DIR/port"
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    as_pg_user "$bin/pg_ctl" -D "$data" -l "$PG_DIR/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_DIR \
          -c max_connections=400 -c shared_buffers=256MB -c synchronous_commit=off \
          -c fsync=${LOGBOOK_PG_FSYNC:-on}" >&2 || {
      tail -n 30 "$PG_DIR/server.log" >&2
      die "PostgreSQL did not start"
    }
  fi
  PGPASSWORD="$(cat "$WORK/secrets/db-password")" \
    psql -h 127.0.0.1 -p "$PG_PORT" -U logbook -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'logbook'" | grep -q 1 ||
    PGPASSWORD="$(cat "$WORK/secrets/db-password")" \
      psql -h 127.0.0.1 -p "$PG_PORT" -U logbook -d postgres -qc "CREATE DATABASE logbook" >&2
  ! secure_mode || ensure_pg_roles
}

# Databases left by earlier test runs (each test makes its own test_* database).
drop_test_databases() {
  local dbs
  dbs="$(PGPASSWORD="$(cat "$WORK/secrets/db-password")" psql -h 127.0.0.1 -p "$PG_PORT" -U logbook \
    -d postgres -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%'")"
  for db in $dbs; do
    PGPASSWORD="$(cat "$WORK/secrets/db-password")" psql -h 127.0.0.1 -p "$PG_PORT" -U logbook \
      -d postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
  done
}

stop_postgres() {
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -n "$bin" ] && [ -s "$PG_DIR/data/PG_VERSION" ] &&
    as_pg_user "$bin/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
    log "stopping PostgreSQL"
    as_pg_user "$bin/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null
  fi
}

# ---------------------------------------------------------------- Kafka

kafka_libs() {
  local libs="${LOGBOOK_KAFKA_LIBS:-$WORK/kafka-libs}" pom="$ROOT/scripts/kafka/pom.xml" stamp
  stamp="$(sha256sum "$pom" | cut -c1-16)"
  if [ ! -f "$libs/.stamp-$stamp" ]; then
    command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Kafka from Maven Central"
    log "fetching Apache Kafka and its runtime dependencies from Maven Central"
    rm -rf "$libs"
    mvn -B -q -f "$pom" dependency:copy-dependencies -DoutputDirectory="$libs" \
      -DincludeScope=runtime >&2 || die "could not fetch the Kafka jars"
    touch "$libs/.stamp-$stamp"
  fi
  printf '%s' "$libs"
}

# Sets JAVA_CMD: the JVM command line for Kafka's classes ($1), with a small heap; the logs go
# to $2/logs (default: the single node's folder).
java_cmd() {
  JAVA_CMD=(java -Xms128m "-Xmx$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -Djava.awt.headless=true "-Dlog4j2.configurationFile=$ROOT/scripts/kafka/log4j2.properties"
    "-Dkafka.logs.dir=${2:-$KAFKA_DIR}/logs" -cp "$1/*")
}

kafka_java() {
  java_cmd "$1"
  shift
  "${JAVA_CMD[@]}" "$@"
}

write_kafka_config() {
  local port="$1" cport="$2"
  mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/logs"
  sed -e "s|@PORT@|$port|g" -e "s|@CPORT@|$cport|g" -e "s|@DATA@|$KAFKA_DIR/data|g" \
    "$ROOT/scripts/kafka/server.properties.in" >"$KAFKA_DIR/server.properties"
  add_relayed_listener
}

# LOGBOOK_DEV_KAFKA_RELAY=<listen port>:<advertised port> (tests only): one more plaintext
# listener that tells its clients to connect to the advertised port, where a test's TCP relay
# forwards to the listen port, so that the test can cut the connections of those clients alone.
add_relayed_listener() {
  [ -n "${LOGBOOK_DEV_KAFKA_RELAY:-}" ] || return 0
  local listen="${LOGBOOK_DEV_KAFKA_RELAY%%:*}" advertised="${LOGBOOK_DEV_KAFKA_RELAY##*:}"
  sed -i -e "s|^listeners=.*|&,RELAYED://127.0.0.1:$listen|" \
    -e "s|^advertised.listeners=.*|&,RELAYED://127.0.0.1:$advertised|" \
    -e "s|^listener.security.protocol.map=.*|&,RELAYED:PLAINTEXT|" "$KAFKA_DIR/server.properties"
}

start_kafka() {
  local libs
  libs="$(kafka_libs)"
  if pid_alive "$KAFKA_DIR/pid" && port_open "$(cat "$KAFKA_DIR/port")"; then
    KAFKA_PORT="$(cat "$KAFKA_DIR/port")"
    log "Kafka already running on 127.0.0.1:$KAFKA_PORT"
    return
  fi
  # a restart keeps the ports the storage was formatted with
  KAFKA_PORT="$(recorded_or_free_port "$KAFKA_DIR/port" "$KAFKA_PORT_DEFAULT")"
  local cport
  cport="$(recorded_or_free_port "$KAFKA_DIR/controller-port" $((KAFKA_PORT + 1)) "$KAFKA_PORT")"
  mkdir -p "$KAFKA_DIR"
  echo "$KAFKA_PORT" >"$KAFKA_DIR/port"
  echo "$cport" >"$KAFKA_DIR/controller-port"
  write_kafka_config "$KAFKA_PORT" "$cport"
  SCRAM_ARGS=()
  if secure_mode; then
    write_kafka_secure_config "$KAFKA_PORT" "$cport"
    scram_arguments
  fi
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local cluster_id
    cluster_id="$(kafka_java "$libs" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    log "formatting KRaft storage (cluster $cluster_id)"
    kafka_java "$libs" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$KAFKA_DIR/server.properties" --standalone "${SCRAM_ARGS[@]}" \
      >"$KAFKA_DIR/logs/format.log" 2>&1 || {
      cat "$KAFKA_DIR/logs/format.log" >&2
      die "Kafka storage format failed"
    }
  fi
  log "starting Kafka on 127.0.0.1:$KAFKA_PORT (controller $cport, heap $KAFKA_HEAP)"
  local started=$SECONDS
  : >"$KAFKA_DIR/logs/server.out"
  java_cmd "$libs"
  nohup "${JAVA_CMD[@]}" kafka.Kafka "$KAFKA_DIR/server.properties" \
    >>"$KAFKA_DIR/logs/server.out" 2>&1 </dev/null &
  echo $! >"$KAFKA_DIR/pid"
  local deadline=$((SECONDS + 120))
  until grep -q "Kafka Server started" "$KAFKA_DIR/logs/server.out" 2>/dev/null && port_open "$KAFKA_PORT"; do
    if ! pid_alive "$KAFKA_DIR/pid"; then
      tail -n 40 "$KAFKA_DIR/logs/server.out" >&2
      die "Kafka exited during start-up"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "Kafka did not start within 120 s (see $KAFKA_DIR/logs)"
    sleep 0.5
  done
  log "Kafka started in $((SECONDS - started)) s"
}

stop_kafka() {
  if pid_alive "$KAFKA_DIR/pid"; then
    log "stopping Kafka"
    local pid
    pid="$(cat "$KAFKA_DIR/pid")"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$KAFKA_DIR/pid"
}

# ---------------------------------------------------------------- settings

write_env() {
  cat >"$ENV_FILE" <<EOF
# Written by scripts/dev services: connection settings of the local Kafka and PostgreSQL.
LOGBOOK_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
LOGBOOK_DATABASE_URL=postgres://logbook@127.0.0.1:$PG_PORT/logbook
LOGBOOK_DATABASE_PASSWORD_FILE=$WORK/secrets/db-password
LOGBOOK_JWT_SECRET_FILE=$WORK/secrets/jwt-secret
LOGBOOK_KEK_FILE=$WORK/secrets/kek
LOGBOOK_TOPIC_REPLICATION_FACTOR=1
LOGBOOK_ENVIRONMENT=development
EOF
}
