//! The email service: emails the customer of each VALIDATED order, once, and routes the order,
//! enriched with the customer's level, to the topic named by that level.
//!
//! VALIDATED orders are joined with their payment (`payments` re-keyed by order id through
//! `email-service-payments-by-order-repartition`, within a one-minute join window) and with the
//! customer (the `customers` global table, by customer id). The joined triple goes to an
//! [`Emailer`]; every email is also written to the outbox topic `emails`, in the same
//! transaction as the service's other effects. The [`EMAILED_STORE`] store remembers which
//! orders were emailed, so a second payment of an order sends nothing more.
//!
//! Only VALIDATED orders are looked at (the order's other states are not emailed), and each
//! order reaches VALIDATED once, so each order is routed once: to `orders-enriched` and to the
//! level topic (`platinum`, `gold`, `silver` or `bronze`; a customer not in the table, or with
//! another level, counts as bronze).
//!
//! The emailer runs inside the stream thread: what it does outside the log (an SMTP call, say)
//! is repeated if the process dies before the commit that records it, as with any effect
//! outside the log; the outbox topic is exactly-once.

use std::sync::Arc;
use std::time::Duration;

use rill_streams::{
    DefaultSerde, JoinWindows, KeyValueStore, Processor, ProcessorContext, Record, Result,
    StoreOptions, StreamsBuilder, Topology,
};

use crate::domain::{Customer, DEFAULT_LEVEL, Email, Order, OrderEnriched, OrderState, Payment};
use crate::formats::EventSerdes;
use crate::topics::{CUSTOMERS, EMAILS, LEVELS, ORDERS, ORDERS_ENRICHED, PAYMENTS};

/// The join window of orders and payments.
pub const JOIN_WINDOW: Duration = Duration::from_secs(60);

/// Global store of `customers`.
pub const CUSTOMERS_STORE: &str = "customers-store";

/// Orders already emailed: order id -> ().
pub const EMAILED_STORE: &str = "emailed-orders";

/// Why an email could not be sent.
#[derive(Debug, thiserror::Error)]
#[error("sending the email of order '{order_id}': {reason}")]
pub struct EmailError {
    /// The order.
    pub order_id: String,
    /// What went wrong.
    pub reason: String,
}

/// Sends the email of a validated order. Called once per order, from a stream thread.
pub trait Emailer: Send + Sync + 'static {
    /// Sends `email` about `order`, paid by `payment`, to `customer`.
    fn send(
        &self,
        email: &Email,
        order: &Order,
        payment: &Payment,
        customer: &Customer,
    ) -> std::result::Result<(), EmailError>;
}

/// The default emailer: logs each email (the service writes it to the `emails` outbox topic
/// whatever the emailer).
#[derive(Debug, Default, Clone, Copy)]
pub struct OutboxEmailer;

impl Emailer for OutboxEmailer {
    fn send(
        &self,
        email: &Email,
        _order: &Order,
        _payment: &Payment,
        _customer: &Customer,
    ) -> std::result::Result<(), EmailError> {
        tracing::info!(order = %email.order_id, to = %email.to, subject = %email.subject, "email");
        Ok(())
    }
}

/// The email of a validated order.
pub fn compose(order: &Order, payment: &Payment, customer: &Customer) -> Email {
    Email {
        order_id: order.id.clone(),
        to: customer.email.clone(),
        subject: format!("Your order {} is confirmed", order.id),
        body: format!(
            "Dear {} {},\n\nthank you for your order of {} x {} ({:.2} {} paid).\n",
            customer.first_name,
            customer.last_name,
            order.quantity,
            order.product,
            payment.amount,
            payment.ccy
        ),
    }
}

/// The topic an order of a customer of `level` is routed to.
pub fn level_topic(level: Option<&str>) -> &'static str {
    let level = level.map(str::to_ascii_lowercase);
    LEVELS
        .iter()
        .find(|known| level.as_deref() == Some(**known))
        .copied()
        .unwrap_or(DEFAULT_LEVEL)
}

