//! The orders service's topology: the `orders-store` view of `orders`, which serves GETs and
//! tells a listener about every change (to wake waiting GETs), and the validation aggregator
//! (see [`aggregator`](crate::aggregator)), which writes decided orders back to `orders`.
//!
//! The aggregator takes its orders from the view's updates rather than from a second reader of
//! `orders`, so the view and the aggregator are one sub-topology: each partition's task holds
//! both the orders and the verdicts of its keys.

use std::sync::Arc;

use rill_streams::{DefaultSerde, Result, StoreOptions, StreamsBuilder, Topology};

use crate::aggregator::{AggregatorInput, PENDING_STORE, VERDICTS_STORE, ValidationAggregator};
use crate::domain::{Order, OrderValidation};
use crate::formats::EventSerdes;
use crate::topics::{ORDER_VALIDATIONS, ORDERS};

/// The view of `orders`: order id -> latest Order.
pub const ORDERS_STORE: &str = "orders-store";

/// Called from a stream thread after the view stored a new version of an order.
pub type OrderListener = Arc<dyn Fn(&str, &Order) + Send + Sync>;

/// The orders service's topology (application id
/// [`ORDERS_SERVICE`](crate::topics::ORDERS_SERVICE)), on JSON topics; `listener` hears each
/// order the view stores, after it is readable from the store.
pub fn topology(listener: OrderListener) -> Result<Topology> {
    topology_with(listener, &EventSerdes::json())
}

/// The orders service's topology with the system topics' values in `serdes`' format.
pub fn topology_with(listener: OrderListener, serdes: &EventSerdes) -> Result<Topology> {
    let builder = StreamsBuilder::new();
    let view = builder.table_with::<String, Order>(
        ORDERS,
        StoreOptions::persistent(ORDERS_STORE),
        String::default_serde(),
        serdes.order.clone(),
    );
    let updates = view.to_stream();
    updates.for_each(move |id, order| listener(id, order));
    builder.add_state_store::<String, crate::aggregator::Verdicts>(StoreOptions::persistent(
        VERDICTS_STORE,
    ))?;
    builder.add_state_store::<String, ()>(StoreOptions::persistent(PENDING_STORE))?;
    let orders = updates.map_values(AggregatorInput::Order);
    let verdicts = builder
        .stream_with::<String, OrderValidation>(
            &[ORDER_VALIDATIONS],
            String::default_serde(),
            serdes.validation.clone(),
        )
        .map_values(AggregatorInput::Verdict);
    orders
        .merge(&verdicts)
        .process_built(
            ValidationAggregator::build,
            &[VERDICTS_STORE, PENDING_STORE],
        )
        .to_with(ORDERS, String::default_serde(), serdes.order.clone());
    builder.build()
}
