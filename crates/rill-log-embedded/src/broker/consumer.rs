//! The consumer: group membership driven from `poll` (rebalance callbacks run there, on the
//! polling thread), or a manual assignment; positions, reset policy, commits.

use std::collections::{BTreeSet, HashMap};
use std::mem;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rill_log::{
    ConsumedRecord, Consumer, ConsumerConfig, GroupMetadata, LogError, Offset, OffsetReset,
    RebalanceListener, Result, SeekTo, TopicPartition, Watermarks,
};

use super::group::{Group, Sync};
use super::state::{Inner, STABLE_OFFSETS_WAIT, Wake};
use super::topics::Partition;

/// Kafka's default `session.timeout.ms`.
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(45);
/// Kafka's default `max.poll.records`.
const DEFAULT_MAX_POLL_RECORDS: usize = 500;
/// Bytes of batches read per partition per poll.
const FETCH_BYTES: usize = 1 << 20;

enum Mode {
    /// Neither subscribed nor assigned.
    Idle,
    /// A group member; `member` is `None` after removal, until the next poll rejoins.
    Subscribed {
        topics: Vec<String>,
        member: Option<String>,
    },
    /// A manual assignment.
    Assigned,
}

struct State {
    mode: Mode,
    assignment: BTreeSet<TopicPartition>,
    /// Next offset to read; absent until the first fetch resolves it (committed, else reset).
    positions: HashMap<TopicPartition, Offset>,
    /// Generation of the group when this member last synced with it.
    generation: i32,
    /// Partition to start the next fetch from, so one busy partition cannot starve others.
    next_start: usize,
    /// Assigned partitions `poll` skips until resumed.
    paused: BTreeSet<TopicPartition>,
    /// A rebalance of this member whose end `on_assigned` has not reported yet (the rounds of
    /// one poll ran out first).
    unreported_rebalance: bool,
}

impl State {
    /// Fails with `NotAssigned` for the first of `partitions` not assigned.
    fn require_assigned(&self, partitions: &[TopicPartition]) -> Result<()> {
        match partitions.iter().find(|tp| !self.assignment.contains(*tp)) {
            Some(partition) => Err(LogError::NotAssigned {
                partition: partition.clone(),
            }),
            None => Ok(()),
        }
    }
}

pub(crate) struct EmbeddedConsumer {
    inner: Arc<Inner>,
    config: ConsumerConfig,
    group: Option<Arc<Group>>,
    state: Mutex<State>,
    /// Taken out while a callback runs, so the callback may use the consumer.
    listener: Mutex<Option<Box<dyn RebalanceListener>>>,
    closed: AtomicBool,
    /// What `poll` waits on.
    wake: Arc<Wake>,
    /// The topics `wake` hears about: those of the assignment at the last poll.
    interest: Mutex<Vec<String>>,
}

impl EmbeddedConsumer {
    pub(crate) fn new(
        inner: Arc<Inner>,
        config: &ConsumerConfig,
        listener: Option<Box<dyn RebalanceListener>>,
    ) -> Result<Self> {
        inner.check_open()?;
        let group = config.group_id.as_deref().map(|id| inner.group(id));
        Ok(Self {
            config: config.clone(),
            group,
            state: Mutex::new(State {
                mode: Mode::Idle,
                assignment: BTreeSet::new(),
                positions: HashMap::new(),
                generation: -1,
                next_start: 0,
                unreported_rebalance: false,
                paused: BTreeSet::new(),
            }),
            listener: Mutex::new(listener),
            closed: AtomicBool::new(false),
            wake: inner.notifier.register(),
            interest: Mutex::new(Vec::new()),
            inner,
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed { what: "consumer" });
        }
        self.inner.check_open()
    }

    fn require_group(&self, operation: &'static str) -> Result<&Arc<Group>> {
        self.group.as_ref().ok_or(LogError::NoGroup { operation })
    }

    fn group_id(&self) -> &str {
        self.config.group_id.as_deref().unwrap_or("")
    }

    fn session_timeout(&self) -> Duration {
        self.config
            .session_timeout
            .unwrap_or(DEFAULT_SESSION_TIMEOUT)
    }

    /// How often a waiting poll wakes to heartbeat, well within the session timeout.
    fn heartbeat(&self) -> Duration {
        (self.session_timeout() / 3).clamp(Duration::from_millis(5), Duration::from_secs(1))
    }

