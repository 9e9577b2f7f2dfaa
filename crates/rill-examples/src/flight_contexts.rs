//! **Event-processing contexts** on flight events: the same stream of events looked at in
//! four contexts, each a way of deciding which events belong together.
//!
//! - **Composite (temporal and segmentation)**: delays per airline (segment) per hour (fixed
//!   interval), in `delays-per-airline-hourly`.
//! - **State-oriented**: the events of a flight while it is delayed, from its `delayed` event
//!   to its `departed` event (an event-interval window), in `while-delayed`.
//! - **Spatial, fixed location**: events reported within 10 km of the hub airport, in
//!   `near-hub`.
//! - **Sliding count**: each flight's last three events, in `last-three`.
//!
//! Event time comes from the events themselves.

use std::time::Duration;

use rill_streams::{
    Consumed, CountWindows, DefaultSerde, EventIntervalWindows, Result, StoreOptions,
    StreamsBuilder, TimeWindows, Topology, Windowed,
};
use serde::{Deserialize, Serialize};

use crate::{Example, Outputs, SampleRecord, decoded, json_record};

/// Flight events, keyed by flight.
pub const FLIGHT_EVENTS: &str = "flight-events";
/// Delays per airline and hour.
pub const DELAYS_HOURLY: &str = "delays-per-airline-hourly";
/// A flight's events while it was delayed.
pub const WHILE_DELAYED: &str = "while-delayed";
/// Events near the hub.
pub const NEAR_HUB: &str = "near-hub";
/// Each flight's last three events.
pub const LAST_THREE: &str = "last-three";

/// The hub airport (London Heathrow), latitude and longitude.
pub const HUB: (f64, f64) = (51.47, -0.4543);
/// How near the hub an event counts as at the hub, km.
pub const HUB_RADIUS_KM: f64 = 10.0;

/// What happened to a flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Its departure was delayed.
    Delayed,
    /// Boarding started.
    Boarding,
    /// It took off.
    Departed,
    /// A position report.
    Position,
}

/// A flight event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlightEvent {
    /// The airline.
    pub airline: String,
    /// What happened.
    pub kind: Kind,
    /// Where, latitude.
    pub lat: f64,
    /// Where, longitude.
    pub lon: f64,
    /// When, ms since the epoch.
    pub at: i64,
}

/// The kinds of a flight's events in a context, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Kinds(pub Vec<Kind>);

rill_streams::json_serde!(FlightEvent, Kinds);

/// Great-circle distance in km (haversine).
pub fn distance_km((lat1, lon1): (f64, f64), (lat2, lon2): (f64, f64)) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let (dp, dl) = ((lat2 - lat1).to_radians(), (lon2 - lon1).to_radians());
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0 * a.sqrt().asin()
}

/// The topology.
pub fn topology() -> Result<Topology> {
    topology_into(&Outputs::default())
}

/// The topology, writing to the topics `outputs` names.
pub fn topology_into(outputs: &Outputs) -> Result<Topology> {
    let builder = StreamsBuilder::new();
    let events = builder.stream_from::<String, FlightEvent>(
        &[FLIGHT_EVENTS],
        Consumed::new().with_timestamp(|_, event: &FlightEvent, _| Some(event.at)),
    );
    let append = |_: &String, event: &FlightEvent, mut kinds: Kinds| {
        kinds.0.push(event.kind);
        kinds
    };

    events
        .filter(|_, event| event.kind == Kind::Delayed)
        .group_by(|_, event| event.airline.clone())
        .windowed_by(TimeWindows::of(Duration::from_secs(3600)).grace(Duration::from_secs(600)))
        .count(StoreOptions::persistent("delays-per-airline-hourly"))
        .to_stream()
        .to(&outputs.name(DELAYS_HOURLY));

    events
        .group_by_key()
        .windowed_by(
            EventIntervalWindows::new(
                |_: &String, event: &FlightEvent| event.kind == Kind::Delayed,
                |_: &String, event: &FlightEvent| event.kind == Kind::Departed,
            )
            .expire_after(Duration::from_secs(6 * 3600)),
        )
        .aggregate(
            StoreOptions::persistent("while-delayed"),
            Kinds::default,
            append,
        )
        .to_stream()
        .to(&outputs.name(WHILE_DELAYED));

    events
        .filter(|_, event| distance_km((event.lat, event.lon), HUB) <= HUB_RADIUS_KM)
        .to(&outputs.name(NEAR_HUB));

    events
        .group_by_key()
        .windowed_by(CountWindows::of(3).advance_by(1))
        .aggregate(
            StoreOptions::persistent("last-three"),
            Kinds::default,
            append,
        )
        .to_stream()
        .to(&outputs.name(LAST_THREE));
    builder.build()
}

