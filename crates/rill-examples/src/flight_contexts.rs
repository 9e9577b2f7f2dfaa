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
//! - **Spatial, entity distance**: events within 50 km of a moving entity, a storm whose
//!   latest position is a global table (`storm-positions`), in `near-storm`.
//! - **Spatial, event distance**: events within 5 km and 15 minutes of an incident (from
//!   `incidents`), by a stream-stream join, in `near-incident`.
//!
//! Event time comes from the events themselves.

use std::time::Duration;

use rill_streams::{
    Consumed, CountWindows, DefaultSerde, EventIntervalWindows, JoinWindows, Result, StoreOptions,
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
/// The storm's position, keyed by storm name.
pub const STORM_POSITIONS: &str = "storm-positions";
/// Incidents (e.g. a bird strike), keyed by incident id.
pub const INCIDENTS: &str = "incidents";
/// Events near the storm.
pub const NEAR_STORM: &str = "near-storm";
/// Events near an incident, in space and time.
pub const NEAR_INCIDENT: &str = "near-incident";
/// The storm followed.
pub const STORM: &str = "ciara";
/// How near the storm an event counts, km.
pub const STORM_RADIUS_KM: f64 = 50.0;
/// How near an incident an event counts, km.
pub const INCIDENT_RADIUS_KM: f64 = 5.0;
/// How near an incident in time an event counts.
pub const INCIDENT_WINDOW: Duration = Duration::from_secs(15 * 60);

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

/// A place.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spot {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

/// Something that happened at a place and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// What.
    pub what: String,
    /// Where.
    pub at_spot: Spot,
    /// When, ms since the epoch.
    pub at: i64,
}

/// A flight's event near an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NearIncident {
    /// The flight.
    pub flight: String,
    /// Its event.
    pub kind: Kind,
    /// The incident.
    pub incident: String,
}

/// A flight's event with its flight, for joins on another key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tagged {
    /// The flight.
    pub flight: String,
    /// The event.
    pub event: FlightEvent,
}

/// The kinds of a flight's events in a context, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Kinds(pub Vec<Kind>);

rill_streams::json_serde!(FlightEvent, Kinds, Spot, Incident, NearIncident, Tagged);

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

    // Entity distance: the storm's latest position, wherever it has moved.
    let storms = builder.global_table::<String, Spot>(STORM_POSITIONS, "storm-positions");
    events
        .join_global(
            &storms,
            |_, _| STORM.to_string(),
            |event: &FlightEvent, storm: &Spot| (event.clone(), *storm),
        )
        .filter(|_, (event, storm)| {
            distance_km((event.lat, event.lon), (storm.lat, storm.lon)) <= STORM_RADIUS_KM
        })
        .map_values(|(event, _)| event)
        .to(&outputs.name(NEAR_STORM));

    // Event distance: every event and incident of the area meet in one join, within 15
    // minutes of each other; then only those within 5 km count.
    let incidents = builder
        .stream_from::<String, Incident>(
            &[INCIDENTS],
            Consumed::new().with_timestamp(|_, incident: &Incident, _| Some(incident.at)),
        )
        .select_key(|_, _| "area".to_string());
    events
        .map(|flight, event| ("area".to_string(), Tagged { flight, event }))
        .join_stream(
            &incidents,
            // Incidents are often reported late: they still meet the events of their time
            // if they arrive within three hours.
            JoinWindows::of(INCIDENT_WINDOW)
                .grace(Duration::from_secs(3 * 3600))
                .named("events-incidents"),
            |tagged: &Tagged, incident: &Incident| (tagged.clone(), incident.clone()),
        )
        .filter(|_, (tagged, incident)| {
            let event = (tagged.event.lat, tagged.event.lon);
            distance_km(event, (incident.at_spot.lat, incident.at_spot.lon)) <= INCIDENT_RADIUS_KM
        })
        .map(|_, (tagged, incident)| {
            (
                tagged.flight.clone(),
                NearIncident {
                    flight: tagged.flight,
                    kind: tagged.event.kind,
                    incident: incident.what,
                },
            )
        })
        .to(&outputs.name(NEAR_INCIDENT));
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
    .chain([
        // Over the Channel, near BA1's position report.
        json_record(
            STORM_POSITIONS,
            STORM,
            &Spot {
                lat: 51.0,
                lon: 1.2,
            },
            at(0),
        ),
        json_record(
            INCIDENTS,
            "i1",
            &Incident {
                what: "bird strike".into(),
                at_spot: Spot {
                    lat: gate.0,
                    lon: gate.1,
                },
                at: at(28),
            },
            at(28),
        ),
    ])
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
        NEAR_INCIDENT => match decoded::<NearIncident>(value) {
            Ok(near) => format!(
                "{} {} near the {}",
                near.flight,
                kinds(&Kinds(vec![near.kind])),
                near.incident
            ),
            Err(reason) => reason,
        },
        NEAR_STORM => match decoded::<FlightEvent>(value) {
            Ok(event) => format!(
                "{} {} near storm {STORM} at {} UTC",
                String::from_utf8_lossy(key),
                kinds(&Kinds(vec![event.kind])),
                minute_of_day(event.at)
            ),
            Err(reason) => reason,
        },
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
        summary: "flight events in six contexts: per airline and hour, while delayed, near the hub, last three, near a moving storm, near an incident",
        topology: topology_into,
        inputs: &[FLIGHT_EVENTS, STORM_POSITIONS, INCIDENTS],
        outputs: &[
            DELAYS_HOURLY,
            WHILE_DELAYED,
            NEAR_HUB,
            LAST_THREE,
            NEAR_STORM,
            NEAR_INCIDENT,
        ],
        tables: &[DELAYS_HOURLY, LAST_THREE],
        sample,
        render,
        query: None,
    }
}
