//! Window and session stores, laid over any [`KeyValueBytesStore`] engine with composite keys,
//! so they share the engines, the changelog, restore and interactive queries of key-value
//! stores.
//!
//! Every entry's engine key is `key bytes ++ a ++ b`, two big-endian 8-byte fields whose sign
//! bit is flipped so that byte order is numeric order:
//! - window stores: `a` = window start (or record time), `b` = a sequence number (0 for
//!   aggregates; distinct per entry for buffers that keep duplicates, such as join buffers);
//! - session stores: `a` = session end, `b` = session start, so that "sessions of a key ending
//!   at or after `t`" is one range scan.
//!
//! Entries of one key are contiguous and time-ordered. A key whose bytes extend another key's
//! bytes may fall inside the other's range; fetches compare the key part and skip those.
//!
//! Expiry (entries older than the retention behind stream time): the stores of windowed DSL
//! operations and of [`StreamsBuilder::add_window_store`](crate::StreamsBuilder::add_window_store)
//! have a [`SegmentedStore`](super::SegmentedStore) engine, which drops whole time segments
//! and logs nothing. On a plain key-value engine (a store added with `add_state_store`),
//! expired entries are deleted, and the deletions logged, by a sweep that runs at most once
//! per half retention of stream time.

use std::cell::Cell;
use std::ops::Bound;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::{KeyValueBytesStore, KeyValueStore};
use crate::error::{Result, StreamsError};
use crate::serde::{DefaultSerde, Serde, SerdeError, SharedSerde};

/// Length of the two time fields after the key bytes.
pub(crate) const SUFFIX: usize = 16;

/// A time interval: `[start, end)` for time windows, `[start, end]` (both inclusive) for
/// sliding, session, count and event-interval windows, whose bounds are record timestamps.
///
/// ```
/// use rill_streams::Window;
/// let w = Window::new(0, 10);
/// assert_eq!((w.start, w.end), (0, 10));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// Start, ms since the epoch.
    pub start: i64,
    /// End, ms since the epoch.
    pub end: i64,
}

impl Window {
    /// A window from `start` to `end`.
    pub fn new(start: i64, end: i64) -> Self {
        Window { start, end }
    }
}

/// A key together with the window its value belongs to: the key of windowed tables.
///
/// ```
/// use rill_streams::{DefaultSerde, Window, Windowed};
/// let key = Windowed::new("ann".to_string(), Window::new(0, 60_000));
/// let serde = Windowed::<String>::default_serde();
/// let bytes = serde.serialize("t", &key).unwrap();
/// assert_eq!(serde.deserialize("t", &bytes).unwrap(), key);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: Window,
}

impl<K> Windowed<K> {
    /// A windowed key.
    pub fn new(key: K, window: Window) -> Self {
        Windowed { key, window }
    }
}

/// Serializes a [`Windowed`] key as the inner key's bytes followed by the window's start and
/// end (8 bytes each, big-endian), so windowed keys of one key sort by window start.
pub struct WindowedSerde<K> {
    inner: SharedSerde<K>,
}

impl<K> WindowedSerde<K> {
    /// Wraps the serde of the inner key.
    pub fn new(inner: SharedSerde<K>) -> Self {
        WindowedSerde { inner }
    }
}

impl<K: 'static> Serde<Windowed<K>> for WindowedSerde<K> {
    fn serialize(&self, topic: &str, value: &Windowed<K>) -> Result<Bytes, SerdeError> {
        let key = self.inner.serialize(topic, &value.key)?;
        Ok(compose(&key, value.window.start, value.window.end))
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Windowed<K>, SerdeError> {
        let (key, start, end) = split(bytes).ok_or_else(|| SerdeError {
            format: "windowed",
            reason: format!("expected at least {SUFFIX} bytes, got {}", bytes.len()),
        })?;
        Ok(Windowed {
            key: self.inner.deserialize(topic, key)?,
            window: Window { start, end },
        })
    }
}

impl<K: DefaultSerde> DefaultSerde for Windowed<K> {
    fn default_serde() -> SharedSerde<Self> {
        Arc::new(WindowedSerde::new(K::default_serde()))
    }
}

/// A time as 8 bytes whose byte order is numeric order (sign bit flipped).
pub(crate) fn time_bytes(time: i64) -> [u8; 8] {
    ((time as u64) ^ (1 << 63)).to_be_bytes()
}

