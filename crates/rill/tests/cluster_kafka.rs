//! Three `rill run --bootstrap` processes on a three-broker Apache Kafka cluster (replication
//! 3, min.insync.replicas 2) that this test starts with `scripts/kafka.sh`: orders posted to
//! all three while one instance is killed with SIGKILL, another aborts itself between
//! processing and commit (both restarted later), and one broker is killed for good. Afterwards every acknowledged order has exactly one final state, no check
//! judged an order twice, the reserved stock is what the VALIDATED orders hold, and every live
//! instance answers a GET of every order (forwarding to the owner of the key).
//!
//! NEEDS Apache Kafka installed by `scripts/kafka.sh install` (`scripts/test.sh` does it); the
//! cluster's ports start at `RILL_CLUSTER_TEST_PORT` (default 29092: 29092-29094 for brokers,
//! 29192-29194 for controllers).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Audit, Rill, free_port, order, post_order, set_stock, try_decided_within};
use parking_lot::Mutex;
use reqwest::StatusCode;
use rill_log_kafka::{KafkaConfig, KafkaLog};
use serde_json::Value;

/// A Kafka cluster of this test's own, stopped when dropped.
struct KafkaCluster {
    run_dir: PathBuf,
    base_port: String,
    bootstrap: String,
}

fn kafka_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kafka.sh")
}

impl KafkaCluster {
    fn start(run_dir: PathBuf, brokers: u32) -> KafkaCluster {
        let base_port =
            std::env::var("RILL_CLUSTER_TEST_PORT").unwrap_or_else(|_| "29092".to_string());
        let output = Command::new(kafka_script())
            .args(["start", "--brokers", &brokers.to_string()])
            .env("KAFKA_RUN", &run_dir)
            .env("KAFKA_BASE_PORT", &base_port)
            .output()
            .expect("run scripts/kafka.sh");
        assert!(
            output.status.success(),
            "scripts/kafka.sh start failed (is Kafka installed? `scripts/kafka.sh install`): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let bootstrap = String::from_utf8_lossy(&output.stdout).trim().to_string();
        assert_eq!(
            bootstrap.split(',').count(),
            brokers as usize,
            "{bootstrap}"
        );
        KafkaCluster {
            run_dir,
            base_port,
            bootstrap,
        }
    }

    fn script(&self, args: &[&str]) {
        let status = Command::new(kafka_script())
            .args(args)
            .env("KAFKA_RUN", &self.run_dir)
            .env("KAFKA_BASE_PORT", &self.base_port)
            .status()
            .expect("run scripts/kafka.sh");
        assert!(status.success(), "scripts/kafka.sh {args:?}");
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        let _ = Command::new(kafka_script())
            .arg("stop")
            .env("KAFKA_RUN", &self.run_dir)
            .env("KAFKA_BASE_PORT", &self.base_port)
            .status();
    }
}

/// Posts orders round-robin to the live instances, up to a limit the test raises phase by
/// phase, until told to stop; remembers the acknowledged ones.
struct Poster {
    live: Mutex<Vec<String>>,
    acknowledged: Mutex<Vec<String>>,
    limit: AtomicUsize,
    stop: AtomicBool,
}

impl Poster {
    async fn run(self: Arc<Self>, client: reqwest::Client) {
        let mut next = 0usize;
        while !self.stop.load(Ordering::Acquire) {
            if self.acknowledged.lock().len() >= self.limit.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            let live = self.live.lock().clone();
            let base = &live[next % live.len()];
            let id = format!("c-{next}");
            let product = if next.is_multiple_of(2) {
                "JUMPERS"
            } else {
                "UNDERPANTS"
            };
            let quantity = 1 + (next % 3) as i32;
            let order = order(&id, next as i64 % 5, product, quantity, 3.0);
            if post_order(&client, base, &order).await == StatusCode::CREATED {
                self.acknowledged.lock().push(id);
            }
            next += 1;
        }
    }

