#!/usr/bin/env bash
# Runs every test of the workspace. Installs Apache Kafka (once, into /opt/rill-tools, from
# Maven Central), schemathesis (once, from PyPI), Chromium and PostgreSQL (Debian) and
# playwright-core (npm); starts PostgreSQL on loopback unless RILL_POSTGRES_URL is set, and
# three brokers for the Kafka backend's tests unless RILL_KAFKA_BOOTSTRAP already points at a
# cluster; stops them afterwards. The cluster test
# (crates/rill/tests/cluster_kafka.rs) starts and kills brokers of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

started=""
pg_started=""
cleanup() {
  if [ -n "$started" ]; then scripts/kafka.sh stop || true; fi
  if [ -n "$pg_started" ]; then scripts/postgres.sh stop || true; fi
}
trap cleanup EXIT

scripts/kafka.sh install

# schemathesis, the OpenAPI fuzzer of crates/rill/tests/openapi_fuzz.rs, in a virtualenv of its
# own (pinned: a newer release may add checks, which is a change to make on purpose).
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_HOME=${SCHEMATHESIS_HOME:-/opt/rill-tools/schemathesis-$SCHEMATHESIS_VERSION}
if [ ! -x "$SCHEMATHESIS_HOME/bin/schemathesis" ]; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $SCHEMATHESIS_HOME" >&2
  python3 -m venv "$SCHEMATHESIS_HOME"
  "$SCHEMATHESIS_HOME/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi
export RILL_SCHEMATHESIS="$SCHEMATHESIS_HOME/bin/schemathesis"
export RILL_REQUIRE_SCHEMATHESIS=1

# The dashboard's browser test (crates/rill/tests/dashboard_browser.rs): Debian's Chromium and
# playwright-core (pinned in tests/browser/package-lock.json).
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Chromium (Debian package)" >&2
  if [ "$(id -u)" = 0 ]; then apt_get() { apt-get "$@"; }; else apt_get() { sudo apt-get "$@"; }; fi
  apt_get update -qq
  DEBIAN_FRONTEND=noninteractive apt_get install -y -qq chromium >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi
export RILL_REQUIRE_BROWSER=1
if [ -z "${RILL_KAFKA_BOOTSTRAP:-}" ]; then
  started=yes
  RILL_KAFKA_BOOTSTRAP=$(scripts/kafka.sh start --brokers 3)
  export RILL_KAFKA_BOOTSTRAP
  echo "Kafka brokers at $RILL_KAFKA_BOOTSTRAP" >&2
fi

# PostgreSQL (Debian's package) for the PostgreSQL source's tests
# (crates/rill-connect-postgres/tests), unless RILL_POSTGRES_URL already points at a server
# with wal_level=logical.
if [ -z "${RILL_POSTGRES_URL:-}" ]; then
  pg_started=yes
  RILL_POSTGRES_URL=$(scripts/postgres.sh start)
  export RILL_POSTGRES_URL
fi
export RILL_REQUIRE_POSTGRES=1

# A hung test (e.g. a client waiting on a broker forever) fails the run instead of stalling it.
status=0
timeout 2700 cargo test --workspace --locked "$@" || status=$?
if [ "$status" = 124 ]; then
  echo "tests did not finish within 45 minutes" >&2
fi
exit "$status"
