//! Topics and their partitions: validation, `topics/<topic>/topic.json`, opening partitions,
//! and the [`Admin`] implementation (for groups it reads the coordinators of `group` and the
//! committed offsets).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rill_log::{
    Admin, CleanupPolicy, GroupDescription, GroupListing, GroupState, LogError, Offset, Result,
    TopicConfig, TopicDescription, TopicPartition,
};
use serde::{Deserialize, Serialize};

use super::group::Group;
use super::journal::{Entry, sync_dir};
use super::state::Inner;
use crate::storage::{PartitionConfig, PartitionLog, RecoveryReport};

/// Kafka's limit on topic name length.
const MAX_TOPIC_NAME: usize = 249;

/// One partition: its storage plus what the broker layers on top.
pub(crate) struct Partition {
    pub tp: TopicPartition,
    /// Unique per partition incarnation, so a deleted and re-created topic is told apart.
    pub uid: u64,
    pub log: PartitionLog,
    /// Consumers never read at or past this offset: records below it are written, committed
    /// (for transactions) and durable per the fsync policy.
    visible_end: AtomicI64,
    /// Serializes appends (the flusher's batches and transaction commits).
    pub append_lock: Mutex<()>,
    /// Set when a write failed part-way: records may sit past the visible end that must never
    /// become visible, so the partition refuses writes until the log is reopened (and
    /// recovery truncates them).
    failed: Mutex<Option<LogError>>,
    deleted: AtomicBool,
}

impl Partition {
    pub(crate) fn visible_end(&self) -> Offset {
        self.visible_end.load(Ordering::Acquire)
    }

    /// Moves the visible end forward (never back: a transaction's commit may already have
    /// advanced it past a flusher group that is completing).
    pub(crate) fn advance_visible(&self, end: Offset) {
        self.visible_end.fetch_max(end, Ordering::AcqRel);
    }

    /// Fails when the partition cannot take writes.
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(LogError::UnknownTopic {
                topic: self.tp.topic.clone(),
            });
        }
        match &*self.failed.lock() {
            Some(err) => Err(err.clone()),
            None => Ok(()),
        }
    }

    /// Refuses further writes after `err` left unknown bytes at the tail.
    pub(crate) fn poison(&self, err: &LogError) {
        tracing::error!(partition = %self.tp, error = %err, "partition write failed; refusing writes until reopen");
        let mut failed = self.failed.lock();
        if failed.is_none() {
            *failed = Some(err.clone());
        }
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }
}

/// A topic and its open partitions.
pub(crate) struct Topic {
    pub name: Arc<str>,
    pub config: TopicConfig,
    pub dir: PathBuf,
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    pub(crate) fn partition(&self, partition: i32) -> Result<Arc<Partition>> {
        usize::try_from(partition)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .cloned()
            .ok_or_else(|| LogError::UnknownPartition {
                topic: self.name.to_string(),
                partition,
                partitions: self.config.partitions,
            })
    }

    /// Uid of partition 0, naming this incarnation of the topic.
    pub(crate) fn uid(&self) -> u64 {
        self.partitions.first().map_or(0, |p| p.uid)
    }

    /// Opens every partition of a topic whose `topic.json` is already written.
    pub(crate) fn open(
        inner_uid: &dyn Fn() -> u64,
        dir: &Path,
        name: &str,
        config: TopicConfig,
        default_segment_bytes: u64,
        index_interval_bytes: u32,
        txn_committed: &dyn Fn(u64) -> bool,
    ) -> Result<Topic> {
        let name: Arc<str> = Arc::from(name);
        let mut partitions = Vec::with_capacity(config.partitions.max(0) as usize);
        for p in 0..config.partitions {
            let part_dir = dir.join(p.to_string());
            let (log, report) = PartitionLog::open(
                &part_dir,
                PartitionConfig {
                    topic: name.clone(),
                    partition: p,
                    segment_bytes: config.segment_bytes.unwrap_or(default_segment_bytes),
                    index_interval_bytes,
                },
                txn_committed,
            )?;
            log_recovery(&name, p, &report);
            // Everything left on disk after recovery is committed, so it is all visible.
            let end = log.end_offset();
            partitions.push(Arc::new(Partition {
                tp: TopicPartition::new(name.to_string(), p),
                uid: inner_uid(),
                log,
                visible_end: AtomicI64::new(end),
                append_lock: Mutex::new(()),
                failed: Mutex::new(None),
                deleted: AtomicBool::new(false),
            }));
        }
        Ok(Topic {
            name,
            config,
            dir: dir.to_path_buf(),
            partitions,
        })
    }

