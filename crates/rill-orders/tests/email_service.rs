//! The email service through the test driver: one email per validated order (not per state
//! change, not per payment), routing by customer level, the join window.

mod common;

use std::sync::{Arc, Mutex};

use common::order;
use rill_orders::domain::{Customer, Email, Order, OrderEnriched, OrderState, Payment, Product};
use rill_orders::email::{self, EmailError, Emailer};
use rill_orders::topics;
use rill_streams::TopologyTestDriver;

/// Remembers what it was asked to send.
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<Email>>,
}

impl Emailer for Recorder {
    fn send(
        &self,
        email: &Email,
        _order: &Order,
        _payment: &Payment,
        _customer: &Customer,
    ) -> Result<(), EmailError> {
        self.sent.lock().expect("lock").push(email.clone());
        Ok(())
    }
}

fn customer(id: i64, level: &str) -> Customer {
    Customer {
        id,
        first_name: "Ann".into(),
        last_name: "Lee".into(),
        email: format!("c{id}@example.com"),
        address: "1 Road".into(),
        level: level.into(),
    }
}

fn payment(order: &Order) -> Payment {
    Payment {
        id: format!("pay-{}", order.id),
        order_id: order.id.clone(),
        ccy: "EUR".into(),
        amount: order.value(),
    }
}

fn setup() -> (TopologyTestDriver, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let topology = email::topology(recorder.clone()).expect("topology");
    let mut driver = TopologyTestDriver::new(topology, topics::EMAIL_SERVICE).expect("driver");
    for (id, level) in [(1, "gold"), (2, "platinum")] {
        driver
            .pipe(topics::CUSTOMERS, &id, &customer(id, level), 0)
            .expect("customer");
    }
    (driver, recorder)
}

fn pipe_order(driver: &mut TopologyTestDriver, order: &Order, at: i64) {
    driver
        .pipe(topics::ORDERS, &order.id, order, at)
        .expect("order");
}

fn pipe_payment(driver: &mut TopologyTestDriver, payment: &Payment, at: i64) {
    driver
        .pipe(topics::PAYMENTS, &payment.id, payment, at)
        .expect("payment");
}

#[test]
fn a_validated_paid_order_is_emailed_once_whatever_its_other_states_and_payments() {
    let (mut driver, recorder) = setup();
    let placed = order("o1", 1, Product::Jumpers, 2, 10.0);
    pipe_order(&mut driver, &placed, 1_000);
    pipe_payment(&mut driver, &payment(&placed), 1_500);
    assert!(
        recorder.sent.lock().expect("lock").is_empty(),
        "CREATED is not emailed"
    );
    pipe_order(
        &mut driver,
        &placed.with_state(OrderState::Validated),
        2_000,
    );
    pipe_payment(&mut driver, &payment(&placed), 2_500);
    pipe_order(&mut driver, &placed.with_state(OrderState::Shipped), 3_000);
    let sent = recorder.sent.lock().expect("lock").clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].to, "c1@example.com");
    let outbox = driver
        .read_output::<String, Email>(topics::EMAILS)
        .expect("outbox");
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].key, "o1");
    assert_eq!(outbox[0].value, sent[0]);
}

#[test]
fn a_payment_outside_the_one_minute_window_does_not_join() {
    let (mut driver, recorder) = setup();
    let placed = order("o1", 1, Product::Jumpers, 1, 10.0);
    pipe_payment(&mut driver, &payment(&placed), 1_000);
    pipe_order(
        &mut driver,
        &placed.with_state(OrderState::Validated),
        1_000 + 61_000,
    );
    assert!(recorder.sent.lock().expect("lock").is_empty());
}

#[test]
fn validated_orders_are_routed_to_the_topic_of_their_customer_level() {
    let (mut driver, _) = setup();
    for (id, customer) in [("g", 1), ("p", 2), ("unknown", 99)] {
        let validated =
            order(id, customer, Product::Jumpers, 1, 1.0).with_state(OrderState::Validated);
        pipe_order(&mut driver, &validated, 1_000);
    }
    let created = order("c", 1, Product::Jumpers, 1, 1.0);
    pipe_order(&mut driver, &created, 1_000);
    let ids = |driver: &mut TopologyTestDriver, topic: &str| -> Vec<(String, String)> {
        driver
            .read_output::<String, OrderEnriched>(topic)
            .expect("routed")
            .into_iter()
            .map(|r| (r.key, r.value.customer_level))
            .collect()
    };
    assert_eq!(ids(&mut driver, "gold"), vec![("g".into(), "gold".into())]);
    assert_eq!(
        ids(&mut driver, "platinum"),
        vec![("p".into(), "platinum".into())]
    );
    assert_eq!(
        ids(&mut driver, "bronze"),
        vec![("unknown".into(), "bronze".into())]
    );
    assert_eq!(ids(&mut driver, topics::ORDERS_ENRICHED).len(), 3);
}

#[test]
fn a_customer_deleted_by_a_tombstone_leaves_the_join_and_is_routed_as_unknown() {
    let (mut driver, recorder) = setup();
    driver
        .pipe(topics::CUSTOMERS, &1i64, &None::<Customer>, 500)
        .expect("tombstone");
    let placed = order("o1", 1, Product::Jumpers, 1, 10.0);
    pipe_payment(&mut driver, &payment(&placed), 1_000);
    pipe_order(
        &mut driver,
        &placed.with_state(OrderState::Validated),
        1_000,
    );
    assert!(
        recorder.sent.lock().expect("lock").is_empty(),
        "a deleted customer is not emailed"
    );
    let routed = driver
        .read_output::<String, OrderEnriched>("bronze")
        .expect("routed");
    assert_eq!(routed.len(), 1);
    assert_eq!(routed[0].key, "o1");
    assert!(
        driver
            .read_output::<String, OrderEnriched>("gold")
            .expect("gold")
            .is_empty()
    );
}
