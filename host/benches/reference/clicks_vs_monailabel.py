"""Benchmark: one click → label, labelhost's `brain_deepgrow` against MONAI Label 0.8.5
running a 3-D DeepGrow task made of MONAI's own deepgrow transforms (monailabel_clicks/),
both on a 128³ region around the click with the same TorchScript click network, both servers
started here on 127.0.0.1 over copies of the same studies and measured in one run, their
requests interleaved (this VM's speed drifts; see infer_vs_monailabel.py).

Each request is what an annotator's click sends: `POST /infer/brain_deepgrow?image=ID` with
`{"foreground": [[i, j, k]], "background": []}`, the click moving through the brain from one
request to the next. Printed per volume: p50/p95/min/max of the client's wall time and the
servers' own stage latencies; also labelhost's `brain_deepedit` on the whole volume (one
click), which MONAI Label's deepgrow has no counterpart for. The network is untrained
(latency does not depend on the weights): labelhost finds it where its trainer publishes,
MONAI Label gets it by `--conf model`.

Usage (scripts/bench.sh clicks runs it):
python clicks_vs_monailabel.py LABELHOST_BIN PLUGINS_DIR APP_DIR NETWORK DATA_DIR [--runs N] [--record FILE]
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import nibabel as nib
import numpy as np
import requests
from infer_vs_monailabel import Server, machine, pct
from servers import free_port

VOLUMES = [("ch2.nii.gz", "ch2.nii.gz", "ch2bet.nii.gz"),
           ("robex_t1.nii.gz", "heldout/robex_t1.nii.gz", "heldout/robex_mask.nii.gz")]


def clicks_in(mask, n):
    """`n` voxels of the mask spread through it (deterministic)."""
    idx = np.argwhere(mask)
    order = np.linspace(0, len(idx) - 1, n + 2).astype(int)[1:-1]
    return [[int(v) for v in idx[i]] for i in order]


def click(url, model, image, point):
    t = time.perf_counter()
    params = {"foreground": [point], "background": [], "device": "cpu"}
    if model == "brain_deepedit":
        params = {"brain": [point], "background": [], "device": "cpu"}
    r = requests.post(f"{url}/infer/{model}", params={"image": image, "output": "json"},
                      files={"params": (None, json.dumps(params))}, timeout=600)
    seconds = time.perf_counter() - t
    if r.status_code != 200:
        raise SystemExit(f"{url} /infer/{model} {image}: {r.status_code} {r.text[:300]}")
    return seconds, r.json()


def summary(runs):
    times = [r[0] for r in runs]
    stages = {k: statistics.median(r[1].get("latencies", {}).get(k, float("nan")) for r in runs)
              for k in ("pre", "infer", "post", "write")}
    return {"p50": statistics.median(times), "p95": pct(times, 0.95), "min": min(times),
            "max": max(times), "stages": stages}


def main():
    ap = argparse.ArgumentParser()
    for arg in ("labelhost", "plugins", "app", "network", "data"):
        ap.add_argument(arg)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--record")
    a = ap.parse_args()
    for arg in ("labelhost", "plugins", "app", "network", "data"):
        setattr(a, arg, os.path.abspath(getattr(a, arg)))
    work = tempfile.mkdtemp(prefix="clicks-bench-")
    seed = os.path.join(work, "seed")
    os.makedirs(seed)
    points, shapes = {}, {}
    for study, source, ref in VOLUMES:
        img = nib.load(os.path.join(a.data, source))
        if img.ndim == 4 and img.shape[3] == 1:
            # MONAI's deepgrow transforms take 3-D images only: both servers get the
            # held-out T1 (stored 116×150×155×1) as 3-D.
            img = nib.Nifti1Image(np.asanyarray(img.dataobj)[..., 0], img.affine, img.header)
            nib.save(img, os.path.join(seed, study))
        else:
            shutil.copyfile(os.path.join(a.data, source), os.path.join(seed, study))
        mask = np.asarray(nib.load(os.path.join(a.data, ref)).dataobj) > 0
        mask = mask.reshape(mask.shape[:3])
        points[study.split(".")[0]] = clicks_in(mask, a.runs + 1)
        shapes[study.split(".")[0]] = "×".join(str(d) for d in mask.shape[:3])
    env = dict(os.environ, MONAI_LABEL_DATASTORE_AUTO_RELOAD="false", MONAI_LABEL_AUTO_UPDATE_SCORING="false")
    servers = {}
    try:
        for name in ("monailabel", "labelhost"):
            studies = os.path.join(work, name)
            shutil.copytree(seed, studies)
            port = free_port()
            if name == "labelhost":
                published = os.path.join(studies, ".labelhost", "models", "brain")
                os.makedirs(published)
                shutil.copyfile(a.network, os.path.join(published, "brain_deepedit.pt"))
                command = [a.labelhost, "serve", "--plugins", a.plugins, "--studies", studies,
                           "--port", str(port), "--runtime-dir", os.path.join(work, "rt")]
            else:
                command = [sys.executable, "-m", "monailabel.main", "start_server", "--app", a.app,
                           "--studies", studies, "--port", str(port), "--conf", "skip_scoring", "true",
                           "--conf", "model", a.network]
            print(f"starting {name}...", file=sys.stderr, flush=True)
            servers[name] = Server(name, command, f"http://127.0.0.1:{port}", env, work)
        results = {}
        for image, pts in points.items():
            runs = {"monailabel": [], "labelhost": [], "deepedit": []}
            for s in servers.values():
                click(s.url, "brain_deepgrow", image, pts[0])  # warm-up
            click(servers["labelhost"].url, "brain_deepedit", image, pts[0])
            for i, p in enumerate(pts[1:]):
                order = ["monailabel", "labelhost"] if i % 2 == 0 else ["labelhost", "monailabel"]
                for name in order:
                    runs[name].append(click(servers[name].url, "brain_deepgrow", image, p))
                runs["deepedit"].append(click(servers["labelhost"].url, "brain_deepedit", image, p))
            results[image] = {k: summary(v) for k, v in runs.items()}
            roi = runs["labelhost"][-1][1].get("roi")
            results[image]["roi"] = roi
    finally:
        for s in servers.values():
            s.stop()
    rows = ["| probe | MONAI Label 0.8.5 | labelhost | ratio |", "|---|---|---|---|"]
    for image, r in results.items():
        m, l, e = r["monailabel"], r["labelhost"], r["deepedit"]
        for key in ("p50", "p95", "min", "max"):
            rows.append(f"| {image} ({shapes[image]}) click → label, 128³ DeepGrow, {key} | "
                        f"{m[key]:.3f} s | {l[key]:.3f} s | {l[key] / m[key]:.2f} |")
        for key in ("pre", "infer", "post", "write"):
            rows.append(f"| {image} DeepGrow stage {key} (server's own) | {m['stages'][key]:.3f} s | "
                        f"{l['stages'][key]:.3f} s | {l['stages'][key] / m['stages'][key]:.2f} |")
        rows.append(f"| {image} labelhost `brain_deepedit`, whole volume, one click, p50 | – | "
                    f"{e['p50']:.3f} s | – |")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = (f"One click → label: `POST /infer/brain_deepgrow` (one foreground click, 128³ region, "
            f"the same untrained click network), labelhost vs MONAI Label 0.8.5 (MONAI's deepgrow "
            f"transforms), {a.runs} clicks per volume after a warm-up, interleaved; device cpu; {now}; "
            f"{machine()}")
    text = head + "\n\n" + "\n".join(rows) + "\n"
    print(text)
    if a.record:
        with open(a.record, "w") as f:
            f.write(text)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
