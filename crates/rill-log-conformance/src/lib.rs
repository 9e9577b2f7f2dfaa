//! One conformance test suite for the `rill-log` traits, run unchanged against every backend.
//!
//! **Owns:** the behaviour every log backend must show (SPEC §3): ordering, partitioning by
//! murmur2, offsets, record fields, topic administration, consumer groups and rebalances,
//! committed offsets, group administration (listing, describing, committed offsets), seeking,
//! watermarks, offset reset, transactions, retention, compaction, crash recovery and typed
//! errors. A backend proves itself by implementing [`Harness`] in one
//! test file and invoking [`conformance_suite!`], which expands to one `#[test]` per case.
//!
//! **May depend on:** `rill-log` (and `bytes`, its record type) only. It names no backend: the
//! backend's test file depends on this crate, never the other way round.
//!
//! # Wiring a backend
//!
//! ```ignore
//! // crates/rill-log-embedded/tests/conformance.rs
//! use rill_log_conformance::{Capabilities, Feature, Harness};
//!
//! struct EmbeddedHarness { /* tempdir, Arc<EmbeddedLog> */ }
//! impl Harness for EmbeddedHarness { /* log, restart, crash_and_restart, ... */ }
//!
//! rill_log_conformance::conformance_suite!(
//!     harness: EmbeddedHarness::new(),
//!     unsupported: [],
//! );
//!
//! // crates/rill-log-kafka/tests/conformance_kafka.rs
//! rill_log_conformance::conformance_suite!(
//!     harness: KafkaHarness::new(),
//!     unsupported: [
//!         cleaner = "unsupported by kafka: the broker runs retention on its own schedule",
//!         torn_writes = "unsupported by kafka: the broker's files are out of reach",
//!     ],
//! );
//! ```
//!
//! A case whose feature group is listed under `unsupported` is generated with
//! `#[ignore = "<the reason>"]`, so `cargo test` and nextest show it as ignored with the reason;
//! it is never silently passed. Each reason must read `"unsupported by <backend>: <why>"`,
//! with `<backend>` and `<why>` exactly as [`Harness::backend`] and [`Harness::capabilities`]
//! report them: the generated test
//! `conformance_suite_declares_what_the_harness_cannot_do` checks that the list and the
//! harness agree, and a case forced to run (`--ignored`) on a backend that cannot support it
//! fails with the reason instead of passing.
//!
//! # Rules every case follows
//!
//! - Topic and group names are unique (prefix, process id, a per-process counter and
//!   nanoseconds), so cases share one broker and run in parallel.
//! - Waiting is a deadline loop around `poll` (or a delivery) that fails with a message saying
//!   what was awaited and what was seen; there are no fixed sleeps and no timing assertions.
//!   The deadline is 30 s, or `RILL_CONFORMANCE_WAIT_SECS`.
//! - Every client a case makes is dropped before it calls [`Harness::restart`] or
//!   [`Harness::crash_and_restart`], and the case fetches [`Harness::log`] again afterwards.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rill_log::{ConsumerConfig, Log, ProducerConfig, Result, TopicConfig, TopicPartition};

pub mod cases;
pub mod support;

/// A group of behaviour that some backends cannot offer or cannot be driven to show on demand.
/// Every case needs at most one; cases that need none run on every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Feature {
    /// Transactional producers, read-committed isolation, fencing, offsets in transactions.
    /// Macro name: `transactions`.
    Transactions,
    /// Retention by time and size, and compaction, applied when [`Harness::run_cleaner`] is
    /// called. Macro name: `cleaner`.
    Cleaner,
    /// Stopping without a clean shutdown and tearing the tail of a partition
    /// ([`Harness::crash_and_restart`], [`Harness::corrupt_tail`]). Macro name: `torn_writes`.
    TornWrites,
    /// Offsets numbered 0, 1, 2, ... with no gaps in a partition written without transactions.
    /// Macro name: `dense_offsets`.
    DenseOffsets,
    /// Record timestamps as create times: the timestamp a producer sets is the one acknowledged
    /// and consumed, a record sent without one gets the time of sending, and seeking to a
    /// timestamp finds the first record at or after it. Macro name: `timestamps`.
    Timestamps,
    /// Deleting topics, and describing the configuration a topic was created with (such as its
    /// cleanup policy). Creating topics, listing them, their partition counts and the errors
    /// for existing, missing and invalid topics are required of every backend. Macro name:
    /// `topic_admin`.
    TopicAdmin,
    /// Listing consumer groups and describing their state and members
    /// ([`Admin::list_groups`](rill_log::Admin::list_groups),
    /// [`Admin::describe_group`](rill_log::Admin::describe_group)). Reading a group's committed
    /// offsets ([`Admin::group_offsets`](rill_log::Admin::group_offsets)) is required of every
    /// backend. Macro name: `group_admin`.
    GroupAdmin,
}

