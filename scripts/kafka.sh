#!/usr/bin/env bash
# Apache Kafka 4.4.0 on loopback, installed from Maven Central: the broker of record for the
# Kafka backend's tests (transactions, read-committed, fencing, replication, brokers to kill).
#
#   scripts/kafka.sh install                  fetch Kafka's jars with Maven into $KAFKA_HOME
#                                             (skipped when already there)
#   scripts/kafka.sh start [--brokers N]      format and start N (1 or 3) combined
#                                             broker+controller nodes in KRaft mode on 127.0.0.1,
#                                             wait until the cluster answers, print the bootstrap
#                                             list on stdout
#   scripts/kafka.sh stop                     stop every broker this script started
#   scripts/kafka.sh kill-broker ID           SIGKILL broker ID (1..N), for failure tests
#   scripts/kafka.sh start-broker ID          start broker ID again on its existing storage
#
# Broker N listens on 127.0.0.1:$((KAFKA_BASE_PORT + N - 1)) (default 19092, 19093, 19094) and
# its controller on 127.0.0.1:$((KAFKA_BASE_PORT + 100 + N - 1)). Data and logs live in
# $KAFKA_RUN (default /tmp/rill-kafka); `start` wipes it, so every start is a fresh cluster.
set -euo pipefail

KAFKA_VERSION=4.4.0
KAFKA_HOME=${KAFKA_HOME:-/opt/rill-tools/kafka-$KAFKA_VERSION}
KAFKA_RUN=${KAFKA_RUN:-/tmp/rill-kafka}
KAFKA_BASE_PORT=${KAFKA_BASE_PORT:-19092}
KAFKA_HEAP=${KAFKA_HEAP:-512m}
WAIT_SECS=${KAFKA_WAIT_SECS:-90}
# The cluster id is fixed so that a restarted broker rejoins the storage it was formatted with.
CLUSTER_ID=${KAFKA_CLUSTER_ID:-cmlsbC1rYWZrYS10ZXN0}

log() { echo "kafka.sh: $*" >&2; }

install() {
    if [[ -f $KAFKA_HOME/.installed ]]; then
        log "Kafka $KAFKA_VERSION already installed at $KAFKA_HOME"
        return 0
    fi
    command -v java >/dev/null || { log "java is not on PATH (Kafka needs Java 17)"; exit 1; }
    command -v mvn >/dev/null || { log "mvn is not on PATH (Kafka is installed with Maven)"; exit 1; }
    log "installing Kafka $KAFKA_VERSION from Maven Central into $KAFKA_HOME"
    mkdir -p "$KAFKA_HOME"
    cat >"$KAFKA_HOME/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rill.tools</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <!-- Kafka's own slf4j-api resolves to 1.7; the log4j binding below needs 2.x. -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-api</artifactId>
      <version>2.0.17</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId>
      <version>2.24.3</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>2.24.3</version>
    </dependency>
  </dependencies>
</project>
EOF
    (cd "$KAFKA_HOME" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=libs)
    cat >"$KAFKA_HOME/log4j2.properties" <<'EOF'
status = error
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka.server.KafkaRaftServer
logger.kafka.level = INFO
EOF
    touch "$KAFKA_HOME/.installed"
    log "installed ($(ls "$KAFKA_HOME/libs" | wc -l) jars)"
}

broker_port() { echo $((KAFKA_BASE_PORT + $1 - 1)); }
controller_port() { echo $((KAFKA_BASE_PORT + 100 + $1 - 1)); }

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The JVM's options for node $1 (heap, GC, logging).
java_opts() {
    local id=$1
    echo "-Xms128m -Xmx$KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
-Dlog4j2.configurationFile=$KAFKA_HOME/log4j2.properties -Dkafka.logs.dir=$KAFKA_RUN/node-$id/logs"
}

java_cmd() {
    local id=$1
    shift
    # shellcheck disable=SC2046 # the options are words
    java $(java_opts "$id") -cp "$KAFKA_HOME/libs/*" "$@"
}

write_config() {
    local id=$1 brokers=$2 voters="" bootstrap="" i
    for ((i = 1; i <= brokers; i++)); do
        voters+="${voters:+,}$i@127.0.0.1:$(controller_port "$i")"
        bootstrap+="${bootstrap:+,}127.0.0.1:$(controller_port "$i")"
    done
    local replication=$((brokers < 3 ? brokers : 3))
    local min_isr=$((replication > 1 ? 2 : 1))
    mkdir -p "$KAFKA_RUN/node-$id/data" "$KAFKA_RUN/node-$id/logs"
    cat >"$KAFKA_RUN/node-$id/server.properties" <<EOF
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
controller.quorum.bootstrap.servers=$bootstrap
listeners=PLAINTEXT://127.0.0.1:$(broker_port "$id"),CONTROLLER://127.0.0.1:$(controller_port "$id")
advertised.listeners=PLAINTEXT://127.0.0.1:$(broker_port "$id")
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_RUN/node-$id/data
num.partitions=1
default.replication.factor=$replication
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replication
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=$replication
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=$replication
share.coordinator.state.topic.min.isr=$min_isr
# Tests create and join many short-lived groups: no waiting for more members to arrive.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
num.network.threads=2
num.io.threads=4
log.segment.bytes=67108864
log.retention.check.interval.ms=10000
EOF
}

