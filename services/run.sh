#!/usr/bin/env bash
# Local Kafka (KRaft, single node) and Redis without Docker.
#
#   services/run.sh up                  start both (idempotent), wait until ready
#   services/run.sh down [--wipe]       stop both; --wipe also deletes their data and logs
#   services/run.sh clean               down + delete everything, including the jar cache
#   services/run.sh status              show state; exit 0 only if both are ready
#   services/run.sh logs [kafka|redis] [-f]
#
# Environment:
#   SERVICES_DIR           state directory      (default: <repo>/.services)
#   KAFKA_PORT             client port          (default: 9092)
#   KAFKA_CONTROLLER_PORT  controller port      (default: 9093)
#   REDIS_PORT             redis port           (default: 6379)
#   KAFKA_HEAP_OPTS        broker heap          (default: -Xms256m -Xmx512m)
#   KAFKA_JVM_OPTS         extra broker JVM options
#   SERVICES_TIMEOUT       readiness timeout, seconds (default: 90)
#   KAFKA_LIBS_DIR         Kafka jar cache      (default: $SERVICES_DIR/cache/kafka-libs)
#
# Kafka runs from jars resolved from Maven Central by services/kafka/pom.xml,
# cached in $KAFKA_LIBS_DIR and keyed on the pom's hash. A second set of services
# (the reliability suite's own broker) points KAFKA_LIBS_DIR at the first one's
# cache instead of resolving the same jars again.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"

SERVICES_DIR="${SERVICES_DIR:-$REPO_ROOT/.services}"
mkdir -p "$SERVICES_DIR"
SERVICES_DIR="$(cd "$SERVICES_DIR" && pwd)"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
REDIS_PORT="${REDIS_PORT:-6379}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
TIMEOUT="${SERVICES_TIMEOUT:-90}"
STOP_GRACE=30

KAFKA_POM="$SCRIPT_DIR/kafka/pom.xml"
KAFKA_LOG4J="$SCRIPT_DIR/kafka/log4j2.yaml"
KAFKA_LIBS="${KAFKA_LIBS_DIR:-$SERVICES_DIR/cache/kafka-libs}"
KAFKA_DIR="$SERVICES_DIR/kafka"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_LOG="$KAFKA_DIR/kafka.log"

REDIS_CONF="$SCRIPT_DIR/redis/redis.conf"
REDIS_DIR="$SERVICES_DIR/redis"
REDIS_PID="$REDIS_DIR/redis.pid"
REDIS_LOG="$REDIS_DIR/redis.log"

VENV_PY="$REPO_ROOT/.venv/bin/python"
JAVA="java"

log() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers

port_open() { # port -> 0 if something accepts TCP connections on 127.0.0.1:port
    # shellcheck disable=SC2016  # $1 is expanded by the inner shell
    timeout 2 bash -c ': </dev/tcp/127.0.0.1/"$1"' _ "$1" 2>/dev/null
}

# alive pid -> 0 if the process exists and is not a zombie (a zombie can
# linger when PID 1 in a container does not reap orphans).
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    [[ ! -r "/proc/$1/stat" ]] || [[ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]]
}

