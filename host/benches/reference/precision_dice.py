"""How far deepbet's masks move in a reduced precision: the two-stage pipeline of
brain_pipeline.py with both models and their inputs cast to bf16 or fp16 (as labelhost's
executor casts them for `precision`), against fp32, on the real volumes. On a CPU without
native bf16/fp16 LibTorch emulates the type (minutes per volume) but the answer is the one
the task's `precision` validation needs. Prints one JSON line per volume and precision.

Usage: python precision_dice.py CACHE_DIR [bfloat16] [float16]
"""
import json
import sys
import time

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

import brain_pipeline as bp


def mask(path, bbox_model, model, dtype):
    img = nib.as_closest_canonical(nib.load(path))
    a = img.get_fdata(dtype=np.float32)
    x = torch.nan_to_num(torch.from_numpy(a.reshape(a.shape[:3]).copy()))
    small = F.interpolate(x[None, None], (128,) * 3, mode="nearest-exact")[0, 0]
    low, high = small.quantile(0.005), small.quantile(0.995)
    with torch.inference_mode():
        p = bbox_model(bp.normalize(small, low, high)[None, None].to(dtype))[0, 1].float()
        box = bp.bbox(bp.largest_component((p > 0.5).numpy()), x.shape)
        big = F.interpolate(x[box][None, None], (256,) * 3, mode="nearest-exact")[0, 0]
        p = model(bp.normalize(big, low, high)[None, None].to(dtype))[0, 1].float()
        crop = tuple(s.stop - s.start for s in box)
        m = F.interpolate(p[None, None], crop, mode="nearest-exact")[0, 0] > 0.5
    out = np.zeros(x.shape, bool)
    out[box] = m.numpy()
    return bp.largest_component(out)


def main():
    cache = sys.argv[1]
    dtypes = [getattr(torch, name) for name in sys.argv[2:]] or [torch.bfloat16]
    volumes = {
        "ch2": f"{cache}/data/ch2.nii.gz",
        "robex_t1": f"{cache}/data/heldout/robex_t1.nii.gz",
        "KmeansTest": f"{cache}/data/KmeansTest_T1UCharRaw.nii.gz",
    }
    for name, path in volumes.items():
        reference = None
        for dtype in [torch.float32] + dtypes:
            load = lambda f: torch.jit.load(f"{cache}/models/deepbet/{f}").eval().to(dtype)
            start = time.perf_counter()
            m = mask(path, load("bbox_model.pt"), load("model.pt"), dtype)
            seconds = time.perf_counter() - start
            reference = m if reference is None else reference
            dice = 2 * (m & reference).sum() / (m.sum() + reference.sum())
            print(json.dumps({"volume": name, "dtype": str(dtype), "seconds": round(seconds, 1),
                              "dice_vs_fp32": round(float(dice), 5)}), flush=True)


if __name__ == "__main__":
    main()
