//! The Kafka backend benchmark: single-producer append throughput and read throughput from the
//! start of a partition, through the `rill_log` traits on `rill-log-kafka`, with the same loops
//! as `rill bench log` (see [`super::throughput`]) so the two backends' figures compare directly.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use rill_log::{Log, TopicConfig};
use rill_log_kafka::{KafkaConfig, KafkaLog};

use super::{median, throughput};

/// Flags of `rill bench kafka`.
#[derive(Debug, Args)]
pub struct KafkaBenchArgs {
    /// The cluster to measure (`bootstrap.servers`).
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Repetitions of each measurement, each on a fresh topic; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Records appended (and then read) per run and value size.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// A librdkafka property for the producer, `KEY=VALUE` (repeatable), passed through
    /// `ProducerConfig::extra`; the default is the backend's own settings.
    #[arg(long = "producer-property", value_name = "KEY=VALUE", value_parser = property)]
    producer_properties: Vec<(String, String)>,
    /// A librdkafka property for the consumer, `KEY=VALUE` (repeatable), passed through
    /// `ConsumerConfig::extra`.
    #[arg(long = "consumer-property", value_name = "KEY=VALUE", value_parser = property)]
    consumer_properties: Vec<(String, String)>,
}

fn property(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(key, _)| !key.is_empty())
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))
}

pub fn run(args: &KafkaBenchArgs) -> anyhow::Result<()> {
    let log: Arc<dyn Log> = Arc::new(
        KafkaLog::new(KafkaConfig::new(&args.bootstrap))
            .with_context(|| format!("connecting to {}", args.bootstrap))?,
    );
    // Fail early, before the table header, when no broker answers.
    log.admin()
        .list_topics()
        .with_context(|| format!("listing topics on {}", args.bootstrap))?;
    println!(
        "Kafka backend at {}: {} records per run, {} runs, median reported",
        args.bootstrap, args.records, args.runs
    );
    for (client, properties) in [
        ("producer", &args.producer_properties),
        ("consumer", &args.consumer_properties),
    ] {
        for (key, value) in properties {
            println!("{client} property {key}={value}");
        }
    }
    println!();
    println!("| measurement | value size | records/s (median) | MB/s |");
    println!("|---|---|---|---|");
    for value_size in [100usize, 1024] {
        let mut appends = Vec::new();
        let mut reads = Vec::new();
        for run in 0..args.runs {
            let (append, read) = measure_run(&*log, args, value_size, run)?;
            appends.push(append);
            reads.push(read);
        }
        for (label, rates) in [("append", &mut appends), ("read from start", &mut reads)] {
            let rate = median(rates);
            println!(
                "| {label} | {value_size} B | {rate:.0} | {:.1} |",
                rate * value_size as f64 / 1e6
            );
        }
    }
    Ok(())
}

/// On a fresh one-partition topic: appends `args.records` values, then reads them back from the
/// beginning; returns both rates (records/s). The topic is deleted afterwards even when a
/// measurement failed, so a broken run leaves nothing behind on the broker.
fn measure_run(
    log: &dyn Log,
    args: &KafkaBenchArgs,
    value_size: usize,
    run: usize,
) -> anyhow::Result<(f64, f64)> {
    let records = args.records;
    let topic = unique_topic(value_size, run);
    log.admin()
        .create_topic(&topic, &TopicConfig::with_partitions(1))
        .with_context(|| format!("creating topic {topic}"))?;
    let measured = throughput::append(log, &topic, value_size, records, &args.producer_properties)
        .with_context(|| format!("appending to {topic}"))
        .and_then(|append| {
            let read = throughput::read_all(log, &topic, records, &args.consumer_properties)
                .with_context(|| format!("reading {topic}"))?;
            Ok((append, read))
        });
    let deleted = log
        .admin()
        .delete_topic(&topic)
        .with_context(|| format!("deleting topic {topic}"));
    let rates = measured?;
    deleted?;
    Ok(rates)
}

/// A topic name no earlier run (of this or another process) used: a topic deleted on a broker
/// may linger briefly, and a reused name would mix records of two runs.
fn unique_topic(value_size: usize, run: usize) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "rill-bench-kafka-{}-{nanos}-{value_size}-{run}",
        std::process::id()
    )
}
