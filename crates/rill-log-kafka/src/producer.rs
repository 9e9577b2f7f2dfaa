//! Idempotent and transactional producers on librdkafka's threaded producer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::ClientContext;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header as KafkaHeader, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer as _, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, Offset as KafkaOffset, TopicPartitionList};
use rill_log::{
    DeliveryFuture, DeliverySender, ErrorClass, GroupMetadata, LogError, Offset, Producer,
    ProducerConfig, ProducerRecord, RecordMetadata, Result, TopicPartition, TransactionalProducer,
};

use crate::KafkaConfig;
use crate::error::{self, Ctx};

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;
/// librdkafka's default `message.timeout.ms`.
const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(300);

/// What a queued record needs to complete its [`DeliveryFuture`]; a detached record has no
/// sender, and only its failure is kept.
#[derive(Debug)]
pub(crate) struct PendingDelivery {
    sender: Option<DeliverySender>,
    timestamp: Option<i64>,
}

/// Producer context: completes deliveries from librdkafka's delivery reports, which the
/// threaded producer's polling thread serves.
pub(crate) struct ProducerCtx {
    transactional_id: Option<String>,
    message_timeout: Duration,
    /// The first failed delivery of a detached record, answered by the next flush.
    detached_failure: Mutex<Option<LogError>>,
}

impl ProducerCtx {
    fn take_detached_failure(&self) -> Option<LogError> {
        self.detached_failure
            .lock()
            .ok()
            .and_then(|mut failure| failure.take())
    }
}

impl ClientContext for ProducerCtx {}

