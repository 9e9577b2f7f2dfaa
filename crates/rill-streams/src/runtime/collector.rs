//! Hands a thread's output records to its producer: inside the open transaction under
//! exactly-once (begun lazily by the first record after a commit), or as plain sends whose
//! deliveries are checked before offsets are committed under at-least-once.

use std::time::Duration;

use rill_log::{
    DeliveryFuture, GroupMetadata, Offset, Producer, ProducerRecord, TopicPartition,
    TransactionalProducer,
};

use crate::collector::{OutputRecord, RecordCollector};
use crate::error::{Result, StreamsError};

pub(crate) enum ThreadProducer {
    Transactional {
        producer: Box<dyn TransactionalProducer>,
        open: bool,
    },
    Plain {
        producer: Box<dyn Producer>,
        pending: Vec<DeliveryFuture>,
    },
}

impl ThreadProducer {
    fn begin_if_needed(&mut self) -> Result<()> {
        if let ThreadProducer::Transactional { producer, open } = self
            && !*open
        {
            producer
                .begin()
                .map_err(|e| StreamsError::log("beginning a transaction", e))?;
            *open = true;
        }
        Ok(())
    }

    /// Commits outputs and input offsets together (exactly-once) or flushes outputs, checks
    /// them, and leaves the offset commit to the caller (at-least-once; returns `false`).
    pub fn commit(
        &mut self,
        offsets: &[(TopicPartition, Offset)],
        group: Option<&GroupMetadata>,
    ) -> Result<bool> {
        match self {
            ThreadProducer::Transactional { producer, open } => {
                if offsets.is_empty() && !*open {
                    return Ok(true);
                }
                if !*open {
                    producer
                        .begin()
                        .map_err(|e| StreamsError::log("beginning a transaction", e))?;
                    *open = true;
                }
                if let Some(group) = group
                    && !offsets.is_empty()
                {
                    producer
                        .send_offsets(offsets, group)
                        .map_err(|e| StreamsError::log("adding offsets to the transaction", e))?;
                }
                *open = false;
                producer
                    .commit()
                    .map_err(|e| StreamsError::log("committing the transaction", e))?;
                Ok(true)
            }
            ThreadProducer::Plain { producer, pending } => {
                producer
                    .flush(Duration::from_secs(60))
                    .map_err(|e| StreamsError::log("flushing outputs", e))?;
                for delivery in pending.drain(..) {
                    delivery
                        .wait()
                        .map_err(|e| StreamsError::log("writing an output", e))?;
                }
                Ok(false)
            }
        }
    }

    /// Whether outputs were sent since the last commit.
    pub fn has_uncommitted(&self) -> bool {
        match self {
            ThreadProducer::Transactional { open, .. } => *open,
            ThreadProducer::Plain { pending, .. } => !pending.is_empty(),
        }
    }

    /// Drops uncommitted outputs where the log allows it (aborts the transaction).
    pub fn abort(&mut self) {
        match self {
            ThreadProducer::Transactional { producer, open } => {
                if *open {
                    *open = false;
                    if let Err(error) = producer.abort() {
                        tracing::warn!(%error, "aborting the transaction failed");
                    }
                }
            }
            ThreadProducer::Plain { pending, .. } => pending.clear(),
        }
    }
}

/// The collector of every task of a thread.
pub(crate) struct ProducerCollector {
    pub producer: ThreadProducer,
    /// Records sent per topic since the last commit, for the metrics (counted here and
    /// reported per commit: a labelled counter per record would cost more than the record).
    pub sent: std::collections::HashMap<String, u64>,
    /// Asked for the partition counts of output topics.
    pub log: std::sync::Arc<dyn rill_log::Log>,
    /// Partition counts of output topics, once asked (topics do not shrink, and a sink that
    /// picks partitions is written for the count it was built with).
    pub partition_counts: std::collections::HashMap<String, i32>,
}

impl RecordCollector for ProducerCollector {
    fn partitions(&mut self, topic: &str) -> Result<i32> {
        if let Some(count) = self.partition_counts.get(topic) {
            return Ok(*count);
        }
        let count = self
            .log
            .admin()
            .describe_topic(topic)
            .map_err(|e| StreamsError::log("describing an output topic", e))?
            .config
            .partitions;
        self.partition_counts.insert(topic.to_string(), count);
        Ok(count)
    }

    fn send(&mut self, record: OutputRecord) -> Result<()> {
        self.producer.begin_if_needed()?;
        match self.sent.get_mut(&record.topic) {
            Some(count) => *count += 1,
            None => {
                self.sent.insert(record.topic.clone(), 1);
            }
        }
        let OutputRecord {
            topic,
            partition,
            key,
            value,
            timestamp,
            headers,
        } = record;
        let record = ProducerRecord {
            topic,
            partition,
            key,
            value,
            timestamp: Some(timestamp),
            headers,
        };
        match &mut self.producer {
            ThreadProducer::Transactional { producer, .. } => {
                // Errors of a transactional send surface at commit, which then fails whole, so
                // no per-record delivery is needed.
                producer
                    .send_detached(record)
                    .map_err(|e| StreamsError::log("sending an output", e))?;
            }
            ThreadProducer::Plain { producer, pending } => {
                pending.push(
                    producer
                        .send(record)
                        .map_err(|e| StreamsError::log("sending an output", e))?,
                );
            }
        }
        Ok(())
    }
}
