//! The HTTP server of an instance: the orders REST API (SPEC 2.4), the topic proxy, health and
//! readiness, and the OpenAPI document.
//!
//! Every error is a JSON object `{"status": 404, "error": "Not Found", "message": "..."}`,
//! including those axum produces itself (unknown route, body too large, bad query string):
//! a response middleware rewrites any non-JSON error body into that shape.
//!
//! Request bodies are limited to [`MAX_BODY_BYTES`] (413 beyond), except record batches
//! posted to the topic proxy, which may reach [`DEFAULT_MAX_BATCH_BYTES`] (or what
//! [`HttpApi::max_batch_bytes`] sets): a batch of 1,000 small orders is some 150 KiB.

mod dashboard;
mod error;
mod hub;
mod metrics;
mod orders;
mod proxy;
mod waiters;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rill_log::{Log, Producer, ProducerConfig};
use rill_streams::QueryableStore;
use tokio::net::TcpListener;

use crate::domain::Order;
use crate::error::{OrdersError, Result};
use crate::formats::EventSerdes;
use rill_schema::LogSchemaRegistry;

pub use error::ApiError;
pub use hub::{IN_FLIGHT_RETENTION, OrdersHub};
pub use proxy::ProduceRequest;
pub use waiters::{WaitGuard, Waiters};

/// Installs the process's metrics recorder (once; later calls do nothing), so that what the
/// services count from their start is in `/metrics`.
pub fn install_metrics() {
    let _ = metrics::handle();
}

/// Largest request body accepted, but for record batches to the topic proxy.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Largest batch of records the topic proxy takes in one request, unless configured.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Default wait of a GET without `timeout`.
pub const DEFAULT_GET_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait a GET may ask for.
pub const MAX_GET_TIMEOUT: Duration = Duration::from_secs(300);

/// The OpenAPI description of this server, kept in the repository next to the crate.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// Answers the sizes of the instance's stores (for `/v1/stores` and `/metrics`).
pub type StoreSizes = Arc<dyn Fn() -> Vec<crate::system::StoreSize> + Send + Sync>;

/// Answers whether the instance is ready to serve, with a line per service for the body.
pub type Readiness = Arc<dyn Fn() -> (bool, Vec<(String, String)>) + Send + Sync>;

/// The orders part of the API, present when the orders service runs in this instance.
pub struct OrdersEndpoint {
    /// The `orders-store` view.
    pub view: QueryableStore<String, Order>,
    /// Waiters and in-flight posts, shared with the view's listener.
    pub hub: Arc<OrdersHub>,
    /// `host:port` this instance publishes as its query address (to know a forward is to
    /// itself).
    pub advertised: Option<String>,
}

/// Everything the handlers use.
pub(crate) struct ApiState {
    pub orders: Option<OrdersEndpoint>,
    pub log: Arc<dyn Log>,
    pub producer: Arc<dyn Producer>,
    pub client: reqwest::Client,
    pub readiness: Readiness,
    pub store_sizes: Option<StoreSizes>,
    /// The format of the system topics' values.
    pub serdes: EventSerdes,
}

/// An instance's HTTP API, ready to serve.
pub struct HttpApi {
    state: Arc<ApiState>,
    registry: Option<Arc<LogSchemaRegistry>>,
    max_batch_bytes: usize,
    flows: Arc<Vec<crate::system::ServiceFlow>>,
}

impl ApiState {
    /// The store sizes, or none before they are wired.
    pub(crate) fn store_sizes(&self) -> Vec<crate::system::StoreSize> {
        self.store_sizes
            .as_ref()
            .map_or_else(Vec::new, |sizes| sizes())
    }
}