    fn topic_info(&self) -> impl Fn(&str) -> Option<(u64, i32)> + '_ {
        |topic: &str| {
            self.inner
                .topics
                .read()
                .get(topic)
                .map(|t| (t.uid(), t.config.partitions))
        }
    }

    fn client_id(&self) -> &str {
        self.config.client_id.as_deref().unwrap_or("consumer")
    }

    fn with_listener(&self, call: impl FnOnce(&mut dyn RebalanceListener, &dyn Consumer)) {
        let taken = self.listener.lock().take();
        if let Some(mut listener) = taken {
            call(listener.as_mut(), self);
            let mut slot = self.listener.lock();
            if slot.is_none() {
                *slot = Some(listener);
            }
        }
    }

    /// Moves this member toward its target assignment, running the listener: revocations
    /// first (acknowledged once `on_revoked` returns), then assignments.
    fn handle_group(&self) -> Result<()> {
        let Some(group) = &self.group else {
            return Ok(());
        };
        let info = self.topic_info();
        // Whether this call ends a rebalance of this member (a new generation, or partitions
        // revoked), which `on_assigned` reports even when nothing is added.
        let mut rebalanced = mem::take(&mut self.state.lock().unreported_rebalance);
        // Bounded: a round either revokes, gets removed and rejoins, or finishes.
        for _ in 0..4 {
            let member = {
                let mut state = self.state.lock();
                let State {
                    mode, generation, ..
                } = &mut *state;
                match mode {
                    Mode::Subscribed {
                        member: Some(m), ..
                    } => m.clone(),
                    Mode::Subscribed { topics, member } => {
                        // Removed earlier: join again, as a Kafka consumer does.
                        let id = group.join(
                            self.client_id(),
                            topics,
                            self.session_timeout(),
                            self.config.assignment,
                            &info,
                        );
                        *member = Some(id.clone());
                        *generation = -1;
                        self.inner.notifier.bump();
                        id
                    }
                    _ => return Ok(()),
                }
            };
            match group.sync(&member, &info) {
                Sync::Removed => {
                    let lost: Vec<TopicPartition> = {
                        let mut state = self.state.lock();
                        if let Mode::Subscribed { member: m, .. } = &mut state.mode {
                            *m = None;
                        }
                        state.generation = -1;
                        let lost: Vec<_> =
                            std::mem::take(&mut state.assignment).into_iter().collect();
                        for tp in &lost {
                            state.positions.remove(tp);
                            state.paused.remove(tp);
                        }
                        lost
                    };
                    tracing::info!(
                        group = self.group_id(),
                        member,
                        "member was removed from its group"
                    );
                    if !lost.is_empty() {
                        self.with_listener(|l, c| l.on_lost(c, &lost));
                    }
                }
                Sync::Active {
                    generation,
                    revoke,
                    assign,
                    changed,
                } => {
                    if changed {
                        self.inner.notifier.bump();
                    }
                    {
                        let mut state = self.state.lock();
                        rebalanced |= state.generation != generation;
                        state.generation = generation;
                    }
                    if !revoke.is_empty() {
                        rebalanced = true;
                        // Still owned while the listener runs, so it can commit them.
                        self.with_listener(|l, c| l.on_revoked(c, &revoke));
                        {
                            let mut state = self.state.lock();
                            for tp in &revoke {
                                state.assignment.remove(tp);
                                state.positions.remove(tp);
                                state.paused.remove(tp);
                            }
                        }
                        group.ack_revoked(&member, &revoke);
                        self.inner.notifier.bump();
                        continue;
                    }
                    // Reported at the end of each rebalance even when empty: the member
                    // learns the rebalance is over.
                    if rebalanced || !assign.is_empty() {
                        self.state.lock().assignment.extend(assign.iter().cloned());
                        self.with_listener(|l, c| l.on_assigned(c, &assign));
                    }
                    return Ok(());
                }
            }
        }
        // The next poll goes on and reports it.
        self.state.lock().unreported_rebalance = rebalanced;
        Ok(())
    }

    fn reset(
        &self,
        tp: &TopicPartition,
        offset: Offset,
        low: Offset,
        high: Offset,
    ) -> Result<Offset> {
        match self.config.offset_reset {
            OffsetReset::Earliest => Ok(low),
            OffsetReset::Latest => Ok(high),
            OffsetReset::None => Err(LogError::OffsetOutOfRange {
                partition: tp.clone(),
                offset,
                low,
                high,
            }),
        }
    }

    /// The position of an assigned partition: as set, else the committed offset, else per the
    /// reset policy; and reset per the policy when outside the partition's records.
    fn resolve_position(
        &self,
        state: &mut State,
        tp: &TopicPartition,
        partition: &Partition,
    ) -> Result<Offset> {
        let low = partition.log.start_offset();
        let high = partition.visible_end();
        let pos = match state.positions.get(tp) {
            Some(pos) => *pos,
            None => match self
                .config
                .group_id
                .as_deref()
                .and_then(|g| self.inner.committed_offset(g, tp))
            {
                Some(committed) => committed,
                None => self.reset(tp, -1, low, high)?,
            },
        };
        let pos = if pos < low || pos > high {
            self.reset(tp, pos, low, high)?
        } else {
            pos
        };
        state.positions.insert(tp.clone(), pos);
        Ok(pos)
    }

    fn fetch(&self) -> Result<Vec<ConsumedRecord>> {
        let mut state = self.state.lock();
        let parts: Vec<TopicPartition> = state.assignment.iter().cloned().collect();
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let start = state.next_start % parts.len();
        state.next_start = state.next_start.wrapping_add(1);
        let max = self
            .config
            .max_poll_records
            .unwrap_or(DEFAULT_MAX_POLL_RECORDS)
            .max(1);
        let mut out = Vec::new();
        for i in 0..parts.len() {
            if out.len() >= max {
                break;
            }
            let tp = &parts[(start + i) % parts.len()];
            if state.paused.contains(tp) {
                continue;
            }
            // A deleted topic's partitions are revoked by the group; until then, skip them.
            let Ok(partition) = self.inner.partition(tp) else {
                continue;
            };
            let pos = self.resolve_position(&mut state, tp, &partition)?;
            let end = partition.visible_end();
            if pos >= end {
                continue;
            }
            let room = max - out.len();
            let mut batch = partition.log.read_records(pos, end, FETCH_BYTES, room)?;
            let next = batch.next_offset;
            state.positions.insert(tp.clone(), next.max(pos));
            out.append(&mut batch.records);
        }
        Ok(out)
    }

    /// Makes records of the assigned topics wake this consumer (and no others), before they
    /// are read.
    fn follow_assignment(&self) {
        let state = self.state.lock();
        let mut interest = self.interest.lock();
        // The assignment is sorted by topic, so each topic's partitions are together.
        let mut topics = state
            .assignment
            .iter()
            .map(|tp| tp.topic.as_str())
            .collect::<Vec<_>>();
        topics.dedup();
        if topics
            .iter()
            .copied()
            .eq(interest.iter().map(String::as_str))
        {
            return;
        }
        *interest = topics.into_iter().map(str::to_string).collect();
        self.inner.notifier.set_topics(&self.wake, interest.clone());
    }

    /// Revokes what this member owns through the listener and leaves the group.
    fn leave_group(&self) {
        let Some(group) = &self.group else {
            return;
        };
        let (member, owned) = {
            let state = self.state.lock();
            match &state.mode {
                Mode::Subscribed {
                    member: Some(m), ..
                } => (
                    m.clone(),
                    state.assignment.iter().cloned().collect::<Vec<_>>(),
                ),
                _ => return,
            }
        };
        if !owned.is_empty() {
            self.with_listener(|l, c| l.on_revoked(c, &owned));
        }
        {
            let mut state = self.state.lock();
            state.mode = Mode::Idle;
            state.assignment.clear();
            state.positions.clear();
            state.paused.clear();
            state.generation = -1;
        }
        group.leave(&member, &self.topic_info());
        self.inner.notifier.bump();
    }
}

