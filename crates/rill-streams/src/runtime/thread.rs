//! A stream thread: one group member that polls, processes, punctuates and commits.
//!
//! Rebalance notifications arrive inside `poll`, on this thread, through the consumer's
//! listener. Tasks hold `Rc` state and never leave their thread, so the listener reaches them
//! through a thread-local rather than owning them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rill_log::{
    AssignmentStrategy, Consumer, ConsumerConfig, IsolationLevel, Log, OffsetReset, ProducerConfig,
    RebalanceListener, TopicPartition,
};

use crate::error::{Result, StreamsError};
use crate::graph::Topology;
use crate::store::KeyValueBytesStore;

use super::collector::{ProducerCollector, ThreadProducer};
use super::config::{FaultPoint, ProcessingGuarantee, StreamsConfig};
use super::shared::Shared;
use super::tasks::ThreadTasks;

thread_local! {
    static TASKS: RefCell<Option<ThreadTasks>> = const { RefCell::new(None) };
}

fn with_tasks<R>(f: impl FnOnce(&mut ThreadTasks) -> Result<R>) -> Result<R> {
    TASKS.with(|cell| match cell.borrow_mut().as_mut() {
        Some(tasks) => f(tasks),
        None => Err(StreamsError::NotRunning {
            state: "without tasks on this thread",
        }),
    })
}

/// One stream thread's part in the application's [`Lifecycle`](super::lifecycle::Lifecycle): counted as rebalancing at most once, from
/// its start (counted by whoever starts it) until its first assignment, and again from each
/// revocation until the next assignment.
pub(crate) struct ThreadSettling {
    pub shared: Arc<Shared>,
    rebalancing: AtomicBool,
}

impl ThreadSettling {
    /// For a thread already counted as rebalancing.
    pub fn new(shared: Arc<Shared>) -> Self {
        ThreadSettling {
            shared,
            rebalancing: AtomicBool::new(true),
        }
    }

    pub fn rebalancing(&self) {
        if !self.rebalancing.swap(true, Ordering::AcqRel) {
            self.shared.lifecycle.thread_rebalancing();
        }
    }

    pub fn settled(&self) {
        if self.rebalancing.swap(false, Ordering::AcqRel) {
            self.shared.lifecycle.thread_settled();
        }
    }
}

/// Hands rebalance notifications to this thread's tasks; a failure is kept for the loop.
struct TaskListener {
    shared: Arc<Shared>,
    settling: Arc<ThreadSettling>,
}

impl TaskListener {
    fn record(&self, result: Result<()>) {
        if let Err(error) = result {
            self.shared.listener_errors.lock().push(error);
        }
    }
}

impl RebalanceListener for TaskListener {
    fn on_assigned(&mut self, consumer: &dyn Consumer, partitions: &[TopicPartition]) {
        // Called at the end of every rebalance, also with nothing new: the thread has its
        // tasks (and their stores restored) once this returns.
        self.settling.rebalancing();
        self.record(with_tasks(|tasks| tasks.assigned(consumer, partitions)));
        self.settling.settled();
    }

    fn on_revoked(&mut self, consumer: &dyn Consumer, partitions: &[TopicPartition]) {
        self.settling.rebalancing();
        self.record(with_tasks(|tasks| tasks.revoked(consumer, partitions)));
    }

    fn on_lost(&mut self, consumer: &dyn Consumer, partitions: &[TopicPartition]) {
        self.settling.rebalancing();
        self.record(with_tasks(|tasks| tasks.reset(consumer, partitions)));
    }
}

/// Everything a stream thread is started with (cloned for each replacement of a failed one).
#[derive(Clone)]
pub(crate) struct ThreadSetup {
    pub index: usize,
    pub log: Arc<dyn Log>,
    pub topology: Arc<Topology>,
    pub config: Arc<StreamsConfig>,
    pub shared: Arc<Shared>,
    pub globals: HashMap<String, Arc<dyn KeyValueBytesStore>>,
}