impl Feature {
    /// Every feature group.
    pub const ALL: [Feature; 7] = [
        Feature::Transactions,
        Feature::Cleaner,
        Feature::TornWrites,
        Feature::DenseOffsets,
        Feature::Timestamps,
        Feature::TopicAdmin,
        Feature::GroupAdmin,
    ];

    /// The name used for it in [`conformance_suite!`]'s `unsupported` list.
    pub fn macro_name(self) -> &'static str {
        match self {
            Feature::Transactions => "transactions",
            Feature::Cleaner => "cleaner",
            Feature::TornWrites => "torn_writes",
            Feature::DenseOffsets => "dense_offsets",
            Feature::Timestamps => "timestamps",
            Feature::TopicAdmin => "topic_admin",
            Feature::GroupAdmin => "group_admin",
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.macro_name())
    }
}

/// Which feature groups a backend supports; each unsupported one carries the reason.
///
/// ```
/// use rill_log_conformance::{Capabilities, Feature};
/// let kafka = Capabilities::all()
///     .without(Feature::Cleaner, "the broker runs retention on its own schedule");
/// assert_eq!(kafka.unsupported(Feature::Cleaner), Some("the broker runs retention on its own schedule"));
/// assert!(kafka.supports(Feature::Transactions));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    unsupported: BTreeMap<Feature, String>,
}

impl Capabilities {
    /// Every feature group supported.
    pub fn all() -> Self {
        Self::default()
    }

    /// Marks `feature` unsupported, saying why.
    pub fn without(mut self, feature: Feature, reason: impl Into<String>) -> Self {
        self.unsupported.insert(feature, reason.into());
        self
    }

    /// Why `feature` is unsupported, or `None` when it is supported.
    pub fn unsupported(&self, feature: Feature) -> Option<&str> {
        self.unsupported.get(&feature).map(String::as_str)
    }

    /// Whether `feature` is supported.
    pub fn supports(&self, feature: Feature) -> bool {
        !self.unsupported.contains_key(&feature)
    }
}

/// What a backend's test file implements so the suite can drive it.
///
/// One harness is made per case (by the expression given to [`conformance_suite!`]), so a
/// harness may own per-case state such as a temporary directory. Methods that change the log's
/// lifetime take `&mut self`; the suite drops every client it made before calling them and
/// fetches [`log`](Harness::log) again afterwards.
pub trait Harness {
    /// Short backend name used in messages and ignore reasons, e.g. `"embedded"`.
    fn backend(&self) -> &str;

    /// The log under test. After a restart this is the new instance.
    fn log(&self) -> Arc<dyn Log>;

    /// The feature groups this backend supports, with a reason for each one it does not.
    fn capabilities(&self) -> Capabilities;

    /// Stops the log cleanly and starts it again on the same data (embedded: `close()` and
    /// reopen the same directory; Kafka: drop and recreate the clients).
    fn restart(&mut self) -> Result<()>;

    /// Stops the log without a clean shutdown (no final fsync, no clean-shutdown markers) and
    /// starts it again on the same data, applying any pending [`corrupt_tail`](Self::corrupt_tail).
    /// Needed by [`Feature::TornWrites`].
    fn crash_and_restart(&mut self) -> Result<()> {
        panic!(
            "{}: crash_and_restart is not implemented; list torn_writes as unsupported",
            self.backend()
        )
    }

    /// Applies retention and compaction to every topic now, returning when done. Needed by
    /// [`Feature::Cleaner`].
    fn run_cleaner(&mut self) -> Result<()> {
        panic!(
            "{}: run_cleaner is not implemented; list cleaner as unsupported",
            self.backend()
        )
    }

