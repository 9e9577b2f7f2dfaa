//! Topic administration through librdkafka's admin client; consumer groups through
//! [`groups`](crate::groups).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigResource, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::Metadata;
use rill_log::{
    Admin, CleanupPolicy, GroupDescription, GroupListing, LogError, Offset, Result, TopicConfig,
    TopicDescription, TopicPartition,
};

use crate::KafkaConfig;
use crate::error::{self, Ctx};
use crate::groups;

/// How often metadata is re-read while waiting for a created or deleted topic to show.
const SETTLE_INTERVAL: Duration = Duration::from_millis(50);
/// How long a topic that a broker does not know is asked for again before it is declared
/// absent. A topic is created by the controller and every broker learns of it from the
/// metadata log a moment later, so right after another client created it (another instance
/// starting at the same time) the broker that answers may not know it yet.
const METADATA_PROPAGATION: Duration = Duration::from_secs(2);

/// Metadata answers in a row that must agree before a topic change counts as done.
const SETTLED_READS: u32 = 3;

/// [`rill_log::Admin`] on a Kafka cluster: CreateTopics, DeleteTopics, Metadata and
/// DescribeConfigs requests for topics; ListGroups, DescribeGroups and OffsetFetch for consumer
/// groups (none of which joins a group).
///
/// Creation and deletion wait (up to the request timeout) until the cluster's metadata shows
/// the change, so a topic can be produced to right after `create_topic` returns and re-created
/// right after `delete_topic` returns.
pub struct KafkaAdmin {
    client: AdminClient<DefaultClientContext>,
    timeout: Duration,
    replication_factor: i32,
    mock: bool,
    /// The configuration of the short-lived consumers that read a group's committed offsets.
    consumer_base: ClientConfig,
}

impl KafkaAdmin {
    /// An admin client for the cluster in `config`; `mock` when it owns a librdkafka mock
    /// cluster (`test.mock.num.brokers` among the properties).
    pub(crate) fn new(config: &KafkaConfig, mock: bool) -> Result<Self> {
        let client = config
            .client_config()
            .create::<AdminClient<DefaultClientContext>>()
            .map_err(|e| crate::create_error("create admin client", e))?;
        let mut admin = Self {
            client,
            timeout: config.request_timeout,
            replication_factor: config.replication_factor.unwrap_or(-1),
            mock,
            consumer_base: config.client_config(),
        };
        if mock {
            // Other clients reach the mock cluster this one owns by its address.
            let mut base = ClientConfig::new();
            base.set("bootstrap.servers", admin.mock_bootstrap_servers()?);
            admin.consumer_base = base;
        }
        Ok(admin)
    }

    /// librdkafka's mock cluster answers neither ListGroups nor DescribeGroups.
    fn refuse_group_listing_on_mock(&self, operation: &'static str) -> Result<()> {
        if !self.mock {
            return Ok(());
        }
        Err(LogError::Backend {
            operation,
            code: Some(error::code_name(RDKafkaErrorCode::UnsupportedVersion)),
            message: "librdkafka's mock cluster does not implement ListGroups or DescribeGroups"
                .into(),
            class: rill_log::ErrorClass::InvalidInput,
        })
    }

    /// The address of the mock cluster this admin client owns.
    pub(crate) fn mock_bootstrap_servers(&self) -> Result<String> {
        self.client
            .inner()
            .mock_cluster()
            .map(|mock| mock.bootstrap_servers())
            .ok_or(LogError::Backend {
                operation: "create mock cluster",
                code: None,
                message: "the client has no mock cluster (test.mock.num.brokers unset)".into(),
                class: rill_log::ErrorClass::Fatal,
            })
    }

