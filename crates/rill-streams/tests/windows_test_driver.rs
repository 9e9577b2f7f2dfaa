//! Windows and stream-stream joins through the test driver, against hand-computed
//! expectations: tumbling, hopping, sliding, session (merging with retraction), count and
//! event-interval windows, grace periods and late records, suppression, and inner / left /
//! outer joins with out-of-order arrivals.

use std::time::Duration;

use rill_streams::{
    CountWindows, EventIntervalWindows, JoinWindows, KStream, KTable, Record, SessionWindows,
    SlidingWindows, StoreOptions, StreamsBuilder, TimeWindows, TopologyTestDriver, Window,
    Windowed,
};

fn s(text: &str) -> String {
    text.to_string()
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// (key, window start, window end, value) of each windowed output.
fn windowed<V: Clone>(records: &[Record<Windowed<String>, V>]) -> Vec<(String, i64, i64, V)> {
    records
        .iter()
        .map(|r| {
            (
                r.key.key.clone(),
                r.key.window.start,
                r.key.window.end,
                r.value.clone(),
            )
        })
        .collect()
}

/// Writes a windowed table's updates as text, deletions (retractions) as "-".
fn changes_to(table: &KTable<Windowed<String>, i64>, topic: &str) {
    table
        .to_change_stream()
        .map_values(|v: Option<i64>| v.map_or(s("-"), |v| v.to_string()))
        .to(topic);
}

fn driver(builder: StreamsBuilder) -> TopologyTestDriver {
    TopologyTestDriver::new(builder.build().expect("topology"), "win").expect("driver")
}

fn pipe(driver: &mut TopologyTestDriver, topic: &str, key: &str, value: i64, time: i64) {
    driver.pipe(topic, &s(key), &value, time).expect("pipe");
}

fn pipe_text(driver: &mut TopologyTestDriver, topic: &str, key: &str, value: &str, time: i64) {
    driver.pipe(topic, &s(key), &s(value), time).expect("pipe");
}

#[test]
fn tumbling_windows_accept_out_of_order_records_within_grace_and_drop_later_ones() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of(ms(10)).grace(ms(5)))
        .count(StoreOptions::in_memory("counts"))
        .to_stream()
        .to("out");
    let mut driver = driver(builder);
    // Stream time 12 when 3 arrives: [0, 10) closes at 10 + 5 = 15, still open.
    // Stream time 16 when 4 arrives: [0, 10) has closed; 4 is late.
    for time in [1, 5, 12, 3, 16, 4] {
        pipe(&mut driver, "in", "a", 0, time);
    }
    let out = driver.read_output::<Windowed<String>, i64>("out").unwrap();
    assert_eq!(
        windowed(&out),
        vec![
            (s("a"), 0, 10, 1),
            (s("a"), 0, 10, 2),
            (s("a"), 10, 20, 1),
            (s("a"), 0, 10, 3),
            (s("a"), 10, 20, 2),
        ]
    );
    assert_eq!(driver.metrics().late_records_dropped, 1);
    let store = driver.window_store::<String, i64>("counts").unwrap();
    assert_eq!(store.fetch(&s("a"), 0, 100).unwrap(), vec![(0, 3), (10, 2)]);
    assert_eq!(store.fetch(&s("a"), 5, 100).unwrap(), vec![(10, 2)]);
}

#[test]
fn hopping_windows_put_a_record_in_every_window_that_covers_it() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of(ms(10)).advance_by(ms(5)))
        .reduce(StoreOptions::in_memory("sums"), |a, b| a + b)
        .to_stream()
        .to("out");
    let mut driver = driver(builder);
    pipe(&mut driver, "in", "a", 1, 7);
    pipe(&mut driver, "in", "a", 2, 12);
    pipe(&mut driver, "in", "b", 4, 12);
    let out = driver.read_output::<Windowed<String>, i64>("out").unwrap();
    assert_eq!(
        windowed(&out),
        vec![
            (s("a"), 0, 10, 1),
            (s("a"), 5, 15, 1),
            (s("a"), 5, 15, 3),
            (s("a"), 10, 20, 2),
            (s("b"), 5, 15, 4),
            (s("b"), 10, 20, 4),
        ]
    );
    let store = driver.window_store::<String, i64>("sums").unwrap();
    let all: Vec<(String, i64, i64)> = store
        .fetch_key_range(&s("a"), &s("b"), 5, 10)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.key, k.window.start, v))
        .collect();
    assert_eq!(
        all,
        vec![
            (s("a"), 5, 3),
            (s("a"), 10, 2),
            (s("b"), 5, 4),
            (s("b"), 10, 4)
        ]
    );
}

