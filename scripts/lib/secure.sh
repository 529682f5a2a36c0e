# shellcheck shell=bash
# The secure mode of scripts/dev services (--secure): TLS everywhere, one identity per Logbook
# role, and only the rights each role needs. Sourced by scripts/lib/services.sh.
#
#   - a local CA ($WORK/tls/ca.crt) signs one server certificate for 127.0.0.1/localhost;
#   - Kafka: a SASL_SSL listener (SCRAM-SHA-512) for clients, the controller listener with
#     SASL PLAIN, StandardAuthorizer, super user `admin`; one SCRAM user per role and the ACLs of
#     docs/security.md (AclCommand from kafka-tools);
#   - PostgreSQL: TLS only (hostssl, verify-full against the local CA), the database owned by
#     logbook_owner (migrations, rebuilds, restores), LOGIN roles logbook_api, logbook_projector
#     and logbook_tools whose grants the migration 20261130000003_role_grants.sql gives;
#   - one settings file per role: $WORK/env.<role> (admin, gateway, processor, saga, projector,
#     tools), and $WORK/env itself is the admin one.
#
# Passwords are random, generated once under $WORK/secrets (mode 600).

KAFKA_ROLES=(gateway processor saga projector tools)
PG_ROLES=(api projector tools)

secure_mode() { [ -f "$WORK/secure" ]; }

# Remembers the mode a folder was set up in: switching needs scripts/dev reset (the Kafka storage
# is formatted with its users, the database cluster made with its roles).
choose_mode() {
  local want="$1"
  if [ -s "$KAFKA_DIR/data/meta.properties" ] || [ -s "$PG_DIR/data/PG_VERSION" ]; then
    if [ "$want" = secure ] && ! secure_mode; then
      die "these services were set up without --secure: run scripts/dev reset first"
    fi
    return
  fi
  if [ "$want" = secure ]; then touch "$WORK/secure"; else rm -f "$WORK/secure"; fi
}

secret_of() {
  local file="$WORK/secrets/$1"
  [ -s "$file" ] || { random_secret >"$file"; chmod 600 "$file"; }
  printf '%s' "$file"
}

# A CA and a certificate for 127.0.0.1 and localhost, made once.
ensure_tls() {
  local dir="$WORK/tls"
  [ -s "$dir/server.crt" ] && return
  mkdir -p "$dir"
  chmod 700 "$dir"
  log "making a local CA and a server certificate in $dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Logbook local CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' \
    >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 3650 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
  openssl pkcs12 -export -in "$dir/server.crt" -inkey "$dir/server.key" -name broker \
    -passout "file:$(secret_of keystore)" -out "$dir/broker.p12"
  chmod 600 "$dir/"*.key "$dir/broker.p12"
}

# ---------------------------------------------------------------- Kafka

kafka_user() { printf 'logbook-%s' "$1"; }

# Appends the secure listener, SASL, TLS and authorizer settings to server.properties.
write_kafka_secure_config() {
  local port="$1" admin
  admin="$(cat "$(secret_of kafka-admin)")"
  sed -i -e "s|^listeners=.*|listeners=SASL_SSL://127.0.0.1:$port,CONTROLLER://127.0.0.1:$2|" \
    -e "s|^advertised.listeners=.*|advertised.listeners=SASL_SSL://127.0.0.1:$port|" \
    -e "s|^listener.security.protocol.map=.*|listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT|" \
    -e "s|^inter.broker.listener.name=.*|inter.broker.listener.name=SASL_SSL|" \
    "$KAFKA_DIR/server.properties"
  cat >>"$KAFKA_DIR/server.properties" <<EOF

# --- secure mode (scripts/lib/secure.sh): local passwords, file mode 600
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin" user_admin="$admin";
ssl.keystore.type=PKCS12
ssl.keystore.location=$WORK/tls/broker.p12
ssl.keystore.password=$(cat "$(secret_of keystore)")
ssl.truststore.type=PEM
ssl.truststore.location=$WORK/tls/ca.crt
ssl.endpoint.identification.algorithm=https
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin
allow.everyone.if.no.acl.found=false
EOF
  chmod 600 "$KAFKA_DIR/server.properties"
}

# The --add-scram arguments of the storage format: admin and one user per role.
scram_arguments() {
  SCRAM_ARGS=(--add-scram "SCRAM-SHA-512=[name=admin,password=$(cat "$(secret_of kafka-admin)")]")
  local role
  for role in "${KAFKA_ROLES[@]}"; do
    SCRAM_ARGS+=(--add-scram
      "SCRAM-SHA-512=[name=$(kafka_user "$role"),password=$(cat "$(secret_of "kafka-$role")")]")
  done
}

