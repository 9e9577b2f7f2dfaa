//! A PostgreSQL source: a table copied into a topic, then kept up to date from the table's
//! changes, exactly once; and a PostgreSQL sink ([`PostgresSink`]): a topic's latest value
//! per key upserted into a table, exactly once (the rows and the offsets commit in one
//! database transaction; see [`PostgresSink`]).
//!
//! **Owns:** reading a table with a bigint primary key out of PostgreSQL (an initial snapshot,
//! then inserts, updates and deletes from a logical replication slot), turning its rows into
//! records (key: the id in rill's `i64` key encoding, eight bytes big-endian; value: JSON made
//! by a [`RowToJson`] function; a delete: a tombstone, a record with no value), and storing
//! its position in the log; and the sink: JSON records (UTF-8 keys) read from every partition
//! of a topic, upserted or deleted by id, their offsets stored in [`OFFSETS_TABLE`].
//! **Depends on:** `rill-log` (any backend) and the `postgres`
//! client; nothing above the log, so the order system passes its own row shape in.
//!
//! # Why logical replication
//!
//! Kafka Connect's JDBC source polls an incrementing or timestamp column: it cannot see
//! deletes, and it misses or repeats rows whose timestamps collide. A logical replication slot
//! sees every committed insert, update and delete, in commit order, and keeps the WAL until
//! the slot is advanced. The source reads it with plain SQL,
//! `pg_logical_slot_peek_binary_changes(slot, NULL, n, 'proto_version', '1',
//! 'publication_names', pub)`, with the built-in `pgoutput` plugin (no server extension to
//! install), and parses the pgoutput messages it needs (Begin, Relation, Insert, Update,
//! Delete, Commit). The role needs the `REPLICATION` attribute and the server
//! `wal_level=logical`.
//!
//! # Exactly once
//!
//! Every batch of changes is written to the log in one log transaction together with the
//! source's position: a record in the offsets topic ([`DEFAULT_OFFSETS_TOPIC`]) keyed by the
//! slot's name whose value holds the end LSN of the last transaction written. Only after the
//! log commit is the slot advanced (`pg_replication_slot_advance`). A crash between the two
//! leaves the slot behind the log: on restart the source reads its position from the offsets
//! topic, skips every transaction that ends at or before it, and advances the slot. A crash
//! before the log commit writes nothing (the log transaction aborts) and the slot still holds
//! the changes. So a change is neither lost nor repeated. The transactional producer's id is
//! derived from the slot, so a second copy of the source fences the first.
//!
//! # The initial snapshot
//!
//! The slot is created first (`pg_create_logical_replication_slot`), so that nothing committed
//! after its consistent point is lost; then the table is copied in a `REPEATABLE READ`
//! transaction, whose snapshot is therefore not older than the slot. Transactions that commit
//! between the slot's consistent point and the copy's snapshot are both in the copy and in the
//! slot: replaying them would write their rows twice and, worse, move a row back through
//! older values before it reaches its latest. The source avoids that exactly: the copy records
//! its snapshot (`pg_current_snapshot()`: xmin, xmax, the transactions in progress) and the
//! WAL insert position after it was taken, and stores both with the copied rows. A decoded
//! transaction whose id is visible in that snapshot is skipped (its effects are in the copy);
//! any transaction committed after that WAL position cannot be in the copy, so once the
//! source's position passes it the snapshot is dropped from the stored position. The copy is
//! written in a single log transaction, so it suits tables of the size of a customer table,
//! not billions of rows.
//!
//! If the source stops after creating the slot but before the copy is committed to the log,
//! nothing was stored: the next start drops the slot and begins again. If the slot is gone
//! while a position is stored (dropped by hand), changes may have been lost and the source
//! refuses to start ([`SourceError::SlotLost`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use rill_connect_postgres::{PostgresSource, SourceConfig, camel_case_json};
//! # fn demo(log: Arc<dyn rill_log::Log>) -> Result<(), rill_connect_postgres::SourceError> {
//! let config = SourceConfig::new("postgres://rill:secret@127.0.0.1:5432/rill", "customers", "customers");
//! let mut source = PostgresSource::open(log, config, camel_case_json("id"))?;
//! loop {
//!     if source.poll()? == 0 {
//!         std::thread::sleep(std::time::Duration::from_millis(500));
//!     }
//! }
//! # }
//! ```

