//! **Abandoned carts**: a shopper who put things in their cart and then did nothing for a
//! while (30 minutes by default) without checking out gets a "shopper abandons cart" event
//! with the cart's contents, and is then forgotten.
//!
//! A processor keeps each shopper's cart in a store (the items, and the event time of their
//! last activity); a checkout empties it. A wall-clock punctuator scans the store and emits
//! the carts idle longer than the limit: wall clock, because a shopper who went away sends no
//! more events to move stream time on. An event that arrives out of order never moves the
//! last activity back.

use std::time::Duration;

use rill_streams::{
    InitContext, KeyValueStore, Processor, ProcessorContext, PunctuationType, PunctuatorId, Record,
    Result, StoreOptions, StreamsBuilder, Topology,
};
use serde::{Deserialize, Serialize};

use crate::{Example, Outputs, SampleRecord, decoded, json_record};

/// Shopper events, keyed by shopper.
pub const SHOPPER_EVENTS: &str = "shopper-events";
/// Abandoned carts, keyed by shopper.
pub const ABANDONED_CARTS: &str = "abandoned-carts";
/// The carts being filled: shopper -> [`Cart`].
pub const CARTS_STORE: &str = "carts";
/// Idle time after which a cart counts as abandoned, by default.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30 * 60);

/// What a shopper did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ShopperEvent {
    /// Put an item in the cart.
    AddedToCart {
        /// The item.
        item: String,
        /// When, ms since the epoch.
        at: i64,
    },
    /// Paid for the cart.
    CheckedOut {
        /// When, ms since the epoch.
        at: i64,
    },
}

/// A cart being filled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cart {
    /// Items, in the order they were added.
    pub items: Vec<String>,
    /// Event time of the shopper's last activity.
    pub last_activity: i64,
}

/// The event emitted for an abandoned cart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbandonedCart {
    /// Items left in the cart.
    pub items: Vec<String>,
    /// Event time of the shopper's last activity.
    pub idle_since: i64,
}

rill_streams::json_serde!(ShopperEvent, Cart, AbandonedCart);

/// The topology with the default 30-minute limit, checked every minute.
pub fn topology() -> Result<Topology> {
    topology_with(DEFAULT_IDLE, Duration::from_secs(60))
}

/// The topology: carts idle for `idle` are emitted, looked for every `check_every` of wall
/// clock.
pub fn topology_with(idle: Duration, check_every: Duration) -> Result<Topology> {
    topology_into(idle, check_every, &Outputs::default())
}

/// [`topology_with`], writing to the topics `outputs` names.
pub fn topology_into(idle: Duration, check_every: Duration, outputs: &Outputs) -> Result<Topology> {
    let builder = StreamsBuilder::new();
    builder.add_state_store::<String, Cart>(StoreOptions::persistent(CARTS_STORE))?;
    let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
    builder
        .stream::<String, ShopperEvent>(SHOPPER_EVENTS)
        .process_built(
            move |ctx| {
                Ok(CartWatcher {
                    carts: ctx.key_value_store(CARTS_STORE)?,
                    idle_ms,
                    check_every,
                })
            },
            &[CARTS_STORE],
        )
        .to(&outputs.name(ABANDONED_CARTS));
    builder.build()
}

/// Keeps carts and emits the idle ones.
struct CartWatcher {
    carts: KeyValueStore<String, Cart>,
    idle_ms: i64,
    check_every: Duration,
}

impl Processor<String, ShopperEvent, String, AbandonedCart> for CartWatcher {
    fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<()> {
        ctx.schedule(self.check_every, PunctuationType::WallClockTime);
        Ok(())
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, String, AbandonedCart>,
        record: Record<String, ShopperEvent>,
    ) -> Result<()> {
        let carts = &self.carts;
        match record.value {
            ShopperEvent::AddedToCart { item, at } => {
                let mut cart = carts.get(&record.key)?.unwrap_or_default();
                cart.items.push(item);
                cart.last_activity = cart.last_activity.max(at);
                carts.put(&record.key, &cart)
            }
            ShopperEvent::CheckedOut { .. } => carts.delete(&record.key).map(drop),
        }
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, AbandonedCart>,
        _id: PunctuatorId,
        now: i64,
    ) -> Result<()> {
        let carts = &self.carts;
        for (shopper, cart) in carts.all()? {
            if now.saturating_sub(cart.last_activity) < self.idle_ms {
                continue;
            }
            carts.delete(&shopper)?;
            let abandoned = AbandonedCart {
                items: cart.items,
                idle_since: cart.last_activity,
            };
            ctx.forward(Record::new(shopper, abandoned, now))?;
        }
        Ok(())
    }
}

/// The sample: events minutes before `now`.
fn sample(now: i64) -> Vec<SampleRecord> {
    let ago = |minutes: i64| now - minutes * 60 * 1000;
    let added = |item: &str, at| ShopperEvent::AddedToCart {
        item: item.into(),
        at,
    };
    [
        ("ann", added("kettle", ago(50))),
        ("ann", added("mug", ago(45))),
        ("bob", added("tea", ago(40))),
        ("bob", ShopperEvent::CheckedOut { at: ago(35) }),
        ("cy", added("lamp", ago(5))),
        ("dan", added("rug", ago(31))),
    ]
    .into_iter()
    .map(|(shopper, event)| {
        let at = match &event {
            ShopperEvent::AddedToCart { at, .. } | ShopperEvent::CheckedOut { at } => *at,
        };
        json_record(SHOPPER_EVENTS, shopper, &event, at)
    })
    .collect()
}

fn render(_topic: &str, key: &[u8], value: Option<&[u8]>) -> String {
    let shopper = String::from_utf8_lossy(key);
    match decoded::<AbandonedCart>(value) {
        Ok(cart) => format!("{shopper} abandoned a cart with {}", cart.items.join(", ")),
        Err(reason) => format!("{shopper}: {reason}"),
    }
}

fn demo_topology(outputs: &Outputs) -> Result<Topology> {
    // Checked every second, so that the example answers at once.
    topology_into(DEFAULT_IDLE, Duration::from_secs(1), outputs)
}

/// This example, for the runner.
pub fn example() -> Example {
    Example {
        name: "abandoned-carts",
        summary: "carts idle for 30 minutes without checkout are emitted (wall-clock punctuator over a store)",
        topology: demo_topology,
        inputs: &[SHOPPER_EVENTS],
        outputs: &[ABANDONED_CARTS],
        tables: &[],
        sample,
        render,
        query: None,
    }
}
