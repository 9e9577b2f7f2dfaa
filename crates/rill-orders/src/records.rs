//! Typed records of the system's inputs: stock, customers, payments and orders, keyed and
//! encoded exactly as the services read them, for the log directly or for the topic proxy.
//!
//! Seeding, the feeds and the benchmarks build their records here, so nobody writes a key's
//! bytes or a value's JSON by hand.
//!
//! ```
//! use rill_orders::domain::Product;
//! use rill_orders::records::InputRecord;
//!
//! let stock = InputRecord::Stock { product: Product::Jumpers, count: 10 };
//! let record = stock.producer_record()?;
//! assert_eq!(record.topic, "warehouse-inventory");
//! assert_eq!(record.key.as_deref(), Some(&b"JUMPERS"[..]));
//! assert_eq!(stock.proxy_json()?, serde_json::json!({"key": "JUMPERS", "value": 10}));
//! # Ok::<(), rill_orders::OrdersError>(())
//! ```

use bytes::Bytes;
use rill_log::ProducerRecord;
use rill_streams::DefaultSerde;
use serde_json::Value;

use crate::domain::{Customer, Order, Payment, Product, StockCount};
use crate::error::{OrdersError, Result};
use crate::formats::EventSerdes;
use crate::topics::{CUSTOMERS, ORDERS, PAYMENTS, WAREHOUSE_INVENTORY};

/// One record of an input of the order system.
#[derive(Debug, Clone, PartialEq)]
pub enum InputRecord {
    /// The stock of a product (`warehouse-inventory`, a table keyed by product name).
    Stock {
        /// The product.
        product: Product,
        /// Items in stock.
        count: i64,
    },
    /// A customer (`customers`, a table keyed by customer id).
    Customer(Customer),
    /// A payment (`payments`, keyed by payment id).
    Payment(Payment),
    /// An order (`orders`, keyed by order id). Clients normally post orders through the REST
    /// API; loads and benchmarks write them directly.
    Order(Order),
}

impl InputRecord {
    /// The topic the record belongs to.
    pub fn topic(&self) -> &'static str {
        match self {
            InputRecord::Stock { .. } => WAREHOUSE_INVENTORY,
            InputRecord::Customer(_) => CUSTOMERS,
            InputRecord::Payment(_) => PAYMENTS,
            InputRecord::Order(_) => ORDERS,
        }
    }

    /// The record for the log: key and value encoded with the services' serdes, in JSON.
    pub fn producer_record(&self) -> Result<ProducerRecord> {
        self.producer_record_in(&EventSerdes::json())
    }

    /// The record for the log with its value in `serdes`' format.
    pub fn producer_record_in(&self, serdes: &EventSerdes) -> Result<ProducerRecord> {
        let (key, value) = self.encoded(serdes)?;
        Ok(ProducerRecord::new(self.topic()).key(key).value(value))
    }

    /// The record as the topic proxy takes it (`{"key": K, "value": V}`), its key in the form
    /// that [`json_records`](crate::json_records) turns into the same bytes.
    pub fn proxy_json(&self) -> Result<Value> {
        let key = match self {
            InputRecord::Stock { product, .. } => Value::from(product.name()),
            InputRecord::Customer(customer) => Value::from(customer.id),
            InputRecord::Payment(payment) => Value::from(payment.id.clone()),
            InputRecord::Order(order) => Value::from(order.id.clone()),
        };
        let (_, value) = self.encoded(&EventSerdes::json())?;
        let value: Value = serde_json::from_slice(&value).map_err(|source| self.encode(source))?;
        Ok(serde_json::json!({ "key": key, "value": value }))
    }

    fn encoded(&self, serdes: &EventSerdes) -> Result<(Bytes, Bytes)> {
        let topic = self.topic();
        let serde_error = |source: rill_streams::SerdeError| OrdersError::Encode {
            topic,
            source: Box::new(source),
        };
        Ok(match self {
            InputRecord::Stock { product, count } => (
                Bytes::from_static(product.name().as_bytes()),
                serdes
                    .stock
                    .serialize(topic, &StockCount(*count))
                    .map_err(serde_error)?,
            ),
            InputRecord::Customer(customer) => (
                i64::default_serde()
                    .serialize(topic, &customer.id)
                    .map_err(serde_error)?,
                serdes
                    .customer
                    .serialize(topic, customer)
                    .map_err(serde_error)?,
            ),
            InputRecord::Payment(payment) => (
                Bytes::from(payment.id.clone().into_bytes()),
                serdes
                    .payment
                    .serialize(topic, payment)
                    .map_err(serde_error)?,
            ),
            InputRecord::Order(order) => (
                Bytes::from(order.id.clone().into_bytes()),
                serdes.order.serialize(topic, order).map_err(serde_error)?,
            ),
        })
    }

    fn encode(&self, source: serde_json::Error) -> OrdersError {
        OrdersError::Encode {
            topic: self.topic(),
            source: Box::new(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_records;

    fn customer() -> Customer {
        Customer {
            id: 7,
            first_name: "Ada".into(),
            last_name: "L".into(),
            email: "ada@example.com".into(),
            address: "1 Street".into(),
            level: "gold".into(),
        }
    }

    /// The proxy's JSON and the direct record carry the same bytes, so both land on the same
    /// partition and read back as the same value.
    #[test]
    fn proxy_json_and_producer_record_agree() -> Result<()> {
        let inputs = [
            InputRecord::Stock {
                product: Product::Underpants,
                count: 20,
            },
            InputRecord::Customer(customer()),
            InputRecord::Payment(Payment {
                id: "p1".into(),
                order_id: "o1".into(),
                ccy: "EUR".into(),
                amount: 12.5,
            }),
        ];
        for input in inputs {
            let direct = input.producer_record()?;
            let via_proxy = json_records::producer_record(input.topic(), &input.proxy_json()?)
                .map_err(|e| OrdersError::Encode {
                    topic: input.topic(),
                    source: Box::new(e),
                })?;
            assert_eq!(direct.key, via_proxy.key, "{input:?}");
            // The same JSON, whatever the order of its fields.
            let json = |bytes: Option<Bytes>| {
                serde_json::from_slice::<Value>(&bytes.unwrap_or_default()).map_err(|e| {
                    OrdersError::Encode {
                        topic: input.topic(),
                        source: Box::new(e),
                    }
                })
            };
            assert_eq!(json(direct.value)?, json(via_proxy.value)?, "{input:?}");
        }
        Ok(())
    }

    #[test]
    fn customers_are_keyed_by_their_id_as_eight_bytes() -> Result<()> {
        let record = InputRecord::Customer(customer()).producer_record()?;
        assert_eq!(record.topic, CUSTOMERS);
        assert_eq!(record.key.as_deref(), Some(&7i64.to_be_bytes()[..]));
        Ok(())
    }
}
