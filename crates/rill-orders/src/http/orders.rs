//! `POST /v1/orders`, `GET /v1/orders/{id}` and `GET /v1/orders/{id}/validated`.
//!
//! Reads come from the `orders-store` view. A key whose partition another instance holds is
//! forwarded to that instance's published address (once: a forwarded request carries
//! [`FORWARDED_HEADER`] and is never forwarded again); an owner that cannot be reached gives
//! 502 naming it. Posts are forwarded the same way, so one instance decides every post of an id
//! (see [`hub`](super::hub) for how re-posts are recognised).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rill_log::ProducerRecord;
use rill_streams::StreamsError;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::domain::{Order, OrderState};
use crate::topics::ORDERS;

use super::hub::InFlight;
use super::{ApiError, ApiState, DEFAULT_GET_TIMEOUT, MAX_GET_TIMEOUT, OrdersEndpoint};

/// Marks a request forwarded by another instance.
pub const FORWARDED_HEADER: &str = "x-rill-forwarded";

/// How often a waiting GET re-reads the view even without a change: ownership of its key may
/// move (a rebalance) without the view changing.
const RECHECK: Duration = Duration::from_millis(500);

/// Query of the GETs.
#[derive(Debug, Deserialize)]
pub(crate) struct WaitParams {
    /// Longest wait in milliseconds.
    timeout: Option<u64>,
}

fn endpoint(state: &ApiState) -> Result<&OrdersEndpoint, ApiError> {
    state.orders.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the orders service does not run in this instance",
        )
    })
}

fn is_forwarded(headers: &HeaderMap) -> bool {
    headers.contains_key(FORWARDED_HEADER)
}

fn created(order: &Order) -> Response {
    let location = format!("/v1/orders/{}", order.id);
    let mut response = (StatusCode::CREATED, Json(order)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn conflict(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        format!("order '{id}' exists with a different body; an order's id cannot be reused"),
    )
}

/// Where a request for `id` should be answered.
enum Route {
    Here,
    Forward { owner: String, partition: i32 },
}

fn route(endpoint: &OrdersEndpoint, id: &String, headers: &HeaderMap) -> Result<Route, ApiError> {
    let metadata = endpoint
        .view
        .metadata_for_key(id)
        .map_err(|e| ApiError::internal(format!("locating order '{id}': {e}")))?;
    Ok(match metadata.owner {
        Some(owner)
            if !metadata.local
                && !is_forwarded(headers)
                && endpoint.advertised.as_deref() != Some(owner.as_str()) =>
        {
            Route::Forward {
                owner,
                partition: metadata.partition,
            }
        }
        _ => Route::Here,
    })
}

/// `POST /v1/orders`.
pub(crate) async fn post_order(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let order: Order = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid order: {e}")))?;
    if order.state != OrderState::Created {
        return Err(ApiError::bad_request(format!(
            "invalid order: state must be CREATED, got {}",
            serde_json::to_string(&order.state)
                .unwrap_or_default()
                .trim_matches('"')
        )));
    }
    if order.id.trim().is_empty() {
        return Err(ApiError::bad_request("invalid order: id must not be empty"));
    }
    let endpoint = endpoint(&state)?;
    if let Route::Forward { owner, partition } = route(endpoint, &order.id, &headers)? {
        return forward(
            &state,
            &owner,
            partition,
            &order.id,
            Method::POST,
            "/v1/orders".to_string(),
            Some(body),
            Duration::from_secs(30),
        )
        .await;
    }
    accept(&state, endpoint, order).await
}

/// Decides a post of `order` here: answer from the in-flight map or the view, or write it.
async fn accept(
    state: &Arc<ApiState>,
    endpoint: &OrdersEndpoint,
    order: Order,
) -> Result<Response, ApiError> {
    let hub = &endpoint.hub;
    let mut outcome = {
        let mut in_flight = hub.in_flight.lock();
        match in_flight.get(&order.id) {
            Some(entry) if !entry.order.same_placement(&order) => {
                return Err(conflict(&order.id));
            }
            Some(entry) => entry.outcome.clone(),
            None => {
                match endpoint.view.get(&order.id) {
                    Ok(Some(existing)) if existing.same_placement(&order) => {
                        return Ok(created(&order));
                    }
                    Ok(Some(_)) => return Err(conflict(&order.id)),
                    // Not in the view, or the view's partition is not here (yet): the
                    // in-flight map is all there is to go on.
                    Ok(None) | Err(StreamsError::KeyNotLocal { .. }) => {}
                    Err(e) => {
                        return Err(ApiError::internal(format!(
                            "reading order '{}' from the view: {e}",
                            order.id
                        )));
                    }
                }
                let (sender, receiver) = watch::channel(None);
                in_flight.insert(
                    order.id.clone(),
                    InFlight {
                        order: order.clone(),
                        outcome: receiver.clone(),
                        acknowledged_at: None,
                    },
                );
                // The write runs on its own task so that a client hanging up cannot leave the
                // entry pending forever.
                tokio::spawn(write_order(
                    state.clone(),
                    hub.clone(),
                    order.clone(),
                    sender,
                ));
                receiver
            }
        }
    };
    let written = outcome
        .wait_for(Option::is_some)
        .await
        .map_err(|_| ApiError::internal("the write of the order was abandoned"))?
        .clone();
    match written {
        Some(Ok(())) => Ok(created(&order)),
        Some(Err(reason)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "order '{}' could not be written to the log: {reason}",
                order.id
            ),
        )),
        None => Err(ApiError::internal("the write of the order was abandoned")),
    }
}

