//! The registry's errors, each with the HTTP status and the error code of Confluent's API.

use rill_log::LogError;

/// Why a registry call failed. [`error_code`](Self::error_code) and
/// [`status`](Self::status) give Confluent Schema Registry's code and HTTP status for it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// No (live) version is registered under the subject.
    #[error("Subject '{subject}' not found.")]
    SubjectNotFound {
        /// The subject asked for.
        subject: String,
    },
    /// The subject has no such version.
    #[error("Version {version} not found.")]
    VersionNotFound {
        /// The subject asked for.
        subject: String,
        /// The version asked for.
        version: i32,
    },
    /// No schema has this id.
    #[error("Schema {id} not found")]
    SchemaNotFound {
        /// The id asked for.
        id: i32,
    },
    /// The schema looked up is not registered under the subject.
    #[error("Schema not found under subject '{subject}'")]
    SchemaNotInSubject {
        /// The subject searched.
        subject: String,
    },
    /// The subject has no compatibility level of its own.
    #[error("Subject '{subject}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound {
        /// The subject asked for.
        subject: String,
    },
    /// The schema breaks the subject's compatibility level.
    #[error(
        "Schema being registered is incompatible with an earlier schema for subject \
         \"{subject}\" ({level}): {reason}"
    )]
    Incompatible {
        /// The subject.
        subject: String,
        /// Its compatibility level.
        level: crate::Compatibility,
        /// Which earlier version it breaks, and how.
        reason: String,
    },
    /// The text is not an Avro schema.
    #[error("Invalid schema: {reason}")]
    InvalidSchema {
        /// What the parser said.
        reason: String,
    },
    /// A version that is neither a positive integer nor `latest`.
    #[error(
        "The specified version '{version}' is not a valid version id. Allowed values are \
         between [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion {
        /// The version as given.
        version: String,
    },
    /// A compatibility level that is not one of the seven.
    #[error(
        "Invalid compatibility level '{level}': one of NONE, BACKWARD, BACKWARD_TRANSITIVE, \
         FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE"
    )]
    InvalidCompatibilityLevel {
        /// The level as given.
        level: String,
    },
    /// A request body that is not the JSON the call takes.
    #[error("Unrecognized request: {reason}")]
    BadRequest {
        /// What was wrong.
        reason: String,
    },
    /// The log under the registry failed.
    #[error("Error in the backend data store while {operation}: {source}")]
    Log {
        /// What the registry was doing.
        operation: &'static str,
        /// The log's error.
        #[source]
        source: LogError,
    },
    /// The registry could not read `_schemas` to its end in time.
    #[error("Reading _schemas timed out at offset {position} of {end}")]
    ReplayTimedOut {
        /// Where the reader was.
        position: i64,
        /// The end it was reading to.
        end: i64,
    },
    /// Other instances kept winning the race for the next id or version.
    #[error("Could not register under subject '{subject}' after {attempts} attempts")]
    Contended {
        /// The subject.
        subject: String,
        /// Attempts made.
        attempts: usize,
    },
    /// An external registry could not be reached, or answered something unreadable.
    #[error("schema registry at {url}: {reason}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// An external registry answered with an error.
    #[error("schema registry at {url} answered {status} (error code {error_code}): {message}")]
    Remote {
        /// The URL called.
        url: String,
        /// HTTP status.
        status: u16,
        /// Confluent's error code.
        error_code: i64,
        /// The registry's message.
        message: String,
    },
}

impl RegistryError {
    /// Confluent Schema Registry's error code (`40401` subject not found, `409`
    /// incompatible, `42201` invalid schema, ...).
    pub fn error_code(&self) -> i64 {
        match self {
            RegistryError::SubjectNotFound { .. } => 40401,
            RegistryError::VersionNotFound { .. } => 40402,
            RegistryError::SchemaNotFound { .. } | RegistryError::SchemaNotInSubject { .. } => {
                40403
            }
            RegistryError::SubjectConfigNotFound { .. } => 40408,
            RegistryError::Incompatible { .. } => 409,
            RegistryError::InvalidSchema { .. } => 42201,
            RegistryError::InvalidVersion { .. } => 42202,
            RegistryError::InvalidCompatibilityLevel { .. } => 42203,
            RegistryError::BadRequest { .. } => 400,
            RegistryError::Log { .. } | RegistryError::Contended { .. } => 50001,
            RegistryError::ReplayTimedOut { .. } => 50002,
            RegistryError::Unreachable { .. } => 50003,
            RegistryError::Remote { error_code, .. } => *error_code,
        }
    }

    /// The HTTP status that goes with the error code.
    pub fn status(&self) -> u16 {
        match self {
            RegistryError::Remote { status, .. } => *status,
            other => match other.error_code() {
                400 => 400,
                409 => 409,
                code if (40400..40500).contains(&code) => 404,
                code if (42200..42300).contains(&code) => 422,
                _ => 500,
            },
        }
    }
}

/// Result of a registry call.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
