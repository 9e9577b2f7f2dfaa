//! The real `rill run` binary, spoken to over HTTP: the SPEC 2.5 inventory scenario end to
//! end, and a kill -9 in the middle of posting that loses no acknowledged order.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

/// A `rill run` process on a loopback port.
struct Rill {
    child: Child,
    base: String,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

impl Rill {
    async fn start(data_dir: &Path, extra: &[&str]) -> Rill {
        let port = free_port();
        let log = std::fs::File::create(data_dir.with_extension(format!("{port}.log")))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_rill"))
            .arg("run")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--http")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn rill run");
        let rill = Rill {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = client.get(rill.url("/ready")).send().await
                && response.status() == StatusCode::OK
            {
                return rill;
            }
            assert!(Instant::now() < deadline, "rill run never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no shutdown, no final commit.
    fn kill_9(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// SIGTERM and wait for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "rill run did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rill {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn order(id: &str, customer: i64, product: &str, quantity: i32, price: f64) -> Value {
    json!({"id": id, "customerId": customer, "state": "CREATED", "product": product,
           "quantity": quantity, "price": price})
}

async fn post_order(client: &reqwest::Client, rill: &Rill, order: &Value) -> StatusCode {
    client
        .post(rill.url("/v1/orders"))
        .json(order)
        .send()
        .await
        .map_or(StatusCode::SERVICE_UNAVAILABLE, |r| r.status())
}

async fn decided(client: &reqwest::Client, rill: &Rill, id: &str) -> Value {
    let response = client
        .get(rill.url(&format!("/v1/orders/{id}/validated?timeout=30000")))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::OK, "order {id}");
    response.json().await.expect("json")
}

async fn set_stock(client: &reqwest::Client, rill: &Rill, product: &str, count: i64) {
    let response = client
        .post(rill.url("/v1/topics/warehouse-inventory/records"))
        .json(&json!({"records": [{"key": product, "value": count}]}))
        .send()
        .await
        .expect("produce");
    assert_eq!(response.status(), StatusCode::OK);
    // The inventory table and the orders re-keyed by product are two inputs of one task: give
    // the stock a head start over the orders that follow.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Every record of `topic`, read through the topic proxy.
async fn all_records(client: &reqwest::Client, rill: &Rill, topic: &str) -> Vec<Value> {
    let answer: Value = client
        .get(rill.url(&format!(
            "/v1/topics/{topic}/records?from=beginning&limit=10000"
        )))
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("json");
    answer["records"].as_array().cloned().unwrap_or_default()
}

fn data_dir(root: &tempfile::TempDir) -> PathBuf {
    root.path().join("data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_single_jumpers_validate_with_ten_in_stock_and_fail_when_none_is_left() {
    let root = tempfile::tempdir().expect("tempdir");
    let rill = Rill::start(&data_dir(&root), &["--no-seed"]).await;
    let client = reqwest::Client::new();
    set_stock(&client, &rill, "JUMPERS", 10).await;
    for i in 0..10 {
        let id = format!("in-stock-{i}");
        assert_eq!(
            post_order(&client, &rill, &order(&id, 1, "JUMPERS", 1, 1.0)).await,
            StatusCode::CREATED
        );
    }
    for i in 0..10 {
        let order = decided(&client, &rill, &format!("in-stock-{i}")).await;
        assert_eq!(order["state"], "VALIDATED", "{order}");
    }
    set_stock(&client, &rill, "JUMPERS", 0).await;
    for i in 0..10 {
        let id = format!("none-left-{i}");
        assert_eq!(
            post_order(&client, &rill, &order(&id, 1, "JUMPERS", 1, 1.0)).await,
            StatusCode::CREATED
        );
    }
    for i in 0..10 {
        let order = decided(&client, &rill, &format!("none-left-{i}")).await;
        assert_eq!(order["state"], "FAILED", "{order}");
    }
    rill.stop();
}

/// The i64 a changelog value holds, as the proxy shows it (8 bytes as text).
fn changelog_i64(value: &Value) -> i64 {
    let bytes: Vec<u8> = value
        .as_str()
        .expect("text")
        .chars()
        .map(|c| u8::try_from(u32::from(c)).expect("small count"))
        .collect();
    i64::from_be_bytes(bytes.try_into().expect("8 bytes"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_posting_loses_no_acknowledged_order_and_decides_each_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(&root);
    let rill = Rill::start(&dir, &[]).await; // seeded: UNDERPANTS=20, JUMPERS=10
    let client = reqwest::Client::new();
    let base = rill.base.clone();
    let posting = tokio::spawn({
        let client = client.clone();
        async move {
            let mut acknowledged = Vec::new();
            for i in 0..100_000 {
                let id = format!("k-{i}");
                let product = if i % 2 == 0 { "JUMPERS" } else { "UNDERPANTS" };
                let sent = client
                    .post(format!("{base}/v1/orders"))
                    .json(&order(&id, i % 7, product, 1, 2.0))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == StatusCode::CREATED => {
                        acknowledged.push((id, product))
                    }
                    _ => break,
                }
            }
            acknowledged
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    rill.kill_9();
    let acknowledged = posting.await.expect("poster");
    assert!(
        !acknowledged.is_empty(),
        "nothing was acknowledged before the kill"
    );
    assert!(
        acknowledged.len() < 100_000,
        "the kill came after the last post"
    );
    eprintln!("{} orders acknowledged before kill -9", acknowledged.len());

    let rill = Rill::start(&dir, &[]).await;
    let mut validated_by_product: BTreeMap<String, i64> = BTreeMap::new();
    for (id, product) in &acknowledged {
        let order = decided(&client, &rill, id).await;
        if order["state"] == "VALIDATED" {
            *validated_by_product.entry(product.to_string()).or_default() += 1;
        }
    }
    // Exactly one final state per order in the log, and no check judged an order twice (the
    // restarted validators did not process again what they had committed).
    let mut finals: BTreeMap<String, usize> = BTreeMap::new();
    for record in all_records(&client, &rill, "orders").await {
        if record["value"]["state"] != "CREATED" {
            *finals
                .entry(record["key"].as_str().expect("id").to_string())
                .or_default() += 1;
        }
    }
    for (id, _) in &acknowledged {
        assert_eq!(finals.get(id), Some(&1), "final states of {id}");
    }
    let mut verdicts = BTreeSet::new();
    for record in all_records(&client, &rill, "order-validations").await {
        let check = (
            record["value"]["orderId"].to_string(),
            record["value"]["checkType"].to_string(),
        );
        assert!(
            verdicts.insert(check.clone()),
            "duplicate verdict {check:?}"
        );
    }
    // Reserved stock is what the validated orders hold (failed ones gave theirs back).
    let mut reserved: BTreeMap<String, i64> = BTreeMap::new();
    for record in all_records(
        &client,
        &rill,
        "inventory-service-reserved-stocks-changelog",
    )
    .await
    {
        reserved.insert(
            record["key"].as_str().expect("product").to_string(),
            changelog_i64(&record["value"]),
        );
    }
    reserved.retain(|_, count| *count != 0);
    assert_eq!(reserved, validated_by_product);
    rill.stop();
}
