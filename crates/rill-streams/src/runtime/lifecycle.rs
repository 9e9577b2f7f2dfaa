//! The application's lifecycle ([`AppState`]) and who is told of its changes: kept apart
//! from the application so that the configuration and the threads can name it without
//! depending on the application.

use std::sync::Arc;

use parking_lot::Mutex;

/// Lifecycle of an application (Kafka Streams' `KafkaStreams.State`), reported to a
/// [`StateListener`] on every change:
///
/// ```text
/// Created -> Rebalancing <-> Running -> PendingShutdown -> NotRunning
///                  \            |
///                   +-> Error <-+   (a stream thread failed and is not replaced)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppState {
    /// Built, not started.
    Created,
    /// Started; a stream thread is joining the group, taking or giving up tasks, or restoring
    /// their stores. Queries of the moving tasks' stores may be refused meanwhile.
    Rebalancing,
    /// Every stream thread has its tasks and is processing.
    Running,
    /// A thread stopped with an error (see [`StreamsApp::close`]'s result).
    Error,
    /// [`StreamsApp::close`] is stopping the threads.
    PendingShutdown,
    /// Closed.
    NotRunning,
}

/// Told of every change of an application's [`AppState`], as `(old, new)`: for readiness
/// probes, or to log what an instance is doing. Called on the thread that caused the change
/// (a stream thread or the caller of `start` / `close`), one change at a time, so it must be
/// quick and must not call back into the application.
///
/// ```
/// use std::sync::Arc;
/// use rill_streams::{AppState, StreamsConfig};
/// let mut config = StreamsConfig::new("word-count", "/tmp/state");
/// config.state_listener = Some(Arc::new(|old: AppState, new: AppState| {
///     eprintln!("word-count: {old:?} -> {new:?}");
/// }));
/// ```
pub type StateListener = Arc<dyn Fn(AppState, AppState) + Send + Sync>;

/// The application's state as the threads see it, and who is told of changes.
pub(crate) struct Lifecycle {
    state: Mutex<AppState>,
    /// Stream threads not yet settled: joining, in a rebalance, or restoring.
    rebalancing: Mutex<usize>,
    listener: Option<StateListener>,
}

impl Lifecycle {
    pub fn new(listener: Option<StateListener>) -> Self {
        Lifecycle {
            state: Mutex::new(AppState::Created),
            rebalancing: Mutex::new(0),
            listener,
        }
    }

    pub fn get(&self) -> AppState {
        *self.state.lock()
    }

    /// Moves to `new` unless the application is already past it (a closing or failed
    /// application does not go back to rebalancing).
    pub fn set(&self, new: AppState) {
        let mut state = self.state.lock();
        let old = *state;
        let allowed = match old {
            AppState::NotRunning => false,
            AppState::PendingShutdown => new == AppState::NotRunning,
            AppState::Error => matches!(new, AppState::PendingShutdown | AppState::NotRunning),
            _ => true,
        };
        if old == new || !allowed {
            return;
        }
        *state = new;
        if let Some(listener) = &self.listener {
            listener(old, new);
        }
    }

    /// A stream thread starts rebalancing (it starts, or its assignment changes).
    pub fn thread_rebalancing(&self) {
        let mut count = self.rebalancing.lock();
        *count += 1;
        self.set(AppState::Rebalancing);
        drop(count);
    }

    /// A stream thread has its tasks (or stopped while rebalancing).
    pub fn thread_settled(&self) {
        let mut count = self.rebalancing.lock();
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.set(AppState::Running);
        }
        drop(count);
    }
}
