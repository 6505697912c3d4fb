"""A bounded load run against labelhost on 127.0.0.1 (release build, the brain app).

CLIENTS concurrent clients, for SECONDS, each looping over a mix of MONAI Label requests:
datastore reads (stats, info, image and label downloads, the whole index), label saves
(`PUT /datastore/label`, each client its own tag), inference (`brain_otsu` and deepbet's
`brain_extraction`) and next-sample (`/activelearning/brain_random`), while the app is
hot-swapped (`POST /apps/brain/reload`) every SWAP seconds and a `brain_unet` training job
runs. A 503 is backpressure: the client waits (Retry-After, at most 2 s) and goes on.

Then it checks that every acknowledged label is what its last acknowledged save sent, in
the index, in the studies folder and over the API, and again after a SIGTERM and restart;
and that the server never logged a panic. It prints one markdown table (requests, statuses
and latency per kind of request, swaps, training progress, RSS over the run) and exits
non-zero on any failure: a status other than 2xx or 503, a connection error or timeout, a
failed swap or training job, a label lost or different.

Usage: python load.py LABELHOST_BIN PLUGINS_DIR DATA_DIR [--clients 100] [--seconds 60]
                      [--swap-every 5] [--record FILE]
"""
import argparse
import collections
import datetime
import gzip
import hashlib
import io
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time

import nibabel as nib
import numpy as np
import requests

from reference.servers import free_port, wait_up

# (kind, weight) of each client step.
MIX = [("read", 35), ("save", 25), ("infer", 25), ("next", 15)]
# Image copies in the studies folder: one ch2 (deepbet's pass ~2 s here), five smaller T1s.
IMAGES = [("ch2", "ch2.nii.gz", "ch2bet.nii.gz")] + [
    (f"kmeans{i}", "KmeansTest_T1UCharRaw.nii.gz", "KmeansTest_T1RawSkullStrip.nii.gz") for i in range(5)
]
TIMEOUT = 300


def mask_bytes(image_path, mask):
    """`mask` as a uint8 .nii.gz on `image_path`'s grid."""
    img = nib.load(image_path)
    out = nib.Nifti1Image(mask.astype(np.uint8), img.affine)
    out.set_qform(img.affine, code=1)
    out.set_sform(img.affine, code=1)
    raw = out.to_bytes()
    return gzip.compress(raw, compresslevel=1, mtime=0)


def label_variants(data, studies):
    """Per image: its final mask (from the skull-stripped file) and 4 threshold masks to save."""
    finals, variants = {}, {}
    for image, _, stripped in IMAGES:
        path = os.path.join(studies, image + ".nii.gz")
        finals[image] = mask_bytes(path, np.asanyarray(nib.load(os.path.join(data, stripped)).dataobj) > 0)
        voxels = np.asanyarray(nib.load(path).dataobj)
        variants[image] = [mask_bytes(path, voxels > np.percentile(voxels, q)) for q in (30, 50, 70, 90)]
    return finals, variants


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = collections.defaultdict(list)  # kind -> [(status, seconds)]

    def add(self, kind, status, seconds):
        with self.lock:
            self.calls[kind].append((status, seconds))


def client(n, url, stop, stats, variants, acked, seed):
    rng = random.Random(seed)
    http = requests.Session()
    tag = f"load{n}"
    kinds = [k for k, w in MIX for _ in range(w)]
    images = [i for i, _, _ in IMAGES]
    while not stop.is_set():
        kind = rng.choice(kinds)
        image = rng.choice(images)
        t = time.perf_counter()
        try:
            if kind == "read":
                path = rng.choice([
                    "/datastore/?output=stats", "/info/", "/datastore/?output=all",
                    f"/datastore/image?image={image}", f"/datastore/label?label={image}&tag=final",
                ])
                r = http.get(url + path, timeout=TIMEOUT)
                kind = "read " + path.split("?")[0]
            elif kind == "save":
                v = rng.randrange(len(variants[image]))
                r = http.put(f"{url}/datastore/label?image={image}&tag={tag}",
                             files={"label": (f"{image}.nii.gz", variants[image][v]),
                                    "params": (None, json.dumps({"client_id": f"client{n}"}))},
                             timeout=TIMEOUT)
                if r.status_code == 200:
                    acked[(image, tag)] = v  # the client's saves are sequential: the last wins
            elif kind == "infer":
                task = rng.choice(["brain_otsu", "brain_otsu", "brain_extraction"])
                output = rng.choice(["json", "image"])
                r = http.post(f"{url}/infer/{task}?image={image}&output={output}",
                              files={"params": (None, json.dumps({"save_label": False}))}, timeout=TIMEOUT)
                kind = f"infer {task}"
            else:
                r = http.post(f"{url}/activelearning/brain_random", json={"client_id": f"client{n}"},
                              timeout=TIMEOUT)
            stats.add(kind, r.status_code, time.perf_counter() - t)
            if r.status_code == 503:
                time.sleep(min(2.0, float(r.headers.get("retry-after", "1"))))
        except requests.RequestException as e:
            stats.add(kind, f"error: {type(e).__name__}", time.perf_counter() - t)


