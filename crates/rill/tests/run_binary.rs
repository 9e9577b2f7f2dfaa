//! The real `rill run` binary, spoken to over HTTP: the SPEC 2.5 inventory scenario end to
//! end, and a kill -9 in the middle of posting that loses no acknowledged order.

mod common;

use std::time::Duration;

use common::{Audit, Rill, data_dir, decided, order, post_order, set_stock, try_decided_within};
use reqwest::StatusCode;
use rill_log_embedded::{EmbeddedConfig, EmbeddedLog};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_single_jumpers_validate_with_ten_in_stock_and_fail_when_none_is_left() {
    let root = tempfile::tempdir().expect("tempdir");
    let rill = Rill::start(&data_dir(&root, "data"), &["--no-seed"]).await;
    let client = reqwest::Client::new();
    set_stock(&client, &rill.base, "JUMPERS", 10).await;
    // The inventory table and the orders re-keyed by product are two inputs of one task: give
    // the stock a head start over the orders that follow.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..10 {
        let id = format!("in-stock-{i}");
        assert_eq!(
            post_order(&client, &rill.base, &order(&id, 1, "JUMPERS", 1, 1.0)).await,
            StatusCode::CREATED
        );
    }
    for i in 0..10 {
        let order = decided(&client, &rill.base, &format!("in-stock-{i}")).await;
        assert_eq!(order["state"], "VALIDATED", "{order}");
    }
    set_stock(&client, &rill.base, "JUMPERS", 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..10 {
        let id = format!("none-left-{i}");
        assert_eq!(
            post_order(&client, &rill.base, &order(&id, 1, "JUMPERS", 1, 1.0)).await,
            StatusCode::CREATED
        );
    }
    for i in 0..10 {
        let order = decided(&client, &rill.base, &format!("none-left-{i}")).await;
        assert_eq!(order["state"], "FAILED", "{order}");
    }
    rill.stop();
}

/// Issue 10: the process's threads are bounded (not one set per store, task or service): the
/// log's flusher and cleaner, the storage engine's two workers, a stream thread per service,
/// the email service's global-table reader, HTTP, main.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rill_run_deciding_an_order_runs_at_most_16_threads() {
    let root = tempfile::tempdir().expect("tempdir");
    let rill = Rill::start(&data_dir(&root, "data"), &[]).await;
    let client = reqwest::Client::new();
    assert_eq!(
        post_order(
            &client,
            &rill.base,
            &order("threads-1", 7, "JUMPERS", 1, 1.0)
        )
        .await,
        StatusCode::CREATED
    );
    let decided = decided(&client, &rill.base, "threads-1").await;
    assert!(
        decided["state"] == "VALIDATED" || decided["state"] == "FAILED",
        "{decided}"
    );
    let names = rill.thread_names();
    assert!(names.len() <= 16, "{} threads: {names:?}", names.len());
    rill.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_posting_loses_no_acknowledged_order_and_decides_each_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = data_dir(&root, "data");
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
    for (id, _) in &acknowledged {
        if let Err(failure) =
            try_decided_within(&client, &rill.base, id, Duration::from_secs(60)).await
        {
            panic!("{failure}; the restarted rill's log:\n{}", rill.log_tail());
        }
    }
    rill.stop();
    let log = EmbeddedLog::open(EmbeddedConfig::new(&dir)).expect("open the stopped log");
    let ids: Vec<String> = acknowledged.into_iter().map(|(id, _)| id).collect();
    Audit::read(&log).assert_consistent(&ids);
    log.close().expect("close");
}

/// A cluster that refuses transactions stops `rill run` before it creates anything, with an
/// error that names the flag to use instead.
#[test]
fn a_cluster_without_transactions_is_refused_with_the_at_least_once_advice() {
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.request_errors(
        RDKafkaApiKey::InitProducerId,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED],
    );
    let root = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rill"))
        .arg("run")
        .arg("--data-dir")
        .arg(data_dir(&root, "data"))
        .args(["--bootstrap", &cluster.bootstrap_servers()])
        .args(["--http", "127.0.0.1:0"])
        .output()
        .expect("run rill");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "rill run started: {stderr}");
    assert!(
        stderr.contains("--processing-guarantee at-least-once"),
        "{stderr}"
    );
    let log = rill_log_kafka::KafkaLog::new(rill_log_kafka::KafkaConfig::new(
        cluster.bootstrap_servers(),
    ))
    .expect("log");
    let topics = rill_log::Log::admin(&log).list_topics().expect("list");
    assert!(!topics.iter().any(|t| t == "orders"), "{topics:?}");
}

