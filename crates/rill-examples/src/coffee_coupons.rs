//! **Coffee then electronics**: a customer who buys coffee and then electronics within 20
//! minutes gets a coupon, one per such pair of purchases.
//!
//! A stream-stream join of the customer's coffee purchases with their electronics purchases,
//! in event time (the purchase's own time, not when it reached the log): an electronics
//! purchase joins every coffee purchase of the same customer from the 20 minutes before it.
//! Purchases may arrive out of order; one that arrives more than five minutes (the grace
//! period) after its join window closed is dropped as late.

use std::time::Duration;

use rill_streams::{Consumed, JoinWindows, Result, StreamsBuilder, Topology};
use serde::{Deserialize, Serialize};

use crate::{Example, Outputs, SampleRecord, decoded, json_record};

/// Purchases, keyed by customer.
pub const PURCHASES: &str = "purchases";
/// Coupons, keyed by customer.
pub const COUPONS: &str = "coupons";
/// How long after a coffee an electronics purchase earns a coupon.
pub const WINDOW: Duration = Duration::from_secs(20 * 60);
/// How long after its window closes a purchase is still joined.
pub const GRACE: Duration = Duration::from_secs(5 * 60);

/// What was bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Coffee.
    Coffee,
    /// Electronics.
    Electronics,
    /// Anything else.
    Other,
}

/// A purchase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Purchase {
    /// The customer.
    pub customer: String,
    /// What kind of thing.
    pub category: Category,
    /// The thing.
    pub item: String,
    /// When it was bought, ms since the epoch.
    pub at: i64,
}

/// A coupon earned by a coffee and an electronics purchase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coupon {
    /// The customer.
    pub customer: String,
    /// The coffee bought first.
    pub coffee: String,
    /// The electronics bought within 20 minutes of it.
    pub electronics: String,
    /// When the electronics were bought.
    pub earned_at: i64,
}

rill_streams::json_serde!(Purchase, Coupon);

/// The topology: purchases in, coupons out.
pub fn topology() -> Result<Topology> {
    topology_into(&Outputs::default())
}

/// The topology, writing to the topics `outputs` names.
pub fn topology_into(outputs: &Outputs) -> Result<Topology> {
    let builder = StreamsBuilder::new();
    let purchases = builder.stream_from::<String, Purchase>(
        &[PURCHASES],
        Consumed::new().with_timestamp(|_, purchase: &Purchase, _| Some(purchase.at)),
    );
    let coffee = purchases.filter(|_, p| p.category == Category::Coffee);
    let electronics = purchases.filter(|_, p| p.category == Category::Electronics);
    coffee
        .join_stream(
            &electronics,
            JoinWindows::of(Duration::ZERO)
                .after(WINDOW)
                .grace(GRACE)
                .named("coffee-then-electronics"),
            |coffee: &Purchase, gadget: &Purchase| Coupon {
                customer: coffee.customer.clone(),
                coffee: coffee.item.clone(),
                electronics: gadget.item.clone(),
                earned_at: gadget.at,
            },
        )
        .to(&outputs.name(COUPONS));
    builder.build()
}

fn purchase(customer: &str, category: Category, item: &str, at: i64) -> Purchase {
    Purchase {
        customer: customer.into(),
        category,
        item: item.into(),
        at,
    }
}

/// The sample: minutes after `now` less two hours.
fn sample(now: i64) -> Vec<SampleRecord> {
    let start = now - 2 * 60 * 60 * 1000;
    let at = |minute: i64| start + minute * 60 * 1000;
    [
        purchase("ann", Category::Coffee, "espresso", at(0)),
        purchase("ann", Category::Electronics, "headphones", at(10)),
        purchase("bob", Category::Electronics, "charger", at(5)),
        purchase("bob", Category::Coffee, "latte", at(12)),
        purchase("ann", Category::Electronics, "camera", at(31)),
        purchase("cy", Category::Electronics, "speaker", at(45)),
        // Out of order: bought before the speaker, arrives after it.
        purchase("cy", Category::Coffee, "flat white", at(30)),
        purchase("dan", Category::Other, "socks", at(50)),
    ]
    .into_iter()
    .map(|p| json_record(PURCHASES, &p.customer.clone(), &p, p.at))
    .collect()
}

fn render(_topic: &str, key: &[u8], value: Option<&[u8]>) -> String {
    let customer = String::from_utf8_lossy(key);
    match decoded::<Coupon>(value) {
        Ok(coupon) => format!(
            "coupon for {customer}: {} then {}",
            coupon.coffee, coupon.electronics
        ),
        Err(reason) => format!("{customer}: {reason}"),
    }
}

/// This example, for the runner.
pub fn example() -> Example {
    Example {
        name: "coffee-coupons",
        summary: "coffee then electronics within 20 minutes earns a coupon (stream-stream join in event time)",
        topology: topology_into,
        inputs: &[PURCHASES],
        outputs: &[COUPONS],
        tables: &[],
        sample,
        render,
        query: None,
    }
}
