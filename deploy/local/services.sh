#!/usr/bin/env bash
# deploy/local/services.sh: real Apache Cassandra, Apache Kafka and Jaeger servers on this machine's
# loopback, for local development, CI (.ci/run) and benchmarks, without Docker or the projects'
# download sites.
#
# Cassandra and Kafka are fetched once with Maven from the Maven registry (the published jars and
# their runtime dependencies) into a per-user cache; Jaeger (v2, all-in-one, in-memory storage) is
# built once with Go from its Go module, pinned by deploy/local/jaeger/go.mod and go.sum. Each is
# configured as a small single-node test server in a state directory and started in the
# background bound to 127.0.0.1. `start` waits until the server answers its own protocol (a CQL
# OPTIONS request, a Kafka ApiVersions request, Jaeger's query API) and then prints its address,
# `127.0.0.1:<port>`, alone on stdout; everything else goes to stderr.
#
#   deploy/local/services.sh start cassandra     # -> 127.0.0.1:9042
#   deploy/local/services.sh start kafka         # -> 127.0.0.1:9092
#   deploy/local/services.sh start jaeger        # -> 127.0.0.1:4318 (OTLP/HTTP; UI on :16686)
#   deploy/local/services.sh stop all
#
# Run `deploy/local/services.sh help` for the commands and environment variables.
# Needs: java 17, mvn (3.6.3 or later), go (1.24 or later, for Jaeger), python3 (standard library
# only), util-linux (setsid, flock), openssl (the certificates of Kafka's TLS listeners and
# Cassandra's TLS port).
set -euo pipefail

# ---- Versions: the one place to change them ------------------------------------------------------
CASSANDRA_VERSION="${STREAMPULSE_CASSANDRA_VERSION:-5.0.9}"
KAFKA_VERSION="${STREAMPULSE_KAFKA_VERSION:-4.4.0}"
# Kafka's POM brings log4j-api/log4j-core (through kafka-server) and slf4j-api 1.7 but no SLF4J
# binding; log4j-slf4j-impl is log4j's binding for SLF4J 1.x, at the log4j version Kafka uses.
KAFKA_LOG4J_VERSION="${STREAMPULSE_KAFKA_LOG4J_VERSION:-2.25.5}"
MAVEN_DEPENDENCY_PLUGIN_VERSION=3.8.1
# Jaeger's version is the one its Go module pins (the v1.x module tag of a v2 release).
JAEGER_MODULE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/jaeger"
JAEGER_VERSION="$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2 }' "$JAEGER_MODULE_DIR/go.mod")"

# ---- Settings (documented in usage) --------------------------------------------------------------
CACHE_BASE="${XDG_CACHE_HOME:-$HOME/.cache}/streampulse"
CACHE_ROOT="${STREAMPULSE_SERVICES_CACHE:-$CACHE_BASE/services}"
STATE_ROOT="${STREAMPULSE_SERVICES_DIR:-$CACHE_BASE/run}"
START_TIMEOUT="${STREAMPULSE_SERVICES_TIMEOUT:-180}"
STOP_TIMEOUT="${STREAMPULSE_SERVICES_STOP_TIMEOUT:-60}"
MVN="${STREAMPULSE_MVN:-mvn}"
if [[ -n "${STREAMPULSE_JAVA:-}" ]]; then
  JAVA="$STREAMPULSE_JAVA"
