//! What the binary's tests share: `rill run` processes spoken to over HTTP, reading a topic
//! to its end through the log traits, the audit of the order system's invariants, and
//! PostgreSQL from an async test.

#![allow(dead_code)] // each test file uses its own part

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rill_log::{ConsumedRecord, ConsumerConfig, IsolationLevel, Log, SeekTo, TopicPartition};
use serde_json::{Value, json};

/// A `rill run` process on a loopback port.
pub struct Rill {
    child: Child,
    pub port: u16,
    pub base: String,
    /// Where the process's stderr goes.
    pub log: PathBuf,
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

impl Rill {
    /// Starts `rill run` on a free port and waits until it is ready.
    pub async fn start(data_dir: &Path, extra: &[&str]) -> Rill {
        Rill::start_on(data_dir, free_port(), extra).await
    }

    /// Starts `rill run` on `port` (its stderr next to `data_dir`) and waits until it is
    /// ready.
    pub async fn start_on(data_dir: &Path, port: u16, extra: &[&str]) -> Rill {
        let log_path = data_dir.with_extension(format!("{port}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
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
        let mut rill = Rill {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            log: log_path,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(response) = client.get(rill.url("/ready")).send().await
                && response.status() == StatusCode::OK
            {
                return rill;
            }
            if let Some(status) = rill.child.try_wait().expect("wait") {
                panic!(
                    "rill run exited with {status} before it was ready; its log:\n{}",
                    rill.log_tail()
                );
            }
            assert!(Instant::now() < deadline, "rill run never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of the process's stderr, for failure messages (the log file goes with
    /// the test's temporary directory).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no shutdown, no final commit.
    pub fn kill_9(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// Waits until the process exits by itself and answers how it ended.
    pub async fn exited(mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "rill run did not exit");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The names of the process's threads, from `/proc/PID/task/*/comm`.
    pub fn thread_names(&self) -> Vec<String> {
        let tasks = format!("/proc/{}/task", self.child.id());
        let mut names: Vec<String> = std::fs::read_dir(&tasks)
            .expect("the process's task directory")
            .filter_map(|entry| {
                let path = entry.ok()?.path().join("comm");
                Some(std::fs::read_to_string(path).ok()?.trim().to_string())
            })
            .collect();
        names.sort();
        names
    }

    /// Prints every thread's stack (see [`dump_threads`]).
    pub fn dump_threads(&self) {
        dump_threads(&self.child.id().to_string());
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(
                    status.success(),
                    "rill run stopped with {status}; its log:\n{}",
                    self.log_tail()
                );
                return;
            }
            if Instant::now() >= deadline {
                dump_threads(&pid);
                panic!("rill run did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Prints every thread's stack of a hung process (when gdb is installed), so that a hang
/// seen once in CI can be explained from its log.
fn dump_threads(pid: &str) {
    let dumped = Command::new("gdb")
        .args(["-p", pid, "-batch", "-ex", "thread apply all bt 30"])
        .stdin(Stdio::null())
        .output();
    match dumped {
        Ok(output) => eprintln!(
            "threads of hung rill run {pid}:\n{}",
            String::from_utf8_lossy(&output.stdout)
        ),
        Err(error) => eprintln!("no thread dump of {pid} (gdb: {error})"),
    }
}

impl Drop for Rill {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn order(id: &str, customer: i64, product: &str, quantity: i32, price: f64) -> Value {
    json!({"id": id, "customerId": customer, "state": "CREATED", "product": product,
           "quantity": quantity, "price": price})
}

pub async fn post_order(client: &reqwest::Client, base: &str, order: &Value) -> StatusCode {
    client
        .post(format!("{base}/v1/orders"))
        .json(order)
        .send()
        .await
        .map_or(StatusCode::SERVICE_UNAVAILABLE, |r| r.status())
}

/// The order once it reached a final state (long-polls up to a minute).
pub async fn decided(client: &reqwest::Client, base: &str, id: &str) -> Value {
    decided_within(client, base, id, Duration::from_secs(60)).await
}

/// The order once it reached a final state, long-polling up to `wait`.
pub async fn decided_within(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    wait: Duration,
) -> Value {
    match try_decided_within(client, base, id, wait).await {
        Ok(order) => order,
        Err(failure) => panic!("{failure}"),
    }
}

/// The order once it reached a final state, long-polling up to `wait`; otherwise what the API
/// answered.
pub async fn try_decided_within(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    wait: Duration,
) -> Result<Value, String> {
    let response = client
        .get(format!(
            "{base}/v1/orders/{id}/validated?timeout={}",
            wait.as_millis()
        ))
        .send()
        .await
        .map_err(|e| format!("order {id} at {base}: {e}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| format!("order {id} at {base}: {status}, {e}"))?;
    if status == StatusCode::OK {
        Ok(body)
    } else {
        Err(format!("order {id} at {base}: {status} {body}"))
    }
}

pub async fn set_stock(client: &reqwest::Client, base: &str, product: &str, count: i64) {
    let response = client
        .post(format!("{base}/v1/topics/warehouse-inventory/records"))
        .json(&json!({"records": [{"key": product, "value": count}]}))
        .send()
        .await
        .expect("produce");
    assert_eq!(response.status(), StatusCode::OK);
}

/// Every committed record of `topic` up to its end as of the call, read through the log's
/// traits (read-committed, no group).
pub fn read_to_end(log: &dyn Log, topic: &str) -> Vec<ConsumedRecord> {
    let partitions = log
        .admin()
        .describe_topic(topic)
        .expect("describe")
        .config
        .partitions;
    let consumer = log
        .consumer(
            &ConsumerConfig {
                isolation: IsolationLevel::ReadCommitted,
                ..ConsumerConfig::default()
            },
            None,
        )
        .expect("consumer");
    let partitions: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    consumer.assign(&partitions).expect("assign");
    let mut ends = BTreeMap::new();
    for partition in &partitions {
        consumer
            .seek(partition, SeekTo::Beginning)
            .expect("seek beginning");
        ends.insert(
            partition.partition,
            consumer.watermarks(partition).expect("watermarks").high,
        );
    }
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let behind: Vec<i32> = partitions
            .iter()
            .filter(|p| consumer.position(p).expect("position") < ends[&p.partition])
            .map(|p| p.partition)
            .collect();
        if behind.is_empty() {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: partitions {behind:?} not read to their ends {ends:?}"
        );
        records.extend(consumer.poll(Duration::from_millis(200)).expect("poll"));
    }
}

fn text(bytes: Option<&bytes::Bytes>) -> String {
    String::from_utf8_lossy(bytes.map(|b| &b[..]).unwrap_or_default()).into_owned()
}

fn json_value(record: &ConsumedRecord) -> Value {
    serde_json::from_slice(record.value.as_deref().unwrap_or(b"null")).expect("JSON value")
}

/// What the log says happened to the orders.
#[derive(Debug, Default)]
pub struct Audit {
    /// Final states (VALIDATED / FAILED) each order id reached, in log order.
    pub finals: BTreeMap<String, Vec<String>>,
    /// Items of VALIDATED orders per product.
    pub validated_items: BTreeMap<String, i64>,
    /// Reserved stock per product (non-zero), as the inventory service's changelog last says.
    pub reserved: BTreeMap<String, i64>,
    /// (order id, check) pairs judged more than once.
    pub duplicate_verdicts: Vec<(String, String)>,
}

impl Audit {
    /// Reads `orders`, `order-validations` and the reserved-stock changelog to their ends.
    pub fn read(log: &dyn Log) -> Audit {
        let mut audit = Audit::default();
        for record in read_to_end(log, "orders") {
            let order = json_value(&record);
            let state = order["state"].as_str().expect("state").to_string();
            if state == "CREATED" {
                continue;
            }
            if state == "VALIDATED" {
                *audit
                    .validated_items
                    .entry(order["product"].as_str().expect("product").to_string())
                    .or_default() += order["quantity"].as_i64().expect("quantity");
            }
            audit
                .finals
                .entry(text(record.key.as_ref()))
                .or_default()
                .push(state);
        }
        let mut verdicts = BTreeSet::new();
        for record in read_to_end(log, "order-validations") {
            let verdict = json_value(&record);
            let check = (
                verdict["orderId"].as_str().expect("orderId").to_string(),
                verdict["checkType"]
                    .as_str()
                    .expect("checkType")
                    .to_string(),
            );
            if !verdicts.insert(check.clone()) {
                audit.duplicate_verdicts.push(check);
            }
        }
        for record in read_to_end(log, "inventory-service-reserved-stocks-changelog") {
            let product = text(record.key.as_ref());
            match record.value.as_deref() {
                Some(bytes) => {
                    let count = i64::from_be_bytes(bytes.try_into().expect("an 8-byte count"));
                    audit.reserved.insert(product, count);
                }
                None => {
                    audit.reserved.remove(&product);
                }
            }
        }
        audit.reserved.retain(|_, count| *count != 0);
        audit
    }

    /// Every acknowledged order has exactly one final state, every order in the log at most
    /// one, no check judged an order twice, and the reserved stock is what the VALIDATED
    /// orders hold (failed ones gave theirs back).
    pub fn assert_consistent(&self, acknowledged: &[String]) {
        for id in acknowledged {
            assert_eq!(
                self.finals.get(id).map(Vec::len),
                Some(1),
                "final states of acknowledged order {id}: {:?}",
                self.finals.get(id)
            );
        }
        let repeated: Vec<_> = self
            .finals
            .iter()
            .filter(|(_, states)| states.len() > 1)
            .collect();
        assert!(repeated.is_empty(), "orders decided twice: {repeated:?}");
        assert!(
            self.duplicate_verdicts.is_empty(),
            "checks that judged an order twice: {:?}",
            self.duplicate_verdicts
        );
        assert_eq!(
            self.reserved, self.validated_items,
            "reserved stock vs items of VALIDATED orders"
        );
    }
}

/// A data directory inside `root`.
pub fn data_dir(root: &tempfile::TempDir, name: &str) -> PathBuf {
    root.path().join(name)
}

/// Runs `work` with a client of the PostgreSQL at `url` on a thread of its own: the blocking
/// client starts a runtime, which it may not do on an async test's.
pub fn with_postgres<T: Send + 'static>(
    url: &str,
    work: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
) -> T {
    let url = url.to_string();
    std::thread::spawn(move || {
        let mut client =
            postgres::Client::connect(&url, postgres::NoTls).expect("connect to PostgreSQL");
        work(&mut client)
    })
    .join()
    .expect("the SQL thread")
}

/// Stops `rill` and checks its log: `shown` is in it, `hidden` (a password) is not.
pub fn stop_and_check_log(rill: Rill, shown: &str, hidden: &str) {
    let log_path = rill.log.clone();
    rill.stop();
    let log = std::fs::read_to_string(&log_path).expect("the server's log");
    assert!(log.contains(shown), "{shown:?} is not in the log: {log}");
    assert!(!log.contains(hidden), "the password was logged: {log}");
}
