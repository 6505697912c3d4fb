//! CPU kernels behind some ops when their tensor lives in host memory: nearest-exact
//! gathers (reorient, crop, resize and convert to `f32` in one pass, from any real element
//! type), a fused threshold, and quantiles by bracketed selection. Each answers what the
//! op's LibTorch path answers, bit for bit (`kernels_tests.rs`); the ops use LibTorch on
//! other devices and for layouts these do not take. The work is split over LibTorch's
//! intra-op thread count.

use std::sync::atomic::{AtomicBool, Ordering};
use tch::{Device, Kind, Tensor};

type Res<T> = Result<T, tch::TchError>;

/// Outputs below this many elements are not worth a second thread.
const PARALLEL_FROM: usize = 1 << 16;

/// Set by `serve --generic-ops`: every op takes LibTorch's path, as on a GPU.
static GENERIC: AtomicBool = AtomicBool::new(false);

/// Sends every op down LibTorch's path, the one a GPU takes, so that this path can be
/// checked on a machine without a GPU (`serve --generic-ops`).
pub(super) fn set_generic(on: bool) {
    GENERIC.store(on, Ordering::Relaxed);
}

/// Whether a tensor on `device` may take these kernels: a CPU one does, unless
/// [`set_generic`] said otherwise.
pub(super) fn on_host(device: Device) -> bool {
    device == Device::Cpu && !GENERIC.load(Ordering::Relaxed)
}

/// The elements of a contiguous CPU tensor, when its element type is `T` (`kind`).
fn elements<T>(t: &Tensor, kind: Kind) -> Option<&[T]> {
    if !on_host(t.device()) || t.kind() != kind || !t.is_contiguous() {
        return None;
    }
    let n = t.numel();
    if n == 0 {
        return Some(&[]);
    }
    // SAFETY: a contiguous CPU tensor of `kind` (whose element is `T`, checked by every
    // caller's kind/type pairing) holds `n` initialised elements from `data_ptr`, and the
    // storage lives as long as `t`, which the returned slice borrows.
    Some(unsafe { std::slice::from_raw_parts(t.data_ptr() as *const T, n) })
}

/// A new contiguous CPU tensor of `shape` and `kind` filled by `fill` over its elements.
fn filled<T>(shape: &[i64], kind: Kind, fill: impl FnOnce(&mut [T])) -> Res<Tensor> {
    let out = Tensor::f_empty(shape, (kind, Device::Cpu))?;
    let n = out.numel();
    if n > 0 {
        // SAFETY: `out` was just made contiguous with `n` elements of `kind` (`T` at every
        // call site) and no other handle on its storage exists while `fill` writes it.
        let slice = unsafe { std::slice::from_raw_parts_mut(out.data_ptr() as *mut T, n) };
        fill(slice);
    }
    Ok(out)
}

fn threads(work: usize) -> usize {
    if work < PARALLEL_FROM {
        1
    } else {
        usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1)
    }
}

/// Splits `out` into about `parts` runs of whole `unit`s and runs `f(first unit, run)` on
/// each, in parallel.
fn split<T: Send>(out: &mut [T], unit: usize, parts: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let units = out.len() / unit.max(1);
    let per = units.div_ceil(parts.max(1)).max(1);
    if parts <= 1 || units <= 1 {
        f(0, out);
        return;
    }
    std::thread::scope(|s| {
        for (i, chunk) in out.chunks_mut(per * unit).enumerate() {
            let f = &f;
            s.spawn(move || f(i * per, chunk));
        }
    });
}