/// Writes `order` to `orders`, waits until the log has it (durably, per the log's fsync
/// policy), and publishes the outcome to the posts waiting on it.
async fn write_order(
    state: Arc<ApiState>,
    hub: Arc<super::OrdersHub>,
    order: Order,
    outcome: watch::Sender<super::hub::WriteOutcome>,
) {
    // The format's serde: JSON, or Avro whose id for `orders` the bootstrap registered (so
    // this finds it cached and does not block).
    let result = match state.serdes.order.serialize(ORDERS, &order) {
        Err(e) => Err(e.to_string()),
        Ok(value) => {
            let record = ProducerRecord::new(ORDERS)
                .key(order.id.clone().into_bytes())
                .value(value);
            match state.producer.send(record) {
                Err(e) => Err(e.to_string()),
                Ok(delivery) => delivery.await.map(|_| ()).map_err(|e| e.to_string()),
            }
        }
    };
    {
        let mut in_flight = hub.in_flight.lock();
        match &result {
            Ok(()) => {
                if let Some(entry) = in_flight.get_mut(&order.id) {
                    entry.acknowledged_at = Some(std::time::Instant::now());
                }
            }
            // Not written: a later post may try again.
            Err(_) => {
                in_flight.remove(&order.id);
            }
        }
    }
    if let Err(reason) = &result {
        tracing::warn!(order = %order.id, %reason, "could not write a posted order");
    }
    outcome.send_replace(Some(result));
}

/// `GET /v1/orders/{id}`: the order, once the view has it.
pub(crate) async fn get_order(
    state: State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(params): Query<WaitParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    wait_for(state, id, params, headers, false).await
}

/// `GET /v1/orders/{id}/validated`: the order, once it is VALIDATED or FAILED.
pub(crate) async fn get_validated(
    state: State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(params): Query<WaitParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    wait_for(state, id, params, headers, true).await
}

async fn wait_for(
    State(state): State<Arc<ApiState>>,
    id: String,
    params: WaitParams,
    headers: HeaderMap,
    decided: bool,
) -> Result<Response, ApiError> {
    let endpoint = endpoint(&state)?;
    let timeout = params
        .timeout
        .map_or(DEFAULT_GET_TIMEOUT, Duration::from_millis);
    // Refused rather than shortened: a caller asking for more would otherwise get a 504
    // sooner than it asked for and not know why.
    if timeout > MAX_GET_TIMEOUT {
        return Err(ApiError::bad_request(format!(
            "`timeout` is at most {} ms",
            MAX_GET_TIMEOUT.as_millis()
        )));
    }
    let deadline = Instant::now() + timeout;
    let waiter = endpoint.hub.waiters.register(&id);
    let mut last_seen = None;
    let (owner, partition) = loop {
        // Armed before the read, so a change stored after the read still wakes us.
        let notified = waiter.notify().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match endpoint.view.get(&id) {
            Ok(Some(order)) if !decided || order.state.is_final() => {
                return Ok(Json(order).into_response());
            }
            Ok(order) => last_seen = order.map(|o| o.state),
            Err(StreamsError::KeyNotLocal { .. }) => {
                if let Route::Forward { owner, partition } = route(endpoint, &id, &headers)? {
                    break (owner, partition);
                }
                // No known owner (a rebalance is under way): wait for one.
            }
            Err(e) => {
                return Err(ApiError::internal(format!(
                    "reading order '{id}' from the view: {e}"
                )));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            let waited = timeout.as_millis();
            let message = match (decided, last_seen) {
                (true, Some(state)) => format!(
                    "order '{id}' was not VALIDATED or FAILED (still {}): timed out after {waited} ms",
                    serde_json::to_string(&state)
                        .unwrap_or_default()
                        .trim_matches('"')
                ),
                _ => format!("order '{id}' not found: timed out after {waited} ms"),
            };
            return Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, message));
        }
        let _ = tokio::time::timeout_at(deadline.min(now + RECHECK), notified).await;
    };
    // The owner waits for the change; this instance no longer does.
    drop(waiter);
    let left = deadline.saturating_duration_since(Instant::now());
    let suffix = if decided { "/validated" } else { "" };
    let path = format!("/v1/orders/{id}{suffix}?timeout={}", left.as_millis());
    forward(
        &state,
        &owner,
        partition,
        &id,
        Method::GET,
        path,
        None,
        left,
    )
    .await
}

/// Sends the request to the instance owning `id`'s partition and relays its answer; 502 naming
/// the owner when it cannot be reached.
#[allow(clippy::too_many_arguments)]
async fn forward(
    state: &ApiState,
    owner: &str,
    partition: i32,
    id: &str,
    method: Method,
    path_and_query: String,
    body: Option<Bytes>,
    wait: Duration,
) -> Result<Response, ApiError> {
    let url = format!("http://{owner}{path_and_query}");
    let mut request = state
        .client
        .request(method, &url)
        .header(FORWARDED_HEADER, "1")
        // The owner answers within `wait`; the margin covers the trip.
        .timeout(wait + Duration::from_secs(5));
    if let Some(body) = body {
        request = request
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
    }
    let unreachable = |e: reqwest::Error| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "order '{id}' is held by the instance at {owner} (partition {partition}), which \
                 could not be reached: {e}"
            ),
        )
    };
    let answer = request.send().await.map_err(unreachable)?;
    let status = answer.status();
    let location = answer.headers().get(header::LOCATION).cloned();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = answer.bytes().await.map_err(unreachable)?;
    let mut response = (status, bytes).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    Ok(response)
}
