//! The topic proxy: list topics, produce JSON records, read records by partition and offset,
//! list consumer groups and show one with its lag, so that tools work while `rill run` holds
//! the embedded log.
//!
//! Keys and values are JSON, converted as [`json_records`](crate::json_records) describes.
//! Reads are read-committed: records of open or aborted transactions are not shown. Writes to
//! `orders` and to internal topics are refused: `orders` has one writer (the orders service;
//! post orders with `POST /v1/orders`), internal topics belong to the runtime.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rill_log::{ConsumerConfig, IsolationLevel, LogError, SeekTo, TopicPartition};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::consumer_groups;
use crate::json_records::{key_json, producer_record};
use crate::topics::ORDERS;

use super::{ApiError, ApiState};

/// Most records one read answers.
pub const MAX_READ: usize = 10_000;

/// Records a read answers when `limit` is not given.
pub const DEFAULT_READ: usize = 100;

/// How long a read waits for records it knows exist (below the end offset seen at its start).
const READ_DEADLINE: Duration = Duration::from_secs(2);

fn log_error(topic: &str, error: LogError) -> ApiError {
    match error {
        LogError::UnknownTopic { .. } | LogError::UnknownPartition { .. } => ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no topic '{topic}': {error}"),
        ),
        other => ApiError::internal(format!("topic '{topic}': {other}")),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("the log call did not finish: {e}")))?
}

/// `GET /v1/topics`: every topic with its partitions and end offsets.
pub(crate) async fn list_topics(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let log = state.log.clone();
    let topics = blocking(move || {
        let consumer = log
            .consumer(&ConsumerConfig::default(), None)
            .map_err(|e| ApiError::internal(format!("creating a consumer: {e}")))?;
        let names = log
            .admin()
            .list_topics()
            .map_err(|e| ApiError::internal(format!("listing topics: {e}")))?;
        let mut topics = Vec::with_capacity(names.len());
        for name in names {
            let description = log
                .admin()
                .describe_topic(&name)
                .map_err(|e| log_error(&name, e))?;
            let mut end_offsets = Vec::new();
            let mut records = 0;
            for partition in 0..description.config.partitions {
                let marks = consumer
                    .watermarks(&TopicPartition::new(name.clone(), partition))
                    .map_err(|e| log_error(&name, e))?;
                end_offsets.push(marks.high);
                records += marks.high - marks.low;
            }
            topics.push(json!({
                "name": name,
                "partitions": description.config.partitions,
                "endOffsets": end_offsets,
                "records": records,
            }));
        }
        let _ = consumer.close();
        Ok(topics)
    })
    .await?;
    Ok(Json(json!({ "topics": topics })).into_response())
}

/// `GET /v1/groups`: every consumer group with its state.
pub(crate) async fn list_groups(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let log = state.log.clone();
    let groups = blocking(move || {
        consumer_groups::list(log.as_ref())
            .map_err(|e| ApiError::internal(format!("listing groups: {e}")))
    })
    .await?;
    Ok(Json(json!({ "groups": groups })).into_response())
}

/// `GET /v1/groups/{group}`: one group's state, members, and per partition its committed
/// offset, end offset and lag.
pub(crate) async fn describe_group(
    State(state): State<Arc<ApiState>>,
    Path(group): Path<String>,
) -> Result<Response, ApiError> {
    let log = state.log.clone();
    let report = blocking(move || {
        consumer_groups::report(log.as_ref(), &group).map_err(|e| match e {
            LogError::UnknownGroup { .. } => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            other => ApiError::internal(format!("group '{group}': {other}")),
        })
    })
    .await?;
    Ok(Json(report).into_response())
}

/// Body of `POST /v1/topics/{topic}/records`: records as
/// [`json_records`](crate::json_records) reads them (`{"key": K, "value": V}`; see
/// [`InputRecord::proxy_json`](crate::records::InputRecord::proxy_json) for typed ones).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProduceRequest {
    /// The records, written in this order.
    pub records: Vec<Value>,
}

fn writable(topic: &str) -> Result<(), ApiError> {
    if topic == ORDERS {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "'orders' is written only by the orders service: use POST /v1/orders",
        ));
    }
    if topic.ends_with("-changelog") || topic.ends_with("-repartition") {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("'{topic}' is an internal topic of the streams runtime"),
        ));
    }
    Ok(())
}

