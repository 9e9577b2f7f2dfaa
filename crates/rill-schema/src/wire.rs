//! Confluent's wire format: a magic byte 0, the schema id as 4 bytes big-endian, then the
//! Avro binary encoding of the value.

/// The first byte of every framed value.
pub const MAGIC_BYTE: u8 = 0;

/// Bytes before the Avro body.
pub const HEADER_LEN: usize = 5;

/// Why bytes are not a framed value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the header.
    #[error("{len} bytes is too short for Confluent's wire format (magic byte and schema id)")]
    TooShort {
        /// The length seen.
        len: usize,
    },
    /// The first byte is not 0.
    #[error("unknown magic byte {byte} (Confluent's wire format starts with 0)")]
    UnknownMagicByte {
        /// The byte seen.
        byte: u8,
    },
}

/// Starts a framed value: the header for `schema_id`, ready for the Avro body.
pub fn header(schema_id: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out
}

/// The schema id of a framed value and its Avro body.
///
/// ```
/// use rill_schema::wire;
/// let mut framed = wire::header(7);
/// framed.extend_from_slice(b"\x02a");
/// assert_eq!(wire::split(&framed), Ok((7, &b"\x02a"[..])));
/// assert!(wire::split(b"{\"json\":1}").is_err());
/// ```
pub fn split(bytes: &[u8]) -> Result<(i32, &[u8]), WireError> {
    if bytes.len() < HEADER_LEN {
        return Err(WireError::TooShort { len: bytes.len() });
    }
    let (head, body) = bytes.split_at(HEADER_LEN);
    if head[0] != MAGIC_BYTE {
        return Err(WireError::UnknownMagicByte { byte: head[0] });
    }
    let id = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    Ok((id, body))
}
