//! Serdes: how keys and values become bytes in topics and stores, and back.
//!
//! Built in: [`JsonSerde`] (any `serde` type, the default wire format), [`StringSerde`] (UTF-8),
//! [`BytesSerde`], [`I64Serde`] and [`I32Serde`] (big-endian, as Kafka's serializers write them).
//! Implement [`Serde`] for more formats.
//!
//! **Tombstones.** A record without a value (Kafka's `null`, a delete in a compacted topic or
//! a CDC feed) reaches a stream as `None` when its value type is an `Option`: the default serde
//! of `Option<V>` is [`NullableSerde`] over `V`'s, which reads a missing value as `None` and
//! writes `None` as a record without a value. Other value types refuse a missing value as a
//! deserialization error (dead letter or failure, per the application's policy).

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;

/// Why bytes could not be turned into a value or back.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{format}: {reason}")]
pub struct SerdeError {
    /// The format that failed (e.g. "json", "i64").
    pub format: &'static str,
    /// What was wrong.
    pub reason: String,
}

/// Converts values of `T` to bytes and back. `topic` lets formats such as Avro with a schema
/// registry choose a subject.
pub trait Serde<T>: Send + Sync + 'static {
    /// Encodes a value.
    fn serialize(&self, topic: &str, value: &T) -> Result<Bytes, SerdeError>;
    /// Decodes a value.
    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<T, SerdeError>;

    /// Decodes a record that has no value at all (a tombstone). Most types have no such
    /// value, so by default it is an error.
    fn deserialize_null(&self, _topic: &str) -> Result<T, SerdeError> {
        Err(SerdeError {
            format: "record",
            reason: "value is null (a tombstone); read the topic with an Option value type \
                     to receive tombstones as None"
                .into(),
        })
    }

    /// Encodes a value for a record, `None` meaning the record is written without a value (a
    /// tombstone). By default every value has bytes.
    fn serialize_nullable(&self, topic: &str, value: &T) -> Result<Option<Bytes>, SerdeError> {
        self.serialize(topic, value).map(Some)
    }
}

/// `Option<T>` over a serde of `T`: `None` is a record without a value (a tombstone), `Some`
/// is encoded by the inner serde. The default serde of every `Option<T>` whose `T` has one.
///
/// ```
/// use rill_streams::{DefaultSerde, Serde};
/// let serde = <Option<String>>::default_serde();
/// assert_eq!(serde.serialize_nullable("t", &None).unwrap(), None);
/// assert_eq!(serde.deserialize_null("t").unwrap(), None);
/// assert_eq!(serde.deserialize("t", b"hi").unwrap(), Some("hi".to_string()));
/// ```
pub struct NullableSerde<T> {
    inner: SharedSerde<T>,
}

impl<T> NullableSerde<T> {
    /// Tombstones as `None`, other values through `inner`.
    pub fn new(inner: SharedSerde<T>) -> Self {
        NullableSerde { inner }
    }
}

impl<T: 'static> Serde<Option<T>> for NullableSerde<T> {
    /// `None` has no bytes: it can be written as a record only (see
    /// [`serialize_nullable`](Serde::serialize_nullable)), not into a store or a key.
    fn serialize(&self, topic: &str, value: &Option<T>) -> Result<Bytes, SerdeError> {
        match value {
            Some(value) => self.inner.serialize(topic, value),
            None => Err(SerdeError {
                format: "nullable",
                reason: "None has no bytes: it is written as a tombstone, and cannot be a key \
                         or a stored value (delete the key instead)"
                    .into(),
            }),
        }
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Option<T>, SerdeError> {
        self.inner.deserialize(topic, bytes).map(Some)
    }

    fn deserialize_null(&self, _topic: &str) -> Result<Option<T>, SerdeError> {
        Ok(None)
    }

    fn serialize_nullable(
        &self,
        topic: &str,
        value: &Option<T>,
    ) -> Result<Option<Bytes>, SerdeError> {
        value
            .as_ref()
            .map(|value| self.inner.serialize(topic, value))
            .transpose()
    }
}

