//! State stores: key-value stores that processors read and write, backed by a changelog topic
//! and readable from other threads for interactive queries.
//!
//! Layers, from the bottom: an engine holding bytes ([`KeyValueBytesStore`]: in memory, or
//! persistent on disk), shared as `Arc` so interactive queries can read it while the task
//! writes; for key-value stores with a changelog, a record cache in front of the engine
//! ([`CachingKeyValueStore`], on by default) that holds a task's writes until it commits; a
//! processor-side typed handle ([`KeyValueStore`]) that serializes keys and values and logs
//! changes to the store's changelog partition (through the cache: one record per key and
//! commit); a read-only typed view for queries ([`ReadOnlyKeyValueStore`]). Keys are ordered by their serialized bytes, so range and prefix
//! scans follow that order.

mod cache;
mod memory;
mod persistent;
mod segmented;
mod window;

use std::cell::RefCell;
use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

pub(crate) use cache::{CacheBudget, CachingKeyValueStore, Flushed};
pub use memory::InMemoryKeyValueStore;
pub use persistent::{
    DEFAULT_MEMORY_BUDGET, Engine, PersistentKeyValueStore, default_cache_max_bytes,
    default_record_cache_bytes, set_memory_budget,
};
pub use segmented::{MIN_SEGMENT_INTERVAL, SegmentedStore, default_segment_interval};
pub(crate) use window::{Layout, fetch_windows, time_bytes, time_from};
pub use window::{ReadOnlyWindowStore, SessionStore, Window, WindowStore, Windowed, WindowedSerde};

use crate::collector::{OutputRecord, RecordCollector};
use crate::error::{Result, StreamsError};
use crate::serde::SharedSerde;

/// Key-value pairs from a scan, in key-byte order.
pub type KeyValues = Vec<(Bytes, Bytes)>;

/// A key-value store engine over bytes. Methods take `&self` (engines synchronize inside) so
/// one store can be written by its task and read by queries from other threads.
pub trait KeyValueBytesStore: Send + Sync + 'static {
    /// The store's name.
    fn name(&self) -> &str;
    /// The value of a key.
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>>;
    /// Sets a key.
    fn put(&self, key: Bytes, value: Bytes) -> Result<()>;
    /// Removes a key, answering its old value.
    fn delete(&self, key: &[u8]) -> Result<Option<Bytes>>;
    /// Pairs with keys within the bounds, in key order.
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KeyValues>;
    /// Approximate number of keys.
    fn approximate_len(&self) -> u64;
    /// Makes writes durable (persistent engines); called before a commit.
    fn flush(&self) -> Result<()>;
    /// Removes every key (before restoring from scratch).
    fn clear(&self) -> Result<()>;
    /// Whether the engine keeps data across restarts.
    fn persistent(&self) -> bool;
    /// Applies many changes at once (`None` deletes), as a restore does.
    fn put_batch(&self, pairs: Vec<(Bytes, Option<Bytes>)>) -> Result<()> {
        for (key, value) in pairs {
            match value {
                Some(value) => self.put(key, value)?,
                None => {
                    self.delete(&key)?;
                }
            }
        }
        Ok(())
    }
    /// The changelog offset up to which a persistent engine's contents are known valid.
    fn read_checkpoint(&self) -> Option<i64> {
        None
    }
    /// Records that the contents are valid up to `offset` of the changelog (after making them
    /// durable).
    fn write_checkpoint(&self, offset: i64) -> Result<()> {
        let _ = offset;
        Ok(())
    }
    /// Forgets the checkpoint, so that a crash before the next one forces a full restore.
    fn remove_checkpoint(&self) -> Result<()> {
        Ok(())
    }
    /// Engines of window and session stores kept in time segments ([`SegmentedStore`]) drop
    /// what `stream_time` expired and answer `true`; others answer `false` and leave expiry
    /// to the window store handle.
    fn expire_segments(&self, stream_time: i64) -> Result<bool> {
        let _ = stream_time;
        Ok(false)
    }
}

/// Pairs with keys starting with `prefix`.
pub(crate) fn prefix_range(store: &dyn KeyValueBytesStore, prefix: &[u8]) -> Result<KeyValues> {
    match prefix_successor(prefix) {
        Some(end) => store.range(Bound::Included(prefix), Bound::Excluded(&end)),
        None => store.range(Bound::Included(prefix), Bound::Unbounded),
    }
}

