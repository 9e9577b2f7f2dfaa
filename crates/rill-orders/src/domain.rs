//! The events of the order system (SPEC 2.1) and their JSON form: camelCase field names, enums
//! as their names. Each is the [`DefaultSerde`](rill_streams::DefaultSerde) JSON of its type, so
//! topologies read and write them without naming a serde.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An order: one product line for one customer. Its id and product never change across its
/// events; only `state` does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// The order id, also the key of its records.
    pub id: String,
    /// The customer placing it.
    pub customer_id: i64,
    /// Where the order is in its life.
    pub state: OrderState,
    /// The product ordered.
    pub product: Product,
    /// How many.
    pub quantity: i32,
    /// Price of one item.
    pub price: f64,
}

impl Order {
    /// The same order in another state.
    pub fn with_state(&self, state: OrderState) -> Order {
        Order {
            state,
            ..self.clone()
        }
    }

    /// Whether `other` is the same order as placed, whatever state either is in now. Prices
    /// compare bit for bit: a re-post must repeat the body, not approximate it.
    pub fn same_placement(&self, other: &Order) -> bool {
        self.id == other.id
            && self.customer_id == other.customer_id
            && self.product == other.product
            && self.quantity == other.quantity
            && self.price.to_bits() == other.price.to_bits()
    }

    /// What the order is worth: quantity times price.
    pub fn value(&self) -> f64 {
        f64::from(self.quantity) * self.price
    }
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderState {
    /// Placed, waiting for its checks.
    Created,
    /// All three checks passed.
    Validated,
    /// A check failed.
    Failed,
    /// Sent to the customer.
    Shipped,
}

impl OrderState {
    /// Whether the order's validation is decided (VALIDATED, FAILED or later).
    pub fn is_final(self) -> bool {
        !matches!(self, OrderState::Created)
    }
}

/// The products the shop sells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Product {
    /// Jumpers.
    Jumpers,
    /// Underpants.
    Underpants,
    /// Stockings.
    Stockings,
}

impl Product {
    /// Every product.
    pub const ALL: [Product; 3] = [Product::Jumpers, Product::Underpants, Product::Stockings];

    /// The product's name, as in JSON and as the key of `warehouse-inventory`.
    pub fn name(self) -> &'static str {
        match self {
            Product::Jumpers => "JUMPERS",
            Product::Underpants => "UNDERPANTS",
            Product::Stockings => "STOCKINGS",
        }
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validator's verdict on one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderValidation {
    /// The order judged.
    pub order_id: String,
    /// Which check judged it.
    pub check_type: CheckType,
    /// The verdict.
    pub validation_result: ValidationResult,
}

/// The three independent checks an order must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckType {
    /// Enough stock (inventory service).
    InventoryCheck,
    /// Not suspicious (fraud service).
    FraudCheck,
    /// Well-formed (order details service).
    OrderDetailsCheck,
}

impl CheckType {
    /// Every check: an order is VALIDATED when each has passed.
    pub const ALL: [CheckType; 3] = [
        CheckType::InventoryCheck,
        CheckType::FraudCheck,
        CheckType::OrderDetailsCheck,
    ];
}

/// A verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ValidationResult {
    /// The order passed the check.
    Pass,
    /// The order failed the check.
    Fail,
    /// The check could not be made.
    Error,
}

/// An order with its total value (quantity times price).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderValue {
    /// The order.
    pub order: Order,
    /// Its value.
    pub value: f64,
}

/// A payment for an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// The payment id, the key of its record in `payments`.
    pub id: String,
    /// The order it pays for.
    pub order_id: String,
    /// Currency code.
    pub ccy: String,
    /// Amount paid.
    pub amount: f64,
}

/// A customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// The customer id, the key of its record in `customers`.
    pub id: i64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Email address.
    pub email: String,
    /// Postal address.
    pub address: String,
    /// platinum, gold, silver or bronze; the name of the topic enriched orders are routed to.
    #[serde(default = "default_level")]
    pub level: String,
}

/// The level of a customer who has none.
pub const DEFAULT_LEVEL: &str = "bronze";

fn default_level() -> String {
    DEFAULT_LEVEL.to_string()
}

/// An order with its customer's level, routed to the topic of that level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEnriched {
    /// The order id.
    pub id: String,
    /// The customer.
    pub customer_id: i64,
    /// The customer's level.
    pub customer_level: String,
}

/// A stock count in `warehouse-inventory`: a JSON integer, as the topic proxy and
/// `rill add-inventory` write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StockCount(pub i64);

/// An email sent when an order is validated: what the default emailer writes to its outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Email {
    /// The order it is about.
    pub order_id: String,
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Body text.
    pub body: String,
}

rill_streams::json_serde!(
    Order,
    OrderValidation,
    OrderValue,
    Payment,
    Customer,
    OrderEnriched,
    StockCount,
    Email,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_is_camel_case_json_with_enums_by_name() {
        let order = Order {
            id: "o1".into(),
            customer_id: 7,
            state: OrderState::Created,
            product: Product::Jumpers,
            quantity: 2,
            price: 1.5,
        };
        let json = serde_json::to_value(&order).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"id":"o1","customerId":7,"state":"CREATED","product":"JUMPERS","quantity":2,"price":1.5})
        );
        let back: Order = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, order);
    }

    #[test]
    fn verdicts_and_customers_use_the_spec_names() {
        let verdict = OrderValidation {
            order_id: "o1".into(),
            check_type: CheckType::OrderDetailsCheck,
            validation_result: ValidationResult::Pass,
        };
        assert_eq!(
            serde_json::to_string(&verdict).expect("serializes"),
            r#"{"orderId":"o1","checkType":"ORDER_DETAILS_CHECK","validationResult":"PASS"}"#
        );
        let customer: Customer = serde_json::from_str(
            r#"{"id":1,"firstName":"A","lastName":"B","email":"a@b","address":"x"}"#,
        )
        .expect("deserializes");
        assert_eq!(customer.level, "bronze");
        assert_eq!(serde_json::to_string(&StockCount(20)).expect("ser"), "20");
    }

    #[test]
    fn an_unknown_product_is_refused_by_name() {
        let error = serde_json::from_str::<Order>(
            r#"{"id":"o","customerId":1,"state":"CREATED","product":"HATS","quantity":1,"price":1}"#,
        )
        .expect_err("unknown product");
        assert!(error.to_string().contains("HATS"), "{error}");
    }
}
