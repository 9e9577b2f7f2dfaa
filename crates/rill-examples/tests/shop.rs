//! The shop on the test driver: baskets priced from the catalogue (removals, a checkout, a
//! price change, a product the catalogue lacks), and shipping (a FAILED order is not shipped,
//! a VALIDATED order seen twice is shipped once).

use rill_examples::Outputs;
use rill_examples::shop::{
    BASKET_CONTENTS_STORE, BASKET_EVENTS, BASKET_VIEW_STORE, BASKETS, Basket, BasketContents,
    BasketEvent, BasketEventError, BasketLine, CATALOGUE, CatalogueEntry, LineKey, ORDERS,
    PRICED_LINES_STORE, SHIPMENTS, SHIPPED_STORE, SHIPPING_SERVICE, shipping_topology,
    topology_into,
};
use rill_orders::domain::{Order, OrderState, Product};
use rill_streams::TopologyTestDriver;

fn driver() -> TopologyTestDriver {
    let topology = topology_into(&Outputs::default()).expect("topology");
    let mut driver = TopologyTestDriver::new(topology, "shop").expect("driver");
    price(&mut driver, "JUMPERS", "Woolly jumper", 2500);
    price(&mut driver, "UNDERPANTS", "Cotton underpants", 750);
    price(&mut driver, "STOCKINGS", "Silk stockings", 1200);
    driver
}

fn price(driver: &mut TopologyTestDriver, product: &str, name: &str, cents: i64) {
    let entry = CatalogueEntry {
        name: name.into(),
        price_cents: cents,
    };
    driver
        .pipe(CATALOGUE, &product.to_string(), &entry, 0)
        .expect("pipe");
}

fn send(driver: &mut TopologyTestDriver, customer: i64, event: BasketEvent) {
    driver
        .pipe(BASKET_EVENTS, &customer, &event, 0)
        .expect("pipe");
}

fn add(product: &str, quantity: u32) -> BasketEvent {
    BasketEvent::ItemAdded {
        product: product.into(),
        quantity,
    }
}

fn remove(product: &str, quantity: u32) -> BasketEvent {
    BasketEvent::ItemRemoved {
        product: product.into(),
        quantity,
    }
}

fn line(product: &str, name: &str, quantity: u32, unit: i64) -> BasketLine {
    BasketLine {
        product: product.into(),
        name: Some(name.into()),
        quantity,
        unit_price_cents: Some(unit),
        line_total_cents: Some(unit * i64::from(quantity)),
    }
}

fn unpriced(product: &str, quantity: u32) -> BasketLine {
    BasketLine {
        product: product.into(),
        name: None,
        quantity,
        unit_price_cents: None,
        line_total_cents: None,
    }
}

fn view(driver: &TopologyTestDriver, customer: i64) -> Option<Basket> {
    driver
        .key_value_store::<i64, Basket>(BASKET_VIEW_STORE)
        .expect("store")
        .get(&customer)
        .expect("get")
}

/// The last basket written to `baskets` per customer, in the order written.
fn published(driver: &mut TopologyTestDriver) -> Vec<(i64, Basket)> {
    driver
        .read_output::<i64, Basket>(BASKETS)
        .expect("output")
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect()
}

#[test]
fn a_basket_is_priced_from_the_catalogue_and_follows_removals_and_price_changes() {
    let mut driver = driver();
    send(&mut driver, 1, add("JUMPERS", 2));
    send(&mut driver, 1, add("STOCKINGS", 3));
    send(&mut driver, 1, remove("STOCKINGS", 1));
    // 2 x 25.00 + 2 x 12.00
    let expected = Basket {
        lines: vec![
            line("JUMPERS", "Woolly jumper", 2, 2500),
            line("STOCKINGS", "Silk stockings", 2, 1200),
        ],
        total_cents: 5000 + 2400,
    };
    assert_eq!(view(&driver, 1), Some(expected.clone()));
    assert_eq!(
        published(&mut driver).last(),
        Some(&(1, expected)),
        "the view's changes are published"
    );

    // Not in the catalogue: in the basket without a price, not in the total.
    send(&mut driver, 1, add("HATS", 1));
    // A sale: every basket holding jumpers is repriced.
    price(&mut driver, "JUMPERS", "Woolly jumper", 2200);
    assert_eq!(
        view(&driver, 1),
        Some(Basket {
            lines: vec![
                unpriced("HATS", 1),
                line("JUMPERS", "Woolly jumper", 2, 2200),
                line("STOCKINGS", "Silk stockings", 2, 1200),
            ],
            total_cents: 4400 + 2400,
        })
    );

    // Removing more than the basket holds removes the line; removing what it does not hold
    // changes nothing.
    send(&mut driver, 1, remove("STOCKINGS", 5));
    let _ = published(&mut driver);
    send(&mut driver, 1, remove("UNDERPANTS", 1));
    assert!(published(&mut driver).is_empty(), "nothing changed");
    assert_eq!(
        view(&driver, 1),
        Some(Basket {
            lines: vec![
                unpriced("HATS", 1),
                line("JUMPERS", "Woolly jumper", 2, 2200)
            ],
            total_cents: 4400,
        })
    );
    // The product arrives in the catalogue: the line gets its price.
    price(&mut driver, "HATS", "Felt hat", 1500);
    assert_eq!(view(&driver, 1).map(|b| b.total_cents), Some(4400 + 1500));
}

