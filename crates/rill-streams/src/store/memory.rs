//! The in-memory key-value engine: a sorted map behind a read-write lock.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use parking_lot::RwLock;

use super::{KeyValueBytesStore, KeyValues};
use crate::error::Result;

/// A key-value engine in memory. Its contents are rebuilt from the changelog on start.
pub struct InMemoryKeyValueStore {
    name: String,
    map: RwLock<BTreeMap<Bytes, Bytes>>,
}

impl InMemoryKeyValueStore {
    /// An empty store.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            map: RwLock::new(BTreeMap::new()),
        }
    }
}

impl KeyValueBytesStore for InMemoryKeyValueStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.map.read().get(key).cloned())
    }

    fn put(&self, key: Bytes, value: Bytes) -> Result<()> {
        self.map.write().insert(key, value);
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.map.write().remove(key))
    }

    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<KeyValues> {
        let map = self.map.read();
        let pairs = map
            .range::<[u8], _>((from, to))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        Ok(pairs)
    }

    fn approximate_len(&self) -> u64 {
        self.map.read().len() as u64
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn clear(&self) -> Result<()> {
        self.map.write().clear();
        Ok(())
    }

    fn persistent(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::prefix_range;

    #[test]
    fn ranges_and_prefixes_follow_byte_order() {
        let store = InMemoryKeyValueStore::new("s");
        for key in ["a1", "a2", "b1", "a3"] {
            store.put(Bytes::from(key), Bytes::from("v")).unwrap();
        }
        let keys = |pairs: KeyValues| pairs.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(prefix_range(&store, b"a").unwrap()),
            ["a1", "a2", "a3"]
        );
        let range = store
            .range(Bound::Excluded(b"a1"), Bound::Included(b"b1"))
            .unwrap();
        assert_eq!(keys(range), ["a2", "a3", "b1"]);
        assert_eq!(store.delete(b"a2").unwrap(), Some(Bytes::from("v")));
        assert_eq!(store.approximate_len(), 3);
    }
}
