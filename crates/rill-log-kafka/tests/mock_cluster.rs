//! The Kafka backend against librdkafka's in-process mock cluster.
//!
//! The mock cluster is a test double written by the librdkafka authors, not a broker. It is
//! used here for quick in-process checks of transactions, read-committed isolation and
//! producer fencing, and for failures a real broker cannot be made to show on demand (a
//! refused InitProducerId). Every test name ends in `_mock_cluster`.

mod common;

use std::time::Duration;

use common::{Event, Recorder, held, poll_for, poll_until, poll_until_split, unique};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rill_log::{
    Consumer, ConsumerConfig, Header, IsolationLevel, Log, LogError, ProducerConfig,
    ProducerRecord, SeekTo, TopicConfig, TopicPartition, partition_for_key,
};
use rill_log_kafka::{KafkaConfig, KafkaLog};

fn mock() -> KafkaLog {
    KafkaLog::mock_cluster(3).expect("mock cluster")
}

fn consumer(log: &KafkaLog, group: &str, isolation: IsolationLevel) -> Box<dyn Consumer> {
    let config = ConsumerConfig {
        isolation,
        ..ConsumerConfig::group(group)
    };
    log.consumer(&config, None).expect("consumer")
}

fn values(records: &[rill_log::ConsumedRecord]) -> Vec<String> {
    let mut out: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    out.sort();
    out
}

#[test]
fn produce_and_consume_keyed_records_mock_cluster() {
    let log = mock();
    let topic = unique("orders");
    log.admin()
        .create_topic(&topic, &TopicConfig::with_partitions(4))
        .expect("create");
    assert!(log.admin().list_topics().expect("list").contains(&topic));
    assert_eq!(
        log.admin()
            .describe_topic(&topic)
            .expect("describe")
            .config
            .partitions,
        4
    );
    assert!(matches!(
        log.admin()
            .create_topic(&topic, &TopicConfig::with_partitions(4)),
        Err(LogError::TopicExists { .. })
    ));

    let producer = log.producer(&ProducerConfig::default()).expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..20 {
        let key = format!("key-{i}");
        let record = ProducerRecord::new(&topic)
            .key(key.clone())
            .value(format!("value-{i}"))
            .timestamp(1_700_000_000_000 + i)
            .header(Header::new("n", i.to_string()));
        deliveries.push((key, producer.send(record).expect("send")));
    }
    for (key, delivery) in deliveries {
        let meta = delivery.wait().expect("delivered");
        assert_eq!(
            meta.partition,
            partition_for_key(key.as_bytes(), 4),
            "key {key} went where Java's partitioner puts it"
        );
    }
    producer.flush(Duration::from_secs(5)).expect("flush");

    let consumer = consumer(&log, &unique("g"), IsolationLevel::ReadCommitted);
    consumer
        .subscribe(std::slice::from_ref(&topic))
        .expect("subscribe");
    let records = poll_until(consumer.as_ref(), 20, Duration::from_secs(20));
    assert_eq!(records.len(), 20);
    for record in &records {
        let key = String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
        let i: i64 = key.trim_start_matches("key-").parse().expect("key number");
        assert_eq!(record.timestamp, 1_700_000_000_000 + i);
        assert_eq!(record.headers, vec![Header::new("n", i.to_string())]);
        assert_eq!(record.partition, partition_for_key(key.as_bytes(), 4));
    }

    let offsets: Vec<_> = (0..4)
        .map(|p| {
            let tp = TopicPartition::new(&topic, p);
            let position = consumer.position(&tp).expect("position");
            (tp, position)
        })
        .collect();
    consumer.commit(&offsets).expect("commit");
    let committed = consumer
        .committed(&offsets.iter().map(|(tp, _)| tp.clone()).collect::<Vec<_>>())
        .expect("committed");
    assert_eq!(
        committed,
        offsets.iter().map(|(_, o)| Some(*o)).collect::<Vec<_>>()
    );
    consumer.close().expect("close");
}

