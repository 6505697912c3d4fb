//! MONAI's `Orientation(axcodes="RAS")`: permute and flip voxel axes to the closest
//! canonical (RAS+) orientation of an affine, and back (for `Restore`).

use crate::ops::{Crop, Float, Interpolate, Orient, Resample, ResizeMode, ScaleIntensityRange};
use crate::sdk::{image::Voxels, Error, Executor, Result, Tensor};
use ndarray::{ArrayD, Axis};

/// How the voxel axes of a volume relate to RAS+.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Orientation {
    /// For each RAS axis (R, A, S), the voxel axis that runs along it.
    pub source_axis: [usize; 3],
    /// Whether that voxel axis runs the opposite way (L, P or I).
    pub flipped: [bool; 3],
}

impl Orientation {
    /// The closest canonical orientation of an affine, as nibabel's `io_orientation`
    /// assigns it: repeatedly take the largest remaining |direction cosine|.
    pub fn from_affine(affine: &[[f64; 4]; 4]) -> Self {
        let mut cos = [[0.0f64; 3]; 3];
        for col in 0..3 {
            let norm = (0..3)
                .map(|r| affine[r][col].powi(2))
                .sum::<f64>()
                .sqrt()
                .max(1e-12);
            for row in 0..3 {
                cos[row][col] = affine[row][col] / norm;
            }
        }
        let (mut source_axis, mut flipped) = ([0usize; 3], [false; 3]);
        let (mut rows, mut cols) = ([false; 3], [false; 3]);
        for _ in 0..3 {
            let mut best = (0, 0, -1.0);
            for (r, row) in cos.iter().enumerate() {
                for (c, v) in row.iter().enumerate() {
                    if !rows[r] && !cols[c] && v.abs() > best.2 {
                        best = (r, c, v.abs());
                    }
                }
            }
            let (r, c, _) = best;
            source_axis[r] = c;
            flipped[r] = cos[r][c] < 0.0;
            rows[r] = true;
            cols[c] = true;
        }
        Orientation {
            source_axis,
            flipped,
        }
    }

    /// The voxel axis codes (`"LPS"`, `"RAS"`...): which way each voxel axis runs.
    pub fn codes(&self) -> String {
        let mut out = ['?'; 3];
        for (world, &axis) in self.source_axis.iter().enumerate() {
            let (pos, neg) = [('R', 'L'), ('A', 'P'), ('S', 'I')][world];
            out[axis] = if self.flipped[world] { neg } else { pos };
        }
        out.iter().collect()
    }

    fn permutation(&self, ndim: usize) -> Vec<usize> {
        let mut p: Vec<usize> = self.source_axis.to_vec();
        p.extend(3..ndim);
        p
    }

    /// Reorders the first three axes of `x` to RAS+.
    pub fn to_ras<T: Clone>(&self, x: &ArrayD<T>) -> ArrayD<T> {
        let mut v = x.view().permuted_axes(self.permutation(x.ndim()));
        for (axis, &flip) in self.flipped.iter().enumerate() {
            if flip {
                v.invert_axis(Axis(axis));
            }
        }
        v.as_standard_layout().into_owned()
    }

    /// Whether the voxel axes already are RAS+ (reordering would be a copy for nothing).
    pub fn is_ras(&self) -> bool {
        self.source_axis == [0, 1, 2] && self.flipped == [false; 3]
    }

    /// [`Orientation::to_ras`] taking ownership: no copy when the axes already are RAS+.
    pub fn into_ras<T: Clone>(&self, x: ArrayD<T>) -> ArrayD<T> {
        if self.is_ras() && x.is_standard_layout() {
            x
        } else {
            self.to_ras(&x)
        }
    }

    /// The executor's `orient` arguments (`permute`, `flip`) that make RAS+ out of a volume
    /// uploaded in its memory order: C order (`reversed` false, the tensor's dims are the
    /// volume's) or Fortran order as NIfTI stores voxels (`reversed`, the tensor's dims
    /// are the volume's backwards).
    pub fn orient_args(&self, reversed: bool) -> (Vec<i64>, Vec<i64>) {
        let tensor_axis = |a: usize| if reversed { 2 - a } else { a } as i64;
        let permute = self.source_axis.iter().map(|&a| tensor_axis(a)).collect();
        let flip = (0..3)
            .filter(|&r| self.flipped[r])
            .map(|r| r as i64)
            .collect();
        (permute, flip)
    }

