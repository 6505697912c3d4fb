"""Benchmark: `POST /infer` on labelhost against MONAI Label 0.8.5 running the same deepbet
pipeline (monailabel_deepbet/), both servers started here on 127.0.0.1 over their own copy of
the same studies, measured in one run:

- start to the first `GET /info/` that answers 200;
- sequential `/infer` per volume: p50/p95/min/max after a warm-up, with each server's own
  stage latencies (pre/infer/post/write) and Dice of its mask against the volume's reference
  mask and against the other server's mask;
- 1, 2, 4 and 8 concurrent clients (each sends one request at once): wall and throughput
  (the median of --rounds rounds);
- `/info/` latency while those requests run;
- peak RSS of the server and its children (sampled every 0.25 s from /proc, and the
  server's own high-water mark).

Both servers run at once and their probes alternate (see `measure`), so the machine's drift
falls on both alike.

Prints one markdown table with both servers and the ratio (labelhost / MONAI Label; below 1
means labelhost is faster or smaller) and, with --record FILE, writes it there with the date
and machine. Usage (scripts/bench.sh infer runs it):
python infer_vs_monailabel.py LABELHOST_BIN PLUGINS_DIR APP_DIR MODELS_DIR DATA_DIR [--device cpu|cuda]
"""
import argparse
import concurrent.futures as cf
import datetime
import gzip
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import nibabel as nib
import numpy as np
import requests
from requests_toolbelt.multipart import decoder
from servers import free_port, wait_up

# (file in the studies folder, path under DATA_DIR, reference mask under DATA_DIR)
VOLUMES = [
    ("ch2.nii.gz", "ch2.nii.gz", "ch2bet.nii.gz"),
    ("robex_t1.nii.gz", "heldout/robex_t1.nii.gz", "heldout/robex_mask.nii.gz"),
    ("KmeansTest_T1UCharRaw.nii.gz", "KmeansTest_T1UCharRaw.nii.gz", "KmeansTest_T1RawSkullStrip.nii.gz"),
]
MODEL = "brain_extraction"


