//! The consumer: librdkafka's `BaseConsumer` with a context that surfaces rebalances to the
//! rill [`RebalanceListener`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset as KafkaOffset, TopicPartitionList};
use rill_log::{
    AssignmentStrategy, ConsumedRecord, Consumer, ConsumerConfig, ErrorClass, GroupMetadata,
    Header, IsolationLevel, LogError, Offset, OffsetReset, RebalanceListener, Result, SeekTo,
    TopicPartition, Watermarks,
};

use crate::KafkaConfig;
use crate::error::{self, Ctx};
use crate::producer::offsets_list;

/// Kafka's default `max.poll.records`.
const DEFAULT_MAX_POLL_RECORDS: usize = 500;

/// Where a seek left a partition, until `poll` returns a record of it. librdkafka reports the
/// position of the last record returned, not the target of a seek, so the adapter remembers
/// the target to answer [`Consumer::position`].
#[derive(Debug, Clone, Copy)]
enum SeekTarget {
    Beginning,
    End,
    Offset(Offset),
}

/// State shared by the consumer and its rebalance callbacks (librdkafka's consumer context).
pub(crate) struct ConsumerCtx {
    group: Option<String>,
    /// Whether the assignors make the group cooperative (incremental assign / unassign).
    cooperative: bool,
    timeout: Duration,
    offset_reset: OffsetReset,
    max_poll_records: usize,
    listener: Mutex<Option<Box<dyn RebalanceListener>>>,
    /// Set while the listener runs, so it cannot re-enter `poll` or `close`.
    in_listener: AtomicBool,
    /// Set when `close` starts (a second `close` returns at once).
    closing: AtomicBool,
    /// Set when `close` is done: every later call fails with `Closed`.
    closed: AtomicBool,
    /// Counts rebalance events, so `poll` can tell that the assignment moved under it.
    rebalances: AtomicU64,
    seeks: Mutex<HashMap<TopicPartition, SeekTarget>>,
    /// Where reading starts in partitions nothing was read from yet (the committed offset,
    /// fetched when the group assigns them, or the reset position), so `position` needs no
    /// request inside a revocation, when librdkafka may no longer serve one.
    starts: Mutex<HashMap<TopicPartition, Offset>>,
    /// Partitions being revoked while the listener runs (librdkafka may already report them
    /// unassigned during close); they still count as assigned for the listener's calls.
    revoking: Mutex<Vec<TopicPartition>>,
    /// An error met while gathering records, returned by the next `poll`.
    pending_error: Mutex<Option<LogError>>,
}

impl ClientContext for ConsumerCtx {}

