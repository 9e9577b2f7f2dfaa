//! `rill run`: the whole order system in one process on the embedded log, with its HTTP API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use rill_log::{Log, ProducerRecord};
use rill_log_embedded::FsyncPolicy;
use rill_orders::system::{OrdersSystem, Service, SystemConfig};
use rill_orders::topics::{self, WAREHOUSE_INVENTORY};

use crate::embedded;

/// Flags of `rill run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Data directory of the embedded log (the services' state lives in its `state/`).
    #[arg(long, default_value = "./rill-data", env = "RILL_DATA_DIR")]
    data_dir: PathBuf,
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
    services: Vec<String>,
    /// Partitions of each topic the system creates.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Do not seed the default inventory into a new data directory.
    #[arg(long)]
    no_seed: bool,
    /// Stream threads per service.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Stock seeded into a new data directory (SPEC 2.3, add-inventory defaults).
pub const DEFAULT_INVENTORY: &[(&str, i64)] = &[("UNDERPANTS", 20), ("JUMPERS", 10)];

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let services = args
        .services
        .iter()
        .map(|name| name.parse::<Service>())
        .collect::<Result<Vec<_>, _>>()?;
    let fresh = !args.data_dir.join("topics").exists();
    let log = embedded::open(&args.data_dir, FsyncPolicy::Always)?;
    topics::create_system_topics(log.admin(), args.partitions)?;
    if fresh && !args.no_seed {
        let producer = log.producer(&Default::default())?;
        for (product, stock) in DEFAULT_INVENTORY {
            let record = ProducerRecord::new(WAREHOUSE_INVENTORY)
                .key(product.as_bytes().to_vec())
                .value(stock.to_string().into_bytes());
            producer.send(record)?.wait()?;
        }
        tracing::info!(?DEFAULT_INVENTORY, "seeded the default inventory");
    }
    let mut config = SystemConfig::new(args.data_dir.join("state"));
    config.services = services;
    config.threads = args.threads.max(1);
    config.advertised = Some(
        args.advertise
            .clone()
            .unwrap_or_else(|| args.http.to_string()),
    );
    let shared: Arc<dyn Log> = log.clone();
    let system = OrdersSystem::start(shared, config).context("starting the services")?;
    let api = system.http_api()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("rill-http")
        .build()
        .context("starting the HTTP runtime")?;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.http)
            .await
            .with_context(|| format!("binding the HTTP API to {}", args.http))?;
        tracing::info!(
            api = %format!("http://{}/v1/orders", args.http),
            openapi = %format!("http://{}/v1/openapi.json", args.http),
            data_dir = %args.data_dir.display(),
            "the order system is running; Ctrl-C stops it"
        );
        api.serve(listener, async {
            stop_signal().await;
            tracing::info!("stopping");
        })
        .await
        .context("serving HTTP")
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    let closed = system.close().context("stopping the services");
    log.close().context("closing the log")?;
    served?;
    closed?;
    tracing::info!("closed cleanly");
    Ok(())
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
