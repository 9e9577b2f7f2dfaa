//! **Delivery trucks, analytics on write**: trucks report where they are (with their
//! odometer) and their oil changes. As the events arrive, three views are kept up to date,
//! so that reading one is a lookup rather than a query over history:
//!
//! - the latest position of each truck (by event time: a report that arrives late does not
//!   replace a newer one), in `truck-positions`;
//! - the miles each truck has driven since its last oil change, in `truck-service`;
//! - per region and hour, how many reports came from how many trucks, in `region-hourly`
//!   (tumbling one-hour windows with ten minutes of grace; a report later than that is dropped).

use std::time::Duration;

use rill_streams::{
    Consumed, DefaultSerde, Result, StoreOptions, StreamsBuilder, TimeWindows, Topology, Windowed,
};
use serde::{Deserialize, Serialize};

use crate::{Example, Outputs, SampleRecord, decoded, json_record};

/// Truck events, keyed by truck.
pub const TRUCK_EVENTS: &str = "truck-events";
/// Latest position per truck.
pub const POSITIONS: &str = "truck-positions";
/// Miles since the last oil change per truck.
pub const SERVICE: &str = "truck-service";
/// Reports per region and hour.
pub const REGION_HOURLY: &str = "region-hourly";

/// What a truck reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TruckEvent {
    /// Where it is.
    Location {
        /// The region it is in.
        region: String,
        /// Latitude.
        lat: f64,
        /// Longitude.
        lon: f64,
        /// Its odometer, miles.
        odometer: f64,
        /// When, ms since the epoch.
        at: i64,
    },
    /// Its oil was changed.
    OilChange {
        /// Its odometer then, miles.
        odometer: f64,
        /// When, ms since the epoch.
        at: i64,
    },
}

impl TruckEvent {
    /// When it happened.
    pub fn at(&self) -> i64 {
        match self {
            TruckEvent::Location { at, .. } | TruckEvent::OilChange { at, .. } => *at,
        }
    }
}

/// A truck's position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// The truck.
    pub truck: String,
    /// Its region.
    pub region: String,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// When it was there.
    pub at: i64,
}

/// A truck's service state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Highest odometer reading seen.
    pub odometer: f64,
    /// Odometer at the last oil change (0: none seen).
    pub oil_changed_at: f64,
}

impl Service {
    /// Miles driven since the last oil change.
    pub fn miles_since_oil_change(&self) -> f64 {
        (self.odometer - self.oil_changed_at).max(0.0)
    }
}

/// Reports of a region in one hour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionHour {
    /// Location reports.
    pub reports: u64,
    /// The trucks that sent them, sorted.
    pub trucks: Vec<String>,
}

rill_streams::json_serde!(TruckEvent, Position, Service, RegionHour);

/// The topology: truck events in, three views out.
pub fn topology() -> Result<Topology> {
    topology_into(&Outputs::default())
}

/// The topology, writing to the topics `outputs` names.
pub fn topology_into(outputs: &Outputs) -> Result<Topology> {
    let builder = StreamsBuilder::new();
    let events = builder.stream_from::<String, TruckEvent>(
        &[TRUCK_EVENTS],
        Consumed::new().with_timestamp(|_, event: &TruckEvent, _| Some(event.at())),
    );
    let positions = events.flat_map(|truck, event| match event {
        TruckEvent::Location {
            region,
            lat,
            lon,
            at,
            ..
        } => vec![(
            truck.clone(),
            Position {
                truck,
                region,
                lat,
                lon,
                at,
            },
        )],
        TruckEvent::OilChange { .. } => Vec::new(),
    });
    positions
        .group_by_key()
        .reduce(StoreOptions::persistent("truck-positions"), |kept, new| {
            if new.at >= kept.at {
                new.clone()
            } else {
                kept.clone()
            }
        })
        .to_stream()
        .to(&outputs.name(POSITIONS));
    events
        .group_by_key()
        .aggregate(
            StoreOptions::persistent("truck-service"),
            Service::default,
            |_, event, mut service| {
                match event {
                    TruckEvent::Location { odometer, .. } => {
                        service.odometer = service.odometer.max(*odometer);
                    }
                    TruckEvent::OilChange { odometer, .. } => {
                        service.odometer = service.odometer.max(*odometer);
                        service.oil_changed_at = service.oil_changed_at.max(*odometer);
                    }
                }
                service
            },
        )
        .to_stream()
        .to(&outputs.name(SERVICE));
    positions
        .group_by(|_, position| position.region.clone())
        .windowed_by(TimeWindows::of(Duration::from_secs(3600)).grace(Duration::from_secs(10 * 60)))
        .aggregate(
            StoreOptions::persistent("region-hourly"),
            RegionHour::default,
            |_, position, mut hour| {
                hour.reports += 1;
                if let Err(slot) = hour.trucks.binary_search(&position.truck) {
                    hour.trucks.insert(slot, position.truck.clone());
                }
                hour
            },
        )
        .to_stream()
        .to(&outputs.name(REGION_HOURLY));
    builder.build()
}

