//! Suppression of windowed results until their window closes: only each window's final value
//! goes downstream. Updates wait in a changelogged buffer ordered by closing time, so a
//! restart neither loses nor repeats them.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Result, StreamsError};
use crate::graph::StoreDef;
use crate::processor::{InitContext, Processor, ProcessorContext, PunctuationType, PunctuatorId};
use crate::record::Record;
use crate::serde::{DefaultSerde, SharedSerde, decode_present, encode_present};
use crate::store::{KeyValueStore, Windowed, time_bytes, time_from};

use super::KStream;
use super::table::{Change, KTable};

impl<K, V> KTable<Windowed<K>, V>
where
    K: DefaultSerde + Clone,
    V: DefaultSerde + Clone,
{
    /// Emits only the final result of each window, once stream time has passed its end plus
    /// the grace period. Tables of count and event-interval windows already emit only
    /// closed windows and are returned unchanged.
    ///
    /// ```
    /// use rill_streams::{StoreOptions, StreamsBuilder, TimeWindows, TopologyTestDriver, Windowed};
    /// use std::time::Duration;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of(Duration::from_millis(10)))
    ///     .count(StoreOptions::in_memory("clicks"))
    ///     .suppress_until_window_closes()
    ///     .to_stream()
    ///     .to("final-counts");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
    /// for time in [1, 2, 3, 12] {
    ///     driver.pipe("clicks", &"ann".to_string(), &"/".to_string(), time).unwrap();
    /// }
    /// let out = driver.read_output::<Windowed<String>, i64>("final-counts").unwrap();
    /// assert_eq!(out.len(), 1); // [0, 10) closed at 12; [10, 20) is still open
    /// assert_eq!(out[0].value, 3);
    /// ```
    pub fn suppress_until_window_closes(&self) -> KTable<Windowed<K>, V> {
        self.suppress_into(None)
    }

    /// Like [`suppress_until_window_closes`](Self::suppress_until_window_closes), its buffer
    /// named `<name>-buffer` (and its changelog after it) rather than after its place in the
    /// topology: a topology that changes elsewhere then keeps the buffered windows.
    pub fn suppress_until_window_closes_named(&self, name: &str) -> KTable<Windowed<K>, V> {
        self.suppress_into(Some(name))
    }

    fn suppress_into(&self, name: Option<&str>) -> KTable<Windowed<K>, V> {
        let close_after = self
            .graph
            .borrow()
            .window_close_after
            .get(&self.node)
            .copied();
        let close_after = match close_after {
            Some(Some(after)) => after,
            Some(None) => return self.clone(),
            None => {
                self.graph
                    .borrow_mut()
                    .errors
                    .push(StreamsError::NotWindowed {
                        operation: "suppress_until_window_closes",
                    });
                return self.clone();
            }
        };
        let changes: KStream<Windowed<K>, Change<V>> =
            KStream::new(self.graph.clone(), self.node, false);
        let name = match name {
            Some(name) => name.to_string(),
            None => self.graph.borrow_mut().next_name("KTABLE-SUPPRESS"),
        };
        let buffer = format!("{name}-buffer");
        self.graph.borrow_mut().add_dsl_store(StoreDef {
            name: buffer.clone(),
            kind: crate::graph::StoreKind::InMemory,
            logged: true,
            window_retention: None,
            caching: true,
            key_serde: Arc::new(Bytes::default_serde()),
            value_serde: Arc::new(Bytes::default_serde()),
        });
        let node: KStream<Windowed<K>, Change<V>> =
            changes.add_built("KTABLE-SUPPRESS", vec![buffer.clone()], false, move |ctx| {
                Ok(Suppress::<K, V> {
                    buffer: ctx.key_value_store(&buffer)?,
                    buffer_name: buffer.clone(),
                    close_after,
                    key_serde: Windowed::<K>::default_serde(),
                    value_serde: V::default_serde(),
                })
            });
        self.graph
            .borrow_mut()
            .window_close_after
            .insert(node.node, None);
        KTable::new(self.graph.clone(), node.node, None)
    }
}

/// Buffers the latest value of each open window under `closing time ++ windowed key` and
/// forwards the buffered values whose closing time stream time has reached.
struct Suppress<K, V> {
    /// The buffer store's name, for serde calls and their errors.
    buffer_name: String,
    buffer: KeyValueStore<Bytes, Bytes>,
    /// How long after a window's end it closes.
    close_after: i64,
    key_serde: SharedSerde<Windowed<K>>,
    value_serde: SharedSerde<V>,
}

impl<K: Clone + 'static, V: Clone + 'static> Suppress<K, V> {
    fn serde_error(&self, what: &'static str, source: crate::SerdeError) -> StreamsError {
        StreamsError::Serde {
            topic: self.buffer_name.clone(),
            what,
            source,
        }
    }