/// The time in the first 8 bytes of `bytes` (written by [`time_bytes`]).
pub(crate) fn time_from(bytes: &[u8]) -> i64 {
    let mut array = [0u8; 8];
    array.copy_from_slice(&bytes[..8]);
    (u64::from_be_bytes(array) ^ (1 << 63)) as i64
}

/// `key ++ a ++ b`.
pub(crate) fn compose(key: &[u8], a: i64, b: i64) -> Bytes {
    let mut out = BytesMut::with_capacity(key.len() + SUFFIX);
    out.put_slice(key);
    out.put_slice(&time_bytes(a));
    out.put_slice(&time_bytes(b));
    out.freeze()
}

/// The key bytes and the two fields of a composite key; `None` if it is too short.
pub(crate) fn split(bytes: &[u8]) -> Option<(&[u8], i64, i64)> {
    let key_len = bytes.len().checked_sub(SUFFIX)?;
    let (key, times) = bytes.split_at(key_len);
    Some((key, time_from(times), time_from(&times[8..])))
}

/// Entries of `key` with the first field in `from..=to`, as (a, b, value bytes).
fn scan_key(
    engine: &dyn KeyValueBytesStore,
    key: &[u8],
    from: i64,
    to: i64,
) -> Result<Vec<(i64, i64, Bytes)>> {
    if from > to {
        return Ok(Vec::new());
    }
    let low = compose(key, from, i64::MIN);
    let high = compose(key, to, i64::MAX);
    let pairs = engine.range(Bound::Included(&low), Bound::Included(&high))?;
    Ok(pairs
        .into_iter()
        .filter_map(|(composite, value)| {
            let (found, a, b) = split(&composite)?;
            (found == key).then_some((a, b, value))
        })
        .collect())
}

/// Every entry (of keys from `from_key` to `to_key` when given) with the first field in
/// `from..=to`, as (key bytes, a, b, value bytes).
type RawEntry = (Bytes, i64, i64, Bytes);

fn scan_keys(
    engine: &dyn KeyValueBytesStore,
    keys: Option<(&[u8], &[u8])>,
    from: i64,
    to: i64,
) -> Result<Vec<RawEntry>> {
    let pairs = match keys {
        Some((low, high)) => {
            let low = compose(low, i64::MIN, i64::MIN);
            let high = compose(high, i64::MAX, i64::MAX);
            engine.range(Bound::Included(&low), Bound::Included(&high))?
        }
        None => engine.range(Bound::Unbounded, Bound::Unbounded)?,
    };
    Ok(pairs
        .into_iter()
        .filter_map(|(composite, value)| {
            let (key, a, b) = split(&composite)?;
            let in_keys = keys.is_none_or(|(low, high)| key >= low && key <= high);
            (in_keys && a >= from && a <= to).then(|| (composite.slice(..key.len()), a, b, value))
        })
        .collect())
}

/// The typed-handle plumbing shared by window and session stores: the key-value handle (for
/// serdes and changelog logging) plus retention bookkeeping.
struct Timed<K, V> {
    kv: KeyValueStore<K, V>,
    retention: i64,
    /// The cutoff of the last expiry sweep.
    swept_to: Cell<i64>,
}

impl<K: 'static, V: 'static> Timed<K, V> {
    fn name(&self) -> &str {
        self.kv.engine.name()
    }

    fn value_bytes(&self, value: &V) -> Result<Bytes> {
        self.kv
            .value_serde
            .serialize(self.name(), value)
            .map_err(|source| StreamsError::Serde {
                topic: self.name().to_string(),
                what: "value",
                source,
            })
    }

    fn write(&self, composite: Bytes, value: Option<Bytes>) -> Result<()> {
        match &value {
            Some(value) => self.kv.engine.put(composite.clone(), value.clone())?,
            None => {
                self.kv.engine.delete(&composite)?;
            }
        }
        self.kv.log(composite, value)
    }

    fn decode(&self, bytes: &[u8]) -> Result<V> {
        self.kv.decode_value(bytes)
    }

