//! The DSL and processor API, run through the test driver against hand-computed expectations.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rill_streams::{
    DeserializationPolicy, ErrorClass, InitContext, KeyValueStore, Processor, ProcessorContext,
    PunctuationType, PunctuatorId, Record, Result, StoreOptions, StreamsBuilder, StreamsError,
    TopologyTestDriver,
};

fn s(text: &str) -> String {
    text.to_string()
}

fn values<K, V: Clone>(records: &[Record<K, V>]) -> Vec<V> {
    records.iter().map(|r| r.value.clone()).collect()
}

fn pairs<K: Clone, V: Clone>(records: &[Record<K, V>]) -> Vec<(K, V)> {
    records
        .iter()
        .map(|r| (r.key.clone(), r.value.clone()))
        .collect()
}

#[test]
fn stateless_operators_transform_in_order() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .filter(|_, v| !v.is_empty())
        .filter_not(|_, v| v.starts_with('#'))
        .map_values(|v| v.to_uppercase())
        .flat_map_values(|v| v.split(' ').map(str::to_string).collect())
        .map(|k, v| (format!("{k}!"), v.len() as i64))
        .to("out");
    let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
    for (i, line) in ["ab cde", "", "#skip", "f"].iter().enumerate() {
        driver.pipe("in", &s("k"), &s(line), i as i64).unwrap();
    }
    let out = driver.read_output::<String, i64>("out").unwrap();
    assert_eq!(pairs(&out), vec![(s("k!"), 2), (s("k!"), 3), (s("k!"), 1)]);
    assert_eq!(
        out.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
        vec![0, 0, 3]
    );
}

#[test]
fn branch_sends_each_record_to_the_first_matching_branch_and_merge_joins_them() {
    let builder = StreamsBuilder::new();
    let branches = builder.stream::<String, i64>("numbers").branch(vec![
        Box::new(|_, v| *v < 0),
        Box::new(|_, v| *v % 2 == 0),
        Box::new(|_, _| true),
    ]);
    branches[0].to("negative");
    branches[1].to("even");
    branches[2].to("other");
    branches[0].merge(&branches[1]).to("negative-or-even");
    let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
    for (i, n) in [-2i64, 4, 5, -1, 6].iter().enumerate() {
        driver.pipe("numbers", &s("k"), n, i as i64).unwrap();
    }
    assert_eq!(
        values(&driver.read_output::<String, i64>("negative").unwrap()),
        vec![-2, -1]
    );
    assert_eq!(
        values(&driver.read_output::<String, i64>("even").unwrap()),
        vec![4, 6]
    );
    assert_eq!(
        values(&driver.read_output::<String, i64>("other").unwrap()),
        vec![5]
    );
    assert_eq!(
        values(
            &driver
                .read_output::<String, i64>("negative-or-even")
                .unwrap()
        ),
        vec![-2, 4, -1, 6]
    );
}

#[test]
fn word_count_repartitions_by_the_new_key_and_logs_the_store() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("sentences")
        .flat_map_values(|line| line.split_whitespace().map(str::to_lowercase).collect())
        .group_by(|_, word| word.clone())
        .count(StoreOptions::persistent("word-counts"))
        .to_stream()
        .to("counts");
    let topology = builder.build().unwrap();
    assert_eq!(topology.subtopologies().len(), 2, "{}", topology.describe());
    // What the dashboard draws: the repartition topic between the subtopologies is not one.
    assert_eq!(
        topology.external_topics(),
        (vec!["sentences".to_string()], vec!["counts".to_string()])
    );
    let internal = topology.internal_topics("wc");
    assert!(
        internal
            .iter()
            .any(|(t, _)| t == "wc-word-counts-repartition"),
        "{internal:?}"
    );
    assert!(
        internal
            .iter()
            .any(|(t, _)| t == "wc-word-counts-changelog"),
        "{internal:?}"
    );
    let mut driver = TopologyTestDriver::new(topology, "wc").unwrap();
    driver
        .pipe("sentences", &s("1"), &s("the cat"), 10)
        .unwrap();
    driver
        .pipe("sentences", &s("2"), &s("The dog"), 11)
        .unwrap();
    let out = driver.read_output::<String, i64>("counts").unwrap();
    assert_eq!(
        pairs(&out),
        vec![(s("the"), 1), (s("cat"), 1), (s("the"), 2), (s("dog"), 1)]
    );
    let store = driver
        .key_value_store::<String, i64>("word-counts")
        .unwrap();
    assert_eq!(store.get(&s("the")).unwrap(), Some(2));
    let changelog = driver.read_raw("wc-word-counts-changelog");
    assert_eq!(changelog.len(), 4);
    assert_eq!(changelog[2].key.as_deref(), Some(&b"the"[..]));
    assert_eq!(changelog[2].value.as_deref(), Some(&2i64.to_be_bytes()[..]));
}

