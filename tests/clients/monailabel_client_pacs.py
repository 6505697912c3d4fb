"""Drives a labelhost server whose datastore is a PACS (DICOMweb) with MONAI Label 0.8.5's
own Python client: info, datastore listing, next sample, infer, save label, train, infer
with the trained model; the calls a script or 3D Slicer makes.

Usage: python monailabel_client_pacs.py SERVER_URL SERIES_UID WORK_DIR
Prints one JSON line with what it checked; exits non-zero on the first failure.
"""
import json
import os
import sys
import time

from monailabel.client import MONAILabelClient


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")


def main():
    url, uid, work = sys.argv[1], sys.argv[2], sys.argv[3]
    client = MONAILabelClient(url, tmpdir=work, client_id="pacs-annotator")
    done = []

    info = client.info()
    check("segmentation_kmeans" in info["models"], f"info: {info}")
    check(info["datastore"]["total"] == 1 and info["datastore"]["completed"] == 0, f"info datastore: {info}")
    ds = client.datastore()
    check(list(ds["objects"]) == [uid], f"datastore: {ds}")
    done += ["info", "datastore"]

    sample = client.next_sample("random", {})
    check(sample.get("id") == uid and os.path.exists(sample["path"]), f"next_sample: {sample}")
    done.append("next_sample")

    label_file, params = client.infer("segmentation_kmeans", uid, {})
    check(label_file and os.path.getsize(label_file) > 0, f"infer file: {label_file}")
    check(params.get("trained") is False, f"infer params: {params}")
    done.append("infer")

    label_info = [{"name": "dark", "idx": 1}, {"name": "mid", "idx": 2}, {"name": "bright", "idx": 3}]
    saved = client.save_label(uid, label_file, params={"label_info": label_info})
    check(saved["image"] == uid, f"save_label: {saved}")
    check(client.info()["datastore"]["completed"] == 1, "labelled")
    done.append("save_label")

    started = client.train_start("segmentation_kmeans", {"max_epochs": 1})
    check(started["status"] in ("SUBMITTED", "RUNNING"), f"train_start: {started}")
    for _ in range(600):
        status = client.train_status()
        if status["status"] not in ("SUBMITTED", "RUNNING"):
            break
        time.sleep(0.1)
    check(status["status"] == "DONE" and status["result"]["images"] == 1, f"train_status: {status}")
    _, params = client.infer("segmentation_kmeans", uid, {})
    check(params.get("trained") is True, f"infer uses the trained means: {params}")
    done += ["train", "infer(trained)"]

    print(json.dumps({"ok": done}))


if __name__ == "__main__":
    main()
