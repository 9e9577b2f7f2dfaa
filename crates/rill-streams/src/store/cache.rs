//! The record cache in front of a key-value store (Kafka Streams' caching layer): a
//! processor's writes stay in memory until the task commits, so a key updated many times
//! within a commit interval costs one store write and one changelog record, with its last
//! value.
//!
//! [`CachingKeyValueStore`] wraps an engine and is itself an engine, so every reader (the
//! processor's handle, interactive queries from other threads, the test driver) sees cached
//! writes, cached deletes included. Only the typed handle ([`KeyValueStore`](super::KeyValueStore))
//! writes *into* the cache; writes through the engine interface (window stores, which log their
//! own changes, and restores) go straight to the engine and drop the key's cached entry.
//!
//! Entries leave the cache when the task commits ([`CachingKeyValueStore::flush_into`], called
//! before the commit, so under exactly-once their changelog records are part of the
//! transaction) or earlier when the application's caches together pass their byte bound
//! ([`CacheBudget`]): the store being written then evicts its least recently written entries,
//! writing each through to the engine and the changelog. A crash drops the cache with the rest
//! of the uncommitted work; the changelog, from which stores are restored, never saw it.
//!
//! Every entry is dirty: flushed entries leave the cache rather than stay as clean copies, since
//! the persistent engine keeps its own read cache (one copy of a value, one budget for reads).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use super::{KeyValueBytesStore, KeyValues};
use crate::error::Result;

/// Bookkeeping cost of an entry beyond its bytes: two map nodes, two `Bytes` headers and the
/// entry's fields. Kafka Streams counts a similar fixed overhead per entry.
const ENTRY_OVERHEAD: usize = 112;

/// The byte bound shared by the record caches of one stream thread (Kafka Streams'
/// `statestore.cache.max.bytes`, split over the threads as there).
#[derive(Debug)]
pub(crate) struct CacheBudget {
    max_bytes: usize,
    used: AtomicUsize,
}

impl CacheBudget {
    /// A budget of `max_bytes` (0 disables caching: nothing is wrapped then).
    pub(crate) fn new(max_bytes: usize) -> Arc<Self> {
        Arc::new(CacheBudget {
            max_bytes,
            used: AtomicUsize::new(0),
        })
    }

    pub(crate) fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    fn over(&self) -> bool {
        self.used.load(Ordering::Relaxed) > self.max_bytes
    }

    /// Bytes cached now by every store sharing the budget.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// A cached write: the new value (`None`: deleted) and the timestamp its changelog record gets.
struct Entry {
    value: Option<Bytes>,
    timestamp: i64,
    /// Position in `Dirty::order`: when the entry was last written.
    seq: u64,
}

fn entry_size(key: &[u8], value: &Option<Bytes>) -> usize {
    key.len() + value.as_ref().map_or(0, Bytes::len) + ENTRY_OVERHEAD
}

/// Writes since the last flush, by key (for reads and ranges) and by recency (for eviction
/// and for the flush order).
#[derive(Default)]
struct Dirty {
    entries: BTreeMap<Bytes, Entry>,
    order: BTreeMap<u64, Bytes>,
    next_seq: u64,
    bytes: usize,
}

impl Dirty {
    /// Removes `key`'s entry, answering it and its size.
    fn remove(&mut self, key: &[u8]) -> Option<(Bytes, Entry, usize)> {
        let (key, entry) = self.entries.remove_entry(key)?;
        self.order.remove(&entry.seq);
        let size = entry_size(&key, &entry.value);
        self.bytes -= size;
        Some((key, entry, size))
    }

    /// Removes the least recently written entry.
    fn pop_oldest(&mut self) -> Option<(Bytes, Entry, usize)> {
        let (_, key) = self.order.pop_first()?;
        let entry = self
            .entries
            .remove(&key)
            .expect("every key in the recency order has an entry");
        let size = entry_size(&key, &entry.value);
        self.bytes -= size;
        Some((key, entry, size))
    }
}

/// A change leaving the cache, to be logged to the store's changelog.
pub(crate) struct Flushed {
    pub key: Bytes,
    pub value: Option<Bytes>,
    pub timestamp: i64,
}

/// A key-value engine with a record cache in front (see the module documentation).
pub(crate) struct CachingKeyValueStore {
    inner: Arc<dyn KeyValueBytesStore>,
    dirty: Mutex<Dirty>,
    budget: Arc<CacheBudget>,
}

impl CachingKeyValueStore {
    pub(crate) fn new(inner: Arc<dyn KeyValueBytesStore>, budget: Arc<CacheBudget>) -> Self {
        CachingKeyValueStore {
            inner,
            dirty: Mutex::new(Dirty::default()),
            budget,
        }
    }

