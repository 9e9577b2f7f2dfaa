//! The messages of PostgreSQL's built-in `pgoutput` logical decoding plugin (protocol
//! version 1) that the source needs, parsed from the bytes that
//! `pg_logical_slot_peek_binary_changes` returns. Message formats: PostgreSQL's "Logical Replication Message Formats".

use crate::{Lsn, SourceError};

/// A column value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Datum {
    /// SQL NULL.
    Null,
    /// An unchanged TOASTed value the message does not carry.
    UnchangedToast,
    /// The value in PostgreSQL's text format.
    Text(String),
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    Begin {
        xid: u32,
    },
    Commit {
        /// The end of the commit record: the position after this transaction.
        end_lsn: Lsn,
    },
    Relation {
        id: u32,
        namespace: String,
        name: String,
        columns: Vec<String>,
    },
    Insert {
        relation: u32,
        new: Vec<Datum>,
    },
    Update {
        relation: u32,
        /// The old key ('K') or old row ('O'), sent when the key changed or the replica
        /// identity is FULL.
        old: Option<Vec<Datum>>,
        new: Vec<Datum>,
    },
    Delete {
        relation: u32,
        old: Vec<Datum>,
    },
    /// Anything else (type, origin, truncate, logical message): not needed here.
    Other,
}

struct Reader<'a> {
    bytes: &'a [u8],
}

fn malformed(what: &str) -> SourceError {
    SourceError::Protocol {
        what: what.to_string(),
    }
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], SourceError> {
        if self.bytes.len() < n {
            return Err(malformed(what));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &str) -> Result<u8, SourceError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, SourceError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, SourceError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, SourceError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn cstring(&mut self, what: &str) -> Result<String, SourceError> {
        let end = self
            .bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed(what))?;
        let text = std::str::from_utf8(&self.bytes[..end]).map_err(|_| malformed(what))?;
        self.bytes = &self.bytes[end + 1..];
        Ok(text.to_string())
    }

    fn tuple(&mut self) -> Result<Vec<Datum>, SourceError> {
        let n = self.u16("tuple column count")?;
        (0..n)
            .map(|_| match self.u8("tuple column kind")? {
                b'n' => Ok(Datum::Null),
                b'u' => Ok(Datum::UnchangedToast),
                b't' => {
                    let len = self.u32("text length")? as usize;
                    let raw = self.take(len, "text value")?;
                    let text = std::str::from_utf8(raw).map_err(|_| malformed("text value"))?;
                    Ok(Datum::Text(text.to_string()))
                }
                _ => Err(malformed("tuple column kind")),
            })
            .collect()
    }

    /// A tuple introduced by the marker `expected` ('N' for a new tuple).
    fn marked_tuple(&mut self, expected: u8) -> Result<Vec<Datum>, SourceError> {
        if self.u8("tuple marker")? != expected {
            return Err(malformed("tuple marker"));
        }
        self.tuple()
    }
}

/// Parses one message.
pub(crate) fn parse(bytes: &[u8]) -> Result<Message, SourceError> {
    let mut r = Reader { bytes };
    Ok(match r.u8("message type")? {
        b'B' => {
            let _final_lsn = r.u64("begin lsn")?;
            let _timestamp = r.u64("begin timestamp")?;
            Message::Begin {
                xid: r.u32("begin xid")?,
            }
        }
        b'C' => {
            let _flags = r.u8("commit flags")?;
            let _commit_lsn = r.u64("commit lsn")?;
            Message::Commit {
                end_lsn: Lsn(r.u64("commit end lsn")?),
            }
        }
        b'R' => {
            let id = r.u32("relation id")?;
            let namespace = r.cstring("relation namespace")?;
            let name = r.cstring("relation name")?;
            let _identity = r.u8("replica identity")?;
            let n = r.u16("relation column count")?;
            let columns = (0..n)
                .map(|_| {
                    let _flags = r.u8("column flags")?;
                    let name = r.cstring("column name")?;
                    let _type = r.u32("column type")?;
                    let _typmod = r.u32("column type modifier")?;
                    Ok(name)
                })
                .collect::<Result<_, SourceError>>()?;
            Message::Relation {
                id,
                namespace,
                name,
                columns,
            }
        }
        b'I' => {
            let relation = r.u32("insert relation")?;
            Message::Insert {
                relation,
                new: r.marked_tuple(b'N')?,
            }
        }
        b'U' => {
            let relation = r.u32("update relation")?;
            let (old, new) = match r.u8("update marker")? {
                b'K' | b'O' => {
                    let old = r.tuple()?;
                    (Some(old), r.marked_tuple(b'N')?)
                }
                b'N' => (None, r.tuple()?),
                _ => return Err(malformed("update marker")),
            };
            Message::Update { relation, old, new }
        }
        b'D' => {
            let relation = r.u32("delete relation")?;
            match r.u8("delete marker")? {
                b'K' | b'O' => Message::Delete {
                    relation,
                    old: r.tuple()?,
                },
                _ => return Err(malformed("delete marker")),
            }
        }
        _ => Message::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> Vec<u8> {
        let mut out = vec![b't'];
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
        out
    }

    #[test]
    fn an_insert_is_parsed_with_its_values_and_nulls() -> Result<(), SourceError> {
        let mut bytes = vec![b'I'];
        bytes.extend_from_slice(&16384u32.to_be_bytes());
        bytes.push(b'N');
        bytes.extend_from_slice(&2u16.to_be_bytes());
        bytes.extend(text("7"));
        bytes.push(b'n');
        assert_eq!(
            parse(&bytes)?,
            Message::Insert {
                relation: 16384,
                new: vec![Datum::Text("7".into()), Datum::Null]
            }
        );
        Ok(())
    }

    #[test]
    fn a_truncated_message_is_a_protocol_error() {
        let bytes = [b'C', 0, 0, 0];
        assert!(matches!(parse(&bytes), Err(SourceError::Protocol { .. })));
    }
}