#[test]
fn a_checkout_empties_the_basket_and_the_next_one_starts_afresh() {
    let mut driver = driver();
    send(&mut driver, 2, add("UNDERPANTS", 4));
    send(&mut driver, 3, add("JUMPERS", 1));
    assert_eq!(view(&driver, 2).map(|b| b.total_cents), Some(4 * 750));

    send(&mut driver, 2, BasketEvent::CheckedOut);
    assert_eq!(view(&driver, 2), Some(Basket::default()));
    assert_eq!(published(&mut driver).last(), Some(&(2, Basket::default())));
    let contents = driver
        .key_value_store::<i64, BasketContents>(BASKET_CONTENTS_STORE)
        .expect("store");
    assert_eq!(
        contents.get(&2).expect("get"),
        None,
        "the basket is forgotten"
    );
    let lines = driver
        .key_value_store::<LineKey, BasketLine>(PRICED_LINES_STORE)
        .expect("store")
        .all()
        .expect("all");
    let customers: Vec<i64> = lines.iter().map(|(key, _)| key.customer).collect();
    assert_eq!(customers, vec![3], "only customer 3 has lines left");

    // Four underpants were bought: a new basket holds only what is added after.
    send(&mut driver, 2, add("UNDERPANTS", 1));
    assert_eq!(
        view(&driver, 2),
        Some(Basket {
            lines: vec![line("UNDERPANTS", "Cotton underpants", 1, 750)],
            total_cents: 750,
        })
    );
    assert_eq!(
        view(&driver, 3).map(|b| b.total_cents),
        Some(2500),
        "another customer's basket is untouched"
    );
}

fn order(id: &str, customer: i64, state: OrderState) -> Order {
    Order {
        id: id.into(),
        customer_id: customer,
        state,
        product: Product::Stockings,
        quantity: 2,
        price: 12.0,
    }
}

#[test]
fn validated_orders_ship_once_and_failed_ones_never() {
    // The shipping service alone, as its own application would run it.
    let topology = shipping_topology().expect("topology");
    let mut driver = TopologyTestDriver::new(topology, SHIPPING_SERVICE).expect("driver");
    let orders = [
        order("o1", 1, OrderState::Created),
        order("o2", 2, OrderState::Created),
        order("o1", 1, OrderState::Validated),
        order("o2", 2, OrderState::Failed),
        order("o3", 3, OrderState::Validated),
        // The same verdict again (a repeated record): already shipped.
        order("o3", 3, OrderState::Validated),
    ];
    for (at, order) in (1..).zip(orders) {
        driver.pipe(ORDERS, &order.id, &order, at).expect("pipe");
    }
    let shipped: Vec<(String, Order, i64)> = driver
        .read_output::<String, Order>(SHIPMENTS)
        .expect("output")
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect();
    assert_eq!(
        shipped,
        vec![
            ("o1".to_string(), order("o1", 1, OrderState::Shipped), 3),
            ("o3".to_string(), order("o3", 3, OrderState::Shipped), 5),
        ]
    );
    let store = driver
        .key_value_store::<String, i64>(SHIPPED_STORE)
        .expect("store");
    assert_eq!(store.get(&"o3".to_string()).expect("get"), Some(5));
    assert_eq!(store.get(&"o2".to_string()).expect("get"), None);
}

#[test]
fn the_basket_service_refuses_an_item_without_a_product_or_quantity() {
    assert_eq!(add("", 1).validate(), Err(BasketEventError::NoProduct));
    assert_eq!(
        remove("HATS", 0).validate(),
        Err(BasketEventError::ZeroQuantity {
            product: "HATS".into()
        })
    );
    assert_eq!(add("HATS", 1).validate(), Ok(()));
    assert_eq!(BasketEvent::CheckedOut.validate(), Ok(()));
}