elif [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then
  JAVA="$JAVA_HOME/bin/java"
else
  JAVA=java
fi

CASSANDRA_PORT="${STREAMPULSE_CASSANDRA_PORT:-9042}"
CASSANDRA_STORAGE_PORT="${STREAMPULSE_CASSANDRA_STORAGE_PORT:-7000}"
CASSANDRA_JMX_PORT="${STREAMPULSE_CASSANDRA_JMX_PORT:-}"
CASSANDRA_HEAP="${STREAMPULSE_CASSANDRA_HEAP:-1g}"
CASSANDRA_JVM_OPTS="${STREAMPULSE_CASSANDRA_JVM_OPTS:-}"

KAFKA_PORT="${STREAMPULSE_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${STREAMPULSE_KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_TLS_PORT="${STREAMPULSE_KAFKA_TLS_PORT:-9094}"
KAFKA_SASL_PORT="${STREAMPULSE_KAFKA_SASL_PORT:-9095}"
KAFKA_HEAP="${STREAMPULSE_KAFKA_HEAP:-512m}"
KAFKA_JVM_OPTS="${STREAMPULSE_KAFKA_JVM_OPTS:-}"

JAEGER_OTLP_HTTP_PORT="${STREAMPULSE_JAEGER_OTLP_HTTP_PORT:-4318}"
JAEGER_OTLP_GRPC_PORT="${STREAMPULSE_JAEGER_OTLP_GRPC_PORT:-4317}"
JAEGER_QUERY_PORT="${STREAMPULSE_JAEGER_QUERY_PORT:-16686}"
JAEGER_QUERY_GRPC_PORT="${STREAMPULSE_JAEGER_QUERY_GRPC_PORT:-16685}"
JAEGER_MAX_TRACES="${STREAMPULSE_JAEGER_MAX_TRACES:-100000}"
GO="${STREAMPULSE_GO:-go}"

HOST=127.0.0.1
SERVICES=(cassandra kafka jaeger)

usage() {
  cat <<EOF
Usage: $(basename "$0") COMMAND [NAME]

Real single-node Apache Cassandra $CASSANDRA_VERSION and Apache Kafka $KAFKA_VERSION (KRaft) servers on
$HOST, fetched with Maven (first use only) into a per-user cache, and Jaeger $JAEGER_VERSION
(v2 all-in-one, traces in memory), built with Go (first use only) into the same cache.

Commands (NAME is cassandra, kafka or jaeger; "all" where noted):
  start NAME     fetch if needed, configure, start in the background, wait until the server answers
                 its protocol, then print "$HOST:<port>" on stdout. Already running: just print it.
                 On failure (JVM exit, timeout) prints the end of the server log on stderr, exits 1.
  stop NAME|all  SIGTERM, then SIGKILL after STREAMPULSE_SERVICES_STOP_TIMEOUT s. Not running: no-op.
                 Data is kept: the next start reuses it.
  restart NAME   stop, then start.
  status NAME|all  print "running", "starting" or "stopped" (with "all": "NAME: state" lines);
                 exit 0 only when every named server is running, otherwise 3.
  reset NAME|all stop, then delete the server's state directory (config, data, logs).
  fetch NAME|all download (Jaeger: build) only, for CI caching; prints the lib directory
                 (Jaeger: the binary).
  log NAME       print the path of the server's log file.
  kafka-tls      print the running Kafka's TLS endpoints and the CA that signed its certificate,
                 as shell assignments: ssl=HOST:PORT sasl_ssl=HOST:PORT ca=FILE.
  cassandra-tls  print the running Cassandra's CQL port (which takes TLS and plaintext clients
                 alike) and the CA that signed its certificate: tls=HOST:PORT ca=FILE.
  jaeger-endpoints
                 print the running Jaeger's endpoints as shell assignments:
                 otlp_http=HOST:PORT otlp_grpc=HOST:PORT query=HOST:PORT (the UI and
                 /api/traces, /api/v3/traces).
  kafka-user NAME PASSWORD
                 create (or update) a SCRAM-SHA-512 user on the running Kafka, through Kafka's
                 admin API (its ConfigCommand tool), for its SASL_SSL port.
  help           this text.

Environment (defaults in brackets):
  STREAMPULSE_SERVICES_CACHE     jars, one directory per server and version
                                 [\${XDG_CACHE_HOME:-\$HOME/.cache}/streampulse/services]
  STREAMPULSE_SERVICES_DIR       state: <dir>/NAME/{conf,data,logs,NAME.pid}
                                 [\${XDG_CACHE_HOME:-\$HOME/.cache}/streampulse/run]
  STREAMPULSE_SERVICES_TIMEOUT   seconds to wait for a start [180]
  STREAMPULSE_SERVICES_STOP_TIMEOUT  seconds between SIGTERM and SIGKILL [60]
  STREAMPULSE_JAVA               java executable, Java 17 [\$JAVA_HOME/bin/java, else java]
  STREAMPULSE_MVN                Maven executable [mvn]; Maven uses its usual settings and ~/.m2
  STREAMPULSE_CASSANDRA_VERSION  [$CASSANDRA_VERSION]
  STREAMPULSE_CASSANDRA_PORT     CQL native port [9042]
  STREAMPULSE_CASSANDRA_STORAGE_PORT  internode port [7000]
  STREAMPULSE_CASSANDRA_JMX_PORT local JMX port for nodetool [unset: no JMX listener]
  STREAMPULSE_CASSANDRA_HEAP     -Xms/-Xmx [1g]
  STREAMPULSE_CASSANDRA_JVM_OPTS extra JVM options, split on spaces []
  STREAMPULSE_KAFKA_VERSION      [$KAFKA_VERSION]
  STREAMPULSE_KAFKA_LOG4J_VERSION  log4j backend for Kafka [$KAFKA_LOG4J_VERSION]
  STREAMPULSE_KAFKA_PORT         broker (PLAINTEXT) port [9092]
  STREAMPULSE_KAFKA_CONTROLLER_PORT  KRaft controller port [9093]
  STREAMPULSE_KAFKA_TLS_PORT     broker port speaking TLS only (SSL) [9094]
  STREAMPULSE_KAFKA_SASL_PORT    broker port speaking TLS with SASL SCRAM-SHA-512 (SASL_SSL) [9095]
  STREAMPULSE_KAFKA_HEAP         -Xms/-Xmx [512m]
  STREAMPULSE_KAFKA_JVM_OPTS     extra JVM options, split on spaces []
  STREAMPULSE_GO                 go executable, for building Jaeger [go]; Go uses its usual caches
  STREAMPULSE_JAEGER_OTLP_HTTP_PORT  OTLP/HTTP receiver (what start prints) [4318]
  STREAMPULSE_JAEGER_OTLP_GRPC_PORT  OTLP/gRPC receiver [4317]
  STREAMPULSE_JAEGER_QUERY_PORT  UI and HTTP query API [16686]
  STREAMPULSE_JAEGER_QUERY_GRPC_PORT  gRPC query API [16685]
  STREAMPULSE_JAEGER_MAX_TRACES  traces kept in memory; the oldest go first [100000]

Kafka's command-line tools come with it: java -cp "\$(services.sh fetch kafka)/*" \\
  org.apache.kafka.tools.TopicCommand --bootstrap-server $HOST:9092 --list
EOF
}

