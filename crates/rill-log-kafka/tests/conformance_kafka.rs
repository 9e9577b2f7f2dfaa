//! The `rill-log` conformance suite, unchanged, against the Kafka backend on a real broker:
//! Apache Kafka 4.4.0 (three KRaft brokers on loopback, started by `scripts/kafka.sh`).
//!
//! NEEDS A BROKER at `RILL_KAFKA_BOOTSTRAP`; without it every case FAILS with instructions
//! (`scripts/kafka.sh install && scripts/kafka.sh start --brokers 3`, then
//! `RILL_KAFKA_BOOTSTRAP=<the list it prints>`). `scripts/test.sh` does both.

use std::sync::Arc;
use std::time::Duration;

use rill_log::{ConsumerConfig, Log, Result};
use rill_log_conformance::{Capabilities, Feature, Harness};
use rill_log_kafka::{KafkaConfig, KafkaLog};

/// A Kafka log on the broker named by `RILL_KAFKA_BOOTSTRAP`; restart makes new clients.
struct KafkaHarness {
    log: Arc<KafkaLog>,
}

impl KafkaHarness {
    fn new() -> Self {
        Self {
            log: Self::connect(),
        }
    }

    fn connect() -> Arc<KafkaLog> {
        let bootstrap = std::env::var("RILL_KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
            panic!(
                "RILL_KAFKA_BOOTSTRAP is not set: the Kafka conformance cases need a Kafka \
                 broker. Start one with `scripts/kafka.sh install && scripts/kafka.sh start \
                 --brokers 3` and run with RILL_KAFKA_BOOTSTRAP set to the list it prints"
            )
        });
        let config = KafkaConfig::new(bootstrap).request_timeout(Duration::from_secs(20));
        Arc::new(KafkaLog::new(config).expect("kafka log"))
    }
}

impl Harness for KafkaHarness {
    fn backend(&self) -> &str {
        "kafka"
    }

    fn log(&self) -> Arc<dyn Log> {
        self.log.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
            .without(
                Feature::Cleaner,
                "the broker runs retention and compaction on its own schedule",
            )
            .without(Feature::TornWrites, "the broker's files are out of reach")
    }

    fn restart(&mut self) -> Result<()> {
        self.log = Self::connect();
        Ok(())
    }

    fn tune_consumer(&self, config: &mut ConsumerConfig) {
        config.session_timeout = Some(Duration::from_secs(10));
    }
}

rill_log_conformance::conformance_suite!(
    harness: KafkaHarness::new(),
    unsupported: [
        cleaner = "unsupported by kafka: the broker runs retention and compaction on its own schedule",
        torn_writes = "unsupported by kafka: the broker's files are out of reach",
    ],
);