def tree_rss(pid):
    """Resident bytes of `pid` and all its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            pass
    return total


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self):
        # Every 0.25 s, so the walk over /proc costs the 2-core machine little; a peak
        # between samples is caught by the server process's own high-water mark (VmHWM),
        # read at the end.
        while not self.stop.wait(0.25):
            self.peak = max(self.peak, tree_rss(self.pid))

    def final_peak(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                hwm = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))
        except (OSError, StopIteration, ValueError):
            hwm = 0
        return max(self.peak, hwm)


def infer(url, image, device, extra=None, refused_ok=False):
    """One `/infer` (output=all); answers (seconds, params, mask array), or with
    `refused_ok` the error text of a 4xx answer."""
    t = time.perf_counter()
    r = requests.post(f"{url}/infer/{MODEL}", params={"image": image, "output": "all"},
                      files={"params": (None, json.dumps({"device": device, **(extra or {})}))},
                      timeout=600)
    seconds = time.perf_counter() - t
    if refused_ok and 400 <= r.status_code < 500:
        return r.text[:300]
    if r.status_code != 200:
        raise SystemExit(f"{url} /infer {image}: {r.status_code} {r.text[:300]}")
    params, mask = {}, None
    for part in decoder.MultipartDecoder.from_response(r).parts:
        disposition = part.headers.get(b"Content-Disposition", b"").decode()
        if 'name="params"' in disposition:
            params = json.loads(part.content)
        else:
            mask = read_mask(part.content)
    return seconds, params, mask


def read_mask(data):
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    fh = nib.FileHolder(fileobj=io.BytesIO(data))
    img = nib.Nifti1Image.from_file_map({"header": fh, "image": fh})
    return np.asarray(img.dataobj) > 0


def dice(a, b):
    a, b = np.squeeze(a), np.squeeze(b)
    return 2.0 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum())


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


class Server:
    """One server under test: started, its RSS sampled, stopped."""

    def __init__(self, name, command, url, env, work):
        self.name, self.url = name, url
        self.log = open(os.path.join(work, f"{name}.log"), "w")
        started = time.perf_counter()
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=work)
        self.sampler = RssSampler(self.proc.pid)
        self.sampler.start()
        try:
            wait_up(url, self.proc, every=0.05, log=self.log.name)
        except SystemExit:
            self.sampler.stop.set()
            self.proc.kill()
            self.proc.wait()
            raise
        self.out = {"start": time.perf_counter() - started, "volumes": {}, "concurrent": {}}

    def stop(self):
        # A peak taken earlier (before probes that are not the comparison's) stands.
        self.out.setdefault("peak_rss", self.sampler.final_peak())
        self.sampler.stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def concurrent(server, clients, device):
    """`clients` ch2 requests at once while `/info/` is polled; answers (wall, info times)."""
    info_times, done = [], threading.Event()

    def poll_info():
        while not done.is_set():
            t = time.perf_counter()
            requests.get(server.url + "/info/", timeout=600).raise_for_status()
            info_times.append(time.perf_counter() - t)
            time.sleep(0.2)

    poller = threading.Thread(target=poll_info, daemon=True)
    t = time.perf_counter()
    poller.start()
    with cf.ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda _: infer(server.url, "ch2", device), range(clients)))
    wall = time.perf_counter() - t
    done.set()
    poller.join()
    return wall, info_times


def measure(servers, a):
    """Every probe on both servers, interleaved (this 2-core VM's speed drifts by tens of
    percent over minutes, so each server's runs alternate with the other's: request by
    request for the sequential runs, round by round for the concurrent ones, the order
    swapped each time). Fills each server's `out`."""
    for study, _, _ in VOLUMES:
        image = study.split(".")[0]
        runs = {s.name: [] for s in servers}
        for s in servers:
            infer(s.url, image, a.device)  # warm-up
        for i in range(a.runs):
            for s in servers if i % 2 == 0 else servers[::-1]:
                runs[s.name].append(infer(s.url, image, a.device))
        for s in servers:
            r = runs[s.name]
            times = [x[0] for x in r]
            stages = {k: statistics.median(x[1].get("latencies", {}).get(k, float("nan")) for x in r)
                      for k in ("pre", "infer", "post", "write", "total", "model")}
            # Each step's own time where a server names them flat (labelhost's laps).
            laps = [x[1].get("latencies", {}).get("transform", {}) for x in r]
            names = [k for k, v in laps[-1].items() if isinstance(v, (int, float))]
            laps = {k: statistics.median(lap.get(k, float("nan")) for lap in laps) for k in names}
            s.out["volumes"][image] = {"p50": statistics.median(times), "p95": pct(times, 0.95),
                                       "min": min(times), "max": max(times), "stages": stages,
                                       "laps": laps, "mask": r[-1][2]}
            # The precision the model ran in (labelhost names it; MONAI Label runs fp32).
            s.out["precision"] = r[-1][1].get("precision", "fp32")
    for clients in a.concurrency:
        walls, infos = {s.name: [] for s in servers}, {s.name: [] for s in servers}
        for i in range(a.rounds):
            for s in servers if i % 2 == 0 else servers[::-1]:
                wall, info = concurrent(s, clients, a.device)
                walls[s.name].append(wall)
                infos[s.name].extend(info)
        for s in servers:
            wall = statistics.median(walls[s.name])
            s.out["concurrent"][clients] = {"wall": wall, "per_s": clients / wall,
                                            "info_p50": statistics.median(infos[s.name]),
                                            "info_max": max(infos[s.name])}


PRECISIONS = ("fp32", "bf16", "fp16")
# The settings a GPU run compares with the measured server's defaults: name, log name, flags.
VARIANTS = [("`--cudnn-benchmark`", "labelhost-cudnn", ["--cudnn-benchmark"]),
            ("`--device-workers 4`", "labelhost-workers4", ["--device-workers", "4"])]


