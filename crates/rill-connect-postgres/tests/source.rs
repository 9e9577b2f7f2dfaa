//! The PostgreSQL source against a real server (`scripts/postgres.sh start` prints the
//! connection string; `scripts/test.sh` exports it as `RILL_POSTGRES_URL`) and the embedded
//! log. Each test owns its table, slot and publication, so the tests run side by side.

use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use rill_connect_postgres::{
    DEFAULT_OFFSETS_TOPIC, PostgresSource, SourceConfig, SourceError, camel_case_json,
};
use rill_log::{
    CleanupPolicy, ConsumedRecord, ConsumerConfig, Log, SeekTo, TopicConfig, TopicPartition,
};
use rill_log_embedded::{EmbeddedConfig, EmbeddedLog};
use rill_test_postgres::postgres_url;
use serde_json::{Value, json};

/// What these tests test, for the message that says they are skipped.
const WHAT: &str = "the PostgreSQL source";

/// A fresh `table` with the order system's customer columns and these rows; an old slot and
/// publication of the same name (from an earlier run) are dropped.
fn fresh_table(url: &str, table: &str, rows: &str) -> Client {
    let mut client = Client::connect(url, NoTls).expect("connect to PostgreSQL");
    let slot = format!("rill_{table}");
    client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name = $1",
            &[&slot],
        )
        .expect("drop an old slot");
    client
        .batch_execute(&format!(
            "DROP PUBLICATION IF EXISTS {slot};
             DROP TABLE IF EXISTS {table};
             CREATE TABLE {table} (id bigint PRIMARY KEY, first_name text NOT NULL,
                 last_name text NOT NULL, email text NOT NULL, address text NOT NULL,
                 level text);
             INSERT INTO {table} VALUES {rows};"
        ))
        .expect("create the table");
    client
}

fn log_with_topic(dir: &std::path::Path) -> Arc<dyn Log> {
    let log = EmbeddedLog::open(EmbeddedConfig::new(dir)).expect("open the log");
    log.admin()
        .create_topic(
            "customers",
            &TopicConfig::with_partitions(1).cleanup_policy(CleanupPolicy::Compact),
        )
        .expect("create customers");
    Arc::new(log)
}

/// Every committed record of partition 0 of `topic`.
fn read_all(log: &dyn Log, topic: &str) -> Vec<ConsumedRecord> {
    let consumer = log
        .consumer(&ConsumerConfig::default(), None)
        .expect("consumer");
    let partition = TopicPartition::new(topic, 0);
    consumer
        .assign(std::slice::from_ref(&partition))
        .expect("assign");
    consumer.seek(&partition, SeekTo::Beginning).expect("seek");
    let end = consumer.watermarks(&partition).expect("watermarks").high;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut records = Vec::new();
    while consumer.position(&partition).expect("position") < end {
        assert!(Instant::now() < deadline, "{topic} not read to its end");
        records.extend(consumer.poll(Duration::from_millis(100)).expect("poll"));
    }
    records
}

/// A record as (id, JSON value or None for a tombstone).
fn decoded(record: &ConsumedRecord) -> (i64, Option<Value>) {
    let key: [u8; 8] = record
        .key
        .as_deref()
        .expect("a key")
        .try_into()
        .expect("an eight-byte key");
    let value = record
        .value
        .as_ref()
        .map(|bytes| serde_json::from_slice(bytes).expect("JSON value"));
    (i64::from_be_bytes(key), value)
}

fn customer(id: i64, first: &str, level: Option<&str>) -> Value {
    let mut value = json!({
        "id": id,
        "firstName": first,
        "lastName": "Lovelace",
        "email": format!("{}@example.com", first.to_lowercase()),
        "address": "1 Analytical Way",
    });
    if let Some(level) = level {
        value["level"] = json!(level);
    }
    value
}

fn row(id: i64, first: &str, level: Option<&str>) -> String {
    let level = level.map_or("NULL".to_string(), |l| format!("'{l}'"));
    format!(
        "({id}, '{first}', 'Lovelace', '{}@example.com', '1 Analytical Way', {level})",
        first.to_lowercase()
    )
}

