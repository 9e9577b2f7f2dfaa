//! Source nodes (bytes from a topic -> typed records) and sink nodes (typed records -> bytes
//! to a topic).

use crate::functions::{StreamPartitioner, TimestampExtractor, TopicExtractor};

use rill_log::ConsumedRecord;

use crate::collector::OutputRecord;
use crate::error::{Result, StreamsError};
use crate::record::Record;
use crate::serde::SharedSerde;
use crate::task::{Child, Node, RawSource, TaskState, undecodable};

/// Deserializes records of its topics, stamps them with their event time and forwards them.
pub(crate) struct SourceNode<K, V> {
    pub key_serde: SharedSerde<K>,
    pub value_serde: SharedSerde<V>,
    /// Event time from the payload; without one, the log timestamp is the event time.
    pub timestamp: Option<TimestampExtractor<K, V>>,
    pub children: Vec<Child<K, V>>,
}

impl<K, V> SourceNode<K, V> {
    /// Sets the record's event time from the extractor, if there is one.
    fn stamp(&self, raw: &ConsumedRecord, mut record: Record<K, V>) -> Result<Record<K, V>> {
        let Some(extract) = &self.timestamp else {
            return Ok(record);
        };
        match extract(&record.key, &record.value, raw.timestamp) {
            Some(timestamp) if timestamp >= 0 => {
                record.timestamp = timestamp;
                Ok(record)
            }
            extracted => Err(StreamsError::InvalidTimestamp {
                topic: raw.topic.to_string(),
                partition: raw.partition,
                offset: raw.offset,
                extracted,
            }),
        }
    }
}

impl<K: Clone + 'static, V: Clone + 'static> RawSource for SourceNode<K, V> {
    fn process_raw(&mut self, task: &mut TaskState, record: &ConsumedRecord) -> Result<()> {
        let typed = match Record::decode(record, &*self.key_serde, &*self.value_serde)
            .and_then(|typed| self.stamp(record, typed))
        {
            Ok(typed) => typed,
            Err(error) => return undecodable(task, record, error),
        };
        task.advance_stream_time(typed.timestamp);
        if let Some((last, others)) = self.children.split_last() {
            for child in others {
                child.borrow_mut().process(task, typed.clone())?;
            }
            last.borrow_mut().process(task, typed)?;
        }
        Ok(())
    }
}

/// Where a sink writes: one topic, or a topic chosen per record.
pub(crate) enum TopicChoice<K, V> {
    Fixed(String),
    Dynamic(TopicExtractor<K, V>),
}

/// Serializes records and hands them to the task's collector.
pub(crate) struct SinkNode<K, V> {
    pub topic: TopicChoice<K, V>,
    pub key_serde: SharedSerde<K>,
    pub value_serde: SharedSerde<V>,
    /// Picks the partition; without one, the log partitions by the key's hash.
    pub partitioner: Option<StreamPartitioner<K, V>>,
}

impl<K: 'static, V: 'static> Node<K, V> for SinkNode<K, V> {
    fn process(&mut self, task: &mut TaskState, record: Record<K, V>) -> Result<()> {
        let topic = match &self.topic {
            TopicChoice::Fixed(topic) => topic.clone(),
            TopicChoice::Dynamic(choose) => choose(&record),
        };
        let key = self
            .key_serde
            .serialize(&topic, &record.key)
            .map_err(|source| StreamsError::Serde {
                topic: topic.clone(),
                what: "key",
                source,
            })?;
        let partition = match &self.partitioner {
            None => None,
            Some(choose) => {
                let count = task.collector.borrow_mut().partitions(&topic)?;
                match choose(&record.key, &record.value, count) {
                    Some(partition) if (0..count).contains(&partition) => Some(partition),
                    Some(partition) => {
                        return Err(StreamsError::processor(
                            "partitioner",
                            format!(
                                "chose partition {partition} of topic '{topic}', which has {count}"
                            ),
                        ));
                    }
                    None => None,
                }
            }
        };
        let value = self
            .value_serde
            .serialize_nullable(&topic, &record.value)
            .map_err(|source| StreamsError::Serde {
                topic: topic.clone(),
                what: "value",
                source,
            })?;
        task.collector.borrow_mut().send(OutputRecord {
            topic,
            partition,
            key: Some(key),
            value,
            timestamp: record.timestamp,
            headers: record.headers,
        })
    }
}
