//! The sink: a topic's latest value per key upserted into a table, exactly once (see
//! [`PostgresSink`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls};
use rill_log::{
    ConsumedRecord, Consumer, ConsumerConfig, IsolationLevel, Log, LogError, Offset, SeekTo,
    TopicPartition,
};
use serde_json::Value;

/// The table where sinks store their positions: `(sink, topic, partition)` to the offset of
/// the next record to read. Created when missing.
pub const OFFSETS_TABLE: &str = "rill_sink_offsets";

/// Why the sink failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// PostgreSQL refused or failed a statement, or the connection broke.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] postgres::Error),
    /// The log failed.
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// A name that is not a plain SQL identifier.
    #[error("{what} {name:?} is not a plain SQL identifier (letters, digits and _)")]
    BadName {
        /// Which name.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A record could not be made into a row.
    #[error("record {topic}/{partition}@{offset}: {reason}")]
    BadRecord {
        /// Its topic.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: Offset,
        /// Why.
        reason: String,
    },
    /// Another copy of this sink moved its stored offsets.
    #[error(
        "sink {sink}: partition {partition} of {topic} is stored at {stored:?}, not at {expected:?}: another copy of the sink is running"
    )]
    Fenced {
        /// The sink.
        sink: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Where this sink left it.
        expected: Option<Offset>,
        /// Where the table has it.
        stored: Option<Offset>,
    },
    /// The hook run after a database commit stopped the sink.
    #[error("stopped by the commit hook")]
    Stopped,
}

fn check_name(what: &'static str, name: &str) -> Result<(), SinkError> {
    if crate::is_plain_name(name) {
        Ok(())
    } else {
        Err(SinkError::BadName {
            what,
            name: name.to_string(),
        })
    }
}

/// A column's SQL type, and the JSON a value of it must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `text`: a JSON string.
    Text,
    /// `bigint`: a JSON integer.
    BigInt,
    /// `int`: a JSON integer in the 32-bit range.
    Int,
    /// `double precision`: a JSON number.
    Double,
    /// `boolean`: a JSON boolean.
    Boolean,
}

impl ColumnType {
    fn sql(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::BigInt => "bigint",
            ColumnType::Int => "int",
            ColumnType::Double => "double precision",
            ColumnType::Boolean => "boolean",
        }
    }

    /// The value in PostgreSQL's text form (cast to the column's type in the statement), or
    /// why it does not fit.
    fn text(self, value: &Value) -> Result<Option<String>, String> {
        let fits = match (self, value) {
            (_, Value::Null) => return Ok(None),
            (ColumnType::Text, Value::String(text)) => return Ok(Some(text.clone())),
            (ColumnType::BigInt, Value::Number(n)) => n.is_i64(),
            (ColumnType::Int, Value::Number(n)) => {
                n.as_i64().is_some_and(|n| i32::try_from(n).is_ok())
            }
            (ColumnType::Double, Value::Number(_)) | (ColumnType::Boolean, Value::Bool(_)) => true,
            _ => false,
        };
        if fits {
            Ok(Some(value.to_string()))
        } else {
            Err(format!("{value} is not a {}", self.sql()))
        }
    }
}

/// A column of the sink's table, filled from the JSON value's field of the same name in
/// camelCase (`customer_id` ← `customerId`); a missing field is NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column's name (snake_case).
    pub name: String,
    /// Its type.
    pub kind: ColumnType,
}

impl Column {
    /// A column.
    pub fn new(name: &str, kind: ColumnType) -> Self {
        Column {
            name: name.to_string(),
            kind,
        }
    }
}

/// What the sink reads and where it writes.
#[derive(Clone)]
pub struct SinkConfig {
    /// libpq connection string or `postgres://` URL. Never logged (it may hold a password).
    pub conninfo: String,
    /// The topic read: keys are UTF-8 text, values JSON objects (or none, a delete).
    pub topic: String,
    /// The table written, `name` or `schema.name`; created when missing with `id text
    /// PRIMARY KEY`, the [`columns`](Self::columns) and `doc jsonb` (the whole value).
    pub table: String,
    /// The columns besides `id` and `doc`.
    pub columns: Vec<Column>,
    /// The sink's name in [`OFFSETS_TABLE`].
    pub sink: String,
    /// At most this many records per database transaction.
    pub max_records: usize,
}