#[test]
fn the_copy_then_inserts_updates_and_deletes_arrive_in_commit_order() {
    let Some(url) = postgres_url(WHAT) else {
        return;
    };
    let table = "customers_in_order";
    let mut pg = fresh_table(
        &url,
        table,
        &format!("{}, {}", row(2, "Grace", None), row(1, "Ada", Some("gold"))),
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let log = log_with_topic(dir.path());
    let config = SourceConfig::new(url.clone(), table, "customers");
    let mut source =
        PostgresSource::open(log.clone(), config, camel_case_json("id")).expect("open");

    // The copy, in id order; a NULL level is left out so the reader's default applies.
    let copied: Vec<_> = read_all(log.as_ref(), "customers")
        .iter()
        .map(decoded)
        .collect();
    assert_eq!(
        copied,
        vec![
            (1, Some(customer(1, "Ada", Some("gold")))),
            (2, Some(customer(2, "Grace", None))),
        ]
    );
    assert_eq!(source.poll().expect("poll"), 0, "nothing changed yet");

    pg.batch_execute(&format!(
        "INSERT INTO {table} VALUES {}",
        row(3, "Edsger", None)
    ))
    .expect("insert");
    pg.batch_execute(&format!(
        "UPDATE {table} SET level = 'platinum' WHERE id = 2"
    ))
    .expect("update");
    pg.batch_execute(&format!(
        "BEGIN; DELETE FROM {table} WHERE id = 1; UPDATE {table} SET first_name = 'Edsger W' WHERE id = 3; COMMIT"
    ))
    .expect("delete and update in one transaction");
    assert_eq!(source.poll().expect("poll"), 4);
    assert_eq!(source.poll().expect("poll"), 0, "nothing is written twice");

    let changes: Vec<_> = read_all(log.as_ref(), "customers")
        .iter()
        .skip(2)
        .map(decoded)
        .collect();
    let mut renamed = customer(3, "Edsger", None);
    renamed["firstName"] = json!("Edsger W");
    assert_eq!(
        changes,
        vec![
            (3, Some(customer(3, "Edsger", None))),
            (2, Some(customer(2, "Grace", Some("platinum")))),
            (1, None),
            (3, Some(renamed)),
        ]
    );
    // The position went to the log with the records.
    let positions = read_all(log.as_ref(), DEFAULT_OFFSETS_TOPIC);
    let last = positions.last().expect("a stored position");
    assert_eq!(last.key.as_deref(), Some(&b"rill_customers_in_order"[..]));
    let stored: Value =
        serde_json::from_slice(last.value.as_deref().expect("a value")).expect("JSON position");
    assert_eq!(stored["lsn"], json!(source.position().to_string()));
}

#[test]
fn a_crash_between_the_log_commit_and_the_slot_advance_neither_repeats_nor_loses() {
    let Some(url) = postgres_url(WHAT) else {
        return;
    };
    let table = "customers_crash";
    let mut pg = fresh_table(&url, table, &row(1, "Ada", None));
    let dir = tempfile::tempdir().expect("temporary directory");
    let log = log_with_topic(dir.path());
    let config = SourceConfig::new(url.clone(), table, "customers");

    let mut source =
        PostgresSource::open(log.clone(), config.clone(), camel_case_json("id")).expect("open");
    source.on_log_commit(|_| Err(SourceError::Stopped));
    pg.batch_execute(&format!(
        "INSERT INTO {table} VALUES {}",
        row(2, "Grace", None)
    ))
    .expect("insert");
    assert!(matches!(source.poll(), Err(SourceError::Stopped)));
    drop(source);
    // The slot still holds the change the log already has.
    let pending: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, \
             'proto_version', '1', 'publication_names', $2)",
            &[&"rill_customers_crash", &"rill_customers_crash"],
        )
        .expect("peek")
        .get(0);
    assert!(pending > 0, "the slot was not advanced");

    pg.batch_execute(&format!(
        "INSERT INTO {table} VALUES {}",
        row(3, "Edsger", None)
    ))
    .expect("insert");
    let mut restarted =
        PostgresSource::open(log.clone(), config.clone(), camel_case_json("id")).expect("reopen");
    assert_eq!(restarted.poll().expect("poll"), 1, "only the new row");
    assert_eq!(restarted.poll().expect("poll"), 0);

    let ids: Vec<i64> = read_all(log.as_ref(), "customers")
        .iter()
        .map(|record| decoded(record).0)
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);

    // A third start finds the slot caught up and nothing to write.
    drop(restarted);
    let mut again =
        PostgresSource::open(log.clone(), config, camel_case_json("id")).expect("reopen");
    assert_eq!(again.poll().expect("poll"), 0);
    assert_eq!(read_all(log.as_ref(), "customers").len(), 3);
}

