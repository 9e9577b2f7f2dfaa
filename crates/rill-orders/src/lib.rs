//! rill's order system: what runs on the streams runtime.
//!
//! **Owns:** the domain types of SPEC 2.1 ([`domain`]) and their Avro schemas ([`schemas`]),
//! the format of the system's topics (JSON, or Avro with a schema registry: [`formats`]), the
//! topic names and application ids
//! ([`topics`]), one module per service, each a pure `topology(..) -> Result<Topology>` with
//! its own application id ([`order_details`], [`inventory`], [`fraud`], [`email`],
//! [`orders_service`] with the [`aggregator`]), starting them in one process ([`system`]), the
//! HTTP server: the REST API and the topic proxy ([`http`]), typed input records
//! ([`records`]), one bootstrap of a whole instance (topics, seed data, services, HTTP) that
//! the binary, the benchmarks and the tests share ([`instance`]), and consumer groups with
//! their lag as the tools and the topic proxy show them ([`consumer_groups`]).
//!
//! **Is not:** a log backend. It depends on `rill-schema`, `rill-streams` and `rill-log`; the
//! binary chooses the log (the embedded one, or a cluster) and hands it in.
//!
//! A service tested without a log:
//! ```
//! use rill_orders::domain::{Order, OrderState, OrderValidation, Product, ValidationResult};
//! use rill_streams::TopologyTestDriver;
//!
//! let mut driver = TopologyTestDriver::new(rill_orders::order_details::topology()?, "details")?;
//! let order = Order { id: "o1".into(), customer_id: 1, state: OrderState::Created,
//!     product: Product::Jumpers, quantity: 0, price: 1.0 };
//! driver.pipe("orders", &order.id, &order, 0)?;
//! let verdicts = driver.read_output::<String, OrderValidation>("order-validations")?;
//! assert_eq!(verdicts[0].value.validation_result, ValidationResult::Fail);
//! # Ok::<(), rill_streams::StreamsError>(())
//! ```

#![deny(missing_docs)]

pub mod aggregator;
pub mod consumer_groups;
pub mod domain;
pub mod email;
mod error;
pub mod formats;
pub mod fraud;
pub mod http;
pub mod instance;
pub mod inventory;
pub mod json_records;
pub mod order_details;
pub mod orders_service;
pub mod records;
pub mod schemas;
pub mod system;
pub mod topics;

pub use error::{OrdersError, Result};