impl fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection string is left out: it may hold a password.
        f.debug_struct("SinkConfig")
            .field("topic", &self.topic)
            .field("table", &self.table)
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

impl SinkConfig {
    /// Upserts `topic` into `table` with these columns, as sink `rill_<table>`.
    pub fn new(
        conninfo: impl Into<String>,
        topic: &str,
        table: &str,
        columns: Vec<Column>,
    ) -> Self {
        SinkConfig {
            conninfo: conninfo.into(),
            topic: topic.to_string(),
            table: table.to_string(),
            columns,
            sink: format!("rill_{}", table.replace('.', "_")),
            max_records: 1000,
        }
    }

    /// The order system's `orders` topic as `table`: `customer_id bigint, state text,
    /// product text, quantity int, price double precision`.
    pub fn orders(conninfo: impl Into<String>, table: &str) -> Self {
        Self::new(
            conninfo,
            "orders",
            table,
            vec![
                Column::new("customer_id", ColumnType::BigInt),
                Column::new("state", ColumnType::Text),
                Column::new("product", ColumnType::Text),
                Column::new("quantity", ColumnType::Int),
                Column::new("price", ColumnType::Double),
            ],
        )
    }
}

type CommitHook = Box<dyn FnMut(&BTreeMap<i32, Offset>) -> Result<(), SinkError> + Send>;

/// The sink: a topic's latest value per key in a table.
///
/// A consumer (no group; every partition of the topic assigned by hand) reads a batch; one
/// database transaction upserts its rows (`INSERT ... ON CONFLICT (id) DO UPDATE`, the last
/// record of a key in the batch winning; a tombstone deletes the row) and writes the next
/// offset of each partition into [`OFFSETS_TABLE`]. On start the sink reads that table and
/// seeks each partition there (to the beginning when there is no row). The rows and the
/// offsets commit together, so a crash at any point neither repeats nor loses a record: after
/// the commit, the restart begins where the commit left off; before it, nothing was written.
///
/// The offsets are read `FOR UPDATE` in each transaction and compared with what this sink
/// last wrote: a second copy of the same sink that moved them meanwhile makes this one stop
/// ([`SinkError::Fenced`]) rather than write a batch twice.
///
/// ```no_run
/// use std::{sync::Arc, time::Duration};
/// use rill_connect_postgres::{PostgresSink, SinkConfig};
/// # fn demo(log: Arc<dyn rill_log::Log>) -> Result<(), rill_connect_postgres::SinkError> {
/// let config = SinkConfig::orders("postgres://rill:secret@127.0.0.1:5432/rill", "orders_view");
/// let mut sink = PostgresSink::open(log, config)?;
/// sink.run(Duration::from_millis(500), || false)
/// # }
/// ```
pub struct PostgresSink {
    config: SinkConfig,
    /// `"schema"."table"`.
    table: String,
    client: Client,
    consumer: Box<dyn Consumer>,
    /// Partition to the next offset to read, as stored (absent: nothing stored yet).
    positions: BTreeMap<i32, Offset>,
    upsert_sql: String,
    delete_sql: String,
    commit_hook: Option<CommitHook>,
}

impl fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSink")
            .field("config", &self.config)
            .field("positions", &self.positions)
            .finish_non_exhaustive()
    }
}

/// What a batch does to one key.
enum Change {
    Upsert(Vec<Option<String>>),
    Delete,
}

