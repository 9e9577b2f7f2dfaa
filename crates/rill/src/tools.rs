//! `topics`, `tail`, `produce` and `groups`: through the topic proxy of a running server, or
//! straight to the log through its traits: a Kafka cluster (`--bootstrap`) or the embedded
//! log's data directory when no server holds it.

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rill_log::{ConsumedRecord, ConsumerConfig, Log, ProducerRecord, SeekTo, TopicPartition};
use rill_orders::consumer_groups::{self, GroupReport, GroupSummary};
use rill_orders::json_records;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{LogAccess, Server, Target};
use rill_bench::backend::OpenLog;

/// Runs `work` on the log, then closes it (the embedded log cleanly), also when `work` failed.
fn with_log(log: OpenLog, work: impl FnOnce(&dyn Log) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let result = work(log.shared().as_ref());
    let closed = log.close();
    result.and(closed)
}

/// Flags of `rill topics`.
#[derive(Debug, Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    access: LogAccess,
    /// JSON lines (`{"name","partitions","endOffsets","records"}`) instead of a table.
    #[arg(long)]
    json: bool,
}

/// A topic as `rill topics` shows it; the topic proxy's `GET /v1/topics` answers the same.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TopicRow {
    name: String,
    partitions: i32,
    /// Per partition, the offset the next record will get.
    end_offsets: Vec<i64>,
    /// Records the partitions hold (end minus start offsets).
    records: i64,
}

pub fn topics(args: &TopicsArgs) -> anyhow::Result<()> {
    match args.access.resolve()? {
        Target::Server(server) => {
            let mut answer = server.get("/v1/topics")?;
            let rows: Vec<TopicRow> = serde_json::from_value(answer["topics"].take())
                .with_context(|| format!("reading the topics {} listed", server.base()))?;
            print_topics(&rows, args.json)
        }
        Target::Log(log) => with_log(log, |log| print_topics(&topic_rows(log)?, args.json)),
    }
}

fn topic_rows(log: &dyn Log) -> anyhow::Result<Vec<TopicRow>> {
    let consumer = log.consumer(&ConsumerConfig::default(), None)?;
    let mut rows = Vec::new();
    for name in log.admin().list_topics()? {
        let partitions = log.admin().describe_topic(&name)?.config.partitions;
        let mut end_offsets = Vec::with_capacity(usize::try_from(partitions).unwrap_or(0));
        let mut records = 0;
        for partition in 0..partitions {
            let marks = consumer.watermarks(&TopicPartition::new(name.clone(), partition))?;
            end_offsets.push(marks.high);
            records += marks.high - marks.low;
        }
        rows.push(TopicRow {
            name,
            partitions,
            end_offsets,
            records,
        });
    }
    consumer.close()?;
    Ok(rows)
}

fn print_topics(rows: &[TopicRow], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for row in rows {
            writeln!(out, "{}", serde_json::to_string(row)?)?;
        }
        return Ok(());
    }
    let cells = rows
        .iter()
        .map(|row| {
            let ends: Vec<String> = row.end_offsets.iter().map(i64::to_string).collect();
            vec![
                row.name.clone(),
                row.partitions.to_string(),
                row.records.to_string(),
                ends.join(","),
            ]
        })
        .collect();
    table(
        &mut out,
        &["TOPIC", "PARTITIONS", "RECORDS", "END-OFFSETS"],
        cells,
    )
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
    match args.access.resolve()? {
        Target::Server(server) => tail_via(&server, args),
        Target::Log(log) => with_log(log, |log| tail_on(log, args)),
    }
}

fn tail_on(log: &dyn Log, args: &TailArgs) -> anyhow::Result<()> {
    let schemas = avro_schemas(log)?;
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
            writeln!(out, "{}", record_json(&record, schemas.as_ref()))?;
            printed += 1;
        }
    }
    consumer.close()?;
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
    match args.access.resolve()? {
        Target::Server(server) => produce_via(&server, &args.topic),
        Target::Log(log) => with_log(log, |log| produce_on(log, &args.topic)),
    }
}

