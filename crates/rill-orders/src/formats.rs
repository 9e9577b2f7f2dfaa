//! The wire format of the system's topics: JSON (the default) or Avro in Confluent's wire
//! format with a schema registry. [`EventSerdes`] holds the value serde of each event type;
//! every service topology, the REST API, the topic proxy and the seed take theirs from it, so
//! the format is one setting of the bootstrap ([`InstanceConfig::format`]).
//!
//! Keys stay in Kafka's formats in both (SPEC 2.2), and internal topics and stores of the
//! services keep their JSON, except where a store is a table of a system topic.
//!
//! [`InstanceConfig::format`]: crate::instance::InstanceConfig::format

use std::sync::Arc;

use bytes::Bytes;
use rill_schema::{AvroSerde, SchemaCache};
use rill_streams::{DefaultSerde, SerdeError, SharedSerde};
use serde_json::Value;

use crate::domain::{Customer, Email, Order, OrderEnriched, OrderValidation, Payment, StockCount};
use crate::error::{OrdersError, Result};
use crate::json_records;
use crate::schemas;
use crate::topics::{
    CUSTOMERS, EMAILS, LEVELS, ORDER_VALIDATIONS, ORDERS, ORDERS_ENRICHED, PAYMENTS,
    WAREHOUSE_INVENTORY,
};

/// Where Avro schemas are registered and looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryLocation {
    /// The registry this instance keeps in the log's `_schemas` topic (and serves).
    Log,
    /// An external registry with Confluent's API at this URL.
    Url(String),
}

/// The wire format of the system's topics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Format {
    /// JSON text, field names as in SPEC 2.1 (the default).
    #[default]
    Json,
    /// Avro with Confluent's wire format (magic byte, schema id, Avro binary).
    Avro(RegistryLocation),
}

/// The value serde of each event of the system, in one format.
#[derive(Clone)]
pub struct EventSerdes {
    /// `orders`.
    pub order: SharedSerde<Order>,
    /// `order-validations`.
    pub validation: SharedSerde<OrderValidation>,
    /// `payments`.
    pub payment: SharedSerde<Payment>,
    /// `customers`.
    pub customer: SharedSerde<Customer>,
    /// `orders-enriched` and the level topics.
    pub enriched: SharedSerde<OrderEnriched>,
    /// `warehouse-inventory`.
    pub stock: SharedSerde<StockCount>,
    /// `emails`.
    pub email: SharedSerde<Email>,
    /// The registry's cache, in the Avro format (to show Avro values as JSON).
    schemas: Option<SchemaCache>,
}

fn avro<T>(cache: &SchemaCache, schema: Value) -> Result<SharedSerde<T>>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let serde = AvroSerde::<T>::new(cache.clone(), &schema.to_string()).map_err(|source| {
        OrdersError::Schemas {
            operation: "parsing an event's schema",
            source,
        }
    })?;
    Ok(Arc::new(serde))
}

fn register<T: 'static>(serde: &SharedSerde<T>, topic: &'static str, sample: &T) -> Result<()> {
    serde
        .serialize(topic, sample)
        .map(drop)
        .map_err(|source| OrdersError::Encode {
            topic,
            source: Box::new(source),
        })
}

impl EventSerdes {
    /// JSON, each type's default serde.
    pub fn json() -> Self {
        EventSerdes {
            order: Order::default_serde(),
            validation: OrderValidation::default_serde(),
            payment: Payment::default_serde(),
            customer: Customer::default_serde(),
            enriched: OrderEnriched::default_serde(),
            stock: StockCount::default_serde(),
            email: Email::default_serde(),
            schemas: None,
        }
    }

    /// Avro with the [`schemas`](mod@crate::schemas) of the events, registered through `cache`.
    /// Registers each system topic's subject now, so that later writes find their id in the
    /// cache without calling the registry (the REST API writes from async code).
    pub fn avro(cache: SchemaCache) -> Result<Self> {
        let serdes = EventSerdes {
            order: avro(&cache, schemas::order())?,
            validation: avro(&cache, schemas::order_validation())?,
            payment: avro(&cache, schemas::payment())?,
            customer: avro(&cache, schemas::customer())?,
            enriched: avro(&cache, schemas::order_enriched())?,
            stock: avro(&cache, schemas::stock_count())?,
            email: avro(&cache, schemas::email())?,
            schemas: Some(cache.clone()),
        };
        serdes.register_all()?;
        Ok(serdes)
    }

    /// Whether values are Avro.
    pub fn is_avro(&self) -> bool {
        self.schemas.is_some()
    }