impl PostgresSink {
    /// Connects, creates the table and [`OFFSETS_TABLE`] when missing, reads the stored
    /// offsets and seeks every partition of the topic there.
    pub fn open(log: Arc<dyn Log>, config: SinkConfig) -> Result<Self, SinkError> {
        let (schema, name) = config
            .table
            .split_once('.')
            .unwrap_or(("public", config.table.as_str()));
        check_name("schema", schema)?;
        check_name("table", name)?;
        for column in &config.columns {
            check_name("column", &column.name)?;
            if column.name == "id" || column.name == "doc" {
                return Err(SinkError::BadName {
                    what: "column (id and doc are the sink's own)",
                    name: column.name.clone(),
                });
            }
        }
        let table = format!("\"{schema}\".\"{name}\"");
        let mut client = Client::connect(&config.conninfo, NoTls)?;
        let columns: String = config
            .columns
            .iter()
            .map(|c| format!("\"{}\" {}, ", c.name, c.kind.sql()))
            .collect();
        client.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (id text PRIMARY KEY, {columns}doc jsonb NOT NULL);
             CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (sink text NOT NULL, topic text NOT NULL,
                 partition int NOT NULL, next_offset bigint NOT NULL,
                 PRIMARY KEY (sink, topic, partition));"
        ))?;
        let (upsert_sql, delete_sql) = statements(&table, &config.columns);

        let partitions = log.admin().describe_topic(&config.topic)?.config.partitions;
        let consumer = log.consumer(
            &ConsumerConfig {
                client_id: Some(format!("rill-connect-postgres-{}", config.sink)),
                isolation: IsolationLevel::ReadCommitted,
                max_poll_records: Some(config.max_records.max(1)),
                ..ConsumerConfig::default()
            },
            None,
        )?;
        let assigned: Vec<TopicPartition> = (0..partitions)
            .map(|p| TopicPartition::new(config.topic.as_str(), p))
            .collect();
        consumer.assign(&assigned)?;
        let positions = stored_offsets(&mut client, &config, false)?;
        for partition in &assigned {
            let to = positions
                .get(&partition.partition)
                .map_or(SeekTo::Beginning, |&offset| SeekTo::Offset(offset));
            consumer.seek(partition, to)?;
        }
        Ok(PostgresSink {
            config,
            table,
            client,
            consumer,
            positions,
            upsert_sql,
            delete_sql,
            commit_hook: None,
        })
    }

    /// Sets a function run after each database commit with the offsets just stored; an error
    /// from it stops the sink there, as a crash would (for tests of recovery).
    pub fn on_commit(
        &mut self,
        hook: impl FnMut(&BTreeMap<i32, Offset>) -> Result<(), SinkError> + Send + 'static,
    ) {
        self.commit_hook = Some(Box::new(hook));
    }

    /// The stored offsets: partition to the next offset to read (absent: none stored).
    pub fn positions(&self) -> &BTreeMap<i32, Offset> {
        &self.positions
    }

    /// The table written, quoted.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Reads one batch (waiting up to `timeout` for it) and writes it in one database
    /// transaction; returns how many records it held (0 when none came).
    pub fn poll(&mut self, timeout: Duration) -> Result<usize, SinkError> {
        let records = self.consumer.poll(timeout)?;
        if records.is_empty() {
            return Ok(0);
        }
        // The last record of a key wins; a key lives in one partition, so the order between
        // keys does not matter.
        let mut changes: HashMap<String, Change> = HashMap::new();
        let mut next = self.positions.clone();
        for record in &records {
            let (id, change) = self.change(record)?;
            changes.insert(id, change);
            next.insert(record.partition, record.offset + 1);
        }
        let mut txn = self.client.transaction()?;
        // Locks our offsets and checks that no other copy of the sink moved them.
        let stored = stored_offsets(&mut txn, &self.config, true)?;
        for &partition in next.keys() {
            let (expected, found) = (
                self.positions.get(&partition).copied(),
                stored.get(&partition).copied(),
            );
            if expected != found {
                return Err(SinkError::Fenced {
                    sink: self.config.sink.clone(),
                    topic: self.config.topic.clone(),
                    partition,
                    expected,
                    stored: found,
                });
            }
        }
        for (id, change) in &changes {
            match change {
                Change::Upsert(values) => {
                    let mut params: Vec<&(dyn ToSql + Sync)> = vec![id];
                    params.extend(values.iter().map(|v| v as &(dyn ToSql + Sync)));
                    txn.execute(&self.upsert_sql, &params)?;
                }
                Change::Delete => {
                    txn.execute(&self.delete_sql, &[id])?;
                }
            }
        }
        for (partition, offset) in &next {
            if self.positions.get(partition) != Some(offset) {
                txn.execute(
                    &format!(
                        "INSERT INTO {OFFSETS_TABLE} (sink, topic, partition, next_offset) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (sink, topic, partition) \
                         DO UPDATE SET next_offset = EXCLUDED.next_offset"
                    ),
                    &[&self.config.sink, &self.config.topic, partition, offset],
                )?;
            }
        }
        txn.commit()?;
        self.positions = next;
        if let Some(hook) = self.commit_hook.as_mut() {
            hook(&self.positions)?;
        }
        Ok(records.len())
    }

    /// Runs [`poll`](Self::poll) until `stop` returns true, each poll waiting up to `idle`.
    pub fn run(&mut self, idle: Duration, mut stop: impl FnMut() -> bool) -> Result<(), SinkError> {
        while !stop() {
            self.poll(idle)?;
        }
        Ok(())
    }

    /// A record's key and what it does: its columns' text values then the whole JSON, or a
    /// delete.
    fn change(&self, record: &ConsumedRecord) -> Result<(String, Change), SinkError> {
        let bad = |reason: String| SinkError::BadRecord {
            topic: record.topic.to_string(),
            partition: record.partition,
            offset: record.offset,
            reason,
        };
        let key = record.key.as_deref().ok_or_else(|| bad("no key".into()))?;
        let id = std::str::from_utf8(key)
            .map_err(|_| bad("the key is not UTF-8 text".into()))?
            .to_string();
        let Some(bytes) = &record.value else {
            return Ok((id, Change::Delete));
        };
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("value is not JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| bad("value is not a JSON object".into()))?;
        let mut values = Vec::with_capacity(self.config.columns.len() + 1);
        for column in &self.config.columns {
            let field = crate::camel_case(&column.name);
            let text = column
                .kind
                .text(object.get(&field).unwrap_or(&Value::Null))
                .map_err(|reason| bad(format!("{field}: {reason}")))?;
            values.push(text);
        }
        values.push(Some(value.to_string()));
        Ok((id, Change::Upsert(values)))
    }
}