fn produce_on(log: &dyn Log, topic: &str) -> anyhow::Result<()> {
    let producer = log.producer(&Default::default())?;
    let mut deliveries = Vec::new();
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let record = parse_record_line(topic, &line)
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

/// Flags of `rill groups`.
#[derive(Debug, Args)]
pub struct GroupsArgs {
    #[command(flatten)]
    access: LogAccess,
    /// Show this group: its state, its members, and per partition the committed offset, the
    /// end offset (high watermark) and the lag. Without it, every group is listed.
    group: Option<String>,
    /// JSON lines instead of a table: one line per group, or the group's whole report.
    #[arg(long)]
    json: bool,
}

pub fn groups(args: &GroupsArgs) -> anyhow::Result<()> {
    match (args.access.resolve()?, &args.group) {
        (Target::Server(server), None) => {
            let mut answer = server
                .get("/v1/groups")
                .context("listing groups through the server")?;
            let groups: Vec<GroupSummary> = serde_json::from_value(answer["groups"].take())
                .with_context(|| format!("reading the groups {} listed", server.base()))?;
            print_groups(&groups, args.json)
        }
        (Target::Server(server), Some(group)) => {
            let answer = server
                .get(&format!("/v1/groups/{}", path_segment(group)))
                .with_context(|| format!("describing group '{group}' through the server"))?;
            let report: GroupReport = serde_json::from_value(answer)
                .with_context(|| format!("reading the report {} gave", server.base()))?;
            print_report(&report, args.json)
        }
        (Target::Log(log), None) => with_log(log, |log| {
            print_groups(&consumer_groups::list(log)?, args.json)
        }),
        (Target::Log(log), Some(group)) => with_log(log, |log| {
            print_report(&consumer_groups::report(log, group)?, args.json)
        }),
    }
}

fn print_groups(groups: &[GroupSummary], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for group in groups {
            writeln!(out, "{}", serde_json::to_string(group)?)?;
        }
        return Ok(());
    }
    let rows = groups
        .iter()
        .map(|g| vec![g.group.clone(), g.state.clone()])
        .collect();
    table(&mut out, &["GROUP", "STATE"], rows)
}

fn print_report(report: &GroupReport, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(report)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "group {}: {}, {} member(s)",
        report.group,
        report.state,
        report.members.len()
    )?;
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_string());
    if !report.members.is_empty() {
        writeln!(out)?;
        let rows = report
            .members
            .iter()
            .map(|m| {
                let assigned = m.assignment.as_ref().map(|partitions| {
                    let names: Vec<String> = partitions
                        .iter()
                        .map(|p| format!("{}-{}", p.topic, p.partition))
                        .collect();
                    names.join(",")
                });
                vec![
                    m.member_id.clone(),
                    m.client_id.clone(),
                    or_dash(m.host.clone()),
                    or_dash(assigned),
                ]
            })
            .collect();
        table(
            &mut out,
            &["MEMBER-ID", "CLIENT-ID", "HOST", "PARTITIONS"],
            rows,
        )?;
    }
    writeln!(out)?;
    let rows = report
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.topic.clone(),
                p.partition.to_string(),
                or_dash(p.committed.map(|o| o.to_string())),
                or_dash(p.end.map(|o| o.to_string())),
                or_dash(p.lag.map(|o| o.to_string())),
                or_dash(p.member.clone()),
            ]
        })
        .collect();
    table(
        &mut out,
        &["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER-ID"],
        rows,
    )
}

/// Writes `rows` under `headers`, each column as wide as its widest cell.
fn table(out: &mut impl Write, headers: &[&str], rows: Vec<Vec<String>>) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

/// `text` as one URL path segment: everything but unreserved characters percent-encoded, so a
/// group id with `/`, `?` or spaces reaches the server whole.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Parses a JSON line `{"key": K, "value": V, "partition": P}` into a record (see
/// [`rill_orders::json_records`] for how keys and values become bytes).
fn parse_record_line(topic: &str, line: &str) -> anyhow::Result<ProducerRecord> {
    let value: Value = serde_json::from_str(line)?;
    Ok(json_records::producer_record(topic, &value)?)
}

/// The schemas of the log's registry, to show Avro values as JSON; none when the log has no
/// `_schemas` topic (nothing was ever registered), which is then left uncreated.
fn avro_schemas(log: &dyn Log) -> anyhow::Result<Option<rill_schema::SchemaCache>> {
    if !log
        .admin()
        .list_topics()?
        .iter()
        .any(|topic| topic == rill_schema::SCHEMAS_TOPIC)
    {
        return Ok(None);
    }
    let registry = rill_schema::LogSchemaRegistry::open(log)?;
    Ok(Some(rill_schema::SchemaCache::new(std::sync::Arc::new(
        registry,
    ))))
}

fn record_json(record: &ConsumedRecord, schemas: Option<&rill_schema::SchemaCache>) -> Value {
    json!({
        "topic": &*record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": record.key.as_deref().map(json_records::key_json),
        "value": record
            .value
            .as_deref()
            .map(|value| rill_orders::formats::show_value(schemas, value)),
    })
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
    fn group_ids_become_one_path_segment() {
        assert_eq!(path_segment("orders-service.v2_x~"), "orders-service.v2_x~");
        assert_eq!(path_segment("a/b c?#é"), "a%2Fb%20c%3F%23%C3%A9");
    }

    #[test]
    fn tables_pad_columns_to_their_widest_cell() {
        let mut out = Vec::new();
        table(
            &mut out,
            &["GROUP", "STATE"],
            vec![
                vec!["g".into(), "Stable".into()],
                vec!["longer-group".into(), "Empty".into()],
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GROUP         STATE\ng             Stable\nlonger-group  Empty\n"
        );
    }

    #[test]
    fn a_line_that_is_not_an_object_is_refused() {
        let error = parse_record_line("t", "[1,2]").unwrap_err();
        assert!(error.to_string().contains("JSON object"), "{error}");
        assert!(parse_record_line("t", r#"{"partition":"x"}"#).is_err());
    }
}
