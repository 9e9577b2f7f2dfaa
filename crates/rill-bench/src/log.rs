//! The embedded log benchmark: single-producer append throughput with group-commit fsync and
//! without, read throughput from the start of a partition, append-to-durable latency at a fixed
//! offered rate, and time to open a 1 GiB log after kill -9, printed beside the disk's own
//! sequential write bandwidth (`dd ... conv=fdatasync`) measured in the same run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use hdrhistogram::Histogram;
use rill_log::{ConsumerConfig, Log, ProducerRecord, TopicConfig, TopicPartition};
use rill_log_embedded::FsyncPolicy;

use super::median;
use super::throughput::{self, value};

/// Flags of `rill bench log`.
#[derive(Debug, Args)]
pub struct LogBenchArgs {
    /// Scratch directory (created; each run uses a fresh sub-directory, removed afterwards).
    #[arg(long, default_value = "./target/bench-log")]
    dir: PathBuf,
    /// Bytes written per append run (the record count is this divided by the value size).
    #[arg(long, default_value_t = 256 << 20)]
    bytes_per_run: u64,
    /// Repetitions of each throughput measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Offered rate for the latency measurement, records per second.
    #[arg(long, default_value_t = 50_000)]
    latency_rate: u64,
    /// Size of the log for the recovery measurement, MiB (0 skips it).
    #[arg(long, default_value_t = 1024)]
    recovery_mib: u64,
}

/// Flags of the hidden `rill bench log-fill`.
#[derive(Debug, Args)]
pub struct LogFillArgs {
    #[arg(long)]
    dir: PathBuf,
    #[arg(long)]
    mib: u64,
}

const TOPIC: &str = "bench";

pub fn run(args: &LogBenchArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dd = dd_bandwidth(&args.dir)?;
    println!(
        "disk: dd bs=1M count=1024 conv=fdatasync: {:.0} MB/s",
        dd / 1e6
    );
    println!();
    println!("| measurement | value size | fsync | records/s (median) | MB/s | vs dd |");
    println!("|---|---|---|---|---|---|");
    for value_size in [100usize, 1024] {
        let records = (args.bytes_per_run / value_size as u64) as usize;
        for (label, policy) in [
            ("group commit", FsyncPolicy::Always),
            ("never", FsyncPolicy::Never),
        ] {
            let mut rates = Vec::new();
            for run in 0..args.runs {
                let dir = scratch(&args.dir, &format!("append-{value_size}-{label}-{run}"))?;
                rates.push(append(&dir, policy, value_size, records)?);
                std::fs::remove_dir_all(&dir).ok();
            }
            let rate = median(&mut rates);
            let mbps = rate * value_size as f64 / 1e6;
            println!(
                "| append | {value_size} B | {label} | {rate:.0} | {mbps:.1} | {:.0}% |",
                100.0 * mbps * 1e6 / dd
            );
        }
        let dir = scratch(&args.dir, &format!("read-{value_size}"))?;
        append(&dir, FsyncPolicy::Never, value_size, records)?;
        let mut rates = Vec::new();
        for _ in 0..args.runs {
            rates.push(read_all(&dir, records)?);
        }
        std::fs::remove_dir_all(&dir).ok();
        let rate = median(&mut rates);
        println!(
            "| read from start | {value_size} B | - | {rate:.0} | {:.1} | - |",
            rate * value_size as f64 / 1e6
        );
    }
    println!();
    for value_size in [100usize, 1024] {
        let dir = scratch(&args.dir, &format!("latency-{value_size}"))?;
        let latency = append_latency(&dir, value_size, args.latency_rate)?;
        std::fs::remove_dir_all(&dir).ok();
        println!(
            "append-to-durable latency, {value_size} B values, {} records/s offered, group commit: \
             p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            args.latency_rate,
            latency.value_at_quantile(0.5) as f64 / 1000.0,
            latency.value_at_quantile(0.99) as f64 / 1000.0,
            latency.max() as f64 / 1000.0,
        );
    }
    if args.recovery_mib > 0 {
        let dir = scratch(&args.dir, "recovery")?;
        let (opened_in, records) = recovery_after_kill(&dir, args.recovery_mib)?;
        std::fs::remove_dir_all(&dir).ok();
        println!(
            "open after kill -9 of a {} MiB log: {:.3} s ({records} records recovered)",
            args.recovery_mib,
            opened_in.as_secs_f64()
        );
    }
    Ok(())
}

fn scratch(base: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = base.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    Ok(dir)
}

/// One producer, every record to partition 0 of a fresh log, deliveries awaited at the end:
/// records/s.
fn append(
    dir: &Path,
    policy: FsyncPolicy,
    value_size: usize,
    records: usize,
) -> anyhow::Result<f64> {
    let log = crate::backend::open_embedded(dir, policy)?;
    log.admin()
        .create_topic(TOPIC, &TopicConfig::with_partitions(1))?;
    let rate = throughput::append(&*log, TOPIC, value_size, records, &[])?;
    log.close()?;
    Ok(rate)
}