    /// How many brokers the cluster's metadata lists (e.g. to choose a replication factor).
    pub fn broker_count(&self) -> Result<usize> {
        Ok(self.metadata(None)?.brokers().len())
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.timeout))
            .operation_timeout(Some(self.timeout))
    }

    fn metadata(&self, topic: Option<&str>) -> Result<Metadata> {
        self.client
            .inner()
            .fetch_metadata(topic, self.timeout)
            .map_err(|e| error::map("fetch metadata", e, &Ctx::timeout(self.timeout)))
    }

    /// Partition count of `topic` per the cluster's metadata (all-topics request, which never
    /// auto-creates), `None` when the topic is absent.
    /// The topic's partition count, `None` when no broker asked within
    /// [`METADATA_PROPAGATION`] knows it.
    fn partition_count(&self, topic: &str) -> Result<Option<i32>> {
        let deadline = Instant::now() + METADATA_PROPAGATION;
        loop {
            let count = self.known_partition_count(topic)?;
            if count.is_some() || Instant::now() >= deadline {
                return Ok(count);
            }
            thread::sleep(SETTLE_INTERVAL);
        }
    }

    /// The topic's partition count as the broker asked knows it.
    fn known_partition_count(&self, topic: &str) -> Result<Option<i32>> {
        let metadata = self.metadata(None)?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len() as i32))
    }

    /// Waits until the topic shows (with `partitions` partitions, each with a leader) or is gone,
    /// in [`SETTLED_READS`] metadata answers in a row: each broker learns of the change from the
    /// metadata log on its own, and librdkafka asks any of them.
    fn settle(&self, topic: &str, present: Option<i32>, operation: &'static str) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        let mut agreeing = 0;
        loop {
            let metadata = self.metadata(None)?;
            let found = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none());
            let done = match (present, found) {
                (None, None) => true,
                (Some(n), Some(t)) => {
                    t.partitions().len() as i32 >= n
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                }
                _ => false,
            };
            agreeing = if done { agreeing + 1 } else { 0 };
            if agreeing >= SETTLED_READS {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LogError::Timeout {
                    operation,
                    after: self.timeout,
                });
            }
            thread::sleep(SETTLE_INTERVAL);
        }
    }

    fn create_on_mock(&self, name: &str, config: &TopicConfig) -> Result<()> {
        // The mock cluster's metadata is its own: no propagation to wait for.
        if self.known_partition_count(name)?.is_some() {
            return Err(LogError::TopicExists { topic: name.into() });
        }
        let mock = self.client.inner().mock_cluster().ok_or(LogError::Closed {
            what: "mock cluster",
        })?;
        mock.create_topic(name, config.partitions, 1)
            .map_err(|e| error::map("create topic", e, &Ctx::topic(name)))?;
        self.settle(name, Some(config.partitions), "create topic")
    }
}

impl std::fmt::Debug for KafkaAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaAdmin")
            .field("timeout", &self.timeout)
            .field("mock", &self.mock)
            .finish_non_exhaustive()
    }
}

/// The Kafka topic configs for a rill topic config: cleanup policy, retention (none means
/// forever, `retention.ms=-1`), sizes, then the pass-through extras.
fn topic_configs(config: &TopicConfig) -> Vec<(String, String)> {
    let mut out = vec![
        (
            "cleanup.policy".to_string(),
            config.cleanup_policy.as_kafka_str().to_string(),
        ),
        (
            "retention.ms".to_string(),
            config
                .retention
                .map_or("-1".to_string(), |r| r.as_millis().to_string()),
        ),
    ];
    if let Some(bytes) = config.retention_bytes {
        out.push(("retention.bytes".into(), bytes.to_string()));
    }
    if let Some(bytes) = config.segment_bytes {
        out.push(("segment.bytes".into(), bytes.to_string()));
    }
    out.extend(config.extra.iter().cloned());
    out
}