/// The smallest byte string greater than every string starting with `prefix`, if any.
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Where a processor-side store handle logs its changes.
#[derive(Clone)]
pub(crate) struct ChangelogTarget {
    pub topic: String,
    pub partition: i32,
    pub collector: Rc<RefCell<dyn RecordCollector>>,
}

impl ChangelogTarget {
    /// Sends changes leaving a record cache to the changelog.
    pub(crate) fn send_all(&self, changes: Vec<Flushed>) -> Result<()> {
        let mut collector = self.collector.borrow_mut();
        for change in changes {
            collector.send(OutputRecord {
                topic: self.topic.clone(),
                partition: Some(self.partition),
                key: Some(change.key),
                value: change.value,
                timestamp: change.timestamp,
                headers: Vec::new(),
            })?;
        }
        Ok(())
    }
}

/// A typed key-value store as a processor uses it: reads see the store's writes at once;
/// writes are logged to the changelog (when the store has one) as part of the task's next
/// commit. With a record cache (the default for stores with a changelog), writes wait in the
/// cache until that commit, so repeated writes of a key become one engine write and one
/// changelog record with the last value.
pub struct KeyValueStore<K, V> {
    engine: Arc<dyn KeyValueBytesStore>,
    /// The record cache, the same object as `engine` when the store has one.
    cache: Option<Arc<CachingKeyValueStore>>,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
    changelog: Option<ChangelogTarget>,
    /// Timestamp stamped on changelog records: the record being processed.
    clock: Rc<RefCell<i64>>,
}

impl<K: 'static, V: 'static> KeyValueStore<K, V> {
    pub(crate) fn new(
        engine: Arc<dyn KeyValueBytesStore>,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
        changelog: Option<ChangelogTarget>,
        clock: Rc<RefCell<i64>>,
    ) -> Self {
        Self {
            engine,
            cache: None,
            key_serde,
            value_serde,
            changelog,
            clock,
        }
    }

    /// Writes through `cache` (which must be the handle's engine) instead of the engine.
    pub(crate) fn with_cache(mut self, cache: Option<Arc<CachingKeyValueStore>>) -> Self {
        self.cache = cache;
        self
    }

    fn topic(&self) -> &str {
        self.engine.name()
    }

    fn key_bytes(&self, key: &K) -> Result<Bytes> {
        self.key_serde
            .serialize(self.topic(), key)
            .map_err(|source| StreamsError::Serde {
                topic: self.topic().to_string(),
                what: "key",
                source,
            })
    }

    fn decode_value(&self, bytes: &[u8]) -> Result<V> {
        self.value_serde
            .deserialize(self.topic(), bytes)
            .map_err(|source| StreamsError::Serde {
                topic: self.topic().to_string(),
                what: "value",
                source,
            })
    }

    fn decode_key(&self, bytes: &[u8]) -> Result<K> {
        self.key_serde
            .deserialize(self.topic(), bytes)
            .map_err(|source| StreamsError::Serde {
                topic: self.topic().to_string(),
                what: "key",
                source,
            })
    }

    fn log(&self, key: Bytes, value: Option<Bytes>) -> Result<()> {
        if let Some(changelog) = &self.changelog {
            changelog.collector.borrow_mut().send(OutputRecord {
                topic: changelog.topic.clone(),
                partition: Some(changelog.partition),
                key: Some(key),
                value,
                timestamp: *self.clock.borrow(),
                headers: Vec::new(),
            })?;
        }
        Ok(())
    }