#[test]
fn reduce_and_aggregate_fold_per_key() {
    let builder = StreamsBuilder::new();
    let grouped = builder.stream::<String, i64>("amounts").group_by_key();
    grouped
        .reduce(StoreOptions::in_memory("max"), |a, b| *a.max(b))
        .to_stream()
        .to("max");
    grouped
        .aggregate(
            StoreOptions::in_memory("sum-list"),
            String::new,
            |_, v, acc| format!("{acc}{v},"),
        )
        .to_stream()
        .to("lists");
    let topology = builder.build().unwrap();
    assert_eq!(
        topology.subtopologies().len(),
        1,
        "no repartition when the key is unchanged"
    );
    let mut driver = TopologyTestDriver::new(topology, "app").unwrap();
    for (key, amount) in [("a", 3i64), ("b", 1), ("a", 7), ("a", 5)] {
        driver.pipe("amounts", &s(key), &amount, 0).unwrap();
    }
    assert_eq!(
        pairs(&driver.read_output::<String, i64>("max").unwrap()),
        vec![(s("a"), 3), (s("b"), 1), (s("a"), 7), (s("a"), 7)]
    );
    assert_eq!(
        values(&driver.read_output::<String, String>("lists").unwrap()),
        vec![s("3,"), s("1,"), s("3,7,"), s("3,7,5,")]
    );
}

#[test]
fn stream_table_joins_inner_and_left() {
    let builder = StreamsBuilder::new();
    let prices = builder.table::<String, i64>("prices", StoreOptions::in_memory("prices"));
    let orders = builder.stream::<String, i64>("orders");
    orders.join(&prices, |qty, price| qty * price).to("totals");
    orders
        .left_join(&prices, |qty, price| price.map(|p| qty * p).unwrap_or(-1))
        .to("totals-or-missing");
    let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
    driver.pipe("orders", &s("jumper"), &2i64, 1).unwrap();
    driver.pipe("prices", &s("jumper"), &10i64, 2).unwrap();
    driver.pipe("orders", &s("jumper"), &3i64, 3).unwrap();
    driver
        .pipe_raw("prices", Some(Bytes::from("jumper")), None, 4)
        .unwrap();
    driver.pipe("orders", &s("jumper"), &4i64, 5).unwrap();
    assert_eq!(
        values(&driver.read_output::<String, i64>("totals").unwrap()),
        vec![30]
    );
    assert_eq!(
        values(
            &driver
                .read_output::<String, i64>("totals-or-missing")
                .unwrap()
        ),
        vec![-1, 30, -1]
    );
}

#[test]
fn stream_global_table_join_uses_a_key_from_the_value() {
    let builder = StreamsBuilder::new();
    let customers = builder.global_table::<i64, String>("customers", "customers-store");
    builder
        .stream::<String, i64>("orders")
        .join_global(
            &customers,
            |_, customer| *customer,
            |customer, name| format!("{customer}:{name}"),
        )
        .to("named");
    let topology = builder.build().unwrap();
    // A global table's topic is read too.
    assert_eq!(
        topology.external_topics(),
        (
            vec!["customers".to_string(), "orders".to_string()],
            vec!["named".to_string()]
        )
    );
    assert!(
        topology
            .describe()
            .contains("Global store: customers-store")
    );
    let mut driver = TopologyTestDriver::new(topology, "app").unwrap();
    driver.pipe("customers", &7i64, &s("ann"), 1).unwrap();
    driver.pipe("orders", &s("o1"), &7i64, 2).unwrap();
    driver.pipe("orders", &s("o2"), &8i64, 3).unwrap();
    let out = driver.read_output::<String, String>("named").unwrap();
    assert_eq!(pairs(&out), vec![(s("o1"), s("7:ann"))]);
}

