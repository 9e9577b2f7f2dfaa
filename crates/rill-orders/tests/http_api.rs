//! The REST API and topic proxy over real services on the embedded log, spoken to over HTTP:
//! posts, re-posts and conflicts, bad input, long-polls with several waiters, timeouts, and
//! two instances forwarding to each other (502 when the owner cannot be reached).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::order;
use reqwest::StatusCode;
use rill_log::{Log, ProducerRecord};
use rill_log_embedded::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};
use rill_orders::domain::{Order, Product};
use rill_orders::system::{OrdersSystem, Service, SystemConfig};
use rill_orders::topics;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// One instance: the services plus its HTTP server on an ephemeral loopback port.
struct Instance {
    system: Option<OrdersSystem>,
    addr: SocketAddr,
    stop_http: Option<oneshot::Sender<()>>,
    _state: tempfile::TempDir,
}

impl Instance {
    async fn start(log: &Arc<EmbeddedLog>, services: &[Service]) -> Instance {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = tempfile::tempdir().expect("state dir");
        let mut config = SystemConfig::new(state.path());
        config.services = services.to_vec();
        config.advertised = Some(addr.to_string());
        let shared: Arc<dyn Log> = log.clone();
        let system = tokio::task::block_in_place(|| OrdersSystem::start(shared, config))
            .expect("start services");
        let api = system.http_api().expect("api");
        let (stop_http, stopped) = oneshot::channel::<()>();
        tokio::spawn(api.serve(listener, async {
            let _ = stopped.await;
        }));
        Instance {
            system: Some(system),
            addr,
            stop_http: Some(stop_http),
            _state: state,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn system(&self) -> &OrdersSystem {
        self.system.as_ref().expect("running")
    }

    fn stop_http(&mut self) {
        if let Some(stop) = self.stop_http.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop_http();
        if let Some(system) = self.system.take() {
            let _ = tokio::task::block_in_place(|| system.close());
        }
    }
}

fn open_log(dir: &std::path::Path) -> Arc<EmbeddedLog> {
    let log =
        EmbeddedLog::open(EmbeddedConfig::new(dir).fsync(FsyncPolicy::Never)).expect("open log");
    topics::create_system_topics(log.admin(), 3).expect("topics");
    Arc::new(log)
}

fn stock(log: &EmbeddedLog, product: Product, count: i64) {
    let producer = log.producer(&Default::default()).expect("producer");
    producer
        .send(
            ProducerRecord::new(topics::WAREHOUSE_INVENTORY)
                .key(product.name())
                .value(count.to_string()),
        )
        .expect("send")
        .wait()
        .expect("written");
}

async fn post(client: &reqwest::Client, instance: &Instance, body: &Value) -> (StatusCode, Value) {
    let response = client
        .post(instance.url("/v1/orders"))
        .json(body)
        .send()
        .await
        .expect("post");
    let status = response.status();
    (status, response.json().await.expect("json body"))
}

async fn get(client: &reqwest::Client, url: String) -> (StatusCode, Value) {
    let response = client.get(url).send().await.expect("get");
    let status = response.status();
    (status, response.json().await.expect("json body"))
}

fn body(order: &Order) -> Value {
    serde_json::to_value(order).expect("json")
}

const ALL: &[Service] = &Service::ALL;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_order_is_201_with_location_and_can_be_read_back() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open_log(dir.path());
    let instance = Instance::start(&log, &[Service::Orders]).await;
    let client = reqwest::Client::new();
    let placed = order("o-1", 1, Product::Jumpers, 1, 12.5);
    let response = client
        .post(instance.url("/v1/orders"))
        .json(&placed)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers().get("location").map(|v| v.as_bytes()),
        Some(&b"/v1/orders/o-1"[..])
    );
    let (status, read) = get(&client, instance.url("/v1/orders/o-1?timeout=10000")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, body(&placed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_orders_get_400_with_a_json_error_naming_the_problem() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open_log(dir.path());
    let instance = Instance::start(&log, &[Service::Orders]).await;
    let client = reqwest::Client::new();
    let good = body(&order("o-1", 1, Product::Jumpers, 1, 1.0));
    let mut unknown_product = good.clone();
    unknown_product["product"] = json!("HATS");
    let mut missing_price = good.clone();
    missing_price
        .as_object_mut()
        .expect("object")
        .remove("price");
    let mut validated = good.clone();
    validated["state"] = json!("VALIDATED");
    for (bad, named) in [
        (unknown_product, "HATS"),
        (missing_price, "price"),
        (validated, "CREATED"),
    ] {
        let (status, error) = post(&client, &instance, &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        assert_eq!(error["status"], 400);
        let message = error["message"].as_str().expect("message");
        assert!(message.contains(named), "{message} should name {named}");
    }
    let response = client
        .post(instance.url("/v1/orders"))
        .header("content-type", "application/json")
        .body("{\"id\":")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.expect("json");
    assert!(error["message"].as_str().expect("message").contains("EOF"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_post_with_the_same_body_is_answered_the_same_and_another_body_is_409() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open_log(dir.path());
    let instance = Instance::start(&log, &[Service::Orders]).await;
    let client = reqwest::Client::new();
    let first = body(&order("o-1", 1, Product::Jumpers, 1, 1.0));
    let mut other = first.clone();
    other["quantity"] = json!(2);
    // Straight after the first post (the view may not have it yet: the in-flight map decides).
    assert_eq!(
        post(&client, &instance, &first).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        post(&client, &instance, &first).await.0,
        StatusCode::CREATED
    );
    let (status, error) = post(&client, &instance, &other).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(error["message"].as_str().expect("message").contains("o-1"));
    // Once the view has it (the view decides).
    assert_eq!(
        get(&client, instance.url("/v1/orders/o-1")).await.0,
        StatusCode::OK
    );
    assert_eq!(instance.system().hub().in_flight(), 0);
    assert_eq!(
        post(&client, &instance, &first).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        post(&client, &instance, &other).await.0,
        StatusCode::CONFLICT
    );
    // Written once only.
    let (_, records) = get(
        &client,
        instance.url("/v1/topics/orders/records?from=beginning"),
    )
    .await;
    assert_eq!(records["records"].as_array().expect("records").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_waiters_on_one_order_are_both_answered_and_then_removed() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open_log(dir.path());
    let instance = Instance::start(&log, &[Service::Orders]).await;
    let client = reqwest::Client::new();
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let (client, url) = (client.clone(), instance.url("/v1/orders/o-1?timeout=20000"));
            tokio::spawn(async move { get(&client, url).await })
        })
        .collect();
    let hub = instance.system().hub().clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.waiters().waiting() < 2 {
        assert!(Instant::now() < deadline, "the two GETs never waited");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let placed = order("o-1", 1, Product::Jumpers, 1, 1.0);
    assert_eq!(
        post(&client, &instance, &body(&placed)).await.0,
        StatusCode::CREATED
    );
    for waiter in waiters {
        let (status, read) = waiter.await.expect("waiter");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(read, body(&placed));
    }
    assert_eq!(hub.waiters().waiting(), 0);
    assert_eq!(hub.waiters().waited_orders(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_that_times_out_is_504_naming_the_timeout_and_leaves_no_waiter() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open_log(dir.path());
    let instance = Instance::start(&log, &[Service::Orders]).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let (status, error) = get(&client, instance.url("/v1/orders/nowhere?timeout=300")).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let message = error["message"].as_str().expect("message");
    assert!(message.contains("300 ms"), "{message}");
    assert_eq!(instance.system().hub().waiters().waiting(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_large_bodies_and_bad_queries_get_json_errors() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open_log(dir.path());
    let instance = Instance::start(&log, &[Service::Orders]).await;
    let client = reqwest::Client::new();
    let (status, error) = get(&client, instance.url("/v1/nothing")).await;
    assert_eq!(
        (status, error["status"].clone()),
        (StatusCode::NOT_FOUND, json!(404))
    );
    let response = client
        .post(instance.url("/v1/orders"))
        .body(vec![b' '; 200 * 1024])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let error: Value = response.json().await.expect("json error");
    assert_eq!(error["status"], 413);
    // A batch to the topic proxy may be far larger than a single order...
    let customers: Vec<Value> = (0..2_000)
        .map(|id| {
            json!({"key": id, "value": {"id": id, "firstName": "Ann", "lastName": "Lee",
            "email": "ann@example.com", "address": "1 Road", "level": "gold"}})
        })
        .collect();
    let batch = serde_json::to_vec(&json!({ "records": customers })).expect("batch");
    assert!(batch.len() > 200 * 1024, "{} bytes", batch.len());
    let response = client
        .post(instance.url("/v1/topics/customers/records"))
        .header("content-type", "application/json")
        .body(batch)
        .send()
        .await
        .expect("post batch");
    assert_eq!(response.status(), StatusCode::OK);
    let written: Value = response.json().await.expect("json");
    assert_eq!(written["offsets"].as_array().map(Vec::len), Some(2_000));
    // ...up to its own limit.
    let response = client
        .post(instance.url("/v1/topics/customers/records"))
        .header("content-type", "application/json")
        .body(vec![b' '; rill_orders::http::DEFAULT_MAX_BATCH_BYTES + 1])
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (status, error) = get(&client, instance.url("/v1/orders/o?timeout=soon")).await;
    assert_eq!(
        (status, error["status"].clone()),
        (StatusCode::BAD_REQUEST, json!(400))
    );
    // Beyond the documented maximum is refused, not shortened.
    for query in ["timeout=300001", "timeout=-1"] {
        let (status, error) = get(&client, instance.url(&format!("/v1/orders/o?{query}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {error}");
        let (status, _) = get(
            &client,
            instance.url(&format!("/v1/orders/o/validated?{query}")),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
    }
    for query in ["limit=0", "limit=10001", "offset=-1", "partition=-1"] {
        let (status, error) = get(
            &client,
            instance.url(&format!("/v1/topics/customers/records?{query}")),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {error}");
    }
    // An offset without a partition applies to each partition.
    let (status, read) = get(
        &client,
        instance.url("/v1/topics/customers/records?offset=1999&limit=10"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    let (status, _) = get(&client, instance.url("/v1/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    // Ready once every service has its tasks (a service may still be taking them).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, ready) = get(&client, instance.url("/ready")).await;
        if (status, ready["ready"].clone()) == (StatusCode::OK, json!(true)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not ready within 30 s: {status} {ready}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_for_a_product_without_inventory_ends_failed_and_stock_is_not_leaked() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open_log(dir.path());
    stock(&log, Product::Jumpers, 1);
    let instance = Instance::start(&log, ALL).await;
    let client = reqwest::Client::new();
    let stockings = order("no-stock", 1, Product::Stockings, 1, 1.0);
    assert_eq!(
        post(&client, &instance, &body(&stockings)).await.0,
        StatusCode::CREATED
    );
    let (status, decided) = get(
        &client,
        instance.url("/v1/orders/no-stock/validated?timeout=20000"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["state"], "FAILED");
    // A jumper with a bad price reserves the only jumper, then fails on its details: the
    // reservation is released, so the next jumper order gets the stock.
    let bad_price = order("bad-price", 1, Product::Jumpers, 1, -1.0);
    assert_eq!(
        post(&client, &instance, &body(&bad_price)).await.0,
        StatusCode::CREATED
    );
    let (_, decided) = get(
        &client,
        instance.url("/v1/orders/bad-price/validated?timeout=20000"),
    )
    .await;
    assert_eq!(decided["state"], "FAILED");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, records) = get(
            &client,
            instance.url("/v1/topics/inventory-service-reserved-stocks-changelog/records?from=beginning&limit=1000"),
        )
        .await;
        let latest = records["records"]
            .as_array()
            .expect("records")
            .iter()
            .rfind(|r| r["key"] == "JUMPERS")
            .cloned();
        // The changelog holds i64s (8 bytes), shown as text; zero is eight NUL bytes.
        if latest.is_some_and(|r| r["value"] == json!("\u{0}".repeat(8))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reservation was never released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topic_proxy_lists_produces_and_reads_records() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open_log(dir.path());
    let instance = Instance::start(&log, &[Service::Orders]).await;
    let client = reqwest::Client::new();
    let response = client
        .post(instance.url("/v1/topics/customers/records"))
        .json(&json!({"records": [
            {"key": 7, "value": {"id": 7, "firstName": "Ann", "lastName": "Lee", "email": "ann@example.com", "address": "1 Road", "level": "gold"}},
            {"key": 8, "value": null, "partition": 0}
        ]}))
        .send()
        .await
        .expect("produce");
    assert_eq!(response.status(), StatusCode::OK);
    let written: Value = response.json().await.expect("json");
    let offsets = written["offsets"].as_array().expect("offsets");
    assert_eq!(offsets.len(), 2);
    assert_eq!(offsets[1]["partition"], 0);
    let first_partition = offsets[0]["partition"].as_i64().expect("partition");
    let (_, read) = get(
        &client,
        instance.url(&format!(
            "/v1/topics/customers/records?partition={first_partition}&offset=0&limit=10"
        )),
    )
    .await;
    let record = &read["records"][0];
    assert_eq!(record["key"], 7);
    assert_eq!(record["value"]["level"], "gold");
    let (_, all) = get(
        &client,
        instance.url("/v1/topics/customers/records?from=beginning"),
    )
    .await;
    assert_eq!(all["records"].as_array().expect("records").len(), 2);
    let (_, listed) = get(&client, instance.url("/v1/topics")).await;
    let customers = listed["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .find(|t| t["name"] == "customers")
        .cloned()
        .expect("customers listed");
    assert_eq!(customers["partitions"], 3);
    assert_eq!(customers["records"], 2);
    let (status, _) = get(&client, instance.url("/v1/topics/nope/records")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = client
        .post(instance.url("/v1/topics/orders/records"))
        .json(&json!({"records": []}))
        .send()
        .await
        .expect("produce");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topic_proxy_lists_groups_and_shows_a_services_members_and_lag() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open_log(dir.path());
    let instance = Instance::start(&log, &[Service::OrderDetails]).await;
    let client = reqwest::Client::new();
    let group = topics::ORDER_DETAILS_SERVICE;
    // The service's consumer joins its group in the background: wait until it holds `orders`.
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let (status, report) = get(&client, instance.url(&format!("/v1/groups/{group}"))).await;
        let holds_orders = report["partitions"].as_array().is_some_and(|partitions| {
            partitions
                .iter()
                .filter(|p| p["topic"] == topics::ORDERS && p["member"].is_string())
                .count()
                == 3
        });
        if status == StatusCode::OK && report["state"] == "Stable" && holds_orders {
            break report;
        }
        assert!(
            Instant::now() < deadline,
            "{group} never became stable holding the 3 partitions of orders: {status} {report}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let members = report["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{report}");
    let orders_p0 = report["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .find(|p| p["topic"] == topics::ORDERS && p["partition"] == 0)
        .expect("orders-0 in the report");
    assert_eq!(orders_p0["member"], members[0]["memberId"], "{report}");
    assert_eq!(
        orders_p0["end"], 0,
        "nothing was written to orders: {report}"
    );

    let (status, listed) = get(&client, instance.url("/v1/groups")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        listed["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .any(|g| g["group"] == group && g["state"] == "Stable"),
        "{listed}"
    );
    let (status, missing) = get(&client, instance.url("/v1/groups/nobody")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    assert!(
        missing["message"]
            .as_str()
            .is_some_and(|m| m.contains("nobody")),
        "{missing}"
    );
}

/// Waits until each instance holds some partitions of `orders-store`, answering an order id
/// held by `b` as seen from `a`.
async fn key_owned_by(a: &Instance, b: &Instance) -> String {
    let view_a = a.system().view().expect("view").expect("orders runs");
    let view_b = b.system().view().expect("view").expect("orders runs");
    let b_addr = b.addr.to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = (0..200).map(|i| format!("k{i}")).find(|key| {
            let (ma, mb) = (
                view_a.metadata_for_key(key).expect("metadata"),
                view_b.metadata_for_key(key).expect("metadata"),
            );
            !ma.local && mb.local && ma.owner.as_deref() == Some(b_addr.as_str())
        });
        if let Some(key) = found {
            return key;
        }
        assert!(
            Instant::now() < deadline,
            "the instances never split the partitions"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_answer_for_each_others_orders_and_an_unreachable_owner_gives_502() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open_log(dir.path());
    let a = Instance::start(&log, &[Service::Orders]).await;
    let mut b = Instance::start(&log, &[Service::Orders]).await;
    let client = reqwest::Client::new();
    let key = key_owned_by(&a, &b).await;

    // Posted to one instance, read from either (the post and the read on `a` are forwarded).
    let placed = order(&key, 1, Product::Jumpers, 1, 1.0);
    assert_eq!(
        post(&client, &a, &body(&placed)).await.0,
        StatusCode::CREATED
    );
    for instance in [&a, &b] {
        let (status, read) = get(
            &client,
            instance.url(&format!("/v1/orders/{key}?timeout=20000")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{read}");
        assert_eq!(read, body(&placed));
    }
    let mut other = body(&placed);
    other["price"] = json!(2.0);
    assert_eq!(post(&client, &a, &other).await.0, StatusCode::CONFLICT);

    // b's services keep their partitions but its HTTP server is gone: a names it in a 502.
    b.stop_http();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let (status, error) = get(&client, a.url(&format!("/v1/orders/{key}?timeout=20000"))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a failed forward must not wait out the timeout"
    );
    let message = error["message"].as_str().expect("message");
    assert!(message.contains(&b.addr.to_string()), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fraud_and_inventory_scenarios_end_to_end() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open_log(dir.path());
    stock(&log, Product::Stockings, 10_000);
    stock(&log, Product::Underpants, 75);
    stock(&log, Product::Jumpers, 1);
    let instance = Instance::start(&log, ALL).await;
    let client = reqwest::Client::new();
    // Each order is decided before the next is posted: a customer's orders reach the fraud
    // check in the order they were placed.
    let place = async |id: &str, customer: i64, product: Product, quantity: i32, price: f64| {
        let placed = order(id, customer, product, quantity, price);
        assert_eq!(
            post(&client, &instance, &body(&placed)).await.0,
            StatusCode::CREATED
        );
        let (status, decided) = get(
            &client,
            instance.url(&format!("/v1/orders/{id}/validated?timeout=20000")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{decided}");
        decided["state"].as_str().expect("state").to_string()
    };
    let fraud = [
        (0, 3, 5.0, "VALIDATED"),
        (0, 1, 75.0, "VALIDATED"),
        (1, 1, 75.0, "VALIDATED"),
        (1, 1, 75.0, "VALIDATED"),
        (1, 50, 75.0, "FAILED"),
        (2, 10, 100.0, "VALIDATED"),
        (2, 10, 100.0, "FAILED"),
        (2, 1, 5.0, "FAILED"),
    ];
    for (i, (customer, quantity, price, expected)) in fraud.into_iter().enumerate() {
        let state = place(
            &format!("fraud-{i}"),
            customer,
            Product::Stockings,
            quantity,
            price,
        )
        .await;
        assert_eq!(state, expected, "fraud scenario order {i}");
    }
    let inventory = [
        (Product::Underpants, 3, "VALIDATED"),
        (Product::Jumpers, 1, "VALIDATED"),
        (Product::Jumpers, 1, "FAILED"),
    ];
    for (i, (product, quantity, expected)) in inventory.into_iter().enumerate() {
        let state = place(
            &format!("inventory-{i}"),
            100 + i as i64,
            product,
            quantity,
            1.0,
        )
        .await;
        assert_eq!(state, expected, "inventory scenario order {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_its_topology_and_the_order_events_stream() {
    let dir = tempfile::tempdir().expect("dir");
    let log = open_log(dir.path());
    stock(&log, Product::Jumpers, 10);
    let instance = Instance::start(&log, ALL).await;
    let client = reqwest::Client::new();

    let page = client.get(instance.url("/")).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.expect("html");
    assert!(
        page.contains("/v1/orders/events"),
        "the page follows the events"
    );

    let (status, topology) = get(&client, instance.url("/v1/topology")).await;
    assert_eq!(status, StatusCode::OK, "{topology}");
    let services = topology["services"].as_array().expect("services");
    assert_eq!(services.len(), ALL.len(), "{topology}");
    let orders = services
        .iter()
        .find(|s| s["service"] == "orders")
        .expect("the orders service");
    assert!(
        orders["reads"]
            .as_array()
            .expect("reads")
            .contains(&json!(topics::ORDERS))
    );
    // Internal topics stay inside their service.
    for service in services {
        for topic in service["reads"].as_array().into_iter().flatten() {
            let topic = topic.as_str().expect("name");
            assert!(
                !topic.ends_with("-changelog") && !topic.ends_with("-repartition"),
                "{topic}"
            );
        }
    }

    // The stream starts at the end of `orders`: an order placed once it is open comes through,
    // first CREATED, then decided.
    let mut events = client
        .get(instance.url("/v1/orders/events"))
        .send()
        .await
        .expect("events");
    assert_eq!(events.status(), StatusCode::OK);
    assert!(
        events.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/event-stream")
    );
    let placed = order("sse-1", 1, Product::Jumpers, 1, 12.5);
    assert_eq!(
        post(&client, &instance, &body(&placed)).await.0,
        StatusCode::CREATED
    );
    let mut text = String::new();
    let mut states = Vec::new();
    let read = async {
        while !states.contains(&"VALIDATED".to_string()) {
            let chunk = events.chunk().await.expect("chunk").expect("stream open");
            text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
            // Events end with a blank line; keep a partial one for the next chunk.
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                if !event.lines().any(|l| l == "event: order") {
                    continue;
                }
                let data = event
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .expect("data line");
                let order: Value = serde_json::from_str(data).expect("order json");
                if order["id"] == "sse-1" {
                    states.push(order["state"].as_str().expect("state").to_string());
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the order's events within 30 s");
    assert_eq!(states, ["CREATED", "VALIDATED"]);
}