mod pgoutput;
mod sink;

pub use sink::{Column, ColumnType, OFFSETS_TABLE, PostgresSink, SinkConfig, SinkError};

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use postgres::{Client, NoTls, SimpleQueryMessage};
use rill_log::{
    CleanupPolicy, ConsumerConfig, IsolationLevel, Log, LogError, ProducerConfig, ProducerRecord,
    SeekTo, TopicConfig, TopicPartition, TransactionalProducer,
};
use serde_json::{Map, Value, json};

use crate::pgoutput::{Datum, Message};

/// The topic where sources store their positions, keyed by slot name (compacted).
pub const DEFAULT_OFFSETS_TOPIC: &str = "_rill-connect-offsets";

/// Why the source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// PostgreSQL refused or failed a statement, or the connection broke.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] postgres::Error),
    /// The log failed.
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// A pgoutput message could not be parsed.
    #[error("malformed pgoutput message: bad {what}")]
    Protocol {
        /// The part that was bad.
        what: String,
    },
    /// A row's key column is missing, null, or not a bigint.
    #[error("row of {table}: key column {column} is {found}, not a bigint")]
    BadKey {
        /// The table.
        table: String,
        /// The key column.
        column: String,
        /// What it held instead.
        found: String,
    },
    /// The row-to-JSON function rejected a row.
    #[error("row of {table} with id {id}: {reason}")]
    BadRow {
        /// The table.
        table: String,
        /// The row's id.
        id: i64,
        /// Why.
        reason: String,
    },
    /// An update left a TOASTed column out and the old row was not sent with it.
    #[error(
        "update of {table}: column {column} is an unchanged TOAST value; set REPLICA IDENTITY FULL on the table"
    )]
    UnchangedToast {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// A name that is not a plain SQL identifier (letters, digits, `_`; a table may be
    /// `schema.table`).
    #[error("{what} {name:?} is not a plain SQL identifier (letters, digits and _)")]
    BadName {
        /// Which name.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A position is stored in the log but the replication slot is gone.
    #[error(
        "replication slot {slot} is gone although a position is stored for it: changes may be lost; delete the slot's record in the offsets topic to copy the table again"
    )]
    SlotLost {
        /// The slot.
        slot: String,
    },
    /// The stored position could not be read.
    #[error("stored position of slot {slot}: {reason}")]
    BadPosition {
        /// The slot.
        slot: String,
        /// Why.
        reason: String,
    },
    /// The hook run between the log commit and the slot advance stopped the source.
    #[error("stopped by the commit hook")]
    Stopped,
}

/// A PostgreSQL WAL position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (high, low) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not an LSN"))?;
        let part =
            |p: &str| u64::from_str_radix(p, 16).map_err(|_| format!("{text:?} is not an LSN"));
        Ok(Lsn((part(high)? << 32) | part(low)?))
    }
}

/// A row: its columns' names and values in PostgreSQL's text format (`None` for NULL), in
/// table order. The same shape comes from the copy and from the replication stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    columns: Vec<(String, Option<String>)>,
}

impl Row {
    /// A row from its columns.
    pub fn new(columns: Vec<(String, Option<String>)>) -> Self {
        Row { columns }
    }

    /// The value of a column; `None` when it is NULL or there is no such column.
    pub fn get(&self, column: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(name, _)| name == column)
            .and_then(|(_, value)| value.as_deref())
    }

    /// All columns, in table order.
    pub fn columns(&self) -> &[(String, Option<String>)] {
        &self.columns
    }
}

/// Turns a row into the JSON value of its record.
pub type RowToJson = Box<dyn Fn(&Row) -> Result<Value, String> + Send>;