    /// Tears the tail of `partition` as a crash in the middle of a write would: the last
    /// segment ends in a partial or garbled batch after every acknowledged record. Takes effect
    /// at the next [`crash_and_restart`](Self::crash_and_restart), which the suite calls right
    /// after with no write in between (an implementation may write at once or between stopping
    /// and reopening). Needed by [`Feature::TornWrites`].
    fn corrupt_tail(&mut self, partition: &TopicPartition) -> Result<()> {
        panic!(
            "{}: corrupt_tail({partition}) is not implemented; list torn_writes as unsupported",
            self.backend()
        )
    }

    /// Adjusts a producer configuration before the suite uses it (e.g. a short `linger`, or
    /// librdkafka properties in `extra`). Default: unchanged.
    fn tune_producer(&self, config: &mut ProducerConfig) {
        let _ = config;
    }

    /// Adjusts a consumer configuration before the suite uses it (e.g. session timeouts or the
    /// assignment strategy). The suite sets group, isolation, reset policy and
    /// `max_poll_records` itself; a harness must leave those as they are. Default: unchanged.
    fn tune_consumer(&self, config: &mut ConsumerConfig) {
        let _ = config;
    }

    /// Adjusts a topic configuration before the suite creates the topic (e.g. a replication
    /// factor in `extra`). Partitions, retention, cleanup policy and segment size must be left
    /// as they are. Default: unchanged.
    fn tune_topic(&self, config: &mut TopicConfig) {
        let _ = config;
    }

    /// Size in bytes of a record value the backend must refuse as too large. Default: 4 MiB
    /// (above the embedded log's and Kafka's default limit of 1 MiB).
    fn oversized_value_bytes(&self) -> usize {
        4 << 20
    }
}

/// Runs one case against `harness`, first making sure the backend supports the case's feature
/// group. Called by the tests [`conformance_suite!`] generates.
///
/// # Panics
/// When the case fails, or when the backend does not support `feature` (a case forced to run
/// with `--ignored`, or a feature missing from the macro's `unsupported` list): the case is
/// reported as failed with the reason, never passed.
pub fn run_case(
    harness: &mut dyn Harness,
    name: &str,
    feature: Option<Feature>,
    case: fn(&mut dyn Harness),
) {
    if let Some(feature) = feature
        && let Some(reason) = harness.capabilities().unsupported(feature)
    {
        panic!(
            "case {name} needs feature group `{feature}`, unsupported by {}: {reason}. \
             It cannot pass on this backend; the conformance_suite! invocation should list \
             `{feature} = \"unsupported by {}: {reason}\"` so the case is reported as ignored",
            harness.backend(),
            harness.backend(),
        );
    }
    case(harness);
}