    /// Closes every partition (sync + clean-shutdown marker), waiting for in-flight appends.
    pub(crate) fn close(&self) -> Result<()> {
        let mut first_err = None;
        for partition in &self.partitions {
            let _guard = partition.append_lock.lock();
            if let Err(err) = partition.log.close() {
                tracing::warn!(partition = %partition.tp, error = %err, "closing partition failed");
                first_err.get_or_insert(err);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn mark_deleted(&self) {
        for partition in &self.partitions {
            partition.deleted.store(true, Ordering::Release);
        }
    }
}

fn log_recovery(topic: &str, partition: i32, report: &RecoveryReport) {
    // Only a repair is news; a scan that found nothing to cut is routine after a crash.
    if report.truncated_bytes > 0 || report.uncommitted_batches > 0 {
        tracing::info!(
            topic,
            partition,
            truncated_bytes = report.truncated_bytes,
            uncommitted_batches = report.uncommitted_batches,
            "recovered partition after unclean shutdown"
        );
    }
}

/// Checks a topic name and configuration the way Kafka does.
pub(crate) fn validate(name: &str, config: &TopicConfig) -> Result<()> {
    let invalid = |reason: String| LogError::InvalidTopicConfig {
        topic: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("the name is empty".into()));
    }
    if name == "." || name == ".." {
        return Err(invalid("'.' and '..' are not topic names".into()));
    }
    if name.len() > MAX_TOPIC_NAME {
        return Err(invalid(format!(
            "the name is {} characters long; the maximum is {MAX_TOPIC_NAME}",
            name.len()
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(invalid(format!(
            "the name contains {bad:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"
        )));
    }
    if config.partitions < 1 {
        return Err(invalid(format!(
            "partitions must be at least 1, got {}",
            config.partitions
        )));
    }
    if config.segment_bytes == Some(0) {
        return Err(invalid("segment_bytes must be positive".into()));
    }
    Ok(())
}

/// `topic.json`: the topic's `TopicConfig`, in a stable, readable form.
#[derive(Serialize, Deserialize)]
struct TopicFile {
    partitions: i32,
    retention_ms: Option<u64>,
    retention_bytes: Option<u64>,
    cleanup_policy: String,
    segment_bytes: Option<u64>,
    #[serde(default)]
    extra: Vec<(String, String)>,
}

pub(crate) fn topic_json(dir: &Path) -> PathBuf {
    dir.join("topic.json")
}

/// Writes `topic.json` atomically (temporary file, fsync, rename, fsync of the directory).
pub(crate) fn write_topic_file(dir: &Path, config: &TopicConfig) -> Result<()> {
    let file = TopicFile {
        partitions: config.partitions,
        retention_ms: config.retention.map(|d| d.as_millis() as u64),
        retention_bytes: config.retention_bytes,
        cleanup_policy: config.cleanup_policy.as_kafka_str().to_string(),
        segment_bytes: config.segment_bytes,
        extra: config.extra.clone(),
    };
    let path = topic_json(dir);
    let tmp = dir.join("topic.json.tmp");
    let text = serde_json::to_vec_pretty(&file).map_err(|e| LogError::Corrupt {
        path: path.clone(),
        reason: format!("cannot encode topic config: {e}"),
    })?;
    {
        use std::io::Write;
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| LogError::io("create topic.json", &tmp, e))?;
        f.write_all(&text)
            .and_then(|()| f.sync_all())
            .map_err(|e| LogError::io("write topic.json", &tmp, e))?;
    }
    std::fs::rename(&tmp, &path).map_err(|e| LogError::io("rename topic.json", &path, e))?;
    sync_dir(dir)
}

pub(crate) fn read_topic_file(dir: &Path) -> Result<TopicConfig> {
    let path = topic_json(dir);
    let bytes = std::fs::read(&path).map_err(|e| LogError::io("read topic.json", &path, e))?;
    let corrupt = |reason: String| LogError::Corrupt {
        path: path.clone(),
        reason,
    };
    let file: TopicFile =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("invalid topic.json: {e}")))?;
    let cleanup_policy = CleanupPolicy::from_kafka_str(&file.cleanup_policy)
        .ok_or_else(|| corrupt(format!("unknown cleanup policy {:?}", file.cleanup_policy)))?;
    Ok(TopicConfig {
        partitions: file.partitions,
        retention: file.retention_ms.map(Duration::from_millis),
        retention_bytes: file.retention_bytes,
        cleanup_policy,
        segment_bytes: file.segment_bytes,
        extra: file.extra,
    })
}

pub(crate) fn topics_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("topics")
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io("remove topic directory", dir, e)),
    }
}

pub(crate) fn remove_topic_dir(dir: &Path) -> Result<()> {
    remove_dir(dir)
}