impl Consumer for EmbeddedConsumer {
    fn subscribe(&self, topics: &[String]) -> Result<()> {
        self.check_open()?;
        let group = self.require_group("subscribe")?;
        if topics.is_empty() {
            self.leave_group();
            self.state.lock().mode = Mode::Idle;
            return Ok(());
        }
        let info = self.topic_info();
        let mut state = self.state.lock();
        let member = match &state.mode {
            Mode::Subscribed {
                member: Some(m), ..
            } if group.resubscribe(m, topics, &info) => Some(m.clone()),
            Mode::Subscribed { .. } => None,
            Mode::Idle | Mode::Assigned => {
                state.assignment.clear();
                state.positions.clear();
                state.paused.clear();
                None
            }
        };
        // Join at once rather than at the first poll, so the group starts moving partitions.
        let member = member.unwrap_or_else(|| {
            group.join(
                self.client_id(),
                topics,
                self.session_timeout(),
                self.config.assignment,
                &info,
            )
        });
        state.mode = Mode::Subscribed {
            topics: topics.to_vec(),
            member: Some(member),
        };
        drop(state);
        self.inner.notifier.bump();
        Ok(())
    }

    fn assign(&self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        for tp in partitions {
            self.inner.partition(tp)?;
        }
        self.leave_group();
        let mut state = self.state.lock();
        state.mode = Mode::Assigned;
        state.assignment = partitions.iter().cloned().collect();
        let State {
            assignment,
            positions,
            paused,
            ..
        } = &mut *state;
        positions.retain(|tp, _| assignment.contains(tp));
        paused.retain(|tp| assignment.contains(tp));
        Ok(())
    }

    fn assignment(&self) -> Result<Vec<TopicPartition>> {
        self.check_open()?;
        Ok(self.state.lock().assignment.iter().cloned().collect())
    }