    /// [`Orientation::to_ras`] on the executor's device: the 3-D volume `x` goes up in its
    /// memory order (one copy), and the device reorders it into a C-ordered RAS+ tensor
    /// with NaN set to 0 (MONAI's `Orientation` then `nan_to_num`) in one pass.
    pub fn upload(&self, exec: &Executor, x: &ArrayD<f32>, device: &str) -> Result<Tensor> {
        let (t, reversed) = send_f32(exec, x, device)?;
        self.stored(t, reversed, x.shape())?.whole(exec)
    }

    /// [`Orientation::upload`] for what [`crate::sdk::image::read_voxels`] read: stored
    /// bytes go up as they are (one copy of the file's values, not of their `f32`s) and
    /// become `f32` in the same pass on the device that reorders them.
    pub fn upload_voxels(&self, exec: &Executor, x: Voxels, device: &str) -> Result<Tensor> {
        self.upload_stored(exec, x, device)?.whole(exec)
    }

    /// The volume on the executor as read (its file's memory order and element type),
    /// with what makes it RAS+: crops and resizes of its RAS+ view then come from it in one
    /// pass each ([`Stored::resample`]), and the whole reoriented volume is never made.
    pub fn upload_stored(&self, exec: &Executor, x: Voxels, device: &str) -> Result<Stored> {
        let (tensor, reversed, shape) = match x {
            Voxels::Raw {
                bytes,
                dtype,
                shape,
            } => {
                let dims: Vec<i64> = shape.iter().rev().map(|&d| d as i64).collect();
                (exec.tensor(dtype, &dims, bytes, device)?, true, shape)
            }
            Voxels::Decoded(a) => {
                let (t, reversed) = send_f32(exec, &a, device)?;
                (t, reversed, a.shape().to_vec())
            }
        };
        self.stored(tensor, reversed, &shape)
    }

    /// A volume sent up in its file's order (`reversed`: its dims backwards, as NIfTI's
    /// Fortran order gives them) as [`Stored`], its `shape` the file's `[i, j, k]`.
    fn stored(&self, tensor: Tensor, reversed: bool, shape: &[usize]) -> Result<Stored> {
        let (permute, flip) = self.orient_args(reversed);
        let three = || Error::invalid_input("expected a 3-D volume");
        let shape = <[usize; 3]>::try_from(shape).map_err(|_| three())?;
        Ok(Stored {
            tensor,
            permute: <[i64; 3]>::try_from(permute.as_slice()).map_err(|_| three())?,
            flip,
            shape: self.source_axis.map(|a| shape[a]),
        })
    }

    /// The volume of `shape` (the file's `[i, j, k]`) that is `T::default()` (zero) but for `part`, a box
    /// of its RAS+ view at `start`: [`Orientation::from_ras`] of a pasted box without
    /// making the whole RAS+ volume. Fortran layout, as NIfTI stores voxels, so a writer
    /// takes it without reordering.
    pub fn paste_from_ras<T: Clone + Default>(
        &self,
        part: &ArrayD<T>,
        start: [usize; 3],
        shape: &[usize],
    ) -> Result<ArrayD<T>> {
        if shape.len() != 3 || part.ndim() != 3 {
            return Err(Error::invalid_input("paste_from_ras takes 3-D volumes"));
        }
        let mut out = ArrayD::<T>::from_elem(
            ndarray::ShapeBuilder::f(ndarray::IxDyn(shape)),
            T::default(),
        );
        let mut ras = out.view_mut().permuted_axes(self.permutation(3));
        for (axis, &flip) in self.flipped.iter().enumerate() {
            if flip {
                ras.invert_axis(Axis(axis));
            }
        }
        let end: Vec<usize> = (0..3).map(|i| start[i] + part.shape()[i]).collect();
        if (0..3).any(|i| end[i] > ras.shape()[i]) {
            return Err(Error::invalid_input(format!(
                "a box of {:?} at {start:?} does not fit in {:?}",
                part.shape(),
                ras.shape()
            )));
        }
        ras.slice_mut(ndarray::s![
            start[0]..end[0],
            start[1]..end[1],
            start[2]..end[2]
        ])
        .assign(part);
        Ok(out)
    }