cmdline_of() { # pid -> command line (procps may be missing in slim images)
    if [[ -r "/proc/$1/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$1/cmdline"
    else
        ps -ww -p "$1" -o args= 2>/dev/null
    fi
}

# pid_of file pattern -> prints the pid if it is alive and its command line
# matches pattern (guards against a stale pid file whose pid was reused).
pid_of() {
    local pid
    [[ -f "$1" ]] || return 1
    pid="$(<"$1")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    cmdline_of "$pid" | grep -q -- "$2" || return 1
    printf '%s\n' "$pid"
}

# stop_pid name pidfile pattern: SIGTERM, wait up to STOP_GRACE s, then SIGKILL.
stop_pid() {
    local name="$1" pidfile="$2" pattern="$3" pid i
    if ! pid="$(pid_of "$pidfile" "$pattern")"; then
        rm -f "$pidfile"
        log "$name: not running"
        return 0
    fi
    log "$name: stopping (pid $pid)…"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_GRACE * 10; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        log "$name: still running after ${STOP_GRACE}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while alive "$pid"; do sleep 0.1; done
    fi
    rm -f "$pidfile"
    log "$name: stopped"
}

show_log_tail() { # name logfile
    if [[ -f "$2" ]]; then
        printf -- '--- last 40 lines of %s ---\n' "$2" >&2
        tail -n 40 "$2" >&2
        printf -- '---\n' >&2
    fi
}

is_debian_like() { command -v apt-get >/dev/null 2>&1; }

# apt_install pkg... : install when root on Debian/Ubuntu, else say what to run.
apt_install() {
    if is_debian_like && [[ "$(id -u)" == 0 ]]; then
        log "installing: $* (apt-get)…"
        local apt_log="$SERVICES_DIR/apt.log"
        if ! { apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"; } \
            >"$apt_log" 2>&1; then
            tail -n 30 "$apt_log" >&2
            die "apt-get install $* failed (full output: $apt_log)"
        fi
        rm -f "$apt_log"
    elif is_debian_like; then
        die "missing packages; run: sudo apt-get update && sudo apt-get install -y $*"
    else
        die "missing: $* (install them with your package manager)"
    fi
}

java_major() { # java binary -> major version number
    "$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\)\(\.[0-9]*\)*.*".*/\1/p' | head -n 1
}

find_java() {
    local candidates=() c v
    [[ -n "${JAVA_HOME:-}" ]] && candidates+=("$JAVA_HOME/bin/java")
    command -v java >/dev/null 2>&1 && candidates+=("$(command -v java)")
    for c in /usr/lib/jvm/*/bin/java; do [[ -x "$c" ]] && candidates+=("$c"); done
    for c in "${candidates[@]}"; do
        v="$(java_major "$c" || true)"
        if [[ -n "$v" && "$v" -ge 17 ]]; then
            JAVA="$c"
            return 0
        fi
    done
    return 1
}

# ---------------------------------------------------------------- prerequisites

check_prereqs() {
    local pkgs=()
    find_java || pkgs+=(openjdk-17-jre-headless)
    # Maven is only needed when the jar cache is missing or stale.
    if ! kafka_libs_fresh && ! command -v mvn >/dev/null 2>&1; then pkgs+=(maven); fi
    command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
    command -v redis-cli >/dev/null 2>&1 || pkgs+=(redis-tools)
    # The analyst endpoint's end-to-end tests drive it with curl, as an analyst would.
    command -v curl >/dev/null 2>&1 || pkgs+=(curl)
    if ((${#pkgs[@]})); then
        log "prerequisites missing: ${pkgs[*]}"
        apt_install "${pkgs[@]}"
        find_java || die "Java 17+ still not found after installing openjdk-17-jre-headless"
    fi
}

# ---------------------------------------------------------------- kafka

pom_hash() { sha256sum "$KAFKA_POM" | cut -d' ' -f1; }

kafka_libs_fresh() {
    [[ -f "$KAFKA_LIBS/.pom.sha256" && "$(<"$KAFKA_LIBS/.pom.sha256")" == "$(pom_hash)" ]]
}

kafka_version() { # from the kafka_2.13-<version>.jar in the cache
    local jar
    for jar in "$KAFKA_LIBS"/kafka_2.13-*.jar; do
        [[ -f "$jar" ]] || continue
        jar="${jar##*/kafka_2.13-}"
        printf '%s\n' "${jar%.jar}"
        return 0
    done
    echo "unknown"
}

kafka_resolve() {
    if kafka_libs_fresh; then return 0; fi
    command -v mvn >/dev/null 2>&1 || die "Maven (mvn) is required to resolve the Kafka jars"
    log "kafka: resolving jars from Maven Central…"
    local start=$SECONDS tmp="$KAFKA_LIBS.tmp.$$"
    rm -rf "$tmp"
    # Resolve into a temp dir and swap, so a failed download never leaves a
    # half-populated cache behind.
    if ! mvn -B -q -f "$KAFKA_POM" dependency:copy-dependencies \
        -DoutputDirectory="$tmp" >"$SERVICES_DIR/mvn.log" 2>&1; then
        cat "$SERVICES_DIR/mvn.log" >&2
        rm -rf "$tmp"
        die "kafka: Maven could not resolve the jars (see output above)"
    fi
    pom_hash >"$tmp/.pom.sha256"
    rm -rf "$KAFKA_LIBS"
    mkdir -p "$(dirname "$KAFKA_LIBS")"
    mv "$tmp" "$KAFKA_LIBS"
    rm -f "$SERVICES_DIR/mvn.log"
    log "kafka: resolved $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars ($(kafka_version)) in $((SECONDS - start))s"
}

kafka_render_config() {
    mkdir -p "$KAFKA_DATA"
    sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
        -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@KAFKA_LOG_DIRS@|$KAFKA_DATA|g" \
        "$SCRIPT_DIR/kafka/server.properties" >"$KAFKA_PROPS"
}

kafka_tool() { # main-class args... : run a Kafka CLI class quietly
    "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 \
        -Dlog4j2.configurationFile="$KAFKA_LOG4J" -Dservices.log.level=WARN \
        -cp "$KAFKA_LIBS/*" "$@"
}

kafka_format() {
    # meta.properties marks a formatted log dir; formatting only happens once.
    [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
    local cluster_id
    cluster_id="$(kafka_tool kafka.tools.StorageTool random-uuid | tail -n 1)" || cluster_id=""
    [[ "$cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "kafka: could not generate a cluster id"
    log "kafka: formatting storage (cluster id $cluster_id)…"
    kafka_tool kafka.tools.StorageTool format --config "$KAFKA_PROPS" \
        --cluster-id="$cluster_id" --ignore-formatted >>"$KAFKA_LOG" 2>&1 ||
        { show_log_tail kafka "$KAFKA_LOG"; die "kafka: storage format failed"; }
}

# Readiness: the port accepts connections and a metadata request returns this
# broker. Uses aiokafka from the project venv when available (fast), otherwise
# Kafka's own BrokerApiVersionsCommand from the cached jars.
KAFKA_PROBE=""
kafka_pick_probe() {
    if [[ -x "$VENV_PY" ]] && "$VENV_PY" -c 'import aiokafka' >/dev/null 2>&1; then
        KAFKA_PROBE=python
    else
        KAFKA_PROBE=java
    fi
}

kafka_ready() {
    port_open "$KAFKA_PORT" || return 1
    [[ -n "$KAFKA_PROBE" ]] || kafka_pick_probe
    if [[ "$KAFKA_PROBE" == python ]]; then
        timeout 15 "$VENV_PY" - "$KAFKA_PORT" >/dev/null 2>&1 <<'PY'
import asyncio, sys
from aiokafka.client import AIOKafkaClient

async def main(port):
    client = AIOKafkaClient(bootstrap_servers=f"127.0.0.1:{port}",
                            request_timeout_ms=5000, metadata_max_age_ms=5000)
    try:
        await client.bootstrap()
        ok = await client.force_metadata_update()
        return ok and len(client.cluster.brokers()) > 0
    finally:
        await client.close()

sys.exit(0 if asyncio.run(main(int(sys.argv[1]))) else 1)
PY
    else
        timeout 30 "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 \
            -Dlog4j2.configurationFile="$KAFKA_LOG4J" -Dservices.log.level=ERROR \
            -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.BrokerApiVersionsCommand \
            --bootstrap-server "127.0.0.1:$KAFKA_PORT" 2>/dev/null |
            grep -q "(id: 1 "
    fi
}

kafka_up() {
    local pid
    if pid="$(pid_of "$KAFKA_PID" kafka.Kafka)"; then
        if kafka_ready; then
            log "kafka: already running (pid $pid) on 127.0.0.1:$KAFKA_PORT ($(kafka_version))"
            if ! kafka_libs_fresh; then
                log "kafka: note: services/kafka/pom.xml changed; run 'down' then 'up' to switch versions"
            fi
            return 0
        fi
        log "kafka: running (pid $pid) but not answering yet, waiting…"
    else
        rm -f "$KAFKA_PID"
        if port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; then
            die "kafka: port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT is already in use by a process not started by this script; stop it or set KAFKA_PORT / KAFKA_CONTROLLER_PORT"
        fi
        kafka_resolve
        kafka_render_config
        kafka_format
        log "kafka: starting on 127.0.0.1:$KAFKA_PORT…"
        # Word splitting of the option strings is intended. "9>&-" keeps the
        # long-lived process from inheriting (and holding) the script's lock.
        # shellcheck disable=SC2086
        nohup "$JAVA" -server $KAFKA_HEAP_OPTS \
            -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
            -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
            -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
            $KAFKA_JVM_OPTS \
            -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
            >>"$KAFKA_LOG" 2>&1 </dev/null 9>&- &
        pid=$!
        echo "$pid" >"$KAFKA_PID"
    fi
    wait_ready kafka "$pid" "$KAFKA_LOG" kafka_ready
    log "kafka: ready on 127.0.0.1:$KAFKA_PORT ($(kafka_version))"
}

# ---------------------------------------------------------------- redis

redis_ready() {
    [[ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}

redis_up() {
    local pid
    if pid="$(pid_of "$REDIS_PID" redis-server)"; then
        if redis_ready; then
            log "redis: already running (pid $pid) on 127.0.0.1:$REDIS_PORT"
            return 0
        fi
        log "redis: running (pid $pid) but not answering yet, waiting…"
    else
        rm -f "$REDIS_PID"
        if port_open "$REDIS_PORT"; then
            # Typically the distribution's own redis-server service, started by
            # the package install on hosts with an init system. It is just as
            # good for tests, so reuse it rather than fight over the port.
            if redis_ready; then
                log "redis: reusing the redis already answering on 127.0.0.1:$REDIS_PORT (not managed by this script)"
                return 0
            fi
            die "redis: port $REDIS_PORT is in use by something that does not answer PING; stop it or set REDIS_PORT"
        fi
        mkdir -p "$REDIS_DIR"
        log "redis: starting on 127.0.0.1:$REDIS_PORT…"
        # "9>&-": see kafka_up.
        nohup redis-server "$REDIS_CONF" --port "$REDIS_PORT" --dir "$REDIS_DIR" \
            >>"$REDIS_LOG" 2>&1 </dev/null 9>&- &
        pid=$!
        echo "$pid" >"$REDIS_PID"
    fi
    wait_ready redis "$pid" "$REDIS_LOG" redis_ready
    log "redis: ready on 127.0.0.1:$REDIS_PORT ($(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p'))"
}

# wait_ready name pid logfile check-function
wait_ready() {
    local name="$1" pid="$2" logfile="$3" check="$4" deadline=$((SECONDS + TIMEOUT))
    until "$check"; do
        if ! alive "$pid"; then
            show_log_tail "$name" "$logfile"
            die "$name: process exited during startup"
        fi
        if ((SECONDS >= deadline)); then
            show_log_tail "$name" "$logfile"
            die "$name: not ready after ${TIMEOUT}s (still running as pid $pid; 'services/run.sh down' stops it)"
        fi
        sleep 1
    done
}

# ---------------------------------------------------------------- commands

# Serialise up/down/clean: make targets that all depend on `up` may run in
# parallel (make -j), and two concurrent starts would race for the ports.
take_lock() {
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>"$SERVICES_DIR/.lock"
    flock -w 300 9 || die "another services/run.sh is still running (lock: $SERVICES_DIR/.lock)"
}

cmd_up() {
    take_lock
    check_prereqs
    kafka_up
    redis_up
}

cmd_down() {
    take_lock
    stop_pid kafka "$KAFKA_PID" kafka.Kafka
    stop_pid redis "$REDIS_PID" redis-server
    if [[ "${1:-}" == --wipe ]]; then
        rm -rf "$KAFKA_DIR" "$REDIS_DIR"
        log "wiped kafka and redis data under $SERVICES_DIR (jar cache kept)"
    elif [[ -n "${1:-}" ]]; then
        die "unknown option for down: $1"
    fi
}

cmd_clean() {
    cmd_down
    rm -rf "$SERVICES_DIR"
    log "removed $SERVICES_DIR"
}

cmd_status() {
    local rc=0 pid
    if pid="$(pid_of "$KAFKA_PID" kafka.Kafka)"; then
        find_java || true
        if kafka_ready; then
            log "kafka: ready    pid $pid  127.0.0.1:$KAFKA_PORT  $(kafka_version)  data $KAFKA_DATA"
        else
            log "kafka: running  pid $pid  127.0.0.1:$KAFKA_PORT  (not answering)"
            rc=3
        fi
    else
        log "kafka: stopped"
        rc=3
    fi
    if pid="$(pid_of "$REDIS_PID" redis-server)"; then
        if redis_ready; then
            log "redis: ready    pid $pid  127.0.0.1:$REDIS_PORT"
        else
            log "redis: running  pid $pid  127.0.0.1:$REDIS_PORT  (not answering)"
            rc=3
        fi
    elif command -v redis-cli >/dev/null 2>&1 && redis_ready; then
        log "redis: ready    127.0.0.1:$REDIS_PORT  (external, not managed by this script)"
    else
        log "redis: stopped"
        rc=3
    fi
    return "$rc"
}

cmd_logs() {
    local which="" follow=() files=() a
    for a in "$@"; do
        case "$a" in
            kafka | redis) which="$a" ;;
            -f | --follow) follow=(-F) ;;
            *) die "usage: $0 logs [kafka|redis] [-f]" ;;
        esac
    done
    [[ "$which" != redis && -f "$KAFKA_LOG" ]] && files+=("$KAFKA_LOG")
    [[ "$which" != kafka && -f "$REDIS_LOG" ]] && files+=("$REDIS_LOG")
    ((${#files[@]})) || die "no log files under $SERVICES_DIR yet"
    tail -n 100 "${follow[@]}" "${files[@]}"
}

usage() {
    sed -n '2,9s/^# \{0,1\}//p' "$0"
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
        up) cmd_up "$@" ;;
        down) cmd_down "$@" ;;
        clean) cmd_clean ;;
        status) cmd_status ;;
        logs) cmd_logs "$@" ;;
        -h | --help | help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