/// Checks that the `unsupported` list given to [`conformance_suite!`] matches
/// [`Harness::capabilities`] exactly, reasons included. Called by the generated test
/// `conformance_suite_declares_what_the_harness_cannot_do`.
///
/// # Panics
/// On any difference, saying which entry to add, remove or reword.
pub fn check_declared(harness: &dyn Harness, declared: &[(Feature, &str)]) {
    let capabilities = harness.capabilities();
    let backend = harness.backend();
    let mut problems = Vec::new();
    for feature in Feature::ALL {
        let listed = declared
            .iter()
            .find(|(declared_feature, _)| *declared_feature == feature)
            .map(|(_, reason)| *reason);
        match (capabilities.unsupported(feature), listed) {
            (None, None) => {}
            (Some(reason), None) => problems.push(format!(
                "the harness does not support `{feature}` ({reason}) but the macro does not \
                 list it: add `{feature} = \"unsupported by {backend}: {reason}\"`"
            )),
            (None, Some(listed)) => problems.push(format!(
                "the macro lists `{feature}` as unsupported (\"{listed}\") but the harness \
                 supports it: remove it from the list so its cases run"
            )),
            (Some(reason), Some(listed)) => {
                let expected = format!("unsupported by {backend}: {reason}");
                if listed != expected {
                    problems.push(format!(
                        "the reason for `{feature}` reads \"{listed}\"; it must read \
                         \"{expected}\""
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "conformance_suite! for backend {backend} disagrees with its harness:\n  {}",
        problems.join("\n  ")
    );
}

/// Expands to the whole conformance suite as `#[test]` functions in the calling test file.
///
/// ```ignore
/// rill_log_conformance::conformance_suite!(
///     harness: KafkaHarness::new(),
///     unsupported: [
///         cleaner = "unsupported by kafka: the broker runs retention on its own schedule",
///     ],
/// );
/// ```
///
/// `harness` is an expression evaluated once per test, giving a value of a type that
/// implements [`Harness`]; it is placed in a function at the invocation's module, so it may
/// name items of the test file. `unsupported` lists feature groups (`transactions`, `cleaner`,
/// `torn_writes`, `dense_offsets`, `timestamps`, `topic_admin`, `group_admin`) with the literal
/// reason shown for every ignored case, which must be `"unsupported by <backend>: <reason>"` as
/// the harness reports them. The list may be empty or left out.
///
/// Tests are grouped in modules named after the area (`produce_consume`, `admin`, `groups`,
/// `offsets`, `group_offsets`, `errors`) or, for cases that need a feature group, after the
/// group (`transactions`, `retention`, `recovery`, `dense_offsets`, `timestamps`,
/// `topic_admin`, `group_admin`), so
/// `cargo test --test conformance transactions::` runs one area. A further test,
/// `conformance_suite_declares_what_the_harness_cannot_do`, checks the list against
/// [`Harness::capabilities`].
#[macro_export]
macro_rules! conformance_suite {
    (harness: $make:expr $(,)?) => {
        $crate::conformance_suite!(@parse make = [$make], tx = [], cl = [], tw = [], dn = [],
            ts = [], ta = [], ga = [];);
    };
    (harness: $make:expr, unsupported: [ $($list:tt)* ] $(,)?) => {
        $crate::conformance_suite!(@parse make = [$make], tx = [], cl = [], tw = [], dn = [],
            ts = [], ta = [], ga = []; $($list)*);
    };

    (@parse make = $make:tt, tx = $tx:tt, cl = $cl:tt, tw = $tw:tt, dn = $dn:tt,
        ts = $ts:tt, ta = $ta:tt, ga = $ga:tt;
        transactions = $reason:literal $(, $($rest:tt)*)?) => {
        $crate::conformance_suite!(@parse make = $make, tx = [$reason], cl = $cl, tw = $tw,
            dn = $dn, ts = $ts, ta = $ta, ga = $ga; $($($rest)*)?);
    };
    (@parse make = $make:tt, tx = $tx:tt, cl = $cl:tt, tw = $tw:tt, dn = $dn:tt,
        ts = $ts:tt, ta = $ta:tt, ga = $ga:tt;
        cleaner = $reason:literal $(, $($rest:tt)*)?) => {
        $crate::conformance_suite!(@parse make = $make, tx = $tx, cl = [$reason], tw = $tw,
            dn = $dn, ts = $ts, ta = $ta, ga = $ga; $($($rest)*)?);
    };
    (@parse make = $make:tt, tx = $tx:tt, cl = $cl:tt, tw = $tw:tt, dn = $dn:tt,
        ts = $ts:tt, ta = $ta:tt, ga = $ga:tt;
        torn_writes = $reason:literal $(, $($rest:tt)*)?) => {
        $crate::conformance_suite!(@parse make = $make, tx = $tx, cl = $cl, tw = [$reason],
            dn = $dn, ts = $ts, ta = $ta, ga = $ga; $($($rest)*)?);
    };
    (@parse make = $make:tt, tx = $tx:tt, cl = $cl:tt, tw = $tw:tt, dn = $dn:tt,
        ts = $ts:tt, ta = $ta:tt, ga = $ga:tt;
        dense_offsets = $reason:literal $(, $($rest:tt)*)?) => {
        $crate::conformance_suite!(@parse make = $make, tx = $tx, cl = $cl, tw = $tw,
            dn = [$reason], ts = $ts, ta = $ta, ga = $ga; $($($rest)*)?);
    };
    (@parse make = $make:tt, tx = $tx:tt, cl = $cl:tt, tw = $tw:tt, dn = $dn:tt,
        ts = $ts:tt, ta = $ta:tt, ga = $ga:tt;
        timestamps = $reason:literal $(, $($rest:tt)*)?) => {
        $crate::conformance_suite!(@parse make = $make, tx = $tx, cl = $cl, tw = $tw,
            dn = $dn, ts = [$reason], ta = $ta, ga = $ga; $($($rest)*)?);
    };
    (@parse make = $make:tt, tx = $tx:tt, cl = $cl:tt, tw = $tw:tt, dn = $dn:tt,
        ts = $ts:tt, ta = $ta:tt, ga = $ga:tt;
        topic_admin = $reason:literal $(, $($rest:tt)*)?) => {
        $crate::conformance_suite!(@parse make = $make, tx = $tx, cl = $cl, tw = $tw,
            dn = $dn, ts = $ts, ta = [$reason], ga = $ga; $($($rest)*)?);
    };
    (@parse make = $make:tt, tx = $tx:tt, cl = $cl:tt, tw = $tw:tt, dn = $dn:tt,
        ts = $ts:tt, ta = $ta:tt, ga = $ga:tt;
        group_admin = $reason:literal $(, $($rest:tt)*)?) => {
        $crate::conformance_suite!(@parse make = $make, tx = $tx, cl = $cl, tw = $tw,
            dn = $dn, ts = $ts, ta = $ta, ga = [$reason]; $($($rest)*)?);
    };
    (@parse make = $make:tt, tx = $tx:tt, cl = $cl:tt, tw = $tw:tt, dn = $dn:tt,
        ts = $ts:tt, ta = $ta:tt, ga = $ga:tt;) => {
        $crate::conformance_suite!(
            @emit make = $make, tx = $tx, cl = $cl, tw = $tw, dn = $dn, ts = $ts, ta = $ta,
            ga = $ga
        );
    };
    (@parse make = $make:tt, tx = $tx:tt, cl = $cl:tt, tw = $tw:tt, dn = $dn:tt,
        ts = $ts:tt, ta = $ta:tt, ga = $ga:tt; $($other:tt)+) => {
        ::core::compile_error!(::core::concat!(
            "conformance_suite!: cannot read `", ::core::stringify!($($other)+),
            "`; expected `<group> = \"unsupported by <backend>: <reason>\"` entries, separated \
             by commas, where <group> is transactions, cleaner, torn_writes, dense_offsets, \
             timestamps, topic_admin or group_admin"
        ));
    };

    (@emit make = [$make:expr], tx = [$($tx:literal)?], cl = [$($cl:literal)?],
        tw = [$($tw:literal)?], dn = [$($dn:literal)?], ts = [$($ts:literal)?],
        ta = [$($ta:literal)?], ga = [$($ga:literal)?]) => {
        /// The harness for one conformance case, as given to `conformance_suite!`.
        fn __rill_conformance_harness() -> impl $crate::Harness {
            $make
        }

        #[test]
        fn conformance_suite_declares_what_the_harness_cannot_do() {
            let harness = __rill_conformance_harness();
            $crate::check_declared(
                &harness,
                &[
                    $(($crate::Feature::Transactions, $tx),)?
                    $(($crate::Feature::Cleaner, $cl),)?
                    $(($crate::Feature::TornWrites, $tw),)?
                    $(($crate::Feature::DenseOffsets, $dn),)?
                    $(($crate::Feature::Timestamps, $ts),)?
                    $(($crate::Feature::TopicAdmin, $ta),)?
                    $(($crate::Feature::GroupAdmin, $ga),)?
                ],
            );
        }

        $crate::__conformance_cases!(
            @all tx = [$($tx)?], cl = [$($cl)?], tw = [$($tw)?], dn = [$($dn)?], ts = [$($ts)?],
            ta = [$($ta)?], ga = [$($ga)?]
        );
    };
}

/// The list of cases, by module; used by [`conformance_suite!`]. Adding a case means writing
/// its function in `cases/<module>.rs` and naming it here.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    (@all tx = $tx:tt, cl = $cl:tt, tw = $tw:tt, dn = $dn:tt, ts = $ts:tt, ta = $ta:tt,
        ga = $ga:tt) => {
        $crate::__conformance_cases!(@module produce_consume, [] {
            records_keep_order_within_a_partition,
            keyed_records_land_on_the_murmur2_partition,
            keyless_records_are_accepted_and_each_is_read_once,
            poll_returns_at_most_max_poll_records,
            records_and_topics_survive_a_restart,
        });
        $crate::__conformance_cases!(@module admin, [] {
            creating_an_existing_topic_fails_with_topic_exists,
            a_missing_topic_is_unknown_to_describe_produce_and_delete,
            invalid_topic_configs_are_refused,
        });
        $crate::__conformance_cases!(@module groups, [] {
            a_single_member_is_assigned_every_partition,
            a_joining_member_splits_the_partitions_and_revocation_precedes_assignment,
            a_leaving_member_gives_its_partitions_back,
        });
        $crate::__conformance_cases!(@module offsets, [] {
            committed_offsets_resume_a_new_member_of_the_group,
            committed_offsets_survive_a_restart_of_the_log,
            watermarks_report_the_first_and_the_next_offset,
            offset_reset_decides_where_a_group_without_commits_starts,
            offset_reset_none_without_a_commit_fails_with_offset_out_of_range,
            paused_partitions_return_nothing_until_resumed,
        });
        $crate::__conformance_cases!(@module errors, [] {
            producing_to_a_partition_out_of_range_fails_with_unknown_partition,
            an_oversized_record_is_refused_as_invalid_input,
            committing_or_subscribing_without_a_group_fails_with_no_group,
            seeking_a_partition_that_is_not_assigned_fails_as_invalid_input,
        });
        $crate::__conformance_cases!(@module transactions, $tx {
            a_committed_transaction_makes_records_and_offsets_visible_together,
            an_aborted_transaction_leaves_no_records_or_offsets,
            read_committed_consumers_never_see_an_open_transaction,
            a_reader_reaches_the_end_of_a_partition_holding_only_aborted_records,
            a_new_producer_with_the_same_transactional_id_fences_the_old_one,
            offsets_from_a_stale_group_generation_are_refused,
            transactional_calls_in_the_wrong_state_fail_as_invalid_input,
        });
        $crate::__conformance_cases!(@module retention, $cl {
            time_retention_removes_expired_records_when_the_cleaner_runs,
            size_retention_removes_the_oldest_records_when_the_cleaner_runs,
            compaction_keeps_the_latest_value_per_key_and_removes_deleted_keys,
        });
        $crate::__conformance_cases!(@module recovery, $tw {
            a_crash_loses_no_acknowledged_record_or_committed_offset,
            recovery_after_a_torn_tail_keeps_every_acknowledged_record_and_appends_continue,
        });
        $crate::__conformance_cases!(@module dense_offsets, $dn {
            offsets_are_dense_from_zero_in_every_partition,
        });
        $crate::__conformance_cases!(@module timestamps, $ts {
            acknowledged_offsets_increase_and_match_consumed_offsets,
            timestamps_headers_and_null_fields_round_trip,
            records_without_a_timestamp_get_the_time_of_sending,
            seek_moves_to_the_beginning_the_end_an_offset_or_a_timestamp,
        });
        $crate::__conformance_cases!(@module topic_admin, $ta {
            topics_can_be_created_listed_described_and_deleted,
            describe_reports_partitions_and_cleanup_policy,
        });
        $crate::__conformance_cases!(@module group_offsets, [] {
            group_offsets_report_what_the_group_committed_per_partition,
        });
        $crate::__conformance_cases!(@module group_admin, $ga {
            a_group_is_listed_and_described_with_its_members_and_offsets,
            an_unknown_group_is_not_listed_and_cannot_be_described,
        });
    };

    (@module $module:ident, [] { $($name:ident),* $(,)? }) => {
        mod $module {
            $(
                #[test]
                fn $name() {
                    let mut harness = super::__rill_conformance_harness();
                    $crate::run_case(
                        &mut harness,
                        ::core::stringify!($name),
                        $crate::cases::$module::FEATURE,
                        $crate::cases::$module::$name,
                    );
                }
            )*
        }
    };
    (@module $module:ident, [$reason:literal] { $($name:ident),* $(,)? }) => {
        mod $module {
            $(
                #[test]
                #[ignore = $reason]
                fn $name() {
                    let mut harness = super::__rill_conformance_harness();
                    $crate::run_case(
                        &mut harness,
                        ::core::stringify!($name),
                        $crate::cases::$module::FEATURE,
                        $crate::cases::$module::$name,
                    );
                }
            )*
        }
    };
}