#[test]
fn unknown_topic_and_partition_are_refused_at_send_mock_cluster() {
    let log = mock();
    let producer = log.producer(&ProducerConfig::default()).expect("producer");
    assert!(matches!(
        producer.send(ProducerRecord::new(unique("missing")).value("x")),
        Err(LogError::UnknownTopic { .. })
    ));
    let topic = unique("two");
    log.admin()
        .create_topic(&topic, &TopicConfig::with_partitions(2))
        .expect("create");
    assert!(matches!(
        producer.send(ProducerRecord::new(&topic).partition(2).value("x")),
        Err(LogError::UnknownPartition { partitions: 2, .. })
    ));
}

#[test]
fn seek_position_and_watermarks_mock_cluster() {
    let log = mock();
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
                    .value(format!("v{i}"))
                    .timestamp(1_000_000 + i * 1000),
            )
            .expect("send")
            .wait()
            .expect("delivered");
    }
    let tp = TopicPartition::new(&topic, 0);
    let consumer = log
        .consumer(&ConsumerConfig::default(), None)
        .expect("consumer");
    consumer.assign(std::slice::from_ref(&tp)).expect("assign");
    let marks = consumer.watermarks(&tp).expect("watermarks");
    assert_eq!((marks.low, marks.high), (0, 10));
    assert_eq!(consumer.position(&tp).expect("position"), 0);

    consumer.seek(&tp, SeekTo::Offset(7)).expect("seek");
    assert_eq!(consumer.position(&tp).expect("position"), 7);
    let records = poll_until(consumer.as_ref(), 3, Duration::from_secs(10));
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![7, 8, 9]
    );
    assert_eq!(consumer.position(&tp).expect("position"), 10);

    // Seeking by timestamp is checked on Kafka (kafka_broker.rs): the mock cluster's ListOffsets does not
    // look up timestamps (it answers -1, i.e. the end).

    consumer.seek(&tp, SeekTo::Beginning).expect("seek");
    assert_eq!(consumer.position(&tp).expect("position"), 0);
    consumer.seek(&tp, SeekTo::End).expect("seek");
    assert_eq!(consumer.position(&tp).expect("position"), 10);
    assert!(poll_for(consumer.as_ref(), Duration::from_millis(500)).is_empty());

    let other = TopicPartition::new(&topic, 5);
    assert!(matches!(
        consumer.seek(&other, SeekTo::Beginning),
        Err(LogError::NotAssigned { .. })
    ));
    assert!(matches!(
        consumer.commit(&[(tp.clone(), 1)]),
        Err(LogError::NoGroup { .. })
    ));
}

#[test]
fn transactions_commit_and_abort_read_committed_mock_cluster() {
    let log = mock();
    let topic = unique("txn");
    log.admin()
        .create_topic(&topic, &TopicConfig::with_partitions(2))
        .expect("create");
    // A long linger keeps records of a transaction queued in the client until commit, so an
    // abort purges them before they reach the log. (The mock cluster writes no transaction
    // markers and reports no aborted transactions in Fetch, so a record that *was* written and
    // then aborted would be visible to read-committed readers on the mock: that part of the
    // contract can only be checked on a broker with transactions.)
    let config = ProducerConfig {
        linger: Some(Duration::from_secs(30)),
        ..ProducerConfig::default()
    };
    let producer = log
        .transactional_producer(&config, &unique("tx"))
        .expect("transactional producer");

    assert!(matches!(
        producer.commit(),
        Err(LogError::TransactionState { .. })
    ));
    assert!(matches!(
        producer.abort(),
        Err(LogError::TransactionState { .. })
    ));
    assert!(matches!(
        producer.send(ProducerRecord::new(&topic).value("outside")),
        Err(LogError::TransactionState { .. })
    ));

    producer.begin().expect("begin");
    assert!(matches!(
        producer.begin(),
        Err(LogError::TransactionState { .. })
    ));
    let committed: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|v| {
            producer
                .send(ProducerRecord::new(&topic).key(v).value(v))
                .expect("send")
        })
        .collect();
    producer.commit().expect("commit");
    for delivery in committed {
        delivery.wait().expect("a committed record is delivered");
    }

    producer.begin().expect("begin");
    let aborted = producer
        .send(ProducerRecord::new(&topic).key("c").value("c"))
        .expect("send");
    producer.abort().expect("abort");
    assert!(
        aborted.wait().is_err(),
        "a record purged by abort reports a failed delivery"
    );

    producer.begin().expect("begin");
    drop(
        producer
            .send(ProducerRecord::new(&topic).key("d").value("d"))
            .expect("send"),
    );
    producer.commit().expect("commit");

    let reader = consumer(&log, &unique("rc"), IsolationLevel::ReadCommitted);
    reader
        .subscribe(std::slice::from_ref(&topic))
        .expect("subscribe");
    let mut seen = poll_until(reader.as_ref(), 3, Duration::from_secs(20));
    seen.extend(poll_for(reader.as_ref(), Duration::from_secs(1)));
    assert_eq!(values(&seen), vec!["a", "b", "d"]);
}