# Client settings of a Kafka user, for Kafka's own tools.
kafka_client_properties() {
  local user="$1" password="$2"
  cat <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$user" password="$password";
ssl.truststore.type=PEM
ssl.truststore.location=$WORK/tls/ca.crt
EOF
}

# One AclCommand run: allow principal $1 operations ($2, comma separated) on resources (rest).
acl() {
  local principal="$1" operations="$2" op
  shift 2
  local args=(--bootstrap-server "127.0.0.1:$KAFKA_PORT" --command-config "$KAFKA_DIR/admin.properties"
    --add --allow-principal "User:$principal")
  for op in ${operations//,/ }; do args+=(--operation "$op"); done
  kafka_java "$(kafka_libs)" org.apache.kafka.tools.AclCommand "${args[@]}" "$@" >>"$KAFKA_DIR/logs/acls.log" 2>&1 ||
    { tail -n 20 "$KAFKA_DIR/logs/acls.log" >&2; die "could not set the ACLs of $principal"; }
}

# The rights of each role on the topics and groups of prefix $1 (docs/security.md has the table).
apply_acls() {
  local prefix="$1" marker="$KAFKA_DIR/acls-$1"
  [ -f "$marker" ] && return
  log "setting Kafka ACLs for the topics $prefix.*"
  kafka_client_properties admin "$(cat "$(secret_of kafka-admin)")" >"$KAFKA_DIR/admin.properties"
  chmod 600 "$KAFKA_DIR/admin.properties"
  local commands="$prefix.commands" events="$prefix.events" results="$prefix.command-results"
  local layout="$prefix.layout" snapshots="$prefix.snapshots"
  local gateway processor saga projector tools
  gateway="$(kafka_user gateway)" processor="$(kafka_user processor)" saga="$(kafka_user saga)"
  projector="$(kafka_user projector)" tools="$(kafka_user tools)"
  # writers (idempotent and transactional producers need WRITE on the topic only, KIP-679)
  acl "$gateway" Write,Describe --topic "$commands"
  acl "$saga" Write,Describe --topic "$commands"
  acl "$processor" Write,Describe --topic "$events" --topic "$results" --topic "$snapshots"
  # readers
  acl "$gateway" Read,Describe --topic "$results" --topic "$layout" --topic "$commands"
  acl "$processor" Read,Describe --topic "$commands" --topic "$layout" --topic "$events" \
    --topic "$snapshots"
  acl "$saga" Read,Describe --topic "$events" --topic "$results" --topic "$layout"
  acl "$projector" Read,Describe --topic "$events" --topic "$layout"
  acl "$tools" Read,Describe --resource-pattern-type prefixed --topic "$prefix."
  # consumer groups and transactional ids
  acl "$gateway" Read --resource-pattern-type prefixed --group "$prefix-gateway"
  acl "$processor" Read --group "$prefix.processors" --group logbook-restore-unused \
    --group logbook-layout-reader-unused --group logbook-snapshot-reader-unused
  acl "$saga" Read --group "$prefix.sagas" --group logbook-layout-reader-unused
  acl "$projector" Read --resource-pattern-type prefixed --group "$prefix.projection."
  acl "$projector" Read --group logbook-layout-reader-unused
  acl "$tools" Read --resource-pattern-type prefixed --group logbook-
  acl "$processor" Write,Describe --resource-pattern-type prefixed --transactional-id "$prefix.processors-"
  acl "$saga" Write,Describe --resource-pattern-type prefixed --transactional-id "$prefix.sagas-"
  touch "$marker"
}

# ---------------------------------------------------------------- PostgreSQL

# TLS on, and only TLS connections with a password (written before the first start).
write_pg_secure_config() {
  local data="$PG_DIR/data"
  cp "$WORK/tls/server.crt" "$data/server.crt"
  cp "$WORK/tls/server.key" "$data/server.key"
  chmod 600 "$data/server.key"
  [ "$(id -u)" -ne 0 ] || chown postgres "$data/server.crt" "$data/server.key"
  cat >"$data/pg_hba.conf" <<EOF
# secure mode (scripts/lib/secure.sh): TLS and SCRAM passwords only
local   all   all                  scram-sha-256
hostssl all   all   127.0.0.1/32   scram-sha-256
host    all   all   0.0.0.0/0      reject
EOF
  [ "$(id -u)" -ne 0 ] || chown postgres "$data/pg_hba.conf"
  printf "ssl = on\nssl_min_protocol_version = 'TLSv1.2'\n" >>"$data/postgresql.conf"
}

# psql as the bootstrap superuser over TLS.
pg_admin() {
  PGPASSWORD="$(cat "$WORK/secrets/db-password")" PGSSLMODE=verify-full \
    PGSSLROOTCERT="$WORK/tls/ca.crt" psql -h 127.0.0.1 -p "$PG_PORT" -U logbook "$@"
}

# The database owner and the role logins (once; the migration gives the grants).
ensure_pg_roles() {
  local role exists
  exists="$(pg_admin -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'logbook_owner'")"
  [ "$exists" = 1 ] && return
  log "creating the PostgreSQL roles logbook_owner, logbook_api, logbook_projector, logbook_tools"
  pg_admin -d postgres -q -v ON_ERROR_STOP=1 \
    -v pw="$(cat "$(secret_of pg-owner)")" <<'SQL' >&2
CREATE ROLE logbook_owner LOGIN PASSWORD :'pw';
ALTER DATABASE logbook OWNER TO logbook_owner;
REVOKE ALL ON DATABASE logbook FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE logbook TO logbook_owner;
SQL
  for role in "${PG_ROLES[@]}"; do
    pg_admin -d postgres -q -v ON_ERROR_STOP=1 -v pw="$(cat "$(secret_of "pg-$role")")" \
      -v role="logbook_$role" <<'SQL' >&2
CREATE ROLE :"role" LOGIN PASSWORD :'pw';
GRANT CONNECT ON DATABASE logbook TO :"role";
SQL
  done
}

