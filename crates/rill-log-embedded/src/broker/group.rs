//! The consumer-group coordinator, one per group, in process.
//!
//! Every membership or subscription change (or a change of a subscribed topic) starts a new
//! generation and recomputes each member's *target* assignment with a sticky, balanced
//! assignor. Members move toward their target from inside `poll` (see `sync`): first they give
//! up what they own but are no longer targeted for (`revoke`, acknowledged with
//! `ack_revoked` after the listener ran), and only then can another member take those
//! partitions (`assign` hands out only partitions nobody owns). A member that does not sync for
//! its session timeout is removed and its partitions are released at once.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rill_log::{
    AssignmentStrategy, GroupMember, GroupState as AdminGroupState, LogError, Result,
    TopicPartition,
};

/// Incarnation (partition 0's uid) and partition count of a topic, `None` when it does not
/// exist.
pub(crate) type TopicInfo<'a> = &'a dyn Fn(&str) -> Option<(u64, i32)>;

/// What a member must do next, from [`Group::sync`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sync {
    /// The member is not in the group (it left, or missed its session timeout).
    Removed,
    /// The member is in the group at `generation`.
    Active {
        generation: i32,
        /// Partitions to give up (call `on_revoked`, then `ack_revoked`); when non-empty,
        /// `assign` is empty: revocation comes first.
        revoke: Vec<TopicPartition>,
        /// Partitions now owned by the member (call `on_assigned`).
        assign: Vec<TopicPartition>,
        /// The group changed, so other members should be woken.
        changed: bool,
    },
}

struct Member {
    /// The client id of the member's consumer, for administrators.
    client_id: String,
    topics: BTreeSet<String>,
    /// Partitions the member holds (assigned and not yet acknowledged as revoked).
    owned: BTreeSet<TopicPartition>,
    /// Partitions the assignor gives it.
    target: BTreeSet<TopicPartition>,
    last_seen: Instant,
    session_timeout: Duration,
}

#[derive(Default)]
struct GroupState {
    generation: i32,
    members: BTreeMap<String, Member>,
    next_member: u64,
    /// Subscribed topics as they were when targets were last computed.
    seen: BTreeMap<String, Option<(u64, i32)>>,
    /// Set by the first member to join an empty group (all members must use the same).
    strategy: AssignmentStrategy,
}

/// One group's coordinator.
pub(crate) struct Group {
    id: String,
    state: Mutex<GroupState>,
}

