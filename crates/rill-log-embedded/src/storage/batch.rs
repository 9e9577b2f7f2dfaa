//! The on-disk batch format (see `docs/embedded-log.md`): encoding, header parsing, checksum
//! verification and record decoding. Decoding never panics: every length and varint is
//! bounds-checked, and a malformed batch is reported as a reason string.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use rill_log::{ConsumedRecord, Header, Offset};

use super::StoredRecord;

/// Bytes of the fixed batch header, including the leading length field.
pub(crate) const HEADER_LEN: usize = 50;
/// Smallest value the length field can hold (a header without records).
const MIN_LENGTH: u32 = (HEADER_LEN - 4) as u32;
pub(crate) const MAGIC: u8 = 1;
/// Attribute bit: the batch belongs to a transaction.
pub(crate) const ATTR_TXN: u8 = 1;

/// Offsets of the header fields within a batch.
const CRC_AT: usize = 4;
const MAGIC_AT: usize = 8;
const ATTR_AT: usize = 9;
const BASE_AT: usize = 10;
const LAST_DELTA_AT: usize = 18;
const FIRST_TS_AT: usize = 22;
const MAX_TS_AT: usize = 30;
const TXN_AT: usize = 38;
const COUNT_AT: usize = 46;

/// The fixed header of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    /// Value of the length field: bytes after it.
    pub length: u32,
    pub crc: u32,
    pub magic: u8,
    pub attributes: u8,
    pub base_offset: Offset,
    pub last_delta: u32,
    pub first_ts: i64,
    pub max_ts: i64,
    pub txn_id: u64,
    pub count: u32,
}

impl BatchHeader {
    /// Parses the fixed header from the start of `buf`; `None` if `buf` is shorter than it.
    /// Checks nothing: see [`check_header`] and [`verify_crc`].
    pub fn parse(buf: &[u8]) -> Option<BatchHeader> {
        let h = buf.get(..HEADER_LEN)?;
        Some(BatchHeader {
            length: u32_at(h, 0),
            crc: u32_at(h, CRC_AT),
            magic: h[MAGIC_AT],
            attributes: h[ATTR_AT],
            base_offset: u64_at(h, BASE_AT) as i64,
            last_delta: u32_at(h, LAST_DELTA_AT),
            first_ts: u64_at(h, FIRST_TS_AT) as i64,
            max_ts: u64_at(h, MAX_TS_AT) as i64,
            txn_id: u64_at(h, TXN_AT),
            count: u32_at(h, COUNT_AT),
        })
    }

    /// Bytes the whole batch takes, length field included.
    pub fn total_len(&self) -> usize {
        4 + self.length as usize
    }

    /// Offset of the batch's last record.
    pub fn last_offset(&self) -> Offset {
        self.base_offset + i64::from(self.last_delta)
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TXN != 0
    }
}

/// The fewest bytes a record takes in a batch.
const MIN_RECORD_LEN: u64 = 5;

/// Checks what can be checked from the header alone.
pub(crate) fn check_header(h: &BatchHeader) -> Result<(), &'static str> {
    if h.length < MIN_LENGTH {
        return Err("batch length shorter than its header");
    }
    if h.magic != MAGIC {
        return Err("unknown batch magic");
    }
    if h.base_offset < 0 {
        return Err("negative base offset");
    }
    if h.count == 0 {
        return Err("batch without records");
    }
    if h.count - 1 > h.last_delta {
        return Err("more records than offsets in the batch");
    }
    // Each record takes at least 5 bytes (a byte each for offset delta, ts delta, key length,
    // value length and header count: a record without key, value or headers is just that);
    // rejecting impossible counts early keeps a corrupt count from sizing allocations.
    if u64::from(h.count) * MIN_RECORD_LEN > u64::from(h.length - MIN_LENGTH) {
        return Err("record count larger than the batch can hold");
    }
    Ok(())
}

