//! The orders service (view + validation aggregator) through the test driver.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{order, verdict};
use rill_orders::domain::{CheckType, Order, OrderState, Product, ValidationResult};
use rill_orders::orders_service::{self, ORDERS_STORE};
use rill_orders::topics;
use rill_streams::TopologyTestDriver;

use CheckType::{FraudCheck, InventoryCheck, OrderDetailsCheck};
use ValidationResult::{Fail, Pass};

struct Harness {
    driver: TopologyTestDriver,
    heard: Arc<Mutex<Vec<(String, OrderState)>>>,
}

fn harness() -> Harness {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = heard.clone();
    let topology = orders_service::topology(Arc::new(move |id: &str, order: &Order| {
        sink.lock()
            .expect("lock")
            .push((id.to_string(), order.state));
    }))
    .expect("topology");
    Harness {
        driver: TopologyTestDriver::new(topology, topics::ORDERS_SERVICE).expect("driver"),
        heard,
    }
}

impl Harness {
    fn place(&mut self, order: &Order, at: i64) {
        self.driver
            .pipe(topics::ORDERS, &order.id, order, at)
            .expect("pipe order");
    }

    fn judge(&mut self, id: &str, check: CheckType, result: ValidationResult, at: i64) {
        self.driver
            .pipe(
                topics::ORDER_VALIDATIONS,
                &id.to_string(),
                &verdict(id, check, result),
                at,
            )
            .expect("pipe verdict");
    }

    fn written(&mut self) -> Vec<(String, OrderState)> {
        self.driver
            .read_output::<String, Order>(topics::ORDERS)
            .expect("orders")
            .into_iter()
            .map(|r| (r.key, r.value.state))
            .collect()
    }

    fn view(&self, id: &str) -> Option<Order> {
        self.driver
            .key_value_store::<String, Order>(ORDERS_STORE)
            .expect("view")
            .get(&id.to_string())
            .expect("get")
    }
}

#[test]
fn three_passes_validate_the_order_and_the_view_follows() {
    let mut h = harness();
    let placed = order("o1", 1, Product::Jumpers, 1, 1.0);
    h.place(&placed, 0);
    assert_eq!(h.view("o1"), Some(placed.clone()));
    h.judge("o1", InventoryCheck, Pass, 1);
    h.judge("o1", FraudCheck, Pass, 2);
    assert!(h.written().is_empty());
    h.judge("o1", OrderDetailsCheck, Pass, 3);
    assert_eq!(h.written(), vec![("o1".to_string(), OrderState::Validated)]);
    assert_eq!(h.view("o1"), Some(placed.with_state(OrderState::Validated)));
    assert_eq!(
        *h.heard.lock().expect("lock"),
        vec![
            ("o1".to_string(), OrderState::Created),
            ("o1".to_string(), OrderState::Validated)
        ]
    );
}

#[test]
fn pass_fail_pass_fails_the_order_once() {
    let mut h = harness();
    h.place(&order("o1", 1, Product::Jumpers, 1, 1.0), 0);
    h.judge("o1", InventoryCheck, Pass, 1);
    h.judge("o1", FraudCheck, Fail, 2);
    h.judge("o1", OrderDetailsCheck, Pass, 3);
    assert_eq!(h.written(), vec![("o1".to_string(), OrderState::Failed)]);
}

#[test]
fn duplicate_passes_count_once_so_an_order_never_ends_both_validated_and_failed() {
    let mut h = harness();
    h.place(&order("o1", 1, Product::Jumpers, 1, 1.0), 0);
    h.judge("o1", InventoryCheck, Pass, 1);
    h.judge("o1", InventoryCheck, Pass, 2);
    h.judge("o1", InventoryCheck, Pass, 3);
    assert!(
        h.written().is_empty(),
        "three copies of one check are not three checks"
    );
    h.judge("o1", FraudCheck, Fail, 4);
    h.judge("o1", OrderDetailsCheck, Pass, 5);
    h.judge("o1", FraudCheck, Pass, 6);
    assert_eq!(h.written(), vec![("o1".to_string(), OrderState::Failed)]);
}

#[test]
fn verdicts_arriving_before_their_order_are_kept() {
    let mut h = harness();
    h.judge("o1", InventoryCheck, Pass, 0);
    h.judge("o1", FraudCheck, Pass, 0);
    h.judge("o1", OrderDetailsCheck, Pass, 0);
    assert!(h.written().is_empty());
    h.place(&order("o1", 1, Product::Jumpers, 1, 1.0), 1);
    assert_eq!(h.written(), vec![("o1".to_string(), OrderState::Validated)]);
}

#[test]
fn a_re_sent_order_is_not_decided_again() {
    let mut h = harness();
    let placed = order("o1", 1, Product::Jumpers, 1, 1.0);
    h.place(&placed, 0);
    for check in CheckType::ALL {
        h.judge("o1", check, Pass, 1);
    }
    h.place(&placed, 2);
    for check in CheckType::ALL {
        h.judge("o1", check, Pass, 3);
    }
    h.judge("o1", FraudCheck, Fail, 4);
    assert_eq!(h.written(), vec![("o1".to_string(), OrderState::Validated)]);
}

#[test]
fn verdicts_after_the_five_minute_window_are_dropped_and_the_order_fails_when_it_closes() {
    let mut h = harness();
    let five_minutes = 5 * 60 * 1000;
    h.place(&order("late", 1, Product::Jumpers, 1, 1.0), 0);
    h.judge("late", InventoryCheck, Pass, 1);
    h.judge("late", FraudCheck, Pass, 2);
    // The last check answers after the window: it does not count, and the window's close
    // (on stream time, which this verdict moves past it) fails the order.
    h.judge("late", OrderDetailsCheck, Pass, five_minutes + 1);
    h.place(
        &order("other", 1, Product::Jumpers, 1, 1.0),
        five_minutes + 120_000,
    );
    h.driver
        .advance_wall_clock(Duration::from_secs(1))
        .expect("clock");
    assert_eq!(h.written(), vec![("late".to_string(), OrderState::Failed)]);
}
