//! Serdes: how keys and values become bytes in topics and stores, and back.
//!
//! Built in: [`JsonSerde`] (any `serde` type, the default wire format), [`StringSerde`] (UTF-8),
//! [`BytesSerde`], [`I64Serde`] and [`I32Serde`] (big-endian, as Kafka's serializers write them).
//! Implement [`Serde`] for more formats.

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
}

/// A shareable serde.
pub type SharedSerde<T> = Arc<dyn Serde<T>>;

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
    fn json_round_trips_and_names_bad_input() {
        let serde = JsonSerde::<Vec<u32>>::new();
        let bytes = serde.serialize("t", &vec![1, 2]).unwrap();
        assert_eq!(bytes.as_ref(), b"[1,2]");
        assert_eq!(serde.deserialize("t", &bytes).unwrap(), vec![1, 2]);
        assert_eq!(serde.deserialize("t", b"{").unwrap_err().format, "json");
    }
}