#[test]
fn table_table_joins_emit_updates_from_either_side() {
    let builder = StreamsBuilder::new();
    let left = builder.table::<String, String>("left", StoreOptions::in_memory("left"));
    let right = builder.table::<String, String>("right", StoreOptions::in_memory("right"));
    left.join(&right, |l, r| format!("{l}+{r}"))
        .to_stream()
        .to("inner");
    left.left_join(&right, |l, r| {
        format!("{l}+{}", r.map_or("_", String::as_str))
    })
    .to_stream()
    .to("left-out");
    left.outer_join(&right, |l, r| {
        format!(
            "{}+{}",
            l.map_or("_", String::as_str),
            r.map_or("_", String::as_str)
        )
    })
    .to_stream()
    .to("outer");
    let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
    driver.pipe("left", &s("k"), &s("a"), 1).unwrap();
    driver.pipe("right", &s("k"), &s("x"), 2).unwrap();
    driver.pipe("right", &s("j"), &s("y"), 3).unwrap();
    assert_eq!(
        values(&driver.read_output::<String, String>("inner").unwrap()),
        vec![s("a+x")]
    );
    assert_eq!(
        values(&driver.read_output::<String, String>("left-out").unwrap()),
        vec![s("a+_"), s("a+x")]
    );
    assert_eq!(
        values(&driver.read_output::<String, String>("outer").unwrap()),
        vec![s("a+_"), s("a+x"), s("_+y")]
    );
}

#[test]
fn records_are_routed_to_the_topic_the_extractor_names() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .to_dynamic(|record| format!("level-{}", record.value));
    let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
    driver.pipe("in", &s("o1"), &s("gold"), 1).unwrap();
    driver.pipe("in", &s("o2"), &s("bronze"), 2).unwrap();
    assert_eq!(
        driver
            .read_output::<String, String>("level-gold")
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        driver
            .read_output::<String, String>("level-bronze")
            .unwrap()[0]
            .key,
        "o2"
    );
}

#[test]
fn undecodable_records_go_to_the_dead_letter_topic_and_processing_continues() {
    let builder = StreamsBuilder::new();
    builder.stream::<String, i64>("in").to("out");
    let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
    driver
        .pipe_raw("in", Some(Bytes::from("k")), Some(Bytes::from("short")), 1)
        .unwrap();
    driver.pipe("in", &s("k"), &5i64, 2).unwrap();
    assert_eq!(
        values(&driver.read_output::<String, i64>("out").unwrap()),
        vec![5]
    );
    let dead = driver.read_raw("app-dlq");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value.as_deref(), Some(&b"short"[..]));
    let error = dead[0]
        .headers
        .iter()
        .find(|h| h.key == "rill.error")
        .unwrap();
    let error = String::from_utf8(error.value.clone().unwrap().to_vec()).unwrap();
    assert!(error.contains("expected 8 bytes"), "{error}");
    assert_eq!(driver.metrics().dead_letters, 1);
}

