"""Benchmark: labelhost against MONAI Label 0.8.5 on the same studies folder, in one run.

- GET /info/ and GET /datastore/?output=all with N images in the index (p50 of R calls);
- save_label throughput: W concurrent writers each PUT /datastore/label on its own images.

Each server gets its own copy of the folder (both write their index). Prints a table and
labelhost/MONAI Label ratios (below 1 means labelhost is faster).

Usage: python api_vs_monailabel.py LABELHOST_BIN PLUGINS_DIR APP_DIR [--images N] [--writers W]
(scripts/bench.sh runs it; MONAI Label's server packages are installed there.)
"""
import argparse
import concurrent.futures as cf
import gzip
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import requests
from servers import free_port, wait_up


def tiny_nifti(path):
    header = bytearray(352)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, 3, 4, 4, 4, 1, 1, 1, 1)
    struct.pack_into("<hh", header, 70, 2, 8)  # uint8
    struct.pack_into("<8f", header, 76, 1, 1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<f", header, 108, 352.0)
    struct.pack_into("<f", header, 112, 1.0)
    header[344:348] = b"n+1\0"
    with gzip.open(path, "wb") as f:
        f.write(bytes(header) + bytes(64))


def p50(url, path, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        r = requests.get(url + path, timeout=300)
        r.raise_for_status()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def save_labels(url, ids, label, writers):
    def one(image_id):
        with open(label, "rb") as f:
            r = requests.put(f"{url}/datastore/label?image={image_id}", files={"label": ("label.nii.gz", f)},
                             data={"params": "{}"}, timeout=300)
        r.raise_for_status()

    t = time.perf_counter()
    with cf.ThreadPoolExecutor(writers) as pool:
        list(pool.map(one, ids))
    return len(ids) / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("labelhost"), ap.add_argument("plugins"), ap.add_argument("app")
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--writers", type=int, default=16)
    ap.add_argument("--labels", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="api-bench-")
    seed = os.path.join(work, "seed")
    os.makedirs(seed)
    tiny = os.path.join(work, "tiny.nii.gz")
    tiny_nifti(tiny)
    for i in range(a.images):
        shutil.copyfile(tiny, os.path.join(seed, f"img{i:05d}.nii.gz"))
    ids = [f"img{i:05d}" for i in range(a.labels)]
    results = {}
    servers = {
        "labelhost": lambda studies, port: [a.labelhost, "serve", "--plugins", a.plugins, "--studies", studies,
                                            "--port", str(port), "--runtime-dir", os.path.join(work, "rt")],
        "monailabel": lambda studies, port: [sys.executable, "-m", "monailabel.main", "start_server", "--app", a.app,
                                             "--studies", studies, "--port", str(port),
                                             "--conf", "skip_scoring", "true"],
    }
    env = dict(os.environ, MONAI_LABEL_DATASTORE_AUTO_RELOAD="false", MONAI_LABEL_AUTO_UPDATE_SCORING="false")
    for name, command in servers.items():
        studies = os.path.join(work, name)
        shutil.copytree(seed, studies)
        port = free_port()
        log = open(os.path.join(work, f"{name}.log"), "w")
        proc = subprocess.Popen(command(studies, port), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
        url = f"http://127.0.0.1:{port}"
        try:
            started = time.perf_counter()
            wait_up(url, proc)
            results[name] = {
                "start": time.perf_counter() - started,
                "info": p50(url, "/info/", a.repeats),
                "datastore_all": p50(url, "/datastore/?output=all", a.repeats),
                "save_label_per_s": save_labels(url, ids, tiny, a.writers),
            }
            lost = a.labels - requests.get(url + "/datastore/", timeout=60).json()["completed"]
            results[name]["labels_lost"] = lost
        finally:
            proc.terminate()
            proc.wait(30)
    lh, ml = results["labelhost"], results["monailabel"]
    print(f"{a.images} images in the index, {a.labels} labels saved by {a.writers} writers, p50 of {a.repeats}")
    print(f"  {'':24}{'labelhost':>12}{'MONAI Label':>14}{'ratio':>9}")
    for key, unit in [("start", "s"), ("info", "s"), ("datastore_all", "s")]:
        print(f"  {key:<24}{lh[key]:>11.4f}{unit}{ml[key]:>13.4f}{unit}{lh[key] / ml[key]:>8.3f}x")
    key = "save_label_per_s"
    print(f"  {'save_label/s':<24}{lh[key]:>12.1f}{ml[key]:>14.1f}{lh[key] / ml[key]:>8.3f}x (higher is better)")
    print(f"  labels lost: labelhost {lh['labels_lost']}, MONAI Label {ml['labels_lost']}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
