//! Window specifications: how records are grouped in time (or by count, or by marker events)
//! for windowed aggregations and stream-stream joins. Each is a small value built with
//! chained calls; [`KGroupedStream::windowed_by`](crate::KGroupedStream::windowed_by) takes
//! any of the aggregation kinds.
//!
//! Grace periods default to zero: a record is late, dropped and counted in
//! [`TaskMetrics::late_records_dropped`](crate::TaskMetrics::late_records_dropped), once
//! stream time has passed the end of every window it would belong to.

use std::sync::Arc;
use std::time::Duration;

/// Milliseconds of a duration, saturating.
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Fixed-size time windows, `[start, start + size)`, aligned to the epoch: tumbling (a new
/// window every `size`) or hopping (a new window every `advance`, so windows overlap).
///
/// ```
/// use rill_streams::TimeWindows;
/// use std::time::Duration;
/// let tumbling = TimeWindows::of(Duration::from_secs(60));
/// let hopping = TimeWindows::of(Duration::from_secs(60))
///     .advance_by(Duration::from_secs(10))
///     .grace(Duration::from_secs(5));
/// # let _ = (tumbling, hopping);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    pub(crate) size: i64,
    pub(crate) advance: i64,
    pub(crate) grace: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size`.
    pub fn of(size: Duration) -> Self {
        let size = millis(size);
        TimeWindows {
            size,
            advance: size,
            grace: 0,
        }
    }

    /// Hopping windows: a new window starts every `advance` (at most the size).
    pub fn advance_by(mut self, advance: Duration) -> Self {
        self.advance = millis(advance);
        self
    }

    /// How long after a window's end records are still accepted.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = millis(grace);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.size <= 0 || self.advance <= 0 || self.advance > self.size {
            return Err(format!(
                "time windows need 0 < advance <= size (size {} ms, advance {} ms)",
                self.size, self.advance
            ));
        }
        Ok(())
    }
}

/// Sliding windows: every window of `difference` length (both ends inclusive) whose content
/// differs, i.e. the windows ending at each record and starting just after each record. Two
/// records fall in a common window when their timestamps differ by at most `difference`.
///
/// ```
/// use rill_streams::SlidingWindows;
/// use std::time::Duration;
/// let windows = SlidingWindows::with_time_difference(Duration::from_secs(10))
///     .grace(Duration::from_secs(2));
/// # let _ = windows;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    pub(crate) difference: i64,
    pub(crate) grace: i64,
}

impl SlidingWindows {
    /// Windows of length `difference`.
    pub fn with_time_difference(difference: Duration) -> Self {
        SlidingWindows {
            difference: millis(difference),
            grace: 0,
        }
    }

    /// How long after a window's end records are still accepted.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = millis(grace);
        self
    }
}

/// Session windows: a key's records belong to one session while each follows the previous
/// within the inactivity `gap`; a record filling the gap between two sessions merges them.
/// Sessions are `[first record, last record]`, both inclusive.
///
/// ```
/// use rill_streams::SessionWindows;
/// use std::time::Duration;
/// let sessions = SessionWindows::with_inactivity_gap(Duration::from_secs(300))
///     .grace(Duration::from_secs(30));
/// # let _ = sessions;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    pub(crate) gap: i64,
    pub(crate) grace: i64,
}

impl SessionWindows {
    /// Sessions closed by `gap` of inactivity.
    pub fn with_inactivity_gap(gap: Duration) -> Self {
        SessionWindows {
            gap: millis(gap),
            grace: 0,
        }
    }

    /// How long after a session's end records are still accepted.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = millis(grace);
        self
    }
}

/// Count windows: every `size` events of a key form a window; with `advance_by(m)` a new
/// window starts every `m` events, so windows slide over the events. A window is emitted
/// once, when it holds `size` events; its bounds are its earliest and latest event times.
///
/// ```
/// use rill_streams::CountWindows;
/// let every_ten = CountWindows::of(10);
/// let sliding = CountWindows::of(10).advance_by(5);
/// # let _ = (every_ten, sliding);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountWindows {
    pub(crate) size: u64,
    pub(crate) advance: u64,
}

