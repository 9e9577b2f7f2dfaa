//! Event time taken from the payload (`Consumed::with_timestamp`): windows and grace follow it,
//! outputs carry it, and a record without a valid time goes to the dead-letter topic.

use std::time::Duration;

use rill_streams::{
    Consumed, StoreOptions, StreamsBuilder, TimeWindows, TopologyTestDriver, Windowed,
};

fn s(text: &str) -> String {
    text.to_string()
}

/// Values are event times; the log timestamps of the piped records say nothing useful.
fn counts_by_payload_time() -> TopologyTestDriver {
    let builder = StreamsBuilder::new();
    builder
        .stream_from::<String, i64>(
            &["in"],
            Consumed::new().with_timestamp(|_, event_time: &i64, _| Some(*event_time)),
        )
        .group_by_key()
        .windowed_by(TimeWindows::of(Duration::from_millis(10)).grace(Duration::from_millis(5)))
        .count(StoreOptions::in_memory("counts"))
        .to_stream()
        .to("out");
    TopologyTestDriver::new(builder.build().expect("topology"), "app").expect("driver")
}

#[test]
fn windows_and_grace_follow_the_payload_time_not_the_log_time() {
    let mut driver = counts_by_payload_time();
    // The same arrivals as the log-time tumbling test, but every log timestamp is 1,000,000:
    // by log time all would fall into one window. By payload time, stream time is 12 when 3
    // arrives ([0, 10) closes at 15: still open) and 16 when 4 arrives (closed: late).
    for event_time in [1i64, 5, 12, 3, 16, 4] {
        driver.pipe("in", &s("a"), &event_time, 1_000_000).unwrap();
    }
    let out = driver.read_output::<Windowed<String>, i64>("out").unwrap();
    let windows: Vec<(i64, i64, i64)> = out
        .iter()
        .map(|r| (r.key.window.start, r.key.window.end, r.value))
        .collect();
    assert_eq!(
        windows,
        vec![(0, 10, 1), (0, 10, 2), (10, 20, 1), (0, 10, 3), (10, 20, 2)]
    );
    assert_eq!(driver.metrics().late_records_dropped, 1);
    // Updates are stamped with the event time of the record that made them.
    let stamps: Vec<i64> = out.iter().map(|r| r.timestamp).collect();
    assert_eq!(stamps, vec![1, 5, 12, 3, 16]);
}

#[test]
fn a_record_without_a_valid_event_time_goes_to_the_dead_letter_topic() {
    let builder = StreamsBuilder::new();
    builder
        .stream_from::<String, i64>(
            &["in"],
            Consumed::new()
                .with_timestamp(|_, event_time: &i64, _| (*event_time != 0).then_some(*event_time)),
        )
        .to("out");
    let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
    for event_time in [7i64, 0, -3, 9] {
        driver.pipe("in", &s("k"), &event_time, 100).unwrap();
    }
    let out = driver.read_output::<String, i64>("out").unwrap();
    let kept: Vec<(i64, i64)> = out.iter().map(|r| (r.value, r.timestamp)).collect();
    assert_eq!(kept, vec![(7, 7), (9, 9)]);
    let dead = driver.read_raw("app-dlq");
    assert_eq!(dead.len(), 2);
    let reason = |i: usize| {
        let header = dead[i]
            .headers
            .iter()
            .find(|h| h.key == "rill.error")
            .and_then(|h| h.value.clone())
            .unwrap();
        String::from_utf8(header.to_vec()).unwrap()
    };
    assert!(reason(0).contains("no valid event time"), "{}", reason(0));
    assert!(reason(1).contains("extracted -3"), "{}", reason(1));
}