#[test]
fn consumer_offsets_go_into_the_transaction_mock_cluster() {
    let log = mock();
    let input = unique("in");
    let output = unique("out");
    for t in [&input, &output] {
        log.admin()
            .create_topic(t, &TopicConfig::with_partitions(1))
            .expect("create");
    }
    let plain = log.producer(&ProducerConfig::default()).expect("producer");
    for i in 0..5 {
        plain
            .send(ProducerRecord::new(&input).value(format!("in{i}")))
            .expect("send")
            .wait()
            .expect("delivered");
    }
    let group = unique("eos");
    let consumer = consumer(&log, &group, IsolationLevel::ReadCommitted);
    consumer
        .subscribe(std::slice::from_ref(&input))
        .expect("subscribe");
    let records = poll_until(consumer.as_ref(), 5, Duration::from_secs(20));
    assert_eq!(records.len(), 5);
    let metadata = consumer.group_metadata().expect("group metadata");
    assert_eq!(metadata.group_id, group);
    assert!(metadata.backend.is_some());

    let producer = log
        .transactional_producer(&ProducerConfig::default(), &unique("eos-tx"))
        .expect("transactional producer");
    let tp = TopicPartition::new(&input, 0);
    // AddOffsetsToTxn and TxnOffsetCommit go through; the mock cluster acknowledges
    // TxnOffsetCommit without storing the offsets, so what the group reads back afterwards
    // can only be checked on a broker with transactions.
    for finish in ["abort", "commit"] {
        producer.begin().expect("begin");
        drop(
            producer
                .send(ProducerRecord::new(&output).value(finish))
                .expect("send"),
        );
        producer
            .send_offsets(&[(tp.clone(), 5)], &metadata)
            .expect("send offsets");
        if finish == "abort" {
            producer.abort().expect("abort");
        } else {
            producer.commit().expect("commit");
        }
    }

    // Group metadata from elsewhere is refused as invalid input.
    producer.begin().expect("begin");
    let foreign = rill_log::GroupMetadata {
        backend: None,
        ..metadata
    };
    let err = producer
        .send_offsets(&[(tp, 5)], &foreign)
        .expect_err("foreign metadata");
    assert_eq!(err.class(), rill_log::ErrorClass::InvalidInput);
    producer.abort().expect("abort");
}

/// The mock cluster gives a restarted producer a new producer id instead of bumping the epoch
/// of the old one, so it never fences; the broker's answer to a fenced producer is injected
/// instead, to check that the adapter reports it as `ProducerFenced`.
#[test]
fn a_fenced_producer_gets_producer_fenced_mock_cluster() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let topic = unique("fence");
    cluster.create_topic(&topic, 1, 1).expect("create");
    let log = KafkaLog::new(KafkaConfig::new(cluster.bootstrap_servers())).expect("log");
    let id = unique("fenced-id");
    let old = log
        .transactional_producer(&ProducerConfig::default(), &id)
        .expect("old");
    old.begin().expect("begin");
    drop(
        old.send(ProducerRecord::new(&topic).value("old"))
            .expect("send"),
    );
    // A restart with the same id works (and on a real broker fences `old`).
    let new = log
        .transactional_producer(&ProducerConfig::default(), &id)
        .expect("new");

    cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
    );
    let err = old.commit().expect_err("the old producer is fenced");
    assert!(
        matches!(err, LogError::ProducerFenced { ref transactional_id } if *transactional_id == id),
        "{err:?}"
    );
    assert_eq!(err.class(), rill_log::ErrorClass::TaskMigrated);
    // Fencing is final for the old producer.
    assert!(matches!(
        old.begin(),
        Err(LogError::ProducerFenced { .. } | LogError::TransactionState { .. })
    ));

    new.begin().expect("begin");
    drop(
        new.send(ProducerRecord::new(&topic).value("new"))
            .expect("send"),
    );
    new.commit().expect("commit");
}

