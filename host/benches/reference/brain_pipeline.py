"""The reference for host/benches/brain_pipeline.rs: deepbet's two-stage brain extraction
in plain PyTorch (nibabel in, nibabel out, scipy for connected components and holes), the
same steps as the brain app's `brain_extraction`. Prints one JSON line of timings.

Usage: python brain_pipeline.py IMAGE BBOX_MODEL MODEL OUT [--runs N] [--device cpu|cuda]
"""
import argparse
import json
import resource
import time

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


def normalize(x, low, high):
    x = ((x - low) / (high - low)).clamp(0, 1)
    return 0.226 * (x - x.mean()) / x.std() + 0.449


def largest_component(mask):
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == sizes.argmax()


def bbox(mask_small, shape):
    box = []
    for axis, dims in enumerate([(1, 2), (0, 2), (0, 1)]):
        hits = np.where(mask_small.mean(dims) > 0.02)[0]
        scale = shape[axis] / mask_small.shape[axis]
        centre = np.round((hits.max() + 1 + hits.min()) / 2 * scale)
        size = np.round((hits.max() + 1 - hits.min()) * scale * 1.2)
        box.append(slice(max(0, int(centre - size / 2)), min(shape[axis], int(centre + size / 2))))
    return tuple(box)


def run(path, bbox_model, model, out, device):
    t = [time.perf_counter()]
    img = nib.load(path)
    canonical = nib.as_closest_canonical(img)
    x = torch.from_numpy(canonical.get_fdata(dtype=np.float32)).to(device)
    x = torch.nan_to_num(x)
    small = F.interpolate(x[None, None], (128,) * 3, mode="nearest-exact")[0, 0]
    low, high = small.quantile(0.005), small.quantile(0.995)
    t.append(time.perf_counter())
    with torch.no_grad():
        p_small = bbox_model(normalize(small, low, high)[None, None])[0, 1]
        m_small = largest_component((p_small > 0.5).cpu().numpy())
        box = bbox(m_small, x.shape)
        big = F.interpolate(x[box][None, None], (256,) * 3, mode="nearest-exact")[0, 0]
        p_big = model(normalize(big, low, high)[None, None])[0, 1]
        crop_shape = tuple(s.stop - s.start for s in box)
        m_crop = (F.interpolate(p_big[None, None], crop_shape, mode="nearest-exact")[0, 0] > 0.5)
        m_crop = m_crop.to(torch.uint8).cpu().numpy()
    t.append(time.perf_counter())
    mask = np.zeros(x.shape, dtype=np.uint8)
    mask[box] = m_crop
    mask = ndimage.binary_fill_holes(largest_component(mask)).astype(np.uint8)
    ornt = nib.orientations.ornt_transform(nib.io_orientation(canonical.affine), nib.io_orientation(img.affine))
    mask = nib.orientations.apply_orientation(mask, ornt)
    t.append(time.perf_counter())
    nib.save(nib.Nifti1Image(mask, img.affine, img.header), out)
    t.append(time.perf_counter())
    return {"pre": t[1] - t[0], "infer": t[2] - t[1], "post": t[3] - t[2], "write": t[4] - t[3], "total": t[4] - t[0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("image"), ap.add_argument("bbox_model"), ap.add_argument("model"), ap.add_argument("out")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    device = torch.device(a.device)
    bbox_model = torch.jit.load(a.bbox_model, map_location=device).eval()
    model = torch.jit.load(a.model, map_location=device).eval()
    run(a.image, bbox_model, model, a.out, device)  # warm-up
    runs = [run(a.image, bbox_model, model, a.out, device) for _ in range(a.runs)]
    median = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"p50": median, "peak_rss_bytes": peak}))


if __name__ == "__main__":
    main()