log() { printf 'services.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

check_service() {
  case "${1:-}" in
    cassandra | kafka | jaeger) ;;
    "") die "missing server name (cassandra, kafka or jaeger); see '$0 help'" ;;
    *) die "unknown server '$1' (cassandra, kafka or jaeger)" ;;
  esac
}

is_port() { [[ "$1" =~ ^[0-9]+$ ]] && ((10#$1 > 0 && 10#$1 < 65536)); }

# ---- Fetching ------------------------------------------------------------------------------------

version_of() {
  case "$1" in
    cassandra) echo "$CASSANDRA_VERSION" ;;
    kafka) echo "$KAFKA_VERSION" ;;
    jaeger) echo "$JAEGER_VERSION" ;;
  esac
}

cache_dir() { echo "$CACHE_ROOT/$1-$(version_of "$1")"; }

# The dependencies of the generated POM, per server.
pom_dependencies() {
  case "$1" in
    cassandra)
      cat <<EOF
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$CASSANDRA_VERSION</version>
    </dependency>
EOF
      ;;
    kafka)
      # kafka-tools: the command-line tools (topics, console producer/consumer, perf tests), without
      # the Kafka Connect runtime that it also depends on (jetty, jersey: only for connect tools).
      cat <<EOF
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
      <exclusions>
        <exclusion>
          <groupId>org.apache.kafka</groupId>
          <artifactId>connect-runtime</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$KAFKA_LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$KAFKA_LOG4J_VERSION</version>
    </dependency>
EOF
      ;;
  esac
}

write_pom() {
  local name=$1 pom=$2
  cat >"$pom" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/local/services.sh: the runtime classpath of $name $(version_of "$name"). -->
<project>
  <modelVersion>4.0.0</modelVersion>
  <groupId>streampulse.local</groupId>
  <artifactId>$name-server</artifactId>
  <version>$(version_of "$name")</version>
  <packaging>pom</packaging>
  <dependencies>
$(pom_dependencies "$name")
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>$MAVEN_DEPENDENCY_PLUGIN_VERSION</version>
      </plugin>
    </plugins>
  </build>
</project>
EOF
}

# Prints the lib directory of NAME, downloading it first if needed.
# Jaeger: `go build` of the module's pinned Jaeger (deploy/local/jaeger: go.mod's `tool` line and
# go.sum's checksums), into the cache; Go's own module and build caches make a rebuild quick.
fetch_jaeger() {
  local dir lock_fd
  dir="$(cache_dir jaeger)"
  if [[ -f "$dir/.complete" ]]; then
    echo "$dir/jaeger"
    return
  fi
  command -v "$GO" >/dev/null || die "Go ('$GO') not found: install it (Debian: apt-get install golang)"
  mkdir -p "$dir"
  exec {lock_fd}>"$dir/.lock"
  flock -w 3600 "$lock_fd" || die "timed out waiting for another build of jaeger"
  if [[ ! -f "$dir/.complete" ]]; then
    local started=$SECONDS
    log "building jaeger $JAEGER_VERSION with Go into $dir (first use, a few minutes; log: $dir/fetch.log)"
    if ! (cd "$JAEGER_MODULE_DIR" && "$GO" build -mod=readonly -trimpath -o "$dir/jaeger.tmp" \
      github.com/jaegertracing/jaeger/cmd/jaeger) >"$dir/fetch.log" 2>&1; then
      tail -n 30 "$dir/fetch.log" >&2
      die "Go could not build jaeger $JAEGER_VERSION (full log: $dir/fetch.log)"
    fi
    mv "$dir/jaeger.tmp" "$dir/jaeger"
    touch "$dir/.complete"
    log "built jaeger: $(du -sh "$dir/jaeger" | cut -f1) in $((SECONDS - started)) s"
  fi
  exec {lock_fd}>&-
  echo "$dir/jaeger"
}

fetch() {
  local name=$1 dir lock_fd
  if [[ "$name" == jaeger ]]; then
    fetch_jaeger
    return
  fi
  dir="$(cache_dir "$name")"
  if [[ -f "$dir/.complete" ]]; then
    echo "$dir/lib"
    return
  fi
  command -v "$MVN" >/dev/null || die "Maven ('$MVN') not found: install it (Debian: apt-get install maven)"
  mkdir -p "$dir"
  exec {lock_fd}>"$dir/.lock"
  flock -w 1800 "$lock_fd" || die "timed out waiting for another fetch of $name"
  if [[ ! -f "$dir/.complete" ]]; then
    local started=$SECONDS tmp="$dir/lib.tmp"
    log "fetching $name $(version_of "$name") with Maven into $dir (first use; log: $dir/fetch.log)"
    write_pom "$name" "$dir/pom.xml"
    rm -rf "$tmp"
    if ! "$MVN" -B -ntp -f "$dir/pom.xml" \
      "org.apache.maven.plugins:maven-dependency-plugin:$MAVEN_DEPENDENCY_PLUGIN_VERSION:copy-dependencies" \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >"$dir/fetch.log" 2>&1; then
      tail -n 30 "$dir/fetch.log" >&2
      die "Maven could not fetch $name $(version_of "$name") (full log: $dir/fetch.log)"
    fi
    rm -rf "${dir:?}/lib"
    mv "$tmp" "$dir/lib"
    touch "$dir/.complete"
    log "fetched $name: $(find "$dir/lib" -name '*.jar' | wc -l) jars, $(du -sh "$dir/lib" | cut -f1) in $((SECONDS - started)) s"
  fi
  exec {lock_fd}>&-
  echo "$dir/lib"
}

