//! The log abstraction every layer of rill programs against.
//!
//! **Owns:** the vocabulary of a partitioned, replayable log (topics, partitions, offsets,
//! records, headers, topic configuration, consumer groups as an administrator sees them), the
//! traits a backend implements ([`Log`], [`Producer`], [`TransactionalProducer`],
//! [`Consumer`], [`Admin`]), the typed [`LogError`], and Kafka's default partitioner
//! ([`partition_for_key`]).
//!
//! **Is not:** a backend. The embedded durable log (`rill-log-embedded`) and the Kafka adapter
//! (`rill-log-kafka`) implement these traits; this crate depends on neither and on nothing
//! above it.
//!
//! The traits follow the Kafka client model closely so that the Kafka backend is a thin adapter:
//! every method takes `&self` (clients are shared between threads), consumers are driven by
//! [`Consumer::poll`], rebalance notifications arrive on the polling thread through a
//! [`RebalanceListener`], and a transaction commits produced records together with consumer
//! offsets. The contract promises nothing Kafka cannot give: consumers must not assume offsets
//! are dense (compaction and transaction markers leave gaps on Kafka).
//!
//! ```no_run
//! use rill_log::{Log, ProducerRecord, ConsumerConfig, SeekTo, TopicConfig};
//! # fn demo(log: &dyn Log) -> Result<(), rill_log::LogError> {
//! log.admin().create_topic("greetings", &TopicConfig::with_partitions(3))?;
//! let producer = log.producer(&Default::default())?;
//! let delivery = producer.send(ProducerRecord::new("greetings").key("alice").value("hello"))?;
//! let written = delivery.wait()?; // durable per the backend's fsync policy
//! let consumer = log.consumer(&ConsumerConfig::group("readers"), None)?;
//! consumer.subscribe(&["greetings".to_string()])?;
//! for record in consumer.poll(std::time::Duration::from_secs(1))? {
//!     println!("{}@{}: {:?}", record.partition, record.offset, record.value);
//! }
//! # let _ = (written, SeekTo::Beginning); Ok(()) }
//! ```

mod admin;
mod consumer;
mod error;
mod groups;
mod log;
mod partitioner;
mod producer;
mod record;
mod topic;

pub use admin::{Admin, TopicDescription};
pub use consumer::{
    AssignmentStrategy, Consumer, ConsumerConfig, GroupMetadata, IsolationLevel, OffsetReset,
    RebalanceListener, SeekTo, Watermarks,
};
pub use error::{ErrorClass, LogError};
pub use groups::{GroupDescription, GroupListing, GroupMember, GroupState};
pub use log::Log;
pub use partitioner::{murmur2, partition_for_key, to_positive};
pub use producer::{
    DeliveryFuture, DeliverySender, Producer, ProducerConfig, RecordMetadata, TransactionalProducer,
};
pub use record::{ConsumedRecord, Header, ProducerRecord};
pub use topic::{CleanupPolicy, Offset, TopicConfig, TopicPartition};

/// Result of a log operation.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
