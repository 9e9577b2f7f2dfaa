//! The Avro serde: Confluent's wire format with ids from the registry, and schema evolution
//! between the writer's and the reader's schema.

mod common;

use rill_schema::{AvroSerde, SchemaCache, wire};
use rill_streams::Serde;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Colour {
    Red,
    Green,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemV1 {
    id: String,
    colour: Colour,
    unit_price: f64,
}

/// V1 plus a field with a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemV2 {
    id: String,
    colour: Colour,
    unit_price: f64,
    stock: i64,
}

/// V1 less a field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemV0 {
    id: String,
    colour: Colour,
}

const COLOUR: &str = r#"{"type":"enum","name":"Colour","symbols":["RED","GREEN"]}"#;

fn v1() -> String {
    format!(
        r#"{{"type":"record","name":"Item","namespace":"test","fields":[
            {{"name":"id","type":"string"}},
            {{"name":"colour","type":{COLOUR}}},
            {{"name":"unitPrice","type":"double"}}]}}"#
    )
}

fn v2() -> String {
    format!(
        r#"{{"type":"record","name":"Item","namespace":"test","fields":[
            {{"name":"id","type":"string"}},
            {{"name":"colour","type":{COLOUR}}},
            {{"name":"unitPrice","type":"double"}},
            {{"name":"stock","type":"long","default":5}}]}}"#
    )
}

fn v0() -> String {
    format!(
        r#"{{"type":"record","name":"Item","namespace":"test","fields":[
            {{"name":"id","type":"string"}},
            {{"name":"colour","type":{COLOUR}}}]}}"#
    )
}

fn item() -> ItemV1 {
    ItemV1 {
        id: "i1".into(),
        colour: Colour::Green,
        unit_price: 2.5,
    }
}

#[test]
fn values_are_framed_with_the_id_registered_for_the_topic() {
    let dir = tempfile::tempdir().expect("dir");
    let (_log, registry) = common::registry(dir.path());
    let cache = SchemaCache::new(registry.clone());
    let serde = AvroSerde::<ItemV1>::new(cache, &v1()).expect("schema");
    let bytes = serde.serialize("items", &item()).expect("encodes");

    let (id, body) = wire::split(&bytes).expect("framed");
    assert_eq!(bytes[0], wire::MAGIC_BYTE);
    assert_eq!(registry.versions("items-value").expect("subject"), vec![1]);
    assert_eq!(
        registry
            .version("items-value", "latest".parse().expect("v"))
            .expect("v")
            .id,
        id
    );
    // The body is plain Avro binary: "i1" (zig-zag length 2, then the bytes), GREEN (index 1),
    // then 2.5 as a little-endian double.
    let mut expected = vec![4, b'i', b'1', 2];
    expected.extend_from_slice(&2.5f64.to_le_bytes());
    assert_eq!(body, &expected[..]);
    assert_eq!(serde.deserialize("items", &bytes).expect("decodes"), item());
}

#[test]
fn a_reader_schema_with_an_added_field_reads_its_default() {
    let dir = tempfile::tempdir().expect("dir");
    let (_log, registry) = common::registry(dir.path());
    let cache = SchemaCache::new(registry);
    let writer = AvroSerde::<ItemV1>::new(cache.clone(), &v1()).expect("schema");
    let reader = AvroSerde::<ItemV2>::new(cache, &v2()).expect("schema");
    let bytes = writer.serialize("items", &item()).expect("encodes");
    let read = reader.deserialize("items", &bytes).expect("resolves");
    assert_eq!(
        read,
        ItemV2 {
            id: "i1".into(),
            colour: Colour::Green,
            unit_price: 2.5,
            stock: 5
        }
    );
}

#[test]
fn a_reader_schema_without_a_field_skips_it() {
    let dir = tempfile::tempdir().expect("dir");
    let (_log, registry) = common::registry(dir.path());
    let cache = SchemaCache::new(registry.clone());
    let writer = AvroSerde::<ItemV2>::new(cache.clone(), &v2()).expect("schema");
    let newer = ItemV2 {
        id: "i2".into(),
        colour: Colour::Red,
        unit_price: 1.0,
        stock: 9,
    };
    let bytes = writer.serialize("items", &newer).expect("encodes");
    let reader = AvroSerde::<ItemV0>::new(cache.clone(), &v0()).expect("schema");
    assert_eq!(
        reader.deserialize("items", &bytes).expect("resolves"),
        ItemV0 {
            id: "i2".into(),
            colour: Colour::Red
        }
    );
    // And a reader of v1 reads v2's records too, and v1's records read as v2 after it: the
    // subject holds both versions.
    let v1_reader = AvroSerde::<ItemV1>::new(cache, &v1()).expect("schema");
    assert_eq!(
        v1_reader
            .deserialize("items", &bytes)
            .expect("resolves")
            .unit_price,
        1.0
    );
    let bytes = v1_reader.serialize("items", &item()).expect("encodes");
    assert_eq!(wire::split(&bytes).expect("framed").0, 2);
    assert_eq!(
        registry.versions("items-value").expect("subject"),
        vec![1, 2]
    );
}

#[test]
fn bytes_that_are_not_framed_or_name_an_unknown_id_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let (_log, registry) = common::registry(dir.path());
    let cache = SchemaCache::new(registry);
    let serde = AvroSerde::<ItemV1>::new(cache.clone(), &v1()).expect("schema");
    let error = serde
        .deserialize("items", br#"{"id":"i1"}"#)
        .expect_err("JSON");
    assert!(error.reason.contains("magic byte"), "{error}");
    let error = serde.deserialize("items", &[0, 0, 0]).expect_err("short");
    assert!(error.reason.contains("too short"), "{error}");
    let error = serde
        .deserialize("items", &[0, 0, 0, 0, 99, 2])
        .expect_err("unknown id");
    assert!(error.reason.contains("Schema 99 not found"), "{error}");
    let error = AvroSerde::<ItemV1>::new(cache, "{")
        .err()
        .expect("not a schema");
    assert_eq!(error.error_code(), 42201);
}

#[test]
fn framed_values_show_as_json_and_others_are_left_alone() {
    let dir = tempfile::tempdir().expect("dir");
    let (_log, registry) = common::registry(dir.path());
    let cache = SchemaCache::new(registry);
    let serde = AvroSerde::<ItemV1>::new(cache.clone(), &v1()).expect("schema");
    let bytes = serde.serialize("items", &item()).expect("encodes");
    let json = cache.to_json(&bytes).expect("framed").expect("decodes");
    assert_eq!(
        json,
        serde_json::json!({"id": "i1", "colour": "GREEN", "unitPrice": 2.5})
    );
    assert!(cache.to_json(br#"{"id":"i1"}"#).is_none());
}
