//! Consumer groups as an administrator sees them: listed, described with their state and
//! members (client ids and assignments), and with their committed offsets, without joining
//! them. Committed offsets alone are in [`group_offsets`](super::group_offsets).

use std::collections::BTreeSet;

use rill_log::{
    Consumer, ConsumerConfig, ErrorClass, GroupDescription, GroupListing, GroupState, LogError,
    OffsetReset, ProducerRecord, TopicConfig, TopicPartition,
};

use crate::support::{
    Deadline, POLL_STEP, assert_class, create_topic, expect_err, partitions, poll_members_until,
    producer, send_all, unique, wait_limit,
};
use crate::{Feature, Harness};

/// Feature group these cases need: [`Feature::GroupAdmin`].
pub const FEATURE: Option<Feature> = Some(Feature::GroupAdmin);

fn listing(h: &dyn Harness) -> Vec<GroupListing> {
    h.log()
        .admin()
        .list_groups()
        .unwrap_or_else(|e| panic!("listing groups failed: {e}"))
}

fn listed(h: &dyn Harness, group: &str) -> Option<GroupState> {
    listing(h)
        .into_iter()
        .find(|g| g.group_id == group)
        .map(|g| g.state)
}

/// Describes `group` until `done` holds, polling `member` (when given) in between so it keeps
/// its membership; fails after [`wait_limit`] with the last description.
fn describe_until(
    h: &dyn Harness,
    group: &str,
    member: Option<&dyn Consumer>,
    what: &str,
    done: impl Fn(&GroupDescription) -> bool,
) -> GroupDescription {
    let deadline = Deadline::start();
    loop {
        let described = h.log().admin().describe_group(group);
        if let Ok(description) = &described
            && done(description)
        {
            return description.clone();
        }
        assert!(
            !deadline.passed(),
            "waited {:?} for {what}; group {group} is described as {described:?}",
            wait_limit()
        );
        match member {
            Some(member) => {
                member
                    .poll(POLL_STEP)
                    .unwrap_or_else(|e| panic!("polling the member of {group} failed: {e}"));
            }
            None => std::thread::sleep(POLL_STEP),
        }
    }
}

/// While its one member runs, a group with committed offsets is listed, described as stable
/// with that member (its client id and both partitions it holds), and reports its offsets;
/// once the member leaves, the group is still listed, described as empty with no members, and
/// keeps its offsets.
pub fn a_group_is_listed_and_described_with_its_members_and_offsets(h: &mut dyn Harness) {
    let topic = unique("gadmin");
    create_topic(h, &topic, TopicConfig::with_partitions(2));
    let producer = producer(h);
    send_all(
        &*producer,
        [0, 0, 0, 1]
            .into_iter()
            .map(|p| {
                ProducerRecord::new(&topic)
                    .partition(p)
                    .value(format!("p{p}"))
            })
            .collect(),
    );
    let both: BTreeSet<TopicPartition> = partitions(&topic, 2).into_iter().collect();
    let tp = |p| TopicPartition::new(&topic, p);

    let group = unique("gadmin");
    let client_id = unique("gadmin-client");
    let mut config = ConsumerConfig {
        client_id: Some(client_id.clone()),
        ..ConsumerConfig::default()
    };
    h.tune_consumer(&mut config);
    config.group_id = Some(group.clone());
    config.offset_reset = OffsetReset::Earliest;
    let member = h
        .log()
        .consumer(&config, None)
        .unwrap_or_else(|e| panic!("creating the member of {group} failed: {e}"));
    member
        .subscribe(std::slice::from_ref(&topic))
        .expect("subscribing the member");
    poll_members_until(
        &[("member", &*member)],
        "the member to own both partitions",
        |owned, _| owned[0] == both,
    );
    member
        .commit(&[(tp(0), 2), (tp(1), 1)])
        .expect("committing both partitions");

    let described = describe_until(
        h,
        &group,
        Some(&*member),
        "the group to be stable with its one member holding both partitions",
        |d| {
            d.state == GroupState::Stable
                && d.members.len() == 1
                && d.members[0].assignment == Some(both.iter().cloned().collect())
        },
    );
    assert_eq!(described.group_id, group, "described group id");
    let one = &described.members[0];
    assert_eq!(one.client_id, client_id, "client id of the member: {one:?}");
    assert!(!one.member_id.is_empty(), "the member has no id: {one:?}");
    assert!(
        one.host.as_ref().is_none_or(|host| !host.is_empty()),
        "a host, when reported, is not empty: {one:?}"
    );
    assert_eq!(
        listed(h, &group),
        Some(GroupState::Stable),
        "the running group in list_groups"
    );
    let all = listing(h);
    let mut ids: Vec<&str> = all.iter().map(|g| g.group_id.as_str()).collect();
    let unsorted = ids.clone();
    ids.sort_unstable();
    assert_eq!(unsorted, ids, "list_groups is not sorted by id");
    assert_eq!(
        h.log()
            .admin()
            .group_offsets(&group)
            .expect("group offsets"),
        vec![(tp(0), 2), (tp(1), 1)],
        "committed offsets of the running group"
    );

    member.close().expect("closing the member");
    describe_until(
        h,
        &group,
        None,
        "the group to be empty after its member left",
        |d| d.state == GroupState::Empty && d.members.is_empty(),
    );
    assert_eq!(
        listed(h, &group),
        Some(GroupState::Empty),
        "a group without members but with offsets in list_groups"
    );
    assert_eq!(
        h.log()
            .admin()
            .group_offsets(&group)
            .expect("group offsets"),
        vec![(tp(0), 2), (tp(1), 1)],
        "committed offsets after the member left"
    );
}

/// A group nobody joined or committed for is not listed, and describing it fails with
/// `UnknownGroup` (invalid input), even while a consumer carrying its id reads partitions it
/// assigned itself.
pub fn an_unknown_group_is_not_listed_and_cannot_be_described(h: &mut dyn Harness) {
    let topic = unique("gunknown");
    create_topic(h, &topic, TopicConfig::with_partitions(1));
    let group = unique("gunknown");
    let mut config = ConsumerConfig::default();
    h.tune_consumer(&mut config);
    config.group_id = Some(group.clone());
    config.offset_reset = OffsetReset::Earliest;
    let reader = h
        .log()
        .consumer(&config, None)
        .unwrap_or_else(|e| panic!("creating a consumer with group {group} failed: {e}"));
    reader
        .assign(&[TopicPartition::new(&topic, 0)])
        .expect("assigning partition 0");
    reader.poll(POLL_STEP).expect("polling the reader");

    assert_eq!(
        listed(h, &group),
        None,
        "a group without members or offsets is listed"
    );
    let error = expect_err(
        h.log().admin().describe_group(&group),
        "describing a group nobody joined or committed for",
    );
    assert!(
        matches!(&error, LogError::UnknownGroup { group: g } if *g == group),
        "expected UnknownGroup for {group}, got {error:?}"
    );
    assert_class(&error, ErrorClass::InvalidInput, "UnknownGroup");
    reader.close().expect("closing the reader");
}
