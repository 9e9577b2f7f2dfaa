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
use rill_log::{LogError, Result, TopicPartition};

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
        info: TopicInfo<'_>,
    ) -> String {
        let mut state = self.state.lock();
        expire(&mut state, Instant::now());
        state.next_member += 1;
        let member_id = format!("{client_id}-{}", state.next_member);
        state.members.insert(
            member_id.clone(),
            Member {
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
    assign_sticky(&mut state.members, &state.seen);
}

/// Sticky, balanced assignment: members keep their previous targets where still valid, free
/// partitions go to the least-loaded eligible member, then partitions move from a member to an
/// eligible one with at least two fewer until no such move remains.
fn assign_sticky(
    members: &mut BTreeMap<String, Member>,
    topics: &BTreeMap<String, Option<(u64, i32)>>,
) {
    let exists = |tp: &TopicPartition| {
        topics
            .get(&tp.topic)
            .copied()
            .flatten()
            .is_some_and(|(_, n)| tp.partition < n)
    };
    for member in members.values_mut() {
        let topics = &member.topics;
        member
            .target
            .retain(|tp| topics.contains(&tp.topic) && exists(tp));
    }
    let all: Vec<TopicPartition> = topics
        .iter()
        .filter_map(|(t, i)| i.map(|(_, n)| (t, n)))
        .flat_map(|(t, n)| (0..n).map(move |p| TopicPartition::new(t.clone(), p)))
        .collect();
    let mut taken: HashSet<TopicPartition> = HashSet::new();
    for member in members.values_mut() {
        // A partition can only have one target owner; drop duplicates defensively.
        member.target.retain(|tp| taken.insert(tp.clone()));
    }
    let least_loaded = |members: &BTreeMap<String, Member>, topic: &str| -> Option<String> {
        members
            .iter()
            .filter(|(_, m)| m.topics.contains(topic))
            .min_by_key(|(id, m)| (m.target.len(), (*id).clone()))
            .map(|(id, _)| id.clone())
    };
    for tp in &all {
        if taken.contains(tp) {
            continue;
        }
        if let Some(id) = least_loaded(members, &tp.topic)
            && let Some(member) = members.get_mut(&id)
        {
            member.target.insert(tp.clone());
        }
    }
    // Each move lowers the spread between two members, so this ends; the bound is a guard.
    for _ in 0..=all.len() * members.len().max(1) {
        let mut moved = false;
        for tp in all.iter().rev() {
            let Some(owner) = members
                .iter()
                .find(|(_, m)| m.target.contains(tp))
                .map(|(id, m)| (id.clone(), m.target.len()))
            else {
                continue;
            };
            let Some(candidate) = least_loaded(members, &tp.topic) else {
                continue;
            };
            let candidate_len = members.get(&candidate).map_or(0, |m| m.target.len());
            if owner.1 > candidate_len + 1 {
                if let Some(m) = members.get_mut(&owner.0) {
                    m.target.remove(tp);
                }
                if let Some(m) = members.get_mut(&candidate) {
                    m.target.insert(tp.clone());
                }
                moved = true;
                break;
            }
        }
        if !moved {
            break;
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
        let m1 = group.join("c", &topics, Duration::from_secs(60), &info);
        assert_eq!(take_all(&group, &m1).len(), 6);
        let m2 = group.join("c", &topics, Duration::from_secs(60), &info);
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
            .map(|_| group.join("c", &both, Duration::from_secs(60), &info))
            .collect();
        let counts: Vec<usize> = ids.iter().map(|id| take_all(&group, id).len()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 7);
        assert!(counts.iter().all(|c| (2..=3).contains(c)), "{counts:?}");
    }

    #[test]
    fn silent_member_is_removed() {
        let group = Group::new("g");
        let topics = vec!["a".to_string()];
        let quiet = group.join("c", &topics, Duration::ZERO, &info);
        let m2 = group.join("c", &topics, Duration::from_secs(60), &info);
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
