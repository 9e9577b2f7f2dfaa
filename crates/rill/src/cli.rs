//! Command-line interface: flags and subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{bench, tools};

/// rill: event-driven order processing on a partitioned, replayable log.
#[derive(Debug, Parser)]
#[command(name = "rill", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open the embedded log, create the orders system's topics, seed the inventory and serve
    /// until interrupted.
    Run(tools::RunArgs),
    /// List topics with partitions and offsets.
    Topics(DataDirArgs),
    /// Print records of a topic as JSON lines.
    Tail(tools::TailArgs),
    /// Write JSON lines from stdin (`{"key":..,"value":..}`) to a topic.
    Produce(tools::ProduceArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Where the embedded log keeps its data.
#[derive(Debug, Clone, Args)]
pub struct DataDirArgs {
    /// Data directory of the embedded log.
    #[arg(long, default_value = "./rill-data", env = "RILL_DATA_DIR")]
    pub data_dir: PathBuf,
}

pub fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => tools::run(&args),
        Command::Topics(args) => tools::topics(&args),
        Command::Tail(args) => tools::tail(&args),
        Command::Produce(args) => tools::produce(&args),
        Command::Bench(command) => bench::execute(command),
    }
}
