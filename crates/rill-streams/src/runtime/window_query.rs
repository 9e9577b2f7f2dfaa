//! Interactive queries of window and session stores: a key's windows in a time range, from
//! the local task holding the key's partition, or the owner to forward to.

use crate::error::{Result, StreamsError};
use crate::store::{Layout, Window, fetch_windows};

use super::query::{KeyQueryMetadata, QueryableStore};

/// Read-only access to a window or session store across the local tasks.
///
/// ```no_run
/// # fn demo(app: &rill_streams::StreamsApp) -> rill_streams::Result<()> {
/// let per_minute = app.window_store::<String, i64>("clicks-per-minute")?;
/// for (start, count) in per_minute.fetch(&"ann".to_string(), 0, 3_600_000)? {
///     println!("{start}: {count}");
/// }
/// # Ok(()) }
/// ```
pub struct QueryableWindowStore<K, V> {
    store: QueryableStore<K, V>,
    layout: Layout,
}

impl<K: 'static, V: 'static> QueryableWindowStore<K, V> {
    pub(crate) fn new(store: QueryableStore<K, V>, layout: Layout) -> Self {
        QueryableWindowStore { store, layout }
    }

    /// Which partition and instance hold `key`.
    pub fn metadata_for_key(&self, key: &K) -> Result<KeyQueryMetadata> {
        self.store.metadata_for_key(key)
    }

    /// The values of `key` whose window starts in `from..=to` (window stores) or overlaps it
    /// (session stores), as (window start, value); [`StreamsError::KeyNotLocal`] when
    /// another instance holds the key.
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        Ok(self
            .fetch_windows(key, from, to)?
            .into_iter()
            .map(|(window, value)| (window.start, value))
            .collect())
    }

    /// Like [`fetch`](Self::fetch), answering whole windows (window stores keep only the
    /// start: their `end` equals `start`).
    pub fn fetch_windows(&self, key: &K, from: i64, to: i64) -> Result<Vec<(Window, V)>> {
        let name = self.store.name();
        let key_bytes = self
            .store
            .key_serde()
            .serialize(name, key)
            .map_err(|source| StreamsError::Serde {
                topic: name.to_string(),
                what: "key",
                source,
            })?;
        let (partition, engine) = self.store.local_engine(&key_bytes);
        let Some(engine) = engine else {
            return Err(StreamsError::KeyNotLocal {
                store: name.to_string(),
                partition,
                owner: self.store.metadata_for_key(key)?.owner,
            });
        };
        fetch_windows(
            engine.as_ref(),
            &key_bytes,
            from,
            to,
            self.store.value_serde(),
            self.layout,
        )
    }
}
