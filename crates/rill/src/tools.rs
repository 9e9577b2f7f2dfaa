//! `topics`, `tail` and `produce`: through the topic proxy of a running server, or on the
//! embedded log's data directory when no server holds it.

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rill_log::{ConsumedRecord, ConsumerConfig, Log, ProducerRecord, SeekTo, TopicPartition};
use rill_log_embedded::FsyncPolicy;
use rill_orders::json_records;
use serde_json::{Value, json};

use crate::client::{LogAccess, Server, Target};
use crate::embedded;

/// Flags of `rill topics`.
#[derive(Debug, Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    access: LogAccess,
}

pub fn topics(args: &TopicsArgs) -> anyhow::Result<()> {
    let data_dir = match args.access.resolve()? {
        Target::Server(server) => return topics_via(&server),
        Target::DataDir(dir) => dir,
    };
    let log = embedded::open(&data_dir, FsyncPolicy::Always)?;
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
    access: LogAccess,
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
    let data_dir = match args.access.resolve()? {
        Target::Server(server) => return tail_via(&server, args),
        Target::DataDir(dir) => dir,
    };
    let log = embedded::open(&data_dir, FsyncPolicy::Always)?;
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
    access: LogAccess,
    /// Topic to write to.
    topic: String,
}

pub fn produce(args: &ProduceArgs) -> anyhow::Result<()> {
    let data_dir = match args.access.resolve()? {
        Target::Server(server) => return produce_via(&server, &args.topic),
        Target::DataDir(dir) => dir,
    };
    let log = embedded::open(&data_dir, FsyncPolicy::Always)?;
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

/// Parses a JSON line `{"key": K, "value": V, "partition": P}` into a record (see
/// [`rill_orders::json_records`] for how keys and values become bytes).
fn parse_record_line(topic: &str, line: &str) -> anyhow::Result<ProducerRecord> {
    let value: Value = serde_json::from_str(line)?;
    Ok(json_records::producer_record(topic, &value)?)
}

fn record_json(record: &ConsumedRecord) -> Value {
    json!({
        "topic": &*record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": record.key.as_deref().map(json_records::key_json),
        "value": record.value.as_deref().map(json_records::value_json),
    })
}

/// `rill topics` through the proxy.
fn topics_via(server: &Server) -> anyhow::Result<()> {
    let answer = server.get("/v1/topics")?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<40} {:>10} {:>14}",
        "TOPIC", "PARTITIONS", "RECORDS"
    )?;
    for topic in answer["topics"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "{:<40} {:>10} {:>14}",
            topic["name"].as_str().unwrap_or("?"),
            topic["partitions"].as_i64().unwrap_or(0),
            topic["records"].as_i64().unwrap_or(0)
        )?;
    }
    Ok(())
}

/// `rill tail` through the proxy: reads each partition from its start position (the beginning
/// or the end offsets listed at start) until caught up, or forever with `--follow`.
fn tail_via(server: &Server, args: &TailArgs) -> anyhow::Result<()> {
    let topics = server.get("/v1/topics")?;
    let Some(topic) = topics["topics"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == args.topic.as_str())
    else {
        bail!("no topic '{}' on {}", args.topic, server.base());
    };
    let ends: Vec<i64> = topic["endOffsets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .collect();
    let mut positions: Vec<i64> = if args.from_beginning {
        vec![0; ends.len()]
    } else {
        ends.clone()
    };
    let limit = args.limit.unwrap_or(usize::MAX);
    let mut printed = 0;
    let mut out = std::io::stdout().lock();
    loop {
        let mut got_any = false;
        for (partition, position) in positions.iter_mut().enumerate() {
            if printed >= limit {
                return Ok(());
            }
            let batch = (limit - printed).min(1000);
            let answer = server.get(&format!(
                "/v1/topics/{}/records?partition={partition}&offset={position}&limit={batch}",
                args.topic
            ))?;
            for record in answer["records"].as_array().into_iter().flatten() {
                let mut line = record.clone();
                line["topic"] = Value::String(args.topic.clone());
                writeln!(out, "{line}")?;
                printed += 1;
                got_any = true;
            }
            if let Some(next) = answer["next"][0]["offset"].as_i64() {
                *position = next;
            }
        }
        if !got_any {
            if !args.follow {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `rill produce` through the proxy, in batches of up to 500 lines.
fn produce_via(server: &Server, topic: &str) -> anyhow::Result<()> {
    let mut batch = Vec::new();
    let mut out = std::io::stdout().lock();
    let mut send = |batch: &mut Vec<Value>| -> anyhow::Result<()> {
        for position in server.produce(topic, std::mem::take(batch))? {
            writeln!(out, "{position}")?;
        }
        Ok(())
    };
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Value =
            serde_json::from_str(&line).with_context(|| format!("line {}: {line}", number + 1))?;
        // Checked here too, so a bad line is named by its number.
        json_records::producer_record(topic, &record)
            .with_context(|| format!("line {}: {line}", number + 1))?;
        batch.push(record);
        if batch.len() == 500 {
            send(&mut batch)?;
        }
    }
    if !batch.is_empty() {
        send(&mut batch)?;
    }
    Ok(())
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
