//! Time-segmented engines for window and session stores, so that expiry drops whole segments
//! instead of deleting entries one by one (the design of Kafka Streams' segmented bytes stores).
//!
//! Window and session stores keep composite keys `key ++ a ++ b` (see the window module):
//! `a` is the window start or record time (window stores) or the session end (session
//! stores), the time by which an entry expires. A [`SegmentedStore`] places each entry in the
//! segment `a / interval` (rounded down), each segment an engine of its own: a map in memory,
//! or a keyspace of the state directory's fjall database ([`Engine`]).
//!
//! **Expiry.** The store tracks the stream time it has observed: the largest `a` put, or the
//! stream time its window handle reports. A segment whose times all lie before that time
//! less the retention is dropped whole (fjall deletes a keyspace in one step), and puts into
//! such a segment are skipped. Nothing is scanned, nothing is deleted key by key, and no
//! tombstone is logged: on a restore, the changelog's records of expired windows are skipped
//! by the same rule, since the restore advances the observed stream time as it goes. Expired
//! entries sharing a segment with live ones stay readable until the segment goes, as they
//! did under the sweep this replaces (which ran once per half retention).
//!
//! **Interval.** By default half the retention, at least a minute
//! ([`default_segment_interval`]): about three live segments, so a fetch reads a few engines
//! at most, and an expired entry lingers at most one interval.
//!
//! **On disk.** A store `name` in `<task dir>` keeps the keyspace `<task dir>/<name>` for its
//! checkpoint and its interval, and one keyspace `<task dir>/<name>/seg.<id>` per segment,
//! created on first use. A store found with another interval (or written before segments
//! existed) is cleared and restored from its changelog.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::RwLock;

use super::persistent::{Engine, PersistentKeyValueStore};
use super::window::{SUFFIX, split, time_from};
use super::{InMemoryKeyValueStore, KeyValueBytesStore, KeyValues};
use crate::error::{Result, StreamsError};

/// The smallest default segment interval: finer segments would mean many keyspaces for short
/// windows, each with its own memtable and files.
pub const MIN_SEGMENT_INTERVAL: i64 = 60_000;

/// The segment interval for `retention`: half of it, at least [`MIN_SEGMENT_INTERVAL`] (Kafka
/// Streams' default).
///
/// ```
/// use rill_streams::default_segment_interval;
/// assert_eq!(default_segment_interval(3_600_000), 1_800_000);
/// assert_eq!(default_segment_interval(1_000), 60_000);
/// ```
pub fn default_segment_interval(retention: i64) -> i64 {
    (retention / 2).max(MIN_SEGMENT_INTERVAL)
}

/// The key of the base keyspace recording the segment interval the segments were cut with.
const INTERVAL_KEY: &[u8] = b"segment-interval";

/// Segment keyspaces are `<store keyspace>/seg.<id>`.
const SEGMENT_PREFIX: &str = "seg.";

/// One segment's engine.
// Segments live behind an `Arc`, allocated once each: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Segment {
    Memory(InMemoryKeyValueStore),
    Disk(PersistentKeyValueStore),
}

impl Segment {
    fn kv(&self) -> &dyn KeyValueBytesStore {
        match self {
            Segment::Memory(store) => store,
            Segment::Disk(store) => store,
        }
    }
}

/// Where a persistent store's segments live.
struct Disk {
    engine: Arc<Engine>,
    /// The store's own keyspace: its checkpoint and interval.
    base: PersistentKeyValueStore,
    /// Read cache of each segment.
    cache_bytes: usize,
}

/// A key-value engine for window and session stores whose entries live in time segments (see
/// the module documentation). It answers like one ordered map of composite keys, less the
/// dropped segments, with one difference: a range whose two bounds share their key part (all
/// bytes but the last 16) reads only the segments of the times between the bounds, so keys
/// that extend that key part and lie in other segments are not seen (window stores skip
/// those anyway).
pub struct SegmentedStore {
    name: String,
    retention: i64,
    interval: i64,
    disk: Option<Disk>,
    segments: RwLock<BTreeMap<i64, Arc<Segment>>>,
    /// The largest stream time observed (`i64::MIN`: none yet).
    observed: AtomicI64,
    /// Segments dropped since the store was opened.
    dropped: AtomicU64,
}