start_node() {
    local id=$1
    local port
    port=$(broker_port "$id")
    if port_open "$port"; then
        log "something already listens on 127.0.0.1:$port; not starting broker $id"
        exit 1
    fi
    # nohup execs java, so the pid recorded is the JVM's own: stopping waits for the JVM.
    # shellcheck disable=SC2046
    nohup java $(java_opts "$id") -cp "$KAFKA_HOME/libs/*" kafka.Kafka \
        "$KAFKA_RUN/node-$id/server.properties" \
        >"$KAFKA_RUN/node-$id/broker.log" 2>&1 </dev/null &
    echo $! >"$KAFKA_RUN/node-$id/pid"
}

wait_node() {
    local id=$1 deadline=$((SECONDS + WAIT_SECS)) port pid
    port=$(broker_port "$id")
    pid=$(cat "$KAFKA_RUN/node-$id/pid")
    until port_open "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "broker $id exited before listening; its log ($KAFKA_RUN/node-$id/broker.log):"
            tail -n 40 "$KAFKA_RUN/node-$id/broker.log" >&2 || true
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            log "broker $id did not listen on 127.0.0.1:$port within ${WAIT_SECS}s"
            exit 1
        fi
        sleep 0.2
    done
}

bootstrap_list() {
    local brokers=$1 list="" i
    for ((i = 1; i <= brokers; i++)); do
        list+="${list:+,}127.0.0.1:$(broker_port "$i")"
    done
    echo "$list"
}

# Waits until the cluster's metadata lists every broker (a listening port is not yet a broker
# that the controller has registered).
wait_cluster() {
    local brokers=$1 deadline=$((SECONDS + WAIT_SECS)) seen
    while true; do
        seen=$(java_cmd 1 org.apache.kafka.tools.BrokerApiVersionsCommand \
            --bootstrap-server "$(bootstrap_list "$brokers")" 2>/dev/null |
            grep -c '^127.0.0.1:.*(id:' || true)
        if ((seen >= brokers)); then
            return 0
        fi
        if ((SECONDS >= deadline)); then
            log "the cluster did not register $brokers brokers within ${WAIT_SECS}s (saw $seen)"
            exit 1
        fi
        sleep 0.5
    done
}

start() {
    local brokers=1
    while (($#)); do
        case $1 in
            --brokers) brokers=${2:?--brokers needs a number}; shift 2 ;;
            *) log "unknown option $1"; exit 2 ;;
        esac
    done
    if ((brokers < 1 || brokers > 9)); then
        log "--brokers must be between 1 and 9"
        exit 2
    fi
    if [[ ! -f $KAFKA_HOME/.installed ]]; then
        log "Kafka is not installed at $KAFKA_HOME: run '$0 install' first"
        exit 1
    fi
    stop_all quiet
    rm -rf "$KAFKA_RUN"
    mkdir -p "$KAFKA_RUN"
    echo "$brokers" >"$KAFKA_RUN/brokers"
    local i
    for ((i = 1; i <= brokers; i++)); do
        write_config "$i" "$brokers"
        java_cmd "$i" kafka.tools.StorageTool format --ignore-formatted -t "$CLUSTER_ID" \
            -c "$KAFKA_RUN/node-$i/server.properties" >"$KAFKA_RUN/node-$i/format.log" 2>&1 || {
            log "formatting broker $i failed:"
            cat "$KAFKA_RUN/node-$i/format.log" >&2
            exit 1
        }
    done
    for ((i = 1; i <= brokers; i++)); do start_node "$i"; done
    for ((i = 1; i <= brokers; i++)); do wait_node "$i"; done
    wait_cluster "$brokers"
    log "$brokers broker(s) up; logs in $KAFKA_RUN/node-*/broker.log"
    bootstrap_list "$brokers"
}

stop_node() {
    local id=$1 signal=${2:-TERM} pidfile="$KAFKA_RUN/node-$1/pid" pid
    [[ -f $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    kill "-$signal" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

stop_all() {
    [[ -d $KAFKA_RUN ]] || return 0
    local dir
    for dir in "$KAFKA_RUN"/node-*; do
        [[ -d $dir ]] || continue
        stop_node "${dir##*-}"
    done
    [[ ${1:-} == quiet ]] || log "stopped"
}

case ${1:-} in
    install) install ;;
    start) shift; start "$@" ;;
    stop) stop_all ;;
    kill-broker) stop_node "${2:?broker id}" KILL ;;
    start-broker)
        start_node "${2:?broker id}"
        wait_node "$2"
        ;;
    *)
        echo "usage: $0 install | start [--brokers N] | stop | kill-broker ID | start-broker ID" >&2
        exit 2
        ;;
esac
