//! Foreign-key table-table joins: each order joined with the customer its value names,
//! following changes on either side, foreign-key changes and deletes.

use bytes::Bytes;
use rill_streams::{StoreOptions, StreamsBuilder, TopologyTestDriver};

fn s(text: &str) -> String {
    text.to_string()
}

/// orders (order id -> customer id) joined with customers (customer id -> name); every change
/// of the result is written to `out` (`None`: the order left the result).
fn driver(left_join: bool) -> TopologyTestDriver {
    let builder = StreamsBuilder::new();
    let orders = builder.table::<String, i64>("orders", StoreOptions::in_memory("orders"));
    let customers = builder.table::<i64, String>("customers", StoreOptions::in_memory("customers"));
    let joined = if left_join {
        orders.left_join_foreign(
            &customers,
            |customer: &i64| (*customer > 0).then_some(*customer),
            |customer, name: Option<&String>| match name {
                Some(name) => format!("{name} ({customer})"),
                None => format!("unknown ({customer})"),
            },
            StoreOptions::in_memory("orders-named"),
        )
    } else {
        orders.join_foreign(
            &customers,
            |customer: &i64| Some(*customer),
            |customer, name: &String| format!("{name} ({customer})"),
            StoreOptions::in_memory("orders-named"),
        )
    };
    joined.to_change_stream().to("out");
    TopologyTestDriver::new(builder.build().expect("topology"), "app").expect("driver")
}

fn changes(driver: &mut TopologyTestDriver) -> Vec<(String, Option<String>)> {
    driver
        .read_output::<String, Option<String>>("out")
        .expect("out")
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect()
}

fn delete(driver: &mut TopologyTestDriver, topic: &str, key: Bytes) {
    driver
        .pipe_raw(topic, Some(key), None, 100)
        .expect("delete");
}

#[test]
fn an_inner_foreign_key_join_follows_both_sides() {
    let mut driver = driver(false);
    driver.pipe("customers", &1i64, &s("ann"), 1).unwrap();
    driver.pipe("customers", &2i64, &s("bob"), 2).unwrap();
    driver.pipe("orders", &s("o1"), &1i64, 3).unwrap();
    driver.pipe("orders", &s("o2"), &3i64, 4).unwrap(); // no customer 3 yet
    assert_eq!(changes(&mut driver), vec![(s("o1"), Some(s("ann (1)")))]);

    driver.pipe("customers", &3i64, &s("cy"), 5).unwrap();
    driver.pipe("customers", &1i64, &s("anne"), 6).unwrap();
    assert_eq!(
        changes(&mut driver),
        vec![(s("o2"), Some(s("cy (3)"))), (s("o1"), Some(s("anne (1)")))]
    );

    // o1 moves to customer 2: customer 1's changes no longer reach it.
    driver.pipe("orders", &s("o1"), &2i64, 7).unwrap();
    driver.pipe("customers", &1i64, &s("annie"), 8).unwrap();
    assert_eq!(changes(&mut driver), vec![(s("o1"), Some(s("bob (2)")))]);

    // Deletes on either side remove the joined row.
    delete(
        &mut driver,
        "customers",
        Bytes::copy_from_slice(&2i64.to_be_bytes()),
    );
    delete(&mut driver, "orders", Bytes::from("o2"));
    assert_eq!(changes(&mut driver), vec![(s("o1"), None), (s("o2"), None)]);

    let store = driver
        .key_value_store::<String, String>("orders-named")
        .expect("store");
    assert_eq!(store.get(&s("o1")).unwrap(), None);
    assert_eq!(store.get(&s("o2")).unwrap(), None);
    // A customer coming back joins again.
    driver.pipe("customers", &2i64, &s("bo"), 9).unwrap();
    assert_eq!(changes(&mut driver), vec![(s("o1"), Some(s("bo (2)")))]);
}

#[test]
fn a_left_foreign_key_join_keeps_rows_without_a_match() {
    let mut driver = driver(true);
    driver.pipe("orders", &s("o1"), &7i64, 1).unwrap();
    driver.pipe("orders", &s("o2"), &0i64, 2).unwrap(); // no foreign key at all
    driver.pipe("customers", &7i64, &s("gil"), 3).unwrap();
    assert_eq!(
        changes(&mut driver),
        vec![
            (s("o1"), Some(s("unknown (7)"))),
            (s("o2"), Some(s("unknown (0)"))),
            (s("o1"), Some(s("gil (7)"))),
        ]
    );
}

#[test]
fn a_foreign_key_join_needs_materialized_tables() {
    let builder = StreamsBuilder::new();
    let orders = builder
        .table::<String, i64>("orders", StoreOptions::in_memory("orders"))
        .filter(|_, _| true);
    let customers = builder.table::<i64, String>("customers", StoreOptions::in_memory("customers"));
    let _ = orders.join_foreign(
        &customers,
        |customer: &i64| Some(*customer),
        |_, name: &String| name.clone(),
        StoreOptions::in_memory("joined"),
    );
    let error = builder.build().err().expect("refused");
    assert!(
        matches!(
            error,
            rill_streams::StreamsError::NotMaterialized {
                operation: "a foreign-key join"
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("materialize"), "{error}");
}