impl std::fmt::Debug for SegmentedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentedStore")
            .field("name", &self.name)
            .field("retention", &self.retention)
            .field("interval", &self.interval)
            .field("segments", &self.segment_ids())
            .finish_non_exhaustive()
    }
}

impl SegmentedStore {
    /// A store in memory keeping entries for `retention` ms behind stream time, in segments
    /// of `interval` ms.
    pub fn in_memory(name: impl Into<String>, retention: i64, interval: i64) -> Self {
        SegmentedStore {
            name: name.into(),
            retention: retention.max(0),
            interval: interval.max(1),
            disk: None,
            segments: RwLock::new(BTreeMap::new()),
            observed: AtomicI64::new(i64::MIN),
            dropped: AtomicU64::new(0),
        }
    }

    /// Opens (creating if absent) the store `name` in `dir` as keyspaces of `engine`, with its
    /// existing segments; each segment gets a read cache of about `cache_bytes`.
    pub fn persistent(
        engine: &Arc<Engine>,
        dir: &Path,
        name: &str,
        retention: i64,
        interval: i64,
        cache_bytes: usize,
    ) -> Result<Self> {
        let base = PersistentKeyValueStore::open_in(engine, dir, name, 0)?;
        let store = SegmentedStore {
            disk: Some(Disk {
                engine: engine.clone(),
                base,
                cache_bytes,
            }),
            ..SegmentedStore::in_memory(name, retention, interval)
        };
        store.open_existing()?;
        Ok(store)
    }

    /// Opens the segments found in the engine, or drops them (and the checkpoint) when they
    /// were cut with another interval.
    fn open_existing(&self) -> Result<()> {
        let Some(disk) = &self.disk else {
            return Ok(());
        };
        let prefix = format!("{}/{SEGMENT_PREFIX}", disk.base.keyspace());
        let ids: Vec<i64> = disk
            .engine
            .keyspace_names()
            .iter()
            .filter_map(|name| name.strip_prefix(&prefix)?.parse().ok())
            .collect();
        let interval = Bytes::copy_from_slice(&self.interval.to_be_bytes());
        let same_layout = disk.base.get(INTERVAL_KEY)? == Some(interval.clone());
        let mut segments = self.segments.write();
        for id in ids {
            let segment = self.open_segment(disk, id)?;
            if same_layout {
                segments.insert(id, Arc::new(segment));
            } else if let Segment::Disk(store) = &segment {
                store.destroy()?;
            }
        }
        if !same_layout {
            // Also removes the checkpoint: the restore starts over and refills the segments.
            disk.base.clear()?;
            disk.base.put(Bytes::from_static(INTERVAL_KEY), interval)?;
            disk.base.flush()?;
        }
        // A lower bound of the stream time the store had seen, until the next put tells more.
        if let Some(newest) = segments.keys().next_back() {
            self.observed
                .store(newest.saturating_mul(self.interval), Ordering::Relaxed);
        }
        Ok(())
    }

    fn open_segment(&self, disk: &Disk, id: i64) -> Result<Segment> {
        Ok(Segment::Disk(PersistentKeyValueStore::open_in(
            &disk.engine,
            disk.base.path(),
            &format!("{SEGMENT_PREFIX}{id}"),
            disk.cache_bytes,
        )?))
    }

    /// The retention, ms.
    pub fn retention(&self) -> i64 {
        self.retention
    }

    /// The segment interval, ms.
    pub fn interval(&self) -> i64 {
        self.interval
    }

    /// The ids of the live segments, oldest first (segment `id` holds times from
    /// `id * interval` on).
    pub fn segment_ids(&self) -> Vec<i64> {
        self.segments.read().keys().copied().collect()
    }

    /// Segments dropped since the store was opened.
    pub fn segments_dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn segment_id(&self, time: i64) -> i64 {
        time.div_euclid(self.interval)
    }

    /// The oldest segment not expired by the observed stream time.
    fn oldest_live(&self) -> i64 {
        match self.observed.load(Ordering::Relaxed) {
            i64::MIN => i64::MIN,
            observed => self.segment_id(observed.saturating_sub(self.retention)),
        }
    }

    /// The expiry time of a composite key.
    fn time_of(&self, key: &[u8]) -> Result<i64> {
        if key.len() < SUFFIX {
            return Err(StreamsError::CorruptEntry {
                store: self.name.clone(),
                reason: format!(
                    "a key of {} bytes is not a window or session key (at least {SUFFIX})",
                    key.len()
                ),
            });
        }
        Ok(time_from(&key[key.len() - SUFFIX..]))
    }