#[test]
fn sliding_windows_cover_each_distinct_set_of_records_even_out_of_order() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(SlidingWindows::with_time_difference(ms(10)).grace(ms(10)))
        .reduce(StoreOptions::in_memory("sliding"), |a, b| a + b)
        .to_stream()
        .to("out");
    let mut driver = driver(builder);
    pipe(&mut driver, "in", "a", 1, 5);
    pipe(&mut driver, "in", "a", 2, 12);
    // Out of order: 8 joins [2, 12] and [6, 16], gets its own [-2, 8], and opens [9, 19]
    // (just after it), which holds 12.
    pipe(&mut driver, "in", "a", 4, 8);
    pipe(&mut driver, "in", "a", 8, 40);
    // 15 + 10 + 10 < 40: every window holding it has closed.
    pipe(&mut driver, "in", "a", 16, 15);
    let out = driver.read_output::<Windowed<String>, i64>("out").unwrap();
    assert_eq!(
        windowed(&out),
        vec![
            (s("a"), -5, 5, 1),
            (s("a"), 2, 12, 3),
            (s("a"), 6, 16, 2),
            (s("a"), -2, 8, 5),
            (s("a"), 2, 12, 7),
            (s("a"), 6, 16, 6),
            (s("a"), 9, 19, 2),
            (s("a"), 30, 40, 8),
        ]
    );
    assert_eq!(driver.metrics().late_records_dropped, 1);
}

#[test]
fn sessions_merge_and_retract_the_sessions_they_replace() {
    let builder = StreamsBuilder::new();
    let counts = builder
        .stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(SessionWindows::with_inactivity_gap(ms(10)).grace(ms(30)))
        .count(StoreOptions::in_memory("sessions"));
    changes_to(&counts, "out");
    let mut driver = driver(builder);
    pipe(&mut driver, "in", "a", 0, 0);
    pipe(&mut driver, "in", "a", 0, 30);
    // 20 is within the gap of 30 only.
    pipe(&mut driver, "in", "a", 0, 20);
    // 10 bridges [0, 0] and [20, 30].
    pipe(&mut driver, "in", "a", 0, 10);
    pipe(&mut driver, "in", "b", 0, 31);
    let out = driver
        .read_output::<Windowed<String>, String>("out")
        .unwrap();
    assert_eq!(
        windowed(&out),
        vec![
            (s("a"), 0, 0, s("1")),
            (s("a"), 30, 30, s("1")),
            (s("a"), 30, 30, s("-")),
            (s("a"), 20, 30, s("2")),
            (s("a"), 0, 0, s("-")),
            (s("a"), 20, 30, s("-")),
            (s("a"), 0, 30, s("4")),
            (s("b"), 31, 31, s("1")),
        ]
    );
    let store = driver.session_store::<String, i64>("sessions").unwrap();
    assert_eq!(
        store.fetch_windows(&s("a"), 0, 100).unwrap(),
        vec![(Window::new(0, 30), 4)]
    );
    // Stream time 60: a record at 5 is past 5 + 30 (and [0, 30] it would join has closed).
    pipe(&mut driver, "in", "c", 0, 60);
    pipe(&mut driver, "in", "a", 0, 5);
    assert_eq!(driver.metrics().late_records_dropped, 1);
    let out = driver
        .read_output::<Windowed<String>, String>("out")
        .unwrap();
    assert_eq!(windowed(&out), vec![(s("c"), 60, 60, s("1"))]);
}