impl ProducerContext for ProducerCtx {
    type DeliveryOpaque = Box<PendingDelivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<PendingDelivery>) {
        let outcome = match result {
            Ok(message) => Ok(RecordMetadata {
                topic: message.topic().to_string(),
                partition: message.partition(),
                offset: message.offset(),
                timestamp: message
                    .timestamp()
                    .to_millis()
                    .or(pending.timestamp)
                    .unwrap_or_else(now_ms),
            }),
            Err((err, message)) => {
                let ctx = Ctx {
                    topic: Some(message.topic()),
                    timeout: Some(self.message_timeout),
                    transactional_id: self.transactional_id.as_deref(),
                    group: None,
                };
                Err(error::map("deliver record", err.clone(), &ctx))
            }
        };
        match (pending.sender, outcome) {
            (Some(sender), outcome) => sender.complete(outcome),
            (None, Ok(_)) => {}
            (None, Err(error)) => {
                if let Ok(mut failure) = self.detached_failure.lock() {
                    failure.get_or_insert(error);
                }
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Reads a duration in ms or a size from the effective client configuration.
fn config_number(config: &ClientConfig, key: &str) -> Option<u64> {
    config.get(key).and_then(|v| v.trim().parse::<u64>().ok())
}

/// What the two producers share: the librdkafka producer and the partition counts seen.
struct ProducerCore {
    producer: ThreadedProducer<ProducerCtx>,
    timeout: Duration,
    max_message_bytes: usize,
    /// Partition counts of topics seen in metadata, to refuse unknown topics and partitions at
    /// `send` as the trait asks (librdkafka itself would fail the delivery later).
    partitions: Mutex<HashMap<String, i32>>,
    transactional_id: Option<String>,
}

impl ProducerCore {
    fn new(
        cluster: &KafkaConfig,
        config: &ProducerConfig,
        transactional_id: Option<&str>,
    ) -> Result<Self> {
        let mut client = cluster.client_config();
        client.set("enable.idempotence", "true");
        client.set("partitioner", "murmur2_random");
        if let Some(id) = &config.client_id {
            client.set("client.id", id);
        }
        if let Some(linger) = config.linger {
            client.set("linger.ms", linger.as_millis().to_string());
        }
        for (key, value) in &config.extra {
            client.set(key, value);
        }
        if let Some(id) = transactional_id {
            client.set("transactional.id", id);
        }
        let message_timeout = config_number(&client, "message.timeout.ms")
            .map_or(DEFAULT_MESSAGE_TIMEOUT, Duration::from_millis);
        let max_message_bytes = config_number(&client, "message.max.bytes")
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
        let context = ProducerCtx {
            transactional_id: transactional_id.map(str::to_string),
            message_timeout,
            detached_failure: Mutex::new(None),
        };
        let producer = client
            .create_with_context::<_, ThreadedProducer<ProducerCtx>>(context)
            .map_err(|e| crate::create_error("create producer", e))?;
        Ok(Self {
            producer,
            timeout: cluster.request_timeout,
            max_message_bytes,
            partitions: Mutex::new(HashMap::new()),
            transactional_id: transactional_id.map(str::to_string),
        })
    }

    fn ctx<'a>(&'a self, topic: Option<&'a str>) -> Ctx<'a> {
        Ctx {
            topic,
            timeout: Some(self.timeout),
            transactional_id: self.transactional_id.as_deref(),
            group: None,
        }
    }

    /// Partition count of `topic`, from the cache or (when unknown or when `partition` is past
    /// the cached count) from a fresh all-topics metadata request, which never auto-creates.
    fn partition_count(&self, topic: &str, partition: Option<i32>) -> Result<i32> {
        let cached = self
            .partitions
            .lock()
            .map_err(|_| poisoned())?
            .get(topic)
            .copied();
        if let Some(count) = cached
            && partition.is_none_or(|p| p < count)
        {
            return Ok(count);
        }
        let metadata = self
            .producer
            .client()
            .fetch_metadata(None, self.timeout)
            .map_err(|e| error::map("fetch metadata", e, &self.ctx(Some(topic))))?;
        let mut cache = self.partitions.lock().map_err(|_| poisoned())?;
        for t in metadata.topics() {
            if t.error().is_none() && !t.partitions().is_empty() {
                cache.insert(t.name().to_string(), t.partitions().len() as i32);
            }
        }
        cache
            .get(topic)
            .copied()
            .ok_or_else(|| LogError::UnknownTopic {
                topic: topic.to_string(),
            })
    }

    fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let (sender, future) = DeliveryFuture::pending();
        self.enqueue(record, Some(sender))?;
        Ok(future)
    }

    /// Queues `record`; its delivery completes `sender`, or without one (a detached record,
    /// which saves a channel per record) only a failure is kept, for the next flush.
    fn enqueue(&self, record: ProducerRecord, sender: Option<DeliverySender>) -> Result<()> {
        let partitions = self.partition_count(&record.topic, record.partition)?;
        if let Some(partition) = record.partition
            && !(0..partitions).contains(&partition)
        {
            return Err(LogError::UnknownPartition {
                topic: record.topic,
                partition,
                partitions,
            });
        }
        let size = record.key.as_ref().map_or(0, |k| k.len())
            + record.value.as_ref().map_or(0, |v| v.len())
            + record
                .headers
                .iter()
                .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()))
                .sum::<usize>();
        if size > self.max_message_bytes {
            return Err(LogError::RecordTooLarge {
                topic: record.topic,
                size,
                max: self.max_message_bytes,
            });
        }

        let pending = Box::new(PendingDelivery {
            sender,
            timestamp: record.timestamp,
        });
        let mut base: BaseRecord<'_, [u8], [u8], Box<PendingDelivery>> =
            BaseRecord::with_opaque_to(&record.topic, pending);
        if let Some(partition) = record.partition {
            base = base.partition(partition);
        }
        if let Some(key) = record.key.as_deref() {
            base = base.key(key);
        }
        if let Some(value) = record.value.as_deref() {
            base = base.payload(value);
        }
        if let Some(timestamp) = record.timestamp {
            base = base.timestamp(timestamp);
        }
        if !record.headers.is_empty() {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for header in &record.headers {
                headers = headers.insert(KafkaHeader {
                    key: &header.key,
                    value: header.value.as_deref(),
                });
            }
            base = base.headers(headers);
        }

        // A full local queue drains as deliveries complete: retry until the request timeout.
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.producer.send(base) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                    if Instant::now() < deadline =>
                {
                    base = returned;
                    thread::sleep(Duration::from_millis(2));
                }
                Err((err, _returned)) => {
                    return Err(self.send_error(err, &record.topic, size, partitions));
                }
            }
        }
    }

    fn send_error(&self, err: KafkaError, topic: &str, size: usize, partitions: i32) -> LogError {
        match error::code_of(&err) {
            Some(RDKafkaErrorCode::MessageSizeTooLarge) => LogError::RecordTooLarge {
                topic: topic.to_string(),
                size,
                max: self.max_message_bytes,
            },
            Some(RDKafkaErrorCode::UnknownPartition) => LogError::UnknownPartition {
                topic: topic.to_string(),
                partition: -1,
                partitions,
            },
            Some(RDKafkaErrorCode::State) if self.transactional_id.is_some() => {
                LogError::TransactionState {
                    operation: "send",
                    state: "no transaction in progress",
                }
            }
            Some(RDKafkaErrorCode::Fatal) => self.fatal_error("send"),
            _ => error::map("send", err, &self.ctx(Some(topic))),
        }
    }

    /// The producer's fatal error, as precisely as it can be named.
    fn fatal_error(&self, operation: &'static str) -> LogError {
        match self.producer.client().fatal_error() {
            Some((code, message)) => error::map_code(operation, code, message, &self.ctx(None)),
            None => LogError::Backend {
                operation,
                code: Some(error::code_name(RDKafkaErrorCode::Fatal)),
                message: "the producer hit a fatal error".into(),
                class: ErrorClass::Fatal,
            },
        }
    }

    fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer.flush(timeout).map_err(|e| match e {
            KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut) => LogError::Timeout {
                operation: "flush",
                after: timeout,
            },
            other => error::map("flush", other, &self.ctx(None).with_timeout(timeout)),
        })?;
        match self.producer.context().take_detached_failure() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }
}

