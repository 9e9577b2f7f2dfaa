//! The order details validator: is a CREATED order well-formed?
//!
//! PASS when the quantity is at least 1, the price is a finite number not below zero and a
//! customer id is present (not negative: the JSON schema makes the field mandatory, so a
//! negative id is how a missing customer shows). The product is known by construction: an order
//! naming another product does not decode and goes to the dead-letter topic (and the REST API
//! refuses it with 400). Writes `ORDER_DETAILS_CHECK` verdicts to `order-validations`.

use rill_streams::{DefaultSerde, Result, StreamsBuilder, Topology};

use crate::domain::{CheckType, Order, OrderState, OrderValidation, ValidationResult};
use crate::formats::EventSerdes;
use crate::topics::{ORDER_VALIDATIONS, ORDERS};

/// Whether an order's details are valid.
pub fn is_valid(order: &Order) -> bool {
    order.quantity >= 1 && order.price.is_finite() && order.price >= 0.0 && order.customer_id >= 0
}

/// The order details validator's topology (application id
/// [`ORDER_DETAILS_SERVICE`](crate::topics::ORDER_DETAILS_SERVICE)), on JSON topics.
pub fn topology() -> Result<Topology> {
    topology_with(&EventSerdes::json())
}

/// The order details validator's topology with the system topics' values in `serdes`' format.
pub fn topology_with(serdes: &EventSerdes) -> Result<Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, Order>(&[ORDERS], String::default_serde(), serdes.order.clone())
        .filter(|_, order| order.state == OrderState::Created)
        .map_values(|order| OrderValidation {
            validation_result: if is_valid(&order) {
                ValidationResult::Pass
            } else {
                ValidationResult::Fail
            },
            order_id: order.id,
            check_type: CheckType::OrderDetailsCheck,
        })
        .to_with(
            ORDER_VALIDATIONS,
            String::default_serde(),
            serdes.validation.clone(),
        );
    builder.build()
}