/// A cluster that refuses InitProducerId for a transactional id (as brokers without
/// transactions, or without the ACL for the id, do) makes
/// `transactional_producer` fail with `TransactionsUnsupported`.
#[test]
fn a_refused_init_producer_id_means_transactions_unsupported_mock_cluster() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.request_errors(
        RDKafkaApiKey::InitProducerId,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED],
    );
    let log = KafkaLog::new(KafkaConfig::new(cluster.bootstrap_servers())).expect("log");
    let err = log
        .transactional_producer(&ProducerConfig::default(), &unique("refused"))
        .err()
        .expect("refused");
    assert!(
        matches!(err, LogError::TransactionsUnsupported { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("at-least-once"), "{err}");
}

#[test]
fn rebalance_listener_commits_on_revoke_mock_cluster() {
    let log = mock();
    let topic = unique("rebalance");
    log.admin()
        .create_topic(&topic, &TopicConfig::with_partitions(4))
        .expect("create");
    let group = unique("members");
    let (first_listener, first_events) = Recorder::new();
    // The mock coordinator waits session.timeout.ms - 1 s for members to rejoin after a
    // membership change, so a short session timeout keeps the test quick.
    let member = ConsumerConfig {
        session_timeout: Some(Duration::from_secs(6)),
        ..ConsumerConfig::group(&group)
    };
    let first = log
        .consumer(&member, Some(Box::new(first_listener)))
        .expect("first");
    first
        .subscribe(std::slice::from_ref(&topic))
        .expect("subscribe");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while held(&first_events.lock().expect("events")).len() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "first member got 4 partitions"
        );
        let _ = first.poll(Duration::from_millis(100)).expect("poll");
    }

    let (second_listener, second_events) = Recorder::new();
    let second = log
        .consumer(&member, Some(Box::new(second_listener)))
        .expect("second");
    second
        .subscribe(std::slice::from_ref(&topic))
        .expect("subscribe");
    poll_until_split(
        first.as_ref(),
        &first_events,
        second.as_ref(),
        &second_events,
        2,
        Duration::from_secs(30),
    );
    let events = first_events.lock().expect("events").clone();
    // The listener committed from inside on_revoked through the consumer view. Whether the
    // mock coordinator accepts it depends on timing: unlike a Kafka broker it refuses every
    // OffsetCommit with REBALANCE_IN_PROGRESS while it waits for members to rejoin (the
    // test on Kafka, kafka_broker.rs, asserts the commit succeeds).
    assert!(
        events.iter().any(|e| matches!(e, Event::CommitInRevoke(_))),
        "the listener committed from inside on_revoked: {events:?}"
    );
    // Cooperative: the first member only gave up what moved.
    let revoked: usize = events
        .iter()
        .map(|e| match e {
            Event::Revoked(p) => p.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(revoked, 2, "{events:?}");

    // Closing the first hands everything to the second, revoking through the listener.
    first.close().expect("close");
    assert!(held(&first_events.lock().expect("events")).is_empty());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while held(&second_events.lock().expect("events")).len() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "second member took over"
        );
        let _ = second.poll(Duration::from_millis(100)).expect("poll");
    }
}

