//! Foreign-key table-table joins (Kafka's KIP-213): each row of the left table is joined with
//! the row of the right table whose key it names in its value, e.g. orders with their
//! customer. The two tables may be partitioned differently, so the join runs in three steps
//! through two internal topics:
//!
//! 1. **Subscribe** (left side): every change of a left row sends a subscription, keyed by the
//!    foreign key, to `<application>-<store>-fk-subscription-repartition`: "left key K, whose
//!    value hashes to H, wants the right row F" (or, when the row left F or was deleted, an
//!    unsubscription).
//! 2. **Answer** (right side, co-partitioned with the right table): the subscriptions are kept
//!    in a store (foreign key + left key -> hash). A subscription is answered at once with the
//!    right row as it is; a change of a right row is sent to every subscriber of its key. The
//!    answers go, keyed by the left key, to `<application>-<store>-fk-response-repartition`.
//! 3. **Resolve** (left side): an answer is joined with the left row as it is now, and dropped
//!    when the row's hash differs from the one subscribed with: the row changed since, and the
//!    answer to its newer subscription is on its way.
//!
//! The result is materialized, so its changes carry old values and can be re-grouped. All
//! four inputs (the two tables and the two internal topics) need the same partition count,
//! which the runtime checks at start.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Result, StreamsError};
use crate::graph::StoreDef;
use crate::processor::{Processor, ProcessorContext};
use crate::record::Record;
use crate::serde::{BytesSerde, DefaultSerde, I64Serde, Serde, SerdeError, SharedSerde};
use crate::store::KeyValueStore;

use super::KStream;
use super::builder::StoreOptions;
use super::table::{Change, KTable, materialize_updates};

/// Takes the foreign key out of a left row (`None`: it joins nothing).
type ForeignKey<VL, KR> = Arc<dyn Fn(&VL) -> Option<KR> + Send + Sync>;
/// Joins a left row with its right row (`None` only in a left join).
type FkJoiner<VL, VR, VO> = Arc<dyn Fn(&VL, Option<&VR>) -> Option<VO> + Send + Sync>;

