//! Re-aggregating a table by another key (`KTable::group_by`): a changed row leaves its old
//! group and joins its new one; a deleted row leaves its group.

use bytes::Bytes;
use rill_streams::{StoreOptions, StreamsBuilder, TopologyTestDriver};

fn s(text: &str) -> String {
    text.to_string()
}

fn driver(builder: StreamsBuilder) -> TopologyTestDriver {
    TopologyTestDriver::new(builder.build().expect("topology"), "app").expect("driver")
}

#[test]
fn customers_per_level_follow_level_changes_and_deletes() {
    let builder = StreamsBuilder::new();
    let per_level = builder
        .table::<i64, String>("levels", StoreOptions::in_memory("levels"))
        .group_by(|_, level| (level.clone(), ()))
        .count(StoreOptions::in_memory("per-level"));
    per_level.to_stream().to("counts");
    let mut driver = driver(builder);
    driver.pipe("levels", &1i64, &s("gold"), 1).unwrap();
    driver.pipe("levels", &2i64, &s("gold"), 2).unwrap();
    driver.pipe("levels", &3i64, &s("silver"), 3).unwrap();
    driver.pipe("levels", &2i64, &s("silver"), 4).unwrap(); // 2 moves
    driver
        .pipe_raw(
            "levels",
            Some(Bytes::copy_from_slice(&1i64.to_be_bytes())),
            None,
            5,
        )
        .unwrap(); // 1 leaves
    driver.pipe("levels", &3i64, &s("silver"), 6).unwrap(); // same group: out, then back in

    let counts: Vec<(String, i64)> = driver
        .read_output::<String, i64>("counts")
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    assert_eq!(
        counts,
        vec![
            (s("gold"), 1),
            (s("gold"), 2),
            (s("silver"), 1),
            (s("gold"), 1),
            (s("silver"), 2),
            (s("gold"), 0),
            (s("silver"), 1),
            (s("silver"), 2),
        ]
    );
    let store = driver.key_value_store::<String, i64>("per-level").unwrap();
    assert_eq!(store.get(&s("gold")).unwrap(), Some(0));
    assert_eq!(store.get(&s("silver")).unwrap(), Some(2));
}

#[test]
fn reduce_and_aggregate_add_new_values_and_subtract_old_ones() {
    let builder = StreamsBuilder::new();
    // account -> "region:balance"
    let accounts = builder.table::<String, String>("accounts", StoreOptions::in_memory("accounts"));
    let parse = |value: &String| -> (String, i64) {
        let (region, balance) = value.split_once(':').expect("region:balance");
        (region.to_string(), balance.parse().expect("balance"))
    };
    accounts
        .group_by(move |_, value| parse(value))
        .reduce(
            StoreOptions::in_memory("totals"),
            |a, b| a + b,
            |a, b| a - b,
        )
        .to_stream()
        .to("totals");
    accounts
        .group_by(move |_, value| parse(value))
        .aggregate(
            StoreOptions::in_memory("largest-count"),
            || 0i64,
            |_, balance, n| if *balance >= 100 { n + 1 } else { n },
            |_, balance, n| if *balance >= 100 { n - 1 } else { n },
        )
        .to_stream()
        .to("large");
    let mut driver = driver(builder);
    driver
        .pipe("accounts", &s("x"), &s("north:100"), 1)
        .unwrap();
    driver.pipe("accounts", &s("y"), &s("north:30"), 2).unwrap();
    driver
        .pipe("accounts", &s("x"), &s("south:150"), 3)
        .unwrap();
    driver.pipe("accounts", &s("y"), &s("north:5"), 4).unwrap();

    let totals: Vec<(String, i64)> = driver
        .read_output::<String, i64>("totals")
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    assert_eq!(
        totals,
        vec![
            (s("north"), 100),
            (s("north"), 130),
            (s("north"), 30),  // x leaves north
            (s("south"), 150), // x joins south
            (s("north"), 0),   // y's 30 out
            (s("north"), 5),   // y's 5 in
        ]
    );
    let large = driver
        .key_value_store::<String, i64>("largest-count")
        .unwrap();
    assert_eq!(large.get(&s("north")).unwrap(), Some(0));
    assert_eq!(large.get(&s("south")).unwrap(), Some(1));
}