/// (order, payment, customer) on their way to the emailer.
#[derive(Debug, Clone)]
struct Paid {
    order: Order,
    payment: Payment,
    customer: Customer,
}

/// The email service's topology (application id
/// [`EMAIL_SERVICE`](crate::topics::EMAIL_SERVICE)), on JSON topics.
pub fn topology(emailer: Arc<dyn Emailer>) -> Result<Topology> {
    topology_with(emailer, &EventSerdes::json())
}

/// The email service's topology with the system topics' values in `serdes`' format.
pub fn topology_with(emailer: Arc<dyn Emailer>, serdes: &EventSerdes) -> Result<Topology> {
    let builder = StreamsBuilder::new();
    let customers = builder.global_table_with::<i64, Customer>(
        CUSTOMERS,
        CUSTOMERS_STORE,
        i64::default_serde(),
        serdes.customer.clone(),
    );
    builder.add_state_store::<String, ()>(StoreOptions::persistent(EMAILED_STORE))?;
    let validated = builder
        .stream_with::<String, Order>(&[ORDERS], String::default_serde(), serdes.order.clone())
        .filter(|_, order| order.state == OrderState::Validated);
    let payments = builder
        .stream_with::<String, Payment>(
            &[PAYMENTS],
            String::default_serde(),
            serdes.payment.clone(),
        )
        .select_key(|_, payment| payment.order_id.clone())
        .repartition("payments-by-order");
    validated
        .join_stream(
            &payments,
            JoinWindows::of(JOIN_WINDOW).named("orders-payments-join"),
            |order: &Order, payment: &Payment| (order.clone(), payment.clone()),
        )
        .join_global(
            &customers,
            |_, (order, _): &(Order, Payment)| order.customer_id,
            |(order, payment): &(Order, Payment), customer: &Customer| Paid {
                order: order.clone(),
                payment: payment.clone(),
                customer: customer.clone(),
            },
        )
        .process_built(
            move |ctx| {
                Ok(EmailOnce {
                    emailer: emailer.clone(),
                    emailed: ctx.key_value_store(EMAILED_STORE)?,
                })
            },
            &[EMAILED_STORE],
        )
        .to_with(EMAILS, String::default_serde(), serdes.email.clone());

    let enriched = validated.left_join_global(
        &customers,
        |_, order: &Order| order.customer_id,
        |order: &Order, customer: Option<&Customer>| OrderEnriched {
            id: order.id.clone(),
            customer_id: order.customer_id,
            customer_level: level_topic(customer.map(|c| c.level.as_str())).to_string(),
        },
    );
    enriched.to_with(
        ORDERS_ENRICHED,
        String::default_serde(),
        serdes.enriched.clone(),
    );
    enriched.to_dynamic_with(
        |record: &Record<String, OrderEnriched>| record.value.customer_level.clone(),
        String::default_serde(),
        serdes.enriched.clone(),
    );
    builder.build()
}

/// Hands each order's first (order, payment, customer) to the emailer and forwards the email
/// to the outbox; later ones of the same order are dropped.
struct EmailOnce {
    emailer: Arc<dyn Emailer>,
    emailed: KeyValueStore<String, ()>,
}

impl Processor<String, Paid, String, Email> for EmailOnce {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, Email>,
        record: Record<String, Paid>,
    ) -> Result<()> {
        let emailed = &self.emailed;
        let Paid {
            order,
            payment,
            customer,
        } = &record.value;
        if emailed.get(&order.id)?.is_some() {
            return Ok(());
        }
        let email = compose(order, payment, customer);
        if let Err(error) = self.emailer.send(&email, order, payment, customer) {
            // The email stays in the outbox for a retrying relay; processing goes on.
            tracing::warn!(%error, "the emailer failed");
        }
        emailed.put(&order.id, &())?;
        let key = order.id.clone();
        ctx.forward(record.with_key_value(key, email))
    }
}
