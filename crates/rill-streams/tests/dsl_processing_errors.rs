//! Processing errors (a processor's error, a panic in user code) under each
//! `ProcessingErrorPolicy`: fail, skip, or dead-letter the record and go on.

use rill_streams::{
    DeserializationPolicy, ProcessingErrorPolicy, Processor, ProcessorContext, Record, Result,
    StreamsBuilder, StreamsError, TopologyTestDriver,
};

fn s(text: &str) -> String {
    text.to_string()
}

/// Refuses negative numbers with an error, and panics on zero (a bug in user code).
struct Picky;

impl Processor<String, i64, String, i64> for Picky {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        record: Record<String, i64>,
    ) -> Result<()> {
        if record.value < 0 {
            return Err(StreamsError::processor(
                "picky",
                format!("{} is negative", record.value),
            ));
        }
        assert_ne!(record.value, 0, "zero reached the picky processor");
        ctx.forward(record)
    }
}

fn driver(policy: ProcessingErrorPolicy) -> TopologyTestDriver {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .process(|| Picky, &[])
        .to("out");
    TopologyTestDriver::with_policies(
        builder.build().expect("topology"),
        "app",
        DeserializationPolicy::Fail,
        policy,
    )
    .expect("driver")
}

#[test]
fn by_default_a_processing_error_stops_processing() {
    let mut driver = driver(ProcessingErrorPolicy::Fail);
    driver.pipe("in", &s("k"), &1i64, 1).unwrap();
    let error = driver.pipe("in", &s("k"), &-2i64, 2).unwrap_err();
    assert!(error.to_string().contains("-2 is negative"), "{error}");
}

#[test]
fn skip_goes_on_after_errors_and_panics_and_counts_them() {
    let mut driver = driver(ProcessingErrorPolicy::Skip);
    for value in [1i64, -2, 0, 3] {
        driver.pipe("in", &s("k"), &value, value).unwrap();
    }
    let out: Vec<i64> = driver
        .read_output::<String, i64>("out")
        .unwrap()
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(out, vec![1, 3]);
    assert_eq!(driver.metrics().processing_errors, 2);
    assert_eq!(driver.metrics().dead_letters, 0);
}

#[test]
fn dead_letter_keeps_each_failed_record_with_its_error_and_goes_on() {
    let mut driver = driver(ProcessingErrorPolicy::DeadLetter {
        topic: s("app-failed"),
    });
    for value in [1i64, -2, 0, 3] {
        driver.pipe("in", &s("k"), &value, value).unwrap();
    }
    let out: Vec<i64> = driver
        .read_output::<String, i64>("out")
        .unwrap()
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(out, vec![1, 3]);
    let dead = driver.read_raw("app-failed");
    let failed: Vec<(Vec<u8>, String)> = dead
        .iter()
        .map(|r| {
            let error = r
                .headers
                .iter()
                .find(|h| h.key == "rill.error")
                .and_then(|h| h.value.clone())
                .expect("error header");
            (
                r.value.as_deref().expect("value").to_vec(),
                String::from_utf8(error.to_vec()).expect("utf-8"),
            )
        })
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].0, (-2i64).to_be_bytes());
    assert!(failed[0].1.contains("-2 is negative"), "{}", failed[0].1);
    assert_eq!(failed[1].0, 0i64.to_be_bytes());
    assert!(failed[1].1.contains("zero reached"), "{}", failed[1].1);
    assert_eq!(driver.metrics().processing_errors, 2);
}

#[test]
fn a_partitioner_choosing_a_partition_the_topic_lacks_fails_the_record() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .to_with_partitioner("out", |_, _, _| Some(3));
    let mut driver = TopologyTestDriver::with_policies(
        builder.build().expect("topology"),
        "app",
        DeserializationPolicy::Fail,
        ProcessingErrorPolicy::Skip,
    )
    .expect("driver");
    driver.pipe("in", &s("k"), &1i64, 1).unwrap();
    assert!(driver.read_raw("out").is_empty());
    assert_eq!(driver.metrics().processing_errors, 1);
}
