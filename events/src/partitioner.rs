//! Which partition a key belongs to: Kafka's default partitioner for keyed records (murmur2,
//! as the Java client and librdkafka's `murmur2_random` compute it).
//!
//! Every producer of commands uses that partitioner, so the processor can check that a command
//! came from the partition its key belongs to (one writer per account holds only while keys
//! stay where their history is).

/// The partition of `key` among `partitions` (which must be at least 1).
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    let positive = murmur2(key) & 0x7fff_ffff;
    (positive % partitions.max(1) as u32) as i32
}

/// The partition of an aggregate, whose Kafka key is its id in hyphenated lowercase form.
pub fn partition_of(aggregate_id: uuid::Uuid, partitions: i32) -> i32 {
    let mut buffer = uuid::Uuid::encode_buffer();
    partition_for(
        aggregate_id
            .hyphenated()
            .encode_lower(&mut buffer)
            .as_bytes(),
        partitions,
    )
}

/// MurmurHash2 (32 bit) with Kafka's seed.
fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h = SEED ^ length as u32;
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
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // the vectors of Kafka's own UtilsTest (as signed 32-bit integers)
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key.as_bytes()) as i32, expected, "{key}");
        }
    }

    #[test]
    fn partitions_are_in_range_and_follow_the_key_text() {
        let id = uuid::Uuid::from_u128(0x0193_a5c2_7d1e_7c3a_9f00_0000_0000_0001);
        let text = id.to_string();
        for partitions in [1, 4, 12, 100] {
            let p = partition_of(id, partitions);
            assert!((0..partitions).contains(&p));
            assert_eq!(p, partition_for(text.as_bytes(), partitions));
        }
    }
}
