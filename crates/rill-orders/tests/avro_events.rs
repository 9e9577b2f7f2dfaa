//! The events of SPEC 2.1 in Avro: each round-trips through its schema in Confluent's wire
//! format, a customer written before `level` existed reads as bronze, and JSON given to the
//! topic proxy becomes the topic's Avro and shows back as the same JSON.

use std::sync::Arc;

use rill_log_embedded::{EmbeddedConfig, EmbeddedLog};
use rill_orders::domain::{
    CheckType, Customer, Email, Order, OrderEnriched, OrderState, OrderValidation, OrderValue,
    Payment, Product, StockCount, ValidationResult,
};
use rill_orders::formats::EventSerdes;
use rill_orders::schemas;
use rill_schema::{AvroSerde, LogSchemaRegistry, SchemaCache, wire};
use rill_streams::{Serde, SharedSerde};
use serde_json::json;

fn cache(dir: &std::path::Path) -> (EmbeddedLog, Arc<LogSchemaRegistry>, SchemaCache) {
    let log = EmbeddedLog::open(EmbeddedConfig::new(dir)).expect("log");
    let registry = Arc::new(LogSchemaRegistry::open(&log).expect("registry"));
    let cache = SchemaCache::new(registry.clone());
    (log, registry, cache)
}

fn order() -> Order {
    Order {
        id: "o1".into(),
        customer_id: 7,
        state: OrderState::Validated,
        product: Product::Stockings,
        quantity: 3,
        price: 4.25,
    }
}

fn round_trip<T: PartialEq + std::fmt::Debug + 'static>(
    serde: &SharedSerde<T>,
    topic: &str,
    value: &T,
    registry: &LogSchemaRegistry,
) {
    let bytes = serde.serialize(topic, value).expect("encodes");
    let (id, _) = wire::split(&bytes).expect("framed");
    let registered = registry
        .version(
            &format!("{topic}-value"),
            rill_schema::VersionSelector::Latest,
        )
        .expect("subject registered");
    assert_eq!(registered.id, id, "{topic}");
    assert_eq!(&serde.deserialize(topic, &bytes).expect("decodes"), value);
}

#[test]
fn every_event_round_trips_through_its_schema() {
    let dir = tempfile::tempdir().expect("dir");
    let (_log, registry, cache) = cache(dir.path());
    let serdes = EventSerdes::avro(cache.clone()).expect("schemas register");
    round_trip(&serdes.order, "orders", &order(), &registry);
    let verdict = OrderValidation {
        order_id: "o1".into(),
        check_type: CheckType::OrderDetailsCheck,
        validation_result: ValidationResult::Error,
    };
    round_trip(&serdes.validation, "order-validations", &verdict, &registry);
    let payment = Payment {
        id: "p1".into(),
        order_id: "o1".into(),
        ccy: "EUR".into(),
        amount: 12.75,
    };
    round_trip(&serdes.payment, "payments", &payment, &registry);
    let customer = Customer {
        id: 7,
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        email: "ada@example.com".into(),
        address: "1 Analytical Way".into(),
        level: "gold".into(),
    };
    round_trip(&serdes.customer, "customers", &customer, &registry);
    let enriched = OrderEnriched {
        id: "o1".into(),
        customer_id: 7,
        customer_level: "gold".into(),
    };
    round_trip(&serdes.enriched, "gold", &enriched, &registry);
    round_trip(
        &serdes.stock,
        "warehouse-inventory",
        &StockCount(20),
        &registry,
    );
    let email = Email {
        order_id: "o1".into(),
        to: "ada@example.com".into(),
        subject: "s".into(),
        body: "b".into(),
    };
    round_trip(&serdes.email, "emails", &email, &registry);
    let order_value: SharedSerde<OrderValue> =
        Arc::new(AvroSerde::new(cache, &schemas::order_value().to_string()).expect("schema"));
    let value = OrderValue {
        order: order(),
        value: 12.75,
    };
    round_trip(&order_value, "order-values", &value, &registry);
}

/// A customer written with a schema from before `level` reads with the default level.
#[test]
fn a_customer_without_a_level_reads_as_bronze() {
    let dir = tempfile::tempdir().expect("dir");
    let (_log, _registry, cache) = cache(dir.path());
    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct OldCustomer {
        id: i64,
        first_name: String,
        last_name: String,
        email: String,
        address: String,
    }
    let mut old_schema = schemas::customer();
    let fields = old_schema["fields"].as_array_mut().expect("fields");
    fields.retain(|field| field["name"] != "level");
    let old =
        AvroSerde::<OldCustomer>::new(cache.clone(), &old_schema.to_string()).expect("old schema");
    let bytes = old
        .serialize(
            "customers",
            &OldCustomer {
                id: 1,
                first_name: "A".into(),
                last_name: "B".into(),
                email: "a@b".into(),
                address: "x".into(),
            },
        )
        .expect("encodes");
    let serdes = EventSerdes::avro(cache).expect("current schemas register (BACKWARD)");
    let customer = serdes
        .customer
        .deserialize("customers", &bytes)
        .expect("resolves");
    assert_eq!((customer.id, customer.level.as_str()), (1, "bronze"));
}

#[test]
fn proxy_json_becomes_the_topics_avro_and_shows_back() {
    let dir = tempfile::tempdir().expect("dir");
    let (_log, _registry, cache) = cache(dir.path());
    let serdes = EventSerdes::avro(cache).expect("schemas register");
    let payment = json!({"id": "p1", "orderId": "o1", "ccy": "EUR", "amount": 3.5});
    let bytes = serdes
        .encode_json("payments", &payment)
        .expect("a payment")
        .expect("not a tombstone");
    assert_eq!(bytes[0], wire::MAGIC_BYTE);
    assert_eq!(serdes.value_json(&bytes), payment);
    // A value that is not the topic's event is refused; other topics keep JSON text.
    let error = serdes
        .encode_json("payments", &json!({"id": 1}))
        .expect_err("not a payment");
    assert!(error.reason.contains("payments"), "{error}");
    let other = serdes
        .encode_json("notes", &json!({"a": 1}))
        .expect("JSON")
        .expect("a value");
    assert_eq!(&other[..], br#"{"a":1}"#);
    assert_eq!(
        serdes.encode_json("customers", &json!(null)).expect("ok"),
        None
    );
}