def variants(servers, a):
    """labelhost alone, each server of `servers` (name → Server: the defaults, then each of
    VARIANTS) in turn: at each model precision, ch2's p50 end to end and of the two model
    passes, and Dice of each volume's mask against its fp32 one (the check behind the
    precisions a task accepts, on this device); then the most concurrent clients of
    the run at `auto` precision. What a GPU run needs to choose `auto`'s precision, the
    `--cudnn-benchmark` default and the GPU's device workers (on a CPU the timing flag
    changes nothing). Answers markdown: two tables."""
    others = [study.split(".")[0] for study, _, _ in VOLUMES[1:]]
    rows = ["| labelhost alone | precision | ch2 `/infer` p50 | ch2 model passes p50 | "
            f"Dice vs fp32 (ch2, {', '.join(others)}) |", "|---|---|---|---|---|"]
    clients = max(a.concurrency)
    busy = [f"| labelhost alone, `auto` precision | {clients} concurrent ch2, wall | throughput |",
            "|---|---|---|"]
    for name, server in servers.items():
        fp32_masks = None
        for precision in PRECISIONS:
            extra = {"precision": precision}
            try:
                first = infer(server.url, "ch2", a.device, extra, refused_ok=True)  # warm-up
                if isinstance(first, str):
                    rows.append(f"| {name} | {precision} | refused: {first} | – | – |")
                    continue
                runs = [infer(server.url, "ch2", a.device, extra) for _ in range(a.runs)]
                # One mask of each other volume: the precision's Dice on every real volume.
                masks = [runs[-1][2]] + [infer(server.url, i, a.device, extra)[2] for i in others]
            except (SystemExit, requests.RequestException) as e:  # the other rows still count
                rows.append(f"| {name} | {precision} | failed: {e} | – | – |")
                continue
            fp32_masks = masks if precision == "fp32" else fp32_masks
            model = statistics.median(r[1].get("latencies", {}).get("model", float("nan")) for r in runs)
            agree = (" / ".join(f"{dice(m, f):.5f}" for m, f in zip(masks, fp32_masks))
                     if fp32_masks is not None else "–")
            rows.append(f"| {name} | {runs[-1][1].get('precision', precision)} | "
                        f"{statistics.median(r[0] for r in runs):.3f} s | {model:.3f} s | {agree} |")
        try:
            wall = statistics.median(concurrent(server, clients, a.device)[0] for _ in range(a.rounds))
            busy.append(f"| {name} | {wall:.3f} s | {clients / wall:.3f} /s |")
        except (SystemExit, requests.RequestException) as e:
            busy.append(f"| {name} | failed: {e} | – |")
    return "\n".join(rows) + "\n\n" + "\n".join(busy)


def absent(lh):
    """MONAI Label's side of the table when its server did not start: every figure None."""
    stages = dict.fromkeys(("pre", "infer", "post", "write"), None)
    volume = {"p50": None, "p95": None, "min": None, "max": None, "stages": stages, "mask": None}
    concurrent = dict.fromkeys(("wall", "per_s", "info_p50", "info_max"), None)
    return {"start": None, "peak_rss": None, "volumes": {i: volume for i in lh["volumes"]},
            "concurrent": {c: concurrent for c in lh["concurrent"]}}


