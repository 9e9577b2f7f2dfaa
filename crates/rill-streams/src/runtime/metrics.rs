//! What the runtime reports through the `metrics` facade: records consumed and produced per
//! application and topic, processing and commit durations, late and dead-lettered records.
//! Without a recorder installed (tests, embedders that do not want metrics) each call is a
//! no-op; `rill run` installs one and serves it at `/metrics`.
//!
//! Names follow Prometheus' conventions: `rill_` prefix, base units, `_total` for counters.

use std::collections::HashMap;
use std::time::Duration;

use rill_log::ConsumedRecord;

/// Records a poll returned, per topic.
pub(crate) fn consumed(application: &str, records: &[ConsumedRecord]) {
    if records.is_empty() {
        return;
    }
    let mut per_topic: HashMap<&str, u64> = HashMap::new();
    for record in records {
        *per_topic.entry(record.topic.as_ref()).or_default() += 1;
    }
    for (topic, count) in per_topic {
        metrics::counter!(
            "rill_records_consumed_total",
            "application" => application.to_string(),
            "topic" => topic.to_string()
        )
        .increment(count);
    }
}

/// Records a commit made visible, per output topic.
pub(crate) fn produced(application: &str, sent: Vec<(String, u64)>) {
    for (topic, count) in sent {
        metrics::counter!(
            "rill_records_produced_total",
            "application" => application.to_string(),
            "topic" => topic
        )
        .increment(count);
    }
}

/// How long processing one poll's records took.
pub(crate) fn processed(application: &str, took: Duration) {
    metrics::histogram!(
        "rill_process_batch_duration_seconds",
        "application" => application.to_string()
    )
    .record(took.as_secs_f64());
}

/// How long a commit (outputs, store changes and input offsets) took.
pub(crate) fn committed(application: &str, took: Duration) {
    metrics::histogram!(
        "rill_commit_duration_seconds",
        "application" => application.to_string()
    )
    .record(took.as_secs_f64());
}

/// Records dropped as late by windowed operations, and records sent to the dead-letter topic.
pub(crate) fn dropped(application: &str, late: u64, dead_letters: u64, processing_errors: u64) {
    if processing_errors > 0 {
        metrics::counter!(
            "rill_processing_errors_total",
            "application" => application.to_string()
        )
        .increment(processing_errors);
    }
    if late > 0 {
        metrics::counter!(
            "rill_late_records_dropped_total",
            "application" => application.to_string()
        )
        .increment(late);
    }
    if dead_letters > 0 {
        metrics::counter!(
            "rill_dead_letter_records_total",
            "application" => application.to_string()
        )
        .increment(dead_letters);
    }
}

/// A failed stream thread was replaced.
pub(crate) fn thread_replaced(application: &str) {
    metrics::counter!(
        "rill_stream_threads_replaced_total",
        "application" => application.to_string()
    )
    .increment(1);
}
