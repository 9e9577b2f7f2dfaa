//! `rill bench ...`: reproducible benchmarks whose figures go into BENCHMARKS.md.

mod kafka;
mod log;
mod orders;
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