impl Admin for Inner {
    fn create_topic(&self, name: &str, config: &TopicConfig) -> Result<()> {
        self.check_open()?;
        validate(name, config)?;
        let mut topics = self.topics.write();
        if topics.contains_key(name) {
            return Err(LogError::TopicExists {
                topic: name.to_string(),
            });
        }
        let dir = topics_dir(&self.config.data_dir).join(name);
        // A directory without a journal entry is left from a creation that crashed before its
        // commit point (the journal entry), or from a deletion: it holds nothing of value.
        remove_dir(&dir)?;
        std::fs::create_dir_all(&dir).map_err(|e| LogError::io("create topic", &dir, e))?;
        let created = (|| {
            write_topic_file(&dir, config)?;
            let uid = || self.next_uid.fetch_add(1, Ordering::Relaxed);
            let topic = Topic::open(
                &uid,
                &dir,
                name,
                config.clone(),
                self.config.segment_bytes,
                self.config.index_interval_bytes,
                &|_| false,
            )?;
            self.meta
                .lock()
                .journal
                .append_synced(&Entry::TopicCreated {
                    name: name.to_string(),
                })?;
            Ok(topic)
        })();
        match created {
            Ok(topic) => {
                topics.insert(name.to_string(), Arc::new(topic));
                drop(topics);
                tracing::debug!(
                    topic = name,
                    partitions = config.partitions,
                    "created topic"
                );
                // Subscribed consumers waiting in poll pick up the new partitions.
                self.notifier.bump();
                Ok(())
            }
            Err(err) => {
                let _ = remove_dir(&dir);
                Err(err)
            }
        }
    }

    fn delete_topic(&self, name: &str) -> Result<()> {
        self.check_open()?;
        let topic = {
            let mut topics = self.topics.write();
            if !topics.contains_key(name) {
                return Err(LogError::UnknownTopic {
                    topic: name.to_string(),
                });
            }
            // The journal entry is the commit point: after it, replay removes the directory
            // even if we crash before doing so below.
            let mut meta = self.meta.lock();
            meta.journal.append_synced(&Entry::TopicDeleted {
                name: name.to_string(),
            })?;
            for offsets in meta.offsets.values_mut() {
                offsets.retain(|tp, _| tp.topic != name);
            }
            drop(meta);
            topics.remove(name)
        };
        if let Some(topic) = topic {
            topic.mark_deleted();
            if let Err(err) = topic.close() {
                tracing::warn!(topic = name, error = %err, "closing deleted topic failed");
            }
            remove_dir(&topic.dir)?;
        }
        tracing::info!(topic = name, "deleted topic");
        self.notifier.bump();
        Ok(())
    }

    fn list_topics(&self) -> Result<Vec<String>> {
        self.check_open()?;
        Ok(self.topics.read().keys().cloned().collect())
    }

    fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        self.check_open()?;
        let topic = self.topic(name)?;
        Ok(TopicDescription {
            name: name.to_string(),
            config: topic.config.clone(),
        })
    }

    fn list_groups(&self) -> Result<Vec<GroupListing>> {
        self.check_open()?;
        // Coordinators exist for every group a consumer was made for, even one that never
        // joined; a group counts once it has members or offsets, as on Kafka.
        let coordinators: Vec<(String, Arc<Group>)> = self
            .groups
            .lock()
            .iter()
            .map(|(id, group)| (id.clone(), group.clone()))
            .collect();
        let mut listed: BTreeMap<String, GroupState> = self
            .meta
            .lock()
            .offsets
            .iter()
            .filter(|(_, offsets)| !offsets.is_empty())
            .map(|(id, _)| (id.clone(), GroupState::Empty))
            .collect();
        for (id, group) in coordinators {
            let (state, _) = group.describe();
            if state != GroupState::Empty {
                listed.insert(id, state);
            }
        }
        Ok(listed
            .into_iter()
            .map(|(group_id, state)| GroupListing { group_id, state })
            .collect())
    }

    fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        self.check_open()?;
        let (state, members) = self
            .existing_group(group)
            .map_or((GroupState::Empty, Vec::new()), |g| g.describe());
        let has_offsets = self
            .meta
            .lock()
            .offsets
            .get(group)
            .is_some_and(|offsets| !offsets.is_empty());
        if members.is_empty() && !has_offsets {
            return Err(LogError::UnknownGroup {
                group: group.to_string(),
            });
        }
        Ok(GroupDescription {
            group_id: group.to_string(),
            state,
            members,
        })
    }

    fn group_offsets(&self, group: &str) -> Result<Vec<(TopicPartition, Offset)>> {
        self.check_open()?;
        let mut offsets: Vec<(TopicPartition, Offset)> = self
            .meta
            .lock()
            .offsets
            .get(group)
            .map(|offsets| offsets.iter().map(|(tp, o)| (tp.clone(), *o)).collect())
            .unwrap_or_default();
        offsets.sort();
        Ok(offsets)
    }
}
