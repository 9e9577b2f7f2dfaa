//! Helpers the cases share: unique names, deadline loops around `poll` and deliveries, client
//! construction through the harness's tuning hooks, and a rebalance listener that records who
//! owns which partition.
//!
//! Everything here panics with a message saying what was expected and what was seen: it is
//! test code, and a panic is how a case fails.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rill_log::{
    ConsumedRecord, Consumer, ConsumerConfig, DeliveryFuture, ErrorClass, IsolationLevel, LogError,
    OffsetReset, Producer, ProducerConfig, ProducerRecord, RebalanceListener, RecordMetadata,
    Result, TopicConfig, TopicPartition, TransactionalProducer,
};

use crate::Harness;

/// How long a case waits for anything (records, a rebalance, a delivery) before failing:
/// `RILL_CONFORMANCE_WAIT_SECS` seconds, 30 by default.
pub fn wait_limit() -> Duration {
    std::env::var("RILL_CONFORMANCE_WAIT_SECS")
        .ok()
        .and_then(|secs| secs.parse::<u64>().ok())
        .map_or(Duration::from_secs(30), Duration::from_secs)
}

/// How long one `poll` inside a deadline loop waits.
pub const POLL_STEP: Duration = Duration::from_millis(100);

/// A name no other case (in this or another process) uses: `rill-conf-<prefix>-<pid>-<n>-<ns>`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    format!("rill-conf-{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// A point in time after which a wait fails.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    /// [`wait_limit`] from now.
    pub fn start() -> Self {
        Deadline(Instant::now() + wait_limit())
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.0
    }
}