#[test]
fn changes_between_the_slot_and_the_copy_are_written_once_and_open_ones_are_not_lost() {
    let Some(url) = postgres_url(WHAT) else {
        return;
    };
    let table = "customers_copy_boundary";
    let mut pg = fresh_table(&url, table, &row(1, "Ada", None));
    let mut open_txn = Client::connect(&url, NoTls).expect("connect");
    let dir = tempfile::tempdir().expect("temporary directory");
    let log = log_with_topic(dir.path());
    let config = SourceConfig::new(url.clone(), table, "customers");

    let mut source =
        PostgresSource::open_with_copy_hook(log.clone(), config, camel_case_json("id"), || {
            // Committed after the slot's start and before the copy: in both.
            pg.batch_execute(&format!(
                "UPDATE {table} SET level = 'silver' WHERE id = 1;
                 INSERT INTO {table} VALUES {}",
                row(2, "Grace", None)
            ))?;
            // In progress while the copy is taken: in neither yet.
            open_txn.batch_execute(&format!(
                "BEGIN; INSERT INTO {table} VALUES {}",
                row(3, "Edsger", None)
            ))?;
            Ok(())
        })
        .expect("open");
    open_txn.batch_execute("COMMIT").expect("commit");

    assert_eq!(
        source.poll().expect("poll"),
        1,
        "only the transaction the copy did not see"
    );
    let records: Vec<_> = read_all(log.as_ref(), "customers")
        .iter()
        .map(decoded)
        .collect();
    assert_eq!(
        records,
        vec![
            (1, Some(customer(1, "Ada", Some("silver")))),
            (2, Some(customer(2, "Grace", None))),
            (3, Some(customer(3, "Edsger", None))),
        ]
    );
    pg.batch_execute(&format!("UPDATE {table} SET level = 'gold' WHERE id = 2"))
        .expect("update");
    assert_eq!(source.poll().expect("poll"), 1);
}

#[test]
fn a_slot_dropped_behind_a_stored_position_is_refused_rather_than_copied_again() {
    let Some(url) = postgres_url(WHAT) else {
        return;
    };
    let table = "customers_slot_lost";
    let mut pg = fresh_table(&url, table, &row(1, "Ada", None));
    let dir = tempfile::tempdir().expect("temporary directory");
    let log = log_with_topic(dir.path());
    let config = SourceConfig::new(url.clone(), table, "customers");
    drop(PostgresSource::open(log.clone(), config.clone(), camel_case_json("id")).expect("open"));
    pg.execute(
        "SELECT pg_drop_replication_slot('rill_customers_slot_lost')",
        &[],
    )
    .expect("drop the slot");

    let refused = PostgresSource::open(log.clone(), config, camel_case_json("id"));
    assert!(
        matches!(&refused, Err(SourceError::SlotLost { slot }) if slot == "rill_customers_slot_lost"),
        "{refused:?}"
    );
    assert_eq!(
        read_all(log.as_ref(), "customers").len(),
        1,
        "nothing copied twice"
    );
}
