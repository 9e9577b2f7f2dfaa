//! **The shop around the orders** (CQRS): the services a shop puts around the order system,
//! each the single writer of its own topics.
//!
//! - The **basket service** takes commands (`POST /basket/{customer}`: an item added or
//!   removed, the basket checked out) and writes them as events to `basket-events`, the topic
//!   only it writes. Its read side is a view built from those events, kept in the
//!   `basket-view` store and answered by `GET /basket/{customer}` through the runtime's
//!   interactive queries ([`http`]); the view's changes also go to the `baskets` topic.
//! - The **catalogue** (products with their names and prices, keyed by product, written by
//!   whoever owns the catalogue) is a table joined into the basket view, so each line of a
//!   basket carries its unit price and line total, and a price change reprices every basket
//!   holding the product.
//! - The **shipping service** reacts to the order system's VALIDATED orders (its `orders`
//!   topic and [`Order`] type, from `rill-orders`) and publishes each once, as SHIPPED, to
//!   `shipments`: a topic of its own, since `orders` has one writer, the orders service.
//!
//! How the view is built: a processor keeps each customer's quantities (store `basket-contents`) and
//! turns every basket event into changes of basket lines keyed by customer and product (a
//! checkout deletes every line of the basket); the lines are a table joined with the catalogue
//! by a foreign-key join on the product, and the priced lines are re-grouped by customer into
//! one [`Basket`] each (a line that changes leaves the basket and comes back with its new
//! quantity or price).
//!
//! Quantities are whole items and prices whole cents, so that totals add up exactly. A line
//! whose product is not in the catalogue stays in the basket without a price and counts
//! nothing towards the total.

pub mod http;

use std::collections::BTreeMap;

use bytes::Bytes;
use rill_orders::domain::{Order, OrderState, Product};
use rill_streams::{
    InitContext, KeyValueStore, Processor, ProcessorContext, Record, Result, StoreOptions,
    StreamsBuilder, Topology,
};
use serde::{Deserialize, Serialize};

use crate::{Example, Outputs, SampleRecord, decoded, json_record};

pub use rill_orders::topics::ORDERS;

/// Basket events, keyed by customer id (`i64`, as the order system's customers); written only
/// by the basket service.
pub const BASKET_EVENTS: &str = "basket-events";
/// The catalogue (a table): product name -> [`CatalogueEntry`].
pub const CATALOGUE: &str = "catalogue";
/// The basket view's changes, keyed by customer id: each customer's latest [`Basket`].
pub const BASKETS: &str = "baskets";
/// Shipped orders (in state SHIPPED), keyed by order id; written only by the shipping service.
pub const SHIPMENTS: &str = "shipments";

/// Application id of the basket service.
pub const BASKET_SERVICE: &str = "basket-service";
/// Application id of the shipping service.
pub const SHIPPING_SERVICE: &str = "shipping-service";

/// Each customer's quantities per product, as the basket events left them:
/// customer id -> [`BasketContents`].
pub const BASKET_CONTENTS_STORE: &str = "basket-contents";
/// Basket lines: [`LineKey`] -> [`BasketItem`].
pub const BASKET_LINES_STORE: &str = "basket-lines";
/// The catalogue table.
pub const CATALOGUE_STORE: &str = "catalogue";
/// Basket lines joined with the catalogue: [`LineKey`] -> [`BasketLine`].
pub const PRICED_LINES_STORE: &str = "priced-basket-lines";
/// The basket view GET answers from: customer id -> [`Basket`].
pub const BASKET_VIEW_STORE: &str = "basket-view";
/// Orders already shipped: order id -> when (ms since the epoch).
pub const SHIPPED_STORE: &str = "shipped-orders";

/// What a customer did to their basket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BasketEvent {
    /// Put `quantity` of a product in the basket.
    ItemAdded {
        /// The product's name in the catalogue.
        product: String,
        /// How many (at least one).
        quantity: u32,
    },
    /// Took `quantity` of a product out (all of it when the basket holds fewer).
    ItemRemoved {
        /// The product's name in the catalogue.
        product: String,
        /// How many (at least one).
        quantity: u32,
    },
    /// Paid for the basket, which is empty afterwards.
    CheckedOut,
}

/// Why a basket event is refused before it is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BasketEventError {
    /// No product named.
    #[error("an item needs a product")]
    NoProduct,
    /// A quantity of zero.
    #[error("the quantity of '{product}' must be at least 1")]
    ZeroQuantity {
        /// The product.
        product: String,
    },
}

