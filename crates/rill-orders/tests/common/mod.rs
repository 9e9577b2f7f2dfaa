//! Helpers shared by the service tests.

#![allow(dead_code)] // each test file uses a different subset

use rill_orders::domain::{
    CheckType, Order, OrderState, OrderValidation, Product, ValidationResult,
};

/// A CREATED order.
pub fn order(id: &str, customer_id: i64, product: Product, quantity: i32, price: f64) -> Order {
    Order {
        id: id.to_string(),
        customer_id,
        state: OrderState::Created,
        product,
        quantity,
        price,
    }
}

/// A verdict.
pub fn verdict(order_id: &str, check: CheckType, result: ValidationResult) -> OrderValidation {
    OrderValidation {
        order_id: order_id.to_string(),
        check_type: check,
        validation_result: result,
    }
}