    /// Forwards every buffered window that has closed by `stream_time`, in closing order.
    fn emit_closed(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
        stream_time: i64,
    ) -> Result<()> {
        let buffer = &self.buffer;
        // Entries closing at or before `stream_time` sort below the 8 bytes of the next ms.
        let bound = Bytes::copy_from_slice(&time_bytes(stream_time.saturating_add(1)));
        for (entry, value) in buffer.range(&Bytes::new(), &bound)? {
            let key = self
                .key_serde
                .deserialize(&self.buffer_name, &entry[8..])
                .map_err(|e| self.serde_error("key", e))?;
            let value = self
                .value_serde
                .deserialize(&self.buffer_name, &value)
                .map_err(|e| self.serde_error("value", e))?;
            buffer.delete(&entry)?;
            let timestamp = key.window.end;
            ctx.forward(Record::new(
                key,
                Change {
                    new: Some(value),
                    old: None,
                },
                timestamp,
            ))?;
        }
        Ok(())
    }
}

impl<K: Clone + 'static, V: Clone + 'static>
    Processor<Windowed<K>, Change<V>, Windowed<K>, Change<V>> for Suppress<K, V>
{
    fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<()> {
        // Windows close as stream time advances, whether or not this node sees a record.
        ctx.schedule(Duration::from_millis(1), PunctuationType::StreamTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
        record: Record<Windowed<K>, Change<V>>,
    ) -> Result<()> {
        let buffer = &self.buffer;
        let key = self
            .key_serde
            .serialize(&self.buffer_name, &record.key)
            .map_err(|e| self.serde_error("key", e))?;
        let close = record.key.window.end.saturating_add(self.close_after);
        let mut entry = BytesMut::with_capacity(8 + key.len());
        entry.put_slice(&time_bytes(close));
        entry.put_slice(&key);
        let entry = entry.freeze();
        match &record.value.new {
            Some(value) => {
                let value = self
                    .value_serde
                    .serialize(&self.buffer_name, value)
                    .map_err(|e| self.serde_error("value", e))?;
                buffer.put(&entry, &value)?;
            }
            // A retracted window (a session merged into another) has no final result.
            None => {
                buffer.delete(&entry)?;
            }
        }
        self.emit_closed(ctx, ctx.stream_time())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
        _punctuator: PunctuatorId,
        timestamp: i64,
    ) -> Result<()> {
        self.emit_closed(ctx, timestamp)
    }
}

impl<K, V> KTable<K, V>
where
    K: DefaultSerde + Clone,
    V: DefaultSerde + Clone,
{
    /// Rate-limits a table's updates (Kafka Streams' `suppress(untilTimeLimit(..))`): the
    /// first update of a key waits `time_limit` of stream time, later updates of that key
    /// replace its value meanwhile, and then only the latest goes downstream. At most
    /// `max_keys` keys wait; when one more arrives the one waiting longest goes at once. The
    /// buffer is two changelogged stores named after `name` (`<name>-buffer`,
    /// `<name>-index`), so a restart neither loses nor repeats an update.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rill_streams::{StoreOptions, StreamsBuilder, TopologyTestDriver};
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .table::<String, i64>("prices", StoreOptions::in_memory("prices"))
    ///     .suppress_until_time_limit(Duration::from_millis(10), 1_000, "price-updates")
    ///     .to_stream()
    ///     .to("prices-every-10ms");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
    /// for (item, price, time) in [("tea", 1i64, 0), ("tea", 2, 4), ("jam", 9, 12)] {
    ///     driver.pipe("prices", &item.to_string(), &price, time).unwrap();
    /// }
    /// // Tea's two prices came within its 10 ms: only the latest went out, once stream time
    /// // passed 10; jam's waits until 22.
    /// let out = driver.read_output::<String, i64>("prices-every-10ms").unwrap();
    /// let sent: Vec<(String, i64)> = out.into_iter().map(|r| (r.key, r.value)).collect();
    /// assert_eq!(sent, vec![("tea".to_string(), 2)]);
    /// ```
    pub fn suppress_until_time_limit(
        &self,
        time_limit: Duration,
        max_keys: usize,
        name: &str,
    ) -> KTable<K, V> {
        let buffer = format!("{name}-buffer");
        let index = format!("{name}-index");
        for (store, value_serde) in [
            (
                &buffer,
                Arc::new(Bytes::default_serde()) as Arc<dyn std::any::Any + Send + Sync>,
            ),
            (&index, Arc::new(i64::default_serde())),
        ] {
            self.graph.borrow_mut().add_dsl_store(StoreDef {
                name: store.clone(),
                kind: crate::graph::StoreKind::InMemory,
                logged: true,
                window_retention: None,
                caching: true,
                key_serde: Arc::new(Bytes::default_serde()),
                value_serde,
            });
        }
        let changes: KStream<K, Change<V>> = KStream::new(self.graph.clone(), self.node, false);
        let limit = i64::try_from(time_limit.as_millis()).unwrap_or(i64::MAX);
        let node: KStream<K, Change<V>> = changes.add_built(
            "KTABLE-SUPPRESS-TIME",
            vec![buffer.clone(), index.clone()],
            false,
            move |ctx| {
                let index: KeyValueStore<Bytes, i64> = ctx.key_value_store(&index)?;
                Ok(TimeLimit::<K, V> {
                    waiting: index.all()?.len(),
                    index,
                    buffer: ctx.key_value_store(&buffer)?,
                    buffer_name: buffer.clone(),
                    limit,
                    max_keys: max_keys.max(1),
                    key_serde: K::default_serde(),
                    value_serde: V::default_serde(),
                })
            },
        );
        KTable::new(self.graph.clone(), node.node, None)
    }
}

/// Holds each key's latest update until its time limit, in a buffer ordered by emit time
/// (`emit time ++ key` -> `1 ++ value`, or `0` for a deletion) with an index from key to
/// emit time.
struct TimeLimit<K, V> {
    /// The buffer store's name, for serde calls and their errors.
    buffer_name: String,
    buffer: KeyValueStore<Bytes, Bytes>,
    index: KeyValueStore<Bytes, i64>,
    /// Keys waiting (counted at init from the restored index).
    waiting: usize,
    limit: i64,
    max_keys: usize,
    key_serde: SharedSerde<K>,
    value_serde: SharedSerde<V>,
}

impl<K: Clone + 'static, V: Clone + 'static> TimeLimit<K, V> {
    fn serde_error(&self, what: &'static str, source: crate::SerdeError) -> StreamsError {
        StreamsError::Serde {
            topic: self.buffer_name.clone(),
            what,
            source,
        }
    }

    /// Forwards buffered updates in emit-time order: those due by `stream_time`, and then the
    /// oldest while more than `max_keys` wait.
    fn emit(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        stream_time: i64,
    ) -> Result<()> {
        let (buffer, index) = (&self.buffer, &self.index);
        // Entries due by `stream_time` sort below the 8 bytes of the next ms.
        let bound = Bytes::copy_from_slice(&time_bytes(stream_time.saturating_add(1)));
        let mut entries = buffer.range(&Bytes::new(), &bound)?;
        if self.waiting.saturating_sub(entries.len()) > self.max_keys {
            // Too many wait even after these: the oldest of the rest go too (rare, so the
            // whole buffer may be read).
            entries = buffer.all()?;
        }
        for (entry, value) in entries {
            let due = time_from(&entry);
            if due > stream_time && self.waiting <= self.max_keys {
                break;
            }
            let key_bytes = entry.slice(8..);
            let key = self
                .key_serde
                .deserialize(&self.buffer_name, &key_bytes)
                .map_err(|e| self.serde_error("key", e))?;
            let new = decode_present(&self.value_serde, &self.buffer_name, &value)
                .map_err(|e| self.serde_error("value", e))?;
            buffer.delete(&entry)?;
            index.delete(&key_bytes)?;
            self.waiting = self.waiting.saturating_sub(1);
            ctx.forward(Record::new(
                key,
                Change { new, old: None },
                due.min(stream_time),
            ))?;
        }
        Ok(())
    }
}

impl<K: Clone + 'static, V: Clone + 'static> Processor<K, Change<V>, K, Change<V>>
    for TimeLimit<K, V>
{
    fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<()> {
        // Limits run out as stream time advances, whether or not this node sees a record.
        ctx.schedule(Duration::from_millis(1), PunctuationType::StreamTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        record: Record<K, Change<V>>,
    ) -> Result<()> {
        let (buffer, index) = (&self.buffer, &self.index);
        let key = self
            .key_serde
            .serialize(&self.buffer_name, &record.key)
            .map_err(|e| self.serde_error("key", e))?;
        // A key already waiting keeps its place; a new one waits from this record's time.
        let due = match index.get(&key)? {
            Some(due) => due,
            None => {
                self.waiting += 1;
                let due = record.timestamp.saturating_add(self.limit);
                index.put(&key, &due)?;
                due
            }
        };
        let mut entry = BytesMut::with_capacity(8 + key.len());
        entry.put_slice(&time_bytes(due));
        entry.put_slice(&key);
        let value = encode_present(
            &self.value_serde,
            &self.buffer_name,
            record.value.new.as_ref(),
        )
        .map_err(|e| self.serde_error("value", e))?;
        buffer.put(&entry.freeze(), &value)?;
        let stream_time = ctx.stream_time();
        self.emit(ctx, stream_time)
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        _punctuator: PunctuatorId,
        timestamp: i64,
    ) -> Result<()> {
        self.emit(ctx, timestamp)
    }
}
