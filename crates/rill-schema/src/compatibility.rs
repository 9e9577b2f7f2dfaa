//! Compatibility levels and the check behind them.

use std::fmt;
use std::str::FromStr;

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility as Resolution, SchemaCompatibility};

use crate::error::RegistryError;

/// What a new schema of a subject must be able to do with the subject's earlier ones
/// (Confluent's levels). `BACKWARD` is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compatibility {
    /// No check.
    None,
    /// The new schema reads data written with the latest one (consumers upgrade first).
    #[default]
    Backward,
    /// The new schema reads data written with every earlier one.
    BackwardTransitive,
    /// The latest schema reads data written with the new one (producers upgrade first).
    Forward,
    /// Every earlier schema reads data written with the new one.
    ForwardTransitive,
    /// Backward and forward with the latest schema.
    Full,
    /// Backward and forward with every earlier schema.
    FullTransitive,
}

impl Compatibility {
    /// Every level.
    pub const ALL: [Compatibility; 7] = [
        Compatibility::None,
        Compatibility::Backward,
        Compatibility::BackwardTransitive,
        Compatibility::Forward,
        Compatibility::ForwardTransitive,
        Compatibility::Full,
        Compatibility::FullTransitive,
    ];

    /// The level's name in the API (`BACKWARD`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }

    /// Checks `new` against the earlier schemas of a subject, oldest first; answers why it
    /// is incompatible, if it is.
    pub(crate) fn check(self, new: &Schema, earlier: &[(i32, &Schema)]) -> Option<String> {
        let against: &[(i32, &Schema)] = if self.transitive() {
            earlier
        } else {
            earlier.last().map_or(&[], std::slice::from_ref)
        };
        let (backward, forward) = match self {
            Compatibility::None => return None,
            Compatibility::Backward | Compatibility::BackwardTransitive => (true, false),
            Compatibility::Forward | Compatibility::ForwardTransitive => (false, true),
            Compatibility::Full | Compatibility::FullTransitive => (true, true),
        };
        for (version, old) in against {
            if backward && let Some(why) = can_read(old, new) {
                return Some(format!(
                    "the new schema cannot read data written with version {version}: {why}"
                ));
            }
            if forward && let Some(why) = can_read(new, old) {
                return Some(format!(
                    "version {version} cannot read data written with the new schema: {why}"
                ));
            }
        }
        None
    }
}

/// Why `reader` cannot read everything `writer` writes, if it cannot. A partial resolution
/// (an enum symbol or a union branch the reader lacks) counts as incompatible.
fn can_read(writer: &Schema, reader: &Schema) -> Option<String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Resolution::Full) => None,
        Ok(Resolution::Partial) => {
            Some("some values (an enum symbol or a union branch) would not resolve".into())
        }
        Err(error) => Some(error.to_string()),
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compatibility {
    type Err = RegistryError;

    fn from_str(level: &str) -> Result<Self, RegistryError> {
        Compatibility::ALL
            .into_iter()
            .find(|known| known.name().eq_ignore_ascii_case(level.trim()))
            .ok_or_else(|| RegistryError::InvalidCompatibilityLevel {
                level: level.to_string(),
            })
    }
}

/// Parses an Avro schema and answers it with the text the registry keeps for it: the
/// schema written back compactly (whitespace and key order of the request do not matter;
/// docs and defaults stay).
pub(crate) fn parse(text: &str) -> Result<(Schema, String), RegistryError> {
    let schema = Schema::parse_str(text).map_err(|error| RegistryError::InvalidSchema {
        reason: error.to_string(),
    })?;
    let canonical =
        serde_json::to_string(&schema).map_err(|error| RegistryError::InvalidSchema {
            reason: error.to_string(),
        })?;
    Ok((schema, canonical))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &str) -> Schema {
        let text = format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#);
        parse(&text).expect("valid").0
    }

    #[test]
    fn levels_follow_the_direction_of_reading() {
        let v1 = schema(r#"{"name":"a","type":"string"}"#);
        // Adds a field without a default: it cannot read v1's data, v1 can read its data.
        let v2 = schema(r#"{"name":"a","type":"string"},{"name":"b","type":"int"}"#);
        let earlier = [(1, &v1)];
        assert!(Compatibility::Backward.check(&v2, &earlier).is_some());
        assert!(Compatibility::Forward.check(&v2, &earlier).is_none());
        assert!(Compatibility::Full.check(&v2, &earlier).is_some());
        assert!(Compatibility::None.check(&v2, &earlier).is_none());
        // With a default it is both.
        let v3 = schema(r#"{"name":"a","type":"string"},{"name":"b","type":"int","default":0}"#);
        assert!(Compatibility::Full.check(&v3, &earlier).is_none());
    }

    #[test]
    fn transitive_levels_check_every_earlier_version() {
        let v1 = schema(r#"{"name":"a","type":"int"}"#);
        let v2 = schema(r#"{"name":"b","type":"int","default":0}"#);
        // Reads v2's records (a from its default), not v1's (whose a is an int).
        let v3 = schema(
            r#"{"name":"b","type":"int","default":0},{"name":"a","type":"string","default":""}"#,
        );
        let earlier = [(1, &v1), (2, &v2)];
        assert!(Compatibility::Backward.check(&v3, &earlier).is_none());
        let why = Compatibility::BackwardTransitive
            .check(&v3, &earlier)
            .expect("v1's `a` is an int");
        assert!(why.contains("version 1"), "{why}");
    }

    #[test]
    fn level_names_parse_in_any_case_and_others_are_refused() {
        assert_eq!(
            "full_transitive".parse::<Compatibility>().ok(),
            Some(Compatibility::FullTransitive)
        );
        let error = "SIDEWAYS".parse::<Compatibility>().expect_err("unknown");
        assert_eq!(error.error_code(), 42203);
    }
}
