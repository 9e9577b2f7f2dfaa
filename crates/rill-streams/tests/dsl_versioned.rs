//! Versioned tables: a stream joins the row as of each record's time, out-of-order updates
//! and deletes included, and versions past the history retention are dropped.

use std::time::Duration;

use rill_streams::{StoreOptions, StreamsBuilder, TopologyTestDriver};

fn s(text: &str) -> String {
    text.to_string()
}

fn driver(history: Duration) -> TopologyTestDriver {
    let builder = StreamsBuilder::new();
    let prices = builder.versioned_table::<String, i64>(
        "prices",
        StoreOptions::in_memory("prices"),
        history,
    );
    builder
        .stream::<String, i64>("orders")
        .left_join(&prices, |quantity: &i64, price: Option<&i64>| {
            price.map_or(s("no price"), |price| (quantity * price).to_string())
        })
        .to("totals");
    TopologyTestDriver::new(builder.build().expect("topology"), "app").expect("driver")
}

fn totals(driver: &mut TopologyTestDriver) -> Vec<String> {
    driver
        .read_output::<String, String>("totals")
        .expect("totals")
        .into_iter()
        .map(|r| r.value)
        .collect()
}

#[test]
fn orders_join_the_price_that_held_when_they_were_placed() {
    let mut driver = driver(Duration::from_secs(3600));
    let tea = s("tea");
    driver.pipe("prices", &tea, &2i64, 100).unwrap();
    driver.pipe("prices", &tea, &5i64, 300).unwrap();
    // Arrives after the 300 price but was set at 200: it holds from 200 to 300.
    driver.pipe("prices", &tea, &3i64, 200).unwrap();
    driver
        .pipe_raw("prices", Some(bytes::Bytes::from("tea")), None, 400)
        .unwrap();
    for placed in [50i64, 150, 250, 350, 450] {
        driver.pipe("orders", &tea, &10i64, placed).unwrap();
    }
    assert_eq!(
        totals(&mut driver),
        vec![s("no price"), s("20"), s("30"), s("50"), s("no price")]
    );
}

#[test]
fn versions_older_than_the_retention_are_dropped_but_the_last_of_them_still_answers() {
    let mut driver = driver(Duration::from_millis(100));
    let tea = s("tea");
    for (price, at) in [(1i64, 0), (2, 10), (3, 20), (4, 500)] {
        driver.pipe("prices", &tea, &price, at).unwrap();
    }
    // Stream time 500: versions at or before 400 are past the retention; of those, only the
    // newest (3, set at 20) is kept, since it held until 500.
    driver.pipe("orders", &tea, &1i64, 5).unwrap();
    driver.pipe("orders", &tea, &1i64, 450).unwrap();
    driver.pipe("orders", &tea, &1i64, 600).unwrap();
    assert_eq!(totals(&mut driver), vec![s("no price"), s("3"), s("4")]);
    // The order at 600 moved stream time on: now the version at 500 is past the retention
    // too, and the newest of the old ones: the only one left.
    let history = driver
        .key_value_store::<bytes::Bytes, bytes::Bytes>("prices-history")
        .expect("history");
    assert_eq!(history.all().expect("all").len(), 1);
}
