//! Throughput of windowed operations on the embedded log, exactly-once:
//! a session-windowed sum by key (10,000 keys) and a windowed stream-stream join.
//!
//! ```text
//! cargo run --release -p rill-streams --example windows_bench [records] [threads] [sessions|join]
//! ```
//!
//! Inputs are written first; the clock runs from `StreamsApp::start` until every input
//! record has been processed (the final commit included).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rill_log::{
    ConsumerConfig, IsolationLevel, Log, ProducerRecord, SeekTo, TopicConfig, TopicPartition,
};
use rill_log_embedded::{EmbeddedConfig, EmbeddedLog};
use rill_streams::{
    JoinWindows, SessionWindows, StoreOptions, StreamsApp, StreamsBuilder, StreamsConfig, Topology,
};

const KEYS: usize = 10_000;
const PARTITIONS: i32 = 2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let records: usize = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let threads: usize = args.next().map_or(Ok(2), |a| a.parse())?;

    let only = args.next();
    if only.as_deref() != Some("join") {
        let sessions = session_sum(records, threads)?;
        println!(
            "session-windowed sum: {records} records, {KEYS} keys, {threads} threads, \
             exactly-once: {:.2} s, {:.0} records/s",
            sessions.as_secs_f64(),
            records as f64 / sessions.as_secs_f64()
        );
    }
    if only.as_deref() == Some("sessions") {
        return Ok(());
    }
    let (join, joined) = stream_join(records, threads)?;
    println!(
        "windowed stream-stream join: {records} input records ({joined} joined), {threads} \
         threads, exactly-once: {:.2} s, {:.0} joined records/s ({:.0} input records/s)",
        join.as_secs_f64(),
        joined as f64 / join.as_secs_f64(),
        records as f64 / join.as_secs_f64()
    );
    Ok(())
}

fn open(dir: &Path) -> Result<Arc<EmbeddedLog>, Box<dyn std::error::Error>> {
    Ok(Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir))?))
}

/// Writes `count` records to `topic`: key `k{i % KEYS}`, value 1, one every 0.1 ms of event
/// time, so each key sees a record every second.
fn produce(log: &dyn Log, topic: &str, count: usize) -> Result<(), Box<dyn std::error::Error>> {
    log.admin()
        .create_topic(topic, &TopicConfig::with_partitions(PARTITIONS))?;
    let producer = log.producer(&Default::default())?;
    for i in 0..count {
        // Acknowledgements are awaited all at once by the flush below.
        drop(
            producer.send(
                ProducerRecord::new(topic)
                    .key(format!("k{}", i % KEYS))
                    .value(1i64.to_be_bytes().to_vec())
                    .timestamp((i / 10) as i64),
            )?,
        );
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(())
}

/// Runs `topology` until `expected` input records are processed; answers the elapsed time.
fn run(
    log: Arc<EmbeddedLog>,
    topology: Topology,
    state: &Path,
    threads: usize,
    expected: u64,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let mut config = StreamsConfig::new("bench", state);
    config.threads = threads;
    let mut app = StreamsApp::new(topology, log, config);
    let started = Instant::now();
    app.start()?;
    while app.records_processed() < expected {
        if app.wait_for_error(Duration::from_millis(5)) {
            app.close()?;
            return Err("a stream thread failed".into());
        }
    }
    let elapsed = started.elapsed();
    println!("  (late records dropped: {})", app.late_records_dropped());
    app.close()?;
    Ok(elapsed)
}

fn session_sum(records: usize, threads: usize) -> Result<Duration, Box<dyn std::error::Error>> {
    let data = tempfile::tempdir()?;
    let state = tempfile::tempdir()?;
    let log = open(data.path())?;
    produce(log.as_ref(), "amounts", records)?;
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("amounts")
        .group_by_key()
        .windowed_by(SessionWindows::with_inactivity_gap(Duration::from_secs(5)))
        .reduce(StoreOptions::in_memory("sums"), |a, b| a + b)
        .to_stream()
        .to("session-sums");
    log.admin()
        .create_topic("session-sums", &TopicConfig::with_partitions(PARTITIONS))?;
    run(log, builder.build()?, state.path(), threads, records as u64)
}

fn stream_join(
    records: usize,
    threads: usize,
) -> Result<(Duration, usize), Box<dyn std::error::Error>> {
    let data = tempfile::tempdir()?;
    let state = tempfile::tempdir()?;
    let log = open(data.path())?;
    let half = records / 2;
    produce(log.as_ref(), "left", half)?;
    produce(log.as_ref(), "right", half)?;
    let builder = StreamsBuilder::new();
    let left = builder.stream::<String, i64>("left");
    let right = builder.stream::<String, i64>("right");
    // A key repeats every second of event time: within 100 ms each record meets exactly its
    // counterpart on the other side.
    left.join_stream(
        &right,
        // Inputs written beforehand are read partition by partition, so one side can run
        // ahead of the other in event time; the grace period keeps the lagging side on time.
        JoinWindows::of(Duration::from_millis(100)).grace(Duration::from_secs(60)),
        |a, b| a + b,
    )
    .to("joined");
    log.admin()
        .create_topic("joined", &TopicConfig::with_partitions(PARTITIONS))?;
    let elapsed = run(
        log.clone(),
        builder.build()?,
        state.path(),
        threads,
        (half * 2) as u64,
    )?;
    let joined = committed_records(log.as_ref(), "joined")?;
    if joined != half {
        return Err(format!("expected {half} joined records, the output holds {joined}").into());
    }
    Ok((elapsed, joined))
}

/// Counts the committed records of `topic`.
fn committed_records(log: &dyn Log, topic: &str) -> Result<usize, Box<dyn std::error::Error>> {
    let consumer = log.consumer(
        &ConsumerConfig {
            isolation: IsolationLevel::ReadCommitted,
            ..Default::default()
        },
        None,
    )?;
    let parts: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    consumer.assign(&parts)?;
    for part in &parts {
        consumer.seek(part, SeekTo::Beginning)?;
    }
    let mut count = 0;
    let mut quiet = 0;
    while quiet < 5 {
        let polled = consumer.poll(Duration::from_millis(100))?.len();
        count += polled;
        quiet = if polled == 0 { quiet + 1 } else { 0 };
    }
    Ok(count)
}