    /// The schema cache, in the Avro format.
    pub fn schema_cache(&self) -> Option<&SchemaCache> {
        self.schemas.as_ref()
    }

    /// Registers the schema of every system topic, writing a sample of each event with its
    /// serde (which also proves that each schema fits its type).
    fn register_all(&self) -> Result<()> {
        let order = sample_order();
        let (payment, customer) = (sample_payment(), sample_customer());
        register(&self.order, ORDERS, &order)?;
        register(&self.validation, ORDER_VALIDATIONS, &sample_validation())?;
        register(&self.payment, PAYMENTS, &payment)?;
        register(&self.customer, CUSTOMERS, &customer)?;
        register(&self.stock, WAREHOUSE_INVENTORY, &StockCount(0))?;
        let email = crate::email::compose(&order, &payment, &customer);
        register(&self.email, EMAILS, &email)?;
        let enriched = OrderEnriched {
            id: order.id,
            customer_id: 0,
            customer_level: crate::domain::DEFAULT_LEVEL.into(),
        };
        for topic in std::iter::once(ORDERS_ENRICHED).chain(LEVELS) {
            register(&self.enriched, topic, &enriched)?;
        }
        Ok(())
    }

    /// The bytes of a JSON value written to `topic` through the topic proxy: in Avro, the
    /// JSON read as the topic's event and encoded with its serde (so a feed's JSON lands as
    /// the services read it); topics of no known event keep the JSON text. `null` is a
    /// tombstone.
    pub fn encode_json(
        &self,
        topic: &str,
        value: &Value,
    ) -> std::result::Result<Option<Bytes>, SerdeError> {
        if value.is_null() || !self.is_avro() {
            return Ok(json_records::value_bytes(value));
        }
        fn typed<T: serde::de::DeserializeOwned + 'static>(
            serde: &SharedSerde<T>,
            topic: &str,
            value: &Value,
        ) -> std::result::Result<Bytes, SerdeError> {
            let typed: T = serde_json::from_value(value.clone()).map_err(|error| SerdeError {
                format: "json",
                reason: format!("not a record of '{topic}': {error}"),
            })?;
            serde.serialize(topic, &typed)
        }
        let bytes = match topic {
            ORDERS => typed(&self.order, topic, value)?,
            ORDER_VALIDATIONS => typed(&self.validation, topic, value)?,
            PAYMENTS => typed(&self.payment, topic, value)?,
            CUSTOMERS => typed(&self.customer, topic, value)?,
            WAREHOUSE_INVENTORY => typed(&self.stock, topic, value)?,
            EMAILS => typed(&self.email, topic, value)?,
            topic if topic == ORDERS_ENRICHED || LEVELS.contains(&topic) => {
                typed(&self.enriched, topic, value)?
            }
            _ => return Ok(json_records::value_bytes(value)),
        };
        Ok(Some(bytes))
    }

    /// A value as JSON for people: Avro in Confluent's wire format decoded with its writer's
    /// schema, else what [`json_records::value_json`] shows.
    pub fn value_json(&self, bytes: &[u8]) -> Value {
        show_value(self.schemas.as_ref(), bytes)
    }
}

/// A value as JSON for people: with `schemas`, Avro in Confluent's wire format is decoded with
/// its writer's schema; anything else shows as [`json_records::value_json`] does.
pub fn show_value(schemas: Option<&SchemaCache>, bytes: &[u8]) -> Value {
    match schemas.and_then(|cache| cache.to_json(bytes)) {
        Some(Ok(json)) => json,
        Some(Err(error)) => Value::String(format!("<undecodable Avro: {}>", error.reason)),
        None => json_records::value_json(bytes),
    }
}

impl Default for EventSerdes {
    fn default() -> Self {
        Self::json()
    }
}

fn sample_order() -> Order {
    Order {
        id: "schema-check".into(),
        customer_id: 0,
        state: crate::domain::OrderState::Created,
        product: crate::domain::Product::Jumpers,
        quantity: 1,
        price: 0.0,
    }
}

fn sample_validation() -> OrderValidation {
    OrderValidation {
        order_id: "schema-check".into(),
        check_type: crate::domain::CheckType::FraudCheck,
        validation_result: crate::domain::ValidationResult::Pass,
    }
}

fn sample_payment() -> Payment {
    Payment {
        id: "schema-check".into(),
        order_id: "schema-check".into(),
        ccy: "EUR".into(),
        amount: 0.0,
    }
}

fn sample_customer() -> Customer {
    Customer {
        id: 0,
        first_name: String::new(),
        last_name: String::new(),
        email: String::new(),
        address: String::new(),
        level: crate::domain::DEFAULT_LEVEL.into(),
    }
}
