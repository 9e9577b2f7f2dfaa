//! The record cache in front of key-value stores: repeated writes of a key within a commit
//! become one changelog record with the last value, reads see cached writes and deletes, a
//! cache past its bound writes through early, and restores stay exact.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rill_log::{Log, ProducerRecord, TopicConfig};
use rill_log_embedded::{EmbeddedLog, FsyncPolicy};
use rill_streams::{
    KeyValueStore, Processor, ProcessorContext, Record, Result, StoreOptions, StreamsApp,
    StreamsBuilder, StreamsConfig, Topology, TopologyTestDriver,
};

mod common;

use common::{committed_records, key_and_count, open_log};

const APP: &str = "cached";
const CHANGELOG: &str = "cached-counts-changelog";

/// Counts words into the persistent store `counts`, forwarding every new count to `counts`.
fn word_count(store: StoreOptions) -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("words")
        // Keyed by the word already: no repartition, whose records would wait for a commit.
        .group_by_key()
        .count(store)
        .to_stream()
        .to("counts");
    builder.build().expect("topology")
}

/// One input partition, and no commit until the application closes: every record is
/// processed within one commit interval.
fn config(state: &Path, cache_max_bytes: usize) -> StreamsConfig {
    let mut config = StreamsConfig::new(APP, state);
    config.commit_interval = Duration::from_secs(3600);
    config.commit_when_caught_up = false;
    config.cache_max_bytes = cache_max_bytes;
    config
}

