//! Transactions: atomic visibility of records and offsets, aborts, read-committed isolation,
//! fencing of zombie producers and zombie group members.
//!
//! "Not visible" is checked without sleeping: after the transactional writes, a marker record is
//! written outside the transaction to another topic the same read-committed reader reads; once
//! the reader has the marker, it must not have seen any of the transaction's records.

use std::collections::BTreeSet;

use rill_log::{
    ConsumedRecord, Consumer, DeliveryFuture, ErrorClass, GroupMetadata, LogError, Producer,
    ProducerRecord, SeekTo, TopicConfig, TopicPartition, TransactionalProducer,
};

use crate::support::{
    ConsumerSpec, Deadline, POLL_STEP, assert_class, consumer, create_topic, expect_err,
    partitions, poll_count, poll_members_until, poll_until, poll_until_value, producer, reader,
    send_all, summary, text, transactional_producer, unique, wait_delivery,
};
use crate::{Feature, Harness};

/// Feature group these cases need: transactions.
pub const FEATURE: Option<Feature> = Some(Feature::Transactions);

/// An input topic read by a group member, an output topic and a marker topic read by a
/// read-committed reader, and a plain producer for markers.
struct Setup {
    input: TopicPartition,
    /// Offset after the last input record the member read.
    input_next: i64,
    output: String,
    markers: String,
    member: Box<dyn Consumer>,
    metadata: GroupMetadata,
    reader: Box<dyn Consumer>,
    plain: Box<dyn Producer>,
    seen: Vec<ConsumedRecord>,
    marker_count: usize,
}

impl Setup {
    fn new(h: &dyn Harness) -> Setup {
        let input = unique("txn-in");
        let output = unique("txn-out");
        let markers = unique("txn-marker");
        create_topic(h, &input, TopicConfig::with_partitions(1));
        create_topic(h, &output, TopicConfig::with_partitions(2));
        create_topic(h, &markers, TopicConfig::with_partitions(1));
        let plain = producer(h);
        send_all(
            &*plain,
            (0..3)
                .map(|i| {
                    ProducerRecord::new(&input)
                        .partition(0)
                        .value(format!("in{i}"))
                })
                .collect(),
        );
        let member = consumer(h, &ConsumerSpec::in_group(&unique("txn-group")), None);
        member
            .subscribe(std::slice::from_ref(&input))
            .expect("subscribing the group member to the input");
        let read = poll_count(&*member, 3, "the input records");
        let metadata = member
            .group_metadata()
            .expect("a group member has group metadata");
        let mut reader_topics = partitions(&output, 2);
        reader_topics.push(TopicPartition::new(&markers, 0));
        let reader = consumer(h, &ConsumerSpec::standalone(), None);
        reader
            .assign(&reader_topics)
            .expect("assigning the read-committed reader");
        Setup {
            input: TopicPartition::new(&input, 0),
            input_next: read[2].offset + 1,
            output,
            markers,
            member,
            metadata,
            reader,
            plain,
            seen: Vec::new(),
            marker_count: 0,
        }
    }

    /// Writes a marker outside any transaction and reads until the reader has it.
    fn barrier(&mut self) {
        self.marker_count += 1;
        let marker = format!("marker-{}", self.marker_count);
        send_all(
            &*self.plain,
            vec![
                ProducerRecord::new(&self.markers)
                    .partition(0)
                    .value(marker.clone()),
            ],
        );
        let got = poll_until_value(
            &*self.reader,
            &marker,
            "the marker written after the transaction's records",
        );
        self.seen.extend(got);
    }

    /// Output values the reader has seen so far.
    fn output_seen(&self) -> Vec<String> {
        self.seen
            .iter()
            .filter(|r| *r.topic == *self.output)
            .map(text)
            .collect()
    }

    /// Reads until the reader has seen every value in `values` on the output topic.
    fn read_output(&mut self, values: &[String]) {
        let output = self.output.clone();
        let already: BTreeSet<String> = self.output_seen().into_iter().collect();
        let got = poll_until(
            &*self.reader,
            &format!("the committed records {values:?}"),
            |r| {
                values.iter().all(|v| {
                    already.contains(v)
                        || r.iter().any(|rec| *rec.topic == *output && text(rec) == *v)
                })
            },
        );
        self.seen.extend(got);
    }

    fn committed(&self) -> Option<i64> {
        self.member
            .committed(std::slice::from_ref(&self.input))
            .expect("reading the group's committed offset")
            .into_iter()
            .next()
            .flatten()
    }
}

