//! Unpredictable ids and secrets (jobs, sessions, multipart boundaries, API tokens) from the
//! operating system's random source.

use std::io::Read;

/// `N` random bytes from `/dev/urandom` (the kernel's CSPRNG; it never blocks once the
/// system has booted).
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut out));
    if let Err(e) = read {
        // No random source means no safe ids: stop rather than hand out guessable ones.
        panic!("cannot read /dev/urandom: {e}");
    }
    out
}

/// 64 random bits.
pub fn bits() -> u64 {
    u64::from_ne_bytes(bytes::<8>())
}

/// A random (version 4) UUID, `8-4-4-4-12` hex digits, as MONAI Label's ids look: 122
/// random bits, none repeated.
pub fn uuid() -> String {
    let mut b = bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
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
        assert_eq!(&a[14..15], "4", "version 4: {a}");
    }
}
