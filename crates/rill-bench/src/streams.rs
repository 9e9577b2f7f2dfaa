//! The streams runtime benchmark on the embedded log: a stateless map/filter pipeline on one
//! thread, counting by key into a store under exactly-once, and restoring a large store from
//! its changelog.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use rill_log::{Log, ProducerRecord, TopicConfig};
use rill_log_embedded::FsyncPolicy;
use rill_streams::{StoreOptions, StreamsApp, StreamsBuilder, StreamsConfig, Topology};

use super::median;

/// Flags of `rill bench streams`.
#[derive(Debug, Args)]
pub struct StreamsBenchArgs {
    /// Scratch directory (created; removed afterwards).
    #[arg(long, default_value = "./target/bench-streams")]
    dir: PathBuf,
    /// Records through the stateless pipeline per run.
    #[arg(long, default_value_t = 2_000_000)]
    stateless_records: u64,
    /// Records counted per run.
    #[arg(long, default_value_t = 1_000_000)]
    count_records: u64,
    /// Distinct keys counted.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Keys in the store restored from its changelog.
    #[arg(long, default_value_t = 1_000_000)]
    restore_keys: u64,
    /// Repetitions; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Use persistent stores (on disk) instead of in-memory ones.
    #[arg(long)]
    persistent: bool,
}

pub fn run(args: &StreamsBenchArgs) -> anyhow::Result<()> {
    let store = |name: &str| {
        if args.persistent {
            StoreOptions::persistent(name)
        } else {
            StoreOptions::in_memory(name)
        }
    };
    let kind = if args.persistent {
        "persistent"
    } else {
        "in-memory"
    };
    println!(
        "| measurement | records | records/s (median of {}) |",
        args.runs
    );
    println!("|---|---|---|");
    let mut rates = Vec::new();
    for run in 0..args.runs {
        rates.push(stateless(
            &args.dir.join(format!("stateless-{run}")),
            args.stateless_records,
        )?);
    }
    println!(
        "| stateless filter + map, 1 thread, exactly-once | {} | {:.0} |",
        args.stateless_records,
        median(&mut rates)
    );
    let mut rates = Vec::new();
    for run in 0..args.runs {
        let dir = args.dir.join(format!("count-{run}"));
        rates.push(count(&dir, args.count_records, args.keys, store("counts"))?.0);
    }
    println!(
        "| count by key, {} keys, {kind} store, exactly-once | {} | {:.0} |",
        args.keys,
        args.count_records,
        median(&mut rates)
    );
    let mut seconds = Vec::new();
    for run in 0..args.runs {
        let dir = args.dir.join(format!("restore-{run}"));
        seconds.push(restore(&dir, args.restore_keys, store("counts"))?);
    }
    println!(
        "| restore of a {}-key {kind} store from its changelog | {} | {:.2} s |",
        args.restore_keys,
        args.restore_keys,
        median(&mut seconds)
    );
    std::fs::remove_dir_all(&args.dir).ok();
    Ok(())
}

fn fresh(dir: &Path) -> anyhow::Result<(Arc<rill_log_embedded::EmbeddedLog>, PathBuf)> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let log = crate::backend::open_embedded(&dir.join("log"), FsyncPolicy::Always)?;
    Ok((log, dir.join("state")))
}

fn fill(
    log: &dyn Log,
    topic: &str,
    records: u64,
    key: impl Fn(u64) -> String,
) -> anyhow::Result<()> {
    log.admin()
        .create_topic(topic, &TopicConfig::with_partitions(1))?;
    let producer = log.producer(&Default::default())?;
    for i in 0..records {
        drop(
            producer.send(
                ProducerRecord::new(topic)
                    .key(key(i))
                    .value(format!("value-{i}")),
            )?,
        );
    }
    producer.flush(Duration::from_secs(600))?;
    Ok(())
}

/// Runs `topology` until it processed `records`; records/s from start to the last one.
fn drive(app: &mut StreamsApp, records: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    app.start()?;
    while app.records_processed() < records {
        if app.wait_for_error(Duration::from_millis(5)) {
            bail!(
                "the application failed after {} records",
                app.records_processed()
            );
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!(
                "only {} of {records} records processed in 900 s",
                app.records_processed()
            );
        }
    }
    let rate = records as f64 / started.elapsed().as_secs_f64();
    app.close()?;
    Ok(rate)
}

fn stateless(dir: &Path, records: u64) -> anyhow::Result<f64> {
    let (log, state) = fresh(dir)?;
    fill(log.as_ref(), "in", records, |i| format!("k{}", i % 1000))?;
    log.admin()
        .create_topic("out", &TopicConfig::with_partitions(1))?;
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .filter(|_, value| !value.ends_with('7'))
        .map_values(|value| value.len() as i64)
        .to("out");
    let mut app = StreamsApp::new(
        builder.build()?,
        log.clone(),
        StreamsConfig::new("bench-stateless", state),
    );
    let rate = drive(&mut app, records)?;
    log.close()?;
    Ok(rate)
}

fn count_topology(store: StoreOptions) -> anyhow::Result<Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("words")
        .group_by_key()
        .count(store);
    Ok(builder.build()?)
}

fn count(
    dir: &Path,
    records: u64,
    keys: u64,
    store: StoreOptions,
) -> anyhow::Result<(f64, Arc<rill_log_embedded::EmbeddedLog>, PathBuf)> {
    let (log, state) = fresh(dir)?;
    fill(log.as_ref(), "words", records, |i| {
        format!("key-{}", i % keys)
    })?;
    let mut app = StreamsApp::new(
        count_topology(store)?,
        log.clone(),
        StreamsConfig::new("bench-count", &state),
    );
    let rate = drive(&mut app, records)?;
    Ok((rate, log, state))
}

/// Builds a store of `keys` keys, then times a new instance with an empty state directory
/// restoring it: seconds from start until every changelog record is applied.
fn restore(dir: &Path, keys: u64, store: StoreOptions) -> anyhow::Result<f64> {
    let (_, log, state) = count(dir, keys, keys, store.clone())?;
    std::fs::remove_dir_all(&state).ok();
    let mut app = StreamsApp::new(
        count_topology(store)?,
        log.clone(),
        StreamsConfig::new("bench-count", &state),
    );
    let started = Instant::now();
    app.start()?;
    while app.records_restored() < keys {
        if app.wait_for_error(Duration::from_millis(5)) {
            bail!("the application failed while restoring");
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!(
                "only {} of {keys} records restored in 300 s",
                app.records_restored()
            );
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    app.close()?;
    log.close()?;
    Ok(seconds)
}
