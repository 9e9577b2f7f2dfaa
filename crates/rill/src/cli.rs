//! Command-line interface: flags and subcommands.

use std::path::PathBuf;

use clap::{ArgMatches, Parser, Subcommand, ValueEnum};

use crate::config::{self, ConfigFile};
use crate::{example, feeds, reset, run, tools};
use rill_bench as bench;

/// rill: event-driven order processing on a partitioned, replayable log.
#[derive(Debug, Parser)]
#[command(name = "rill", version, about)]
pub struct Cli {
    /// Settings of `rill run` from a TOML file (keys: the flags' long names, and a [kafka]
    /// table); flags and RILL_* variables override it. `rill config` shows the result.
    #[arg(long, global = true, env = "RILL_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Log lines for people (`text`) or one JSON object per line for machines (`json`).
    #[arg(long, global = true, env = "RILL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an instance of the order system (every service by default) with its HTTP API
    /// (orders and topic proxy) on 127.0.0.1:8080, on the embedded log or a Kafka cluster
    /// (--bootstrap), until interrupted.
    Run(run::RunArgs),
    /// Set stock per product (through a running server's topic proxy).
    AddInventory(feeds::AddInventoryArgs),
    /// Post random orders (with a payment each) to a running server and report how they end.
    PostOrders(feeds::PostOrdersArgs),
    /// List topics with partitions and offsets.
    Topics(tools::TopicsArgs),
    /// Print records of a topic as JSON lines.
    Tail(tools::TailArgs),
    /// Write JSON lines from stdin (`{"key":..,"value":..}`) to a topic.
    Produce(tools::ProduceArgs),
    /// List consumer groups, or show one: members, and per partition the committed offset,
    /// end offset and lag.
    Groups(tools::GroupsArgs),
    /// Reset applications so that they process their input again: committed input offsets
    /// to earliest, latest or a time; internal topics deleted; local state removed. Every
    /// instance of them must be stopped.
    Reset(reset::ResetArgs),
    /// Run one of the example systems on its sample input and print what it writes (no
    /// name: list them).
    Example(example::ExampleArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Print the settings `rill run` would use with the same flags, environment and
    /// `--config` file, and where each comes from (secrets masked).
    Config(ConfigArgs),
}

/// `rill config` takes every flag of `rill run`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    run: run::RunArgs,
}

/// What `rill config` needs beyond the parsed flags: the command line as configured and its
/// raw matches (to tell where each value came from).
pub struct Invocation<'a> {
    pub command: &'a clap::Command,
    pub matches: &'a ArgMatches,
    pub file: Option<&'a ConfigFile>,
}

pub fn execute(cli: Cli, invocation: &Invocation<'_>) -> anyhow::Result<()> {
    match cli.command {
        Command::Config(_) => {
            print!(
                "{}",
                config::describe(invocation.command, invocation.matches, invocation.file)
            );
            Ok(())
        }
        Command::Run(args) => run::run(&args),
        Command::AddInventory(args) => feeds::add_inventory(&args),
        Command::PostOrders(args) => feeds::post_orders(&args),
        Command::Topics(args) => tools::topics(&args),
        Command::Tail(args) => tools::tail(&args),
        Command::Produce(args) => tools::produce(&args),
        Command::Groups(args) => tools::groups(&args),
        Command::Reset(args) => reset::reset(&args),
        Command::Example(args) => example::example(&args),
        Command::Bench(command) => bench::execute(command),
    }
}
