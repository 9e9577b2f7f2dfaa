//! The PostgreSQL sink against a real server (`scripts/postgres.sh start` prints the
//! connection string; `scripts/test.sh` exports it as `RILL_POSTGRES_URL`) and the embedded
//! log. Each test owns its table and sink name, so the tests run side by side.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use rill_connect_postgres::{OFFSETS_TABLE, PostgresSink, SinkConfig, SinkError};
use rill_log::{ConsumerConfig, Log, ProducerConfig, ProducerRecord, TopicConfig, TopicPartition};
use rill_log_embedded::{EmbeddedConfig, EmbeddedLog};
use rill_test_postgres::postgres_url;
use serde_json::{Value, json};

const PARTITIONS: i32 = 3;
/// What these tests test, for the message that says they are skipped.
const WHAT: &str = "the PostgreSQL sink";

/// A client, with `table` and the sink's stored offsets of an earlier run gone.
fn fresh(url: &str, table: &str) -> Client {
    let mut client = Client::connect(url, NoTls).expect("connect to PostgreSQL");
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table};
             CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (sink text NOT NULL, topic text NOT NULL,
                 partition int NOT NULL, next_offset bigint NOT NULL,
                 PRIMARY KEY (sink, topic, partition));
             DELETE FROM {OFFSETS_TABLE} WHERE sink = 'rill_{table}';"
        ))
        .expect("clean up");
    client
}

fn log_with_orders(dir: &std::path::Path) -> Arc<dyn Log> {
    let log = EmbeddedLog::open(EmbeddedConfig::new(dir)).expect("open the log");
    log.admin()
        .create_topic("orders", &TopicConfig::with_partitions(PARTITIONS))
        .expect("create orders");
    Arc::new(log)
}

fn order(id: &str, state: &str, quantity: i32) -> Value {
    json!({
        "id": id, "customerId": 7, "state": state, "product": "JUMPERS",
        "quantity": quantity, "price": 12.5,
    })
}

/// Writes each (key, value or tombstone) to `orders`, partitioned by key.
fn write(log: &dyn Log, records: &[(String, Option<Value>)]) {
    let producer = log.producer(&ProducerConfig::default()).expect("producer");
    for (key, value) in records {
        let mut record = ProducerRecord::new("orders").key(key.clone().into_bytes());
        if let Some(value) = value {
            record = record.value(value.to_string().into_bytes());
        }
        producer
            .send(record)
            .expect("send")
            .wait()
            .expect("written");
    }
}

/// The end offset of every partition of `orders`.
fn ends(log: &dyn Log) -> BTreeMap<i32, i64> {
    let consumer = log
        .consumer(&ConsumerConfig::default(), None)
        .expect("consumer");
    (0..PARTITIONS)
        .map(|p| {
            let partition = TopicPartition::new("orders", p);
            (p, consumer.watermarks(&partition).expect("watermarks").high)
        })
        .filter(|(_, end)| *end > 0)
        .collect()
}

/// Polls until the sink has stored the end of every partition.
fn drain(sink: &mut PostgresSink, ends: &BTreeMap<i32, i64>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink.positions() != ends {
        assert!(Instant::now() < deadline, "the sink did not reach {ends:?}");
        sink.poll(Duration::from_millis(100)).expect("poll");
    }
}

/// The table as id to its JSON document.
fn table_docs(client: &mut Client, table: &str) -> HashMap<String, Value> {
    client
        .query(&format!("SELECT id, doc::text FROM {table}"), &[])
        .expect("read the table")
        .into_iter()
        .map(|row| {
            let doc: String = row.get(1);
            (row.get(0), serde_json::from_str(&doc).expect("JSON"))
        })
        .collect()
}

/// The latest value per key of what was written (a tombstone removes the key).
fn latest(records: &[(String, Option<Value>)]) -> HashMap<String, Value> {
    let mut state = HashMap::new();
    for (key, value) in records {
        match value {
            Some(value) => state.insert(key.clone(), value.clone()),
            None => state.remove(key),
        };
    }
    state
}

