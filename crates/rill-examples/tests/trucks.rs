//! Delivery trucks on the test driver: latest position by event time, miles since the oil
//! change, and hourly region reports with a late report dropped.

use rill_examples::trucks::{
    POSITIONS, Position, REGION_HOURLY, RegionHour, SERVICE, Service, TRUCK_EVENTS, TruckEvent,
    topology,
};
use rill_streams::{TopologyTestDriver, Windowed};

const MIN: i64 = 60 * 1000;
const HOUR: i64 = 60 * MIN;

fn send(driver: &mut TopologyTestDriver, truck: &str, event: TruckEvent) {
    driver
        .pipe(TRUCK_EVENTS, &truck.to_string(), &event, 0)
        .expect("pipe");
}

fn at(region: &str, odometer: f64, at: i64) -> TruckEvent {
    TruckEvent::Location {
        region: region.into(),
        lat: 0.0,
        lon: 0.0,
        odometer,
        at,
    }
}

#[test]
fn views_follow_event_time_and_drop_late_reports() {
    let mut driver =
        TopologyTestDriver::new(topology().expect("topology"), "trucks").expect("driver");
    send(&mut driver, "t1", at("north", 100.0, 10 * HOUR + 5 * MIN));
    send(
        &mut driver,
        "t1",
        TruckEvent::OilChange {
            odometer: 100.0,
            at: 10 * HOUR + 6 * MIN,
        },
    );
    send(&mut driver, "t1", at("north", 160.0, 10 * HOUR + 40 * MIN));
    send(&mut driver, "t2", at("south", 50.0, 10 * HOUR + 30 * MIN));
    // Out of order: older than t1's last report.
    send(&mut driver, "t1", at("north", 120.0, 10 * HOUR + 20 * MIN));
    send(&mut driver, "t2", at("north", 90.0, 11 * HOUR + 15 * MIN));
    // Late: the 9:00 hour closed at 10:10 of stream time.
    send(&mut driver, "t1", at("north", 90.0, 9 * HOUR + 50 * MIN));

    let positions = driver
        .key_value_store::<String, Position>("truck-positions")
        .expect("store");
    let t1 = positions.get(&"t1".to_string()).expect("get").expect("t1");
    assert_eq!((t1.region.as_str(), t1.at), ("north", 10 * HOUR + 40 * MIN));

    let service = driver
        .key_value_store::<String, Service>("truck-service")
        .expect("store");
    let t1 = service.get(&"t1".to_string()).expect("get").expect("t1");
    assert_eq!(t1.miles_since_oil_change(), 60.0);
    let t2 = service.get(&"t2".to_string()).expect("get").expect("t2");
    assert_eq!(t2.miles_since_oil_change(), 90.0, "no oil change seen yet");

    // The hour of 10:00 has closed (and left the window store); its updates tell its count.
    let updates = driver
        .read_output::<Windowed<String>, RegionHour>(REGION_HOURLY)
        .expect("out");
    assert_eq!(updates.len(), 5, "one update per counted report");
    let mut last = std::collections::BTreeMap::new();
    for update in updates {
        last.insert(
            (update.key.key.clone(), update.key.window.start / HOUR),
            (update.value.reports, update.value.trucks),
        );
    }
    let s = |text: &str| text.to_string();
    assert_eq!(
        last.into_iter().collect::<Vec<_>>(),
        vec![
            ((s("north"), 10), (3, vec![s("t1")])),
            ((s("north"), 11), (1, vec![s("t2")])),
            ((s("south"), 10), (1, vec![s("t2")])),
        ]
    );
    assert_eq!(driver.metrics().late_records_dropped, 1);
    assert!(!driver.read_raw(POSITIONS).is_empty());
    assert!(!driver.read_raw(SERVICE).is_empty());
}