fn poisoned() -> LogError {
    LogError::Backend {
        operation: "producer",
        code: None,
        message: "a thread panicked while holding the producer's topic cache".into(),
        class: ErrorClass::Fatal,
    }
}

/// An idempotent [`rill_log::Producer`] (`enable.idempotence=true`,
/// `partitioner=murmur2_random`). Deliveries complete on librdkafka's polling thread.
pub struct KafkaProducer {
    core: ProducerCore,
}

impl KafkaProducer {
    pub(crate) fn new(cluster: &KafkaConfig, config: &ProducerConfig) -> Result<Self> {
        Ok(Self {
            core: ProducerCore::new(cluster, config, None)?,
        })
    }
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProducer").finish_non_exhaustive()
    }
}

impl Producer for KafkaProducer {
    fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        self.core.send(record)
    }

    fn send_detached(&self, record: ProducerRecord) -> Result<()> {
        self.core.enqueue(record, None)
    }

    fn flush(&self, timeout: Duration) -> Result<()> {
        self.core.flush(timeout)
    }
}

/// How long past its own timeout a `send_offsets_to_transaction` is waited for before the
/// producer is given up (see [`KafkaTransactionalProducer`]).
const WEDGED_GRACE: Duration = Duration::from_secs(5);

/// A [`rill_log::TransactionalProducer`] on librdkafka's transactional producer. Creating it
/// runs `init_transactions`, which fences any older producer with the same transactional id
/// and fails with [`LogError::TransactionsUnsupported`] on a cluster without transactions.
///
/// librdkafka's `send_offsets_to_transaction` can block forever when the group coordinator
/// goes away during the call (the coordinator request ignores its timeout: librdkafka issues
/// 5456 and 5511; seen here when a broker was killed). So that call runs on a thread of its
/// own; when it has not answered shortly after its timeout, the producer is replaced by a new
/// one with the same transactional id, whose `init_transactions` fences the stuck one and
/// aborts its transaction, and the call fails with [`LogError::Timeout`]. The stuck thread and
/// the old producer are left to librdkafka.
pub struct KafkaTransactionalProducer {
    core: RwLock<Arc<ProducerCore>>,
    cluster: KafkaConfig,
    config: ProducerConfig,
    transactional_id: String,
    in_transaction: AtomicBool,
    /// Set when the producer was given up and its replacement could not be initialised yet;
    /// the next `begin` tries again.
    wedged: AtomicBool,
}

impl KafkaTransactionalProducer {
    pub(crate) fn new(
        cluster: &KafkaConfig,
        config: &ProducerConfig,
        transactional_id: &str,
    ) -> Result<Self> {
        let core = Self::initialised_core(cluster, config, transactional_id)?;
        Ok(Self {
            core: RwLock::new(Arc::new(core)),
            cluster: cluster.clone(),
            config: config.clone(),
            transactional_id: transactional_id.to_string(),
            in_transaction: AtomicBool::new(false),
            wedged: AtomicBool::new(false),
        })
    }

