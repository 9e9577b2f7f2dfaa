//! The topics of the order system (SPEC 2.2) and the application id of each service.

use rill_log::{Admin, CleanupPolicy, LogError, TopicConfig};

use crate::error::{OrdersError, Result};

/// Orders, keyed by order id; written only by the orders service.
pub const ORDERS: &str = "orders";
/// Verdicts of the three validators, keyed by order id.
pub const ORDER_VALIDATIONS: &str = "order-validations";
/// Stock per product (a table), keyed by product name.
pub const WAREHOUSE_INVENTORY: &str = "warehouse-inventory";
/// Payments, keyed by payment id.
pub const PAYMENTS: &str = "payments";
/// Customers (a table), keyed by customer id (i64).
pub const CUSTOMERS: &str = "customers";
/// Orders enriched with their customer's level.
pub const ORDERS_ENRICHED: &str = "orders-enriched";
/// The email service's outbox: the emails the default emailer sent.
pub const EMAILS: &str = "emails";
/// The customer levels; each is also the topic enriched orders of that level go to.
pub const LEVELS: [&str; 4] = ["platinum", "gold", "silver", "bronze"];

/// Application id of the orders service (the `orders-store` view and the validation
/// aggregator).
pub const ORDERS_SERVICE: &str = "orders-service";
/// Application id of the order details validator.
pub const ORDER_DETAILS_SERVICE: &str = "order-details-service";
/// Application id of the inventory validator.
pub const INVENTORY_SERVICE: &str = "inventory-service";
/// Application id of the fraud validator.
pub const FRAUD_SERVICE: &str = "fraud-service";
/// Application id of the email service.
pub const EMAIL_SERVICE: &str = "email-service";

/// Every topic the system reads or writes (internal topics aside), with its cleanup policy:
/// tables are compacted, event streams are not.
pub fn system_topics() -> Vec<(&'static str, CleanupPolicy)> {
    let mut topics = vec![
        (ORDERS, CleanupPolicy::Delete),
        (ORDER_VALIDATIONS, CleanupPolicy::Delete),
        (WAREHOUSE_INVENTORY, CleanupPolicy::Compact),
        (PAYMENTS, CleanupPolicy::Delete),
        (CUSTOMERS, CleanupPolicy::Compact),
        (ORDERS_ENRICHED, CleanupPolicy::Delete),
        (EMAILS, CleanupPolicy::Delete),
    ];
    topics.extend(LEVELS.iter().map(|level| (*level, CleanupPolicy::Delete)));
    topics
}

/// What [`create_system_topics`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemTopics {
    /// The partition count every system topic has.
    pub partitions: i32,
    /// The topics this call created (the others existed).
    pub created: Vec<&'static str>,
}

impl SystemTopics {
    /// Whether this call created `topic` (so, for a table, nobody has written it yet).
    pub fn created(&self, topic: &str) -> bool {
        self.created.contains(&topic)
    }
}

/// Creates the system's missing topics, keeping those that exist. Every topic gets the same
/// partition count because the services join them by key (co-partitioning): the count of the
/// existing topics when there are any (so a cluster keeps the layout it was started with),
/// else `partitions`.
pub fn create_system_topics(admin: &dyn Admin, partitions: i32) -> Result<SystemTopics> {
    let existing = admin.list_topics().map_err(|source| OrdersError::Log {
        operation: "listing topics",
        source,
    })?;
    let mut counts = Vec::new();
    for (name, _) in system_topics() {
        if existing.iter().any(|topic| topic == name) {
            let described = admin
                .describe_topic(name)
                .map_err(|source| OrdersError::Log {
                    operation: "describing a system topic",
                    source,
                })?;
            counts.push((name, described.config.partitions));
        }
    }
    let partitions = match counts.first() {
        Some(&(_, first)) if counts.iter().all(|&(_, count)| count == first) => first,
        Some(_) => {
            let counts = counts
                .iter()
                .map(|(name, count)| format!("{name}={count}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(OrdersError::NotCoPartitioned { counts });
        }
        None => partitions,
    };
    let mut created = Vec::new();
    for (name, policy) in system_topics() {
        if counts.iter().any(|&(existing, _)| existing == name) {
            continue;
        }
        let config = TopicConfig::with_partitions(partitions).cleanup_policy(policy);
        match admin.create_topic(name, &config) {
            Ok(()) => created.push(name),
            // Another instance starting at the same time created it first.
            Err(LogError::TopicExists { .. }) => {}
            Err(source) => {
                return Err(OrdersError::CreateTopic {
                    topic: name.to_string(),
                    source,
                });
            }
        }
    }
    Ok(SystemTopics {
        partitions,
        created,
    })
}