# ---- Processes -----------------------------------------------------------------------------------

state_dir() { echo "$STATE_ROOT/$1"; }
pid_file() { echo "$(state_dir "$1")/$1.pid"; }

log_file() {
  case "$1" in
    cassandra) echo "$(state_dir "$1")/logs/system.log" ;;
    kafka) echo "$(state_dir "$1")/logs/server.log" ;;
    jaeger) echo "$(state_dir "$1")/logs/console.log" ;;
  esac
}

# The argument that marks NAME's process as ours (a JVM system property; Jaeger's config file).
marker_of() {
  case "$1" in
    jaeger) echo "--config=file:$(state_dir "$1")/conf/config.yaml" ;;
    *) echo "-Dstreampulse.service.dir=$(state_dir "$1")" ;;
  esac
}

# Prints the pid of NAME's process if it is alive (and is ours: its command line carries our marker).
live_pid() {
  local name=$1 pidf pid
  pidf="$(pid_file "$name")"
  [[ -s "$pidf" ]] || return 1
  pid="$(<"$pidf")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF -- "$(marker_of "$name")" || return 1
  fi
  echo "$pid"
}

tcp_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Exit 0 when a CQL server on port $1 answers an OPTIONS request (protocol v4) with SUPPORTED.
probe_cassandra() {
  python3 - "$HOST" "$1" <<'EOF'
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as s:
        s.settimeout(3)
        # version 4 request, flags 0, stream 1, opcode OPTIONS (0x05), body length 0
        s.sendall(bytes([0x04, 0, 0, 1, 0x05, 0, 0, 0, 0]))
        head = b""
        while len(head) < 9:
            chunk = s.recv(9 - len(head))
            if not chunk:
                sys.exit(1)
            head += chunk
        # a version 4 response (0x84) with opcode SUPPORTED (0x06)
        sys.exit(0 if head[0] == 0x84 and head[4] == 0x06 else 1)
except OSError:
    sys.exit(1)
EOF
}

# Exit 0 when a Kafka broker on port $1 answers an ApiVersions (v0) request without error.
probe_kafka() {
  python3 - "$HOST" "$1" <<'EOF'
import socket, struct, sys
def read(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as s:
        s.settimeout(3)
        client = b"streampulse-probe"
        # ApiVersions (key 18), version 0, correlation id 7, client id; empty body
        req = struct.pack(">hhih", 18, 0, 7, len(client)) + client
        s.sendall(struct.pack(">i", len(req)) + req)
        (size,) = struct.unpack(">i", read(s, 4))
        corr, err = struct.unpack(">ih", read(s, min(size, 6)))
        sys.exit(0 if corr == 7 and err == 0 else 1)
except (OSError, struct.error):
    sys.exit(1)
EOF
}

# Exit 0 when Jaeger's query API on port $1 answers (its list of services, as JSON), which it
# does once the whole collector, receivers included, has started.
probe_jaeger() {
  python3 - "$HOST" "$1" <<'EOF'
import json, sys, urllib.request
try:
    with urllib.request.urlopen("http://%s:%s/api/services" % (sys.argv[1], sys.argv[2]), timeout=3) as r:
        json.load(r)
    sys.exit(0)
except Exception:
    sys.exit(1)
EOF
}

service_port() {
  case "$1" in
    cassandra) echo "$CASSANDRA_PORT" ;;
    kafka) echo "$KAFKA_PORT" ;;
    jaeger) echo "$JAEGER_OTLP_HTTP_PORT" ;;
  esac
}

# The port the protocol probe asks, when it is not the printed one.
probe_port() {
  case "$1" in
    jaeger) echo "$JAEGER_QUERY_PORT" ;;
    *) service_port "$1" ;;
  esac
}

# The ports NAME listens on, for the "already in use" check.
service_ports() {
  case "$1" in
    cassandra) echo "$CASSANDRA_PORT $CASSANDRA_STORAGE_PORT $CASSANDRA_JMX_PORT" ;;
    kafka) echo "$KAFKA_PORT $KAFKA_CONTROLLER_PORT $KAFKA_TLS_PORT $KAFKA_SASL_PORT" ;;
    jaeger) echo "$JAEGER_OTLP_HTTP_PORT $JAEGER_OTLP_GRPC_PORT $JAEGER_QUERY_PORT $JAEGER_QUERY_GRPC_PORT" ;;
  esac
}

probe() { "probe_$1" "$2"; }