fn event(airline: &str, kind: Kind, (lat, lon): (f64, f64), at: i64) -> FlightEvent {
    FlightEvent {
        airline: airline.into(),
        kind,
        lat,
        lon,
        at,
    }
}

/// The sample: minutes after the start of the hour three hours before `now`.
fn sample(now: i64) -> Vec<SampleRecord> {
    const HOUR: i64 = 3600 * 1000;
    let start = (now / HOUR - 3) * HOUR;
    let at = |minute: i64| start + minute * 60 * 1000;
    let gate = HUB;
    let channel = (51.0, 1.5);
    [
        ("BA1", event("BA", Kind::Delayed, gate, at(5))),
        ("BA1", event("BA", Kind::Boarding, gate, at(30))),
        ("BA1", event("BA", Kind::Departed, gate, at(40))),
        ("BA1", event("BA", Kind::Position, channel, at(70))),
        ("BA2", event("BA", Kind::Delayed, gate, at(20))),
        ("AF7", event("AF", Kind::Boarding, gate, at(10))),
        ("AF7", event("AF", Kind::Departed, gate, at(25))),
        ("BA3", event("BA", Kind::Delayed, gate, at(65))),
    ]
    .into_iter()
    .map(|(flight, event)| {
        let at = event.at;
        json_record(FLIGHT_EVENTS, flight, &event, at)
    })
    .collect()
}

fn kinds(kinds: &Kinds) -> String {
    let names: Vec<String> = kinds
        .0
        .iter()
        .map(|k| {
            serde_json::to_string(k)
                .unwrap_or_default()
                .trim_matches('"')
                .to_string()
        })
        .collect();
    names.join(", ")
}

fn minute_of_day(at: i64) -> String {
    let minutes = at.div_euclid(60_000).rem_euclid(24 * 60);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn render(topic: &str, key: &[u8], value: Option<&[u8]>) -> String {
    match topic {
        NEAR_HUB => match decoded::<FlightEvent>(value) {
            Ok(event) => format!(
                "{} {} at the hub at {} UTC",
                String::from_utf8_lossy(key),
                kinds(&Kinds(vec![event.kind])),
                minute_of_day(event.at)
            ),
            Err(reason) => reason,
        },
        DELAYS_HOURLY => {
            let window = Windowed::<String>::default_serde().deserialize(topic, key);
            let count = value
                .ok_or_else(|| "(tombstone)".to_string())
                .and_then(|bytes| {
                    i64::default_serde()
                        .deserialize(topic, bytes)
                        .map_err(|e| format!("(undecodable: {e})"))
                });
            match (window, count) {
                (Ok(w), Ok(n)) => format!(
                    "{} {}-{} UTC: {n} delayed",
                    w.key,
                    minute_of_day(w.window.start),
                    minute_of_day(w.window.end)
                ),
                (Err(error), _) => format!("(undecodable window: {error})"),
                (_, Err(reason)) => reason,
            }
        }
        _ => {
            let window = Windowed::<String>::default_serde().deserialize(topic, key);
            match (window, decoded::<Kinds>(value)) {
                (Ok(w), Ok(k)) => format!(
                    "{} {}-{} UTC: {}",
                    w.key,
                    minute_of_day(w.window.start),
                    minute_of_day(w.window.end),
                    kinds(&k)
                ),
                (Err(error), _) => format!("(undecodable window: {error})"),
                (_, Err(reason)) => reason,
            }
        }
    }
}

/// This example, for the runner.
pub fn example() -> Example {
    Example {
        name: "flight-contexts",
        summary: "one stream of flight events in four contexts: per airline and hour, while delayed, near the hub, last three",
        topology: topology_into,
        inputs: &[FLIGHT_EVENTS],
        outputs: &[DELAYS_HOURLY, WHILE_DELAYED, NEAR_HUB, LAST_THREE],
        tables: &[DELAYS_HOURLY, LAST_THREE],
        sample,
        render,
    }
}