/// Sums values per key in a store; emits all sums on punctuation.
struct SumAndReport {
    store: Option<KeyValueStore<String, i64>>,
    stream_punctuator: Option<PunctuatorId>,
    fired: Arc<Mutex<Vec<(&'static str, i64)>>>,
}

impl Processor<String, i64, String, i64> for SumAndReport {
    fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<()> {
        self.store = Some(ctx.key_value_store("sums")?);
        self.stream_punctuator =
            Some(ctx.schedule(Duration::from_millis(10), PunctuationType::StreamTime));
        ctx.schedule(Duration::from_secs(1), PunctuationType::WallClockTime);
        Ok(())
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, String, i64>,
        record: Record<String, i64>,
    ) -> Result<()> {
        let store = self.store.as_ref().expect("initialized");
        let sum = store.get(&record.key)?.unwrap_or(0) + record.value;
        store.put(&record.key, &sum)
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        id: PunctuatorId,
        timestamp: i64,
    ) -> Result<()> {
        let kind = if Some(id) == self.stream_punctuator {
            "stream"
        } else {
            "wall"
        };
        self.fired
            .lock()
            .expect("not poisoned")
            .push((kind, timestamp));
        for (key, sum) in self.store.as_ref().expect("initialized").all()? {
            ctx.forward(Record::new(key, sum, timestamp))?;
        }
        Ok(())
    }
}

#[test]
fn processor_api_stores_and_punctuators_on_both_clocks() {
    let fired = Arc::new(Mutex::new(Vec::new()));
    let builder = StreamsBuilder::new();
    builder
        .add_state_store::<String, i64>(StoreOptions::in_memory("sums"))
        .unwrap();
    let supplier_fired = fired.clone();
    builder
        .stream::<String, i64>("in")
        .process(
            move || SumAndReport {
                store: None,
                stream_punctuator: None,
                fired: supplier_fired.clone(),
            },
            &["sums"],
        )
        .to("sums-out");
    let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
    driver.pipe("in", &s("a"), &1i64, 100).unwrap(); // starts the stream-time grid: due at 110
    driver.pipe("in", &s("a"), &2i64, 105).unwrap();
    assert!(fired.lock().unwrap().is_empty());
    driver.pipe("in", &s("b"), &5i64, 112).unwrap(); // stream time 112 >= 110: fires once
    driver.pipe("in", &s("b"), &5i64, 90).unwrap(); // out of order: stream time stays 112
    assert_eq!(*fired.lock().unwrap(), vec![("stream", 112)]);
    assert_eq!(
        pairs(&driver.read_output::<String, i64>("sums-out").unwrap()),
        vec![(s("a"), 3), (s("b"), 5)]
    );
    driver
        .advance_wall_clock(Duration::from_millis(999))
        .unwrap();
    assert_eq!(fired.lock().unwrap().len(), 1);
    driver.advance_wall_clock(Duration::from_millis(1)).unwrap();
    assert_eq!(fired.lock().unwrap().last(), Some(&("wall", 1000)));
    assert_eq!(
        pairs(&driver.read_output::<String, i64>("sums-out").unwrap()),
        vec![(s("a"), 3), (s("b"), 10)]
    );
}

#[test]
fn a_processor_asking_for_an_unconnected_store_fails_clearly() {
    struct Sneaky;
    impl Processor<String, String, String, String> for Sneaky {
        fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<()> {
            ctx.key_value_store::<String, String>("secret").map(|_| ())
        }
        fn process(
            &mut self,
            _: &mut ProcessorContext<'_, String, String>,
            _: Record<String, String>,
        ) -> Result<()> {
            Ok(())
        }
    }
    let builder = StreamsBuilder::new();
    builder
        .add_state_store::<String, String>(StoreOptions::in_memory("secret"))
        .unwrap();
    let _: rill_streams::KStream<String, String> = builder
        .stream::<String, String>("in")
        .process(|| Sneaky, &[]);
    let error = TopologyTestDriver::new(builder.build().unwrap(), "app")
        .err()
        .expect("init fails");
    match &error {
        StreamsError::StoreNotConnected { store, .. } => assert_eq!(store, "secret"),
        other => panic!("expected StoreNotConnected, got {other:?}"),
    }
    assert_eq!(error.class(), ErrorClass::InvalidInput);
}

#[test]
fn a_processor_asking_for_a_store_with_another_value_type_gets_a_typed_error() {
    struct Confused;
    impl Processor<String, String, String, String> for Confused {
        fn process(
            &mut self,
            _: &mut ProcessorContext<'_, String, String>,
            _: Record<String, String>,
        ) -> Result<()> {
            Ok(())
        }
    }
    let builder = StreamsBuilder::new();
    builder
        .add_state_store::<String, i64>(StoreOptions::in_memory("counts"))
        .unwrap();
    let _: rill_streams::KStream<String, String> =
        builder.stream::<String, String>("in").process_built(
            |ctx| {
                // The store holds i64 values.
                ctx.key_value_store::<String, String>("counts")?;
                Ok(Confused)
            },
            &["counts"],
        );
    let error = TopologyTestDriver::new(builder.build().unwrap(), "app")
        .err()
        .expect("init fails");
    match &error {
        StreamsError::StoreType {
            store,
            what,
            expected,
        } => {
            assert_eq!(store, "counts");
            assert_eq!(*what, "value");
            assert_eq!(*expected, std::any::type_name::<String>());
        }
        other => panic!("expected StoreType, got {other:?}"),
    }
    assert_eq!(error.class(), ErrorClass::InvalidInput);
}

#[test]
fn duplicate_store_names_and_unknown_stores_are_refused_at_build() {
    let builder = StreamsBuilder::new();
    let stream = builder.stream::<String, String>("in");
    stream.group_by_key().count(StoreOptions::in_memory("c"));
    stream.group_by_key().count(StoreOptions::in_memory("c"));
    let error = builder.build().err().expect("duplicate store");
    assert!(
        matches!(&error, StreamsError::DuplicateName { kind: "store", name } if name == "c"),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::InvalidInput);

    let builder = StreamsBuilder::new();
    let _: rill_streams::KStream<String, String> = builder
        .stream::<String, String>("in")
        .process(|| Noop, &["missing"]);
    let error = builder.build().err().expect("unknown store");
    match &error {
        StreamsError::UnknownStore {
            store,
            used_by: Some(node),
        } => {
            assert_eq!(store, "missing");
            assert!(node.starts_with("KSTREAM-PROCESSOR"), "{node}");
        }
        other => panic!("expected UnknownStore, got {other:?}"),
    }
    assert_eq!(error.class(), ErrorClass::InvalidInput);
}

#[test]
fn errors_keep_their_source() {
    use std::error::Error as _;

    // An undecodable value, read by a stream's source or a table's: the serde's error is
    // the source, and only the record failed.
    let builder = StreamsBuilder::new();
    builder.stream::<String, i64>("in").to("out");
    builder.table::<String, i64>("rows", StoreOptions::in_memory("rows"));
    let mut driver = TopologyTestDriver::with_policy(
        builder.build().unwrap(),
        "app",
        DeserializationPolicy::Fail,
    )
    .unwrap();
    for topic in ["in", "rows"] {
        let error = driver
            .pipe_raw(topic, Some(Bytes::from("k")), Some(Bytes::from("abc")), 1)
            .expect_err("three bytes are no i64");
        match &error {
            StreamsError::Serde {
                topic: named, what, ..
            } => {
                assert_eq!(named, topic);
                assert_eq!(*what, "value");
            }
            other => panic!("expected a Serde error, got {other:?}"),
        }
        assert_eq!(error.class(), ErrorClass::Record);
        assert!(
            error
                .source()
                .is_some_and(|s| s.downcast_ref::<rill_streams::SerdeError>().is_some()),
            "{error:?}"
        );
    }
    // A table row without a value is a delete, not an undecodable record.
    driver
        .pipe_raw("rows", Some(Bytes::from("k")), None, 2)
        .expect("a tombstone deletes");

    // A processor's own error comes back as itself.
    #[derive(Debug, thiserror::Error)]
    #[error("refused")]
    struct Refused;
    struct Refuser;
    impl Processor<String, String, String, String> for Refuser {
        fn process(
            &mut self,
            _: &mut ProcessorContext<'_, String, String>,
            _: Record<String, String>,
        ) -> Result<()> {
            Err(StreamsError::processor("refuser", Refused))
        }
    }
    let builder = StreamsBuilder::new();
    let _: rill_streams::KStream<String, String> = builder
        .stream::<String, String>("in")
        .process(|| Refuser, &[]);
    let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
    let error = driver.pipe("in", &s("k"), &s("v"), 1).expect_err("refused");
    assert_eq!(error.class(), ErrorClass::Record);
    assert!(
        error
            .source()
            .is_some_and(|s| s.downcast_ref::<Refused>().is_some()),
        "{error:?}"
    );

    // A store the engine cannot create: the file system's error is the source.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let error = rill_streams::PersistentKeyValueStore::open(&file, "s")
        .expect_err("a file is no state directory");
    assert!(
        matches!(error, StreamsError::StoreEngine { .. }),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Fatal);
    assert!(
        error
            .source()
            .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some()),
        "{error:?}"
    );
}