    /// A producer with the transactional id, after `init_transactions`.
    fn initialised_core(
        cluster: &KafkaConfig,
        config: &ProducerConfig,
        transactional_id: &str,
    ) -> Result<ProducerCore> {
        let core = ProducerCore::new(cluster, config, Some(transactional_id))?;
        core.producer
            .init_transactions(core.timeout)
            .map_err(|e| txn_error(&core, transactional_id, "init transactions", e))?;
        Ok(core)
    }

    /// The librdkafka producer in use now.
    fn core(&self) -> Arc<ProducerCore> {
        self.core
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts a new producer in place of a stuck one; on failure, the next `begin` tries again.
    fn replace(&self) -> Result<()> {
        self.in_transaction.store(false, Ordering::Release);
        self.wedged.store(true, Ordering::Release);
        let core = Self::initialised_core(&self.cluster, &self.config, &self.transactional_id)?;
        *self
            .core
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(core);
        self.wedged.store(false, Ordering::Release);
        tracing::warn!(
            transactional_id = %self.transactional_id,
            "replaced a transactional producer stuck in send_offsets_to_transaction"
        );
        Ok(())
    }

    /// Maps an error of a transactional call; a fatal error is named by the producer's
    /// recorded fatal error (e.g. fenced).
    fn txn_error(&self, operation: &'static str, err: KafkaError) -> LogError {
        txn_error(&self.core(), &self.transactional_id, operation, err)
    }

    /// `ProducerFenced` once a newer producer with the same transactional id has fenced this
    /// one: every later call fails the same way (the transaction this producer had open is
    /// gone with its epoch, so "a transaction is in progress" would mislead).
    fn fenced(&self) -> Result<()> {
        match self.core().producer.client().fatal_error() {
            Some((code, _)) if error::is_fenced(code) => Err(LogError::ProducerFenced {
                transactional_id: self.transactional_id.clone(),
            }),
            _ => Ok(()),
        }
    }

    fn require_transaction(&self, operation: &'static str) -> Result<()> {
        self.fenced()?;
        if self.in_transaction.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(LogError::TransactionState {
                operation,
                state: "no transaction in progress",
            })
        }
    }
}

/// Maps an error of a transactional call of `core`; a fatal error is named by the producer's
/// recorded fatal error (e.g. fenced).
fn txn_error(
    core: &ProducerCore,
    transactional_id: &str,
    operation: &'static str,
    err: KafkaError,
) -> LogError {
    let ctx = Ctx {
        topic: None,
        timeout: Some(core.timeout),
        transactional_id: Some(transactional_id),
        group: None,
    };
    match &err {
        KafkaError::Transaction(e) => {
            if e.is_fatal()
                && let Some((code, message)) = core.producer.client().fatal_error()
            {
                if error::is_fenced(code) {
                    return LogError::ProducerFenced {
                        transactional_id: transactional_id.to_string(),
                    };
                }
                if error::is_transactions_unsupported(code, &message) {
                    return LogError::TransactionsUnsupported {
                        reason: format!("{}: {message}", error::code_name(code)),
                    };
                }
            }
            error::map_txn(operation, e, &ctx)
        }
        _ => error::map(operation, err, &ctx),
    }
}

impl std::fmt::Debug for KafkaTransactionalProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTransactionalProducer")
            .field("transactional_id", &self.transactional_id)
            .finish_non_exhaustive()
    }
}

impl Producer for KafkaTransactionalProducer {
    fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        self.require_transaction("send")?;
        let core = self.core();
        core.send(record).map_err(|e| self.fenced_or(&core, e))
    }

    /// Without a delivery future per record: a failed delivery fails the transaction's commit
    /// (librdkafka refuses to commit a transaction with an undelivered record).
    fn send_detached(&self, record: ProducerRecord) -> Result<()> {
        self.require_transaction("send")?;
        let core = self.core();
        core.enqueue(record, None)
            .map_err(|e| self.fenced_or(&core, e))
    }

    fn flush(&self, timeout: Duration) -> Result<()> {
        self.core().flush(timeout)
    }
}