/// `POST /v1/topics/{topic}/records`: writes the records, answering each one's partition and
/// offset once the log has it.
pub(crate) async fn produce_records(
    State(state): State<Arc<ApiState>>,
    Path(topic): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    writable(&topic)?;
    let body: ProduceRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "expected {{\"records\":[{{\"key\":K,\"value\":V}}]}}: {e}"
        ))
    })?;
    // Off the async workers: an Avro value of a topic not registered yet calls the registry.
    let (encoding, encoding_topic) = (state.clone(), topic.clone());
    let records = blocking(move || {
        let topic = encoding_topic;
        body.records
            .iter()
            .enumerate()
            .map(|(index, record)| {
                let mut out = producer_record(&topic, record)
                    .map_err(|e| ApiError::bad_request(format!("record {index}: {e}")))?;
                out.value = encoding
                    .serdes
                    .encode_json(&topic, record.get("value").unwrap_or(&Value::Null))
                    .map_err(|e| ApiError::bad_request(format!("record {index}: {e}")))?;
                Ok(out)
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let mut deliveries = Vec::with_capacity(records.len());
    for record in records {
        deliveries.push(
            state
                .producer
                .send(record)
                .map_err(|e| log_error(&topic, e))?,
        );
    }
    let mut offsets = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let written = delivery.await.map_err(|e| log_error(&topic, e))?;
        offsets.push(json!({"partition": written.partition, "offset": written.offset}));
    }
    Ok(Json(json!({ "offsets": offsets })).into_response())
}

/// Query of `GET /v1/topics/{topic}/records`.
#[derive(Debug, Deserialize)]
pub(crate) struct ReadParams {
    /// One partition (all when absent).
    partition: Option<i32>,
    /// First offset to read, in the chosen partition or in each partition.
    offset: Option<i64>,
    /// Most records to answer.
    limit: Option<usize>,
    /// `beginning` (the default) or `end` (the last `limit` records of each partition).
    from: Option<String>,
}

/// `GET /v1/topics/{topic}/records`: records with partition, offset, timestamp, key and value,
/// and where to continue.
pub(crate) async fn read_records(
    State(state): State<Arc<ApiState>>,
    Path(topic): Path<String>,
    Query(params): Query<ReadParams>,
) -> Result<Response, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_READ);
    if !(1..=MAX_READ).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "`limit` must be between 1 and {MAX_READ}"
        )));
    }
    if params.offset.is_some_and(|offset| offset < 0) {
        return Err(ApiError::bad_request("`offset` must not be negative"));
    }
    if params.partition.is_some_and(|partition| partition < 0) {
        return Err(ApiError::bad_request("`partition` must not be negative"));
    }
    let from_end = match params.from.as_deref() {
        None | Some("beginning") => false,
        Some("end") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`from` must be `beginning` or `end`, not `{other}`"
            )));
        }
    };
    let body = blocking(move || read(&state, &topic, &params, limit, from_end)).await?;
    Ok(Json(body).into_response())
}

fn read(
    state: &ApiState,
    topic: &str,
    params: &ReadParams,
    limit: usize,
    from_end: bool,
) -> Result<Value, ApiError> {
    let log = state.log.as_ref();
    let partitions = log
        .admin()
        .describe_topic(topic)
        .map_err(|e| log_error(topic, e))?
        .config
        .partitions;
    let chosen: Vec<TopicPartition> = match params.partition {
        Some(p) if !(0..partitions).contains(&p) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("topic '{topic}' has partitions 0..{partitions}, not {p}"),
            ));
        }
        Some(p) => vec![TopicPartition::new(topic, p)],
        None => (0..partitions)
            .map(|p| TopicPartition::new(topic, p))
            .collect(),
    };
    let consumer = log
        .consumer(
            &ConsumerConfig {
                isolation: IsolationLevel::ReadCommitted,
                max_poll_records: Some(limit.max(1)),
                ..ConsumerConfig::default()
            },
            None,
        )
        .map_err(|e| ApiError::internal(format!("creating a consumer: {e}")))?;
    consumer.assign(&chosen).map_err(|e| log_error(topic, e))?;
    let mut ends = Vec::with_capacity(chosen.len());
    for partition in &chosen {
        let marks = consumer
            .watermarks(partition)
            .map_err(|e| log_error(topic, e))?;
        let start = match params.offset {
            Some(offset) => SeekTo::Offset(offset.max(marks.low)),
            None if from_end => {
                let back = i64::try_from(limit).unwrap_or(i64::MAX);
                SeekTo::Offset(marks.high.saturating_sub(back).max(marks.low))
            }
            None => SeekTo::Beginning,
        };
        consumer
            .seek(partition, start)
            .map_err(|e| log_error(topic, e))?;
        ends.push(marks.high);
    }
    let deadline = Instant::now() + READ_DEADLINE;
    let mut records = Vec::new();
    while records.len() < limit && Instant::now() < deadline {
        let caught_up = chosen
            .iter()
            .zip(&ends)
            .all(|(p, end)| consumer.position(p).is_ok_and(|at| at >= *end));
        if caught_up {
            break;
        }
        for record in consumer
            .poll(Duration::from_millis(50))
            .map_err(|e| log_error(topic, e))?
        {
            if records.len() == limit {
                break;
            }
            records.push(json!({
                "partition": record.partition,
                "offset": record.offset,
                "timestamp": record.timestamp,
                "key": record.key.as_deref().map(key_json),
                "value": record.value.as_deref().map(|value| state.serdes.value_json(value)),
            }));
        }
    }
    // Where to continue: one past the last record answered per partition, else the position.
    let next: Vec<Value> = chosen
        .iter()
        .map(|p| {
            let last = records
                .iter()
                .filter(|r| r["partition"] == p.partition)
                .filter_map(|r| r["offset"].as_i64())
                .max();
            let offset = match last {
                Some(last) => last + 1,
                None => consumer.position(p).unwrap_or(0),
            };
            json!({"partition": p.partition, "offset": offset})
        })
        .collect();
    let _ = consumer.close();
    Ok(json!({ "records": records, "next": next }))
}