    /// Expires entries whose `expiry_field` is before `stream_time - retention`: a segmented
    /// engine drops whole segments; on any other engine, entries are deleted (and the
    /// deletions logged) by a full scan, at most once per half retention of stream time so
    /// that the scan is amortized.
    fn expire(&self, stream_time: i64, expiry_field: impl Fn(i64, i64) -> i64) -> Result<()> {
        if self.kv.engine.expire_segments(stream_time)? {
            return Ok(());
        }
        if stream_time == i64::MIN || self.retention == i64::MAX {
            return Ok(());
        }
        let cutoff = stream_time.saturating_sub(self.retention);
        let step = (self.retention / 2).max(1);
        let last = self.swept_to.get();
        if last != i64::MIN && cutoff < last.saturating_add(step) {
            return Ok(());
        }
        self.swept_to.set(cutoff);
        let expired: Vec<Bytes> = self
            .kv
            .engine
            .range(Bound::Unbounded, Bound::Unbounded)?
            .into_iter()
            .filter_map(|(composite, _)| {
                let (_, a, b) = split(&composite)?;
                (expiry_field(a, b) < cutoff).then_some(composite)
            })
            .collect();
        expired
            .into_iter()
            .try_for_each(|composite| self.write(composite, None))
    }
}

/// A typed window store as a processor uses it: values per key and window start (or per key,
/// record time and sequence number, for buffers of records), logged to the changelog.
///
/// Obtain one with [`InitContext::window_store`](crate::InitContext::window_store) when the
/// processor is built ([`KStream::process_built`](crate::KStream::process_built)):
/// ```
/// use rill_streams::{InitContext, Processor, ProcessorContext, Record, Result, WindowStore};
///
/// /// Keeps each record for an hour under its key and time.
/// struct Keep(WindowStore<String, String>);
///
/// impl Keep {
///     /// For `process_built(Keep::build, &["kept"])`.
///     fn build(ctx: &mut InitContext<'_>) -> Result<Keep> {
///         Ok(Keep(ctx.window_store("kept", 3_600_000)?))
///     }
/// }
///
/// impl Processor<String, String, String, String> for Keep {
///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
///         self.0.put(&r.key, r.timestamp, &r.value)?;
///         self.0.expire(ctx.stream_time())
///     }
/// }
/// ```
pub struct WindowStore<K, V> {
    timed: Timed<K, V>,
    /// Next sequence number for [`append`](Self::append); starts at the wall clock in
    /// microseconds so that numbers stay unique across restarts.
    next_seq: Cell<i64>,
}