def table(lh, ml, refs):
    ml = ml or absent(lh)
    rows = ["| probe | MONAI Label 0.8.5 | labelhost | ratio |", "|---|---|---|---|"]

    def row(label, m, l, unit="s", fmt="{:.3f}"):
        if m is None:  # MONAI Label did not run
            rows.append(f"| {label} | – | {fmt.format(l)} {unit} | – |")
        else:
            rows.append(f"| {label} | {fmt.format(m)} {unit} | {fmt.format(l)} {unit} | {l / m:.2f} |")

    row("start to first `/info/`", ml["start"], lh["start"])
    for image, v in lh["volumes"].items():
        m = ml["volumes"][image]
        shape = "×".join(str(d) for d in refs[image].shape[:3])
        for key in ("p50", "p95", "min", "max"):
            row(f"{image} ({shape}) `/infer` {key}", m[key], v[key])
        for key in ("pre", "infer", "post", "write"):
            row(f"{image} stage {key} (server's own)", m["stages"][key], v["stages"][key])
        # labelhost times its two forward passes (`model`); MONAI Label does not.
        outside = v["stages"]["total"] - v["stages"]["model"]
        rows.append(f"| {image} outside the model passes (total − model) | – | {outside:.3f} s | – |")
        if v["laps"]:
            steps = ", ".join(f"{k} {1000 * t:.1f}" for k, t in v["laps"].items())
            rows.append(f"| {image} labelhost's steps, p50 ms | – | {steps} | – |")
        if m["mask"] is None:
            rows.append(f"| {image} Dice vs reference mask | – | {dice(v['mask'], refs[image]):.4f} | – |")
        else:
            rows.append(f"| {image} Dice vs reference mask | {dice(m['mask'], refs[image]):.4f} | "
                        f"{dice(v['mask'], refs[image]):.4f} | labelhost vs MONAI Label: "
                        f"{dice(v['mask'], m['mask']):.4f} |")
    for clients, c in lh["concurrent"].items():
        m = ml["concurrent"][clients]
        row(f"{clients} concurrent ch2, wall", m["wall"], c["wall"])
        if m["per_s"] is None:
            rows.append(f"| {clients} concurrent ch2, throughput | – | {c['per_s']:.3f} /s | – |")
        else:
            rows.append(f"| {clients} concurrent ch2, throughput | {m['per_s']:.3f} /s | "
                        f"{c['per_s']:.3f} /s | {c['per_s'] / m['per_s']:.2f}× |")
        row(f"`/info/` p50 while {clients} infer", m["info_p50"], c["info_p50"])
        row(f"`/info/` max while {clients} infer", m["info_max"], c["info_max"])
    ml_rss = None if ml["peak_rss"] is None else ml["peak_rss"] / 2**20
    row("peak RSS (server + children)", ml_rss, lh["peak_rss"] / 2**20, "MiB", "{:.0f}")
    # What labelhost's /status (and /metrics) report of each CUDA device after the run.
    for m in lh.get("cuda_memory", []):
        rows.append(f"| {m['device']} memory after the run (labelhost `/status`, device-wide) | – | "
                    f"{m['used'] / 2**20:.0f} of {m['total'] / 2**20:.0f} MiB | – |")
    return "\n".join(rows)


