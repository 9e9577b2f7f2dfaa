//! Interactive queries of key-value stores: the local instances of a store, and the owner of
//! any key from the instance registry.

use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::Arc;

use rill_log::partition_for_key;

use crate::error::{Result, StreamsError};
use crate::serde::SharedSerde;
use crate::store::KeyValueBytesStore;
use crate::task::TaskId;

use super::shared::Shared;

/// Where a key of a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyQueryMetadata {
    /// The partition of the key.
    pub partition: i32,
    /// Whether this instance holds it.
    pub local: bool,
    /// The `host:port` of the instance holding it, when known.
    pub owner: Option<String>,
}

/// Read-only access to a store across the local tasks, and the owner of any key.
pub struct QueryableStore<K, V> {
    shared: Arc<Shared>,
    name: String,
    partitions: i32,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: 'static, V: 'static> QueryableStore<K, V> {
    /// The store `name`, of `partitions` partitions, read with the given serdes.
    pub(super) fn new(
        shared: Arc<Shared>,
        name: String,
        partitions: i32,
        key_serde: SharedSerde<K>,
        value_serde: SharedSerde<V>,
    ) -> Self {
        QueryableStore {
            shared,
            name,
            partitions,
            key_serde,
            value_serde,
            _types: PhantomData,
        }
    }

    fn key_bytes(&self, key: &K) -> Result<bytes::Bytes> {
        self.key_serde
            .serialize(&self.name, key)
            .map_err(|source| StreamsError::Serde {
                topic: self.name.clone(),
                what: "key",
                source,
            })
    }

    /// The engine holding `key_bytes` on this instance, with the key's partition.
    pub(crate) fn local_engine(
        &self,
        key_bytes: &[u8],
    ) -> (i32, Option<Arc<dyn KeyValueBytesStore>>) {
        let partition = partition_for_key(key_bytes, self.partitions);
        let engine = self
            .shared
            .local_stores
            .read()
            .get(&self.name)
            .and_then(|p| p.get(&partition).cloned());
        (partition, engine)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn key_serde(&self) -> &SharedSerde<K> {
        &self.key_serde
    }

    pub(crate) fn value_serde(&self) -> &SharedSerde<V> {
        &self.value_serde
    }

    /// Which partition and instance hold `key`.
    pub fn metadata_for_key(&self, key: &K) -> Result<KeyQueryMetadata> {
        let partition = partition_for_key(&self.key_bytes(key)?, self.partitions);
        let local = self
            .shared
            .local_stores
            .read()
            .get(&self.name)
            .is_some_and(|parts| parts.contains_key(&partition));
        let task = self
            .shared
            .layout
            .store_subtopology
            .get(&self.name)
            .map(|&subtopology| TaskId {
                subtopology,
                partition,
            });
        // This instance's own tasks it knows first-hand; others' entries may lag the registry.
        let owner = if local {
            self.shared.application_server.clone()
        } else {
            self.shared.refresh_registry();
            task.and_then(|task| {
                self.shared
                    .instances
                    .read()
                    .values()
                    .find(|info| info.owns(task))
                    .and_then(|info| info.host.clone())
            })
        };
        Ok(KeyQueryMetadata {
            partition,
            local,
            owner,
        })
    }

    /// The value of `key` from this instance's active copy of its partition or, failing that,
    /// from a standby copy kept here (see `StreamsConfig::standby_replicas`), which may lag the
    /// active copy by what it has not read yet: a stale read, as Kafka Streams' stale stores.
    /// With neither, [`StreamsError::KeyNotLocal`] naming the owner.
    pub fn get_stale(&self, key: &K) -> Result<Option<V>> {
        let not_local = match self.get(key) {
            Err(error @ StreamsError::KeyNotLocal { .. }) => error,
            answer => return answer,
        };
        let key_bytes = self.key_bytes(key)?;
        let partition = partition_for_key(&key_bytes, self.partitions);
        let Some(&subtopology) = self.shared.layout.store_subtopology.get(&self.name) else {
            return Err(not_local);
        };
        let task = TaskId {
            subtopology,
            partition,
        };
        let changelog = rill_log::TopicPartition::new(
            crate::graph::changelog_topic(&self.shared.application_id, &self.name),
            partition,
        );
        match self.shared.standbys.get(task, &changelog, &key_bytes)? {
            None => Err(not_local),
            Some(None) => Ok(None),
            Some(Some(bytes)) => self
                .value_serde
                .deserialize(&self.name, &bytes)
                .map(Some)
                .map_err(|source| StreamsError::Serde {
                    topic: self.name.clone(),
                    what: "value",
                    source,
                }),
        }
    }

    /// The value of `key` if this instance holds its partition; otherwise
    /// [`StreamsError::KeyNotLocal`] naming the owner to forward to.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let key_bytes = self.key_bytes(key)?;
        let partition = partition_for_key(&key_bytes, self.partitions);
        let engine = self
            .shared
            .local_stores
            .read()
            .get(&self.name)
            .and_then(|p| p.get(&partition).cloned());
        let Some(engine) = engine else {
            let owner = self.metadata_for_key(key)?.owner;
            return Err(StreamsError::KeyNotLocal {
                store: self.name.clone(),
                partition,
                owner,
            });
        };
        match engine.get(&key_bytes)? {
            None => Ok(None),
            Some(bytes) => self
                .value_serde
                .deserialize(&self.name, &bytes)
                .map(Some)
                .map_err(|source| StreamsError::Serde {
                    topic: self.name.clone(),
                    what: "value",
                    source,
                }),
        }
    }

    /// Every pair held by this instance (all its partitions of the store), in serialized
    /// key order.
    pub fn all_local(&self) -> Result<Vec<(K, V)>> {
        self.scan_local(|engine| engine.range(Bound::Unbounded, Bound::Unbounded))
    }

    /// The pairs held by this instance with keys in `from..=to`, in serialized key order
    /// (strings: byte order; integers: big-endian, so negative numbers after positive ones).
    /// A range over a whole store needs every instance's answer: keys are spread over
    /// partitions by hash, so each instance holds some of any range.
    pub fn range_local(&self, from: &K, to: &K) -> Result<Vec<(K, V)>> {
        let (from, to) = (self.key_bytes(from)?, self.key_bytes(to)?);
        self.scan_local(|engine| engine.range(Bound::Included(&from), Bound::Included(&to)))
    }

    /// The pairs held by this instance whose serialized key starts with `prefix`, in key
    /// order.
    ///
    /// ```no_run
    /// # fn demo(app: &rill_streams::StreamsApp) -> rill_streams::Result<()> {
    /// let orders = app.store::<String, String>("orders-by-customer")?;
    /// let of_customer_7 = orders.prefix_scan_local(b"7/")?;
    /// # let _ = of_customer_7; Ok(()) }
    /// ```
    pub fn prefix_scan_local(&self, prefix: &[u8]) -> Result<Vec<(K, V)>> {
        self.scan_local(|engine| crate::store::prefix_range(engine, prefix))
    }

    /// Runs `scan` on every local partition of the store and decodes the pairs, merged in
    /// key order.
    fn scan_local(
        &self,
        scan: impl Fn(&dyn KeyValueBytesStore) -> Result<crate::store::KeyValues>,
    ) -> Result<Vec<(K, V)>> {
        let engines: Vec<Arc<dyn KeyValueBytesStore>> = self
            .shared
            .local_stores
            .read()
            .get(&self.name)
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default();
        let mut pairs = Vec::new();
        for engine in engines {
            pairs.extend(scan(engine.as_ref())?);
        }
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let decode = |what, source| StreamsError::Serde {
            topic: self.name.clone(),
            what,
            source,
        };
        pairs
            .into_iter()
            .map(|(key, value)| {
                Ok((
                    self.key_serde
                        .deserialize(&self.name, &key)
                        .map_err(|e| decode("key", e))?,
                    self.value_serde
                        .deserialize(&self.name, &value)
                        .map_err(|e| decode("value", e))?,
                ))
            })
            .collect()
    }
}