# Starts "$@" in its own session, detached from our stdin/stdout/stderr and lock descriptors, and
# records its pid (the exec'd JVM's) in $1.
launch() {
  local pidf=$1 console=$2
  shift 2
  rm -f "$pidf"
  # shellcheck disable=SC2016 # $0/$$/$@ belong to the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidf" "$@" </dev/null >"$console" 2>&1 &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s "$pidf" ]] && return 0
    sleep 0.1
  done
  die "could not start $*"
}

java_major() {
  local v
  v="$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  echo "${v%%.*}"
}

check_java() {
  command -v "$JAVA" >/dev/null || die "java ('$JAVA') not found: install a Java 17 JDK or JRE"
  command -v python3 >/dev/null || die "python3 not found (used to check that the server answers)"
  local major
  major="$(java_major)"
  if [[ "$major" != 17 ]]; then
    log "warning: Java $major found; Cassandra 5.0 and these options are meant for Java 17"
  fi
}

# ---- Cassandra -----------------------------------------------------------------------------------

configure_cassandra() {
  local dir=$1
  mkdir -p "$dir/conf" "$dir/data" "$dir/logs"
  tls_material "$dir"
  cat >"$dir/conf/cassandra.yaml" <<EOF
# Generated by deploy/local/services.sh on every start: a small single-node test server.
cluster_name: streampulse-local
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
listen_address: $HOST
rpc_address: $HOST
storage_port: $CASSANDRA_STORAGE_PORT
native_transport_port: $CASSANDRA_PORT
start_native_transport: true
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$HOST:$CASSANDRA_STORAGE_PORT"
data_file_directories:
  - $dir/data/data
commitlog_directory: $dir/data/commitlog
saved_caches_directory: $dir/data/saved_caches
hints_directory: $dir/data/hints
cdc_raw_directory: $dir/data/cdc_raw
# A fresh test node: no compatibility with 4.x sstables/messaging needed.
storage_compatibility_mode: NONE
commitlog_sync: periodic
commitlog_sync_period: 10000ms
commitlog_segment_size: 32MiB
commitlog_total_space: 512MiB
auto_snapshot: false
snapshot_before_compaction: false
incremental_backups: false
hinted_handoff_enabled: false
# Sized for a 1 GiB heap.
memtable_allocation_type: heap_buffers
memtable_heap_space: 128MiB
memtable_offheap_space: 128MiB
key_cache_size: 16MiB
row_cache_size: 0MiB
counter_cache_size: 8MiB
file_cache_size: 64MiB
prepared_statements_cache_size: 8MiB
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 4
concurrent_materialized_view_writes: 2
concurrent_compactors: 1
compaction_throughput: 64MiB/s
materialized_views_enabled: false
sasi_indexes_enabled: false
user_defined_functions_enabled: false
# TLS on the CQL port, optional: the port takes TLS and plaintext clients alike.
client_encryption_options:
  enabled: true
  optional: true
  keystore: $dir/tls/server.p12
  keystore_password: streampulse
  store_type: PKCS12
  require_client_auth: false
EOF
  cat >"$dir/conf/logback.xml" <<EOF
<!-- Generated by deploy/local/services.sh: INFO to logs/system.log, rolled at 20 MB. -->
<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>$dir/logs/system.log</file>
    <rollingPolicy class="ch.qos.logback.core.rolling.FixedWindowRollingPolicy">
      <fileNamePattern>$dir/logs/system.log.%i</fileNamePattern>
      <minIndex>1</minIndex>
      <maxIndex>3</maxIndex>
    </rollingPolicy>
    <triggeringPolicy class="ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy">
      <maxFileSize>20MB</maxFileSize>
    </triggeringPolicy>
    <encoder>
      <pattern>%-5level [%thread] %date{ISO8601} %logger{0} - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="FILE"/>
  </root>
</configuration>
EOF
}

cassandra_command() {
  local dir=$1 lib=$2 jamm
  jamm="$(find "$lib" -maxdepth 1 -name 'jamm-*.jar' | head -n 1)"
  [[ -n "$jamm" ]] || die "no jamm jar in $lib"
  local -a cmd=()
  # Cassandra mlockall()s its memory at start-up: it succeeds only with CAP_IPC_LOCK (root) or a
  # high RLIMIT_MEMLOCK, and then pins the whole committed heap and costs seconds. A test node does
  # not need that: as root, start the JVM without CAP_IPC_LOCK, so it logs a warning and goes on.
  if [[ "$(id -u)" == 0 ]] && command -v setpriv >/dev/null; then
    cmd+=(setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock --)
  fi
  cmd+=(
    "$JAVA"
    "-Xms$CASSANDRA_HEAP" "-Xmx$CASSANDRA_HEAP"
    # conf/jvm17-server.options (Cassandra 5.0): GC
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:G1HeapRegionSize=16m
    -XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300 -XX:InitiatingHeapOccupancyPercent=70
    # ... JPMS
    -Djdk.attach.allowAttachSelf=true
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports java.sql/java.sql=ALL-UNNAMED
    --add-exports java.base/java.lang.ref=ALL-UNNAMED
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
    --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
    --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
    --add-opens java.base/java.lang.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    --add-opens java.base/java.nio=ALL-UNNAMED
    # ... Netty
    -Dio.netty.tryReflectionSetAccessible=true
    -Dio.netty.allocator.useCacheForAllThreads=true
    -Dio.netty.allocator.maxOrder=11
    # conf/jvm-server.options
    -Djava.net.preferIPv4Stack=true
    -XX:+PerfDisableSharedMem
    -XX:+ExitOnOutOfMemoryError
    "-javaagent:$jamm"
    # a test node
    -Dcassandra-foreground=yes
    "-Dcassandra.config=file://$dir/conf/cassandra.yaml"
    "-Dcassandra.storagedir=$dir/data"
    "-Dcassandra.logdir=$dir/logs"
    "-Dlogback.configurationFile=$dir/conf/logback.xml"
    -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Dcassandra.unsafesystem=true
  )
  if [[ -n "$CASSANDRA_JMX_PORT" ]]; then
    cmd+=("-Dcassandra.jmx.local.port=$CASSANDRA_JMX_PORT")
  fi
  local -a extra=()
  read -r -a extra <<<"$CASSANDRA_JVM_OPTS"
  cmd+=(${extra[@]+"${extra[@]}"} "-Dstreampulse.service.dir=$dir" -cp "$lib/*"
    org.apache.cassandra.service.CassandraDaemon)
  printf '%s\0' "${cmd[@]}"
}

