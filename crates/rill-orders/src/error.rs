//! The order system's error type.

use rill_log::LogError;
use rill_streams::StreamsError;

/// An error of the order system (its services, system start-up and HTTP server).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrdersError {
    /// A system topic could not be created.
    #[error("creating topic '{topic}': {source}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The log's error.
        #[source]
        source: LogError,
    },
    /// A service's topology could not be built, started or stopped.
    #[error("service '{service}': {source}")]
    Service {
        /// The service's application id.
        service: &'static str,
        /// The runtime's error.
        #[source]
        source: StreamsError,
    },
    /// A log client the HTTP layer needs could not be created.
    #[error("{operation}: {source}")]
    Log {
        /// What was being done.
        operation: &'static str,
        /// The log's error.
        #[source]
        source: LogError,
    },
    /// The HTTP server could not bind or stopped with an I/O error.
    #[error("HTTP server on {addr}: {source}")]
    Http {
        /// The address served.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A record of the system could not be encoded.
    #[error("encoding a record for '{topic}': {source}")]
    Encode {
        /// The topic it was for.
        topic: &'static str,
        /// The serde's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The log refused transactions, which exactly-once processing needs.
    #[error(
        "the log refuses transactions, which exactly-once processing needs (a broker without \
         transaction support, or a transactional id it does not authorize); run with the \
         at-least-once processing guarantee instead: {source}"
    )]
    TransactionsRefused {
        /// The log's error.
        #[source]
        source: LogError,
    },
    /// The system's topics exist with different partition counts, so the services' joins
    /// (which need co-partitioned inputs) cannot work.
    #[error("the system's topics are not co-partitioned: {counts}")]
    NotCoPartitioned {
        /// `topic=partitions` of each existing topic.
        counts: String,
    },
    /// The schema registry failed (opening it, or registering the events' schemas).
    #[error("schema registry, {operation}: {source}")]
    Schemas {
        /// What was being done.
        operation: &'static str,
        /// The registry's error.
        #[source]
        source: rill_schema::RegistryError,
    },
    /// The service list names an unknown service.
    #[error("unknown service '{name}' (known: orders, order-details, inventory, fraud, email)")]
    UnknownService {
        /// The name given.
        name: String,
    },
}

impl OrdersError {
    /// Wraps a runtime error of `service`.
    pub fn service(service: &'static str) -> impl FnOnce(StreamsError) -> OrdersError {
        move |source| OrdersError::Service { service, source }
    }
}

/// Result of an order-system operation.
pub type Result<T, E = OrdersError> = std::result::Result<T, E>;
