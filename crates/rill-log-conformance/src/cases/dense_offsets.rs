//! Dense offsets: the embedded log numbers records 0, 1, 2, ... per partition.

use rill_log::{ProducerRecord, TopicConfig, TopicPartition};

use crate::support::{create_topic, partitions, poll_count, producer, reader, send_all, unique};
use crate::{Feature, Harness};

/// Feature group these cases need: dense offsets.
pub const FEATURE: Option<Feature> = Some(Feature::DenseOffsets);

/// Records written without transactions get offsets 0, 1, 2, ... in each partition, are read
/// at those offsets, and the watermarks are 0 and the record count.
pub fn offsets_are_dense_from_zero_in_every_partition(h: &mut dyn Harness) {
    let topic = unique("dense");
    create_topic(h, &topic, TopicConfig::with_partitions(2));
    let producer = producer(h);
    let metadata = send_all(
        &*producer,
        (0..40)
            .map(|i| {
                ProducerRecord::new(&topic)
                    .partition(i % 2)
                    .value(format!("v{i}"))
            })
            .collect(),
    );
    for p in 0..2 {
        let offsets: Vec<i64> = metadata
            .iter()
            .filter(|m| m.partition == p)
            .map(|m| m.offset)
            .collect();
        assert_eq!(
            offsets,
            (0..20).collect::<Vec<i64>>(),
            "acknowledged offsets of partition {p}"
        );
    }
    let consumer = reader(h, &partitions(&topic, 2));
    let got = poll_count(&*consumer, 40, "all forty records");
    for p in 0..2 {
        let offsets: Vec<i64> = got
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect();
        assert_eq!(
            offsets,
            (0..20).collect::<Vec<i64>>(),
            "consumed offsets of partition {p}"
        );
        let marks = consumer
            .watermarks(&TopicPartition::new(&topic, p))
            .expect("watermarks");
        assert_eq!(
            (marks.low, marks.high),
            (0, 20),
            "watermarks of partition {p}"
        );
    }
}
