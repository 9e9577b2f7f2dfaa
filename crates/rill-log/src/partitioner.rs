//! Kafka's default partitioner, bit for bit, so a key lands on the same partition whichever
//! backend (or Java / Python client of the same cluster) writes it.

/// MurmurHash2 (32-bit) exactly as `org.apache.kafka.common.utils.Utils.murmur2` computes it,
/// seed `0x9747b28c`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let length = data.len() as u32;
    let mut h: u32 = SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    // Kafka's switch falls through from case 3 to case 1.
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on `i32::MIN`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's default partitioner picks for a keyed record:
/// `toPositive(murmur2(key)) % partitions`.
///
/// # Panics
/// Never; a partition count below 1 is treated as 1 (callers validate topic configs).
///
/// ```
/// assert_eq!(rill_log::partition_for_key(b"order-1", 1), 0);
/// ```
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    to_positive(murmur2(key)) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values from Kafka's own UtilsTest.testMurmur2 (clients module).
    #[test]
    fn murmur2_matches_kafka_utils_test_vectors() {
        let cases: [(&str, i32); 6] = [
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), expected, "murmur2({input:?})");
        }
    }

    // Generated with the JVM client (Kafka 1.0), as recorded in sarama's partitioner tests.
    #[test]
    fn murmur2_matches_jvm_for_binary_keys() {
        assert_eq!(murmur2(&[12, 42, 56, 24, 109, 111]), 274204207);
    }

    // toPositive(murmur2) of "21", "foobar" and "a-little-bit-longer-string" is 1173551340,
    // 1357151166 and 661178819; the partitions below are those numbers modulo the count.
    #[test]
    fn partition_is_positive_hash_modulo_count() {
        assert_eq!(partition_for_key(b"21", 7), 1173551340 % 7);
        assert_eq!(partition_for_key(b"foobar", 12), 6);
        assert_eq!(
            partition_for_key(b"a-little-bit-longer-string", 7),
            661178819 % 7
        );
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), i32::MAX);
    }
}
