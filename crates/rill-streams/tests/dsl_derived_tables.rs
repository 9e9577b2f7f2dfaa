//! Tables derived from tables and streams (`KTable::materialize`, `KStream::to_table`), and
//! streams split into named branches (`KStream::split`).

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

#[test]
fn a_stream_read_as_a_table_keeps_the_latest_value_and_deletes_on_tombstones() {
    let builder = StreamsBuilder::new();
    let latest = builder
        .stream::<String, i64>("logins")
        .to_table(StoreOptions::in_memory("last-login"));
    latest.to_stream().to("latest");
    builder
        .stream::<String, Option<String>>("sessions")
        // Re-keyed: the table is built after a repartition by the new key.
        .map(|user, session| (user.to_uppercase(), session))
        .to_table_with_tombstones(StoreOptions::in_memory("open-sessions"));
    let mut driver =
        TopologyTestDriver::new(builder.build().expect("topology"), "app").expect("driver");
    driver.pipe("logins", &s("ann"), &10i64, 1).unwrap();
    driver.pipe("logins", &s("ann"), &20i64, 2).unwrap();
    driver
        .pipe("sessions", &s("ann"), &Some(s("s1")), 3)
        .unwrap();
    driver
        .pipe("sessions", &s("bob"), &Some(s("s2")), 4)
        .unwrap();
    driver
        .pipe("sessions", &s("ann"), &None::<String>, 5)
        .unwrap();

    let logins = driver.key_value_store::<String, i64>("last-login").unwrap();
    assert_eq!(logins.get(&s("ann")).unwrap(), Some(20));
    let latest: Vec<i64> = driver
        .read_output::<String, i64>("latest")
        .unwrap()
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(latest, vec![10, 20]);
    let sessions = driver
        .key_value_store::<String, String>("open-sessions")
        .unwrap();
    assert_eq!(sessions.get(&s("ANN")).unwrap(), None);
    assert_eq!(sessions.get(&s("BOB")).unwrap(), Some(s("s2")));
}

#[test]
fn split_sends_each_record_to_its_first_named_branch_or_the_default() {
    let builder = StreamsBuilder::new();
    let mut branches = builder
        .stream::<String, i64>("amounts")
        .split()
        .branch("refunds", |_, amount| *amount < 0)
        .branch("large", |_, amount| *amount >= 1_000)
        .default_branch("other");
    assert_eq!(
        branches.keys().cloned().collect::<Vec<_>>(),
        vec![s("large"), s("other"), s("refunds")]
    );
    for name in ["refunds", "large", "other"] {
        branches.remove(name).expect("branch").to(name);
    }
    let mut driver =
        TopologyTestDriver::new(builder.build().expect("topology"), "app").expect("driver");
    for amount in [5i64, -3, 2_000, -1_500, 999] {
        driver.pipe("amounts", &s("k"), &amount, 1).unwrap();
    }
    let mut read = |topic: &str| -> Vec<i64> {
        driver
            .read_output::<String, i64>(topic)
            .unwrap()
            .into_iter()
            .map(|r| r.value)
            .collect()
    };
    assert_eq!(read("refunds"), vec![-3, -1_500]);
    assert_eq!(read("large"), vec![2_000]);
    assert_eq!(read("other"), vec![5, 999]);
}

#[test]
fn split_without_a_default_drops_what_no_branch_takes_and_refuses_duplicate_names() {
    let builder = StreamsBuilder::new();
    let branches = builder
        .stream::<String, i64>("amounts")
        .split()
        .branch("refunds", |_, amount| *amount < 0)
        .no_default_branch();
    branches["refunds"].to("refunds");
    let mut driver =
        TopologyTestDriver::new(builder.build().expect("topology"), "app").expect("driver");
    driver.pipe("amounts", &s("k"), &5i64, 1).unwrap();
    driver.pipe("amounts", &s("k"), &-5i64, 2).unwrap();
    let refunds = driver.read_output::<String, i64>("refunds").unwrap();
    assert_eq!(refunds.len(), 1);

    let builder = StreamsBuilder::new();
    let _ = builder
        .stream::<String, i64>("amounts")
        .split()
        .branch("same", |_, _| true)
        .branch("same", |_, _| true)
        .no_default_branch();
    let error = builder.build().err().expect("refused");
    assert!(
        matches!(
            &error,
            rill_streams::StreamsError::DuplicateName { kind: "split branch", name } if name == "same"
        ),
        "{error:?}"
    );
}
