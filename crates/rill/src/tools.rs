//! `run`, `topics`, `tail` and `produce` on the embedded log.

use std::io::{BufRead, Write};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use rill_log::{
    CleanupPolicy, ConsumedRecord, ConsumerConfig, Log, LogError, ProducerRecord, SeekTo,
    TopicConfig, TopicPartition,
};
use rill_log_embedded::FsyncPolicy;
use serde_json::{Value, json};

use crate::cli::DataDirArgs;
use crate::embedded;

/// Flags of `rill run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    data: DataDirArgs,
    /// Partitions of each topic the system creates.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Do not seed the default inventory into a new data directory.
    #[arg(long)]
    no_seed: bool,
}

/// Topics of the orders system (SPEC 2.2) and whether they are compacted tables.
const SYSTEM_TOPICS: &[(&str, CleanupPolicy)] = &[
    ("orders", CleanupPolicy::Delete),
    ("order-validations", CleanupPolicy::Delete),
    ("warehouse-inventory", CleanupPolicy::Compact),
    ("payments", CleanupPolicy::Delete),
    ("customers", CleanupPolicy::Compact),
    ("orders-enriched", CleanupPolicy::Delete),
    ("platinum", CleanupPolicy::Delete),
    ("gold", CleanupPolicy::Delete),
    ("silver", CleanupPolicy::Delete),
    ("bronze", CleanupPolicy::Delete),
];

/// Stock seeded into a new data directory (SPEC 2.3, add-inventory defaults).
const DEFAULT_INVENTORY: &[(&str, i64)] = &[("UNDERPANTS", 20), ("JUMPERS", 10)];

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let fresh = !args.data.data_dir.join("topics").exists();
    let log = embedded::open(&args.data.data_dir, FsyncPolicy::Always)?;
    for (name, policy) in SYSTEM_TOPICS {
        let config = TopicConfig::with_partitions(args.partitions).cleanup_policy(*policy);
        match log.admin().create_topic(name, &config) {
            Ok(()) | Err(LogError::TopicExists { .. }) => {}
            Err(error) => return Err(error).with_context(|| format!("creating topic {name}")),
        }
    }
    if fresh && !args.no_seed {
        let producer = log.producer(&Default::default())?;
        for (product, stock) in DEFAULT_INVENTORY {
            let record = ProducerRecord::new("warehouse-inventory")
                .key(product.as_bytes().to_vec())
                .value(stock.to_string().into_bytes());
            producer.send(record)?.wait()?;
        }
        tracing::info!(?DEFAULT_INVENTORY, "seeded the default inventory");
    }
    tracing::info!(
        data_dir = %args.data.data_dir.display(),
        topics = SYSTEM_TOPICS.len(),
        "embedded log open; the orders services and the HTTP API are not built yet. Ctrl-C stops"
    );
    let (stop_tx, stop_rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("installing the Ctrl-C handler")?;
    let _ = stop_rx.recv();
    log.close()?;
    tracing::info!("closed cleanly");
    Ok(())
}

pub fn topics(args: &DataDirArgs) -> anyhow::Result<()> {
    let log = embedded::open(&args.data_dir, FsyncPolicy::Always)?;
    let consumer = log.consumer(&ConsumerConfig::default(), None)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<40} {:>10} {:>14}",
        "TOPIC", "PARTITIONS", "RECORDS"
    )?;
    for name in log.admin().list_topics()? {
        let description = log.admin().describe_topic(&name)?;
        let mut records = 0;
        for partition in 0..description.config.partitions {
            let marks = consumer.watermarks(&TopicPartition::new(name.clone(), partition))?;
            records += marks.high - marks.low;
        }
        writeln!(
            out,
            "{:<40} {:>10} {:>14}",
            name, description.config.partitions, records
        )?;
    }
    Ok(())
}

/// Flags of `rill tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    data: DataDirArgs,
    /// Topic to read.
    topic: String,
    /// Start at the first record instead of the end.
    #[arg(long)]
    from_beginning: bool,
    /// Stop after this many records.
    #[arg(long)]
    limit: Option<usize>,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long)]
    follow: bool,
}