impl BasketEvent {
    /// Checks what the basket service accepts: a product named, a quantity of at least one.
    pub fn validate(&self) -> std::result::Result<(), BasketEventError> {
        match self {
            BasketEvent::ItemAdded { product, quantity }
            | BasketEvent::ItemRemoved { product, quantity } => {
                if product.trim().is_empty() {
                    Err(BasketEventError::NoProduct)
                } else if *quantity == 0 {
                    Err(BasketEventError::ZeroQuantity {
                        product: product.clone(),
                    })
                } else {
                    Ok(())
                }
            }
            BasketEvent::CheckedOut => Ok(()),
        }
    }
}

/// A product of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogueEntry {
    /// Its name for people.
    pub name: String,
    /// Price of one, in cents.
    pub price_cents: i64,
}

/// The key of a basket line: one product in one customer's basket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineKey {
    /// The customer.
    pub customer: i64,
    /// The product.
    pub product: String,
}

/// A basket line before pricing. The product is repeated from the key because the
/// foreign-key join takes the catalogue key from the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasketItem {
    /// The product.
    pub product: String,
    /// How many.
    pub quantity: u32,
}

/// A customer's quantities per product, as the processor of basket events keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasketContents(pub BTreeMap<String, u32>);

/// A basket line with its catalogue entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BasketLine {
    /// The product.
    pub product: String,
    /// Its name in the catalogue (`None`: not in the catalogue).
    pub name: Option<String>,
    /// How many.
    pub quantity: u32,
    /// Price of one, in cents (`None`: not in the catalogue).
    pub unit_price_cents: Option<i64>,
    /// Quantity times unit price, in cents.
    pub line_total_cents: Option<i64>,
}

impl BasketLine {
    /// `item` priced from its catalogue entry, if it has one.
    pub fn priced(item: &BasketItem, entry: Option<&CatalogueEntry>) -> BasketLine {
        BasketLine {
            product: item.product.clone(),
            name: entry.map(|e| e.name.clone()),
            quantity: item.quantity,
            unit_price_cents: entry.map(|e| e.price_cents),
            line_total_cents: entry.map(|e| e.price_cents.saturating_mul(i64::from(item.quantity))),
        }
    }
}

/// A customer's basket as the view holds it and `GET /basket/{customer}` answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Basket {
    /// Its lines, by product.
    pub lines: Vec<BasketLine>,
    /// The sum of the line totals, in cents (lines without a price count nothing).
    pub total_cents: i64,
}

impl Basket {
    /// The basket with `line` in it (replacing the line of the same product).
    pub fn with(mut self, line: &BasketLine) -> Basket {
        self.lines.retain(|l| l.product != line.product);
        let at = self.lines.partition_point(|l| l.product < line.product);
        self.lines.insert(at, line.clone());
        self.recount()
    }

    /// The basket without the line of `line`'s product.
    pub fn without(mut self, line: &BasketLine) -> Basket {
        self.lines.retain(|l| l.product != line.product);
        self.recount()
    }

    fn recount(mut self) -> Basket {
        self.total_cents = self
            .lines
            .iter()
            .filter_map(|l| l.line_total_cents)
            .fold(0, i64::saturating_add);
        self
    }
}

rill_streams::json_serde!(
    BasketEvent,
    CatalogueEntry,
    LineKey,
    BasketItem,
    BasketContents,
    BasketLine,
    Basket
);

/// The basket service's view, alone in a topology (application [`BASKET_SERVICE`]).
pub fn basket_topology() -> Result<Topology> {
    let builder = StreamsBuilder::new();
    add_basket_view(&builder, &Outputs::default())?;
    builder.build()
}

/// The shipping service alone in a topology (application [`SHIPPING_SERVICE`]).
pub fn shipping_topology() -> Result<Topology> {
    let builder = StreamsBuilder::new();
    add_shipping(&builder, &Outputs::default())?;
    builder.build()
}

/// Both services in one topology, writing to the topics `outputs` names: how `rill example
/// shop` runs them, as one application for brevity (they share no store and no topic).
pub fn topology_into(outputs: &Outputs) -> Result<Topology> {
    let builder = StreamsBuilder::new();
    add_basket_view(&builder, outputs)?;
    add_shipping(&builder, outputs)?;
    builder.build()
}

/// Adds the basket view: basket events and the catalogue in, the view's store and `baskets`
/// out.
pub fn add_basket_view(builder: &StreamsBuilder, outputs: &Outputs) -> Result<()> {
    builder
        .add_state_store::<i64, BasketContents>(StoreOptions::persistent(BASKET_CONTENTS_STORE))?;
    let lines = builder
        .stream::<i64, BasketEvent>(BASKET_EVENTS)
        .process(|| BasketLines { contents: None }, &[BASKET_CONTENTS_STORE])
        .to_table_with_tombstones(StoreOptions::persistent(BASKET_LINES_STORE));
    let catalogue = builder
        .table::<String, CatalogueEntry>(CATALOGUE, StoreOptions::persistent(CATALOGUE_STORE));
    let view = lines
        .left_join_foreign(
            &catalogue,
            |item: &BasketItem| Some(item.product.clone()),
            BasketLine::priced,
            StoreOptions::persistent(PRICED_LINES_STORE),
        )
        .group_by(|key: &LineKey, line: &BasketLine| (key.customer, line.clone()))
        .aggregate(
            StoreOptions::persistent(BASKET_VIEW_STORE),
            Basket::default,
            |_, line, basket: Basket| basket.with(line),
            |_, line, basket: Basket| basket.without(line),
        );
    view.to_stream().to(&outputs.name(BASKETS));
    Ok(())
}