/// Verifies the checksum of a complete batch (`batch` is exactly `total_len` bytes).
pub(crate) fn verify_crc(h: &BatchHeader, batch: &[u8]) -> Result<(), &'static str> {
    match batch.get(MAGIC_AT..h.total_len()) {
        Some(rest) if crc32c::crc32c(rest) == h.crc => Ok(()),
        _ => Err("batch checksum mismatch"),
    }
}

/// Fully validates a complete batch: header, checksum, and the structure of every record.
pub(crate) fn validate(h: &BatchHeader, batch: &[u8]) -> Result<(), &'static str> {
    check_header(h)?;
    verify_crc(h, batch)?;
    let mut records = RawRecords::new(h, batch);
    for raw in &mut records {
        raw?;
    }
    Ok(())
}

/// Encodes `records` as one batch at the end of `out`. `offset_deltas`, when given, holds each
/// record's offset minus `base_offset` (strictly increasing, first 0); otherwise offsets are
/// consecutive. Returns the batch header as written.
pub(crate) fn encode_batch(
    out: &mut Vec<u8>,
    base_offset: Offset,
    txn_id: u64,
    records: &[StoredRecord],
    offset_deltas: Option<&[u32]>,
) -> BatchHeader {
    debug_assert!(offset_deltas.is_none_or(|d| d.len() == records.len()));
    let start = out.len();
    out.resize(start + HEADER_LEN, 0);
    let first_ts = records.first().map_or(0, |r| r.timestamp);
    let mut max_ts = i64::MIN;
    let mut last_delta = 0u32;
    for (i, r) in records.iter().enumerate() {
        let delta = match offset_deltas {
            Some(d) => d[i],
            None => i as u32,
        };
        last_delta = delta;
        max_ts = max_ts.max(r.timestamp);
        put_varint(out, u64::from(delta));
        put_zigzag(out, r.timestamp.wrapping_sub(first_ts));
        put_opt_bytes(out, r.key.as_deref());
        put_opt_bytes(out, r.value.as_deref());
        put_varint(out, r.headers.len() as u64);
        for hd in &r.headers {
            put_varint(out, hd.key.len() as u64);
            out.extend_from_slice(hd.key.as_bytes());
            put_opt_bytes(out, hd.value.as_deref());
        }
    }
    let header = BatchHeader {
        length: (out.len() - start - 4) as u32,
        crc: 0,
        magic: MAGIC,
        attributes: if txn_id != 0 { ATTR_TXN } else { 0 },
        base_offset,
        last_delta,
        first_ts,
        max_ts,
        txn_id,
        count: records.len() as u32,
    };
    let h = &mut out[start..start + HEADER_LEN];
    h[0..4].copy_from_slice(&header.length.to_le_bytes());
    h[MAGIC_AT] = header.magic;
    h[ATTR_AT] = header.attributes;
    h[BASE_AT..BASE_AT + 8].copy_from_slice(&base_offset.to_le_bytes());
    h[LAST_DELTA_AT..LAST_DELTA_AT + 4].copy_from_slice(&last_delta.to_le_bytes());
    h[FIRST_TS_AT..FIRST_TS_AT + 8].copy_from_slice(&first_ts.to_le_bytes());
    h[MAX_TS_AT..MAX_TS_AT + 8].copy_from_slice(&max_ts.to_le_bytes());
    h[TXN_AT..TXN_AT + 8].copy_from_slice(&txn_id.to_le_bytes());
    h[COUNT_AT..COUNT_AT + 4].copy_from_slice(&header.count.to_le_bytes());
    let crc = crc32c::crc32c(&out[start + MAGIC_AT..]);
    out[start + CRC_AT..start + CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    BatchHeader { crc, ..header }
}

/// Bytes `record` takes inside a batch when it is the batch's only record.
pub(crate) fn record_encoded_len(record: &StoredRecord) -> usize {
    let mut n = 1 + 1; // offset delta 0, timestamp delta 0
    n += opt_bytes_len(record.key.as_deref());
    n += opt_bytes_len(record.value.as_deref());
    n += varint_len(record.headers.len() as u64);
    for h in &record.headers {
        n += varint_len(h.key.len() as u64) + h.key.len();
        n += opt_bytes_len(h.value.as_deref());
    }
    n
}

/// A record parsed in place: ranges index into the batch buffer.
#[derive(Debug, Clone)]
pub(crate) struct RawRecord {
    pub offset: Offset,
    pub timestamp: i64,
    pub key: Option<Range<usize>>,
    pub value: Option<Range<usize>>,
    pub header_count: u32,
    /// Where the headers are encoded.
    pub headers: Range<usize>,
}

/// Iterates the records of a batch (`batch` starts at the length field), validating structure:
/// offsets strictly increasing within `0..=last_delta`, lengths in bounds, exact record count,
/// no trailing bytes.
pub(crate) struct RawRecords<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    remaining: u32,
    base: Offset,
    first_ts: i64,
    last_delta: u32,
    prev_delta: Option<u32>,
    failed: bool,
}