impl<KL, VL> KTable<KL, VL>
where
    KL: DefaultSerde + Clone,
    VL: DefaultSerde + Clone,
{
    /// Joins each row with the row of `right` whose key `foreign_key` takes from its value
    /// (an inner join: rows without a matching right row are absent). The result is kept in
    /// `store`; see the [module documentation](self) for how it runs.
    ///
    /// ```
    /// use rill_streams::{StoreOptions, StreamsBuilder};
    /// let builder = StreamsBuilder::new();
    /// // order id -> customer id; customer id -> name
    /// let orders = builder.table::<String, i64>("orders", StoreOptions::persistent("orders"));
    /// let customers = builder.table::<i64, String>("customers", StoreOptions::persistent("customers"));
    /// let with_names = orders.join_foreign(
    ///     &customers,
    ///     |customer: &i64| Some(*customer),
    ///     |customer, name: &String| format!("{name} (customer {customer})"),
    ///     StoreOptions::persistent("orders-with-names"),
    /// );
    /// with_names.to_stream().to("orders-with-names");
    /// ```
    pub fn join_foreign<KR, VR, VO>(
        &self,
        right: &KTable<KR, VR>,
        foreign_key: impl Fn(&VL) -> Option<KR> + Send + Sync + 'static,
        joiner: impl Fn(&VL, &VR) -> VO + Send + Sync + 'static,
        store: StoreOptions,
    ) -> KTable<KL, VO>
    where
        KR: DefaultSerde + Clone + PartialEq,
        VR: DefaultSerde + Clone,
        VO: DefaultSerde + Clone,
    {
        let joiner: FkJoiner<VL, VR, VO> =
            Arc::new(move |left, right| right.map(|right| joiner(left, right)));
        self.foreign_join(right, Arc::new(foreign_key), joiner, store)
    }

    /// Like [`join_foreign`](Self::join_foreign), but a row whose foreign key has no right
    /// row (or no foreign key) is joined with `None`.
    pub fn left_join_foreign<KR, VR, VO>(
        &self,
        right: &KTable<KR, VR>,
        foreign_key: impl Fn(&VL) -> Option<KR> + Send + Sync + 'static,
        joiner: impl Fn(&VL, Option<&VR>) -> VO + Send + Sync + 'static,
        store: StoreOptions,
    ) -> KTable<KL, VO>
    where
        KR: DefaultSerde + Clone + PartialEq,
        VR: DefaultSerde + Clone,
        VO: DefaultSerde + Clone,
    {
        let joiner: FkJoiner<VL, VR, VO> = Arc::new(move |left, right| Some(joiner(left, right)));
        self.foreign_join(right, Arc::new(foreign_key), joiner, store)
    }

    fn foreign_join<KR, VR, VO>(
        &self,
        right: &KTable<KR, VR>,
        foreign_key: ForeignKey<VL, KR>,
        joiner: FkJoiner<VL, VR, VO>,
        store: StoreOptions,
    ) -> KTable<KL, VO>
    where
        KR: DefaultSerde + Clone + PartialEq,
        VR: DefaultSerde + Clone,
        VO: DefaultSerde + Clone,
    {
        let (Some(left_store), Some(right_store)) = (self.store.clone(), right.store.clone())
        else {
            self.graph
                .borrow_mut()
                .errors
                .push(StreamsError::NotMaterialized {
                    operation: "a foreign-key join",
                });
            return KTable::new(self.graph.clone(), self.node, None);
        };
        let subscriptions_store = format!("{}-fk-subscriptions", store.name);
        let entry_serde: SharedSerde<Bytes> = Arc::new(BytesSerde);
        let hash_serde: SharedSerde<i64> = Arc::new(I64Serde);
        self.graph.borrow_mut().add_dsl_store(StoreDef {
            name: subscriptions_store.clone(),
            kind: store.kind,
            logged: store.logged,
            window_retention: None,
            caching: store.caching,
            key_serde: Arc::new(entry_serde),
            value_serde: Arc::new(hash_serde),
        });

        // 1. Subscribe, by foreign key (a row's old foreign key is unsubscribed from).
        self.want_old_values();
        let left_changes: KStream<KL, Change<VL>> =
            KStream::new(self.graph.clone(), self.node, false);
        let subscriptions: KStream<KR, Subscription> = left_changes
            .add("KTABLE-FK-SUBSCRIBE", vec![], true, {
                let foreign_key = foreign_key.clone();
                move || Subscribe {
                    foreign_key: foreign_key.clone(),
                    left_key_serde: KL::default_serde(),
                    left_value_serde: VL::default_serde(),
                }
            })
            .repartition_with(
                &format!("{}-fk-subscription", store.name),
                KR::default_serde(),
                Arc::new(SubscriptionSerde),
            );

        // 2. Answer, next to the right table.
        let right_changes: KStream<KR, Change<VR>> =
            KStream::new(self.graph.clone(), right.node, false);
        let right_side = subscriptions
            .map_values(RightInput::Subscription)
            .merge(&right_changes.map_values(RightInput::Right));
        let responses: KStream<KL, Response<VR>> = right_side
            .add_built(
                "KTABLE-FK-ANSWER",
                vec![subscriptions_store.clone(), right_store.clone()],
                true,
                {
                    let subscriptions_store = subscriptions_store.clone();
                    move |ctx| {
                        Ok(Answer::<KR, VR, KL> {
                            subscriptions: ctx.key_value_store(&subscriptions_store)?,
                            right: ctx.key_value_store(&right_store)?,
                            foreign_key_serde: KR::default_serde(),
                            left_key_serde: KL::default_serde(),
                        })
                    }
                },
            )
            .repartition_with(
                &format!("{}-fk-response", store.name),
                KL::default_serde(),
                Arc::new(ResponseSerde(VR::default_serde())),
            );

        // 3. Resolve against the left row as it is now.
        let resolved: KStream<KL, Option<VO>> =
            responses.add_built("KTABLE-FK-RESOLVE", vec![left_store.clone()], false, {
                let joiner = joiner.clone();
                move |ctx| {
                    Ok(Resolve::<KL, VL, VR, VO> {
                        left: ctx.key_value_store(&left_store)?,
                        left_value_serde: VL::default_serde(),
                        joiner: joiner.clone(),
                    })
                }
            });
        // A row that was deleted, or names no foreign key, leaves the result at once (a left
        // join keeps a row without a foreign key, joined with nothing).
        let left_only: KStream<KL, Option<VO>> = left_changes.flat_map_values({
            move |change: Change<VL>| match &change.new {
                None => vec![None],
                Some(value) if foreign_key(value).is_none() => vec![joiner(value, None)],
                Some(_) => Vec::new(),
            }
        });
        materialize_updates(&resolved.merge(&left_only), store)
    }
}

/// 64-bit FNV-1a of a row's bytes: stable across processes and versions, unlike std's hasher,
/// since the hash travels through a topic and is compared by another task.
fn row_hash(bytes: &[u8]) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

/// Step 1's message: a left row (by its key's bytes) subscribes to, or leaves, a right row.
#[derive(Debug, Clone, PartialEq)]
struct Subscription {
    left_key: Bytes,
    /// Hash of the left row's bytes; `None` unsubscribes.
    hash: Option<i64>,
}

struct SubscriptionSerde;