impl Group {
    pub(crate) fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            state: Mutex::new(GroupState::default()),
        }
    }

    /// Adds a member subscribed to `topics`; returns its member id.
    pub(crate) fn join(
        &self,
        client_id: &str,
        topics: &[String],
        session_timeout: Duration,
        strategy: AssignmentStrategy,
        info: TopicInfo<'_>,
    ) -> String {
        let mut state = self.state.lock();
        expire(&mut state, Instant::now());
        if state.members.is_empty() {
            state.strategy = strategy;
        } else if state.strategy != strategy {
            tracing::warn!(group = %self.id, ?strategy, group_strategy = ?state.strategy, "member asks for a different assignment strategy than its group; using the group's");
        }
        state.next_member += 1;
        let member_id = format!("{client_id}-{}", state.next_member);
        state.members.insert(
            member_id.clone(),
            Member {
                client_id: client_id.to_string(),
                topics: topics.iter().cloned().collect(),
                owned: BTreeSet::new(),
                target: BTreeSet::new(),
                last_seen: Instant::now(),
                session_timeout,
            },
        );
        rebalance(&mut state, info);
        tracing::debug!(group = %self.id, member = %member_id, generation = state.generation, "member joined");
        member_id
    }

    /// Changes a member's subscription; false when the member is not in the group.
    pub(crate) fn resubscribe(
        &self,
        member_id: &str,
        topics: &[String],
        info: TopicInfo<'_>,
    ) -> bool {
        let mut state = self.state.lock();
        let Some(member) = state.members.get_mut(member_id) else {
            return false;
        };
        member.topics = topics.iter().cloned().collect();
        member.last_seen = Instant::now();
        rebalance(&mut state, info);
        true
    }

    /// Removes a member; what it owned is free at once (the caller revoked it already).
    pub(crate) fn leave(&self, member_id: &str, info: TopicInfo<'_>) {
        let mut state = self.state.lock();
        if state.members.remove(member_id).is_some() {
            rebalance(&mut state, info);
            tracing::debug!(group = %self.id, member = member_id, generation = state.generation, "member left");
        }
    }

    /// The member's heartbeat and next step toward its target assignment.
    pub(crate) fn sync(&self, member_id: &str, info: TopicInfo<'_>) -> Sync {
        let mut state = self.state.lock();
        let now = Instant::now();
        let mut changed = expire(&mut state, now);
        if !state.members.contains_key(member_id) {
            if changed {
                rebalance(&mut state, info);
            }
            return Sync::Removed;
        }
        if changed || topics_changed(&state, info) {
            rebalance(&mut state, info);
            changed = true;
        }
        let owned_by_others: HashSet<TopicPartition> = state
            .members
            .iter()
            .filter(|(id, _)| id.as_str() != member_id)
            .flat_map(|(_, m)| m.owned.iter().cloned())
            .collect();
        let generation = state.generation;
        let Some(member) = state.members.get_mut(member_id) else {
            return Sync::Removed;
        };
        member.last_seen = now;
        let revoke: Vec<TopicPartition> =
            member.owned.difference(&member.target).cloned().collect();
        if !revoke.is_empty() {
            return Sync::Active {
                generation,
                revoke,
                assign: Vec::new(),
                changed,
            };
        }
        let assign: Vec<TopicPartition> = member
            .target
            .difference(&member.owned)
            .filter(|tp| !owned_by_others.contains(*tp))
            .cloned()
            .collect();
        member.owned.extend(assign.iter().cloned());
        Sync::Active {
            generation,
            revoke: Vec::new(),
            assign,
            changed,
        }
    }

    /// The member finished revoking these partitions: others may take them now.
    pub(crate) fn ack_revoked(&self, member_id: &str, partitions: &[TopicPartition]) {
        let mut state = self.state.lock();
        if let Some(member) = state.members.get_mut(member_id) {
            for tp in partitions {
                member.owned.remove(tp);
            }
        }
    }

    /// The group's generation when `member_id` is in the group.
    pub(crate) fn generation_of(&self, member_id: &str) -> Option<i32> {
        let state = self.state.lock();
        state
            .members
            .contains_key(member_id)
            .then_some(state.generation)
    }

    /// The group's state and its live members (those within their session timeout) with the
    /// partitions they hold, for administrators. Looking does not remove silent members:
    /// their next `sync` or a join does, and until then the group counts as rebalancing.
    pub(crate) fn describe(&self) -> (AdminGroupState, Vec<GroupMember>) {
        let state = self.state.lock();
        let now = Instant::now();
        let live: Vec<(&String, &Member)> = state
            .members
            .iter()
            .filter(|(_, m)| now.duration_since(m.last_seen) <= m.session_timeout)
            .collect();
        let settled =
            live.len() == state.members.len() && live.iter().all(|(_, m)| m.owned == m.target);
        let group_state = match (live.is_empty(), settled) {
            (true, _) => AdminGroupState::Empty,
            (false, true) => AdminGroupState::Stable,
            (false, false) => AdminGroupState::Rebalancing,
        };
        let members = live
            .into_iter()
            .map(|(id, m)| GroupMember {
                member_id: id.clone(),
                client_id: m.client_id.clone(),
                host: None,
                assignment: Some(m.owned.iter().cloned().collect()),
            })
            .collect();
        (group_state, members)
    }

    /// Runs `commit` if the member owns every partition, holding the group so ownership
    /// cannot move in between; `CommitRejected` otherwise.
    pub(crate) fn commit_owned(
        &self,
        member_id: &str,
        partitions: &[TopicPartition],
        commit: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let state = self.state.lock();
        let reject = |reason: String| LogError::CommitRejected {
            group: self.id.clone(),
            reason,
        };
        let Some(member) = state.members.get(member_id) else {
            return Err(reject(format!(
                "member {member_id} is no longer in the group (it left or missed its session timeout)"
            )));
        };
        if let Some(tp) = partitions.iter().find(|tp| !member.owned.contains(*tp)) {
            return Err(reject(format!(
                "partition {tp} is not owned by member {member_id} at generation {}",
                state.generation
            )));
        }
        commit()
    }
}

/// Removes members silent for longer than their session timeout; true if any was.
fn expire(state: &mut GroupState, now: Instant) -> bool {
    let before = state.members.len();
    state
        .members
        .retain(|_, m| now.duration_since(m.last_seen) <= m.session_timeout);
    state.members.len() != before
}

fn subscribed_topics(state: &GroupState) -> BTreeSet<String> {
    state
        .members
        .values()
        .flat_map(|m| m.topics.iter().cloned())
        .collect()
}

