//! The dashboard at `/` (one HTML page with its CSS and script inline, built into the binary:
//! it works without internet) and what it reads besides the API's other routes: the orders as
//! they change (`GET /v1/orders/events`, server-sent events) and what the services of the
//! instance read and write (`GET /v1/topology`).
//!
//! The events follow the `orders` topic from its end through the log's traits, so the page is
//! live on the embedded log and on Kafka alike, without the browser polling the order list.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use rill_log::{ConsumerConfig, IsolationLevel, Log, SeekTo, TopicPartition};
use tokio::sync::mpsc;

use super::ApiState;
use super::error::ApiError;
use crate::system::ServiceFlow;
use crate::topics::ORDERS;

const PAGE: &str = include_str!("../../dashboard/index.html");

/// Events a slow browser may fall behind by before the oldest are dropped for it.
const EVENT_BUFFER: usize = 4096;

/// `GET /`.
pub(crate) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}

/// `GET /v1/topology`.
pub(crate) async fn topology(flows: Arc<Vec<ServiceFlow>>) -> Response {
    Json(serde_json::json!({ "services": flows.as_ref() })).into_response()
}

/// `GET /v1/stores`: the stores of this instance with their approximate entries.
pub(crate) async fn stores(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let sizes = tokio::task::spawn_blocking(move || state.store_sizes())
        .await
        .map_err(|e| ApiError::internal(format!("reading store sizes: {e}")))?;
    Ok(Json(serde_json::json!({ "stores": sizes })).into_response())
}

/// `GET /v1/orders/events`: every order record written to `orders` from now on (the order as
/// JSON, one event each), read-committed, until the client goes away.
pub(crate) async fn order_events(
    State(state): State<Arc<ApiState>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (sender, receiver) = mpsc::channel::<String>(EVENT_BUFFER);
    let log = state.log.clone();
    let serdes = state.serdes.clone();
    let consumer = tokio::task::spawn_blocking(move || follow_from_end(log.as_ref()))
        .await
        .map_err(|e| ApiError::internal(format!("following orders: {e}")))??;
    std::thread::Builder::new()
        .name("rill-order-events".into())
        .spawn(move || {
            // Ends when the browser is gone (the channel closed) or the log fails.
            while !sender.is_closed() {
                let Ok(records) = consumer.poll(Duration::from_millis(250)) else {
                    break;
                };
                for record in records {
                    let Some(value) = record.value else { continue };
                    // The order as JSON, whatever the topic's format (Avro is decoded).
                    let text = if serdes.is_avro() {
                        serdes.value_json(&value).to_string()
                    } else {
                        let Ok(text) = String::from_utf8(value.to_vec()) else {
                            continue;
                        };
                        text
                    };
                    // A browser that cannot keep up misses events rather than slowing others.
                    if let Err(mpsc::error::TrySendError::Closed(_)) = sender.try_send(text) {
                        break;
                    }
                }
            }
            let _ = consumer.close();
        })
        .map_err(|e| ApiError::internal(format!("starting the events thread: {e}")))?;
    let events = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let text = receiver.recv().await?;
        Some((Ok(Event::default().event("order").data(text)), receiver))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

fn follow_from_end(log: &dyn Log) -> Result<Box<dyn rill_log::Consumer>, ApiError> {
    let unavailable = |e: rill_log::LogError| ApiError::internal(format!("following orders: {e}"));
    let partitions = log
        .admin()
        .describe_topic(ORDERS)
        .map_err(unavailable)?
        .config
        .partitions;
    let consumer = log
        .consumer(
            &ConsumerConfig {
                isolation: IsolationLevel::ReadCommitted,
                ..ConsumerConfig::default()
            },
            None,
        )
        .map_err(unavailable)?;
    let parts: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(ORDERS, p))
        .collect();
    consumer.assign(&parts).map_err(unavailable)?;
    for part in &parts {
        consumer.seek(part, SeekTo::End).map_err(unavailable)?;
    }
    Ok(consumer)
}