impl<K: 'static, V: 'static> WindowStore<K, V> {
    pub(crate) fn new(kv: KeyValueStore<K, V>, retention: i64) -> Self {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 2));
        WindowStore {
            timed: Timed {
                kv,
                retention,
                swept_to: Cell::new(i64::MIN),
            },
            next_seq: Cell::new(start),
        }
    }

    /// The value of `key` in the window starting at `start`.
    pub fn get(&self, key: &K, start: i64) -> Result<Option<V>> {
        let composite = compose(&self.timed.kv.key_bytes(key)?, start, 0);
        self.timed
            .kv
            .engine
            .get(&composite)?
            .map(|bytes| self.timed.decode(&bytes))
            .transpose()
    }

    /// Sets the value of `key` in the window starting at `start`.
    pub fn put(&self, key: &K, start: i64, value: &V) -> Result<()> {
        let composite = compose(&self.timed.kv.key_bytes(key)?, start, 0);
        self.timed
            .write(composite, Some(self.timed.value_bytes(value)?))
    }

    /// Removes the value of `key` in the window starting at `start`.
    pub fn remove(&self, key: &K, start: i64) -> Result<()> {
        let composite = compose(&self.timed.kv.key_bytes(key)?, start, 0);
        self.timed.write(composite, None)
    }

    /// Adds a value at `time` next to any others of the same key and time; answers its
    /// sequence number (for [`remove_entry`](Self::remove_entry)).
    pub fn append(&self, key: &K, time: i64, value: &V) -> Result<i64> {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        let composite = compose(&self.timed.kv.key_bytes(key)?, time, seq);
        self.timed
            .write(composite, Some(self.timed.value_bytes(value)?))?;
        Ok(seq)
    }

    /// Removes one appended value.
    pub fn remove_entry(&self, key: &K, time: i64, seq: i64) -> Result<()> {
        let composite = compose(&self.timed.kv.key_bytes(key)?, time, seq);
        self.timed.write(composite, None)
    }

    /// Values of `key` with window start (or time) in `from..=to`, in time order, as
    /// (start, value).
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        Ok(self
            .fetch_entries(key, from, to)?
            .into_iter()
            .map(|(time, _, value)| (time, value))
            .collect())
    }

    /// Like [`fetch`](Self::fetch), with each entry's sequence number: (time, seq, value).
    pub fn fetch_entries(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, i64, V)>> {
        let key = self.timed.kv.key_bytes(key)?;
        scan_key(self.timed.kv.engine.as_ref(), &key, from, to)?
            .into_iter()
            .map(|(a, b, value)| Ok((a, b, self.timed.decode(&value)?)))
            .collect()
    }

    /// Values of keys from `from_key` to `to_key` (serialized order) with window start in
    /// `from..=to`, as (key, start, value).
    pub fn fetch_key_range(
        &self,
        from_key: &K,
        to_key: &K,
        from: i64,
        to: i64,
    ) -> Result<Vec<(K, i64, V)>> {
        let (low, high) = (
            self.timed.kv.key_bytes(from_key)?,
            self.timed.kv.key_bytes(to_key)?,
        );
        scan_keys(self.timed.kv.engine.as_ref(), Some((&low, &high)), from, to)?
            .into_iter()
            .map(|(key, a, _, value)| {
                Ok((
                    self.timed.kv.decode_key(&key)?,
                    a,
                    self.timed.decode(&value)?,
                ))
            })
            .collect()
    }

    /// Expires entries that started more than the retention before `stream_time` (see the
    /// module documentation for how).
    pub fn expire(&self, stream_time: i64) -> Result<()> {
        self.timed.expire(stream_time, |start, _| start)
    }

    pub(crate) fn key_bytes(&self, key: &K) -> Result<Bytes> {
        self.timed.kv.key_bytes(key)
    }

    pub(crate) fn decode_key(&self, bytes: &[u8]) -> Result<K> {
        self.timed.kv.decode_key(bytes)
    }

    pub(crate) fn value_bytes(&self, value: &V) -> Result<Bytes> {
        self.timed.value_bytes(value)
    }

    pub(crate) fn decode_value(&self, bytes: &[u8]) -> Result<V> {
        self.timed.decode(bytes)
    }
}

/// A typed session store as a processor uses it: one value per key and session window,
/// logged to the changelog.
///
/// Obtain one in [`Processor::init`](crate::Processor::init) with
/// [`InitContext::session_store`](crate::InitContext::session_store); the DSL's session
/// aggregations use it to find the sessions a record merges with:
/// ```
/// # fn demo(store: &rill_streams::SessionStore<String, i64>) -> rill_streams::Result<()> {
/// use rill_streams::Window;
/// let key = "ann".to_string();
/// store.put(&key, Window::new(10, 20), &2)?;
/// let near = store.find_sessions(&key, 15, 25)?; // sessions ending >= 15 and starting <= 25
/// assert_eq!(near, vec![(Window::new(10, 20), 2)]);
/// # Ok(()) }
/// ```
pub struct SessionStore<K, V> {
    timed: Timed<K, V>,
}

impl<K: 'static, V: 'static> SessionStore<K, V> {
    pub(crate) fn new(kv: KeyValueStore<K, V>, retention: i64) -> Self {
        SessionStore {
            timed: Timed {
                kv,
                retention,
                swept_to: Cell::new(i64::MIN),
            },
        }
    }

    /// Sessions of `key` that end at or after `earliest_end` and start at or before
    /// `latest_start`, in order of their end.
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Window, V)>> {
        let key = self.timed.kv.key_bytes(key)?;
        scan_key(self.timed.kv.engine.as_ref(), &key, earliest_end, i64::MAX)?
            .into_iter()
            .filter(|(_, start, _)| *start <= latest_start)
            .map(|(end, start, value)| Ok((Window { start, end }, self.timed.decode(&value)?)))
            .collect()
    }

    /// Every session of `key`.
    pub fn fetch(&self, key: &K) -> Result<Vec<(Window, V)>> {
        self.find_sessions(key, i64::MIN, i64::MAX)
    }

    /// Sets the value of `key` in `window`.
    pub fn put(&self, key: &K, window: Window, value: &V) -> Result<()> {
        let composite = compose(&self.timed.kv.key_bytes(key)?, window.end, window.start);
        self.timed
            .write(composite, Some(self.timed.value_bytes(value)?))
    }

    /// Removes the session `window` of `key`.
    pub fn remove(&self, key: &K, window: Window) -> Result<()> {
        let composite = compose(&self.timed.kv.key_bytes(key)?, window.end, window.start);
        self.timed.write(composite, None)
    }

    /// Expires sessions that ended more than the retention before `stream_time` (see the
    /// module documentation for how).
    pub fn expire(&self, stream_time: i64) -> Result<()> {
        self.timed.expire(stream_time, |end, _| end)
    }
}