fn topics_changed(state: &GroupState, info: TopicInfo<'_>) -> bool {
    let topics = subscribed_topics(state);
    topics.len() != state.seen.len() || topics.iter().any(|t| state.seen.get(t) != Some(&info(t)))
}

/// Starts a new generation: recomputes every member's target assignment.
fn rebalance(state: &mut GroupState, info: TopicInfo<'_>) {
    state.generation += 1;
    state.seen = subscribed_topics(state)
        .into_iter()
        .map(|t| {
            let i = info(&t);
            (t, i)
        })
        .collect();
    assign_sticky(&mut state.members, &state.seen, state.strategy);
}

/// Sticky, balanced assignment of *units* (partitions that must go to one member together):
/// each member keeps the units it had where still eligible, free units go to the least-loaded
/// eligible member, then units move from a member to an eligible one with at least two fewer
/// until no such move remains. With `Balanced` every partition is its own unit; with
/// `CoPartitioned` partition `p` of every subscribed topic with `n` partitions forms one unit,
/// so co-partitioned topics are joined by one member.
fn assign_sticky(
    members: &mut BTreeMap<String, Member>,
    topics: &BTreeMap<String, Option<(u64, i32)>>,
    strategy: AssignmentStrategy,
) {
    let existing: Vec<(String, i32)> = topics
        .iter()
        .filter_map(|(t, i)| i.map(|(_, n)| (t.clone(), n)))
        .collect();
    let eligible =
        |m: &Member, unit: &[TopicPartition]| unit.iter().all(|tp| m.topics.contains(&tp.topic));
    let mut units: Vec<Vec<TopicPartition>> = Vec::new();
    match strategy {
        AssignmentStrategy::Balanced => {
            for (t, n) in &existing {
                units.extend((0..*n).map(|p| vec![TopicPartition::new(t.clone(), p)]));
            }
        }
        AssignmentStrategy::CoPartitioned => {
            let mut by_shape: BTreeMap<(i32, i32), Vec<TopicPartition>> = BTreeMap::new();
            for (t, n) in &existing {
                for p in 0..*n {
                    by_shape
                        .entry((*n, p))
                        .or_default()
                        .push(TopicPartition::new(t.clone(), p));
                }
            }
            for unit in by_shape.into_values() {
                // Members with different subscriptions cannot take a unit whole: split it.
                if members.values().any(|m| eligible(m, &unit)) {
                    units.push(unit);
                } else {
                    units.extend(unit.into_iter().map(|tp| vec![tp]));
                }
            }
        }
    }

    // The previous holder of a unit keeps it when still eligible.
    let mut owner: Vec<Option<String>> = units
        .iter()
        .map(|unit| {
            members
                .iter()
                .find(|(_, m)| m.target.contains(&unit[0]) && eligible(m, unit))
                .map(|(id, _)| id.clone())
        })
        .collect();
    let mut load: BTreeMap<String, usize> = members.keys().map(|id| (id.clone(), 0)).collect();
    for id in owner.iter().flatten() {
        *load.entry(id.clone()).or_default() += 1;
    }
    let least_loaded = |load: &BTreeMap<String, usize>, unit: &[TopicPartition]| {
        members
            .iter()
            .filter(|(_, m)| eligible(m, unit))
            .min_by_key(|(id, _)| (load.get(*id).copied().unwrap_or(0), (*id).clone()))
            .map(|(id, _)| id.clone())
    };
    for (u, unit) in units.iter().enumerate() {
        if owner[u].is_none()
            && let Some(id) = least_loaded(&load, unit)
        {
            *load.entry(id.clone()).or_default() += 1;
            owner[u] = Some(id);
        }
    }
    // Each move narrows the spread between two members, so this ends; the bound is a guard.
    for _ in 0..=units.len() * members.len().max(1) {
        let mut moved = false;
        for u in (0..units.len()).rev() {
            let Some(from) = owner[u].clone() else {
                continue;
            };
            let Some(to) = least_loaded(&load, &units[u]) else {
                continue;
            };
            let from_load = load.get(&from).copied().unwrap_or(0);
            let to_load = load.get(&to).copied().unwrap_or(0);
            if from_load > to_load + 1 {
                *load.entry(from).or_default() -= 1;
                *load.entry(to.clone()).or_default() += 1;
                owner[u] = Some(to);
                moved = true;
                break;
            }
        }
        if !moved {
            break;
        }
    }
    for member in members.values_mut() {
        member.target.clear();
    }
    for (unit, id) in units.into_iter().zip(owner) {
        if let Some(member) = id.and_then(|id| members.get_mut(&id)) {
            member.target.extend(unit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(topic: &str) -> Option<(u64, i32)> {
        match topic {
            "a" => Some((1, 6)),
            "b" => Some((2, 1)),
            _ => None,
        }
    }

    fn take_all(group: &Group, member: &str) -> Vec<TopicPartition> {
        let mut all = Vec::new();
        loop {
            match group.sync(member, &info) {
                Sync::Active { revoke, assign, .. } if !revoke.is_empty() => {
                    group.ack_revoked(member, &revoke);
                    assert!(assign.is_empty());
                }
                Sync::Active { assign, .. } => {
                    all.extend(assign);
                    return all;
                }
                Sync::Removed => return all,
            }
        }
    }

    #[test]
    fn second_member_gets_half_after_revocation() {
        let group = Group::new("g");
        let topics = vec!["a".to_string()];
        let m1 = group.join(
            "c",
            &topics,
            Duration::from_secs(60),
            AssignmentStrategy::Balanced,
            &info,
        );
        assert_eq!(take_all(&group, &m1).len(), 6);
        let m2 = group.join(
            "c",
            &topics,
            Duration::from_secs(60),
            AssignmentStrategy::Balanced,
            &info,
        );
        // m2 can take nothing until m1 revokes.
        assert!(
            matches!(group.sync(&m2, &info), Sync::Active { ref assign, .. } if assign.is_empty())
        );
        let Sync::Active { revoke, .. } = group.sync(&m1, &info) else {
            panic!("m1 removed");
        };
        assert_eq!(revoke.len(), 3);
        group.ack_revoked(&m1, &revoke);
        let got = take_all(&group, &m2);
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|tp| revoke.contains(tp)));
    }

    #[test]
    fn assignment_is_balanced_across_subscriptions() {
        let group = Group::new("g");
        let both = vec!["a".to_string(), "b".to_string()];
        let ids: Vec<String> = (0..3)
            .map(|_| {
                group.join(
                    "c",
                    &both,
                    Duration::from_secs(60),
                    AssignmentStrategy::Balanced,
                    &info,
                )
            })
            .collect();
        let counts: Vec<usize> = ids.iter().map(|id| take_all(&group, id).len()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 7);
        assert!(counts.iter().all(|c| (2..=3).contains(c)), "{counts:?}");
    }

    #[test]
    fn silent_member_is_removed() {
        let group = Group::new("g");
        let topics = vec!["a".to_string()];
        let quiet = group.join(
            "c",
            &topics,
            Duration::ZERO,
            AssignmentStrategy::Balanced,
            &info,
        );
        let m2 = group.join(
            "c",
            &topics,
            Duration::from_secs(60),
            AssignmentStrategy::Balanced,
            &info,
        );
        std::thread::yield_now();
        // Any elapsed time exceeds a zero timeout.
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 6 && Instant::now() < deadline {
            got.extend(take_all(&group, &m2));
        }
        assert_eq!(got.len(), 6);
        assert_eq!(group.sync(&quiet, &info), Sync::Removed);
    }
}

#[cfg(test)]
mod co_partitioned_tests {
    use super::*;

    fn info(topic: &str) -> Option<(u64, i32)> {
        match topic {
            "left" | "right" => Some((1, 4)),
            "other" => Some((2, 3)),
            _ => None,
        }
    }

    #[test]
    fn partition_p_of_co_partitioned_topics_goes_to_one_member() {
        let group = Group::new("g");
        let topics: Vec<String> = ["left", "right", "other"].map(String::from).to_vec();
        let ids: Vec<String> = (0..2)
            .map(|_| {
                group.join(
                    "c",
                    &topics,
                    Duration::from_secs(60),
                    AssignmentStrategy::CoPartitioned,
                    &info,
                )
            })
            .collect();
        let state = group.state.lock();
        let mut total = 0;
        for id in &ids {
            let target = &state.members[id].target;
            total += target.len();
            for p in 0..4 {
                assert_eq!(
                    target.contains(&TopicPartition::new("left", p)),
                    target.contains(&TopicPartition::new("right", p)),
                    "left-{p} and right-{p} are split"
                );
            }
        }
        assert_eq!(total, 11);
        let units: Vec<usize> = ids
            .iter()
            .map(|id| {
                let t = &state.members[id].target;
                t.iter().filter(|tp| tp.topic != "right").count()
            })
            .collect();
        assert!(units.iter().all(|u| (3..=4).contains(u)), "{units:?}");
    }
}