impl<'a> RawRecords<'a> {
    pub fn new(h: &BatchHeader, batch: &'a [u8]) -> RawRecords<'a> {
        RawRecords {
            buf: batch,
            pos: HEADER_LEN,
            end: h.total_len().min(batch.len()),
            remaining: h.count,
            base: h.base_offset,
            first_ts: h.first_ts,
            last_delta: h.last_delta,
            prev_delta: None,
            failed: false,
        }
    }

    fn parse_one(&mut self) -> Result<RawRecord, &'static str> {
        let mut c = Cursor {
            buf: &self.buf[..self.end],
            pos: self.pos,
        };
        let delta = c.varint().ok_or("bad record offset delta")?;
        let delta = u32::try_from(delta).map_err(|_| "record offset delta out of range")?;
        if delta > self.last_delta || self.prev_delta.is_some_and(|p| delta <= p) {
            return Err("record offsets not increasing within the batch");
        }
        self.prev_delta = Some(delta);
        let ts_delta = c.zigzag().ok_or("bad record timestamp")?;
        let key = c.opt_bytes()?;
        let value = c.opt_bytes()?;
        let header_count = c.varint().ok_or("bad header count")?;
        let header_count = u32::try_from(header_count).map_err(|_| "header count out of range")?;
        let headers_start = c.pos;
        for _ in 0..header_count {
            let name_len = c.varint().ok_or("bad header name length")?;
            let name = c.take(name_len).ok_or("header name past the batch end")?;
            if std::str::from_utf8(&c.buf[name]).is_err() {
                return Err("header name is not UTF-8");
            }
            c.opt_bytes()?;
        }
        let headers = headers_start..c.pos;
        self.pos = c.pos;
        Ok(RawRecord {
            offset: self.base + i64::from(delta),
            timestamp: self.first_ts.wrapping_add(ts_delta),
            key,
            value,
            header_count,
            headers,
        })
    }
}

impl Iterator for RawRecords<'_> {
    type Item = Result<RawRecord, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.remaining == 0 {
            if self.pos != self.end {
                self.failed = true;
                return Some(Err("bytes after the last record of the batch"));
            }
            return None;
        }
        self.remaining -= 1;
        let r = self.parse_one();
        if self.remaining == 0 && r.is_ok() && self.prev_delta != Some(self.last_delta) {
            self.failed = true;
            return Some(Err("last record offset does not match the batch header"));
        }
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

/// Decodes the headers of a record parsed by [`RawRecords`] (already validated there).
pub(crate) fn decode_headers(batch: &Bytes, raw: &RawRecord) -> Result<Vec<Header>, &'static str> {
    let mut out = Vec::with_capacity(raw.header_count as usize);
    let mut c = Cursor {
        buf: &batch[..raw.headers.end],
        pos: raw.headers.start,
    };
    for _ in 0..raw.header_count {
        let name_len = c.varint().ok_or("bad header name length")?;
        let name = c.take(name_len).ok_or("header name past the batch end")?;
        let key = std::str::from_utf8(&batch[name])
            .map_err(|_| "header name is not UTF-8")?
            .to_owned();
        let value = c.opt_bytes()?.map(|r| batch.slice(r));
        out.push(Header { key, value });
    }
    Ok(out)
}