impl Serde<Subscription> for SubscriptionSerde {
    fn serialize(&self, _topic: &str, value: &Subscription) -> Result<Bytes, SerdeError> {
        let mut out = BytesMut::with_capacity(9 + value.left_key.len());
        match value.hash {
            Some(hash) => {
                out.put_u8(1);
                out.put_i64(hash);
            }
            None => out.put_u8(0),
        }
        out.put_slice(&value.left_key);
        Ok(out.freeze())
    }

    fn deserialize(&self, _topic: &str, bytes: &[u8]) -> Result<Subscription, SerdeError> {
        let bad = || SerdeError {
            format: "fk subscription",
            reason: "truncated or unknown record".into(),
        };
        match bytes.split_first() {
            Some((1, rest)) => {
                let (hash, key) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
                Ok(Subscription {
                    left_key: Bytes::copy_from_slice(key),
                    hash: Some(i64::from_be_bytes(*hash)),
                })
            }
            Some((0, key)) => Ok(Subscription {
                left_key: Bytes::copy_from_slice(key),
                hash: None,
            }),
            _ => Err(bad()),
        }
    }
}

/// Step 2's answer to a left row: the hash it subscribed with, and the right row.
#[derive(Debug, Clone, PartialEq)]
struct Response<VR> {
    hash: i64,
    right: Option<VR>,
}

struct ResponseSerde<VR>(SharedSerde<VR>);

impl<VR: 'static> Serde<Response<VR>> for ResponseSerde<VR> {
    fn serialize(&self, topic: &str, value: &Response<VR>) -> Result<Bytes, SerdeError> {
        let mut out = BytesMut::new();
        out.put_i64(value.hash);
        if let Some(right) = &value.right {
            out.put_u8(1);
            out.put_slice(&self.0.serialize(topic, right)?);
        } else {
            out.put_u8(0);
        }
        Ok(out.freeze())
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Response<VR>, SerdeError> {
        let bad = || SerdeError {
            format: "fk response",
            reason: "truncated or unknown record".into(),
        };
        let (hash, rest) = bytes.split_first_chunk::<8>().ok_or_else(bad)?;
        let right = match rest.split_first() {
            Some((1, value)) => Some(self.0.deserialize(topic, value)?),
            Some((0, [])) => None,
            _ => return Err(bad()),
        };
        Ok(Response {
            hash: i64::from_be_bytes(*hash),
            right,
        })
    }
}

/// Step 1: turns left row changes into subscriptions by foreign key.
struct Subscribe<KL, VL, KR> {
    foreign_key: ForeignKey<VL, KR>,
    left_key_serde: SharedSerde<KL>,
    left_value_serde: SharedSerde<VL>,
}

impl<KL, VL, KR> Processor<KL, Change<VL>, KR, Subscription> for Subscribe<KL, VL, KR>
where
    KL: 'static,
    VL: 'static,
    KR: Clone + PartialEq + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KR, Subscription>,
        record: Record<KL, Change<VL>>,
    ) -> Result<()> {
        let serde_error = |what, source| StreamsError::Serde {
            topic: "foreign-key join".into(),
            what,
            source,
        };
        let left_key = self
            .left_key_serde
            .serialize("", &record.key)
            .map_err(|e| serde_error("key", e))?;
        let old_fk = record
            .value
            .old
            .as_ref()
            .and_then(|v| (self.foreign_key)(v));
        let new_fk = record
            .value
            .new
            .as_ref()
            .and_then(|v| (self.foreign_key)(v));
        if let Some(old_fk) = old_fk
            && new_fk.as_ref() != Some(&old_fk)
        {
            let leave = Subscription {
                left_key: left_key.clone(),
                hash: None,
            };
            ctx.forward(Record::new(old_fk, leave, record.timestamp))?;
        }
        if let (Some(new_fk), Some(new)) = (new_fk, &record.value.new) {
            let bytes = self
                .left_value_serde
                .serialize("", new)
                .map_err(|e| serde_error("value", e))?;
            let join = Subscription {
                left_key,
                hash: Some(row_hash(&bytes)),
            };
            ctx.forward(Record::new(new_fk, join, record.timestamp))?;
        }
        Ok(())
    }
}

/// What reaches step 2: a subscription, or a change of a right row.
#[derive(Debug, Clone)]
enum RightInput<VR> {
    Subscription(Subscription),
    Right(Change<VR>),
}

/// Step 2: keeps subscriptions per foreign key and answers them with the right row.
struct Answer<KR, VR, KL> {
    /// `u32 length of the foreign key, foreign key, left key` -> hash.
    subscriptions: KeyValueStore<Bytes, i64>,
    right: KeyValueStore<KR, VR>,
    foreign_key_serde: SharedSerde<KR>,
    left_key_serde: SharedSerde<KL>,
}