def labelhost_command(a, studies, port, runtime):
    return [a.labelhost, "serve", "--plugins", a.plugins, "--studies", studies,
            "--port", str(port), "--runtime-dir", runtime]


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def main():
    ap = argparse.ArgumentParser()
    for arg in ("labelhost", "plugins", "app", "models", "data"):
        ap.add_argument(arg)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 2, 4, 8])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each concurrency per server")
    ap.add_argument("--record", help="markdown file to keep the table in")
    ap.add_argument("--gpu", default="", help="the GPU's name, for the record")
    ap.add_argument("--alone-if-needed", action="store_true",
                    help="measure labelhost alone when MONAI Label's server does not start")
    ap.add_argument("--logs", help="folder to copy the servers' logs into, whatever the outcome")
    ap.add_argument("--variants", action="store_true",
                    help="also labelhost alone on ch2 in each precision, cuDNN timing off and on")
    a = ap.parse_args()
    for arg in ("labelhost", "plugins", "app", "models", "data"):
        setattr(a, arg, os.path.abspath(getattr(a, arg)))
    work = tempfile.mkdtemp(prefix="infer-bench-")
    if a.logs:
        os.makedirs(a.logs, exist_ok=True)
    refs = {}
    for study, source, ref in VOLUMES:
        os.makedirs(os.path.join(work, "seed"), exist_ok=True)
        shutil.copyfile(os.path.join(a.data, source), os.path.join(work, "seed", study))
        refs[study.split(".")[0]] = np.asarray(nib.load(os.path.join(a.data, ref)).dataobj) > 0
    env = dict(os.environ, MONAI_LABEL_DATASTORE_AUTO_RELOAD="false", MONAI_LABEL_AUTO_UPDATE_SCORING="false")
    servers, extra_rows, missing = [], "", ""
    try:
        for name in ("monailabel", "labelhost"):
            studies = os.path.join(work, name)
            shutil.copytree(os.path.join(work, "seed"), studies)
            port = free_port()
            if name == "labelhost":
                command = labelhost_command(a, studies, port, os.path.join(work, "rt"))
            else:
                command = [sys.executable, "-m", "monailabel.main", "start_server", "--app", a.app,
                           "--studies", studies, "--port", str(port), "--conf", "skip_scoring", "true",
                           "--conf", "bbox_model", os.path.join(a.models, "bbox_model.pt"),
                           "--conf", "model", os.path.join(a.models, "model.pt")]
            print(f"starting {name}...", file=sys.stderr, flush=True)
            try:
                servers.append(Server(name, command, f"http://127.0.0.1:{port}", env, work))
            except SystemExit as e:
                if name == "labelhost" or not a.alone_if_needed:
                    raise
                # One run on a lent machine: labelhost's own figures still count.
                missing = f"MONAI Label did not start ({e}): labelhost measured alone"
                print(missing, file=sys.stderr, flush=True)
                if a.logs:
                    shutil.copy(os.path.join(work, "monailabel.log"), a.logs)
        print("measuring...", file=sys.stderr, flush=True)
        measure(servers, a)
        lh = next(s for s in servers if s.name == "labelhost")
        lh.out["cuda_memory"] = requests.get(lh.url + "/status", timeout=60).json().get("cuda_memory", [])
        if a.device.startswith("cuda") and not lh.out["cuda_memory"]:
            print("labelhost's /status reports no CUDA device memory on a CUDA run", file=sys.stderr)
        if a.variants:
            lh.out["peak_rss"] = lh.sampler.final_peak()  # before the other precisions run
            print("labelhost alone: precisions, settings...", file=sys.stderr, flush=True)
            variant_servers = {"defaults": lh}
            for label, log, flags in VARIANTS:
                studies, port = os.path.join(work, log), free_port()
                shutil.copytree(os.path.join(work, "seed"), studies)
                command = labelhost_command(a, studies, port, os.path.join(work, f"rt-{log}")) + flags
                try:
                    server = Server(log, command, f"http://127.0.0.1:{port}", env, work)
                except SystemExit as e:
                    print(f"labelhost {label} did not start: {e}", file=sys.stderr, flush=True)
                    continue
                servers.append(server)
                variant_servers[label] = server
            extra_rows = variants(variant_servers, a)
    finally:
        for s in servers:
            s.stop()
            if a.logs:
                shutil.copy(s.log.name, a.logs)
    results = {s.name: s.out for s in servers}
    ml = results.get("monailabel")
    if extra_rows:
        extra_rows = ("\n\nlabelhost alone, one server with its defaults and one per setting: the "
                      f"model in each precision it accepts on ch2 ({a.runs} runs after a warm-up) and "
                      f"once on each other volume, then {max(a.concurrency)} clients at once on ch2 "
                      f"({a.rounds} rounds):\n\n" + extra_rows)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    device = a.device + (f" ({a.gpu})" if a.gpu else "")
    head = (f"`POST /infer/{MODEL}` (deepbet, two passes), labelhost vs MONAI Label 0.8.5 in one run, "
            f"{a.runs} sequential runs per volume after a warm-up and {a.rounds} rounds per concurrency, "
            f"both servers up and interleaved; device {device}; {now}; {machine()}; "
            f"model precision: MONAI Label {(ml or {}).get('precision', 'fp32')}, "
            f"labelhost {results['labelhost'].get('precision', 'fp32')} (its `auto`)"
            + (f". **{missing}**" if missing else ""))
    text = head + "\n\n" + table(results["labelhost"], ml, refs) + extra_rows + "\n"
    print(text)
    if a.record:
        with open(a.record, "w") as f:
            f.write(text)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
