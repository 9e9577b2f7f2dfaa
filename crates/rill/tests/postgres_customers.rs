//! `rill run --customers-from-postgres` against a real PostgreSQL (`RILL_POSTGRES_URL`, which
//! `scripts/test.sh` sets from `scripts/postgres.sh start`): the README's walkthrough, a
//! customer's level changed in PostgreSQL routes their next order to the new level's topic.

mod common;

use std::time::{Duration, Instant};

use common::{Rill, data_dir, decided, order, post_order, stop_and_check_log, with_postgres};
use reqwest::StatusCode;
use rill_test_postgres::{password, postgres_url};
use serde_json::{Value, json};

/// What this test tests, for the message that says it is skipped.
const WHAT: &str = "`rill run --customers-from-postgres`";

/// Reads `topic` through the running server's topic proxy until a record's value satisfies
/// `wanted`, and returns that value.
async fn await_record(
    client: &reqwest::Client,
    rill: &Rill,
    topic: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page: Value = client
            .get(rill.url(&format!("/v1/topics/{topic}/records?limit=1000")))
            .send()
            .await
            .expect("read the topic")
            .json()
            .await
            .expect("a JSON page");
        let records = page["records"].as_array().cloned().unwrap_or_default();
        if let Some(found) = records.iter().map(|r| &r["value"]).find(|v| wanted(v)) {
            return found.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no such record in {topic}: {page}\n{}",
            rill.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs SQL statements.
fn execute(url: &str, statements: String) {
    with_postgres(url, move |client| {
        client
            .batch_execute(&statements)
            .expect("run the statements")
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_level_changed_in_postgres_routes_the_next_order_to_the_new_level() {
    let Some(url) = postgres_url(WHAT) else {
        return;
    };
    let table = "customers_walkthrough";
    execute(
        &url,
        format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                 WHERE slot_name = 'rill_{table}';
             DROP PUBLICATION IF EXISTS rill_{table};
             DROP TABLE IF EXISTS {table};
             CREATE TABLE {table} (id bigint PRIMARY KEY, first_name text NOT NULL,
                 last_name text NOT NULL, email text NOT NULL, address text NOT NULL,
                 level text);
             INSERT INTO {table} VALUES
                 (1, 'Ada', 'Lovelace', 'ada@example.com', '1 Analytical Way', 'silver');"
        ),
    );
    let root = tempfile::tempdir().expect("temporary directory");
    let rill = Rill::start(
        &data_dir(&root, "data"),
        &[
            "--customers-from-postgres",
            &url,
            "--customers-table",
            table,
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let is_customer = |level: &'static str| {
        move |value: &Value| value["id"] == json!(1) && value["level"] == json!(level)
    };
    let copied = await_record(&client, &rill, "customers", is_customer("silver")).await;
    assert_eq!(
        copied,
        json!({"id": 1, "firstName": "Ada", "lastName": "Lovelace",
               "email": "ada@example.com", "address": "1 Analytical Way", "level": "silver"})
    );

    execute(
        &url,
        format!("UPDATE {table} SET level = 'platinum' WHERE id = 1"),
    );
    await_record(&client, &rill, "customers", is_customer("platinum")).await;

    let placed = order("o1", 1, "JUMPERS", 1, 12.5);
    assert_eq!(
        post_order(&client, &rill.base, &placed).await,
        StatusCode::CREATED
    );
    let paid = client
        .post(rill.url("/v1/topics/payments/records"))
        .json(&json!({"records": [{"key": "p1",
            "value": {"id": "p1", "orderId": "o1", "ccy": "EUR", "amount": 12.5}}]}))
        .send()
        .await
        .expect("post the payment");
    assert_eq!(paid.status(), StatusCode::OK);
    assert_eq!(
        decided(&client, &rill.base, "o1").await["state"],
        "VALIDATED"
    );
    let routed = await_record(&client, &rill, "platinum", |value| {
        value["id"] == json!("o1")
    })
    .await;
    assert_eq!(
        routed,
        json!({"id": "o1", "customerId": 1, "customerLevel": "platinum"})
    );

    let password = password(&url).expect("the test URL carries a password");
    stop_and_check_log(rill, "following PostgreSQL into customers", password);
}