    /// Advances the observed stream time to `time`, dropping the segments entirely before
    /// the new cutoff.
    fn observe(&self, time: i64) -> Result<()> {
        let before = self.observed.fetch_max(time, Ordering::Relaxed);
        if time <= before {
            return Ok(());
        }
        let oldest_live = self.segment_id(time.saturating_sub(self.retention));
        let has_expired = |segments: &BTreeMap<i64, Arc<Segment>>| {
            segments.keys().next().is_some_and(|&id| id < oldest_live)
        };
        if !has_expired(&self.segments.read()) {
            return Ok(());
        }
        let expired = {
            let mut segments = self.segments.write();
            let live = segments.split_off(&oldest_live);
            std::mem::replace(&mut *segments, live)
        };
        for segment in expired.into_values() {
            if let Segment::Disk(store) = segment.as_ref() {
                store.destroy()?;
            }
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The segment of `id`, created if needed.
    fn segment(&self, id: i64) -> Result<Arc<Segment>> {
        if let Some(segment) = self.segments.read().get(&id) {
            return Ok(segment.clone());
        }
        let mut segments = self.segments.write();
        if let Some(segment) = segments.get(&id) {
            return Ok(segment.clone());
        }
        let segment = Arc::new(match &self.disk {
            Some(disk) => self.open_segment(disk, id)?,
            None => Segment::Memory(InMemoryKeyValueStore::new(format!(
                "{}.{SEGMENT_PREFIX}{id}",
                self.name
            ))),
        });
        segments.insert(id, segment.clone());
        Ok(segment)
    }

    /// The segments a range between `from` and `to` may find entries in.
    fn segments_between(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Vec<Arc<Segment>> {
        fn bound_key(bound: Bound<&[u8]>) -> Option<(&[u8], i64, i64)> {
            match bound {
                Bound::Included(key) | Bound::Excluded(key) => split(key),
                Bound::Unbounded => None,
            }
        }
        let (mut low, high) = match (bound_key(from), bound_key(to)) {
            (Some((low_key, low, _)), Some((high_key, high, _))) if low_key == high_key => {
                (self.segment_id(low), self.segment_id(high))
            }
            _ => (i64::MIN, i64::MAX),
        };
        low = low.max(self.oldest_live());
        if low > high {
            return Vec::new();
        }
        self.segments
            .read()
            .range(low..=high)
            .map(|(_, segment)| segment.clone())
            .collect()
    }
}

impl KeyValueBytesStore for SegmentedStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let time = self.time_of(key)?;
        let segment = self.segments.read().get(&self.segment_id(time)).cloned();
        match segment {
            Some(segment) => segment.kv().get(key),
            None => Ok(None),
        }
    }

    /// Skips (like Kafka Streams) an entry whose segment has expired.
    fn put(&self, key: Bytes, value: Bytes) -> Result<()> {
        let time = self.time_of(&key)?;
        self.observe(time)?;
        let id = self.segment_id(time);
        if id < self.oldest_live() {
            return Ok(());
        }
        self.segment(id)?.kv().put(key, value)
    }

    fn delete(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let time = self.time_of(key)?;
        let segment = self.segments.read().get(&self.segment_id(time)).cloned();
        let Some(segment) = segment else {
            return Ok(None);
        };
        segment.kv().delete(key)
    }

    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KeyValues> {
        let mut pairs = Vec::new();
        let mut parts = 0;
        for segment in self.segments_between(from, to) {
            let found = segment.kv().range(from, to)?;
            parts += usize::from(!found.is_empty());
            pairs.extend(found);
        }
        // Each segment's pairs are in key order; keys of one key part are in time order
        // across segments too, but several key parts interleave.
        if parts > 1 {
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Ok(pairs)
    }

    fn approximate_len(&self) -> u64 {
        self.segments
            .read()
            .values()
            .map(|segment| segment.kv().approximate_len())
            .sum()
    }

    /// Spills every segment's unflushed writes, then makes them durable with one journal
    /// sync (the segments share the engine's journal).
    fn flush(&self) -> Result<()> {
        let Some(disk) = &self.disk else {
            return Ok(());
        };
        self.spill_segments()?;
        disk.base.flush()
    }

    fn clear(&self) -> Result<()> {
        let all = std::mem::take(&mut *self.segments.write());
        for segment in all.into_values() {
            if let Segment::Disk(store) = segment.as_ref() {
                store.destroy()?;
            }
        }
        self.observed.store(i64::MIN, Ordering::Relaxed);
        if let Some(disk) = &self.disk {
            disk.base.clear()?;
            disk.base.put(
                Bytes::from_static(INTERVAL_KEY),
                Bytes::copy_from_slice(&self.interval.to_be_bytes()),
            )?;
            disk.base.flush()?;
        }
        Ok(())
    }

    fn persistent(&self) -> bool {
        self.disk.is_some()
    }

    /// Applies a restore's changes in order: each advances the observed stream time, and
    /// those whose segment has expired by the end are skipped.
    fn put_batch(&self, pairs: Vec<(Bytes, Option<Bytes>)>) -> Result<()> {
        let mut by_segment: BTreeMap<i64, Vec<(Bytes, Option<Bytes>)>> = BTreeMap::new();
        for (key, value) in pairs {
            let time = self.time_of(&key)?;
            self.observe(time)?;
            by_segment
                .entry(self.segment_id(time))
                .or_default()
                .push((key, value));
        }
        for (id, changes) in by_segment.split_off(&self.oldest_live()) {
            self.segment(id)?.kv().put_batch(changes)?;
        }
        Ok(())
    }

    fn read_checkpoint(&self) -> Option<i64> {
        self.disk.as_ref()?.base.read_checkpoint()
    }

    fn write_checkpoint(&self, offset: i64) -> Result<()> {
        let Some(disk) = &self.disk else {
            return Ok(());
        };
        self.spill_segments()?;
        disk.base.write_checkpoint(offset)
    }

    fn remove_checkpoint(&self) -> Result<()> {
        match &self.disk {
            Some(disk) => disk.base.remove_checkpoint(),
            None => Ok(()),
        }
    }

    fn expire_segments(&self, stream_time: i64) -> Result<bool> {
        if stream_time != i64::MIN {
            self.observe(stream_time)?;
        }
        Ok(true)
    }
}

impl SegmentedStore {
    /// Moves every disk segment's unflushed writes into fjall (not yet durable).
    fn spill_segments(&self) -> Result<()> {
        let segments: Vec<Arc<Segment>> = self.segments.read().values().cloned().collect();
        for segment in segments {
            if let Segment::Disk(store) = segment.as_ref() {
                store.spill_writes()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::DefaultSerde;
    use crate::store::window::{Layout, ReadOnlyWindowStore, compose};
    use crate::store::{Window, Windowed};

    fn value(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    /// A window-layout view of `engine` with string keys and values.
    fn windows(engine: &Arc<SegmentedStore>) -> ReadOnlyWindowStore<String, String> {
        let engine: Arc<dyn KeyValueBytesStore> = engine.clone();
        ReadOnlyWindowStore::new(
            engine,
            String::default_serde(),
            String::default_serde(),
            Layout::Window,
        )
    }

    fn key(text: &str) -> Bytes {
        String::default_serde()
            .serialize("t", &text.to_string())
            .unwrap()
    }

    fn put(store: &SegmentedStore, k: &str, time: i64, v: &str) {
        store.put(compose(&key(k), time, 0), value(v)).unwrap();
    }

    #[test]
    fn expiry_drops_whole_segments_and_keeps_the_newer_ones() {
        // Segments of 10 ms, entries kept 20 ms behind stream time.
        let store = Arc::new(SegmentedStore::in_memory("w", 20, 10));
        for time in [0, 5, 12, 25, 31] {
            put(&store, "a", time, &format!("v{time}"));
        }
        // Stream time 31: the cutoff 11 lies in segment 1, so segment 0 is dropped whole.
        assert_eq!(store.segment_ids(), vec![1, 2, 3]);
        assert_eq!(store.segments_dropped(), 1);
        let view = windows(&store);
        let kept = |view: &ReadOnlyWindowStore<String, String>| -> Vec<i64> {
            view.fetch(&"a".to_string(), i64::MIN, i64::MAX)
                .unwrap()
                .into_iter()
                .map(|(time, _)| time)
                .collect()
        };
        assert_eq!(kept(&view), vec![12, 25, 31]);
        // Stream time 52 (cutoff 32): segments 1 and 2 go; 31 is expired but shares
        // segment 3 (30..40) with live times, so it stays until that segment goes.
        assert!(store.expire_segments(52).unwrap());
        assert_eq!(store.segment_ids(), vec![3]);
        assert_eq!(store.segments_dropped(), 3);
        assert_eq!(kept(&view), vec![31]);
        // A put into an expired segment is skipped; a live one starts a new segment.
        put(&store, "a", 20, "late");
        put(&store, "a", 45, "new");
        assert_eq!(store.segment_ids(), vec![3, 4]);
        assert_eq!(kept(&view), vec![31, 45]);
        assert_eq!(store.get(&compose(&key("a"), 20, 0)).unwrap(), None);
    }

    #[test]
    fn fetches_cross_segment_boundaries_in_time_and_key_order() {
        let store = Arc::new(SegmentedStore::in_memory("w", 1_000, 10));
        for (k, time) in [
            ("b", 25),
            ("a", 9),
            ("a", 10),
            ("b", 3),
            ("a", 29),
            ("c", 15),
        ] {
            put(&store, k, time, &format!("{k}{time}"));
        }
        assert_eq!(store.segment_ids(), vec![0, 1, 2]);
        let view = windows(&store);
        let a = "a".to_string();
        assert_eq!(
            view.fetch(&a, 5, 29).unwrap(),
            vec![(9, s("a9")), (10, s("a10")), (29, s("a29"))]
        );
        // Bounds inside one segment read only that one.
        assert_eq!(view.fetch(&a, 10, 19).unwrap(), vec![(10, s("a10"))]);
        // Every key, in key order then time order, across segments.
        let all: Vec<(String, i64)> = view
            .all()
            .unwrap()
            .into_iter()
            .map(|(windowed, _)| (windowed.key, windowed.window.start))
            .collect();
        let expected = [
            ("a", 9),
            ("a", 10),
            ("a", 29),
            ("b", 3),
            ("b", 25),
            ("c", 15),
        ];
        assert_eq!(all, expected.map(|(k, t)| (s(k), t)).to_vec());
        let ranged = view
            .fetch_key_range(&s("b"), &s("c"), 10, 30)
            .unwrap()
            .into_iter()
            .map(|(windowed, v)| (windowed.window.start, v))
            .collect::<Vec<_>>();
        assert_eq!(ranged, vec![(25, s("b25")), (15, s("c15"))]);
    }

    fn s(text: &str) -> String {
        text.to_string()
    }

    #[test]
    fn a_restore_skips_expired_records_and_fills_the_segments() {
        let store = Arc::new(SegmentedStore::in_memory("w", 20, 10));
        // A changelog as a live store would have written it: stream time climbs to 60.
        let batch: Vec<(Bytes, Option<Bytes>)> = [
            ("a", 1, Some("old")),
            ("a", 15, Some("x")),
            ("b", 42, Some("y")),
            ("a", 15, None),
            ("a", 45, Some("z")),
            ("c", 12, Some("expired when it came")),
            ("b", 60, Some("w")),
        ]
        .into_iter()
        .map(|(k, time, v)| (compose(&key(k), time, 0), v.map(value)))
        .collect();
        store.put_batch(batch).unwrap();
        // Stream time 60, cutoff 40: what fell in segments 0 to 3 never reaches an engine.
        assert_eq!(store.segment_ids(), vec![4, 6]);
        let view = windows(&store);
        let found: Vec<(String, i64, String)> = view
            .all()
            .unwrap()
            .into_iter()
            .map(|(windowed, v)| (windowed.key, windowed.window.start, v))
            .collect();
        assert_eq!(
            found,
            vec![
                (s("a"), 45, s("z")),
                (s("b"), 42, s("y")),
                (s("b"), 60, s("w"))
            ]
        );
    }

    #[test]
    fn a_session_spanning_segment_boundaries_lives_in_the_segment_of_its_end() {
        let store = Arc::new(SegmentedStore::in_memory("s", 100, 10));
        let session = |start: i64, end: i64| compose(&key("ann"), end, start);
        store.put(session(5, 27), value("long")).unwrap();
        store.put(session(31, 33), value("short")).unwrap();
        assert_eq!(store.segment_ids(), vec![2, 3]);
        let engine: Arc<dyn KeyValueBytesStore> = store.clone();
        let view = ReadOnlyWindowStore::<String, String>::new(
            engine,
            String::default_serde(),
            String::default_serde(),
            Layout::Session,
        );
        // Sessions overlapping 0..=8 and 20..=40: the long one starts in segment 0.
        assert_eq!(
            view.fetch_windows(&s("ann"), 0, 8).unwrap(),
            vec![(Window::new(5, 27), s("long"))]
        );
        assert_eq!(
            view.fetch_windows(&s("ann"), 20, 40).unwrap(),
            vec![
                (Window::new(5, 27), s("long")),
                (Window::new(31, 33), s("short"))
            ]
        );
        // It expires by its end: at stream time 131 (cutoff 31) the segment of its end
        // (20..30) goes, the other stays.
        store.expire_segments(131).unwrap();
        assert_eq!(store.segment_ids(), vec![3]);
        let all = view.all().unwrap();
        assert_eq!(
            all,
            vec![(Windowed::new(s("ann"), Window::new(31, 33)), s("short"))]
        );
    }

    #[test]
    fn persistent_segments_survive_a_reopen_and_dropped_ones_leave_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let task = dir.path().join("app").join("0_0");
        let open = |interval| {
            let engine = Engine::of(dir.path()).unwrap();
            Arc::new(
                SegmentedStore::persistent(&engine, &task, "w", 20, interval, 1 << 20).unwrap(),
            )
        };
        let segment_keyspaces = || {
            let mut names: Vec<String> = Engine::of(dir.path())
                .unwrap()
                .keyspace_names()
                .into_iter()
                .filter(|name| name.contains("/seg."))
                .collect();
            names.sort();
            names
        };
        {
            let store = open(10);
            assert!(store.persistent());
            for time in [3, 14, 25] {
                put(&store, "a", time, &format!("v{time}"));
            }
            store.write_checkpoint(7).unwrap();
        }
        assert_eq!(
            segment_keyspaces(),
            ["app/0_0/w/seg.0", "app/0_0/w/seg.1", "app/0_0/w/seg.2"]
        );
        {
            let store = open(10);
            assert_eq!(store.read_checkpoint(), Some(7));
            assert_eq!(store.segment_ids(), vec![0, 1, 2]);
            let view = windows(&store);
            assert_eq!(
                view.fetch(&s("a"), 0, 30).unwrap(),
                vec![(3, s("v3")), (14, s("v14")), (25, s("v25"))]
            );
            // Stream time 41 (cutoff 21): segments 0 and 1 are deleted, keyspace and directory.
            store.expire_segments(41).unwrap();
            assert_eq!(store.segment_ids(), vec![2]);
            assert_eq!(segment_keyspaces(), ["app/0_0/w/seg.2"]);
            assert!(!task.join("w").join("seg.0").exists());
            assert!(task.join("w").join("seg.2").join("keyspace").is_file());
            store.flush().unwrap();
        }
        // Another interval (the retention changed): the segments would be cut differently,
        // so the store starts over, without a checkpoint, and the restore refills it.
        let store = open(5);
        assert_eq!(store.read_checkpoint(), None);
        assert!(store.segment_ids().is_empty());
        assert!(segment_keyspaces().is_empty());
        put(&store, "a", 30, "again");
        assert_eq!(store.segment_ids(), vec![6]);
    }

    #[test]
    fn a_cleared_store_loses_its_segments_and_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::of(dir.path()).unwrap();
        let store = SegmentedStore::persistent(&engine, dir.path(), "w", 100, 10, 0).unwrap();
        put(&store, "a", 5, "x");
        put(&store, "a", 55, "y");
        store.write_checkpoint(3).unwrap();
        store.clear().unwrap();
        assert!(store.segment_ids().is_empty());
        assert_eq!(store.read_checkpoint(), None);
        assert_eq!(store.approximate_len(), 0);
        // The expiry clock starts over too: an old time is live again.
        put(&store, "a", 5, "z");
        assert_eq!(
            store.get(&compose(&key("a"), 5, 0)).unwrap(),
            Some(value("z"))
        );
        assert!(matches!(
            store.put(value("short"), value("v")),
            Err(StreamsError::CorruptEntry { .. })
        ));
    }
}