/// Reads partition 0 from the beginning until `records` were seen: records/s.
fn read_all(dir: &Path, records: usize) -> anyhow::Result<f64> {
    let log = crate::backend::open_embedded(dir, FsyncPolicy::Never)?;
    let rate = throughput::read_all(&*log, TOPIC, records, &[])?;
    log.close()?;
    Ok(rate)
}

/// Sends at a fixed rate for a few seconds; a second thread awaits deliveries in order and
/// records send-to-acknowledged time in microseconds.
fn append_latency(dir: &Path, value_size: usize, rate: u64) -> anyhow::Result<Histogram<u64>> {
    const SECONDS: u64 = 3;
    let log = crate::backend::open_embedded(dir, FsyncPolicy::Always)?;
    log.admin()
        .create_topic(TOPIC, &TopicConfig::with_partitions(1))?;
    let producer = log.producer(&Default::default())?;
    let payload = value(value_size);
    let (pending_tx, pending_rx) = mpsc::channel::<(Instant, rill_log::DeliveryFuture)>();
    let waiter = std::thread::spawn(move || -> anyhow::Result<Histogram<u64>> {
        let mut histogram = Histogram::<u64>::new(3)?;
        for (sent, delivery) in pending_rx {
            delivery.wait()?;
            histogram.record(sent.elapsed().as_micros() as u64)?;
        }
        Ok(histogram)
    });
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    for sent in 0..rate * SECONDS {
        let due = started + interval * sent as u32;
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        let record = ProducerRecord::new(TOPIC)
            .partition(0)
            .value(payload.clone());
        pending_tx.send((Instant::now(), producer.send(record)?))?;
    }
    drop(pending_tx);
    let histogram = waiter
        .join()
        .map_err(|_| anyhow::anyhow!("latency waiter panicked"))??;
    log.close()?;
    Ok(histogram)
}

/// Fills a log in a child process, kills it with SIGKILL, then times opening it.
fn recovery_after_kill(dir: &Path, mib: u64) -> anyhow::Result<(Duration, i64)> {
    let exe = std::env::current_exe().context("locating the rill binary")?;
    let mut child = Command::new(exe)
        .args(["bench", "log-fill", "--mib", &mib.to_string(), "--dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the fill process")?;
    let stdout = child.stdout.take().context("fill process has no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if line.trim() != "filled" {
        let _ = child.kill();
        bail!("fill process said {line:?}");
    }
    child.kill().context("killing the fill process")?;
    child.wait()?;
    let started = Instant::now();
    let log = crate::backend::open_embedded(dir, FsyncPolicy::Always)?;
    let opened_in = started.elapsed();
    let consumer = log.consumer(&ConsumerConfig::default(), None)?;
    let marks = consumer.watermarks(&TopicPartition::new(TOPIC, 0))?;
    drop(consumer);
    log.close()?;
    Ok((opened_in, marks.high - marks.low))
}

pub fn fill(args: &LogFillArgs) -> anyhow::Result<()> {
    const VALUE_SIZE: usize = 1024;
    let log = crate::backend::open_embedded(&args.dir, FsyncPolicy::Never)?;
    log.admin()
        .create_topic(TOPIC, &TopicConfig::with_partitions(1))?;
    let producer = log.producer(&Default::default())?;
    let payload = value(VALUE_SIZE);
    let records = args.mib * 1024 * 1024 / VALUE_SIZE as u64;
    for _ in 0..records {
        // Deliveries are awaited all at once by the flush below.
        drop(
            producer.send(
                ProducerRecord::new(TOPIC)
                    .partition(0)
                    .value(payload.clone()),
            )?,
        );
    }
    producer.flush(Duration::from_secs(600))?;
    println!("filled");
    // Wait to be killed: the point is a crash without a clean shutdown.
    loop {
        std::thread::park();
    }
}

/// Sequential write bandwidth of the disk under `dir`, bytes/s, as `dd` reports it.
fn dd_bandwidth(dir: &Path) -> anyhow::Result<f64> {
    let file = dir.join("dd.tmp");
    let output = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", file.display()))
        .args(["bs=1M", "count=1024", "conv=fdatasync"])
        .output()
        .context("running dd")?;
    std::fs::remove_file(&file).ok();
    let report = String::from_utf8_lossy(&output.stderr);
    parse_dd(&report).with_context(|| format!("unexpected dd output: {report}"))
}

/// Parses dd's summary line: "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 1.2 s, 890 MB/s".
fn parse_dd(report: &str) -> Option<f64> {
    let line = report.lines().find(|line| line.contains(" copied, "))?;
    let bytes: f64 = line.split_whitespace().next()?.parse().ok()?;
    let after = line.split(" copied, ").nth(1)?;
    let seconds: f64 = after.split_whitespace().next()?.parse().ok()?;
    (seconds > 0.0).then(|| bytes / seconds)
}

#[cfg(test)]
mod tests {
    use super::parse_dd;

    #[test]
    fn reads_bandwidth_from_dd_summary() {
        let report = "1024+0 records in\n1024+0 records out\n\
                      1073741824 bytes (1.1 GB, 1.0 GiB) copied, 2 s, 537 MB/s\n";
        assert_eq!(parse_dd(report), Some(1073741824.0 / 2.0));
        assert_eq!(parse_dd("garbage"), None);
    }
}