/// Runs `f(first unit, run)` on about `parts` runs of whole `unit`s of `src`, in parallel;
/// their answers in order (a panic in one is raised here, never a run left out).
fn map_chunks<T: Sync, R: Send>(
    src: &[T],
    unit: usize,
    parts: usize,
    f: impl Fn(usize, &[T]) -> R + Sync,
) -> Vec<R> {
    let units = src.len() / unit.max(1);
    let per = units.div_ceil(parts.max(1)).max(1);
    if parts <= 1 || units <= 1 {
        return vec![f(0, src)];
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = src
            .chunks(per * unit)
            .enumerate()
            .map(|(i, chunk)| {
                let f = &f;
                s.spawn(move || f(i * per, chunk))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// The source indices LibTorch's nearest-exact resize reads along one axis of `from`
/// voxels resized to `to` (asked of LibTorch's own 3-D kernel, so they agree on every
/// version).
pub(super) fn nearest_exact(from: i64, to: i64) -> Res<Vec<i64>> {
    if from == to {
        return Ok((0..from).collect());
    }
    let ramp = Tensor::f_arange(from, (Kind::Float, Device::Cpu))?.f_reshape([1, 1, from, 1, 1])?;
    let idx = ramp.f_internal_upsample_nearest_exact3d([to, 1, 1], None, None, None)?;
    let v = Vec::<f32>::try_from(idx.f_flatten(0, -1)?)?;
    Ok(v.into_iter().map(|i| i as i64).collect())
}

/// What a gather reads: per output axis, the element offsets into the input.
pub(super) struct Plan {
    pub(super) offsets: [Vec<usize>; 3],
}

impl Plan {
    fn shape(&self) -> [i64; 3] {
        self.offsets.clone().map(|o| o.len() as i64)
    }
}

/// `out[o0, o1, o2] = f(src[off0[o0] + off1[o1] + off2[o2]])`, split by planes over the
/// threads. Rows that read the source in order go one by one ([`gather_rows`]); rows that
/// stride through it (a volume stored in another axis order) go in tiles ([`gather_tiles`]).
fn gather<T: Copy + Sync, O: Copy + Send>(
    src: &[T],
    plan: &Plan,
    out: &mut [O],
    f: impl Fn(T) -> O + Sync,
) {
    let [o0, o1, o2] = &plan.offsets;
    let plane = o1.len() * o2.len();
    let in_order = o2.windows(2).all(|w| w[1] >= w[0] && w[1] - w[0] <= 1);
    split(out, plane, threads(o0.len() * plane), |first, chunk| {
        let offsets = [&o0[first..], &o1[..], &o2[..]];
        if in_order {
            gather_rows(src, offsets, chunk, &f);
        } else {
            gather_tiles(src, offsets, chunk, &f);
        }
    });
}

/// [`gather`] of the planes `out` holds, row by row: upsampling repeats planes and rows
/// (copied), and source voxels within a row (each converted once, then copied out).
fn gather_rows<T: Copy, O: Copy>(
    src: &[T],
    [o0, o1, o2]: [&[usize]; 3],
    out: &mut [O],
    f: &impl Fn(T) -> O,
) {
    let row = o2.len();
    let plane = row * o1.len();
    let (first, span) = (
        o2.first().copied().unwrap_or(0),
        o2.last().map_or(0, |l| l + 1),
    );
    let convert_once = span.saturating_sub(first) < row;
    let mut values: Vec<O> = Vec::with_capacity(span.saturating_sub(first));
    for (p, &plane_offset) in o0.iter().enumerate().take(out.len() / plane.max(1)) {
        let at = p * plane;
        if p > 0 && plane_offset == o0[p - 1] {
            out.copy_within(at - plane..at, at);
            continue;
        }
        for (r, &row_offset) in o1.iter().enumerate() {
            let (base, start) = (plane_offset + row_offset, at + r * row);
            let dst = start..start + row;
            if r > 0 && row_offset == o1[r - 1] {
                out.copy_within(start - row..start, start);
            } else if convert_once {
                values.clear();
                values.extend(src[base + first..base + span].iter().map(|&v| f(v)));
                for (d, &k) in out[dst].iter_mut().zip(o2) {
                    *d = values[k - first];
                }
            } else {
                for (d, &k) in out[dst].iter_mut().zip(o2) {
                    *d = f(src[base + k]);
                }
            }
        }
    }
}

/// [`gather`] of the planes `out` holds in 32³ tiles, so each source cache line is read
/// once for all the voxels it serves.
fn gather_tiles<T: Copy, O: Copy>(
    src: &[T],
    [o0, o1, o2]: [&[usize]; 3],
    out: &mut [O],
    f: &impl Fn(T) -> O,
) {
    const TILE: usize = 32;
    let row = o2.len();
    let plane = row * o1.len();
    let o0 = &o0[..out.len() / plane.max(1)];
    for (t0, planes) in o0.chunks(TILE).enumerate() {
        for (t1, rows) in o1.chunks(TILE).enumerate() {
            for (t2, cols) in o2.chunks(TILE).enumerate() {
                for (p, &plane_offset) in planes.iter().enumerate() {
                    for (r, &row_offset) in rows.iter().enumerate() {
                        let base = plane_offset + row_offset;
                        let at = (t0 * TILE + p) * plane + (t1 * TILE + r) * row + t2 * TILE;
                        for (d, &k) in out[at..at + cols.len()].iter_mut().zip(cols) {
                            *d = f(src[base + k]);
                        }
                    }
                }
            }
        }
    }
}

/// `f32` of a value with NaN as 0 and infinities as the largest finite values (LibTorch's
/// `nan_to_num` defaults), or as it is.
fn finite(v: f32, nan_to_num: bool) -> f32 {
    if !nan_to_num || v.is_finite() {
        v
    } else if v.is_nan() {
        0.0
    } else if v > 0.0 {
        f32::MAX
    } else {
        f32::MIN
    }
}

/// Gathers `x` (contiguous on the CPU, any real element type but half precisions) by
/// `plan` into a new `f32` tensor of the plan's shape, each value through `map` after the
/// conversion (and [`finite`] when `nan_to_num`); `None` where this kernel does not apply.
pub(super) fn gather_f32(
    x: &Tensor,
    plan: &Plan,
    nan_to_num: bool,
    map: impl Fn(f32) -> f32 + Sync,
) -> Res<Option<Tensor>> {
    gather_as(x, plan, nan_to_num, map, Out::F32)
}

/// What a gather writes: `f32`, a half precision rounded from it to nearest even as
/// LibTorch's conversions round, or `u8` of whether it is above a threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Out {
    F32,
    Bf16,
    F16,
    Above(f32),
}

/// [`gather_f32`] writing `out`'s element type.
pub(super) fn gather_as(
    x: &Tensor,
    plan: &Plan,
    nan_to_num: bool,
    map: impl Fn(f32) -> f32 + Sync,
    out: Out,
) -> Res<Option<Tensor>> {
    match out {
        Out::F32 => gather_into(x, plan, nan_to_num, &map, Kind::Float, |v| v),
        Out::Bf16 => gather_into(x, plan, nan_to_num, &map, Kind::BFloat16, bf16_bits),
        Out::F16 => gather_into(x, plan, nan_to_num, &map, Kind::Half, |v| {
            half::f16::from_f32(v).to_bits()
        }),
        Out::Above(t) => gather_into(x, plan, nan_to_num, &map, Kind::Uint8, |v| u8::from(v > t)),
    }
}

/// `v` rounded to the nearest `bfloat16`, ties to even (LibTorch's rounding; NaN as its
/// canonical quiet NaN).
fn bf16_bits(v: f32) -> u16 {
    if v.is_nan() {
        return 0x7FC0;
    }
    let b = v.to_bits();
    ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// The gather into a new tensor of `kind`, whose elements `to` makes from each value.
fn gather_into<O: Copy + Send + Sync>(
    x: &Tensor,
    plan: &Plan,
    nan_to_num: bool,
    map: &(impl Fn(f32) -> f32 + Sync),
    kind: Kind,
    to: impl Fn(f32) -> O + Sync,
) -> Res<Option<Tensor>> {
    let value = |v: f32| to(map(finite(v, nan_to_num)));
    let shape = plan.shape();
    // Small integer types go through a table of every value's result.
    macro_rules! by_table {
        ($t:ty, $kind:ident, $bits:ty) => {
            elements::<$t>(x, Kind::$kind).map(|src| {
                let table: Vec<O> = (0..=<$bits>::MAX)
                    .map(|b| value(<$t>::from_ne_bytes(b.to_ne_bytes()) as f32))
                    .collect();
                filled(&shape, kind, |out| {
                    gather(src, plan, out, |v| {
                        table[<$bits>::from_ne_bytes(v.to_ne_bytes()) as usize]
                    })
                })
            })
        };
    }
    macro_rules! direct {
        ($t:ty, $kind:ident) => {
            elements::<$t>(x, Kind::$kind).map(|src| {
                filled(&shape, kind, |out| {
                    gather(src, plan, out, |v| value(v as f32))
                })
            })
        };
    }
    let made = match x.kind() {
        Kind::Uint8 => by_table!(u8, Uint8, u8),
        Kind::Int8 => by_table!(i8, Int8, u8),
        Kind::Int16 => by_table!(i16, Int16, u16),
        Kind::Int => direct!(i32, Int),
        Kind::Int64 => direct!(i64, Int64),
        Kind::Float => direct!(f32, Float),
        Kind::Double => direct!(f64, Double),
        _ => None,
    };
    made.transpose()
}

/// Mean and standard deviation over a contiguous 3-D volume whose axes have the lengths
/// of `weights`, voxel `(i, j, k)` counted `w0[i] * w1[j] * w2[k]` times (how often a
/// nearest resize repeats it): the statistics of the resized volume without making it.
/// Rows sum in `f32`, the rest in `f64`.
pub(super) fn repeated_mean_std(
    src: &[f32],
    weights: &[Vec<f32>; 3],
    unbiased: bool,
) -> (f64, f64) {
    let [w0, w1, w2] = weights;
    let (rows, row) = (w1.len(), w2.len());
    let plane = rows * row;
    let sums = map_chunks(src, plane, threads(src.len()), |first, chunk| {
        let (mut sum, mut squares) = (0f64, 0f64);
        for (p, voxels) in chunk.chunks(plane).enumerate() {
            let (mut plane_sum, mut plane_squares) = (0f64, 0f64);
            for (j, r) in voxels.chunks(row).enumerate() {
                let (mut a, mut b) = (0f32, 0f32);
                for (&v, &w) in r.iter().zip(w2) {
                    a += w * v;
                    b += w * v * v;
                }
                plane_sum += f64::from(w1[j]) * f64::from(a);
                plane_squares += f64::from(w1[j]) * f64::from(b);
            }
            let w = f64::from(w0[first + p]);
            sum += w * plane_sum;
            squares += w * plane_squares;
        }
        (sum, squares)
    });
    let total = |w: &Vec<f32>| w.iter().map(|&v| f64::from(v)).sum::<f64>();
    let n = total(w0) * total(w1) * total(w2);
    let (sum, squares) = sums
        .iter()
        .fold((0.0, 0.0), |(a, b), (s, q)| (a + s, b + q));
    let mean = sum / n.max(1.0);
    let dof = if unbiased { n - 1.0 } else { n };
    let var = ((squares - n * mean * mean) / dof.max(1.0)).max(0.0);
    (mean, var.sqrt())
}

/// `x > value` as `u8` in one pass over a contiguous CPU `f32` tensor (LibTorch compares
/// in `f32`, then converts the bools); `None` for anything else.
pub(super) fn threshold(x: &Tensor, value: f64) -> Res<Option<Tensor>> {
    let Some(src) = elements::<f32>(x, Kind::Float) else {
        return Ok(None);
    };
    let v = value as f32;
    filled(&x.size(), Kind::Uint8, |out: &mut [u8]| {
        split(out, 1, threads(src.len()), |first, chunk| {
            for (d, &s) in chunk.iter_mut().zip(&src[first..]) {
                *d = u8::from(s > v);
            }
        })
    })
    .map(Some)
}

/// The elements of a contiguous CPU `f32` tensor, for selection (`None` otherwise).
pub(super) fn f32_elements(x: &Tensor) -> Option<&[f32]> {
    elements::<f32>(x, Kind::Float)
}

/// Per `(lo, hi)` pair of ranks (`hi` is `lo` or `lo + 1`), the `lo`-th and `hi`-th
/// smallest of `values`; `None` when any value is NaN. One parallel pass counts, for each
/// pair, the values below and equal to two pivots taken from a pseudo-random sample and keeps
/// those between, and the ranks are found among these (ties at a pivot, like a volume's
/// background, cost nothing); a rank outside its bracket falls back to a selection over a
/// copy of all. O(n), one pass and no copy in the usual case.
pub(super) fn order_statistics(
    values: &[f32],
    ranks: &[(usize, usize)],
) -> Option<Vec<(f32, f32)>> {
    let n = values.len();
    const SAMPLE: usize = 4096;
    let mut brackets: Vec<Bracket> = Vec::new();
    if n > 8 * SAMPLE {
        let step = n / SAMPLE;
        // Spread by a fixed pseudo-random walk: a plain stride can fall on a volume's rows
        // (128³ with a stride of 512 samples only its first column, all background).
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut sample: Vec<f32> = (0..SAMPLE)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                values[(state % n as u64) as usize]
            })
            .collect();
        sample.sort_unstable_by(f32::total_cmp);
        let s = sample.len();
        // Ranks scaled to the sample, widened by six standard deviations of a sampled rank.
        let at = |rank: usize| rank * s / n;
        brackets = ranks
            .iter()
            .map(|&(lo, hi)| {
                let p = lo as f64 / n as f64;
                let margin = (6.0 * (s as f64 * p * (1.0 - p)).sqrt()) as usize + 4;
                let low = at(lo).checked_sub(margin).map(|i| sample[i]);
                let high = sample.get(at(hi) + margin).copied();
                Bracket::new(low, high, 3 * margin * step)
            })
            .collect();
    }
    let counted = map_chunks(values, 1, threads(n), |_, chunk| {
        let mut mine: Vec<Bracket> = brackets.iter().map(Bracket::empty_like).collect();
        let mut nan = false;
        // Blocks small enough to stay in cache while each bracket reads them.
        for block in chunk.chunks(4096) {
            nan |= block.iter().fold(false, |a, v| a | v.is_nan());
            for b in &mut mine {
                b.add_all(block);
            }
        }
        (nan, mine)
    });
    if counted.iter().any(|(nan, _)| *nan) {
        return None;
    }
    for (_, part) in counted {
        for (b, p) in brackets.iter_mut().zip(part) {
            b.merge(p);
        }
    }
    let mut all: Option<Vec<f32>> = None;
    let answers = ranks.iter().enumerate().map(|(i, &(lo, hi))| {
        let found = brackets
            .get_mut(i)
            .and_then(|b| Some((b.rank(lo)?, b.rank(hi)?)));
        found.unwrap_or_else(|| select(all.get_or_insert_with(|| values.to_vec()), lo, hi))
    });
    Some(answers.collect())
}

/// One pass's counts around two pivots: values below `low`, equal to it, kept strictly
/// between the two, equal to `high` (a missing pivot is an open end, ±inf standing in).
struct Bracket {
    low: f32,
    high: f32,
    open: (bool, bool),
    below: usize,
    at_low: usize,
    at_high: usize,
    kept: Vec<f32>,
}

impl Bracket {
    fn new(low: Option<f32>, high: Option<f32>, room: usize) -> Bracket {
        Bracket {
            low: low.unwrap_or(f32::NEG_INFINITY),
            high: high.unwrap_or(f32::INFINITY),
            open: (low.is_none(), high.is_none()),
            below: 0,
            at_low: 0,
            at_high: 0,
            kept: Vec::with_capacity(room),
        }
    }

    fn empty_like(&self) -> Bracket {
        let end = |open: bool, v: f32| (!open).then_some(v);
        let room = self.kept.capacity() / 2;
        Bracket::new(
            end(self.open.0, self.low),
            end(self.open.1, self.high),
            room,
        )
    }

    /// Counts a block. An open end's stand-in may equal a value (±inf): counted there, a
    /// rank among them is not answered from the bracket (`rank`) but by the fallback.
    fn add_all(&mut self, block: &[f32]) {
        let (low, high) = (self.low, self.high);
        let (mut below, mut at_low, mut at_high) = (0usize, 0usize, 0usize);
        for &v in block {
            below += usize::from(v < low);
            at_low += usize::from(v == low);
            at_high += usize::from(v == high && v != low);
        }
        self.kept
            .extend(block.iter().filter(|&&v| v > low && v < high));
        self.below += below;
        self.at_low += at_low;
        self.at_high += at_high;
    }

    fn merge(&mut self, other: Bracket) {
        self.below += other.below;
        self.at_low += other.at_low;
        self.at_high += other.at_high;
        self.kept.extend(other.kept);
    }

    /// The `k`-th smallest of all, when the bracket holds it.
    fn rank(&mut self, k: usize) -> Option<f32> {
        let k = k.checked_sub(self.below)?;
        if k < self.at_low {
            return (!self.open.0).then_some(self.low);
        }
        let k = k - self.at_low;
        if k < self.kept.len() {
            let (_, &mut v, _) = self.kept.select_nth_unstable_by(k, f32::total_cmp);
            return Some(v);
        }
        (k - self.kept.len() < self.at_high && !self.open.1).then_some(self.high)
    }
}

/// The `lo`-th and `hi`-th smallest (`hi` is `lo` or `lo + 1`) by selection in place.
fn select(values: &mut [f32], lo: usize, hi: usize) -> (f32, f32) {
    let (_, &mut a, above) = values.select_nth_unstable_by(lo, f32::total_cmp);
    let b = if hi == lo {
        a
    } else {
        above.iter().copied().fold(f32::INFINITY, f32::min)
    };
    (a, b)
}