/// The JSON a serde struct with `rename_all = "camelCase"` reads: every non-null column under
/// its name in camelCase (`first_name` → `firstName`), the key column as a number, the others
/// as strings. A NULL column is left out, so that the reader's default applies (the order
/// system's `Customer` defaults a missing level to bronze).
///
/// ```
/// use rill_connect_postgres::{Row, camel_case_json};
/// let row = Row::new(vec![
///     ("id".into(), Some("7".into())),
///     ("first_name".into(), Some("Ada".into())),
///     ("level".into(), None),
/// ]);
/// let json = camel_case_json("id")(&row).unwrap();
/// assert_eq!(json, serde_json::json!({"id": 7, "firstName": "Ada"}));
/// ```
pub fn camel_case_json(key_column: &str) -> RowToJson {
    let key_column = key_column.to_string();
    Box::new(move |row| {
        let mut object = Map::new();
        for (name, value) in row.columns() {
            let Some(value) = value else { continue };
            let value = if *name == key_column {
                let id: i64 = value
                    .parse()
                    .map_err(|_| format!("{name} {value:?} is not a bigint"))?;
                Value::from(id)
            } else {
                Value::from(value.clone())
            };
            object.insert(camel_case(name), value);
        }
        Ok(Value::Object(object))
    })
}

fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A connection string with its password replaced by `***`, for logs and settings output: a
/// URL's `user:password@` and `password=` parameter, or a key/value string's `password=`.
///
/// ```
/// use rill_connect_postgres::redact;
/// assert_eq!(redact("postgres://rill:s3cret@db:5432/rill"), "postgres://rill:***@db:5432/rill");
/// assert_eq!(redact("host=db password='a b' user=rill"), "host=db password=*** user=rill");
/// ```
pub fn redact(conninfo: &str) -> String {
    let mut out = conninfo.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..].find(['/', '?']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..authority_end].rfind('@')
            && let Some(colon) = out[rest..rest + at].find(':')
        {
            out.replace_range(rest + colon + 1..rest + at, "***");
        }
    }
    // `password=value` anywhere: a URL parameter or a key/value pair (value maybe quoted).
    let mut result = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find("password") {
        let (before, after) = rest.split_at(i + "password".len());
        result.push_str(before);
        let trimmed = after.trim_start();
        let Some(value) = trimmed.strip_prefix('=') else {
            rest = after;
            continue;
        };
        result.push_str(&after[..after.len() - trimmed.len()]);
        result.push('=');
        let value_start = value.len() - value.trim_start().len();
        result.push_str(&value[..value_start]);
        let value = &value[value_start..];
        let end = if let Some(quoted) = value.strip_prefix('\'') {
            // Up to the closing quote; \' and \\ are escapes.
            let mut chars = quoted.char_indices();
            let mut end = value.len();
            while let Some((j, c)) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '\'' => {
                        end = j + 2;
                        break;
                    }
                    _ => {}
                }
            }
            end
        } else {
            value
                .find(|c: char| c.is_whitespace() || c == '&')
                .unwrap_or(value.len())
        };
        result.push_str("***");
        rest = &value[end..];
    }
    result.push_str(rest);
    result
}

/// What the source reads and where it writes.
#[derive(Clone)]
pub struct SourceConfig {
    /// libpq connection string or `postgres://` URL. Never logged (it may hold a password).
    pub conninfo: String,
    /// The table, `name` or `schema.name` (default schema `public`).
    pub table: String,
    /// Its bigint primary key column.
    pub key_column: String,
    /// The topic its rows go to (must exist).
    pub topic: String,
    /// The logical replication slot (created when missing).
    pub slot: String,
    /// The publication of the table (created when missing).
    pub publication: String,
    /// Where the position is stored (created compacted when missing).
    pub offsets_topic: String,
    /// At most about this many changes per log transaction (a transaction is never split).
    pub max_changes: i32,
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection string is left out: it may hold a password.
        f.debug_struct("SourceConfig")
            .field("table", &self.table)
            .field("topic", &self.topic)
            .field("slot", &self.slot)
            .field("publication", &self.publication)
            .field("offsets_topic", &self.offsets_topic)
            .finish_non_exhaustive()
    }
}

impl SourceConfig {
    /// Reads `table` (key column `id`) into `topic`, with a slot and publication named
    /// `rill_<table>`.
    pub fn new(conninfo: impl Into<String>, table: &str, topic: &str) -> Self {
        let base = format!("rill_{}", table.replace('.', "_"));
        SourceConfig {
            conninfo: conninfo.into(),
            table: table.to_string(),
            key_column: "id".to_string(),
            topic: topic.to_string(),
            slot: base.clone(),
            publication: base,
            offsets_topic: DEFAULT_OFFSETS_TOPIC.to_string(),
            max_changes: 10_000,
        }
    }

