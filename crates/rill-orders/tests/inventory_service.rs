//! The inventory validator through the test driver: the SPEC 2.5 scenario, reservations
//! released when an order fails another check, unknown products failing, and re-sent orders.

mod common;

use common::order;
use rill_orders::domain::{
    Order, OrderState, OrderValidation, Product, StockCount, ValidationResult,
};
use rill_orders::{inventory, topics};
use rill_streams::{TopologyTestDriver, changelog_topic};

fn driver() -> TopologyTestDriver {
    TopologyTestDriver::new(
        inventory::topology().expect("topology"),
        topics::INVENTORY_SERVICE,
    )
    .expect("driver")
}

fn stock(driver: &mut TopologyTestDriver, product: Product, count: i64) {
    driver
        .pipe(
            topics::WAREHOUSE_INVENTORY,
            &product.name().to_string(),
            &StockCount(count),
            0,
        )
        .expect("pipe stock");
}

fn place(driver: &mut TopologyTestDriver, order: &Order) {
    driver
        .pipe(topics::ORDERS, &order.id, order, 1)
        .expect("pipe order");
}

fn results(driver: &mut TopologyTestDriver) -> Vec<(String, ValidationResult)> {
    driver
        .read_output::<String, OrderValidation>(topics::ORDER_VALIDATIONS)
        .expect("verdicts")
        .into_iter()
        .map(|r| (r.key, r.value.validation_result))
        .collect()
}

fn reserved(driver: &TopologyTestDriver, product: Product) -> Option<i64> {
    driver
        .key_value_store::<String, i64>(inventory::RESERVED_STOCKS)
        .expect("store")
        .get(&product.name().to_string())
        .expect("get")
}

fn pass(id: &str) -> (String, ValidationResult) {
    (id.to_string(), ValidationResult::Pass)
}

fn fail(id: &str) -> (String, ValidationResult) {
    (id.to_string(), ValidationResult::Fail)
}

#[test]
fn orders_pass_while_stock_lasts_and_the_changelog_holds_the_reservations() {
    let mut driver = driver();
    stock(&mut driver, Product::Underpants, 75);
    stock(&mut driver, Product::Jumpers, 1);
    place(&mut driver, &order("a", 1, Product::Underpants, 3, 1.0));
    place(&mut driver, &order("b", 1, Product::Jumpers, 1, 1.0));
    place(&mut driver, &order("c", 1, Product::Jumpers, 1, 1.0));
    assert_eq!(results(&mut driver), vec![pass("a"), pass("b"), fail("c")]);

    let changelog = changelog_topic(topics::INVENTORY_SERVICE, inventory::RESERVED_STOCKS);
    let latest: std::collections::BTreeMap<String, i64> = driver
        .read_output::<String, i64>(&changelog)
        .expect("changelog")
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    assert_eq!(
        latest,
        [("JUMPERS".to_string(), 1), ("UNDERPANTS".to_string(), 3)].into()
    );
}

#[test]
fn ten_single_jumpers_pass_with_ten_in_stock_and_fail_with_none() {
    let mut driver = driver();
    stock(&mut driver, Product::Jumpers, 10);
    for i in 0..10 {
        place(
            &mut driver,
            &order(&format!("o{i}"), 1, Product::Jumpers, 1, 1.0),
        );
    }
    assert!(
        results(&mut driver)
            .iter()
            .all(|(_, r)| *r == ValidationResult::Pass)
    );

    let mut driver = self::driver();
    stock(&mut driver, Product::Jumpers, 0);
    for i in 0..10 {
        place(
            &mut driver,
            &order(&format!("o{i}"), 1, Product::Jumpers, 1, 1.0),
        );
    }
    let all = results(&mut driver);
    assert_eq!(all.len(), 10);
    assert!(all.iter().all(|(_, r)| *r == ValidationResult::Fail));
}

#[test]
fn a_reservation_is_released_when_its_order_fails_another_check() {
    let mut driver = driver();
    stock(&mut driver, Product::Jumpers, 1);
    let first = order("first", 1, Product::Jumpers, 1, 1.0);
    place(&mut driver, &first);
    assert_eq!(reserved(&driver, Product::Jumpers), Some(1));
    // The fraud check failed it: the aggregator writes it FAILED, the jumper is free again.
    place(&mut driver, &first.with_state(OrderState::Failed));
    assert_eq!(reserved(&driver, Product::Jumpers), Some(0));
    place(&mut driver, &order("second", 1, Product::Jumpers, 1, 1.0));
    assert_eq!(results(&mut driver), vec![pass("first"), pass("second")]);
    // Released once only, whatever is replayed.
    place(&mut driver, &first.with_state(OrderState::Failed));
    assert_eq!(reserved(&driver, Product::Jumpers), Some(1));
}

#[test]
fn an_order_it_failed_releases_nothing() {
    let mut driver = driver();
    stock(&mut driver, Product::Jumpers, 1);
    place(&mut driver, &order("held", 1, Product::Jumpers, 1, 1.0));
    let refused = order("refused", 1, Product::Jumpers, 1, 1.0);
    place(&mut driver, &refused);
    place(&mut driver, &refused.with_state(OrderState::Failed));
    assert_eq!(reserved(&driver, Product::Jumpers), Some(1));
    assert_eq!(results(&mut driver), vec![pass("held"), fail("refused")]);
}

#[test]
fn a_product_without_an_inventory_record_fails_instead_of_hanging() {
    let mut driver = driver();
    place(&mut driver, &order("o1", 1, Product::Stockings, 1, 1.0));
    assert_eq!(results(&mut driver), vec![fail("o1")]);
}

#[test]
fn a_re_sent_order_gets_the_same_verdict_without_reserving_twice() {
    let mut driver = driver();
    stock(&mut driver, Product::Jumpers, 2);
    let once = order("once", 1, Product::Jumpers, 1, 1.0);
    place(&mut driver, &once);
    place(&mut driver, &once);
    assert_eq!(reserved(&driver, Product::Jumpers), Some(1));
    assert_eq!(results(&mut driver), vec![pass("once"), pass("once")]);
}

#[test]
fn stock_added_later_is_used_by_later_orders() {
    let mut driver = driver();
    stock(&mut driver, Product::Jumpers, 0);
    place(&mut driver, &order("early", 1, Product::Jumpers, 1, 1.0));
    stock(&mut driver, Product::Jumpers, 5);
    place(&mut driver, &order("late", 1, Product::Jumpers, 5, 1.0));
    assert_eq!(results(&mut driver), vec![fail("early"), pass("late")]);
}