impl ConsumerContext for ConsumerCtx {
    /// rdkafka's default asks librdkafka for the rebalance protocol on every event
    /// (`rd_kafka_rebalance_protocol`, a request to the group thread with no timeout), which
    /// can hang forever while the consumer closes; the protocol follows from the configured
    /// assignor, so this uses that and otherwise does what the default does: listener
    /// (revoked / lost) before, (incremental) assign or unassign, listener (assigned) after.
    fn rebalance(
        &self,
        base: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        list: &mut TopicPartitionList,
    ) {
        let list: &TopicPartitionList = list;
        let rebalance = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(list),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(list),
            other => Rebalance::Error(KafkaError::Rebalance(other.into())),
        };
        self.pre_rebalance(base, &rebalance);
        // Failures here (e.g. while the consumer is being destroyed) leave nothing to do:
        // librdkafka reports real problems through the next poll.
        let _ = match (&rebalance, self.cooperative) {
            (Rebalance::Assign(list), true) => base.incremental_assign(list),
            (Rebalance::Assign(list), false) => base.assign(list),
            (_, true) => base.incremental_unassign(list),
            (_, false) => base.unassign(),
        };
        self.post_rebalance(base, &rebalance);
    }

    fn pre_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            self.rebalances.fetch_add(1, Ordering::AcqRel);
            let partitions = partitions_of(list);
            if let Ok(mut seeks) = self.seeks.lock() {
                for tp in &partitions {
                    seeks.remove(tp);
                }
            }
            if partitions.is_empty() {
                return;
            }
            let lost = base.assignment_lost();
            if let Ok(mut revoking) = self.revoking.lock() {
                revoking.clone_from(&partitions);
            }
            self.with_listener(base, |listener, view| {
                if lost {
                    listener.on_lost(view, &partitions);
                } else {
                    listener.on_revoked(view, &partitions);
                }
            });
            if let Ok(mut revoking) = self.revoking.lock() {
                revoking.clear();
            }
            if let Ok(mut starts) = self.starts.lock() {
                for tp in &partitions {
                    starts.remove(tp);
                }
            }
        }
    }

    fn post_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            self.rebalances.fetch_add(1, Ordering::AcqRel);
            let partitions = partitions_of(list);
            // Learn where the new partitions start, as Java's consumer does on assignment.
            let view = ConsumerView { base };
            if !partitions.is_empty()
                && let Ok(committed) = view.committed(&partitions)
                && let Ok(mut starts) = self.starts.lock()
            {
                for (tp, offset) in partitions.iter().zip(committed) {
                    if let Some(offset) = offset {
                        starts.insert(tp.clone(), offset);
                    }
                }
            }
            self.with_listener(base, |listener, view| {
                listener.on_assigned(view, &partitions);
            });
        }
    }
}

impl ConsumerCtx {
    /// Runs `f` with the listener (if any) and a view of the consumer it may call back into.
    fn with_listener(
        &self,
        base: &BaseConsumer<Self>,
        f: impl FnOnce(&mut dyn RebalanceListener, &dyn Consumer),
    ) {
        let mut guard = match self.listener.lock() {
            Ok(guard) => guard,
            // A listener that panicked earlier is not called again.
            Err(_) => return,
        };
        if let Some(listener) = guard.as_mut() {
            self.in_listener.store(true, Ordering::Release);
            let view = ConsumerView { base };
            f(listener.as_mut(), &view);
            self.in_listener.store(false, Ordering::Release);
        }
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            topic: None,
            timeout: Some(self.timeout),
            transactional_id: None,
            group: self.group.as_deref(),
        }
    }

    fn seeks(&self) -> Result<MutexGuard<'_, HashMap<TopicPartition, SeekTarget>>> {
        self.seeks.lock().map_err(|_| poisoned())
    }
}

/// A group id no other consumer uses.
fn private_group() -> String {
    use std::sync::atomic::AtomicU32;
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "rill-private-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn poisoned() -> LogError {
    LogError::Backend {
        operation: "consumer",
        code: None,
        message: "a thread panicked while holding the consumer's state".into(),
        class: ErrorClass::Fatal,
    }
}

fn partitions_of(list: &TopicPartitionList) -> Vec<TopicPartition> {
    let mut out: Vec<TopicPartition> = list
        .elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect();
    out.sort();
    out
}

fn partition_list(partitions: &[TopicPartition]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for tp in partitions {
        tpl.add_partition(&tp.topic, tp.partition);
    }
    tpl
}

