//! Coffee then electronics on the test driver: pairs within 20 minutes of event time earn a
//! coupon each, in either arrival order; late purchases are dropped.

use rill_examples::coffee_coupons::{COUPONS, Category, Coupon, PURCHASES, Purchase, topology};
use rill_streams::TopologyTestDriver;

const MIN: i64 = 60 * 1000;

fn buy(driver: &mut TopologyTestDriver, customer: &str, category: Category, item: &str, at: i64) {
    let purchase = Purchase {
        customer: customer.into(),
        category,
        item: item.into(),
        at,
    };
    // The log timestamp says nothing: event time comes from `at`.
    driver
        .pipe(PURCHASES, &customer.to_string(), &purchase, 0)
        .expect("pipe");
}

fn coupons(driver: &mut TopologyTestDriver) -> Vec<(String, String, String)> {
    driver
        .read_output::<String, Coupon>(COUPONS)
        .expect("coupons")
        .into_iter()
        .map(|r| (r.key, r.value.coffee, r.value.electronics))
        .collect()
}

fn s(text: &str) -> String {
    text.to_string()
}

#[test]
fn coffee_then_electronics_within_twenty_minutes_earns_one_coupon_per_pair() {
    let mut driver =
        TopologyTestDriver::new(topology().expect("topology"), "coupons").expect("driver");
    buy(&mut driver, "ann", Category::Coffee, "espresso", 0);
    buy(
        &mut driver,
        "ann",
        Category::Electronics,
        "headphones",
        10 * MIN,
    );
    buy(
        &mut driver,
        "ann",
        Category::Electronics,
        "camera",
        21 * MIN,
    ); // 21 > 20
    buy(
        &mut driver,
        "bob",
        Category::Electronics,
        "charger",
        5 * MIN,
    ); // before the coffee
    buy(&mut driver, "bob", Category::Coffee, "latte", 12 * MIN);
    buy(&mut driver, "ann", Category::Coffee, "mocha", 15 * MIN);
    // Both of ann's coffees are within 20 minutes before the cable: two pairs, two coupons.
    buy(&mut driver, "ann", Category::Electronics, "cable", 19 * MIN);
    buy(&mut driver, "cy", Category::Other, "socks", 20 * MIN);
    assert_eq!(
        coupons(&mut driver),
        vec![
            (s("ann"), s("espresso"), s("headphones")),
            (s("ann"), s("mocha"), s("camera")),
            (s("ann"), s("espresso"), s("cable")),
            (s("ann"), s("mocha"), s("cable")),
        ]
    );
}

#[test]
fn an_out_of_order_coffee_within_grace_joins_and_a_later_one_is_dropped() {
    let mut driver =
        TopologyTestDriver::new(topology().expect("topology"), "coupons").expect("driver");
    buy(
        &mut driver,
        "cy",
        Category::Electronics,
        "speaker",
        45 * MIN,
    );
    // Bought at 30, arrives after the speaker: its window [30, 50] is open until 55.
    buy(&mut driver, "cy", Category::Coffee, "flat white", 30 * MIN);
    assert_eq!(
        coupons(&mut driver),
        vec![(s("cy"), s("flat white"), s("speaker"))]
    );

    buy(&mut driver, "dan", Category::Electronics, "drone", 12 * MIN);
    // Stream time is 45 minutes: a coffee of minute 1 has a window closing at 21 + 5 = 26.
    buy(&mut driver, "dan", Category::Coffee, "americano", MIN);
    assert!(coupons(&mut driver).is_empty());
    assert!(driver.metrics().late_records_dropped >= 1);
}
