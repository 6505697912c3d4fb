"""Benchmark: training in labelhost against MONAI's own SupervisedTrainer, in one run.

1. Epoch time: the same network (MONAI UNet 16-32-64-128-256, two residual units, made by
   plugins/brain/models/make_unet.py), loss (DiceCE, softmax, one-hot), optimiser (Adam 1e-3),
   patch (64^3, 4 per case, balanced 1:1), batch (2), pre-processing (RAS, 3 mm, 0.5/99.5
   percentiles to [0, 1]) and data (ch2 and the ITK KmeansTest T1 with their brain masks).
   labelhost trains `brain_unet` through POST /train/ on the release server; MONAI runs
   SupervisedTrainer over a CacheDataset in this process, with MONAI Label's post-transforms
   and train_mean_dice key metric (labelhost computes that metric too). Steady-state epochs are timed
   (the first, with caching and warm-up, and the last, with validation, are left out):
   labelhost from its log's per-epoch lines, MONAI from ignite's events.
2. Bounded memory: peak RSS of the labelhost server over a training run on 4 and on 40
   labelled volumes (augmented copies: flips, crops, intensity changes), same iterations.

Prints a markdown table and the ratios. Usage:
  python train_vs_monai.py LABELHOST_BIN BRAIN_LIB DATA_DIR MODELS_DIR [--epochs N]
(scripts/bench.sh runs it; it installs pytorch-ignite beside the pinned torch and monai.)
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import nibabel as nib
import numpy as np
import requests
from servers import free_port, wait_up


def binary_mask(src, dst):
    img = nib.load(src)
    mask = (np.asanyarray(img.dataobj) > 0).astype(np.uint8)
    nib.save(nib.Nifti1Image(mask, img.affine), dst)


def pairs(data, work):
    """(image, label) files of the two training volumes."""
    out = []
    for image, mask, name in (("ch2.nii.gz", "ch2bet.nii.gz", "ch2"),
                              ("KmeansTest_T1UCharRaw.nii.gz", "KmeansTest_T1RawSkullStrip.nii.gz", "kmeans")):
        label = os.path.join(work, f"{name}_mask.nii.gz")
        binary_mask(os.path.join(data, mask), label)
        out.append((os.path.join(data, image), label, name))
    return out


def augmented(pairs_, n, work, seed=0):
    """n augmented copies of the pairs: flips, crops and intensity changes."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        image, label, name = pairs_[i % len(pairs_)]
        img, lab = nib.load(image), nib.load(label)
        x = np.asanyarray(img.dataobj).astype(np.float32)
        y = np.asanyarray(lab.dataobj).astype(np.uint8)
        if rng.random() < 0.5:
            x, y = x[::-1], y[::-1]
        lo = [int(rng.integers(0, max(1, s // 10))) for s in x.shape[:3]]
        x, y = x[lo[0]:, lo[1]:, lo[2]:], y[lo[0]:, lo[1]:, lo[2]:]
        x = x * rng.uniform(0.8, 1.2) + rng.normal(0, 2.0, x.shape).astype(np.float32)
        affine = img.affine.copy()
        affine[:3, 3] += affine[:3, :3] @ np.array(lo, dtype=float)
        xi, yi = os.path.join(work, f"aug{i:03d}_{name}.nii.gz"), os.path.join(work, f"aug{i:03d}_{name}_mask.nii.gz")
        nib.save(nib.Nifti1Image(np.ascontiguousarray(x), affine), xi)
        nib.save(nib.Nifti1Image(np.ascontiguousarray(y), affine), yi)
        out.append((xi, yi, f"aug{i:03d}_{name}"))
    return out


class Server:
    def __init__(self, binary, plugins, studies):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(studies, "..", f"server-{self.port}.log"), "w+")
        self.proc = subprocess.Popen([binary, "serve", "--plugins", plugins, "--studies", studies,
                                      "--port", str(self.port)], stdout=subprocess.DEVNULL, stderr=self.log,
                                     env={**os.environ, "RUST_LOG": "labelhost=info"})
        wait_up(self.url, self.proc, seconds=120, path="/health", every=0.3, log=self.log.name)

    def peak_rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024

    def train(self, body):
        r = requests.post(self.url + "/train/brain_unet", json=body, timeout=60)
        r.raise_for_status()
        while True:
            rec = requests.get(self.url + "/train/", timeout=60).json()
            if rec["status"] not in ("SUBMITTED", "RUNNING"):
                if rec["status"] != "DONE":
                    raise SystemExit(f"training ended {rec['status']}: {rec['details']}")
                return rec
            time.sleep(1)

    def close(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.seek(0)
        return self.log.read()


def studies_with(pairs_, root):
    studies = os.path.join(root, "studies")
    os.makedirs(os.path.join(studies, "labels", "final"))
    for image, label, name in pairs_:
        shutil.copy(image, os.path.join(studies, f"{name}.nii.gz"))
        shutil.copy(label, os.path.join(studies, "labels", "final", f"{name}.nii.gz"))
    return studies


def epoch_times_from_log(log):
    """Seconds between consecutive 'epoch N/' lines of the server log."""
    stamps = {}
    for line in log.splitlines():
        m = re.match(r"(\S+)Z\s+INFO.*epoch (\d+)/\d+ iteration", line)
        if m:
            t = datetime.datetime.fromisoformat(m.group(1))
            stamps[int(m.group(2))] = t.timestamp()
    epochs = sorted(stamps)
    return [stamps[b] - stamps[a] for a, b in zip(epochs, epochs[1:])]


def labelhost_epochs(binary, plugins, pairs_, epochs, root):
    studies = studies_with(pairs_, os.path.join(root, "lh-epochs"))
    server = Server(binary, plugins, studies)
    rec = server.train({"pretrained": False, "max_epochs": epochs, "val_interval": 1000, "device": "cpu"})
    times = epoch_times_from_log(server.close())
    return times[:-1], rec["result"]["train"]["metrics"]  # the last interval holds the validation


def labelhost_peak_rss(binary, plugins, pairs_, iterations, root, tag):
    studies = studies_with(pairs_, os.path.join(root, f"lh-{tag}"))
    server = Server(binary, plugins, studies)
    rec = server.train({"pretrained": False, "max_iterations": iterations, "device": "cpu"})
    rss = server.peak_rss_mib()
    server.close()
    return rss, rec["result"]["cache"]


def monai_epochs(pairs_, network_file, epochs):
    import torch
    from ignite.engine import Events
    from monai.data import CacheDataset, DataLoader
    from monai.engines import SupervisedTrainer
    from monai.handlers import MeanDice, from_engine
    from monai.losses import DiceCELoss
    from monai.transforms import (Activationsd, AsDiscreted, Compose, EnsureChannelFirstd, LoadImaged, Orientationd, RandCropByPosNegLabeld,
                                  RandFlipd, RandRotate90d, RandScaleIntensityd, RandShiftIntensityd,
                                  ScaleIntensityRangePercentilesd, Spacingd, SpatialPadd)

    torch.manual_seed(0)
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "plugins", "brain", "models"))
    from make_unet import network

    net = network()
    net.load_state_dict(torch.jit.load(network_file).state_dict())
    det = Compose([
        LoadImaged(keys=["image", "label"]), EnsureChannelFirstd(keys=["image", "label"]),
        Orientationd(keys=["image", "label"], axcodes="RAS"),
        Spacingd(keys=["image", "label"], pixdim=(3.0, 3.0, 3.0), mode=("bilinear", "nearest")),
        ScaleIntensityRangePercentilesd(keys="image", lower=0.5, upper=99.5, b_min=0.0, b_max=1.0, clip=True),
        # labelhost's sampler pads a volume smaller than a patch; MONAI's crop needs it done.
        SpatialPadd(keys=["image", "label"], spatial_size=(64, 64, 64)),
    ])
    rand = Compose([
        RandCropByPosNegLabeld(keys=["image", "label"], label_key="label", spatial_size=(64, 64, 64), pos=1,
                               neg=1, num_samples=4),
        RandFlipd(keys=["image", "label"], spatial_axis=[0], prob=0.1),
        RandFlipd(keys=["image", "label"], spatial_axis=[1], prob=0.1),
        RandFlipd(keys=["image", "label"], spatial_axis=[2], prob=0.1),
        RandRotate90d(keys=["image", "label"], prob=0.1, max_k=3),
        RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
        RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
    ])
    data = [{"image": i, "label": l} for i, l, _ in pairs_]
    ds = CacheDataset(data, Compose([det, rand]), cache_rate=1.0, num_workers=0)
    loader = DataLoader(ds, batch_size=2, shuffle=True, num_workers=0)
    times, last = [], [None]

    # As MONAI Label's BasicTrainTask runs it: softmax/argmax post-transforms and the
    # train_mean_dice key metric (labelhost reports the same metric from every step).
    post = Compose([
        Activationsd(keys="pred", softmax=True),
        AsDiscreted(keys=("pred", "label"), argmax=(True, False), to_onehot=2),
    ])
    trainer = SupervisedTrainer(device=torch.device("cpu"), max_epochs=epochs, train_data_loader=loader,
                                network=net, optimizer=torch.optim.Adam(net.parameters(), 1e-3),
                                loss_function=DiceCELoss(to_onehot_y=True, softmax=True), amp=False,
                                postprocessing=post,
                                key_train_metric={"train_mean_dice": MeanDice(
                                    include_background=False, output_transform=from_engine(["pred", "label"]))})

    @trainer.on(Events.EPOCH_COMPLETED)
    def _(engine):
        now = time.perf_counter()
        if last[0] is not None:
            times.append(now - last[0])
        last[0] = now

    trainer.run()
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("labelhost")
    ap.add_argument("brain_lib")
    ap.add_argument("data")
    ap.add_argument("models")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--iterations", type=int, default=40)
    args = ap.parse_args()
    torch_threads = os.environ.get("OMP_NUM_THREADS", "default")
    root = tempfile.mkdtemp(prefix="train-bench-")
    try:
        work = os.path.join(root, "data")
        os.makedirs(work)
        base = pairs(args.data, work)
        network = os.path.join(args.models, "brain", "brain_unet.pt")
        plugins = os.path.join(root, "plugins")
        subprocess.run([args.labelhost, "pack", "--library", args.brain_lib,
                        "--asset", f"{os.path.dirname(__file__)}/../../../plugins/brain/assets/otsu.json=assets/otsu.json",
                        "--asset", f"{network}=models/brain_unet.pt", "--out", os.path.join(plugins, "brain")],
                       check=True, stdout=subprocess.DEVNULL)

        lh, lh_metrics = labelhost_epochs(args.labelhost, plugins, base, args.epochs, root)
        mo = monai_epochs(base, network, args.epochs)
        lh_s, mo_s = sum(lh) / len(lh), sum(mo) / len(mo)

        few = augmented(base, 4, work)
        many = augmented(base, 40, work)
        rss4, cache4 = labelhost_peak_rss(args.labelhost, plugins, few, args.iterations, root, "4")
        rss40, cache40 = labelhost_peak_rss(args.labelhost, plugins, many, args.iterations, root, "40")

        print(f"\n## Training: labelhost vs MONAI SupervisedTrainer ({time.strftime('%Y-%m-%d')}, "
              f"{os.cpu_count()} CPUs, torch threads {torch_threads})\n")
        print("| | labelhost | MONAI | ratio |\n|---|---|---|---|")
        print(f"| steady epoch (4 iterations of 2x64^3), mean of {len(lh)} / {len(mo)} | {lh_s:.2f} s | {mo_s:.2f} s "
              f"| {lh_s / mo_s:.2f} |")
        print(f"\n| labelhost peak RSS, {args.iterations} iterations | 4 volumes | 40 volumes | ratio |\n|---|---|---|---|")
        print(f"| server VmHWM | {rss4:.0f} MiB | {rss40:.0f} MiB | {rss40 / rss4:.2f} |")
        print(f"\ncache: 4 volumes {json.dumps(cache4)}; 40 volumes {json.dumps(cache40)}")
        print(f"labelhost epochs (s): {[round(t, 2) for t in lh]}; MONAI epochs (s): {[round(t, 2) for t in mo]}")
        print(f"labelhost's last epoch: {lh_metrics['iteration_seconds']:.3f} s per host step (forward, loss, "
              f"backward, optimiser), {lh_metrics['data_wait_seconds']:.3f} s per iteration waiting for a batch")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
