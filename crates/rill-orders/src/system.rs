//! Starting the services of the order system on a log, in one process.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rill_log::Log;
use rill_streams::{
    AppState, DefaultSerde, FaultInjector, ProcessingGuarantee, StreamsApp, StreamsConfig, Topology,
};

use crate::domain::Order;
use crate::email::{Emailer, OutboxEmailer};
use crate::error::{OrdersError, Result};
use crate::formats::EventSerdes;
use crate::http::{HttpApi, OrdersEndpoint, OrdersHub, Readiness};
use crate::orders_service::ORDERS_STORE;
use crate::topics;

/// A service of the order system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// The `orders-store` view and the validation aggregator (and the REST API's orders
    /// endpoints).
    Orders,
    /// The order details validator.
    OrderDetails,
    /// The inventory validator.
    Inventory,
    /// The fraud validator.
    Fraud,
    /// The email service.
    Email,
}

impl Service {
    /// Every service.
    pub const ALL: [Service; 5] = [
        Service::Orders,
        Service::OrderDetails,
        Service::Inventory,
        Service::Fraud,
        Service::Email,
    ];

    /// The service's application id.
    pub fn application_id(self) -> &'static str {
        match self {
            Service::Orders => topics::ORDERS_SERVICE,
            Service::OrderDetails => topics::ORDER_DETAILS_SERVICE,
            Service::Inventory => topics::INVENTORY_SERVICE,
            Service::Fraud => topics::FRAUD_SERVICE,
            Service::Email => topics::EMAIL_SERVICE,
        }
    }

    /// The name used in `--services` lists.
    pub fn name(self) -> &'static str {
        match self {
            Service::Orders => "orders",
            Service::OrderDetails => "order-details",
            Service::Inventory => "inventory",
            Service::Fraud => "fraud",
            Service::Email => "email",
        }
    }
}

impl FromStr for Service {
    type Err = OrdersError;

    fn from_str(name: &str) -> Result<Self> {
        Service::ALL
            .into_iter()
            .find(|service| service.name() == name.trim())
            .ok_or_else(|| OrdersError::UnknownService {
                name: name.to_string(),
            })
    }
}

/// How often each service commits on the embedded log: its commits are local file writes,
/// without round trips, so the pipeline's latency can be short.
pub const EMBEDDED_COMMIT_INTERVAL: Duration = Duration::from_millis(20);

/// How often each service commits on a Kafka cluster, Kafka Streams' own default under
/// exactly-once: a Kafka transaction costs several round trips and a marker on every partition
/// it wrote, and measured on one broker, committing every 20 ms held the order pipeline to
/// 3,600 orders/s where every 100 ms gave 5,700 (BENCHMARKS.md).
pub const CLUSTER_COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// About how many entries a store of this instance holds in one partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreSize {
    /// The service's application id.
    pub application_id: String,
    /// The store.
    pub store: String,
    /// Its partition (task).
    pub partition: i32,
    /// Entries, as the engine estimates them.
    pub entries: u64,
}

/// What a service of this instance reads and writes, for the dashboard's picture.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceFlow {
    /// The service's name (`orders`, `inventory`, ...).
    pub service: String,
    /// Its application id (its consumer group).
    pub application_id: String,
    /// Topics it reads.
    pub reads: Vec<String>,
    /// Topics it writes (`<dynamic>`: chosen per record).
    pub writes: Vec<String>,
}

/// How to run the services.
#[derive(Clone)]
pub struct SystemConfig {
    /// Which services run in this instance.
    pub services: Vec<Service>,
    /// Where their stores live (one directory per application id inside).
    pub state_dir: PathBuf,
    /// The HTTP address this instance publishes for interactive queries (`host:port`).
    pub advertised: Option<String>,
    /// Stream threads per service.
    pub threads: usize,
    /// How often each service commits.
    pub commit_interval: Duration,
    /// How long a service task waits for an input that still has records to read before it
    /// runs ahead of it (see `StreamsConfig::max_task_idle`): on a backlog, the inventory
    /// service then loads its stock before it checks the orders written after it. Zero by
    /// default; worth it only where the log knows its consumers' lag (the embedded log), as
    /// elsewhere every quiet input would be waited for.
    pub max_task_idle: Duration,
    /// Exactly-once (the default; needs a log with transactions) or at-least-once.
    pub guarantee: ProcessingGuarantee,
    /// What the email service sends emails with.
    pub emailer: Arc<dyn Emailer>,
    /// Largest record batch the topic proxy takes in one request.
    pub max_batch_bytes: usize,
    /// Warm copies of each service task's persistent stores kept on other instances (see
    /// `StreamsConfig::standby_replicas`; 0 by default).
    pub standby_replicas: usize,
    /// Told how the services' stores are restored at start (e.g. for a progress bar).
    pub restore_listener: Option<Arc<dyn rill_streams::RestoreListener>>,
    /// The format of the system topics' values (JSON unless the instance is started on
    /// Avro; see [`formats`](crate::formats)).
    pub serdes: EventSerdes,
    /// Test hook given to every service's runtime (see `StreamsConfig::fault_injector`).
    #[doc(hidden)]
    pub fault_injector: Option<FaultInjector>,
}

impl SystemConfig {
    /// Every service, one thread each, with stores under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        SystemConfig {
            services: Service::ALL.to_vec(),
            state_dir: state_dir.into(),
            advertised: None,
            threads: 1,
            commit_interval: EMBEDDED_COMMIT_INTERVAL,
            max_task_idle: Duration::ZERO,
            guarantee: ProcessingGuarantee::ExactlyOnce,
            emailer: Arc::new(OutboxEmailer),
            max_batch_bytes: crate::http::DEFAULT_MAX_BATCH_BYTES,
            standby_replicas: 0,
            restore_listener: None,
            serdes: EventSerdes::json(),
            fault_injector: None,
        }
    }
}

