//! The `rill-log` conformance suite, unchanged, against the Kafka backend on a real broker:
//! nisshi 0.8.1 on loopback.
//!
//! NEEDS A BROKER at `RILL_KAFKA_BOOTSTRAP`; without it every case FAILS with instructions
//! (`scripts/kafka-broker.sh install && scripts/kafka-broker.sh start`, then
//! `RILL_KAFKA_BOOTSTRAP=127.0.0.1:9092`).

use std::sync::Arc;
use std::time::Duration;

use rill_log::{ConsumerConfig, Log, Result};
use rill_log_conformance::{Capabilities, Feature, Harness};
use rill_log_kafka::{KafkaConfig, KafkaLog};

/// A Kafka log on the broker named by `RILL_KAFKA_BOOTSTRAP`; restart makes new clients.
struct NisshiHarness {
    log: Arc<KafkaLog>,
}

impl NisshiHarness {
    fn new() -> Self {
        Self {
            log: Self::connect(),
        }
    }

    fn connect() -> Arc<KafkaLog> {
        let bootstrap = std::env::var("RILL_KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
            panic!(
                "RILL_KAFKA_BOOTSTRAP is not set: the Kafka conformance cases need a \
                 Kafka-protocol broker. Start one with `scripts/kafka-broker.sh install && \
                 scripts/kafka-broker.sh start` (nisshi on 127.0.0.1:9092) and run with \
                 RILL_KAFKA_BOOTSTRAP=127.0.0.1:9092"
            )
        });
        let config = KafkaConfig::new(bootstrap).request_timeout(Duration::from_secs(20));
        Arc::new(KafkaLog::new(config).expect("kafka log"))
    }
}

impl Harness for NisshiHarness {
    fn backend(&self) -> &str {
        "kafka-nisshi"
    }

    fn log(&self) -> Arc<dyn Log> {
        self.log.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
            .without(
                Feature::Transactions,
                "nisshi 0.8.1 refuses InitProducerId for a transactional id",
            )
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
    harness: NisshiHarness::new(),
    unsupported: [
        transactions = "unsupported by kafka-nisshi: nisshi 0.8.1 refuses InitProducerId for a transactional id",
        cleaner = "unsupported by kafka-nisshi: the broker runs retention and compaction on its own schedule",
        torn_writes = "unsupported by kafka-nisshi: the broker's files are out of reach",
    ],
);