fn stored_offsets(client: &mut Client, table: &str) -> BTreeMap<i32, i64> {
    client
        .query(
            &format!("SELECT partition, next_offset FROM {OFFSETS_TABLE} WHERE sink = $1"),
            &[&format!("rill_{table}")],
        )
        .expect("read the offsets")
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[test]
fn orders_in_several_states_end_as_one_row_each_in_their_last_state() {
    let Some(url) = postgres_url(WHAT) else {
        return;
    };
    let table = "sink_states";
    let mut client = fresh(&url, table);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = log_with_orders(dir.path());
    let mut records = Vec::new();
    for state in ["CREATED", "VALIDATED", "SHIPPED"] {
        for n in 0..10 {
            records.push((
                format!("order-{n}"),
                Some(order(&format!("order-{n}"), state, n)),
            ));
        }
    }
    write(log.as_ref(), &records);

    let mut sink = PostgresSink::open(log.clone(), SinkConfig::orders(&url, table)).expect("open");
    drain(&mut sink, &ends(log.as_ref()));

    let rows = client
        .query(
            &format!(
                "SELECT id, customer_id, state, product, quantity, price FROM {table} ORDER BY id"
            ),
            &[],
        )
        .expect("read the table");
    assert_eq!(rows.len(), 10);
    for row in &rows {
        let id: String = row.get(0);
        let n: i32 = id["order-".len()..].parse().expect("an order number");
        assert_eq!(row.get::<_, i64>(1), 7);
        assert_eq!(row.get::<_, String>(2), "SHIPPED");
        assert_eq!(row.get::<_, String>(3), "JUMPERS");
        assert_eq!(row.get::<_, i32>(4), n);
        assert_eq!(row.get::<_, f64>(5), 12.5);
    }
    assert_eq!(table_docs(&mut client, table), latest(&records));
}

#[test]
fn a_crash_after_the_database_commit_then_a_restart_neither_repeats_nor_loses() {
    let Some(url) = postgres_url(WHAT) else {
        return;
    };
    let table = "sink_crash";
    let mut client = fresh(&url, table);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = log_with_orders(dir.path());
    let mut records = Vec::new();
    for round in 0..20 {
        for n in 0..5 {
            let id = format!("order-{n}");
            records.push((id.clone(), Some(order(&id, "CREATED", round))));
        }
    }
    write(log.as_ref(), &records);
    let ends = ends(log.as_ref());
    let total: i64 = ends.values().sum();
    assert_eq!(total, 100);

    // Small batches, and a crash right after the third commit.
    let mut config = SinkConfig::orders(&url, table);
    config.max_records = 7;
    let mut sink = PostgresSink::open(log.clone(), config.clone()).expect("open");
    let mut commits = 0;
    sink.on_commit(move |_| {
        commits += 1;
        if commits == 3 {
            Err(SinkError::Stopped)
        } else {
            Ok(())
        }
    });
    let crashed = loop {
        match sink.poll(Duration::from_millis(100)) {
            Ok(_) => {}
            Err(error) => break error,
        }
    };
    assert!(matches!(crashed, SinkError::Stopped), "{crashed}");
    let at_crash = sink.positions().clone();
    drop(sink);
    // What the crash left: exactly the three committed batches' records, stored.
    assert_eq!(stored_offsets(&mut client, table), at_crash);
    let consumed: i64 = at_crash.values().sum();
    assert!(
        consumed > 0 && consumed <= 21,
        "{consumed} records in three batches"
    );

    // The restart starts exactly where the last commit left off: the records it reads and
    // those read before the crash add up to the topic, none twice.
    let mut sink = PostgresSink::open(log.clone(), config).expect("reopen");
    assert_eq!(sink.positions(), &at_crash);
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink.positions() != &ends {
        assert!(Instant::now() < deadline, "the sink did not reach {ends:?}");
        read += sink.poll(Duration::from_millis(100)).expect("poll") as i64;
    }
    assert_eq!(
        consumed + read,
        total,
        "each record read once across the crash"
    );
    assert_eq!(stored_offsets(&mut client, table), ends);
    assert_eq!(table_docs(&mut client, table), latest(&records));
}

#[test]
fn a_tombstone_deletes_the_row() {
    let Some(url) = postgres_url(WHAT) else {
        return;
    };
    let table = "sink_tombstone";
    let mut client = fresh(&url, table);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = log_with_orders(dir.path());
    let mut records = vec![
        ("a".to_string(), Some(order("a", "CREATED", 1))),
        ("b".to_string(), Some(order("b", "CREATED", 2))),
    ];
    write(log.as_ref(), &records);
    let mut sink = PostgresSink::open(log.clone(), SinkConfig::orders(&url, table)).expect("open");
    drain(&mut sink, &ends(log.as_ref()));
    assert_eq!(table_docs(&mut client, table).len(), 2);

    let more = vec![("a".to_string(), None)];
    write(log.as_ref(), &more);
    records.extend(more);
    drain(&mut sink, &ends(log.as_ref()));
    let docs = table_docs(&mut client, table);
    assert_eq!(docs, latest(&records));
    assert!(!docs.contains_key("a"));
}

#[test]
fn a_record_that_does_not_fit_the_row_is_refused() {
    let Some(url) = postgres_url(WHAT) else {
        return;
    };
    let table = "sink_bad";
    let mut client = fresh(&url, table);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = log_with_orders(dir.path());
    let mut bad = order("x", "CREATED", 1);
    bad["quantity"] = json!("many");
    write(log.as_ref(), &[("x".to_string(), Some(bad))]);
    let mut sink = PostgresSink::open(log.clone(), SinkConfig::orders(&url, table)).expect("open");
    let deadline = Instant::now() + Duration::from_secs(30);
    let error = loop {
        assert!(Instant::now() < deadline, "the record was never read");
        match sink.poll(Duration::from_millis(100)) {
            Ok(_) => {}
            Err(error) => break error,
        }
    };
    assert!(
        matches!(&error, SinkError::BadRecord { reason, .. } if reason.contains("quantity")),
        "{error}"
    );
    assert!(
        stored_offsets(&mut client, table).is_empty(),
        "nothing stored"
    );
    assert!(table_docs(&mut client, table).is_empty());
}

#[test]
fn a_second_copy_of_the_sink_is_fenced_rather_than_writing_twice() {
    let Some(url) = postgres_url(WHAT) else {
        return;
    };
    let table = "sink_fenced";
    let mut client = fresh(&url, table);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = log_with_orders(dir.path());
    let records = vec![("a".to_string(), Some(order("a", "CREATED", 1)))];
    write(log.as_ref(), &records);
    let config = SinkConfig::orders(&url, table);
    let mut first = PostgresSink::open(log.clone(), config.clone()).expect("open");
    let mut second = PostgresSink::open(log.clone(), config).expect("open a copy");
    let ends = ends(log.as_ref());
    drain(&mut first, &ends);

    let deadline = Instant::now() + Duration::from_secs(30);
    let error = loop {
        assert!(Instant::now() < deadline, "the copy never read the record");
        match second.poll(Duration::from_millis(100)) {
            Ok(_) => {}
            Err(error) => break error,
        }
    };
    assert!(
        matches!(
            error,
            SinkError::Fenced {
                stored: Some(1),
                expected: None,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(stored_offsets(&mut client, table), ends);
    assert_eq!(table_docs(&mut client, table), latest(&records));
}
