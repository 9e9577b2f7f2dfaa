//! The registry on Apache Kafka, as instances of a cluster use it: two instances (each its own
//! client of the cluster) register at the same time and agree, and a third one started later
//! finds everything in `_schemas`.
//!
//! NEEDS A BROKER at `RILL_KAFKA_BOOTSTRAP` (scripts/test.sh starts one); without it the test
//! fails with instructions rather than pass silently. The cluster's `_schemas` may hold other
//! runs' subjects: this one registers under a subject of its own.

use std::sync::Arc;
use std::time::Duration;

use rill_log_kafka::{KafkaConfig, KafkaLog};
use rill_schema::{Compatibility, LogSchemaRegistry, VersionSelector};

fn instance() -> Arc<LogSchemaRegistry> {
    let bootstrap = std::env::var("RILL_KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "RILL_KAFKA_BOOTSTRAP is not set: this test needs a Kafka broker. Start one with \
             `scripts/kafka.sh install && scripts/kafka.sh start` and run with \
             RILL_KAFKA_BOOTSTRAP set to the list it prints"
        )
    });
    let log = KafkaLog::new(KafkaConfig::new(bootstrap).request_timeout(Duration::from_secs(20)))
        .expect("kafka log");
    Arc::new(LogSchemaRegistry::open(&log).expect("registry"))
}

#[test]
fn instances_on_a_kafka_cluster_agree_and_a_later_one_finds_everything() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let subject = format!("race-{}-{nanos}-value", std::process::id());
    let (first, second) = (instance(), instance());
    first
        .set_compatibility(Some(&subject), Compatibility::None)
        .expect("sets");
    let racers: Vec<_> =
        [first, second]
            .into_iter()
            .enumerate()
            .map(|(instance, registry)| {
                let subject = subject.clone();
                std::thread::spawn(move || {
                    (0..5)
                    .map(|n| {
                        let text = format!(
                            r#"{{"type":"record","name":"K{instance}x{n}x{nanos}","fields":[]}}"#
                        );
                        let id = registry.register_schema(&subject, &text).expect("registers");
                        (text, id)
                    })
                    .collect::<Vec<_>>()
                })
            })
            .collect();
    let registered: Vec<(String, i32)> = racers
        .into_iter()
        .flat_map(|racer| racer.join().expect("racer"))
        .collect();
    let mut ids: Vec<i32> = registered.iter().map(|(_, id)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 10, "every schema its own id: {registered:?}");

    let later = instance();
    assert_eq!(
        later.versions(&subject).expect("versions"),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        later.compatibility(Some(&subject)).expect("level"),
        Some(Compatibility::None)
    );
    for (text, id) in &registered {
        assert_eq!(later.lookup(&subject, text).expect("registered").id, *id);
    }
    let latest = later
        .version(&subject, VersionSelector::Latest)
        .expect("latest");
    assert_eq!(latest.version, 10);
}
