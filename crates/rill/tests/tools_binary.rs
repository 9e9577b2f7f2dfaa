//! The real `rill` binary's tools: `rill produce|tail|topics|groups --bootstrap` against a Kafka
//! cluster, `rill groups --data-dir` on an embedded log, and `rill groups --server` through a
//! running `rill run`'s topic proxy.
//!
//! The Kafka test NEEDS A CLUSTER at `RILL_KAFKA_BOOTSTRAP` and FAILS with instructions without
//! one (`BOOTSTRAP=$(scripts/kafka.sh start --brokers 3)`, then
//! `RILL_KAFKA_BOOTSTRAP=$BOOTSTRAP`).

mod common;

use std::io::Write;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Rill;
use rill_log::{Consumer, ConsumerConfig, Log, ProducerRecord, TopicConfig, TopicPartition};
use rill_log_embedded::{EmbeddedConfig, EmbeddedLog};
use rill_log_kafka::{KafkaConfig, KafkaLog};
use serde_json::{Value, json};

/// What one run of the binary printed, and how it ended.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// Stdout, after checking the run succeeded.
    fn ok(self, what: &str) -> String {
        assert!(
            self.status.success(),
            "{what} failed with {}: {}",
            self.status,
            self.stderr
        );
        self.stdout
    }

    /// Stdout as JSON lines, after checking the run succeeded.
    fn json_lines(self, what: &str) -> Vec<Value> {
        self.ok(what)
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: {line:?}: {e}"))
            })
            .collect()
    }
}

/// Runs `rill ARGS` with `stdin`, failing the test if it does not end within two minutes.
/// The tools' own environment variables are cleared so only the flags choose the log.
fn rill(args: &[&str], stdin: &str) -> Ran {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rill"))
        .args(args)
        .env_remove("RILL_SERVER")
        .env_remove("RILL_DATA_DIR")
        .env_remove("RILL_BOOTSTRAP")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rill");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(output) => {
            let output = output.expect("wait for rill");
            Ran {
                status: output.status,
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }
        }
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid]).status();
            panic!("rill {args:?} did not finish within two minutes");
        }
    }
}

/// A name no other test run uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn bootstrap() -> String {
    std::env::var("RILL_KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "RILL_KAFKA_BOOTSTRAP is not set: this test needs a Kafka cluster. Start one with \
             `scripts/kafka.sh install && BOOTSTRAP=$(scripts/kafka.sh start --brokers 3)` and \
             run with RILL_KAFKA_BOOTSTRAP=$BOOTSTRAP (scripts/test.sh does it)"
        )
    })
}

/// Polls `member` until it holds `count` partitions.
fn poll_until_assigned(member: &dyn Consumer, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while member.assignment().expect("assignment").len() < count {
        assert!(
            Instant::now() < deadline,
            "the member never got {count} partitions: {:?}",
            member.assignment()
        );
        member.poll(Duration::from_millis(100)).expect("poll");
    }
}