fn send_in_txn(
    producer: &dyn TransactionalProducer,
    topic: &str,
    values: &[String],
) -> Vec<DeliveryFuture> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            producer
                .send(
                    ProducerRecord::new(topic)
                        .partition(i32::try_from(i % 2).unwrap_or(0))
                        .value(v.clone()),
                )
                .unwrap_or_else(|e| panic!("sending {v} in a transaction failed: {e}"))
        })
        .collect()
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Records and consumer offsets of a transaction are both invisible until it commits, then
/// both visible: the reader sees every record and the group's committed offset is the one the
/// transaction carried. A read of the committed offsets during the transaction waits for it.
pub fn a_committed_transaction_makes_records_and_offsets_visible_together(h: &mut dyn Harness) {
    let mut s = Setup::new(h);
    let producer = transactional_producer(h, &unique("txn-commit"));
    producer.begin().expect("begin");
    let written = values("committed", 4);
    let deliveries = send_in_txn(&*producer, &s.output, &written);
    producer
        .send_offsets(&[(s.input.clone(), s.input_next)], &s.metadata)
        .expect("send_offsets with the member's current metadata");

    s.barrier();
    assert!(
        s.output_seen().is_empty(),
        "records of an uncommitted transaction were visible: {:?}",
        s.output_seen()
    );
    // The group's committed offsets, read while the transaction is open, are answered only
    // once it ends (Kafka's KIP-447): a new owner of the input must never resume from the
    // offsets the transaction is about to replace. Read from another thread, started before
    // the commit; the answer is the transaction's offsets.
    let member = &*s.member;
    let input = s.input.clone();
    let read_while_open = std::thread::scope(|scope| {
        let (started, has_started) = std::sync::mpsc::channel();
        let read = scope.spawn(move || {
            let _ = started.send(());
            member.committed(std::slice::from_ref(&input))
        });
        let _ = has_started.recv();
        producer.commit().expect("commit");
        read.join()
    });
    match read_while_open {
        Ok(Ok(offsets)) => assert_eq!(
            offsets.first().copied().flatten(),
            Some(s.input_next),
            "committed offsets read during the transaction did not wait for it to end"
        ),
        Ok(Err(error)) => panic!("reading committed offsets during a transaction: {error}"),
        Err(_) => panic!("the thread reading committed offsets panicked"),
    }
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let meta = wait_delivery(delivery, &written[i])
            .unwrap_or_else(|e| panic!("{} of a committed transaction failed: {e}", written[i]));
        assert_eq!(
            (meta.topic.as_str(), meta.partition),
            (s.output.as_str(), i32::try_from(i % 2).unwrap_or(0)),
            "metadata of {}",
            written[i]
        );
    }
    s.read_output(&written);
    assert_eq!(
        s.committed(),
        Some(s.input_next),
        "the transaction's offsets were not committed with its records"
    );
    let mut seen = s.output_seen();
    seen.sort();
    assert_eq!(
        seen,
        written,
        "records read after the commit: {}",
        summary(&s.seen)
    );
}

/// An aborted transaction's records are never read (read-committed) and its offsets never
/// committed; a later transaction from the same producer commits normally.
pub fn an_aborted_transaction_leaves_no_records_or_offsets(h: &mut dyn Harness) {
    let mut s = Setup::new(h);
    let producer = transactional_producer(h, &unique("txn-abort"));
    producer.begin().expect("begin");
    let aborted = values("aborted", 3);
    drop(send_in_txn(&*producer, &s.output, &aborted));
    producer
        .send_offsets(&[(s.input.clone(), s.input_next)], &s.metadata)
        .expect("send_offsets");
    producer.abort().expect("abort");

    producer.begin().expect("begin after an abort");
    let kept = values("kept", 2);
    let deliveries = send_in_txn(&*producer, &s.output, &kept);
    producer.commit().expect("commit after an abort");
    for (delivery, v) in deliveries.into_iter().zip(&kept) {
        wait_delivery(delivery, v).unwrap_or_else(|e| panic!("{v} failed: {e}"));
    }
    s.read_output(&kept);
    s.barrier();
    let seen = s.output_seen();
    assert!(
        !seen.iter().any(|v| v.starts_with("aborted")),
        "a read-committed reader saw records of an aborted transaction: {seen:?}"
    );
    assert_eq!(
        s.committed(),
        None,
        "an aborted transaction's offsets were committed"
    );
}

