//! Versioned tables (Kafka's KIP-889): a table that also keeps each key's earlier values for a
//! while, so that a stream-table join can look a row up *as of the stream record's time*. A
//! late order then joins the price that held when it was placed, not the one that holds when
//! it arrives.
//!
//! The versions live in a second store, `<store>-history`: key `u32 length ++ key ++ time`
//! (time sortable, see `time_bytes`) -> `1 ++ value`, or `0` for a deletion. Versions older than
//! the history retention (by stream time) are dropped, except the newest of them per key: it
//! is still the value as of any time between it and the next version.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Result, StreamsError};
use crate::graph::StoreDef;
use crate::processor::{InitContext, Processor, ProcessorContext, PunctuationType, PunctuatorId};
use crate::record::Record;
use crate::serde::{DefaultSerde, SharedSerde, encode_present};
use crate::store::{KeyValueStore, time_bytes, time_from};

use super::KStream;
use super::builder::{StoreOptions, StreamsBuilder};
use super::table::{Change, KTable};

/// The name of a versioned table's history store.
pub(crate) fn history_store(store: &str) -> String {
    format!("{store}-history")
}

impl StreamsBuilder {
    /// A table of `topic` like [`table`](Self::table), that also keeps each key's earlier
    /// values for `history` of stream time: a stream joined with it
    /// ([`KStream::join`], [`KStream::left_join`]) finds the row as of each record's
    /// timestamp. The history orders a key's updates by their timestamps, whatever order they
    /// arrive in; the table itself (its store, table joins, queries) holds the latest arrival,
    /// as [`table`](Self::table) does. A lookup older than the retention may find nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rill_streams::{StoreOptions, StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// let prices = builder.versioned_table::<String, i64>(
    ///     "prices", StoreOptions::in_memory("prices"), Duration::from_secs(3600));
    /// builder
    ///     .stream::<String, i64>("orders")
    ///     .join(&prices, |quantity, price| quantity * price)
    ///     .to("order-totals");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
    /// let tea = "tea".to_string();
    /// driver.pipe("prices", &tea, &2i64, 0).unwrap();
    /// driver.pipe("prices", &tea, &3i64, 100).unwrap();
    /// driver.pipe("orders", &tea, &10i64, 50).unwrap(); // placed when tea cost 2
    /// let totals = driver.read_output::<String, i64>("order-totals").unwrap();
    /// assert_eq!(totals[0].value, 20);
    /// ```
    pub fn versioned_table<K, V>(
        &self,
        topic: &str,
        store: StoreOptions,
        history: Duration,
    ) -> KTable<K, V>
    where
        K: DefaultSerde + Clone,
        V: DefaultSerde + Clone,
    {
        let table = self.table::<K, V>(topic, store.clone());
        let history_name = history_store(&store.name);
        let bytes_serde: SharedSerde<Bytes> = Bytes::default_serde();
        self.graph.borrow_mut().add_dsl_store(StoreDef {
            name: history_name.clone(),
            kind: store.kind,
            logged: store.logged,
            window_retention: None,
            caching: store.caching,
            key_serde: Arc::new(bytes_serde.clone()),
            value_serde: Arc::new(bytes_serde),
        });
        let retention = i64::try_from(history.as_millis()).unwrap_or(i64::MAX);
        let changes: KStream<K, Change<V>> = KStream::new(self.graph.clone(), table.node, false);
        let recorder = history_name.clone();
        // A sink-less branch: it only writes the history.
        let _: KStream<K, ()> = changes.add_built(
            "KTABLE-VERSIONS",
            vec![history_name.clone()],
            false,
            move |ctx| {
                Ok(RecordVersions::<K, V> {
                    history: ctx.key_value_store(&recorder)?,
                    history_name: recorder.clone(),
                    retention,
                    key_serde: K::default_serde(),
                    value_serde: V::default_serde(),
                })
            },
        );
        self.graph
            .borrow_mut()
            .versioned
            .insert(store.name.clone(), history_name);
        table
    }
}

/// `u32 length ++ key`: the prefix of every version of a key.
pub(crate) fn version_prefix(key: &[u8]) -> BytesMut {
    let mut prefix = BytesMut::with_capacity(4 + key.len() + 8);
    prefix.put_u32(key.len() as u32);
    prefix.put_slice(key);
    prefix
}

/// The version of `key` that held at `time` in a history store, as [`encode_present`] wrote
/// it; `None` when no version that old is kept.
pub(crate) fn version_as_of(
    history: &KeyValueStore<Bytes, Bytes>,
    key: &[u8],
    time: i64,
) -> Result<Option<Bytes>> {
    let prefix = version_prefix(key);
    let mut from = prefix.clone();
    from.put_slice(&time_bytes(i64::MIN));
    let mut to = prefix;
    to.put_slice(&time_bytes(time));
    let versions = history.range(&from.freeze(), &to.freeze())?;
    Ok(versions.into_iter().next_back().map(|(_, value)| value))
}

/// Writes each table update into the history at its timestamp, and drops versions older than
/// the retention (keeping the newest of those per key).
struct RecordVersions<K, V> {
    /// The history store's name, for serde calls and their errors.
    history_name: String,
    history: KeyValueStore<Bytes, Bytes>,
    retention: i64,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
}

impl<K: 'static, V: 'static> RecordVersions<K, V> {
    fn serde_error(&self, what: &'static str, source: crate::SerdeError) -> StreamsError {
        StreamsError::Serde {
            topic: self.history_name.clone(),
            what,
            source,
        }
    }

    /// Drops the versions a lookup within the retention can no longer need.
    fn expire(&self, stream_time: i64) -> Result<()> {
        let history = &self.history;
        let cutoff = stream_time.saturating_sub(self.retention);
        let mut previous: Option<(Bytes, Bytes)> = None; // (key prefix, entry)
        for (entry, _) in history.all()? {
            let Some(prefix) = entry.get(..entry.len().saturating_sub(8)) else {
                continue;
            };
            let prefix = Bytes::copy_from_slice(prefix);
            let time = time_from(&entry[entry.len() - 8..]);
            if time > cutoff {
                previous = None;
                continue;
            }
            // Another old version of the same key: the earlier one is shadowed by this one.
            if let Some((previous_prefix, previous_entry)) = previous.take()
                && previous_prefix == prefix
            {
                history.delete(&previous_entry)?;
            }
            previous = Some((prefix, entry));
        }
        Ok(())
    }
}

impl<K, V> Processor<K, Change<V>, K, ()> for RecordVersions<K, V>
where
    K: Clone + 'static,
    V: Clone + 'static,
{
    fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<()> {
        if self.retention > 0 {
            let every = Duration::from_millis(u64::try_from(self.retention).unwrap_or(1).max(1));
            ctx.schedule(every, PunctuationType::StreamTime);
        }
        Ok(())
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, K, ()>,
        record: Record<K, Change<V>>,
    ) -> Result<()> {
        let key = self
            .key_serde
            .serialize(&self.history_name, &record.key)
            .map_err(|e| self.serde_error("key", e))?;
        let mut entry = version_prefix(&key);
        entry.put_slice(&time_bytes(record.timestamp));
        let value = encode_present(
            &self.value_serde,
            &self.history_name,
            record.value.new.as_ref(),
        )
        .map_err(|e| self.serde_error("value", e))?;
        self.history.put(&entry.freeze(), &value)
    }

    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_, K, ()>,
        _id: PunctuatorId,
        timestamp: i64,
    ) -> Result<()> {
        self.expire(timestamp)
    }
}
