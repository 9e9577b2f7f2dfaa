//! The Kafka backend against a real broker: Apache Kafka 4.4.0 on loopback.
//!
//! NEEDS A BROKER. The address comes from `RILL_KAFKA_BOOTSTRAP`; when it is unset every test
//! here FAILS (it does not pass silently) with instructions:
//!
//! ```text
//! scripts/kafka.sh install && BOOTSTRAP=$(scripts/kafka.sh start --brokers 3)
//! RILL_KAFKA_BOOTSTRAP=$BOOTSTRAP cargo test -p rill-log-kafka --test kafka_broker
//! ```

mod common;

use std::time::Duration;

use common::{Event, Recorder, held, poll_for, poll_until, poll_until_split, unique};
use rill_log::{
    AssignmentStrategy, CleanupPolicy, ConsumerConfig, Header, Log, LogError, OffsetReset,
    ProducerConfig, ProducerRecord, SeekTo, TopicConfig, TopicPartition, partition_for_key,
};
use rill_log_kafka::{KafkaConfig, KafkaLog};

/// The log on the broker named by `RILL_KAFKA_BOOTSTRAP`.
fn broker() -> KafkaLog {
    let bootstrap = std::env::var("RILL_KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "RILL_KAFKA_BOOTSTRAP is not set: these tests need a Kafka broker. Start one with \
             `scripts/kafka.sh install && scripts/kafka.sh start --brokers 3` and run with \
             RILL_KAFKA_BOOTSTRAP set to the list it prints"
        )
    });
    KafkaLog::new(KafkaConfig::new(bootstrap).request_timeout(Duration::from_secs(20)))
        .expect("kafka log")
}

fn text(bytes: Option<&[u8]>) -> String {
    String::from_utf8_lossy(bytes.unwrap_or_default()).into_owned()
}

