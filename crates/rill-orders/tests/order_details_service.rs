//! The order details validator through the test driver.

mod common;

use common::order;
use rill_orders::domain::{CheckType, OrderState, OrderValidation, Product, ValidationResult};
use rill_orders::{order_details, topics};
use rill_streams::TopologyTestDriver;

fn results(driver: &mut TopologyTestDriver) -> Vec<(String, ValidationResult)> {
    driver
        .read_output::<String, OrderValidation>(topics::ORDER_VALIDATIONS)
        .expect("verdicts")
        .into_iter()
        .map(|r| {
            assert_eq!(r.key, r.value.order_id, "verdicts are keyed by order id");
            assert_eq!(r.value.check_type, CheckType::OrderDetailsCheck);
            (r.key, r.value.validation_result)
        })
        .collect()
}

#[test]
fn well_formed_orders_pass_and_bad_quantities_prices_and_customers_fail() {
    let topology = order_details::topology().expect("topology");
    let mut driver =
        TopologyTestDriver::new(topology, topics::ORDER_DETAILS_SERVICE).expect("driver");
    let cases = [
        (
            order("ok", 1, Product::Jumpers, 1, 0.0),
            ValidationResult::Pass,
        ),
        (
            order("zero-qty", 1, Product::Jumpers, 0, 1.0),
            ValidationResult::Fail,
        ),
        (
            order("neg-price", 1, Product::Jumpers, 1, -0.5),
            ValidationResult::Fail,
        ),
        (
            order("no-customer", -1, Product::Jumpers, 1, 1.0),
            ValidationResult::Fail,
        ),
    ];
    for (i, (order, _)) in cases.iter().enumerate() {
        driver
            .pipe(topics::ORDERS, &order.id, order, i as i64)
            .expect("pipe");
    }
    let expected: Vec<_> = cases.iter().map(|(o, r)| (o.id.clone(), *r)).collect();
    assert_eq!(results(&mut driver), expected);
}

#[test]
fn only_created_orders_are_judged() {
    let topology = order_details::topology().expect("topology");
    let mut driver =
        TopologyTestDriver::new(topology, topics::ORDER_DETAILS_SERVICE).expect("driver");
    let validated = order("o1", 1, Product::Jumpers, 1, 1.0).with_state(OrderState::Validated);
    driver
        .pipe(topics::ORDERS, &validated.id, &validated, 0)
        .expect("pipe");
    assert!(results(&mut driver).is_empty());
}