/// Adds the shipping service: `orders` in, each VALIDATED order once to `shipments`.
pub fn add_shipping(builder: &StreamsBuilder, outputs: &Outputs) -> Result<()> {
    builder.add_state_store::<String, i64>(StoreOptions::persistent(SHIPPED_STORE))?;
    builder
        .stream::<String, Order>(ORDERS)
        .filter(|_, order| order.state == OrderState::Validated)
        .process(|| Shipper { shipped: None }, &[SHIPPED_STORE])
        .to(&outputs.name(SHIPMENTS));
    Ok(())
}

/// Turns basket events into changes of basket lines (`None`: the line is gone).
struct BasketLines {
    contents: Option<KeyValueStore<i64, BasketContents>>,
}

impl Processor<i64, BasketEvent, LineKey, Option<BasketItem>> for BasketLines {
    fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<()> {
        self.contents = Some(ctx.key_value_store(BASKET_CONTENTS_STORE)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, LineKey, Option<BasketItem>>,
        record: Record<i64, BasketEvent>,
    ) -> Result<()> {
        let Some(store) = &self.contents else {
            return Ok(());
        };
        let customer = record.key;
        let BasketContents(mut contents) = store.get(&customer)?.unwrap_or_default();
        let mut changed: Vec<(String, Option<u32>)> = Vec::new();
        match record.value {
            BasketEvent::ItemAdded { product, quantity } => {
                if quantity == 0 {
                    return Ok(());
                }
                let held = contents.entry(product.clone()).or_default();
                *held = held.saturating_add(quantity);
                changed.push((product, Some(*held)));
            }
            BasketEvent::ItemRemoved { product, quantity } => {
                let Some(held) = contents.get_mut(&product) else {
                    return Ok(());
                };
                *held = held.saturating_sub(quantity);
                if *held == 0 {
                    contents.remove(&product);
                    changed.push((product, None));
                } else {
                    changed.push((product, Some(*held)));
                }
            }
            BasketEvent::CheckedOut => {
                changed.extend(std::mem::take(&mut contents).into_keys().map(|p| (p, None)));
            }
        }
        if contents.is_empty() {
            store.delete(&customer)?;
        } else {
            store.put(&customer, &BasketContents(contents))?;
        }
        for (product, quantity) in changed {
            let key = LineKey {
                customer,
                product: product.clone(),
            };
            let item = quantity.map(|quantity| BasketItem { product, quantity });
            ctx.forward(Record::new(key, item, record.timestamp))?;
        }
        Ok(())
    }
}

/// Ships each VALIDATED order once.
struct Shipper {
    shipped: Option<KeyValueStore<String, i64>>,
}

impl Processor<String, Order, String, Order> for Shipper {
    fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<()> {
        self.shipped = Some(ctx.key_value_store(SHIPPED_STORE)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, Order>,
        record: Record<String, Order>,
    ) -> Result<()> {
        let Some(shipped) = &self.shipped else {
            return Ok(());
        };
        // A VALIDATED order seen again (a re-delivery, a reprocessed input) was shipped
        // already.
        if shipped.get(&record.key)?.is_some() {
            return Ok(());
        }
        shipped.put(&record.key, &record.timestamp)?;
        let order = record.value.with_state(OrderState::Shipped);
        ctx.forward(Record::new(record.key, order, record.timestamp))
    }
}

/// The products of the sample catalogue: the order system's three, with names and prices.
fn catalogue_entry(product: Product, price_cents: i64) -> (String, CatalogueEntry) {
    let name = match product {
        Product::Jumpers => "Woolly jumper",
        Product::Underpants => "Cotton underpants",
        Product::Stockings => "Silk stockings",
    };
    (
        product.name().to_string(),
        CatalogueEntry {
            name: name.into(),
            price_cents,
        },
    )
}

fn added(product: &str, quantity: u32) -> BasketEvent {
    BasketEvent::ItemAdded {
        product: product.into(),
        quantity,
    }
}

fn removed(product: &str, quantity: u32) -> BasketEvent {
    BasketEvent::ItemRemoved {
        product: product.into(),
        quantity,
    }
}

fn order(id: &str, customer_id: i64, product: Product, quantity: i32, state: OrderState) -> Order {
    Order {
        id: id.into(),
        customer_id,
        state,
        product,
        quantity,
        price: 0.0,
    }
}

/// A record keyed by customer id (8 bytes, big-endian, as `i64` keys are).
fn customer_record(customer: i64, event: &BasketEvent, timestamp: i64) -> SampleRecord {
    SampleRecord {
        key: Bytes::copy_from_slice(&customer.to_be_bytes()),
        ..json_record(BASKET_EVENTS, "", event, timestamp)
    }
}

/// The sample: a catalogue (with a sale on jumpers at the end), three customers' baskets,
/// and the order system's verdicts on three orders.
fn sample(now: i64) -> Vec<SampleRecord> {
    let at = |minute: i64| now - (60 - minute) * 60 * 1000;
    let mut records = Vec::new();
    for (product, price) in [
        (Product::Jumpers, 2500),
        (Product::Underpants, 750),
        (Product::Stockings, 1200),
    ] {
        let (key, entry) = catalogue_entry(product, price);
        records.push(json_record(CATALOGUE, &key, &entry, at(0)));
    }
    let events = [
        (1, added("JUMPERS", 2)),
        (1, added("STOCKINGS", 3)),
        (2, added("UNDERPANTS", 4)),
        (1, removed("STOCKINGS", 1)),
        (3, added("UNDERPANTS", 1)),
        (1, added("HATS", 1)),
        (2, BasketEvent::CheckedOut),
        (3, removed("UNDERPANTS", 1)),
        (3, added("STOCKINGS", 1)),
    ];
    for (minute, (customer, event)) in (1..).zip(events) {
        records.push(customer_record(customer, &event, at(minute)));
    }
    let (key, sale) = catalogue_entry(Product::Jumpers, 2200);
    records.push(json_record(CATALOGUE, &key, &sale, at(20)));
    let orders = [
        order("o1", 1, Product::Jumpers, 2, OrderState::Created),
        order("o2", 2, Product::Underpants, 4, OrderState::Created),
        order("o1", 1, Product::Jumpers, 2, OrderState::Validated),
        order("o2", 2, Product::Underpants, 4, OrderState::Failed),
        order("o3", 3, Product::Stockings, 1, OrderState::Created),
        order("o3", 3, Product::Stockings, 1, OrderState::Validated),
        // The same verdict again: shipped once all the same.
        order("o3", 3, Product::Stockings, 1, OrderState::Validated),
    ];
    for (minute, order) in (30..).zip(orders) {
        records.push(json_record(ORDERS, &order.id.clone(), &order, at(minute)));
    }
    records
}

/// Cents as currency units: 2200 -> "22.00".
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

/// A basket for people, one line: "2 x Woolly jumper at 22.00 = 44.00; ...; total 44.00".
pub fn describe(basket: &Basket) -> String {
    if basket.lines.is_empty() {
        return "empty".into();
    }
    let lines: Vec<String> = basket
        .lines
        .iter()
        .map(
            |line| match (&line.name, line.unit_price_cents, line.line_total_cents) {
                (Some(name), Some(price), Some(total)) => format!(
                    "{} x {name} at {} = {}",
                    line.quantity,
                    money(price),
                    money(total)
                ),
                _ => format!(
                    "{} x {} (not in the catalogue)",
                    line.quantity, line.product
                ),
            },
        )
        .collect();
    format!("{}; total {}", lines.join("; "), money(basket.total_cents))
}

fn render(topic: &str, key: &[u8], value: Option<&[u8]>) -> String {
    if topic == BASKETS {
        let customer = <[u8; 8]>::try_from(key)
            .map(i64::from_be_bytes)
            .map_or_else(
                |_| String::from_utf8_lossy(key).into_owned(),
                |c| c.to_string(),
            );
        return match decoded::<Basket>(value) {
            Ok(basket) => format!("customer {customer}: {}", describe(&basket)),
            Err(reason) => format!("customer {customer}: {reason}"),
        };
    }
    let id = String::from_utf8_lossy(key);
    match decoded::<Order>(value) {
        Ok(order) => format!(
            "{id} {}: {} x {} for customer {}",
            if order.state == OrderState::Shipped {
                "shipped"
            } else {
                "(not shipped)"
            },
            order.quantity,
            order.product,
            order.customer_id
        ),
        Err(reason) => format!("{id}: {reason}"),
    }
}

/// This example, for the runner.
pub fn example() -> Example {
    Example {
        name: "shop",
        summary: "baskets priced from the catalogue, answered over HTTP from the view; VALIDATED orders shipped once (CQRS)",
        topology: topology_into,
        inputs: &[CATALOGUE, BASKET_EVENTS, ORDERS],
        outputs: &[BASKETS, SHIPMENTS],
        tables: &[BASKETS],
        sample,
        render,
        query: Some(http::query_sample),
    }
}
