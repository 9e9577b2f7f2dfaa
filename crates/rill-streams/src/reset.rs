//! Application reset: the equivalent of Kafka Streams' reset tool, so that an application
//! can process its input again from an earlier point (reprocessing, the kappa architecture).
//!
//! A reset moves the application's committed offsets on its input topics (earliest, latest or
//! a time), deletes its internal topics (changelogs and repartition topics, which the runtime
//! creates again at start) and removes its local state in one state directory. It refuses to
//! run while the application's group has members: a running instance would commit over the
//! reset and write into the deleted topics.
//!
//! ```no_run
//! # fn demo(log: &dyn rill_log::Log) -> rill_streams::Result<()> {
//! use rill_streams::reset::{ResetOptions, ResetTo, reset_application};
//! let report = reset_application(
//!     log,
//!     "word-count",
//!     &ResetOptions { to: ResetTo::Earliest, state_dir: Some("./state".into()), dry_run: false },
//! )?;
//! println!("{} partitions moved", report.offsets.len());
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use rill_log::{ConsumerConfig, Log, LogError, Offset, SeekTo, TopicPartition};

use crate::error::{Result, StreamsError};
use crate::runtime::INSTANCE_ID_FILE;

/// Where the input offsets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// The first record still in each partition: everything is processed again.
    Earliest,
    /// The end of each partition: only records written from now on are processed.
    Latest,
    /// The first record at or after this time (ms since the Unix epoch).
    Timestamp(i64),
}

/// How to reset.
#[derive(Debug, Clone)]
pub struct ResetOptions {
    /// Where the input offsets go.
    pub to: ResetTo,
    /// The state directory of an instance (the runtime's `state_dir`): the application's
    /// stores under it are removed. Each instance of a cluster has its own; `None` leaves
    /// local state alone.
    pub state_dir: Option<PathBuf>,
    /// Work out and report the reset without changing anything.
    pub dry_run: bool,
}

/// One input partition's move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetMove {
    /// The partition.
    pub partition: TopicPartition,
    /// The committed offset before the reset.
    pub from: Offset,
    /// The committed offset after it.
    pub to: Offset,
}

/// What a reset did (or, dry, would do).
#[derive(Debug, Clone, Default)]
pub struct ResetReport {
    /// Input partitions whose committed offset moved (or stayed, when already there).
    pub offsets: Vec<OffsetMove>,
    /// Internal topics deleted.
    pub deleted_topics: Vec<String>,
    /// The application's local state directory, when one was removed.
    pub removed_state: Option<PathBuf>,
}

/// Whether `topic` is one of `application_id`'s internal topics (a store's changelog or a
/// repartition topic): the runtime names them `<application>-<name>-changelog|repartition`.
pub fn is_internal_topic(application_id: &str, topic: &str) -> bool {
    topic
        .strip_prefix(application_id)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|rest| rest.ends_with("-changelog") || rest.ends_with("-repartition"))
}

/// Resets `application_id` on `log` (see the [module](self) docs).
pub fn reset_application(
    log: &dyn Log,
    application_id: &str,
    options: &ResetOptions,
) -> Result<ResetReport> {
    let admin = log.admin();
    let log_error = |operation| move |source| StreamsError::Log { operation, source };
    let committed = match admin.describe_group(application_id) {
        Ok(group) if !group.members.is_empty() => {
            return Err(StreamsError::ApplicationRunning {
                application: application_id.to_string(),
                members: group.members.len(),
            });
        }
        Ok(_) => admin
            .group_offsets(application_id)
            .map_err(log_error("reading the application's committed offsets"))?,
        // A group that never committed is not known to the log: nothing to move.
        Err(LogError::UnknownGroup { .. }) => Vec::new(),
        Err(source) => return Err(log_error("describing the application's group")(source)),
    };
    let inputs: Vec<(TopicPartition, Offset)> = committed
        .into_iter()
        .filter(|(tp, _)| !is_internal_topic(application_id, &tp.topic))
        .collect();
    let offsets = if inputs.is_empty() {
        Vec::new()
    } else {
        move_offsets(log, application_id, &inputs, options)?
    };

    let mut deleted_topics: Vec<String> = admin
        .list_topics()
        .map_err(log_error("listing topics"))?
        .into_iter()
        .filter(|topic| is_internal_topic(application_id, topic))
        .collect();
    deleted_topics.sort();
    if !options.dry_run {
        for topic in &deleted_topics {
            match admin.delete_topic(topic) {
                Ok(()) | Err(LogError::UnknownTopic { .. }) => {}
                Err(source) => return Err(log_error("deleting an internal topic")(source)),
            }
        }
    }

    let removed_state = match &options.state_dir {
        Some(state_dir) => remove_local_state(&state_dir.join(application_id), options.dry_run)?,
        None => None,
    };
    Ok(ResetReport {
        offsets,
        deleted_topics,
        removed_state,
    })
}

