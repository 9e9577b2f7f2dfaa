//! The fraud validator: is a customer spending too much in one go?
//!
//! CREATED orders are grouped by customer (through the repartition topic
//! `fraud-service-fraud-session-values-repartition`) into session windows with a one-hour
//! inactivity gap, summing `quantity * price`. Each order is judged on its session's running
//! total including itself: FAIL when it reaches [`FRAUD_LIMIT`] or more, otherwise PASS. So
//! once a session has crossed the limit, every later order of it fails too, until the customer
//! has been quiet for an hour. Writes `FRAUD_CHECK` verdicts to `order-validations`.
//!
//! Records later than the session's end plus a grace of one gap are dropped by the window
//! (counted in the task metrics); the aggregator then fails their order when its own window
//! closes, so no order hangs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use rill_streams::{DefaultSerde, Result, SessionWindows, StoreOptions, StreamsBuilder, Topology};

use crate::domain::{CheckType, Order, OrderState, OrderValidation, OrderValue, ValidationResult};
use crate::formats::EventSerdes;
use crate::topics::{ORDER_VALIDATIONS, ORDERS};

/// The session total at which an order fails.
pub const FRAUD_LIMIT: f64 = 2000.0;

/// Inactivity that closes a customer's session.
pub const SESSION_GAP: Duration = Duration::from_secs(60 * 60);

/// The session store: customer sessions -> running total and latest order.
pub const SESSION_STORE: &str = "fraud-session-values";

/// A session's running total and the order that last added to it (absent in a fresh
/// aggregate, before its first order is folded in).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionValue {
    /// The latest order of the session.
    pub order: Option<Order>,
    /// Sum of `quantity * price` over the session's orders.
    pub value: f64,
}

rill_streams::json_serde!(SessionValue);

/// The verdict on an order whose session now totals `value`.
pub fn verdict(order_value: &OrderValue) -> ValidationResult {
    if order_value.value >= FRAUD_LIMIT {
        ValidationResult::Fail
    } else {
        ValidationResult::Pass
    }
}

/// The fraud validator's topology (application id
/// [`FRAUD_SERVICE`](crate::topics::FRAUD_SERVICE)), on JSON topics.
pub fn topology() -> Result<Topology> {
    topology_with(&EventSerdes::json())
}

/// The fraud validator's topology with the system topics' values in `serdes`' format.
pub fn topology_with(serdes: &EventSerdes) -> Result<Topology> {
    let builder = StreamsBuilder::new();
    builder
        .stream_with::<String, Order>(&[ORDERS], String::default_serde(), serdes.order.clone())
        .filter(|_, order| order.state == OrderState::Created)
        .group_by(|_, order| order.customer_id)
        .windowed_by(SessionWindows::with_inactivity_gap(SESSION_GAP).grace(SESSION_GAP))
        .aggregate(
            StoreOptions::persistent(SESSION_STORE),
            SessionValue::default,
            |_, order: &Order, total: SessionValue| SessionValue {
                value: total.value + order.value(),
                order: Some(order.clone()),
            },
            // Two sessions joined by an order: their totals add up; that order is folded in
            // after the merge and becomes the latest.
            |_, a: SessionValue, b: SessionValue| SessionValue {
                value: a.value + b.value,
                order: b.order.or(a.order),
            },
        )
        .to_stream()
        .flat_map(|_, session: SessionValue| {
            session
                .order
                .map(|order| {
                    let order_value = OrderValue {
                        order,
                        value: session.value,
                    };
                    let result = verdict(&order_value);
                    let id = order_value.order.id;
                    (
                        id.clone(),
                        OrderValidation {
                            order_id: id,
                            check_type: CheckType::FraudCheck,
                            validation_result: result,
                        },
                    )
                })
                .into_iter()
                .collect()
        })
        .to_with(
            ORDER_VALIDATIONS,
            String::default_serde(),
            serdes.validation.clone(),
        );
    builder.build()
}