#[test]
fn cogrouped_streams_fold_into_one_aggregate_per_key() {
    let builder = StreamsBuilder::new();
    let clicks = builder.stream::<String, String>("clicks").group_by_key();
    // Re-keyed: repartitioned before it joins the aggregate.
    let purchases = builder
        .stream::<String, i64>("purchases")
        .group_by(|_, amount| {
            if *amount > 0 {
                s("buyer")
            } else {
                s("refunder")
            }
        });
    clicks
        .cogroup(|_, page: &String, mut summary: String| {
            summary.push_str(&format!("click {page};"));
            summary
        })
        .cogroup(&purchases, |_, amount: &i64, mut summary: String| {
            summary.push_str(&format!("paid {amount};"));
            summary
        })
        .aggregate(StoreOptions::in_memory("activity"), String::new)
        .to_stream()
        .to("activity");
    let mut driver = driver(builder);
    driver.pipe("clicks", &s("buyer"), &s("/a"), 1).unwrap();
    driver.pipe("purchases", &s("x"), &5i64, 2).unwrap();
    driver.pipe("clicks", &s("buyer"), &s("/b"), 3).unwrap();
    driver.pipe("purchases", &s("y"), &-2i64, 4).unwrap();
    let activity: Vec<(String, String)> = driver
        .read_output::<String, String>("activity")
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    assert_eq!(
        activity,
        vec![
            (s("buyer"), s("click /a;")),
            (s("buyer"), s("click /a;paid 5;")),
            (s("buyer"), s("click /a;paid 5;click /b;")),
            (s("refunder"), s("paid -2;")),
        ]
    );
    let store = driver
        .key_value_store::<String, String>("activity")
        .unwrap();
    assert_eq!(
        store.get(&s("buyer")).unwrap(),
        Some(s("click /a;paid 5;click /b;"))
    );
    let topics: Vec<String> = builder_topics();
    assert!(
        topics.contains(&s("app-activity-cogroup-1-repartition")),
        "{topics:?}"
    );
}

/// The internal topics of the cogroup topology above, by name.
fn builder_topics() -> Vec<String> {
    let builder = StreamsBuilder::new();
    let clicks = builder.stream::<String, String>("clicks").group_by_key();
    let purchases = builder
        .stream::<String, i64>("purchases")
        .group_by(|_, _| s("k"));
    clicks
        .cogroup(|_, _, n: i64| n + 1)
        .cogroup(&purchases, |_, _, n: i64| n + 1)
        .aggregate(StoreOptions::in_memory("activity"), || 0);
    builder
        .build()
        .expect("topology")
        .internal_topics("app")
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// An aggregate type without a default serde: "count:sum" as text.
#[derive(Clone, Debug, PartialEq)]
struct Stats {
    count: i64,
    sum: i64,
}

struct StatsSerde;

impl rill_streams::Serde<Stats> for StatsSerde {
    fn serialize(
        &self,
        _topic: &str,
        value: &Stats,
    ) -> Result<bytes::Bytes, rill_streams::SerdeError> {
        Ok(bytes::Bytes::from(format!("{}:{}", value.count, value.sum)))
    }

    fn deserialize(&self, _topic: &str, bytes: &[u8]) -> Result<Stats, rill_streams::SerdeError> {
        let bad = || rill_streams::SerdeError {
            format: "stats",
            reason: "expected count:sum".into(),
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad())?;
        let (count, sum) = text.split_once(':').ok_or_else(bad)?;
        Ok(Stats {
            count: count.parse().map_err(|_| bad())?,
            sum: sum.parse().map_err(|_| bad())?,
        })
    }
}

#[test]
fn an_aggregate_without_a_default_serde_is_kept_with_the_serde_given() {
    use std::sync::Arc;
    let builder = StreamsBuilder::new();
    let serde: rill_streams::SharedSerde<Stats> = Arc::new(StatsSerde);
    builder
        .stream::<String, i64>("amounts")
        .group_by_key()
        .aggregate_with(
            StoreOptions::in_memory("stats"),
            serde.clone(),
            || Stats { count: 0, sum: 0 },
            |_, amount, stats| Stats {
                count: stats.count + 1,
                sum: stats.sum + amount,
            },
        )
        .to_stream()
        .to_with("stats", Arc::new(rill_streams::StringSerde), serde.clone());
    let mut driver = driver(builder);
    driver.pipe("amounts", &s("k"), &5i64, 1).unwrap();
    driver.pipe("amounts", &s("k"), &7i64, 2).unwrap();
    let raw: Vec<Vec<u8>> = driver
        .read_raw("stats")
        .into_iter()
        .map(|r| r.value.unwrap_or_default().to_vec())
        .collect();
    assert_eq!(raw, vec![b"1:5".to_vec(), b"2:12".to_vec()]);
}