    /// Caches a write of `key` (`None` deletes it), to be logged with `timestamp`. Answers
    /// whether the budget is now exceeded, in which case the caller evicts
    /// ([`evict_into`](Self::evict_into)) and logs what comes out.
    pub(crate) fn write(&self, key: Bytes, value: Option<Bytes>, timestamp: i64) -> bool {
        let mut dirty = self.dirty.lock();
        let freed = dirty.remove(&key).map_or(0, |(_, _, size)| size);
        let size = entry_size(&key, &value);
        let seq = dirty.next_seq;
        dirty.next_seq += 1;
        dirty.order.insert(seq, key.clone());
        dirty.entries.insert(
            key,
            Entry {
                value,
                timestamp,
                seq,
            },
        );
        dirty.bytes += size;
        if size >= freed {
            self.budget.used.fetch_add(size - freed, Ordering::Relaxed);
        } else {
            self.budget.used.fetch_sub(freed - size, Ordering::Relaxed);
        }
        self.budget.over()
    }

    /// While the shared budget is exceeded, writes this store's least recently written
    /// entries through to the engine, answering them for the changelog (oldest first).
    pub(crate) fn evict_into(&self, out: &mut Vec<Flushed>) -> Result<()> {
        let mut dirty = self.dirty.lock();
        // Down to seven eighths of the bound, so that a full cache evicts in batches rather
        // than one entry per write.
        let target = self.budget.max_bytes - self.budget.max_bytes / 8;
        while self.budget.used() > target {
            let Some((key, entry, size)) = dirty.pop_oldest() else {
                break;
            };
            self.budget.used.fetch_sub(size, Ordering::Relaxed);
            self.write_through(&key, &entry.value)?;
            out.push(Flushed {
                key,
                value: entry.value,
                timestamp: entry.timestamp,
            });
        }
        Ok(())
    }

    /// Writes every cached entry to the engine, least recently written first, and empties
    /// the cache, answering the entries for the changelog. The cache stays locked until the
    /// engine has them all, so a concurrent reader never sees a key go back to an older value.
    pub(crate) fn flush_into(&self, out: &mut Vec<Flushed>) -> Result<()> {
        let mut dirty = self.dirty.lock();
        if dirty.entries.is_empty() {
            return Ok(());
        }
        let taken = std::mem::take(&mut dirty.order);
        for key in taken.into_values() {
            let entry = dirty
                .entries
                .get(&key)
                .expect("every key in the recency order has an entry");
            self.write_through(&key, &entry.value)?;
            let (key, entry) = dirty
                .entries
                .remove_entry(&key)
                .expect("the entry was just read");
            let size = entry_size(&key, &entry.value);
            dirty.bytes -= size;
            self.budget.used.fetch_sub(size, Ordering::Relaxed);
            out.push(Flushed {
                key,
                value: entry.value,
                timestamp: entry.timestamp,
            });
        }
        Ok(())
    }

    fn write_through(&self, key: &Bytes, value: &Option<Bytes>) -> Result<()> {
        match value {
            Some(value) => self.inner.put(key.clone(), value.clone()),
            None => self.inner.delete(key).map(|_| ()),
        }
    }

    /// Drops every cached entry without writing it (its work is given up).
    fn discard(&self) {
        let mut dirty = self.dirty.lock();
        self.budget.used.fetch_sub(dirty.bytes, Ordering::Relaxed);
        *dirty = Dirty::default();
    }

    /// Entries cached now.
    pub(crate) fn cached_len(&self) -> usize {
        self.dirty.lock().entries.len()
    }
}

impl Drop for CachingKeyValueStore {
    /// A task's caches die with it (closed, or rebuilt after a failure): their bytes go back to
    /// the thread's budget.
    fn drop(&mut self) {
        self.discard();
    }
}

impl KeyValueBytesStore for CachingKeyValueStore {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        if let Some(entry) = self.dirty.lock().entries.get(key) {
            return Ok(entry.value.clone());
        }
        // Not cached: the engine has the latest value, since a flush writes the engine before
        // it lets go of an entry.
        self.inner.get(key)
    }

    /// Writes through (window stores and other engine-level writers log their changes
    /// themselves), superseding a cached write of the key.
    fn put(&self, key: Bytes, value: Bytes) -> Result<()> {
        let mut dirty = self.dirty.lock();
        if let Some((_, _, size)) = dirty.remove(&key) {
            self.budget.used.fetch_sub(size, Ordering::Relaxed);
        }
        self.inner.put(key, value)
    }

    fn delete(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let mut dirty = self.dirty.lock();
        let cached = dirty.remove(key);
        let old = self.inner.delete(key)?;
        Ok(match cached {
            Some((_, entry, size)) => {
                self.budget.used.fetch_sub(size, Ordering::Relaxed);
                entry.value
            }
            None => old,
        })
    }