fn produce_words(log: &EmbeddedLog, words: &[String]) {
    for topic in ["words", "counts"] {
        log.admin()
            .create_topic(topic, &TopicConfig::with_partitions(1))
            .expect("topic");
    }
    let producer = log.producer(&Default::default()).expect("producer");
    for (i, word) in words.iter().enumerate() {
        // Acknowledgements are awaited all at once by the flush below.
        drop(
            producer
                .send(
                    ProducerRecord::new("words")
                        .key(word.clone())
                        .value(i.to_string()),
                )
                .expect("send"),
        );
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

fn await_processed(app: &StreamsApp, records: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.records_processed() < records {
        assert!(
            Instant::now() < deadline,
            "processed {} of {records}",
            app.records_processed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What runs through the word count: changelog records, output records, final counts.
struct Run {
    changelog: Vec<(String, i64)>,
    output: usize,
}

/// Counts `words` in one commit interval, checks the counts through an interactive query
/// before the commit, then closes (committing) and reads what reached the log.
fn count_in_one_commit(
    log: &Arc<EmbeddedLog>,
    state: &Path,
    store: StoreOptions,
    cache_max_bytes: usize,
    words: &[String],
) -> Run {
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for word in words {
        *expected.entry(word.clone()).or_default() += 1;
    }
    produce_words(log, words);
    let mut app = StreamsApp::new(
        word_count(store),
        log.clone(),
        config(state, cache_max_bytes),
    );
    app.start().expect("start");
    await_processed(&app, words.len() as u64);
    // Queried from this thread while the stream thread holds the writes uncommitted.
    let counts = app.store::<String, i64>("counts").expect("store");
    let queried: BTreeMap<String, i64> = counts.all_local().expect("all").into_iter().collect();
    assert_eq!(queried, expected, "a query sees every cached write");
    app.close().expect("close");
    let changelog: Vec<(String, i64)> = committed_records(log.as_ref(), CHANGELOG, 1)
        .iter()
        .map(key_and_count)
        .collect();
    let restored: BTreeMap<String, i64> = changelog.iter().cloned().collect();
    assert_eq!(restored, expected, "the changelog ends at the final counts");
    let output = committed_records(log.as_ref(), "counts", words.len()).len();
    Run { changelog, output }
}

fn repeated(word: &str, times: usize) -> Vec<String> {
    vec![word.to_string(); times]
}

#[test]
fn updates_of_a_key_within_a_commit_become_one_changelog_record_with_the_last_value() {
    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    let mut words = repeated("w", 100);
    words.extend(repeated("x", 50));
    let run = count_in_one_commit(
        &log,
        state.path(),
        StoreOptions::persistent("counts"),
        1 << 20,
        &words,
    );
    let mut changelog = run.changelog;
    changelog.sort();
    assert_eq!(changelog, [("w".to_string(), 100), ("x".to_string(), 50)]);
    assert_eq!(run.output, 150, "every update still goes downstream");
}

#[test]
fn without_a_cache_every_update_is_logged() {
    let words = repeated("w", 40);
    for (store, cache_max_bytes) in [
        (StoreOptions::persistent("counts"), 0),
        (
            StoreOptions::persistent("counts").with_caching(false),
            1 << 20,
        ),
    ] {
        let data = tempfile::tempdir().expect("tempdir");
        let state = tempfile::tempdir().expect("tempdir");
        let log = open_log(data.path(), FsyncPolicy::Never);
        let run = count_in_one_commit(&log, state.path(), store, cache_max_bytes, &words);
        let counts: Vec<i64> = run.changelog.iter().map(|(_, count)| *count).collect();
        assert_eq!(counts, (1..=40).collect::<Vec<_>>());
    }
}

#[test]
fn a_cache_past_its_bound_writes_through_early_and_restores_stay_exact() {
    let data = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("tempdir");
    let log = open_log(data.path(), FsyncPolicy::Never);
    // 200 cold keys, each counted twice, a hot key counted after every one of them, through
    // a cache with room for about ten entries.
    let keys: Vec<String> = (0..200).map(|i| format!("key-{i:03}")).collect();
    let words: Vec<String> = keys
        .iter()
        .chain(&keys)
        .flat_map(|key| [key.clone(), "hot".to_string()])
        .collect();
    let run = count_in_one_commit(
        &log,
        state.path(),
        StoreOptions::persistent("counts"),
        1500,
        &words,
    );
    let (hot, cold): (Vec<_>, Vec<_>) = run.changelog.iter().partition(|(key, _)| key == "hot");
    // A cold key comes back after 199 others: by then its first count left the cache, so it
    // was logged (and written to the store) before the commit, apart from the second.
    assert_eq!(cold.len(), 400, "every cold count was evicted and logged");
    // The hot key was always among the most recently written: never evicted, logged once.
    assert_eq!(hot, [&("hot".to_string(), 400)]);
    // A new instance without the local state rebuilds the counts from the changelog alone.
    std::fs::remove_dir_all(state.path().join(APP)).expect("remove local state");
    produce_words_more(&log, &["key-000"]);
    let mut app = StreamsApp::new(
        word_count(StoreOptions::persistent("counts")),
        log.clone(),
        config(state.path(), 1500),
    );
    app.start().expect("restart");
    await_processed(&app, 1);
    let counts = app.store::<String, i64>("counts").expect("store");
    let all: BTreeMap<String, i64> = counts.all_local().expect("all").into_iter().collect();
    app.close().expect("close");
    assert_eq!(all.len(), 201);
    assert_eq!(all.get("key-000"), Some(&3));
    assert_eq!(all.get("hot"), Some(&400));
    assert!(
        all.iter()
            .filter(|(k, _)| k.starts_with("key-") && *k != "key-000")
            .all(|(_, c)| *c == 2),
        "{all:?}"
    );
}

fn produce_words_more(log: &EmbeddedLog, words: &[&str]) {
    let producer = log.producer(&Default::default()).expect("producer");
    for word in words {
        producer
            .send(
                ProducerRecord::new("words")
                    .key(word.to_string())
                    .value("more"),
            )
            .expect("send")
            .wait()
            .expect("written");
    }
}

/// Writes, reads back and deletes within one record, reporting what it saw.
struct Scratch {
    store: KeyValueStore<String, String>,
}

impl Processor<String, String, String, String> for Scratch {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        record: Record<String, String>,
    ) -> Result<()> {
        let key = record.key.clone();
        self.store.put(&key, &format!("{}-1", record.value))?;
        self.store.put(&key, &format!("{}-2", record.value))?;
        let read = self.store.get(&key)?.unwrap_or_default();
        let before: Vec<String> = self.store.all()?.into_iter().map(|(k, _)| k).collect();
        if record.value == "drop" {
            self.store.delete(&key)?;
        }
        let after: Vec<String> = self
            .store
            .range(&"a".to_string(), &"z".to_string())?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        ctx.forward(record.with_value(format!("{read} {before:?} {after:?}")))
    }
}

#[test]
fn within_a_record_reads_see_cached_writes_and_a_put_then_delete_logs_one_tombstone() {
    let builder = StreamsBuilder::new();
    builder
        .add_state_store::<String, String>(StoreOptions::persistent("scratch"))
        .expect("store");
    builder
        .stream::<String, String>("in")
        .process_built(
            |ctx| {
                Ok(Scratch {
                    store: ctx.key_value_store("scratch")?,
                })
            },
            &["scratch"],
        )
        .to("out");
    let mut driver = TopologyTestDriver::new(builder.build().expect("topology"), "app").unwrap();
    driver
        .pipe("in", &"k".to_string(), &"keep".to_string(), 1)
        .unwrap();
    driver
        .pipe("in", &"m".to_string(), &"drop".to_string(), 2)
        .unwrap();
    let seen: Vec<String> = driver
        .read_output::<String, String>("out")
        .unwrap()
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(
        seen,
        [r#"keep-2 ["k"] ["k"]"#, r#"drop-2 ["k", "m"] ["k"]"#,]
    );
    // The driver commits after each record: one changelog record per key and record.
    let changelog: Vec<(Option<String>, Option<String>)> = driver
        .read_raw("app-scratch-changelog")
        .into_iter()
        .map(|r| {
            let text = |b: Option<bytes::Bytes>| b.map(|b| String::from_utf8_lossy(&b).into());
            (text(r.key), text(r.value))
        })
        .collect();
    assert_eq!(changelog.len(), 2, "{changelog:?}");
    assert_eq!(
        changelog[0].1.as_deref().map(|v| v.contains("keep-2")),
        Some(true)
    );
    assert_eq!(
        changelog[1].1, None,
        "a put then a delete logs only the tombstone"
    );
    let store = driver.key_value_store::<String, String>("scratch").unwrap();
    assert_eq!(store.all().unwrap().len(), 1);
}
