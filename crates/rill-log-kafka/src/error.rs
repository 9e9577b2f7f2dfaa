//! Mapping of librdkafka errors onto [`LogError`].
//!
//! Every rdkafka error leaves this crate as a [`LogError`]: the cases the rill contract names
//! (unknown topic, fenced producer, rejected commit, ...) get their own variant, everything else
//! becomes [`LogError::Backend`] with the librdkafka error code name (`format!("{code:?}")`, e.g.
//! `"UnknownTopicOrPartition"`) and an [`ErrorClass`].

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaError, RDKafkaErrorCode};
use rill_log::{ErrorClass, LogError};

/// The librdkafka error code name used in [`LogError::Backend::code`].
pub(crate) fn code_name(code: RDKafkaErrorCode) -> String {
    format!("{code:?}")
}

/// The error code inside an rdkafka error, when it has one.
pub(crate) fn code_of(err: &KafkaError) -> Option<RDKafkaErrorCode> {
    match err {
        KafkaError::Transaction(e) => Some(e.code()),
        other => other.rdkafka_error_code(),
    }
}

/// Whether the code says a newer producer with the same transactional id took over.
pub(crate) fn is_fenced(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Fenced
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::TransactionCoordinatorFenced
    )
}

/// Whether the code says the cluster will not run transactions for us.
pub(crate) fn is_transactions_unsupported(code: RDKafkaErrorCode, message: &str) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::TransactionalIdAuthorizationFailed
            | RDKafkaErrorCode::UnsupportedFeature
            | RDKafkaErrorCode::UnsupportedVersion
    ) || message.contains("not supported")
}

/// Whether the code says the group moved on and refuses this member's commit.
pub(crate) fn is_commit_rejection(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::FencedInstanceId
            | RDKafkaErrorCode::StaleMemberEpoch
            | RDKafkaErrorCode::FencedMemberEpoch
            | RDKafkaErrorCode::UnknownGroup
            | RDKafkaErrorCode::AssignmentLost
    )
}

/// How a caller should react to an rdkafka error code that has no variant of its own.
pub(crate) fn class_of(code: RDKafkaErrorCode) -> ErrorClass {
    use RDKafkaErrorCode as C;
    if is_fenced(code) || is_commit_rejection(code) {
        return ErrorClass::TaskMigrated;
    }
    match code {
        C::BadMessage | C::InvalidMessage | C::InvalidRecord => ErrorClass::Corrupted,
        C::UnknownTopic
        | C::UnknownPartition
        | C::UnknownTopicOrPartition
        | C::InvalidArgument
        | C::InvalidTopic
        | C::InvalidPartitions
        | C::InvalidReplicationFactor
        | C::InvalidConfig
        | C::InvalidRequest
        | C::MessageSizeTooLarge
        | C::InvalidMessageSize
        | C::MessageBatchTooLarge
        | C::TopicAlreadyExists
        | C::OffsetOutOfRange
        | C::AutoOffsetReset
        | C::InvalidTimestamp
        | C::State
        | C::Conflict
        | C::NotImplemented
        | C::UnsupportedFeature
        | C::UnsupportedVersion
        | C::PolicyViolation => ErrorClass::InvalidInput,
        C::OperationTimedOut
        | C::TimedOutQueue
        | C::MessageTimedOut
        | C::RequestTimedOut
        | C::QueueFull
        | C::BrokerNotAvailable
        | C::ReplicaNotAvailable
        | C::UnstableOffsetCommit
        | C::OffsetNotAvailable
        | C::AllBrokersDown
        | C::BrokerTransportFailure
        | C::NetworkException
        | C::LeaderNotAvailable
        | C::NotLeaderForPartition
        | C::NotCoordinator
        | C::CoordinatorNotAvailable
        | C::CoordinatorLoadInProgress
        | C::NotEnoughReplicas
        | C::NotEnoughReplicasAfterAppend
        | C::ConcurrentTransactions
        | C::Retry
        | C::InProgress
        | C::WaitingForCoordinator
        | C::Resolve
        | C::ThrottlingQuotaExceeded => ErrorClass::Retriable,
        _ => ErrorClass::Fatal,
    }
}