#[test]
fn session_aggregate_merges_with_the_merger_and_suppression_emits_final_sessions_only() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(SessionWindows::with_inactivity_gap(ms(10)).grace(ms(20)))
        .aggregate(
            StoreOptions::in_memory("sums"),
            || 0,
            |_, v, sum| sum + v,
            |_, a, b| a + b,
        )
        .suppress_until_window_closes()
        .to_stream()
        .to("final");
    let mut driver = driver(builder);
    pipe(&mut driver, "in", "a", 1, 0);
    pipe(&mut driver, "in", "a", 2, 12);
    pipe(&mut driver, "in", "a", 4, 6); // merges [0, 0] and [12, 12] into [0, 12]
    pipe(&mut driver, "in", "b", 8, 14);
    pipe(&mut driver, "in", "b", 16, 15);
    assert!(
        driver
            .read_output::<Windowed<String>, i64>("final")
            .unwrap()
            .is_empty()
    );
    // [0, 12] closes once stream time passes 12 + 20.
    pipe(&mut driver, "in", "c", 0, 33);
    let out = driver
        .read_output::<Windowed<String>, i64>("final")
        .unwrap();
    assert_eq!(windowed(&out), vec![(s("a"), 0, 12, 7)]);
    pipe(&mut driver, "in", "c", 0, 100);
    let out = driver
        .read_output::<Windowed<String>, i64>("final")
        .unwrap();
    assert_eq!(
        windowed(&out),
        vec![(s("b"), 14, 15, 24), (s("c"), 33, 33, 0)]
    );
}

#[test]
fn suppression_of_time_windows_waits_for_the_grace_period() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of(ms(10)).grace(ms(5)))
        .count(StoreOptions::in_memory("counts"))
        .suppress_until_window_closes()
        .to_stream()
        .to("final");
    let mut driver = driver(builder);
    for time in [1, 2, 12, 14, 3] {
        pipe(&mut driver, "in", "a", 0, time);
    }
    assert!(
        driver
            .read_output::<Windowed<String>, i64>("final")
            .unwrap()
            .is_empty()
    );
    // Stream time 15 = 10 + 5: [0, 10) is final, with the out-of-order record at 3.
    pipe(&mut driver, "in", "b", 0, 15);
    let out = driver
        .read_output::<Windowed<String>, i64>("final")
        .unwrap();
    assert_eq!(windowed(&out), vec![(s("a"), 0, 10, 3)]);
    pipe(&mut driver, "in", "b", 0, 40);
    let out = driver
        .read_output::<Windowed<String>, i64>("final")
        .unwrap();
    assert_eq!(
        windowed(&out),
        vec![(s("a"), 10, 20, 2), (s("b"), 10, 20, 1)]
    );
}

#[test]
fn count_windows_emit_every_n_events_tumbling_hopping_and_sliding() {
    let builder = StreamsBuilder::new();
    let grouped = builder.stream::<String, i64>("in").group_by_key();
    grouped
        .windowed_by(CountWindows::of(3))
        .reduce(StoreOptions::in_memory("tumbling"), |a, b| a + b)
        .to_stream()
        .to("tumbling");
    grouped
        .windowed_by(CountWindows::of(3).advance_by(2))
        .reduce(StoreOptions::in_memory("hopping"), |a, b| a + b)
        .to_stream()
        .to("hopping");
    grouped
        .windowed_by(CountWindows::of(3).advance_by(1))
        .count(StoreOptions::in_memory("sliding"))
        .suppress_until_window_closes()
        .to_stream()
        .to("sliding");
    let mut driver = driver(builder);
    for i in 1..=7 {
        pipe(&mut driver, "in", "a", i, i * 10);
    }
    pipe(&mut driver, "in", "b", 100, 75);
    let tumbling = driver
        .read_output::<Windowed<String>, i64>("tumbling")
        .unwrap();
    assert_eq!(
        windowed(&tumbling),
        vec![(s("a"), 10, 30, 6), (s("a"), 40, 60, 15)]
    );
    let hopping = driver
        .read_output::<Windowed<String>, i64>("hopping")
        .unwrap();
    assert_eq!(
        windowed(&hopping),
        vec![
            (s("a"), 10, 30, 6),
            (s("a"), 30, 50, 12),
            (s("a"), 50, 70, 18)
        ]
    );
    let sliding = driver
        .read_output::<Windowed<String>, i64>("sliding")
        .unwrap();
    assert_eq!(
        windowed(&sliding),
        vec![
            (s("a"), 10, 30, 3),
            (s("a"), 20, 40, 3),
            (s("a"), 30, 50, 3),
            (s("a"), 40, 60, 3),
            (s("a"), 50, 70, 3),
        ]
    );
}

