//! Reading a group's committed offsets as an administrator, without being a member of it.
//! Listing and describing groups is in [`group_admin`](super::group_admin).

use rill_log::{Offset, ProducerRecord, TopicConfig, TopicPartition};

use crate::support::{ConsumerSpec, consumer, create_topic, producer, send_all, unique};
use crate::{Feature, Harness};

/// Feature group these cases need: none.
pub const FEATURE: Option<Feature> = None;

fn group_offsets(h: &dyn Harness, group: &str) -> Vec<(TopicPartition, Offset)> {
    h.log()
        .admin()
        .group_offsets(group)
        .unwrap_or_else(|e| panic!("reading the committed offsets of group {group} failed: {e}"))
}

/// `group_offsets` reports every partition a group committed, with the last offset committed
/// there, sorted; partitions it never committed and other groups' commits are left out, and
/// a group that committed nothing has none.
pub fn group_offsets_report_what_the_group_committed_per_partition(h: &mut dyn Harness) {
    let topic = unique("goffsets");
    create_topic(h, &topic, TopicConfig::with_partitions(3));
    let producer = producer(h);
    send_all(
        &*producer,
        [0, 0, 0, 2, 2]
            .into_iter()
            .map(|p| {
                ProducerRecord::new(&topic)
                    .partition(p)
                    .value(format!("p{p}"))
            })
            .collect(),
    );
    let tp = |p| TopicPartition::new(&topic, p);

    let group = unique("goffsets");
    let committer = consumer(h, &ConsumerSpec::in_group(&group), None);
    committer
        .assign(&[tp(0), tp(2)])
        .expect("assigning partitions 0 and 2");
    committer
        .commit(&[(tp(0), 3), (tp(2), 1)])
        .expect("committing partitions 0 and 2");
    assert_eq!(
        group_offsets(h, &group),
        vec![(tp(0), 3), (tp(2), 1)],
        "committed offsets of {group} after its first commit"
    );

    let other = unique("goffsets-other");
    let other_committer = consumer(h, &ConsumerSpec::in_group(&other), None);
    other_committer
        .assign(&[tp(1)])
        .expect("assigning partition 1");
    other_committer
        .commit(&[(tp(1), 0)])
        .expect("committing partition 1 for the other group");

    committer
        .commit(&[(tp(2), 2)])
        .expect("committing partition 2 again");
    assert_eq!(
        group_offsets(h, &group),
        vec![(tp(0), 3), (tp(2), 2)],
        "committed offsets of {group} after a second commit (and another group's commit)"
    );
    assert_eq!(
        group_offsets(h, &other),
        vec![(tp(1), 0)],
        "committed offsets of the other group"
    );
    assert_eq!(
        group_offsets(h, &unique("goffsets-none")),
        Vec::new(),
        "a group that never committed reports offsets"
    );
    committer.close().expect("closing the committer");
    other_committer
        .close()
        .expect("closing the other committer");
}
