//! Records without a value (tombstones) through the DSL: read as `None` by `Option` value
//! types, written back as records without a value, refused by other value types.

use bytes::Bytes;
use rill_streams::{StoreOptions, StreamsBuilder, TopologyTestDriver};

fn s(text: &str) -> String {
    text.to_string()
}

#[test]
fn an_option_stream_reads_tombstones_as_none_and_writes_none_as_tombstones() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, Option<String>>("in")
        .map_values(|value| value.map(|v| v.to_uppercase()))
        .to("out");
    let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
    driver.pipe("in", &s("a"), &Some(s("x")), 1).unwrap();
    driver
        .pipe_raw("in", Some(Bytes::from("a")), None, 2)
        .unwrap();
    driver.pipe("in", &s("b"), &None::<String>, 3).unwrap();

    let raw = driver.read_raw("out");
    let values: Vec<Option<&[u8]>> = raw.iter().map(|r| r.value.as_deref()).collect();
    assert_eq!(values, vec![Some(&b"X"[..]), None, None]);
    assert_eq!(raw[2].key.as_deref(), Some(&b"b"[..]));
    assert!(driver.read_raw("app-dlq").is_empty());
}

#[test]
fn a_stream_without_an_option_value_sends_a_tombstone_to_the_dead_letter_topic() {
    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("in").to("out");
    let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
    driver
        .pipe_raw("in", Some(Bytes::from("a")), None, 1)
        .unwrap();
    driver.pipe("in", &s("a"), &s("kept"), 2).unwrap();

    let out = driver.read_output::<String, String>("out").unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].value, "kept");
    let dead = driver.read_raw("app-dlq");
    assert_eq!(dead.len(), 1);
    let error = dead[0]
        .headers
        .iter()
        .find(|h| h.key == "rill.error")
        .and_then(|h| h.value.clone())
        .unwrap();
    let error = String::from_utf8(error.to_vec()).unwrap();
    assert!(error.contains("Option value type"), "{error}");
}

#[test]
fn a_table_written_out_as_its_change_stream_deletes_with_tombstones() {
    let builder = StreamsBuilder::new();
    builder
        .table::<String, i64>("prices", StoreOptions::in_memory("prices"))
        .filter(|_, price| *price < 100)
        .to_change_stream()
        .to("cheap");
    let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
    driver.pipe("prices", &s("tea"), &5i64, 1).unwrap();
    // Leaves the filter: downstream, the row is deleted.
    driver.pipe("prices", &s("tea"), &500i64, 2).unwrap();
    driver.pipe("prices", &s("jam"), &7i64, 3).unwrap();
    // Deleted at the source.
    driver
        .pipe_raw("prices", Some(Bytes::from("jam")), None, 4)
        .unwrap();

    let raw = driver.read_raw("cheap");
    let changes: Vec<(&[u8], Option<Vec<u8>>)> = raw
        .iter()
        .map(|r| {
            (
                r.key.as_deref().unwrap(),
                r.value.as_ref().map(|v| v.to_vec()),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            (&b"tea"[..], Some(5i64.to_be_bytes().to_vec())),
            (&b"tea"[..], None),
            (&b"jam"[..], Some(7i64.to_be_bytes().to_vec())),
            (&b"jam"[..], None)
        ]
    );
}