#[test]
fn event_interval_windows_open_close_expire_and_cap() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("events")
        .group_by_key()
        .windowed_by(
            EventIntervalWindows::new(
                |_: &String, v: &String| v.contains("start"),
                |_: &String, v: &String| v.contains("stop"),
            )
            .expire_after(ms(100))
            .max_events(3),
        )
        .aggregate(
            StoreOptions::in_memory("intervals"),
            String::new,
            |_, v, acc| {
                if acc.is_empty() {
                    v.clone()
                } else {
                    format!("{acc}+{v}")
                }
            },
        )
        .to_stream()
        .to("out");
    let mut driver = driver(builder);
    for (time, event) in [
        (1, "start1"),
        (2, "x"),
        (3, "stop"), // closes [1, 2]; not part of it
        (4, "y"),    // outside any window: ignored
        (5, "start2"),
        (6, "stopstart"), // closes [5, 5] first, then opens the next window
        (7, "z"),
    ] {
        pipe_text(&mut driver, "events", "a", event, time);
    }
    let out = driver
        .read_output::<Windowed<String>, String>("out")
        .unwrap();
    assert_eq!(
        windowed(&out),
        vec![(s("a"), 1, 2, s("start1+x")), (s("a"), 5, 5, s("start2"))]
    );
    // Another key moves stream time past 6 + 100: a's window expires without a new event.
    pipe_text(&mut driver, "events", "b", "noise", 200);
    let out = driver
        .read_output::<Windowed<String>, String>("out")
        .unwrap();
    assert_eq!(windowed(&out), vec![(s("a"), 6, 7, s("stopstart+z"))]);
    for (time, event) in [(300, "start3"), (301, "m"), (302, "n"), (303, "o")] {
        pipe_text(&mut driver, "events", "a", event, time);
    }
    let out = driver
        .read_output::<Windowed<String>, String>("out")
        .unwrap();
    assert_eq!(windowed(&out), vec![(s("a"), 300, 302, s("start3+m+n"))]);
}

fn join_inputs(builder: &StreamsBuilder) -> (KStream<String, String>, KStream<String, String>) {
    (
        builder.stream::<String, String>("left"),
        builder.stream::<String, String>("right"),
    )
}

fn triples(records: &[Record<String, String>]) -> Vec<(String, String, i64)> {
    records
        .iter()
        .map(|r| (r.key.clone(), r.value.clone(), r.timestamp))
        .collect()
}

#[test]
fn inner_join_pairs_records_within_the_window_whatever_side_comes_first() {
    let builder = StreamsBuilder::new();
    let (left, right) = join_inputs(&builder);
    left.join_stream(&right, JoinWindows::of(ms(10)), |l, r| format!("{l}+{r}"))
        .to("joined");
    let mut driver = driver(builder);
    pipe_text(&mut driver, "right", "a", "r1", 5);
    pipe_text(&mut driver, "left", "a", "l1", 12); // 5 is within [2, 22]
    pipe_text(&mut driver, "left", "a", "l2", 30);
    pipe_text(&mut driver, "right", "a", "r2", 25); // out of order, finds l2 at 30
    pipe_text(&mut driver, "left", "b", "lb", 31);
    pipe_text(&mut driver, "right", "a", "r3", 5); // 5 + 10 < 31: late
    pipe_text(&mut driver, "right", "a", "r4", 45); // l2 (30) is not within 10
    let out = driver.read_output::<String, String>("joined").unwrap();
    assert_eq!(
        triples(&out),
        vec![(s("a"), s("l1+r1"), 12), (s("a"), s("l2+r2"), 30)]
    );
    assert_eq!(driver.metrics().late_records_dropped, 1);
}

