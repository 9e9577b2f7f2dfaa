//! One instance of the order system on whatever log it is handed: its topics, its seed data,
//! the chosen services and the HTTP API. `rill run`, the benchmarks and the tests all start
//! the system through here, on the embedded log or on a Kafka cluster alike.
//!
//! ```no_run
//! use std::sync::Arc;
//! use rill_orders::instance::{Instance, InstanceConfig};
//! # fn demo(log: Arc<dyn rill_log::Log>) -> rill_orders::Result<()> {
//! let config = InstanceConfig::new("./rill-data/state").with_default_inventory();
//! let instance = Instance::start(log, config)?;
//! instance.serve("127.0.0.1:8080".parse().unwrap(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rill_log::{Log, LogError, ProducerConfig};
use rill_schema::{HttpSchemaRegistry, LogSchemaRegistry, SchemaCache, SchemaRegistry};
use rill_streams::ProcessingGuarantee;

use crate::domain::Product;
use crate::error::{OrdersError, Result};
use crate::formats::{EventSerdes, Format, RegistryLocation};
use crate::records::InputRecord;
use crate::system::{OrdersSystem, SystemConfig};
use crate::topics::{self, SystemTopics, WAREHOUSE_INVENTORY};

/// Stock of a new system (SPEC 2.3, the defaults of `add-inventory`).
pub const DEFAULT_INVENTORY: [(Product, i64); 2] =
    [(Product::Underpants, 20), (Product::Jumpers, 10)];

/// How to start an instance.
#[derive(Clone)]
pub struct InstanceConfig {
    /// The services, their state directory and their settings.
    pub system: SystemConfig,
    /// Partitions of the system's topics when this instance creates them (existing topics
    /// keep theirs).
    pub partitions: i32,
    /// The format of the system topics' values: JSON (the default) or Avro with a schema
    /// registry, this instance's own (kept in `_schemas`) or an external one.
    pub format: Format,
    /// Records written when this instance creates the system, i.e. finds no
    /// `warehouse-inventory` topic: a restarted instance or a second instance of a cluster
    /// seeds nothing again.
    pub seed: Vec<InputRecord>,
}

impl InstanceConfig {
    /// Every service, stores under `state_dir`, three partitions, nothing seeded.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        InstanceConfig {
            system: SystemConfig::new(state_dir),
            partitions: 3,
            format: Format::Json,
            seed: Vec::new(),
        }
    }

    /// Seeds [`DEFAULT_INVENTORY`] into a new system.
    pub fn with_default_inventory(mut self) -> Self {
        self.seed.extend(
            DEFAULT_INVENTORY
                .iter()
                .map(|&(product, count)| InputRecord::Stock { product, count }),
        );
        self
    }
}

/// A running instance of the order system.
pub struct Instance {
    log: Arc<dyn Log>,
    registry: Option<Arc<LogSchemaRegistry>>,
    topics: SystemTopics,
    seeded: usize,
    system: OrdersSystem,
}

impl Instance {
    /// Checks that the log takes transactions when the services run exactly-once, opens the
    /// schema registry (unless an external one is used) and, on Avro, registers the events'
    /// schemas, creates the missing system topics, seeds a new system, and starts the
    /// services.
    pub fn start(log: Arc<dyn Log>, mut config: InstanceConfig) -> Result<Self> {
        // Before anything is created: a log that cannot run the services is left untouched.
        if config.system.guarantee == ProcessingGuarantee::ExactlyOnce {
            check_transactions(log.as_ref(), &config.system)?;
        }
        let schema_error = |operation| move |source| OrdersError::Schemas { operation, source };
        // The instance serves its registry whatever the format, unless told to use another.
        let open = || {
            LogSchemaRegistry::open(log.as_ref())
                .map(Arc::new)
                .map_err(schema_error("opening _schemas"))
        };
        let (registry, avro_registry): (_, Option<Arc<dyn SchemaRegistry>>) = match &config.format {
            Format::Json => (Some(open()?), None),
            Format::Avro(RegistryLocation::Log) => {
                let registry = open()?;
                (Some(registry.clone()), Some(registry))
            }
            Format::Avro(RegistryLocation::Url(url)) => (
                None,
                Some(Arc::new(
                    HttpSchemaRegistry::new(url).map_err(schema_error("connecting"))?,
                )),
            ),
        };
        if let Some(source) = avro_registry {
            tracing::info!(registry = %source.describe(), "values are Avro");
            config.system.serdes = EventSerdes::avro(SchemaCache::new(source))?;
        }
        let topics = topics::create_system_topics(log.admin(), config.partitions)?;
        let seeded = if topics.created(WAREHOUSE_INVENTORY) {
            write(log.as_ref(), &config.seed, &config.system.serdes)?
        } else {
            0
        };
        if seeded > 0 {
            tracing::info!(records = seeded, "seeded the new system");
        }
        let system = OrdersSystem::start(log.clone(), config.system)?;
        Ok(Instance {
            log,
            registry,
            topics,
            seeded,
            system,
        })
    }