/// A read-committed reader that seeks to the beginning of a partition holding only an aborted
/// transaction (records no reader may see and, on Kafka, the marker of the abort) gets no record,
/// yet its position reaches the partition's end: "read up to the end" loops, such as a store
/// restoring from its changelog, must finish on such a partition.
pub fn a_reader_reaches_the_end_of_a_partition_holding_only_aborted_records(h: &mut dyn Harness) {
    let topic = unique("txn-only-aborted");
    create_topic(h, &topic, TopicConfig::with_partitions(1));
    let producer = transactional_producer(h, &unique("txn-only-aborted"));
    producer.begin().expect("begin");
    for v in values("aborted", 3) {
        drop(
            producer
                .send(ProducerRecord::new(&topic).partition(0).value(v))
                .expect("send in a transaction"),
        );
    }
    // Where a log writes a transaction's records before its outcome (Kafka), they now take
    // offsets; one that keeps them back until commit (the embedded log) has an empty partition.
    producer
        .flush(crate::support::wait_limit())
        .expect("flush in a transaction");
    producer.abort().expect("abort");
    let partition = TopicPartition::new(&topic, 0);
    let reader = reader(h, std::slice::from_ref(&partition));
    reader
        .seek(&partition, SeekTo::Beginning)
        .expect("seek to the beginning");
    let end = reader.watermarks(&partition).expect("watermarks").high;
    let deadline = Deadline::start();
    let mut seen = Vec::new();
    loop {
        let position = reader.position(&partition).expect("position");
        if position >= end {
            break;
        }
        assert!(
            !deadline.passed(),
            "the reader stayed at {position}, before the end {end}, having received: {}",
            summary(&seen)
        );
        seen.extend(reader.poll(POLL_STEP).expect("poll"));
    }
    assert!(
        seen.is_empty(),
        "a read-committed reader saw aborted records: {}",
        summary(&seen)
    );
}

/// While a transaction is open, a read-committed reader sees none of its records, and its high
/// watermark does not move past them; after the commit it sees them all.
pub fn read_committed_consumers_never_see_an_open_transaction(h: &mut dyn Harness) {
    let mut s = Setup::new(h);
    let tp = TopicPartition::new(&s.output, 0);
    let high_before = s.reader.watermarks(&tp).expect("watermarks").high;
    let producer = transactional_producer(h, &unique("txn-open"));
    producer.begin().expect("begin");
    let open: Vec<String> = values("open", 3);
    let deliveries: Vec<DeliveryFuture> = open
        .iter()
        .map(|v| {
            producer
                .send(ProducerRecord::new(&s.output).partition(0).value(v.clone()))
                .unwrap_or_else(|e| panic!("sending {v} failed: {e}"))
        })
        .collect();

    s.barrier();
    assert!(
        s.output_seen().is_empty(),
        "a read-committed reader saw records of an open transaction: {:?}",
        s.output_seen()
    );
    let high_open = s.reader.watermarks(&tp).expect("watermarks").high;
    assert_eq!(
        high_open, high_before,
        "the read-committed high watermark moved over an open transaction"
    );

    producer.commit().expect("commit");
    for (delivery, v) in deliveries.into_iter().zip(&open) {
        wait_delivery(delivery, v).unwrap_or_else(|e| panic!("{v} failed: {e}"));
    }
    s.read_output(&open);
    let seen = s.output_seen();
    assert_eq!(seen, open, "records of the committed transaction, in order");
    let high_after = s.reader.watermarks(&tp).expect("watermarks").high;
    assert!(
        high_after >= high_before + 3,
        "high watermark {high_after} after committing 3 records on {high_before}"
    );
}

/// Creating a second producer with the same transactional id fences the first: its commit
/// fails with `ProducerFenced` (and so do later calls), its records never become visible,
/// and the new producer commits normally.
pub fn a_new_producer_with_the_same_transactional_id_fences_the_old_one(h: &mut dyn Harness) {
    let mut s = Setup::new(h);
    let id = unique("txn-fence");
    let old = transactional_producer(h, &id);
    old.begin().expect("begin on the first producer");
    drop(send_in_txn(&*old, &s.output, &values("zombie", 2)));

    let new = transactional_producer(h, &id);
    let error = expect_err(old.commit(), "commit of the fenced producer");
    match &error {
        LogError::ProducerFenced { transactional_id } => {
            assert_eq!(
                transactional_id, &id,
                "transactional id named by ProducerFenced"
            );
        }
        other => panic!("commit of a fenced producer: expected ProducerFenced, got {other:?}"),
    }
    assert_class(&error, ErrorClass::TaskMigrated, "ProducerFenced");
    let again = expect_err(old.begin(), "begin on the fenced producer");
    assert_class(
        &again,
        ErrorClass::TaskMigrated,
        "begin on a fenced producer",
    );

    new.begin().expect("begin on the new producer");
    let fresh = values("fresh", 2);
    let deliveries = send_in_txn(&*new, &s.output, &fresh);
    new.commit().expect("commit on the new producer");
    for (delivery, v) in deliveries.into_iter().zip(&fresh) {
        wait_delivery(delivery, v).unwrap_or_else(|e| panic!("{v} failed: {e}"));
    }
    s.read_output(&fresh);
    s.barrier();
    let seen = s.output_seen();
    assert!(
        !seen.iter().any(|v| v.starts_with("zombie")),
        "records of the fenced producer became visible: {seen:?}"
    );
}

