//! `rill run --customers-from-postgres`: the `customers` topic filled from a PostgreSQL table
//! by `rill-connect-postgres`, on a thread beside the services.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use rill_connect_postgres::{PostgresSource, Row, SourceConfig, redact};
use rill_log::Log;
use rill_orders::domain::{Customer, DEFAULT_LEVEL};
use rill_orders::topics::{CUSTOMERS, LEVELS};
use serde_json::Value;

use crate::restarting::{RETRY, RestartingThread, restarting_thread};

/// How long the source waits when PostgreSQL had nothing new.
const IDLE: Duration = Duration::from_millis(200);

/// A PostgreSQL connection string; its `Debug` hides the password, so that printing the
/// flags never shows it.
#[derive(Clone)]
pub struct Conninfo(String);

impl FromStr for Conninfo {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().is_empty() {
            return Err("an empty connection string".to_string());
        }
        Ok(Conninfo(text.to_string()))
    }
}

impl Conninfo {
    /// The connection string itself (with its password: never log it).
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Conninfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

/// The running source; [`stop`](crate::restarting::RestartingThread::stop) ends it after its
/// current poll.
pub type CustomersSource = RestartingThread;

/// Starts copying `table` into `customers` and following its changes. Failures (PostgreSQL
/// down, a bad row) are logged and the source starts again after a pause: it resumes from
/// its stored position, so nothing is repeated.
pub fn start(
    log: Arc<dyn Log>,
    conninfo: &Conninfo,
    table: &str,
) -> std::io::Result<CustomersSource> {
    let config = SourceConfig::new(conninfo.0.clone(), table, CUSTOMERS);
    restarting_thread(
        "postgres-customers",
        "the PostgreSQL customers source",
        table.to_string(),
        RETRY,
        move |stopped| follow(&log, &config, stopped),
    )
}

/// Opens the source and polls it until told to stop.
fn follow(
    log: &Arc<dyn Log>,
    config: &SourceConfig,
    stopped: &mpsc::Receiver<()>,
) -> Result<(), rill_connect_postgres::SourceError> {
    let mut source = PostgresSource::open(log.clone(), config.clone(), Box::new(customer_json))?;
    tracing::info!(
        table = %config.table,
        position = %source.position(),
        "following PostgreSQL into customers"
    );
    loop {
        let written = source.poll()?;
        if written > 0 {
            tracing::debug!(written, "customers from PostgreSQL");
        }
        let wait = if written > 0 { Duration::ZERO } else { IDLE };
        match stopped.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return Ok(()),
        }
    }
}

/// A row of the customers table (`id bigint`, `first_name`, `last_name`, `email`, `address`
/// text, `level` text or NULL for bronze) as the order system's `Customer`.
fn customer_json(row: &Row) -> Result<Value, String> {
    let text = |column: &str| {
        row.get(column)
            .map(str::to_string)
            .ok_or_else(|| format!("column {column} is missing or NULL"))
    };
    let id = text("id")?;
    let level = row.get("level").unwrap_or(DEFAULT_LEVEL).to_string();
    if !LEVELS.contains(&level.as_str()) {
        return Err(format!(
            "level {level:?} is not one of {}",
            LEVELS.join(", ")
        ));
    }
    let customer = Customer {
        id: id
            .parse()
            .map_err(|_| format!("id {id:?} is not a bigint"))?,
        first_name: text("first_name")?,
        last_name: text("last_name")?,
        email: text("email")?,
        address: text("address")?,
        level,
    };
    serde_json::to_value(&customer).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(level: Option<&str>) -> Row {
        let text = |v: &str| Some(v.to_string());
        Row::new(vec![
            ("id".into(), text("7")),
            ("first_name".into(), text("Ada")),
            ("last_name".into(), text("Lovelace")),
            ("email".into(), text("ada@example.com")),
            ("address".into(), text("1 Analytical Way")),
            ("level".into(), level.map(str::to_string)),
        ])
    }

    #[test]
    fn a_row_becomes_the_customer_the_order_system_reads() {
        let json = customer_json(&row(Some("gold"))).expect("a customer");
        let customer: Customer = serde_json::from_value(json).expect("reads back");
        assert_eq!(customer.id, 7);
        assert_eq!(customer.first_name, "Ada");
        assert_eq!(customer.level, "gold");
        let bronze = customer_json(&row(None)).expect("a customer");
        assert_eq!(bronze["level"], "bronze");
        assert!(customer_json(&row(Some("tin"))).is_err());
    }

    #[test]
    fn the_password_is_not_shown() {
        let conninfo: Conninfo = "postgres://rill:hunter2@127.0.0.1/rill"
            .parse()
            .expect("parses");
        assert!(!format!("{conninfo:?}").contains("hunter2"));
    }
}