pub fn tail(args: &TailArgs) -> anyhow::Result<()> {
    let log = embedded::open(&args.data.data_dir, FsyncPolicy::Always)?;
    let partitions = log.admin().describe_topic(&args.topic)?.config.partitions;
    let assignment: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(args.topic.clone(), p))
        .collect();
    let consumer = log.consumer(&ConsumerConfig::default(), None)?;
    consumer.assign(&assignment)?;
    let mut remaining = Vec::with_capacity(assignment.len());
    for partition in &assignment {
        let start = if args.from_beginning {
            SeekTo::Beginning
        } else {
            SeekTo::End
        };
        consumer.seek(partition, start)?;
        remaining.push(consumer.watermarks(partition)?.high);
    }
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut printed = 0;
    let mut out = std::io::stdout().lock();
    while printed < limit {
        let caught_up = assignment
            .iter()
            .zip(&remaining)
            .all(|(partition, end)| consumer.position(partition).is_ok_and(|at| at >= *end));
        if caught_up && !args.follow {
            break;
        }
        for record in consumer.poll(Duration::from_millis(200))? {
            if printed == limit {
                break;
            }
            writeln!(out, "{}", record_json(&record))?;
            printed += 1;
        }
    }
    Ok(())
}

/// Flags of `rill produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    data: DataDirArgs,
    /// Topic to write to.
    topic: String,
}

pub fn produce(args: &ProduceArgs) -> anyhow::Result<()> {
    let log = embedded::open(&args.data.data_dir, FsyncPolicy::Always)?;
    let producer = log.producer(&Default::default())?;
    let mut deliveries = Vec::new();
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let record = parse_record_line(&args.topic, &line)
            .with_context(|| format!("line {}: {line}", number + 1))?;
        deliveries.push(producer.send(record)?);
    }
    let mut out = std::io::stdout().lock();
    for delivery in deliveries {
        let written = delivery.wait()?;
        writeln!(
            out,
            "{}",
            json!({"partition": written.partition, "offset": written.offset})
        )?;
    }
    Ok(())
}

/// Parses `{"key": K, "value": V, "partition": P}`: a string key is its UTF-8 bytes, an integer
/// key is 8 bytes big-endian (Kafka's serializers), a value is its JSON text, `null` is absent.
fn parse_record_line(topic: &str, line: &str) -> anyhow::Result<ProducerRecord> {
    let Value::Object(fields) = serde_json::from_str::<Value>(line)? else {
        bail!("expected a JSON object with \"key\" and \"value\"");
    };
    let mut record = ProducerRecord::new(topic);
    record.key = match fields.get("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(Bytes::from(text.clone().into_bytes())),
        Some(Value::Number(number)) => match number.as_i64() {
            Some(integer) => Some(Bytes::copy_from_slice(&integer.to_be_bytes())),
            None => bail!("an integer key must fit in i64"),
        },
        Some(other) => Some(Bytes::from(other.to_string().into_bytes())),
    };
    record.value = match fields.get("value") {
        None | Some(Value::Null) => None,
        Some(value) => Some(Bytes::from(value.to_string().into_bytes())),
    };
    if let Some(partition) = fields.get("partition") {
        let partition = partition.as_i64().and_then(|p| i32::try_from(p).ok());
        record.partition = Some(partition.context("\"partition\" must be a small integer")?);
    }
    Ok(record)
}

fn record_json(record: &ConsumedRecord) -> Value {
    json!({
        "topic": &*record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": record.key.as_deref().map(bytes_json),
        "value": record.value.as_deref().map(bytes_json),
    })
}

/// Shows bytes as the JSON they hold, else as text.
fn bytes_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_and_integer_keys_use_kafka_serializers() {
        let record = parse_record_line("t", r#"{"key":"JUMPERS","value":10}"#).unwrap();
        assert_eq!(record.key.as_deref(), Some(&b"JUMPERS"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"10"[..]));
        let record = parse_record_line("t", r#"{"key":7,"value":null}"#).unwrap();
        assert_eq!(record.key.as_deref(), Some(&7i64.to_be_bytes()[..]));
        assert_eq!(record.value, None);
    }

    #[test]
    fn a_line_that_is_not_an_object_is_refused() {
        let error = parse_record_line("t", "[1,2]").unwrap_err();
        assert!(error.to_string().contains("JSON object"), "{error}");
        assert!(parse_record_line("t", r#"{"partition":"x"}"#).is_err());
    }
}
