"""Interactive `/infer` latency while a batch inference job runs, against the same requests
on an idle server, in one run (labelhost, release build, deepbet's brain_extraction).

The batch job infers every image of the studies folder in the background at batch priority;
meanwhile an annotator's requests arrive one after another. Their extra wait over idle should
stay within about one model pass (the compute lock serves a waiting interactive pass first)
plus the CPU the batch's own pre- and post-processing takes.

Usage: python batch_vs_interactive.py LABELHOST_BIN PLUGINS_DIR DATA_DIR [--runs N] [--copies C]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import requests

from servers import free_port, wait_up


def infer(url, image):
    t = time.perf_counter()
    r = requests.post(f"{url}/infer/brain_extraction?image={image}&output=json",
                      files={"params": (None, '{"save_label": false}')}, timeout=600)
    r.raise_for_status()
    return time.perf_counter() - t, r.json()["latencies"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("labelhost")
    ap.add_argument("plugins")
    ap.add_argument("data")
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--copies", type=int, default=4)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as root:
        studies = os.path.join(root, "studies")
        os.makedirs(studies)
        shutil.copy(os.path.join(a.data, "ch2.nii.gz"), os.path.join(studies, "annotator.nii.gz"))
        for i in range(a.copies):
            shutil.copy(os.path.join(a.data, "ch2.nii.gz"), os.path.join(studies, f"batch{i}.nii.gz"))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = os.path.join(root, "server.log")
        with open(log, "w") as out:
            proc = subprocess.Popen([a.labelhost, "serve", "--plugins", a.plugins, "--studies", studies,
                                     "--port", str(port), "--runtime-dir", os.path.join(root, "rt")],
                                    stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_up(url, proc, log=log)
            infer(url, "annotator")  # warm-up
            idle = [infer(url, "annotator") for _ in range(a.runs)]
            r = requests.post(f"{url}/batch/infer/brain_extraction?images=all",
                              json={"save_label": False}, timeout=30)
            r.raise_for_status()
            busy = []
            while len(busy) < a.runs:
                record = requests.get(f"{url}/batch/infer", timeout=30).json()
                if record["status"] != "RUNNING":
                    break
                busy.append(infer(url, "annotator"))
            while requests.get(f"{url}/batch/infer", timeout=30).json()["status"] == "RUNNING":
                time.sleep(0.5)
            record = requests.get(f"{url}/batch/infer", timeout=30).json()
        finally:
            proc.terminate()
            proc.wait()
    p50 = lambda xs: statistics.median(x[0] for x in xs)
    model = statistics.median(x[1]["model"] for x in idle)
    worst = max(x[0] for x in busy) if busy else float("nan")
    print(f"| interactive brain_extraction on ch2 | idle | during a batch of {a.copies + 1} | ratio |")
    print("|---|---|---|---|")
    print(f"| p50 | {p50(idle):.2f} s | {p50(busy):.2f} s | {p50(busy) / p50(idle):.2f} |")
    print(f"| max | {max(x[0] for x in idle):.2f} s | {worst:.2f} s | {worst / max(x[0] for x in idle):.2f} |")
    print(f"| requests | {len(idle)} | {len(busy)} (answered while the batch ran) | |")
    print(f"\nmodel passes per request (idle p50): {model:.2f} s; worst extra wait during the batch: "
          f"{worst - p50(idle):.2f} s; batch record: {record['status']}, {record.get('train_stats')}")


if __name__ == "__main__":
    main()