    fn schema_and_table(&self) -> Result<(String, String), SourceError> {
        let (schema, table) = self
            .table
            .split_once('.')
            .unwrap_or(("public", self.table.as_str()));
        check_name("schema", schema)?;
        check_name("table", table)?;
        Ok((schema.to_string(), table.to_string()))
    }
}

/// Whether `name` is a plain SQL identifier, safe to quote into a statement.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

fn check_name(what: &'static str, name: &str) -> Result<(), SourceError> {
    if is_plain_name(name) {
        Ok(())
    } else {
        Err(SourceError::BadName {
            what,
            name: name.to_string(),
        })
    }
}

/// The copy's snapshot: transactions visible in it are already in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CopySnapshot {
    xmin: u64,
    xmax: u64,
    in_progress: Vec<u64>,
    /// The WAL insert position just after the snapshot was taken: a transaction ending after
    /// it committed after the snapshot.
    until: Lsn,
}

impl CopySnapshot {
    /// Parses `pg_current_snapshot()`'s text, `xmin:xmax:xip,xip`.
    fn parse(text: &str, until: Lsn) -> Option<Self> {
        let mut parts = text.split(':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let in_progress = match parts.next()? {
            "" => Vec::new(),
            list => list
                .split(',')
                .map(|x| x.parse().ok())
                .collect::<Option<_>>()?,
        };
        Some(CopySnapshot {
            xmin,
            xmax,
            in_progress,
            until,
        })
    }

    fn text(&self) -> String {
        let list: Vec<String> = self.in_progress.iter().map(u64::to_string).collect();
        format!("{}:{}:{}", self.xmin, self.xmax, list.join(","))
    }

    /// Whether the committed transaction `xid` (32 bits, as pgoutput sends it) is visible in
    /// the snapshot.
    fn sees(&self, xid: u32) -> bool {
        // Widen the 32-bit id to the 64-bit one nearest the snapshot's xmax.
        let epoch = self.xmax & !0xFFFF_FFFF;
        let mut full = epoch | u64::from(xid);
        if full > self.xmax.saturating_add(1 << 31) {
            full = full.saturating_sub(1 << 32);
        } else if full.saturating_add(1 << 31) < self.xmax {
            full += 1 << 32;
        }
        full < self.xmax && (full < self.xmin || !self.in_progress.contains(&full))
    }
}

/// The stored position of a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    /// Every transaction ending at or before it is in the log.
    lsn: Lsn,
    /// The copy's snapshot, while transactions visible in it may still be decoded.
    snapshot: Option<CopySnapshot>,
}

impl Position {
    fn to_json(&self) -> Value {
        let mut value = json!({ "lsn": self.lsn.to_string() });
        if let Some(snapshot) = &self.snapshot {
            value["snapshot"] = json!(snapshot.text());
            value["snapshotUntil"] = json!(snapshot.until.to_string());
        }
        value
    }

    fn from_json(value: &Value) -> Option<Self> {
        let lsn = value.get("lsn")?.as_str()?.parse().ok()?;
        let snapshot = match value.get("snapshot") {
            None => None,
            Some(text) => {
                let until = value.get("snapshotUntil")?.as_str()?.parse().ok()?;
                Some(CopySnapshot::parse(text.as_str()?, until)?)
            }
        };
        Some(Position { lsn, snapshot })
    }

    /// Whether a decoded transaction is already in the log.
    fn covers(&self, xid: u32, end: Lsn) -> bool {
        end <= self.lsn
            || self
                .snapshot
                .as_ref()
                .is_some_and(|snapshot| snapshot.sees(xid))
    }

    /// The position after transactions up to `end` were written.
    fn advanced_to(&self, end: Lsn) -> Position {
        let lsn = end.max(self.lsn);
        Position {
            lsn,
            snapshot: self
                .snapshot
                .clone()
                .filter(|snapshot| lsn < snapshot.until),
        }
    }
}

type CommitHook = Box<dyn FnMut(Lsn) -> Result<(), SourceError> + Send>;

/// The source: copies the table once, then writes its changes. See the crate doc.
pub struct PostgresSource {
    config: SourceConfig,
    schema: String,
    table: String,
    client: Client,
    producer: Box<dyn TransactionalProducer>,
    row_to_json: RowToJson,
    position: Position,
    /// Relation ids of the decoded stream to their column names (only our table's).
    relations: HashMap<u32, Vec<String>>,
    commit_hook: Option<CommitHook>,
}