/// A `rill.toml` sets what its flags would, `--log-format json` makes every log line a JSON
/// object, and the start banner names the dashboard, API, metrics and state directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_sets_run_and_json_logs_carry_the_start_banner() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = root.path().join("rill.toml");
    std::fs::write(
        &config,
        "partitions = 5\nno-seed = true\nlog-format = \"json\"\n",
    )
    .expect("write config");
    let data = data_dir(&root, "data");
    let config_flag = config.to_string_lossy().into_owned();
    let rill = Rill::start(&data, &["--config", &config_flag]).await;
    let client = reqwest::Client::new();
    let topics: serde_json::Value = client
        .get(rill.url("/v1/topics"))
        .send()
        .await
        .expect("topics")
        .json()
        .await
        .expect("json");
    let orders = topics["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .find(|t| t["name"] == "orders")
        .cloned()
        .expect("orders listed");
    assert_eq!(orders["partitions"], 5, "{topics}");
    let inventory = topics["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .find(|t| t["name"] == "warehouse-inventory")
        .cloned()
        .expect("inventory listed");
    assert_eq!(inventory["records"], 0, "no-seed from the file: {topics}");
    let port = rill.port;
    rill.stop();
    let log = std::fs::read_to_string(data.with_extension(format!("{port}.log"))).expect("log");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let banner = lines
        .iter()
        .find(|line| line["fields"]["message"] == "rill is running")
        .unwrap_or_else(|| panic!("no banner in {log}"));
    let fields = &banner["fields"];
    assert_eq!(fields["dashboard"], format!("http://127.0.0.1:{port}/"));
    assert_eq!(
        fields["metrics"],
        format!("http://127.0.0.1:{port}/metrics")
    );
    assert!(
        fields["state"]
            .as_str()
            .is_some_and(|state| state.starts_with(&*data.to_string_lossy())),
        "{banner}"
    );
}

/// The sum of the series of `name` whose labels contain every one of `labels` (e.g. over the
/// partitions of a store; 0 when there is none yet).
fn series(page: &str, name: &str, labels: &[&str]) -> f64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            series.split('{').next() == Some(name) && labels.iter().all(|l| series.contains(l))
        })
        .map(|(_, value)| value.parse::<f64>().expect("a number"))
        .sum()
}

/// `/metrics` is Prometheus text, and its counters move with an order going through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_and_move_with_an_order() {
    let root = tempfile::tempdir().expect("tempdir");
    let rill = Rill::start(&data_dir(&root, "data"), &[]).await;
    let client = reqwest::Client::new();
    let scrape = || async {
        let response = client
            .get(rill.url("/metrics"))
            .send()
            .await
            .expect("scrape");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        response.text().await.expect("text")
    };
    let before = scrape().await;
    assert_eq!(
        post_order(&client, &rill.base, &order("m1", 1, "JUMPERS", 1, 1.0)).await,
        StatusCode::CREATED
    );
    let decided_order = decided(&client, &rill.base, "m1").await;
    assert_eq!(decided_order["state"], "VALIDATED", "{decided_order}");
    let after = scrape().await;

    for line in after
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let name = series.split('{').next().expect("name");
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        assert!(
            !series.contains('{') || series.ends_with('}'),
            "bad labels in {line}"
        );
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "bad value in {line}"
        );
    }
    let posts = |page: &str| {
        series(
            page,
            "rill_http_requests_total",
            &[
                r#"route="/v1/orders""#,
                r#"method="POST""#,
                r#"status="201""#,
            ],
        )
    };
    assert_eq!(posts(&after) - posts(&before), 1.0, "{after}");
    let consumed = |page: &str| {
        series(
            page,
            "rill_records_consumed_total",
            &[
                r#"application="order-details-service""#,
                r#"topic="orders""#,
            ],
        )
    };
    assert!(consumed(&after) > consumed(&before), "{after}");
    let produced = |page: &str| {
        series(
            page,
            "rill_records_produced_total",
            &[r#"application="orders-service""#, r#"topic="orders""#],
        )
    };
    assert!(produced(&after) > produced(&before), "{after}");
    assert!(
        series(&after, "rill_log_fsync_duration_seconds_count", &[]) > 0.0,
        "{after}"
    );
    assert!(
        series(
            &after,
            "rill_commit_duration_seconds_count",
            &[r#"application="fraud-service""#]
        ) > 0.0,
        "{after}"
    );
    assert!(after.contains("rill_consumer_lag_records{"), "{after}");
    assert!(
        series(
            &after,
            "rill_store_entries",
            &[r#"application="orders-service""#, r#"store="orders-store""#]
        ) >= 1.0,
        "{after}"
    );
    rill.stop();
}

/// `rill example NAME` runs an example system on its sample and prints its output; an unknown
/// name is refused with the list.
#[test]
fn an_example_runs_on_its_sample_and_an_unknown_one_is_refused() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(["example", "coffee-coupons"])
        .output()
        .expect("run rill");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("coupon for ann: espresso then headphones"),
        "{stdout}"
    );
    assert!(
        stdout.contains("coupon for cy: flat white then speaker"),
        "{stdout}"
    );

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(["example", "nope"])
        .output()
        .expect("run rill");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("no example 'nope'") && stderr.contains("trucks"),
        "{stderr}"
    );
}
