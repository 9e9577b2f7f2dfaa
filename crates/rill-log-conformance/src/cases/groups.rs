//! Consumer groups: assignment, rebalancing when members join and leave, and the order of
//! rebalance notifications.

use std::collections::BTreeSet;

use rill_log::{Consumer, ProducerRecord, TopicConfig, TopicPartition};

use crate::support::{
    ConsumerSpec, GroupObserver, assignment, consumer, create_topic, partitions,
    poll_members_until, producer, send_all, summary, text, unique,
};
use crate::{Feature, Harness};

/// Feature group these cases need: none.
pub const FEATURE: Option<Feature> = None;

fn subscribe(consumer: &dyn Consumer, topic: &str, member: &str) {
    consumer
        .subscribe(&[topic.to_string()])
        .unwrap_or_else(|e| panic!("{member} subscribing to {topic} failed: {e}"));
}

/// Two members `a` and `b` of one group on a 4-partition topic, settled with two partitions
/// each. Returns the topic, the observer and both consumers.
fn two_members(h: &dyn Harness) -> (String, GroupObserver, Box<dyn Consumer>, Box<dyn Consumer>) {
    let topic = unique("group");
    let group = unique("group");
    create_topic(h, &topic, TopicConfig::with_partitions(4));
    let all: BTreeSet<TopicPartition> = partitions(&topic, 4).into_iter().collect();
    let observer = GroupObserver::new();

    let a = consumer(
        h,
        &ConsumerSpec::in_group(&group),
        Some(observer.listener("a")),
    );
    subscribe(&*a, &topic, "a");
    poll_members_until(&[("a", &*a)], "member a to own all 4 partitions", |s, _| {
        s[0] == all
    });
    assert_eq!(
        observer.owned_by("a"),
        all,
        "a's listener was not told of all partitions: {}",
        observer.events()
    );

    let b = consumer(
        h,
        &ConsumerSpec::in_group(&group),
        Some(observer.listener("b")),
    );
    subscribe(&*b, &topic, "b");
    poll_members_until(
        &[("a", &*a), ("b", &*b)],
        "a and b to split the 4 partitions",
        |s, _| !s[0].is_empty() && !s[1].is_empty() && s[0].union(&s[1]).count() == 4,
    );
    observer.assert_no_violations();
    (topic, observer, a, b)
}

/// The only member of a group is assigned every partition of its topic, told so by its
/// listener, and reads records from all of them.
pub fn a_single_member_is_assigned_every_partition(h: &mut dyn Harness) {
    let topic = unique("single");
    let group = unique("single");
    create_topic(h, &topic, TopicConfig::with_partitions(4));
    let producer = producer(h);
    send_all(
        &*producer,
        (0..4)
            .map(|p| {
                ProducerRecord::new(&topic)
                    .partition(p)
                    .value(format!("p{p}"))
            })
            .collect(),
    );
    let all: BTreeSet<TopicPartition> = partitions(&topic, 4).into_iter().collect();
    let observer = GroupObserver::new();
    let member = consumer(
        h,
        &ConsumerSpec::in_group(&group),
        Some(observer.listener("only")),
    );
    subscribe(&*member, &topic, "only");
    let mut received = Vec::new();
    let deadline = crate::support::Deadline::start();
    while received.len() < 4 || assignment(&*member, "only") != all {
        assert!(
            !deadline.passed(),
            "the only member did not get all partitions and their records: assignment {:?}, \
             records {}, events {}",
            assignment(&*member, "only"),
            summary(&received),
            observer.events()
        );
        received.extend(
            member
                .poll(crate::support::POLL_STEP)
                .expect("polling the only member"),
        );
    }
    assert_eq!(
        observer.owned_by("only"),
        all,
        "listener view: {}",
        observer.events()
    );
    let values: BTreeSet<String> = received.iter().map(text).collect();
    let expected: BTreeSet<String> = (0..4).map(|p| format!("p{p}")).collect();
    assert_eq!(values, expected, "records read by the only member");
    observer.assert_no_violations();
}

/// A second member joining takes half the partitions; the first member's listener hears them
/// revoked before the second's hears them assigned (no partition is owned by two members at
/// once), and each member then reads only its own partitions.
pub fn a_joining_member_splits_the_partitions_and_revocation_precedes_assignment(
    h: &mut dyn Harness,
) {
    let (topic, observer, a, b) = two_members(h);
    let owned_a = assignment(&*a, "a");
    let owned_b = assignment(&*b, "b");
    assert_eq!(
        (owned_a.len(), owned_b.len()),
        (2, 2),
        "4 partitions over 2 members are not balanced: a {owned_a:?}, b {owned_b:?}"
    );
    assert_eq!(
        observer.owned_by("a"),
        owned_a,
        "a's listener view: {}",
        observer.events()
    );
    assert_eq!(
        observer.owned_by("b"),
        owned_b,
        "b's listener view: {}",
        observer.events()
    );
    observer.assert_no_violations();

    let producer = producer(h);
    send_all(
        &*producer,
        (0..4)
            .map(|p| {
                ProducerRecord::new(&topic)
                    .partition(p)
                    .value(format!("p{p}"))
            })
            .collect(),
    );
    let received = poll_members_until(
        &[("a", &*a), ("b", &*b)],
        "the 4 records to reach their partitions' owners",
        |_, got| got.iter().map(Vec::len).sum::<usize>() >= 4,
    );
    let (got_a, got_b) = (&received[0], &received[1]);
    for (member, got, owned) in [("a", got_a, &owned_a), ("b", got_b, &owned_b)] {
        for record in got.iter() {
            let tp = TopicPartition::new(&*record.topic, record.partition);
            assert!(
                owned.contains(&tp),
                "{member} read {} from {tp}, which it does not own ({owned:?})",
                text(record)
            );
        }
    }
    observer.assert_no_violations();
}

/// When a member leaves (closes), its partitions are revoked from it and assigned to the
/// member that stays, which ends up owning every partition.
pub fn a_leaving_member_gives_its_partitions_back(h: &mut dyn Harness) {
    let (topic, observer, a, b) = two_members(h);
    let all: BTreeSet<TopicPartition> = partitions(&topic, 4).into_iter().collect();
    b.close().expect("closing member b");
    assert!(
        observer.owned_by("b").is_empty(),
        "b closed without its listener hearing its partitions revoked: {}",
        observer.events()
    );
    poll_members_until(&[("a", &*a)], "a to own all 4 partitions again", |s, _| {
        s[0] == all
    });
    assert_eq!(
        observer.owned_by("a"),
        all,
        "a's listener view: {}",
        observer.events()
    );
    observer.assert_no_violations();
}
