//! The restart loop of the threads that `rill run` keeps beside the services (the PostgreSQL
//! customers source and orders sink): one place that runs a body, logs its failure, pauses
//! and runs it again until told to stop, so the connectors only say what one run does.

use std::fmt::Display;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a failed body waits before it runs again: long enough not to hammer a database
/// that is down, short enough to pick up soon after it is back.
pub const RETRY: Duration = Duration::from_secs(5);

/// A thread started by [`restarting_thread`]; [`stop`](Self::stop) ends it.
pub struct RestartingThread {
    what: &'static str,
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl RestartingThread {
    /// Tells the body to stop (it sees the message on its receiver) and waits for the thread.
    /// A panic of the body is logged, not passed on: stopping the server goes on regardless.
    pub fn stop(self) {
        // The thread may have ended on its own (its body returned `Ok`): nothing to tell.
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::error!("{} panicked", self.what);
        }
    }
}

/// Spawns a thread called `name` that runs `body` until it returns `Ok` or is told to stop.
///
/// `body` gets the receiver that [`RestartingThread::stop`] sends to; it should return `Ok`
/// once something arrives (or the sender is gone). An `Err` is logged as "`what` failed",
/// with `table` and the pause, and `body` runs again after `retry` unless a stop comes first.
/// Each run starts from scratch, so the body should resume from stored state (the
/// connectors do: their positions live in the log or the database).
pub fn restarting_thread<E, F>(
    name: &str,
    what: &'static str,
    table: String,
    retry: Duration,
    mut body: F,
) -> std::io::Result<RestartingThread>
where
    E: Display,
    F: FnMut(&Receiver<()>) -> Result<(), E> + Send + 'static,
{
    let (stop, stopped) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            loop {
                match body(&stopped) {
                    Ok(()) => return,
                    Err(error) => tracing::error!(
                        %error,
                        table,
                        retry_in_s = retry.as_secs(),
                        "{what} failed"
                    ),
                }
                // Only a pause that runs out starts the body again; a stop, or the handle
                // gone, ends the thread.
                if !matches!(stopped.recv_timeout(retry), Err(RecvTimeoutError::Timeout)) {
                    return;
                }
            }
        })?;
    Ok(RestartingThread { what, stop, thread })
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use super::*;

    /// Long enough for any test machine; a deadline on an event, not a pause to sync on.
    const PATIENCE: Duration = Duration::from_secs(30);

    fn start<E, F>(retry: Duration, body: F) -> RestartingThread
    where
        E: Display,
        F: FnMut(&Receiver<()>) -> Result<(), E> + Send + 'static,
    {
        restarting_thread("test-body", "the test body", "t".to_string(), retry, body)
            .expect("spawn")
    }

    /// Stops `thread` from another thread, failing rather than hanging when that does not
    /// end it in time, then checks that the body did not run again: once the thread is gone
    /// (the body's sender with it) a further run would be queued on `runs`.
    fn stops_without_another_run<T: Debug + PartialEq>(
        thread: RestartingThread,
        runs: &Receiver<T>,
    ) {
        let (done, stopped) = mpsc::channel();
        std::thread::spawn(move || {
            thread.stop();
            let _ = done.send(());
        });
        stopped
            .recv_timeout(PATIENCE)
            .expect("the stop ended the thread");
        assert_eq!(runs.try_recv(), Err(mpsc::TryRecvError::Disconnected));
    }

    #[test]
    fn a_body_that_fails_twice_runs_a_third_time_and_then_no_more() {
        let (ran, runs) = mpsc::channel();
        let mut count = 0;
        let thread = start(Duration::ZERO, move |_| {
            count += 1;
            ran.send(count).expect("the test listens");
            if count < 3 { Err("not yet") } else { Ok(()) }
        });
        for expected in 1..=3 {
            assert_eq!(runs.recv_timeout(PATIENCE), Ok(expected));
        }
        stops_without_another_run(thread, &runs);
    }

    #[test]
    fn a_stop_during_the_pause_ends_the_thread_without_another_run() {
        let (ran, runs) = mpsc::channel();
        // A pause far longer than the test waits: only the stop can end it in time.
        let thread = start(Duration::from_secs(3600), move |_| {
            ran.send(()).expect("the test listens");
            Err("always")
        });
        runs.recv_timeout(PATIENCE).expect("the first run");
        stops_without_another_run(thread, &runs);
    }

    #[test]
    fn a_running_body_sees_the_stop_and_is_not_run_again() {
        let (ran, runs) = mpsc::channel();
        let thread = start(Duration::ZERO, move |stopped| {
            ran.send(()).expect("the test listens");
            stopped.recv().map_err(|_| "the handle is gone")
        });
        runs.recv_timeout(PATIENCE).expect("the body runs");
        stops_without_another_run(thread, &runs);
    }
}