/// A [`LogError::Backend`] for an rdkafka error code.
pub(crate) fn backend(
    operation: &'static str,
    code: RDKafkaErrorCode,
    message: String,
) -> LogError {
    LogError::Backend {
        operation,
        code: Some(code_name(code)),
        message,
        class: class_of(code),
    }
}

/// Maps an rdkafka error from `operation`, with the few facts the caller knows (topic, timeout).
pub(crate) fn map(operation: &'static str, err: KafkaError, ctx: &Ctx<'_>) -> LogError {
    if let KafkaError::Transaction(e) = &err {
        return map_txn(operation, e, ctx);
    }
    if let KafkaError::ClientConfig(_, description, key, value) = &err {
        return config_error(operation, description, key, value);
    }
    let message = err.to_string();
    let Some(code) = code_of(&err) else {
        let class = match err {
            KafkaError::ClientConfig(..) | KafkaError::Nul(_) | KafkaError::Seek(_) => {
                ErrorClass::InvalidInput
            }
            KafkaError::Canceled => {
                return LogError::Closed {
                    what: "kafka client",
                };
            }
            _ => ErrorClass::Fatal,
        };
        return LogError::Backend {
            operation,
            code: None,
            message,
            class,
        };
    };
    map_code(operation, code, message, ctx)
}

/// A refused client property, named by its key only: the value may be a secret (a password),
/// and both rdkafka's message and librdkafka's description ("Invalid value "..." for ...")
/// carry it.
fn config_error(operation: &'static str, description: &str, key: &str, value: &str) -> LogError {
    let description = if value.is_empty() {
        description.to_string()
    } else {
        description.replace(value, "***")
    };
    LogError::Backend {
        operation,
        code: None,
        message: format!("client property '{key}' refused: {description}"),
        class: ErrorClass::InvalidInput,
    }
}

/// Maps an error code from `operation`.
pub(crate) fn map_code(
    operation: &'static str,
    code: RDKafkaErrorCode,
    message: String,
    ctx: &Ctx<'_>,
) -> LogError {
    use RDKafkaErrorCode as C;
    match code {
        C::UnknownTopic | C::UnknownTopicOrPartition if ctx.topic.is_some() => {
            LogError::UnknownTopic {
                topic: ctx.topic.unwrap_or_default().to_string(),
            }
        }
        C::TopicAlreadyExists if ctx.topic.is_some() => LogError::TopicExists {
            topic: ctx.topic.unwrap_or_default().to_string(),
        },
        C::OperationTimedOut | C::TimedOutQueue | C::RequestTimedOut | C::MessageTimedOut
            if ctx.timeout.is_some() =>
        {
            LogError::Timeout {
                operation,
                after: ctx.timeout.unwrap_or_default(),
            }
        }
        c if is_fenced(c) && ctx.transactional_id.is_some() => LogError::ProducerFenced {
            transactional_id: ctx.transactional_id.unwrap_or_default().to_string(),
        },
        c if is_commit_rejection(c) && ctx.group.is_some() => LogError::CommitRejected {
            group: ctx.group.unwrap_or_default().to_string(),
            reason: format!("{}: {message}", code_name(c)),
        },
        c => backend(operation, c, message),
    }
}