# ---- Kafka ---------------------------------------------------------------------------------------

# A CA and a server certificate for $HOST and localhost under $1/tls, made once with openssl: PEM
# (key, certificate and CA in server.pem, for Kafka) and PKCS#12 (server.p12, password
# "streampulse", for Cassandra's Java keystore).
tls_material() {
  local tls=$1/tls
  [[ -f "$tls/server.pem" && -f "$tls/server.p12" && -f "$tls/ca.pem" ]] && return 0
  command -v openssl >/dev/null || die "openssl is needed for the servers' TLS ports (Debian: apt-get install openssl)"
  mkdir -p "$tls"
  cat >"$tls/openssl.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = streampulse-local
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:$HOST, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
  (
    cd "$tls"
    openssl req -x509 -new -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
      -config openssl.cnf -extensions ca -subj "/CN=streampulse-local-ca"
    openssl req -new -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
      -config openssl.cnf -subj "/CN=$HOST"
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.crt \
      -days 3650 -extfile openssl.cnf -extensions server
    openssl pkcs8 -topk8 -nocrypt -in server.key -out server.pk8
    cat server.pk8 server.crt ca.pem >server.pem
    openssl pkcs12 -export -in server.crt -inkey server.key -certfile ca.pem -name server \
      -out server.p12 -passout pass:streampulse
  ) >"$tls/openssl.log" 2>&1 || { cat "$tls/openssl.log" >&2; die "making the TLS certificate failed"; }
}

configure_kafka() {
  local dir=$1
  mkdir -p "$dir/conf" "$dir/data" "$dir/logs"
  tls_material "$dir"
  cat >"$dir/conf/server.properties" <<EOF
# Generated by deploy/local/services.sh on every start: one KRaft node, broker and controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,SSL://$HOST:$KAFKA_TLS_PORT,SASL_SSL://$HOST:$KAFKA_SASL_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT,SSL://$HOST:$KAFKA_TLS_PORT,SASL_SSL://$HOST:$KAFKA_SASL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL
# TLS (SSL and SASL_SSL ports): a certificate for 127.0.0.1/localhost signed by the state
# directory's own CA (tls/ca.pem), in one PEM file with its unencrypted PKCS#8 key.
ssl.keystore.type=PEM
ssl.keystore.location=$dir/tls/server.pem
# SASL_SSL: SCRAM-SHA-512 users, created with 'services.sh kafka-user'.
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=$dir/data
num.partitions=1
num.network.threads=2
num.io.threads=4
# One node: internal topics with replication factor 1 and few partitions (quick first use).
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
EOF
  cat >"$dir/conf/log4j2.properties" <<EOF
# Generated by deploy/local/services.sh: INFO to logs/server.log (rolled at 20 MB), chatty loggers at WARN.
status = warn
name = streampulse-kafka
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $dir/logs/server.log
appender.file.filePattern = $dir/logs/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
# The full configuration dumps of the broker and its internal clients (conf/server.properties has ours).
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
EOF
}

# The JVM options of bin/kafka-run-class.sh.
kafka_jvm_common() {
  local dir=$1
  printf '%s\0' "$JAVA" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -XX:+PerfDisableSharedMem \
    -Djava.awt.headless=true "-Dkafka.logs.dir=$dir/logs"
}

# A new Kafka cluster id, as kafka.tools.StorageTool random-uuid makes one (16 random bytes in
# URL-safe base64 without padding, not starting with "-"), without starting a JVM for it.
kafka_cluster_id() {
  python3 -c '
import base64, os
while True:
    b = os.urandom(16)
    s = base64.urlsafe_b64encode(b).decode().rstrip("=")
    if not s.startswith("-") and int.from_bytes(b, "big") > 1:
        print(s)
        break
'
}