def swapper(url, stop, every, swaps):
    http = requests.Session()
    while not stop.wait(every):
        t = time.perf_counter()
        try:
            r = http.post(f"{url}/apps/brain/reload", timeout=TIMEOUT)
            swaps.append((r.status_code, time.perf_counter() - t, r.text[:200] if r.status_code != 200 else ""))
        except requests.RequestException as e:
            swaps.append((f"error: {type(e).__name__}", time.perf_counter() - t, str(e)[:200]))


def rss_sampler(pid, stop, samples):
    while not stop.wait(0.5):
        try:
            with open(f"/proc/{pid}/status") as f:
                kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            samples.append((time.time(), kb / 1024))
        except (OSError, StopIteration):
            return


def start(bin_, plugins, studies, root, port, log):
    out = open(log, "a")
    proc = subprocess.Popen([bin_, "serve", "--plugins", plugins, "--studies", studies, "--port", str(port),
                             "--runtime-dir", os.path.join(root, "rt")],
                            stdout=out, stderr=subprocess.STDOUT,
                            env=dict(os.environ, RUST_LOG="labelhost=info"))
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc, log=log)
    return proc, url


def check_labels(url, studies, variants, acked):
    """Problems with the acknowledged labels: index, file on disk, API download."""
    problems = []
    index = requests.get(f"{url}/datastore/?output=all", timeout=TIMEOUT).json()
    objects = index.get("objects", index)
    for (image, tag), v in sorted(acked.items()):
        want = hashlib.sha256(variants[image][v]).hexdigest()
        entry = objects.get(image, {})
        if tag not in entry.get("labels", {}):
            problems.append(f"{image}/{tag}: not in the index")
        path = os.path.join(studies, "labels", tag, image + ".nii.gz")
        disk = hashlib.sha256(open(path, "rb").read()).hexdigest() if os.path.exists(path) else None
        if disk != want:
            problems.append(f"{image}/{tag}: on disk {disk and disk[:12]}, acknowledged {want[:12]}")
        r = requests.get(f"{url}/datastore/label?label={image}&tag={tag}", timeout=TIMEOUT)
        if r.status_code != 200 or hashlib.sha256(r.content).hexdigest() != want:
            problems.append(f"{image}/{tag}: served {r.status_code} differs from acknowledged")
    return problems


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("labelhost")
    ap.add_argument("plugins")
    ap.add_argument("data")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--swap-every", type=float, default=5)
    ap.add_argument("--record")
    a = ap.parse_args()
    failures = []
    with tempfile.TemporaryDirectory() as root:
        studies = os.path.join(root, "studies")
        os.makedirs(studies)
        for image, source, _ in IMAGES:
            shutil.copy(os.path.join(a.data, source), os.path.join(studies, image + ".nii.gz"))
        finals, variants = label_variants(a.data, studies)
        port, log = free_port(), os.path.join(root, "server.log")
        proc, url = start(a.labelhost, a.plugins, studies, root, port, log)
        try:
            for image, body in finals.items():
                r = requests.put(f"{url}/datastore/label?image={image}&tag=final",
                                 files={"label": (f"{image}.nii.gz", body)}, timeout=TIMEOUT)
                r.raise_for_status()
            r = requests.post(f"{url}/train/brain_unet",
                              json={"pretrained": False, "max_epochs": 100000, "val_interval": 5}, timeout=TIMEOUT)
            if r.status_code != 200:
                failures.append(f"training did not start: {r.status_code} {r.text[:200]}")
            stop, stats, acked, swaps, rss = threading.Event(), Stats(), {}, [], []
            threads = [threading.Thread(target=rss_sampler, args=(proc.pid, stop, rss)),
                       threading.Thread(target=swapper, args=(url, stop, a.swap_every, swaps))]
            threads += [threading.Thread(target=client, args=(n, url, stop, stats, variants, acked, n))
                        for n in range(a.clients)]
            began = time.time()
            for t in threads:
                t.start()
            time.sleep(a.seconds)
            stop.set()
            for t in threads:
                t.join()
            wall = time.time() - began
            drain = wall - a.seconds
            train = requests.get(f"{url}/train/", timeout=TIMEOUT).json()
            if train.get("status") != "RUNNING":
                failures.append(f"the training job is {train.get('status')}, not RUNNING: {json.dumps(train)[:300]}")
            progress = train.get("train_stats") or {}
            last_line = (train.get("details") or ["(no lines)"])[-1]
            requests.delete(f"{url}/train/", timeout=TIMEOUT)
            health = requests.get(f"{url}/health", timeout=10).status_code
            if health != 200:
                failures.append(f"/health answered {health} after the run")
            failures += check_labels(url, studies, variants, acked)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
            if code != 0:
                failures.append(f"the server exited with {code} on SIGTERM")
            proc, url = start(a.labelhost, a.plugins, studies, root, port, log)
            failures += [f"after restart: {p}" for p in check_labels(url, studies, variants, acked)]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        text = open(log, errors="replace").read()
        if "panicked" in text:
            failures.append("the server log shows a panic")

    rows, total, ok, busy = [], 0, 0, 0
    for kind in sorted(stats.calls):
        calls = stats.calls[kind]
        codes = collections.Counter(s for s, _ in calls)
        good = sum(c for s, c in codes.items() if isinstance(s, int) and 200 <= s < 300)
        backoff = codes.get(503, 0)
        bad = {s: c for s, c in codes.items() if not (isinstance(s, int) and (200 <= s < 300 or s == 503))}
        if bad:
            failures.append(f"{kind}: {bad}")
        times = [t for s, t in calls if isinstance(s, int) and 200 <= s < 300]
        rows.append(f"| {kind} | {len(calls)} | {good} | {backoff} | {sum(bad.values())} | "
                    f"{pct(times, 0.5):.3f} | {pct(times, 0.95):.3f} | {max(times, default=float('nan')):.3f} |")
        total, ok, busy = total + len(calls), ok + good, busy + backoff
    swap_ok = [s for s in swaps if s[0] == 200]
    failures += [f"swap: {s[0]} {s[2]}" for s in swaps if s[0] != 200]
    mb = [m for _, m in rss]
    sixth = max(1, len(mb) // 6)
    cpu = next((line.split(":")[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    out = [
        f"# Load: {a.clients} clients for {a.seconds:.0f} s, hot swap every {a.swap_every:.0f} s, training running",
        "",
        f"{datetime.date.today()}, {os.cpu_count()} cores ({cpu}), {platform.system()}; "
        f"`scripts/bench.sh load`. Latencies of 2xx answers, in seconds.",
        "",
        "| request | sent | 2xx | 503 | failed | p50 | p95 | max |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"- {total} requests sent in {a.seconds:.0f} s, the last answered {drain:.1f} s after it "
        f"({total / wall:.1f}/s over {wall:.0f} s); {ok} answered 2xx, {busy} 503 (backpressure), {total - ok - busy} failed",
        f"- hot swaps: {len(swap_ok)} of {len(swaps)} succeeded, p50 {pct([s[1] for s in swap_ok], 0.5):.3f} s, "
        f"max {max((s[1] for s in swap_ok), default=float('nan')):.3f} s",
        f"- training (brain_unet, from fresh weights): {train.get('status')} at the end of the run; stats "
        f"{json.dumps({k: v for k, v in progress.items() if isinstance(v, (int, float))})}; last line: {last_line[:160]}",
        f"- labels: {len(acked)} (image, tag) pairs acknowledged, each checked in the index, on disk and over "
        f"the API, before and after a SIGTERM and restart",
        f"- server RSS: {mb[0]:.0f} MB at start, {max(mb):.0f} MB peak, {mb[-1]:.0f} MB at the end; peak of the "
        f"first sixth {max(mb[:sixth]):.0f} MB, of the last sixth {max(mb[-sixth:]):.0f} MB" if mb else "- RSS: no samples",
        "",
        "Failures: " + ("none" if not failures else ""),
        *[f"- {f}" for f in failures[:50]],
    ]
    print("\n".join(out))
    if a.record:
        with open(a.record, "w") as f:
            f.write("\n".join(out) + "\n")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
