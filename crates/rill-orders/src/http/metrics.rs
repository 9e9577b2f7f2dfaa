//! `GET /metrics`: the process's metrics in Prometheus' text format, and the HTTP API's own
//! (requests by route and status, and their duration).
//!
//! The libraries record through the `metrics` facade (the runtime: records consumed and
//! produced, processing and commit durations, late and dead-lettered records; the embedded
//! log: fsync durations). `metrics-exporter-prometheus` is the recorder, chosen over the
//! `prometheus` crate because the libraries then depend only on the small facade, which costs
//! nothing where no recorder is installed; its own HTTP listener is left out (the API's server
//! serves the page). Consumer lag is read from the log at each scrape, per group, topic and
//! partition, as `rill groups` shows it.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::ApiState;
use super::error::ApiError;
use crate::consumer_groups;

/// Bucket bounds of every duration histogram, in seconds: from a fast fsync to a slow commit.
const DURATION_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The process's recorder, installed by the first API of the process (several instances in one
/// process, as in tests, share it). `None` when another recorder was installed first.
pub(crate) fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), &DURATION_BUCKETS)
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => Some(handle),
                Err(error) => {
                    tracing::warn!(%error, "metrics recorder not installed; /metrics is empty");
                    None
                }
            }
        })
        .as_ref()
}

/// Counts each request by route template (not the raw path: ids would make a series each),
/// method and status, and records its duration.
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "rill_http_requests_total",
        "route" => route.clone(),
        "method" => method.clone(),
        "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "rill_http_request_duration_seconds",
        "route" => route,
        "method" => method
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
pub(crate) async fn render(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let Some(handle) = handle() else {
        return Err(ApiError::internal(
            "another metrics recorder was installed in this process",
        ));
    };
    tokio::task::spawn_blocking(move || {
        record_lag(state.log.as_ref());
        for size in state.store_sizes() {
            metrics::gauge!(
                "rill_store_entries",
                "application" => size.application_id,
                "store" => size.store,
                "partition" => size.partition.to_string()
            )
            .set(size.entries as f64);
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("reading consumer lag: {e}")))?;
    handle.run_upkeep();
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response())
}

/// Sets `rill_consumer_lag_records` for every partition of every group; a group that cannot
/// be read now (e.g. rebalancing) keeps its last values.
fn record_lag(log: &dyn rill_log::Log) {
    let Ok(groups) = consumer_groups::list(log) else {
        return;
    };
    for group in groups {
        let Ok(report) = consumer_groups::report(log, &group.group) else {
            continue;
        };
        for partition in report.partitions {
            if let Some(lag) = partition.lag {
                metrics::gauge!(
                    "rill_consumer_lag_records",
                    "group" => report.group.clone(),
                    "topic" => partition.topic,
                    "partition" => partition.partition.to_string()
                )
                .set(lag as f64);
            }
        }
    }
}