/// A shareable serde.
pub type SharedSerde<T> = Arc<dyn Serde<T>>;

/// A value or its absence (a deletion) as one stored byte string: `1 ++ value`, or `0`, for
/// buffers that keep deletions too (suppression, version history).
pub(crate) fn encode_present<T: 'static>(
    serde: &SharedSerde<T>,
    topic: &str,
    value: Option<&T>,
) -> Result<Bytes, SerdeError> {
    match value {
        Some(value) => {
            let bytes = serde.serialize(topic, value)?;
            let mut out = Vec::with_capacity(1 + bytes.len());
            out.push(1);
            out.extend_from_slice(&bytes);
            Ok(Bytes::from(out))
        }
        None => Ok(Bytes::from_static(&[0])),
    }
}

/// Reads what [`encode_present`] wrote.
pub(crate) fn decode_present<T: 'static>(
    serde: &SharedSerde<T>,
    topic: &str,
    bytes: &[u8],
) -> Result<Option<T>, SerdeError> {
    match bytes.split_first() {
        Some((1, value)) => serde.deserialize(topic, value).map(Some),
        Some((0, [])) => Ok(None),
        _ => Err(SerdeError {
            format: "present-or-deleted",
            reason: "expected 0, or 1 and a value".into(),
        }),
    }
}

/// JSON through `serde_json`.
pub struct JsonSerde<T>(PhantomData<fn() -> T>);

impl<T> JsonSerde<T> {
    /// A JSON serde for `T`.
    pub fn new() -> Self {
        JsonSerde(PhantomData)
    }
}

impl<T> Default for JsonSerde<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Serde<T> for JsonSerde<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn serialize(&self, _topic: &str, value: &T) -> Result<Bytes, SerdeError> {
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|error| SerdeError {
                format: "json",
                reason: error.to_string(),
            })
    }

    fn deserialize(&self, _topic: &str, bytes: &[u8]) -> Result<T, SerdeError> {
        serde_json::from_slice(bytes).map_err(|error| SerdeError {
            format: "json",
            reason: error.to_string(),
        })
    }
}

/// UTF-8 strings.
#[derive(Debug, Default, Clone, Copy)]
pub struct StringSerde;

impl Serde<String> for StringSerde {
    fn serialize(&self, _topic: &str, value: &String) -> Result<Bytes, SerdeError> {
        Ok(Bytes::copy_from_slice(value.as_bytes()))
    }

    fn deserialize(&self, _topic: &str, bytes: &[u8]) -> Result<String, SerdeError> {
        String::from_utf8(bytes.to_vec()).map_err(|error| SerdeError {
            format: "utf-8",
            reason: error.to_string(),
        })
    }
}

/// Raw bytes, unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct BytesSerde;

impl Serde<Bytes> for BytesSerde {
    fn serialize(&self, _topic: &str, value: &Bytes) -> Result<Bytes, SerdeError> {
        Ok(value.clone())
    }

    fn deserialize(&self, _topic: &str, bytes: &[u8]) -> Result<Bytes, SerdeError> {
        Ok(Bytes::copy_from_slice(bytes))
    }
}

macro_rules! big_endian_serde {
    ($name:ident, $ty:ty, $format:literal) => {
        #[doc = concat!("`", stringify!($ty), "` as big-endian bytes (Kafka's serializer).")]
        #[derive(Debug, Default, Clone, Copy)]
        pub struct $name;

        impl Serde<$ty> for $name {
            fn serialize(&self, _topic: &str, value: &$ty) -> Result<Bytes, SerdeError> {
                Ok(Bytes::copy_from_slice(&value.to_be_bytes()))
            }

            fn deserialize(&self, _topic: &str, bytes: &[u8]) -> Result<$ty, SerdeError> {
                let array = bytes.try_into().map_err(|_| SerdeError {
                    format: $format,
                    reason: format!(
                        "expected {} bytes, got {}",
                        std::mem::size_of::<$ty>(),
                        bytes.len()
                    ),
                })?;
                Ok(<$ty>::from_be_bytes(array))
            }
        }
    };
}