/// Creates a topic (after [`Harness::tune_topic`]) and waits until the log describes it, so
/// backends whose metadata propagates asynchronously are ready for produce and consume.
pub fn create_topic(h: &dyn Harness, name: &str, mut config: TopicConfig) {
    h.tune_topic(&mut config);
    let log = h.log();
    log.admin()
        .create_topic(name, &config)
        .unwrap_or_else(|e| panic!("creating topic {name} with {config:?} failed: {e}"));
    let deadline = Deadline::start();
    loop {
        match log.admin().describe_topic(name) {
            Ok(_) => return,
            Err(e) if deadline.passed() => {
                panic!("topic {name} was created but describe still fails after the wait: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A non-transactional producer with the harness's tuning.
pub fn producer(h: &dyn Harness) -> Box<dyn Producer> {
    let mut config = ProducerConfig::default();
    h.tune_producer(&mut config);
    h.log()
        .producer(&config)
        .unwrap_or_else(|e| panic!("creating a producer failed: {e}"))
}

/// A transactional producer with the harness's tuning.
pub fn transactional_producer(h: &dyn Harness, id: &str) -> Box<dyn TransactionalProducer> {
    let mut config = ProducerConfig::default();
    h.tune_producer(&mut config);
    h.log()
        .transactional_producer(&config, id)
        .unwrap_or_else(|e| panic!("creating transactional producer {id} failed: {e}"))
}

/// Consumer settings the cases use: a group (or none), an isolation level and a reset policy.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Group id.
    pub group: Option<String>,
    /// Isolation level.
    pub isolation: IsolationLevel,
    /// Start position without a committed offset.
    pub reset: OffsetReset,
    /// Most records per poll.
    pub max_poll_records: Option<usize>,
}

impl ConsumerSpec {
    /// No group, read-committed, from the earliest record.
    pub fn standalone() -> Self {
        Self {
            group: None,
            isolation: IsolationLevel::ReadCommitted,
            reset: OffsetReset::Earliest,
            max_poll_records: None,
        }
    }

    /// In `group`, read-committed, from the earliest record.
    pub fn in_group(group: &str) -> Self {
        Self {
            group: Some(group.to_string()),
            ..Self::standalone()
        }
    }

    /// With this reset policy.
    pub fn reset(mut self, reset: OffsetReset) -> Self {
        self.reset = reset;
        self
    }
}

/// A consumer per `spec`, with the harness's tuning, hearing rebalances through `listener`.
pub fn consumer(
    h: &dyn Harness,
    spec: &ConsumerSpec,
    listener: Option<Box<dyn RebalanceListener>>,
) -> Box<dyn Consumer> {
    let mut config = ConsumerConfig {
        client_id: Some(unique("client")),
        ..ConsumerConfig::default()
    };
    h.tune_consumer(&mut config);
    config.group_id = spec.group.clone();
    config.isolation = spec.isolation;
    config.offset_reset = spec.reset;
    config.max_poll_records = spec.max_poll_records;
    h.log()
        .consumer(&config, listener)
        .unwrap_or_else(|e| panic!("creating a consumer with {spec:?} failed: {e}"))
}

/// A group-less consumer assigned `partitions`, reading from the earliest record.
pub fn reader(h: &dyn Harness, partitions: &[TopicPartition]) -> Box<dyn Consumer> {
    let consumer = consumer(h, &ConsumerSpec::standalone(), None);
    consumer
        .assign(partitions)
        .unwrap_or_else(|e| panic!("assigning {partitions:?} failed: {e}"));
    consumer
}

/// All partitions `0..count` of `topic`.
pub fn partitions(topic: &str, count: i32) -> Vec<TopicPartition> {
    (0..count).map(|p| TopicPartition::new(topic, p)).collect()
}

/// Waits for one delivery, failing the case if it is not complete within [`wait_limit`].
pub fn wait_delivery(delivery: DeliveryFuture, what: &str) -> Result<RecordMetadata> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(delivery.wait());
    });
    match rx.recv_timeout(wait_limit()) {
        Ok(result) => result,
        Err(_) => panic!(
            "the delivery of {what} did not complete within {:?}",
            wait_limit()
        ),
    }
}

/// Sends `records` in order, flushes, and returns each one's metadata; fails the case if any
/// is refused.
pub fn send_all(producer: &dyn Producer, records: Vec<ProducerRecord>) -> Vec<RecordMetadata> {
    let deliveries: Vec<(String, DeliveryFuture)> = records
        .into_iter()
        .map(|record| {
            let what = describe_record(&record);
            let delivery = producer
                .send(record)
                .unwrap_or_else(|e| panic!("send of {what} failed: {e}"));
            (what, delivery)
        })
        .collect();
    producer.flush(wait_limit()).unwrap_or_else(|e| {
        panic!(
            "flush after sending {} records failed: {e}",
            deliveries.len()
        )
    });
    deliveries
        .into_iter()
        .map(|(what, delivery)| {
            wait_delivery(delivery, &what).unwrap_or_else(|e| panic!("{what} was refused: {e}"))
        })
        .collect()
}

/// Sends one record and waits for it (so each record is written on its own).
pub fn send_one(producer: &dyn Producer, record: ProducerRecord) -> RecordMetadata {
    let what = describe_record(&record);
    let delivery = producer
        .send(record)
        .unwrap_or_else(|e| panic!("send of {what} failed: {e}"));
    wait_delivery(delivery, &what).unwrap_or_else(|e| panic!("{what} was refused: {e}"))
}

/// Sends a record that must be refused and returns the error, whether `send` returns it at
/// once or the delivery fails.
pub fn send_expecting_error(producer: &dyn Producer, record: ProducerRecord) -> LogError {
    let what = describe_record(&record);
    match producer.send(record) {
        Err(e) => e,
        Ok(delivery) => {
            // The failure may only be known once the backend tries; flush's own result is
            // beside the point, the delivery says what happened.
            let _ = producer.flush(wait_limit());
            match wait_delivery(delivery, &what) {
                Err(e) => e,
                Ok(metadata) => {
                    panic!("{what} should have been refused but was written: {metadata:?}")
                }
            }
        }
    }
}

/// A short description of a record for messages.
pub fn describe_record(record: &ProducerRecord) -> String {
    format!(
        "record for {}{} key {} value {}",
        record.topic,
        record
            .partition
            .map(|p| format!("-{p}"))
            .unwrap_or_default(),
        show(record.key.as_ref()),
        show_value(record.value.as_ref()),
    )
}

/// Bytes as text for messages (lossy), `null` when absent.
pub fn show(bytes: Option<&Bytes>) -> String {
    match bytes {
        None => "null".to_string(),
        Some(b) => format!("{:?}", String::from_utf8_lossy(b)),
    }
}

fn show_value(bytes: Option<&Bytes>) -> String {
    match bytes {
        Some(b) if b.len() > 64 => format!("<{} bytes>", b.len()),
        other => show(other),
    }
}

/// A record's value as text (lossy); empty when absent.
pub fn text(record: &ConsumedRecord) -> String {
    record
        .value
        .as_ref()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// A one-line summary of records for messages: `partition@offset=value`, at most 40 of them.
pub fn summary(records: &[ConsumedRecord]) -> String {
    let mut parts: Vec<String> = records
        .iter()
        .take(40)
        .map(|r| {
            format!(
                "{}-{}@{}={}",
                r.topic,
                r.partition,
                r.offset,
                show_value(r.value.as_ref())
            )
        })
        .collect();
    if records.len() > 40 {
        parts.push(format!("... ({} in all)", records.len()));
    }
    format!("[{}]", parts.join(", "))
}

/// Polls until `done` holds for everything received so far, then returns it; fails the case
/// after [`wait_limit`] with what was received. Retriable poll errors are retried; others fail.
pub fn poll_until(
    consumer: &dyn Consumer,
    what: &str,
    mut done: impl FnMut(&[ConsumedRecord]) -> bool,
) -> Vec<ConsumedRecord> {
    let deadline = Deadline::start();
    let mut received = Vec::new();
    while !done(&received) {
        if deadline.passed() {
            panic!(
                "waited {:?} for {what}; received {} records: {}",
                wait_limit(),
                received.len(),
                summary(&received)
            );
        }
        match consumer.poll(POLL_STEP) {
            Ok(records) => received.extend(records),
            Err(e) if e.class() == ErrorClass::Retriable => {}
            Err(e) => panic!(
                "poll failed while waiting for {what} (after {} records: {}): {e}",
                received.len(),
                summary(&received)
            ),
        }
    }
    received
}

/// Polls until at least `n` records arrived.
pub fn poll_count(consumer: &dyn Consumer, n: usize, what: &str) -> Vec<ConsumedRecord> {
    poll_until(consumer, &format!("{n} records ({what})"), |r| r.len() >= n)
}

/// Polls until a record with value `marker` arrives, returning every record received.
pub fn poll_until_value(consumer: &dyn Consumer, marker: &str, what: &str) -> Vec<ConsumedRecord> {
    poll_until(
        consumer,
        &format!("the record {marker:?} ({what})"),
        |records| records.iter().any(|r| text(r) == marker),
    )
}

/// Expects an error from `result`, failing the case with `what` if it succeeded.
pub fn expect_err<T: std::fmt::Debug>(result: Result<T>, what: &str) -> LogError {
    match result {
        Err(e) => e,
        Ok(value) => panic!("{what} should have failed but returned {value:?}"),
    }
}

/// Asserts an error's class, showing the error when it differs.
pub fn assert_class(error: &LogError, class: ErrorClass, what: &str) {
    assert_eq!(
        error.class(),
        class,
        "{what}: expected an error of class {class:?}, got {error:?} ({error})"
    );
}

/// A value padded with `-` to `len` bytes, starting with `prefix`.
pub fn padded(prefix: &str, len: usize) -> String {
    let mut value = prefix.to_string();
    while value.len() < len {
        value.push('-');
    }
    value
}

/// The shared view of a consumer group: which member owns which partition according to the
/// rebalance listeners, every notification in order, and every violation of "a partition is
/// owned by at most one member at a time".
#[derive(Debug, Default)]
pub struct GroupObserver {
    state: Arc<Mutex<ObserverState>>,
}

#[derive(Debug, Default)]
struct ObserverState {
    owners: BTreeMap<TopicPartition, String>,
    events: Vec<String>,
    violations: Vec<String>,
}

impl GroupObserver {
    /// A fresh observer.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, ObserverState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A listener for member `member` reporting to this observer.
    pub fn listener(&self, member: &str) -> Box<dyn RebalanceListener> {
        Box::new(RecordingListener {
            member: member.to_string(),
            state: Arc::clone(&self.state),
        })
    }

    /// Partitions `member` owns according to its listener.
    pub fn owned_by(&self, member: &str) -> BTreeSet<TopicPartition> {
        self.lock()
            .owners
            .iter()
            .filter(|(_, owner)| owner.as_str() == member)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Every notification so far, in order, for messages.
    pub fn events(&self) -> String {
        self.lock().events.join("; ")
    }

    /// Fails the case if any partition was assigned to one member while another owned it, or
    /// revoked from a member that did not own it.
    pub fn assert_no_violations(&self) {
        let state = self.lock();
        assert!(
            state.violations.is_empty(),
            "partition ownership violated:\n  {}\nevents: {}",
            state.violations.join("\n  "),
            state.events.join("; ")
        );
    }
}

struct RecordingListener {
    member: String,
    state: Arc<Mutex<ObserverState>>,
}

impl RecordingListener {
    fn record(&self, kind: &str, partitions: &[TopicPartition]) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let list: Vec<String> = partitions.iter().map(ToString::to_string).collect();
        state
            .events
            .push(format!("{} {kind} [{}]", self.member, list.join(", ")));
        for tp in partitions {
            if kind == "assigned" {
                if let Some(owner) = state.owners.get(tp)
                    && owner != &self.member
                {
                    let violation = format!(
                        "{tp} was assigned to {} while {owner} still owned it",
                        self.member
                    );
                    state.violations.push(violation);
                }
                state.owners.insert(tp.clone(), self.member.clone());
            } else if state.owners.get(tp) == Some(&self.member) {
                state.owners.remove(tp);
            } else if kind == "revoked" {
                let violation = format!(
                    "{tp} was revoked from {}, which did not own it (owner: {:?})",
                    self.member,
                    state.owners.get(tp)
                );
                state.violations.push(violation);
            }
        }
    }
}

impl RebalanceListener for RecordingListener {
    fn on_assigned(&mut self, _consumer: &dyn Consumer, partitions: &[TopicPartition]) {
        self.record("assigned", partitions);
    }

    fn on_revoked(&mut self, _consumer: &dyn Consumer, partitions: &[TopicPartition]) {
        self.record("revoked", partitions);
    }

    fn on_lost(&mut self, _consumer: &dyn Consumer, partitions: &[TopicPartition]) {
        self.record("lost", partitions);
    }
}

/// A consumer's assignment as a set, failing the case if it cannot be read.
pub fn assignment(consumer: &dyn Consumer, member: &str) -> BTreeSet<TopicPartition> {
    consumer
        .assignment()
        .unwrap_or_else(|e| panic!("assignment() of {member} failed: {e}"))
        .into_iter()
        .collect()
}

/// Polls the members in turn (each poll may deliver rebalance notifications) until `settled`
/// holds for their assignments and the records each received, checking at every step that no
/// partition is assigned to two members. Records received are returned per member.
pub fn poll_members_until(
    members: &[(&str, &dyn Consumer)],
    what: &str,
    mut settled: impl FnMut(&[BTreeSet<TopicPartition>], &[Vec<ConsumedRecord>]) -> bool,
) -> Vec<Vec<ConsumedRecord>> {
    let deadline = Deadline::start();
    let mut received: Vec<Vec<ConsumedRecord>> = vec![Vec::new(); members.len()];
    loop {
        let assignments: Vec<BTreeSet<TopicPartition>> = members
            .iter()
            .map(|(name, consumer)| assignment(*consumer, name))
            .collect();
        for (i, a) in assignments.iter().enumerate() {
            for (j, b) in assignments.iter().enumerate().skip(i + 1) {
                let both: Vec<&TopicPartition> = a.intersection(b).collect();
                assert!(
                    both.is_empty(),
                    "{both:?} assigned to both {} and {} at once (while waiting for {what})",
                    members[i].0,
                    members[j].0
                );
            }
        }
        if settled(&assignments, &received) {
            return received;
        }
        if deadline.passed() {
            panic!(
                "waited {:?} for {what}; assignments are {:?}; records received {:?}",
                wait_limit(),
                members
                    .iter()
                    .map(|(name, _)| *name)
                    .zip(assignments.iter())
                    .collect::<Vec<_>>(),
                received.iter().map(|r| summary(r)).collect::<Vec<_>>()
            );
        }
        for ((name, consumer), bucket) in members.iter().zip(received.iter_mut()) {
            match consumer.poll(POLL_STEP) {
                Ok(records) => bucket.extend(records),
                Err(e) if e.class() == ErrorClass::Retriable => {}
                Err(e) => panic!("poll of {name} failed while waiting for {what}: {e}"),
            }
        }
    }
}
