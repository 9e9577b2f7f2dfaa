//! rill's reproducible benchmarks, whose figures go into BENCHMARKS.md: the embedded log,
//! the Kafka backend, the streams runtime and the order system on either log.
//!
//! **Owns:** the benchmark workloads and measurements, their settings (which are also the
//! flags of `rill bench`: each settings type derives `clap::Args`, so the binary only parses
//! them and calls [`execute`]), and choosing a log from flags ([`backend`]), which `rill run`
//! and the tools share.
//!
//! **May depend on:** the log trait and both backends (it measures them), the streams runtime
//! and the order system. Nothing depends on it but the binary.
//!
//! Errors are `anyhow`'s, unlike the other libraries: a benchmark's failure goes straight to
//! the person who ran it, with its context, and no caller ever matches on it.
//!
//! The recovery benchmark of [`BenchCommand::Log`] runs `rill bench log-fill` in a child
//! process (the current executable), so it is meant to be called from the `rill` binary.

pub mod backend;
mod kafka;
mod log;
mod orders;
pub mod progress;
mod streams;
mod throughput;

use clap::Subcommand;

/// Benchmark subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The embedded log: append, read, append-to-durable latency and recovery, beside `dd`.
    Log(log::LogBenchArgs),
    /// The Kafka backend against a running broker: append and read from start, through the
    /// same loops as `log`.
    Kafka(kafka::KafkaBenchArgs),
    /// The streams runtime: stateless pipeline, count by key, restore.
    Streams(streams::StreamsBenchArgs),
    /// The order system: every service on the embedded log, orders/s to the final state,
    /// latency at a fixed rate, peak RSS, and the REST API's POST/s and GET/s.
    Orders(orders::OrdersBenchArgs),
    /// Fill a data directory and wait to be killed (used by the recovery benchmark).
    #[command(hide = true)]
    LogFill(log::LogFillArgs),
}

/// Runs one benchmark, printing its figures.
pub fn execute(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Log(args) => log::run(&args),
        BenchCommand::LogFill(args) => log::fill(&args),
        BenchCommand::Kafka(args) => kafka::run(&args),
        BenchCommand::Streams(args) => streams::run(&args),
        BenchCommand::Orders(args) => orders::run(&args),
    }
}

/// Median of measurements (upper median for an even count).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
