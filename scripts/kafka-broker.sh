#!/usr/bin/env bash
# The Kafka-protocol broker the rill-log-kafka broker tests run against: nisshi 0.8.1 on loopback.
#
#   scripts/kafka-broker.sh install   build nisshi into $NISSHI_ROOT (skipped when the binary exists)
#   scripts/kafka-broker.sh start     start it on 127.0.0.1:9092 in the background, wait for the
#                                     port, print the pid (log: $NISSHI_LOG)
#   scripts/kafka-broker.sh stop PID  stop the broker started with that pid
#
# Then run the broker tests with RILL_KAFKA_BOOTSTRAP=127.0.0.1:9092.
# nisshi 0.8.1 declares rust-version 1.96; it builds and runs with 1.95 (--ignore-rust-version).
# Installing takes about 13-20 minutes on 2 cores, so it is done once per machine.
set -euo pipefail

NISSHI_VERSION=0.8.1
NISSHI_ROOT=${NISSHI_ROOT:-/opt/rill-tools/nisshi-$NISSHI_VERSION}
NISSHI_BIN=$NISSHI_ROOT/bin/nisshi
NISSHI_ADDR=${NISSHI_ADDR:-127.0.0.1:9092}
NISSHI_LOG=${NISSHI_LOG:-/tmp/nisshi-broker.log}
WAIT_SECS=${NISSHI_WAIT_SECS:-30}

install() {
    if [[ -x $NISSHI_BIN ]]; then
        echo "nisshi $NISSHI_VERSION already installed at $NISSHI_BIN" >&2
        return 0
    fi
    echo "installing nisshi $NISSHI_VERSION into $NISSHI_ROOT (takes a while)" >&2
    cargo install nisshi --version "$NISSHI_VERSION" --locked --ignore-rust-version \
        --root "$NISSHI_ROOT"
}

port_open() {
    local host=${NISSHI_ADDR%:*} port=${NISSHI_ADDR##*:}
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

start() {
    if [[ ! -x $NISSHI_BIN ]]; then
        echo "nisshi is not installed at $NISSHI_BIN: run '$0 install' first" >&2
        exit 1
    fi
    if port_open; then
        echo "something already listens on $NISSHI_ADDR; not starting another broker" >&2
        exit 1
    fi
    nohup "$NISSHI_BIN" broker \
        --listener-url "tcp://$NISSHI_ADDR" \
        --advertised-listener-url "tcp://$NISSHI_ADDR" \
        --storage-engine memory://nisshi/ \
        --group-initial-rebalance-delay 0s \
        >"$NISSHI_LOG" 2>&1 </dev/null &
    local pid=$!
    local deadline=$((SECONDS + WAIT_SECS))
    until port_open; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "nisshi exited before listening; its log ($NISSHI_LOG):" >&2
            tail -n 50 "$NISSHI_LOG" >&2 || true
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            echo "nisshi did not listen on $NISSHI_ADDR within ${WAIT_SECS}s" >&2
            kill "$pid" 2>/dev/null || true
            exit 1
        fi
        sleep 0.1
    done
    echo "$pid"
}

stop() {
    local pid=${1:?usage: $0 stop PID}
    kill "$pid" 2>/dev/null || true
}

case ${1:-} in
    install) install ;;
    start) start ;;
    stop) shift; stop "$@" ;;
    *)
        echo "usage: $0 install | start | stop PID" >&2
        exit 2
        ;;
esac
