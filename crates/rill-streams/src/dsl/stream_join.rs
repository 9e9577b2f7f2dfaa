//! Stream-stream joins within a join window (inner, left, outer).
//!
//! Each side's records wait in a changelogged window store for the join window's span, so
//! whichever side arrives first, the pair is found when the second arrives, also across
//! restarts. For left and outer joins a record that has found no partner yet also waits in a
//! time-ordered "unmatched" store; it is emitted alone only once no partner can come any more
//! (stream time past its time + before + after + grace), so there are no early results that a
//! later match would contradict.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Result;
use crate::graph::{StoreDef, StoreKind};
use crate::processor::{InitContext, Processor, ProcessorContext};
use crate::record::Record;
use crate::serde::DefaultSerde;
use crate::store::{KeyValueStore, WindowStore, time_bytes, time_from};

use super::KStream;
use super::ops::Map;
use super::window_aggregate::record_late;
use super::windows::JoinWindows;

type Joined<L, R, O> = Arc<dyn Fn(&L, &R) -> O + Send + Sync>;
/// Emits a record of one side that found no partner (`None`: that side's lone records are
/// dropped).
type Alone<T, O> = Option<Arc<dyn Fn(&T) -> O + Send + Sync>>;

impl<K, V> KStream<K, V>
where
    K: DefaultSerde + Clone,
    V: DefaultSerde + Clone,
{
    /// Joins records of this stream and `other` with the same key whose timestamps are
    /// within `windows`; each pair gives one output, timestamped with the later of the two.
    ///
    /// ```
    /// use rill_streams::{JoinWindows, StreamsBuilder, TopologyTestDriver};
    /// use std::time::Duration;
    ///
    /// let builder = StreamsBuilder::new();
    /// let orders = builder.stream::<String, String>("orders");
    /// let payments = builder.stream::<String, i64>("payments");
    /// orders
    ///     .join_stream(&payments, JoinWindows::of(Duration::from_secs(60)), |item, amount| {
    ///         format!("{item} paid {amount}")
    ///     })
    ///     .to("paid-orders");
    /// let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "shop").unwrap();
    /// driver.pipe("payments", &"o1".to_string(), &30i64, 5_000).unwrap();
    /// driver.pipe("orders", &"o1".to_string(), &"lamp".to_string(), 1_000).unwrap();
    /// let out = driver.read_output::<String, String>("paid-orders").unwrap();
    /// assert_eq!(out[0].value, "lamp paid 30");
    /// assert_eq!(out[0].timestamp, 5_000);
    /// ```
    pub fn join_stream<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        windows: JoinWindows,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        VO: DefaultSerde + Clone,
        VR: Clone + 'static,
    {
        self.stream_join(other, windows, Arc::new(joiner), None, None)
    }

    /// Like [`join_stream`](Self::join_stream), and a record of this stream that found no
    /// partner is emitted alone (with `None`) once its join window has closed.
    pub fn left_join_stream<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        windows: JoinWindows,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        VO: DefaultSerde + Clone,
        VR: Clone + 'static,
    {
        let joiner = Arc::new(joiner);
        let alone = joiner.clone();
        self.stream_join(
            other,
            windows,
            Arc::new(move |v, vo| joiner(v, Some(vo))),
            Some(Arc::new(move |v| alone(v, None))),
            None,
        )
    }

    /// Like [`join_stream`](Self::join_stream), and a record of either stream that found no
    /// partner is emitted alone once its join window has closed.
    pub fn outer_join_stream<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        windows: JoinWindows,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        VO: DefaultSerde + Clone,
        VR: Clone + 'static,
    {
        let joiner = Arc::new(joiner);
        let (this_alone, other_alone) = (joiner.clone(), joiner.clone());
        self.stream_join(
            other,
            windows,
            Arc::new(move |v, vo| joiner(Some(v), Some(vo))),
            Some(Arc::new(move |v| this_alone(Some(v), None))),
            Some(Arc::new(move |vo| other_alone(None, Some(vo)))),
        )
    }

    fn stream_join<VO, VR>(
        &self,
        other: &KStream<K, VO>,
        windows: JoinWindows,
        pair: Joined<V, VO, VR>,
        this_alone: Alone<V, VR>,
        other_alone: Alone<VO, VR>,
    ) -> KStream<K, VR>
    where
        VO: DefaultSerde + Clone,
        VR: Clone + 'static,
    {
        // Left and outer joins keep lone records until their window closes.
        let tracked = this_alone.is_some() || other_alone.is_some();
        let base = match windows.name {
            Some(name) => name.to_string(),
            None => self.graph.borrow_mut().next_name("KSTREAM-JOIN"),
        };
        let this_store = format!("{base}-this-store");
        let other_store = format!("{base}-other-store");
        let unmatched_store = format!("{base}-unmatched-store");
        let this = if self.key_changed {
            self.repartition(&format!("{base}-this"))
        } else {
            self.clone()
        };
        let that = if other.key_changed {
            other.repartition(&format!("{base}-other"))
        } else {
            other.clone()
        };
        let retention = Some(join_retention(&windows));
        let mut stores = vec![
            def(
                &this_store,
                retention,
                Arc::new(K::default_serde()),
                Arc::new(V::default_serde()),
            ),
            def(
                &other_store,
                retention,
                Arc::new(K::default_serde()),
                Arc::new(VO::default_serde()),
            ),
        ];
        if tracked {
            stores.push(def(
                &unmatched_store,
                None,
                Arc::new(Bytes::default_serde()),
                Arc::new(Bytes::default_serde()),
            ));
        }
        let names: Vec<String> = stores.iter().map(|s| s.name.clone()).collect();
        for store in stores {
            self.graph.borrow_mut().add_dsl_store(store);
        }
        let unmatched = (tracked).then(|| unmatched_store.clone());

        // This side: its records look for the other side's in [t - before, t + after].
        let left_side = JoinSideSpec {
            own: this_store.clone(),
            other: other_store.clone(),
            unmatched: unmatched.clone(),
            side: 0,
            before: windows.before,
            after: windows.after,
            windows,
            pair: pair.clone(),
            own_alone: this_alone.clone(),
            other_alone: other_alone.clone(),
        };
        let this_join: KStream<K, VR> =
            this.add_built("KSTREAM-JOINTHIS", names.clone(), false, move |ctx| {
                JoinSide::new(ctx, left_side.clone())
            });

        // The other side: its records look for this side's in [t - after, t + before].
        let flipped = pair.clone();
        let right_side = JoinSideSpec {
            own: other_store,
            other: this_store,
            unmatched,
            side: 1,
            before: windows.after,
            after: windows.before,
            windows,
            pair: Arc::new(move |vo: &VO, v: &V| flipped(v, vo)) as Joined<VO, V, VR>,
            own_alone: other_alone,
            other_alone: this_alone,
        };
        let other_join: KStream<K, VR> =
            that.add_built("KSTREAM-JOINOTHER", names, false, move |ctx| {
                JoinSide::new(ctx, right_side.clone())
            });

        let mut graph = self.graph.borrow_mut();
        let name = graph.next_name("KSTREAM-MERGE");
        let node = graph.add_processor(name, vec![this_join.node, other_join.node], vec![], || {
            Map::<K, VR, K, VR> {
                mapper: Arc::new(|key, value| (key, value)),
            }
        });
        drop(graph);
        KStream::new(self.graph.clone(), node, false)
    }
}