/// A [`rill_log::Consumer`] on librdkafka's `BaseConsumer`.
///
/// Settings: `enable.auto.commit=false`, `enable.auto.offset.store=false` (offsets move only
/// by [`Consumer::commit`] or a transaction), `partition.assignment.strategy`
/// `cooperative-sticky` ([`AssignmentStrategy::Balanced`], incremental rebalances) or `range`
/// ([`AssignmentStrategy::CoPartitioned`], eager rebalances), `isolation.level` and
/// `auto.offset.reset` from the [`ConsumerConfig`] (`OffsetReset::None` is librdkafka's
/// `error`), and `fetch.queue.backoff.ms=10` unless configured otherwise.
///
/// **Rebalances.** librdkafka delivers rebalance events on the consumer queue, which
/// [`Consumer::poll`] (and [`Consumer::close`]) serve on the calling thread. For a revocation
/// the listener's `on_revoked` (or `on_lost`, when librdkafka reports the assignment lost) runs
/// *before* the partitions are unassigned, so it can still commit them; `on_assigned` runs
/// *after* the new partitions are (incrementally) assigned, so it can seek them. The listener
/// is given a view of this consumer (`&dyn Consumer`) that supports every call except `poll`
/// and `close`, which fail there with an `InvalidInput` error. Empty revocations (cooperative
/// rebalances that take nothing from this member) are not reported; every assignment is, empty too.
///
/// **Lag.** [`Consumer::known_lag`] is unknown (`None`): librdkafka keeps each partition's
/// high watermark from its fetch responses, but rust-rdkafka offers only the query that asks
/// the broker, too slow to call per record.
///
/// **Group metadata.** librdkafka does not expose the member id or generation of a consumer
/// through a safe API; [`Consumer::group_metadata`] reports generation `-1` and an empty
/// member id, and carries librdkafka's own group metadata (which has both) in
/// [`GroupMetadata::backend`] for [`rill_log::TransactionalProducer::send_offsets`].
pub struct KafkaConsumer {
    base: BaseConsumer<ConsumerCtx>,
}

impl KafkaConsumer {
    pub(crate) fn new(
        cluster: &KafkaConfig,
        config: &ConsumerConfig,
        listener: Option<Box<dyn RebalanceListener>>,
    ) -> Result<Self> {
        let mut client = cluster.client_config();
        // librdkafka's default (1 s) stalls a consumer that has drained its fetch queue for a
        // whole second before it fetches again; a stream processor wants the next batch now.
        // A value in the cluster's properties or the consumer's `extra` still wins.
        if client.get("fetch.queue.backoff.ms").is_none() {
            client.set("fetch.queue.backoff.ms", "10");
        }
        // librdkafka's consumer cannot even `assign` without a group id; a consumer without
        // one gets a private group that it never joins and never commits to (commit and
        // committed fail with `NoGroup`, as the contract says).
        let group_id = config.group_id.clone().unwrap_or_else(private_group);
        client.set("group.id", group_id);
        if let Some(id) = &config.client_id {
            client.set("client.id", id);
        }
        client.set(
            "isolation.level",
            match config.isolation {
                IsolationLevel::ReadCommitted => "read_committed",
                IsolationLevel::ReadUncommitted => "read_uncommitted",
            },
        );
        client.set(
            "auto.offset.reset",
            match config.offset_reset {
                OffsetReset::Earliest => "earliest",
                OffsetReset::Latest => "latest",
                OffsetReset::None => "error",
            },
        );
        client.set(
            "partition.assignment.strategy",
            match config.assignment {
                AssignmentStrategy::Balanced => "cooperative-sticky",
                AssignmentStrategy::CoPartitioned => "range",
            },
        );
        if let Some(timeout) = config.session_timeout {
            client.set("session.timeout.ms", timeout.as_millis().to_string());
        }
        for (key, value) in &config.extra {
            client.set(key, value);
        }
        client.set("enable.auto.commit", "false");
        client.set("enable.auto.offset.store", "false");
        // librdkafka runs the cooperative protocol when every configured assignor is
        // cooperative (only `cooperative-sticky` is).
        let cooperative = client
            .get("partition.assignment.strategy")
            .is_some_and(|s| s.split(',').all(|a| a.trim() == "cooperative-sticky"));
        let context = ConsumerCtx {
            group: config.group_id.clone(),
            cooperative,
            timeout: cluster.request_timeout,
            offset_reset: config.offset_reset,
            max_poll_records: config
                .max_poll_records
                .unwrap_or(DEFAULT_MAX_POLL_RECORDS)
                .max(1),
            listener: Mutex::new(listener),
            in_listener: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            rebalances: AtomicU64::new(0),
            seeks: Mutex::new(HashMap::new()),
            starts: Mutex::new(HashMap::new()),
            revoking: Mutex::new(Vec::new()),
            pending_error: Mutex::new(None),
        };
        let base = client
            .create_with_context::<_, BaseConsumer<ConsumerCtx>>(context)
            .map_err(|e| crate::create_error("create consumer", e))?;
        Ok(Self { base })
    }

