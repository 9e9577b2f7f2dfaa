//! Helpers shared by the integration tests.
#![allow(dead_code, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rill_log::{ConsumedRecord, Consumer, RebalanceListener, TopicPartition};

/// A unique name per call, so tests sharing a broker do not see each other's topics.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000
    )
}

/// Polls until `count` records arrived or `within` passed.
pub fn poll_until(consumer: &dyn Consumer, count: usize, within: Duration) -> Vec<ConsumedRecord> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < count && Instant::now() < deadline {
        out.extend(consumer.poll(Duration::from_millis(200)).expect("poll"));
    }
    out
}

/// Polls for `within`, collecting everything.
pub fn poll_for(consumer: &dyn Consumer, within: Duration) -> Vec<ConsumedRecord> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while Instant::now() < deadline {
        out.extend(consumer.poll(Duration::from_millis(100)).expect("poll"));
    }
    out
}

/// What a [`Recorder`] heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Assigned(Vec<TopicPartition>),
    Revoked(Vec<TopicPartition>),
    Lost(Vec<TopicPartition>),
    /// Result of the commit made from inside `on_revoked`.
    CommitInRevoke(bool),
}

/// A listener that records events and commits the revoked partitions' positions from inside
/// `on_revoked`, as a streams runtime would.
pub struct Recorder {
    pub events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    pub fn new() -> (Self, Arc<Mutex<Vec<Event>>>) {
        let events = Arc::new(Mutex::new(Vec::new()));
        (
            Self {
                events: events.clone(),
            },
            events,
        )
    }
}

impl RebalanceListener for Recorder {
    fn on_assigned(&mut self, consumer: &dyn Consumer, partitions: &[TopicPartition]) {
        // Positions of newly assigned partitions are readable from inside the callback.
        for tp in partitions {
            let _ = consumer.position(tp);
        }
        self.events
            .lock()
            .expect("events")
            .push(Event::Assigned(partitions.to_vec()));
    }

    fn on_revoked(&mut self, consumer: &dyn Consumer, partitions: &[TopicPartition]) {
        let offsets: Vec<_> = partitions
            .iter()
            .filter_map(|tp| consumer.position(tp).ok().map(|o| (tp.clone(), o)))
            .collect();
        let result = consumer.commit(&offsets);
        if let Err(e) = &result {
            eprintln!("commit from on_revoked failed: {e:?}");
        }
        let ok = result.is_ok();
        let mut events = self.events.lock().expect("events");
        events.push(Event::Revoked(partitions.to_vec()));
        events.push(Event::CommitInRevoke(ok));
    }

    fn on_lost(&mut self, _consumer: &dyn Consumer, partitions: &[TopicPartition]) {
        self.events
            .lock()
            .expect("events")
            .push(Event::Lost(partitions.to_vec()));
    }
}

/// The partitions currently held according to the recorded events.
pub fn held(events: &[Event]) -> Vec<TopicPartition> {
    let mut held: Vec<TopicPartition> = Vec::new();
    for event in events {
        match event {
            Event::Assigned(p) => held.extend(p.iter().cloned()),
            Event::Revoked(p) | Event::Lost(p) => held.retain(|tp| !p.contains(tp)),
            Event::CommitInRevoke(_) => {}
        }
    }
    held.sort();
    held
}

/// Polls both members until each holds `each` partitions by its recorded events, or fails
/// after `within` naming what each holds.
pub fn poll_until_split(
    first: &dyn Consumer,
    first_events: &Mutex<Vec<Event>>,
    second: &dyn Consumer,
    second_events: &Mutex<Vec<Event>>,
    each: usize,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        let _ = first.poll(Duration::from_millis(100)).expect("poll");
        let _ = second.poll(Duration::from_millis(100)).expect("poll");
        let a = held(&first_events.lock().expect("events"));
        let b = held(&second_events.lock().expect("events"));
        if a.len() == each && b.len() == each {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "partitions split {each}/{each}: {a:?} / {b:?}"
        );
    }
}