    /// Undoes [`Orientation::to_ras`].
    pub fn from_ras<T: Clone>(&self, x: &ArrayD<T>) -> ArrayD<T> {
        let mut v = x.view();
        for (axis, &flip) in self.flipped.iter().enumerate() {
            if flip {
                v.invert_axis(Axis(axis));
            }
        }
        let forward = self.permutation(x.ndim());
        let mut inverse = vec![0; forward.len()];
        for (i, &f) in forward.iter().enumerate() {
            inverse[f] = i;
        }
        v.permuted_axes(inverse).as_standard_layout().into_owned()
    }
}

/// A 3-D `f32` volume sent to the executor in its memory order (a copy only when it is in
/// neither C nor Fortran order): the tensor, and whether its dims are the volume's
/// reversed (Fortran order, as NIfTI stores voxels).
fn send_f32(exec: &Executor, x: &ArrayD<f32>, device: &str) -> Result<(Tensor, bool)> {
    if x.ndim() != 3 {
        return Err(Error::invalid_input(format!(
            "expected a 3-D volume, got {} dims",
            x.ndim()
        )));
    }
    let reversed = !x.is_standard_layout() && x.t().is_standard_layout();
    let standard;
    let x = if x.is_standard_layout() || reversed {
        x
    } else {
        standard = x.as_standard_layout().into_owned();
        &standard
    };
    let mut dims: Vec<i64> = x.shape().iter().map(|&d| d as i64).collect();
    if reversed {
        dims.reverse();
    }
    let values = x
        .as_slice_memory_order()
        .ok_or_else(|| Error::inference("voxels are not contiguous"))?;
    Ok((exec.tensor_f32(&dims, values, device)?, reversed))
}

/// A volume on the executor as its file stores it, and the `orient` arguments that make it
/// RAS+ ([`Orientation::upload_stored`]).
pub struct Stored {
    tensor: Tensor,
    permute: [i64; 3],
    flip: Vec<i64>,
    /// Its RAS+ shape.
    pub shape: [usize; 3],
}

impl Stored {
    /// The box `[start, end)` of the RAS+ volume resized nearest-exact to `size`, as `f32`
    /// with NaN set to 0 (MONAI's `Orientation`, `nan_to_num`, a crop and `Resize`), made
    /// in one step by the host's `resample` (or its `orient`, `crop` and `interpolate`
    /// where a host predates it).
    pub fn resample(
        &self,
        exec: &Executor,
        start: [usize; 3],
        end: [usize; 3],
        size: [usize; 3],
    ) -> Result<Tensor> {
        self.resample_scaled(exec, start, end, size, None)
    }

    /// [`Stored::resample`], then MONAI's `ScaleIntensityRange` with `range`, in the same
    /// step.
    pub fn resample_scaled(
        &self,
        exec: &Executor,
        start: [usize; 3],
        end: [usize; 3],
        size: [usize; 3],
        range: Option<ScaleIntensityRange>,
    ) -> Result<Tensor> {
        let i64s = |v: [usize; 3]| v.map(|x| x as i64);
        let op = Resample {
            permute: Some(self.permute),
            flip: self.flip.clone(),
            start: Some(i64s(start)),
            end: Some(i64s(end)),
            size: Some(i64s(size)),
            nan_to_num: true,
            range,
            threshold: None,
        };
        match exec.run1(&op, &self.tensor) {
            Err(e) if e.code == crate::abi::ErrorCode::UNSUPPORTED => {
                let orient = Orient {
                    permute: self.permute.to_vec(),
                    flip: self.flip.clone(),
                    nan_to_num: true,
                    dtype: Some(Float::Float32),
                };
                let x = exec.run1(&orient, &self.tensor)?;
                let crop = Crop {
                    start: i64s(start),
                    end: i64s(end),
                };
                let mut x = exec.run1(&crop, &x)?;
                if (0..3).any(|i| end[i] - start[i] != size[i]) {
                    let resize = Interpolate {
                        size: i64s(size),
                        mode: ResizeMode::NearestExact,
                    };
                    x = exec.run1(&resize, &x)?;
                }
                match range {
                    Some(r) => exec.run1(&r, &x),
                    None => Ok(x),
                }
            }
            other => other,
        }
    }

