//! Key-to-partition routing.
//!
//! The mapping is persisted implicitly (records already sit in the partition their key hashed
//! to), so it must be identical across versions, platforms and processes: FNV-1a 64 over the
//! UTF-8 bytes, modulo the partition count. It must never use std's `DefaultHasher`, whose
//! algorithm and seed are unspecified.

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64-bit, of `bytes`.
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// Partition of `key` among `partitions` partitions. `partitions` of 0 is treated as 1 so this
/// can never divide by zero; [`crate::EmbeddedLog`] always has at least one.
pub fn partition_for(key: &str, partitions: u32) -> u32 {
    let n = u64::from(partitions.max(1));
    // The remainder is < partitions, so it always fits in u32.
    (fnv1a_64(key.as_bytes()) % n) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn partition_is_fixed_for_known_keys() {
        // Derived from the reference vectors above, so these can never drift silently.
        assert_eq!(
            partition_for("a", 7),
            (0xaf63_dc4c_8601_ec8c_u64 % 7) as u32
        );
        assert_eq!(partition_for("a", 7), 5);
        assert_eq!(partition_for("foobar", 10), 8);
        assert_eq!(partition_for("foobar", 3), 0);
        assert_eq!(partition_for("sensor-1", 4), 1);
        assert_eq!(partition_for("cpu.load", 4), 1);
        assert_eq!(partition_for("anything", 1), 0);
        assert_eq!(partition_for("anything", 0), 0);
    }

    #[test]
    fn keys_spread_over_all_partitions() {
        let partitions = 8u32;
        let mut counts = vec![0u32; partitions as usize];
        for i in 0..8_000 {
            let p = partition_for(&format!("metric-{i}"), partitions);
            counts[p as usize] += 1;
        }
        // A uniform spread puts 1000 in each; allow generous slack but no empty or hot partition.
        for (p, &c) in counts.iter().enumerate() {
            assert!(
                (700..=1300).contains(&c),
                "partition {p} got {c} of 8000 keys"
            );
        }
    }
}