#[test]
fn asymmetric_join_windows_only_look_the_configured_way() {
    let builder = StreamsBuilder::new();
    let (left, right) = join_inputs(&builder);
    left.join_stream(
        &right,
        JoinWindows::of(Duration::ZERO).after(ms(10)).grace(ms(20)),
        |l, r| format!("{l}+{r}"),
    )
    .to("joined");
    let mut driver = driver(builder);
    pipe_text(&mut driver, "right", "a", "r-before", 5);
    pipe_text(&mut driver, "left", "a", "l", 8); // looks at [8, 18]: 5 is before
    pipe_text(&mut driver, "right", "a", "r-after", 15);
    pipe_text(&mut driver, "right", "a", "r-outside", 19);
    let out = driver.read_output::<String, String>("joined").unwrap();
    assert_eq!(triples(&out), vec![(s("a"), s("l+r-after"), 15)]);
}

fn show(value: Option<&String>) -> &str {
    value.map_or("-", String::as_str)
}

#[test]
fn left_join_emits_a_lone_record_only_once_its_window_has_closed() {
    let builder = StreamsBuilder::new();
    let (left, right) = join_inputs(&builder);
    left.left_join_stream(&right, JoinWindows::of(ms(10)), |l, r| {
        format!("{l}+{}", show(r))
    })
    .to("joined");
    let mut driver = driver(builder);
    pipe_text(&mut driver, "left", "a", "l1", 0);
    pipe_text(&mut driver, "right", "a", "r1", 5);
    pipe_text(&mut driver, "left", "b", "l2", 10);
    pipe_text(&mut driver, "left", "d", "ld", 25);
    pipe_text(&mut driver, "right", "d", "rd", 30); // ld is matched: never emitted alone
    pipe_text(&mut driver, "left", "c", "l3", 30);
    let out = driver.read_output::<String, String>("joined").unwrap();
    assert_eq!(
        triples(&out),
        vec![(s("a"), s("l1+r1"), 5), (s("d"), s("ld+rd"), 30)],
        "no lone record before its window closes"
    );
    // Stream time 31 > 10 + 10 + 10: nothing can join l2 any more.
    pipe_text(&mut driver, "left", "e", "l4", 31);
    let out = driver.read_output::<String, String>("joined").unwrap();
    assert_eq!(triples(&out), vec![(s("b"), s("l2+-"), 10)]);
    pipe_text(&mut driver, "right", "z", "rz", 100);
    let out = driver.read_output::<String, String>("joined").unwrap();
    assert_eq!(
        triples(&out),
        vec![(s("c"), s("l3+-"), 30), (s("e"), s("l4+-"), 31)],
        "right records are never emitted alone by a left join"
    );
}

#[test]
fn outer_join_emits_lone_records_of_both_sides_in_time_order() {
    let builder = StreamsBuilder::new();
    let (left, right) = join_inputs(&builder);
    left.outer_join_stream(&right, JoinWindows::of(ms(5)), |l, r| {
        format!("{}+{}", show(l), show(r))
    })
    .to("joined");
    let mut driver = driver(builder);
    pipe_text(&mut driver, "right", "x", "rx", 0);
    pipe_text(&mut driver, "left", "y", "ly", 1);
    pipe_text(&mut driver, "left", "x", "lx", 3); // matches rx: neither is alone any more
    pipe_text(&mut driver, "right", "w", "rw", 2);
    pipe_text(&mut driver, "left", "z", "lz", 100);
    let out = driver.read_output::<String, String>("joined").unwrap();
    assert_eq!(
        triples(&out),
        vec![
            (s("x"), s("lx+rx"), 3),
            (s("y"), s("ly+-"), 1),
            (s("w"), s("-+rw"), 2),
        ]
    );
}

#[test]
fn windowed_keys_round_trip_through_their_serde() {
    use rill_streams::DefaultSerde;
    let serde = Windowed::<String>::default_serde();
    let key = Windowed::new(s("k"), Window::new(-10, 20));
    let bytes = serde.serialize("t", &key).unwrap();
    assert_eq!(bytes.len(), 1 + 16);
    assert_eq!(serde.deserialize("t", &bytes).unwrap(), key);
    assert!(serde.deserialize("t", b"short").is_err());
}

