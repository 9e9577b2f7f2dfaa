//! The Avro schemas of the system's events (SPEC 2.1), for the Avro format: field names as in
//! JSON (camelCase), enums as Avro enums with the Rust variants' names in declaration order,
//! in the namespace `rill.orders`. A customer's `level` defaults to `bronze`, so customers
//! written without one (an older schema) read with it.
//!
//! [`EventSerdes::avro`](crate::formats::EventSerdes::avro) registers them under the subjects
//! of the system's topics (`orders-value`, ...).

use serde_json::{Value, json};

use crate::domain::DEFAULT_LEVEL;

/// The namespace of every named type.
pub const NAMESPACE: &str = "rill.orders";

fn record(name: &str, doc: &str, fields: Value) -> Value {
    json!({"type": "record", "name": name, "namespace": NAMESPACE, "doc": doc, "fields": fields})
}

fn enumeration(name: &str, symbols: &[&str]) -> Value {
    json!({"type": "enum", "name": name, "namespace": NAMESPACE, "symbols": symbols})
}

/// `Order`.
pub fn order() -> Value {
    record(
        "Order",
        "An order: one product line for one customer.",
        json!([
            {"name": "id", "type": "string"},
            {"name": "customerId", "type": "long"},
            {"name": "state", "type": enumeration("OrderState", &["CREATED", "VALIDATED", "FAILED", "SHIPPED"])},
            {"name": "product", "type": enumeration("Product", &["JUMPERS", "UNDERPANTS", "STOCKINGS"])},
            {"name": "quantity", "type": "int"},
            {"name": "price", "type": "double"},
        ]),
    )
}

/// `OrderValidation`.
pub fn order_validation() -> Value {
    record(
        "OrderValidation",
        "A validator's verdict on one order.",
        json!([
            {"name": "orderId", "type": "string"},
            {"name": "checkType", "type": enumeration("OrderValidationType", &["INVENTORY_CHECK", "FRAUD_CHECK", "ORDER_DETAILS_CHECK"])},
            {"name": "validationResult", "type": enumeration("OrderValidationResult", &["PASS", "FAIL", "ERROR"])},
        ]),
    )
}

/// `OrderValue`: an order (the whole `Order` record) and its value.
pub fn order_value() -> Value {
    record(
        "OrderValue",
        "An order with its total value.",
        json!([
            {"name": "order", "type": order()},
            {"name": "value", "type": "double"},
        ]),
    )
}

/// `Payment`.
pub fn payment() -> Value {
    record(
        "Payment",
        "A payment for an order.",
        json!([
            {"name": "id", "type": "string"},
            {"name": "orderId", "type": "string"},
            {"name": "ccy", "type": "string"},
            {"name": "amount", "type": "double"},
        ]),
    )
}

/// `Customer`.
pub fn customer() -> Value {
    record(
        "Customer",
        "A customer.",
        json!([
            {"name": "id", "type": "long"},
            {"name": "firstName", "type": "string"},
            {"name": "lastName", "type": "string"},
            {"name": "email", "type": "string"},
            {"name": "address", "type": "string"},
            {"name": "level", "type": "string", "default": DEFAULT_LEVEL},
        ]),
    )
}

/// `OrderEnriched`.
pub fn order_enriched() -> Value {
    record(
        "OrderEnriched",
        "An order with its customer's level.",
        json!([
            {"name": "id", "type": "string"},
            {"name": "customerId", "type": "long"},
            {"name": "customerLevel", "type": "string"},
        ]),
    )
}

/// `Email`, the email service's outbox record.
pub fn email() -> Value {
    record(
        "Email",
        "An email sent when an order is validated.",
        json!([
            {"name": "orderId", "type": "string"},
            {"name": "to", "type": "string"},
            {"name": "subject", "type": "string"},
            {"name": "body", "type": "string"},
        ]),
    )
}

/// A stock count of `warehouse-inventory`: an Avro long.
pub fn stock_count() -> Value {
    json!("long")
}
