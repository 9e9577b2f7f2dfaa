//! `rill reset APP..`: Kafka Streams' application reset, so the same code can process its
//! input again (reprocessing). Runs straight on the log: the embedded log's data directory
//! (which no `rill run` may hold) or a Kafka cluster.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::Context;
use clap::Args;
use rill_streams::reset::{ResetOptions, ResetTo, reset_application};

use rill_bench::backend::{self, KafkaArgs};

/// Flags of `rill reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Application ids to reset (each service of the order system is one: orders-service,
    /// order-details-service, inventory-service, fraud-service, email-service).
    #[arg(required = true)]
    applications: Vec<String>,
    /// The instance's directory, as given to `rill run`: on the embedded log the log itself;
    /// on either log the services' state in `state/`, which is removed.
    #[arg(long, default_value = "./rill-data", env = "RILL_DATA_DIR")]
    data_dir: PathBuf,
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Where the input offsets go: `earliest` (process everything again), `latest` (only
    /// what is written from now on) or a time in milliseconds since the Unix epoch.
    #[arg(long, default_value = "earliest")]
    to: Target,
    /// Leave the local state in the data directory alone (e.g. on a machine that runs no
    /// instance; each instance's own state must then be removed where it runs).
    #[arg(long)]
    keep_local_state: bool,
    /// Show what would be reset without changing anything.
    #[arg(long)]
    dry_run: bool,
}

/// `--to`.
#[derive(Debug, Clone, Copy)]
struct Target(ResetTo);

impl FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "earliest" => Ok(Target(ResetTo::Earliest)),
            "latest" => Ok(Target(ResetTo::Latest)),
            other => other
                .parse::<i64>()
                .ok()
                .filter(|ms| *ms >= 0)
                .map(|ms| Target(ResetTo::Timestamp(ms)))
                .ok_or_else(|| {
                    "expected earliest, latest or milliseconds since the Unix epoch".to_string()
                }),
        }
    }
}

pub fn reset(args: &ResetArgs) -> anyhow::Result<()> {
    let log = backend::open(&args.kafka, &args.data_dir, None)?;
    let options = ResetOptions {
        to: args.to.0,
        state_dir: (!args.keep_local_state).then(|| args.data_dir.join("state")),
        dry_run: args.dry_run,
    };
    let shared = log.shared();
    let mut result = Ok(());
    for application in &args.applications {
        let report = match reset_application(shared.as_ref(), application, &options)
            .with_context(|| format!("resetting {application}"))
        {
            Ok(report) => report,
            Err(error) => {
                result = Err(error);
                break;
            }
        };
        let verb = if args.dry_run { "would move" } else { "moved" };
        println!("{application}:");
        for moved in &report.offsets {
            println!(
                "  {verb} {}[{}] {} -> {}",
                moved.partition.topic, moved.partition.partition, moved.from, moved.to
            );
        }
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        for topic in &report.deleted_topics {
            println!("  {verb} topic {topic}");
        }
        if let Some(dir) = &report.removed_state {
            let verb = if args.dry_run {
                "would remove"
            } else {
                "removed"
            };
            println!("  {verb} local state in {}", dir.display());
        }
        if report.offsets.is_empty() && report.deleted_topics.is_empty() {
            println!("  nothing committed and no internal topics: nothing to reset");
        }
    }
    let closed = log.close();
    result.and(closed)
}
