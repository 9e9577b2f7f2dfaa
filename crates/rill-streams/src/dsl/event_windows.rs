//! Aggregation over windows delimited by events rather than time: count windows (every N
//! events of a key, optionally sliding) and event-interval windows (initiator / terminator
//! predicates, expiry, maximum event count). A key's open windows are one value in a
//! key-value store, so they are changelogged and restored like any table row.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::Result;
use crate::processor::{InitContext, Processor, ProcessorContext, PunctuationType, PunctuatorId};
use crate::record::Record;
use crate::serde::{Serde, SerdeError, SharedSerde};
use crate::store::{KeyValueStore, Window, Windowed};

use super::folder::Folder;
use super::table::Change;
use super::windows::{CountWindows, EventIntervalWindows};

/// Which event windows an aggregation uses.
pub(crate) enum EventKind<K, V> {
    Count(CountWindows),
    Interval(EventIntervalWindows<K, V>),
}

impl<K, V> Clone for EventKind<K, V> {
    fn clone(&self) -> Self {
        match self {
            EventKind::Count(windows) => EventKind::Count(*windows),
            EventKind::Interval(windows) => EventKind::Interval(windows.clone()),
        }
    }
}

/// One open window of a key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OpenWindow<A> {
    /// Earliest and latest event time so far.
    window: Window,
    /// Time of the first event (expiry counts from it).
    opened: i64,
    events: u64,
    aggregate: A,
}

/// The open windows of a key, oldest first, and (count windows) how many events have passed
/// since the last window opened.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventWindows<A> {
    phase: u64,
    open: Vec<OpenWindow<A>>,
}

impl<A> Default for EventWindows<A> {
    fn default() -> Self {
        EventWindows {
            phase: 0,
            open: Vec::new(),
        }
    }
}

/// Encodes [`EventWindows`]: phase, count, then per window its start, end, opening time,
/// event count and length-prefixed aggregate (all big-endian).
pub(crate) struct EventWindowsSerde<A> {
    inner: SharedSerde<A>,
}

impl<A> EventWindowsSerde<A> {
    pub fn new(inner: SharedSerde<A>) -> Self {
        EventWindowsSerde { inner }
    }
}

fn short(what: &str) -> SerdeError {
    SerdeError {
        format: "event windows",
        reason: format!("truncated {what}"),
    }
}

impl<A: 'static> Serde<EventWindows<A>> for EventWindowsSerde<A> {
    fn serialize(&self, topic: &str, value: &EventWindows<A>) -> Result<Bytes, SerdeError> {
        let mut out = BytesMut::new();
        out.put_u64(value.phase);
        out.put_u32(value.open.len() as u32);
        for window in &value.open {
            out.put_i64(window.window.start);
            out.put_i64(window.window.end);
            out.put_i64(window.opened);
            out.put_u64(window.events);
            let aggregate = self.inner.serialize(topic, &window.aggregate)?;
            out.put_u32(aggregate.len() as u32);
            out.put_slice(&aggregate);
        }
        Ok(out.freeze())
    }

    fn deserialize(&self, topic: &str, mut bytes: &[u8]) -> Result<EventWindows<A>, SerdeError> {
        if bytes.remaining() < 12 {
            return Err(short("header"));
        }
        let phase = bytes.get_u64();
        let count = bytes.get_u32();
        let mut open = Vec::new();
        for _ in 0..count {
            if bytes.remaining() < 36 {
                return Err(short("window"));
            }
            let (start, end, opened, events) = (
                bytes.get_i64(),
                bytes.get_i64(),
                bytes.get_i64(),
                bytes.get_u64(),
            );
            let len = bytes.get_u32() as usize;
            if bytes.remaining() < len {
                return Err(short("aggregate"));
            }
            let aggregate = self.inner.deserialize(topic, &bytes[..len])?;
            bytes.advance(len);
            open.push(OpenWindow {
                window: Window::new(start, end),
                opened,
                events,
                aggregate,
            });
        }
        Ok(EventWindows { phase, open })
    }
}

/// Keeps each key's open event windows and forwards each window once, when it closes.
pub(crate) struct EventWindowAggregate<K, V, A> {
    store: KeyValueStore<K, EventWindows<A>>,
    kind: EventKind<K, V>,
    folder: Folder<K, V, A>,
}

impl<K: 'static, V, A: 'static> EventWindowAggregate<K, V, A> {
    /// Called in `init` (through `add_built`), when the store can be handed over.
    pub fn new(
        ctx: &mut InitContext<'_>,
        store_name: &str,
        kind: EventKind<K, V>,
        folder: Folder<K, V, A>,
    ) -> Result<Self> {
        Ok(EventWindowAggregate {
            store: ctx.key_value_store(store_name)?,
            kind,
            folder,
        })
    }
}

/// Forwards a closed window's final aggregate.
fn emit<K: Clone + 'static, A: Clone + 'static>(
    ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>,
    key: &K,
    window: OpenWindow<A>,
) -> Result<()> {
    ctx.forward(Record::new(
        Windowed::new(key.clone(), window.window),
        Change {
            new: Some(window.aggregate),
            old: None,
        },
        window.window.end,
    ))
}

