//! What the `_schemas` topic says, replayed: schemas by id, the versions of each subject, the
//! compatibility levels. Pure: the records come in, queries go out.
//!
//! The topic is the registry's only state, so every instance that replays it agrees. The
//! records, JSON keys and values in the manner of Confluent's own `_schemas` topic:
//!
//! | key | value |
//! |---|---|
//! | `{"keytype":"SCHEMA","subject":S,"version":V,"fingerprint":F}` | `{"subject":S,"version":V,"id":N,"schema":TEXT}` |
//! | `{"keytype":"CONFIG","subject":S or null}` | `{"compatibilityLevel":LEVEL}` |
//! | `{"keytype":"DELETE_SUBJECT","subject":S}` | `{"subject":S,"version":V}`: versions up to V are deleted |
//!
//! Records that Confluent Schema Registry wrote to its own `_schemas` read the same (their
//! keys carry `magic` and no fingerprint, their values a `deleted` flag), so rill can serve an
//! existing `_schemas` topic. Its own records are not Confluent's, though: on a cluster where a
//! Confluent registry runs, point rill at it (`--schema-registry URL`) instead.
//!
//! **Who wins a race.** Instances register without a leader: each picks the next version and
//! id from what it has replayed and writes. The log orders the records, and replay accepts a
//! SCHEMA record only when its version of the subject is still free, its id is free (or
//! already names the same schema) and its schema has no other id; an instance whose record
//! was refused replays and tries again. The fingerprint in the key keeps a refused record
//! from replacing the accepted one when the topic is compacted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use crate::compatibility::{self, Compatibility};
use crate::error::{RegistryError, Result};

/// The key of a record of `_schemas`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum StoreKey {
    /// A version of a subject.
    Schema {
        subject: String,
        version: i32,
        /// Absent in records of Confluent's registry, which has no races to settle.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        fingerprint: String,
    },
    /// The compatibility level of a subject, or the global one (`subject` null).
    Config { subject: Option<String> },
    /// The versions of a subject deleted so far.
    DeleteSubject { subject: String },
}

/// The value of a SCHEMA record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SchemaValue {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    pub schema: String,
    /// Confluent's registry marks a deleted version so; rill writes DELETE_SUBJECT records.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// The value of a CONFIG record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConfigValue {
    pub compatibility_level: String,
}

/// The value of a DELETE_SUBJECT record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeleteValue {
    pub subject: String,
    pub version: i32,
}

/// A stable 64-bit FNV-1a hash of a schema's text, for record keys.
pub(crate) fn fingerprint(canonical: &str) -> String {
    let hash = canonical
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("{hash:016x}")
}

/// A registered schema.
#[derive(Debug, Clone)]
pub struct RegisteredSchema {
    /// The parsed schema.
    pub schema: Arc<Schema>,
    /// Its text as the registry keeps it.
    pub text: Arc<str>,
}

#[derive(Debug, Clone, Copy)]
struct VersionEntry {
    id: i32,
    deleted: bool,
}

/// A version of a subject, as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectVersion {
    /// The subject.
    pub subject: String,
    /// The schema's id.
    pub id: i32,
    /// The version within the subject.
    pub version: i32,
    /// The schema's text.
    pub schema: String,
}

/// Which version of a subject: a number or the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSelector {
    /// The newest live version.
    Latest,
    /// A version number.
    Number(i32),
}

impl std::str::FromStr for VersionSelector {
    type Err = RegistryError;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "latest" | "-1" => Ok(VersionSelector::Latest),
            number => number
                .parse::<i32>()
                .ok()
                .filter(|n| *n >= 1)
                .map(VersionSelector::Number)
                .ok_or_else(|| RegistryError::InvalidVersion {
                    version: text.to_string(),
                }),
        }
    }
}

/// What registering a schema comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The subject already has it: its id.
    Existing(i32),
    /// A record to write: this version of the subject with this id.
    Write { version: i32, id: i32 },
}

/// The replayed registry.
#[derive(Debug, Default)]
pub(crate) struct State {
    schemas: BTreeMap<i32, RegisteredSchema>,
    ids: HashMap<Arc<str>, i32>,
    subjects: BTreeMap<String, BTreeMap<i32, VersionEntry>>,
    global: Compatibility,
    configs: HashMap<String, Compatibility>,
}