    /// Lets the poster go on until `acknowledged` orders are acknowledged, and waits for that.
    async fn post_until(&self, acknowledged: usize) {
        self.limit.store(acknowledged, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(180);
        while self.acknowledged.lock().len() < acknowledged {
            assert!(
                Instant::now() < deadline,
                "only {} orders acknowledged, waiting for {acknowledged}",
                self.acknowledged.lock().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_survive_a_killed_instance_and_a_killed_broker_without_losing_or_repeating_an_order()
 {
    let mut root = tempfile::tempdir().expect("tempdir");
    // RILL_TEST_KEEP=1 keeps the instances' logs and the brokers' files for a post-mortem.
    if std::env::var_os("RILL_TEST_KEEP").is_some() {
        root.disable_cleanup(true);
        eprintln!("keeping {}", root.path().display());
    }
    let cluster = KafkaCluster::start(root.path().join("kafka"), 3);
    let bootstrap = cluster.bootstrap.clone();
    // A member that dies is noticed after 10 s instead of librdkafka's 45 s.
    let args = [
        "--bootstrap",
        bootstrap.as_str(),
        "--no-seed",
        "--kafka-property",
        "session.timeout.ms=10000",
    ];
    let dirs: Vec<PathBuf> = (1..=3)
        .map(|i| root.path().join(format!("instance-{i}")))
        .collect();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut instances = Vec::new();
    for (i, (dir, port)) in dirs.iter().zip(&ports).enumerate() {
        let mut extra = args.to_vec();
        // Instance 3 aborts itself at its 30th commit: records processed, their outputs, store
        // changes and offsets in an open transaction.
        if i == 2 {
            extra.extend(["--crash-before-commit", "30"]);
        }
        instances.push(Some(Rill::start_on(dir, *port, &extra).await));
    }
    let bases: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let client = reqwest::Client::new();
    set_stock(&client, &bases[0], "JUMPERS", 200).await;
    set_stock(&client, &bases[1], "UNDERPANTS", 120).await;

    let poster = Arc::new(Poster {
        live: Mutex::new(bases.clone()),
        acknowledged: Mutex::new(Vec::new()),
        limit: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    let posting = tokio::spawn(poster.clone().run(client.clone()));

    let root_started = Instant::now();
    let phase = |what: &str| eprintln!("{:?}: {what}", root_started.elapsed());
    poster.post_until(60).await;
    phase("60 acknowledged: SIGKILL instance 2");
    // Instance 2 dies with work in flight: processed but uncommitted records, open
    // transactions, a POST half answered.
    poster.live.lock().retain(|base| base != &bases[1]);
    instances[1].take().expect("instance 2").kill_9();
    poster.post_until(120).await;
    phase("120 acknowledged: kill broker 3");
    cluster.script(&["kill-broker", "3"]);
    poster.post_until(180).await;
    phase("180 acknowledged: waiting for instance 3 to abort itself");
    let crashed = instances[2]
        .take()
        .expect("instance 3")
        .exited(Duration::from_secs(120))
        .await;
    assert!(
        !crashed.success(),
        "instance 3 was to abort, it exited with {crashed}"
    );
    poster.live.lock().retain(|base| base != &bases[2]);
    for i in [1, 2] {
        instances[i] = Some(Rill::start_on(&dirs[i], ports[i], &args).await);
        poster.live.lock().push(bases[i].clone());
    }
    phase("instances 2 and 3 restarted");
    poster.post_until(260).await;
    poster.stop.store(true, Ordering::Release);
    posting.await.expect("poster");
    let acknowledged = poster.acknowledged.lock().clone();

    // Every acknowledged order is decided, and every instance can say so.
    let started = Instant::now();
    eprintln!(
        "{} orders acknowledged; waiting for their final states",
        acknowledged.len()
    );
    // Generous: a partition whose owner died waits for the group to notice (10 s here) and
    // for the new owner to restore its stores.
    for (i, id) in acknowledged.iter().enumerate() {
        let answer = try_decided_within(&client, &bases[i % 3], id, Duration::from_secs(150)).await;
        if let Err(failure) = answer {
            // A stuck order is a stuck thread somewhere: show where each instance stands.
            for instance in instances.iter().flatten() {
                instance.dump_threads();
            }
            panic!("{failure}");
        }
    }
    eprintln!("all decided after {:?}", started.elapsed());
    for id in &acknowledged {
        let mut states = Vec::new();
        for base in &bases {
            let response = client
                .get(format!("{base}/v1/orders/{id}"))
                .send()
                .await
                .expect("get");
            assert_eq!(response.status(), StatusCode::OK, "GET {id} on {base}");
            let order: Value = response.json().await.expect("json");
            states.push(order["state"].as_str().expect("state").to_string());
        }
        assert!(
            states.iter().all(|s| s == &states[0] && s != "CREATED"),
            "{id}: {states:?}"
        );
    }

    let log =
        KafkaLog::new(KafkaConfig::new(bootstrap.clone()).request_timeout(Duration::from_secs(30)))
            .expect("kafka log");
    let audit = Audit::read(&log);
    audit.assert_consistent(&acknowledged);
    let validated: usize = audit
        .finals
        .values()
        .filter(|states| states[0] == "VALIDATED")
        .count();
    eprintln!(
        "{} orders acknowledged, {validated} VALIDATED, reserved {:?}",
        acknowledged.len(),
        audit.reserved
    );
    assert!(validated > 0, "no order was VALIDATED");
    assert!(validated < audit.finals.len(), "no order FAILED");
    for instance in instances.into_iter().flatten() {
        instance.stop();
    }
    drop(cluster);
}
