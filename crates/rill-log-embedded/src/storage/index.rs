//! The sparse segment index: one 16-byte entry every `index_interval_bytes` of segment, each
//! pointing at a batch start. It serves both offset and timestamp lookups.
//!
//! Entry (little-endian): relative offset `u32` (batch base offset minus segment base), file
//! position `u32`, and `i64` the largest record timestamp in the segment *before* that position
//! (`i64::MIN` if none). That last field is non-decreasing along the index, so a timestamp search
//! can skip every batch before the last entry whose value is below the target.

pub(crate) const ENTRY_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub rel_offset: u32,
    pub position: u32,
    pub max_ts_before: i64,
}

impl IndexEntry {
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut b = [0u8; ENTRY_LEN];
        b[0..4].copy_from_slice(&self.rel_offset.to_le_bytes());
        b[4..8].copy_from_slice(&self.position.to_le_bytes());
        b[8..16].copy_from_slice(&self.max_ts_before.to_le_bytes());
        b
    }

    fn decode(b: &[u8; ENTRY_LEN]) -> IndexEntry {
        let [r0, r1, r2, r3, p0, p1, p2, p3, t @ ..] = *b;
        IndexEntry {
            rel_offset: u32::from_le_bytes([r0, r1, r2, r3]),
            position: u32::from_le_bytes([p0, p1, p2, p3]),
            max_ts_before: i64::from_le_bytes(t),
        }
    }
}

/// Decodes an index file's contents, checking that entries are strictly increasing in offset
/// and position, non-decreasing in timestamp, and point inside a segment of `segment_len`
/// bytes. `None` when the file is not a plausible index for that segment (it is then rebuilt).
pub(crate) fn decode_entries(bytes: &[u8], segment_len: u64) -> Option<Vec<IndexEntry>> {
    if !bytes.len().is_multiple_of(ENTRY_LEN) {
        return None;
    }
    let mut entries = Vec::with_capacity(bytes.len() / ENTRY_LEN);
    let mut prev: Option<IndexEntry> = None;
    for chunk in bytes.chunks_exact(ENTRY_LEN) {
        let mut b = [0u8; ENTRY_LEN];
        b.copy_from_slice(chunk);
        let e = IndexEntry::decode(&b);
        if u64::from(e.position) >= segment_len {
            return None;
        }
        if let Some(p) = prev
            && (e.rel_offset <= p.rel_offset
                || e.position <= p.position
                || e.max_ts_before < p.max_ts_before)
        {
            return None;
        }
        prev = Some(e);
        entries.push(e);
    }
    Some(entries)
}

/// Position of the last indexed batch whose base offset is at or below `rel_offset` (0 if none).
pub(crate) fn position_for_offset(entries: &[IndexEntry], rel_offset: u32) -> u32 {
    let n = entries.partition_point(|e| e.rel_offset <= rel_offset);
    n.checked_sub(1).map_or(0, |i| entries[i].position)
}

/// Position from which a search for the first record with timestamp >= `ts` must start: every
/// record before it is older than `ts`.
pub(crate) fn position_for_timestamp(entries: &[IndexEntry], ts: i64) -> u32 {
    let n = entries.partition_point(|e| e.max_ts_before < ts);
    n.checked_sub(1).map_or(0, |i| entries[i].position)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(rel_offset: u32, position: u32, max_ts_before: i64) -> IndexEntry {
        IndexEntry {
            rel_offset,
            position,
            max_ts_before,
        }
    }

    #[test]
    fn encodes_and_looks_up() {
        let entries = vec![e(10, 4096, 100), e(20, 8192, 100), e(35, 12300, 250)];
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
        assert_eq!(decode_entries(&bytes, 20_000), Some(entries.clone()));
        assert_eq!(position_for_offset(&entries, 0), 0);
        assert_eq!(position_for_offset(&entries, 9), 0);
        assert_eq!(position_for_offset(&entries, 10), 4096);
        assert_eq!(position_for_offset(&entries, 34), 8192);
        assert_eq!(position_for_offset(&entries, 1000), 12300);
        assert_eq!(position_for_timestamp(&entries, 50), 0);
        assert_eq!(position_for_timestamp(&entries, 100), 0);
        assert_eq!(position_for_timestamp(&entries, 101), 8192);
        assert_eq!(position_for_timestamp(&entries, 251), 12300);
    }

    #[test]
    fn rejects_implausible_indexes() {
        let enc = |v: &[IndexEntry]| -> Vec<u8> { v.iter().flat_map(|e| e.encode()).collect() };
        assert!(decode_entries(&[0u8; 15], 100).is_none());
        assert!(decode_entries(&enc(&[e(1, 200, 0)]), 100).is_none());
        assert!(decode_entries(&enc(&[e(5, 10, 0), e(5, 20, 0)]), 100).is_none());
        assert!(decode_entries(&enc(&[e(5, 10, 0), e(6, 10, 0)]), 100).is_none());
        assert!(decode_entries(&enc(&[e(5, 10, 9), e(6, 20, 8)]), 100).is_none());
        assert_eq!(decode_entries(&[], 0), Some(vec![]));
    }
}