struct Noop;
impl Processor<String, String, String, String> for Noop {
    fn process(
        &mut self,
        _: &mut ProcessorContext<'_, String, String>,
        _: Record<String, String>,
    ) -> Result<()> {
        Ok(())
    }
}

#[test]
fn topology_describes_itself_as_text_and_dot() {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .select_key(|_, v| v.clone())
        .group_by_key()
        .count(StoreOptions::in_memory("by-value"));
    let topology = builder.build().unwrap();
    let text = topology.describe();
    assert!(text.contains("Sub-topology: 1"), "{text}");
    assert!(
        text.contains("(topics: [<application>-by-value-repartition])"),
        "{text}"
    );
    assert!(text.contains("(stores: [by-value])"), "{text}");
    let dot = topology.to_dot();
    assert!(dot.starts_with("digraph topology {"));
    assert!(dot.contains("\"store:by-value\" [shape=cylinder"), "{dot}");
}

#[test]
fn a_table_can_use_explicit_serdes() {
    let builder = StreamsBuilder::new();
    let stock = builder.table_with(
        "stock",
        StoreOptions::in_memory("stock"),
        Arc::new(rill_streams::StringSerde),
        Arc::new(rill_streams::JsonSerde::<i64>::new()),
    );
    builder
        .stream::<String, i64>("wanted")
        .join(&stock, |wanted, available| available - wanted)
        .to("left-over");
    let mut driver = TopologyTestDriver::new(builder.build().unwrap(), "app").unwrap();
    // The stock topic holds JSON numbers, as `rill add-inventory` writes them.
    driver
        .pipe_raw(
            "stock",
            Some(Bytes::from("JUMPERS")),
            Some(Bytes::from("20")),
            1,
        )
        .unwrap();
    driver.pipe("wanted", &s("JUMPERS"), &3i64, 2).unwrap();
    assert_eq!(
        values(&driver.read_output::<String, i64>("left-over").unwrap()),
        vec![17]
    );
}