impl fmt::Debug for PostgresSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSource")
            .field("config", &self.config)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

/// One decoded transaction's records.
struct Decoded {
    xid: u32,
    end: Lsn,
    records: Vec<ProducerRecord>,
}

impl PostgresSource {
    /// Connects, reads the stored position and, when there is none, creates the publication
    /// and slot and copies the table into the topic (see the crate doc).
    pub fn open(
        log: Arc<dyn Log>,
        config: SourceConfig,
        row_to_json: RowToJson,
    ) -> Result<Self, SourceError> {
        Self::open_with_copy_hook(log, config, row_to_json, || Ok(()))
    }

    /// [`open`](Self::open), running `before_copy` after the slot is created and before the
    /// table is copied (only when there is a copy to make): for tests of changes committed
    /// between the two.
    pub fn open_with_copy_hook(
        log: Arc<dyn Log>,
        config: SourceConfig,
        row_to_json: RowToJson,
        before_copy: impl FnOnce() -> Result<(), SourceError>,
    ) -> Result<Self, SourceError> {
        let (schema, table) = config.schema_and_table()?;
        check_name("slot", &config.slot)?;
        check_name("publication", &config.publication)?;
        match log.admin().create_topic(
            &config.offsets_topic,
            &TopicConfig::with_partitions(1).cleanup_policy(CleanupPolicy::Compact),
        ) {
            Ok(()) | Err(LogError::TopicExists { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        // Created before the position is read: it fences an older copy of this source, whose
        // open transaction is aborted rather than committed behind our back.
        let producer = log.transactional_producer(
            &ProducerConfig {
                client_id: Some(format!("rill-connect-postgres-{}", config.slot)),
                ..ProducerConfig::default()
            },
            &format!("rill-connect-postgres-{}", config.slot),
        )?;
        let stored = read_position(log.as_ref(), &config)?;
        let client = Client::connect(&config.conninfo, NoTls)?;
        let mut source = PostgresSource {
            config,
            schema,
            table,
            client,
            producer,
            row_to_json,
            position: Position {
                lsn: Lsn(0),
                snapshot: None,
            },
            relations: HashMap::new(),
            commit_hook: None,
        };
        let slot = source.slot_position()?;
        match (stored, slot) {
            (Some(position), Some(confirmed)) => {
                source.position = position;
                // A crash between the log commit and the slot advance: catch the slot up.
                if confirmed < source.position.lsn {
                    source.advance_slot(source.position.lsn)?;
                }
            }
            (Some(_), None) => {
                return Err(SourceError::SlotLost {
                    slot: source.config.slot.clone(),
                });
            }
            (None, slot) => {
                if slot.is_some() {
                    // Created by a start that stopped before its copy reached the log.
                    source.client.execute(
                        "SELECT pg_drop_replication_slot($1)",
                        &[&source.config.slot],
                    )?;
                }
                source.copy_table(before_copy)?;
            }
        }
        Ok(source)
    }

    /// Sets a function run after each log commit and before the slot is advanced; an error
    /// from it stops the source there, as a crash would (for tests of recovery).
    pub fn on_log_commit(
        &mut self,
        hook: impl FnMut(Lsn) -> Result<(), SourceError> + Send + 'static,
    ) {
        self.commit_hook = Some(Box::new(hook));
    }

    /// The stored position: every change ending at or before it is in the log.
    pub fn position(&self) -> Lsn {
        self.position.lsn
    }

    /// Reads the changes committed since the last call and writes them; returns how many
    /// records were written (0 when there was nothing new).
    pub fn poll(&mut self) -> Result<usize, SourceError> {
        let rows = self.client.query(
            "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, \
             'proto_version', '1', 'publication_names', $3)",
            &[
                &self.config.slot,
                &self.config.max_changes,
                &self.config.publication,
            ],
        )?;
        let mut transactions = Vec::new();
        let mut current: Option<Decoded> = None;
        for row in rows {
            let data: Vec<u8> = row.try_get(0)?;
            match pgoutput::parse(&data)? {
                Message::Begin { xid } => {
                    current = Some(Decoded {
                        xid,
                        end: Lsn(0),
                        records: Vec::new(),
                    })
                }
                Message::Commit { end_lsn } => {
                    if let Some(mut done) = current.take() {
                        done.end = end_lsn;
                        transactions.push(done);
                    }
                }
                Message::Relation {
                    id,
                    namespace,
                    name,
                    columns,
                } => {
                    if namespace == self.schema && name == self.table {
                        self.relations.insert(id, columns);
                    }
                }
                Message::Insert { relation, new } => {
                    if let (Some(txn), Some(columns)) =
                        (current.as_mut(), self.relations.get(&relation))
                    {
                        let row = self.row(columns, &new, None)?;
                        txn.records.push(self.upsert(&row)?);
                    }
                }
                Message::Update { relation, old, new } => {
                    if let (Some(txn), Some(columns)) =
                        (current.as_mut(), self.relations.get(&relation))
                    {
                        let old_row = match &old {
                            Some(old) => Some(self.row(columns, old, None)?),
                            None => None,
                        };
                        let row = self.row(columns, &new, old.as_deref())?;
                        // A changed id moves the row: the old key is deleted.
                        if let Some(old_row) = old_row
                            && let Some(old_id) = old_row.get(&self.config.key_column)
                            && Some(old_id) != row.get(&self.config.key_column)
                        {
                            txn.records.push(self.tombstone(&old_row)?);
                        }
                        txn.records.push(self.upsert(&row)?);
                    }
                }
                Message::Delete { relation, old } => {
                    if let (Some(txn), Some(columns)) =
                        (current.as_mut(), self.relations.get(&relation))
                    {
                        let row = self.row(columns, &old, None)?;
                        txn.records.push(self.tombstone(&row)?);
                    }
                }
                Message::Other => {}
            }
        }
        let Some(last_end) = transactions.last().map(|txn| txn.end) else {
            return Ok(0);
        };
        let records: Vec<ProducerRecord> = transactions
            .into_iter()
            .filter(|txn| !self.position.covers(txn.xid, txn.end))
            .flat_map(|txn| txn.records)
            .collect();
        let written = records.len();
        if written > 0 {
            let position = self.position.advanced_to(last_end);
            self.write(records, &position)?;
            self.position = position;
            if let Some(hook) = self.commit_hook.as_mut() {
                hook(last_end)?;
            }
        }
        // Everything up to last_end is in the log now (written, or skipped as already there).
        self.advance_slot(last_end)?;
        Ok(written)
    }

    /// Runs [`poll`](Self::poll) until `stop` returns true, sleeping `idle` after a poll that
    /// found nothing.
    pub fn run(
        &mut self,
        idle: Duration,
        mut stop: impl FnMut() -> bool,
    ) -> Result<(), SourceError> {
        while !stop() {
            if self.poll()? == 0 {
                std::thread::sleep(idle);
            }
        }
        Ok(())
    }

    fn slot_position(&mut self) -> Result<Option<Lsn>, SourceError> {
        let rows = self.client.query(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&self.config.slot],
        )?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let text: Option<String> = row.try_get(0)?;
        Ok(Some(text.and_then(|t| t.parse().ok()).unwrap_or(Lsn(0))))
    }

    fn advance_slot(&mut self, lsn: Lsn) -> Result<(), SourceError> {
        self.client.execute(
            "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
            &[&self.config.slot, &lsn.to_string()],
        )?;
        Ok(())
    }

    fn copy_table(
        &mut self,
        before_copy: impl FnOnce() -> Result<(), SourceError>,
    ) -> Result<(), SourceError> {
        let (schema, table, publication) = (
            self.schema.clone(),
            self.table.clone(),
            self.config.publication.clone(),
        );
        let exists = !self
            .client
            .query(
                "SELECT 1 FROM pg_publication WHERE pubname = $1",
                &[&publication],
            )?
            .is_empty();
        if !exists {
            // Truncates are not published: a truncate is not a row change the topic can show.
            self.client.batch_execute(&format!(
                "CREATE PUBLICATION \"{publication}\" FOR TABLE \"{schema}\".\"{table}\" \
                 WITH (publish = 'insert, update, delete')"
            ))?;
        }
        let row = self.client.query_one(
            "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&self.config.slot],
        )?;
        let consistent: String = row.try_get(0)?;
        before_copy()?;
        let consistent: Lsn = consistent
            .parse()
            .map_err(|reason| SourceError::BadPosition {
                slot: self.config.slot.clone(),
                reason,
            })?;
        // The snapshot is taken by the first statement, and pg_current_wal_insert_lsn runs
        // after it: every transaction the snapshot sees ends before that position.
        let messages = self.client.simple_query(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             SELECT pg_current_snapshot()::text, pg_current_wal_insert_lsn()::text; \
             SELECT * FROM \"{schema}\".\"{table}\" ORDER BY \"{key}\"; \
             COMMIT",
            key = self.config.key_column
        ))?;
        let mut rows = messages.iter().filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        });
        let bad = |reason: &str| SourceError::BadPosition {
            slot: self.config.slot.clone(),
            reason: reason.to_string(),
        };
        let first = rows.next().ok_or_else(|| bad("no snapshot row"))?;
        let until: Lsn = first
            .get(1)
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| bad("no WAL position"))?;
        let snapshot = first
            .get(0)
            .and_then(|text| CopySnapshot::parse(text, until))
            .ok_or_else(|| bad("unreadable snapshot"))?;
        let mut records = Vec::new();
        for row in rows {
            let row = Row::new(
                row.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, column)| (column.name().to_string(), row.get(i).map(str::to_string)))
                    .collect(),
            );
            records.push(self.upsert(&row)?);
        }
        let position = Position {
            lsn: consistent,
            snapshot: Some(snapshot),
        }
        .advanced_to(consistent);
        tracing::info!(
            table = %self.config.table,
            topic = %self.config.topic,
            rows = records.len(),
            slot = %self.config.slot,
            "copied the table"
        );
        self.write(records, &position)?;
        self.position = position;
        Ok(())
    }

    /// Writes records and the position in one log transaction.
    fn write(&self, records: Vec<ProducerRecord>, position: &Position) -> Result<(), SourceError> {
        self.producer.begin()?;
        let sent = (|| {
            for record in records {
                self.producer.send_detached(record)?;
            }
            self.producer.send_detached(
                ProducerRecord::new(self.config.offsets_topic.clone())
                    .key(self.config.slot.clone().into_bytes())
                    .value(position.to_json().to_string().into_bytes()),
            )?;
            self.producer.commit()
        })();
        if let Err(error) = sent {
            let _ = self.producer.abort();
            return Err(error.into());
        }
        Ok(())
    }

    /// The row of a decoded tuple; an unchanged TOAST value is taken from the old tuple.
    fn row(
        &self,
        columns: &[String],
        tuple: &[Datum],
        old: Option<&[Datum]>,
    ) -> Result<Row, SourceError> {
        let values = columns
            .iter()
            .zip(tuple)
            .enumerate()
            .map(|(i, (name, datum))| {
                let value = match datum {
                    Datum::Null => None,
                    Datum::Text(text) => Some(text.clone()),
                    Datum::UnchangedToast => match old.and_then(|old| old.get(i)) {
                        Some(Datum::Text(text)) => Some(text.clone()),
                        Some(Datum::Null) => None,
                        _ => {
                            return Err(SourceError::UnchangedToast {
                                table: self.config.table.clone(),
                                column: name.clone(),
                            });
                        }
                    },
                };
                Ok((name.clone(), value))
            });
        Ok(Row::new(values.collect::<Result<_, _>>()?))
    }

    fn key(&self, row: &Row) -> Result<(i64, Bytes), SourceError> {
        let column = &self.config.key_column;
        let text = row.get(column);
        let id: i64 =
            text.and_then(|text| text.parse().ok())
                .ok_or_else(|| SourceError::BadKey {
                    table: self.config.table.clone(),
                    column: column.clone(),
                    found: text.map_or("NULL".to_string(), |t| format!("{t:?}")),
                })?;
        // rill's i64 key encoding: eight bytes, big-endian.
        Ok((id, Bytes::copy_from_slice(&id.to_be_bytes())))
    }

    fn upsert(&self, row: &Row) -> Result<ProducerRecord, SourceError> {
        let (id, key) = self.key(row)?;
        let value = (self.row_to_json)(row).map_err(|reason| SourceError::BadRow {
            table: self.config.table.clone(),
            id,
            reason,
        })?;
        Ok(ProducerRecord::new(self.config.topic.clone())
            .key(key)
            .value(value.to_string().into_bytes()))
    }

    fn tombstone(&self, row: &Row) -> Result<ProducerRecord, SourceError> {
        let (_, key) = self.key(row)?;
        Ok(ProducerRecord::new(self.config.topic.clone()).key(key))
    }
}

