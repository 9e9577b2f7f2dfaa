//! `rill run`: an instance of the order system with its HTTP API, on the embedded log or on a
//! Kafka cluster.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use rill_orders::formats::{Format, RegistryLocation};
use rill_orders::instance::{Instance, InstanceConfig};
use rill_orders::system::Service;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rill_streams::{FaultInjector, FaultPoint, ProcessingGuarantee};

use rill_bench::backend::{self, KafkaArgs};

/// Flags of `rill run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// This instance's directory: the embedded log's files and, on either log, the services'
    /// state in `state/` (with the instance id). Each instance of a cluster needs its own.
    #[arg(long, default_value = "./rill-data", env = "RILL_DATA_DIR")]
    data_dir: PathBuf,
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Replicas of each topic created on a Kafka cluster (default: min(3, brokers)).
    #[arg(long, requires = "bootstrap")]
    replication_factor: Option<i32>,
    /// Exactly-once needs a log with transactions; at-least-once may repeat work after a crash.
    #[arg(long, value_enum, default_value_t = Guarantee::ExactlyOnce)]
    processing_guarantee: Guarantee,
    /// Address of the HTTP API (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1:8080", env = "RILL_HTTP")]
    http: SocketAddr,
    /// Address other instances use to reach this one's API (default: the --http address).
    #[arg(long)]
    advertise: Option<String>,
    /// Services to run, comma-separated (orders, order-details, inventory, fraud, email).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "orders,order-details,inventory,fraud,email"
    )]
    services: Vec<Service>,
    /// Partitions of each topic the system creates (existing topics keep theirs).
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Do not seed the default inventory into a new system.
    #[arg(long)]
    no_seed: bool,
    /// Stream threads per service.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Memory the services' persistent stores use, MiB: a sixteenth for the block cache they
    /// share, a sixteenth for their read caches, a quarter for their unflushed writes, and 64
    /// MiB of memtables (the runtime comes on top).
    #[arg(long, default_value_t = rill_streams::DEFAULT_MEMORY_BUDGET / (1024 * 1024))]
    memory: u64,
    /// Warm copies of each task's persistent stores kept on other instances of a cluster, so
    /// that a task moving after a failure restores only its changelog's tail.
    #[arg(long, default_value_t = 0)]
    standby_replicas: usize,
    /// How often each service commits, ms (default: 20 on the embedded log, 100 on Kafka,
    /// where a transaction costs round trips; shorter means lower latency, longer more
    /// throughput).
    #[arg(long)]
    commit_interval_ms: Option<u64>,
    /// Largest record batch the topic proxy takes in one request, in bytes (other requests
    /// are limited to 64 KiB).
    #[arg(long, default_value_t = rill_orders::http::DEFAULT_MAX_BATCH_BYTES)]
    max_batch_bytes: usize,
    /// Format of the values of the system's topics: JSON, or Avro in Confluent's wire format
    /// with its schemas in a registry (this instance's own, served on --http, unless
    /// --schema-registry names another).
    #[arg(long, value_enum, default_value_t = ValueFormat::Json)]
    format: ValueFormat,
    /// URL of an external schema registry with Confluent's API, for --format avro (default:
    /// this instance's registry, kept in the log's `_schemas` topic).
    #[arg(long)]
    schema_registry: Option<String>,
    /// Fill the customers topic from a PostgreSQL table: a copy, then its changes through a
    /// logical replication slot (a libpq connection string or postgres:// URL; the server
    /// needs wal_level=logical and the role REPLICATION). Its password is never logged.
    #[arg(long, value_name = "CONNINFO")]
    customers_from_postgres: Option<crate::postgres_source::Conninfo>,
    /// The table --customers-from-postgres reads (`name` or `schema.name`): id bigint primary
    /// key, first_name, last_name, email, address, level (NULL for bronze).
    #[arg(long, default_value = "customers")]
    customers_table: String,
    /// Keep a PostgreSQL table up to date with the orders topic (each order's latest state,
    /// upserted by id, exactly once; a libpq connection string or postgres:// URL). Its
    /// password is never logged.
    #[arg(long, value_name = "CONNINFO")]
    orders_to_postgres: Option<crate::postgres_source::Conninfo>,
    /// The table --orders-to-postgres writes (`name` or `schema.name`; created when missing).
    #[arg(long, default_value = "orders_view")]
    orders_table: String,
    /// Test hook: abort the process when a service is about to commit for the Nth time
    /// (records processed, their outputs and offsets not yet committed).
    #[arg(long, hide = true)]
    crash_before_commit: Option<u64>,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ValueFormat {
    Json,
    Avro,
}

