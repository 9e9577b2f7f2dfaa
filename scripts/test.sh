#!/usr/bin/env bash
# Runs every test of the workspace. Starts the Kafka-protocol broker (nisshi, installed once into
# /opt/rill-tools) that the Kafka backend's tests need, unless RILL_KAFKA_BOOTSTRAP already
# points at one, and stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

broker_pid=""
cleanup() { if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

if [ -z "${RILL_KAFKA_BOOTSTRAP:-}" ] && [ -x scripts/kafka-broker.sh ]; then
  scripts/kafka-broker.sh install
  broker_pid=$(scripts/kafka-broker.sh start)
  export RILL_KAFKA_BOOTSTRAP=127.0.0.1:9092
fi

# A hung test (e.g. a client waiting on a broker forever) fails the run instead of stalling it.
status=0
timeout 2700 cargo test --workspace --locked "$@" || status=$?
if [ "$status" = 124 ]; then
  echo "tests did not finish within 45 minutes" >&2
fi
exit "$status"