type Apps = Arc<Mutex<Vec<(Service, StreamsApp)>>>;

/// The running services of one instance.
pub struct OrdersSystem {
    log: Arc<dyn Log>,
    config: SystemConfig,
    flows: Vec<ServiceFlow>,
    hub: Arc<OrdersHub>,
    apps: Apps,
}

impl OrdersSystem {
    /// Starts the chosen services on `log`. The system topics must exist (see
    /// [`topics::create_system_topics`]).
    pub fn start(log: Arc<dyn Log>, config: SystemConfig) -> Result<Self> {
        crate::http::install_metrics();
        let hub = OrdersHub::new();
        let apps: Apps = Arc::new(Mutex::new(Vec::new()));
        let mut flows = Vec::new();
        for &service in &config.services {
            let id = service.application_id();
            let topology =
                Self::topology(service, &hub, &config).map_err(OrdersError::service(id))?;
            let (reads, writes) = topology.external_topics();
            flows.push(ServiceFlow {
                service: service.name().to_string(),
                application_id: id.to_string(),
                reads,
                writes,
            });
            let mut streams = StreamsConfig::new(id, &config.state_dir);
            streams.threads = config.threads;
            streams.commit_interval = config.commit_interval;
            streams.max_task_idle = config.max_task_idle;
            streams.guarantee = config.guarantee;
            streams.fault_injector = config.fault_injector.clone();
            streams.restore_listener = config.restore_listener.clone();
            streams.application_server = config.advertised.clone();
            streams.standby_replicas = config.standby_replicas;
            let mut app = StreamsApp::new(topology, log.clone(), streams);
            app.start().map_err(OrdersError::service(id))?;
            tracing::info!(service = id, "started");
            apps.lock().push((service, app));
        }
        Ok(OrdersSystem {
            log,
            config,
            hub,
            apps,
            flows,
        })
    }

    fn topology(
        service: Service,
        hub: &Arc<OrdersHub>,
        config: &SystemConfig,
    ) -> rill_streams::Result<Topology> {
        match service {
            Service::Orders => {
                let hub = hub.clone();
                crate::orders_service::topology_with(
                    Arc::new(move |id: &str, order: &Order| hub.order_changed(id, order)),
                    &config.serdes,
                )
            }
            Service::OrderDetails => crate::order_details::topology_with(&config.serdes),
            Service::Inventory => crate::inventory::topology_with(&config.serdes),
            Service::Fraud => crate::fraud::topology_with(&config.serdes),
            Service::Email => crate::email::topology_with(config.emailer.clone(), &config.serdes),
        }
    }

    /// The `orders-store` view, when the orders service runs in this instance.
    pub fn view(&self) -> Result<Option<rill_streams::QueryableStore<String, Order>>> {
        let apps = self.apps.lock();
        apps.iter()
            .find(|(service, _)| *service == Service::Orders)
            .map(|(_, app)| {
                app.store_with::<String, Order>(
                    ORDERS_STORE,
                    String::default_serde(),
                    self.config.serdes.order.clone(),
                )
                .map_err(OrdersError::service(topics::ORDERS_SERVICE))
            })
            .transpose()
    }

    /// How this system was started.
    pub fn config(&self) -> &SystemConfig {
        &self.config
    }

    /// The waiting GETs and in-flight posts.
    pub fn hub(&self) -> &Arc<OrdersHub> {
        &self.hub
    }

    /// This instance's HTTP API (the orders endpoints when the orders service runs here).
    pub fn http_api(&self) -> Result<HttpApi> {
        let orders = self.view()?.map(|view| OrdersEndpoint {
            view,
            hub: self.hub.clone(),
            advertised: self.config.advertised.clone(),
        });
        let apps = self.apps.clone();
        let readiness: Readiness = Arc::new(move || {
            let apps = apps.lock();
            let states: Vec<(String, String)> = apps
                .iter()
                .map(|(service, app)| (service.name().to_string(), format!("{:?}", app.state())))
                .collect();
            let ready = apps.iter().all(|(_, app)| app.state() == AppState::Running);
            (ready, states)
        });
        let apps = self.apps.clone();
        let store_sizes: crate::http::StoreSizes = Arc::new(move || {
            apps.lock()
                .iter()
                .flat_map(|(service, app)| {
                    app.local_store_sizes()
                        .into_iter()
                        .map(|(store, partition, entries)| StoreSize {
                            application_id: service.application_id().to_string(),
                            store,
                            partition,
                            entries,
                        })
                })
                .collect()
        });
        Ok(HttpApi::new(self.log.clone(), orders, readiness)?
            .max_batch_bytes(self.config.max_batch_bytes)
            .flows(self.flows.clone())
            .serdes(self.config.serdes.clone())
            .store_sizes(store_sizes))
    }

    /// Whether no service stopped with an error (a service rebalancing is healthy; see the
    /// readiness of [`http_api`](Self::http_api) for "every service running").
    pub fn healthy(&self) -> bool {
        self.apps
            .lock()
            .iter()
            .all(|(_, app)| !matches!(app.state(), AppState::Error | AppState::NotRunning))
    }

    /// Stops every service, committing their work; answers the first error.
    pub fn close(self) -> Result<()> {
        let mut first = Ok(());
        for (service, mut app) in self.apps.lock().drain(..).rev() {
            if let Err(source) = app.close() {
                tracing::error!(service = service.name(), %source, "stopped with an error");
                if first.is_ok() {
                    first = Err(OrdersError::Service {
                        service: service.application_id(),
                        source,
                    });
                }
            }
        }
        first
    }
}