/// `--processing-guarantee`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Guarantee {
    ExactlyOnce,
    AtLeastOnce,
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    // Before any store opens: the budget is fixed by the first one.
    rill_streams::set_memory_budget(args.memory.max(16) * 1024 * 1024);
    let log = backend::open(&args.kafka, &args.data_dir, args.replication_factor)?;
    let mut config = InstanceConfig::new(args.data_dir.join("state"));
    if !args.no_seed {
        config = config.with_default_inventory();
    }
    config.partitions = args.partitions;
    config.format = match (args.format, &args.schema_registry) {
        (ValueFormat::Json, None) => Format::Json,
        (ValueFormat::Json, Some(_)) => {
            anyhow::bail!("--schema-registry is for --format avro")
        }
        (ValueFormat::Avro, None) => Format::Avro(RegistryLocation::Log),
        (ValueFormat::Avro, Some(url)) => Format::Avro(RegistryLocation::Url(url.clone())),
    };
    config.system.services = args.services.clone();
    config.system.threads = args.threads.max(1);
    config.system.standby_replicas = args.standby_replicas;
    config.system.max_batch_bytes = args.max_batch_bytes;
    config.system.restore_listener = Some(Arc::new(crate::progress::RestoreProgress::new()));
    config.system.commit_interval = backend::commit_interval(args.commit_interval_ms, &args.kafka);
    config.system.max_task_idle = backend::max_task_idle(&args.kafka);
    config.system.guarantee = match args.processing_guarantee {
        Guarantee::ExactlyOnce => ProcessingGuarantee::ExactlyOnce,
        Guarantee::AtLeastOnce => ProcessingGuarantee::AtLeastOnce,
    };
    config.system.advertised = Some(
        args.advertise
            .clone()
            .unwrap_or_else(|| args.http.to_string()),
    );
    if let Some(n) = args.crash_before_commit {
        config.system.fault_injector = Some(crash_before_commit(n));
    }
    tracing::info!(log = %log.describe(), data_dir = %args.data_dir.display(), "starting");
    let instance = match Instance::start(log.shared(), config) {
        Ok(instance) => instance,
        Err(error @ rill_orders::OrdersError::TransactionsRefused { .. }) => {
            return Err(anyhow::Error::new(error).context(
                "exactly-once is not possible here: pass --processing-guarantee at-least-once",
            ));
        }
        Err(error) => return Err(error).context("starting the order system"),
    };
    let customers = match &args.customers_from_postgres {
        Some(conninfo) => Some(
            crate::postgres_source::start(log.shared(), conninfo, &args.customers_table)
                .context("starting the PostgreSQL customers source")?,
        ),
        None => None,
    };
    let orders_sink = match &args.orders_to_postgres {
        Some(conninfo) => Some(
            crate::postgres_sink::start(log.shared(), conninfo, &args.orders_table)
                .context("starting the PostgreSQL orders sink")?,
        ),
        None => None,
    };
    let served = instance
        .serve(args.http, async {
            stop_signal().await;
            tracing::info!("stopping");
        })
        .context("running the order system");
    if let Some(customers) = customers {
        customers.stop();
    }
    if let Some(orders_sink) = orders_sink {
        orders_sink.stop();
    }
    log.close()?;
    served?;
    tracing::info!("closed cleanly");
    Ok(())
}

/// Aborts the process at the `n`th commit of any service, between processing and commit.
fn crash_before_commit(n: u64) -> FaultInjector {
    let commits = Arc::new(AtomicU64::new(0));
    Arc::new(move |point| {
        if point == FaultPoint::BeforeCommit && commits.fetch_add(1, Ordering::AcqRel) + 1 >= n {
            eprintln!("crash-before-commit: aborting before commit {n}");
            std::process::abort();
        }
        false
    })
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