impl State {
    /// Applies one record of the topic. Answers whether it was accepted; unreadable records
    /// are skipped (with a warning), as they would be on every instance.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> bool {
        let Ok(key) = serde_json::from_slice::<StoreKey>(key) else {
            // Other kinds of record (Confluent's NOOP, MODE, ...) say nothing rill uses.
            tracing::debug!("skipping a record of _schemas of another kind");
            return false;
        };
        match (key, value) {
            (StoreKey::Schema { .. }, Some(value)) => match serde_json::from_slice(value) {
                Ok(value) => self.apply_schema(value),
                Err(error) => {
                    tracing::warn!(%error, "skipping an unreadable SCHEMA record");
                    false
                }
            },
            (StoreKey::Config { subject }, value) => {
                let level = value
                    .map(serde_json::from_slice::<ConfigValue>)
                    .transpose()
                    .ok()
                    .map(|config| {
                        config.and_then(|config| config.compatibility_level.parse().ok())
                    });
                match (subject, level) {
                    (None, Some(Some(level))) => self.global = level,
                    (None, Some(None)) => self.global = Compatibility::default(),
                    (Some(subject), Some(Some(level))) => {
                        self.configs.insert(subject, level);
                    }
                    (Some(subject), Some(None)) => {
                        self.configs.remove(&subject);
                    }
                    (_, None) => {
                        tracing::warn!("skipping an unreadable CONFIG record");
                        return false;
                    }
                }
                true
            }
            (StoreKey::DeleteSubject { .. }, Some(value)) => {
                match serde_json::from_slice::<DeleteValue>(value) {
                    Ok(delete) => {
                        if let Some(versions) = self.subjects.get_mut(&delete.subject) {
                            for (_, entry) in versions.range_mut(..=delete.version) {
                                entry.deleted = true;
                            }
                        }
                        true
                    }
                    Err(_) => false,
                }
            }
            // Tombstones of schema or delete records: compaction of the topic, nothing to undo.
            (_, None) => false,
        }
    }

    fn apply_schema(&mut self, value: SchemaValue) -> bool {
        // Confluent deletes a version by writing it again, marked deleted.
        if value.deleted
            && let Some(entry) = self
                .subjects
                .get_mut(&value.subject)
                .and_then(|versions| versions.get_mut(&value.version))
                .filter(|entry| entry.id == value.id)
        {
            entry.deleted = true;
            return true;
        }
        let Ok((schema, text)) = compatibility::parse(&value.schema) else {
            tracing::warn!(subject = %value.subject, "skipping a SCHEMA record that does not parse");
            return false;
        };
        let text: Arc<str> = Arc::from(text);
        let id_free = match self.schemas.get(&value.id) {
            None => !self.ids.contains_key(&text),
            Some(existing) => existing.text == text,
        };
        let versions = self.subjects.entry(value.subject.clone()).or_default();
        if !id_free || value.version < 1 || versions.contains_key(&value.version) {
            return false;
        }
        // A deleted version alone (compaction kept only its deletion) still names its schema:
        // records written with it stay readable by id.
        versions.insert(
            value.version,
            VersionEntry {
                id: value.id,
                deleted: value.deleted,
            },
        );
        self.ids.insert(text.clone(), value.id);
        self.schemas.insert(
            value.id,
            RegisteredSchema {
                schema: Arc::new(schema),
                text,
            },
        );
        true
    }

    /// The schema with this id.
    pub fn schema(&self, id: i32) -> Result<&RegisteredSchema> {
        self.schemas
            .get(&id)
            .ok_or(RegistryError::SchemaNotFound { id })
    }

    /// Subjects with at least one live version, sorted.
    pub fn subjects(&self) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, versions)| versions.values().any(|v| !v.deleted))
            .map(|(subject, _)| subject.clone())
            .collect()
    }

    fn live(&self, subject: &str) -> Result<Vec<(i32, i32)>> {
        let live: Vec<(i32, i32)> = self
            .subjects
            .get(subject)
            .into_iter()
            .flatten()
            .filter(|(_, entry)| !entry.deleted)
            .map(|(version, entry)| (*version, entry.id))
            .collect();
        if live.is_empty() {
            return Err(RegistryError::SubjectNotFound {
                subject: subject.to_string(),
            });
        }
        Ok(live)
    }

    /// The live versions of a subject, oldest first.
    pub fn versions(&self, subject: &str) -> Result<Vec<i32>> {
        Ok(self.live(subject)?.into_iter().map(|(v, _)| v).collect())
    }

    /// One version of a subject.
    pub fn version(&self, subject: &str, which: VersionSelector) -> Result<SubjectVersion> {
        let live = self.live(subject)?;
        let found = match which {
            VersionSelector::Latest => live.last().copied(),
            VersionSelector::Number(n) => live.iter().copied().find(|(v, _)| *v == n),
        };
        let (version, id) = found.ok_or_else(|| RegistryError::VersionNotFound {
            subject: subject.to_string(),
            version: match which {
                VersionSelector::Latest => -1,
                VersionSelector::Number(n) => n,
            },
        })?;
        Ok(SubjectVersion {
            subject: subject.to_string(),
            id,
            version,
            schema: self.schema(id)?.text.to_string(),
        })
    }

    /// The live version of a subject that has this schema.
    pub fn lookup(&self, subject: &str, text: &str) -> Result<SubjectVersion> {
        let live = self.live(subject)?;
        let id = self
            .ids
            .get(text)
            .ok_or_else(|| RegistryError::SchemaNotInSubject {
                subject: subject.to_string(),
            })?;
        let (version, _) = live
            .into_iter()
            .find(|(_, live_id)| live_id == id)
            .ok_or_else(|| RegistryError::SchemaNotInSubject {
                subject: subject.to_string(),
            })?;
        self.version(subject, VersionSelector::Number(version))
    }

    /// The compatibility level in force for a subject.
    pub fn compatibility(&self, subject: &str) -> Compatibility {
        self.configs.get(subject).copied().unwrap_or(self.global)
    }

    /// The global level.
    pub fn global_compatibility(&self) -> Compatibility {
        self.global
    }

    /// The subject's own level, if it has one.
    pub fn subject_compatibility(&self, subject: &str) -> Option<Compatibility> {
        self.configs.get(subject).copied()
    }

    /// Why `schema` may not join the subject, if it may not.
    pub fn incompatibility(&self, subject: &str, schema: &Schema) -> Option<String> {
        let earlier: Vec<(i32, &Schema)> = self
            .live(subject)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(version, id)| {
                self.schemas
                    .get(&id)
                    .map(|stored| (version, stored.schema.as_ref()))
            })
            .collect();
        self.compatibility(subject).check(schema, &earlier)
    }

    /// Whether `schema` is compatible with one version of the subject, per the subject's
    /// level (checked against that version only).
    pub fn compatible_with(
        &self,
        subject: &str,
        which: VersionSelector,
        schema: &Schema,
    ) -> Result<bool> {
        let version = self.version(subject, which)?;
        let old = self.schema(version.id)?;
        let level = match self.compatibility(subject) {
            Compatibility::BackwardTransitive => Compatibility::Backward,
            Compatibility::ForwardTransitive => Compatibility::Forward,
            Compatibility::FullTransitive => Compatibility::Full,
            level => level,
        };
        Ok(level
            .check(schema, &[(version.version, old.schema.as_ref())])
            .is_none())
    }

    /// What registering `schema` (with its kept `text`) under `subject` takes.
    pub fn plan(&self, subject: &str, schema: &Schema, text: &str) -> Result<Plan> {
        let existing_id = self.ids.get(text).copied();
        if let (Some(id), Ok(live)) = (existing_id, self.live(subject))
            && live.iter().any(|(_, live_id)| *live_id == id)
        {
            return Ok(Plan::Existing(id));
        }
        if let Some(reason) = self.incompatibility(subject, schema) {
            return Err(RegistryError::Incompatible {
                subject: subject.to_string(),
                level: self.compatibility(subject),
                reason,
            });
        }
        let version = self
            .subjects
            .get(subject)
            .and_then(|versions| versions.keys().next_back())
            .map_or(1, |last| last + 1);
        let id =
            existing_id.unwrap_or_else(|| self.schemas.keys().next_back().map_or(1, |n| n + 1));
        Ok(Plan::Write { version, id })
    }

    /// Whether `subject` version `version` is `id` with the schema `text` (a registration
    /// was accepted, not a rival's of the same version and id).
    pub fn has(&self, subject: &str, version: i32, id: i32, text: &str) -> bool {
        self.subjects
            .get(subject)
            .and_then(|versions| versions.get(&version))
            .is_some_and(|entry| entry.id == id)
            && self
                .schemas
                .get(&id)
                .is_some_and(|stored| stored.text.as_ref() == text)
    }

    /// The newest version number of a subject, live or deleted.
    pub fn last_version(&self, subject: &str) -> Option<i32> {
        self.subjects
            .get(subject)
            .and_then(|versions| versions.keys().next_back().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;
    const V2: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}"#;

    fn schema_record(subject: &str, version: i32, id: i32, text: &str) -> (Vec<u8>, Vec<u8>) {
        let canonical = compatibility::parse(text).expect("valid").1;
        let key = StoreKey::Schema {
            subject: subject.into(),
            version,
            fingerprint: fingerprint(&canonical),
        };
        let value = SchemaValue {
            subject: subject.into(),
            version,
            id,
            schema: canonical,
            deleted: false,
        };
        (
            serde_json::to_vec(&key).expect("key"),
            serde_json::to_vec(&value).expect("value"),
        )
    }

    #[test]
    fn the_first_record_for_a_version_or_an_id_wins() {
        let mut state = State::default();
        let (k, v) = schema_record("s", 1, 1, V1);
        assert!(state.apply(&k, Some(&v)));
        // Another schema raced for version 1, and for id 1 under another subject.
        let (k, v) = schema_record("s", 1, 2, V2);
        assert!(!state.apply(&k, Some(&v)));
        let (k, v) = schema_record("t", 1, 1, V2);
        assert!(!state.apply(&k, Some(&v)));
        // The same schema under another subject keeps its id.
        let (k, v) = schema_record("t", 1, 1, V1);
        assert!(state.apply(&k, Some(&v)));
        assert_eq!(state.subjects(), vec!["s".to_string(), "t".to_string()]);
        assert_eq!(
            state.version("s", VersionSelector::Latest).expect("v").id,
            1
        );
    }

    #[test]
    fn records_written_by_confluents_registry_read_alike() {
        let mut state = State::default();
        let key = br#"{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}"#;
        let value = br#"{"subject":"s","version":1,"id":5,"schema":"\"string\"","deleted":false}"#;
        assert!(state.apply(key, Some(value)));
        assert_eq!(
            state.version("s", VersionSelector::Latest).expect("v").id,
            5
        );
        let config = br#"{"keytype":"CONFIG","subject":null,"magic":0}"#;
        assert!(state.apply(config, Some(br#"{"compatibilityLevel":"FULL"}"#)));
        assert_eq!(state.global_compatibility(), Compatibility::Full);
        assert!(!state.apply(br#"{"keytype":"NOOP","magic":0}"#, None));
        // Confluent deletes a version by writing it again, marked deleted.
        let deleted = br#"{"subject":"s","version":1,"id":5,"schema":"\"string\"","deleted":true}"#;
        assert!(state.apply(key, Some(deleted)));
        assert_eq!(
            state.versions("s").expect_err("deleted").error_code(),
            40401
        );
        assert!(state.schema(5).is_ok());
        // After compaction only the deletion is left: the id still reads.
        let mut compacted = State::default();
        assert!(compacted.apply(key, Some(deleted)));
        assert!(compacted.versions("s").is_err());
        assert!(compacted.schema(5).is_ok());
    }

    #[test]
    fn deleted_versions_are_hidden_and_numbering_goes_on() {
        let mut state = State::default();
        let (k, v) = schema_record("s", 1, 1, V1);
        state.apply(&k, Some(&v));
        let key = serde_json::to_vec(&StoreKey::DeleteSubject {
            subject: "s".into(),
        })
        .expect("k");
        let value = serde_json::to_vec(&DeleteValue {
            subject: "s".into(),
            version: 1,
        })
        .expect("v");
        assert!(state.apply(&key, Some(&value)));
        assert_eq!(state.versions("s").expect_err("gone").error_code(), 40401);
        let (schema, text) = compatibility::parse(V2).expect("valid");
        assert_eq!(
            state.plan("s", &schema, &text).expect("plan"),
            Plan::Write { version: 2, id: 2 }
        );
        // The schema of a deleted version can still be read by id (old records use it).
        assert!(state.schema(1).is_ok());
    }

    #[test]
    fn registering_checks_the_subject_level() {
        let mut state = State::default();
        let (k, v) = schema_record("s", 1, 1, V1);
        state.apply(&k, Some(&v));
        let breaking = r#"{"type":"record","name":"R","fields":[{"name":"c","type":"int"}]}"#;
        let (schema, text) = compatibility::parse(breaking).expect("valid");
        let error = state.plan("s", &schema, &text).expect_err("incompatible");
        assert_eq!(error.error_code(), 409);
        let key = serde_json::to_vec(&StoreKey::Config {
            subject: Some("s".into()),
        })
        .expect("k");
        let value = br#"{"compatibilityLevel":"NONE"}"#;
        assert!(state.apply(&key, Some(value)));
        assert_eq!(
            state.plan("s", &schema, &text).expect("plan"),
            Plan::Write { version: 2, id: 2 }
        );
        let (schema, text) = compatibility::parse(V1).expect("valid");
        assert_eq!(
            state.plan("s", &schema, &text).expect("plan"),
            Plan::Existing(1)
        );
    }
}
