//! What the REST front and the `orders-store` view share: the waiting GETs, and the orders
//! posted through this instance that the view has not shown yet.
//!
//! ## How a re-post is recognised (same body: same answer; different body: 409)
//!
//! A POST is answered from two sources, checked under one lock:
//!
//! 1. the **in-flight map**: orders this instance accepted (writing, or written and
//!    acknowledged) whose id the view has not shown yet. A POST of an id in the map with the
//!    same placement waits for (or repeats) the first one's answer; with another placement it
//!    gets 409. An entry leaves the map when the view stores that id (the view then answers),
//!    or a minute after it was acknowledged (the view lives on another instance, or the order
//!    was consumed elsewhere).
//! 2. the **`orders-store` view**: an id present there with the same placement (id, customer,
//!    product, quantity, price; the state may have moved on) is answered 201 again without
//!    writing; with another placement it gets 409.
//!
//! The view is written before the listener removes the map entry, so an id is always in one
//! of the two once its first POST was acknowledged. POSTs are forwarded to the instance owning
//! the id's partition of the view, so every POST of one id is decided by the same map and view.
//! What this cannot see: a POST accepted by an instance that crashed right after answering,
//! re-posted before the view shows the order; the re-post is then written again and the
//! services absorb the duplicate (the inventory and the aggregator decide once per order id).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::domain::Order;

use super::waiters::Waiters;

/// How long an acknowledged order stays in the in-flight map when the view does not show it.
pub const IN_FLIGHT_RETENTION: Duration = Duration::from_secs(60);

/// The outcome of writing a posted order, once known: `Ok(())` when it is in the log.
pub type WriteOutcome = Option<Result<(), String>>;

/// An order accepted by this instance and not yet shown by the view.
pub(crate) struct InFlight {
    pub order: Order,
    pub outcome: watch::Receiver<WriteOutcome>,
    pub acknowledged_at: Option<Instant>,
}

/// Shared between the view's listener (a stream thread) and the HTTP handlers.
#[derive(Default)]
pub struct OrdersHub {
    pub(crate) waiters: Arc<Waiters>,
    pub(crate) in_flight: Mutex<HashMap<String, InFlight>>,
}

impl OrdersHub {
    /// An empty hub.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The view stored a new version of `order_id`: wake its waiters, and forget it as in
    /// flight (the view answers for it from now on).
    pub fn order_changed(&self, order_id: &str, _order: &Order) {
        self.in_flight.lock().remove(order_id);
        self.waiters.changed(order_id);
    }

    /// The waiting GETs.
    pub fn waiters(&self) -> &Arc<Waiters> {
        &self.waiters
    }

    /// Orders accepted by this instance and not yet in its view.
    pub fn in_flight(&self) -> usize {
        self.in_flight.lock().len()
    }

    /// Drops acknowledged in-flight entries older than [`IN_FLIGHT_RETENTION`].
    pub fn sweep_in_flight(&self) {
        let now = Instant::now();
        self.in_flight.lock().retain(|_, entry| {
            entry
                .acknowledged_at
                .is_none_or(|at| now.duration_since(at) < IN_FLIGHT_RETENTION)
        });
    }
}