/// How long a join buffer keeps a record: while a partner within the windows can still come.
fn join_retention(windows: &JoinWindows) -> i64 {
    windows
        .before
        .saturating_add(windows.after)
        .saturating_add(windows.grace)
        .saturating_add(1)
}

fn def(
    name: &str,
    retention: Option<i64>,
    key_serde: Arc<dyn std::any::Any + Send + Sync>,
    value_serde: Arc<dyn std::any::Any + Send + Sync>,
) -> StoreDef {
    StoreDef {
        name: name.to_string(),
        // On the process's storage engine, as Kafka Streams keeps join buffers in RocksDB:
        // a buffer holds every record of its window's span, which under a backlog is every
        // record read, so in memory it grew with the input (the order system's email join
        // held all orders and payments of a run).
        kind: StoreKind::Persistent,
        logged: true,
        window_retention: retention,
        // A window store: its handle writes past the cache.
        caching: false,
        key_serde,
        value_serde,
    }
}

/// What one side of a join needs, shared by its task instances.
struct JoinSideSpec<VIn, VOther, VR> {
    own: String,
    other: String,
    unmatched: Option<String>,
    /// 0 for this side, 1 for the other: orders lone records of equal time in the
    /// unmatched store.
    side: u8,
    /// The other side's records joinable with one of ours at `t`: `[t - before, t + after]`.
    before: i64,
    after: i64,
    windows: JoinWindows,
    pair: Joined<VIn, VOther, VR>,
    own_alone: Alone<VIn, VR>,
    other_alone: Alone<VOther, VR>,
}

impl<VIn, VOther, VR> Clone for JoinSideSpec<VIn, VOther, VR> {
    fn clone(&self) -> Self {
        JoinSideSpec {
            own: self.own.clone(),
            other: self.other.clone(),
            unmatched: self.unmatched.clone(),
            side: self.side,
            before: self.before,
            after: self.after,
            windows: self.windows,
            pair: self.pair.clone(),
            own_alone: self.own_alone.clone(),
            other_alone: self.other_alone.clone(),
        }
    }
}

struct JoinSide<K, VIn, VOther, VR> {
    spec: JoinSideSpec<VIn, VOther, VR>,
    own: WindowStore<K, VIn>,
    other: WindowStore<K, VOther>,
    /// Lone records waiting to be emitted alone: only for left and outer joins.
    unmatched: Option<KeyValueStore<Bytes, Bytes>>,
}

