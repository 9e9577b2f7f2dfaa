//! The basket service over HTTP: the write side and the read side of CQRS.
//!
//! - `POST /basket/{customer}` with a [`BasketEvent`] as JSON (`{"type": "item_added",
//!   "product": "JUMPERS", "quantity": 2}`, `item_removed` likewise, or `{"type":
//!   "checked_out"}`) writes it to `basket-events` and answers 202 once the log has it. The
//!   view follows shortly after: a read of one's own write may see the basket as it was.
//! - `GET /basket/{customer}` answers the customer's [`Basket`] from the `basket-view` store
//!   through the runtime's interactive queries: `{"customer": 1, "lines": [...],
//!   "totalCents": 6800}`. A customer with no basket has an empty one.
//!
//! The customer is the order system's customer id, a number. Errors are JSON objects
//! `{"status": 400, "message": "..."}`. This server answers for the partitions its instance
//! holds, waiting up to [`OWNER_WAIT`] while no instance holds the key's partition (a start or
//! a rebalance); a key held by another instance gets 503 naming that instance (forwarding, as
//! the order system's API does, is left out of the example).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use rill_log::{Log, Producer, ProducerConfig, ProducerRecord};
use rill_streams::{DefaultSerde, QueryableStore, StreamsApp, StreamsError};
use serde::{Deserialize, Serialize};

use super::{BASKET_EVENTS, BASKET_VIEW_STORE, Basket, BasketEvent};
use crate::{ExampleError, OutputLine};

/// How long a GET waits for an instance to hold its key's partition (while the application
/// starts or rebalances) before answering 503.
pub const OWNER_WAIT: Duration = Duration::from_secs(10);

/// How often a GET waiting for an owner looks again.
const OWNER_RECHECK: Duration = Duration::from_millis(50);

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What `GET /basket/{customer}` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BasketAnswer {
    /// The customer.
    pub customer: i64,
    /// Their basket.
    #[serde(flatten)]
    pub basket: Basket,
}

/// What the handlers share.
struct BasketApi {
    view: QueryableStore<i64, Basket>,
    producer: Arc<dyn Producer>,
}

/// The basket service's routes over the view `view` (the [`BASKET_VIEW_STORE`] store of a
/// running application, `app.store(BASKET_VIEW_STORE)`), writing with `producer`.
///
/// ```no_run
/// # async fn serve(app: rill_streams::StreamsApp, log: std::sync::Arc<dyn rill_log::Log>)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// use rill_examples::shop::{BASKET_VIEW_STORE, http};
/// let view = app.store(BASKET_VIEW_STORE)?;
/// let producer = log.producer(&Default::default())?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8090").await?;
/// axum::serve(listener, http::router(view, producer.into())).await?;
/// # Ok(()) }
/// ```
pub fn router(view: QueryableStore<i64, Basket>, producer: Arc<dyn Producer>) -> Router {
    let api = Arc::new(BasketApi { view, producer });
    Router::new()
        .route("/basket/{customer}", get(get_basket).post(post_event))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api)
}

/// An error answer.
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "status": self.status.as_u16(),
            "message": self.message,
        });
        (self.status, Json(body)).into_response()
    }
}

fn customer_id(text: &str) -> Result<i64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("customer '{text}' is not a customer id (a whole number)"),
        )
    })
}

/// `GET /basket/{customer}`.
async fn get_basket(
    State(api): State<Arc<BasketApi>>,
    Path(customer): Path<String>,
) -> Result<Json<BasketAnswer>, ApiError> {
    let customer = customer_id(&customer)?;
    let deadline = tokio::time::Instant::now() + OWNER_WAIT;
    loop {
        match api.view.get(&customer) {
            Ok(basket) => {
                return Ok(Json(BasketAnswer {
                    customer,
                    basket: basket.unwrap_or_default(),
                }));
            }
            // No instance holds the partition yet (the application is starting or
            // rebalancing): one will shortly.
            Err(StreamsError::KeyNotLocal { owner: None, .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(OWNER_RECHECK).await;
            }
            Err(StreamsError::KeyNotLocal {
                partition, owner, ..
            }) => {
                let holder = owner.map_or_else(
                    || "no instance yet".to_string(),
                    |owner| format!("the instance at {owner}"),
                );
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "customer {customer}'s basket (partition {partition}) is held by {holder}"
                    ),
                ));
            }
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("reading customer {customer}'s basket: {e}"),
                ));
            }
        }
    }
}

/// `POST /basket/{customer}`.
async fn post_event(
    State(api): State<Arc<BasketApi>>,
    Path(customer): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let customer = customer_id(&customer)?;
    let event: BasketEvent = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not a basket event: {e}"),
        )
    })?;
    event
        .validate()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let value = BasketEvent::default_serde()
        .serialize(BASKET_EVENTS, &event)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let record = ProducerRecord::new(BASKET_EVENTS)
        .key(customer.to_be_bytes().to_vec())
        .value(value);
    let unwritten = |e: rill_log::LogError| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("writing the basket event: {e}"),
        )
    };
    api.producer
        .send(record)
        .map_err(unwritten)?
        .await
        .map_err(unwritten)?;
    let body = serde_json::json!({ "customer": customer, "event": event });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Customers whose baskets the example's sample fills.
pub const SAMPLE_CUSTOMERS: [i64; 3] = [1, 2, 3];

fn query_error(
    what: &'static str,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> ExampleError {
    move |source| ExampleError::Query { what, source }
}

/// For `rill example shop`: serves the basket API of the running `app` on a free loopback
/// port and answers what `GET /basket/{customer}` gives for each customer of the sample, as
/// sent over HTTP.
pub fn query_sample(app: &StreamsApp, log: Arc<dyn Log>) -> Result<Vec<OutputLine>, ExampleError> {
    let view = app.store::<i64, Basket>(BASKET_VIEW_STORE)?;
    let producer: Arc<dyn Producer> = log
        .producer(&ProducerConfig::default())
        .map_err(|e| query_error("creating the basket service's producer")(e.into()))?
        .into();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| query_error("starting the HTTP server's runtime")(e.into()))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| query_error("binding the HTTP server")(e.into()))?;
        let address = listener
            .local_addr()
            .map_err(|e| query_error("binding the HTTP server")(e.into()))?;
        let server = tokio::spawn(axum::serve(listener, router(view, producer)).into_future());
        let client = reqwest::Client::new();
        let mut lines = Vec::new();
        let topic = format!("GET http://{address}/basket/{{customer}}");
        for customer in SAMPLE_CUSTOMERS {
            let path = format!("/basket/{customer}");
            let answer = client
                .get(format!("http://{address}{path}"))
                .send()
                .await
                .map_err(|e| query_error("asking for a basket")(e.into()))?;
            let status = answer.status().as_u16();
            let body = answer
                .text()
                .await
                .map_err(|e| query_error("reading a basket")(e.into()))?;
            lines.push(OutputLine {
                topic: topic.clone(),
                line: format!("{path} -> {status} {body}"),
            });
        }
        server.abort();
        Ok(lines)
    })
}
