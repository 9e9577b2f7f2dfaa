//! Flight events in four contexts on the test driver, against hand-computed expectations.

use rill_examples::flight_contexts::{
    DELAYS_HOURLY, FLIGHT_EVENTS, FlightEvent, HUB, Kind, Kinds, LAST_THREE, NEAR_HUB,
    WHILE_DELAYED, distance_km, topology,
};
use rill_streams::{TopologyTestDriver, Windowed};

const MIN: i64 = 60 * 1000;
const AWAY: (f64, f64) = (51.0, 1.5);

fn send(
    driver: &mut TopologyTestDriver,
    flight: &str,
    airline: &str,
    kind: Kind,
    at: (f64, f64),
    minute: i64,
) {
    let event = FlightEvent {
        airline: airline.into(),
        kind,
        lat: at.0,
        lon: at.1,
        at: minute * MIN,
    };
    driver
        .pipe(FLIGHT_EVENTS, &flight.to_string(), &event, 0)
        .expect("pipe");
}

fn windows<V: Clone + rill_streams::DefaultSerde>(
    driver: &mut TopologyTestDriver,
    topic: &str,
) -> Vec<(String, i64, i64, V)> {
    driver
        .read_output::<Windowed<String>, V>(topic)
        .expect("output")
        .into_iter()
        .map(|r| {
            (
                r.key.key,
                r.key.window.start / MIN,
                r.key.window.end / MIN,
                r.value,
            )
        })
        .collect()
}

#[test]
fn the_hub_is_where_the_distance_says() {
    assert!(distance_km(HUB, HUB) < 0.001);
    // Heathrow to Gatwick is about 40 km.
    let gatwick = (51.1537, -0.1821);
    let km = distance_km(HUB, gatwick);
    assert!((38.0..43.0).contains(&km), "{km}");
}

#[test]
fn one_stream_of_flight_events_in_four_contexts() {
    let mut driver =
        TopologyTestDriver::new(topology().expect("topology"), "flights").expect("driver");
    send(&mut driver, "BA1", "BA", Kind::Delayed, HUB, 5);
    send(&mut driver, "BA1", "BA", Kind::Boarding, HUB, 30);
    send(&mut driver, "BA1", "BA", Kind::Departed, HUB, 40);
    send(&mut driver, "BA1", "BA", Kind::Position, AWAY, 70);
    send(&mut driver, "BA2", "BA", Kind::Delayed, HUB, 20);
    send(&mut driver, "AF7", "AF", Kind::Delayed, AWAY, 50);
    send(&mut driver, "BA3", "BA", Kind::Delayed, HUB, 55);
    send(&mut driver, "BA4", "BA", Kind::Delayed, HUB, 65);
    // The hourly counts run in their own task (after the re-keying by airline), whose stream
    // time only delays move: 65 now, so the hour [0, 60) is open until 60 + 10 = 70.
    send(&mut driver, "BA5", "BA", Kind::Delayed, HUB, 2);
    // At stream time 80 it has closed: a delay of minute 3 is late and dropped.
    send(&mut driver, "BA6", "BA", Kind::Delayed, HUB, 80);
    send(&mut driver, "BA7", "BA", Kind::Delayed, HUB, 3);

    // Composite: delays per airline and hour.
    let mut hourly: Vec<(String, i64, i64, i64)> = windows(&mut driver, DELAYS_HOURLY);
    hourly.sort();
    hourly.dedup_by(|b, a| {
        (a.0 == b.0 && a.1 == b.1)
            .then(|| a.3 = a.3.max(b.3))
            .is_some()
    });
    assert_eq!(
        hourly,
        vec![
            ("AF".to_string(), 0, 60, 1),
            ("BA".to_string(), 0, 60, 4),
            ("BA".to_string(), 60, 120, 2),
        ]
    );
    assert_eq!(driver.metrics().late_records_dropped, 1);

    // State-oriented: BA1 while delayed (the departure closes the context, outside it).
    let delayed: Vec<(String, i64, i64, Kinds)> = windows(&mut driver, WHILE_DELAYED);
    assert_eq!(
        delayed,
        vec![(
            "BA1".to_string(),
            5,
            30,
            Kinds(vec![Kind::Delayed, Kind::Boarding])
        )]
    );

    // Spatial: everything but BA1's position over the Channel and AF7's remote delay.
    let near: Vec<String> = driver
        .read_output::<String, FlightEvent>(NEAR_HUB)
        .expect("near")
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(
        near,
        vec![
            "BA1", "BA1", "BA1", "BA2", "BA3", "BA4", "BA5", "BA6", "BA7"
        ]
    );

    // Sliding count: BA1's windows of three events, advancing by one.
    let last: Vec<(String, i64, i64, Kinds)> = windows(&mut driver, LAST_THREE);
    let ba1: Vec<Vec<Kind>> = last
        .into_iter()
        .filter(|w| w.0 == "BA1")
        .map(|w| w.3.0)
        .collect();
    assert_eq!(
        ba1,
        vec![
            vec![Kind::Delayed, Kind::Boarding, Kind::Departed],
            vec![Kind::Boarding, Kind::Departed, Kind::Position],
        ]
    );
}