/// Reads the last position stored for the slot, reading the offsets topic to its end.
fn read_position(log: &dyn Log, config: &SourceConfig) -> Result<Option<Position>, SourceError> {
    let consumer = log.consumer(
        &ConsumerConfig {
            client_id: Some(format!("rill-connect-postgres-{}", config.slot)),
            isolation: IsolationLevel::ReadCommitted,
            ..ConsumerConfig::default()
        },
        None,
    )?;
    let partition = TopicPartition::new(config.offsets_topic.clone(), 0);
    consumer.assign(std::slice::from_ref(&partition))?;
    consumer.seek(&partition, SeekTo::Beginning)?;
    let end = consumer.watermarks(&partition)?.high;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut latest = None;
    while consumer.position(&partition)? < end {
        if Instant::now() > deadline {
            return Err(SourceError::BadPosition {
                slot: config.slot.clone(),
                reason: format!("{} could not be read to its end", config.offsets_topic),
            });
        }
        for record in consumer.poll(Duration::from_millis(200))? {
            if record.key.as_deref() == Some(config.slot.as_bytes()) {
                latest = record.value;
            }
        }
    }
    let _ = consumer.close();
    let Some(value) = latest else {
        return Ok(None);
    };
    let position = serde_json::from_slice::<Value>(&value)
        .ok()
        .and_then(|value| Position::from_json(&value))
        .ok_or_else(|| SourceError::BadPosition {
            slot: config.slot.clone(),
            reason: format!("unreadable record {:?}", String::from_utf8_lossy(&value)),
        })?;
    Ok(Some(position))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_print_and_parse_as_postgres_writes_them() {
        assert_eq!("16/B374D848".parse(), Ok(Lsn(0x16_B374_D848)));
        assert_eq!(Lsn(0x16_B374_D848).to_string(), "16/B374D848");
        assert!("16B374D848".parse::<Lsn>().is_err());
    }

    #[test]
    fn a_snapshot_sees_committed_ids_below_xmax_that_were_not_in_progress() {
        let snapshot = CopySnapshot::parse("100:105:101,103", Lsn(9)).expect("parses");
        assert!(snapshot.sees(99));
        assert!(snapshot.sees(102));
        assert!(!snapshot.sees(101));
        assert!(!snapshot.sees(105));
        assert_eq!(snapshot.text(), "100:105:101,103");
    }

    #[test]
    fn a_snapshot_widens_32_bit_ids_across_an_epoch() {
        let xmax = (1u64 << 32) + 10;
        let snapshot =
            CopySnapshot::parse(&format!("{}:{xmax}:", xmax - 20), Lsn(0)).expect("parses");
        assert!(snapshot.sees(5)); // 2^32 + 5
        assert!(snapshot.sees(u32::MAX - 2)); // the epoch before
        assert!(!snapshot.sees(11));
    }

    #[test]
    fn the_position_forgets_the_snapshot_once_past_it() {
        let position = Position {
            lsn: Lsn(10),
            snapshot: CopySnapshot::parse("5:6:", Lsn(20)),
        };
        assert!(position.advanced_to(Lsn(15)).snapshot.is_some());
        assert!(position.advanced_to(Lsn(20)).snapshot.is_none());
        let back = Position::from_json(&position.to_json()).expect("round trip");
        assert_eq!(back, position);
    }

    #[test]
    fn passwords_are_redacted_in_both_forms() {
        assert_eq!(
            redact("postgresql://u:p%40ss@h/db?password=x&sslmode=disable"),
            "postgresql://u:***@h/db?password=***&sslmode=disable"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("password = 'it\\'s' host=h"),
            "password = *** host=h"
        );
        assert_eq!(redact("host=h user=u"), "host=h user=u");
    }

    #[test]
    fn column_names_become_camel_case() {
        assert_eq!(camel_case("first_name"), "firstName");
        assert_eq!(camel_case("id"), "id");
        assert_eq!(camel_case("_x_y"), "xY");
    }
}