impl<K: 'static, VIn: 'static, VOther: 'static, VR> JoinSide<K, VIn, VOther, VR> {
    /// Called in `init` (through `add_built`), when the stores can be handed over.
    fn new(ctx: &mut InitContext<'_>, spec: JoinSideSpec<VIn, VOther, VR>) -> Result<Self> {
        let retention = join_retention(&spec.windows);
        let unmatched = match &spec.unmatched {
            Some(name) => Some(ctx.key_value_store(name)?),
            None => None,
        };
        Ok(JoinSide {
            own: ctx.window_store(&spec.own, retention)?,
            other: ctx.window_store(&spec.other, retention)?,
            unmatched,
            spec,
        })
    }
}

/// Key of a lone record in the unmatched store: time, side, sequence number, key bytes.
fn unmatched_key(time: i64, side: u8, seq: i64, key: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(17 + key.len());
    out.put_slice(&time_bytes(time));
    out.put_u8(side);
    out.put_slice(&time_bytes(seq));
    out.put_slice(key);
    out.freeze()
}

impl<K, VIn, VOther, VR> JoinSide<K, VIn, VOther, VR>
where
    K: Clone + 'static,
    VIn: Clone + 'static,
    VOther: Clone + 'static,
    VR: Clone + 'static,
{
    /// Emits lone records that can no longer find a partner, oldest first.
    fn emit_expired(&self, ctx: &mut ProcessorContext<'_, K, VR>, stream_time: i64) -> Result<()> {
        let (Some(unmatched), own, other) = (&self.unmatched, &self.own, &self.other) else {
            return Ok(());
        };
        let windows = self.spec.windows;
        let span = windows
            .before
            .saturating_add(windows.after)
            .saturating_add(windows.grace);
        // Lone records older than `cutoff` are done; their keys sort below its 8 bytes.
        let cutoff = stream_time.saturating_sub(span);
        let bound = Bytes::copy_from_slice(&time_bytes(cutoff));
        for (entry, value) in unmatched.range(&Bytes::new(), &bound)? {
            if entry.len() < 17 {
                continue;
            }
            let time = time_from(&entry[..8]);
            let key = own.decode_key(&entry[17..])?;
            let output = if entry[8] == self.spec.side {
                let value = own.decode_value(&value)?;
                self.spec.own_alone.as_ref().map(|alone| alone(&value))
            } else {
                let value = other.decode_value(&value)?;
                self.spec.other_alone.as_ref().map(|alone| alone(&value))
            };
            unmatched.delete(&entry)?;
            if let Some(output) = output {
                ctx.forward(Record::new(key, output, time))?;
            }
        }
        Ok(())
    }
}

impl<K, VIn, VOther, VR> Processor<K, VIn, K, VR> for JoinSide<K, VIn, VOther, VR>
where
    K: Clone + 'static,
    VIn: Clone + 'static,
    VOther: Clone + 'static,
    VR: Clone + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        record: Record<K, VIn>,
    ) -> Result<()> {
        let (own, other) = (&self.own, &self.other);
        let time = record.timestamp;
        let stream_time = ctx.stream_time();
        // Our record's window closes at t + after (+ grace): later than that, it is late.
        if time
            .saturating_add(self.spec.after)
            .saturating_add(self.spec.windows.grace)
            < stream_time
        {
            record_late(ctx, "stream-stream join");
            return Ok(());
        }
        let seq = own.append(&record.key, time, &record.value)?;
        let partners = other.fetch_entries(
            &record.key,
            time.saturating_sub(self.spec.before),
            time.saturating_add(self.spec.after),
        )?;
        let key_bytes = match &self.unmatched {
            Some(_) => Some(own.key_bytes(&record.key)?),
            None => None,
        };
        for (other_time, other_seq, other_value) in &partners {
            let output = (self.spec.pair)(&record.value, other_value);
            if let (Some(unmatched), Some(key_bytes), Some(_)) =
                (&self.unmatched, &key_bytes, &self.spec.other_alone)
            {
                // The partner is matched now: it must not be emitted alone later.
                let lone = unmatched_key(*other_time, 1 - self.spec.side, *other_seq, key_bytes);
                if unmatched.get(&lone)?.is_some() {
                    unmatched.delete(&lone)?;
                }
            }
            ctx.forward(Record {
                key: record.key.clone(),
                value: output,
                timestamp: time.max(*other_time),
                headers: record.headers.clone(),
            })?;
        }
        if partners.is_empty()
            && self.spec.own_alone.is_some()
            && let (Some(unmatched), Some(key_bytes)) = (&self.unmatched, &key_bytes)
        {
            let lone = unmatched_key(time, self.spec.side, seq, key_bytes);
            unmatched.put(&lone, &own.value_bytes(&record.value)?)?;
        }
        own.expire(stream_time)?;
        self.emit_expired(ctx, stream_time)
    }
}