#[test]
fn events_near_a_moving_storm_and_near_an_incident() {
    use rill_examples::flight_contexts::{
        INCIDENTS, Incident, NEAR_INCIDENT, NEAR_STORM, NearIncident, STORM, STORM_POSITIONS, Spot,
    };
    let mut driver =
        TopologyTestDriver::new(topology().expect("topology"), "flights").expect("driver");
    let storm = |driver: &mut TopologyTestDriver, spot: (f64, f64)| {
        let spot = Spot {
            lat: spot.0,
            lon: spot.1,
        };
        driver
            .pipe(STORM_POSITIONS, &STORM.to_string(), &spot, 0)
            .expect("storm");
    };
    storm(&mut driver, (51.0, 1.2)); // over the Channel
    send(&mut driver, "BA1", "BA", Kind::Delayed, HUB, 5); // 120 km away
    send(&mut driver, "BA1", "BA", Kind::Position, AWAY, 70); // 21 km away
    storm(&mut driver, HUB); // the storm moved to the hub
    send(&mut driver, "BA2", "BA", Kind::Delayed, HUB, 20);
    let near_storm: Vec<(String, Kind)> = driver
        .read_output::<String, FlightEvent>(NEAR_STORM)
        .expect("near storm")
        .into_iter()
        .map(|r| (r.key, r.value.kind))
        .collect();
    assert_eq!(
        near_storm,
        vec![
            ("BA1".to_string(), Kind::Position),
            ("BA2".to_string(), Kind::Delayed)
        ]
    );

    let incident = Incident {
        what: "bird strike".into(),
        at_spot: Spot {
            lat: HUB.0,
            lon: HUB.1,
        },
        at: 28 * MIN,
    };
    driver
        .pipe(INCIDENTS, &"i1".to_string(), &incident, 0)
        .expect("incident");
    send(&mut driver, "BA1", "BA", Kind::Boarding, HUB, 30); // 2 minutes after, at the hub
    send(&mut driver, "AF7", "AF", Kind::Boarding, HUB, 10); // 18 minutes before: too early
    send(&mut driver, "BA9", "BA", Kind::Departed, AWAY, 35); // in time, too far
    let near_incident: Vec<NearIncident> = driver
        .read_output::<String, NearIncident>(NEAR_INCIDENT)
        .expect("near incident")
        .into_iter()
        .map(|r| r.value)
        .collect();
    // BA2's delay at the hub (minute 20, 8 minutes before) counts too.
    let mut seen: Vec<(String, Kind)> = near_incident
        .into_iter()
        .map(|n| (n.flight, n.kind))
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            ("BA1".to_string(), Kind::Boarding),
            ("BA2".to_string(), Kind::Delayed)
        ]
    );
}