fn location(region: &str, odometer: f64, at: i64) -> TruckEvent {
    TruckEvent::Location {
        region: region.into(),
        lat: 51.5,
        lon: -0.1,
        odometer,
        at,
    }
}

/// The sample: minutes after the start of the hour two hours before `now`.
fn sample(now: i64) -> Vec<SampleRecord> {
    const HOUR: i64 = 3600 * 1000;
    let start = (now / HOUR - 2) * HOUR;
    let at = |minute: i64| start + minute * 60 * 1000;
    [
        ("t1", location("north", 100.0, at(5))),
        (
            "t1",
            TruckEvent::OilChange {
                odometer: 100.0,
                at: at(6),
            },
        ),
        ("t1", location("north", 160.0, at(40))),
        ("t2", location("south", 50.0, at(30))),
        // Out of order: older than t1's last report, still within the hour's grace.
        ("t1", location("north", 120.0, at(20))),
        ("t2", location("north", 90.0, at(75))),
    ]
    .into_iter()
    .map(|(truck, event)| {
        let at = event.at();
        json_record(TRUCK_EVENTS, truck, &event, at)
    })
    .collect()
}

fn minute_of_day(at: i64) -> String {
    let minutes = at.div_euclid(60_000).rem_euclid(24 * 60);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn render(topic: &str, key: &[u8], value: Option<&[u8]>) -> String {
    match topic {
        REGION_HOURLY => {
            let window = Windowed::<String>::default_serde().deserialize(topic, key);
            match (window, decoded::<RegionHour>(value)) {
                (Ok(window), Ok(hour)) => format!(
                    "{} {}-{} UTC: {} report{} from {}",
                    window.key,
                    minute_of_day(window.window.start),
                    minute_of_day(window.window.end),
                    hour.reports,
                    if hour.reports == 1 { "" } else { "s" },
                    hour.trucks.join(", ")
                ),
                (Err(error), _) => format!("(undecodable window: {error})"),
                (_, Err(reason)) => reason,
            }
        }
        SERVICE => {
            let truck = String::from_utf8_lossy(key);
            match decoded::<Service>(value) {
                Ok(service) => format!(
                    "{truck}: {:.0} miles since its last oil change",
                    service.miles_since_oil_change()
                ),
                Err(reason) => format!("{truck}: {reason}"),
            }
        }
        _ => {
            let truck = String::from_utf8_lossy(key);
            match decoded::<Position>(value) {
                Ok(position) => format!(
                    "{truck} last seen in {} at {} UTC",
                    position.region,
                    minute_of_day(position.at)
                ),
                Err(reason) => format!("{truck}: {reason}"),
            }
        }
    }
}

/// This example, for the runner.
pub fn example() -> Example {
    Example {
        name: "trucks",
        summary: "latest position, miles since the oil change and hourly region reports, kept as events arrive",
        topology: topology_into,
        inputs: &[TRUCK_EVENTS],
        outputs: &[POSITIONS, SERVICE, REGION_HOURLY],
        tables: &[POSITIONS, SERVICE, REGION_HOURLY],
        sample,
        render,
        query: None,
    }
}
