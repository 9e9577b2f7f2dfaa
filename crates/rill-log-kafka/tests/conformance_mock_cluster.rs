//! The `rill-log` conformance suite, unchanged, against the Kafka backend on librdkafka's
//! in-process mock cluster (one fresh cluster per case), as a quick check without a broker. It runs in
//! the default `cargo test`; no broker is needed.
//!
//! The mock cluster is a test double written by the librdkafka authors, not a broker, and in
//! librdkafka 2.12 it lacks some of what the suite checks (its source,
//! `rdkafka_mock_handlers.c`). Those feature groups are declared unsupported below, so their
//! cases are reported as ignored with the reason:
//! - topic_admin: no DeleteTopics or DescribeConfigs handlers (nor CreateTopics: the adapter
//!   creates topics with the mock's own API, which keeps only the partition count), so topics
//!   cannot be deleted and every topic describes as cleanup policy `delete`;
//! - timestamps: the Produce response carries a fixed LogAppendTime of 1234, which librdkafka
//!   reports as every acknowledged record's timestamp; ListOffsets does not look up timestamps
//!   ("FIXME"), so seeking to a timestamp finds nothing;
//! - transactions: EndTxn writes no control records and Fetch reports no aborted transactions
//!   (the last stable offset is the end offset), TxnOffsetCommit stores nothing and checks no
//!   generation, and InitProducerId gives a restarted producer a new id instead of bumping the
//!   epoch, so nothing is ever fenced;
//! - cleaner and torn_writes: the mock keeps its log in memory and never cleans it;
//! - group_admin: no ListGroups or DescribeGroups handlers, so groups can be neither listed nor
//!   described (their committed offsets can be read: OffsetFetch is there).
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
                Feature::Transactions,
                "the mock cluster writes no transaction markers, reports no aborted \
                 transactions, stores no transactional offsets and fences no producer",
            )
            .without(
                Feature::Timestamps,
                "the mock cluster acknowledges every record with LogAppendTime 1234 and \
                 cannot look up offsets by timestamp",
            )
            .without(
                Feature::TopicAdmin,
                "the mock cluster cannot delete topics or describe their configuration",
            )
            .without(
                Feature::Cleaner,
                "the mock cluster has no retention or compaction",
            )
            .without(
                Feature::TornWrites,
                "the mock cluster keeps its log in memory",
            )
            .without(
                Feature::GroupAdmin,
                "the mock cluster answers neither ListGroups nor DescribeGroups",
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
        transactions = "unsupported by kafka-mock-cluster: the mock cluster writes no transaction markers, reports no aborted transactions, stores no transactional offsets and fences no producer",
        timestamps = "unsupported by kafka-mock-cluster: the mock cluster acknowledges every record with LogAppendTime 1234 and cannot look up offsets by timestamp",
        topic_admin = "unsupported by kafka-mock-cluster: the mock cluster cannot delete topics or describe their configuration",
        cleaner = "unsupported by kafka-mock-cluster: the mock cluster has no retention or compaction",
        torn_writes = "unsupported by kafka-mock-cluster: the mock cluster keeps its log in memory",
        group_admin = "unsupported by kafka-mock-cluster: the mock cluster answers neither ListGroups nor DescribeGroups",
    ],
);