#[test]
fn admin_creates_lists_describes_and_deletes_topics() {
    let log = broker();
    let admin = log.admin();
    let topic = unique("admin");
    let config = TopicConfig::with_partitions(3)
        .cleanup_policy(CleanupPolicy::Compact)
        .retention(Duration::from_secs(3600))
        .segment_bytes(1 << 20);
    admin.create_topic(&topic, &config).expect("create");
    assert!(admin.list_topics().expect("list").contains(&topic));
    let described = admin.describe_topic(&topic).expect("describe");
    assert_eq!(described.name, topic);
    assert_eq!(described.config.partitions, 3);
    assert_eq!(described.config.cleanup_policy, CleanupPolicy::Compact);
    assert_eq!(described.config.retention, Some(Duration::from_secs(3600)));
    assert!(matches!(
        admin.create_topic(&topic, &config),
        Err(LogError::TopicExists { .. })
    ));
    admin.delete_topic(&topic).expect("delete");
    // Brokers learn of the deletion each on its own: allow the slowest a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while admin.list_topics().expect("list").contains(&topic) {
        assert!(
            std::time::Instant::now() < deadline,
            "'{topic}' still listed 10 s after its deletion"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(matches!(
        admin.describe_topic(&topic),
        Err(LogError::UnknownTopic { .. })
    ));
    assert!(matches!(
        admin.delete_topic(&topic),
        Err(LogError::UnknownTopic { .. })
    ));
    assert!(matches!(
        admin.create_topic(&topic, &TopicConfig::with_partitions(0)),
        Err(LogError::InvalidTopicConfig { .. })
    ));
}

#[test]
fn keyed_records_land_on_javas_partition_and_come_back_whole() {
    let log = broker();
    let topic = unique("keyed");
    log.admin()
        .create_topic(&topic, &TopicConfig::with_partitions(6))
        .expect("create");
    let producer = log.producer(&ProducerConfig::default()).expect("producer");
    let sent: Vec<_> = (0..60)
        .map(|i| {
            let key = format!("customer-{i}");
            let record = ProducerRecord::new(&topic)
                .key(key.clone())
                .value(format!("order-{i}"))
                .timestamp(1_700_000_000_000 + i)
                .header(Header::new("i", i.to_string()))
                .header(Header {
                    key: "null".into(),
                    value: None,
                });
            (key, producer.send(record).expect("send"))
        })
        .collect();
    for (key, delivery) in sent {
        let meta = delivery.wait().expect("delivered");
        assert_eq!(
            meta.partition,
            partition_for_key(key.as_bytes(), 6),
            "{key}"
        );
    }
    // A tombstone and a record without key.
    producer
        .send(ProducerRecord::new(&topic).key("customer-0"))
        .expect("send")
        .wait()
        .expect("tombstone delivered");
    producer
        .send(ProducerRecord::new(&topic).value("no key"))
        .expect("send")
        .wait()
        .expect("keyless delivered");

    let consumer = log
        .consumer(&ConsumerConfig::group(unique("keyed-g")), None)
        .expect("consumer");
    consumer
        .subscribe(std::slice::from_ref(&topic))
        .expect("subscribe");
    let records = poll_until(consumer.as_ref(), 62, Duration::from_secs(30));
    assert_eq!(records.len(), 62);
    for r in records
        .iter()
        .filter(|r| r.value.is_some() && r.key.is_some())
    {
        let key = text(r.key.as_deref());
        let i: i64 = key.trim_start_matches("customer-").parse().expect("number");
        assert_eq!(r.partition, partition_for_key(key.as_bytes(), 6));
        assert_eq!(r.timestamp, 1_700_000_000_000 + i);
        assert_eq!(
            r.headers,
            vec![
                Header::new("i", i.to_string()),
                Header {
                    key: "null".into(),
                    value: None
                }
            ]
        );
    }
    assert!(
        records.iter().any(|r| r.value.is_none()),
        "tombstone read back"
    );
    assert!(records.iter().any(|r| r.key.is_none()), "keyless read back");
}

#[test]
fn committed_offsets_resume_the_group() {
    let log = broker();
    let topic = unique("resume");
    log.admin()
        .create_topic(&topic, &TopicConfig::with_partitions(2))
        .expect("create");
    let producer = log.producer(&ProducerConfig::default()).expect("producer");
    for i in 0..10 {
        drop(
            producer
                .send(
                    ProducerRecord::new(&topic)
                        .partition(i % 2)
                        .value(i.to_string()),
                )
                .expect("send"),
        );
    }
    producer.flush(Duration::from_secs(10)).expect("flush");

    let group = unique("resume-g");
    let first = log
        .consumer(&ConsumerConfig::group(&group), None)
        .expect("consumer");
    first
        .subscribe(std::slice::from_ref(&topic))
        .expect("subscribe");
    let records = poll_until(first.as_ref(), 10, Duration::from_secs(30));
    assert_eq!(records.len(), 10);
    let tp0 = TopicPartition::new(&topic, 0);
    let tp1 = TopicPartition::new(&topic, 1);
    // Commit 3 of partition 0 and everything of partition 1.
    first
        .commit(&[(tp0.clone(), 3), (tp1.clone(), 5)])
        .expect("commit");
    assert_eq!(
        first
            .committed(&[tp0.clone(), tp1.clone()])
            .expect("committed"),
        vec![Some(3), Some(5)]
    );
    first.close().expect("close");
    drop(first);

    let second = log
        .consumer(&ConsumerConfig::group(&group), None)
        .expect("consumer");
    second
        .subscribe(std::slice::from_ref(&topic))
        .expect("subscribe");
    let mut records = poll_until(second.as_ref(), 2, Duration::from_secs(30));
    records.extend(poll_for(second.as_ref(), Duration::from_millis(500)));
    let mut got: Vec<_> = records.iter().map(|r| (r.partition, r.offset)).collect();
    got.sort();
    assert_eq!(got, vec![(0, 3), (0, 4)]);
}

#[test]
fn seek_position_watermarks_and_reset() {
    let log = broker();
    let topic = unique("seek");
    log.admin()
        .create_topic(&topic, &TopicConfig::with_partitions(1))
        .expect("create");
    let producer = log.producer(&ProducerConfig::default()).expect("producer");
    for i in 0..10 {
        producer
            .send(
                ProducerRecord::new(&topic)
                    .partition(0)
                    .value(i.to_string())
                    .timestamp(1_000_000 + i * 1000),
            )
            .expect("send")
            .wait()
            .expect("delivered");
    }
    let tp = TopicPartition::new(&topic, 0);
    let consumer = log
        .consumer(&ConsumerConfig::group(unique("seek-g")), None)
        .expect("consumer");
    consumer.assign(std::slice::from_ref(&tp)).expect("assign");
    let marks = consumer.watermarks(&tp).expect("watermarks");
    assert_eq!((marks.low, marks.high), (0, 10));
    assert_eq!(consumer.position(&tp).expect("position"), 0);

    consumer
        .seek(&tp, SeekTo::Timestamp(1_004_500))
        .expect("seek by time");
    assert_eq!(consumer.position(&tp).expect("position"), 5);
    let records = poll_until(consumer.as_ref(), 5, Duration::from_secs(20));
    assert_eq!(records.first().map(|r| r.offset), Some(5));
    assert_eq!(consumer.position(&tp).expect("position"), 10);

    consumer.seek(&tp, SeekTo::Offset(2)).expect("seek");
    let records = poll_until(consumer.as_ref(), 1, Duration::from_secs(20));
    assert_eq!(records.first().map(|r| r.offset), Some(2));
    consumer
        .seek(&tp, SeekTo::Timestamp(9_999_999))
        .expect("seek past the last timestamp");
    assert_eq!(consumer.position(&tp).expect("position"), 10);

    // Latest: a fresh group starts at the end.
    let latest = log
        .consumer(
            &ConsumerConfig {
                offset_reset: OffsetReset::Latest,
                ..ConsumerConfig::group(unique("latest-g"))
            },
            None,
        )
        .expect("consumer");
    latest.assign(std::slice::from_ref(&tp)).expect("assign");
    assert_eq!(latest.position(&tp).expect("position"), 10);
    assert!(poll_for(latest.as_ref(), Duration::from_millis(500)).is_empty());
}

#[test]
fn a_joining_member_takes_half_and_the_leaver_commits_on_revoke() {
    rebalance_split_and_take_over(AssignmentStrategy::Balanced, 3);
}

#[test]
fn co_partitioned_assignment_uses_the_eager_protocol() {
    // `range`: the first member gives up everything, then gets its half back.
    rebalance_split_and_take_over(AssignmentStrategy::CoPartitioned, 6);
}

fn rebalance_split_and_take_over(strategy: AssignmentStrategy, revoked_on_join: usize) {
    let log = broker();
    let topic = unique("coop");
    log.admin()
        .create_topic(&topic, &TopicConfig::with_partitions(6))
        .expect("create");
    let group = unique("coop-g");
    let config = ConsumerConfig {
        session_timeout: Some(Duration::from_secs(10)),
        assignment: strategy,
        ..ConsumerConfig::group(&group)
    };
    let (first_listener, first_events) = Recorder::new();
    let first = log
        .consumer(&config, Some(Box::new(first_listener)))
        .expect("first");
    first
        .subscribe(std::slice::from_ref(&topic))
        .expect("subscribe");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while held(&first_events.lock().expect("events")).len() < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "first member got all 6"
        );
        let _ = first.poll(Duration::from_millis(100)).expect("poll");
    }

    let started = std::time::Instant::now();
    eprintln!("first member holds all 6");
    let (second_listener, second_events) = Recorder::new();
    let second = log
        .consumer(&config, Some(Box::new(second_listener)))
        .expect("second");
    second
        .subscribe(std::slice::from_ref(&topic))
        .expect("subscribe");
    poll_until_split(
        first.as_ref(),
        &first_events,
        second.as_ref(),
        &second_events,
        3,
        Duration::from_secs(60),
    );
    let events = first_events.lock().expect("events").clone();
    let revoked: usize = events
        .iter()
        .map(|e| match e {
            Event::Revoked(p) => p.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(revoked, revoked_on_join, "{strategy:?}: {events:?}");
    assert!(
        events.contains(&Event::CommitInRevoke(true)),
        "the listener committed from inside on_revoked: {events:?}"
    );

    eprintln!("split 3/3 after {:?}", started.elapsed());
    first.close().expect("close");
    eprintln!("first closed after {:?}", started.elapsed());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while held(&second_events.lock().expect("events")).len() < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "second member took all 6"
        );
        let _ = second.poll(Duration::from_millis(100)).expect("poll");
    }
    eprintln!("second holds all 6 after {:?}", started.elapsed());
    drop(first);
    eprintln!("first dropped after {:?}", started.elapsed());
    drop(second);
    eprintln!("second dropped after {:?}", started.elapsed());
}

#[test]
fn unknown_topics_partitions_and_oversized_records_are_refused_at_send() {
    let log = broker();
    let producer = log.producer(&ProducerConfig::default()).expect("producer");
    assert!(matches!(
        producer.send(ProducerRecord::new(unique("missing")).value("x")),
        Err(LogError::UnknownTopic { .. })
    ));
    let topic = unique("bounds");
    log.admin()
        .create_topic(&topic, &TopicConfig::with_partitions(2))
        .expect("create");
    assert!(matches!(
        producer.send(ProducerRecord::new(&topic).partition(7).value("x")),
        Err(LogError::UnknownPartition { partitions: 2, .. })
    ));
    assert!(matches!(
        producer.send(ProducerRecord::new(&topic).value(vec![0u8; 2 << 20])),
        Err(LogError::RecordTooLarge { .. })
    ));
}
