//! Records as JSON, for the topic proxy and the command-line tools: how a JSON key or value
//! becomes record bytes, and how record bytes are shown as JSON.
//!
//! Keys follow Kafka's serializers, so records written here land on the partitions the
//! services expect: a string key is its UTF-8 bytes, an integer key is 8 bytes big-endian (an
//! i64, as `customers` is keyed). A value is its JSON text; `null` (or no value) is a
//! tombstone.

use bytes::Bytes;
use rill_log::ProducerRecord;
use serde_json::Value;

/// Why a JSON record could not become a log record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonRecordError {
    /// The record is not a JSON object.
    #[error("a record must be a JSON object with \"key\" and \"value\"")]
    NotAnObject,
    /// An integer key that does not fit in an i64.
    #[error("an integer key must fit in an i64")]
    KeyOutOfRange,
    /// A partition that is not a small non-negative integer.
    #[error("\"partition\" must be a non-negative 32-bit integer")]
    BadPartition,
}

/// The bytes of a JSON key: a string as UTF-8, an integer as 8 bytes big-endian, `null` as no
/// key, anything else as its JSON text.
pub fn key_bytes(key: &Value) -> Result<Option<Bytes>, JsonRecordError> {
    Ok(match key {
        Value::Null => None,
        Value::String(text) => Some(Bytes::from(text.clone().into_bytes())),
        Value::Number(number) if number.is_i64() || number.is_u64() => {
            let integer = number.as_i64().ok_or(JsonRecordError::KeyOutOfRange)?;
            Some(Bytes::copy_from_slice(&integer.to_be_bytes()))
        }
        other => Some(Bytes::from(other.to_string().into_bytes())),
    })
}

/// The bytes of a JSON value: its JSON text, `null` as a tombstone.
pub fn value_bytes(value: &Value) -> Option<Bytes> {
    match value {
        Value::Null => None,
        other => Some(Bytes::from(other.to_string().into_bytes())),
    }
}

/// A producer record for `topic` from `{"key": K, "value": V, "partition": P}` (each
/// optional).
pub fn producer_record(topic: &str, record: &Value) -> Result<ProducerRecord, JsonRecordError> {
    let Value::Object(fields) = record else {
        return Err(JsonRecordError::NotAnObject);
    };
    let mut out = ProducerRecord::new(topic);
    out.key = key_bytes(fields.get("key").unwrap_or(&Value::Null))?;
    out.value = value_bytes(fields.get("value").unwrap_or(&Value::Null));
    if let Some(partition) = fields.get("partition").filter(|p| !p.is_null()) {
        let partition = partition
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p >= 0)
            .ok_or(JsonRecordError::BadPartition)?;
        out.partition = Some(partition);
    }
    Ok(out)
}

/// Shows a key: text as a string; 8 bytes that are not printable text as the i64 they encode
/// (Kafka's long serializer); other bytes as lossy text.
pub fn key_json(bytes: &[u8]) -> Value {
    let printable = std::str::from_utf8(bytes)
        .ok()
        .filter(|text| !text.chars().any(char::is_control));
    match (printable, <[u8; 8]>::try_from(bytes)) {
        (Some(text), _) => Value::String(text.to_string()),
        (None, Ok(long)) => Value::from(i64::from_be_bytes(long)),
        (None, Err(_)) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
    }
}

/// Shows a value: the JSON it holds, else its text.
pub fn value_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn string_and_integer_keys_use_kafka_serializers_and_show_back() {
        let record = producer_record("t", &json!({"key":"JUMPERS","value":10})).expect("record");
        assert_eq!(record.key.as_deref(), Some(&b"JUMPERS"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"10"[..]));
        let record =
            producer_record("t", &json!({"key":7,"value":null,"partition":2})).expect("record");
        assert_eq!(record.key.as_deref(), Some(&7i64.to_be_bytes()[..]));
        assert_eq!((record.value, record.partition), (None, Some(2)));
        assert_eq!(key_json(&7i64.to_be_bytes()), json!(7));
        assert_eq!(key_json(b"JUMPERS"), json!("JUMPERS"));
        assert_eq!(value_json(b"{\"a\":1}"), json!({"a":1}));
        assert_eq!(value_json(b"plain"), json!("plain"));
    }

    #[test]
    fn bad_records_are_refused_with_the_reason() {
        assert_eq!(
            producer_record("t", &json!([1])).unwrap_err(),
            JsonRecordError::NotAnObject
        );
        assert_eq!(
            producer_record("t", &json!({"partition":"x"})).unwrap_err(),
            JsonRecordError::BadPartition
        );
        assert_eq!(
            producer_record("t", &json!({"key": u64::MAX})).unwrap_err(),
            JsonRecordError::KeyOutOfRange
        );
    }
}