impl KafkaTransactionalProducer {
    /// A send error as `ProducerFenced` when the producer was fenced, else as it is.
    fn fenced_or(&self, core: &ProducerCore, e: LogError) -> LogError {
        match e {
            LogError::Backend { .. } => {
                if let Some((code, _)) = core.producer.client().fatal_error()
                    && error::is_fenced(code)
                {
                    return LogError::ProducerFenced {
                        transactional_id: self.transactional_id.clone(),
                    };
                }
                e
            }
            other => other,
        }
    }
}

impl TransactionalProducer for KafkaTransactionalProducer {
    fn begin(&self) -> Result<()> {
        if self.wedged.load(Ordering::Acquire) {
            self.replace()?;
        }
        self.fenced()?;
        if self.in_transaction.load(Ordering::Acquire) {
            return Err(LogError::TransactionState {
                operation: "begin",
                state: "a transaction is already in progress",
            });
        }
        let core = self.core();
        // A detached failure of an aborted transaction is no news for this one.
        let _ = core.producer.context().take_detached_failure();
        core.producer
            .begin_transaction()
            .map_err(|e| self.txn_error("begin transaction", e))?;
        self.in_transaction.store(true, Ordering::Release);
        Ok(())
    }

    fn send_offsets(
        &self,
        offsets: &[(TopicPartition, Offset)],
        group: &GroupMetadata,
    ) -> Result<()> {
        self.require_transaction("send offsets")?;
        let backend = group
            .backend
            .clone()
            .filter(|b| b.downcast_ref::<ConsumerGroupMetadata>().is_some())
            .ok_or_else(|| LogError::Backend {
                operation: "send offsets",
                code: None,
                message: format!(
                    "the group metadata of group '{}' does not come from a Kafka consumer",
                    group.group_id
                ),
                class: ErrorClass::InvalidInput,
            })?;
        let tpl = offsets_list(offsets)?;
        let core = self.core();
        let timeout = core.timeout;
        let (answer, answered) = mpsc::sync_channel(1);
        let call = move || {
            if let Some(metadata) = backend.downcast_ref::<ConsumerGroupMetadata>() {
                let result = core
                    .producer
                    .send_offsets_to_transaction(&tpl, metadata, timeout);
                // The caller may have given up waiting: nobody to tell then.
                let _ = answer.send(result);
            }
        };
        thread::Builder::new()
            .name("rill-txn-offsets".into())
            .spawn(call)
            .map_err(|e| LogError::Backend {
                operation: "send offsets",
                code: None,
                message: format!("starting the thread that sends offsets: {e}"),
                class: ErrorClass::Retriable,
            })?;
        match answered.recv_timeout(timeout + WEDGED_GRACE) {
            Ok(result) => result.map_err(|e| self.txn_error("send offsets", e)),
            Err(_) => {
                if let Err(error) = self.replace() {
                    tracing::warn!(
                        transactional_id = %self.transactional_id,
                        %error,
                        "a transactional producer stuck in send_offsets_to_transaction could \
                         not be replaced yet"
                    );
                }
                Err(LogError::Timeout {
                    operation: "send offsets",
                    after: timeout,
                })
            }
        }
    }

    fn commit(&self) -> Result<()> {
        self.require_transaction("commit")?;
        let core = self.core();
        core.producer
            .commit_transaction(core.timeout)
            .map_err(|e| self.txn_error("commit transaction", e))?;
        self.in_transaction.store(false, Ordering::Release);
        Ok(())
    }

    fn abort(&self) -> Result<()> {
        self.require_transaction("abort")?;
        let core = self.core();
        core.producer
            .abort_transaction(core.timeout)
            .map_err(|e| self.txn_error("abort transaction", e))?;
        self.in_transaction.store(false, Ordering::Release);
        Ok(())
    }

    fn transactional_id(&self) -> &str {
        &self.transactional_id
    }
}

/// A partition list with offsets, for commits.
pub(crate) fn offsets_list(offsets: &[(TopicPartition, Offset)]) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(offsets.len());
    for (tp, offset) in offsets {
        tpl.add_partition_offset(&tp.topic, tp.partition, KafkaOffset::Offset(*offset))
            .map_err(|e| error::map("build offset list", e, &Ctx::topic(&tp.topic)))?;
    }
    Ok(tpl)
}