# Formats the KRaft storage once (a cluster id of its own, kept in the data directory).
format_kafka() {
  local dir=$1 lib=$2
  [[ -f "$dir/data/meta.properties" ]] && return 0
  local -a common
  mapfile -d '' common < <(kafka_jvm_common "$dir")
  local cluster_id
  cluster_id="$(kafka_cluster_id)"
  log "formatting Kafka storage (cluster id $cluster_id)"
  if ! "${common[@]}" -cp "$lib/*" kafka.tools.StorageTool format --ignore-formatted \
    -t "$cluster_id" -c "$dir/conf/server.properties" >"$dir/logs/format.log" 2>&1; then
    tail -n 20 "$dir/logs/format.log" >&2
    die "formatting Kafka storage failed (see $dir/logs/format.log)"
  fi
}

kafka_command() {
  local dir=$1 lib=$2
  local -a cmd extra=()
  mapfile -d '' cmd < <(kafka_jvm_common "$dir")
  read -r -a extra <<<"$KAFKA_JVM_OPTS"
  cmd+=("-Xms$KAFKA_HEAP" "-Xmx$KAFKA_HEAP" "-Dlog4j2.configurationFile=file:$dir/conf/log4j2.properties"
    ${extra[@]+"${extra[@]}"}
    "-Dstreampulse.service.dir=$dir" -cp "$lib/*" kafka.Kafka "$dir/conf/server.properties")
  printf '%s\0' "${cmd[@]}"
}

# Jaeger v2 all-in-one, reduced to what the platform uses: OTLP in (gRPC and HTTP), traces kept in
# memory (bounded), the query API and UI; every listener on loopback. No Jaeger/Zipkin receivers,
# remote sampling, zpages or expvar; the collector's own metrics and traces are off.
configure_jaeger() {
  local dir=$1
  mkdir -p "$dir/conf" "$dir/logs"
  cat >"$dir/conf/config.yaml" <<EOF
# Generated by deploy/local/services.sh: Jaeger $JAEGER_VERSION, single node, in memory.
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memory_store:
        memory:
          max_traces: $JAEGER_MAX_TRACES
  jaeger_query:
    storage:
      traces: memory_store
    enable_tracing: false
    http:
      endpoint: $HOST:$JAEGER_QUERY_PORT
    grpc:
      endpoint: $HOST:$JAEGER_QUERY_GRPC_PORT
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: $HOST:$JAEGER_OTLP_GRPC_PORT
      http:
        endpoint: $HOST:$JAEGER_OTLP_HTTP_PORT
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: memory_store
EOF
}

jaeger_command() {
  local dir=$1 bin=$2
  printf '%s\0' "$bin" "$(marker_of jaeger)"
}

# ---- Commands ------------------------------------------------------------------------------------

state_of() {
  local name=$1 pid
  if pid="$(live_pid "$name")"; then
    local dir pport
    dir="$(state_dir "$name")"
    # The probe's port as started (a start before probe_port existed: the printed address's).
    if [[ -f "$dir/probe_port" ]]; then
      pport="$(<"$dir/probe_port")"
    else
      pport="$(cut -d: -f2 "$dir/address" 2>/dev/null || true)"
    fi
    if [[ -n "$pport" ]] && probe "$name" "$pport"; then
      echo running
    else
      echo starting
    fi
  else
    echo stopped
  fi
}

# Size of NAME's log before this start, so that a failure shows only this start's lines.
LOG_OFFSET=0

fail_start() {
  local name=$1 why=$2 pid f
  log "error: $name did not start: $why"
  f="$(state_dir "$name")/logs/console.log"
  if [[ -s "$f" ]]; then
    log "---- last lines of $f"
    tail -n 40 "$f" | cut -c1-400 >&2
  fi
  f="$(log_file "$name")"
  if [[ -s "$f" && "$f" != "$(state_dir "$name")/logs/console.log" ]]; then
    log "---- last lines of $f"
    tail -c "+$((LOG_OFFSET + 1))" "$f" | tail -n 40 | cut -c1-400 >&2
  fi
  if pid="$(live_pid "$name")"; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$(pid_file "$name")"
  exit 1
}