/// Runs a stream thread until the application stops; returns the error that stopped it.
pub(crate) fn run(setup: ThreadSetup, settling: Arc<ThreadSettling>) -> Result<()> {
    let ThreadSetup {
        index,
        log,
        topology,
        config,
        shared,
        globals,
    } = setup;
    let client = format!(
        "{}-{}-thread-{index}",
        config.application_id, shared.instance_id
    );
    let producer = match config.guarantee {
        ProcessingGuarantee::ExactlyOnce => ThreadProducer::Transactional {
            producer: log
                .transactional_producer(&ProducerConfig::default(), &client)
                .map_err(|e| StreamsError::log("creating the transactional producer", e))?,
            open: false,
        },
        ProcessingGuarantee::AtLeastOnce => ThreadProducer::Plain {
            producer: log
                .producer(&ProducerConfig::default())
                .map_err(|e| StreamsError::log("creating the producer", e))?,
            pending: Vec::new(),
        },
    };
    let collector = Rc::new(RefCell::new(ProducerCollector {
        producer,
        sent: HashMap::new(),
        log: log.clone(),
        partition_counts: HashMap::new(),
    }));
    TASKS.with(|cell| {
        *cell.borrow_mut() = Some(ThreadTasks::new(
            index,
            log.clone(),
            topology.clone(),
            config.clone(),
            shared.clone(),
            globals,
            collector,
        ));
    });
    let consumer_config = ConsumerConfig {
        group_id: Some(config.application_id.clone()),
        client_id: Some(client),
        isolation: IsolationLevel::ReadCommitted,
        offset_reset: OffsetReset::Earliest,
        max_poll_records: Some(config.max_poll_records),
        assignment: AssignmentStrategy::CoPartitioned,
        ..ConsumerConfig::default()
    };
    let listener = Box::new(TaskListener {
        shared: shared.clone(),
        settling,
    });
    let consumer = log
        .consumer(&consumer_config, Some(listener))
        .map_err(|e| StreamsError::log("creating the consumer", e))?;
    let mut topics: Vec<String> = (0..topology.subtopologies().len())
        .flat_map(|sub| topology.source_topics(sub, &config.application_id))
        .collect();
    topics.sort();
    topics.dedup();
    consumer
        .subscribe(&topics)
        .map_err(|e| StreamsError::log("subscribing", e))?;

    let result = run_loop(consumer.as_ref(), &config, &shared);
    let clean = result.is_ok();
    let closed = with_tasks(|tasks| tasks.close(consumer.as_ref(), clean));
    // Leaving the group revokes what is left; the tasks are closed already.
    let left = consumer
        .close()
        .map_err(|e| StreamsError::log("leaving the group", e));
    TASKS.with(|cell| cell.borrow_mut().take());
    result.and(closed).and(left)
}

/// Asks the test hook whether to die at `point`.
fn fault(config: &StreamsConfig, point: FaultPoint) -> Result<()> {
    match &config.fault_injector {
        Some(inject) if inject(point) => Err(StreamsError::NotRunning {
            state: "stopped by an injected fault",
        }),
        _ => Ok(()),
    }
}

fn run_loop(consumer: &dyn Consumer, config: &StreamsConfig, shared: &Shared) -> Result<()> {
    let mut last_commit = Instant::now();
    let mut pending = false;
    while shared.running.load(Ordering::Acquire) {
        // With work to commit, only look for more input that is already there.
        let timeout = if pending && config.commit_when_caught_up {
            Duration::ZERO
        } else {
            config.poll_timeout
        };
        let records = consumer
            .poll(timeout)
            .map_err(|e| StreamsError::log("polling", e))?;
        let caught_up = records.is_empty();
        crate::runtime::metrics::consumed(&shared.application_id, &records);
        let listener_errors: Vec<StreamsError> = shared.listener_errors.lock().drain(..).collect();
        if let Some(error) = listener_errors.into_iter().next() {
            recover_or_fail(consumer, error)?;
            continue;
        }
        let step = with_tasks(|tasks| {
            tasks.add_records(records);
            let started = Instant::now();
            let processed = tasks.process(consumer)?;
            if processed > 0 {
                crate::runtime::metrics::processed(&shared.application_id, started.elapsed());
            }
            shared
                .records_processed
                .fetch_add(processed, Ordering::Relaxed);
            tasks.bound_buffers(consumer)?;
            tasks.punctuate()?;
            fault(config, FaultPoint::AfterProcess)?;
            pending = tasks.has_pending_work();
            let due = last_commit.elapsed() >= config.commit_interval;
            let idle = caught_up && config.commit_when_caught_up;
            if pending && (due || idle) {
                tasks.flush_caches()?;
                fault(config, FaultPoint::BeforeCommit)?;
                let started = Instant::now();
                tasks.commit(consumer)?;
                crate::runtime::metrics::committed(&shared.application_id, started.elapsed());
                fault(config, FaultPoint::AfterCommit)?;
                last_commit = Instant::now();
                pending = false;
            }
            Ok(())
        });
        if let Err(error) = step {
            recover_or_fail(consumer, error)?;
        }
    }
    Ok(())
}

/// Rebuilds the thread's tasks after an error that means lost ownership or a transient
/// failure; other errors stop it.
fn recover_or_fail(consumer: &dyn Consumer, error: StreamsError) -> Result<()> {
    if ThreadTasks::is_recoverable(&error) {
        tracing::warn!(%error, class = ?error.class(), "rebuilding tasks from their last commit");
        with_tasks(|tasks| tasks.reset(consumer, &[]))
    } else {
        Err(error)
    }
}