impl<K, V, A> EventWindowAggregate<K, V, A>
where
    K: Clone + 'static,
    V: Clone + 'static,
    A: Clone + 'static,
{
    /// Opens a window with its first event.
    fn open(&self, key: &K, value: &V, time: i64) -> Option<OpenWindow<A>> {
        Some(OpenWindow {
            window: Window::new(time, time),
            opened: time,
            events: 1,
            aggregate: self.folder.fold(key, value, None)?,
        })
    }

    /// Adds an event to an open window.
    fn add(&self, window: &mut OpenWindow<A>, key: &K, value: &V, time: i64) {
        if let Some(aggregate) = self.folder.fold(key, value, Some(window.aggregate.clone())) {
            window.aggregate = aggregate;
        }
        window.events += 1;
        window.window.start = window.window.start.min(time);
        window.window.end = window.window.end.max(time);
    }

    fn process_count(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>,
        windows: CountWindows,
        state: &mut EventWindows<A>,
        record: &Record<K, V>,
    ) -> Result<()> {
        let (key, value, time) = (&record.key, &record.value, record.timestamp);
        for window in &mut state.open {
            self.add(window, key, value, time);
        }
        if state.phase == 0
            && let Some(window) = self.open(key, value, time)
        {
            state.open.push(window);
        }
        state.phase = (state.phase + 1) % windows.advance;
        while state
            .open
            .first()
            .is_some_and(|window| window.events >= windows.size)
        {
            let window = state.open.remove(0);
            emit(ctx, key, window)?;
        }
        Ok(())
    }

    fn process_interval(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>,
        windows: &EventIntervalWindows<K, V>,
        state: &mut EventWindows<A>,
        record: &Record<K, V>,
    ) -> Result<()> {
        let (key, value, time) = (&record.key, &record.value, record.timestamp);
        let stream_time = ctx.stream_time();
        let expired = |window: &OpenWindow<A>| {
            windows
                .expire_after
                .is_some_and(|expiry| stream_time >= window.opened.saturating_add(expiry))
        };
        if state.open.first().is_some_and(expired) {
            let window = state.open.remove(0);
            emit(ctx, key, window)?;
        }
        // The terminator closes the open window without joining it; the same event may then
        // open the next window.
        if !state.open.is_empty() && (windows.terminator)(key, value) {
            let window = state.open.remove(0);
            emit(ctx, key, window)?;
            if !(windows.initiator)(key, value) {
                return Ok(());
            }
        }
        match state.open.first_mut() {
            Some(window) => self.add(window, key, value, time),
            None if (windows.initiator)(key, value) => {
                if let Some(window) = self.open(key, value, time) {
                    state.open.push(window);
                }
            }
            None => return Ok(()),
        }
        if let (Some(max), Some(window)) = (windows.max_events, state.open.first())
            && window.events >= max
        {
            let window = state.open.remove(0);
            emit(ctx, key, window)?;
        }
        Ok(())
    }
}

impl<K, V, A> Processor<K, V, Windowed<K>, Change<A>> for EventWindowAggregate<K, V, A>
where
    K: Clone + 'static,
    V: Clone + 'static,
    A: Clone + 'static,
{
    fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<()> {
        if let EventKind::Interval(windows) = &self.kind
            && let Some(expiry) = windows.expire_after
        {
            // Keys that go quiet still have their windows closed as stream time passes.
            let interval = Duration::from_millis(u64::try_from(expiry).unwrap_or(1).max(1));
            ctx.schedule(interval, PunctuationType::StreamTime);
        }
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>,
        record: Record<K, V>,
    ) -> Result<()> {
        let store = &self.store;
        let mut state = store.get(&record.key)?.unwrap_or_default();
        let before = state.clone();
        match &self.kind {
            EventKind::Count(windows) => self.process_count(ctx, *windows, &mut state, &record)?,
            EventKind::Interval(windows) => {
                self.process_interval(ctx, windows, &mut state, &record)?
            }
        }
        if state.open.is_empty() && state.phase == 0 {
            if !before.open.is_empty() || before.phase != 0 {
                store.delete(&record.key)?;
            }
        } else {
            store.put(&record.key, &state)?;
        }
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<A>>,
        _punctuator: PunctuatorId,
        timestamp: i64,
    ) -> Result<()> {
        let (store, EventKind::Interval(windows)) = (&self.store, &self.kind) else {
            return Ok(());
        };
        let Some(expiry) = windows.expire_after else {
            return Ok(());
        };
        for (key, mut state) in store.all()? {
            let expired = state
                .open
                .first()
                .is_some_and(|window| timestamp >= window.opened.saturating_add(expiry));
            if expired {
                let window = state.open.remove(0);
                emit(ctx, &key, window)?;
                store.delete(&key)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::serde::I64Serde;

    #[test]
    fn open_windows_round_trip_and_truncation_is_an_error() {
        let serde = EventWindowsSerde::new(Arc::new(I64Serde) as SharedSerde<i64>);
        let state = EventWindows {
            phase: 2,
            open: vec![OpenWindow {
                window: Window::new(-3, 9),
                opened: -3,
                events: 4,
                aggregate: 42,
            }],
        };
        let bytes = serde.serialize("t", &state).unwrap();
        assert_eq!(serde.deserialize("t", &bytes).unwrap(), state);
        assert!(serde.deserialize("t", &bytes[..bytes.len() - 1]).is_err());
    }
}