    /// The whole RAS+ volume as `f32` (NaN set to 0).
    pub fn whole(&self, exec: &Executor) -> Result<Tensor> {
        self.resample(exec, [0; 3], self.shape, self.shape)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::Orientation;
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn lps_with_swapped_axes_round_trips() {
        // voxel i runs posterior (-A), j runs left (-R), k runs superior.
        let a = [
            [0.0, -2.0, 0.0, 0.0],
            [-1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 3.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let o = Orientation::from_affine(&a);
        assert_eq!(o.source_axis, [1, 0, 2]);
        assert_eq!(o.flipped, [true, true, false]);
        assert_eq!(o.codes(), "PLS");
        let x = ArrayD::from_shape_fn(IxDyn(&[2, 3, 4]), |i| {
            (i[0] * 100 + i[1] * 10 + i[2]) as i32
        });
        let ras = o.to_ras(&x);
        assert_eq!(ras.shape(), &[3, 2, 4]);
        // RAS index (r, a, s) = voxel (i = 1 - a, j = 2 - r, k = s).
        assert_eq!(ras[[0, 0, 3]], x[[1, 2, 3]]);
        assert_eq!(o.from_ras(&ras), x);
    }

    #[test]
    fn orient_args_reorder_either_memory_order_to_ras() {
        use ndarray::{Axis, ShapeBuilder};
        let o = Orientation {
            source_axis: [2, 0, 1],
            flipped: [false, true, true],
        };
        let f = |i: ndarray::IxDyn| (i[0] * 100 + i[1] * 10 + i[2]) as i32;
        for fortran in [false, true] {
            let shape = IxDyn(&[2, 3, 4]);
            let x = if fortran {
                ArrayD::from_shape_fn(shape.f(), f)
            } else {
                ArrayD::from_shape_fn(shape, f)
            };
            // What the executor gets: the memory as a C-ordered tensor.
            let mut dims = x.shape().to_vec();
            if fortran {
                dims.reverse();
            }
            let memory = x.as_slice_memory_order().unwrap().to_vec();
            let t = ArrayD::from_shape_vec(IxDyn(&dims), memory).unwrap();
            let (permute, flip) = o.orient_args(fortran);
            let p: Vec<usize> = permute.iter().map(|&d| d as usize).collect();
            let mut v = t.view().permuted_axes(p);
            for d in flip {
                v.invert_axis(Axis(d as usize));
            }
            assert_eq!(v, o.to_ras(&x), "fortran {fortran}");
        }
    }

    /// A box pasted straight into the file's order equals pasting into the RAS+ volume and
    /// undoing the orientation, for every kind of axis swap and flip, in Fortran layout.
    #[test]
    fn paste_from_ras_equals_paste_then_from_ras() {
        let shape = [37, 45, 41];
        let part = ArrayD::from_shape_fn(IxDyn(&[33, 20, 35]), |i| {
            (i[0] * 7 + i[1] * 13 + i[2] * 3) as u16 % 251 + 1
        });
        for (source_axis, flipped) in [
            ([0, 1, 2], [false; 3]),
            ([1, 0, 2], [true, true, false]),
            ([2, 0, 1], [false, true, true]),
        ] {
            let o = Orientation {
                source_axis,
                flipped,
            };
            let ras_shape: Vec<usize> = source_axis.iter().map(|&a| shape[a]).collect();
            let start = [2, ras_shape[1] - 20, 3];
            let mut ras = ArrayD::<u16>::zeros(IxDyn(&ras_shape));
            ras.slice_mut(ndarray::s![
                start[0]..start[0] + 33,
                start[1]..,
                start[2]..start[2] + 35
            ])
            .assign(&part);
            let pasted = o.paste_from_ras(&part, start, &shape).unwrap();
            assert_eq!(pasted, o.from_ras(&ras), "{source_axis:?} {flipped:?}");
            assert!(pasted.t().is_standard_layout());
            let too_far = [ras_shape[0] - 10, 0, 0];
            assert!(o.paste_from_ras(&part, too_far, &shape).is_err());
        }
    }
}