/// The upsert (`$1` the id, then the columns as text, then the JSON) and the delete.
fn statements(table: &str, columns: &[Column]) -> (String, String) {
    let mut names = vec!["id".to_string()];
    let mut values = vec!["$1".to_string()];
    for (i, column) in columns.iter().enumerate() {
        names.push(format!("\"{}\"", column.name));
        values.push(format!("${}::text::{}", i + 2, column.kind.sql()));
    }
    names.push("doc".to_string());
    values.push(format!("${}::text::jsonb", columns.len() + 2));
    let updates: Vec<String> = names[1..]
        .iter()
        .map(|name| format!("{name} = EXCLUDED.{name}"))
        .collect();
    let upsert = format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {}",
        names.join(", "),
        values.join(", "),
        updates.join(", ")
    );
    (upsert, format!("DELETE FROM {table} WHERE id = $1"))
}

/// The stored offsets of this sink's topic.
fn stored_offsets(
    client: &mut impl GenericClient,
    config: &SinkConfig,
    lock: bool,
) -> Result<BTreeMap<i32, Offset>, SinkError> {
    let rows = client.query(
        &format!(
            "SELECT partition, next_offset FROM {OFFSETS_TABLE} WHERE sink = $1 AND topic = $2{}",
            if lock { " FOR UPDATE" } else { "" }
        ),
        &[&config.sink, &config.topic],
    )?;
    let mut offsets = BTreeMap::new();
    for row in rows {
        offsets.insert(row.try_get::<_, i32>(0)?, row.try_get::<_, i64>(1)?);
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_must_fit_their_columns() {
        assert_eq!(ColumnType::Int.text(&json!(3)), Ok(Some("3".into())));
        assert!(ColumnType::Int.text(&json!(1_i64 << 40)).is_err());
        assert_eq!(ColumnType::Text.text(&json!("a'b")), Ok(Some("a'b".into())));
        assert!(ColumnType::Text.text(&json!(1)).is_err());
        assert_eq!(ColumnType::Double.text(&json!(2.5)), Ok(Some("2.5".into())));
        assert_eq!(ColumnType::BigInt.text(&Value::Null), Ok(None));
        assert!(ColumnType::BigInt.text(&json!(1.5)).is_err());
    }

    #[test]
    fn the_upsert_names_every_column() {
        let (upsert, delete) = statements(
            "\"public\".\"t\"",
            &[Column::new("customer_id", ColumnType::BigInt)],
        );
        assert_eq!(
            upsert,
            "INSERT INTO \"public\".\"t\" (id, \"customer_id\", doc) VALUES ($1, $2::text::bigint, \
             $3::text::jsonb) ON CONFLICT (id) DO UPDATE SET \"customer_id\" = \
             EXCLUDED.\"customer_id\", doc = EXCLUDED.doc"
        );
        assert_eq!(delete, "DELETE FROM \"public\".\"t\" WHERE id = $1");
    }
}
