"""Drives a labelhost server with MONAI Label 0.8.5's own Python client
(`monailabel.client.MONAILabelClient`), the calls a script or 3D Slicer makes:
info, datastore listing, upload image, next sample, infer (datastore image, uploaded file,
session), save label, download label, train start/status/stop, sessions.

Usage: python monailabel_client.py SERVER_URL IMAGE.nii.gz WORK_DIR
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
    url, image, work = sys.argv[1], sys.argv[2], sys.argv[3]
    client = MONAILabelClient(url, tmpdir=work, client_id="labelhost-test")
    done = []

    info = client.info()
    check("brain_otsu" in info["models"] and "segmentation_kmeans" in info["trainers"], f"info: {info}")
    done.append("info")

    up = client.upload_image(image, image_id="uploaded", params={"source": "client"})
    check(up == {"image": "uploaded"}, f"upload: {up}")
    ds = client.datastore()
    check(ds["objects"]["uploaded"]["image"]["info"].get("source") == "client", f"datastore: {ds}")
    done += ["upload_image", "datastore"]

    sample = client.next_sample("first", {})
    check(sample.get("id") and os.path.exists(sample["path"]), f"next_sample: {sample}")
    done.append("next_sample")

    label_file, params = client.infer("segmentation_kmeans", "uploaded", {})
    check(label_file and os.path.getsize(label_file) > 0, f"infer file: {label_file}")
    check("latencies" in params and "label_names" in params, f"infer params: {params}")
    done.append("infer")

    saved = client.save_label("uploaded", label_file, params={"label_info": [{"name": "class_1", "idx": 1}]})
    check(saved["image"] == "uploaded" and saved["label"] == "uploaded", f"save_label: {saved}")
    back = client.download_label("uploaded", "final")
    check(open(back, "rb").read() == open(label_file, "rb").read(), "download_label bytes")
    done += ["save_label", "download_label"]

    started = client.train_start("segmentation_kmeans", {"max_epochs": 1})
    check(started["status"] in ("SUBMITTED", "RUNNING"), f"train_start: {started}")
    for _ in range(200):
        status = client.train_status()
        if status["status"] not in ("SUBMITTED", "RUNNING"):
            break
        time.sleep(0.05)
    check(status["status"] == "DONE", f"train_status: {status}")
    check(status["result"]["images"] == 1, f"trained on the saved label: {status}")
    check(client.train_status(check_if_running=True) is False, "nothing running")
    check(client.train_stop() is None, "nothing to stop")
    _, params = client.infer("segmentation_kmeans", "uploaded", {})
    check(params.get("trained") is True, f"infer uses the trained means: {params}")
    done += ["train_start", "train_status", "train_stop"]

    _, params = client.infer("brain_otsu", "", {"save_label": False}, file=image)
    check("threshold" in params, f"infer on an uploaded file: {params}")
    session = client.create_session(image)
    sid = session["session_id"]
    check(client.get_session(sid)["name"] == sid, "get_session")
    _, params = client.infer("brain_otsu", "", {}, session_id=sid)
    check("threshold" in params, f"infer on a session: {params}")
    client.remove_session(sid)
    done += ["infer(file)", "create_session", "get_session", "infer(session)", "remove_session"]

    print(json.dumps({"ok": done}))


if __name__ == "__main__":
    main()