/// Maps an error from a transactional call.
pub(crate) fn map_txn(operation: &'static str, err: &RDKafkaError, ctx: &Ctx<'_>) -> LogError {
    let code = err.code();
    let message = err.string();
    if is_fenced(code) {
        return LogError::ProducerFenced {
            transactional_id: ctx.transactional_id.unwrap_or_default().to_string(),
        };
    }
    if is_transactions_unsupported(code, &message) {
        return LogError::TransactionsUnsupported {
            reason: format!("{}: {message}", code_name(code)),
        };
    }
    if code == RDKafkaErrorCode::State {
        return LogError::TransactionState {
            operation,
            state: "the producer is not in a state that allows it",
        };
    }
    let class = if err.is_fatal() {
        ErrorClass::Fatal
    } else if err.txn_requires_abort() {
        // The transaction must be aborted: its records and offsets are lost, so the work in hand
        // is dropped and processing resumes from the last commit.
        ErrorClass::TaskMigrated
    } else if err.is_retriable() {
        ErrorClass::Retriable
    } else {
        class_of(code)
    };
    LogError::Backend {
        operation,
        code: Some(code_name(code)),
        message,
        class,
    }
}

/// What the caller knows about a failed operation, to pick the precise [`LogError`] variant.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    /// The topic the operation was about.
    pub topic: Option<&'a str>,
    /// The timeout the operation was given.
    pub timeout: Option<Duration>,
    /// The producer's transactional id.
    pub transactional_id: Option<&'a str>,
    /// The consumer's group.
    pub group: Option<&'a str>,
}

impl<'a> Ctx<'a> {
    /// No context.
    pub fn none() -> Self {
        Self::default()
    }

    /// About `topic`.
    pub fn topic(topic: &'a str) -> Self {
        Self {
            topic: Some(topic),
            ..Self::default()
        }
    }

    /// Given `timeout`.
    pub fn timeout(timeout: Duration) -> Self {
        Self {
            timeout: Some(timeout),
            ..Self::default()
        }
    }

    /// Adds the timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_failure_on_init_means_transactions_unsupported() {
        let err = map_code(
            "init transactions",
            RDKafkaErrorCode::TransactionalIdAuthorizationFailed,
            "refused".into(),
            &Ctx::none(),
        );
        // Outside a transactional call the code is just a backend error...
        assert!(matches!(err, LogError::Backend { .. }));
        // ...but as the answer to a transactional call it is "no transactions here".
        assert!(is_transactions_unsupported(
            RDKafkaErrorCode::TransactionalIdAuthorizationFailed,
            "x"
        ));
    }

    #[test]
    fn classes() {
        assert_eq!(
            class_of(RDKafkaErrorCode::MessageTimedOut),
            ErrorClass::Retriable
        );
        assert_eq!(
            class_of(RDKafkaErrorCode::ProducerFenced),
            ErrorClass::TaskMigrated
        );
        assert_eq!(
            class_of(RDKafkaErrorCode::UnknownTopicOrPartition),
            ErrorClass::InvalidInput
        );
        assert_eq!(class_of(RDKafkaErrorCode::Fatal), ErrorClass::Fatal);
        assert_eq!(
            code_name(RDKafkaErrorCode::TopicAlreadyExists),
            "TopicAlreadyExists"
        );
    }

    #[test]
    fn a_refused_property_is_named_without_its_value() {
        let refused = rdkafka::ClientConfig::new()
            .set("security.protocol", "hunter2")
            .create::<rdkafka::producer::BaseProducer>()
            .err()
            .expect("an invalid security.protocol is refused");
        let error = map("create producer", refused, &Ctx::none());
        let shown = error.to_string();
        assert!(shown.contains("security.protocol"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!format!("{error:?}").contains("hunter2"), "{error:?}");
        assert_eq!(error.class(), ErrorClass::InvalidInput);
    }

    #[test]
    fn commit_rejection_needs_group() {
        let ctx = Ctx {
            group: Some("g"),
            ..Ctx::none()
        };
        let err = map_code(
            "commit",
            RDKafkaErrorCode::IllegalGeneration,
            "gen".into(),
            &ctx,
        );
        assert!(matches!(err, LogError::CommitRejected { ref group, .. } if group == "g"));
    }
}
