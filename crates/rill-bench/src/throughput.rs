//! The append and read loops shared by `rill bench log` and `rill bench kafka`: both backends
//! run this same code through the `rill_log` traits, so their figures differ only by backend.

use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use rill_log::{ConsumerConfig, Log, ProducerConfig, ProducerRecord, SeekTo, TopicPartition};

/// Upper bound on one append or read measurement, so a stuck backend ends the benchmark with an
/// error instead of hanging it. Far above what either backend needs for the default sizes.
const MEASUREMENT_LIMIT: Duration = Duration::from_secs(300);
/// The clock is read once per this many sends: reading it per record would add to the very
/// per-record cost being measured.
const CLOCK_EVERY: usize = 4096;
/// A poll that returns nothing for this long means the read stalled.
const STALL: Duration = Duration::from_secs(5);

/// A value of `size` bytes (letters, so it compresses like text would if a backend compressed).
pub(crate) fn value(size: usize) -> Bytes {
    Bytes::from(
        (0..size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// One producer sends `records` values of `value_size` bytes to partition 0 of `topic` (which
/// must exist) without waiting between sends, then flushes; every delivery is checked after the
/// clock stops. `extra` goes to the producer as [`ProducerConfig::extra`] (backend settings).
/// Returns records/s from the first send to the end of the flush.
pub(crate) fn append(
    log: &dyn Log,
    topic: &str,
    value_size: usize,
    records: usize,
    extra: &[(String, String)],
) -> anyhow::Result<f64> {
    let producer = log.producer(&ProducerConfig {
        extra: extra.to_vec(),
        ..Default::default()
    })?;
    let payload = value(value_size);
    let mut deliveries = Vec::with_capacity(records);
    let started = Instant::now();
    for sent in 0..records {
        if sent % CLOCK_EVERY == 0 && started.elapsed() > MEASUREMENT_LIMIT {
            bail!("append exceeded {MEASUREMENT_LIMIT:?} after {sent} of {records} records");
        }
        let record = ProducerRecord::new(topic)
            .partition(0)
            .value(payload.clone());
        deliveries.push(producer.send(record)?);
    }
    producer.flush(MEASUREMENT_LIMIT)?;
    let elapsed = started.elapsed();
    for delivery in deliveries {
        delivery.wait()?;
    }
    Ok(records as f64 / elapsed.as_secs_f64())
}

/// One consumer, assigned partition 0 of `topic` and moved to its beginning, polls until
/// `records` were seen. `extra` goes to the consumer as [`ConsumerConfig::extra`]. Returns
/// records/s from the first poll to the last.
pub(crate) fn read_all(
    log: &dyn Log,
    topic: &str,
    records: usize,
    extra: &[(String, String)],
) -> anyhow::Result<f64> {
    let consumer = log.consumer(
        &ConsumerConfig {
            max_poll_records: Some(100_000),
            extra: extra.to_vec(),
            ..Default::default()
        },
        None,
    )?;
    let partition = TopicPartition::new(topic, 0);
    consumer.assign(std::slice::from_ref(&partition))?;
    consumer.seek(&partition, SeekTo::Beginning)?;
    let started = Instant::now();
    let mut seen = 0;
    while seen < records {
        if started.elapsed() > MEASUREMENT_LIMIT {
            bail!("read exceeded {MEASUREMENT_LIMIT:?} after {seen} of {records} records");
        }
        let batch = consumer.poll(STALL)?;
        if batch.is_empty() {
            bail!("read stalled after {seen} of {records} records");
        }
        seen += batch.len();
    }
    let elapsed = started.elapsed();
    drop(consumer);
    Ok(seen as f64 / elapsed.as_secs_f64())
}