big_endian_serde!(I64Serde, i64, "i64");
big_endian_serde!(I32Serde, i32, "i32");

/// Unit values: empty bytes. Useful for streams that carry only keys.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnitSerde;

impl Serde<()> for UnitSerde {
    fn serialize(&self, _topic: &str, _value: &()) -> Result<Bytes, SerdeError> {
        Ok(Bytes::new())
    }

    fn deserialize(&self, _topic: &str, _bytes: &[u8]) -> Result<(), SerdeError> {
        Ok(())
    }
}

/// The serde a type uses when a DSL call does not name one: Kafka's formats for strings and
/// integers, JSON for your own types (declare those with [`json_serde!`](crate::json_serde)).
pub trait DefaultSerde: Sized + 'static {
    /// The serde for `Self`.
    fn default_serde() -> SharedSerde<Self>;
}

impl DefaultSerde for String {
    fn default_serde() -> SharedSerde<Self> {
        Arc::new(StringSerde)
    }
}

impl DefaultSerde for i64 {
    fn default_serde() -> SharedSerde<Self> {
        Arc::new(I64Serde)
    }
}

impl DefaultSerde for i32 {
    fn default_serde() -> SharedSerde<Self> {
        Arc::new(I32Serde)
    }
}

impl DefaultSerde for Bytes {
    fn default_serde() -> SharedSerde<Self> {
        Arc::new(BytesSerde)
    }
}

impl DefaultSerde for () {
    fn default_serde() -> SharedSerde<Self> {
        Arc::new(UnitSerde)
    }
}

impl<T: DefaultSerde> DefaultSerde for Option<T> {
    fn default_serde() -> SharedSerde<Self> {
        Arc::new(NullableSerde::new(T::default_serde()))
    }
}

/// Declares JSON as the [`DefaultSerde`] of your types.
///
/// ```
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Order { id: String }
/// rill_streams::json_serde!(Order);
/// ```
#[macro_export]
macro_rules! json_serde {
    ($($ty:ty),+ $(,)?) => {
        $(impl $crate::DefaultSerde for $ty {
            fn default_serde() -> $crate::SharedSerde<Self> {
                ::std::sync::Arc::new($crate::JsonSerde::<$ty>::new())
            }
        })+
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian_like_kafka() {
        assert_eq!(
            I64Serde.serialize("t", &1).unwrap().as_ref(),
            &[0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(
            I64Serde
                .deserialize("t", &[0, 0, 0, 0, 0, 0, 1, 0])
                .unwrap(),
            256
        );
        let error = I32Serde.deserialize("t", &[1, 2]).unwrap_err();
        assert!(error.reason.contains("expected 4 bytes"), "{error}");
    }

    #[test]
    fn option_values_are_tombstones_when_none_and_others_refuse_null() {
        let serde = <Option<i64>>::default_serde();
        assert_eq!(serde.serialize_nullable("t", &None).unwrap(), None);
        assert_eq!(
            serde.serialize_nullable("t", &Some(2)).unwrap().as_deref(),
            Some(&[0, 0, 0, 0, 0, 0, 0, 2][..])
        );
        assert!(serde.serialize("t", &None).is_err());
        assert_eq!(serde.deserialize_null("t").unwrap(), None);
        assert_eq!(serde.deserialize("t", &[0; 8]).unwrap(), Some(0));
        let error = I64Serde.deserialize_null("t").unwrap_err();
        assert!(error.reason.contains("tombstone"), "{error}");
    }

    #[test]
    fn json_round_trips_and_names_bad_input() {
        let serde = JsonSerde::<Vec<u32>>::new();
        let bytes = serde.serialize("t", &vec![1, 2]).unwrap();
        assert_eq!(bytes.as_ref(), b"[1,2]");
        assert_eq!(serde.deserialize("t", &bytes).unwrap(), vec![1, 2]);
        assert_eq!(serde.deserialize("t", b"{").unwrap_err().format, "json");
    }
}