/// Reads what a rill [`TopicConfig`] holds from a DescribeConfigs answer. Values the broker
/// does not report keep their defaults.
fn apply_described(config: &mut TopicConfig, resource: &ConfigResource) {
    for entry in &resource.entries {
        let Some(value) = entry.value.as_deref() else {
            continue;
        };
        match entry.name.as_str() {
            "cleanup.policy" => {
                if let Some(policy) = CleanupPolicy::from_kafka_str(value) {
                    config.cleanup_policy = policy;
                }
            }
            "retention.ms" => {
                config.retention = value
                    .parse::<i64>()
                    .ok()
                    .filter(|ms| *ms >= 0)
                    .map(|ms| Duration::from_millis(ms.unsigned_abs()));
            }
            "retention.bytes" => {
                config.retention_bytes = value
                    .parse::<i64>()
                    .ok()
                    .filter(|b| *b >= 0)
                    .map(i64::unsigned_abs);
            }
            "segment.bytes" => {
                config.segment_bytes = value.parse::<u64>().ok();
            }
            _ => {}
        }
    }
}

impl Admin for KafkaAdmin {
    fn create_topic(&self, name: &str, config: &TopicConfig) -> Result<()> {
        if let Some(reason) = invalid_topic_name(name) {
            return Err(LogError::InvalidTopicConfig {
                topic: name.into(),
                reason,
            });
        }
        if config.partitions < 1 {
            return Err(LogError::InvalidTopicConfig {
                topic: name.into(),
                reason: format!("{} partitions; at least 1 is needed", config.partitions),
            });
        }
        if self.mock {
            return self.create_on_mock(name, config);
        }
        let configs = topic_configs(config);
        let mut topic = NewTopic::new(
            name,
            config.partitions,
            TopicReplication::Fixed(self.replication_factor),
        );
        for (key, value) in &configs {
            topic = topic.set(key, value);
        }
        let results = block_on(self.client.create_topics([&topic], &self.options()))
            .map_err(|e| error::map("create topic", e, &Ctx::topic(name)))?;
        for result in results {
            if let Err((_, code)) = result {
                let error = create_error(name, code);
                if matches!(error, LogError::TopicExists { .. }) {
                    // Created a moment ago by another client (say, another instance starting
                    // at the same time): the caller will use it next, so wait until this
                    // client's metadata shows it too, as after a creation of its own.
                    self.settle(name, Some(1), "create topic")?;
                }
                return Err(error);
            }
        }
        self.settle(name, Some(config.partitions), "create topic")
    }

    fn delete_topic(&self, name: &str) -> Result<()> {
        if self.mock {
            if self.partition_count(name)?.is_none() {
                return Err(LogError::UnknownTopic { topic: name.into() });
            }
            return Err(LogError::Backend {
                operation: "delete topic",
                code: Some(error::code_name(RDKafkaErrorCode::UnsupportedVersion)),
                message: "librdkafka's mock cluster does not implement DeleteTopics".into(),
                class: rill_log::ErrorClass::InvalidInput,
            });
        }
        let results = block_on(self.client.delete_topics(&[name], &self.options()))
            .map_err(|e| error::map("delete topic", e, &Ctx::topic(name)))?;
        for result in results {
            if let Err((_, code)) = result {
                return Err(error::map_code(
                    "delete topic",
                    code,
                    code.to_string(),
                    &Ctx::topic(name).with_timeout(self.timeout),
                ));
            }
        }
        self.settle(name, None, "delete topic")
    }

    fn list_topics(&self) -> Result<Vec<String>> {
        let metadata = self.metadata(None)?;
        let mut names: Vec<String> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
            .map(|t| t.name().to_string())
            .collect();
        names.sort();
        Ok(names)
    }

    fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let partitions = self
            .partition_count(name)?
            .ok_or_else(|| LogError::UnknownTopic { topic: name.into() })?;
        let mut config = TopicConfig::with_partitions(partitions);
        if !self.mock {
            // The broker answering may learn of the topic later than the one that listed it.
            let deadline = Instant::now() + METADATA_PROPAGATION;
            let results = loop {
                let results = block_on(
                    self.client
                        .describe_configs([&ResourceSpecifier::Topic(name)], &self.options()),
                )
                .map_err(|e| error::map("describe topic", e, &Ctx::topic(name)))?;
                let unknown = results
                    .iter()
                    .any(|result| matches!(result, Err(RDKafkaErrorCode::UnknownTopicOrPartition)));
                if !unknown || Instant::now() >= deadline {
                    break results;
                }
                thread::sleep(SETTLE_INTERVAL);
            };
            for result in results {
                match result {
                    Ok(resource) => apply_described(&mut config, &resource),
                    Err(code) => {
                        return Err(error::map_code(
                            "describe topic",
                            code,
                            code.to_string(),
                            &Ctx::topic(name).with_timeout(self.timeout),
                        ));
                    }
                }
            }
        }
        Ok(TopicDescription {
            name: name.into(),
            config,
        })
    }

    fn list_groups(&self) -> Result<Vec<GroupListing>> {
        self.refuse_group_listing_on_mock("list groups")?;
        Ok(groups::describe(self.client.inner(), None, self.timeout)?
            .into_iter()
            .map(|group| GroupListing {
                group_id: group.group_id,
                state: group.state,
            })
            .collect())
    }

    fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        self.refuse_group_listing_on_mock("describe group")?;
        groups::describe(self.client.inner(), Some(group), self.timeout)?
            .into_iter()
            .find(|described| described.group_id == group)
            .ok_or_else(|| LogError::UnknownGroup {
                group: group.into(),
            })
    }

    fn group_offsets(&self, group: &str) -> Result<Vec<(TopicPartition, Offset)>> {
        let metadata = self.metadata(None)?;
        groups::committed(&self.consumer_base, &metadata, group, self.timeout)
    }
}

/// Why Kafka would refuse `name` as a topic name, if it would: empty, `.` or `..`, longer than
/// 249 characters, or characters other than ASCII letters, digits, `.`, `_` and `-`.
fn invalid_topic_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Some(format!("'{name}' is not a valid topic name"));
    }
    if name.len() > 249 {
        return Some(format!(
            "the topic name is {} characters long; at most 249 are allowed",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "the topic name contains {bad:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    None
}

fn create_error(topic: &str, code: RDKafkaErrorCode) -> LogError {
    match code {
        RDKafkaErrorCode::TopicAlreadyExists => LogError::TopicExists {
            topic: topic.into(),
        },
        RDKafkaErrorCode::InvalidTopic
        | RDKafkaErrorCode::InvalidConfig
        | RDKafkaErrorCode::InvalidPartitions
        | RDKafkaErrorCode::InvalidReplicationFactor
        | RDKafkaErrorCode::PolicyViolation => LogError::InvalidTopicConfig {
            topic: topic.into(),
            reason: format!("{}: {code}", error::code_name(code)),
        },
        other => error::map_code("create topic", other, other.to_string(), &Ctx::topic(topic)),
    }
}

/// Wakes the thread blocked in [`block_on`].
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs an rdkafka admin future to completion on this thread. The futures are completed by
/// rdkafka's own admin thread; nothing here needs an async runtime.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_configs_say_forever_without_retention() {
        let configs = topic_configs(&TopicConfig::with_partitions(3));
        assert!(configs.contains(&("retention.ms".into(), "-1".into())));
        assert!(configs.contains(&("cleanup.policy".into(), "delete".into())));
        let compact = topic_configs(
            &TopicConfig::with_partitions(1)
                .cleanup_policy(CleanupPolicy::Compact)
                .retention(Duration::from_secs(60))
                .segment_bytes(1 << 20),
        );
        assert!(compact.contains(&("cleanup.policy".into(), "compact".into())));
        assert!(compact.contains(&("retention.ms".into(), "60000".into())));
        assert!(compact.contains(&("segment.bytes".into(), "1048576".into())));
    }

    #[test]
    fn topic_names_follow_kafkas_rules() {
        assert!(invalid_topic_name("orders.v1_x-2").is_none());
        for bad in ["", ".", "..", "a b", "ü", &"x".repeat(250)] {
            assert!(invalid_topic_name(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn block_on_runs_a_ready_future() {
        assert_eq!(block_on(async { 7 }), 7);
    }
}
