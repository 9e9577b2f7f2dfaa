//! `rill run --format avro`: the order system end to end on Avro in Confluent's wire format,
//! with the schemas in the instance's own registry (served on its HTTP port), and the topic
//! proxy and `rill tail` showing the Avro values as JSON.

mod common;

use common::{Rill, data_dir, decided, order, post_order, read_to_end, set_stock};
use reqwest::StatusCode;
use rill_log_embedded::{EmbeddedConfig, EmbeddedLog};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_validates_on_avro_and_its_records_carry_a_registered_schema_id() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = data_dir(&root, "data");
    let rill = Rill::start(&data, &["--format", "avro"]).await;
    let client = reqwest::Client::new();
    // The seed gave 10 jumpers (as Avro); a customer through the proxy, as JSON it encodes.
    set_stock(&client, &rill.base, "STOCKINGS", 5).await;
    // The dashboard's live list follows `orders` from its end: open it before posting.
    let mut events = client
        .get(rill.url("/v1/orders/events"))
        .send()
        .await
        .expect("events");
    assert_eq!(
        post_order(&client, &rill.base, &order("avro-1", 7, "JUMPERS", 2, 3.5)).await,
        StatusCode::CREATED
    );
    let decided_order = decided(&client, &rill.base, "avro-1").await;
    assert_eq!(decided_order["state"], "VALIDATED", "{decided_order}");
    let mut seen = String::new();
    while !seen.contains("VALIDATED") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(30), events.chunk())
            .await
            .expect("an event within 30 s")
            .expect("the stream goes on")
            .expect("not ended");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let validated: Value = seen
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str(data.trim()).ok())
        .find(|event: &Value| event["state"] == "VALIDATED")
        .unwrap_or_else(|| panic!("no VALIDATED order as JSON in {seen}"));
    assert_eq!(validated["id"], "avro-1");
    drop(events);

    // The registry answers at Confluent's paths on the same port.
    let subjects: Value = client
        .get(rill.url("/subjects"))
        .send()
        .await
        .expect("subjects")
        .json()
        .await
        .expect("JSON");
    for subject in [
        "orders-value",
        "order-validations-value",
        "warehouse-inventory-value",
    ] {
        assert!(
            subjects
                .as_array()
                .is_some_and(|s| s.contains(&json!(subject))),
            "{subject} in {subjects}"
        );
    }
    let latest: Value = client
        .get(rill.url("/subjects/orders-value/versions/latest"))
        .send()
        .await
        .expect("latest")
        .json()
        .await
        .expect("JSON");
    let orders_id = latest["id"].as_i64().expect("an id");

    // The proxy shows the Avro records of `orders` as JSON.
    let read: Value = client
        .get(rill.url("/v1/topics/orders/records?limit=10"))
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("JSON");
    let states: Vec<&Value> = read["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["key"] == "avro-1")
        .map(|r| &r["value"]["state"])
        .collect();
    assert_eq!(states, vec!["CREATED", "VALIDATED"], "{read}");
    rill.stop();

    // In the log itself, every value of `orders` is framed: magic byte 0, then the id the
    // registry gave `orders-value`, as 4 bytes big-endian.
    let log = EmbeddedLog::open(EmbeddedConfig::new(&data)).expect("open the data directory");
    let records = read_to_end(&log, "orders");
    assert_eq!(records.len(), 2);
    for record in &records {
        let value = record.value.as_deref().expect("a value");
        assert_eq!(value[0], 0, "magic byte");
        let id = i32::from_be_bytes([value[1], value[2], value[3], value[4]]);
        assert_eq!(i64::from(id), orders_id);
    }
    log.close().expect("close");

    // `rill tail` on the data directory decodes them too, from the log's `_schemas`.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rill"))
        .args([
            "tail",
            "orders",
            "--from-beginning",
            "--limit",
            "2",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .expect("rill tail");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines
            .iter()
            .all(|line| line["value"]["id"] == "avro-1" && line["value"]["customerId"] == 7),
        "{lines:?}"
    );
}

/// `--schema-registry URL`: an instance on its own log keeps its schemas in another instance's
/// registry, reached over HTTP, and runs as on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_uses_another_instances_registry_by_url() {
    let root = tempfile::tempdir().expect("tempdir");
    let registry = Rill::start(&data_dir(&root, "registry"), &["--no-seed"]).await;
    let rill = Rill::start(
        &data_dir(&root, "data"),
        &["--format", "avro", "--schema-registry", &registry.base],
    )
    .await;
    let client = reqwest::Client::new();
    assert_eq!(
        post_order(
            &client,
            &rill.base,
            &order("by-url-1", 3, "UNDERPANTS", 1, 2.0)
        )
        .await,
        StatusCode::CREATED
    );
    let decided_order = decided(&client, &rill.base, "by-url-1").await;
    assert_eq!(decided_order["state"], "VALIDATED", "{decided_order}");
    let versions: Value = client
        .get(registry.url("/subjects/orders-value/versions"))
        .send()
        .await
        .expect("versions")
        .json()
        .await
        .expect("JSON");
    assert_eq!(versions, json!([1]));
    // The instance serves no registry of its own.
    let own = client
        .get(rill.url("/subjects"))
        .send()
        .await
        .expect("answers");
    assert_eq!(own.status(), StatusCode::NOT_FOUND);
    rill.stop();
    registry.stop();
}