/// Commits the new offsets as the (empty) group, from a consumer that assigns itself the
/// partitions rather than joining: joining would make it a member of the group it resets.
fn move_offsets(
    log: &dyn Log,
    application_id: &str,
    inputs: &[(TopicPartition, Offset)],
    options: &ResetOptions,
) -> Result<Vec<OffsetMove>> {
    let log_error = |operation| move |source| StreamsError::Log { operation, source };
    let consumer = log
        .consumer(&ConsumerConfig::group(application_id), None)
        .map_err(log_error("creating the reset's consumer"))?;
    let partitions: Vec<TopicPartition> = inputs.iter().map(|(tp, _)| tp.clone()).collect();
    consumer
        .assign(&partitions)
        .map_err(log_error("assigning the input partitions"))?;
    let mut moves = Vec::with_capacity(inputs.len());
    for (partition, from) in inputs {
        let to = match options.to {
            ResetTo::Earliest => {
                consumer
                    .watermarks(partition)
                    .map_err(log_error("reading an input partition's offsets"))?
                    .low
            }
            ResetTo::Latest => {
                consumer
                    .watermarks(partition)
                    .map_err(log_error("reading an input partition's offsets"))?
                    .high
            }
            ResetTo::Timestamp(at) => {
                consumer
                    .seek(partition, SeekTo::Timestamp(at))
                    .map_err(log_error("finding an input partition's offset for a time"))?;
                consumer
                    .position(partition)
                    .map_err(log_error("finding an input partition's offset for a time"))?
            }
        };
        moves.push(OffsetMove {
            partition: partition.clone(),
            from: *from,
            to,
        });
    }
    if !options.dry_run {
        let targets: Vec<(TopicPartition, Offset)> =
            moves.iter().map(|m| (m.partition.clone(), m.to)).collect();
        consumer
            .commit(&targets)
            .map_err(log_error("committing the reset offsets"))?;
    }
    let _ = consumer.close();
    Ok(moves)
}

/// Removes an application's stores and checkpoints, keeping its instance id (which the
/// instance goes on using) when there is one.
fn remove_local_state(app_dir: &Path, dry_run: bool) -> Result<Option<PathBuf>> {
    let state_error = |source| StreamsError::StateDir {
        path: app_dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(app_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(state_error(error)),
    };
    for entry in entries {
        let entry = entry.map_err(state_error)?;
        if entry.file_name() == INSTANCE_ID_FILE || dry_run {
            continue;
        }
        let path = entry.path();
        let removed = if entry.file_type().map_err(state_error)?.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(state_error)?;
    }
    Ok(Some(app_dir.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::is_internal_topic;

    #[test]
    fn internal_topics_are_the_applications_changelogs_and_repartition_topics() {
        assert!(is_internal_topic("wc", "wc-counts-changelog"));
        assert!(is_internal_topic("wc", "wc-by-word-repartition"));
        assert!(!is_internal_topic("wc", "sentences"));
        assert!(!is_internal_topic("wc", "wcx-counts-changelog"));
        assert!(!is_internal_topic("wc", "other-counts-changelog"));
        assert!(!is_internal_topic("wc", "wc-counts"));
    }
}
