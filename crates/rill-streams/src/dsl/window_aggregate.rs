//! Aggregation over time windows: fixed (tumbling / hopping) and sliding.

use crate::error::Result;
use crate::processor::{InitContext, Processor, ProcessorContext};
use crate::record::Record;
use crate::store::{Window, WindowStore, Windowed};

use super::folder::Folder;
use super::table::Change;
use super::windows::{SlidingWindows, TimeWindows};

/// Counts a record dropped because the windows it belongs to have closed.
pub(crate) fn record_late<K, V>(ctx: &mut ProcessorContext<'_, K, V>, key_hint: &str) {
    ctx.task.metrics.late_records_dropped += 1;
    tracing::debug!(
        task = %ctx.task.task_id,
        stream_time = ctx.task.stream_time,
        operator = key_hint,
        "late record dropped"
    );
}

/// Folds each record into every fixed window containing it, and forwards each window's change.
pub(crate) struct TimeWindowAggregate<K, V, A> {
    store: WindowStore<K, A>,
    windows: TimeWindows,
    folder: Folder<K, V, A>,
}

/// How long a time-windowed aggregation keeps its windows: until they close.
pub(crate) fn time_windows_retention(windows: &TimeWindows) -> i64 {
    windows.size.saturating_add(windows.grace)
}

/// How long a sliding-window aggregation keeps windows and records: a record is needed while
/// a window holding it is open, until stream time passes its time + difference + grace.
pub(crate) fn sliding_windows_retention(windows: &SlidingWindows) -> i64 {
    windows
        .difference
        .saturating_add(windows.grace)
        .saturating_add(1)
}
impl<K: 'static, V, A: 'static> TimeWindowAggregate<K, V, A> {
    /// Called in `init` (through `add_built`), when the store can be handed over.
    pub fn new(
        ctx: &mut InitContext<'_>,
        store_name: &str,
        windows: TimeWindows,
        folder: Folder<K, V, A>,
    ) -> Result<Self> {
        let retention = time_windows_retention(&windows);
        Ok(TimeWindowAggregate {
            store: ctx.window_store(store_name, retention)?,
            windows,
            folder,
        })
    }
}

impl<K, V, A> Processor<K, V, Windowed<K>, Change<A>> for TimeWindowAggregate<K, V, A>
where
    K: Clone + 'static,
    V: Clone + 'static,
    A: Clone + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>,
        record: Record<K, V>,
    ) -> Result<()> {
        let store = &self.store;
        let TimeWindows { size, advance, .. } = self.windows;
        let time = record.timestamp;
        let close_time = ctx.stream_time().saturating_sub(self.windows.grace);
        // Windows are aligned to the epoch; the earliest containing `time` starts after
        // `time - size`. Like Kafka Streams, none starts before 0 for non-negative times.
        let mut start = (time - size).div_euclid(advance) * advance + advance;
        if time >= 0 {
            start = start.max(0);
        }
        let mut accepted = false;
        while start <= time {
            let end = start.saturating_add(size);
            if end > close_time {
                accepted = true;
                let old = store.get(&record.key, start)?;
                if let Some(new) = self.folder.fold(&record.key, &record.value, old.clone()) {
                    store.put(&record.key, start, &new)?;
                    ctx.forward(Record {
                        key: Windowed::new(record.key.clone(), Window::new(start, end)),
                        value: Change {
                            new: Some(new),
                            old,
                        },
                        timestamp: time,
                        headers: record.headers.clone(),
                    })?;
                }
            }
            start += advance;
        }
        if !accepted {
            record_late(ctx, "time window aggregate");
        }
        store.expire(ctx.stream_time())
    }
}

/// Sliding-window aggregation. Records are kept (per key, for the time difference plus grace)
/// so that each window a record changes is folded again from its records: with out-of-order
/// records a new window's content is not the content of any existing window plus one record.
///
/// The windows of a key are, for each record at `t`, the window `[t - d, t]` ending at it and,
/// when some record follows within `d`, the window `[t + 1, t + 1 + d]` starting just after it.
pub(crate) struct SlidingWindowAggregate<K, V, A> {
    store: WindowStore<K, A>,
    records: WindowStore<K, V>,
    windows: SlidingWindows,
    folder: Folder<K, V, A>,
}

impl<K: 'static, V: 'static, A: 'static> SlidingWindowAggregate<K, V, A> {
    /// Called in `init` (through `add_built`), when the stores can be handed over.
    pub fn new(
        ctx: &mut InitContext<'_>,
        store_name: &str,
        records_name: &str,
        windows: SlidingWindows,
        folder: Folder<K, V, A>,
    ) -> Result<Self> {
        let retention = sliding_windows_retention(&windows);
        Ok(SlidingWindowAggregate {
            store: ctx.window_store(store_name, retention)?,
            records: ctx.window_store(records_name, retention)?,
            windows,
            folder,
        })
    }
}

impl<K, V, A> Processor<K, V, Windowed<K>, Change<A>> for SlidingWindowAggregate<K, V, A>
where
    K: Clone + 'static,
    V: Clone + 'static,
    A: Clone + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>,
        record: Record<K, V>,
    ) -> Result<()> {
        let (store, records) = (&self.store, &self.records);
        let d = self.windows.difference;
        let time = record.timestamp;
        let stream_time = ctx.stream_time();
        let open = |end: i64| end.saturating_add(self.windows.grace) >= stream_time;
        if !open(time.saturating_add(d)) {
            record_late(ctx, "sliding window aggregate");
            return Ok(());
        }
        records.append(&record.key, time, &record.value)?;
        let nearby = records.fetch(&record.key, time - d - 1, time + d + 1)?;
        // Starts of the windows this record changes (each contains it), and whether the
        // window starting just after it must be created.
        let mut starts = std::collections::BTreeSet::new();
        starts.insert(time - d);
        let mut followed = false;
        for &(other, _) in &nearby {
            if other >= time && other <= time + d {
                starts.insert(other - d);
            }
            if other >= time - d - 1 && other < time {
                starts.insert(other + 1);
            }
            if other > time && other <= time + 1 + d {
                followed = true;
            }
        }
        let after_start = time + 1;
        let mut created_after = false;
        if followed
            && !starts.contains(&after_start)
            && store.get(&record.key, after_start)?.is_none()
        {
            starts.insert(after_start);
            created_after = true;
        }
        for start in starts {
            let end = start + d;
            if !open(end) {
                continue;
            }
            let mut aggregate = None;
            let mut latest = i64::MIN;
            for (t, value) in nearby.iter().filter(|(t, _)| *t >= start && *t <= end) {
                aggregate = self.folder.fold(&record.key, value, aggregate);
                latest = latest.max(*t);
            }
            let Some(new) = aggregate else {
                continue;
            };
            let old = if created_after && start == after_start {
                None
            } else {
                store.get(&record.key, start)?
            };
            store.put(&record.key, start, &new)?;
            ctx.forward(Record {
                key: Windowed::new(record.key.clone(), Window::new(start, end)),
                value: Change {
                    new: Some(new),
                    old,
                },
                timestamp: latest,
                headers: record.headers.clone(),
            })?;
        }
        records.expire(stream_time)?;
        store.expire(stream_time)
    }
}
