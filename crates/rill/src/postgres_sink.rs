//! `rill run --orders-to-postgres`: each order's latest state kept in a PostgreSQL table by
//! `rill-connect-postgres`'s sink, on a thread beside the services.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rill_connect_postgres::{PostgresSink, SinkConfig, SinkError};
use rill_log::Log;
use rill_orders::topics::ORDERS;

use crate::postgres_source::Conninfo;

/// How long one poll waits for orders.
const IDLE: Duration = Duration::from_millis(200);
/// How long the sink waits before starting again after a failure.
const RETRY: Duration = Duration::from_secs(5);

/// The running sink; [`stop`](Self::stop) ends it.
pub struct OrdersSink {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl OrdersSink {
    /// Stops the sink after its current batch and waits for it.
    pub fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::error!("the PostgreSQL orders sink panicked");
        }
    }
}

/// Starts upserting `orders` into `table`. Failures (PostgreSQL down, an order that does not
/// fit the row) are logged and the sink starts again after a pause from its stored offsets,
/// so nothing is written twice.
pub fn start(log: Arc<dyn Log>, conninfo: &Conninfo, table: &str) -> std::io::Result<OrdersSink> {
    let (stop, stopped) = mpsc::channel();
    let mut config = SinkConfig::orders(conninfo.secret(), table);
    config.topic = ORDERS.to_string();
    let thread = std::thread::Builder::new()
        .name("postgres-orders".to_string())
        .spawn(move || {
            loop {
                match follow(&log, &config, &stopped) {
                    Ok(()) => return,
                    Err(error) => tracing::error!(
                        %error,
                        table = %config.table,
                        retry_in_s = RETRY.as_secs(),
                        "the PostgreSQL orders sink failed"
                    ),
                }
                if !matches!(stopped.recv_timeout(RETRY), Err(RecvTimeoutError::Timeout)) {
                    return;
                }
            }
        })?;
    Ok(OrdersSink { stop, thread })
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