impl<KR: 'static, VR, KL: 'static> Answer<KR, VR, KL> {
    fn prefix(&self, foreign_key: &KR) -> Result<BytesMut> {
        let bytes = self
            .foreign_key_serde
            .serialize("", foreign_key)
            .map_err(|source| StreamsError::Serde {
                topic: "foreign-key join".into(),
                what: "key",
                source,
            })?;
        let mut prefix = BytesMut::with_capacity(4 + bytes.len());
        prefix.put_u32(bytes.len() as u32);
        prefix.put_slice(&bytes);
        Ok(prefix)
    }

    fn left_key(&self, bytes: &[u8]) -> Result<KL> {
        self.left_key_serde
            .deserialize("", bytes)
            .map_err(|source| StreamsError::Serde {
                topic: "foreign-key join".into(),
                what: "key",
                source,
            })
    }
}

impl<KR, VR, KL> Processor<KR, RightInput<VR>, KL, Response<VR>> for Answer<KR, VR, KL>
where
    KR: 'static,
    VR: Clone + 'static,
    KL: Clone + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KL, Response<VR>>,
        record: Record<KR, RightInput<VR>>,
    ) -> Result<()> {
        let (subscriptions, right) = (&self.subscriptions, &self.right);
        let prefix = self.prefix(&record.key)?;
        match &record.value {
            RightInput::Subscription(subscription) => {
                let mut entry = prefix;
                entry.put_slice(&subscription.left_key);
                let entry = entry.freeze();
                match subscription.hash {
                    None => {
                        subscriptions.delete(&entry)?;
                    }
                    Some(hash) => {
                        subscriptions.put(&entry, &hash)?;
                        let response = Response {
                            hash,
                            right: right.get(&record.key)?,
                        };
                        let left_key = self.left_key(&subscription.left_key)?;
                        ctx.forward(Record::new(left_key, response, record.timestamp))?;
                    }
                }
            }
            RightInput::Right(change) => {
                let prefix_len = prefix.len();
                for (entry, hash) in subscriptions.prefix_scan(&prefix)? {
                    let left_key = self.left_key(&entry[prefix_len..])?;
                    let response = Response {
                        hash,
                        right: change.new.clone(),
                    };
                    ctx.forward(Record::new(left_key, response, record.timestamp))?;
                }
            }
        }
        Ok(())
    }
}

/// Step 3: joins an answer with the left row, unless the row changed since it subscribed.
struct Resolve<KL, VL, VR, VO> {
    left: KeyValueStore<KL, VL>,
    left_value_serde: SharedSerde<VL>,
    joiner: FkJoiner<VL, VR, VO>,
}

impl<KL, VL, VR, VO> Processor<KL, Response<VR>, KL, Option<VO>> for Resolve<KL, VL, VR, VO>
where
    KL: Clone + 'static,
    VL: 'static,
    VR: 'static,
    VO: Clone + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KL, Option<VO>>,
        record: Record<KL, Response<VR>>,
    ) -> Result<()> {
        let Some(row) = self.left.get(&record.key)? else {
            // Deleted since; its deletion already left the result.
            return Ok(());
        };
        let bytes = self
            .left_value_serde
            .serialize("", &row)
            .map_err(|source| StreamsError::Serde {
                topic: "foreign-key join".into(),
                what: "value",
                source,
            })?;
        if row_hash(&bytes) != record.value.hash {
            return Ok(());
        }
        let joined = (self.joiner)(&row, record.value.right.as_ref());
        ctx.forward(record.with_value(joined))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::StringSerde;

    #[test]
    fn internal_messages_round_trip() {
        let subscription = Subscription {
            left_key: Bytes::from_static(b"order-1"),
            hash: Some(-5),
        };
        let bytes = SubscriptionSerde.serialize("t", &subscription).unwrap();
        assert_eq!(
            SubscriptionSerde.deserialize("t", &bytes).unwrap(),
            subscription
        );
        let leave = Subscription {
            left_key: Bytes::from_static(b"order-1"),
            hash: None,
        };
        let bytes = SubscriptionSerde.serialize("t", &leave).unwrap();
        assert_eq!(SubscriptionSerde.deserialize("t", &bytes).unwrap(), leave);
        assert!(SubscriptionSerde.deserialize("t", &[7]).is_err());

        let serde = ResponseSerde::<String>(Arc::new(StringSerde));
        for response in [
            Response {
                hash: 3,
                right: Some("ann".to_string()),
            },
            Response {
                hash: 3,
                right: None,
            },
        ] {
            let bytes = serde.serialize("t", &response).unwrap();
            assert_eq!(serde.deserialize("t", &bytes).unwrap(), response);
        }
    }

    #[test]
    fn the_row_hash_is_fnv_1a() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(row_hash(b"") as u64, 0xcbf2_9ce4_8422_2325);
        assert_eq!(row_hash(b"a") as u64, 0xaf63_dc4c_8601_ec8c);
    }
}
