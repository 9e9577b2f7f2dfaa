//! The basket service really served: the view runs on the embedded log, basket events are
//! posted over HTTP, and `GET /basket/{customer}` answers from the view, priced from the
//! catalogue.

use std::sync::Arc;
use std::time::Duration;

use rill_examples::shop::http::{BasketAnswer, router};
use rill_examples::shop::{
    BASKET_EVENTS, BASKET_SERVICE, BASKET_VIEW_STORE, BASKETS, Basket, BasketLine, CATALOGUE,
    CatalogueEntry, basket_topology,
};
use rill_log::{Log, Producer, ProducerRecord, TopicConfig};
use rill_log_embedded::{EmbeddedConfig, EmbeddedLog};
use rill_streams::{StreamsApp, StreamsConfig};
use serde_json::json;

/// Longest wait for the view to show a write.
const CATCH_UP: Duration = Duration::from_secs(60);

/// GETs the customer's basket until it is `expected` (the view follows the log), or fails
/// with the last answer after [`CATCH_UP`].
async fn basket_becomes(client: &reqwest::Client, base: &str, customer: i64, expected: &Basket) {
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        let answer = client
            .get(format!("{base}/basket/{customer}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(answer.status(), 200);
        let answer: BasketAnswer = answer.json().await.expect("a basket");
        assert_eq!(answer.customer, customer);
        if &answer.basket == expected {
            return;
        }
        last = Some(answer.basket);
        // Polling the view: there is no change notification to wait on over HTTP.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("customer {customer}'s basket is {last:?}, not {expected:?}");
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    customer: &str,
    event: serde_json::Value,
) -> u16 {
    client
        .post(format!("{base}/basket/{customer}"))
        .json(&event)
        .send()
        .await
        .expect("POST")
        .status()
        .as_u16()
}

#[test]
fn get_basket_answers_from_the_view_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("log"))).expect("log"));
    for topic in [BASKET_EVENTS, CATALOGUE, BASKETS] {
        log.admin()
            .create_topic(topic, &TopicConfig::with_partitions(2))
            .expect("topic");
    }
    let producer: Arc<dyn Producer> = log.producer(&Default::default()).expect("producer").into();
    for (product, name, cents) in [
        ("JUMPERS", "Woolly jumper", 2500),
        ("STOCKINGS", "Silk stockings", 1200),
    ] {
        let entry = serde_json::to_vec(&CatalogueEntry {
            name: name.into(),
            price_cents: cents,
        })
        .expect("json");
        producer
            .send(ProducerRecord::new(CATALOGUE).key(product).value(entry))
            .expect("send")
            .wait()
            .expect("written");
    }
    let mut config = StreamsConfig::new(BASKET_SERVICE, dir.path().join("state"));
    config.commit_interval = Duration::from_millis(50);
    let mut app = StreamsApp::new(basket_topology().expect("topology"), log.clone(), config);
    app.start().expect("start");
    let view = app.store::<i64, Basket>(BASKET_VIEW_STORE).expect("view");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let server = tokio::spawn(axum::serve(listener, router(view, producer)).into_future());
        let client = reqwest::Client::new();

        for event in [
            json!({"type": "item_added", "product": "JUMPERS", "quantity": 2}),
            json!({"type": "item_added", "product": "STOCKINGS", "quantity": 3}),
            json!({"type": "item_removed", "product": "STOCKINGS", "quantity": 1}),
        ] {
            assert_eq!(post(&client, &base, "7", event).await, 202);
        }
        // 2 x 25.00 + 2 x 12.00
        let priced = |product: &str, name: &str, quantity: u32, unit: i64| BasketLine {
            product: product.into(),
            name: Some(name.into()),
            quantity,
            unit_price_cents: Some(unit),
            line_total_cents: Some(unit * i64::from(quantity)),
        };
        let expected = Basket {
            lines: vec![
                priced("JUMPERS", "Woolly jumper", 2, 2500),
                priced("STOCKINGS", "Silk stockings", 2, 1200),
            ],
            total_cents: 7400,
        };
        basket_becomes(&client, &base, 7, &expected).await;
        // The wire form, as documented.
        let raw: serde_json::Value = client
            .get(format!("{base}/basket/7"))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json");
        assert_eq!(raw["totalCents"], 7400);
        assert_eq!(raw["lines"][0]["lineTotalCents"], 5000);

        assert_eq!(
            post(&client, &base, "7", json!({"type": "checked_out"})).await,
            202
        );
        basket_becomes(&client, &base, 7, &Basket::default()).await;
        basket_becomes(&client, &base, 8, &Basket::default()).await;

        // Bad input: refused with a reason, nothing written.
        let zero = json!({"type": "item_added", "product": "JUMPERS", "quantity": 0});
        assert_eq!(post(&client, &base, "7", zero).await, 400);
        assert_eq!(
            post(&client, &base, "7", json!({"type": "thrown_away"})).await,
            400
        );
        let not_a_customer = client
            .get(format!("{base}/basket/ann"))
            .send()
            .await
            .expect("GET");
        assert_eq!(not_a_customer.status(), 400);
        let error: serde_json::Value = not_a_customer.json().await.expect("json");
        assert_eq!(
            error["message"],
            "customer 'ann' is not a customer id (a whole number)"
        );
        server.abort();
    });
    app.close().expect("close");
}