#[test]
fn invalid_window_specifications_fail_the_build() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of(ms(10)).advance_by(ms(20)))
        .count(StoreOptions::in_memory("bad"));
    assert!(builder.build().is_err());
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("in")
        .group_by_key()
        .windowed_by(CountWindows::of(0))
        .count(StoreOptions::in_memory("bad"));
    assert!(builder.build().is_err());
}

#[test]
fn a_named_stream_join_keeps_its_store_and_changelog_names() {
    let builder = StreamsBuilder::new();
    let left = builder.stream::<String, String>("left");
    let right = builder.stream::<String, String>("right");
    left.left_join_stream(
        &right,
        JoinWindows::of(Duration::from_secs(1)).named("pairs"),
        |l, r| format!("{l}{}", r.map_or("", String::as_str)),
    )
    .to("joined");
    let topics: Vec<String> = builder
        .build()
        .expect("topology")
        .internal_topics("app")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for store in [
        "pairs-this-store",
        "pairs-other-store",
        "pairs-unmatched-store",
    ] {
        assert!(
            topics.contains(&format!("app-{store}-changelog")),
            "{store} in {topics:?}"
        );
    }
}

#[test]
fn a_named_suppression_keeps_its_buffer_topic_when_the_topology_grows() {
    let topology = |extra_step: bool| {
        let builder = StreamsBuilder::new();
        let mut stream = builder.stream::<String, i64>("in");
        if extra_step {
            stream = stream.filter(|_, v| *v >= 0);
        }
        stream
            .group_by_key()
            .windowed_by(TimeWindows::of(ms(10)))
            .count(StoreOptions::in_memory("counts"))
            .suppress_until_window_closes_named("final-counts")
            .to_stream()
            .to("final");
        builder.build().expect("topology")
    };
    let buffers = |extra_step: bool| -> Vec<String> {
        topology(extra_step)
            .internal_topics("app")
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| name.contains("buffer"))
            .collect()
    };
    assert_eq!(buffers(false), vec![s("app-final-counts-buffer-changelog")]);
    assert_eq!(buffers(true), buffers(false));
}

#[test]
fn suppression_until_a_time_limit_sends_each_keys_latest_update_and_makes_room_when_full() {
    let builder = StreamsBuilder::new();
    builder
        .table::<String, i64>("prices", StoreOptions::in_memory("prices"))
        .suppress_until_time_limit(ms(10), 2, "limited")
        .to_change_stream()
        .map_values(|v: Option<i64>| v.map_or(s("-"), |v| v.to_string()))
        .to("out");
    let mut driver = driver(builder);
    let price = |driver: &mut TopologyTestDriver, key: &str, value: i64, time: i64| {
        driver.pipe("prices", &s(key), &value, time).expect("pipe");
    };
    let out = |driver: &mut TopologyTestDriver| -> Vec<(String, String, i64)> {
        driver
            .read_output::<String, String>("out")
            .expect("out")
            .into_iter()
            .map(|r| (r.key, r.value, r.timestamp))
            .collect()
    };
    price(&mut driver, "a", 1, 0);
    price(&mut driver, "b", 1, 1);
    price(&mut driver, "b", 2, 5); // replaces b's value, keeps its limit (11)
    assert!(out(&mut driver).is_empty());
    // A third key waits: more than two would, so the one waiting longest (a) goes now.
    price(&mut driver, "c", 1, 6);
    assert_eq!(out(&mut driver), vec![(s("a"), s("1"), 6)]);
    // Stream time 11: b's limit ran out; c (due 16) waits on.
    price(&mut driver, "c", 7, 11);
    assert_eq!(out(&mut driver), vec![(s("b"), s("2"), 11)]);
    // A deletion waits like an update, and replaces c's value.
    driver
        .pipe_raw("prices", Some(bytes::Bytes::from("c")), None, 12)
        .expect("delete");
    price(&mut driver, "z", 0, 16);
    assert_eq!(out(&mut driver), vec![(s("c"), s("-"), 16)]);
}
