//! Derived tables kept in stores of their own (`KTable::materialize`): joined and queried
//! like source tables, and deleted rows leave them.

use rill_streams::{StoreOptions, StreamsBuilder, TopologyTestDriver};

fn s(text: &str) -> String {
    text.to_string()
}

#[test]
fn a_filtered_table_materialized_can_be_joined_and_queried() {
    let builder = StreamsBuilder::new();
    let vip = builder
        .table::<String, i64>("spend", StoreOptions::in_memory("spend"))
        .filter(|_, total| *total >= 100)
        .map_values(|total| format!("vip since {total}"))
        .materialize(StoreOptions::in_memory("vips"));
    builder
        .stream::<String, String>("visits")
        .join(&vip, |page: &String, status: &String| {
            format!("{page}: {status}")
        })
        .to("vip-visits");
    let mut driver =
        TopologyTestDriver::new(builder.build().expect("topology"), "app").expect("driver");
    driver.pipe("spend", &s("ann"), &150i64, 1).unwrap();
    driver.pipe("spend", &s("bob"), &20i64, 2).unwrap();
    driver.pipe("visits", &s("ann"), &s("/shoes"), 3).unwrap();
    driver.pipe("visits", &s("bob"), &s("/hats"), 4).unwrap();
    driver.pipe("spend", &s("ann"), &50i64, 5).unwrap(); // no longer a vip
    driver.pipe("visits", &s("ann"), &s("/socks"), 6).unwrap();

    let visits: Vec<(String, String)> = driver
        .read_output::<String, String>("vip-visits")
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    assert_eq!(visits, vec![(s("ann"), s("/shoes: vip since 150"))]);
    let vips = driver.key_value_store::<String, String>("vips").unwrap();
    assert_eq!(vips.get(&s("ann")).unwrap(), None);
    assert_eq!(vips.get(&s("bob")).unwrap(), None);
    driver.pipe("spend", &s("bob"), &300i64, 7).unwrap();
    let vips = driver.key_value_store::<String, String>("vips").unwrap();
    assert_eq!(vips.get(&s("bob")).unwrap(), Some(s("vip since 300")));
}
