//! A log in a temporary directory, and the registry's REST API served on loopback.

#![allow(dead_code)] // each test file uses a different subset

use std::net::SocketAddr;
use std::sync::Arc;

use rill_log_embedded::{EmbeddedConfig, EmbeddedLog};
use rill_schema::LogSchemaRegistry;

/// An embedded log in `dir`.
pub fn log(dir: &std::path::Path) -> Arc<EmbeddedLog> {
    Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir)).expect("opens the log"))
}

/// A registry on a new log in `dir`.
pub fn registry(dir: &std::path::Path) -> (Arc<EmbeddedLog>, Arc<LogSchemaRegistry>) {
    let log = log(dir);
    let registry = LogSchemaRegistry::open(log.as_ref()).expect("opens the registry");
    (log, Arc::new(registry))
}

/// The registry's API served on a loopback port until the returned sender is dropped.
pub struct Served {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves `registry` on 127.0.0.1 (a free port).
pub fn serve(registry: Arc<LogSchemaRegistry>) -> Served {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (bound, addr) = std::sync::mpsc::channel::<SocketAddr>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("binds");
            bound
                .send(listener.local_addr().expect("address"))
                .expect("test waits");
            axum::serve(listener, rill_schema::router(registry))
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serves");
        });
    });
    let addr = addr.recv().expect("server bound");
    Served {
        url: format!("http://{addr}"),
        stop: Some(stop),
        thread: Some(thread),
    }
}