    fn view(&self) -> ConsumerView<'_> {
        ConsumerView { base: &self.base }
    }

    /// Whether the group runs the cooperative (incremental) rebalance protocol; `false` before
    /// the consumer joined a group or when the eager protocol is in force.
    pub fn is_cooperative(&self) -> bool {
        matches!(
            self.base.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        )
    }
}

impl Drop for KafkaConsumer {
    /// Closes the consumer as [`Consumer::close`] does (the listener hears the revocation and
    /// may commit), so that librdkafka's own close on drop finds nothing left to do.
    fn drop(&mut self) {
        let _ = self.view().close();
    }
}

impl std::fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConsumer")
            .field("group", &self.base.context().group)
            .finish_non_exhaustive()
    }
}

impl Consumer for KafkaConsumer {
    fn subscribe(&self, topics: &[String]) -> Result<()> {
        self.view().subscribe(topics)
    }

    fn assign(&self, partitions: &[TopicPartition]) -> Result<()> {
        self.view().assign(partitions)
    }

    fn assignment(&self) -> Result<Vec<TopicPartition>> {
        self.view().assignment()
    }

    fn poll(&self, timeout: Duration) -> Result<Vec<ConsumedRecord>> {
        self.view().poll(timeout)
    }

    fn pause(&self, partitions: &[TopicPartition]) -> Result<()> {
        self.view().pause(partitions)
    }

    fn resume(&self, partitions: &[TopicPartition]) -> Result<()> {
        self.view().resume(partitions)
    }

    fn seek(&self, partition: &TopicPartition, to: SeekTo) -> Result<()> {
        self.view().seek(partition, to)
    }

    fn position(&self, partition: &TopicPartition) -> Result<Offset> {
        self.view().position(partition)
    }

    fn commit(&self, offsets: &[(TopicPartition, Offset)]) -> Result<()> {
        self.view().commit(offsets)
    }

    fn committed(&self, partitions: &[TopicPartition]) -> Result<Vec<Option<Offset>>> {
        self.view().committed(partitions)
    }

    fn watermarks(&self, partition: &TopicPartition) -> Result<Watermarks> {
        self.view().watermarks(partition)
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        self.view().group_metadata()
    }

    fn close(&self) -> Result<()> {
        self.view().close()
    }
}

/// The consumer as seen by the code that holds it and by rebalance listeners: every operation
/// works on a borrowed `BaseConsumer`, which is all a librdkafka rebalance callback has.
struct ConsumerView<'a> {
    base: &'a BaseConsumer<ConsumerCtx>,
}

