//! `rill run --orders-to-postgres`: each order's latest state kept in a PostgreSQL table by
//! `rill-connect-postgres`'s sink, on a thread beside the services.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use rill_connect_postgres::{PostgresSink, SinkConfig, SinkError};
use rill_log::Log;
use rill_orders::topics::ORDERS;

use crate::postgres_source::Conninfo;
use crate::restarting::{RETRY, RestartingThread, restarting_thread};

/// How long one poll waits for orders.
const IDLE: Duration = Duration::from_millis(200);
/// The running sink; [`stop`](crate::restarting::RestartingThread::stop) ends it after its
/// current batch.
pub type OrdersSink = RestartingThread;

/// Starts upserting `orders` into `table`. Failures (PostgreSQL down, an order that does not
/// fit the row) are logged and the sink starts again after a pause from its stored offsets,
/// so nothing is written twice.
pub fn start(log: Arc<dyn Log>, conninfo: &Conninfo, table: &str) -> std::io::Result<OrdersSink> {
    let mut config = SinkConfig::orders(conninfo.secret(), table);
    config.topic = ORDERS.to_string();
    restarting_thread(
        "postgres-orders",
        "the PostgreSQL orders sink",
        config.table.clone(),
        RETRY,
        move |stopped| follow(&log, &config, stopped),
    )
}

/// Opens the sink and polls it until told to stop.
fn follow(
    log: &Arc<dyn Log>,
    config: &SinkConfig,
    stopped: &mpsc::Receiver<()>,
) -> Result<(), SinkError> {
    let mut sink = PostgresSink::open(log.clone(), config.clone())?;
    tracing::info!(
        table = %config.table,
        positions = ?sink.positions(),
        "writing orders into PostgreSQL"
    );
    loop {
        let written = sink.poll(IDLE)?;
        if written > 0 {
            tracing::debug!(written, "orders into PostgreSQL");
        }
        match stopped.try_recv() {
            Err(mpsc::TryRecvError::Empty) => {}
            _ => return Ok(()),
        }
    }
}