start() {
  local name=$1 dir port pport lib pid lock_fd
  dir="$(state_dir "$name")"
  port="$(service_port "$name")"
  pport="$(probe_port "$name")"
  local p
  for p in $(service_ports "$name"); do
    is_port "$p" || die "invalid port '$p' for $name"
  done
  mkdir -p "$dir"
  exec {lock_fd}>"$dir/.lock"
  flock -w "$((START_TIMEOUT + STOP_TIMEOUT + 60))" "$lock_fd" || die "timed out waiting for another start/stop of $name"

  if pid="$(live_pid "$name")"; then
    local running_at
    running_at="$(cat "$dir/address" 2>/dev/null || true)"
    if [[ -n "$running_at" && "$running_at" != "$HOST:$port" ]]; then
      die "$name is already running at $running_at (pid $pid), not at $HOST:$port: stop it first"
    fi
    if probe "$name" "$pport"; then
      log "$name already running (pid $pid)"
      echo "$HOST:$port"
      return 0
    fi
    log "$name already started (pid $pid), waiting for it to answer"
  else
    rm -f "$(pid_file "$name")"
    for p in $(service_ports "$name"); do
      if tcp_open "$p"; then
        die "port $p on $HOST is already in use by another process (set STREAMPULSE_${name^^}_*PORT)"
      fi
    done
    [[ "$name" == jaeger ]] || check_java
    lib="$(fetch "$name")"
    "configure_$name" "$dir"
    if [[ "$name" == kafka ]]; then
      format_kafka "$dir" "$lib"
    fi
    local -a cmd
    mapfile -d '' cmd < <("${name}_command" "$dir" "$lib")
    {
      printf '# %s\n' "$(date -u +%FT%TZ)"
      printf '%q ' "${cmd[@]}"
      echo
    } >"$dir/command.sh"
    echo "$HOST:$port" >"$dir/address"
    echo "$pport" >"$dir/probe_port"
    LOG_OFFSET="$(stat -c %s "$(log_file "$name")" 2>/dev/null || echo 0)"
    log "starting $name $(version_of "$name") on $HOST:$port (state: $dir)"
    (cd "$dir" && launch "$(pid_file "$name")" "$dir/logs/console.log" "${cmd[@]}" {lock_fd}>&-)
    pid="$(<"$(pid_file "$name")")"
  fi

  local deadline=$((SECONDS + START_TIMEOUT)) started=$SECONDS
  while :; do
    if ! live_pid "$name" >/dev/null; then
      fail_start "$name" "the server process (pid $pid) exited"
    fi
    if probe "$name" "$pport"; then
      break
    fi
    if ((SECONDS >= deadline)); then
      fail_start "$name" "no answer on $HOST:$port within $START_TIMEOUT s"
    fi
    sleep 1
  done
  log "$name answers on $HOST:$port (pid $pid) after $((SECONDS - started)) s"
  exec {lock_fd}>&-
  echo "$HOST:$port"
}

stop() {
  local name=$1 dir pid lock_fd
  dir="$(state_dir "$name")"
  if [[ ! -d "$dir" ]]; then
    return 0
  fi
  exec {lock_fd}>"$dir/.lock"
  flock -w "$((START_TIMEOUT + STOP_TIMEOUT + 60))" "$lock_fd" || die "timed out waiting for another start/stop of $name"
  if pid="$(live_pid "$name")"; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not stop within $STOP_TIMEOUT s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      local i
      for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
      done
    fi
    log "$name stopped"
  fi
  rm -f "$(pid_file "$name")"
  exec {lock_fd}>&-
}

names_of() {
  if [[ "${1:-}" == all ]]; then
    echo "${SERVICES[@]}"
  else
    check_service "${1:-}"
    echo "$1"
  fi
}

main() {
  local command="${1:-help}" name
  case "$command" in
    help | -h | --help)
      usage
      ;;
    start)
      check_service "${2:-}"
      start "$2"
      ;;
    stop)
      for name in $(names_of "${2:-}"); do stop "$name"; done
      ;;
    restart)
      check_service "${2:-}"
      stop "$2"
      start "$2"
      ;;
    status)
      local rc=0 state
      if [[ "${2:-}" == all ]]; then
        for name in "${SERVICES[@]}"; do
          state="$(state_of "$name")"
          echo "$name: $state"
          [[ "$state" == running ]] || rc=3
        done
      else
        check_service "${2:-}"
        state="$(state_of "$2")"
        echo "$state"
        [[ "$state" == running ]] || rc=3
      fi
      return "$rc"
      ;;
    reset)
      for name in $(names_of "${2:-}"); do
        stop "$name"
        rm -rf "$(state_dir "$name")"
        log "$name: state deleted"
      done
      ;;
    fetch)
      for name in $(names_of "${2:-}"); do fetch "$name"; done
      ;;
    log)
      check_service "${2:-}"
      log_file "$2"
      ;;
    kafka-tls)
      [[ "$(state_of kafka)" == running ]] || die "kafka is not running: 'services.sh start kafka' first"
      echo "ssl=$HOST:$KAFKA_TLS_PORT sasl_ssl=$HOST:$KAFKA_SASL_PORT ca=$(state_dir kafka)/tls/ca.pem"
      ;;
    cassandra-tls)
      [[ "$(state_of cassandra)" == running ]] || die "cassandra is not running: 'services.sh start cassandra' first"
      echo "tls=$HOST:$CASSANDRA_PORT ca=$(state_dir cassandra)/tls/ca.pem"
      ;;
    jaeger-endpoints)
      [[ "$(state_of jaeger)" == running ]] || die "jaeger is not running: 'services.sh start jaeger' first"
      echo "otlp_http=$HOST:$JAEGER_OTLP_HTTP_PORT otlp_grpc=$HOST:$JAEGER_OTLP_GRPC_PORT query=$HOST:$JAEGER_QUERY_PORT"
      ;;
    kafka-user)
      [[ -n "${2:-}" && -n "${3:-}" ]] || die "usage: services.sh kafka-user NAME PASSWORD"
      [[ "$(state_of kafka)" == running ]] || die "kafka is not running: 'services.sh start kafka' first"
      local lib
      lib="$(fetch kafka)"
      "$JAVA" -cp "$lib/*" org.apache.kafka.tools.ConfigCommand --bootstrap-server "$HOST:$KAFKA_PORT" \
        --alter --entity-type users --entity-name "$2" \
        --add-config "SCRAM-SHA-512=[iterations=4096,password=$3]" >&2 \
        || die "creating the SCRAM user '$2' failed"
      ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
