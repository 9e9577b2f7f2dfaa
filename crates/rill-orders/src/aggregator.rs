//! The validation aggregator: gathers the verdicts of each order and writes the order back
//! VALIDATED when all three distinct checks passed, or FAILED on the first failing verdict.
//!
//! It is a processor over one store ([`VERDICTS_STORE`], order id -> [`Verdicts`]) fed by two
//! co-partitioned inputs keyed by order id: the CREATED orders (from the `orders-store` view's
//! updates) and `order-validations`. Either may arrive first, so verdicts are kept until the
//! order is known, and the order until its verdicts are in.
//!
//! - **Distinct checks:** passes are a set of check types, so a duplicate PASS counts once.
//! - **Once per order:** the decision is kept in the store after it is written, so later
//!   verdicts (or a re-sent order) change nothing; with exactly-once processing the store update
//!   and the written order commit together.
//! - **FAIL or ERROR** decides FAILED: an order whose check could not be made must not be
//!   validated, and must not hang either.
//! - **Five-minute window:** a verdict more than [`WINDOW`] after the first event of its order
//!   (by record timestamps) is dropped, as in the reference's windowed aggregation. An order
//!   still undecided when its window closes (on stream time) is written FAILED, because no more
//!   verdicts can count for it and an order must not hang; [`PENDING_STORE`] indexes undecided
//!   orders by window start so that this sweep reads only them.
//!
//! Decided entries stay in the store (a few dozen bytes each, on disk) so that an order is
//! never decided twice, even when re-sent long after.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use rill_streams::{
    InitContext, KeyValueStore, Processor, ProcessorContext, PunctuationType, PunctuatorId, Record,
    Result,
};

use crate::domain::{CheckType, Order, OrderState, OrderValidation, ValidationResult};

/// The aggregator's store.
pub const VERDICTS_STORE: &str = "order-verdicts";

/// Undecided orders by window start: `"{window start:020}|{order id}"` -> ().
pub const PENDING_STORE: &str = "order-verdicts-pending";

/// How long after an order's first event its verdicts count.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);

const WINDOW_MS: i64 = 5 * 60 * 1000;

/// What reaches the aggregator: an order, or a verdict on one.
#[derive(Debug, Clone)]
pub enum AggregatorInput {
    /// An order (only CREATED orders matter).
    Order(Order),
    /// A validator's verdict.
    Verdict(OrderValidation),
}

/// What the aggregator knows about one order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdicts {
    /// The order, once seen (dropped after the decision).
    pub order: Option<Order>,
    /// Checks that passed, each once.
    pub passed: Vec<CheckType>,
    /// Whether a check failed (or could not be made).
    pub failed: bool,
    /// Timestamp of the order's first event: the start of its window.
    pub window_start: i64,
    /// The state written for the order, once decided.
    pub decided: Option<OrderState>,
}

rill_streams::json_serde!(Verdicts);

/// The aggregator processor; see the module documentation.
pub struct ValidationAggregator {
    store: KeyValueStore<String, Verdicts>,
    pending: KeyValueStore<String, ()>,
}

impl ValidationAggregator {
    /// Builds it with its stores ([`VERDICTS_STORE`], [`PENDING_STORE`]), for
    /// `KStream::process_built`.
    pub fn build(ctx: &mut InitContext<'_>) -> Result<Self> {
        Ok(ValidationAggregator {
            store: ctx.key_value_store(VERDICTS_STORE)?,
            pending: ctx.key_value_store(PENDING_STORE)?,
        })
    }
}

/// The key of an undecided order in [`PENDING_STORE`]: zero-padded so that key order is time
/// order (negative timestamps count as 0).
fn pending_key(window_start: i64, order_id: &str) -> String {
    format!("{:020}|{order_id}", window_start.max(0))
}

impl Processor<String, AggregatorInput, String, Order> for ValidationAggregator {
    fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<()> {
        ctx.schedule(Duration::from_secs(60), PunctuationType::StreamTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, Order>,
        record: Record<String, AggregatorInput>,
    ) -> Result<()> {
        let (store, pending) = (&self.store, &self.pending);
        let Record {
            key,
            value,
            timestamp,
            headers,
        } = record;
        let existing = store.get(&key)?;
        let mut entry = existing.clone().unwrap_or(Verdicts {
            window_start: timestamp,
            ..Verdicts::default()
        });
        if entry.decided.is_some() {
            return Ok(());
        }
        match value {
            AggregatorInput::Order(order) => {
                if order.state != OrderState::Created {
                    return Ok(());
                }
                entry.order = Some(order);
            }
            AggregatorInput::Verdict(verdict) => {
                if timestamp - entry.window_start > WINDOW_MS {
                    tracing::debug!(order = %key, ?verdict, "verdict after the window dropped");
                    return Ok(());
                }
                match verdict.validation_result {
                    ValidationResult::Pass => {
                        if !entry.passed.contains(&verdict.check_type) {
                            entry.passed.push(verdict.check_type);
                        }
                    }
                    ValidationResult::Fail | ValidationResult::Error => entry.failed = true,
                }
            }
        }
        let decision = match &entry.order {
            Some(_) if entry.failed => Some(OrderState::Failed),
            Some(_) if CheckType::ALL.iter().all(|c| entry.passed.contains(c)) => {
                Some(OrderState::Validated)
            }
            _ => None,
        };
        match (decision, entry.order.take()) {
            (Some(state), Some(order)) => {
                let decided = Verdicts {
                    order: None,
                    passed: Vec::new(),
                    failed: entry.failed,
                    window_start: entry.window_start,
                    decided: Some(state),
                };
                store.put(&key, &decided)?;
                if existing.is_some() {
                    pending.delete(&pending_key(entry.window_start, &key))?;
                }
                ctx.forward(Record {
                    key,
                    value: order.with_state(state),
                    timestamp,
                    headers,
                })
            }
            (_, order) => {
                entry.order = order;
                if existing.is_none() {
                    pending.put(&pending_key(entry.window_start, &key), &())?;
                }
                if existing.as_ref() != Some(&entry) {
                    store.put(&key, &entry)?;
                }
                Ok(())
            }
        }
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, Order>,
        _punctuator: PunctuatorId,
        stream_time: i64,
    ) -> Result<()> {
        let (store, pending) = (&self.store, &self.pending);
        let closed_before = stream_time.saturating_sub(WINDOW_MS);
        let expired = pending.range(&String::new(), &format!("{:020}", closed_before.max(0)))?;
        for (pending_key, ()) in expired {
            pending.delete(&pending_key)?;
            let Some((_, order_id)) = pending_key.split_once('|') else {
                continue;
            };
            let order_id = order_id.to_string();
            let Some(mut entry) = store.get(&order_id)? else {
                continue;
            };
            if entry.decided.is_some() {
                continue;
            }
            match entry.order.take() {
                Some(order) => {
                    tracing::warn!(order = %order_id, passed = ?entry.passed, "no decision within the window: FAILED");
                    entry.decided = Some(OrderState::Failed);
                    store.put(&order_id, &entry)?;
                    ctx.forward(Record::new(
                        order_id,
                        order.with_state(OrderState::Failed),
                        stream_time,
                    ))?;
                }
                // Verdicts for an order never seen: nothing to decide.
                None => {
                    store.delete(&order_id)?;
                }
            }
        }
        Ok(())
    }
}