    fn poll(&self, timeout: Duration) -> Result<Vec<ConsumedRecord>> {
        self.check_open()?;
        let start = Instant::now();
        let deadline = start
            .checked_add(timeout)
            .unwrap_or_else(|| start + Duration::from_secs(365 * 24 * 3600));
        loop {
            // Read before looking for work, so a change made while we look wakes the wait.
            let seen = self.wake.current();
            self.handle_group()?;
            self.follow_assignment();
            let records = self.fetch()?;
            if !records.is_empty() {
                return Ok(records);
            }
            self.check_open()?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            self.wake
                .wait_past(seen, deadline.min(now + self.heartbeat()));
        }
    }

    fn pause(&self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        let mut state = self.state.lock();
        state.require_assigned(partitions)?;
        state.paused.extend(partitions.iter().cloned());
        Ok(())
    }

    fn resume(&self, partitions: &[TopicPartition]) -> Result<()> {
        self.check_open()?;
        let mut state = self.state.lock();
        state.require_assigned(partitions)?;
        for tp in partitions {
            state.paused.remove(tp);
        }
        Ok(())
    }

    fn seek(&self, partition: &TopicPartition, to: SeekTo) -> Result<()> {
        self.check_open()?;
        let mut state = self.state.lock();
        if !state.assignment.contains(partition) {
            return Err(LogError::NotAssigned {
                partition: partition.clone(),
            });
        }
        let part = self.inner.partition(partition)?;
        let end = part.visible_end();
        let pos = match to {
            SeekTo::Beginning => part.log.start_offset(),
            SeekTo::End => end,
            SeekTo::Offset(offset) => offset,
            SeekTo::Timestamp(ts) => part
                .log
                .offset_for_timestamp(ts)?
                .map_or(end, |o| o.min(end)),
        };
        state.positions.insert(partition.clone(), pos);
        Ok(())
    }

    fn position(&self, partition: &TopicPartition) -> Result<Offset> {
        self.check_open()?;
        let mut state = self.state.lock();
        if !state.assignment.contains(partition) {
            return Err(LogError::NotAssigned {
                partition: partition.clone(),
            });
        }
        let part = self.inner.partition(partition)?;
        self.resolve_position(&mut state, partition, &part)
    }

    fn known_lag(&self, partition: &TopicPartition) -> Option<i64> {
        // The log is in this process: its visible end is known without a request.
        let part = self.inner.partition(partition).ok()?;
        let mut state = self.state.lock();
        if !state.assignment.contains(partition) {
            return None;
        }
        let position = self.resolve_position(&mut state, partition, &part).ok()?;
        Some((part.visible_end() - position).max(0))
    }

    fn commit(&self, offsets: &[(TopicPartition, Offset)]) -> Result<()> {
        self.check_open()?;
        let group = self.require_group("commit")?;
        for (tp, _) in offsets {
            self.inner.partition(tp)?;
        }
        let member = match &self.state.lock().mode {
            Mode::Subscribed { member, .. } => Some(member.clone()),
            _ => None,
        };
        let commit = || self.inner.commit_offsets(self.group_id(), offsets);
        match member {
            Some(Some(member)) => {
                let tps: Vec<TopicPartition> = offsets.iter().map(|(tp, _)| tp.clone()).collect();
                group.commit_owned(&member, &tps, commit)
            }
            Some(None) => Err(LogError::CommitRejected {
                group: self.group_id().to_string(),
                reason: "this member was removed from the group (session timeout); \
                         its partitions were reassigned"
                    .to_string(),
            }),
            None => commit(),
        }
    }

    fn committed(&self, partitions: &[TopicPartition]) -> Result<Vec<Option<Offset>>> {
        self.check_open()?;
        self.require_group("committed")?;
        self.inner
            .await_stable_offsets(self.group_id(), partitions, STABLE_OFFSETS_WAIT)?;
        Ok(partitions
            .iter()
            .map(|tp| self.inner.committed_offset(self.group_id(), tp))
            .collect())
    }

    fn watermarks(&self, partition: &TopicPartition) -> Result<Watermarks> {
        self.check_open()?;
        let part = self.inner.partition(partition)?;
        Ok(Watermarks {
            low: part.log.start_offset(),
            high: part.visible_end(),
        })
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        let group_id = self.config.group_id.clone()?;
        let state = self.state.lock();
        let (generation, member_id) = match &state.mode {
            Mode::Subscribed {
                member: Some(m), ..
            } => (state.generation, m.clone()),
            _ => (-1, String::new()),
        };
        Some(GroupMetadata {
            group_id,
            generation,
            member_id,
            backend: None,
        })
    }

    fn close(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        // Before marking closed: the listener may still commit what it processed.
        self.leave_group();
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}

impl Drop for EmbeddedConsumer {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
