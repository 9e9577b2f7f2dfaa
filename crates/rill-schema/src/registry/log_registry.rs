//! The schema registry kept in the compacted topic `_schemas` of the log.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rill_log::{
    CleanupPolicy, Consumer, ConsumerConfig, Log, LogError, Offset, Producer, ProducerConfig,
    ProducerRecord, SeekTo, TopicConfig, TopicPartition,
};

use super::SchemaRegistry;
use super::state::{
    ConfigValue, DeleteValue, Plan, RegisteredSchema, SchemaValue, State, StoreKey, SubjectVersion,
    VersionSelector, fingerprint,
};
use crate::compatibility::{self, Compatibility};
use crate::error::{RegistryError, Result};

/// The topic the registry keeps its schemas in: one partition (one order for every
/// instance to replay), compacted.
pub const SCHEMAS_TOPIC: &str = "_schemas";

/// How long a call waits to read `_schemas` to its end.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a registration is tried when other instances keep taking its version or id
/// (each lost round means another registration succeeded, so this bounds a burst, not luck).
const ATTEMPTS: usize = 100;

struct Reader {
    consumer: Box<dyn Consumer>,
    state: State,
}

/// A schema registry whose only state is the topic `_schemas`: every call first reads the
/// topic to its end, so any number of instances over the same log (a cluster) answer alike,
/// and a restarted instance finds everything registered before. How instances agree on ids
/// without a leader is told in the `state` module: the log's order decides.
///
/// ```no_run
/// # fn demo(log: std::sync::Arc<dyn rill_log::Log>) -> rill_schema::Result<()> {
/// use rill_schema::{LogSchemaRegistry, SchemaRegistry};
/// let registry = LogSchemaRegistry::open(log.as_ref())?;
/// let id = registry.register("greetings-value", r#""string""#)?;
/// assert_eq!(registry.schema_text(id)?, r#""string""#);
/// # Ok(()) }
/// ```
pub struct LogSchemaRegistry {
    producer: Box<dyn Producer>,
    reader: Mutex<Reader>,
}

fn log_error(operation: &'static str) -> impl FnOnce(LogError) -> RegistryError {
    move |source| RegistryError::Log { operation, source }
}

fn partition() -> TopicPartition {
    TopicPartition::new(SCHEMAS_TOPIC, 0)
}

impl LogSchemaRegistry {
    /// Opens the registry on `log`, creating `_schemas` if it is missing, and replays it.
    pub fn open(log: &dyn Log) -> Result<Self> {
        let config = TopicConfig::with_partitions(1).cleanup_policy(CleanupPolicy::Compact);
        match log.admin().create_topic(SCHEMAS_TOPIC, &config) {
            Ok(()) | Err(LogError::TopicExists { .. }) => {}
            Err(source) => {
                return Err(RegistryError::Log {
                    operation: "creating _schemas",
                    source,
                });
            }
        }
        let producer = log
            .producer(&ProducerConfig::default())
            .map_err(log_error("creating the registry's producer"))?;
        let consumer = log
            .consumer(&ConsumerConfig::default(), None)
            .map_err(log_error("creating the registry's consumer"))?;
        consumer
            .assign(&[partition()])
            .map_err(log_error("reading _schemas"))?;
        consumer
            .seek(&partition(), SeekTo::Beginning)
            .map_err(log_error("reading _schemas"))?;
        let registry = LogSchemaRegistry {
            producer,
            reader: Mutex::new(Reader {
                consumer,
                state: State::default(),
            }),
        };
        registry.read(|_| Ok(()))?;
        Ok(registry)
    }

    /// Reads `_schemas` to its end, then answers `query` from what it says.
    fn read<T>(&self, query: impl FnOnce(&State) -> Result<T>) -> Result<T> {
        let mut reader = self.reader.lock();
        catch_up(&mut reader, None)?;
        query(&reader.state)
    }

    fn write(&self, reader: &mut Reader, key: &StoreKey, value: Option<Vec<u8>>) -> Result<()> {
        let key = serde_json::to_vec(key).map_err(|error| RegistryError::BadRequest {
            reason: error.to_string(),
        })?;
        let mut record = ProducerRecord::new(SCHEMAS_TOPIC).key(key).partition(0);
        record.value = value.map(Into::into);
        let written = self
            .producer
            .send(record)
            .map_err(log_error("writing to _schemas"))?
            .wait()
            .map_err(log_error("writing to _schemas"))?;
        catch_up(reader, Some(written.offset + 1))
    }