# ---------------------------------------------------------------- settings

# $WORK/env.<role> for each role, and $WORK/env (admin: topics, migrations, rebuilds, restores).
write_secure_env() {
  local ca="$WORK/tls/ca.crt" pg="127.0.0.1:$PG_PORT/logbook?sslmode=verify-full&sslrootcert=$WORK/tls/ca.crt"
  secure_env_file admin admin "$(secret_of kafka-admin)" logbook_owner "$(secret_of pg-owner)" "$pg" "$ca"
  cp "$WORK/env.admin" "$ENV_FILE"
  secure_env_file gateway "$(kafka_user gateway)" "$(secret_of kafka-gateway)" \
    logbook_api "$(secret_of pg-api)" "$pg" "$ca"
  secure_env_file processor "$(kafka_user processor)" "$(secret_of kafka-processor)" "" "" "" "$ca"
  secure_env_file saga "$(kafka_user saga)" "$(secret_of kafka-saga)" "" "" "" "$ca"
  secure_env_file projector "$(kafka_user projector)" "$(secret_of kafka-projector)" \
    logbook_projector "$(secret_of pg-projector)" "$pg" "$ca"
  secure_env_file tools "$(kafka_user tools)" "$(secret_of kafka-tools)" \
    logbook_tools "$(secret_of pg-tools)" "$pg" "$ca"
}

secure_env_file() {
  local name="$1" kuser="$2" kpass="$3" dbuser="$4" dbpass="$5" pg="$6" ca="$7"
  {
    echo "# Written by scripts/dev services --secure: the settings of the $name role."
    echo "LOGBOOK_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
    echo "LOGBOOK_KAFKA_SECURITY_PROTOCOL=sasl_ssl"
    echo "LOGBOOK_KAFKA_SASL_MECHANISM=SCRAM-SHA-512"
    echo "LOGBOOK_KAFKA_SASL_USERNAME=$kuser"
    echo "LOGBOOK_KAFKA_SASL_PASSWORD_FILE=$kpass"
    echo "LOGBOOK_KAFKA_SSL_CA_LOCATION=$ca"
    if [ -n "$dbuser" ]; then
      echo "LOGBOOK_DATABASE_URL=postgres://$dbuser@$pg"
      echo "LOGBOOK_DATABASE_PASSWORD_FILE=$dbpass"
    fi
    echo "LOGBOOK_JWT_SECRET_FILE=$WORK/secrets/jwt-secret"
    echo "LOGBOOK_KEK_FILE=$WORK/secrets/kek"
    echo "LOGBOOK_TOPIC_REPLICATION_FACTOR=1"
    echo "LOGBOOK_TOPIC_PREFIX=$TOPIC_PREFIX"
    echo "LOGBOOK_ENVIRONMENT=development"
  } >"$WORK/env.$name"
}
