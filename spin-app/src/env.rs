//! The guest's clock and entropy: the only places the app reads them, passed
//! into `dock-core` as arguments.

use dock_core::Timestamp;

/// Wall-clock now.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Timestamp::from_millis(ms)
}

/// `N` bytes from the host's cryptographically secure RNG (`wasi:random`).
pub fn entropy<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let mut filled = 0;
    while filled < N {
        let bytes = spin_sdk::wasip3::random::random::get_random_bytes((N - filled) as u64);
        let n = bytes.len().min(N - filled);
        out[filled..filled + n].copy_from_slice(&bytes[..n]);
        filled += n;
    }
    out
}