impl ConsumerView<'_> {
    fn ctx(&self) -> &ConsumerCtx {
        self.base.context()
    }

    fn check_open(&self) -> Result<()> {
        if self.ctx().closed.load(Ordering::Acquire) {
            Err(LogError::Closed { what: "consumer" })
        } else {
            Ok(())
        }
    }

    fn not_in_listener(&self, operation: &'static str) -> Result<()> {
        if self.ctx().in_listener.load(Ordering::Acquire) {
            Err(LogError::Backend {
                operation,
                code: None,
                message: format!("{operation} cannot be called from inside a rebalance listener"),
                class: ErrorClass::InvalidInput,
            })
        } else {
            Ok(())
        }
    }

    fn require_group(&self, operation: &'static str) -> Result<&str> {
        self.ctx()
            .group
            .as_deref()
            .ok_or(LogError::NoGroup { operation })
    }

    /// `partitions` as librdkafka's list, once each is known to be assigned.
    fn assigned_list(&self, partitions: &[TopicPartition]) -> Result<TopicPartitionList> {
        self.check_open()?;
        let mut list = TopicPartitionList::with_capacity(partitions.len());
        for tp in partitions {
            self.require_assigned(tp)?;
            list.add_partition(&tp.topic, tp.partition);
        }
        Ok(list)
    }

    fn require_assigned(&self, partition: &TopicPartition) -> Result<()> {
        let revoking = self
            .ctx()
            .revoking
            .lock()
            .map_err(|_| poisoned())?
            .contains(partition);
        if revoking || self.assignment()?.contains(partition) {
            Ok(())
        } else {
            Err(LogError::NotAssigned {
                partition: partition.clone(),
            })
        }
    }

    fn map(&self, operation: &'static str, err: KafkaError, topic: Option<&str>) -> LogError {
        let mut ctx = self.ctx().ctx();
        ctx.topic = topic;
        error::map(operation, err, &ctx)
    }

    fn record(message: &BorrowedMessage<'_>, topic: &mut Option<Arc<str>>) -> ConsumedRecord {
        let name = match topic {
            Some(t) if &**t == message.topic() => t.clone(),
            _ => {
                let t: Arc<str> = Arc::from(message.topic());
                *topic = Some(t.clone());
                t
            }
        };
        let headers = message.headers().map_or_else(Vec::new, |headers| {
            headers
                .iter()
                .map(|h| Header {
                    key: h.key.to_string(),
                    value: h.value.map(|v| v.to_vec().into()),
                })
                .collect()
        });
        ConsumedRecord {
            topic: name,
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis().unwrap_or(-1),
            key: message.key().map(|k| k.to_vec().into()),
            value: message.payload().map(|v| v.to_vec().into()),
            headers,
        }
    }

    /// Names the partition behind an offset-out-of-range error (librdkafka's error event does
    /// not carry it through rdkafka): the first assigned partition whose committed offset is
    /// outside its watermarks, or that has none.
    fn out_of_range(&self) -> LogError {
        let fallback = LogError::Backend {
            operation: "poll",
            code: Some(error::code_name(RDKafkaErrorCode::AutoOffsetReset)),
            message: "no valid offset to start from and auto.offset.reset is 'error'".into(),
            class: ErrorClass::InvalidInput,
        };
        let Ok(assigned) = self.assignment() else {
            return fallback;
        };
        let committed = if self.ctx().group.is_some() {
            self.committed(&assigned).ok()
        } else {
            None
        };
        for (i, tp) in assigned.iter().enumerate() {
            let Ok(marks) = self.watermarks(tp) else {
                continue;
            };
            let offset = committed.as_ref().and_then(|c| c.get(i).copied().flatten());
            let bad = offset.is_none_or(|o| o < marks.low || o > marks.high);
            if bad {
                return LogError::OffsetOutOfRange {
                    partition: tp.clone(),
                    offset: offset.unwrap_or(-1),
                    low: marks.low,
                    high: marks.high,
                };
            }
        }
        fallback
    }

    /// What to do with an error event met while polling: `Some` to report it.
    fn poll_error(&self, err: KafkaError) -> Option<LogError> {
        match err {
            KafkaError::PartitionEOF(_) => None,
            KafkaError::MessageConsumptionFatal(code) => Some(LogError::Backend {
                operation: "poll",
                code: Some(error::code_name(code)),
                message: code.to_string(),
                class: ErrorClass::Fatal,
            }),
            KafkaError::MessageConsumption(
                RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange,
            ) => Some(self.out_of_range()),
            KafkaError::MessageConsumption(code) => match error::class_of(code) {
                // Transient conditions (brokers down, leaders moving) are librdkafka's to
                // retry; a consumer keeps polling through them as Java's does.
                ErrorClass::Retriable | ErrorClass::InvalidInput => None,
                _ => Some(error::backend("poll", code, code.to_string())),
            },
            other => Some(self.map("poll", other, None)),
        }
    }

    /// Leaves the group: librdkafka revokes the assignment (through the listener) and sends
    /// LeaveGroup; this serves those events until librdkafka is done.
    fn leave(&self) -> Result<()> {
        let ctx = self.ctx();
        let deadline = Instant::now() + ctx.timeout;
        // Give the partitions up through an ordinary rebalance first: revoking them from
        // inside librdkafka's close path (incremental unassign while the group is
        // terminating) was seen to block forever on nisshi, a broker used before Kafka.
        if self
            .base
            .subscription()
            .is_ok_and(|topics| topics.count() > 0)
        {
            self.base.unsubscribe();
            while self
                .base
                .assignment()
                .is_ok_and(|assignment| assignment.count() > 0)
                && Instant::now() < deadline
            {
                let _ = self.base.poll(Duration::from_millis(100));
            }
        }
        self.base
            .close_queue()
            .map_err(|e| self.map("close", e, None))?;
        while !self.base.closed() {
            if Instant::now() >= deadline {
                return Err(LogError::Timeout {
                    operation: "close consumer",
                    after: ctx.timeout,
                });
            }
            let _ = self.base.poll(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Where reading a partition nothing was read from starts: the committed offset, else the
    /// reset policy's end of the partition.
    fn start(&self, partition: &TopicPartition) -> Result<Offset> {
        if self.ctx().group.is_some()
            && let Some(Some(offset)) = self
                .committed(std::slice::from_ref(partition))?
                .first()
                .copied()
        {
            return Ok(offset);
        }
        let marks = self.watermarks(partition)?;
        match self.ctx().offset_reset {
            OffsetReset::Earliest => Ok(marks.low),
            OffsetReset::Latest => Ok(marks.high),
            OffsetReset::None => Err(LogError::OffsetOutOfRange {
                partition: partition.clone(),
                offset: -1,
                low: marks.low,
                high: marks.high,
            }),
        }
    }

    /// The start `position` answered before (or the committed offset learned on assignment).
    fn cached_start(&self, partition: &TopicPartition) -> Result<Option<Offset>> {
        Ok(self
            .ctx()
            .starts
            .lock()
            .map_err(|_| poisoned())?
            .get(partition)
            .copied())
    }

    /// Makes librdkafka's fetcher start `partition` at `start`, the offset `position` just
    /// answered. Without it the fetcher resolves the reset policy with a request of its own,
    /// and records written between the two answers (a Latest consumer's end moving on) would
    /// be skipped. Nothing was handed to the application yet, so nothing is repeated; if the
    /// seek fails the fetcher keeps its own start, as before.
    fn pin_fetch_start(&self, partition: &TopicPartition, start: Offset) {
        if let Err(error) = self.base.seek(
            &partition.topic,
            partition.partition,
            KafkaOffset::Offset(start),
            self.ctx().timeout,
        ) {
            tracing::debug!(%partition, start, %error, "could not pin where fetching starts");
        }
    }

    fn resolve(&self, partition: &TopicPartition, target: SeekTarget) -> Result<Offset> {
        Ok(match target {
            SeekTarget::Offset(offset) => offset,
            SeekTarget::Beginning => self.watermarks(partition)?.low,
            SeekTarget::End => self.watermarks(partition)?.high,
        })
    }
}

impl Consumer for ConsumerView<'_> {
    fn subscribe(&self, topics: &[String]) -> Result<()> {
        self.check_open()?;
        self.require_group("subscribe")?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        self.base
            .subscribe(&names)
            .map_err(|e| self.map("subscribe", e, None))
    }

    fn assign(&self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        // With a group: the committed offset when there is one, else auto.offset.reset.
        // Without one there is nothing committed to look up (librdkafka would fail with
        // "unknown group"), so the reset policy decides directly.
        let start = match (&self.ctx().group, self.ctx().offset_reset) {
            (Some(_), _) | (None, OffsetReset::None) => KafkaOffset::Stored,
            (None, OffsetReset::Earliest) => KafkaOffset::Beginning,
            (None, OffsetReset::Latest) => KafkaOffset::End,
        };
        let mut tpl = TopicPartitionList::with_capacity(partitions.len());
        for tp in partitions {
            tpl.add_partition_offset(&tp.topic, tp.partition, start)
                .map_err(|e| self.map("assign", e, Some(&tp.topic)))?;
        }
        self.ctx().seeks()?.clear();
        self.ctx().starts.lock().map_err(|_| poisoned())?.clear();
        self.base
            .assign(&tpl)
            .map_err(|e| self.map("assign", e, None))
    }

    fn assignment(&self) -> Result<Vec<TopicPartition>> {
        let list = self
            .base
            .assignment()
            .map_err(|e| self.map("assignment", e, None))?;
        Ok(partitions_of(&list))
    }

    fn poll(&self, timeout: Duration) -> Result<Vec<ConsumedRecord>> {
        self.not_in_listener("poll")?;
        self.check_open()?;
        let ctx = self.ctx();
        if let Some(err) = ctx.pending_error.lock().map_err(|_| poisoned())?.take() {
            return Err(err);
        }
        let rebalances = ctx.rebalances.load(Ordering::Acquire);
        let deadline = Instant::now() + timeout;
        let mut records: Vec<ConsumedRecord> = Vec::new();
        let mut topic: Option<Arc<str>> = None;
        loop {
            let wait = if records.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match self.base.poll(wait) {
                Some(Ok(message)) => {
                    records.push(Self::record(&message, &mut topic));
                    if records.len() >= ctx.max_poll_records {
                        break;
                    }
                }
                Some(Err(err)) => {
                    if let Some(err) = self.poll_error(err) {
                        if records.is_empty() {
                            return Err(err);
                        }
                        *ctx.pending_error.lock().map_err(|_| poisoned())? = Some(err);
                        break;
                    }
                }
                None => {
                    if !records.is_empty() || Instant::now() >= deadline {
                        break;
                    }
                }
            }
        }
        if records.is_empty() {
            return Ok(records);
        }
        // A rebalance served while gathering may have taken partitions away: their records
        // belong to their new owner now.
        if ctx.rebalances.load(Ordering::Acquire) != rebalances {
            let assigned = self.assignment()?;
            records.retain(|r| {
                assigned
                    .iter()
                    .any(|tp| tp.partition == r.partition && *tp.topic == *r.topic)
            });
        }
        let mut seeks = ctx.seeks()?;
        if !seeks.is_empty() {
            for record in &records {
                seeks.remove(&TopicPartition::new(&*record.topic, record.partition));
            }
        }
        Ok(records)
    }

    /// librdkafka drops what it fetched ahead for a paused partition and fetches again from
    /// the position on resume, so nothing is skipped or repeated.
    fn pause(&self, partitions: &[TopicPartition]) -> Result<()> {
        let list = self.assigned_list(partitions)?;
        self.base
            .pause(&list)
            .map_err(|e| self.map("pause", e, None))
    }

    fn resume(&self, partitions: &[TopicPartition]) -> Result<()> {
        let list = self.assigned_list(partitions)?;
        self.base
            .resume(&list)
            .map_err(|e| self.map("resume", e, None))
    }

    fn seek(&self, partition: &TopicPartition, to: SeekTo) -> Result<()> {
        self.check_open()?;
        self.require_assigned(partition)?;
        let timeout = self.ctx().timeout;
        let target = match to {
            SeekTo::Beginning => SeekTarget::Beginning,
            SeekTo::End => SeekTarget::End,
            SeekTo::Offset(offset) => SeekTarget::Offset(offset),
            SeekTo::Timestamp(ts) => {
                let mut tpl = TopicPartitionList::with_capacity(1);
                tpl.add_partition_offset(
                    &partition.topic,
                    partition.partition,
                    KafkaOffset::Offset(ts),
                )
                .map_err(|e| self.map("seek", e, Some(&partition.topic)))?;
                let found = self
                    .base
                    .offsets_for_times(tpl, timeout)
                    .map_err(|e| self.map("offsets for times", e, Some(&partition.topic)))?;
                match found
                    .find_partition(&partition.topic, partition.partition)
                    .map(|e| e.offset())
                {
                    Some(KafkaOffset::Offset(offset)) => SeekTarget::Offset(offset),
                    _ => SeekTarget::End,
                }
            }
        };
        let offset = match target {
            SeekTarget::Beginning => KafkaOffset::Beginning,
            SeekTarget::End => KafkaOffset::End,
            SeekTarget::Offset(offset) => KafkaOffset::Offset(offset),
        };
        self.base
            .seek(&partition.topic, partition.partition, offset, timeout)
            .map_err(|e| self.map("seek", e, Some(&partition.topic)))?;
        self.ctx().seeks()?.insert(partition.clone(), target);
        Ok(())
    }

    fn position(&self, partition: &TopicPartition) -> Result<Offset> {
        self.check_open()?;
        self.require_assigned(partition)?;
        // librdkafka's position is authoritative once it is valid: a seek resets it to
        // invalid, and consuming anything moves it, including the transaction markers and
        // aborted records that never reach the application (so a partition holding only
        // those is still read to its end).
        let positions = self
            .base
            .position()
            .map_err(|e| self.map("position", e, Some(&partition.topic)))?;
        if let Some(KafkaOffset::Offset(offset)) = positions
            .find_partition(&partition.topic, partition.partition)
            .map(|e| e.offset())
        {
            self.ctx().seeks()?.remove(partition);
            return Ok(offset);
        }
        let sought = self.ctx().seeks()?.get(partition).copied();
        if let Some(target) = sought {
            return self.resolve(partition, target);
        }
        // Nothing read yet: where the first poll will start.
        if let Some(start) = self.cached_start(partition)? {
            return Ok(start);
        }
        let start = self.start(partition)?;
        self.pin_fetch_start(partition, start);
        self.ctx()
            .starts
            .lock()
            .map_err(|_| poisoned())?
            .insert(partition.clone(), start);
        Ok(start)
    }

    fn commit(&self, offsets: &[(TopicPartition, Offset)]) -> Result<()> {
        self.check_open()?;
        self.require_group("commit")?;
        if offsets.is_empty() {
            return Ok(());
        }
        let tpl = offsets_list(offsets)?;
        self.base
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| self.map("commit", e, None))
    }

    fn committed(&self, partitions: &[TopicPartition]) -> Result<Vec<Option<Offset>>> {
        self.require_group("committed")?;
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .base
            .committed_offsets(partition_list(partitions), self.ctx().timeout)
            .map_err(|e| self.map("committed", e, None))?;
        Ok(partitions
            .iter()
            .map(|tp| {
                match found
                    .find_partition(&tp.topic, tp.partition)
                    .map(|e| e.offset())
                {
                    Some(KafkaOffset::Offset(offset)) => Some(offset),
                    _ => None,
                }
            })
            .collect())
    }

    fn watermarks(&self, partition: &TopicPartition) -> Result<Watermarks> {
        let (low, high) = self
            .base
            .fetch_watermarks(&partition.topic, partition.partition, self.ctx().timeout)
            .map_err(|e| self.map("watermarks", e, Some(&partition.topic)))?;
        Ok(Watermarks { low, high })
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        let group = self.ctx().group.clone()?;
        let metadata = self.base.group_metadata()?;
        Some(GroupMetadata {
            group_id: group,
            generation: -1,
            member_id: String::new(),
            backend: Some(Arc::new(metadata)),
        })
    }

    fn close(&self) -> Result<()> {
        self.not_in_listener("close")?;
        let ctx = self.ctx();
        if ctx.closing.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // The listener hears the revocation while librdkafka closes and may still commit, so
        // the consumer is marked closed only afterwards.
        let result = self.leave();
        ctx.closed.store(true, Ordering::Release);
        result
    }
}