    /// The engine's pairs overlaid with the cached writes: a cached value replaces or adds a
    /// key, a cached delete hides it.
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KeyValues> {
        let empty = match (from, to) {
            (Bound::Included(a), Bound::Included(b)) => a > b,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
            | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
            _ => false,
        };
        if empty {
            return Ok(Vec::new());
        }
        // The cache first: what a flush moves on meanwhile is in the engine when it is read.
        let cached: Vec<(Bytes, Option<Bytes>)> = {
            let dirty = self.dirty.lock();
            dirty
                .entries
                .range::<[u8], _>((from, to))
                .map(|(key, entry)| (key.clone(), entry.value.clone()))
                .collect()
        };
        let stored = self.inner.range(from, to)?;
        if cached.is_empty() {
            return Ok(stored);
        }
        Ok(merge(stored, cached))
    }

    fn approximate_len(&self) -> u64 {
        self.inner.approximate_len() + self.cached_len() as u64
    }

    /// Makes the engine's writes durable. Cached entries are not among them: they reach the
    /// engine (and the changelog) when the task commits.
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    fn clear(&self) -> Result<()> {
        self.discard();
        self.inner.clear()
    }

    fn persistent(&self) -> bool {
        self.inner.persistent()
    }

    /// A restore: straight into the engine, superseding cached writes of the same keys (there
    /// are none while a task restores; this keeps a stray one from shadowing restored data).
    fn put_batch(&self, pairs: Vec<(Bytes, Option<Bytes>)>) -> Result<()> {
        let mut dirty = self.dirty.lock();
        if !dirty.entries.is_empty() {
            for (key, _) in &pairs {
                if let Some((_, _, size)) = dirty.remove(key) {
                    self.budget.used.fetch_sub(size, Ordering::Relaxed);
                }
            }
        }
        self.inner.put_batch(pairs)
    }

    fn read_checkpoint(&self) -> Option<i64> {
        self.inner.read_checkpoint()
    }

    fn write_checkpoint(&self, offset: i64) -> Result<()> {
        self.inner.write_checkpoint(offset)
    }

    fn remove_checkpoint(&self) -> Result<()> {
        self.inner.remove_checkpoint()
    }
}