/// librdkafka's `send_offsets_to_transaction` waits forever when the group coordinator goes
/// down during the call (librdkafka issues 5456 and 5511). The adapter gives the call its
/// timeout plus a grace, then replaces the producer: the call fails with `Timeout` instead of
/// blocking the stream thread for good, and the next transaction works.
#[test]
fn send_offsets_returns_when_the_group_coordinator_goes_down_mock_cluster() {
    use rdkafka::mocking::MockCoordinator;
    use rill_log::TransactionalProducer;
    use std::sync::{Arc, mpsc};

    let cluster = MockCluster::new(3).expect("mock cluster");
    let topic = unique("offsets-stuck");
    cluster.create_topic(&topic, 1, 1).expect("create");
    cluster
        .partition_leader(&topic, 0, Some(1))
        .expect("leader");
    let group = unique("stuck-group");
    let id = unique("stuck-id");
    cluster
        .coordinator(MockCoordinator::Group(group.clone()), 2)
        .expect("group coordinator");
    cluster
        .coordinator(MockCoordinator::Transaction(id.clone()), 1)
        .expect("transaction coordinator");
    let log = KafkaLog::new(
        KafkaConfig::new(cluster.bootstrap_servers()).request_timeout(Duration::from_secs(2)),
    )
    .expect("log");
    let producer: Arc<Box<dyn TransactionalProducer>> = Arc::new(
        log.transactional_producer(&ProducerConfig::default(), &id)
            .expect("producer"),
    );
    let member = consumer(&log, &group, IsolationLevel::ReadCommitted);
    let metadata = member.group_metadata().expect("group metadata");
    producer.begin().expect("begin");
    producer
        .send(ProducerRecord::new(&topic).value("stuck"))
        .expect("send")
        .wait()
        .expect("delivered");

    cluster.broker_down(2).expect("group coordinator down");
    let offsets = vec![(TopicPartition::new(&topic, 0), 1)];
    let (answer, answered) = mpsc::channel();
    let calling = Arc::clone(&producer);
    std::thread::spawn(move || {
        let _ = answer.send(calling.send_offsets(&offsets, &metadata));
    });
    // Far beyond the adapter's 2 s + grace: only a call that never returns gets here.
    let result = answered
        .recv_timeout(Duration::from_secs(60))
        .expect("send_offsets returned");
    assert!(
        matches!(
            result,
            Err(LogError::Timeout {
                operation: "send offsets",
                ..
            })
        ),
        "{result:?}"
    );

    producer.begin().expect("begin on the replacement");
    producer
        .send(ProducerRecord::new(&topic).value("after"))
        .expect("send")
        .wait()
        .expect("delivered");
    producer.commit().expect("commit on the replacement");
    let reader = log
        .consumer(
            &ConsumerConfig {
                isolation: IsolationLevel::ReadCommitted,
                ..ConsumerConfig::default()
            },
            None,
        )
        .expect("reader");
    reader
        .assign(&[TopicPartition::new(&topic, 0)])
        .expect("assign");
    reader
        .seek(&TopicPartition::new(&topic, 0), SeekTo::Beginning)
        .expect("seek");
    // Whether the mock cluster shows the fenced producer's "stuck" record varies between runs
    // (CI read it alone first): the replacement's record is what this test waits for.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut read = Vec::new();
    while !values(&read).contains(&"after".to_string()) && std::time::Instant::now() < deadline {
        read.extend(reader.poll(Duration::from_millis(200)).expect("poll"));
    }
    assert!(values(&read).contains(&"after".to_string()), "{read:?}");
}

/// A detached record has no delivery future: its failure is answered by the next flush, once,
/// and records delivered after it flush cleanly.
#[test]
fn a_detached_record_that_fails_fails_the_next_flush_mock_cluster() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let topic = unique("detached");
    cluster.create_topic(&topic, 1, 1).expect("create");
    let log = KafkaLog::new(KafkaConfig::new(cluster.bootstrap_servers())).expect("log");
    let producer = log.producer(&ProducerConfig::default()).expect("producer");
    producer
        .send(ProducerRecord::new(&topic).value("first"))
        .expect("send")
        .wait()
        .expect("delivered");
    // Not retriable: the record fails at once instead of being retried until it times out.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD],
    );
    producer
        .send_detached(ProducerRecord::new(&topic).value("refused"))
        .expect("queued");
    let failed = producer.flush(Duration::from_secs(30));
    assert!(failed.is_err(), "{failed:?}");
    producer
        .send_detached(ProducerRecord::new(&topic).value("after"))
        .expect("queued");
    producer
        .flush(Duration::from_secs(30))
        .expect("a later flush is clean");
}