/// Decodes the entries of a window-store engine for queries.
fn decode_windows<K: 'static, V: 'static>(
    name: &str,
    entries: Vec<RawEntry>,
    key_serde: &SharedSerde<K>,
    value_serde: &SharedSerde<V>,
    session: bool,
) -> Result<Vec<(Windowed<K>, V)>> {
    let error = |what, source| StreamsError::Serde {
        topic: name.to_string(),
        what,
        source,
    };
    entries
        .into_iter()
        .map(|(key, a, b, value)| {
            let window = if session {
                Window { start: b, end: a }
            } else {
                Window { start: a, end: a }
            };
            Ok((
                Windowed {
                    key: key_serde
                        .deserialize(name, &key)
                        .map_err(|e| error("key", e))?,
                    window,
                },
                value_serde
                    .deserialize(name, &value)
                    .map_err(|e| error("value", e))?,
            ))
        })
        .collect()
}

/// How a window-like store lays out its two time fields (engines do not record it, so
/// read-only views say which layout they read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    Window,
    Session,
}

/// A read-only typed view of a window or session store, for interactive queries from any
/// thread. Windows come back with their start (window stores: `end` equals `start`; the
/// store does not keep window sizes) or their bounds (session stores).
///
/// ```
/// use rill_streams::{StoreOptions, StreamsBuilder, TimeWindows, TopologyTestDriver};
/// use std::time::Duration;
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("clicks")
///     .group_by_key()
///     .windowed_by(TimeWindows::of(Duration::from_secs(60)))
///     .count(StoreOptions::in_memory("clicks-per-minute"));
/// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
/// driver.pipe("clicks", &"ann".to_string(), &"/".to_string(), 61_000).unwrap();
/// let store = driver.window_store::<String, i64>("clicks-per-minute").unwrap();
/// assert_eq!(store.fetch(&"ann".to_string(), 0, 120_000).unwrap(), vec![(60_000, 1)]);
/// ```
pub struct ReadOnlyWindowStore<K, V> {
    engine: Arc<dyn KeyValueBytesStore>,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
    layout: Layout,
}

impl<K: 'static, V: 'static> ReadOnlyWindowStore<K, V> {
    pub(crate) fn new(
        engine: Arc<dyn KeyValueBytesStore>,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
        layout: Layout,
    ) -> Self {
        ReadOnlyWindowStore {
            engine,
            key_serde,
            value_serde,
            layout,
        }
    }

    fn key_bytes(&self, key: &K) -> Result<Bytes> {
        let name = self.engine.name();
        self.key_serde
            .serialize(name, key)
            .map_err(|source| StreamsError::Serde {
                topic: name.to_string(),
                what: "key",
                source,
            })
    }

    /// Values of `key` whose window starts in `from..=to` (window stores) or overlaps
    /// `from..=to` (session stores), as (window start, value).
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        Ok(self
            .fetch_windows(key, from, to)?
            .into_iter()
            .map(|(window, value)| (window.start, value))
            .collect())
    }

    /// Like [`fetch`](Self::fetch), answering whole windows.
    pub fn fetch_windows(&self, key: &K, from: i64, to: i64) -> Result<Vec<(Window, V)>> {
        let key_bytes = self.key_bytes(key)?;
        fetch_windows(
            self.engine.as_ref(),
            &key_bytes,
            from,
            to,
            &self.value_serde,
            self.layout,
        )
    }

    /// Values of every key from `from_key` to `to_key` (serialized order) whose window
    /// starts in `from..=to`.
    pub fn fetch_key_range(
        &self,
        from_key: &K,
        to_key: &K,
        from: i64,
        to: i64,
    ) -> Result<Vec<(Windowed<K>, V)>> {
        let (low, high) = (self.key_bytes(from_key)?, self.key_bytes(to_key)?);
        let entries = scan_keys(
            self.engine.as_ref(),
            Some((&low, &high)),
            i64::MIN,
            i64::MAX,
        )?;
        let all = decode_windows(
            self.engine.name(),
            entries,
            &self.key_serde,
            &self.value_serde,
            self.layout == Layout::Session,
        )?;
        Ok(all
            .into_iter()
            .filter(|(k, _)| k.window.start >= from && k.window.start <= to)
            .collect())
    }

    /// Every entry, in key order then time order.
    pub fn all(&self) -> Result<Vec<(Windowed<K>, V)>> {
        let entries = scan_keys(self.engine.as_ref(), None, i64::MIN, i64::MAX)?;
        decode_windows(
            self.engine.name(),
            entries,
            &self.key_serde,
            &self.value_serde,
            self.layout == Layout::Session,
        )
    }
}