impl CountWindows {
    /// Windows of `size` events, one after the other.
    pub fn of(size: u64) -> Self {
        CountWindows {
            size,
            advance: size,
        }
    }

    /// A new window every `advance` events.
    pub fn advance_by(mut self, advance: u64) -> Self {
        self.advance = advance;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.size == 0 || self.advance == 0 {
            return Err(format!(
                "count windows need a size and an advance of at least one event (size {}, advance {})",
                self.size, self.advance
            ));
        }
        Ok(())
    }
}

type Predicate<K, V> = std::sync::Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// Event-interval windows: a key's window opens at an event the `initiator` accepts and
/// closes at the next event the `terminator` accepts (which is not part of it), when stream
/// time reaches `expire_after` past its first event, or when it holds `max_events` events.
/// An event that both terminates and initiates closes the open window and opens the next.
/// Events outside any window are ignored. Each window is emitted once, when it closes; its
/// bounds are its earliest and latest event times.
///
/// ```
/// use rill_streams::EventIntervalWindows;
/// use std::time::Duration;
/// let visits = EventIntervalWindows::new(
///     |_: &String, event: &String| event == "login",
///     |_: &String, event: &String| event == "logout",
/// )
/// .expire_after(Duration::from_secs(3600))
/// .max_events(1000);
/// # let _ = visits;
/// ```
pub struct EventIntervalWindows<K, V> {
    pub(crate) initiator: Predicate<K, V>,
    pub(crate) terminator: Predicate<K, V>,
    pub(crate) expire_after: Option<i64>,
    pub(crate) max_events: Option<u64>,
}

impl<K, V> Clone for EventIntervalWindows<K, V> {
    fn clone(&self) -> Self {
        EventIntervalWindows {
            initiator: self.initiator.clone(),
            terminator: self.terminator.clone(),
            expire_after: self.expire_after,
            max_events: self.max_events,
        }
    }
}

impl<K, V> EventIntervalWindows<K, V> {
    /// Windows opened by `initiator` events and closed by `terminator` events.
    pub fn new(
        initiator: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        terminator: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> Self {
        EventIntervalWindows {
            initiator: Arc::new(initiator),
            terminator: Arc::new(terminator),
            expire_after: None,
            max_events: None,
        }
    }

    /// Closes a window once stream time is `expiry` past its first event.
    pub fn expire_after(mut self, expiry: Duration) -> Self {
        self.expire_after = Some(millis(expiry).max(1));
        self
    }

    /// Closes a window when it holds `max` events.
    pub fn max_events(mut self, max: u64) -> Self {
        self.max_events = Some(max.max(1));
        self
    }
}

/// The join window of a stream-stream join: a record of this stream at `t` joins records of
/// the other stream with timestamps in `[t - before, t + after]`.
///
/// ```
/// use rill_streams::JoinWindows;
/// use std::time::Duration;
/// let symmetric = JoinWindows::of(Duration::from_secs(5));
/// let other_only_later = JoinWindows::of(Duration::ZERO)
///     .after(Duration::from_secs(30))
///     .grace(Duration::from_secs(1));
/// # let _ = (symmetric, other_only_later);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    pub(crate) before: i64,
    pub(crate) after: i64,
    pub(crate) grace: i64,
    /// Prefix of the join's store (and changelog) names; generated when absent.
    pub(crate) name: Option<&'static str>,
}

impl JoinWindows {
    /// Records join when their timestamps differ by at most `difference`.
    pub fn of(difference: Duration) -> Self {
        let difference = millis(difference);
        JoinWindows {
            before: difference,
            after: difference,
            grace: 0,
            name: None,
        }
    }

    /// How far before a record of this stream the other stream's records may be.
    pub fn before(mut self, before: Duration) -> Self {
        self.before = millis(before);
        self
    }

    /// Names the join's buffers: stores `<name>-this-store`, `<name>-other-store` (and
    /// `<name>-unmatched-store` for left and outer joins), with changelogs named after them, so
    /// they keep their names when the topology changes.
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// How far after a record of this stream the other stream's records may be.
    pub fn after(mut self, after: Duration) -> Self {
        self.after = millis(after);
        self
    }

    /// How long after a record's join window ends late records of either stream are still
    /// accepted.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = millis(grace);
        self
    }
}