    /// The value of `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let key = self.key_bytes(key)?;
        self.engine
            .get(&key)?
            .map(|bytes| self.decode_value(&bytes))
            .transpose()
    }

    /// Sets `key` to `value`.
    pub fn put(&self, key: &K, value: &V) -> Result<()> {
        let key = self.key_bytes(key)?;
        let value = self
            .value_serde
            .serialize(self.topic(), value)
            .map_err(|source| StreamsError::Serde {
                topic: self.topic().to_string(),
                what: "value",
                source,
            })?;
        if let Some(cache) = &self.cache {
            return self.write_cached(cache, key, Some(value));
        }
        self.engine.put(key.clone(), value.clone())?;
        self.log(key, Some(value))
    }

    /// Removes `key`, answering its old value.
    pub fn delete(&self, key: &K) -> Result<Option<V>> {
        let key_bytes = self.key_bytes(key)?;
        let old = match &self.cache {
            Some(cache) => {
                let old = cache.get(&key_bytes)?;
                self.write_cached(cache, key_bytes, None)?;
                old
            }
            None => {
                let old = self.engine.delete(&key_bytes)?;
                self.log(key_bytes, None)?;
                old
            }
        };
        old.map(|bytes| self.decode_value(&bytes)).transpose()
    }

    /// Caches a write; past the cache's bound, evicts older entries through to the engine and
    /// the changelog.
    fn write_cached(
        &self,
        cache: &CachingKeyValueStore,
        key: Bytes,
        value: Option<Bytes>,
    ) -> Result<()> {
        if !cache.write(key, value, *self.clock.borrow()) {
            return Ok(());
        }
        let mut evicted = Vec::new();
        cache.evict_into(&mut evicted)?;
        match &self.changelog {
            Some(changelog) => changelog.send_all(evicted),
            None => Ok(()),
        }
    }

    /// Pairs with keys in `from..=to` (by serialized key order).
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>> {
        let (from, to) = (self.key_bytes(from)?, self.key_bytes(to)?);
        self.decode_all(
            self.engine
                .range(Bound::Included(&from), Bound::Included(&to))?,
        )
    }

    /// Pairs whose serialized key starts with `prefix`.
    pub fn prefix_scan(&self, prefix: &[u8]) -> Result<Vec<(K, V)>> {
        self.decode_all(prefix_range(self.engine.as_ref(), prefix)?)
    }

    /// Every pair.
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        self.decode_all(self.engine.range(Bound::Unbounded, Bound::Unbounded)?)
    }

    fn decode_all(&self, pairs: KeyValues) -> Result<Vec<(K, V)>> {
        pairs
            .into_iter()
            .map(|(key, value)| Ok((self.decode_key(&key)?, self.decode_value(&value)?)))
            .collect()
    }
}

/// A read-only typed view of a store, for interactive queries from any thread.
pub struct ReadOnlyKeyValueStore<K, V> {
    engine: Arc<dyn KeyValueBytesStore>,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
}

impl<K, V> Clone for ReadOnlyKeyValueStore<K, V> {
    fn clone(&self) -> Self {
        Self {
            engine: self.engine.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

impl<K: 'static, V: 'static> ReadOnlyKeyValueStore<K, V> {
    pub(crate) fn new(
        engine: Arc<dyn KeyValueBytesStore>,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
    ) -> Self {
        Self {
            engine,
            key_serde,
            value_serde,
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let name = self.engine.name();
        let key = self
            .key_serde
            .serialize(name, key)
            .map_err(|source| StreamsError::Serde {
                topic: name.to_string(),
                what: "key",
                source,
            })?;
        match self.engine.get(&key)? {
            None => Ok(None),
            Some(bytes) => self
                .value_serde
                .deserialize(name, &bytes)
                .map(Some)
                .map_err(|source| StreamsError::Serde {
                    topic: name.to_string(),
                    what: "value",
                    source,
                }),
        }
    }

    /// Every pair, in key-byte order.
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        let name = self.engine.name();
        let decode_error = |what, source| StreamsError::Serde {
            topic: name.to_string(),
            what,
            source,
        };
        self.engine
            .range(Bound::Unbounded, Bound::Unbounded)?
            .into_iter()
            .map(|(key, value)| {
                Ok((
                    self.key_serde
                        .deserialize(name, &key)
                        .map_err(|e| decode_error("key", e))?,
                    self.value_serde
                        .deserialize(name, &value)
                        .map_err(|e| decode_error("value", e))?,
                ))
            })
            .collect()
    }

    /// Approximate number of keys.
    pub fn approximate_len(&self) -> u64 {
        self.engine.approximate_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor_carries_over_max_bytes() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 255]), Some(vec![2]));
        assert_eq!(prefix_successor(&[255, 255]), None);
    }
}
