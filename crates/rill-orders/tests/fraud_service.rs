//! The fraud validator through the test driver: the SPEC 2.5 scenario and session gaps.

mod common;

use common::order;
use rill_orders::domain::{CheckType, OrderState, OrderValidation, Product, ValidationResult};
use rill_orders::{fraud, topics};
use rill_streams::TopologyTestDriver;

use ValidationResult::{Fail, Pass};

fn driver() -> TopologyTestDriver {
    TopologyTestDriver::new(fraud::topology().expect("topology"), topics::FRAUD_SERVICE)
        .expect("driver")
}

fn results(driver: &mut TopologyTestDriver) -> Vec<(String, ValidationResult)> {
    driver
        .read_output::<String, OrderValidation>(topics::ORDER_VALIDATIONS)
        .expect("verdicts")
        .into_iter()
        .map(|r| {
            assert_eq!(r.value.check_type, CheckType::FraudCheck);
            assert_eq!(r.key, r.value.order_id);
            (r.key, r.value.validation_result)
        })
        .collect()
}

#[test]
fn orders_fail_once_their_customer_session_reaches_2000() {
    let mut driver = driver();
    let scenario = [
        (0, 3, 5.0, Pass),
        (0, 1, 75.0, Pass),
        (1, 1, 75.0, Pass),
        (1, 1, 75.0, Pass),
        (1, 50, 75.0, Fail),
        (2, 10, 100.0, Pass),
        (2, 10, 100.0, Fail), // exactly 2000
        (2, 1, 5.0, Fail),
    ];
    for (i, (customer, quantity, price, _)) in scenario.iter().enumerate() {
        let placed = order(
            &format!("o{i}"),
            *customer,
            Product::Jumpers,
            *quantity,
            *price,
        );
        driver
            .pipe(topics::ORDERS, &placed.id, &placed, 1_000 + i as i64)
            .expect("pipe");
    }
    let expected: Vec<_> = scenario
        .iter()
        .enumerate()
        .map(|(i, (.., verdict))| (format!("o{i}"), *verdict))
        .collect();
    assert_eq!(results(&mut driver), expected);
}

#[test]
fn an_hour_of_quiet_starts_a_new_session() {
    let mut driver = driver();
    let hour = 60 * 60 * 1000;
    for (i, at) in [0, 1_000, 1_000 + hour + 1].iter().enumerate() {
        let placed = order(&format!("o{i}"), 5, Product::Jumpers, 10, 100.0);
        driver
            .pipe(topics::ORDERS, &placed.id, &placed, *at)
            .expect("pipe");
    }
    assert_eq!(
        results(&mut driver),
        vec![
            ("o0".to_string(), Pass),
            ("o1".to_string(), Fail),
            ("o2".to_string(), Pass)
        ]
    );
}

#[test]
fn decided_orders_are_not_judged_again() {
    let mut driver = driver();
    let placed = order("o1", 1, Product::Jumpers, 1, 1.0);
    driver
        .pipe(topics::ORDERS, &placed.id, &placed, 0)
        .expect("pipe");
    let validated = placed.with_state(OrderState::Validated);
    driver
        .pipe(topics::ORDERS, &validated.id, &validated, 1)
        .expect("pipe");
    assert_eq!(results(&mut driver), vec![("o1".to_string(), Pass)]);
}