/// The report of `rill groups ARGS GROUP --json` once `done` holds for it, retried until then.
fn group_report(args: &[&str], group: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut full: Vec<&str> = vec!["groups"];
    full.extend_from_slice(args);
    full.extend_from_slice(&[group, "--json"]);
    loop {
        let lines = rill(&full, "").json_lines("rill groups GROUP --json");
        assert_eq!(lines.len(), 1, "one line for one group: {lines:?}");
        if done(&lines[0]) {
            return lines[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "waited for {what}; rill groups says {}",
            lines[0]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn partition_row<'a>(report: &'a Value, topic: &str, partition: i64) -> &'a Value {
    report["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .find(|p| p["topic"] == topic && p["partition"] == partition)
        .unwrap_or_else(|| panic!("{topic}-{partition} is not in {report}"))
}

#[test]
fn tools_produce_tail_list_topics_and_show_a_groups_lag_on_a_kafka_cluster() {
    let bootstrap = bootstrap();
    let log = KafkaLog::new(KafkaConfig::new(bootstrap.clone())).expect("kafka log");
    let topic = unique("rill-tools");
    log.admin()
        .create_topic(&topic, &TopicConfig::with_partitions(2))
        .expect("create topic");
    let on_kafka = ["--bootstrap", bootstrap.as_str()];

    // produce: three records to partition 0, two to partition 1.
    let lines: Vec<Value> = (0..5)
        .map(|i| json!({"key": format!("k{i}"), "value": {"n": i}, "partition": i64::from(i >= 3)}))
        .collect();
    let stdin: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let written = rill(&[&["produce"], &on_kafka[..], &[&topic]].concat(), &stdin)
        .json_lines("rill produce --bootstrap");
    let positions: Vec<(i64, i64)> = written
        .iter()
        .map(|w| {
            (
                w["partition"].as_i64().expect("partition"),
                w["offset"].as_i64().expect("offset"),
            )
        })
        .collect();
    assert_eq!(positions, vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]);

    // tail: every record back, with its key and value, whether limited or read to the end.
    for limit in [&["--limit", "5"][..], &[]] {
        let read = rill(
            &[
                &["tail"],
                &on_kafka[..],
                &[&topic, "--from-beginning"],
                limit,
            ]
            .concat(),
            "",
        )
        .json_lines("rill tail --bootstrap --from-beginning");
        let mut got: Vec<(i64, i64, String, i64)> = read
            .iter()
            .map(|r| {
                assert_eq!(r["topic"], topic.as_str(), "{r}");
                (
                    r["partition"].as_i64().expect("partition"),
                    r["offset"].as_i64().expect("offset"),
                    r["key"].as_str().expect("key").to_string(),
                    r["value"]["n"].as_i64().expect("value"),
                )
            })
            .collect();
        got.sort();
        let expected: Vec<(i64, i64, String, i64)> = (0..5)
            .map(|i| (i64::from(i >= 3), positions[i].1, format!("k{i}"), i as i64))
            .collect();
        assert_eq!(got, expected, "rill tail {limit:?}");
    }

    // topics: the topic with its end offsets, as JSON lines and as a table.
    let listed = rill(&[&["topics"], &on_kafka[..], &["--json"]].concat(), "")
        .json_lines("rill topics --bootstrap --json");
    let row = listed
        .iter()
        .find(|t| t["name"] == topic.as_str())
        .unwrap_or_else(|| panic!("{topic} not listed: {listed:?}"));
    assert_eq!(
        *row,
        json!({"name": topic, "partitions": 2, "endOffsets": [3, 2], "records": 5})
    );
    let table = rill(&[&["topics"], &on_kafka[..]].concat(), "").ok("rill topics --bootstrap");
    let cells: Vec<&str> = table
        .lines()
        .find(|line| line.starts_with(&format!("{topic} ")))
        .unwrap_or_else(|| panic!("{topic} not in the table:\n{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(cells, vec![topic.as_str(), "2", "5", "3,2"]);

    // groups: a member of a group that committed 2 on both partitions (lag 1 and 0).
    let group = unique("rill-tools-group");
    let member = log
        .consumer(
            &ConsumerConfig {
                client_id: Some("tools-test-member".into()),
                ..ConsumerConfig::group(group.clone())
            },
            None,
        )
        .expect("consumer");
    member
        .subscribe(std::slice::from_ref(&topic))
        .expect("subscribe");
    poll_until_assigned(&*member, 2);
    member
        .commit(&[
            (TopicPartition::new(&topic, 0), 2),
            (TopicPartition::new(&topic, 1), 2),
        ])
        .expect("commit");
    let report = group_report(
        &on_kafka,
        &group,
        "the group to be stable with its one member",
        |r| r["state"] == "Stable" && r["members"].as_array().is_some_and(|m| m.len() == 1),
    );
    let holder = &report["members"][0];
    assert_eq!(holder["clientId"], "tools-test-member", "{report}");
    assert_eq!(
        holder["assignment"],
        json!([{"topic": topic, "partition": 0}, {"topic": topic, "partition": 1}]),
        "{report}"
    );
    for (partition, committed, end, lag) in [(0, 2, 3, 1), (1, 2, 2, 0)] {
        let row = partition_row(&report, &topic, partition);
        assert_eq!(
            (&row["committed"], &row["end"], &row["lag"], &row["member"]),
            (
                &json!(committed),
                &json!(end),
                &json!(lag),
                &holder["memberId"]
            ),
            "{topic}-{partition}: {report}"
        );
    }
    let groups = rill(&[&["groups"], &on_kafka[..]].concat(), "").ok("rill groups --bootstrap");
    assert!(
        groups
            .lines()
            .any(|line| line.split_whitespace().collect::<Vec<_>>() == [group.as_str(), "Stable"]),
        "{group} is not listed as Stable:\n{groups}"
    );

    // Without its member the group keeps its offsets.
    member.close().expect("close the member");
    let report = group_report(&on_kafka, &group, "the group to be empty", |r| {
        r["state"] == "Empty"
    });
    assert_eq!(report["members"], json!([]));
    assert_eq!(partition_row(&report, &topic, 0)["lag"], 1, "{report}");

    // A refused librdkafka property is named, its value (maybe a secret) is not printed.
    let refused = rill(
        &[
            "topics",
            "--bootstrap",
            &bootstrap,
            "--kafka-property",
            "security.protocol=hunter2-secret",
        ],
        "",
    );
    assert!(
        !refused.status.success(),
        "an invalid property was accepted"
    );
    assert!(
        refused.stderr.contains("security.protocol") && !refused.stderr.contains("hunter2"),
        "{}",
        refused.stderr
    );

    log.admin().delete_topic(&topic).expect("delete the topic");
}

#[test]
fn groups_on_a_data_dir_show_committed_offsets_end_offsets_and_lag() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("data");
    let topic = "events";
    {
        let log = EmbeddedLog::open(EmbeddedConfig::new(&dir)).expect("open");
        log.admin()
            .create_topic(topic, &TopicConfig::with_partitions(2))
            .expect("create");
        let producer = log.producer(&Default::default()).expect("producer");
        for p in [0, 0, 0, 1] {
            producer
                .send(ProducerRecord::new(topic).partition(p).value("{}"))
                .expect("send")
                .wait()
                .expect("written");
        }
        let reader = log
            .consumer(&ConsumerConfig::group("audit"), None)
            .expect("consumer");
        reader
            .assign(&[TopicPartition::new(topic, 0)])
            .expect("assign");
        reader
            .commit(&[(TopicPartition::new(topic, 0), 1)])
            .expect("commit");
        reader.close().expect("close the reader");
        // The binary opens the directory: this process must let go of it.
        log.close().expect("close the log");
    }
    let data_dir = dir.to_str().expect("utf-8 path");
    let on_dir = ["--data-dir", data_dir];

    let listed = rill(&["groups", "--data-dir", data_dir, "--json"], "")
        .json_lines("rill groups --data-dir --json");
    assert_eq!(listed, vec![json!({"group": "audit", "state": "Empty"})]);

    let report = group_report(&on_dir, "audit", "the report", |_| true);
    assert_eq!(
        report,
        json!({"group": "audit", "state": "Empty", "members": [], "partitions": [
            {"topic": topic, "partition": 0, "committed": 1, "end": 3, "lag": 2, "member": null}
        ]})
    );

    // A record produced by the tool raises the end offset and the lag.
    rill(
        &["produce", "--data-dir", data_dir, topic],
        "{\"value\": 1, \"partition\": 0}\n",
    )
    .ok("rill produce --data-dir");
    let table = rill(&["groups", "--data-dir", data_dir, "audit"], "").ok("rill groups audit");
    assert!(
        table.starts_with("group audit: Empty, 0 member(s)"),
        "{table}"
    );
    let cells: Vec<&str> = table
        .lines()
        .find(|line| line.starts_with(topic))
        .unwrap_or_else(|| panic!("no partition row:\n{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(cells, vec![topic, "0", "1", "4", "3", "-"], "{table}");

    let unknown = rill(&["groups", "--data-dir", data_dir, "nobody"], "");
    assert!(!unknown.status.success(), "an unknown group was described");
    assert!(
        unknown.stderr.contains("unknown consumer group 'nobody'"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_through_a_running_server_show_its_services() {
    let root = tempfile::tempdir().expect("tempdir");
    let rill_run = Rill::start(
        &root.path().join("data"),
        &["--services", "order-details", "--no-seed"],
    )
    .await;
    let server = rill_run.base.clone();
    let report = tokio::task::spawn_blocking(move || {
        group_report(
            &["--server", &server],
            "order-details-service",
            "the service to hold the 3 partitions of orders",
            |r| {
                r["state"] == "Stable"
                    && r["partitions"].as_array().is_some_and(|partitions| {
                        partitions
                            .iter()
                            .filter(|p| p["topic"] == "orders" && p["member"].is_string())
                            .count()
                            == 3
                    })
            },
        )
    })
    .await
    .expect("rill groups");
    assert_eq!(
        report["members"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    let server = rill_run.base.clone();
    let listed = tokio::task::spawn_blocking(move || {
        rill(&["groups", "--server", &server, "--json"], "").json_lines("rill groups --server")
    })
    .await
    .expect("rill groups");
    assert!(
        listed.contains(&json!({"group": "order-details-service", "state": "Stable"})),
        "{listed:?}"
    );
    rill_run.stop();
}