/// Which records of a batch to return.
pub(crate) struct Select<'a> {
    pub topic: &'a Arc<str>,
    pub partition: i32,
    pub from: Offset,
    pub upto: Offset,
}

/// Appends the records of a verified batch with offsets in `sel.from..sel.upto` to `out`.
/// `batch` is exactly the batch's bytes; key, value and header values are slices of it.
pub(crate) fn decode_into(
    h: &BatchHeader,
    batch: &Bytes,
    sel: &Select<'_>,
    out: &mut Vec<ConsumedRecord>,
    limit: usize,
) -> Result<(), &'static str> {
    for raw in RawRecords::new(h, batch) {
        if out.len() >= limit {
            break;
        }
        let raw = raw?;
        if raw.offset < sel.from {
            continue;
        }
        if raw.offset >= sel.upto {
            break;
        }
        let headers = if raw.header_count == 0 {
            Vec::new()
        } else {
            decode_headers(batch, &raw)?
        };
        out.push(ConsumedRecord {
            topic: Arc::clone(sel.topic),
            partition: sel.partition,
            offset: raw.offset,
            timestamp: raw.timestamp,
            key: raw.key.map(|r| batch.slice(r)),
            value: raw.value.map(|r| batch.slice(r)),
            headers,
        });
    }
    Ok(())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_opt_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_zigzag(out, -1),
        Some(b) => {
            put_zigzag(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn opt_bytes_len(b: Option<&[u8]>) -> usize {
    match b {
        None => 1,
        Some(b) => varint_len((b.len() as u64) << 1) + b.len(),
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn zigzag(&mut self) -> Option<i64> {
        let v = self.varint()?;
        Some(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn take(&mut self, len: u64) -> Option<Range<usize>> {
        let len = usize::try_from(len).ok()?;
        let end = self.pos.checked_add(len)?;
        if end > self.buf.len() {
            return None;
        }
        let r = self.pos..end;
        self.pos = end;
        Some(r)
    }

    fn opt_bytes(&mut self) -> Result<Option<Range<usize>>, &'static str> {
        let len = self.zigzag().ok_or("bad length")?;
        match len {
            -1 => Ok(None),
            n if n < 0 => Err("negative length"),
            n => self
                .take(n as u64)
                .map(Some)
                .ok_or("field past the batch end"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ts: i64, key: Option<&str>, value: Option<&str>, headers: Vec<Header>) -> StoredRecord {
        StoredRecord {
            timestamp: ts,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers,
        }
    }

    fn decode_all(buf: &[u8]) -> Result<Vec<ConsumedRecord>, &'static str> {
        let h = BatchHeader::parse(buf).ok_or("short")?;
        validate(&h, buf)?;
        let bytes = Bytes::copy_from_slice(buf);
        let topic: Arc<str> = Arc::from("t");
        let mut out = Vec::new();
        let sel = Select {
            topic: &topic,
            partition: 3,
            from: 0,
            upto: i64::MAX,
        };
        decode_into(&h, &bytes, &sel, &mut out, usize::MAX)?;
        Ok(out)
    }

    #[test]
    fn round_trips_every_field() {
        let records = vec![
            rec(
                1_700_000_000_000,
                Some("k"),
                Some("v"),
                vec![
                    Header::new("h1", "x"),
                    Header {
                        key: "null".into(),
                        value: None,
                    },
                ],
            ),
            rec(5, None, None, vec![]),
            rec(i64::MIN, Some(""), None, vec![]),
            rec(i64::MAX, None, Some(""), vec![Header::new("", "")]),
        ];
        let mut buf = Vec::new();
        let h = encode_batch(&mut buf, 42, 7, &records, None);
        assert_eq!(h.total_len(), buf.len());
        assert!(h.is_transactional());
        assert_eq!(h.txn_id, 7);
        assert_eq!(h.last_offset(), 45);
        assert_eq!(h.max_ts, i64::MAX);
        assert_eq!(BatchHeader::parse(&buf), Some(h));
        let out = decode_all(&buf).expect("decodes");
        assert_eq!(out.len(), records.len());
        for (i, (got, want)) in out.iter().zip(&records).enumerate() {
            assert_eq!(got.offset, 42 + i as i64);
            assert_eq!(got.partition, 3);
            assert_eq!(&*got.topic, "t");
            assert_eq!(got.timestamp, want.timestamp);
            assert_eq!(got.key, want.key);
            assert_eq!(got.value, want.value);
            assert_eq!(got.headers, want.headers);
        }
    }

    #[test]
    fn a_batch_of_bare_records_is_valid() {
        // No key, no value, no headers, the batch's first timestamp: the smallest records.
        // Their batches were once refused as corrupt (a 6-byte minimum per record assumed).
        for count in [1, 2, 7] {
            let records: Vec<StoredRecord> =
                (0..count).map(|_| rec(9, None, None, vec![])).collect();
            let mut buf = Vec::new();
            encode_batch(&mut buf, 0, 0, &records, None);
            let out = decode_all(&buf).expect("a valid batch");
            assert_eq!(out.len(), count);
            assert!(out.iter().all(|r| r.key.is_none() && r.value.is_none()));
        }
    }

    #[test]
    fn offset_deltas_leave_gaps() {
        let records = vec![
            rec(1, Some("a"), Some("1"), vec![]),
            rec(2, Some("b"), None, vec![]),
        ];
        let mut buf = Vec::new();
        let h = encode_batch(&mut buf, 10, 0, &records, Some(&[0, 5]));
        assert!(!h.is_transactional());
        assert_eq!(h.last_offset(), 15);
        let offsets: Vec<_> = decode_all(&buf)
            .expect("decodes")
            .iter()
            .map(|r| r.offset)
            .collect();
        assert_eq!(offsets, vec![10, 15]);
    }

    #[test]
    fn encoded_len_matches_single_record_batch() {
        let r = rec(
            9,
            Some("key"),
            Some(&"v".repeat(300)),
            vec![Header::new("a", "b")],
        );
        let mut buf = Vec::new();
        encode_batch(&mut buf, 0, 0, std::slice::from_ref(&r), None);
        assert_eq!(buf.len(), HEADER_LEN + record_encoded_len(&r));
    }

    #[test]
    fn every_single_byte_flip_or_truncation_is_rejected_without_panicking() {
        let records = vec![
            rec(1, Some("key"), Some("value"), vec![Header::new("h", "v")]),
            rec(2, None, Some("second"), vec![]),
        ];
        let mut good = Vec::new();
        encode_batch(&mut good, 0, 0, &records, None);
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    decode_all(&bad).is_err(),
                    "flip of bit {bit} of byte {i} accepted"
                );
            }
        }
        for len in 0..good.len() {
            assert!(
                decode_all(&good[..len]).is_err(),
                "truncation to {len} accepted"
            );
        }
    }

    #[test]
    fn garbage_with_a_valid_checksum_is_rejected() {
        // A batch whose checksum is right but whose records are malformed (as a buggy writer
        // could produce) must still fail validation rather than panic or mis-decode.
        let mut buf = Vec::new();
        encode_batch(
            &mut buf,
            0,
            0,
            &[rec(1, Some("k"), Some("v"), vec![])],
            None,
        );
        for junk in [0xffu8, 0x7f, 0x01] {
            let mut bad = buf.clone();
            let at = HEADER_LEN + 2; // the key length
            bad[at] = junk;
            let crc = crc32c::crc32c(&bad[MAGIC_AT..]);
            bad[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
            assert!(
                decode_all(&bad).is_err(),
                "junk key length {junk:#x} accepted"
            );
        }
    }
}
