//! Aggregation over session windows, merging sessions a record brings within the gap.

use crate::error::Result;
use crate::processor::{InitContext, Processor, ProcessorContext};
use crate::record::Record;
use crate::store::{SessionStore, Window, Windowed};

use super::folder::{Folder, Merger};
use super::table::Change;
use super::window_aggregate::record_late;
use super::windows::SessionWindows;

/// Finds the open sessions of the record's key within the gap, merges them with the record
/// into one session, and forwards a retraction (new value `None`) for every merged-away session,
/// so that a table downstream never holds two sessions that became one.
pub(crate) struct SessionAggregate<K, V, A> {
    store: SessionStore<K, A>,
    windows: SessionWindows,
    folder: Folder<K, V, A>,
    merger: Merger<K, A>,
}

/// How long a session aggregation keeps sessions after their end: a session can still grow
/// while a record within the gap of its end is not late.
pub(crate) fn session_retention(windows: &SessionWindows) -> i64 {
    windows.gap.saturating_add(windows.grace).saturating_add(1)
}

impl<K: 'static, V, A: 'static> SessionAggregate<K, V, A> {
    /// Called in `init` (through `add_built`), when the store can be handed over.
    pub fn new(
        ctx: &mut InitContext<'_>,
        store_name: &str,
        windows: SessionWindows,
        folder: Folder<K, V, A>,
        merger: Merger<K, A>,
    ) -> Result<Self> {
        Ok(SessionAggregate {
            store: ctx.session_store(store_name, session_retention(&windows))?,
            windows,
            folder,
            merger,
        })
    }
}

impl<K, V, A> Processor<K, V, Windowed<K>, Change<A>> for SessionAggregate<K, V, A>
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
        let time = record.timestamp;
        let gap = self.windows.gap;
        let stream_time = ctx.stream_time();
        let grace = self.windows.grace;
        let closed = |end: i64| end.saturating_add(grace) < stream_time;
        // A record whose own time has closed is late, even if it would bridge into an open
        // session: closed sessions are final (suppression may have emitted them).
        if closed(time) {
            record_late(ctx, "session aggregate");
            return Ok(());
        }
        let sessions: Vec<_> = store
            .find_sessions(
                &record.key,
                time.saturating_sub(gap),
                time.saturating_add(gap),
            )?
            .into_iter()
            .filter(|(window, _)| !closed(window.end))
            .collect();
        let mut merged = Window::new(time, time);
        for (window, _) in &sessions {
            merged.start = merged.start.min(window.start);
            merged.end = merged.end.max(window.end);
        }
        let mut aggregate = (self.folder.initial)();
        let mut unchanged_old = None;
        for (window, value) in &sessions {
            aggregate = Some(match aggregate {
                Some(current) => (self.merger)(&record.key, current, value.clone()),
                None => value.clone(),
            });
            if *window == merged {
                unchanged_old = Some(value.clone());
                continue;
            }
            store.remove(&record.key, *window)?;
            ctx.forward(Record {
                key: Windowed::new(record.key.clone(), *window),
                value: Change {
                    new: None,
                    old: Some(value.clone()),
                },
                timestamp: time,
                headers: record.headers.clone(),
            })?;
        }
        let Some(new) = (self.folder.aggregator)(&record.key, &record.value, aggregate) else {
            return Ok(());
        };
        store.put(&record.key, merged, &new)?;
        ctx.forward(Record {
            key: Windowed::new(record.key, merged),
            value: Change {
                new: Some(new),
                old: unchanged_old,
            },
            timestamp: merged.end.max(time),
            headers: record.headers,
        })?;
        store.expire(stream_time)
    }
}
