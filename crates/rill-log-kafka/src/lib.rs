//! The Kafka backend of rill's log: the [`rill_log`] traits as a thin adapter on
//! [`rdkafka`] (librdkafka, bundled and built from source by `rdkafka-sys`).
//!
//! **Owns:** the rdkafka adapter: [`KafkaLog`] (a [`rill_log::Log`]), its producers (idempotent,
//! and transactional), its consumer (consumer groups with cooperative-sticky rebalancing, or
//! manual assignment), its topic administration, and the mapping of librdkafka errors onto
//! [`rill_log::LogError`]. It is the only crate of rill that names rdkafka.
//!
//! **May depend on:** `rill-log` and `rdkafka` only.
//!
//! ## Choices
//!
//! - Producers are idempotent and use librdkafka's `murmur2_random` partitioner, so a keyed record
//!   lands where Java's default partitioner (and [`rill_log::partition_for_key`]) puts it; a
//!   record without a key goes to a random partition.
//! - Consumers never auto-commit (`enable.auto.commit=false`, `enable.auto.offset.store=false`):
//!   offsets move only through [`rill_log::Consumer::commit`] or a transaction.
//! - Group members use `partition.assignment.strategy=cooperative-sticky`: a rebalance only
//!   revokes the partitions that move, so members keep processing the others. Rebalance events
//!   are delivered from inside [`rill_log::Consumer::poll`] to the [`rill_log::RebalanceListener`]
//!   with a view of the consumer that may commit, seek, or ask for positions (see
//!   [`KafkaConsumer`]).
//! - Properties in [`KafkaConfig::properties`] (security, SASL, SSL, timeouts) are passed to
//!   librdkafka untouched, for every client. This build has no SSL or SASL support compiled into
//!   librdkafka (the `ssl` / `sasl` features of rdkafka would need the system's OpenSSL and
//!   Cyrus SASL development files); `security.protocol=plaintext` is what works.
//!
//! ```no_run
//! use rill_log::{Log, TopicConfig};
//! use rill_log_kafka::{KafkaConfig, KafkaLog};
//! # fn demo() -> Result<(), rill_log::LogError> {
//! let log = KafkaLog::new(KafkaConfig::new("127.0.0.1:9092"))?;
//! log.admin().create_topic("greetings", &TopicConfig::with_partitions(3))?;
//! # Ok(()) }
//! ```

mod admin;
mod consumer;
mod error;
mod groups;
mod producer;

use std::time::Duration;

use rdkafka::ClientConfig;
use rill_log::{
    Admin, Consumer, ConsumerConfig, Log, LogError, Producer, ProducerConfig, RebalanceListener,
    Result, TransactionalProducer,
};

pub use admin::KafkaAdmin;
pub use consumer::KafkaConsumer;
pub use producer::{KafkaProducer, KafkaTransactionalProducer};

/// How to reach a Kafka cluster. Its `Debug` output names the properties but not their
/// values, which may be secrets (`sasl.password`, `ssl.key.password`).
#[derive(Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub bootstrap_servers: String,
    /// librdkafka properties given to every client as they are (e.g. `security.protocol`,
    /// `sasl.*`, `ssl.*`, `socket.timeout.ms`). Per-client settings in
    /// [`ProducerConfig::extra`] and [`ConsumerConfig::extra`] are applied after these.
    pub properties: Vec<(String, String)>,
    /// How long a blocking request (admin calls, committed offsets, watermarks, seeks,
    /// transaction steps) may take before it fails with [`LogError::Timeout`].
    pub request_timeout: Duration,
    /// Replication factor of created topics; `None` for the broker's default.
    pub replication_factor: Option<i32>,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: Vec<String> = self
            .properties
            .iter()
            .map(|(key, _)| format!("{key}=***"))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("properties", &properties)
            .field("request_timeout", &self.request_timeout)
            .field("replication_factor", &self.replication_factor)
            .finish()
    }
}