    /// The running services.
    pub fn system(&self) -> &OrdersSystem {
        &self.system
    }

    /// The schema registry this instance keeps in `_schemas` and serves (none when it uses an
    /// external one).
    pub fn schema_registry(&self) -> Option<&Arc<LogSchemaRegistry>> {
        self.registry.as_ref()
    }

    /// The log the instance runs on.
    pub fn log(&self) -> &Arc<dyn Log> {
        &self.log
    }

    /// The system's topics as this instance found or made them.
    pub fn topics(&self) -> &SystemTopics {
        &self.topics
    }

    /// How many seed records this instance wrote (0 unless it created the system).
    pub fn seeded(&self) -> usize {
        self.seeded
    }

    /// Serves the HTTP API on `addr` until `stop` completes, then stops the services. Blocks;
    /// runs its own small async runtime so that callers need none.
    pub fn serve(
        self,
        addr: SocketAddr,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let mut api = self.system.http_api()?;
        if let Some(registry) = &self.registry {
            api = api.schema_registry(registry.clone());
        }
        let http_error = |source| OrdersError::Http {
            addr: addr.to_string(),
            source,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("rill-http")
            .build()
            .map_err(http_error)?;
        let served = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(http_error)?;
            // The one line a person starting rill looks for: where to point a browser, curl
            // and Prometheus, and where the state is.
            let local = listener.local_addr().unwrap_or(addr);
            tracing::info!(
                dashboard = %format!("http://{local}/"),
                api = %format!("http://{local}/v1/orders"),
                openapi = %format!("http://{local}/v1/openapi.json"),
                metrics = %format!("http://{local}/metrics"),
                state = %self.system.config().state_dir.display(),
                partitions = self.topics.partitions,
                "rill is running"
            );
            api.serve(listener, stop).await
        });
        runtime.shutdown_timeout(Duration::from_secs(2));
        let closed = self.close();
        served?;
        closed
    }

    /// Stops the services, committing their work.
    pub fn close(self) -> Result<()> {
        self.system.close()
    }
}

/// Writes `records` and waits until the log has them all.
fn write(log: &dyn Log, records: &[InputRecord], serdes: &EventSerdes) -> Result<usize> {
    if records.is_empty() {
        return Ok(0);
    }
    let log_error = |operation| move |source| OrdersError::Log { operation, source };
    let producer = log
        .producer(&ProducerConfig::default())
        .map_err(log_error("creating the seed producer"))?;
    let mut deliveries = Vec::with_capacity(records.len());
    for record in records {
        deliveries.push(
            producer
                .send(record.producer_record_in(serdes)?)
                .map_err(log_error("seeding"))?,
        );
    }
    for delivery in deliveries {
        delivery.wait().map_err(log_error("seeding"))?;
    }
    Ok(records.len())
}

/// Fails early, with advice, when the log refuses the transactions that exactly-once needs;
/// otherwise every stream thread would fail on its own a moment after start.
fn check_transactions(log: &dyn Log, system: &SystemConfig) -> Result<()> {
    // Any transactional id does; this one names the instance so that it fences nothing of
    // the services' own.
    let probe = format!(
        "rill-orders-probe-{}",
        system.advertised.as_deref().unwrap_or("local")
    );
    match log.transactional_producer(&ProducerConfig::default(), &probe) {
        Ok(_) => Ok(()),
        Err(source @ LogError::TransactionsUnsupported { .. }) => {
            Err(OrdersError::TransactionsRefused { source })
        }
        Err(source) => Err(OrdersError::Log {
            operation: "checking that the log takes transactions",
            source,
        }),
    }
}