/// Offsets sent with group metadata from before a rebalance (a zombie member's) are refused
/// with a task-migrated error and not committed; the member's current metadata works.
pub fn offsets_from_a_stale_group_generation_are_refused(h: &mut dyn Harness) {
    let input = unique("stale-in");
    let output = unique("stale-out");
    let group = unique("stale-group");
    create_topic(h, &input, TopicConfig::with_partitions(2));
    create_topic(h, &output, TopicConfig::with_partitions(1));
    let plain = producer(h);
    send_all(
        &*plain,
        (0..4)
            .map(|i| {
                ProducerRecord::new(&input)
                    .partition(i % 2)
                    .value(format!("in{i}"))
            })
            .collect(),
    );

    let a = consumer(h, &ConsumerSpec::in_group(&group), None);
    a.subscribe(std::slice::from_ref(&input))
        .expect("a subscribes");
    poll_members_until(&[("a", &*a)], "a to own both partitions", |s, _| {
        s[0].len() == 2
    });
    let stale = a.group_metadata().expect("a's group metadata");

    let b = consumer(h, &ConsumerSpec::in_group(&group), None);
    b.subscribe(std::slice::from_ref(&input))
        .expect("b subscribes");
    let settled = |s: &[BTreeSet<TopicPartition>], _: &[Vec<ConsumedRecord>]| {
        s[0].len() == 1 && s[1].len() == 1
    };
    poll_members_until(
        &[("a", &*a), ("b", &*b)],
        "a and b to own one partition each",
        settled,
    );
    let current = a
        .group_metadata()
        .expect("a's group metadata after the rebalance");
    // Backends that can read the generation show it grow; librdkafka keeps it opaque, so only
    // "never goes back" is required here. The refusal below is what matters.
    assert!(
        current.generation >= stale.generation,
        "the generation went back with the rebalance: {stale:?} then {current:?}"
    );
    let owned = a
        .assignment()
        .expect("a's assignment")
        .into_iter()
        .next()
        .expect("a owns a partition");

    let zombie = transactional_producer(h, &unique("stale-txn"));
    zombie.begin().expect("begin");
    drop(send_in_txn(&*zombie, &output, &values("stale", 1)));
    let outcome = zombie
        .send_offsets(&[(owned.clone(), 1)], &stale)
        .and_then(|()| zombie.commit());
    let error = expect_err(outcome, "committing offsets with stale group metadata");
    assert_class(
        &error,
        ErrorClass::TaskMigrated,
        "offsets with a stale generation",
    );
    let _ = zombie.abort();
    assert_eq!(
        a.committed(std::slice::from_ref(&owned))
            .expect("committed offsets"),
        vec![None],
        "offsets from a stale generation were committed"
    );

    let live = transactional_producer(h, &unique("current-txn"));
    live.begin().expect("begin");
    live.send_offsets(&[(owned.clone(), 1)], &current)
        .expect("send_offsets with current metadata");
    live.commit().expect("commit with current metadata");
    assert_eq!(
        a.committed(std::slice::from_ref(&owned))
            .expect("committed offsets"),
        vec![Some(1)],
        "offsets with the current generation were not committed"
    );
}

/// `commit` without `begin`, and `begin` twice, fail as invalid input (`TransactionState`)
/// without breaking the producer.
pub fn transactional_calls_in_the_wrong_state_fail_as_invalid_input(h: &mut dyn Harness) {
    let mut s = Setup::new(h);
    let producer = transactional_producer(h, &unique("txn-state"));
    let error = expect_err(producer.commit(), "commit without begin");
    assert_class(&error, ErrorClass::InvalidInput, "commit without begin");
    producer.begin().expect("begin");
    let error = expect_err(producer.begin(), "begin inside a transaction");
    assert_class(
        &error,
        ErrorClass::InvalidInput,
        "begin inside a transaction",
    );
    producer.abort().expect("abort the open transaction");

    producer.begin().expect("begin after the errors");
    let after = values("after-errors", 1);
    let deliveries = send_in_txn(&*producer, &s.output, &after);
    producer.commit().expect("commit after the errors");
    for (delivery, v) in deliveries.into_iter().zip(&after) {
        wait_delivery(delivery, v).unwrap_or_else(|e| panic!("{v} failed: {e}"));
    }
    s.read_output(&after);
}