/// Merges two key-ordered lists; `cached` wins on equal keys and its `None`s remove the key.
fn merge(stored: KeyValues, cached: Vec<(Bytes, Option<Bytes>)>) -> KeyValues {
    let mut out = Vec::with_capacity(stored.len() + cached.len());
    let mut stored = stored.into_iter().peekable();
    for (key, value) in cached {
        while let Some((next, _)) = stored.peek() {
            if *next >= key {
                break;
            }
            out.extend(stored.next());
        }
        if stored.peek().is_some_and(|(next, _)| *next == key) {
            stored.next();
        }
        if let Some(value) = value {
            out.push((key, value));
        }
    }
    out.extend(stored);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{InMemoryKeyValueStore, prefix_range};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn cached(budget: usize) -> (Arc<InMemoryKeyValueStore>, CachingKeyValueStore) {
        let inner = Arc::new(InMemoryKeyValueStore::new("s"));
        let store = CachingKeyValueStore::new(inner.clone(), CacheBudget::new(budget));
        (inner, store)
    }

    #[test]
    fn repeated_writes_of_a_key_flush_once_with_the_last_value() {
        let (inner, store) = cached(1 << 20);
        for i in 0..100 {
            store.write(b("k"), Some(b(&i.to_string())), i);
        }
        assert_eq!(
            inner.get(b"k").unwrap(),
            None,
            "nothing written before the flush"
        );
        assert_eq!(store.get(b"k").unwrap(), Some(b("99")));
        let mut out = Vec::new();
        store.flush_into(&mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!((&out[0].key, &out[0].value), (&b("k"), &Some(b("99"))));
        assert_eq!(out[0].timestamp, 99);
        assert_eq!(inner.get(b"k").unwrap(), Some(b("99")));
        assert_eq!(store.cached_len(), 0);
        assert_eq!(store.budget.used(), 0);
        out.clear();
        store.flush_into(&mut out).unwrap();
        assert!(out.is_empty(), "a second flush has nothing to write");
    }

    #[test]
    fn a_put_then_delete_flushes_a_tombstone_and_deletes_the_stored_key() {
        let (inner, store) = cached(1 << 20);
        inner.put(b("k"), b("old")).unwrap();
        store.write(b("k"), Some(b("new")), 1);
        store.write(b("k"), None, 2);
        assert_eq!(store.get(b"k").unwrap(), None);
        let mut out = Vec::new();
        store.flush_into(&mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value, None);
        assert_eq!(inner.get(b"k").unwrap(), None);
    }

    #[test]
    fn ranges_merge_cached_writes_and_deletes_with_the_engine() {
        let (inner, store) = cached(1 << 20);
        for key in ["a1", "a3", "a5", "b1"] {
            inner.put(b(key), b("stored")).unwrap();
        }
        store.write(b("a0"), Some(b("new")), 0); // before every stored key
        store.write(b("a3"), Some(b("updated")), 0);
        store.write(b("a4"), Some(b("new")), 0);
        store.write(b("a5"), None, 0); // a cached delete hides the stored key
        store.write(b("a9"), None, 0); // deleting a key the engine lacks hides nothing
        store.write(b("c1"), Some(b("new")), 0); // after every stored key
        let all = store.range(Bound::Unbounded, Bound::Unbounded).unwrap();
        let expected = [
            ("a0", "new"),
            ("a1", "stored"),
            ("a3", "updated"),
            ("a4", "new"),
            ("b1", "stored"),
            ("c1", "new"),
        ]
        .map(|(k, v)| (b(k), b(v)));
        assert_eq!(all, expected);
        let a = prefix_range(&store, b"a").unwrap();
        assert_eq!(a, expected[..4]);
        let inner_range = store
            .range(Bound::Excluded(b"a1"), Bound::Included(b"a5"))
            .unwrap();
        assert_eq!(inner_range, expected[2..4]);
        assert!(
            store
                .range(Bound::Included(b"z"), Bound::Included(b"a"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn passing_the_bound_evicts_the_least_recently_written_entries_through() {
        // Room for about ten entries of this size.
        let size = entry_size(b"k00", &Some(b("v")));
        let (inner, store) = cached(10 * size);
        let mut evicted = Vec::new();
        for i in 0..10 {
            assert!(!store.write(b(&format!("k{i:02}")), Some(b("v")), i));
        }
        // k00 is written again: now the most recent.
        assert!(!store.write(b("k00"), Some(b("v")), 10));
        assert!(store.write(b("k10"), Some(b("v")), 11), "over the bound");
        store.evict_into(&mut evicted).unwrap();
        let keys: Vec<Bytes> = evicted.iter().map(|f| f.key.clone()).collect();
        // Down to seven eighths of the bound: the three least recently written go, k00 stays.
        assert_eq!(keys, [b("k01"), b("k02"), b("k03")]);
        assert_eq!(inner.get(b"k01").unwrap(), Some(b("v")), "written through");
        assert_eq!(inner.get(b"k00").unwrap(), None, "still cached only");
        assert_eq!(store.cached_len(), 8);
        assert!(store.budget.used() <= 10 * size - 10 * size / 8);
        // The evicted keys read the same as before, from the engine now.
        assert_eq!(store.get(b"k01").unwrap(), Some(b("v")));
    }

    #[test]
    fn engine_level_writes_and_restores_go_straight_through_and_supersede_the_cache() {
        let (inner, store) = cached(1 << 20);
        store.write(b("a"), Some(b("cached")), 0);
        store.write(b("b"), Some(b("cached")), 0);
        store.write(b("c"), Some(b("cached")), 0);
        store.put(b("a"), b("direct")).unwrap();
        assert_eq!(inner.get(b"a").unwrap(), Some(b("direct")));
        assert_eq!(store.get(b"a").unwrap(), Some(b("direct")));
        assert_eq!(store.delete(b"b").unwrap(), Some(b("cached")));
        assert_eq!(store.get(b"b").unwrap(), None);
        store
            .put_batch(vec![(b("c"), Some(b("restored")))])
            .unwrap();
        assert_eq!(store.get(b"c").unwrap(), Some(b("restored")));
        let mut out = Vec::new();
        store.flush_into(&mut out).unwrap();
        assert!(out.is_empty(), "nothing left to log: {}", out.len());
        store.write(b("d"), Some(b("cached")), 0);
        store.clear().unwrap();
        assert_eq!(store.get(b"d").unwrap(), None);
        assert_eq!(store.budget.used(), 0);
    }

    #[test]
    fn caches_sharing_a_budget_give_their_bytes_back_when_dropped() {
        let budget = CacheBudget::new(1 << 20);
        let inner = Arc::new(InMemoryKeyValueStore::new("s"));
        let first = CachingKeyValueStore::new(inner.clone(), budget.clone());
        let second = CachingKeyValueStore::new(inner, budget.clone());
        first.write(b("k"), Some(b("v")), 0);
        second.write(b("k"), Some(b("v")), 0);
        assert_eq!(budget.used(), 2 * entry_size(b"k", &Some(b("v"))));
        drop(first);
        assert_eq!(budget.used(), entry_size(b"k", &Some(b("v"))));
        drop(second);
        assert_eq!(budget.used(), 0);
    }
}