/// Windows of one (serialized) key of an engine: starting in `from..=to` for window stores,
/// overlapping it for session stores.
pub(crate) fn fetch_windows<V: 'static>(
    engine: &dyn KeyValueBytesStore,
    key: &[u8],
    from: i64,
    to: i64,
    value_serde: &SharedSerde<V>,
    layout: Layout,
) -> Result<Vec<(Window, V)>> {
    let name = engine.name();
    let entries = match layout {
        Layout::Window => scan_key(engine, key, from, to)?
            .into_iter()
            .map(|(start, _, v)| (Window::new(start, start), v))
            .collect::<Vec<_>>(),
        Layout::Session => scan_key(engine, key, from, i64::MAX)?
            .into_iter()
            .filter(|(_, start, _)| *start <= to)
            .map(|(end, start, v)| (Window::new(start, end), v))
            .collect(),
    };
    entries
        .into_iter()
        .map(|(window, value)| {
            let value =
                value_serde
                    .deserialize(name, &value)
                    .map_err(|source| StreamsError::Serde {
                        topic: name.to_string(),
                        what: "value",
                        source,
                    })?;
            Ok((window, value))
        })
        .collect()
}

impl crate::processor::InitContext<'_> {
    /// The window store `name` (added with
    /// [`StreamsBuilder::add_window_store`](crate::StreamsBuilder::add_window_store) or by a
    /// windowed DSL operation), keeping entries for `retention_ms` behind stream time.
    pub fn window_store<K: 'static, V: 'static>(
        &mut self,
        name: &str,
        retention_ms: i64,
    ) -> Result<WindowStore<K, V>> {
        Ok(WindowStore::new(self.key_value_store(name)?, retention_ms))
    }

    /// The session store `name`, keeping sessions for `retention_ms` after their end.
    pub fn session_store<K: 'static, V: 'static>(
        &mut self,
        name: &str,
        retention_ms: i64,
    ) -> Result<SessionStore<K, V>> {
        Ok(SessionStore::new(self.key_value_store(name)?, retention_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_keys_sort_by_key_then_time_including_negative_times() {
        let mut keys = [
            compose(b"b", -5, 0),
            compose(b"a", 10, 0),
            compose(b"a", -1, 0),
            compose(b"a", 2, 7),
            compose(b"a", 2, 3),
        ];
        keys.sort();
        let decoded: Vec<_> = keys.iter().map(|k| split(k).unwrap()).collect();
        assert_eq!(
            decoded,
            vec![
                (&b"a"[..], -1, 0),
                (&b"a"[..], 2, 3),
                (&b"a"[..], 2, 7),
                (&b"a"[..], 10, 0),
                (&b"b"[..], -5, 0),
            ]
        );
        assert!(split(b"short").is_none());
    }

    #[test]
    fn key_scans_skip_longer_keys_sharing_a_prefix() {
        let engine = crate::store::InMemoryKeyValueStore::new("w");
        for (key, time) in [(&b"a"[..], 1), (b"ab", 1), (b"a", 3), (b"ab", 2)] {
            engine
                .put(compose(key, time, 0), Bytes::from_static(b"v"))
                .unwrap();
        }
        let found: Vec<i64> = scan_key(&engine, b"a", 0, 10)
            .unwrap()
            .into_iter()
            .map(|(a, _, _)| a)
            .collect();
        assert_eq!(found, vec![1, 3]);
    }
}
