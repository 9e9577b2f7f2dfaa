//! The `rill-log` conformance suite, unchanged, against the Kafka backend on librdkafka's
//! in-process mock cluster (one fresh cluster per case), for what nisshi cannot run.
//!
//! The mock cluster is a test double written by the librdkafka authors, not a broker, and in
//! librdkafka 2.12 it lacks much of what the suite checks, so this target is built only with
//! the `mock-conformance` feature:
//!
//! ```text
//! cargo test -p rill-log-kafka --features mock-conformance --test conformance_mock_cluster
//! ```
//!
//! Cases that fail here for the mock's reasons (its source, `rdkafka_mock_handlers.c`):
//! - admin: no CreateTopics, DeleteTopics or DescribeConfigs handlers (topics are created with
//!   the mock's own API, cannot be deleted, and report no configs);
//! - timestamps: the Produce response carries a fixed LogAppendTime of 1234, which librdkafka
//!   reports as the record's timestamp; ListOffsets does not look up timestamps ("FIXME");
//! - transactions: EndTxn writes no control records and Fetch reports no aborted transactions
//!   (the last stable offset is the end offset), TxnOffsetCommit stores nothing and checks no
//!   generation, and InitProducerId gives a restarted producer a new id instead of bumping the
//!   epoch, so nothing is ever fenced.
//!
//! The adapter's transaction paths are covered by `tests/mock_cluster.rs` (API flow, and the
//! fenced / refused answers injected with the mock's error injection).

use std::sync::Arc;
use std::time::Duration;

use rill_log::{ConsumerConfig, Log, Result};
use rill_log_conformance::{Capabilities, Feature, Harness};
use rill_log_kafka::KafkaLog;

/// A Kafka log on a mock cluster it owns; restart keeps the cluster (its data lives there).
struct MockClusterHarness {
    log: Arc<KafkaLog>,
}

impl MockClusterHarness {
    fn new() -> Self {
        Self {
            log: Arc::new(KafkaLog::mock_cluster(3).expect("mock cluster")),
        }
    }
}

impl Harness for MockClusterHarness {
    fn backend(&self) -> &str {
        "kafka-mock-cluster"
    }

    fn log(&self) -> Arc<dyn Log> {
        self.log.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
            .without(
                Feature::Cleaner,
                "the mock cluster has no retention or compaction",
            )
            .without(
                Feature::TornWrites,
                "the mock cluster keeps its log in memory",
            )
    }

    fn restart(&mut self) -> Result<()> {
        // Clients are made per use; the cluster (and its data) stays.
        Ok(())
    }

    fn tune_consumer(&self, config: &mut ConsumerConfig) {
        // The mock coordinator waits session.timeout.ms - 1 s for members to rejoin.
        config.session_timeout = Some(Duration::from_secs(6));
    }
}

rill_log_conformance::conformance_suite!(
    harness: MockClusterHarness::new(),
    unsupported: [
        cleaner = "unsupported by kafka-mock-cluster: the mock cluster has no retention or compaction",
        torn_writes = "unsupported by kafka-mock-cluster: the mock cluster keeps its log in memory",
    ],
);
