//! Unpredictable ids for jobs, sessions and multipart boundaries, from the standard
//! library's per-process random hash keys (no extra crate).

use std::hash::{BuildHasher, Hasher};

/// 64 random bits.
pub fn bits() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// A UUID-shaped random id (`8-4-4-4-12` hex digits), as MONAI Label's ids look.
pub fn uuid() -> String {
    let (a, b) = (bits(), bits());
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        a & 0xffff,
        b >> 48,
        (b >> 32) & 0xffff,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_uuid_shaped_and_differ() {
        let (a, b) = (super::uuid(), super::uuid());
        assert_ne!(a, b);
        assert_eq!(
            a.split('-').map(str::len).collect::<Vec<_>>(),
            vec![8, 4, 4, 4, 12]
        );
    }
}