impl HttpApi {
    /// The API over `log` (topic proxy, health), with the orders endpoints when `orders` is
    /// given.
    pub fn new(
        log: Arc<dyn Log>,
        orders: Option<OrdersEndpoint>,
        readiness: Readiness,
    ) -> Result<Self> {
        let producer: Arc<dyn Producer> =
            Arc::from(log.producer(&ProducerConfig::default()).map_err(|source| {
                OrdersError::Log {
                    operation: "creating the HTTP API's producer",
                    source,
                }
            })?);
        let _ = metrics::handle();
        // Forwarded GETs carry their own timeout; this one only bounds connecting.
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|error| OrdersError::Http {
                addr: "client".into(),
                source: std::io::Error::other(error),
            })?;
        Ok(HttpApi {
            state: Arc::new(ApiState {
                orders,
                log,
                producer,
                client,
                readiness,
                store_sizes: None,
                serdes: EventSerdes::json(),
            }),
            registry: None,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            flows: Arc::new(Vec::new()),
        })
    }

    /// Sets where the store sizes come from, for `GET /v1/stores` and `/metrics`.
    pub fn store_sizes(mut self, sizes: StoreSizes) -> Self {
        if let Some(state) = Arc::get_mut(&mut self.state) {
            state.store_sizes = Some(sizes);
        }
        self
    }

    /// Sets the format of the system topics' values: how `POST /v1/orders` writes orders and
    /// how the topic proxy encodes and shows values (JSON by default).
    pub fn serdes(mut self, serdes: EventSerdes) -> Self {
        if let Some(state) = Arc::get_mut(&mut self.state) {
            state.serdes = serdes;
        }
        self
    }

    /// Serves `registry` with Confluent Schema Registry's API at its paths (`/subjects`,
    /// `/schemas/ids/{id}`, `/config`, `/compatibility`), so the server's address is a
    /// registry URL for Confluent's clients.
    pub fn schema_registry(mut self, registry: Arc<LogSchemaRegistry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Sets what the services of the instance read and write, for `GET /v1/topology`.
    pub fn flows(mut self, flows: Vec<crate::system::ServiceFlow>) -> Self {
        self.flows = Arc::new(flows);
        self
    }

    /// Sets the largest body of a record batch posted to the topic proxy (413 beyond); other
    /// requests keep [`MAX_BODY_BYTES`].
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes;
        self
    }

    /// The routes.
    pub fn router(&self) -> Router {
        let flows = self.flows.clone();
        let registry = self
            .registry
            .clone()
            .map_or_else(Router::new, rill_schema::router);
        Router::new()
            .route("/", get(dashboard::page))
            .route("/v1/orders/events", get(dashboard::order_events))
            .route("/v1/stores", get(dashboard::stores))
            .route(
                "/v1/topology",
                get(move || dashboard::topology(flows.clone())),
            )
            .route("/v1/orders", post(orders::post_order))
            .route("/v1/orders/{id}", get(orders::get_order))
            .route("/v1/orders/{id}/validated", get(orders::get_validated))
            .route("/v1/topics", get(proxy::list_topics))
            .route(
                "/v1/topics/{topic}/records",
                get(proxy::read_records).post(proxy::produce_records).layer(
                    // Inner to the router-wide limit below, so it wins for this route.
                    DefaultBodyLimit::max(self.max_batch_bytes),
                ),
            )
            .route("/v1/groups", get(proxy::list_groups))
            .route("/v1/groups/{group}", get(proxy::describe_group))
            .route("/v1/openapi.json", get(openapi))
            .route("/metrics", get(metrics::render))
            .route("/health", get(health))
            .route("/ready", get(ready))
            .with_state(self.state.clone())
            .merge(registry)
            .fallback(not_found)
            .layer(axum::middleware::map_response(error::json_errors))
            .route_layer(axum::middleware::from_fn(metrics::track))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let addr = listener
            .local_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string());
        let sweeper = self.state.orders.as_ref().map(|orders| {
            let hub = orders.hub.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(10));
                loop {
                    every.tick().await;
                    hub.sweep_in_flight();
                }
            })
        });
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        served.map_err(|source| OrdersError::Http { addr, source })
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

async fn health() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

async fn ready(State(state): State<Arc<ApiState>>) -> Response {
    let (ready, services) = (state.readiness)();
    let services: serde_json::Map<String, serde_json::Value> = services
        .into_iter()
        .map(|(name, status)| (name, serde_json::Value::String(status)))
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({"ready": ready, "services": services})),
    )
        .into_response()
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {}", uri.path()),
    )
}