    /// Registers `schema` under `subject` (or finds it there), checking the subject's
    /// compatibility level: its id.
    pub fn register_schema(&self, subject: &str, schema: &str) -> Result<i32> {
        let (parsed, text) = compatibility::parse(schema)?;
        let mut reader = self.reader.lock();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                // Lost a round: let the winner's burst go by rather than race it again.
                std::thread::sleep(Duration::from_millis(attempt.min(20) as u64));
            }
            catch_up(&mut reader, None)?;
            let (version, id) = match reader.state.plan(subject, &parsed, &text)? {
                Plan::Existing(id) => return Ok(id),
                Plan::Write { version, id } => (version, id),
            };
            let key = StoreKey::Schema {
                subject: subject.to_string(),
                version,
                fingerprint: fingerprint(&text),
            };
            let value = SchemaValue {
                subject: subject.to_string(),
                version,
                id,
                schema: text.clone(),
                deleted: false,
            };
            let value = serde_json::to_vec(&value).map_err(|error| RegistryError::BadRequest {
                reason: error.to_string(),
            })?;
            self.write(&mut reader, &key, Some(value))?;
            if reader.state.has(subject, version, id, &text) {
                tracing::info!(subject, version, id, "registered a schema");
                return Ok(id);
            }
            // Another instance's record took the version or the id first: plan again.
        }
        Err(RegistryError::Contended {
            subject: subject.to_string(),
            attempts: ATTEMPTS,
        })
    }

    /// The schema with this id.
    pub fn schema(&self, id: i32) -> Result<RegisteredSchema> {
        self.read(|state| state.schema(id).cloned())
    }

    /// Subjects with a live version.
    pub fn subjects(&self) -> Result<Vec<String>> {
        self.read(|state| Ok(state.subjects()))
    }

    /// The live versions of a subject.
    pub fn versions(&self, subject: &str) -> Result<Vec<i32>> {
        self.read(|state| state.versions(subject))
    }

    /// One version of a subject.
    pub fn version(&self, subject: &str, which: VersionSelector) -> Result<SubjectVersion> {
        self.read(|state| state.version(subject, which))
    }

    /// The version of `subject` that has `schema`.
    pub fn lookup(&self, subject: &str, schema: &str) -> Result<SubjectVersion> {
        let (_, text) = compatibility::parse(schema)?;
        self.read(|state| state.lookup(subject, &text))
    }

    /// Whether `schema` could join `subject` against one version, per the subject's level.
    pub fn is_compatible(
        &self,
        subject: &str,
        which: VersionSelector,
        schema: &str,
    ) -> Result<bool> {
        let (parsed, _) = compatibility::parse(schema)?;
        self.read(|state| state.compatible_with(subject, which, &parsed))
    }

    /// The level in force: the subject's own (`Some(subject)`), or the global one.
    pub fn compatibility(&self, subject: Option<&str>) -> Result<Option<Compatibility>> {
        self.read(|state| {
            Ok(match subject {
                Some(subject) => state.subject_compatibility(subject),
                None => Some(state.global_compatibility()),
            })
        })
    }

    /// Sets the level of a subject, or the global one.
    pub fn set_compatibility(&self, subject: Option<&str>, level: Compatibility) -> Result<()> {
        let mut reader = self.reader.lock();
        let value = serde_json::to_vec(&ConfigValue {
            compatibility_level: level.name().to_string(),
        })
        .map_err(|error| RegistryError::BadRequest {
            reason: error.to_string(),
        })?;
        let key = StoreKey::Config {
            subject: subject.map(str::to_string),
        };
        self.write(&mut reader, &key, Some(value))
    }

    /// Deletes every version of a subject (their schemas stay readable by id, as records
    /// written with them remain): the versions deleted.
    pub fn delete_subject(&self, subject: &str) -> Result<Vec<i32>> {
        let mut reader = self.reader.lock();
        catch_up(&mut reader, None)?;
        let versions = reader.state.versions(subject)?;
        let last = reader.state.last_version(subject).unwrap_or_default();
        let value = serde_json::to_vec(&DeleteValue {
            subject: subject.to_string(),
            version: last,
        })
        .map_err(|error| RegistryError::BadRequest {
            reason: error.to_string(),
        })?;
        let key = StoreKey::DeleteSubject {
            subject: subject.to_string(),
        };
        self.write(&mut reader, &key, Some(value))?;
        Ok(versions)
    }
}

/// Reads `_schemas` up to `until` (exclusive), or to its current end.
fn catch_up(reader: &mut Reader, until: Option<Offset>) -> Result<()> {
    let partition = partition();
    let end = match until {
        Some(until) => until,
        None => {
            reader
                .consumer
                .watermarks(&partition)
                .map_err(log_error("reading _schemas"))?
                .high
        }
    };
    let deadline = Instant::now() + REPLAY_TIMEOUT;
    loop {
        let position = reader
            .consumer
            .position(&partition)
            .map_err(log_error("reading _schemas"))?;
        if position >= end {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(RegistryError::ReplayTimedOut { position, end });
        }
        for record in reader
            .consumer
            .poll(Duration::from_millis(100))
            .map_err(log_error("reading _schemas"))?
        {
            if let Some(key) = &record.key {
                reader.state.apply(key, record.value.as_deref());
            }
        }
    }
}

impl SchemaRegistry for LogSchemaRegistry {
    fn register(&self, subject: &str, schema: &str) -> Result<i32> {
        self.register_schema(subject, schema)
    }

    fn schema_text(&self, id: i32) -> Result<String> {
        Ok(self.schema(id)?.text.to_string())
    }

    fn describe(&self) -> String {
        format!("the log's topic {SCHEMAS_TOPIC}")
    }
}
