//! Command-line interface: flags and subcommands.

use clap::{Parser, Subcommand};

use crate::{bench, feeds, run, tools};

/// rill: event-driven order processing on a partitioned, replayable log.
#[derive(Debug, Parser)]
#[command(name = "rill", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
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
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

pub fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run::run(&args),
        Command::AddInventory(args) => feeds::add_inventory(&args),
        Command::PostOrders(args) => feeds::post_orders(&args),
        Command::Topics(args) => tools::topics(&args),
        Command::Tail(args) => tools::tail(&args),
        Command::Produce(args) => tools::produce(&args),
        Command::Groups(args) => tools::groups(&args),
        Command::Bench(command) => bench::execute(command),
    }
}
