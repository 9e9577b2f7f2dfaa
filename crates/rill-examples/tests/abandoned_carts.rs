//! Abandoned carts on the test driver: a cart idle past the limit on the wall clock is
//! emitted once with its contents; a checkout or recent activity keeps it quiet.

use std::time::Duration;

use rill_examples::abandoned_carts::{
    ABANDONED_CARTS, AbandonedCart, SHOPPER_EVENTS, ShopperEvent, topology_with,
};
use rill_streams::TopologyTestDriver;

const MIN: i64 = 60 * 1000;

fn driver() -> TopologyTestDriver {
    let topology =
        topology_with(Duration::from_secs(30 * 60), Duration::from_secs(60)).expect("topology");
    TopologyTestDriver::new(topology, "carts").expect("driver")
}

fn send(driver: &mut TopologyTestDriver, shopper: &str, event: ShopperEvent) {
    driver
        .pipe(SHOPPER_EVENTS, &shopper.to_string(), &event, 0)
        .expect("pipe");
}

fn added(item: &str, at: i64) -> ShopperEvent {
    ShopperEvent::AddedToCart {
        item: item.into(),
        at,
    }
}

fn abandoned(driver: &mut TopologyTestDriver) -> Vec<(String, Vec<String>)> {
    driver
        .read_output::<String, AbandonedCart>(ABANDONED_CARTS)
        .expect("output")
        .into_iter()
        .map(|r| (r.key, r.value.items))
        .collect()
}

#[test]
fn a_cart_idle_for_thirty_minutes_is_abandoned_once_and_forgotten() {
    let mut driver = driver();
    send(&mut driver, "ann", added("kettle", 0));
    send(&mut driver, "ann", added("mug", 10 * MIN));
    // Out of order: an older event does not move ann's last activity back from minute 10.
    send(&mut driver, "ann", added("spoon", 2 * MIN));
    send(&mut driver, "bob", added("tea", 5 * MIN));
    send(&mut driver, "bob", ShopperEvent::CheckedOut { at: 6 * MIN });

    driver
        .advance_wall_clock(Duration::from_secs(39 * 60))
        .expect("clock");
    assert!(
        abandoned(&mut driver).is_empty(),
        "ann has been idle 29 minutes"
    );
    driver
        .advance_wall_clock(Duration::from_secs(2 * 60))
        .expect("clock");
    assert_eq!(
        abandoned(&mut driver),
        vec![(
            "ann".to_string(),
            vec!["kettle".to_string(), "mug".to_string(), "spoon".to_string()]
        )]
    );
    driver
        .advance_wall_clock(Duration::from_secs(60 * 60))
        .expect("clock");
    assert!(
        abandoned(&mut driver).is_empty(),
        "each cart is emitted once; bob paid"
    );
    let carts = driver
        .key_value_store::<String, rill_examples::abandoned_carts::Cart>("carts")
        .expect("store");
    assert!(
        carts.all().expect("all").is_empty(),
        "abandoned carts are forgotten"
    );
}
