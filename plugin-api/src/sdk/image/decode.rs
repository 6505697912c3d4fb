//! Raw voxel bytes to `f32`, scaled as nibabel's `get_fdata` scales them: each value goes to
//! `f64`, is multiplied by the slope and shifted by the intercept in `f64`, then rounded
//! once to `f32` (so a value equals nibabel's float64 one rounded to float32).

use super::header::DataType;

fn bytes<const N: usize>(chunk: &[u8]) -> [u8; N] {
    let mut b = [0; N];
    b.copy_from_slice(chunk);
    b
}

macro_rules! values {
    ($raw:expr, $t:ty, $big:expr, $scale:expr) => {{
        const N: usize = std::mem::size_of::<$t>();
        $raw.chunks_exact(N)
            .map(|c| {
                let v = if $big {
                    <$t>::from_be_bytes(bytes::<N>(c))
                } else {
                    <$t>::from_le_bytes(bytes::<N>(c))
                };
                $scale(v as f64)
            })
            .collect()
    }};
}

/// Decodes `raw` (whole values of `datatype`, as the header's checks guarantee) in file
/// order. Only the datatypes the header check lets through reach here; any other gives an
/// empty vector.
pub(super) fn decode(
    raw: &[u8],
    datatype: DataType,
    big_endian: bool,
    scaling: Option<(f64, f64)>,
) -> Vec<f32> {
    let (slope, inter) = scaling.unwrap_or((1.0, 0.0));
    let scale = |v: f64| (v * slope + inter) as f32;
    let big = big_endian;
    match datatype.name {
        "uint8" => values!(raw, u8, big, scale),
        "int8" => values!(raw, i8, big, scale),
        "int16" => values!(raw, i16, big, scale),
        "uint16" => values!(raw, u16, big, scale),
        "int32" => values!(raw, i32, big, scale),
        "uint32" => values!(raw, u32, big, scale),
        "int64" => values!(raw, i64, big, scale),
        "uint64" => values!(raw, u64, big, scale),
        "float32" => values!(raw, f32, big, scale),
        "float64" => values!(raw, f64, big, scale),
        _ => Vec::new(),
    }
}