impl KafkaConfig {
    /// A cluster reached at `bootstrap_servers`, with a 30 s request timeout.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            properties: Vec::new(),
            request_timeout: Duration::from_secs(30),
            replication_factor: None,
        }
    }

    /// Adds a librdkafka property for every client.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Sets the request timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The base librdkafka configuration of every client.
    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        if !self.bootstrap_servers.is_empty() {
            config.set("bootstrap.servers", &self.bootstrap_servers);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

/// A [`rill_log::Log`] on a Kafka cluster.
pub struct KafkaLog {
    config: KafkaConfig,
    admin: KafkaAdmin,
}

impl KafkaLog {
    /// Connects to the cluster described by `config` (clients connect lazily; this fails only
    /// on invalid configuration).
    pub fn new(config: KafkaConfig) -> Result<Self> {
        let admin = KafkaAdmin::new(&config, false)?;
        Ok(Self { config, admin })
    }

    /// A log on a fresh in-process librdkafka mock cluster of `brokers` brokers, owned by the
    /// returned log and gone when it is dropped.
    ///
    /// The mock cluster is a test double written by the librdkafka authors, not a broker: it
    /// supports producing, consumer groups and transactions, but not the CreateTopics,
    /// DeleteTopics or DescribeConfigs requests, so [`Admin::create_topic`] creates topics
    /// through the mock's own API (ignoring everything but the partition count),
    /// [`Admin::delete_topic`] fails, and [`Admin::describe_topic`] reports only the partition
    /// count. Nor does it answer ListGroups or DescribeGroups, so [`Admin::list_groups`] and
    /// [`Admin::describe_group`] fail ([`Admin::group_offsets`] works).
    pub fn mock_cluster(brokers: i32) -> Result<Self> {
        let mut config = KafkaConfig::new("");
        config
            .properties
            .push(("test.mock.num.brokers".into(), brokers.to_string()));
        let admin = KafkaAdmin::new(&config, true)?;
        // Every other client connects to the mock cluster the admin client owns.
        config.bootstrap_servers = admin.mock_bootstrap_servers()?;
        config.properties.clear();
        config.request_timeout = Duration::from_secs(10);
        Ok(Self { config, admin })
    }

    /// The concrete admin client (see [`Log::admin`]).
    pub fn kafka_admin(&self) -> &KafkaAdmin {
        &self.admin
    }

    /// The configuration this log was created with (for a mock cluster: its address).
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// The concrete producer (see [`Log::producer`]).
    pub fn kafka_producer(&self, config: &ProducerConfig) -> Result<KafkaProducer> {
        KafkaProducer::new(&self.config, config)
    }

    /// The concrete transactional producer (see [`Log::transactional_producer`]).
    pub fn kafka_transactional_producer(
        &self,
        config: &ProducerConfig,
        transactional_id: &str,
    ) -> Result<KafkaTransactionalProducer> {
        KafkaTransactionalProducer::new(&self.config, config, transactional_id)
    }

    /// The concrete consumer (see [`Log::consumer`]).
    pub fn kafka_consumer(
        &self,
        config: &ConsumerConfig,
        listener: Option<Box<dyn RebalanceListener>>,
    ) -> Result<KafkaConsumer> {
        KafkaConsumer::new(&self.config, config, listener)
    }
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("bootstrap_servers", &self.config.bootstrap_servers)
            .finish_non_exhaustive()
    }
}

impl Log for KafkaLog {
    fn admin(&self) -> &dyn Admin {
        &self.admin
    }

    fn producer(&self, config: &ProducerConfig) -> Result<Box<dyn Producer>> {
        Ok(Box::new(self.kafka_producer(config)?))
    }

    fn transactional_producer(
        &self,
        config: &ProducerConfig,
        transactional_id: &str,
    ) -> Result<Box<dyn TransactionalProducer>> {
        Ok(Box::new(
            self.kafka_transactional_producer(config, transactional_id)?,
        ))
    }

    fn consumer(
        &self,
        config: &ConsumerConfig,
        listener: Option<Box<dyn RebalanceListener>>,
    ) -> Result<Box<dyn Consumer>> {
        Ok(Box::new(self.kafka_consumer(config, listener)?))
    }
}

/// Creates an rdkafka client, mapping a configuration error.
fn create_error(what: &'static str, err: rdkafka::error::KafkaError) -> LogError {
    error::map(what, err, &error::Ctx::none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_property_values() {
        let config = KafkaConfig::new("broker:9092").property("sasl.password", "hunter2");
        let shown = format!("{config:?}");
        assert!(shown.contains("sasl.password=***"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
