//! The inventory validator: is there stock for a CREATED order? It reserves what it grants and
//! gives it back when the order fails another check.
//!
//! Orders are re-keyed by product through the repartition topic
//! `inventory-service-orders-by-product-repartition`, so every order of a product is judged by
//! the one task that also holds that product's row of `warehouse-inventory` and its reserved
//! count: the check and the reservation are one step, with no race between two orders for the
//! last item. An order's product never changes, so its later events (FAILED) reach the same
//! task.
//!
//! Rule: PASS and reserve when `stock - reserved - quantity >= 0`, else FAIL. A product with no
//! inventory record has no stock and FAILs (never left without an answer). When an order this
//! service reserved for ends FAILED (another check failed), the reservation is released.
//!
//! Stores (persistent, changelogged): [`RESERVED_STOCKS`] (product -> reserved count) and
//! [`RESERVATIONS`] (order id -> what was decided for it), which makes the service idempotent:
//! an order seen twice gets the same verdict again without reserving twice, and is released at
//! most once.

use serde::{Deserialize, Serialize};

use rill_streams::{
    DefaultSerde, InitContext, KeyValueStore, Processor, ProcessorContext, Record, Result,
    StoreOptions, StreamsBuilder, Topology,
};

use crate::domain::{CheckType, Order, OrderState, OrderValidation, StockCount, ValidationResult};
use crate::formats::EventSerdes;
use crate::topics::{ORDER_VALIDATIONS, ORDERS, WAREHOUSE_INVENTORY};

/// Store of reserved stock per product.
pub const RESERVED_STOCKS: &str = "reserved-stocks";
/// Store of the decision taken for each order.
pub const RESERVATIONS: &str = "inventory-reservations";
/// Store materializing `warehouse-inventory`.
pub const INVENTORY_STORE: &str = "warehouse-inventory-store";
/// Name of the repartition by product.
pub const BY_PRODUCT: &str = "orders-by-product";

/// What the service decided for one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    /// Items of the order.
    pub quantity: i32,
    /// Whether the order passed (and stock was reserved for it).
    pub passed: bool,
    /// Whether the reservation was given back because the order failed.
    pub released: bool,
}

rill_streams::json_serde!(Reservation);

/// The inventory validator's topology (application id
/// [`INVENTORY_SERVICE`](crate::topics::INVENTORY_SERVICE)), on JSON topics.
pub fn topology() -> Result<Topology> {
    topology_with(&EventSerdes::json())
}

/// The inventory validator's topology with the system topics' values in `serdes`' format.
pub fn topology_with(serdes: &EventSerdes) -> Result<Topology> {
    let builder = StreamsBuilder::new();
    let inventory = builder.table_with::<String, StockCount>(
        WAREHOUSE_INVENTORY,
        StoreOptions::persistent(INVENTORY_STORE),
        String::default_serde(),
        serdes.stock.clone(),
    );
    builder.add_state_store::<String, i64>(StoreOptions::persistent(RESERVED_STOCKS))?;
    builder.add_state_store::<String, Reservation>(StoreOptions::persistent(RESERVATIONS))?;
    builder
        .stream_with::<String, Order>(&[ORDERS], String::default_serde(), serdes.order.clone())
        .filter(|_, order| matches!(order.state, OrderState::Created | OrderState::Failed))
        .select_key(|_, order| order.product.name().to_string())
        .repartition(BY_PRODUCT)
        .left_join(&inventory, |order, stock| {
            (order.clone(), stock.map_or(0, |stock| stock.0))
        })
        .process_built(InventoryCheck::build, &[RESERVED_STOCKS, RESERVATIONS])
        .to_with(
            ORDER_VALIDATIONS,
            String::default_serde(),
            serdes.validation.clone(),
        );
    builder.build()
}

/// Judges CREATED orders against stock minus reservations and releases the reservations of
/// FAILED ones. Input: product -> (order, stock); output: order id -> verdict.
struct InventoryCheck {
    reserved_stocks: KeyValueStore<String, i64>,
    reservations: KeyValueStore<String, Reservation>,
}

impl InventoryCheck {
    fn build(ctx: &mut InitContext<'_>) -> Result<Self> {
        Ok(InventoryCheck {
            reserved_stocks: ctx.key_value_store(RESERVED_STOCKS)?,
            reservations: ctx.key_value_store(RESERVATIONS)?,
        })
    }
}

impl Processor<String, (Order, i64), String, OrderValidation> for InventoryCheck {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, OrderValidation>,
        record: Record<String, (Order, i64)>,
    ) -> Result<()> {
        let (reserved_stocks, reservations) = (&self.reserved_stocks, &self.reservations);
        let Record {
            key: product,
            value: (order, stock),
            timestamp,
            headers,
        } = record;
        let product = &product;
        let decided = reservations.get(&order.id)?;
        match order.state {
            OrderState::Created => {
                let passed = match decided {
                    // Seen before (a re-sent order): the same answer, nothing reserved twice.
                    Some(reservation) => reservation.passed,
                    None => {
                        let reserved = reserved_stocks.get(product)?.unwrap_or(0);
                        let quantity = i64::from(order.quantity);
                        // A quantity below 1 fails the details check anyway; reserving it
                        // would add stock.
                        let passed = quantity >= 1 && stock - reserved - quantity >= 0;
                        if passed {
                            reserved_stocks.put(product, &(reserved + quantity))?;
                        }
                        reservations.put(
                            &order.id,
                            &Reservation {
                                quantity: order.quantity,
                                passed,
                                released: false,
                            },
                        )?;
                        passed
                    }
                };
                let verdict = OrderValidation {
                    order_id: order.id.clone(),
                    check_type: CheckType::InventoryCheck,
                    validation_result: if passed {
                        ValidationResult::Pass
                    } else {
                        ValidationResult::Fail
                    },
                };
                ctx.forward(Record {
                    key: order.id,
                    value: verdict,
                    timestamp,
                    headers,
                })
            }
            OrderState::Failed => {
                if let Some(reservation) = decided.filter(|r| r.passed && !r.released) {
                    let reserved = reserved_stocks.get(product)?.unwrap_or(0);
                    let left = (reserved - i64::from(reservation.quantity)).max(0);
                    reserved_stocks.put(product, &left)?;
                    reservations.put(
                        &order.id,
                        &Reservation {
                            released: true,
                            ..reservation
                        },
                    )?;
                    tracing::debug!(order = %order.id, %product, "released the reservation of a failed order");
                }
                Ok(())
            }
            OrderState::Validated | OrderState::Shipped => Ok(()),
        }
    }
}
